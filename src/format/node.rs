//! Slotted node pages for B+tree leaves and branches: a view to decode, in-place edits for
//! dirty pages, and entry encoders.
//!
//! Layout: `[header 32][slot 0..n: u16 offset + u32 key head][free][entries, packed from the end]`.
//! Leaf entry: `klen u16 | flags u8 | vlen u32 | key | value` or, when `flags & OVERFLOW`,
//! `... | key | ptr(20)` to a run of raw overflow pages holding `vlen` bytes.
//! Branch entry: `klen u16 | key | ptr(20)`; entry 0's key is empty and means "−∞", entry i's
//! key is the least key that child i may hold.
//!
//! Invariants:
//! - Every accessor on a [`NodeView`] is bounds-checked and returns `Error::Corrupted` rather
//!   than reading out of bounds, so any bytes can be viewed without a panic.
//! - [`validate`] proves a page well-formed before it is edited in place; edits assert it.
//! - Any entry is at most [`max_entry_bytes`], a third of the usable space, so a split of an
//!   overflowing node always yields two nodes that fit.

use super::hint::{self, EditHint};
use super::{tag, PageHeader, Ptr, U16Le, U32Le, U64Le, HEADER_BYTES, PTR_BYTES};
use crate::{Error, Result};

/// Leaf entry flag: the value lives in an overflow run.
pub const OVERFLOW: u8 = 1;
const LEAF_ENTRY_HEADER: usize = 7;
const BRANCH_ENTRY_HEADER: usize = 2;
/// A slot: the entry's offset (u16) and the key's head (its first four bytes, zero-padded,
/// big-endian), so that a search mostly compares heads in the slot array and touches one
/// entry at the end.
pub const SLOT_BYTES: usize = 6;

/// The head of a key: its first four bytes, zero-padded, as a big-endian integer. Heads order
/// like the keys they come from (a < b implies head(a) ≤ head(b)).
pub fn key_head(key: &[u8]) -> u32 {
    match *key {
        [a, b, c, d, ..] => u32::from_be_bytes([a, b, c, d]),
        [a, b, c] => u32::from_be_bytes([a, b, c, 0]),
        [a, b] => u32::from_be_bytes([a, b, 0, 0]),
        [a] => u32::from_be_bytes([a, 0, 0, 0]),
        [] => 0,
    }
}

/// Space for slots and entries in a page.
pub const fn usable_bytes(page_size: usize) -> usize {
    page_size - HEADER_BYTES
}

/// The largest entry (including its slot), so that any three fit in one page.
pub const fn max_entry_bytes(page_size: usize) -> usize {
    usable_bytes(page_size) / 3
}

/// Whether a value of `value_len` bytes is stored inline in its leaf entry (else in an
/// overflow run): the one answer to that question.
pub fn fits_inline(key_len: usize, value_len: usize, page_size: usize) -> bool {
    leaf_inline_bytes(key_len, value_len) <= max_entry_bytes(page_size)
}

/// Bytes (with slot) of a leaf entry holding the value inline.
pub const fn leaf_inline_bytes(key_len: usize, value_len: usize) -> usize {
    SLOT_BYTES + LEAF_ENTRY_HEADER + key_len + value_len
}

/// Bytes (with slot) of a leaf entry whose value is in an overflow run.
pub fn leaf_overflow_bytes(key_len: usize) -> usize {
    SLOT_BYTES + LEAF_ENTRY_HEADER + key_len + PTR_BYTES
}

/// Bytes (with slot) of a branch entry.
pub fn branch_entry_bytes(key_len: usize) -> usize {
    SLOT_BYTES + BRANCH_ENTRY_HEADER + key_len + PTR_BYTES
}

/// A leaf's value as stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafValue<'a> {
    /// The bytes themselves.
    Inline(&'a [u8]),
    /// A run of overflow pages: `ptr.page` is the first, `ptr.crc` covers the `len` bytes.
    Overflow {
        /// Where the run starts, with its checksum and birth.
        ptr: Ptr,
        /// Length of the value in bytes.
        len: u64,
    },
}

/// A read-only, bounds-checked view of a node page.
#[derive(Clone, Copy)]
pub struct NodeView<'a> {
    page: &'a [u8],
    id: u64,
    count: usize,
    level: u8,
    is_leaf: bool,
}

impl<'a> NodeView<'a> {
    /// Views `page` (page id `id`, for error reports). Checks the tag and the header bounds.
    #[inline]
    pub fn new(page: &'a [u8], id: u64) -> Result<Self> {
        if page.len() < HEADER_BYTES {
            return Err(Error::corrupted(id, "page shorter than its header"));
        }
        let header = PageHeader::read(page);
        let is_leaf = match header.tag {
            tag::LEAF => true,
            tag::BRANCH => false,
            other => {
                return Err(Error::corrupted(
                    id,
                    format!("not a node page (tag {other})"),
                ))
            }
        };
        if is_leaf != (header.level == 0) {
            return Err(Error::corrupted(id, "leaf tag and level disagree"));
        }
        let count = header.count.get() as usize;
        let free_end = header.free_end.get() as usize;
        if HEADER_BYTES + count * SLOT_BYTES > free_end || free_end > page.len() {
            return Err(Error::corrupted(id, "node header bounds out of range"));
        }
        if !is_leaf && count == 0 {
            return Err(Error::corrupted(id, "branch with no children"));
        }
        Ok(NodeView {
            page,
            id,
            count,
            level: header.level,
            is_leaf,
        })
    }

