//! `receive`: one send stream applied as a new snapshot, all or nothing, in the manner of
//! `zfs receive`.
//!
//! Invariants:
//! - Exactly one stream is read per call, and not a byte past its end: every read asks for
//!   the exact length still due, so streams can be concatenated.
//! - The snapshot is built in a hidden staging root (`STAGING`, a name no user call can
//!   reach): a fresh empty root for a full stream, a clone of the base for an incremental
//!   one. It is written in commits of at most `CHUNK_BYTES` of keys and values, so memory
//!   stays bounded by the largest value plus that chunk, whatever the stream's size.
//! - The snapshot appears in one commit on `main`, which renames the staging root, only
//!   after the end record proved the stream whole (counts and checksum). Before that, any
//!   error deletes the staging root and a crash leaves it hidden: either way the snapshots
//!   and branches a user can see are those before the call. A leftover staging root is
//!   deleted by the next receive.
//! - The writer slot is held from the first commit to the last, so no other writer sees
//!   or touches the staging root. A call on a thread whose own write transaction holds the
//!   slot is refused (`Error::WouldDeadlock`) before a byte of the stream is read.

use crate::format::records::{decode_types, identity_hex, RootKind, RootRecord};
use crate::format::stream::{
    bad, chain_crc, crc_from_bytes, decode_record_head, RecordKind, StreamHeader, Trailer,
    CRC_BYTES, HEADER_DISK_BYTES, RECORD_DISK_BYTES,
};
use crate::format::Ptr;
use crate::txn::names::check_name;
use crate::txn::roots::{new_root, MAIN};
use crate::txn::{Durability, Shared, WriteTxn, WriterGuard};
use crate::{Error, Result};
use std::io::Read;

/// The hidden root a receive builds its snapshot in.
const STAGING: &str = "\0receive";
/// Bytes of records (or of dirty pages) applied per commit of the staging root.
const CHUNK_BYTES: usize = 16 << 20;
/// What a record costs in memory besides its key and value (the insert buffer's bookkeeping),
/// so that a stream of tiny records also ends its chunks.
const RECORD_COST: usize = 32;

/// Receives one stream from `input`; returns the name of the snapshot it created.
pub(crate) fn receive(shared: &Shared, input: &mut dyn Read) -> Result<String> {
    // Refused before a byte is read, so that the caller can still hand the stream over once
    // its own write transaction is done.
    shared.refuse_own_writer()?;
    let mut reader = StreamReader::new(input);
    let header = reader.header()?;
    check_name(&header.name)?;
    let guard = stage(shared, &header)?;
    match apply(shared, guard, &mut reader).and_then(|guard| publish(shared, guard, &header)) {
        Ok(()) => Ok(header.name),
        Err(e) => {
            // Best effort: a leftover is hidden, and the next receive deletes it.
            let _ = discard(shared);
            Err(e)
        }
    }
}

/// One commit on `main`: deletes leftover staging roots, checks the name and the base, and
/// creates the staging root.
fn stage<'db>(shared: &'db Shared, header: &StreamHeader) -> Result<WriterGuard<'db>> {
    let mut tx = WriteTxn::begin_locked(shared, MAIN, shared.lock_writer()?)?;
    tx.edit_roots(|edit, w| {
        for name in edit.hidden(w)? {
            edit.delete(w, &name, RootKind::Branch)?;
        }
        if edit.lookup(w, &header.name)?.is_some() {
            return Err(Error::AlreadyExists(format!("snapshot {:?}", header.name)));
        }
        let Some(identity) = header.base else {
            let txn = w.txn().0;
            let record = new_root(RootKind::Branch, Ptr::default(), txn, txn);
            return edit.put(w, STAGING, record);
        };
        let base = edit.find_snapshot(w, identity)?.ok_or_else(|| {
            Error::NotFound(format!(
                "the base snapshot of this incremental stream (identity {})",
                identity_hex(identity)
            ))
        })?;
        edit.clone_root(w, STAGING, &base, RootKind::Branch)
    })?;
    tx.set_durability(Durability::Eventual);
    tx.commit_holding_lock()
}

/// Applies the records to the staging root, a chunk per commit, up to and including the
/// end record.
fn apply<'db>(
    shared: &'db Shared,
    mut guard: WriterGuard<'db>,
    reader: &mut StreamReader<'_>,
) -> Result<WriterGuard<'db>> {
    let mut table: Option<String> = None;
    // Bounded: every round reads at least one record header from the stream.
    loop {
        let mut tx = WriteTxn::begin_locked(shared, STAGING, guard)?;
        tx.set_durability(Durability::Eventual);
        let end = apply_chunk(&mut tx, reader, &mut table)?;
        guard = tx.commit_holding_lock()?;
        if end {
            return Ok(guard);
        }
    }
}

