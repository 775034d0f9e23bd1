//! The free map's bitmaps in memory: one `Bitmap` per bitmap page read or changed in a
//! transaction, and `Bitmaps`, the directory of them over the whole file.
//!
//! Invariants:
//! - The bit arithmetic on a bitmap body lives here only: bit `b` of bitmap `k` stands for
//!   page `k × bits + b` (byte `b / 8`, bit `b % 8`; the layout is `format::freemap`'s), and a
//!   set bit means free. Where the body starts comes from `format::freemap`.
//! - Every change to a bitmap sets its `modified`, so that the commit relocates it.
//! - A directory slot's `free` count moves with every bit changed through `Bitmaps`; a change
//!   that would break it (a page freed twice, a count that would wrap) is reported as
//!   corruption, never wrapped.
//! - The directory covers `file_pages` exactly: `dir.len() == file_pages.div_ceil(bits)`.

use super::ReadPages;
use crate::format::freemap::{bitmap_body, bitmap_body_mut, bitmap_words, bits_per_bitmap};
use crate::format::{tag, Ptr};
use crate::{Error, Result};

/// One directory entry in memory.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct DirSlot {
    pub ptr: Ptr,
    pub free: u32,
}

/// One bitmap page in memory.
pub(super) struct Bitmap {
    page: Box<[u8]>,
    /// Changed in this transaction: needs writing to `new_id` at commit.
    pub modified: bool,
    /// Where the commit writes it (chosen by `persist`).
    pub new_id: Option<u64>,
}

impl Bitmap {
    /// A bitmap over the bytes of a whole page.
    pub fn new(page: Box<[u8]>) -> Bitmap {
        Bitmap {
            page,
            modified: false,
            new_id: None,
        }
    }

    /// Whether bit `bit` (page `first + bit`) is free.
    #[inline]
    pub fn is_free(&self, bit: usize) -> bool {
        bitmap_body(&self.page)[bit / 8] & (1 << (bit % 8)) != 0
    }

    /// Marks bit `bit` in use.
    #[inline]
    pub fn take(&mut self, bit: usize) {
        bitmap_body_mut(&mut self.page)[bit / 8] &= !(1 << (bit % 8));
        self.modified = true;
    }

    /// Marks bit `bit` free; false (and nothing changed) when it was free already.
    #[inline]
    pub fn set_free(&mut self, bit: usize) -> bool {
        let byte = &mut bitmap_body_mut(&mut self.page)[bit / 8];
        if *byte & (1 << (bit % 8)) != 0 {
            return false;
        }
        *byte |= 1 << (bit % 8);
        self.modified = true;
        true
    }

    /// How many pages it marks free. Counted a word at a time: the fuzz targets count every
    /// bitmap they load (`Bitmaps::get`), and a count per byte, with coverage counters in
    /// the loop and no `popcnt`, was a twentieth of the `ops` target's instructions.
    pub fn free_bits(&self) -> u64 {
        (bitmap_words(self.body()).iter())
            .map(|w| u64::from(w.get().count_ones()))
            .sum()
    }

    /// The bits, for scans.
    pub fn body(&self) -> &[u8] {
        bitmap_body(&self.page)
    }

    /// The whole page, for stamping and writing at commit.
    pub fn page_mut(&mut self) -> &mut Box<[u8]> {
        &mut self.page
    }
}

/// The directory and the bitmaps read or changed in this transaction, over the whole file.
pub(super) struct Bitmaps {
    pub page_size: usize,
    /// Pages one bitmap covers.
    pub bits: u64,
    /// Pages in the file, counting growth in this transaction.
    pub file_pages: u64,
    pub dir: Vec<DirSlot>,
    /// The bitmap pages read or changed in this txn, by index (parallel to `dir`).
    pub maps: Vec<Option<Bitmap>>,
}