    /// Number of entries.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The slot array's bytes (in bounds: checked by [`NodeView::new`]).
    #[inline]
    pub fn slot_bytes(&self) -> &'a [u8] {
        &self.page[HEADER_BYTES..HEADER_BYTES + self.count * SLOT_BYTES]
    }
    /// Whether this is a leaf.
    pub fn is_leaf(&self) -> bool {
        self.is_leaf
    }
    /// Height above the leaves.
    pub fn level(&self) -> u8 {
        self.level
    }
    /// The page id given at construction.
    pub fn id(&self) -> u64 {
        self.id
    }
    /// The whole page behind the view (for a copy that rewrites its pointers).
    pub fn page_bytes(&self) -> &'a [u8] {
        self.page
    }

    #[cold]
    fn corrupt(&self, what: &str) -> Error {
        Error::corrupted(self.id, what.to_string())
    }

    /// Offset of entry `i`, checked to lie past the slot array.
    #[inline]
    fn offset(&self, i: usize) -> Result<usize> {
        self.checked_offset(i)
            .ok_or_else(|| self.corrupt("slot offset out of range"))
    }

    /// [`NodeView::offset`] without the error: None when it lies out of range.
    #[inline(always)]
    fn checked_offset(&self, i: usize) -> Option<usize> {
        debug_assert!(i < self.count);
        let at = HEADER_BYTES + i * SLOT_BYTES;
        let off = u16::from_le_bytes(self.page[at..at + 2].try_into().expect("2 bytes")) as usize;
        (off >= HEADER_BYTES + self.count * SLOT_BYTES && off < self.page.len()).then_some(off)
    }

    /// The key head stored in slot `i`.
    #[inline]
    fn head(&self, i: usize) -> u32 {
        let at = HEADER_BYTES + i * SLOT_BYTES + 2;
        u32::from_le_bytes(self.page[at..at + 4].try_into().expect("4 bytes"))
    }

    #[inline]
    fn bytes(&self, from: usize, len: usize) -> Result<&'a [u8]> {
        self.page
            .get(from..from.saturating_add(len))
            .ok_or_else(|| self.corrupt("entry runs past the page end"))
    }

    /// Key of entry `i`.
    #[inline]
    pub fn key(&self, i: usize) -> Result<&'a [u8]> {
        let rest = &self.page[self.offset(i)?..];
        let [k0, k1, ..] = *rest else {
            return Err(self.corrupt("entry runs past the page end"));
        };
        let at = if self.is_leaf {
            LEAF_ENTRY_HEADER
        } else {
            BRANCH_ENTRY_HEADER
        };
        rest.get(at..at + u16::from_le_bytes([k0, k1]) as usize)
            .ok_or_else(|| self.corrupt("entry runs past the page end"))
    }

    /// Key and value of leaf entry `i`, decoded together (the cursor's step).
    #[inline]
    pub fn key_value(&self, i: usize) -> Result<(&'a [u8], LeafValue<'a>)> {
        assert!(self.is_leaf, "key_value() on a branch");
        // One bounds check per part, on the entry's tail of the page (a scan's step).
        let past_end = || self.corrupt("entry runs past the page end");
        let head = leaf_head(&self.page[self.offset(i)?..]).ok_or_else(past_end)?;
        let (key, body) = head.rest.split_at_checked(head.klen).ok_or_else(past_end)?;
        let value = if head.flags == 0 {
            LeafValue::Inline(body.get(..head.vlen).ok_or_else(past_end)?)
        } else if head.flags & OVERFLOW != 0 {
            LeafValue::Overflow {
                ptr: Ptr::decode(body.get(..PTR_BYTES).ok_or_else(past_end)?),
                len: head.vlen as u64,
            }
        } else {
            return Err(self.corrupt("unknown leaf entry flags"));
        };
        Ok((key, value))
    }

    /// Key and value of leaf entry `i` when its value is stored inline and the entry passes
    /// [`NodeView::key_value`]'s checks; None otherwise, and `key_value` then says which.
    /// A scan's step: no error is built and nothing is returned through memory.
    #[inline(always)]
    pub fn inline_entry(&self, i: usize) -> Option<(&'a [u8], &'a [u8])> {
        assert!(self.is_leaf, "inline_entry() on a branch");
        let head = leaf_head(&self.page[self.checked_offset(i)?..])?;
        if head.flags != 0 {
            return None;
        }
        let (key, body) = head.rest.split_at_checked(head.klen)?;
        Some((key, body.get(..head.vlen)?))
    }

    /// Whether some entry of this leaf is not plainly inline (an overflow value, or flags
    /// that [`NodeView::value`] refuses): one flag byte per entry, so that a walk for
    /// pointers skips the common leaf, which has none, without decoding its entries.
    pub fn any_flagged(&self) -> Result<bool> {
        assert!(self.is_leaf, "any_flagged() on a branch");
        for i in 0..self.count {
            if self.bytes(self.offset(i)?, LEAF_ENTRY_HEADER)?[2] != 0 {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Value of leaf entry `i`.
    pub fn value(&self, i: usize) -> Result<LeafValue<'a>> {
        self.key_value(i).map(|(_, value)| value)
    }

    /// Child pointer of branch entry `i`.
    #[inline]
    pub fn child(&self, i: usize) -> Result<Ptr> {
        Ok(Ptr::decode(self.child_bytes(i)?))
    }

    /// The encoded child pointer of branch entry `i` (the bytes [`NodeView::child`] decodes),
    /// so that two pointers are compared without decoding either.
    #[inline(always)]
    pub fn child_bytes(&self, i: usize) -> Result<&'a [u8; PTR_BYTES]> {
        assert!(!self.is_leaf, "child_bytes() on a leaf");
        let entry = &self.page[self.offset(i)?..];
        let past_end = || self.corrupt("entry runs past the page end");
        let [k0, k1, rest @ ..] = entry else {
            return Err(past_end());
        };
        const _: () = assert!(BRANCH_ENTRY_HEADER == 2);
        let klen = u16::from_le_bytes([*k0, *k1]) as usize;
        let ptr = rest.get(klen..klen + PTR_BYTES).ok_or_else(past_end)?;
        Ok(ptr.try_into().expect("PTR_BYTES bytes"))
    }

    /// The children born in `txn` (in a write transaction: the dirty ones), with their
    /// indices. Reads only each child's birth txn, since a branch has about a hundred children
    /// and a small commit changes one of them.
    pub fn children_born_in(&self, txn: u64) -> Result<Vec<(usize, Ptr)>> {
        assert!(!self.is_leaf, "children_born_in() on a leaf");
        const TXN_AT: usize = std::mem::offset_of!(super::PtrDisk, txn);
        let mut born = Vec::new();
        for i in 0..self.count {
            // One bounds check for the key length and one for the birth, on the page's tail
            // from the entry on; the pointer is decoded only for a child born in `txn`.
            let rest = &self.page[self.offset(i)?..];
            let [k0, k1, ..] = *rest else {
                return Err(self.corrupt("entry runs past the page end"));
            };
            let at = BRANCH_ENTRY_HEADER + u16::from_le_bytes([k0, k1]) as usize + TXN_AT;
            let Some(&[t0, t1, t2, t3, t4, t5, t6, t7]) = rest.get(at..at + 8) else {
                return Err(self.corrupt("entry runs past the page end"));
            };
            if u64::from_le_bytes([t0, t1, t2, t3, t4, t5, t6, t7]) == txn {
                born.push((i, self.child(i)?));
            }
        }
        Ok(born)
    }

    /// The whole encoded entry `i` (without its slot).
    #[inline]
    pub fn entry(&self, i: usize) -> Result<&'a [u8]> {
        // One bounds check for the entry's header and one for the whole entry, on the page's
        // tail from the entry on.
        let rest = &self.page[self.offset(i)?..];
        let len = if self.is_leaf {
            let head =
                leaf_head(rest).ok_or_else(|| self.corrupt("entry runs past the page end"))?;
            LEAF_ENTRY_HEADER + head.klen + head.body_len()
        } else {
            let [k0, k1, ..] = *rest else {
                return Err(self.corrupt("entry runs past the page end"));
            };
            BRANCH_ENTRY_HEADER + u16::from_le_bytes([k0, k1]) as usize + PTR_BYTES
        };
        rest.get(..len)
            .ok_or_else(|| self.corrupt("entry runs past the page end"))
    }

    /// Every encoded entry, in order (for a node read whole: one loop, each entry checked as
    /// by [`NodeView::entry`]).
    pub fn entries(&self) -> Result<Vec<&'a [u8]>> {
        let mut entries = Vec::with_capacity(self.count + 1);
        for i in 0..self.count {
            entries.push(self.entry(i)?);
        }
        Ok(entries)
    }

    /// When `other` has this node's layout (the same kind, count, slots, `free_end` and
    /// garbage, as after values were overwritten in place), fills `changed` with the indices
    /// (ascending) of the entries over a byte of the entry area where the two differ, and
    /// returns true: every other entry is equal byte for byte. Returns false (and leaves
    /// `changed` empty) when the layouts differ.
    pub fn changed_in_place(&self, other: &NodeView<'_>, changed: &mut Vec<usize>) -> Result<bool> {
        changed.clear();
        let (a, b) = (self.page, other.page);
        let (header_a, header_b) = (PageHeader::read(a), PageHeader::read(b));
        let same_layout = self.count == other.count
            && self.is_leaf == other.is_leaf
            && a.len() == b.len()
            && header_a.free_end == header_b.free_end
            && header_a.garbage == header_b.garbage
            && self.slot_bytes() == other.slot_bytes();
        if !same_layout {
            return Ok(false);
        }
        let mut from = header_a.free_end.get() as usize;
        // Bounded: every round moves `from` past a differing byte.
        while let Some(at) = first_difference(&a[from..], &b[from..]) {
            let (entry, next) = self.entry_over(from + at)?;
            changed.extend(entry);
            from = next;
        }
        // Entries lie in any order in the area; the caller wants key order.
        changed.sort_unstable();
        changed.dedup();
        Ok(true)
    }

    /// When one of the two leaves carries an edit hint against the other (this one at
    /// `self_at`, `other` at `other_at`: id and birth), fills `changed` with the entries the
    /// hint names (ascending) and returns true: every other entry is equal byte for byte, at
    /// the same index. Returns false (and leaves `changed` empty) otherwise;
    /// [`NodeView::changed_in_place`] then compares the pages. The layouts are the same by
    /// the hint's construction, so only the counts are checked here: a node read whole
    /// would cost the misses the hint saves.
    pub fn hinted_changes(
        &self,
        other: &NodeView<'_>,
        self_at: (u64, u64),
        other_at: (u64, u64),
        changed: &mut Vec<usize>,
    ) -> bool {
        changed.clear();
        if !self.is_leaf || !other.is_leaf || self.count != other.count {
            return false;
        }
        let headers = [self.page, other.page].map(PageHeader::read);
        let Some(hint) = hint::between([&headers[0], &headers[1]], [self_at, other_at]) else {
            return false;
        };
        changed.extend(hint.entries(self.count));
        true
    }

    /// The entry whose bytes hold byte `at` of the page, if any (`at` may lie in the dead
    /// bytes between entries), and where a search for the next difference goes on: past that
    /// entry, or at the next entry's start. Either is past `at`.
    fn entry_over(&self, at: usize) -> Result<(Option<usize>, usize)> {
        // A leaf filled in key order lays its entries out from the page's end in index
        // order, so a binary search by offset finds the entry; it is proven by holding `at`
        // (entries never overlap), and any other layout takes the scan.
        let raw_offset = |i: usize| slot(self.page, i);
        let (mut lo, mut hi) = (0, self.count);
        // Bounded: halves [lo, hi) each round.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if raw_offset(mid) > at {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo < self.count && raw_offset(lo) <= at {
            let end = raw_offset(lo) + self.entry(lo)?.len();
            if at < end {
                return Ok((Some(lo), end));
            }
        }
        self.entry_over_by_scan(at)
    }

    /// [`NodeView::entry_over`] for any layout: one look at every slot.
    fn entry_over_by_scan(&self, at: usize) -> Result<(Option<usize>, usize)> {
        let slots_end = HEADER_BYTES + self.count * SLOT_BYTES;
        // (offset, index) of the entry that starts last at or before `at`, and the first
        // offset past `at`.
        let (mut over, mut next) = ((0, usize::MAX), self.page.len());
        let slots = self.page[HEADER_BYTES..slots_end].chunks_exact(SLOT_BYTES);
        // Bounded: one round per slot.
        for (i, slot) in slots.enumerate() {
            let off = u16::from_le_bytes([slot[0], slot[1]]) as usize;
            if off < slots_end || off >= self.page.len() {
                return Err(self.corrupt("slot offset out of range"));
            }
            if off <= at {
                if off >= over.0 {
                    over = (off, i);
                }
            } else if off < next {
                next = off;
            }
        }
        if over.1 != usize::MAX {
            let end = over.0 + self.entry(over.1)?.len();
            if end > at {
                return Ok((Some(over.1), end));
            }
        }
        Ok((None, next))
    }

    /// How entry `i`'s key orders against entry `j`'s, by their heads first (as a search
    /// does): for a page that passed [`validate`], whose heads agree with their keys.
    pub fn order_between(&self, i: usize, j: usize) -> Result<std::cmp::Ordering> {
        self.order_at(i, self.key(j)?, self.head(j))
    }

    /// How entry `i`'s key orders against `key` (whose head is `head`): by the heads in the
    /// slots, and by the keys only when the heads are equal.
    #[inline]
    pub fn order_at(&self, i: usize, key: &[u8], head: u32) -> Result<std::cmp::Ordering> {
        match self.head(i).cmp(&head) {
            std::cmp::Ordering::Equal => Ok(compare_keys(self.key(i)?, key)),
            unequal => Ok(unequal),
        }
    }

    /// Leaf search: `Ok(i)` when entry i has `key`, else `Err(i)`, the insertion point.
    pub fn search(&self, key: &[u8]) -> Result<std::result::Result<usize, usize>> {
        let head = key_head(key);
        let first = self.first_slot_where(0, |h| h >= head);
        if first == self.count || self.head(first) != head {
            return Ok(Err(first));
        }
        // The entries of the key's own head, ordered by their keys: most often one, the key.
        match compare_keys(self.key(first)?, key) {
            std::cmp::Ordering::Less => {}
            std::cmp::Ordering::Equal => return Ok(Ok(first)),
            std::cmp::Ordering::Greater => return Ok(Err(first)),
        }
        let past = self.first_slot_where(first + 1, |h| h > head);
        let at = self.first_key_where(first + 1, past, |k| compare_keys(k, key).is_ge())?;
        Ok(if at < past && self.key(at)? == key {
            Ok(at)
        } else {
            Err(at)
        })
    }

    /// The first entry in `lo..hi` whose key satisfies `past`, which must hold of a suffix of
    /// that range (keys are in order): a binary search that reads the keys.
    fn first_key_where(
        &self,
        mut lo: usize,
        mut hi: usize,
        past: impl Fn(&[u8]) -> bool,
    ) -> Result<usize> {
        // Bounded: halves [lo, hi) each round.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if past(self.key(mid)?) {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        Ok(lo)
    }

    /// The first slot at or after `from` whose key head satisfies `past`, which must hold of
    /// a suffix of the slots (heads are in key order): a search by heads alone, which reads
    /// no entry.
    #[inline]
    fn first_slot_where(&self, from: usize, past: impl Fn(u32) -> bool) -> usize {
        let slots = &self.slot_bytes()[from * SLOT_BYTES..];
        let slots: &[[u8; SLOT_BYTES]] = bytemuck::cast_slice(slots);
        from + slots.partition_point(|s| !past(u32::from_le_bytes([s[2], s[3], s[4], s[5]])))
    }

    /// [`NodeView::search`] for a key expected at `hint` (the next of an ascending run):
    /// two key comparisons when it is there, a full search when not.
    pub fn search_near(
        &self,
        key: &[u8],
        hint: usize,
    ) -> Result<std::result::Result<usize, usize>> {
        let head = key_head(key);
        if hint <= self.count && (hint == 0 || self.order_at(hint - 1, key, head)?.is_lt()) {
            if hint == self.count {
                return Ok(Err(hint));
            }
            match self.order_at(hint, key, head)? {
                std::cmp::Ordering::Equal => return Ok(Ok(hint)),
                std::cmp::Ordering::Greater => return Ok(Err(hint)),
                std::cmp::Ordering::Less => {}
            }
        }
        self.search(key)
    }

    /// Branch search: the index of the child whose range holds `key`.
    pub fn child_index(&self, key: &[u8]) -> Result<usize> {
        // Entry 0 means −∞: find the last entry in 1.. whose key is ≤ `key`. Heads order like
        // keys, so they alone place `key` except among the entries of its own head.
        let head = key_head(key);
        let past = self.first_slot_where(1, |h| h > head);
        if past == 1 || self.head(past - 1) != head {
            return Ok(past - 1);
        }
        let first = self.first_slot_where(1, |h| h >= head);
        Ok(self.first_key_where(first, past, |k| compare_keys(k, key).is_gt())? - 1)
    }

    /// Bytes of slots and live entries.
    pub fn used_bytes(&self) -> usize {
        used_bytes(self.page)
    }
}

