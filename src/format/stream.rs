//! The bytes of a send stream (docs/stream.md): a header, records, and an end record.
//!
//! Invariants:
//! - Every structure has a fixed size checked at compile time; integers are little-endian.
//! - A header is believed only when its magic matches, its version is one this build reads
//!   (a newer one is `UnsupportedVersion`) and its checksum holds.
//! - A record's lengths are checked against the engine's limits before any byte of its key
//!   or value is read, so a damaged length never makes a reader allocate or wait for more
//!   than the largest value allowed.
//! - Every record carries a CRC-32C of its head, key and value; the end record also
//!   carries the counts of the records before it and the chain of every checksum before it
//!   ([`chain_crc`]).

use super::{U32Le, U64Le, MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};

/// The first eight bytes of every stream.
pub const STREAM_MAGIC: [u8; 8] = *b"SKVSTRM\0";
/// The stream format version this build writes, and the newest it reads (version 1 has no
/// type names in its table records).
pub const STREAM_VERSION: u32 = 2;
/// The longest snapshot or table name a stream carries.
pub const MAX_NAME_LEN: usize = 255;

/// The fixed part of the stream header; the snapshot's name and a CRC-32C follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct HeaderDisk {
    magic: [u8; 8],
    version: U32Le,
    flags: U32Le,
    identity: [u8; 16],
    base_identity: [u8; 16],
    txn: U64Le,
    created_unix_secs: U64Le,
    name_len: U32Le,
    reserved: [u8; 4],
}
const _: () = assert!(std::mem::size_of::<HeaderDisk>() == HEADER_DISK_BYTES);
/// Bytes of [`HeaderDisk`].
pub const HEADER_DISK_BYTES: usize = 72;

const FLAG_INCREMENTAL: u32 = 1;

/// What a stream header says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// The snapshot's name.
    pub name: String,
    /// The snapshot's identity, kept by the receiver.
    pub identity: [u8; 16],
    /// For an incremental stream, the identity of the snapshot it applies on top of.
    pub base: Option<[u8; 16]>,
    /// The sender's txn of the snapshot (informational).
    pub txn: u64,
    /// When the snapshot was created, seconds since the Unix epoch.
    pub created_unix_secs: u64,
}

impl StreamHeader {
    /// The header's bytes: the fixed part, the name, and a CRC-32C of both.
    pub fn encode(&self) -> Vec<u8> {
        assert!(!self.name.is_empty() && self.name.len() <= MAX_NAME_LEN);
        let disk = HeaderDisk {
            magic: STREAM_MAGIC,
            version: U32Le::new(STREAM_VERSION),
            flags: U32Le::new(if self.base.is_some() {
                FLAG_INCREMENTAL
            } else {
                0
            }),
            identity: self.identity,
            base_identity: self.base.unwrap_or([0; 16]),
            txn: U64Le::new(self.txn),
            created_unix_secs: U64Le::new(self.created_unix_secs),
            name_len: U32Le::new(self.name.len() as u32),
            reserved: [0; 4],
        };
        let mut out = bytemuck::bytes_of(&disk).to_vec();
        out.extend_from_slice(self.name.as_bytes());
        out.extend_from_slice(&crc_bytes(crate::io::crc32c(&out)));
        out
    }

    /// Checks the fixed part; returns it with the length of the name that follows.
    pub fn decode_fixed(bytes: &[u8; HEADER_DISK_BYTES]) -> Result<(HeaderDisk, usize)> {
        let disk: HeaderDisk = bytemuck::pod_read_unaligned(bytes);
        if disk.magic != STREAM_MAGIC {
            return Err(bad("not a shadowkv stream (wrong magic)"));
        }
        let version = disk.version.get();
        if version > STREAM_VERSION {
            return Err(Error::UnsupportedVersion {
                found: version,
                supported: STREAM_VERSION,
            });
        }
        if version == 0 {
            return Err(bad("stream version 0"));
        }
        let name_len = disk.name_len.get() as usize;
        if name_len == 0 || name_len > MAX_NAME_LEN {
            return Err(bad(format!("snapshot name of {name_len} bytes")));
        }
        Ok((disk, name_len))
    }

