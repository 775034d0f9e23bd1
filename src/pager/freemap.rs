//! The free map of a write transaction: which pages are free now, which wait, and how the
//! whole of it is written back at commit.
//!
//! Invariants:
//! - A page is free (its bitmap bit set) only when no reader, no durable meta and no live root
//!   can reach it. A committed page freed by txn T waits in the pending list as (T, page)
//!   until `T ≤ reclaim bound` (the oldest reader's txn and the last durable txn).
//! - A page allocated and freed inside the same transaction was never visible: it is free at
//!   once.
//! - At commit every changed bitmap page moves to a fresh page and the directory chain is
//!   written anew; the pending chain keeps its older pages as they are and rewrites only its
//!   head (all kept pages only when a releasable suffix is dropped or enough releasable
//!   entries are stuck behind older ones, after `release_all_releasable`, or when
//!   `relocate_above` finds a kept page at or above its cutoff). Replaced pages become pending
//!   under this txn. The relocation loop only allocates, so it ends (each round either
//!   finishes or allocates).
//! - Compaction's settings, all off unless set: with a shrink threshold, a commit whose free
//!   tail (the free pages ending at the last page) reaches it cuts `file_pages` before any
//!   free-map page is allocated; the cut pages are free, so no reader, durable meta or root
//!   reaches them, and the directory, the bitmaps, the extents and the starts end inside the
//!   new end. Enough of the tail is kept for the free-map pages when the rest of the file
//!   lacks the room. The file itself is shortened by the caller, after the commit is durable.
//!   With a ceiling, no page at or above it is handed out and the file does not grow.
//!   `relocate_above` moves every free-map page at or above its cutoff at the next persist.
//! - Chains are read through `pager::chain`, which bounds them.
//! - Which free page an allocation takes is `pager::placement`'s; the bits and counts are
//!   changed only through `pager::bitmap`.

use super::bitmap::{Bitmaps, DirSlot};
use super::chain::Chain;
use super::placement::Placement;
pub use super::placement::{is_ceiling_reached, Heat};
use super::{PageSource, ReadPages, SearchStarts};
use crate::format::freemap::{
    chain_entry, chain_next, dir_entries_per_page, pending_entries_per_page, set_chain_entry,
    set_chain_next, DirEntry, Pending, PendingEntry,
};
use crate::format::{
    checksum, first_data_page, tag, PageHeader, PageId, Ptr, TxnId, U16Le, U32Le, U64Le,
};
use crate::{Error, Result};

/// The free-space state being changed by one write transaction.
pub struct FreeMap {
    page_size: usize,
    txn: TxnId,
    /// The directory and bitmaps, with the file's length.
    map: Bitmaps,
    /// Pages still waiting that this commit writes anew.
    pending: Vec<Pending>,
    /// The older part of the pending chain, kept as it is (newest first); its head pointer.
    pending_tail: Ptr,
    /// Entries in `pending_tail`, and how many of them wait for a durable commit.
    tail_entries: u64,
    tail_awaiting: u64,
    /// (page, born) of committed pages freed by this txn.
    freed_now: Vec<(u64, u64)>,
    old_chain_pages: Vec<Ptr>,
    durable: u64,
    /// The oldest reader's txn when the map was loaded (with `durable`, the reuse rule).
    oldest_reader: u64,
    /// Extents, search stages and starts.
    place: Placement,
    /// Cut a free tail of at least this many pages at commit (None: never).
    shrink_threshold: Option<u64>,
    /// Move every free-map page at or above this page at commit (None: none).
    relocate_from: Option<u64>,
}

/// What the free map wrote at commit, for the meta.
pub struct Persisted {
    /// Head of the directory chain.
    pub free_dir: Ptr,
    /// Head of the pending chain (null when empty).
    pub pending: Ptr,
    /// Pages free now.
    pub free_count: u64,
    /// Pages waiting.
    pub pending_count: u64,
    /// Of those, pages that wait only for a durable commit (freed since the last durable
    /// txn but reachable from its root).
    pub awaiting_durable: u64,
    /// Where the next transaction's first searches for free runs start (kept in memory, not
    /// in the meta; see `pager::search_starts`).
    pub starts: SearchStarts,
    /// The page taken for the next commit's meta (0: none was asked for).
    pub next_meta: u64,
}