/// Applies records until a chunk is full (false) or the end record checked out (true).
fn apply_chunk(
    tx: &mut WriteTxn<'_>,
    reader: &mut StreamReader<'_>,
    table: &mut Option<String>,
) -> Result<bool> {
    let mut applied = 0usize;
    // Bounded: a chunk ends after CHUNK_BYTES of records or of dirty pages (removes copy
    // pages at once), or at the end record.
    while applied < CHUNK_BYTES && tx.dirty_bytes() < CHUNK_BYTES {
        let kind = reader.record()?;
        let key = &reader.key;
        let current = || {
            table
                .as_deref()
                .ok_or_else(|| bad("an entry before any table"))
        };
        match kind {
            RecordKind::Table | RecordKind::DropTable => {
                let name = std::str::from_utf8(key).map_err(|_| bad("table name not UTF-8"))?;
                check_name(name).map_err(|_| bad("invalid table name"))?;
                if kind == RecordKind::Table {
                    match decode_types(&reader.value, 0) {
                        Ok(None) => _ = tx.open_table(name)?,
                        Ok(Some(types)) => _ = tx.open_table_as(name, &types)?,
                        Err(_) => return Err(bad("bad type names in a table record")),
                    }
                    *table = Some(name.to_string());
                } else {
                    tx.delete_table(name)?;
                    *table = None;
                }
            }
            RecordKind::Put => tx.open_table(current()?)?.insert(key, &reader.value)?,
            RecordKind::Remove => {
                tx.open_table(current()?)?.remove(key)?;
            }
            RecordKind::End => return reader.check_end().map(|()| true),
        }
        applied += RECORD_COST + reader.key.len() + reader.value.len();
    }
    Ok(false)
}

/// One commit on `main` that renames the staging root into the received snapshot.
fn publish(shared: &Shared, guard: WriterGuard<'_>, header: &StreamHeader) -> Result<()> {
    let mut tx = WriteTxn::begin_locked(shared, MAIN, guard)?;
    tx.edit_roots(|edit, w| {
        edit.rename(w, STAGING, &header.name, |staged| RootRecord {
            kind: RootKind::Snapshot,
            created_unix_secs: header.created_unix_secs,
            identity: header.identity,
            ..staged
        })
    })?;
    tx.commit()
}

/// Deletes the staging root after a failed receive.
fn discard(shared: &Shared) -> Result<()> {
    let mut tx = WriteTxn::begin_locked(shared, MAIN, shared.lock_writer()?)?;
    tx.edit_roots(|edit, w| match edit.lookup(w, STAGING)? {
        Some(_) => edit.delete(w, STAGING, RootKind::Branch),
        None => Ok(()),
    })?;
    tx.commit()
}

/// Reads a stream exactly, checking each record and keeping the counts and the checksum
/// that the end record must match.
struct StreamReader<'r> {
    input: &'r mut dyn Read,
    /// The stream checksum so far (`chain_crc`).
    chain: u32,
    /// The stream checksum before the record last read.
    chain_before: u32,
    counts: [u64; 4],
    key: Vec<u8>,
    value: Vec<u8>,
}

impl<'r> StreamReader<'r> {
    fn new(input: &'r mut dyn Read) -> Self {
        StreamReader {
            input,
            chain: 0,
            chain_before: 0,
            counts: [0; 4],
            key: Vec::new(),
            value: Vec::new(),
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.input.read_exact(buf).map_err(truncated)
    }

    /// Reads `len` bytes into `into` (key or value), growing it only as bytes arrive.
    fn bytes(&mut self, len: usize, value: bool) -> Result<()> {
        let into = if value {
            &mut self.value
        } else {
            &mut self.key
        };
        into.clear();
        let got = (&mut *self.input).take(len as u64).read_to_end(into)?;
        if got != len {
            return Err(bad("truncated stream"));
        }
        Ok(())
    }

    fn header(&mut self) -> Result<StreamHeader> {
        let mut fixed = [0u8; HEADER_DISK_BYTES];
        self.exact(&mut fixed)?;
        let (disk, name_len) = StreamHeader::decode_fixed(&fixed)?;
        self.bytes(name_len, false)?;
        let mut crc = [0u8; CRC_BYTES];
        self.exact(&mut crc)?;
        let header = StreamHeader::decode_rest(&disk, &self.key, crc_from_bytes(crc))?;
        self.chain = chain_crc(0, &crc);
        Ok(header)
    }

    /// Reads the next record into `key` and `value` and checks its checksum.
    fn record(&mut self) -> Result<RecordKind> {
        self.chain_before = self.chain;
        let mut head = [0u8; RECORD_DISK_BYTES];
        self.exact(&mut head)?;
        let (kind, key_len, value_len) = decode_record_head(&head)?;
        self.bytes(key_len, false)?;
        self.bytes(value_len, true)?;
        let mut crc = [0u8; CRC_BYTES];
        self.exact(&mut crc)?;
        let mut want = crate::io::crc32c(&head);
        want = crate::io::crc32c_append(want, &self.key);
        want = crate::io::crc32c_append(want, &self.value);
        if want != crc_from_bytes(crc) {
            return Err(bad(format!("damaged {kind:?} record (checksum mismatch)")));
        }
        self.chain = chain_crc(self.chain, &crc);
        if let Some(counter) = kind.counter() {
            self.counts[counter] += 1;
        }
        Ok(kind)
    }

    /// Checks the end record just read against what came before it.
    fn check_end(&self) -> Result<()> {
        let trailer = Trailer::decode(&self.value);
        if trailer.counts() != self.counts {
            return Err(bad(format!(
                "the end record counts {:?} records, the stream held {:?}",
                trailer.counts(),
                self.counts
            )));
        }
        if trailer.stream_crc.get() != self.chain_before {
            return Err(bad("damaged stream (stream checksum mismatch)"));
        }
        Ok(())
    }
}

fn truncated(e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        bad("truncated stream")
    } else {
        Error::Io(e)
    }
}
