//! The page state of one write transaction: dirty pages, overflow runs, the free map, and the
//! write-out at commit.
//!
//! Invariants:
//! - `dirty` holds exactly the node pages born in this txn that are still live; a dirty page
//!   is validated when it is copied, so in-place edits on it cannot go out of bounds. Before
//!   it is written, its header's bounds are asserted, and its whole layout too in builds
//!   with tests or fuzzing (see [`WritePager::seal`]).
//! - Pages are written only at commit, to ids no reader can reach, with one `write_at` per run
//!   of contiguous pages.

use super::freemap::{FreeMap, Heat, Persisted};
use super::{overflow_pages, IdMap, PageSource, ReadPages};
use crate::format::copy::NodeFill;
use crate::format::meta::META_BYTES;
use crate::format::{self, node, tag, PageHeader, PageId, Ptr, TxnId};
use crate::io::Storage;
use crate::{Error, Result};

/// A copied page whose old version was born within this many txns counts as hot.
const HOT_WITHIN_TXNS: u64 = 4;

/// The most bytes of a run of contiguous pages that `write_out` gathers for one write.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// Pages of one write transaction.
pub struct WritePager {
    committed: ReadPages,
    txn: TxnId,
    dirty: IdMap<Box<[u8]>>,
    overflow: IdMap<Box<[u8]>>,
    /// Pages and runs moved whole by a compaction, birth kept: written as they are.
    moved: IdMap<Box<[u8]>>,
    /// Dirty leaves copied from a committed page: that page, for the leaf's edit hint.
    bases: IdMap<Ptr>,
    free: FreeMap,
}

impl WritePager {
    /// Starts transaction `txn` over the committed pages, with its free map.
    pub fn new(committed: ReadPages, txn: TxnId, free: FreeMap) -> Self {
        WritePager {
            committed,
            txn,
            dirty: IdMap::default(),
            overflow: IdMap::default(),
            moved: IdMap::default(),
            bases: IdMap::default(),
            free,
        }
    }

    /// The transaction being written.
    pub fn txn(&self) -> TxnId {
        self.txn
    }

    /// The free map, for the settings of a compaction step (ceiling, shrinking, relocation).
    pub fn free_map(&mut self) -> &mut FreeMap {
        &mut self.free
    }

    /// Node pages made dirty so far.
    pub fn dirty_pages(&self) -> usize {
        self.dirty.len()
    }

    fn ptr_to(&self, id: u64) -> Ptr {
        Ptr {
            page: PageId(id),
            txn: self.txn,
            crc: 0,
        }
    }

    /// A new empty node page at `level`.
    pub fn new_node(&mut self, level: u8) -> Result<Ptr> {
        self.new_filled(NodeFill::new(self.committed.page_size(), level, self.txn.0))
    }

    /// A new page holding the node `fill` built, born in this txn (a tree built bottom-up).
    pub fn new_filled(&mut self, fill: NodeFill) -> Result<Ptr> {
        let id = self.free.alloc(&self.committed, 1, Heat::Cold)?;
        let page = fill.finish(id).into_boxed_slice();
        assert_eq!(
            page.len(),
            self.committed.page_size(),
            "a node of another page size"
        );
        assert_eq!(
            PageHeader::read(&page).txn.get(),
            self.txn.0,
            "a filled node born in another txn"
        );
        self.dirty.insert(id, page);
        Ok(self.ptr_to(id))
    }

    /// Makes the node behind `ptr` writable: itself when dirty, else a copy on a new page
    /// (the old page is freed). Returns the pointer to the writable page.
    pub fn make_dirty(&mut self, ptr: Ptr) -> Result<Ptr> {
        if ptr.txn == self.txn {
            if !self.dirty.contains_key(&ptr.page.0) {
                return Err(Error::corrupted(
                    ptr.page.0,
                    "pointer claims the current txn",
                ));
            }
            return Ok(ptr);
        }
        let copy = self.copy_node(ptr)?;
        self.free.free(&self.committed, ptr.page.0, ptr.txn.0)?;
        Ok(copy)
    }

    /// Frees a meta page of a commit chain, or a page reserved for one, written (or
    /// reserved) by txn `born`.
    pub fn free_meta_page(&mut self, id: u64, born: u64) -> Result<()> {
        self.free.free(&self.committed, id, born)
    }