/// The decoded chains of a committed free map (for `check` and for loading).
pub struct Loaded {
    /// (bitmap pointer or null, free count) per bitmap index.
    pub dir: Vec<(Ptr, u32)>,
    /// The pending entries.
    pub pending: Vec<Pending>,
    /// Pages of the directory and pending chains.
    pub chain_pages: Vec<Ptr>,
}

/// Reads the directory and pending chains of a committed state.
/// With `verify`, every chain page's checksum is checked.
pub fn load_chains(pages: &ReadPages, free_dir: Ptr, pending: Ptr, verify: bool) -> Result<Loaded> {
    let mut dir = Vec::new();
    let mut chain_pages = Vec::new();
    // Bounded: `Chain` bounds a chain's length and each page's entries.
    for page in Chain::<DirEntry>::new(pages, free_dir, tag::FREE_DIR, verify) {
        let page = page?;
        dir.extend(
            page.entries()
                .map(|e| (e.bitmap.into(), e.free_count.get())),
        );
        chain_pages.push(page.ptr);
    }
    let mut pend = Vec::new();
    // Bounded: as above.
    for page in Chain::<PendingEntry>::new(pages, pending, tag::PENDING, verify) {
        let page = page?;
        pend.extend(page.entries().map(Pending::from));
        chain_pages.push(page.ptr);
    }
    Ok(Loaded {
        dir,
        pending: pend,
        chain_pages,
    })
}

/// What one pending page holds, as loading decides what to do with it.
struct PendingSummary {
    /// Entries.
    len: usize,
    /// Entries releasable now.
    releasable: usize,
    /// Entries that wait only for a durable commit.
    awaiting: usize,
}

/// One pass over the pending entries: range checks, and per page how many are releasable
/// and how many wait only for a durable commit. Loading decides everything from these.
fn summarize_pending(
    chain: &PendingPages,
    head: Ptr,
    file_pages: u64,
    page_size: usize,
    releasable: impl Fn(u64, u64) -> bool,
    durable: u64,
) -> Result<Vec<PendingSummary>> {
    let mut summary = Vec::with_capacity(chain.len());
    // Bounded: the chain and its pages were bounded when read.
    for (_, entries) in chain {
        let (mut free_now, mut awaiting) = (0, 0);
        for e in entries {
            if e.page < first_data_page(page_size) || e.page >= file_pages || e.born >= e.freed_by {
                return Err(Error::corrupted(head.page.0, "pending entry out of range"));
            }
            free_now += releasable(e.freed_by, e.born) as usize;
            awaiting += (e.freed_by > durable && e.born <= durable) as usize;
        }
        summary.push(PendingSummary {
            len: entries.len(),
            releasable: free_now,
            awaiting,
        });
    }
    Ok(summary)
}

/// Which pending pages a commit keeps and which it rewrites: `(keep, rewrite)`, where pages
/// `rewrite..keep` stay as they are and the rest are read into memory (those past `keep` to
/// be dropped whole).
///
/// The chain runs newest first. A suffix of pages whose entries are all releasable is
/// dropped; then the kept pages must be rewritten (the last one's `next` changes).
/// Otherwise only the head page is rewritten, unless it is nearly full, and the rest is kept
/// as it is: a commit costs O(its own frees), not O(all pending). Releasable entries stuck
/// behind an older page that is not: once they are a quarter of what is kept (and at least a
/// page), rewriting the kept pages once frees them, and the rewrite's cost is paid for by what
/// it releases.
fn pending_rewrite(summary: &[PendingSummary], per_page: usize) -> (usize, usize) {
    let mut keep = summary.len();
    // Bounded: one step per page of the chain.
    while keep > 0 && summary[keep - 1].len == summary[keep - 1].releasable {
        keep -= 1;
    }
    let head_open = summary
        .first()
        .is_some_and(|s| s.len * 4 < per_page * 3 || s.releasable > 0);
    let kept: usize = summary[..keep].iter().map(|s| s.len).sum();
    let stuck: usize = summary[..keep].iter().skip(1).map(|s| s.releasable).sum();
    let rewrite = if keep < summary.len() || (stuck >= per_page && stuck * 4 >= kept) {
        keep
    } else if head_open {
        1
    } else {
        0
    };
    (keep, rewrite)
}

