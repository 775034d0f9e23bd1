//! `send`: a snapshot as a stream (docs/stream.md), whole or as its changes since an older
//! snapshot, in the manner of `zfs send [-i]`.
//!
//! Invariants:
//! - Everything is read from one committed state, pinned by a read transaction, so writers
//!   go on and the stream is one consistent snapshot.
//! - Only snapshots are sent: a branch changes under its identity, so a stream of it could
//!   not name what an incremental stream applies on top of.
//! - A full stream lists every table (empty ones too), each followed by all its entries in
//!   key order. An incremental stream costs O(changes × depth) pages: it is the diff of the
//!   two catalogs and of each changed table, except that a table whose type names changed
//!   (created again) is dropped and sent whole.
//! - A table record carries the table's type names (none for a byte-API table).
//! - The stream checksum chains the header's and every record's checksum, in order; the end
//!   record carries it.

use crate::btree::diff::TreeDiff;
use crate::btree::{value_bytes, Bound, Cursor};
use crate::format::records::{encode_types, RootKind, RootRecord, TableRecord};
use crate::format::stream::{
    chain_crc, crc_bytes, record_head, RecordKind, StreamHeader, Trailer, CRC_BYTES,
};
use crate::format::Ptr;
use crate::pager::ReadPages;
use crate::txn::{roots, Shared, TableChanges};
use crate::{Error, Result};
use std::io::Write;

/// Writes the stream of snapshot `name` (the changes since snapshot `base`, when given).
pub(crate) fn send(
    shared: &Shared,
    name: &str,
    base: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    let rx = shared.begin_read();
    let state = rx.state();
    let record = snapshot(&state.pages, state.meta.roots, name)?;
    let base = match base {
        Some(b) => Some(snapshot(&state.pages, state.meta.roots, b)?),
        None => None,
    };
    let header = StreamHeader {
        name: name.to_string(),
        identity: record.identity,
        base: base.map(|b| b.identity),
        txn: record.txn,
        created_unix_secs: record.created_unix_secs,
    };
    let mut w = StreamWriter::new(out);
    w.header(&header)?;
    match base {
        None => send_full(&mut w, &state.pages, record.catalog)?,
        Some(b) => send_changes(&mut w, &state.pages, b.catalog, record.catalog)?,
    }
    w.finish()
}

fn snapshot(pages: &ReadPages, roots_root: Ptr, name: &str) -> Result<RootRecord> {
    crate::txn::names::check_name(name)?;
    let record = roots::lookup(pages, roots_root, name)?
        .ok_or_else(|| Error::NotFound(format!("snapshot {name:?}")))?;
    if record.kind != RootKind::Snapshot {
        return Err(Error::InvalidArgument(format!(
            "{name} is a branch; send takes a snapshot (create one of the branch first)"
        )));
    }
    Ok(record)
}

fn send_full(w: &mut StreamWriter<'_>, pages: &ReadPages, catalog: Ptr) -> Result<()> {
    let all = || (Bound::Unbounded, Bound::Unbounded);
    let (low, high) = all();
    for item in Cursor::new(pages, catalog, low, high) {
        let (name, value) = item?;
        let table = TableRecord::decode(value, catalog.page.0)?;
        w.record(RecordKind::Table, name, &encode_types(table.types.as_ref()))?;
        let (low, high) = all();
        for entry in Cursor::new(pages, table.root, low, high) {
            let (key, value) = entry?;
            w.record(RecordKind::Put, key, value)?;
        }
    }
    Ok(())
}

fn send_changes(w: &mut StreamWriter<'_>, pages: &ReadPages, base: Ptr, now: Ptr) -> Result<()> {
    for change in TableChanges::new((pages, base), (pages, now)) {
        let change = change?;
        let Some(new) = change.new else {
            w.record(RecordKind::DropTable, change.name.as_bytes(), &[])?;
            continue;
        };
        // A table created again with other type names is dropped and sent whole.
        let retyped = change
            .old
            .as_ref()
            .is_some_and(|old| old.types != new.types);
        let old = change.old.filter(|_| !retyped);
        if retyped {
            w.record(RecordKind::DropTable, change.name.as_bytes(), &[])?;
        }
        let types = encode_types(new.types.as_ref());
        w.record(RecordKind::Table, change.name.as_bytes(), &types)?;
        let old_root = old.map_or(Ptr::default(), |r| r.root);
        for diff in TreeDiff::new(pages, old_root, pages, new.root) {
            let diff = diff?;
            match diff.new {
                Some(value) => w.record(RecordKind::Put, diff.key, value_bytes(pages, value)?)?,
                None => w.record(RecordKind::Remove, diff.key, &[])?,
            }
        }
    }
    Ok(())
}

/// Buffers the stream, chains the checksums and counts the records.
struct StreamWriter<'w> {
    out: &'w mut dyn Write,
    /// Bytes not yet written to `out`; a record is assembled in place here, so that it is
    /// checksummed in one call and copied once.
    buf: Vec<u8>,
    /// The stream checksum so far: a CRC-32C over the header's and each record's checksum.
    chain: u32,
    counts: [u64; 4],
}

/// The buffer is written out once it holds this much.
const BUF_BYTES: usize = 256 << 10;
/// Larger values are checksummed and written where they are, not copied into the buffer.
const SMALL_VALUE: usize = 4096;

impl<'w> StreamWriter<'w> {
    fn new(out: &'w mut dyn Write) -> Self {
        StreamWriter {
            out,
            buf: Vec::with_capacity(BUF_BYTES + 2 * SMALL_VALUE),
            chain: 0,
            counts: [0; 4],
        }
    }

    fn header(&mut self, header: &StreamHeader) -> Result<()> {
        let bytes = header.encode();
        self.chain = chain_crc(0, &bytes[bytes.len() - CRC_BYTES..]);
        self.buf.extend_from_slice(&bytes);
        Ok(())
    }

    fn record(&mut self, kind: RecordKind, key: &[u8], value: &[u8]) -> Result<()> {
        let start = self.buf.len();
        self.buf
            .extend_from_slice(&record_head(kind, key.len(), value.len()));
        self.buf.extend_from_slice(key);
        let crc = if value.len() <= SMALL_VALUE {
            self.buf.extend_from_slice(value);
            crate::io::crc32c(&self.buf[start..])
        } else {
            let crc = crate::io::crc32c(&self.buf[start..]);
            self.drain()?;
            self.out.write_all(value)?;
            crate::io::crc32c_append(crc, value)
        };
        let crc = crc_bytes(crc);
        self.buf.extend_from_slice(&crc);
        self.chain = chain_crc(self.chain, &crc);
        if let Some(counter) = kind.counter() {
            self.counts[counter] += 1;
        }
        if self.buf.len() >= BUF_BYTES {
            self.drain()?;
        }
        Ok(())
    }

    fn drain(&mut self) -> Result<()> {
        self.out.write_all(&self.buf)?;
        self.buf.clear();
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        let trailer = Trailer::new(self.counts, self.chain);
        self.record(RecordKind::End, &[], &trailer.encode())?;
        self.drain()?;
        self.out.flush()?;
        Ok(())
    }
}
