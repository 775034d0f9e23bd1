//! Pages: reading committed pages from a view, and a write transaction's dirty pages,
//! allocation and freeing.
//!
//! Invariants:
//! - A page born in the transaction being written is dirty: it lives in memory and is edited
//!   in place; every other page is read-only and is copied before it changes.
//! - A committed page is never written again while a reader, or the last durable meta, can
//!   reach it: freeing one only records it as pending (see [`freemap`]).
//! - Every page read through a pointer is checked for its tag, its own id and its birth txn;
//!   its checksum too when verification is on.
//! - Chains of pages are walked only through `chain`, which holds their bounds.

mod bitmap;
pub(crate) mod chain;
mod free_runs;
pub mod freemap;
mod placement;
mod search_starts;
mod write;

pub use search_starts::SearchStarts;
pub use write::{LastWrite, MetaWrite, WritePager};

use crate::format::{self, Ptr};
use crate::io::View;
use crate::{Error, Result};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

/// Where the B+tree reads pages from: a read transaction's view, or a write transaction.
pub trait PageSource {
    /// The page size.
    fn page_size(&self) -> usize;
    /// A node page reached through `ptr`, checked.
    fn node(&self, ptr: Ptr) -> Result<&[u8]>;
    /// The bytes of an overflow value of `len` bytes starting at `ptr.page`.
    fn overflow(&self, ptr: Ptr, len: u64) -> Result<&[u8]>;
    /// Asks for the first lines of the node behind `ptr` to be loaded ahead of its read (a
    /// hint: nothing is checked, and a bad pointer is ignored).
    fn prefetch_node(&self, _ptr: Ptr) {}
    /// As [`PageSource::prefetch_node`], the first `lines` cache lines only.
    fn prefetch_head(&self, _ptr: Ptr, _lines: usize) {}
    /// The bytes of the page behind `ptr`, unchecked, or None: only for choosing what to
    /// prefetch, never for a value (nothing is verified, not even the tag).
    fn unchecked(&self, _ptr: Ptr) -> Option<&[u8]> {
        None
    }
}

/// Committed pages as seen through a view.
#[derive(Clone)]
pub struct ReadPages {
    view: Arc<dyn View>,
    /// Bytes of the committed state: the view may map more (room to grow), but nothing past
    /// the state's own file length is ever touched.
    limit: u64,
    page_size: usize,
    verify: bool,
    /// The first page past the meta region, and the pages within `limit`: kept so that a
    /// read divides nothing.
    first_page: u64,
    pages: u64,
}

impl ReadPages {
    /// Reads the first `limit` bytes of `view`; `verify` checks every page's checksum on
    /// read.
    pub fn new(view: Arc<dyn View>, limit: u64, page_size: usize, verify: bool) -> Self {
        let limit = limit.min(view.byte_len());
        ReadPages {
            view,
            limit,
            page_size,
            verify,
            first_page: format::first_data_page(page_size),
            pages: limit / page_size as u64,
        }
    }

    /// The same bytes as `slice`, borrowed from this view, when `slice` lies inside it (it
    /// was read through a clone of it); `None` for bytes held elsewhere (a dirty page).
    /// Only addresses are compared: nothing is read that `self` does not own.
    pub fn rebind(&self, slice: &[u8]) -> Option<&[u8]> {
        self.view.rebind(slice)
    }

    /// The whole page `id`, unchecked (a bounds error if it is past the end).
    #[inline(always)]
    pub fn raw_page(&self, id: u64) -> Result<&[u8]> {
        let start = self.page_start(id)?;
        self.view
            .slice(start, self.page_size)
            .ok_or_else(|| Error::corrupted(id, "page lies past the end of the view"))
    }

    /// A page of the given tags reached through `ptr`, checked.
    #[inline]
    pub fn tagged(&self, ptr: Ptr, tags: &[u8], verify: bool) -> Result<&[u8]> {
        let page = self.raw_page(ptr.page.0)?;
        format::check_page(page, ptr, verify || self.verify, tags)?;
        Ok(page)
    }

    /// Pages visible in the view.
    pub fn view_pages(&self) -> u64 {
        self.pages
    }

    /// Where page `id` starts, or `Corrupted` when it lies past the end or in the meta
    /// region.
    #[inline(always)]
    fn page_start(&self, id: u64) -> Result<u64> {
        if id < self.first_page {
            return Err(Error::corrupted(id, "pointer into the meta region"));
        }
        if id >= self.pages {
            return Err(Error::corrupted(id, "page lies past the end of the file"));
        }
        // At most `limit`: no overflow.
        Ok(id * self.page_size as u64)
    }

    /// Overflow bytes, optionally verified regardless of the reader's setting.
    pub fn overflow_checked(&self, ptr: Ptr, len: u64, verify: bool) -> Result<&[u8]> {
        let start = overflow_start(ptr, len, self.first_page, self.limit, self.page_size)?;
        let bytes = (self.view.slice(start, len as usize))
            .ok_or_else(|| Error::corrupted(ptr.page.0, "overflow run lies past the end"))?;
        if (verify || self.verify) && format::checksum(bytes) != ptr.crc {
            return Err(Error::corrupted(ptr.page.0, "overflow checksum mismatch"));
        }
        Ok(bytes)
    }
}

impl PageSource for ReadPages {
    fn page_size(&self) -> usize {
        self.page_size
    }

    #[inline]
    fn node(&self, ptr: Ptr) -> Result<&[u8]> {
        self.tagged(ptr, &[format::tag::LEAF, format::tag::BRANCH], false)
    }

    fn overflow(&self, ptr: Ptr, len: u64) -> Result<&[u8]> {
        self.overflow_checked(ptr, len, false)
    }

    fn prefetch_node(&self, ptr: Ptr) {
        if let Ok(page) = self.raw_page(ptr.page.0) {
            crate::io::prefetch(page);
        }
    }

    fn prefetch_head(&self, ptr: Ptr, lines: usize) {
        if let Ok(page) = self.raw_page(ptr.page.0) {
            crate::io::prefetch(&page[..(lines * 64).min(page.len())]);
        }
    }

    fn unchecked(&self, ptr: Ptr) -> Option<&[u8]> {
        self.raw_page(ptr.page.0).ok()
    }
}

/// Pages taken by an overflow value of `len` bytes.
pub fn overflow_pages(len: u64, page_size: usize) -> u64 {
    len.div_ceil(page_size as u64).max(1)
}

/// Where the overflow run of `len` bytes at `ptr.page` starts among `limit` bytes, or
/// `Corrupted` when it reaches past them or into the meta region.
fn overflow_start(
    ptr: Ptr,
    len: u64,
    first_page: u64,
    limit: u64,
    page_size: usize,
) -> Result<u64> {
    let id = ptr.page.0;
    if id < first_page {
        return Err(Error::corrupted(
            id,
            "overflow pointer into the meta region",
        ));
    }
    let start = id.checked_mul(page_size as u64);
    let end = start.and_then(|s| s.checked_add(len));
    match (start, end) {
        (Some(s), Some(e)) if e <= limit && usize::try_from(len).is_ok() => Ok(s),
        _ => Err(Error::corrupted(
            id,
            "overflow run lies past the end of the file",
        )),
    }
}

/// A hasher for page ids: they are already well spread, so a multiply is enough.
#[derive(Default, Clone, Copy)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | b as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A `HashMap` keyed by page id.
pub type IdMap<V> = std::collections::HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// A `HashSet` of page ids.
pub type IdSet = std::collections::HashSet<u64, BuildHasherDefault<IdHasher>>;