    /// The header from its checked fixed part, its name and the CRC-32C read after them.
    pub fn decode_rest(disk: &HeaderDisk, name: &[u8], crc: u32) -> Result<StreamHeader> {
        let mut crc_now = crate::io::crc32c(bytemuck::bytes_of(disk));
        crc_now = crate::io::crc32c_append(crc_now, name);
        if crc_now != crc {
            return Err(bad("damaged header (checksum mismatch)"));
        }
        let name = std::str::from_utf8(name)
            .map_err(|_| bad("snapshot name is not UTF-8"))?
            .to_string();
        let flags = disk.flags.get();
        if flags & !FLAG_INCREMENTAL != 0 {
            return Err(bad(format!("unknown header flags {flags:#x}")));
        }
        let created = disk.created_unix_secs.get();
        // The receiver keeps it in the snapshot's record, whose listing must be able to show it.
        let time = std::time::Duration::from_secs(created);
        if std::time::UNIX_EPOCH.checked_add(time).is_none() {
            return Err(bad(format!("creation time {created} out of range")));
        }
        Ok(StreamHeader {
            name,
            identity: disk.identity,
            base: (flags & FLAG_INCREMENTAL != 0).then_some(disk.base_identity),
            txn: disk.txn.get(),
            created_unix_secs: disk.created_unix_secs.get(),
        })
    }
}

/// The kinds of record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordKind {
    /// Key: a table name; value: its type names, as a table record holds them (none for a
    /// table created through the byte API). The table is created when missing, and the
    /// records up to the next table record apply to it.
    Table,
    /// Key: a table name. The table is deleted.
    DropTable,
    /// Key and value: an entry of the current table, inserted or overwritten.
    Put,
    /// Key: an entry of the current table, removed.
    Remove,
    /// Value: the [`Trailer`]. The last record of a stream.
    End,
}

impl RecordKind {
    /// Which of the trailer's counts a record of this kind adds to (the end record to none).
    pub fn counter(self) -> Option<usize> {
        match self {
            RecordKind::Table => Some(0),
            RecordKind::DropTable => Some(1),
            RecordKind::Put => Some(2),
            RecordKind::Remove => Some(3),
            RecordKind::End => None,
        }
    }

    fn code(self) -> u8 {
        match self {
            RecordKind::Table => 1,
            RecordKind::DropTable => 2,
            RecordKind::Put => 3,
            RecordKind::Remove => 4,
            RecordKind::End => 5,
        }
    }
}

/// The largest value of a table record: the table's type names (`records::encode_types`).
const TABLE_VALUE_MAX: u64 = 2 + 2 * super::records::MAX_TYPE_NAME_LEN as u64;

/// The fixed part of a record; the key, the value and a CRC-32C of all three follow it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct RecordDisk {
    kind: u8,
    reserved: [u8; 3],
    key_len: U32Le,
    value_len: U64Le,
}
/// Bytes of [`RecordDisk`].
pub const RECORD_DISK_BYTES: usize = 16;
const _: () = assert!(std::mem::size_of::<RecordDisk>() == RECORD_DISK_BYTES);

/// The fixed part of a record of `kind` with a key and a value of these lengths.
pub fn record_head(kind: RecordKind, key_len: usize, value_len: usize) -> [u8; RECORD_DISK_BYTES] {
    let disk = RecordDisk {
        kind: kind.code(),
        reserved: [0; 3],
        key_len: U32Le::new(key_len as u32),
        value_len: U64Le::new(value_len as u64),
    };
    bytemuck::cast(disk)
}

