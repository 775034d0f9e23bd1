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
//!   entries are stuck behind older ones). Replaced pages become pending under this txn. The
//!   relocation loop only allocates, so it ends (each round either finishes or allocates).
//! - Chains are read through `pager::chain`, which bounds them.
//! - Placement: a page handed out was free (checked bit by bit as an extent is consumed), and
//!   extents lie inside the file. The file grows only when every search stage finds nothing;
//!   when more than an eighth of the file is free when a transaction begins, the
//!   last stage takes any free page, so that transaction grows the file only if none is left,
//!   except for a big commit's cold pages past the first 64 while at most a quarter is free.
//!   A heat's first search starts at its search floor (see `pager::floors`) and wraps
//!   around, so a stale floor costs placement, never growth.

use super::chain::Chain;
use super::floors::{self, FloorTracker, SearchFloors, HINT_MIN, LONGEST_HINT};
use super::runs::RunScan;
use super::ReadPages;
use crate::format::freemap::{
    bits_per_bitmap, dir_entries_per_page, pending_entries_per_page, pending_entry,
    set_chain_entry, DirEntry, PendingEntry, CHAIN_ENTRIES_AT,
};
use crate::format::{
    checksum, first_data_page, tag, PageHeader, PageId, Ptr, TxnId, U16Le, U32Le, U64Le,
};
use crate::{Error, Result};

#[derive(Clone, Copy, Debug, Default)]
struct DirSlot {
    ptr: Ptr,
    free: u32,
}

struct Bitmap {
    page: Box<[u8]>,
    /// Changed in this transaction: needs writing to `new_id` at commit.
    modified: bool,
    new_id: Option<u64>,
}

/// The free-space state being changed by one write transaction.
pub struct FreeMap {
    page_size: usize,
    txn: TxnId,
    bits: u64,
    file_pages: u64,
    dir: Vec<DirSlot>,
    /// The bitmap pages read or changed in this txn, by index (parallel to `dir`).
    bitmaps: Vec<Option<Bitmap>>,
    /// (freed by, page, born) of pages still waiting that this commit writes anew.
    pending: Vec<(u64, u64, u64)>,
    /// The older part of the pending chain, kept as it is (newest first); its head pointer.
    pending_tail: Ptr,
    /// Entries in `pending_tail`, and how many of them wait for a durable commit.
    tail_entries: u64,
    tail_awaiting: u64,
    /// (page, born) of committed pages freed by this txn.
    freed_now: Vec<(u64, u64)>,
    old_chain_pages: Vec<Ptr>,
    durable: u64,
    /// Pages `[next, end)` of the runs being filled, one per [`Heat`] (see [`super::runs`]).
    extents: [(u64, u64); 2],
    /// Per heat: the first search stage (see `alloc_page`) that has not yet come up empty
    /// in this txn.
    stage: [usize; 2],
    /// How much of the file was free when the transaction began (after loading's releases).
    room: Room,
    /// Cold pages taken so far in this txn (past [`BIG_TXN_COLD`] it is a big commit).
    cold_taken: u64,
    floors: FloorTracker,
}

/// The shortest run hot pages take: a small commit has about eight, so room for all of them.
const HOT_RUN: u64 = HINT_MIN[Heat::Hot as usize];
/// The shortest run cold pages take while the file has little free space: shorter gaps too,
/// which packs them denser.
const COLD_RUN: u64 = HINT_MIN[Heat::Cold as usize];

/// The most pages one extent claims: a longer run is taken a piece at a time, so that the
/// other heat can still find room in it.
const EXTENT_CAP: u64 = 64;

/// A transaction that has taken this many cold pages is a big commit: the rest of its cold
/// pages come from runs, even when that grows a file with free gaps (see `alloc_page`).
const BIG_TXN_COLD: u64 = 64;

/// How much of the file was free when a transaction began.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Room {
    /// At most an eighth.
    Tight,
    /// More than an eighth, at most a quarter.
    Loose,
    /// More than a quarter.
    Ample,
}

/// How soon a page is expected to be replaced, which decides the run it is allocated from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heat {
    /// Replaced by one of the next few commits (roots, catalog, free-map pages).
    Hot = 0,
    /// Expected to live long (leaves, pages copied from an old version).
    Cold = 1,
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
    /// in the meta; see `pager::floors`).
    pub floors: SearchFloors,
}

