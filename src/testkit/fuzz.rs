//! The bodies of the fuzz targets in `fuzz/`. They live here so that `tests/fuzz_corpus.rs`
//! replays every corpus file on stable without libFuzzer.
//!
//! Invariants: each body panics only on a real finding: a model mismatch ([`ops`]), or a panic
//! inside the engine (all three). Errors returned by the engine on bad input are expected
//! and ignored.

use super::ops::{ops_from_bytes_at_most, Op};
use super::run::{run_with, Config};
pub use super::streams::{fix_stream_checksums, receive_bytes};
use crate::format::meta::{Meta, MAGIC, META_BYTES};
use crate::format::node::{self, LeafValue, NodeView};
use crate::format::{self, META_SLOT_BYTES};
use crate::io::MemStorage;
use crate::{Database, Error};
use std::sync::Arc;

/// Ops against the model: the first byte picks the configuration, the rest decodes to a
/// `Vec<Op>` of at most [`FUZZ_MAX_OPS`], run in the runner's fast mode (`Config::fast`:
/// every result compared, the full `check()` at every reopen and crash and at the end).
/// Panics with the mismatch and the ops when the engine disagrees with the model.
pub fn ops(data: &[u8]) {
    let Some((config, ops)) = decode_ops(data) else {
        return;
    };
    if let Err(e) = run_with(config, &ops) {
        panic!("model mismatch with {config:?}: {e}\nops: {ops:#?}");
    }
}

/// The ops a fuzz input decodes to (for printing a reproducer).
pub fn decode_ops(data: &[u8]) -> Option<(Config, Vec<Op>)> {
    let (&first, rest) = data.split_first()?;
    let ops = ops_from_bytes_at_most(rest, FUZZ_MAX_OPS);
    let config = Config {
        fast: true,
        ..Config::from_byte(first)
    };
    Some((config, ops))
}

/// Most operations one `ops` input runs: short sequences keep a run near a millisecond, so
/// the fuzzer tries many more of them (reopens and crashes still come often: they are 2 in
/// 20 of the ops decoded).
pub const FUZZ_MAX_OPS: usize = 64;

/// Most entries read from one table by [`read_all`] (a damaged file may hold a DAG whose
/// walk is finite but huge).
pub const MAX_ITEMS: usize = 100_000;

/// Reads everything a database holds, whatever its state: every snapshot and branch, every
/// table from both ends, a `get` of each key, `len`, `stats` and `check`. Returns the errors
/// met (a damaged file gives some; a sound one none).
pub fn read_all(db: &Database) -> Vec<Error> {
    let mut errors = Vec::new();
    for name in root_names(db, &mut errors) {
        match db.begin_read_at(&name) {
            Ok(rx) => read_root(&rx, &mut errors),
            Err(e) => errors.push(e),
        }
    }
    if let Err(e) = db.stats() {
        errors.push(e);
    }
    if let Err(e) = db.check() {
        errors.push(e);
    }
    errors
}

/// `main` and every snapshot and branch the listings give.
fn root_names(db: &Database, errors: &mut Vec<Error>) -> Vec<String> {
    let mut names = vec![crate::txn::roots::MAIN.to_string()];
    for list in [db.snapshots(), db.branches()] {
        match list {
            Ok(infos) => names.extend(infos.into_iter().map(|i| i.name)),
            Err(e) => errors.push(e),
        }
    }
    names.sort();
    names.dedup();
    names
}

/// Every table of one view, read whole.
fn read_root(rx: &crate::ReadTxn<'_>, errors: &mut Vec<Error>) {
    let tables = match rx.table_names() {
        Ok(t) => t,
        Err(e) => return errors.push(e),
    };
    for t in &tables {
        match rx.open_table(t) {
            Ok(table) => read_table(&table, errors),
            Err(e) => errors.push(e),
        }
    }
}

/// A table from both ends, a `get` of each key, and a range walked from both ends.
fn read_table(table: &crate::Table<'_>, errors: &mut Vec<Error>) {
    let _ = table.len();
    let mut keys = Vec::new();
    match table.iter() {
        Ok(it) => walk(it.map(|item| item.map(|(k, _)| keys.push(k))), errors),
        Err(e) => errors.push(e),
    }
    if let Ok(it) = table.iter() {
        walk(it.rev().map(|item| item.map(drop)), errors);
    }
    for k in keys.iter().take(1000) {
        if let Err(e) = table.get(k) {
            errors.push(e);
        }
    }
    if let (Some(first), Some(last)) = (keys.first(), keys.last()) {
        if let Ok(mut it) = table.range(*first..*last) {
            let mut step = 0;
            let zigzag = std::iter::from_fn(|| {
                step += 1;
                if step % 3 == 1 {
                    it.next_back()
                } else {
                    it.next()
                }
            });
            walk(zigzag.map(|item| item.map(drop)), errors);
        }
    }
}

/// Runs `items` up to `MAX_ITEMS`, stopping at the first error, which it keeps.
fn walk(items: impl Iterator<Item = Result<(), Error>>, errors: &mut Vec<Error>) {
    for item in items.take(MAX_ITEMS) {
        if let Err(e) = item {
            errors.push(e);
            break;
        }
    }
}

