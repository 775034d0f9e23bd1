//! `stats`: sizes and counts of the newest state, in pages and in bytes, without a full check.
//!
//! Invariants:
//! - Everything is read from one pinned state (a registered reader), so no commit reuses the
//!   pages being read, and the counts describe one commit.
//! - `live_bytes` is the page set `check` calls tree and system pages: every page reachable
//!   from the meta's three system trees, each counted once. It is walked by `pages::PageWalk`
//!   (the listings' walk too), whose visited set bounds it; overflow runs are range-checked
//!   against the state's file, never read.
//! - `pinned_bytes` applies the reuse rule of `pager::freemap` (`freed_by ≤ oldest reader`
//!   and `freed_by ≤ durable or born > durable`) to the pending chain, read through
//!   `pager::freemap::load_chains`, which bounds it. The stats call's own pin is left out of
//!   the oldest reader; it pins nothing anyway, being on the newest state, whose pending
//!   entries were all freed at or before its txn.
//! - Byte counts multiply with saturation, so a damaged meta cannot make them overflow.

use super::pages::PageWalk;
use crate::btree;
use crate::btree::traverse::TreeKind;
use crate::format::meta::Meta;
use crate::format::records::TableRecord;
use crate::pager::{freemap, PageSource, ReadPages};
use crate::txn::{Committed, Shared};
use crate::Result;

/// One table in [`Stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// Its name.
    pub name: String,
    /// Entries.
    pub len: u64,
    /// Tree depth (0 when empty).
    pub depth: u8,
}

/// Sizes and counts of the newest committed state, without a full check, from
/// [`Database::stats`](crate::Database::stats).
///
/// The page counts and `free_bytes`/`pending_bytes` come from the file's header (its meta)
/// and cost nothing; `live_bytes` walks every reachable page once and `pinned_bytes` reads
/// the list of pending pages, so a call costs O(pages reachable + pending pages). The key and value bytes of the tables
/// are not reported: a table record holds only its entry count, so they would take a walk of
/// every leaf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The id of the newest commit (see [`WriteTxn::txn_id`](crate::WriteTxn::txn_id)).
    pub txn: u64,
    /// Bytes of the file, as the storage reports its length (may exceed `total_pages`
    /// pages while a commit is growing the file).
    pub file_bytes: u64,
    /// The page size.
    pub page_size: usize,
    /// Pages in the file, as the meta records it.
    pub total_pages: u64,
    /// Pages in use (neither free nor pending): live pages, the meta region and the free
    /// map's own pages.
    pub used_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages waiting to be freed.
    pub pending_pages: u64,
    /// Bytes of the live pages: every page reachable from the meta's three system trees,
    /// each counted once however many parents share it, times the page size. That is the
    /// pages of the roots tree, the reference-count tree and the release queue themselves;
    /// through the roots tree, every snapshot's and branch's catalog, table nodes and
    /// overflow runs (`main` included); and through the release queue, the pages of deleted
    /// roots and tables not yet released. The meta region and the free map's bitmap,
    /// directory and pending-chain pages are not live bytes. This is exactly
    /// `(tree_pages + system_pages) × page size` of [`CheckReport`](crate::CheckReport).
    /// Computing it walks every reachable page once: O(pages reachable).
    pub live_bytes: u64,
    /// `free_pages × page size`: bytes a commit may reuse now.
    pub free_bytes: u64,
    /// `pending_pages × page size`: bytes freed by commits but not yet reusable (an open
    /// reader or the last durable commit may still reach them), or reusable but not yet moved
    /// to the free bitmaps (the next write transaction moves them).
    pub pending_bytes: u64,
    /// Of `pending_bytes`, the bytes that wait only for the oldest open reader: pending pages
    /// freed by a txn newer than `oldest_reader_txn`, which the durability rule alone would
    /// let a commit reuse (freed at or before the last durable txn, or born after it). 0 when
    /// no reader is open. They become reusable at the first write transaction that begins
    /// after that reader ends.
    pub pinned_bytes: u64,
    /// The txn of the oldest open read transaction (snapshot and branch listings, `check`,
    /// backups and sends register as readers too), or None when none is open. The pin that
    /// `stats` itself holds while it reads is not counted.
    pub oldest_reader_txn: Option<u64>,
    /// Every table of `main`.
    pub tables: Vec<TableStats>,
}

/// Counters of the newest state.
pub fn stats(shared: &Shared) -> Result<Stats> {
    let pin = shared.begin_read();
    let state = pin.state();
    let meta = state.meta;
    let pages = &state.pages;
    let page_size = pages.page_size();
    let bytes = |pages: u64| pages.saturating_mul(page_size as u64);
    let oldest_reader_txn = shared.oldest_reader_except(meta.txn);
    let durable = shared.durable_mark().txn;
    let pinned = match oldest_reader_txn {
        Some(oldest) => pinned_pages(state, oldest, durable)?,
        None => 0,
    };
    Ok(Stats {
        txn: meta.txn,
        file_bytes: shared.file_len()?,
        page_size,
        total_pages: meta.file_pages,
        used_pages: meta
            .file_pages
            .saturating_sub(meta.free_count)
            .saturating_sub(meta.pending_count),
        free_pages: meta.free_count,
        pending_pages: meta.pending_count,
        live_bytes: bytes(live_pages(pages, &meta)?),
        free_bytes: bytes(meta.free_count),
        pending_bytes: bytes(meta.pending_count),
        pinned_bytes: bytes(pinned),
        oldest_reader_txn,
        tables: main_tables(state)?,
    })
}

/// Each table of `main`, from its catalog (no table is read beyond its root).
fn main_tables(state: &Committed) -> Result<Vec<TableStats>> {
    let pages = &state.pages;
    let mut tables = Vec::new();
    let catalog = state.main.catalog;
    if catalog.is_null() {
        return Ok(tables);
    }
    let cursor = btree::Cursor::new(
        pages,
        catalog,
        btree::Bound::Unbounded,
        btree::Bound::Unbounded,
    );
    for item in cursor {
        let (name, value) = item?;
        let record = TableRecord::decode(value, catalog.page.0)?;
        let depth = btree::root_level(pages, record.root)?.map_or(0, |l| l + 1);
        tables.push(TableStats {
            name: String::from_utf8_lossy(name).into_owned(),
            len: record.len,
            depth,
        });
    }
    Ok(tables)
}

/// Pending pages that only a reader at `oldest` keeps from reuse: freed after it, and
/// allowed by the durability rule (freed by a durable txn, or born after the last durable
/// one, so the durable root cannot reach them).
fn pinned_pages(state: &Committed, oldest: u64, durable: u64) -> Result<u64> {
    let meta = state.meta;
    let loaded = freemap::load_chains(&state.pages, meta.free_dir, meta.pending, false)?;
    let pinned = loaded
        .pending
        .iter()
        .filter(|p| p.freed_by > oldest && (p.freed_by <= durable || p.born > durable))
        .count();
    Ok(pinned as u64)
}

/// Pages reachable from the three system trees of `meta`, each counted once.
fn live_pages(pages: &ReadPages, meta: &Meta) -> Result<u64> {
    let mut walk = PageWalk::new(pages, |_| Ok(true));
    walk.walk(meta.roots, TreeKind::Roots)?;
    walk.walk(meta.refcounts, TreeKind::Refs)?;
    walk.walk(meta.release, TreeKind::Release)?;
    Ok(walk.count)
}
