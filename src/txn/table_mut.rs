//! A table inside a write transaction, and its range iterator.
//!
//! Several tables of one transaction are open at once: each `TableMut` borrows the
//! transaction shared (`&WriteTxn`), and the state they change together (the pages, the
//! refcount root, the tables' records and insert buffers) lives in one `RefCell<Core>`.
//!
//! Invariants:
//! - No `RefCell` borrow of the core outlives a method call, and no user code (a `retain`
//!   predicate, a loop body over a range) runs while one is held. So a borrow never meets
//!   another one, and reads (`&self`) and writes (`&mut self`) of different tables
//!   interleave freely.
//! - What a read returns never borrows the core: bytes on committed pages are borrowed from
//!   the transaction's base view (which lives as long as the transaction and is not written
//!   before the commit), and bytes on pages this transaction wrote are copied.
//! - A table has at most one open `TableMut` at a time in a transaction (`TableState::open`).

use super::buffer::{InsertBuffer, FLUSH_BYTES, PREFETCH_AHEAD};
use super::names::{TableRecord, TypeNames};
use super::table::to_tree_bound;
use super::write::Core;
use crate::btree::{self, Bound as TreeBound, Cursor, Sharing, TreeKind};
use crate::format::{node, Ptr};
use crate::pager::{PageSource, ReadPages, WritePager};
use crate::{Error, Result};
use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::ops::RangeBounds;
use std::rc::{Rc, Weak};

/// One table as this transaction sees it.
pub(crate) struct TableState {
    pub(crate) name: String,
    pub(crate) record: TableRecord,
    pub(crate) changed: bool,
    pub(crate) deleted: bool,
    /// Alive while a `TableMut` of this table is (it holds the only strong count). Not a
    /// flag cleared by `Drop`: a `Drop` impl would make every handle outlive its last use,
    /// so a commit would need it dropped first.
    pub(crate) open: Weak<()>,
    pub(crate) buffer: InsertBuffer,
}

impl TableState {
    pub(crate) fn new(name: &str, record: TableRecord, deleted: bool) -> Self {
        TableState {
            name: name.to_string(),
            record,
            changed: false,
            deleted,
            open: Weak::new(),
            buffer: InsertBuffer::default(),
        }
    }
}

/// A table inside a write transaction. Several may be open at once; reads take `&self`,
/// writes `&mut self`. Reads see this transaction's own writes.
pub struct TableMut<'t> {
    core: &'t RefCell<Core>,
    committed: &'t ReadPages,
    index: usize,
    _open: Rc<()>,
}

/// An entry read from a write transaction: borrowed where it lies on a committed page,
/// copied where this transaction wrote it.
pub(crate) type CowEntry<'t> = (Cow<'t, [u8]>, Cow<'t, [u8]>);

impl std::fmt::Debug for TableMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its length may wait in the insert buffer, which `Debug` must not apply.
        let core = self.core.borrow();
        f.debug_struct("TableMut")
            .field("name", &core.tables[self.index].name)
            .finish_non_exhaustive()
    }
}

/// `bytes` borrowed from the committed view when it lies there, else copied.
fn cow<'t>(committed: &'t ReadPages, bytes: &[u8]) -> Cow<'t, [u8]> {
    match committed.rebind(bytes) {
        Some(same) => Cow::Borrowed(same),
        None => Cow::Owned(bytes.to_vec()),
    }
}

impl<'t> TableMut<'t> {
    /// The handle of table `index`; an error when one is open already.
    pub(crate) fn open(
        core: &'t RefCell<Core>,
        committed: &'t ReadPages,
        index: usize,
    ) -> Result<Self> {
        let state = &mut core.borrow_mut().tables[index];
        if state.open.upgrade().is_some() {
            return Err(Error::InvalidArgument(format!(
                "table {} is already open in this transaction",
                state.name
            )));
        }
        let token = Rc::new(());
        state.open = Rc::downgrade(&token);
        Ok(TableMut {
            core,
            committed,
            index,
            _open: token,
        })
    }

