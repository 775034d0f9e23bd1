//! The refcount tree's entries: the reference counts of 2 or more of 64 neighbouring pages
//! (a chunk) in one entry, so that the counts a snapshot's first copies store (every child
//! of a copied branch, neighbours from a sorted load) fill a leaf 14 times more densely than
//! one entry a page would.
//!
//! Invariants (docs/format.md section 9.3):
//! - A chunk covers the pages `[first, first + 64)`, where `first` is a multiple of 64; its
//!   key is `first` as 8 big-endian bytes.
//! - Its value is a `ChunkHead` (`width`, `mask`) and then one count for each set bit of
//!   `mask`, in page order, each `width` bytes little-endian; the value is exactly
//!   `9 + popcount(mask) × width` bytes long.
//! - `mask` is not zero (a chunk with no count is not stored), every count is 2 or more, and
//!   `width` is 1 when every count is below 256 and 4 otherwise: one encoding per content.

use super::U64Le;
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};

/// Pages one refcount-tree entry covers.
pub const CHUNK_PAGES: u64 = 64;

/// The fixed start of a chunk's value.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct ChunkHead {
    /// Bytes of each count: 1 or 4.
    width: u8,
    /// Bit `i` set: page `first + i` has a stored count.
    mask: U64Le,
}
const HEAD_BYTES: usize = 9;
const _: () = assert!(std::mem::size_of::<ChunkHead>() == HEAD_BYTES);

/// The longest chunk value: every page counted, 4 bytes a count.
pub const MAX_CHUNK_BYTES: usize = HEAD_BYTES + CHUNK_PAGES as usize * 4;
const _: () = assert!(
    super::node::leaf_inline_bytes(8, MAX_CHUNK_BYTES)
        <= super::node::max_entry_bytes(super::MIN_PAGE_SIZE)
);

/// The first page of the chunk holding `page`.
pub fn chunk_first(page: u64) -> u64 {
    page & !(CHUNK_PAGES - 1)
}

/// Where `page` lies within its chunk: the bit of the mask and the index of the count.
pub fn chunk_offset(page: u64) -> usize {
    (page - chunk_first(page)) as usize
}

/// The refcount-tree key of the chunk starting at `first`: big-endian, so keys sort like ids.
pub fn chunk_key(first: u64) -> [u8; 8] {
    debug_assert_eq!(first, chunk_first(first));
    first.to_be_bytes()
}

/// Decodes a refcount-tree key found on `tree`: the first page of a chunk.
pub fn decode_chunk_key(key: &[u8], tree: u64) -> Result<u64> {
    let bytes: [u8; 8] = key
        .try_into()
        .map_err(|_| Error::corrupted(tree, "refcount key is not 8 bytes"))?;
    let first = u64::from_be_bytes(bytes);
    if first != chunk_first(first) {
        return Err(Error::corrupted(
            tree,
            format!("refcount key {first} is not a multiple of {CHUNK_PAGES}"),
        ));
    }
    Ok(first)
}

/// The head of a chunk value found on `tree`, its length checked against the mask.
fn read_head(value: &[u8], tree: u64) -> Result<(usize, u64)> {
    let head: ChunkHead = match value.get(..HEAD_BYTES) {
        Some(bytes) => bytemuck::pod_read_unaligned(bytes),
        None => {
            return Err(Error::corrupted(
                tree,
                "refcount chunk shorter than its head",
            ))
        }
    };
    let width = usize::from(head.width);
    let mask = head.mask.get();
    if !matches!(width, 1 | 4) || mask == 0 {
        return Err(Error::corrupted(
            tree,
            format!("refcount chunk with width {width} and mask {mask:#x}"),
        ));
    }
    if value.len() != HEAD_BYTES + mask.count_ones() as usize * width {
        return Err(Error::corrupted(
            tree,
            format!("refcount chunk of {} bytes for mask {mask:#x}", value.len()),
        ));
    }
    Ok((width, mask))
}

/// The `index`th count of a value whose head was read.
fn count_at(value: &[u8], width: usize, index: usize) -> u32 {
    let at = HEAD_BYTES + index * width;
    match width {
        1 => u32::from(value[at]),
        _ => u32::from_le_bytes(value[at..at + 4].try_into().expect("4 bytes")),
    }
}

/// The reference count of `page` in the chunk `value` (of the tree at `tree`) that covers
/// it: 1 when the chunk stores none. Reads the head and the one count, not the whole chunk.
pub fn chunk_count(value: &[u8], page: u64, tree: u64) -> Result<u32> {
    let (width, mask) = read_head(value, tree)?;
    let bit = chunk_offset(page);
    if mask & (1 << bit) == 0 {
        return Ok(1);
    }
    let below = (mask & ((1 << bit) - 1)).count_ones() as usize;
    let count = count_at(value, width, below);
    if count < 2 {
        return Err(Error::corrupted(tree, "stored reference count below 2"));
    }
    Ok(count)
}