/// The pages of the pending chain, newest first, each with its entries.
type PendingPages = Vec<(Ptr, Vec<Pending>)>;

fn load_pending_pages(pages: &ReadPages, head: Ptr) -> Result<PendingPages> {
    // Bounded: `Chain` bounds the chain's length and each page's entries.
    Chain::<PendingEntry>::new(pages, head, tag::PENDING, false)
        .map(|page| page.map(|page| (page.ptr, page.entries().map(Pending::from).collect())))
        .collect()
}

impl FreeMap {
    /// A free map for a brand-new file of `file_pages` pages, all of them in use.
    pub fn empty(page_size: usize, txn: TxnId, file_pages: u64) -> FreeMap {
        FreeMap {
            page_size,
            txn,
            map: Bitmaps::new(page_size, file_pages),
            pending: Vec::new(),
            pending_tail: Ptr::default(),
            tail_entries: 0,
            tail_awaiting: 0,
            freed_now: Vec::new(),
            old_chain_pages: Vec::new(),
            durable: 0,
            oldest_reader: 0,
            place: Placement::new(),
            shrink_threshold: None,
            relocate_from: None,
        }
    }

    /// Loads the committed free map and frees every pending page that no reader can see
    /// (`freed_by ≤ oldest_reader`) and that the last durable root cannot reach (`freed_by ≤
    /// durable`, or born after `durable`).
    pub fn load(
        pages: &ReadPages,
        txn: TxnId,
        free_dir: Ptr,
        pending: Ptr,
        file_pages: u64,
        oldest_reader: u64,
        durable: u64,
    ) -> Result<FreeMap> {
        let loaded = load_chains(pages, free_dir, Ptr::default(), false)?;
        let mut map = FreeMap::empty(pages.page_size(), txn, file_pages);
        if !free_dir.is_null() && loaded.dir.len() != map.map.dir.len() {
            return Err(Error::corrupted(
                free_dir.page.0,
                "directory does not cover the file",
            ));
        }
        for (slot, (ptr, free)) in map.map.dir.iter_mut().zip(loaded.dir) {
            *slot = DirSlot { ptr, free };
        }
        map.durable = durable;
        map.oldest_reader = oldest_reader;
        // The directory chain is rewritten at every commit.
        map.old_chain_pages = loaded.chain_pages;
        let releasable = |freed_by: u64, born: u64| {
            freed_by <= oldest_reader && (freed_by <= durable || born > durable)
        };
        let chain = load_pending_pages(pages, pending)?;
        let summary = summarize_pending(
            &chain,
            pending,
            file_pages,
            map.page_size,
            releasable,
            durable,
        )?;
        let (keep, rewrite) = pending_rewrite(&summary, pending_entries_per_page(map.page_size));
        let mut released = Vec::with_capacity(summary.iter().map(|s| s.releasable).sum());
        for (index, (ptr, entries)) in chain.iter().enumerate() {
            if index < rewrite || index >= keep {
                map.old_chain_pages.push(*ptr);
                if summary[index].releasable == entries.len() {
                    released.extend(entries.iter().map(|e| e.page));
                    continue;
                }
                for &e in entries {
                    if releasable(e.freed_by, e.born) {
                        released.push(e.page);
                    } else {
                        map.pending.push(e);
                    }
                }
            } else {
                if index == rewrite {
                    map.pending_tail = *ptr;
                }
                map.tail_entries += entries.len() as u64;
                map.tail_awaiting += summary[index].awaiting as u64;
            }
        }
        map.map.set_free_many(pages, &released)?;
        map.place.note_freed_many(pages, &mut map.map, &released)?;
        map.place.measure_room(&map.map);
        Ok(map)
    }