    /// Copies the committed node behind `ptr` to a new dirty page, leaving the original in
    /// place (it is still shared with another root).
    pub fn copy_node(&mut self, ptr: Ptr) -> Result<Ptr> {
        assert!(ptr.txn != self.txn, "copying a dirty page");
        let source = self.committed.node(ptr)?;
        // Copied first, then checked: one sequential read of a page the cache has not seen,
        // and the check's jumps between slots and entries land in the copy.
        let mut page: Box<[u8]> = source.into();
        node::validate(&page, ptr.page.0)?;
        // A page rewritten recently is likely to be rewritten again soon (a root, the
        // catalog): it goes with the other hot pages, whose runs then free up whole.
        let heat = if ptr.txn.0 + HOT_WITHIN_TXNS >= self.txn.0 {
            Heat::Hot
        } else {
            Heat::Cold
        };
        let id = self.free.alloc(&self.committed, 1, heat)?;
        node::rebirth(&mut page, id, self.txn.0);
        if PageHeader::read(&page).tag == tag::LEAF {
            self.bases.insert(id, ptr);
        }
        self.dirty.insert(id, page);
        Ok(self.ptr_to(id))
    }

    /// The bytes of a dirty page, to read.
    pub fn dirty_page(&self, id: PageId) -> &[u8] {
        self.dirty
            .get(&id.0)
            .unwrap_or_else(|| panic!("page {} is not dirty", id.0))
    }

    /// The bytes of a dirty page.
    pub fn page_mut(&mut self, id: PageId) -> &mut [u8] {
        self.dirty
            .get_mut(&id.0)
            .unwrap_or_else(|| panic!("page {} is not dirty", id.0))
    }

    /// Frees a node page (at once if born in this txn).
    pub fn free_node(&mut self, ptr: Ptr) -> Result<()> {
        if ptr.txn == self.txn {
            assert!(
                self.dirty.remove(&ptr.page.0).is_some(),
                "freeing a page twice"
            );
            self.bases.remove(&ptr.page.0);
        }
        self.free.free(&self.committed, ptr.page.0, ptr.txn.0)
    }

    /// Stores `value` in a new overflow run.
    pub fn write_overflow(&mut self, value: &[u8]) -> Result<Ptr> {
        let n = overflow_pages(value.len() as u64, self.committed.page_size());
        let id = self.free.alloc(&self.committed, n, Heat::Cold)?;
        self.overflow.insert(id, value.into());
        Ok(Ptr {
            page: PageId(id),
            txn: self.txn,
            crc: format::checksum(value),
        })
    }

    /// Frees an overflow run of `len` bytes.
    pub fn free_overflow(&mut self, ptr: Ptr, len: u64) -> Result<()> {
        if ptr.txn == self.txn {
            assert!(
                self.overflow.remove(&ptr.page.0).is_some(),
                "freeing a run twice"
            );
        }
        let n = overflow_pages(len, self.committed.page_size());
        for id in ptr.page.0..ptr.page.0 + n {
            self.free.free(&self.committed, id, ptr.txn.0)?;
        }
        Ok(())
    }

    /// Pages for a node or run of `n` pages moved whole (a compaction).
    pub fn alloc_moved(&mut self, n: u64) -> Result<u64> {
        self.free.alloc(&self.committed, n, Heat::Cold)
    }

    /// Keeps `bytes`, final (a moved node or run: checksummed, birth kept), for page `id`,
    /// which `alloc_moved` handed out.
    pub fn put_moved(&mut self, id: u64, bytes: Box<[u8]>) {
        assert!(
            !bytes.is_empty() && id < self.free.file_pages(),
            "moved page {id} out of range"
        );
        assert!(
            self.moved.insert(id, bytes).is_none(),
            "page {id} moved twice"
        );
    }

    /// Pages and runs moved so far; a commit that moved any syncs them before its meta,
    /// since their births are old and recovery would not check them.
    pub fn moved_count(&self) -> usize {
        self.moved.len()
    }

    /// Checksums a dirty page once its content is final; a leaf copied from a committed
    /// page gets its edit hint against that page first (see `format::hint`).
    pub fn seal(&mut self, id: PageId) -> Ptr {
        if let Some(base) = self.bases.remove(&id.0) {
            self.settle_hint(id.0, base);
        }
        let page = &self.dirty[&id.0];
        // Every dirty page was validated when it was copied (or built empty), and the node
        // edits keep it valid. Proving all of it again before the write cost an eighth of a
        // commit's CPU, so release builds assert the header's bounds (a constant cost) and
        // builds with tests or fuzzing (`testkit`, debug) assert the whole proof.
        assert!(
            node::NodeView::new(page, id.0).is_ok(),
            "sealing a node page {} with a bad header",
            id.0
        );
        #[cfg(any(debug_assertions, feature = "testkit"))]
        assert!(
            node::validate(page, id.0).is_ok(),
            "sealing an invalid node page {}",
            id.0
        );
        Ptr {
            page: id,
            txn: self.txn,
            crc: format::checksum(page),
        }
    }