/// The stored counts of one chunk, decoded: 0 where a page has none (it counts 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CountChunk {
    first: u64,
    /// Bit `i` set ⇔ `counts[i]` ≠ 0.
    mask: u64,
    counts: [u32; CHUNK_PAGES as usize],
}

/// The set bits of `mask`, lowest first.
fn set_bits(mut mask: u64) -> impl Iterator<Item = usize> {
    std::iter::from_fn(move || {
        (mask != 0).then(|| {
            let bit = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            bit
        })
    })
}

impl CountChunk {
    /// The chunk starting at `first`, with no count stored.
    pub fn empty(first: u64) -> CountChunk {
        assert_eq!(first, chunk_first(first), "chunk start {first}");
        CountChunk {
            first,
            mask: 0,
            counts: [0; CHUNK_PAGES as usize],
        }
    }

    /// Decodes the chunk at `first` from its value, found on `tree`, checking every rule of
    /// the module's invariants.
    pub fn decode(first: u64, value: &[u8], tree: u64) -> Result<CountChunk> {
        let (width, mask) = read_head(value, tree)?;
        let mut chunk = CountChunk::empty(first);
        chunk.mask = mask;
        let mut widest = 0;
        // Bounded: one step per set bit of a 64-bit mask.
        for (index, bit) in set_bits(mask).enumerate() {
            let count = count_at(value, width, index);
            if count < 2 {
                return Err(Error::corrupted(tree, "stored reference count below 2"));
            }
            chunk.counts[bit] = count;
            widest = widest.max(count);
        }
        if width != width_for(widest) {
            return Err(Error::corrupted(
                tree,
                format!("refcount chunk of width {width} whose largest count is {widest}"),
            ));
        }
        Ok(chunk)
    }

    /// The first page this chunk covers.
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The count of `page` (in this chunk): 1 when none is stored.
    pub fn count(&self, page: u64) -> u32 {
        self.counts[self.bit(page)].max(1)
    }

    /// Sets the count of `page` (in this chunk); a count of 1 is not stored.
    pub fn set(&mut self, page: u64, count: u32) {
        assert!(count >= 1, "page {page}: a count of 0");
        let bit = self.bit(page);
        if count == 1 {
            self.counts[bit] = 0;
            self.mask &= !(1 << bit);
        } else {
            self.counts[bit] = count;
            self.mask |= 1 << bit;
        }
    }

    /// No count is stored: the chunk has no entry.
    pub fn is_empty(&self) -> bool {
        self.mask == 0
    }

    /// The stored counts, by page in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u32)> + '_ {
        set_bits(self.mask).map(|bit| (self.first + bit as u64, self.counts[bit]))
    }

    /// The chunk's value (it must hold a count).
    pub fn encode(&self) -> ChunkBytes {
        assert!(!self.is_empty(), "chunk {} has no count", self.first);
        // Absent pages hold 0: the maximum over all 64 (a vector loop) is the widest count.
        let widest = self.counts.iter().copied().max().unwrap_or(0);
        let width = width_for(widest);
        let mut out = ChunkBytes {
            len: HEAD_BYTES,
            bytes: [0; MAX_CHUNK_BYTES],
        };
        let head = ChunkHead {
            width: width as u8,
            mask: U64Le::new(self.mask),
        };
        out.bytes[..HEAD_BYTES].copy_from_slice(bytemuck::bytes_of(&head));
        // Bounded: 64 counts. Each width is written with its own fixed-size store.
        for (_, count) in self.iter() {
            if width == 1 {
                out.bytes[out.len] = count as u8;
            } else {
                out.bytes[out.len..out.len + 4].copy_from_slice(&count.to_le_bytes());
            }
            out.len += width;
        }
        out
    }

    fn bit(&self, page: u64) -> usize {
        assert_eq!(
            chunk_first(page),
            self.first,
            "page {page} outside the chunk"
        );
        chunk_offset(page)
    }
}

/// Bytes a count is stored in when the largest count of its chunk is `widest`.
fn width_for(widest: u32) -> usize {
    if widest < 256 {
        1
    } else {
        4
    }
}

/// A chunk's encoded value, by value (no allocation per edit).
#[derive(Clone, Copy)]
pub struct ChunkBytes {
    len: usize,
    bytes: [u8; MAX_CHUNK_BYTES],
}