    /// Starts this transaction's first searches from `starts`, the starts the last commit left
    /// (lowered by what loading released); hot pages first right after `meta_page`, the page
    /// this commit's meta goes to, if any.
    pub fn start_searches_at(
        &mut self,
        pages: &ReadPages,
        starts: SearchStarts,
        meta_page: Option<u64>,
    ) -> Result<()> {
        if let Some(id) = meta_page {
            // Taken since the commit that named it: were it free, this commit could hand it
            // out as another page too (a damaged meta or free map).
            if id >= self.map.file_pages || self.map.is_free(pages, id)? {
                return Err(Error::corrupted(
                    id,
                    "the page named for this commit's meta is free",
                ));
            }
        }
        self.place
            .start_searches_at(pages, &mut self.map, starts, meta_page)
    }

    /// Pages in the file, counting growth in this transaction.
    pub fn file_pages(&self) -> u64 {
        self.map.file_pages
    }

    /// The page size.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// Pages free now.
    pub fn free_pages(&self) -> u64 {
        self.map.free_count()
    }

    /// Pages the file grows by at a time, at its size now.
    pub fn growth_step(&self) -> u64 {
        super::placement::growth_step(self.map.file_pages, self.page_size)
    }

    /// Cuts the free tail at commit: when at least `threshold` pages at the end of the file
    /// are free, `persist` shrinks `file_pages` to drop them (None: never; `Some(0)`: any
    /// free tail). The caller shortens the file itself, once the commit is durable and no
    /// reader's view reaches past the new end.
    pub fn set_shrink_threshold(&mut self, threshold: Option<u64>) {
        self.shrink_threshold = threshold;
    }

    /// While `Some(c)`, every allocation (single pages of both heats, runs, and the free-map
    /// pages `persist` allocates) takes only free pages below `c`, and the file never grows;
    /// when none is left the allocation fails with an error that [`is_ceiling_reached`]
    /// recognises.
    pub fn set_ceiling(&mut self, ceiling: Option<u64>) {
        self.place.set_ceiling(ceiling);
    }

    /// At commit, every bitmap page at or above `cutoff` moves to a new page, and if any kept
    /// page of the pending chain lies at or above it, the whole chain is rewritten. The new
    /// pages lie below `cutoff` only under a ceiling at or below it (`set_ceiling`).
    pub fn relocate_above(&mut self, cutoff: u64) {
        self.relocate_from = Some(cutoff);
    }

    /// Reads the kept part of the pending chain into memory, to be rewritten at commit, and
    /// frees every entry of it that the reuse rule allows (loading frees only those it reads,
    /// and keeps older pages as they are).
    pub fn release_all_releasable(&mut self, pages: &ReadPages) -> Result<()> {
        self.absorb_tail(pages)?;
        self.place.measure_room(&self.map);
        Ok(())
    }

    /// Reads the kept pages of the pending chain into `pending` (their pages freed at commit
    /// like every replaced chain page), releasing what is releasable.
    fn absorb_tail(&mut self, pages: &ReadPages) -> Result<()> {
        if self.pending_tail.is_null() {
            return Ok(());
        }
        let (oldest, durable) = (self.oldest_reader, self.durable);
        let mut released = Vec::new();
        // Bounded: `load_pending_pages` walks the chain through `Chain`.
        for (ptr, entries) in load_pending_pages(pages, self.pending_tail)? {
            self.old_chain_pages.push(ptr);
            for e in entries {
                if e.freed_by <= oldest && (e.freed_by <= durable || e.born > durable) {
                    released.push(e.page);
                } else {
                    self.pending.push(e);
                }
            }
        }
        (self.pending_tail, self.tail_entries, self.tail_awaiting) = (Ptr::default(), 0, 0);
        released.sort_unstable();
        self.map.set_free_many(pages, &released)?;
        self.place.note_freed_many(pages, &mut self.map, &released)
    }

