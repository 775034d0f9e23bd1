//! Placement: which free page (or run) an allocation takes, and when the file grows.
//!
//! Why: on the disks we measured, an `fdatasync` costs about as much for ten adjacent pages
//! as for one, but each scattered extent adds 20–65 µs; so single pages come in address order
//! from *extents*, runs of free pages, one per [`Heat`] (see docs/ARCHITECTURE.md,
//! Placement).
//!
//! Invariants:
//! - A page handed out was free (checked bit by bit as an extent is consumed), and extents lie
//!   inside the file.
//! - The file grows only when every search stage finds nothing; when more than an eighth of
//!   the file is free when a transaction begins, the last stage takes any free page, so that
//!   transaction grows the file only if none is left, except for a big commit's cold pages
//!   past the first 64 while at most a quarter is free.
//! - A heat's first search starts at its search start (see `pager::search_starts`) and wraps around,
//!   so a stale start costs placement, never growth.
//! - While a ceiling is set, every page handed out lies below it and the file never grows:
//!   when the search stages find nothing, any free page below the ceiling is taken, and when
//!   none is left the allocation fails with [`ceiling_reached`]. After the free tail is cut
//!   (`clip`), extents and starts lie inside the new end, and a page is taken from any gap
//!   below it before the file grows again.

use super::bitmap::Bitmaps;
use super::free_runs::RunScan;
use super::search_starts::{self, SearchStarts, StartTracker, HINT_MIN, LONGEST_HINT};
use super::ReadPages;
use crate::format::first_data_page;
use crate::{Error, Result};

/// The message of the error an allocation fails with when no free page is left below the
/// ceiling (see [`is_ceiling_reached`]).
pub const CEILING_REACHED: &str = "no free page left below the allocation ceiling";

/// The error of an allocation that found no free page below the ceiling.
pub fn ceiling_reached() -> Error {
    Error::InvalidArgument(CEILING_REACHED.to_string())
}

