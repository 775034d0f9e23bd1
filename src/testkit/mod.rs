//! Test support, behind the `testkit` feature: an operation language over the whole public
//! API, a model of what those operations must produce, a runner that applies them to a
//! database on [`MemStorage`](crate::internals::io::MemStorage) and to the model side by
//! side, and the bodies of the fuzz targets (so that `fuzz/` and the stable replay test share
//! them).
//!
//! - [`ops`]: [`Op`] and its small domains (names, tables, keys and values collide often);
//!   [`ops_from_bytes`] decodes any bytes into a sequence, weighted towards write transactions.
//! - [`model`]: [`Model`], one `BTreeMap` of tables per named root, with the engine's rules
//!   for names, snapshots, branches, restore and deletion.
//! - [`run`](mod@run): [`run()`] / [`run_with`] apply a `Vec<Op>` and compare every result
//!   and every expected error; [`compare`] checks a whole database against a model.
//! - [`fuzz`]: the fuzz target bodies: [`fuzz::ops`], [`fuzz::open_bytes`],
//!   [`fuzz::node_decode`], [`fuzz::receive_bytes`] (in [`streams`]).
//!
//! Invariants: nothing here uses `unsafe`; a model mismatch is an `Err(String)` naming the op,
//! never a silent pass; an engine panic is left to propagate so that the caller (a test or
//! the fuzzer) sees it.

pub mod fuzz;
pub mod model;
pub mod ops;
pub mod run;
pub mod streams;

pub use arbitrary;
pub use model::{ErrKind, Kind, Model, Root, TableModel, Tables};
pub use ops::{
    ops_from_bytes, ops_from_bytes_at_most, BoundSpec, End, Key, Name, Op, RangeSpec, ReadOp,
    TableName, TxnOp, Value,
};
pub use run::{compare, compare_tables, run, run_with, show, Config};

use crate::format::meta::Meta;
use crate::format::META_SLOT_BYTES;

/// The meta an open of `storage` would choose (recovery, read-only: nothing is written), and
/// where it lies in bytes: its slot, or the meta page of the commit chain that holds it. For
/// tests that read or damage the newest meta of a file.
pub fn newest_meta(storage: &dyn crate::internals::io::Storage) -> crate::Result<(u64, Meta)> {
    let (state, _) = crate::db::recover::recover(storage, true, true)?;
    let at = match state.chain.last() {
        Some(&(page, _)) => page * state.meta.page_size as u64,
        None => state.slot as u64 * META_SLOT_BYTES as u64,
    };
    Ok((at, state.meta))
}

/// The meta pages of the commit chain an open of `storage` would follow to its state, oldest
/// first (recovery, read-only). Only their first `META_BYTES` bytes matter.
pub fn chain_pages(storage: &dyn crate::internals::io::Storage) -> crate::Result<Vec<u64>> {
    let (state, _) = crate::db::recover::recover(storage, true, true)?;
    Ok(state.chain.iter().map(|&(page, _)| page).collect())
}
