//! Records stored in the system trees: table records (catalog values), root records (the
//! named snapshots and branches), release-queue entries and reference counts.
//!
//! Invariants: every record has a fixed size checked at compile time; a decoder given the
//! wrong number of bytes returns `Error::Corrupted` for the page it came from.

use super::{Ptr, PtrDisk, U32Le, U64Le};
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

/// A table as the catalog records it (catalog key: the table name).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableRecord {
    /// Root of the table's tree (null when empty).
    pub root: Ptr,
    /// Number of entries.
    pub len: u64,
}

impl TableRecord {
    /// Encodes the record (28 bytes).
    pub fn encode(&self) -> Vec<u8> {
        bytemuck::bytes_of(&TableDisk {
            root: self.root.into(),
            len: U64Le::new(self.len),
        })
        .to_vec()
    }
    /// Decodes a record found on catalog leaf `page`.
    pub fn decode(bytes: &[u8], page: u64) -> Result<TableRecord> {
        let d: TableDisk = decode_pod(bytes, page, "table")?;
        Ok(TableRecord {
            root: d.root.into(),
            len: d.len.get(),
        })
    }
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
        bytemuck::bytes_of(&RootDisk {
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
        .to_vec()
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

/// The refcount-tree key of `page`: its id, big-endian, so that keys sort like ids.
pub fn count_key(page: u64) -> [u8; 8] {
    page.to_be_bytes()
}

/// Decodes a refcount-tree key found on `page`.
pub fn decode_count_key(key: &[u8], page: u64) -> Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| Error::corrupted(page, "refcount key is not 8 bytes"))?;
    Ok(u64::from_be_bytes(bytes))
}

/// Encodes a reference count (refcount-tree value; key: [`count_key`]).
pub fn encode_count(count: u32) -> [u8; 4] {
    U32Le::new(count).get().to_le_bytes()
}

/// Decodes a reference count found on `page`.
pub fn decode_count(bytes: &[u8], page: u64) -> Result<u32> {
    let c: U32Le = decode_pod(bytes, page, "refcount")?;
    if c.get() < 2 {
        return Err(Error::corrupted(page, "stored reference count below 2"));
    }
    Ok(c.get())
}