/// Whether `e` is the error of an allocation that found no free page below the ceiling: a
/// step of work under a ceiling ends early on it (the transaction that got it cannot commit).
pub fn is_ceiling_reached(e: &Error) -> bool {
    matches!(e, Error::InvalidArgument(m) if m == CEILING_REACHED)
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

/// The placement state of one write transaction.
pub(super) struct Placement {
    /// Pages `[next, end)` of the runs being filled, one per [`Heat`] (see [`super::runs`]).
    extents: [(u64, u64); 2],
    /// Per heat: the first search stage (see `alloc_page`) that has not yet come up empty
    /// in this txn.
    stage: [usize; 2],
    /// How much of the file was free when the transaction began (after loading's releases).
    room: Room,
    /// Cold pages taken so far in this txn (past [`BIG_TXN_COLD`] it is a big commit).
    cold_taken: u64,
    starts: StartTracker,
    /// No page at or above this is handed out, and the file does not grow (None: no limit).
    ceiling: Option<u64>,
    /// The free tail was cut in this txn: take any gap below the end before growing again.
    shrunk: bool,
}

impl Placement {
    /// Placement with no extents, starts at the first page, as for a tight file.
    pub fn new() -> Placement {
        Placement {
            extents: [(0, 0); 2],
            stage: [0; 2],
            room: Room::Tight,
            cold_taken: 0,
            starts: StartTracker::new(SearchStarts::default()),
            ceiling: None,
            shrunk: false,
        }
    }

    /// Sets (or lifts) the allocation ceiling; the extents are cut to it.
    pub fn set_ceiling(&mut self, ceiling: Option<u64>) {
        self.ceiling = ceiling;
        if let Some(c) = ceiling {
            self.clip_extents(c);
        }
    }

    /// Whether a ceiling is set.
    pub fn has_ceiling(&self) -> bool {
        self.ceiling.is_some()
    }

    /// The file now ends at `end` (its free tail was cut): extents and starts move inside it.
    pub fn clip(&mut self, end: u64) {
        self.clip_extents(end);
        self.starts.clip(end);
        self.shrunk = true;
    }

    fn clip_extents(&mut self, end: u64) {
        for e in &mut self.extents {
            e.1 = e.1.min(end);
            e.0 = e.0.min(e.1);
        }
    }

    /// Where searches end: the file's end, or the ceiling below it.
    fn end(&self, map: &Bitmaps) -> u64 {
        self.ceiling
            .map_or(map.file_pages, |c| c.min(map.file_pages))
    }

    /// Measures how much of the file is free now, which picks the search stages.
    pub fn measure_room(&mut self, map: &Bitmaps) {
        let free = map.free_count();
        self.room = if free * 8 <= map.file_pages {
            Room::Tight
        } else if free * 4 <= map.file_pages {
            Room::Loose
        } else {
            Room::Ample
        };
    }

    /// Starts this transaction's first searches from `starts`, the starts the last commit left
    /// (lowered by what loading released). With `meta_page`, the page this commit's meta
    /// goes to, hot pages come first from the free run right after it, so that the meta
    /// goes out in the same write as they do.
    pub fn start_searches_at(
        &mut self,
        pages: &ReadPages,
        map: &mut Bitmaps,
        starts: SearchStarts,
        meta_page: Option<u64>,
    ) -> Result<()> {
        self.starts = self.starts.starting_at(starts);
        // A heat's first search starts at its start when the start speaks for that search; a
        // search for short gaps starts at the first page, packing them.
        for heat in [Heat::Hot, Heat::Cold] {
            let (min, max) = self.stages(heat, false)[0];
            let start = if search_starts::speaks_for(heat, min, max) {
                self.starts.start(heat)
            } else {
                0
            };
            self.extents[heat as usize] = (start, start);
        }
        if let Some(id) = meta_page {
            let (first, end) = (id + 1, self.end(map));
            let mut next = first;
            // Bounded: at most EXTENT_CAP rounds.
            while next < end && next - first < EXTENT_CAP && map.is_free(pages, next)? {
                next += 1;
            }
            if next > first {
                self.extents[Heat::Hot as usize] = (first, next);
            }
        }
        Ok(())
    }

    /// The starts to leave for the next transaction.
    pub fn finish(&self) -> SearchStarts {
        self.starts.finish()
    }

    /// Tells the search starts about the free run page `id` now lies in.
    pub fn note_freed(&mut self, pages: &ReadPages, map: &mut Bitmaps, id: u64) -> Result<()> {
        let first = first_data_page(map.page_size);
        let (mut start, mut end) = (id, id + 1);
        // Bounded: at most LONGEST_HINT pages each way.
        while start > first && id - start < LONGEST_HINT && map.is_free(pages, start - 1)? {
            start -= 1;
        }
        while end < map.file_pages && end - id <= LONGEST_HINT && map.is_free(pages, end)? {
            end += 1;
        }
        self.starts.freed(start, end - start);
        Ok(())
    }

    /// Tells the search starts about `ids`, freed together (sorted).
    pub fn note_freed_many(
        &mut self,
        pages: &ReadPages,
        map: &mut Bitmaps,
        ids: &[u64],
    ) -> Result<()> {
        // Measured after every bit is set, since released neighbours form runs together. A
        // large release lowers the starts to its lowest page instead of measuring each.
        if ids.len() > 256 {
            let lowest = ids.iter().min().expect("not empty");
            self.starts
                .freed(lowest.saturating_sub(LONGEST_HINT - 1), LONGEST_HINT);
        } else {
            // A page right after one just measured lies in the same run.
            for (index, &id) in ids.iter().enumerate() {
                if index == 0 || ids[index - 1] + 1 != id {
                    self.note_freed(pages, map, id)?;
                }
            }
        }
        Ok(())
    }

    /// Allocates `n` contiguous pages, reusing free ones when a run exists, else growing.
    /// Single pages go to the run kept for their `heat`.
    pub fn alloc(
        &mut self,
        pages: &ReadPages,
        map: &mut Bitmaps,
        n: u64,
        heat: Heat,
    ) -> Result<u64> {
        assert!(n >= 1);
        if n == 1 {
            return self.alloc_page(pages, map, heat);
        }
        if let Some(id) = alloc_run_free(pages, map, n, self.end(map))? {
            return Ok(id);
        }
        if self.ceiling.is_some() {
            return Err(ceiling_reached());
        }
        self.grow(pages, map, n)
    }

    /// The page for the next commit's meta: the first page of the first run a hot search finds
    /// from the hot start, not from this commit's extent, so that the next commit's hot run,
    /// which follows it, lies low in the file where hot pages go anyway.
    pub fn alloc_reserved(&mut self, pages: &ReadPages, map: &mut Bitmaps) -> Result<u64> {
        let h = Heat::Hot as usize;
        let start = self.starts.start(Heat::Hot);
        self.extents[h] = (start, start);
        self.stage[h] = 0;
        self.alloc_page(pages, map, Heat::Hot)
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
    fn alloc_page(&mut self, pages: &ReadPages, map: &mut Bitmaps, heat: Heat) -> Result<u64> {
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
                if map.is_free(pages, id)? {
                    map.take(pages, id)?;
                    return Ok(id);
                }
            }
            let Some(&(min, max)) = stages.get(self.stage[h]) else {
                break;
            };
            match self.find_run(pages, map, h, min, max)? {
                Some((start, len)) => {
                    self.starts.found(heat, min, max, start);
                    self.extents[h] = (start, start + len.min(EXTENT_CAP));
                }
                None => self.stage[h] += 1,
            }
        }
        if self.ceiling.is_some() || self.shrunk {
            if let Some(id) = self.take_any(pages, map, h)? {
                return Ok(id);
            }
            if self.ceiling.is_some() {
                return Err(ceiling_reached());
            }
        }
        let start = self.grow(pages, map, 1)?;
        // Half the growth at most for this heat: the rest is one free run that the next
        // search of either heat finds, so searching starts over rather than growing again
        // (a small file grows by one step, not one per heat).
        let share = ((map.file_pages - start - 1) / 2).clamp(1, EXTENT_CAP);
        self.extents[h] = (start + 1, (start + 1 + share).min(map.file_pages));
        self.stage = [0; 2];
        Ok(start)
    }

    /// Any free page in the file (below the ceiling), with the run it starts as the extent:
    /// the last resort before growth is refused or undoes a cut.
    fn take_any(&mut self, pages: &ReadPages, map: &mut Bitmaps, h: usize) -> Result<Option<u64>> {
        let mut found = self.find_run(pages, map, h, 1, u64::MAX)?;
        if found.is_none() && self.extents[1 - h].0 < self.extents[1 - h].1 {
            // The other heat's extent is the last room left: it is given up (a search skips
            // it), and the pages it still held are searched too.
            self.extents[1 - h] = (0, 0);
            found = self.find_run(pages, map, h, 1, u64::MAX)?;
        }
        let Some((start, len)) = found else {
            return Ok(None);
        };
        map.take(pages, start)?;
        self.extents[h] = (start + 1, start + len.min(EXTENT_CAP));
        Ok(Some(start))
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

    /// The first run of `min..=max` free pages at or after the end of extent `h`, wrapping
    /// around once, outside the other extent.
    fn find_run(
        &self,
        pages: &ReadPages,
        map: &Bitmaps,
        h: usize,
        min: u64,
        max: u64,
    ) -> Result<Option<(u64, u64)>> {
        let first = first_data_page(map.page_size);
        let end = self.end(map);
        let from = self.extents[h].1.clamp(first, end);
        let (other_lo, other_hi) = self.extents[1 - h];
        for (lo, hi) in [(from, end), (first, from)] {
            // The other extent splits the range in two.
            let parts = if other_lo < other_hi && other_lo < hi && lo < other_hi {
                [(lo, other_lo.max(lo)), (other_hi.min(hi), hi)]
            } else {
                [(lo, hi), (hi, hi)]
            };
            for (lo, hi) in parts {
                if let Some(run) = scan_runs(pages, map, lo, hi, min, max)? {
                    return Ok(Some(run));
                }
            }
        }
        Ok(None)
    }

    /// Grows the file: the first `n` new pages are returned allocated, the rest are free.
    fn grow(&mut self, pages: &ReadPages, map: &mut Bitmaps, n: u64) -> Result<u64> {
        let old = map.file_pages;
        let new = old + n.max(growth_step(old, map.page_size));
        map.extend(new);
        for id in old + n..new {
            map.set_free(pages, id)?;
        }
        if old + n < new {
            self.note_freed(pages, map, old + n)?;
        }
        Ok(old)
    }
}

/// The first run of `min..=max` free pages in `[lo, hi)`.
fn scan_runs(
    pages: &ReadPages,
    map: &Bitmaps,
    lo: u64,
    hi: u64,
    min: u64,
    max: u64,
) -> Result<Option<(u64, u64)>> {
    if lo >= hi {
        return Ok(None);
    }
    let mut scan = RunScan::new(min, max);
    for k in (lo / map.bits) as usize..=((hi - 1) / map.bits) as usize {
        let Some(body) = map.body(pages, k)? else {
            if let Some(run) = scan.close() {
                return Ok(Some(run));
            }
            continue;
        };
        if let Some(run) = scan.feed(body, k as u64 * map.bits, lo, hi) {
            return Ok(Some(run));
        }
    }
    Ok(scan.close())
}

/// The first run of `n` free pages below `end`, taken; None when there is none. The bitmaps
/// are scanned a word at a time ([`scan_runs`]), not a page at a time.
fn alloc_run_free(pages: &ReadPages, map: &mut Bitmaps, n: u64, end: u64) -> Result<Option<u64>> {
    let lo = first_data_page(map.page_size);
    let Some((start, len)) = scan_runs(pages, map, lo, end, n, u64::MAX)? else {
        return Ok(None);
    };
    debug_assert!(len >= n && start + n <= end);
    for p in start..start + n {
        map.take(pages, p)?;
    }
    Ok(Some(start))
}

/// Pages the file grows by at a time when it has `file_pages`. Small steps keep the slack at
/// the end of the file under 2% (a growing commit also pays one extra fsync, so steps are not
/// single pages either).
pub fn growth_step(file_pages: u64, page_size: usize) -> u64 {
    (file_pages / 64).clamp(64, (16 << 20) / page_size as u64)
}