/// Bytewise key order, with 8-byte keys compared as big-endian integers: the refcount tree's
/// keys (page ids) all share a zero head, so its searches compare whole keys at every step.
#[inline]
fn compare_keys(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    match (<[u8; 8]>::try_from(a), <[u8; 8]>::try_from(b)) {
        (Ok(a), Ok(b)) => u64::from_be_bytes(a).cmp(&u64::from_be_bytes(b)),
        _ => a.cmp(b),
    }
}

/// Bytes compared with one `memcmp` (vectorized) while looking for a difference: long enough
/// that the call's cost is small against the bytes. A chunk found to differ is halved (one
/// `memcmp` per halving) down to [`SPAN_WORDS`] bytes, then searched a word at a time.
const SPAN_CHUNK: usize = 1024;
/// Below this many bytes a differing range is searched a word at a time.
const SPAN_WORDS: usize = 64;

/// Where `a` and `b` (of one length) first differ.
fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    let mut at = 0;
    // Bounded: moves a chunk forward each round.
    while at < a.len() {
        let end = (at + SPAN_CHUNK).min(a.len());
        if a[at..end] != b[at..end] {
            return Some(at + first_in(&a[at..end], &b[at..end]));
        }
        at = end;
    }
    None
}

/// Where `a` and `b` (of one length, known to differ) first differ.
fn first_in(mut a: &[u8], mut b: &[u8]) -> usize {
    let mut at = 0;
    // Bounded: halves the range each round.
    while a.len() > SPAN_WORDS {
        let mid = a.len() / 2;
        if a[..mid] == b[..mid] {
            (a, b, at) = (&a[mid..], &b[mid..], at + mid);
        } else {
            (a, b) = (&a[..mid], &b[..mid]);
        }
    }
    let words = a.chunks_exact(8).zip(b.chunks_exact(8));
    for (w, (p, q)) in words.enumerate() {
        let diff = word(p) ^ word(q);
        if diff != 0 {
            // Little-endian: the lowest differing byte holds the lowest set bit.
            return at + 8 * w + (diff.trailing_zeros() / 8) as usize;
        }
    }
    let tail = a.len() / 8 * 8;
    at + (tail..a.len())
        .find(|&i| a[i] != b[i])
        .expect("the ranges differ")
}