    /// Runs a change of this table's tree with the core borrowed, keeping the refcount root
    /// and marking the transaction failed when the tree may be half changed.
    fn change<T>(
        &mut self,
        f: impl FnOnce(&mut WritePager, &mut Sharing<'_>, &mut TableState) -> Result<T>,
    ) -> Result<T> {
        let mut core = self.core.borrow_mut();
        let core = &mut *core;
        let mut sh = core.edit.sharing(TreeKind::Table);
        let result = f(&mut core.pager, &mut sh, &mut core.tables[self.index]);
        if let Err(e) = &result {
            if !matches!(e, Error::KeyTooLarge { .. } | Error::ValueTooLarge { .. }) {
                core.failed = true;
            }
        }
        result
    }

    /// Inserts or overwrites `key`. Keys sort bytewise, so integers keep their order only
    /// big-endian (`n.to_be_bytes()`); a key may be up to [`crate::MAX_KEY_LEN`] bytes and a
    /// value up to [`crate::MAX_VALUE_LEN`], checked at once. Small entries are buffered and
    /// applied in key order before the table is next read, which makes loads fast; use
    /// [`TableMut::replace`] to get the old value back.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        btree::check_sizes(key, value.len())?;
        let page_size = self.committed.page_size();
        if node::fits_inline(key.len(), value.len(), page_size) {
            let mut core = self.core.borrow_mut();
            let state = &mut core.tables[self.index];
            state.buffer.push(key, value);
            state.changed = true;
            let full = state.buffer.bytes() >= FLUSH_BYTES;
            drop(core);
            return if full { self.flush() } else { Ok(()) };
        }
        self.flush()?;
        self.change(|pager, sh, state| {
            let (root, replaced) = btree::insert(pager, sh, state.record.root, key, value)?;
            state.record.root = root;
            state.record.len += u64::from(!replaced);
            state.changed = true;
            Ok(())
        })
    }

    /// Applies the buffered inserts to the tree, in key order.
    fn flush(&self) -> Result<()> {
        flush_table(&mut self.core.borrow_mut(), self.index)
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &[u8]) -> Result<bool> {
        self.flush()?;
        self.change(|pager, sh, state| {
            let (root, removed) = btree::remove(pager, sh, state.record.root, key)?;
            if removed {
                state.record.root = root;
                state.record.len -= 1;
                state.changed = true;
            }
            Ok(removed)
        })
    }

    /// The value of `key`, including this transaction's writes.
    pub fn get(&self, key: &[u8]) -> Result<Option<Cow<'t, [u8]>>> {
        self.flush()?;
        let core = self.core.borrow();
        let root = core.tables[self.index].record.root;
        let found = btree::get(&core.pager, root, key)?;
        Ok(found.map(|value| cow(self.committed, value)))
    }

    /// Entries with keys in `range`, in key order, including this transaction's writes;
    /// double-ended. The table can't change while the iterator lives, other tables can.
    pub fn range<'k, R: RangeBounds<&'k [u8]>>(&self, range: R) -> Result<RangeMut<'_>> {
        self.flush()?;
        let root = self.core.borrow().tables[self.index].record.root;
        Ok(RangeMut {
            core: self.core,
            committed: self.committed,
            root,
            low: to_tree_bound(range.start_bound()),
            high: to_tree_bound(range.end_bound()),
            front: VecDeque::new(),
            back: VecDeque::new(),
            middle_done: false,
        })
    }

    /// All entries, in key order; double-ended.
    pub fn iter(&self) -> Result<RangeMut<'_>> {
        self.range::<std::ops::RangeFull>(..)
    }

    /// Number of entries, in O(1).
    pub fn len(&self) -> Result<u64> {
        self.flush()?;
        Ok(self.core.borrow().tables[self.index].record.len)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The key and value type names recorded when the table was created through the typed
    /// API; `None` for a table created through the byte API.
    pub fn type_names(&self) -> Option<TypeNames> {
        self.core.borrow().tables[self.index].record.types.clone()
    }
}