    /// `relocate_above`'s marks: bitmaps at or above the cutoff are modified (so they move),
    /// and a kept pending page at or above it brings the whole chain into memory.
    fn mark_relocations(&mut self, pages: &ReadPages) -> Result<()> {
        let Some(cutoff) = self.relocate_from else {
            return Ok(());
        };
        for k in 0..self.map.dir.len() {
            let ptr = self.map.dir[k].ptr;
            if !ptr.is_null() && ptr.page.0 >= cutoff {
                self.map.get(pages, k)?.modified = true;
            }
        }
        // Bounded: `Chain` bounds the walk.
        let chain = Chain::<PendingEntry>::new(pages, self.pending_tail, tag::PENDING, false);
        let mut above = false;
        for page in chain {
            above |= page?.ptr.page.0 >= cutoff;
        }
        if above {
            self.absorb_tail(pages)?;
        }
        Ok(())
    }

    /// Cuts the free tail when it reaches the threshold (see `set_shrink_threshold`), keeping
    /// enough of it for the free-map pages the commit still allocates when the rest of the
    /// file has too few free pages. A dropped bitmap's page becomes pending under this txn.
    fn shrink_tail(&mut self, pages: &ReadPages) -> Result<()> {
        let Some(threshold) = self.shrink_threshold else {
            return Ok(());
        };
        let end = self.map.file_pages;
        let start = self
            .map
            .free_tail_start(pages, first_data_page(self.page_size))?;
        // Every bitmap may move, plus the chains (with an entry for each bitmap replaced).
        let entries = self.pending.len() + self.freed_now.len() + 2 * self.map.dir.len();
        let need = self.map.dir.len() as u64
            + entries.div_ceil(pending_entries_per_page(self.page_size)) as u64
            + self
                .map
                .dir
                .len()
                .div_ceil(dir_entries_per_page(self.page_size)) as u64
            + 2;
        let free_below = self.map.free_count() - (end - start);
        let new_end = start + need.saturating_sub(free_below).min(end - start);
        if new_end >= end || end - new_end < threshold {
            return Ok(());
        }
        let dropped = self.map.truncate(pages, new_end)?;
        self.freed_now
            .extend(dropped.iter().map(|p| (p.page.0, p.txn.0)));
        self.place.clip(new_end);
        Ok(())
    }

    /// Frees `id`: at once if this transaction allocated it, else pending under this txn.
    pub fn free(&mut self, pages: &ReadPages, id: u64, born: u64) -> Result<()> {
        assert!(born <= self.txn.0, "page {id} born in the future");
        if born == self.txn.0 {
            self.map.set_free(pages, id)?;
            self.place.note_freed(pages, &mut self.map, id)
        } else {
            self.freed_now.push((id, born));
            Ok(())
        }
    }

    /// Whether the meta pages of a commit chain (`chain`, the reserved page included) are
    /// what keeps this commit from cutting a free tail of at least the shrink threshold:
    /// then the commit should end the chain, whose pages become free after it.
    pub fn chain_blocks_shrink(&mut self, pages: &ReadPages, chain: &[u64]) -> Result<bool> {
        let Some(threshold) = self.shrink_threshold else {
            return Ok(false);
        };
        let first = first_data_page(self.page_size);
        let mut tail = self.map.free_tail_start(pages, first)?;
        let mut blocked = false;
        // Bounded: one round per chain page.
        for _ in 0..chain.len() {
            if tail <= first || !chain.contains(&(tail - 1)) {
                break;
            }
            tail = self.map.free_run_below(pages, first, tail - 1)?;
            blocked = true;
        }
        Ok(blocked && self.map.file_pages - tail >= threshold)
    }

    /// Whether a ceiling is set (see `set_ceiling`).
    pub fn has_ceiling(&self) -> bool {
        self.place.has_ceiling()
    }

    /// Allocates `n` contiguous pages, reusing free ones when a run exists, else growing.
    /// Single pages go to the run kept for their `heat` (see `pager::placement`).
    pub fn alloc(&mut self, pages: &ReadPages, n: u64, heat: Heat) -> Result<u64> {
        self.place.alloc(pages, &mut self.map, n, heat)
    }