/// Eight bytes as a little-endian word.
#[inline]
fn word(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes.try_into().expect("8 bytes"))
}

/// Proves that every slot and entry of a node page lies in bounds and that the free-space
/// accounting adds up, so that in-place edits cannot go out of bounds.
pub fn validate(page: &[u8], id: u64) -> Result<()> {
    let view = NodeView::new(page, id)?;
    let header = PageHeader::read(page);
    let free_end = header.free_end.get() as usize;
    let slots_end = HEADER_BYTES + view.count() * SLOT_BYTES;
    // One pass over the slots, each entry decoded once (a loop for each kind of node): this
    // runs on every page copied for writing and again before every node page is written.
    let slots = page[HEADER_BYTES..slots_end].chunks_exact(SLOT_BYTES);
    let live = if view.is_leaf() {
        live_bytes(page, slots, free_end, true)
    } else {
        live_bytes(page, slots, free_end, false)
    };
    let live = live.map_err(|what| Error::corrupted(id, what.to_string()))?;
    let region = page.len() - free_end;
    if live + header.garbage.get() as usize != region {
        return Err(Error::corrupted(
            id,
            "entry bytes do not add up".to_string(),
        ));
    }
    Ok(())
}

/// [`validate`]'s pass over the slots of a leaf (`leaf`) or branch: the bytes of their
/// entries. Inlined in both calls, so that each kind of node gets a loop of its own.
#[inline(always)]
fn live_bytes(
    page: &[u8],
    slots: std::slice::ChunksExact<'_, u8>,
    free_end: usize,
    leaf: bool,
) -> std::result::Result<usize, &'static str> {
    let slots_end = HEADER_BYTES + slots.len() * SLOT_BYTES;
    let mut live = 0usize;
    for (i, slot) in slots.enumerate() {
        let off = u16::from_le_bytes([slot[0], slot[1]]) as usize;
        let head = u32::from_le_bytes([slot[2], slot[3], slot[4], slot[5]]);
        if off < slots_end || off >= page.len() {
            return Err("slot offset out of range");
        }
        if off < free_end {
            return Err("entry below the free end");
        }
        let entry = &page[off..];
        let (key_at, klen, body) = if leaf {
            let head = leaf_head(entry).ok_or("entry runs past the page end")?;
            (LEAF_ENTRY_HEADER, head.klen, head.body_len())
        } else {
            let [k0, k1, ..] = *entry else {
                return Err("entry runs past the page end");
            };
            (
                BRANCH_ENTRY_HEADER,
                u16::from_le_bytes([k0, k1]) as usize,
                PTR_BYTES,
            )
        };
        let len = key_at + klen + body;
        if len > entry.len() {
            return Err("entry runs past the page end");
        }
        if !leaf && i == 0 && klen != 0 {
            return Err("first branch key is not empty");
        }
        if head != key_head(&entry[key_at..key_at + klen]) {
            return Err("slot key head disagrees with its key");
        }
        live += len;
    }
    Ok(live)
}

/// A leaf entry's 7-byte header, decoded: the one reading of its layout.
struct LeafHead<'a> {
    klen: usize,
    flags: u8,
    /// The value's length: the bytes stored inline, or an overflow value's whole length.
    vlen: usize,
    /// The bytes after the header: the key, then the value or its overflow pointer.
    rest: &'a [u8],
}

impl LeafHead<'_> {
    /// The bytes the value takes in the entry.
    fn body_len(&self) -> usize {
        if self.flags & OVERFLOW != 0 {
            PTR_BYTES
        } else {
            self.vlen
        }
    }
}

/// The header of the leaf entry that `entry` starts with; None when it is cut short.
#[inline(always)]
fn leaf_head(entry: &[u8]) -> Option<LeafHead<'_>> {
    let [k0, k1, flags, v0, v1, v2, v3, rest @ ..] = entry else {
        return None;
    };
    const _: () = assert!(LEAF_ENTRY_HEADER == 7);
    Some(LeafHead {
        klen: u16::from_le_bytes([*k0, *k1]) as usize,
        flags: *flags,
        vlen: u32::from_le_bytes([*v0, *v1, *v2, *v3]) as usize,
        rest,
    })
}

/// Bytes of slots and live entries of the node in `page`, read from its header alone.
pub fn used_bytes(page: &[u8]) -> usize {
    let header = PageHeader::read(page);
    // Saturating: the header of an unvalidated page may claim more than the page holds.
    let live = page
        .len()
        .saturating_sub(header.free_end.get() as usize)
        .saturating_sub(header.garbage.get() as usize);
    header.count.get() as usize * SLOT_BYTES + live
}

/// Starts an empty node in `page`.
pub fn init(page: &mut [u8], level: u8, id: u64, txn: u64) {
    let header = PageHeader {
        tag: if level == 0 { tag::LEAF } else { tag::BRANCH },
        level,
        count: U16Le::new(0),
        free_end: U32Le::new(page.len() as u32),
        garbage: U32Le::new(0),
        page_id: U64Le::new(id),
        txn: U64Le::new(txn),
        ..PageHeader::default()
    };
    header.write(page);
}

