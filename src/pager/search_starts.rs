//! Search starts: where a transaction's first search for a run of each heat starts, carried in
//! memory from one commit to the next so that a small commit does not rescan the free map from
//! the first page (at 1M entries that scan was a sixth of a single-entry commit's CPU).
//!
//! Invariants:
//! - A search start is a hint, never a promise the allocator relies on: a search that begins
//!   there wraps around to the first data page before the file grows, so a start that is too
//!   high costs placement quality only, never space or correctness.
//! - Kept true in the common case: below `start[h]` no free run of `HINT_MIN[h]` pages is
//!   expected. Taking pages cannot create a run, so it never lowers a start; freeing a page
//!   lowers a heat's start only when the free run around the page is long enough for that heat,
//!   to where that run starts (a scattered free page, the common case, lowers nothing).

use super::placement::Heat;

/// Search starts of the two heats, by [`Heat`] index (0 means: from the first data page).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SearchStarts(pub [u64; 2]);

/// The run length each heat's start speaks for: its first search stage when the file has
/// little free space.
pub const HINT_MIN: [u64; 2] = [16, 4];

/// The longest run `StartTracker::freed` needs measured.
pub const LONGEST_HINT: u64 = if HINT_MIN[0] > HINT_MIN[1] {
    HINT_MIN[0]
} else {
    HINT_MIN[1]
};

/// Whether a search for runs of `min..=max` pages of `heat` is the one its start speaks for.
pub fn speaks_for(heat: Heat, min: u64, max: u64) -> bool {
    (min, max) == (HINT_MIN[heat as usize], u64::MAX)
}

/// A transaction's view of the starts: where its searches start, the first run each heat's
/// hinted search found, and how low frees have pulled each start.
#[derive(Clone, Copy, Debug)]
pub struct StartTracker {
    start: SearchStarts,
    found: [Option<u64>; 2],
    lowered: [u64; 2],
}

impl StartTracker {
    /// Tracking from the starts the last commit left.
    pub fn new(start: SearchStarts) -> StartTracker {
        StartTracker {
            start,
            found: [None; 2],
            lowered: [u64::MAX; 2],
        }
    }

    /// The same tracking (frees seen so far included) from the starts `start`.
    pub fn starting_at(self, start: SearchStarts) -> StartTracker {
        StartTracker { start, ..self }
    }

    /// A page became free, and with it the free run of `run_len` pages from `run_start`
    /// (measured up to [`LONGEST_HINT`] pages on each side of the page: a run longer than that
    /// on one side was a run before, so it lies above the start already).
    pub fn freed(&mut self, run_start: u64, run_len: u64) {
        for ((min, lowered), found) in HINT_MIN.iter().zip(&mut self.lowered).zip(&mut self.found) {
            if run_len >= *min {
                *lowered = (*lowered).min(run_start);
                if let Some(f) = found {
                    *f = (*f).min(run_start);
                }
            }
        }
    }

    /// The file now ends at `end`: no start lies past it.
    pub fn clip(&mut self, end: u64) {
        for h in 0..2 {
            self.start.0[h] = self.start.0[h].min(end);
            self.lowered[h] = self.lowered[h].min(end);
            if let Some(f) = &mut self.found[h] {
                *f = (*f).min(end);
            }
        }
    }

    /// Where heat `heat`'s first search starts: the start, lowered by what has been freed.
    pub fn start(&self, heat: Heat) -> u64 {
        let h = heat as usize;
        self.start.0[h].min(self.lowered[h])
    }

    /// A search for runs of `min..=max` pages of `heat` found one starting at `start`.
    pub fn found(&mut self, heat: Heat, min: u64, max: u64, start: u64) {
        let h = heat as usize;
        if speaks_for(heat, min, max) && self.found[h].is_none() {
            self.found[h] = Some(start);
        }
    }

    /// The starts to leave for the next transaction. The first run a hinted search found is a
    /// start (lowered by later frees): the search started at a start, or wrapped around to the
    /// first page, and met no run before it; pages taken since cannot create one.
    pub fn finish(&self) -> SearchStarts {
        let mut out = SearchStarts::default();
        for (h, heat) in [Heat::Hot, Heat::Cold].into_iter().enumerate() {
            out.0[h] = self.found[h].unwrap_or_else(|| self.start(heat));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frees_lower_starts_and_finds_raise_them() {
        let mut t = StartTracker::new(SearchStarts([1000, 500]));
        assert_eq!((t.start(Heat::Hot), t.start(Heat::Cold)), (1000, 500));
        // A lone free page lowers nothing; a run long enough for a heat lowers its start.
        t.freed(300, 1);
        assert_eq!((t.start(Heat::Hot), t.start(Heat::Cold)), (1000, 500));
        t.freed(790, 16);
        assert_eq!((t.start(Heat::Hot), t.start(Heat::Cold)), (790, 500));
        t.freed(450, 5);
        assert_eq!((t.start(Heat::Hot), t.start(Heat::Cold)), (790, 450));
        t.found(Heat::Hot, 16, u64::MAX, 2000);
        // A bounded search says nothing about the start.
        t.found(Heat::Cold, 1, 15, 3);
        assert_eq!(t.finish(), SearchStarts([2000, 450]));
        let mut t = StartTracker::new(SearchStarts([0, 0]));
        t.found(Heat::Hot, 16, u64::MAX, 2000);
        t.found(Heat::Hot, 16, u64::MAX, 3000);
        t.found(Heat::Cold, 4, u64::MAX, 40);
        assert_eq!(t.finish(), SearchStarts([2000, 40]));
        let mut t = StartTracker::new(SearchStarts([10, 10]));
        t.found(Heat::Hot, 16, u64::MAX, 2000);
        t.found(Heat::Hot, 16, u64::MAX, 3000);
        t.found(Heat::Cold, 4, u64::MAX, 40);
        // A page freed after the search may complete a run below what it found.
        t.freed(17, 4);
        assert_eq!(t.finish(), SearchStarts([2000, 17]));
        t.freed(5, 20);
        assert_eq!(t.finish(), SearchStarts([5, 5]));
    }
}
