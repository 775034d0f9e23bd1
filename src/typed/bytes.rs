//! Variable-length codecs (`&str`, `String`, `&[u8]`, `Vec<u8>`) and arrays `[T; N]`.
//!
//! Invariants:
//! - A string or byte string is stored as its bytes, which sort like the values (UTF-8
//!   sorts by code point). `&str` and `String` share the type name `str`, `&[u8]` and
//!   `Vec<u8>` the name `bytes`: one encoding, read borrowed or owned.
//! - Before other tuple members they are escaped and terminated (`codec::escape_into`).
//! - An array is its members' part encodings one after another (for bytes and other
//!   fixed-width members, just the bytes), so arrays sort lexicographically.

use super::codec::{escape_into, unescape, Codec, CodecError, Element, Key};
use std::borrow::Cow;

fn utf8(bytes: &[u8]) -> Result<&str, CodecError> {
    std::str::from_utf8(bytes).map_err(|e| CodecError::new(format!("not UTF-8: {e}")))
}

fn utf8_cow(bytes: Cow<'_, [u8]>) -> Result<Cow<'_, str>, CodecError> {
    match bytes {
        Cow::Borrowed(b) => utf8(b).map(Cow::Borrowed),
        Cow::Owned(v) => String::from_utf8(v)
            .map(Cow::Owned)
            .map_err(|e| CodecError::new(format!("not UTF-8: {e}"))),
    }
}

/// Codec and `Element` for a byte-like type: `$in` is what it takes, `$ref` what it reads,
/// `$part` what it reads before other tuple members; `$read` and `$read_part` convert.
macro_rules! byte_like {
    ($t:ty, $name:expr, $in:ty, $ref:ty, $part:ty, $read:expr, $read_part:expr) => {
        impl Codec for $t {
            type In<'a> = $in;
            type Ref<'a> = $ref;
            fn type_name() -> String {
                $name.to_string()
            }
            fn encode(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
                out.extend_from_slice(AsRef::<[u8]>::as_ref(value));
                Ok(())
            }
            fn decode(bytes: &[u8]) -> Result<Self::Ref<'_>, CodecError> {
                $read(bytes)
            }
        }
        impl Element for $t {
            type Part<'a> = $part;
            fn encode_part(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
                escape_into(AsRef::<[u8]>::as_ref(value), out);
                Ok(())
            }
            fn decode_part(bytes: &[u8]) -> Result<(Self::Part<'_>, &[u8]), CodecError> {
                let (content, rest) = unescape(bytes)?;
                Ok(($read_part(content)?, rest))
            }
        }
        impl Key for $t {}
    };
}

byte_like!(&str, "str", &'a str, &'a str, Cow<'a, str>, utf8, utf8_cow);
byte_like!(
    String,
    "str",
    &'a str,
    String,
    String,
    |b| utf8(b).map(str::to_string),
    |c| { utf8_cow(c).map(Cow::into_owned) }
);
byte_like!(&[u8], "bytes", &'a [u8], &'a [u8], Cow<'a, [u8]>, Ok, Ok);
byte_like!(
    Vec<u8>,
    "bytes",
    &'a [u8],
    Vec<u8>,
    Vec<u8>,
    |b: &[u8]| Ok(b.to_vec()),
    |c: Cow<'_, [u8]>| { Ok(c.into_owned()) }
);

impl<T: Element, const N: usize> Codec for [T; N] {
    type In<'a> = [T::In<'a>; N];
    type Ref<'a> = [T::Part<'a>; N];
    fn type_name() -> String {
        format!("[{};{N}]", T::type_name())
    }
    fn encode(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        value.into_iter().try_for_each(|v| T::encode_part(v, out))
    }
    fn decode(bytes: &[u8]) -> Result<Self::Ref<'_>, CodecError> {
        let (parts, rest) = Self::decode_part(bytes)?;
        match rest.is_empty() {
            true => Ok(parts),
            false => Err(CodecError::new(format!(
                "{} bytes past the array",
                rest.len()
            ))),
        }
    }
}

impl<T: Element, const N: usize> Element for [T; N] {
    type Part<'a> = [T::Part<'a>; N];
    fn encode_part(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
        Self::encode(value, out)
    }
    fn decode_part(mut bytes: &[u8]) -> Result<(Self::Part<'_>, &[u8]), CodecError> {
        let mut parts = Vec::with_capacity(N);
        for _ in 0..N {
            let (part, rest) = T::decode_part(bytes)?;
            parts.push(part);
            bytes = rest;
        }
        let parts = parts
            .try_into()
            .map_err(|_| CodecError::new("array length"))?;
        Ok((parts, bytes))
    }
}

impl<T: Element + Key, const N: usize> Key for [T; N] {}