impl Bitmaps {
    /// A directory of `file_pages` pages, none of them free.
    pub fn new(page_size: usize, file_pages: u64) -> Bitmaps {
        let bits = bits_per_bitmap(page_size);
        let n = file_pages.div_ceil(bits) as usize;
        Bitmaps {
            page_size,
            bits,
            file_pages,
            dir: vec![DirSlot::default(); n],
            maps: (0..n).map(|_| None).collect(),
        }
    }

    /// Bitmap `k`, read on first use (a null slot reads as all pages in use).
    pub fn get(&mut self, pages: &ReadPages, k: usize) -> Result<&mut Bitmap> {
        if self.maps[k].is_none() {
            let slot = self.dir[k];
            let page: Box<[u8]> = if slot.ptr.is_null() {
                vec![0u8; self.page_size].into_boxed_slice()
            } else {
                pages.tagged(slot.ptr, &[tag::BITMAP], false)?.into()
            };
            let bitmap = Bitmap::new(page);
            // After the read, the pair of the assertion before the write (`write_bitmaps`).
            // Debug builds (and the fuzz targets) only: a count of a page's bits costs a
            // tenth of a small commit; `check` compares them always.
            if cfg!(debug_assertions) && bitmap.free_bits() != u64::from(slot.free) {
                return Err(Error::corrupted(
                    slot.ptr.page.0,
                    format!(
                        "bitmap marks {} pages free, its directory entry counts {}",
                        bitmap.free_bits(),
                        slot.free
                    ),
                ));
            }
            self.maps[k] = Some(bitmap);
        }
        Ok(self.maps[k].as_mut().expect("filled above"))
    }

    /// The bits of bitmap `k` without loading it into memory, or None when it holds no free
    /// page.
    pub fn body<'a>(&'a self, pages: &'a ReadPages, k: usize) -> Result<Option<&'a [u8]>> {
        let slot = self.dir[k];
        if slot.free == 0 {
            return Ok(None);
        }
        Ok(Some(match &self.maps[k] {
            Some(bitmap) => bitmap.body(),
            None => bitmap_body(pages.tagged(slot.ptr, &[tag::BITMAP], false)?),
        }))
    }

    /// Whether page `id` is free.
    #[inline]
    pub fn is_free(&mut self, pages: &ReadPages, id: u64) -> Result<bool> {
        let (k, bit) = ((id / self.bits) as usize, (id % self.bits) as usize);
        if self.dir[k].free == 0 {
            return Ok(false);
        }
        Ok(self.get(pages, k)?.is_free(bit))
    }

    /// Marks the free page `id` in use.
    pub fn take(&mut self, pages: &ReadPages, id: u64) -> Result<()> {
        let (k, bit) = ((id / self.bits) as usize, (id % self.bits) as usize);
        self.get(pages, k)?.take(bit);
        // A bitmap with more set bits than its count is corrupt, not a reason to wrap.
        self.dir[k].free = self.dir[k]
            .free
            .checked_sub(1)
            .ok_or_else(|| Error::corrupted(id, "bitmap has more free pages than its count"))?;
        Ok(())
    }

    /// Marks page `id` free.
    pub fn set_free(&mut self, pages: &ReadPages, id: u64) -> Result<()> {
        let (k, bit) = ((id / self.bits) as usize, (id % self.bits) as usize);
        if !self.get(pages, k)?.set_free(bit) {
            return Err(Error::corrupted(id, "page freed twice"));
        }
        self.dir[k].free = self.dir[k]
            .free
            .checked_add(1)
            .ok_or_else(|| Error::corrupted(id, "free count of a bitmap overflows"))?;
        Ok(())
    }

