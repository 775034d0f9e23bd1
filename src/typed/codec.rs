//! The codec traits of typed tables, and the escape-and-terminate encoding that lets a
//! variable-length member stand before others in a tuple key.
//!
//! Invariants:
//! - `decode` never panics: bytes it cannot read are a `CodecError`, and it accepts only
//!   whole encodings (no bytes left over).
//! - A [`Key`] encodes order-preservingly: `a < b` exactly when `encode(a) < encode(b)`
//!   bytewise, since the tree sorts keys bytewise.
//! - An [`Element`]'s part encoding is order-preserving and prefix-free (no part is a proper
//!   prefix of another), so parts concatenated sort lexicographically, member by member.
//! - The escaped form of `b` is `b` with every 0x00 followed by 0xFF, then 0x00 0x00: inside
//!   it a 0x00 is always followed by 0xFF, so the terminator cannot occur early, and where
//!   one string ends first its 0x00 0x00 sorts below whatever the longer one has there.

use std::borrow::Cow;
use std::fmt;

/// Why a value could not be encoded, or stored bytes decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodecError(String);

impl CodecError {
    /// An error with this reason.
    pub fn new(reason: impl Into<String>) -> Self {
        CodecError(reason.into())
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CodecError {}

/// How values of one type become bytes in a table and come back.
///
/// A codec is a type used only as a parameter of [`super::TableDef`]: the shipped ones are
/// the integers, `bool`, `()`, `&str`, `String`, `&[u8]`, `Vec<u8>`, arrays, tuples and,
/// with the `serde` feature, `Postcard`. Any crate can implement it for a type of
/// its own (a marker type will do), so a foreign type needs no impl here (no orphan rule).
pub trait Codec {
    /// What `insert` and lookups take: a borrowed view (`&str` for strings) or, for small
    /// types, the value itself.
    type In<'a>: Copy;
    /// What a read yields, borrowing from the stored bytes for `'a` where the type allows
    /// (`&str`, `&[u8]`: no copy).
    type Ref<'a>;
    /// The name recorded in a table created with this codec and checked when the table is
    /// opened again, in this run or a later one: 1 to 255 bytes. It names the encoding, not
    /// the Rust type, so two codecs with one encoding share it (`&str` and `String`).
    fn type_name() -> String;
    /// Appends the encoding of `value` to `out`.
    fn encode(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Decodes a whole stored encoding.
    fn decode(bytes: &[u8]) -> Result<Self::Ref<'_>, CodecError>;
}

/// A codec whose encoding sorts like its values (see the module invariants), so it may be a
/// table's key type. A value-only codec (such as `Postcard`) does not implement it.
pub trait Key: Codec {}

/// A codec that can stand before other members in a tuple (or be an array's member): it has
/// a self-delimiting part encoding. Fixed-width codecs use their plain encoding; variable-
/// length ones escape and terminate it (see the module invariants).
pub trait Element: Codec {
    /// What a read yields for this member of a tuple: an escaped string may need a copy, so
    /// `&str` and `&[u8]` yield `Cow`s here.
    type Part<'a>;
    /// Appends the part encoding of `value` to `out`.
    fn encode_part(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError>;
    /// Decodes the part at the start of `bytes`; returns it and the bytes after it.
    fn decode_part(bytes: &[u8]) -> Result<(Self::Part<'_>, &[u8]), CodecError>;
}

/// Appends the escaped form of `bytes` to `out`: each 0x00 as 0x00 0xFF, then 0x00 0x00.
pub(crate) fn escape_into(bytes: &[u8], out: &mut Vec<u8>) {
    out.reserve(bytes.len() + 2);
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

/// Reads an escaped string from the start of `bytes`: its content (borrowed unless it held an
/// escaped 0x00) and the bytes after its terminator.
pub(crate) fn unescape(bytes: &[u8]) -> Result<(Cow<'_, [u8]>, &[u8]), CodecError> {
    let mut owned: Option<Vec<u8>> = None;
    let (mut start, mut at) = (0, 0);
    // Bounded: every turn moves `at` past a 0x00 it found.
    loop {
        let zero = bytes[at..]
            .iter()
            .position(|&b| b == 0)
            .map(|p| at + p)
            .ok_or_else(|| CodecError::new("escaped string has no terminator"))?;
        match bytes.get(zero + 1) {
            Some(0) => {
                let rest = &bytes[zero + 2..];
                let content = match owned {
                    Some(mut v) => {
                        v.extend_from_slice(&bytes[start..zero]);
                        Cow::Owned(v)
                    }
                    None => Cow::Borrowed(&bytes[..zero]),
                };
                return Ok((content, rest));
            }
            Some(0xFF) => {
                owned
                    .get_or_insert_with(Vec::new)
                    .extend_from_slice(&bytes[start..=zero]);
                start = zero + 2;
                at = zero + 2;
            }
            _ => return Err(CodecError::new("bad escape in a string")),
        }
    }
}

/// The `N` bytes of a fixed-width encoding, or an error naming what was found.
pub(crate) fn fixed<const N: usize>(bytes: &[u8]) -> Result<[u8; N], CodecError> {
    bytes
        .try_into()
        .map_err(|_| CodecError::new(format!("expected {N} bytes, found {}", bytes.len())))
}

/// Splits the first `n` bytes off `bytes`, or an error if there are fewer.
pub(crate) fn split(bytes: &[u8], n: usize) -> Result<(&[u8], &[u8]), CodecError> {
    if bytes.len() < n {
        return Err(CodecError::new(format!(
            "expected at least {n} bytes, found {}",
            bytes.len()
        )));
    }
    Ok(bytes.split_at(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips_and_borrows_when_it_can() {
        for s in [&b""[..], b"a", b"\0", b"a\0b\0", b"\0\0", b"\xff\0\xff"] {
            let mut out = Vec::new();
            escape_into(s, &mut out);
            out.extend_from_slice(b"tail");
            let (content, rest) = unescape(&out).unwrap();
            assert_eq!((&*content, rest), (s, &b"tail"[..]));
            assert_eq!(matches!(content, Cow::Borrowed(_)), !s.contains(&0));
        }
    }

    #[test]
    fn bad_escapes_are_errors() {
        for bad in [&b""[..], b"abc", b"a\0", b"a\0\x01", b"\0\xff"] {
            assert!(unescape(bad).is_err(), "{bad:?}");
        }
    }
}