/// Checks a record's fixed part: its kind, and lengths within the engine's limits (a table
/// name for table records, the trailer's size for the end record).
pub fn decode_record_head(bytes: &[u8; RECORD_DISK_BYTES]) -> Result<(RecordKind, usize, usize)> {
    let disk: RecordDisk = bytemuck::cast(*bytes);
    let kind = match disk.kind {
        1 => RecordKind::Table,
        2 => RecordKind::DropTable,
        3 => RecordKind::Put,
        4 => RecordKind::Remove,
        5 => RecordKind::End,
        k => return Err(bad(format!("unknown record kind {k}"))),
    };
    let (key_len, value_len) = (disk.key_len.get() as usize, disk.value_len.get());
    let (max_key, max_value) = match kind {
        RecordKind::Table => (MAX_NAME_LEN, TABLE_VALUE_MAX),
        RecordKind::DropTable => (MAX_NAME_LEN, 0),
        RecordKind::Put => (MAX_KEY_LEN, MAX_VALUE_LEN as u64),
        RecordKind::Remove => (MAX_KEY_LEN, 0),
        RecordKind::End => (0, TRAILER_BYTES as u64),
    };
    let names = matches!(kind, RecordKind::Table | RecordKind::DropTable);
    if key_len > max_key || (names && key_len == 0) {
        return Err(bad(format!(
            "{kind:?} record with a key of {key_len} bytes"
        )));
    }
    if value_len > max_value || (kind == RecordKind::End && value_len != max_value) {
        return Err(bad(format!(
            "{kind:?} record with a value of {value_len} bytes"
        )));
    }
    Ok((kind, key_len, value_len as usize))
}

/// The end record's value: what came before it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct Trailer {
    /// Table records.
    pub tables: U64Le,
    /// Drop-table records.
    pub drops: U64Le,
    /// Put records.
    pub puts: U64Le,
    /// Remove records.
    pub removes: U64Le,
    /// The stream checksum: see [`chain_crc`].
    pub stream_crc: U32Le,
}
/// Bytes of [`Trailer`].
pub const TRAILER_BYTES: usize = 36;
const _: () = assert!(std::mem::size_of::<Trailer>() == TRAILER_BYTES);

impl Trailer {
    /// A trailer for these counts (in [`RecordKind::counter`] order) and stream checksum.
    pub fn new(counts: [u64; 4], stream_crc: u32) -> Trailer {
        let [tables, drops, puts, removes] = counts.map(U64Le::new);
        Trailer {
            tables,
            drops,
            puts,
            removes,
            stream_crc: U32Le::new(stream_crc),
        }
    }
    /// The counts, in [`RecordKind::counter`] order.
    pub fn counts(&self) -> [u64; 4] {
        [self.tables, self.drops, self.puts, self.removes].map(U64Le::get)
    }
    /// The trailer's bytes.
    pub fn encode(&self) -> Vec<u8> {
        bytemuck::bytes_of(self).to_vec()
    }
    /// The trailer in an end record's value (whose length the record head checked).
    pub fn decode(bytes: &[u8]) -> Trailer {
        bytemuck::pod_read_unaligned(bytes)
    }
}

/// Bytes of the CRC-32C that ends the header and every record.
pub const CRC_BYTES: usize = 4;

/// The stream bytes of the CRC-32C that ends a header or a record.
pub fn crc_bytes(crc: u32) -> [u8; CRC_BYTES] {
    bytemuck::cast(U32Le::new(crc))
}

/// The CRC-32C in the bytes that end a header or a record.
pub fn crc_from_bytes(bytes: [u8; CRC_BYTES]) -> u32 {
    bytemuck::cast::<_, U32Le>(bytes).get()
}

/// The stream checksum after one more checksum: a CRC-32C over the header's checksum and
/// then every record's, in stream order (each as 4 little-endian bytes). Each of those covers
/// its own bytes, so the chain catches a record dropped, repeated or moved without reading
/// any byte twice.
pub fn chain_crc(chain: u32, crc_le: &[u8]) -> u32 {
    crate::io::crc32c_append(chain, crc_le)
}

/// A stream error.
pub fn bad(reason: impl Into<String>) -> Error {
    Error::BadStream {
        reason: reason.into(),
    }
}
