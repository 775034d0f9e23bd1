//! The last steps of the commit protocol (docs/format.md section 12), after every tree is
//! sealed: `write_pages_and_meta` (the pages, then the meta) and `sync_and_publish` (the
//! fsync, then the new state published).
//!
//! A commit's meta goes either to a meta slot (an *anchor*) or to the meta page the last
//! meta named (a *link* of the commit chain): a link goes out in the same write as the hot
//! pages that follow its page, so a small durable commit is two writes and one fsync.
//!
//! Invariants:
//! - Growth of the file is made durable before any page of the commit is written, and the
//!   growth fsync makes the base state the durable one.
//! - An anchor goes to the slot that does not hold the anchor of the last durable state; a
//!   link leaves both slots alone, and its state's `slot` is its chain's anchor's.
//! - A chain holds at most [`MAX_CHAIN`] links; the anchor that ends one frees its meta
//!   pages and the unused reserved page (pending until that anchor is durable, since
//!   recovery may still follow them until then).
//! - A commit that moves pages or works under a ceiling (a compaction) is an anchor and
//!   reserves no page.
//! - From the meta write on, an error poisons the database: the in-memory state and the slot
//!   may disagree, and only a reopen recovers.
//! - A state is published only after its commit finished, and after its fsync when synced.

use super::roots::{main_record, SealedRoots};
use super::{Committed, Durability, Shared};
use crate::format::meta::Meta;
use crate::format::META_SLOT_BYTES;
use crate::pager::freemap::Persisted;
use crate::pager::{LastWrite, MetaWrite, ReadPages, WritePager};
use crate::{Error, Result};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// The most links in one commit chain: recovery reads and verifies at most this many meta
/// pages past a slot, and an anchor every this many commits frees the chain's pages.
pub const MAX_CHAIN: usize = 16;

/// What `write_pages_and_meta` wrote.
pub(super) struct Written {
    meta: Meta,
    slot: u8,
    persisted: Persisted,
    chain: Arc<Vec<(u64, u64)>>,
}

/// Marks the database poisoned and passes the error on.
fn poison(shared: &Shared) -> impl Fn(Error) -> Error + '_ {
    move |e| {
        shared.poisoned.store(true, Ordering::Release);
        e
    }
}

/// The free map and all dirty pages, one write per contiguous run (growth of the file made
/// durable first), and the meta: into the page the base named (a link), or into the slot
/// that does not hold the last durable anchor. Before an fsync nothing orders the writes;
/// recovery verifies every page born since the last durable commit.
pub(super) fn write_pages_and_meta(
    shared: &Shared,
    base: &Committed,
    mut pager: WritePager,
    roots: &SealedRoots,
) -> Result<Written> {
    let storage = shared.storage.as_ref();
    let txn = pager.txn().0;
    let moved = pager.moved_count() > 0;
    let held = moved || pager.free_map().has_ceiling();
    let link = link_or_anchor(&mut pager, base, held)?;
    let grew = Cell::new(false);
    let mut placed = None;
    let grow = |len_bytes| {
        storage.set_len(len_bytes)?;
        super::sync_or_poison(shared)?;
        grew.set(true);
        Ok(())
    };
    let meta_out = |persisted: &Persisted, file_pages| {
        if moved {
            // Moved pages keep their old births, so recovery would not verify them: they
            // are made durable before any meta points at them, so the meta waits.
            return Ok(None);
        }
        let facts = MetaFacts {
            base,
            roots,
            link,
            synced: grew.get(),
        };
        let (meta, slot) = place_meta(shared, txn, persisted, file_pages, &facts);
        placed = Some((meta, slot));
        Ok(Some(meta_write(&meta, slot, link)))
    };
    let out = pager.write_out(storage, !held, grow, meta_out)?;
    let (meta, slot, last) = match (placed, out.last_write) {
        (Some((meta, slot)), Some(last)) => (meta, slot, last),
        _ => {
            // Moved pages: synced before the meta, which goes to a slot.
            super::sync_or_poison(shared)?;
            let facts = MetaFacts {
                base,
                roots,
                link,
                synced: true,
            };
            let (meta, slot) = place_meta(shared, txn, &out.persisted, out.file_pages, &facts);
            (meta, slot, slot_write(&meta, slot))
        }
    };
    // From here on a failure poisons: the meta may have reached its place.
    storage
        .write_at(last.offset, &last.bytes)
        .map_err(|e| poison(shared)(Error::Io(e)))?;
    assert_eq!(meta.txn, txn);
    let chain = match link {
        Some(page) => Arc::new(base.chain.iter().copied().chain([(page, txn)]).collect()),
        None => Arc::default(),
    };
    Ok(Written {
        meta,
        slot,
        persisted: out.persisted,
        chain,
    })
}