impl AsRef<[u8]> for ChunkBytes {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// `counts` (each 2 or more, by page in strictly increasing order) grouped into chunks, in
/// key order.
pub fn chunks(counts: &[(u64, u32)]) -> Vec<CountChunk> {
    let mut out: Vec<CountChunk> = Vec::new();
    // Bounded: one step per count.
    for &(page, count) in counts {
        assert!(count >= 2, "page {page}: a stored count of {count}");
        let first = chunk_first(page);
        match out.last_mut() {
            Some(chunk) if chunk.first == first => {
                assert_eq!(chunk.counts[chunk.bit(page)], 0, "page {page} twice");
                chunk.set(page, count);
            }
            _ => {
                assert!(
                    out.last().is_none_or(|c| c.first < first),
                    "pages out of order"
                );
                let mut chunk = CountChunk::empty(first);
                chunk.set(page, count);
                out.push(chunk);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any counts of one chunk encode to a value that decodes back to them, answers every
        /// single lookup alike, and takes 1-byte counts exactly when all are below 256.
        #[test]
        fn any_chunk_round_trips(
            first in (0u64..1 << 40).prop_map(|p| p * CHUNK_PAGES),
            counts in proptest::collection::btree_map(0u64..CHUNK_PAGES, 2u32..600, 1..40),
        ) {
            let counts: Vec<(u64, u32)> = counts.into_iter().map(|(b, c)| (first + b, c)).collect();
            let grouped = chunks(&counts);
            prop_assert_eq!(grouped.len(), 1);
            let value = grouped[0].encode();
            let back = CountChunk::decode(first, value.as_ref(), 9).unwrap();
            prop_assert_eq!(back.iter().collect::<Vec<_>>(), counts.clone());
            for page in first..first + CHUNK_PAGES {
                prop_assert_eq!(chunk_count(value.as_ref(), page, 9).unwrap(), back.count(page));
            }
            let width = if counts.iter().all(|&(_, c)| c < 256) { 1 } else { 4 };
            prop_assert_eq!(value.as_ref().len(), 9 + counts.len() * width);
        }
    }

    #[test]
    fn chunks_round_trip_and_answer_single_lookups() {
        let counts = [(3, 2), (63, 300), (64, 2), (130, 7), (191, 255)];
        let grouped = chunks(&counts);
        assert_eq!(grouped.len(), 3);
        let mut seen = Vec::new();
        for chunk in &grouped {
            let value = chunk.encode();
            let back = CountChunk::decode(chunk.first(), value.as_ref(), 9).unwrap();
            assert_eq!(&back, chunk);
            seen.extend(back.iter());
            for page in chunk.first()..chunk.first() + CHUNK_PAGES {
                assert_eq!(
                    chunk_count(value.as_ref(), page, 9).unwrap(),
                    chunk.count(page)
                );
            }
        }
        assert_eq!(seen, counts);
        // Counts below 256 take one byte each; one larger count widens the whole chunk.
        assert_eq!(grouped[0].encode().as_ref().len(), 9 + 2 * 4);
        assert_eq!(grouped[1].encode().as_ref().len(), 9 + 1);
        assert_eq!(grouped[2].encode().as_ref().len(), 9 + 2);
        assert_eq!(
            grouped[2].encode().as_ref()[..9],
            [1, 4, 0, 0, 0, 0, 0, 0, 0x80]
        );
    }

    #[test]
    fn setting_a_count_to_one_clears_it() {
        let mut chunk = CountChunk::empty(128);
        chunk.set(130, 2);
        assert_eq!(chunk.count(130), 2);
        assert_eq!(chunk.count(131), 1);
        chunk.set(130, 1);
        assert!(chunk.is_empty());
    }

    #[test]
    fn damaged_chunks_and_keys_are_corruption() {
        let good = chunks(&[(5, 2), (6, 3)])[0].encode();
        let good = good.as_ref().to_vec();
        let mut bad: Vec<Vec<u8>> = vec![
            good[..8].to_vec(),
            good[..10].to_vec(),
            [&good[..], &[2]].concat(),
            Vec::new(),
        ];
        let mut zero_mask = good.clone();
        zero_mask[1..9].fill(0);
        bad.push(zero_mask);
        let mut width_two = good.clone();
        width_two[0] = 2;
        bad.push(width_two);
        let mut count_one = good.clone();
        count_one[9] = 1;
        bad.push(count_one);
        let mut too_wide = good[..9].to_vec();
        too_wide[0] = 4;
        too_wide.extend([2, 0, 0, 0, 3, 0, 0, 0]);
        bad.push(too_wide);
        for value in bad {
            assert!(CountChunk::decode(0, &value, 9).is_err(), "{value:?}");
        }
        assert!(chunk_count(&good[..10], 5, 9).is_err());
        assert!(decode_chunk_key(&65u64.to_be_bytes(), 9).is_err());
        assert!(decode_chunk_key(&[0; 7], 9).is_err());
        assert_eq!(decode_chunk_key(&128u64.to_be_bytes(), 9).unwrap(), 128);
    }
}