    /// Compares dirty leaf `id` with `base`, the page it was copied from, for its edit hint.
    /// A base that cannot be read leaves the leaf without one (`node::rebirth` cleared it at
    /// the copy): a hint is only a shortcut.
    fn settle_hint(&mut self, id: u64, base: Ptr) {
        let page = self
            .dirty
            .get_mut(&id)
            .unwrap_or_else(|| panic!("page {id} is not dirty"));
        let base_view =
            (self.committed.node(base)).and_then(|bytes| node::NodeView::new(bytes, base.page.0));
        if let Ok(view) = base_view {
            node::settle_hint(page, id, &view, (base.page.0, base.txn.0));
        }
    }

    /// Persists the free map (taking a page for the next commit's meta when `reserve`) and
    /// writes every dirty page and run, except the write that carries the meta `meta`
    /// returns, if any: a meta page's run (the pages contiguous with it, gathered with it),
    /// or the slot. That write is returned for the caller to make last, as a failure from
    /// it on poisons the database. Returns also what the meta needs and the
    /// file length in pages. Nothing is synced here.
    ///
    /// When the file must grow, `grow(new_len_bytes)` runs first: it extends the file and
    /// makes the new length durable, so that no meta ever points past a durable end of file.
    /// `meta(persisted, file_pages)` runs after it, before any page is written.
    pub fn write_out(
        mut self,
        storage: &dyn Storage,
        reserve: bool,
        grow: impl FnOnce(u64) -> Result<()>,
        meta: impl FnOnce(&Persisted, u64) -> Result<Option<MetaWrite>>,
    ) -> Result<PagesOut> {
        let mut extra: Vec<(u64, Box<[u8]>)> = Vec::new();
        let persisted = self
            .free
            .persist(&self.committed, reserve, |id, page| extra.push((id, page)))?;
        let page_size = self.committed.page_size();
        let file_pages = self.free.file_pages();
        let mut writes: Vec<(u64, &[u8])> = Vec::with_capacity(self.dirty.len() + extra.len() + 1);
        for (id, page) in &self.dirty {
            assert_eq!(format::PageHeader::read(page).page_id.get(), *id);
            writes.push((*id, page));
        }
        for (id, page) in &extra {
            writes.push((*id, page));
        }
        for (id, bytes) in self.overflow.iter().chain(&self.moved) {
            writes.push((*id, bytes));
        }
        writes.sort_unstable_by_key(|w| w.0);
        let needed = file_pages * page_size as u64;
        let old_len = storage.len()?;
        if old_len < needed {
            grow(needed)?;
            zero_fill(
                storage,
                &writes,
                old_len.div_ceil(page_size as u64),
                file_pages,
                page_size,
            )?;
        }
        let meta = meta(&persisted, file_pages)?;
        let mut last = None;
        if let Some(MetaWrite::Page { id, meta }) = &meta {
            assert!(*id < file_pages, "a meta page in the file");
            let at = writes.partition_point(|w| w.0 < *id);
            assert!(
                writes.get(at).is_none_or(|w| w.0 != *id),
                "a meta page is no other page"
            );
            writes.insert(at, (*id, meta));
            last = Some(*id);
        }
        let held = write_runs(storage, &writes, file_pages, page_size, last)?;
        let last_write = match meta {
            Some(MetaWrite::Slot(write)) => Some(write),
            Some(MetaWrite::Page { .. }) => held,
            None => None,
        };
        Ok(PagesOut {
            persisted,
            file_pages,
            last_write,
        })
    }
}

/// Where a commit's meta goes: a meta page (see `txn::commit`), or a slot.
pub enum MetaWrite {
    /// The page the last meta named, with the encoded meta (the write pads it with zeros
    /// to the page's end, as it does an overflow run's last page).
    Page {
        /// Its id.
        id: u64,
        /// The encoded meta.
        meta: [u8; META_BYTES],
    },
    /// A meta slot: the encoded meta at the slot's offset.
    Slot(LastWrite),
}

/// A write `write_out` leaves to its caller: bytes, and where they go (in bytes).
pub struct LastWrite {
    /// Where the bytes go.
    pub offset: u64,
    /// The bytes.
    pub bytes: Vec<u8>,
}

/// What `write_out` did.
pub struct PagesOut {
    /// What the free map's persisting gives the meta.
    pub persisted: Persisted,
    /// The file's length in pages.
    pub file_pages: u64,
    /// The write that carries the meta, for the caller to make last; None when the meta
    /// callback gave no meta.
    pub last_write: Option<LastWrite>,
}

