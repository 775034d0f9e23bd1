//! Records stored in the system trees: table records (catalog values), root records (the
//! named snapshots and branches) and release-queue entries (the refcount tree's entries are
//! `counts.rs`).
//!
//! Invariants: every record has a fixed size checked at compile time; a decoder given the
//! wrong number of bytes returns `Error::Corrupted` for the page it came from.

use super::{Ptr, PtrDisk, U64Le};
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};

fn decode_pod<T: Pod>(bytes: &[u8], page: u64, what: &str) -> Result<T> {
    if bytes.len() != std::mem::size_of::<T>() {
        return Err(Error::corrupted(
            page,
            format!("{what} record of {} bytes", bytes.len()),
        ));
    }
    Ok(bytemuck::pod_read_unaligned(bytes))
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct TableDisk {
    root: PtrDisk,
    len: U64Le,
}
const _: () = assert!(std::mem::size_of::<TableDisk>() == 28);

/// The longest type name a table record holds, in bytes. With a 255-byte table name, a
/// record with two names this long keeps its catalog entry inline on a 4096-byte page.
pub const MAX_TYPE_NAME_LEN: usize = 255;
const _: () = assert!(
    super::node::leaf_inline_bytes(255, 28 + 2 + 2 * MAX_TYPE_NAME_LEN)
        <= super::node::max_entry_bytes(super::MIN_PAGE_SIZE)
);

/// The key and value type names a table was created with through the typed API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeNames {
    /// The key type's name (1 to 255 bytes).
    pub key: String,
    /// The value type's name (1 to 255 bytes).
    pub value: String,
}

/// A table as the catalog records it (catalog key: the table name).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableRecord {
    /// Root of the table's tree (null when empty).
    pub root: Ptr,
    /// Number of entries.
    pub len: u64,
    /// The type names recorded when the table was created typed; `None` for a table
    /// created through the byte API.
    pub types: Option<TypeNames>,
}

impl TableRecord {
    /// Encodes the record: 28 bytes, then for a typed table the two name lengths (one byte
    /// each) and the two names.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = bytemuck::bytes_of(&TableDisk {
            root: self.root.into(),
            len: U64Le::new(self.len),
        })
        .to_vec();
        out.extend_from_slice(&encode_types(self.types.as_ref()));
        // Paired with the checks of `decode` after a read: what is written reads back.
        debug_assert!(
            TableRecord::decode(&out, 0).is_ok_and(|back| back == *self),
            "a table record reads back as written"
        );
        out
    }
    /// Decodes a record found on catalog leaf `page`.
    pub fn decode(bytes: &[u8], page: u64) -> Result<TableRecord> {
        let fixed = bytes.get(..28).unwrap_or(bytes);
        let d: TableDisk = decode_pod(fixed, page, "table")?;
        Ok(TableRecord {
            root: d.root.into(),
            len: d.len.get(),
            types: decode_types(&bytes[fixed.len()..], page)?,
        })
    }
}

/// Whether `name` can be recorded as a type name: 1 to [`MAX_TYPE_NAME_LEN`] bytes.
pub fn valid_type_name(name: &str) -> bool {
    (1..=MAX_TYPE_NAME_LEN).contains(&name.len())
}

/// The bytes of `types` as a table record (and a stream's table record) holds them: none,
/// or two lengths (one byte each) and the two names.
pub fn encode_types(types: Option<&TypeNames>) -> Vec<u8> {
    let Some(types) = types else {
        return Vec::new();
    };
    assert!(
        valid_type_name(&types.key) && valid_type_name(&types.value),
        "type names were checked when the table was opened"
    );
    let mut out = vec![types.key.len() as u8, types.value.len() as u8];
    out.extend_from_slice(types.key.as_bytes());
    out.extend_from_slice(types.value.as_bytes());
    out
}

/// The type names of [`encode_types`]'s bytes; `Corrupted` for `page` when they are not.
pub fn decode_types(tail: &[u8], page: u64) -> Result<Option<TypeNames>> {
    let bad = |what: &str| Error::corrupted(page, format!("table record: {what}"));
    let [k, v, names @ ..] = tail else {
        return match tail.is_empty() {
            true => Ok(None),
            false => Err(bad("type names cut short")),
        };
    };
    let (k, v) = (usize::from(*k), usize::from(*v));
    if k == 0 || v == 0 || names.len() != k + v {
        return Err(bad("type name lengths do not match the record"));
    }
    let text = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_string)
            .map_err(|_| bad("type name is not UTF-8"))
    };
    Ok(Some(TypeNames {
        key: text(&names[..k])?,
        value: text(&names[k..])?,
    }))
}

/// Whether a named root can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RootKind {
    /// Writable.
    Branch,
    /// Read-only.
    Snapshot,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct RootDisk {
    kind: u8,
    reserved: [u8; 3],
    catalog: PtrDisk,
    txn: U64Le,
    created_unix_secs: U64Le,
    shared_until: U64Le,
    identity: [u8; 16],
}
const _: () = assert!(std::mem::size_of::<RootDisk>() == 64);