    /// Writes the free map back: relocates changed bitmaps, writes the directory and the pending
    /// head (see the module invariants), and hands
    /// every page to `emit` (id, bytes). Returns what the meta records.
    pub fn persist(
        &mut self,
        pages: &ReadPages,
        reserve: bool,
        mut emit: impl FnMut(u64, Box<[u8]>),
    ) -> Result<Persisted> {
        self.mark_relocations(pages)?;
        let old_chains = std::mem::take(&mut self.old_chain_pages);
        self.freed_now
            .extend(old_chains.iter().map(|p| (p.page.0, p.txn.0)));
        self.shrink_tail(pages)?;
        let (per_pending, per_dir) = (
            pending_entries_per_page(self.page_size),
            dir_entries_per_page(self.page_size),
        );
        let (chain, next_meta) = self.allocate_map_pages(pages, per_pending, per_dir, reserve)?;
        self.write_bitmaps(&mut emit);
        // Chains: the directory takes the last pages, pending the rest (extras stay empty).
        let n_dir = self.map.dir.len().div_ceil(per_dir).max(1);
        let (pending_pages, dir_pages) = chain.split_at(chain.len() - n_dir);
        let entries = self.pending_entries();
        let durable = self.durable;
        let pending_count = entries.len() as u64 + self.tail_entries;
        let awaiting_durable = self.tail_awaiting
            + entries
                .iter()
                .filter(|e| e.freed_by.get() > durable && e.born.get() <= durable)
                .count() as u64;
        let tail = self.pending_tail;
        let pending_head = self.write_chain(
            pending_pages,
            tag::PENDING,
            &entries,
            per_pending,
            tail,
            &mut emit,
        );
        let dir_entries: Vec<DirEntry> = self
            .map
            .dir
            .iter()
            .map(|s| DirEntry {
                bitmap: s.ptr.into(),
                free_count: U32Le::new(s.free),
            })
            .collect();
        let null = Ptr::default();
        let free_dir = self.write_chain(
            dir_pages,
            tag::FREE_DIR,
            &dir_entries,
            per_dir,
            null,
            &mut emit,
        );
        Ok(Persisted {
            free_dir,
            pending: pending_head,
            free_count: self.map.free_count(),
            pending_count,
            awaiting_durable,
            starts: self.place.finish(),
            next_meta: next_meta.unwrap_or(0),
        })
    }

    /// New homes for the changed bitmaps, pages for the pending and directory chains and,
    /// with `reserve`, the page for the next commit's meta (see
    /// `Placement::alloc_reserved`; the next commit's hot run starts right after it). Each
    /// allocation may free or dirty more (a bitmap it touches, an entry it adds), so this
    /// repeats until the pages asked for suffice; returns the chain pages and the reserved one.
    fn allocate_map_pages(
        &mut self,
        pages: &ReadPages,
        per_pending: usize,
        per_dir: usize,
        reserve: bool,
    ) -> Result<(Vec<u64>, Option<u64>)> {
        let mut chain: Vec<u64> = Vec::new();
        let mut reserved = None;
        // Bounded: each round ends or allocates, and allocation is bounded by address space.
        loop {
            // After the reservation, the run behind the reserved page is the next commit's:
            // what this one still needs (a bitmap the reservation changed) comes from gaps.
            let heat = if reserved.is_some() {
                Heat::Cold
            } else {
                Heat::Hot
            };
            loop {
                let todo: Vec<usize> = (self.map.maps.iter().enumerate())
                    .filter(|(_, b)| b.as_ref().is_some_and(|b| b.modified && b.new_id.is_none()))
                    .map(|(k, _)| k)
                    .collect();
                if todo.is_empty() {
                    break;
                }
                for k in todo {
                    let id = self.alloc(pages, 1, heat)?;
                    let old = self.map.dir[k].ptr;
                    if !old.is_null() {
                        self.freed_now.push((old.page.0, old.txn.0));
                    }
                    self.map.maps[k].as_mut().expect("listed").new_id = Some(id);
                }
            }
            let n_pending = self.pending.len() + self.freed_now.len();
            let need =
                n_pending.div_ceil(per_pending) + self.map.dir.len().div_ceil(per_dir).max(1);
            if chain.len() >= need {
                if reserve && reserved.is_none() {
                    reserved = Some(self.place.alloc_reserved(pages, &mut self.map)?);
                    continue;
                }
                return Ok((chain, reserved));
            }
            while chain.len() < need {
                chain.push(self.alloc(pages, 1, heat)?);
            }
        }
    }