/// Sets the id and birth of a page copied from another (copy-on-write, a move, a backup).
/// The copy has no edit hint: the pager gives a leaf one when it seals it.
pub fn rebirth(page: &mut [u8], id: u64, txn: u64) {
    let mut header = PageHeader::read(page);
    header.page_id = U64Le::new(id);
    header.txn = U64Le::new(txn);
    hint::set(&mut header, None);
    header.write(page);
}

/// Gives the leaf `page` the edit hint against `base` (id and birth `base_at`), the page it
/// was copied from, when the two have one layout; else clears its hint. A branch gets none.
pub fn settle_hint(page: &mut [u8], id: u64, base: &NodeView<'_>, base_at: (u64, u64)) {
    let mut changed = Vec::new();
    let hint = match NodeView::new(page, id) {
        Ok(view) if view.is_leaf() && base.is_leaf() && base_at.1 != 0 => {
            match base.changed_in_place(&view, &mut changed) {
                Ok(true) => Some(EditHint::new(base_at.0, base_at.1, &changed)),
                _ => None,
            }
        }
        _ => None,
    };
    hint::write(page, hint.as_ref());
}

/// Free bytes a node would have after compaction.
pub fn free_bytes(page: &[u8]) -> usize {
    let header = PageHeader::read(page);
    let slots_end = HEADER_BYTES + header.count.get() as usize * SLOT_BYTES;
    header.free_end.get() as usize - slots_end + header.garbage.get() as usize
}

fn set_slot(page: &mut [u8], i: usize, off: usize, head: u32) {
    let at = HEADER_BYTES + i * SLOT_BYTES;
    page[at..at + 2].copy_from_slice(&(off as u16).to_le_bytes());
    page[at + 2..at + 6].copy_from_slice(&head.to_le_bytes());
}

/// The key inside an encoded entry (as returned by [`NodeView::entry`]) of a leaf (`leaf`)
/// or branch.
pub fn entry_key(entry: &[u8], leaf: bool) -> &[u8] {
    let klen = u16::from_le_bytes([entry[0], entry[1]]) as usize;
    let at = if leaf {
        LEAF_ENTRY_HEADER
    } else {
        BRANCH_ENTRY_HEADER
    };
    &entry[at..at + klen]
}