/// A named snapshot or branch (roots-tree key: its name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootRecord {
    /// Branch or snapshot.
    pub kind: RootKind,
    /// Root of its catalog tree (null when it has no table).
    pub catalog: Ptr,
    /// The txn of its last commit (for a snapshot: the txn it captured).
    pub txn: u64,
    /// When it was created, in seconds since the Unix epoch.
    pub created_unix_secs: u64,
    /// Pages of this root born at or before this txn may be shared with another root; pages
    /// born after it cannot be (the generation shortcut).
    pub shared_until: u64,
    /// A 128-bit identity drawn when the root is created and kept by copies of it (a
    /// received snapshot keeps its sender's), so an incremental stream applies only on top of
    /// the very snapshot it was computed from. Zero for `main` before its first commit.
    pub identity: [u8; 16],
}

/// An identity as messages show it: its 16 bytes read as one little-endian 128-bit number, in
/// 32 hex digits.
pub fn identity_hex(identity: [u8; 16]) -> String {
    format!("{:032x}", u128::from_le_bytes(identity))
}

impl RootRecord {
    /// The implicit record of `main` before its first commit.
    pub fn empty_branch() -> RootRecord {
        RootRecord {
            kind: RootKind::Branch,
            catalog: Ptr::default(),
            txn: 0,
            created_unix_secs: 0,
            shared_until: 0,
            identity: [0; 16],
        }
    }
    /// Encodes the record (64 bytes).
    pub fn encode(&self) -> Vec<u8> {
        let out = bytemuck::bytes_of(&RootDisk {
            kind: match self.kind {
                RootKind::Branch => 1,
                RootKind::Snapshot => 2,
            },
            reserved: [0; 3],
            catalog: self.catalog.into(),
            txn: U64Le::new(self.txn),
            created_unix_secs: U64Le::new(self.created_unix_secs),
            shared_until: U64Le::new(self.shared_until),
            identity: self.identity,
        })
        .to_vec();
        // Paired with the checks of `decode` after a read: what is written reads back.
        debug_assert!(
            RootRecord::decode(&out, 0).is_ok_and(|back| back == *self),
            "a root record reads back as written"
        );
        out
    }
    /// Decodes a record found on roots-tree leaf `page`.
    pub fn decode(bytes: &[u8], page: u64) -> Result<RootRecord> {
        let d: RootDisk = decode_pod(bytes, page, "root")?;
        let kind = match d.kind {
            1 => RootKind::Branch,
            2 => RootKind::Snapshot,
            k => return Err(Error::corrupted(page, format!("unknown root kind {k}"))),
        };
        Ok(RootRecord {
            kind,
            catalog: d.catalog.into(),
            txn: d.txn.get(),
            created_unix_secs: d.created_unix_secs.get(),
            shared_until: d.shared_until.get(),
            identity: d.identity,
        })
    }
}

/// What a pointer in the release queue points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// A node of a catalog tree.
    CatalogNode,
    /// A node of a table tree.
    TableNode,
    /// An overflow run of this many bytes.
    Overflow(u64),
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct ReleaseDisk {
    ptr: PtrDisk,
    kind: u8,
    reserved: [u8; 3],
    len: U64Le,
}
const _: () = assert!(std::mem::size_of::<ReleaseDisk>() == 32);

/// Encodes a release-queue entry (key: sequence number, big-endian).
pub fn encode_release(ptr: Ptr, what: Released) -> Vec<u8> {
    let (kind, len) = match what {
        Released::CatalogNode => (1, 0),
        Released::TableNode => (2, 0),
        Released::Overflow(len) => (3, len),
    };
    bytemuck::bytes_of(&ReleaseDisk {
        ptr: ptr.into(),
        kind,
        reserved: [0; 3],
        len: U64Le::new(len),
    })
    .to_vec()
}

/// Decodes a release-queue entry found on `page`.
pub fn decode_release(bytes: &[u8], page: u64) -> Result<(Ptr, Released)> {
    let d: ReleaseDisk = decode_pod(bytes, page, "release")?;
    let what = match d.kind {
        1 => Released::CatalogNode,
        2 => Released::TableNode,
        3 => Released::Overflow(d.len.get()),
        k => return Err(Error::corrupted(page, format!("unknown release kind {k}"))),
    };
    Ok((d.ptr.into(), what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_records_with_and_without_type_names() {
        let plain = TableRecord {
            len: 3,
            ..TableRecord::default()
        };
        assert_eq!(plain.encode().len(), 28);
        assert_eq!(TableRecord::decode(&plain.encode(), 1).unwrap(), plain);
        let typed = TableRecord {
            types: Some(TypeNames {
                key: "u64".into(),
                value: "str".into(),
            }),
            ..plain.clone()
        };
        let bytes = typed.encode();
        assert_eq!(&bytes[28..], b"\x03\x03u64str");
        assert_eq!(TableRecord::decode(&bytes, 1).unwrap(), typed);
        let mut bad: Vec<Vec<u8>> = vec![bytes[..29].to_vec(), bytes[..33].to_vec()];
        bad.push([&bytes[..28], b"\x00\x03str"].concat());
        bad.push([&bytes[..28], b"\x01\x01\xffa"].concat());
        bad.push([&bytes[..], b"x"].concat());
        bad.push(bytes[..27].to_vec());
        for b in bad {
            assert!(TableRecord::decode(&b, 1).is_err(), "{b:?}");
        }
    }
}
