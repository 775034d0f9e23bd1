//! The last steps of the commit protocol (docs/format.md section 12), after every tree is
//! sealed: `write_pages_and_meta` (the pages, then the meta) and `sync_and_publish` (the
//! fsync, then the new state published).
//!
//! Invariants:
//! - Growth of the file is made durable before any page of the commit is written, and the
//!   growth fsync makes the base state the durable one.
//! - The meta goes to the slot that does not hold the last durable meta.
//! - From the meta write on, an error poisons the database: the in-memory state and the slot
//!   may disagree, and only a reopen recovers.
//! - A state is published only after its commit finished, and after its fsync when synced.

use super::roots::{main_record, SealedRoots};
use super::{Committed, Durability, Shared};
use crate::format::meta::Meta;
use crate::format::META_SLOT_BYTES;
use crate::pager::freemap::Persisted;
use crate::pager::{ReadPages, WritePager};
use crate::{Error, Result};
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What `write_pages_and_meta` wrote.
pub(super) struct Written {
    meta: Meta,
    slot: u8,
    persisted: Persisted,
}

/// Marks the database poisoned and passes the error on.
fn poison(shared: &Shared) -> impl Fn(Error) -> Error + '_ {
    move |e| {
        shared.poisoned.store(true, Ordering::Release);
        e
    }
}

/// The free map and all dirty pages, one write per contiguous run (growth of
/// the file made durable first), then the meta into the slot that does not hold the last
/// durable meta.
pub(super) fn write_pages_and_meta(
    shared: &Shared,
    base: &Committed,
    pager: WritePager,
    roots: &SealedRoots,
) -> Result<Written> {
    let txn = pager.txn().0;
    let storage = shared.storage.as_ref();
    let mut durable = shared.durable_mark();
    let mut grew = false;
    let moved = pager.moved_count() > 0;
    let (persisted, file_pages) = pager.write_out(storage, |len_bytes| {
        storage.set_len(len_bytes)?;
        super::sync_or_poison(shared)?;
        grew = true;
        Ok(())
    })?;
    if moved {
        // Moved pages keep their old births, so recovery would not verify them: they are
        // made durable before any meta points at them.
        super::sync_or_poison(shared)?;
    }
    if grew || moved {
        // The growth fsync (or the sync of moved pages) made every earlier commit durable:
        // the base state is now the durable one, so its slot must be kept and the other slot
        // takes this meta.
        durable = shared.mark_durable(base.meta.txn, base.slot);
    }
    let meta = Meta {
        page_size: shared.page_size as u32,
        txn,
        durable_txn: durable.txn,
        file_pages,
        roots: roots.roots,
        refcounts: roots.refs,
        release: roots.release.root,
        free_dir: persisted.free_dir,
        pending: persisted.pending,
        free_count: persisted.free_count,
        pending_count: persisted.pending_count,
        release_seq: roots.release.seq,
    };
    let slot = 1 - durable.slot;
    storage
        .write_at(slot as u64 * META_SLOT_BYTES as u64, &meta.encode())
        .map_err(|e| poison(shared)(Error::Io(e)))?;
    Ok(Written {
        meta,
        slot,
        persisted,
    })
}

/// One fsync for a durable commit (an Eventual one is synced anyway once
/// pages it cannot reuse pile up, so that the file does not grow without bound), then the
/// new state published to readers and the durable mark advanced. Returns the length the file
/// may be cut to when it is longer than this state and the state is durable: the cut that
/// ends the protocol (format.md section 12) is the caller's, once no view of its own reaches
/// past that length.
pub(super) fn sync_and_publish(
    shared: &Shared,
    durability: Durability,
    written: Written,
) -> Result<Option<u64>> {
    let Written {
        meta,
        slot,
        persisted,
    } = written;
    let pending_limit = (meta.file_pages / 16).max(1024);
    let synced = durability == Durability::Immediate || persisted.awaiting_durable > pending_limit;
    if synced {
        super::sync_or_poison(shared)?;
    }
    let len_bytes = meta.file_pages * shared.page_size as u64;
    let view = shared
        .storage
        .view(len_bytes)
        .map_err(|e| poison(shared)(Error::Io(e)))?;
    let pages = ReadPages::new(view, len_bytes, shared.page_size, shared.verify);
    let main = main_record(&pages, meta.roots).map_err(poison(shared))?;
    *shared.state.write() = Arc::new(Committed {
        meta,
        slot,
        pages,
        main,
        starts: persisted.starts,
    });
    if !synced {
        return Ok(None);
    }
    shared.mark_durable(meta.txn, slot);
    // The file is longer than this durable state when the commit shrank it, or when an
    // earlier cut had to wait for a reader.
    let longer = shared.storage.len().is_ok_and(|len| len > len_bytes);
    Ok(longer.then_some(len_bytes))
}