/// For a prefetch ahead of a diff: calls `each` with the bytes from the start of each of the
/// first `max` entries that the edit hint of one of two leaf pages names against the other
/// (page `k` is the one at `at[k]`: id and birth), in both pages. The pages are raw and
/// unchecked, since a damaged one only makes a useless prefetch: only bounds are checked.
pub fn hinted_entry_starts<'a>(
    pages: [&'a [u8]; 2],
    at: [(u64, u64); 2],
    max: usize,
    mut each: impl FnMut(&'a [u8]),
) {
    if pages.iter().any(|p| p.len() < HEADER_BYTES) {
        return;
    }
    let headers = pages.map(PageHeader::read);
    let count = headers[0].count.get() as usize;
    let slots_end = HEADER_BYTES + count * SLOT_BYTES;
    if headers[1].count.get() as usize != count || pages.iter().any(|p| slots_end > p.len()) {
        return;
    }
    let Some(hint) = hint::between([&headers[0], &headers[1]], at) else {
        return;
    };
    for i in hint.entries(count).take(max) {
        for page in pages {
            let off = slot(page, i);
            if off >= slots_end && off < page.len() {
                each(&page[off..]);
            }
        }
    }
}

fn slot(page: &[u8], i: usize) -> usize {
    let at = HEADER_BYTES + i * SLOT_BYTES;
    u16::from_le_bytes([page[at], page[at + 1]]) as usize
}

/// Rewrites the entries of a validated page contiguously at its end, dropping garbage.
fn compact(page: &mut [u8], id: u64) {
    let copy = page.to_vec();
    let view = NodeView::new(&copy, id).expect("compact: page was validated");
    let mut end = page.len();
    for i in 0..view.count() {
        let entry = view.entry(i).expect("compact: page was validated");
        end -= entry.len();
        page[end..end + entry.len()].copy_from_slice(entry);
        set_slot(page, i, end, view.head(i));
    }
    let mut header = PageHeader::read(page);
    header.free_end = U32Le::new(end as u32);
    header.garbage = U32Le::new(0);
    header.write(page);
}

/// Inserts an entry of `entry_len` bytes (without slot) at index `i`, written by `fill`.
/// Returns false, changing nothing, when it does not fit.
pub fn insert(
    page: &mut [u8],
    id: u64,
    i: usize,
    entry_len: usize,
    fill: impl FnOnce(&mut [u8]),
) -> bool {
    if free_bytes(page) < entry_len + SLOT_BYTES {
        return false;
    }
    let mut header = PageHeader::read(page);
    let count = header.count.get() as usize;
    assert!(i <= count, "insert index {i} past count {count}");
    let slots_end = HEADER_BYTES + count * SLOT_BYTES;
    if (header.free_end.get() as usize) < slots_end + entry_len + SLOT_BYTES {
        compact(page, id);
        header = PageHeader::read(page);
    }
    let off = header.free_end.get() as usize - entry_len;
    fill(&mut page[off..off + entry_len]);
    let head = key_head(entry_key(
        &page[off..off + entry_len],
        header.tag == tag::LEAF,
    ));
    let at = HEADER_BYTES + i * SLOT_BYTES;
    page.copy_within(at..slots_end, at + SLOT_BYTES);
    set_slot(page, i, off, head);
    header.count = U16Le::new((count + 1) as u16);
    header.free_end = U32Le::new(off as u32);
    header.write(page);
    true
}

/// Removes entry `i`, leaving its bytes as garbage.
pub fn remove(page: &mut [u8], id: u64, i: usize) {
    let len = NodeView::new(page, id)
        .and_then(|v| v.entry(i).map(|e| e.len()))
        .expect("remove: page was validated");
    let mut header = PageHeader::read(page);
    let count = header.count.get() as usize;
    let at = HEADER_BYTES + i * SLOT_BYTES;
    page.copy_within(at + SLOT_BYTES..HEADER_BYTES + count * SLOT_BYTES, at);
    header.count = U16Le::new((count - 1) as u16);
    header.garbage = U32Le::new(header.garbage.get() + len as u32);
    header.write(page);
}

/// Removes entries `keep..` (the node's last ones). When their bytes are the lowest of the
/// entry area, one run from `free_end` up (the way ascending inserts lay them out), the free
/// end moves past them; otherwise they become garbage.
pub fn truncate(page: &mut [u8], id: u64, keep: usize) {
    let view = NodeView::new(page, id).expect("truncate: page was validated");
    let count = view.count();
    assert!(keep <= count, "truncate to {keep} of {count} entries");
    let (mut low, mut high, mut bytes) = (usize::MAX, 0, 0);
    for i in keep..count {
        let off = view.offset(i).expect("truncate: page was validated");
        let len = view.entry(i).expect("truncate: page was validated").len();
        (low, high, bytes) = (low.min(off), high.max(off + len), bytes + len);
    }
    let mut header = PageHeader::read(page);
    header.count = U16Le::new(keep as u16);
    if keep < count && low == header.free_end.get() as usize && high - low == bytes {
        header.free_end = U32Le::new(high as u32);
    } else {
        header.garbage = U32Le::new(header.garbage.get() + bytes as u32);
    }
    header.write(page);
}

/// Overwrites the child pointer of branch entry `i` in place.
pub fn set_child(page: &mut [u8], i: usize, ptr: Ptr) {
    let off = slot(page, i);
    let klen = u16::from_le_bytes([page[off], page[off + 1]]) as usize;
    let at = off + BRANCH_ENTRY_HEADER + klen;
    ptr.encode(&mut page[at..at + PTR_BYTES]);
}

/// Overwrites the overflow pointer of leaf entry `i` (an overflow entry) in place.
pub fn set_overflow(page: &mut [u8], i: usize, ptr: Ptr) {
    let off = slot(page, i);
    let klen = u16::from_le_bytes([page[off], page[off + 1]]) as usize;
    assert!(
        page[off + 2] & OVERFLOW != 0,
        "set_overflow on an inline value"
    );
    let at = off + LEAF_ENTRY_HEADER + klen;
    ptr.encode(&mut page[at..at + PTR_BYTES]);
}

/// Overwrites an inline leaf value of the same length in place.
pub fn overwrite_inline_value(page: &mut [u8], i: usize, value: &[u8]) {
    let off = slot(page, i);
    let klen = u16::from_le_bytes([page[off], page[off + 1]]) as usize;
    let at = off + LEAF_ENTRY_HEADER + klen;
    page[at..at + value.len()].copy_from_slice(value);
}

/// Encodes a leaf entry into `out` (sized by [`leaf_inline_bytes`]/[`leaf_overflow_bytes`]
/// minus the slot).
pub fn write_leaf_entry(out: &mut [u8], key: &[u8], value: LeafValue<'_>) {
    out[0..2].copy_from_slice(&(key.len() as u16).to_le_bytes());
    let k = LEAF_ENTRY_HEADER;
    out[k..k + key.len()].copy_from_slice(key);
    let v = k + key.len();
    match value {
        LeafValue::Inline(bytes) => {
            out[2] = 0;
            out[3..7].copy_from_slice(&(bytes.len() as u32).to_le_bytes());
            out[v..v + bytes.len()].copy_from_slice(bytes);
        }
        LeafValue::Overflow { ptr, len } => {
            out[2] = OVERFLOW;
            out[3..7].copy_from_slice(&(len as u32).to_le_bytes());
            ptr.encode(&mut out[v..v + PTR_BYTES]);
        }
    }
}

/// The child pointer inside an encoded branch entry (as returned by [`NodeView::entry`]).
pub fn branch_entry_child(entry: &[u8]) -> Ptr {
    let klen = u16::from_le_bytes([entry[0], entry[1]]) as usize;
    Ptr::decode(&entry[BRANCH_ENTRY_HEADER + klen..BRANCH_ENTRY_HEADER + klen + PTR_BYTES])
}

/// Encodes a branch entry into `out` (sized by [`branch_entry_bytes`] minus the slot).
pub fn write_branch_entry(out: &mut [u8], key: &[u8], ptr: Ptr) {
    out[0..2].copy_from_slice(&(key.len() as u16).to_le_bytes());
    let k = BRANCH_ENTRY_HEADER;
    out[k..k + key.len()].copy_from_slice(key);
    ptr.encode(&mut out[k + key.len()..k + key.len() + PTR_BYTES]);
}

/// Starts node `page` afresh (as [`init`]) and writes `entries`, raw (as returned by
/// [`NodeView::entry`]), in order: the bytes that [`push_raw`] of each in turn would leave,
/// with one header write. Returns false, changing nothing, when they do not fit.
pub fn fill_raw<E: AsRef<[u8]>>(
    page: &mut [u8],
    level: u8,
    id: u64,
    txn: u64,
    entries: &[E],
) -> bool {
    let total: usize = entries.iter().map(|e| e.as_ref().len() + SLOT_BYTES).sum();
    if HEADER_BYTES + total > page.len() {
        return false;
    }
    init(page, level, id, txn);
    let mut end = page.len();
    for (i, entry) in entries.iter().enumerate() {
        let entry = entry.as_ref();
        end -= entry.len();
        page[end..end + entry.len()].copy_from_slice(entry);
        set_slot(page, i, end, key_head(entry_key(entry, level == 0)));
    }
    let mut header = PageHeader::read(page);
    header.count = U16Le::new(entries.len() as u16);
    header.free_end = U32Le::new(end as u32);
    header.write(page);
    true
}

/// Appends an entry of `entry_len` bytes (without slot) whose key head is `head`, written by
/// `fill`, after the first `count` entries of a node being built, whose entries start at
/// `free_end`. The header is neither read nor written (the builder keeps both figures and
/// writes them once, [`set_built_counts`]). Returns the new free end, or None, changing
/// nothing, when the entry does not fit.
pub fn append_built(
    page: &mut [u8],
    count: usize,
    free_end: usize,
    entry_len: usize,
    head: u32,
    fill: impl FnOnce(&mut [u8]),
) -> Option<usize> {
    let slots_end = HEADER_BYTES + (count + 1) * SLOT_BYTES;
    let off = free_end
        .checked_sub(entry_len)
        .filter(|&off| off >= slots_end)?;
    fill(&mut page[off..off + entry_len]);
    set_slot(page, count, off, head);
    Some(off)
}

/// Writes the entry count and free end of a node built by [`append_built`] into its header.
pub fn set_built_counts(page: &mut [u8], count: usize, free_end: usize) {
    let mut header = PageHeader::read(page);
    assert_eq!(header.garbage.get(), 0, "a built node has no garbage");
    assert!(
        HEADER_BYTES + count * SLOT_BYTES <= free_end && free_end <= page.len(),
        "built counts out of bounds"
    );
    header.count = U16Le::new(count as u16);
    header.free_end = U32Le::new(free_end as u32);
    header.write(page);
}

/// Appends a raw entry (as returned by [`NodeView::entry`]) at the end of a node being built.
pub fn push_raw(page: &mut [u8], id: u64, entry: &[u8]) -> bool {
    let count = PageHeader::read(page).count.get() as usize;
    insert(page, id, count, entry.len(), |out| {
        out.copy_from_slice(entry)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_search_remove() {
        let mut page = vec![0u8; 4096];
        init(&mut page, 0, 5, 1);
        for (i, k) in [b"b", b"d", b"a", b"c"].iter().enumerate() {
            let view = NodeView::new(&page, 5).unwrap();
            let at = view.search(&k[..]).unwrap().unwrap_err();
            let value = [i as u8; 3];
            let len = leaf_inline_bytes(1, 3) - SLOT_BYTES;
            assert!(insert(&mut page, 5, at, len, |out| write_leaf_entry(
                out,
                &k[..],
                LeafValue::Inline(&value)
            )));
        }
        validate(&page, 5).unwrap();
        let view = NodeView::new(&page, 5).unwrap();
        let keys: Vec<_> = (0..4).map(|i| view.key(i).unwrap().to_vec()).collect();
        assert_eq!(
            keys,
            vec![b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
        );
        assert_eq!(view.value(1).unwrap(), LeafValue::Inline(&[0, 0, 0]));
        remove(&mut page, 5, 1);
        validate(&page, 5).unwrap();
        let view = NodeView::new(&page, 5).unwrap();
        assert_eq!(view.search(b"b").unwrap(), Err(1));
        assert_eq!(view.search(b"c").unwrap(), Ok(1));
    }

    /// Keys that share heads in runs (a 4-byte prefix with suffixes, the 8-byte keys of the
    /// refcount tree, keys shorter than a head): every search agrees with a scan of the keys.
    #[test]
    fn searches_by_heads_agree_with_a_scan() {
        let mut keys: Vec<Vec<u8>> = vec![vec![], vec![0], vec![0, 0], vec![7], vec![7, 1]];
        keys.extend((0..12u8).map(|i| [b"abcd".as_slice(), &[i; 3]].concat()));
        keys.extend((0..12u64).map(|i| (i * 977).to_be_bytes().to_vec()));
        keys.extend((0..6u8).map(|i| vec![b'q', i, 9, 9]));
        keys.sort();
        keys.dedup();
        let (mut leaf, mut branch) = (vec![0u8; 4096], vec![0u8; 4096]);
        init(&mut leaf, 0, 5, 1);
        init(&mut branch, 1, 6, 1);
        for (i, k) in keys.iter().enumerate() {
            let len = leaf_inline_bytes(k.len(), 1) - SLOT_BYTES;
            assert!(insert(&mut leaf, 5, i, len, |out| {
                write_leaf_entry(out, k, LeafValue::Inline(&[1]))
            }));
            // A branch's first key is empty (−∞); the others are the keys themselves.
            let sep = if i == 0 { &[][..] } else { &k[..] };
            let mut entry = vec![0u8; branch_entry_bytes(sep.len()) - SLOT_BYTES];
            write_branch_entry(&mut entry, sep, Ptr::default());
            assert!(push_raw(&mut branch, 6, &entry));
        }
        validate(&leaf, 5).unwrap();
        validate(&branch, 6).unwrap();
        let (leaf, branch) = (
            NodeView::new(&leaf, 5).unwrap(),
            NodeView::new(&branch, 6).unwrap(),
        );
        let mut probes = keys.clone();
        probes.extend(keys.iter().map(|k| [k.as_slice(), &[0]].concat()));
        probes.extend([
            vec![0xFF; 9],
            b"abcc".to_vec(),
            b"abcd".to_vec(),
            vec![0, 0, 0, 1],
        ]);
        for probe in &probes {
            let below = keys
                .iter()
                .filter(|k| k.as_slice() < probe.as_slice())
                .count();
            let want = if keys.contains(probe) {
                Ok(below)
            } else {
                Err(below)
            };
            assert_eq!(
                leaf.search(probe).unwrap(),
                want,
                "leaf search of {probe:?}"
            );
            let child = keys[1..]
                .iter()
                .filter(|k| k.as_slice() <= probe.as_slice())
                .count();
            assert_eq!(
                branch.child_index(probe).unwrap(),
                child,
                "branch search of {probe:?}"
            );
        }
    }

    /// The entries `changed_in_place` names between two pages of one layout (`new` as page
    /// `id`).
    fn changed_between(old: &[u8], new: &[u8], id: u64) -> Vec<usize> {
        let (a, b) = (
            NodeView::new(old, 5).unwrap(),
            NodeView::new(new, id).unwrap(),
        );
        let mut found = Vec::new();
        assert!(a.changed_in_place(&b, &mut found).unwrap());
        found
    }

    /// A leaf of keys 0, 1 and 2 (40-byte values) over the garbage of key 3: inserted out of
    /// order (3 first, at the page's end), then cut to three entries.
    fn leaf_with_garbage() -> Vec<u8> {
        let mut page = vec![0u8; 4096];
        init(&mut page, 0, 5, 1);
        for k in [3u8, 0, 1, 2] {
            let view = NodeView::new(&page, 5).unwrap();
            let at = view.search(&[k]).unwrap().unwrap_err();
            let len = leaf_inline_bytes(1, 40) - SLOT_BYTES;
            assert!(insert(&mut page, 5, at, len, |out| {
                write_leaf_entry(out, &[k], LeafValue::Inline(&[k; 40]))
            }));
        }
        truncate(&mut page, 5, 3);
        page
    }

    /// A leaf of `n` entries with 1-byte keys 0..n and 40-byte values, filled in key order.
    fn leaf(n: u8) -> Vec<u8> {
        let mut page = vec![0u8; 4096];
        init(&mut page, 0, 5, 1);
        for k in 0..n {
            let len = leaf_inline_bytes(1, 40) - SLOT_BYTES;
            let value = [k; 40];
            assert!(insert(&mut page, 5, k as usize, len, |out| {
                write_leaf_entry(out, &[k], LeafValue::Inline(&value))
            }));
        }
        page
    }

    #[test]
    fn changed_in_place_names_exactly_the_overwritten_entries() {
        let old = leaf(40);
        for changed in [vec![], vec![0], vec![39], vec![7, 8], vec![3, 30]] {
            let mut new = old.clone();
            rebirth(&mut new, 9, 2);
            for &i in &changed {
                overwrite_inline_value(&mut new, i, &[0xEE; 40]);
            }
            let found = changed_between(&old, &new, 9);
            // Exactly the overwritten entries, ascending, however far apart.
            assert_eq!(found, changed);
        }
        // Two bytes side by side: the last of entry 21 (the value's last byte) and the first
        // of entry 20 (entries fill the page from its end, so 21 lies just before 20); and a
        // byte of entry 5's key.
        let mut new = old.clone();
        let off = slot(&new, 20);
        assert_eq!(slot(&new, 21) + leaf_inline_bytes(1, 40) - SLOT_BYTES, off);
        new[off - 1] ^= 1;
        new[off] ^= 1;
        let key_5 = slot(&new, 5) + LEAF_ENTRY_HEADER;
        new[key_5] ^= 1;
        let found = changed_between(&old, &new, 5);
        assert_eq!(found, vec![5, 20, 21]);
        // Dead bytes (garbage left by a cut entry) that differ belong to no entry.
        let page = leaf_with_garbage();
        // Key 3's bytes, at the page's end, are the garbage.
        let mut new = page.clone();
        new[4095] ^= 1;
        new[4000] ^= 1;
        let over_4000 = (0..3).find(|&i| {
            let off = slot(&page, i);
            (off..off + leaf_inline_bytes(1, 40) - SLOT_BYTES).contains(&4000)
        });
        let found = changed_between(&page, &new, 5);
        assert_eq!(found, Vec::from_iter(over_4000));
        // Another layout (one entry fewer) is not compared in place.
        let (a, b) = (NodeView::new(&old, 5).unwrap(), leaf(39));
        let mut found = vec![1];
        assert!(!a
            .changed_in_place(&NodeView::new(&b, 5).unwrap(), &mut found)
            .unwrap());
        assert!(found.is_empty());
    }

    /// A leaf of 40 entries at page 5, born in txn 1, and its copy at page 9, born in txn 2,
    /// whose entries 3 and 30 were overwritten in place, with its hint settled.
    fn hinted_pair() -> (Vec<u8>, Vec<u8>) {
        let old = leaf(40);
        let mut new = old.clone();
        rebirth(&mut new, 9, 2);
        for i in [3, 30] {
            overwrite_inline_value(&mut new, i, &[0xEE; 40]);
        }
        settle_hint(&mut new, 9, &NodeView::new(&old, 5).unwrap(), (5, 1));
        (old, new)
    }

    /// A copy overwritten in place gets a hint naming exactly its changed entries, which a
    /// diff uses against that base only; an insert, or a rebirth, leaves no hint.
    #[test]
    fn a_settled_hint_names_the_overwritten_entries_against_its_base_only() {
        let (old, mut new) = hinted_pair();
        let base = NodeView::new(&old, 5).unwrap();
        let hint = hint::read(&new).expect("a hint");
        assert_eq!((hint.base_page, hint.base_txn), (5, 1));
        assert_eq!(hint.entries(40).collect::<Vec<_>>(), [3, 30]);
        let view = NodeView::new(&new, 9).unwrap();
        let mut changed = Vec::new();
        assert!(base.hinted_changes(&view, (5, 1), (9, 2), &mut changed));
        assert_eq!(changed, [3, 30]);
        // Either side may carry it; another page (or birth) than its base is not trusted.
        assert!(view.hinted_changes(&base, (9, 2), (5, 1), &mut changed));
        assert!(!base.hinted_changes(&view, (5, 7), (9, 2), &mut changed));
        assert!(!base.hinted_changes(&view, (6, 1), (9, 2), &mut changed));
        assert!(changed.is_empty());
        // A copy that gained an entry has another layout: no hint.
        let mut grown = new.clone();
        let len = leaf_inline_bytes(1, 40) - SLOT_BYTES;
        assert!(insert(&mut grown, 9, 40, len, |out| {
            write_leaf_entry(out, &[200], LeafValue::Inline(&[1; 40]))
        }));
        settle_hint(&mut grown, 9, &base, (5, 1));
        assert_eq!(hint::read(&grown), None);
        // A copy made for a move or a backup carries none either.
        rebirth(&mut new, 11, 2);
        assert_eq!(hint::read(&new), None);
    }

    #[test]
    fn the_prefetch_of_hinted_entries_names_them_in_both_pages_and_survives_damage() {
        let (old, new) = hinted_pair();
        let base = NodeView::new(&old, 5).unwrap();
        let starts = |pages: [&[u8]; 2], at: [(u64, u64); 2], max: usize| {
            let mut found = Vec::new();
            hinted_entry_starts(pages, at, max, |entry| found.push(entry.as_ptr()));
            found
        };
        let view = NodeView::new(&new, 9).unwrap();
        let entry = |v: &NodeView<'_>, i: usize| v.entry(i).unwrap().as_ptr();
        let want = [
            entry(&base, 3),
            entry(&view, 3),
            entry(&base, 30),
            entry(&view, 30),
        ];
        assert_eq!(starts([&old, &new], [(5, 1), (9, 2)], 4), want);
        assert_eq!(starts([&new, &old], [(9, 2), (5, 1)], 4).len(), 4);
        assert_eq!(starts([&old, &new], [(5, 1), (9, 2)], 1), want[..2]);
        // Not against its base, or with counts that differ: nothing.
        assert!(starts([&old, &new], [(5, 7), (9, 2)], 4).is_empty());
        assert!(starts([&leaf(39), &new], [(5, 1), (9, 2)], 4).is_empty());
        // Damaged bytes make a useless prefetch, never a panic.
        let mut bad = new.clone();
        bad[HEADER_BYTES + 3 * SLOT_BYTES..][..2].copy_from_slice(&[0xFF, 0xFF]);
        assert_eq!(starts([&old, &bad], [(5, 1), (9, 2)], 4).len(), 3);
        let mut huge = new.clone();
        huge[2..4].copy_from_slice(&u16::MAX.to_le_bytes());
        assert!(starts([&old[..100], &huge], [(5, 1), (9, 2)], 4).is_empty());
        assert!(starts([&huge, &huge], [(5, 1), (9, 2)], 4).is_empty());
    }

    #[test]
    fn changed_in_place_finds_entries_in_any_layout() {
        // Entries laid out in index order from the end (found by a binary search), in the
        // reverse order, and shuffled (found by the scan of every slot).
        let orders: [Vec<u8>; 3] = [
            (0..12).collect(),
            (0..12).rev().collect(),
            vec![5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6],
        ];
        for order in orders {
            let mut old = vec![0u8; 4096];
            init(&mut old, 0, 5, 1);
            for &k in &order {
                let at = NodeView::new(&old, 5).unwrap().search(&[k]).unwrap();
                let len = leaf_inline_bytes(1, 40) - SLOT_BYTES;
                assert!(insert(&mut old, 5, at.unwrap_err(), len, |out| {
                    write_leaf_entry(out, &[k], LeafValue::Inline(&[k; 40]))
                }));
            }
            for changed in [vec![0], vec![11], vec![4], vec![0, 11], vec![2, 3, 9]] {
                let mut new = old.clone();
                for &i in &changed {
                    // One byte inside the value, off its first and last bytes.
                    let at = slot(&new, i) + LEAF_ENTRY_HEADER + 1 + 17;
                    new[at] ^= 0x40;
                }
                let found = changed_between(&old, &new, 5);
                assert_eq!(found, changed, "laid out in the order {order:?}");
            }
        }
    }

    #[test]
    fn truncate_moves_the_free_end_past_entries_laid_out_last() {
        // Ascending inserts: the last entries are the lowest bytes, so no garbage is left.
        let mut page = leaf(10);
        let before = used_bytes(&page);
        truncate(&mut page, 5, 7);
        validate(&page, 5).unwrap();
        let header = PageHeader::read(&page);
        assert_eq!((header.count.get(), header.garbage.get()), (7, 0));
        let entry = leaf_inline_bytes(1, 40);
        assert_eq!(used_bytes(&page), before - 3 * entry);
        // Entries inserted out of order: the cut ones are not the lowest, so they are garbage.
        let page = leaf_with_garbage();
        validate(&page, 5).unwrap();
        let header = PageHeader::read(&page);
        assert_eq!(header.count.get(), 3);
        assert_eq!(header.garbage.get() as usize, entry - SLOT_BYTES);
    }

    #[test]
    fn first_difference_finds_the_first_differing_byte() {
        let a = vec![7u8; 4096];
        assert_eq!(first_difference(&a, &a), None);
        // Lengths that are not a multiple of a word or of a chunk, against a byte loop: the
        // ends of the words, the halvings and the chunks are where an off-by-one would hide.
        for len in [1, 5, 8, 13, 64, 65, 255, 1023, 1024, 1025, 2100, 3891, 4096] {
            let a: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            assert_eq!(first_difference(&a, &a), None);
            let step = if len < 300 { 1 } else { 7 };
            for x in (0..len).step_by(step).chain([len - 1]) {
                for y in [x, x + 1, x + 9, len - 1] {
                    let mut b = a.clone();
                    b[x] ^= 0x80;
                    b[y.min(len - 1).max(x)] ^= 0x01;
                    let want = (0..len).find(|&i| a[i] != b[i]);
                    assert_eq!(first_difference(&a, &b), want, "len {len}, {x}, {y}");
                }
            }
        }
    }

    #[test]
    fn garbage_bytes_never_panic() {
        let mut page = vec![0xA5u8; 4096];
        page[0] = tag::LEAF;
        page[1] = 0;
        if let Ok(view) = NodeView::new(&page, 1) {
            for i in 0..view.count() {
                let _ = view.key(i);
                let _ = view.value(i);
            }
        }
    }

    #[test]
    fn compare_keys_is_bytewise_order() {
        let keys: [&[u8]; 9] = [
            b"",
            b"\0",
            &[0, 0, 0, 0, 0, 0, 0, 1],
            &[0, 0, 0, 0, 0, 0, 1, 0],
            &[0, 0, 0, 0, 0, 0, 0, 1, 0],
            &[1, 0, 0, 0, 0, 0, 0, 0],
            &[0xff; 8],
            b"abcdefgh",
            b"abcdefg",
        ];
        for a in keys {
            for b in keys {
                assert_eq!(super::compare_keys(a, b), a.cmp(b), "{a:?} {b:?}");
            }
        }
    }
}