/// Writes to a database whatever its state: an insert into `main` and a snapshot. Returns the
/// first error.
pub fn write_some(db: &Database) -> Result<(), Error> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table("fuzz")?;
        t.insert(b"fuzz-key", &[7u8; 100])?;
        t.insert(b"fuzz-big", &[9u8; 5000])?;
        t.remove(b"k000")?;
    }
    tx.commit()?;
    db.create_snapshot("fuzz-snap")?;
    Ok(())
}

/// Opens `bytes` as a database file and, when it opens, reads it in full, writes to it,
/// checks it and reopens what it wrote. Never panics on any input (that is what is tested).
pub fn exercise_bytes(bytes: Vec<u8>, verify_reads: bool) {
    let storage = Arc::new(MemStorage::from_bytes(bytes));
    let db = match Database::options()
        .verify_reads(verify_reads)
        .create(false)
        .open_storage(storage.clone())
    {
        Ok(db) => db,
        Err(_) => return,
    };
    read_all(&db);
    if write_some(&db).is_ok() {
        read_all(&db);
    }
    drop(db);
    if let Ok(db) = Database::options()
        .verify_reads(verify_reads)
        .create(false)
        .open_storage(Arc::new(MemStorage::from_bytes(storage.to_bytes())))
    {
        read_all(&db);
    }
}

/// Rewrites the checksum of both meta slots, and of every meta page (a 4 KiB-aligned piece
/// that starts with the magic), so that damage to the meta's fields gets past the checksum
/// and reaches the code that trusts them.
pub fn fix_meta_checksums(bytes: &mut [u8]) {
    for slot in 0..2 {
        let at = slot * META_SLOT_BYTES;
        if bytes.len() >= at + META_BYTES {
            Meta::reseal(&mut bytes[at..]);
        }
    }
    for page in bytes.chunks_mut(4096).skip(2) {
        if page.len() >= META_BYTES && page.starts_with(&MAGIC) {
            Meta::reseal(page);
        }
    }
}

/// Arbitrary bytes as a database file: opened as they are with verified reads, then with
/// both meta checksums made valid and unverified reads (so mutations reach deeper). Must
/// never panic, hang or allocate without bound.
pub fn open_bytes(data: &[u8]) {
    exercise_bytes(data.to_vec(), true);
    if data.len() >= META_BYTES {
        let mut fixed = data.to_vec();
        fix_meta_checksums(&mut fixed);
        exercise_bytes(fixed, false);
    }
}

/// Arbitrary bytes as a node page: every accessor of [`NodeView`], then [`node::validate`];
/// a page that validates is edited in place (an insert, a remove) and must validate again.
pub fn node_decode(data: &[u8]) {
    let id = 7;
    if let Ok(view) = NodeView::new(data, id) {
        let _ = (view.count(), view.is_leaf(), view.level(), view.id());
        let _ = view.used_bytes();
        let mut last_key: Option<&[u8]> = None;
        for i in 0..view.count() {
            let key = view.key(i);
            let _ = view.entry(i);
            if view.is_leaf() {
                if let Ok(LeafValue::Overflow { ptr, len }) = view.value(i) {
                    let _ = (ptr.is_null(), len);
                }
            } else {
                let _ = view.child(i);
            }
            if let Ok(k) = key {
                let _ = view.search(k);
                if !view.is_leaf() {
                    let _ = view.child_index(k);
                }
                last_key = Some(k);
            }
        }
        let probe = last_key.unwrap_or(b"probe");
        let _ = view.search(probe);
        let _ = view.search(b"");
        if !view.is_leaf() {
            let _ = view.child_index(probe);
            let _ = view.child_index(b"");
        }
    }
    if node::validate(data, id).is_ok() {
        edit_validated(data, id);
    }
}

/// In-place edits on a page that validated: they must not panic and must keep it valid.
fn edit_validated(data: &[u8], id: u64) {
    let mut page = data.to_vec();
    let view = NodeView::new(&page, id).expect("validated");
    let (count, leaf) = (view.count(), view.is_leaf());
    if count > 1 {
        node::remove(&mut page, id, count / 2);
        if let Err(e) = node::validate(&page, id) {
            panic!("a validated page no longer validates after remove: {e}");
        }
    }
    let key = b"edit-key";
    let inserted = if leaf {
        let value = [5u8; 10];
        let len = node::leaf_inline_bytes(key.len(), value.len()) - node::SLOT_BYTES;
        node::insert(&mut page, id, 0, len, |out| {
            node::write_leaf_entry(out, key, LeafValue::Inline(&value))
        })
    } else {
        let count = NodeView::new(&page, id).expect("still valid").count();
        let len = node::branch_entry_bytes(key.len()) - node::SLOT_BYTES;
        node::insert(&mut page, id, count, len, |out| {
            node::write_branch_entry(out, key, format::Ptr::default())
        })
    };
    if inserted {
        if let Err(e) = node::validate(&page, id) {
            panic!("a validated page no longer validates after insert: {e}");
        }
    }
}