/// Applies table `index`'s buffered inserts to its tree, in key order. An error marks the
/// transaction failed (the tree may be half changed).
pub(crate) fn flush_table(core: &mut Core, index: usize) -> Result<()> {
    let state = &mut core.tables[index];
    if state.buffer.is_empty() {
        return Ok(());
    }
    let buffer = std::mem::take(&mut state.buffer);
    let mut root = state.record.root;
    let mut added = 0u64;
    let mut result = Ok(());
    let mut finger = None;
    let mut sh = core.edit.sharing(TreeKind::Table);
    let sorted = buffer.sorted();
    for (i, &(key, value)) in sorted.iter().enumerate() {
        // The buffer's entries lie in insertion order: in key order each is a cache miss,
        // which the tree insert would otherwise wait for.
        if let Some(&(k, v)) = sorted.get(i + PREFETCH_AHEAD) {
            crate::io::prefetch(k);
            crate::io::prefetch(v);
        }
        match btree::insert_with_finger(&mut core.pager, &mut sh, root, key, value, &mut finger) {
            Ok((new_root, replaced)) => {
                root = new_root;
                added += u64::from(!replaced);
            }
            Err(e) => {
                core.failed = true;
                result = Err(e);
                break;
            }
        }
    }
    let state = &mut core.tables[index];
    state.record.root = root;
    state.record.len += added;
    state.changed = true;
    result
}

/// Entries fetched per descent: the core is borrowed only while a batch is read.
const BATCH: usize = 64;

/// An iterator over a table of a write transaction, from either end. It reads in batches,
/// each from a fresh descent, so it holds no borrow between calls.
pub struct RangeMut<'t> {
    core: &'t RefCell<Core>,
    committed: &'t ReadPages,
    root: Ptr,
    /// The part not fetched yet lies strictly between `low` and `high`.
    low: TreeBound,
    high: TreeBound,
    /// Fetched from the low end, ascending.
    front: VecDeque<CowEntry<'t>>,
    /// Fetched from the high end, ascending.
    back: VecDeque<CowEntry<'t>>,
    /// Whether nothing is left between `low` and `high`.
    middle_done: bool,
}

impl std::fmt::Debug for RangeMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeMut").finish_non_exhaustive()
    }
}

impl<'t> RangeMut<'t> {
    /// Fetches up to `BATCH` entries of the middle part, from its low end or its high end.
    fn fetch(&mut self, from_low: bool) -> Result<()> {
        let core: std::cell::Ref<'_, Core> = self.core.borrow();
        let src: &dyn PageSource = &core.pager;
        let mut cursor = Cursor::new(src, self.root, self.low.clone(), self.high.clone());
        let mut batch = Vec::with_capacity(BATCH);
        // Bounded: at most BATCH entries.
        while batch.len() < BATCH {
            let next = if from_low {
                cursor.next()
            } else {
                cursor.next_back()
            };
            match next.transpose()? {
                Some((key, value)) => batch.push((key, value)),
                None => break,
            }
        }
        self.middle_done = batch.len() < BATCH;
        if let Some((key, _)) = batch.last() {
            let end = TreeBound::Excluded(key.to_vec());
            *(if from_low {
                &mut self.low
            } else {
                &mut self.high
            }) = end;
        }
        let committed = self.committed;
        let entries = batch
            .into_iter()
            .map(|(key, value)| (cow(committed, key), cow(committed, value)));
        if from_low {
            self.front.extend(entries);
        } else {
            for entry in entries {
                self.back.push_front(entry);
            }
        }
        Ok(())
    }

    fn step(&mut self, from_low: bool) -> Option<Result<CowEntry<'t>>> {
        let own = if from_low { &self.front } else { &self.back };
        if own.is_empty() && !self.middle_done {
            if let Err(e) = self.fetch(from_low) {
                self.middle_done = true;
                self.front.clear();
                self.back.clear();
                return Some(Err(e));
            }
        }
        let item = if from_low {
            self.front.pop_front().or_else(|| self.back.pop_front())
        } else {
            self.back.pop_back().or_else(|| self.front.pop_back())
        };
        item.map(Ok)
    }
}

impl<'t> Iterator for RangeMut<'t> {
    type Item = Result<(Cow<'t, [u8]>, Cow<'t, [u8]>)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.step(true)
    }
}

impl DoubleEndedIterator for RangeMut<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.step(false)
    }
}
