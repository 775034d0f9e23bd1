//! The `receive_bytes` fuzz target: arbitrary bytes received as send streams.
//!
//! Invariants: the body panics only on a real finding (a refused stream that changed what a
//! user sees, a `check` that fails, a received snapshot that does not read back, or a panic
//! inside the engine); errors for bad streams are expected. [`fix_stream_checksums`] only
//! rewrites checksum and count fields, at positions it found by the record heads' own
//! lengths, and stops at the first head that does not decode.

use crate::format::stream::{
    chain_crc, crc_bytes, decode_record_head, RecordKind, StreamHeader, Trailer, CRC_BYTES,
    HEADER_DISK_BYTES, RECORD_DISK_BYTES, TRAILER_BYTES,
};
use crate::io::MemStorage;
use crate::Database;
use std::sync::Arc;

/// Arbitrary bytes as send streams, received one after another (at most four) into a new
/// database, as they are and then with every checksum made valid (so that mutations reach
/// past the checksums: odd names, times, kinds and orders of records). A real full stream
/// followed by mutated incremental ones reaches the incremental path.
pub fn receive_bytes(data: &[u8]) {
    receive_all(data);
    let mut fixed = data.to_vec();
    fix_stream_checksums(&mut fixed);
    if fixed != data {
        receive_all(&fixed);
    }
}

/// Receives up to four streams from `data` into a new database. A refused stream must leave
/// the visible snapshots and branches as they were; after every receive the database must
/// pass `check`, and a received snapshot must read back whole.
fn receive_all(data: &[u8]) {
    let db = Database::options()
        .open_storage(Arc::new(MemStorage::new()))
        .expect("a new database opens");
    let visible = |db: &Database| {
        let snapshots = db.snapshots().expect("listing snapshots");
        let branches = db.branches().expect("listing branches");
        let names = snapshots.into_iter().chain(branches).map(|s| s.name);
        names.collect::<Vec<String>>()
    };
    let mut input = data;
    for _ in 0..4 {
        let before = visible(&db);
        let result = db.receive(&mut input);
        db.check().expect("check passes after a receive");
        let Ok(name) = result else {
            assert_eq!(visible(&db), before, "a refused stream changed the roots");
            return;
        };
        let rx = db
            .begin_read_at(&name)
            .expect("the received snapshot opens");
        for table in rx.table_names().expect("tables") {
            let t = rx.open_table(&table).expect("a listed table opens");
            assert_eq!(
                t.iter().expect("iter").count() as u64,
                t.len().expect("len")
            );
        }
    }
}

/// Makes every checksum of the concatenated streams in `bytes` valid: each header's, each
/// record's, and each end record's counts and chained checksum.
pub fn fix_stream_checksums(bytes: &mut [u8]) {
    let mut at = 0;
    // Bounded: every round moves `at` forward past a header, or stops.
    while let Some(next) = fix_one_stream(bytes, at) {
        at = next;
    }
}

/// Fixes the stream that starts at `at`; where the next one starts, if this one ended.
fn fix_one_stream(bytes: &mut [u8], at: usize) -> Option<usize> {
    let fixed_len = at.checked_add(HEADER_DISK_BYTES)?;
    let fixed: [u8; HEADER_DISK_BYTES] = bytes.get(at..fixed_len)?.try_into().ok()?;
    let (_, name_len) = StreamHeader::decode_fixed(&fixed).ok()?;
    let crc_at = fixed_len.checked_add(name_len)?;
    let crc = crc_bytes(crate::format::checksum(bytes.get(at..crc_at)?));
    bytes
        .get_mut(crc_at..crc_at + CRC_BYTES)?
        .copy_from_slice(&crc);
    let mut chain = chain_crc(0, &crc);
    let mut counts = [0u64; 4];
    let mut pos = crc_at + CRC_BYTES;
    // Bounded: every round moves `pos` forward past a record, or stops.
    loop {
        let head: [u8; RECORD_DISK_BYTES] =
            bytes.get(pos..pos + RECORD_DISK_BYTES)?.try_into().ok()?;
        let (kind, key_len, value_len) = decode_record_head(&head).ok()?;
        let body = pos + RECORD_DISK_BYTES + key_len;
        let end = body.checked_add(value_len)?;
        if kind == RecordKind::End && value_len == TRAILER_BYTES {
            let trailer = Trailer::new(counts, chain).encode();
            bytes.get_mut(body..end)?.copy_from_slice(&trailer);
        }
        let crc = crc_bytes(crate::format::checksum(bytes.get(pos..end)?));
        bytes.get_mut(end..end + CRC_BYTES)?.copy_from_slice(&crc);
        chain = chain_crc(chain, &crc);
        if let Some(counter) = kind.counter() {
            counts[counter] += 1;
        }
        pos = end + CRC_BYTES;
        if kind == RecordKind::End {
            return Some(pos);
        }
    }
}