/// The meta page this commit writes its meta to (a link), or None (an anchor, which frees
/// the chain's pages): see the module invariants. `held`: it moves pages or works under a
/// ceiling.
fn link_or_anchor(pager: &mut WritePager, base: &Committed, held: bool) -> Result<Option<u64>> {
    let page = base.meta.next_meta;
    let link = !held
        && page != 0
        && base.chain.len() < MAX_CHAIN
        && !chain_blocks_shrink(pager, base, page)?;
    if link {
        return Ok(Some(page));
    }
    free_chain(pager, base)?;
    Ok(None)
}

/// What decides a commit's meta besides the free map.
struct MetaFacts<'a> {
    base: &'a Committed,
    roots: &'a SealedRoots,
    /// The meta page this commit writes (None: an anchor).
    link: Option<u64>,
    /// An fsync since the base state was published (the growth fsync, or the sync of moved
    /// pages) made every earlier commit durable.
    synced: bool,
}

/// Whether the chain's pages (and `reserved`) keep this commit from cutting the free tail.
fn chain_blocks_shrink(pager: &mut WritePager, base: &Committed, reserved: u64) -> Result<bool> {
    let chain: Vec<u64> = base
        .chain
        .iter()
        .map(|&(page, _)| page)
        .chain([reserved])
        .collect();
    pager.free_map().chain_blocks_shrink(&base.pages, &chain)
}

/// Frees the meta pages of the chain this anchor ends, and the page the base reserved.
fn free_chain(pager: &mut WritePager, base: &Committed) -> Result<()> {
    let reserved = (base.meta.next_meta != 0).then_some((base.meta.next_meta, base.meta.txn));
    for (page, born) in base.chain.iter().copied().chain(reserved) {
        pager.free_meta_page(page, born)?;
    }
    Ok(())
}

/// The meta of this commit and the slot of its anchor. When an fsync made the base state
/// durable, its anchor's slot must be kept, so an anchor takes the other one.
fn place_meta(
    shared: &Shared,
    txn: u64,
    persisted: &Persisted,
    file_pages: u64,
    facts: &MetaFacts,
) -> (Meta, u8) {
    let base = facts.base;
    let durable = if facts.synced {
        shared.mark_durable(base.meta.txn, base.slot)
    } else {
        shared.durable_mark()
    };
    let roots = facts.roots;
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
        next_meta: persisted.next_meta,
        prev_checksum: facts.link.map_or(0, |_| base.meta.checksum()),
    };
    let slot = match facts.link {
        Some(_) => base.slot,
        None => 1 - durable.slot,
    };
    (meta, slot)
}

/// Where `meta` goes: the meta page `link`, or `slot`.
fn meta_write(meta: &Meta, slot: u8, link: Option<u64>) -> MetaWrite {
    match link {
        Some(id) => MetaWrite::Page {
            id,
            meta: meta.encode(),
        },
        None => MetaWrite::Slot(slot_write(meta, slot)),
    }
}

/// The write of `meta` into `slot`.
fn slot_write(meta: &Meta, slot: u8) -> LastWrite {
    LastWrite {
        offset: slot as u64 * META_SLOT_BYTES as u64,
        bytes: meta.encode().to_vec(),
    }
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
        chain,
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
        chain,
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
