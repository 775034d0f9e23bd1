//! The catalog: a B+tree from table name to table record, rooted in the meta.
//!
//! Invariants: a record is exactly [`RECORD_BYTES`] bytes; names are UTF-8, 1–255 bytes; a
//! table's `len` equals the entries in its tree (`check` proves it).

use crate::format::{Ptr, PtrDisk, U64Le};
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct RecordDisk {
    root: PtrDisk,
    len: U64Le,
}
/// Bytes of a table record.
pub const RECORD_BYTES: usize = 28;
const _: () = assert!(std::mem::size_of::<RecordDisk>() == RECORD_BYTES);

/// A table as the catalog records it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TableRecord {
    /// Root of the table's tree (null when empty).
    pub root: Ptr,
    /// Number of entries.
    pub len: u64,
}

impl TableRecord {
    /// Encodes the record.
    pub fn encode(&self) -> [u8; RECORD_BYTES] {
        let disk = RecordDisk {
            root: self.root.into(),
            len: U64Le::new(self.len),
        };
        let mut out = [0u8; RECORD_BYTES];
        out.copy_from_slice(bytemuck::bytes_of(&disk));
        out
    }

    /// Decodes a record found in catalog leaf `page`.
    pub fn decode(bytes: &[u8], page: u64) -> Result<TableRecord> {
        if bytes.len() != RECORD_BYTES {
            return Err(Error::corrupted(page, "catalog record of the wrong size"));
        }
        let disk: RecordDisk = bytemuck::pod_read_unaligned(bytes);
        Ok(TableRecord {
            root: disk.root.into(),
            len: disk.len.get(),
        })
    }
}

/// Checks a table name.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::InvalidArgument(format!(
            "names are 1 to 255 bytes; {:?} has {}",
            name,
            name.len()
        )));
    }
    Ok(())
}