    /// Marks every page of `ids` free (the releases of a load, which may number hundreds of
    /// thousands after a large removal): one bitmap lookup per run of ids in the same bitmap.
    pub fn set_free_many(&mut self, pages: &ReadPages, ids: &[u64]) -> Result<()> {
        let mut i = 0;
        let bits = self.bits;
        // Bounded: every round frees at least one id.
        while i < ids.len() {
            let k = (ids[i] / bits) as usize;
            let first = k as u64 * bits;
            let bitmap = self.get(pages, k)?;
            let mut added = 0u32;
            while let Some(&id) = ids.get(i).filter(|&&id| id >= first && id - first < bits) {
                if !bitmap.set_free((id - first) as usize) {
                    return Err(Error::corrupted(id, "page freed twice"));
                }
                added += 1;
                i += 1;
            }
            bitmap.modified = true;
            self.dir[k].free = self.dir[k]
                .free
                .checked_add(added)
                .ok_or_else(|| Error::corrupted(ids[i - 1], "free count of a bitmap overflows"))?;
        }
        Ok(())
    }

    /// Covers a file of `file_pages` pages (more than now); the new pages are in use.
    pub fn extend(&mut self, file_pages: u64) {
        self.file_pages = file_pages;
        let n = file_pages.div_ceil(self.bits) as usize;
        self.dir.resize(n, DirSlot::default());
        self.maps.resize_with(n, || None);
    }

    /// The first page of the free tail: the lowest `t >= first` such that every page of
    /// `[t, file_pages)` is free (`file_pages` when the last page is in use).
    pub fn free_tail_start(&mut self, pages: &ReadPages, first: u64) -> Result<u64> {
        self.free_run_below(pages, first, self.file_pages)
    }

    /// The lowest `t >= first` such that every page of `[t, end)` is free (`end` when page
    /// `end - 1` is in use); `end` is at most `file_pages`.
    pub fn free_run_below(&mut self, pages: &ReadPages, first: u64, end: u64) -> Result<u64> {
        assert!(end <= self.file_pages, "a run below the end of the file");
        let mut start = end;
        // Bounded: one round per bitmap, from the last; a bitmap wholly free in the file is
        // skipped by its count, and the bits of the first one that is not are read one by one.
        for k in (0..self.dir.len()).rev() {
            let lo = (k as u64 * self.bits).max(first);
            if lo >= start {
                continue;
            }
            let bitmap_end = ((k as u64 + 1) * self.bits).min(self.file_pages);
            if start == bitmap_end && self.dir[k].free as u64 == start - lo {
                start = lo;
                continue;
            }
            let Some(body) = self.body(pages, k)? else {
                break;
            };
            start = free_run_down_to(body, k as u64 * self.bits, lo, start);
            break;
        }
        Ok(start)
    }

    /// Cuts the file to `end` pages; every page of `[end, file_pages)` must be free. Their
    /// bits are cleared, and the slots wholly past `end` are dropped: returns the bitmap pages
    /// those slots pointed at (for the caller to free).
    pub fn truncate(&mut self, pages: &ReadPages, end: u64) -> Result<Vec<Ptr>> {
        let n = end.div_ceil(self.bits) as usize;
        let dropped = self.dir[n..]
            .iter()
            .map(|s| s.ptr)
            .filter(|p| !p.is_null())
            .collect();
        self.dir.truncate(n);
        self.maps.truncate(n);
        // Bounded: at most one bitmap's pages.
        for id in end..self.file_pages.min(n as u64 * self.bits) {
            self.take(pages, id)?;
        }
        self.file_pages = end;
        Ok(dropped)
    }

    /// Pages free now.
    pub fn free_count(&self) -> u64 {
        self.dir.iter().map(|s| s.free as u64).sum()
    }
}

/// The start of the run of set bits that ends at page `end` (exclusive), going no lower than
/// `lo`, in the bitmap `body` whose first bit is page `base`: a whole byte at a time where it
/// can, since a commit looks at its free tail every time.
fn free_run_down_to(body: &[u8], base: u64, lo: u64, end: u64) -> u64 {
    let mut start = end;
    // Bounded: every round lowers `start` by one bit or one byte, down to `lo`.
    while start > lo {
        let bit = (start - 1 - base) as usize;
        if bit % 8 == 7 && start - 8 >= lo && body[bit / 8] == 0xFF {
            start -= 8;
        } else if body[bit / 8] & (1 << (bit % 8)) != 0 {
            start -= 1;
        } else {
            break;
        }
    }
    start
}
