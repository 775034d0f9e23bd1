//! Edit hints: a leaf that was copied from another page and then changed only in place
//! (values overwritten; no entry added, removed or moved) names that page and which of its
//! entries may differ from it, so that a diff between the two reads those entries only
//! instead of both pages whole.
//!
//! Layout (in the page header, see docs/format.md): `base_page` and `base_txn`, the id and
//! birth of the page copied from, and `changed`, 128 bits: bit `i % 128` is set for every
//! entry `i` that may differ. A leaf of at most 128 entries names them exactly; a longer
//! one names a superset.
//!
//! Invariants:
//! - A hint is true by construction: the pager writes it when it seals a leaf, from a byte
//!   comparison of the leaf with the page it was copied from ([`NodeView::changed_in_place`]):
//!   both have the same layout (count, slots, free end, garbage) and every entry whose bit
//!   is clear is equal byte for byte, at the same index.
//! - No hint is `base_txn` 0 with the other fields 0. New pages, branches, and copies that
//!   keep a page's birth (compaction's moves, backups) carry none
//!   ([`super::node::rebirth`] clears it).
//! - A reader trusts a hint only against the very page it names (same id and birth; a birth
//!   is never txn 0) and with the same entry count.
//!
//! [`NodeView::changed_in_place`]: super::node::NodeView::changed_in_place

use super::{PageHeader, U64Le};

/// Bits in a hint's set of changed entries.
pub const HINT_BITS: usize = 128;

/// A leaf's edit hint, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EditHint {
    /// Id of the page the leaf was copied from.
    pub base_page: u64,
    /// Birth txn of that page (never 0).
    pub base_txn: u64,
    /// Bit `i % 128` set: entry `i` may differ from the base's.
    pub changed: u128,
}

impl EditHint {
    /// A hint against page `base_page` born in `base_txn`, naming `changed` (entry indices).
    pub fn new(base_page: u64, base_txn: u64, changed: &[usize]) -> EditHint {
        let changed = changed
            .iter()
            .fold(0u128, |bits, &i| bits | 1 << (i % HINT_BITS));
        EditHint {
            base_page,
            base_txn,
            changed,
        }
    }

    /// The entries of a leaf of `count` that may differ, in ascending order.
    pub fn entries(&self, count: usize) -> Entries {
        Entries {
            changed: self.changed,
            left: self.changed,
            block: 0,
            count,
        }
    }
}

/// The entries a hint names in a leaf of `count` entries: for each block of 128 entries, the
/// set bits of `changed` offset by the block's first index.
pub struct Entries {
    changed: u128,
    /// Bits of the current block not yet given.
    left: u128,
    block: usize,
    count: usize,
}

impl Iterator for Entries {
    type Item = usize;
    fn next(&mut self) -> Option<usize> {
        // Bounded: every round gives an entry, clears a bit, or moves to the next block, and
        // a block at or past `count` ends the walk.
        loop {
            if self.block >= self.count || self.changed == 0 {
                return None;
            }
            if self.left == 0 {
                self.block += HINT_BITS;
                self.left = self.changed;
                continue;
            }
            let i = self.block + self.left.trailing_zeros() as usize;
            self.left &= self.left - 1;
            if i < self.count {
                return Some(i);
            }
            // Bits ascend: the rest of this block lies past `count` too.
            self.left = 0;
        }
    }
}

/// The hint in `page`'s header, if any (the readers take it from a header already read:
/// [`between`]).
#[cfg(any(test, feature = "testkit"))]
pub fn read(page: &[u8]) -> Option<EditHint> {
    if page.len() < super::HEADER_BYTES {
        return None;
    }
    of_header(&PageHeader::read(page))
}

/// The hint in a page header already read, if any.
pub fn of_header(header: &PageHeader) -> Option<EditHint> {
    let base_txn = header.base_txn.get();
    (base_txn != 0).then(|| EditHint {
        base_page: header.base_page.get(),
        base_txn,
        changed: u128::from(header.changed[0].get()) | u128::from(header.changed[1].get()) << 64,
    })
}

/// The hint that one of two pages carries against the other, if any: page `k`'s header is
/// `headers[k]` and its id and birth are `at[k]`. The second page's is looked at first.
pub fn between(headers: [&PageHeader; 2], at: [(u64, u64); 2]) -> Option<EditHint> {
    let names = |k: usize| of_header(headers[k]).filter(|h| (h.base_page, h.base_txn) == at[1 - k]);
    names(1).or_else(|| names(0))
}

/// Writes `hint` (or no hint) into `page`'s header.
pub fn write(page: &mut [u8], hint: Option<&EditHint>) {
    let mut header = PageHeader::read(page);
    set(&mut header, hint);
    header.write(page);
}

/// Sets `hint` (or no hint) in a header about to be written.
pub fn set(header: &mut PageHeader, hint: Option<&EditHint>) {
    let hint = hint.copied().unwrap_or(EditHint {
        base_page: 0,
        base_txn: 0,
        changed: 0,
    });
    assert!(
        hint.base_txn != 0 || (hint.base_page == 0 && hint.changed == 0),
        "a hint names a real birth"
    );
    header.base_page = U64Le::new(hint.base_page);
    header.base_txn = U64Le::new(hint.base_txn);
    header.changed = [
        U64Le::new(hint.changed as u64),
        U64Le::new((hint.changed >> 64) as u64),
    ];
}

#[cfg(test)]
mod tests {
    use super::{read, write, EditHint};
    use crate::format::HEADER_BYTES;

    #[test]
    fn a_hint_reads_back_and_none_leaves_zeros() {
        let mut page = vec![0u8; 4096];
        assert_eq!(read(&page), None);
        let hint = EditHint::new(77, 5, &[3, 70, 127]);
        write(&mut page, Some(&hint));
        assert_eq!(read(&page), Some(hint));
        assert_eq!(read(&page[..HEADER_BYTES - 1]), None);
        write(&mut page, None);
        assert_eq!(read(&page), None);
        assert!(page.iter().all(|&b| b == 0));
    }

    #[test]
    fn the_entries_named_are_exact_up_to_128_and_a_superset_past_it() {
        let hint = EditHint::new(1, 1, &[0, 9, 64, 127]);
        assert_eq!(hint.entries(100).collect::<Vec<_>>(), [0, 9, 64]);
        assert_eq!(hint.entries(128).collect::<Vec<_>>(), [0, 9, 64, 127]);
        let long = EditHint::new(1, 1, &[130]);
        assert_eq!(long.entries(300).collect::<Vec<_>>(), [2, 130, 258]);
        assert_eq!(EditHint::new(1, 1, &[]).entries(50).count(), 0);
    }
}
