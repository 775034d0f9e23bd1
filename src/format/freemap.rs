//! Free-space pages: the bitmap pages, the directory chain that points at them, and the
//! pending-free chain.
//!
//! Invariants:
//! - Bitmap page k covers page ids `[k × bits, (k+1) × bits)` with `bits = (page size − 32) × 8`;
//!   a set bit means the page is free for reuse now.
//! - A directory entry is (pointer to bitmap page, count of set bits); a null pointer means the
//!   range has no free page and no bitmap page yet.
//! - Chain pages (directory, pending) carry a `next` pointer after the header and at most
//!   [`chain_capacity`] entries; `pager::chain`, the one walk over chains, bounds their length
//!   and checks the count.

use super::{PageHeader, Ptr, PtrDisk, U32Le, U64Le, HEADER_BYTES, PTR_BYTES};
use bytemuck::{Pod, Zeroable};

/// Offset of the first entry in a chain page (after the header and the `next` pointer).
pub const CHAIN_ENTRIES_AT: usize = HEADER_BYTES + PTR_BYTES;

/// One directory entry.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct DirEntry {
    /// The bitmap page, or null.
    pub bitmap: PtrDisk,
    /// Set bits in that bitmap page.
    pub free_count: U32Le,
}
/// Bytes of a [`DirEntry`].
pub const DIR_ENTRY_BYTES: usize = 24;
const _: () = assert!(std::mem::size_of::<DirEntry>() == DIR_ENTRY_BYTES);

/// One pending-free entry: a page freed by a transaction, reusable once no reader and no
/// durable root can see it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PendingEntry {
    /// The transaction that freed the page.
    pub freed_by: U64Le,
    /// The page.
    pub page: U64Le,
    /// The txn that wrote the page: a page born after the last durable txn is not reachable
    /// from the durable root, so only readers hold it back.
    pub born: U64Le,
}
/// Bytes of a [`PendingEntry`].
pub const PENDING_ENTRY_BYTES: usize = 24;
const _: () = assert!(std::mem::size_of::<PendingEntry>() == PENDING_ENTRY_BYTES);

/// Pages covered by one bitmap page.
pub fn bits_per_bitmap(page_size: usize) -> u64 {
    ((page_size - HEADER_BYTES) * 8) as u64
}

/// Entries of type `T` that fit in one chain page.
pub fn chain_capacity<T: Pod>(page_size: usize) -> usize {
    (page_size - CHAIN_ENTRIES_AT) / std::mem::size_of::<T>()
}

/// Directory entries per directory page.
pub fn dir_entries_per_page(page_size: usize) -> usize {
    chain_capacity::<DirEntry>(page_size)
}

/// Pending entries per pending page.
pub fn pending_entries_per_page(page_size: usize) -> usize {
    chain_capacity::<PendingEntry>(page_size)
}

/// The next page of a chain (null at its end). `page` is a whole page, so the read fits.
pub fn chain_next(page: &[u8]) -> Ptr {
    Ptr::decode(&page[HEADER_BYTES..])
}

/// The entry count a chain page's header claims (not yet checked against its capacity).
pub fn chain_count(page: &[u8]) -> usize {
    PageHeader::read(page).count.get() as usize
}

/// Reads entry `i` of a chain page whose entries are `T`.
pub fn chain_entry<T: Pod>(page: &[u8], i: usize) -> Option<T> {
    let size = std::mem::size_of::<T>();
    let at = CHAIN_ENTRIES_AT + i * size;
    page.get(at..at + size).map(bytemuck::pod_read_unaligned)
}

/// Writes entry `i` of a chain page whose entries are `T`.
pub fn set_chain_entry<T: Pod>(page: &mut [u8], i: usize, entry: T) {
    let size = std::mem::size_of::<T>();
    let at = CHAIN_ENTRIES_AT + i * size;
    page[at..at + size].copy_from_slice(bytemuck::bytes_of(&entry));
}

/// A pending-free entry as a plain value, the form the pager and `check` work with; it
/// converts to and from the on-disk [`PendingEntry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pending {
    /// The transaction that freed the page.
    pub freed_by: u64,
    /// The page.
    pub page: u64,
    /// The txn that wrote the page.
    pub born: u64,
}

impl From<PendingEntry> for Pending {
    fn from(e: PendingEntry) -> Pending {
        Pending {
            freed_by: e.freed_by.get(),
            page: e.page.get(),
            born: e.born.get(),
        }
    }
}

impl From<Pending> for PendingEntry {
    fn from(p: Pending) -> PendingEntry {
        PendingEntry {
            freed_by: U64Le::new(p.freed_by),
            page: U64Le::new(p.page),
            born: U64Le::new(p.born),
        }
    }
}

/// Writes the `next` pointer of a chain page.
pub fn set_chain_next(page: &mut [u8], next: Ptr) {
    next.encode(&mut page[HEADER_BYTES..CHAIN_ENTRIES_AT]);
}

/// The bits of a bitmap page (everything after its header).
pub fn bitmap_body(page: &[u8]) -> &[u8] {
    &page[HEADER_BYTES..]
}

/// A bitmap body (or a part of one that starts and ends on a multiple of 8 bytes) as
/// little-endian 64-bit words: bit `j` of word `w` is bit `64 w + j` of the body. Scans read
/// 64 pages at a time this way.
pub fn bitmap_words(body: &[u8]) -> &[U64Le] {
    bytemuck::cast_slice(body)
}

/// The bits of a bitmap page, to change.
pub fn bitmap_body_mut(page: &mut [u8]) -> &mut [u8] {
    &mut page[HEADER_BYTES..]
}