/// Writes `writes` (sorted by page, none past `file_pages`) with one `write_at` per run of
/// contiguous pages, at most [`WRITE_CHUNK_BYTES`] a write: a run of one write whose bytes
/// fill their pages goes out from where it lies; a longer run, or an overflow run's last
/// page (padded with zeros), is gathered in one reused buffer first. The device sees the
/// same contiguous ranges, and a bulk load does not copy its whole size into fresh memory
/// first (a page fault for every page of it). The run that holds page `held` is not
/// written: it is returned gathered.
fn write_runs(
    storage: &dyn Storage,
    writes: &[(u64, &[u8])],
    file_pages: u64,
    page_size: usize,
    held: Option<u64>,
) -> Result<Option<LastWrite>> {
    let mut buf: Vec<u8> = Vec::new();
    let mut kept = None;
    let mut i = 0;
    // Bounded: every round takes at least one entry of `writes`.
    while i < writes.len() {
        let start = writes[i].0;
        let (mut n, mut bytes, mut next) = (0, 0, start);
        // Bounded: `n` grows each round, up to the entries left.
        while i + n < writes.len() && writes[i + n].0 == next && bytes < WRITE_CHUNK_BYTES {
            assert!(writes[i + n].0 < file_pages, "writing past the file");
            let pages = overflow_pages(writes[i + n].1.len() as u64, page_size);
            bytes += pages as usize * page_size;
            next += pages;
            n += 1;
        }
        let run = &writes[i..i + n];
        i += n;
        let offset = start * page_size as u64;
        if held.is_some_and(|id| (start..next).contains(&id)) {
            let bytes = gather(Vec::with_capacity(bytes), run, page_size);
            kept = Some(LastWrite { offset, bytes });
            continue;
        }
        if let [(_, only)] = run {
            if only.len() == bytes {
                storage.write_at(offset, only)?;
                continue;
            }
        }
        if buf.capacity() < bytes {
            // A fresh buffer: growing the old one would copy its stale bytes.
            buf = Vec::with_capacity(bytes);
        }
        buf = gather(buf, run, page_size);
        storage.write_at(offset, &buf)?;
    }
    Ok(kept)
}

/// The pages of `run` one after another in `buf` (emptied first), each padded to whole pages.
fn gather(mut buf: Vec<u8>, run: &[(u64, &[u8])], page_size: usize) -> Vec<u8> {
    buf.clear();
    for (_, page) in run {
        buf.extend_from_slice(page);
        buf.resize(buf.len().next_multiple_of(page_size), 0);
    }
    buf
}

/// Writes zeros over the pages of `[from, to)` that `writes` (sorted by page) leaves
/// untouched. Growth leaves a hole in the file, and on ext4 the first write into a hole
/// allocates blocks, which makes that commit's `fdatasync` commit the journal too (two more
/// device writes, about a quarter of a small commit's cost on the benchmark machine). Filled
/// once at growth, the pages are later overwritten in place.
fn zero_fill(
    storage: &dyn Storage,
    writes: &[(u64, &[u8])],
    from: u64,
    to: u64,
    page_size: usize,
) -> Result<()> {
    // One megabyte of zeros for every growth, never allocated (it lies in zeroed memory that
    // the OS maps on first read); 16 pages a write at the largest page size.
    static ZEROS: [u8; 1 << 20] = [0; 1 << 20];
    let zeros = &ZEROS[..];
    let chunk_pages = (ZEROS.len() / page_size) as u64;
    let mut gap_start = from;
    let fill = |start: u64, end: u64| -> Result<()> {
        let mut at = start;
        // Bounded: every round writes at least one page of `[start, end)`.
        while at < end {
            let n = (end - at).min(chunk_pages);
            storage.write_at(at * page_size as u64, &zeros[..n as usize * page_size])?;
            at += n;
        }
        Ok(())
    };
    for &(id, bytes) in writes.iter().filter(|w| w.0 >= from) {
        if id > gap_start {
            fill(gap_start, id.min(to))?;
        }
        gap_start = gap_start.max(id + overflow_pages(bytes.len() as u64, page_size));
    }
    fill(gap_start, to)
}

impl PageSource for WritePager {
    fn page_size(&self) -> usize {
        self.committed.page_size()
    }

    #[inline]
    fn node(&self, ptr: Ptr) -> Result<&[u8]> {
        if ptr.txn == self.txn {
            return self
                .dirty
                .get(&ptr.page.0)
                .map(|p| &p[..])
                .ok_or_else(|| Error::corrupted(ptr.page.0, "pointer claims the current txn"));
        }
        self.committed.tagged(ptr, &[tag::LEAF, tag::BRANCH], false)
    }

    fn overflow(&self, ptr: Ptr, len: u64) -> Result<&[u8]> {
        if ptr.txn == self.txn {
            return self
                .overflow
                .get(&ptr.page.0)
                .filter(|b| b.len() as u64 == len)
                .map(|b| &b[..])
                .ok_or_else(|| {
                    Error::corrupted(ptr.page.0, "overflow pointer claims the current txn")
                });
        }
        self.committed.overflow(ptr, len)
    }
}