    /// Stamps every changed bitmap at its new page, points the directory at it, emits it.
    fn write_bitmaps(&mut self, emit: &mut impl FnMut(u64, Box<[u8]>)) {
        let txn = self.txn.0;
        for k in 0..self.map.maps.len() {
            let Some(bitmap) = self.map.maps[k].as_mut().filter(|b| b.modified) else {
                continue;
            };
            let id = bitmap.new_id.expect("relocated above");
            // Debug builds (and the fuzz targets) only, as its pair in `Bitmaps::get`.
            debug_assert_eq!(
                bitmap.free_bits(),
                u64::from(self.map.dir[k].free),
                "a bitmap's free bits match its directory count before it is written"
            );
            let page = bitmap.page_mut();
            stamp(page, tag::BITMAP, 0, id, txn);
            let crc = checksum(page);
            self.map.dir[k].ptr = Ptr {
                page: PageId(id),
                txn: self.txn,
                crc,
            };
            emit(id, page.clone());
            bitmap.modified = false;
        }
    }

    /// The pending entries this commit writes in front of the kept ones: the rewritten
    /// entries and its own frees, in (freed_by, page) order.
    fn pending_entries(&self) -> Vec<PendingEntry> {
        let txn = self.txn.0;
        let mut entries: Vec<PendingEntry> = self
            .pending
            .iter()
            .map(|&p| PendingEntry::from(p))
            .chain(self.freed_now.iter().map(|&(page, born)| {
                PendingEntry::from(Pending {
                    freed_by: txn,
                    page,
                    born,
                })
            }))
            .collect();
        entries.sort_unstable_by_key(|e| (e.freed_by.get(), e.page.get()));
        entries
    }

    fn write_chain<T: bytemuck::Pod>(
        &self,
        ids: &[u64],
        chain_tag: u8,
        entries: &[T],
        per_page: usize,
        tail: Ptr,
        emit: &mut impl FnMut(u64, Box<[u8]>),
    ) -> Ptr {
        assert!(
            entries.len() <= ids.len() * per_page,
            "chain pages were counted"
        );
        let mut next = tail;
        for (i, &id) in ids.iter().enumerate().rev() {
            let mut page = vec![0u8; self.page_size].into_boxed_slice();
            let chunk = entries.chunks(per_page).nth(i).unwrap_or(&[]);
            for (j, e) in chunk.iter().enumerate() {
                set_chain_entry(&mut page, j, *e);
            }
            stamp(&mut page, chain_tag, chunk.len(), id, self.txn.0);
            set_chain_next(&mut page, next);
            // Paired with `Chain`'s checks after a read: the page reads back as written.
            debug_assert!(
                chunk.iter().enumerate().all(|(j, e)| {
                    chain_entry::<T>(&page, j)
                        .is_some_and(|back| bytemuck::bytes_of(&back) == bytemuck::bytes_of(e))
                }) && chain_next(&page) == next,
                "a chain page reads back as written"
            );
            let crc = checksum(&page);
            next = Ptr {
                page: PageId(id),
                txn: self.txn,
                crc,
            };
            emit(id, page);
        }
        next
    }
}

fn stamp(page: &mut [u8], page_tag: u8, count: usize, id: u64, txn: u64) {
    PageHeader {
        tag: page_tag,
        level: 0,
        count: U16Le::new(count as u16),
        free_end: U32Le::new(0),
        garbage: U32Le::new(0),
        page_id: U64Le::new(id),
        txn: U64Le::new(txn),
        ..PageHeader::default()
    }
    .write(page);
}