/// The decoded chains of a committed free map (for `check` and for loading).
pub struct Loaded {
    /// (bitmap pointer or null, free count) per bitmap index.
    pub dir: Vec<(Ptr, u32)>,
    /// (freed by, page, born) entries.
    pub pending: Vec<(u64, u64, u64)>,
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
        pend.extend(page.entries().map(pending_triple));
        chain_pages.push(page.ptr);
    }
    Ok(Loaded {
        dir,
        pending: pend,
        chain_pages,
    })
}

fn pending_triple(e: PendingEntry) -> (u64, u64, u64) {
    (e.freed_by.get(), e.page.get(), e.born.get())
}

use super::PageSource;

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
        for &(freed_by, page, born) in entries {
            if page < first_data_page(page_size) || page >= file_pages || born >= freed_by {
                return Err(Error::corrupted(head.page.0, "pending entry out of range"));
            }
            free_now += releasable(freed_by, born) as usize;
            awaiting += (freed_by > durable && born <= durable) as usize;
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
type PendingPages = Vec<(Ptr, Vec<(u64, u64, u64)>)>;

fn load_pending_pages(pages: &ReadPages, head: Ptr) -> Result<PendingPages> {
    // Bounded: `Chain` bounds the chain's length and each page's entries.
    Chain::<PendingEntry>::new(pages, head, tag::PENDING, false)
        .map(|page| page.map(|page| (page.ptr, page.entries().map(pending_triple).collect())))
        .collect()
}

impl FreeMap {
    /// A free map for a brand-new file of `file_pages` pages, all of them in use.
    pub fn empty(page_size: usize, txn: TxnId, file_pages: u64) -> FreeMap {
        let bits = bits_per_bitmap(page_size);
        FreeMap {
            page_size,
            txn,
            bits,
            file_pages,
            dir: vec![DirSlot::default(); file_pages.div_ceil(bits) as usize],
            bitmaps: (0..file_pages.div_ceil(bits)).map(|_| None).collect(),
            pending: Vec::new(),
            pending_tail: Ptr::default(),
            tail_entries: 0,
            tail_awaiting: 0,
            freed_now: Vec::new(),
            old_chain_pages: Vec::new(),
            durable: 0,
            extents: [(0, 0); 2],
            floors: FloorTracker::new(SearchFloors::default()),
            stage: [0; 2],
            room: Room::Tight,
            cold_taken: 0,
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
        if !free_dir.is_null() && loaded.dir.len() != map.dir.len() {
            return Err(Error::corrupted(
                free_dir.page.0,
                "directory does not cover the file",
            ));
        }
        for (slot, (ptr, free)) in map.dir.iter_mut().zip(loaded.dir) {
            *slot = DirSlot { ptr, free };
        }
        map.durable = durable;
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
                    released.extend(entries.iter().map(|e| e.1));
                    continue;
                }
                for &(freed_by, page, born) in entries {
                    if releasable(freed_by, born) {
                        released.push(page);
                    } else {
                        map.pending.push((freed_by, page, born));
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
        map.set_free_many(pages, &released)?;
        map.room = map.measure_room();
        Ok(map)
    }

    /// Starts this transaction's first searches from `floors`, the floors the last commit left
    /// (lowered by what loading released).
    pub fn start_searches_at(&mut self, floors: SearchFloors) {
        self.floors = self.floors.starting_at(floors);
        // A heat's first search starts at its floor when the floor speaks for that search; a
        // search for short gaps starts at the first page, packing them.
        for heat in [Heat::Hot, Heat::Cold] {
            let (min, max) = self.stages(heat, false)[0];
            let start = if floors::speaks_for(heat, min, max) {
                self.floors.start(heat)
            } else {
                0
            };
            self.extents[heat as usize] = (start, start);
        }
    }

    /// Pages in the file, counting growth in this transaction.
    pub fn file_pages(&self) -> u64 {
        self.file_pages
    }

    fn bitmap(&mut self, pages: &ReadPages, k: usize) -> Result<&mut Bitmap> {
        if self.bitmaps[k].is_none() {
            let slot = self.dir[k];
            let page: Box<[u8]> = if slot.ptr.is_null() {
                vec![0u8; self.page_size].into_boxed_slice()
            } else {
                // A count that disagrees with the bits is caught where it matters (an
                // allocation that finds no bit, a free of a free page) and by `check`.
                pages.tagged(slot.ptr, &[tag::BITMAP], false)?.into()
            };
            self.bitmaps[k] = Some(Bitmap {
                page,
                modified: false,
                new_id: None,
            });
        }
        Ok(self.bitmaps[k].as_mut().expect("filled above"))
    }

    /// Frees every page of `ids` (the releases of a load, which may number hundreds of
    /// thousands after a large removal): one bitmap lookup per run of ids in the same bitmap.
    fn set_free_many(&mut self, pages: &ReadPages, ids: &[u64]) -> Result<()> {
        let mut i = 0;
        // Bounded: every round frees at least one id.
        while i < ids.len() {
            let k = (ids[i] / self.bits) as usize;
            let first = k as u64 * self.bits;
            let bitmap = self.bitmap(pages, k)?;
            let body = &mut bitmap.page[crate::format::HEADER_BYTES..];
            let mut added = 0u32;
            while let Some(&id) = ids
                .get(i)
                .filter(|&&id| id >= first && id - first < body.len() as u64 * 8)
            {
                let bit = (id - first) as usize;
                let byte = &mut body[bit / 8];
                if *byte & (1 << (bit % 8)) != 0 {
                    return Err(Error::corrupted(id, "page freed twice"));
                }
                *byte |= 1 << (bit % 8);
                added += 1;
                i += 1;
            }
            bitmap.modified = true;
            self.dir[k].free = self.dir[k]
                .free
                .checked_add(added)
                .ok_or_else(|| Error::corrupted(ids[i - 1], "free count of a bitmap overflows"))?;
        }
        // Measured after every bit is set, since released neighbours form runs together. A
        // large release lowers the floors to its lowest page instead of measuring each.
        if ids.len() > 256 {
            let lowest = ids.iter().min().expect("not empty");
            self.floors
                .freed(lowest.saturating_sub(LONGEST_HINT - 1), LONGEST_HINT);
        } else {
            // A page right after one just measured lies in the same run.
            for (index, &id) in ids.iter().enumerate() {
                if index == 0 || ids[index - 1] + 1 != id {
                    self.note_freed(pages, id)?;
                }
            }
        }
        Ok(())
    }

    /// Tells the search floors about the free run page `id` now lies in.
    fn note_freed(&mut self, pages: &ReadPages, id: u64) -> Result<()> {
        let first = first_data_page(self.page_size);
        let (mut start, mut end) = (id, id + 1);
        // Bounded: at most LONGEST_HINT pages each way.
        while start > first && id - start < LONGEST_HINT && self.is_free(pages, start - 1)? {
            start -= 1;
        }
        while end < self.file_pages && end - id <= LONGEST_HINT && self.is_free(pages, end)? {
            end += 1;
        }
        self.floors.freed(start, end - start);
        Ok(())
    }

    fn set_free(&mut self, pages: &ReadPages, id: u64) -> Result<()> {
        let (k, bit) = ((id / self.bits) as usize, (id % self.bits) as usize);
        let bitmap = self.bitmap(pages, k)?;
        let byte = &mut bitmap.page[crate::format::HEADER_BYTES + bit / 8];
        if *byte & (1 << (bit % 8)) != 0 {
            return Err(Error::corrupted(id, "page freed twice"));
        }
        *byte |= 1 << (bit % 8);
        bitmap.modified = true;
        self.dir[k].free = self.dir[k]
            .free
            .checked_add(1)
            .ok_or_else(|| Error::corrupted(id, "free count of a bitmap overflows"))?;
        Ok(())
    }

    /// Frees `id`: at once if this transaction allocated it, else pending under this txn.
    pub fn free(&mut self, pages: &ReadPages, id: u64, born: u64) -> Result<()> {
        assert!(born <= self.txn.0, "page {id} born in the future");
        if born == self.txn.0 {
            self.set_free(pages, id)?;
            self.note_freed(pages, id)
        } else {
            self.freed_now.push((id, born));
            Ok(())
        }
    }

    /// Allocates `n` contiguous pages, reusing free ones when a run exists, else growing.
    /// Single pages go to the run kept for their `heat`.
    pub fn alloc(&mut self, pages: &ReadPages, n: u64, heat: Heat) -> Result<u64> {
        assert!(n >= 1);
        if n == 1 {
            return self.alloc_page(pages, heat);
        }
        if let Some(id) = self.alloc_run_free(pages, n)? {
            return Ok(id);
        }
        self.grow(pages, n)
    }

    /// One page. Pages come in address order from runs of free pages, so that a commit's
    /// pages are written side by side, hot and cold pages from separate runs: hot pages die
    /// together at the next commit and free whole runs again.
    ///
    /// Space: the file grows only while free pages add up to at most an eighth of it. Past
    /// that, cold pages fill the gaps shorter than a hot run first, and both heats then take
    /// any free page (scattered writes, but no growth). A big commit is the exception: once
    /// it has taken [`BIG_TXN_COLD`] cold pages, the rest come from runs of a hot run's length,
    /// growing the file for them while at most a quarter of it is free. A thousand scattered
    /// pages cost three times what the same pages in twenty runs cost on the benchmark disk
    /// (31 ms against 9 ms per fdatasync), and the gaps stay for small commits to fill.
    fn alloc_page(&mut self, pages: &ReadPages, heat: Heat) -> Result<u64> {
        let h = heat as usize;
        let stages = self.stages(heat, self.cold_taken >= BIG_TXN_COLD);
        if heat == Heat::Cold {
            self.cold_taken += 1;
            if self.cold_taken == BIG_TXN_COLD {
                // From the next page on the stages are a big commit's: search them afresh.
                self.stage[h] = 0;
            }
        }
        // Bounded: each round takes a page, finds a run (which holds a free page, so the
        // next round takes it) or moves to the next stage.
        for _round in 0..=2 * stages.len() {
            while self.extents[h].0 < self.extents[h].1 {
                let id = self.extents[h].0;
                self.extents[h].0 += 1;
                if self.is_free(pages, id)? {
                    self.take(pages, id)?;
                    return Ok(id);
                }
            }
            let Some(&(min, max)) = stages.get(self.stage[h]) else {
                break;
            };
            match self.find_run(pages, h, min, max)? {
                Some((start, len)) => {
                    self.floors.found(heat, min, max, start);
                    self.extents[h] = (start, start + len.min(EXTENT_CAP));
                }
                None => self.stage[h] += 1,
            }
        }
        let start = self.grow(pages, 1)?;
        // Half the growth at most for this heat: the rest is one free run that the next
        // search of either heat finds, so searching starts over rather than growing again
        // (a small file grows by one step, not one per heat).
        let share = ((self.file_pages - start - 1) / 2).clamp(1, EXTENT_CAP);
        self.extents[h] = (start + 1, (start + 1 + share).min(self.file_pages));
        self.stage = [0; 2];
        Ok(start)
    }

    /// The search stages `(min, max)` run length of `heat`, in order (see `alloc_page`);
    /// `big` once the transaction is a big commit.
    fn stages(&self, heat: Heat, big: bool) -> &'static [(u64, u64)] {
        match (heat, self.room, big) {
            (Heat::Hot, Room::Tight, _) => &[(HOT_RUN, u64::MAX)],
            (Heat::Hot, _, _) => &[(HOT_RUN, u64::MAX), (1, u64::MAX)],
            (Heat::Cold, Room::Tight, _) => &[(COLD_RUN, u64::MAX)],
            (Heat::Cold, Room::Loose, true) => &[(HOT_RUN, u64::MAX)],
            (Heat::Cold, Room::Ample, true) => &[(HOT_RUN, u64::MAX), (1, u64::MAX)],
            (Heat::Cold, _, false) => &[(1, HOT_RUN - 1), (1, u64::MAX)],
        }
    }

    /// How much of the file is free now.
    fn measure_room(&self) -> Room {
        let free: u64 = self.dir.iter().map(|s| s.free as u64).sum();
        if free * 8 <= self.file_pages {
            Room::Tight
        } else if free * 4 <= self.file_pages {
            Room::Loose
        } else {
            Room::Ample
        }
    }

    /// The first run of `min..=max` free pages at or after the end of extent `h`, wrapping
    /// around once, outside the other extent.
    fn find_run(
        &self,
        pages: &ReadPages,
        h: usize,
        min: u64,
        max: u64,
    ) -> Result<Option<(u64, u64)>> {
        let first = first_data_page(self.page_size);
        let from = self.extents[h].1.clamp(first, self.file_pages);
        let (other_lo, other_hi) = self.extents[1 - h];
        for (lo, hi) in [(from, self.file_pages), (first, from)] {
            // The other extent splits the range in two.
            let parts = if other_lo < other_hi && other_lo < hi && lo < other_hi {
                [(lo, other_lo.max(lo)), (other_hi.min(hi), hi)]
            } else {
                [(lo, hi), (hi, hi)]
            };
            for (lo, hi) in parts {
                if let Some(run) = self.scan_runs(pages, lo, hi, min, max)? {
                    return Ok(Some(run));
                }
            }
        }
        Ok(None)
    }

    fn scan_runs(
        &self,
        pages: &ReadPages,
        lo: u64,
        hi: u64,
        min: u64,
        max: u64,
    ) -> Result<Option<(u64, u64)>> {
        if lo >= hi {
            return Ok(None);
        }
        let mut scan = RunScan::new(min, max);
        for k in (lo / self.bits) as usize..=((hi - 1) / self.bits) as usize {
            let slot = self.dir[k];
            if slot.free == 0 {
                if let Some(run) = scan.close() {
                    return Ok(Some(run));
                }
                continue;
            }
            let page = match &self.bitmaps[k] {
                Some(bitmap) => &bitmap.page[..],
                None => pages.tagged(slot.ptr, &[tag::BITMAP], false)?,
            };
            let body = &page[crate::format::HEADER_BYTES..];
            if let Some(run) = scan.feed(body, k as u64 * self.bits, lo, hi) {
                return Ok(Some(run));
            }
        }
        Ok(scan.close())
    }

    fn is_free(&mut self, pages: &ReadPages, id: u64) -> Result<bool> {
        let (k, bit) = ((id / self.bits) as usize, (id % self.bits) as usize);
        if self.dir[k].free == 0 {
            return Ok(false);
        }
        let bitmap = self.bitmap(pages, k)?;
        Ok(bitmap.page[crate::format::HEADER_BYTES + bit / 8] & (1 << (bit % 8)) != 0)
    }

    fn alloc_run_free(&mut self, pages: &ReadPages, n: u64) -> Result<Option<u64>> {
        let (mut start, mut run) = (0u64, 0u64);
        let mut id = first_data_page(self.page_size);
        while id < self.file_pages {
            let k = (id / self.bits) as usize;
            if self.dir[k].free == 0 {
                run = 0;
                id = (k as u64 + 1) * self.bits;
                continue;
            }
            if self.is_free(pages, id)? {
                if run == 0 {
                    start = id;
                }
                run += 1;
                if run == n {
                    for p in start..start + n {
                        self.take(pages, p)?;
                    }
                    return Ok(Some(start));
                }
            } else {
                run = 0;
            }
            id += 1;
        }
        Ok(None)
    }

    fn take(&mut self, pages: &ReadPages, id: u64) -> Result<()> {
        let (k, bit) = ((id / self.bits) as usize, (id % self.bits) as usize);
        let bitmap = self.bitmap(pages, k)?;
        bitmap.page[crate::format::HEADER_BYTES + bit / 8] &= !(1 << (bit % 8));
        bitmap.modified = true;
        // A bitmap with more set bits than its count is corrupt, not a reason to wrap.
        self.dir[k].free = self.dir[k]
            .free
            .checked_sub(1)
            .ok_or_else(|| Error::corrupted(id, "bitmap has more free pages than its count"))?;
        Ok(())
    }

    /// Grows the file: the first `n` new pages are returned allocated, the rest are free.
    fn grow(&mut self, pages: &ReadPages, n: u64) -> Result<u64> {
        let old = self.file_pages;
        // Small steps keep the slack at the end of the file under 2% (a growing commit also
        // pays one extra fsync, so steps are not single pages either).
        let chunk = (old / 64).clamp(64, (16 << 20) / self.page_size as u64);
        let new = old + n.max(chunk);
        self.file_pages = new;
        let need_dir = new.div_ceil(self.bits) as usize;
        self.dir.resize(need_dir, DirSlot::default());
        self.bitmaps.resize_with(need_dir, || None);
        for id in old + n..new {
            self.set_free(pages, id)?;
        }
        if old + n < new {
            self.note_freed(pages, old + n)?;
        }
        Ok(old)
    }

    /// Writes the free map back: relocates changed bitmaps, writes the directory and the pending
    /// head (see the module invariants), and hands
    /// every page to `emit` (id, bytes). Returns what the meta records.
    pub fn persist(
        &mut self,
        pages: &ReadPages,
        mut emit: impl FnMut(u64, Box<[u8]>),
    ) -> Result<Persisted> {
        let old_chains = std::mem::take(&mut self.old_chain_pages);
        self.freed_now
            .extend(old_chains.iter().map(|p| (p.page.0, p.txn.0)));
        let (per_pending, per_dir) = (
            pending_entries_per_page(self.page_size),
            dir_entries_per_page(self.page_size),
        );
        let chain = self.allocate_map_pages(pages, per_pending, per_dir)?;
        self.write_bitmaps(&mut emit);
        // Chains: the directory takes the last pages, pending the rest (extras stay empty).
        let n_dir = self.dir.len().div_ceil(per_dir).max(1);
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
            free_count: self.dir.iter().map(|s| s.free as u64).sum(),
            pending_count,
            awaiting_durable,
            floors: self.floors.finish(),
        })
    }

    /// New homes for the changed bitmaps, and pages for the pending and directory chains.
    /// Each allocation may free or dirty more (a bitmap it touches, an entry it adds), so this
    /// repeats until the pages asked for suffice; returns the chain pages.
    fn allocate_map_pages(
        &mut self,
        pages: &ReadPages,
        per_pending: usize,
        per_dir: usize,
    ) -> Result<Vec<u64>> {
        let mut chain: Vec<u64> = Vec::new();
        // Bounded: each round ends or allocates, and allocation is bounded by address space.
        loop {
            loop {
                let todo: Vec<usize> = (self.bitmaps.iter().enumerate())
                    .filter(|(_, b)| b.as_ref().is_some_and(|b| b.modified && b.new_id.is_none()))
                    .map(|(k, _)| k)
                    .collect();
                if todo.is_empty() {
                    break;
                }
                for k in todo {
                    let id = self.alloc(pages, 1, Heat::Hot)?;
                    let old = self.dir[k].ptr;
                    if !old.is_null() {
                        self.freed_now.push((old.page.0, old.txn.0));
                    }
                    self.bitmaps[k].as_mut().expect("listed").new_id = Some(id);
                }
            }
            let n_pending = self.pending.len() + self.freed_now.len();
            let need = n_pending.div_ceil(per_pending) + self.dir.len().div_ceil(per_dir).max(1);
            if chain.len() >= need {
                return Ok(chain);
            }
            while chain.len() < need {
                chain.push(self.alloc(pages, 1, Heat::Hot)?);
            }
        }
    }

    /// Stamps every changed bitmap at its new page, points the directory at it, emits it.
    fn write_bitmaps(&mut self, emit: &mut impl FnMut(u64, Box<[u8]>)) {
        let txn = self.txn.0;
        for k in 0..self.bitmaps.len() {
            let Some(bitmap) = self.bitmaps[k].as_mut().filter(|b| b.modified) else {
                continue;
            };
            let id = bitmap.new_id.expect("relocated above");
            stamp(&mut bitmap.page, tag::BITMAP, 0, id, txn);
            let crc = checksum(&bitmap.page);
            self.dir[k].ptr = Ptr {
                page: PageId(id),
                txn: self.txn,
                crc,
            };
            emit(id, bitmap.page.clone());
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
            .map(|&(t, p, b)| pending_entry(t, p, b))
            .chain(
                self.freed_now
                    .iter()
                    .map(|&(p, b)| pending_entry(txn, p, b)),
            )
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
            next.encode(&mut page[crate::format::HEADER_BYTES..CHAIN_ENTRIES_AT]);
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
        reserved: U32Le::new(0),
        page_id: U64Le::new(id),
        txn: U64Le::new(txn),
    }
    .write(page);
}
