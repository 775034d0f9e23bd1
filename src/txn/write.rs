//! The write transaction, its tables, snapshots and branches, and the commit protocol.
//!
//! Invariants:
//! - Nothing reaches the storage before `commit`; dropping a `WriteTxn` aborts it.
//! - The meta goes to the slot that does not hold the last durable meta, so a torn meta or a
//!   lost page can only fall back to that durable state.
//! - A transaction that hit an error while changing a tree refuses to commit.
//! - Every root record's catalog pointer holds one reference on its catalog root; taking a
//!   snapshot or a clone adds one (O(1)); dropping a root queues its catalog for release.

use super::buffer::{InsertBuffer, FLUSH_BYTES};
use super::catalog::{check_name, check_types, TableRecord, TypeNames};
use super::roots::{RootsEdit, SealedRoots};
use super::{table_names, Committed, Durability, DurableMark, Range, Shared, Shrink, WriterGuard};
use crate::btree::share::incref;
use crate::btree::{self, Sharing, TreeKind};
use crate::format::node;
use crate::format::roots::{Released, RootKind, RootRecord};
use crate::format::{Ptr, TxnId};
use crate::pager::freemap::FreeMap;
use crate::pager::{PageSource, WritePager};
use crate::{Error, Result};
use std::collections::HashMap;
use std::ops::RangeBounds;
use std::sync::atomic::Ordering;
use std::sync::Arc;

pub(crate) struct TableState {
    record: TableRecord,
    changed: bool,
    deleted: bool,
    buffer: InsertBuffer,
}

/// The one write transaction, on one branch. Reads its own writes; `commit` publishes them.
pub struct WriteTxn<'db> {
    shared: &'db Shared,
    _guard: WriterGuard<'db>,
    base: Arc<Committed>,
    pub(crate) pager: WritePager,
    pub(crate) edit: RootsEdit,
    catalog: Ptr,
    tables: HashMap<String, TableState>,
    snapshots: Vec<String>,
    durability: Durability,
    failed: bool,
}

/// A table inside a write transaction.
pub struct TableMut<'t> {
    pager: &'t mut WritePager,
    state: &'t mut TableState,
    refs: &'t mut Ptr,
    shared_until: u64,
    failed: &'t mut bool,
}

impl std::fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("txn", &self.pager.txn().0)
            .field("branch", &self.edit.branch)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for TableMut<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Its length may wait in the insert buffer, which `Debug` must not apply.
        f.debug_struct("TableMut").finish_non_exhaustive()
    }
}

impl<'db> WriteTxn<'db> {
    pub(crate) fn begin(shared: &'db Shared, branch: &str) -> Result<Self> {
        check_name(branch)?;
        let guard = shared.lock_writer()?;
        Self::begin_locked(shared, branch, guard)
    }

    /// As `begin`, but `None` at once when another thread holds the writer slot.
    pub(crate) fn try_begin(shared: &'db Shared, branch: &str) -> Result<Option<Self>> {
        check_name(branch)?;
        match shared.try_lock_writer()? {
            Some(guard) => Self::begin_locked(shared, branch, guard).map(Some),
            None => Ok(None),
        }
    }

    /// Begins on `branch` (any name, hidden ones too) with the writer slot already held, as
    /// a sequence of commits that must not let another writer in between does.
    pub(crate) fn begin_locked(
        shared: &'db Shared,
        branch: &str,
        guard: WriterGuard<'db>,
    ) -> Result<Self> {
        let base = shared.current();
        let (oldest_reader, durable) = shared.reclaim_bounds();
        let txn = base
            .meta
            .txn
            .max(shared.txn_floor)
            .checked_add(1)
            .map(TxnId)
            .ok_or_else(|| Error::corrupted(0, "transaction ids exhausted"))?;
        let meta = base.meta;
        let mut free = FreeMap::load(
            &base.pages,
            txn,
            meta.free_dir,
            meta.pending,
            meta.file_pages,
            oldest_reader,
            durable,
        )?;
        if shared.release_all.load(Ordering::Acquire) {
            free.release_all_releasable(&base.pages)?;
        }
        free.start_searches_at(base.floors);
        free.set_shrink_threshold(shrink_pages(shared.shrink, &free));
        let pager = WritePager::new(base.pages.clone(), txn, free);
        let edit = RootsEdit::new(&base.meta, branch, &pager)?;
        if edit.record.kind == RootKind::Snapshot {
            return Err(Error::ReadOnly(branch.to_string()));
        }
        Ok(WriteTxn {
            shared,
            _guard: guard,
            catalog: edit.record.catalog,
            base,
            pager,
            edit,
            tables: HashMap::new(),
            snapshots: Vec::new(),
            durability: shared.durability,
            failed: false,
        })
    }

    /// Sets the durability of this commit (the database's default otherwise).
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// The txn id this transaction will commit as.
    pub fn txn_id(&self) -> u64 {
        self.pager.txn().0
    }

    /// Bytes of the pages this transaction has made dirty so far (held in memory until the
    /// commit).
    pub(crate) fn dirty_bytes(&self) -> usize {
        self.pager.dirty_pages() * self.pager.page_size()
    }

    /// The free map of this transaction, to set how its commit shrinks the file, where its
    /// allocations stop and which free-map pages move (for compaction and its tests).
    #[doc(hidden)]
    pub fn free_map(&mut self) -> &mut FreeMap {
        self.pager.free_map()
    }

    /// The branch this transaction writes.
    pub fn branch(&self) -> &str {
        &self.edit.branch
    }

    fn load(&mut self, name: &str) -> Result<()> {
        if !self.tables.contains_key(name) {
            let found = btree::get(&self.pager, self.catalog, name.as_bytes())?.map(<[u8]>::to_vec);
            let state = match found {
                Some(bytes) => {
                    let record = TableRecord::decode(&bytes, self.catalog.page.0)?;
                    // Copy the catalog path to this table first: when a catalog node is shared,
                    // copying it gives the table root its second reference, so the table's
                    // own writes see it as shared (copy-on-write goes top-down).
                    let mut sh = self.catalog_sharing();
                    let touched = btree::insert(
                        &mut self.pager,
                        &mut sh,
                        self.catalog,
                        name.as_bytes(),
                        &bytes,
                    );
                    self.edit.refs = sh.refs;
                    self.catalog = touched.inspect_err(|_| self.failed = true)?.0;
                    TableState {
                        record,
                        changed: false,
                        deleted: false,
                        buffer: InsertBuffer::default(),
                    }
                }
                None => TableState {
                    record: TableRecord::default(),
                    changed: false,
                    deleted: true,
                    buffer: InsertBuffer::default(),
                },
            };
            self.tables.insert(name.to_string(), state);
        }
        Ok(())
    }

    /// Opens a table, creating it if missing.
    pub fn open_table(&mut self, name: &str) -> Result<TableMut<'_>> {
        check_name(name)?;
        self.open_loaded(name, None)
    }

    /// Opens a table as [`WriteTxn::open_table`] does, and checks the key and value type
    /// names recorded in it: a table this creates records `types`; one created with other
    /// names is `Error::TypeMismatch`; one created through the byte API (no names) opens
    /// as it is. The typed API (`shadowkv::typed`) is built on this.
    pub fn open_table_as(&mut self, name: &str, types: &TypeNames) -> Result<TableMut<'_>> {
        check_name(name)?;
        super::catalog::check_type_names(types)?;
        self.open_loaded(name, Some(types))
    }

    fn open_loaded(&mut self, name: &str, types: Option<&TypeNames>) -> Result<TableMut<'_>> {
        self.load(name)?;
        let state = self.tables.get_mut(name).expect("loaded");
        if state.deleted {
            *state = TableState {
                record: TableRecord {
                    types: types.cloned(),
                    ..TableRecord::default()
                },
                changed: true,
                deleted: false,
                buffer: InsertBuffer::default(),
            };
        } else if let Some(types) = types {
            check_types(name, state.record.types.as_ref(), types)?;
        }
        Ok(TableMut {
            pager: &mut self.pager,
            state,
            refs: &mut self.edit.refs,
            shared_until: self.edit.record.shared_until,
            failed: &mut self.failed,
        })
    }

    /// Deletes a table; its pages return in bounded steps over the next commits. Returns
    /// whether it existed.
    pub fn delete_table(&mut self, name: &str) -> Result<bool> {
        check_name(name)?;
        self.load(name)?;
        let state = self.tables.get_mut(name).expect("loaded");
        if state.deleted {
            return Ok(false);
        }
        let root = state.record.root;
        *state = TableState {
            record: TableRecord::default(),
            changed: true,
            deleted: true,
            buffer: InsertBuffer::default(),
        };
        if let Err(e) = self
            .edit
            .release
            .push(&mut self.pager, root, Released::TableNode)
        {
            self.failed = true;
            return Err(e);
        }
        Ok(true)
    }

    /// Names of all tables as this transaction sees them, in order.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let mut names = table_names(&self.pager, self.catalog)?;
        names.retain(|n| !self.tables.get(n).is_some_and(|t| t.deleted));
        for (name, state) in &self.tables {
            if !state.deleted && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Takes a snapshot named `name` of exactly the state this transaction commits, on its
    /// branch, atomically with its writes.
    pub fn create_snapshot(&mut self, name: &str) -> Result<()> {
        check_name(name)?;
        if self.snapshots.iter().any(|n| n == name)
            || self.edit.lookup(&self.pager, name)?.is_some()
        {
            return Err(super::roots::name_taken(name));
        }
        self.snapshots.push(name.to_string());
        Ok(())
    }

    /// Applies a change to the named roots (snapshot, clone, restore, delete).
    pub(crate) fn edit_roots<T>(
        &mut self,
        f: impl FnOnce(&mut RootsEdit, &mut WritePager) -> Result<T>,
    ) -> Result<T> {
        let result = f(&mut self.edit, &mut self.pager);
        if result.is_err() {
            self.failed = true;
        }
        self.catalog = self.edit.record.catalog;
        result
    }

    fn catalog_sharing(&self) -> Sharing {
        Sharing {
            refs: self.edit.refs,
            shared_until: self.edit.record.shared_until,
            kind: TreeKind::Catalog,
        }
    }

    /// Applies every table's buffered inserts, in name order (so that I/O is reproducible).
    fn flush_tables(&mut self) -> Result<()> {
        let mut buffered: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, t)| !t.buffer.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        buffered.sort();
        for name in buffered {
            let state = self.tables.get_mut(&name).expect("listed");
            flush_table(
                &mut self.pager,
                state,
                &mut self.edit.refs,
                self.edit.record.shared_until,
                &mut self.failed,
            )?;
        }
        Ok(())
    }

    fn seal_tables(&mut self) -> Result<()> {
        let mut names: Vec<String> = self
            .tables
            .iter()
            .filter(|(_, t)| t.changed)
            .map(|(n, _)| n.clone())
            .collect();
        if names.is_empty() && self.catalog == self.edit.record.catalog {
            return Ok(());
        }
        names.sort();
        let mut sh = self.catalog_sharing();
        let mut catalog = self.catalog;
        for name in names {
            let state = &self.tables[&name];
            if state.deleted {
                catalog = btree::remove(&mut self.pager, &mut sh, catalog, name.as_bytes())?.0;
            } else {
                let root = btree::seal(&mut self.pager, state.record.root)?;
                let record = TableRecord {
                    root,
                    len: state.record.len,
                    types: state.record.types.clone(),
                };
                catalog = btree::insert(
                    &mut self.pager,
                    &mut sh,
                    catalog,
                    name.as_bytes(),
                    &record.encode(),
                )?
                .0;
            }
        }
        self.edit.refs = sh.refs;
        self.catalog = btree::seal(&mut self.pager, catalog)?;
        self.edit.record.catalog = self.catalog;
        self.edit.record.txn = self.pager.txn().0;
        self.edit.touch_branch();
        Ok(())
    }

    /// Commits: the numbered steps of the commit protocol.
    pub fn commit(self) -> Result<()> {
        self.commit_holding_lock().map(drop)
    }

    /// Commits and keeps the writer slot, for a sequence of commits (a receive). On an
    /// error the slot is released with the transaction. The steps are numbered as in
    /// docs/format.md section 12; 7 to 10 are in `commit.rs`.
    pub(crate) fn commit_holding_lock(mut self) -> Result<WriterGuard<'db>> {
        self.check_committable()?;
        if self.changes_nothing() {
            self.sync_if_owed()?;
            return Ok(self._guard);
        }
        let roots = self.seal_everything()?;
        if self.durability != Durability::Immediate {
            // Only a durable commit may shrink: the file is cut after its fsync.
            self.pager.free_map().set_shrink_threshold(None);
        }
        let written =
            super::commit::write_pages_and_meta(self.shared, &self.base, self.pager, &roots)?;
        let cut = super::commit::sync_and_publish(self.shared, self.durability, written)?;
        self.shared.release_all.store(false, Ordering::Release);
        if let Some(len_bytes) = cut {
            // The base's view reaches past a shrunken end, so it goes first. A failed cut
            // loses nothing (the state is durable): the next durable commit tries again.
            drop(self.base);
            let _ = self.shared.cut_file(len_bytes);
        }
        Ok(self._guard)
    }

    /// Ends the transaction unwritten, keeping the writer slot.
    pub(crate) fn abandon(self) -> WriterGuard<'db> {
        self._guard
    }

    /// Pages of the file that are not free (in use, or pending), after loading released
    /// every pending page it could.
    pub(crate) fn pages_not_free(&mut self) -> u64 {
        let free = self.pager.free_map();
        free.file_pages() - free.free_pages()
    }

    /// Makes the commit cut the free pages at the end of the file, with every page it
    /// allocates below `ceiling` and the free-map pages at or above it moved below it (a
    /// compaction's last steps).
    pub(crate) fn cut_tail(&mut self, ceiling: u64) {
        let free = self.pager.free_map();
        free.set_ceiling(Some(ceiling));
        free.relocate_above(ceiling);
        free.set_shrink_threshold(Some(0));
        self.edit.changed = true;
    }

    /// The committed state this transaction started from.
    pub(crate) fn base(&self) -> &Arc<Committed> {
        &self.base
    }

    /// Drops every queued reference now, however many (a compaction moves only what the
    /// named roots reach, so the queue must be empty first).
    pub(crate) fn drain_releases(&mut self) -> Result<()> {
        let result = (self.edit.release).process(&mut self.pager, &mut self.edit.refs, usize::MAX);
        self.failed |= result.is_err();
        // What was dropped changed the refcounts and the free map, even with no record changed.
        self.edit.changed = true;
        result.map(drop)
    }

    /// 1. A poisoned database or a transaction that failed midway commits nothing.
    fn check_committable(&self) -> Result<()> {
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        if self.failed {
            return Err(Error::InvalidArgument(
                "this transaction hit an error while writing and cannot commit".into(),
            ));
        }
        Ok(())
    }

    fn changes_nothing(&self) -> bool {
        !self.tables.values().any(|t| t.changed)
            && self.snapshots.is_empty()
            && !self.edit.changed
            && self.edit.release.is_empty()
    }

    /// Nothing to write; a durable commit still makes earlier Eventual commits durable.
    fn sync_if_owed(&self) -> Result<()> {
        let durable = self.shared.durable.lock().txn;
        if self.durability == Durability::Immediate && durable < self.base.meta.txn {
            sync_or_poison(self.shared)?;
            *self.shared.durable.lock() = DurableMark {
                txn: self.base.meta.txn,
                slot: self.base.slot,
            };
        }
        Ok(())
    }

    /// Steps 2 to 6: every tree this commit changed, sealed, up to the system trees.
    fn seal_everything(&mut self) -> Result<SealedRoots> {
        // 2. Apply the buffered inserts, table by table in name order.
        self.flush_tables()?;
        // 3. Drop queued references (deleted snapshots, branches, tables) in a bounded step,
        //    at least as large as this commit's own writes so the queue drains as space is used.
        let budget = (2 * self.pager.dirty_pages()).max(1024);
        self.edit
            .release
            .process(&mut self.pager, &mut self.edit.refs, budget)?;
        // 4. Seal every changed table, record it in the branch's catalog, seal the catalog.
        self.seal_tables()?;
        // 5. Snapshots taken by this transaction share the sealed catalog.
        self.record_snapshots()?;
        // 6. Seal the system trees: roots, reference counts, release queue.
        self.edit.seal(&mut self.pager)
    }

    /// Step 5: one root record per snapshot taken, each one more reference on the catalog.
    fn record_snapshots(&mut self) -> Result<()> {
        let txn = self.pager.txn().0;
        for name in std::mem::take(&mut self.snapshots) {
            if !self.edit.record.catalog.is_null() {
                incref(
                    &mut self.pager,
                    &mut self.edit.refs,
                    self.edit.record.catalog.page.0,
                )?;
            }
            let record = RootRecord {
                kind: RootKind::Snapshot,
                catalog: self.edit.record.catalog,
                txn,
                created_unix_secs: super::roots::now_unix_secs(),
                shared_until: 0,
                identity: super::roots::new_identity(),
            };
            self.edit.put(&mut self.pager, &name, record)?;
            self.edit.record.shared_until = txn;
            self.edit.touch_branch();
        }
        Ok(())
    }
}

/// The free tail, in pages, at which a durable commit cuts the file (see `Shrink`).
fn shrink_pages(rule: Shrink, free: &FreeMap) -> Option<u64> {
    let page_size = free.page_size() as u64;
    match rule {
        Shrink::Auto => Some((2 * free.growth_step()).max((1 << 20) / page_size)),
        Shrink::AtLeast(bytes) => Some(bytes.div_ceil(page_size)),
        Shrink::Never => None,
    }
}

/// Applies a table's buffered inserts to its tree, in key order. An error marks the
/// transaction failed (the tree may be half changed).
fn flush_table(
    pager: &mut WritePager,
    state: &mut TableState,
    refs: &mut Ptr,
    shared_until: u64,
    failed: &mut bool,
) -> Result<()> {
    if state.buffer.is_empty() {
        return Ok(());
    }
    let buffer = std::mem::take(&mut state.buffer);
    let mut sh = Sharing {
        refs: *refs,
        shared_until,
        kind: TreeKind::Table,
    };
    let mut root = state.record.root;
    let mut added = 0u64;
    let mut result = Ok(());
    let mut finger = None;
    for (key, value) in buffer.sorted() {
        match btree::insert_with_finger(pager, &mut sh, root, key, value, &mut finger) {
            Ok((new_root, replaced)) => {
                root = new_root;
                added += u64::from(!replaced);
            }
            Err(e) => {
                *failed = true;
                result = Err(e);
                break;
            }
        }
    }
    *refs = sh.refs;
    state.record.root = root;
    state.record.len += added;
    state.changed = true;
    result
}

/// One fsync; a failure poisons the database (the kernel may have dropped the dirty pages,
/// so a retry that succeeds proves nothing).
pub(crate) fn sync_or_poison(shared: &Shared) -> Result<()> {
    shared.storage.sync().map_err(|e| {
        shared.poisoned.store(true, Ordering::Release);
        Error::Io(e)
    })
}

impl TableMut<'_> {
    fn sharing(&self) -> Sharing {
        Sharing {
            refs: *self.refs,
            shared_until: self.shared_until,
            kind: TreeKind::Table,
        }
    }

    fn track<T>(&mut self, sh: Sharing, result: Result<T>) -> Result<T> {
        *self.refs = sh.refs;
        if let Err(e) = &result {
            if !matches!(e, Error::KeyTooLarge { .. } | Error::ValueTooLarge { .. }) {
                *self.failed = true;
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
        let page_size = self.pager.page_size();
        if node::leaf_inline_bytes(key.len(), value.len()) <= node::max_entry_bytes(page_size) {
            self.state.buffer.push(key, value);
            self.state.changed = true;
            if self.state.buffer.bytes() >= FLUSH_BYTES {
                self.flush()?;
            }
            return Ok(());
        }
        self.flush()?;
        self.insert_now(key, value)
    }

    fn insert_now(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let mut sh = self.sharing();
        let result = btree::insert(self.pager, &mut sh, self.state.record.root, key, value);
        let (root, replaced) = self.track(sh, result)?;
        self.state.record.root = root;
        self.state.record.len += u64::from(!replaced);
        self.state.changed = true;
        Ok(())
    }

    /// Applies the buffered inserts to the tree, in key order.
    fn flush(&mut self) -> Result<()> {
        flush_table(
            self.pager,
            self.state,
            self.refs,
            self.shared_until,
            self.failed,
        )
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &[u8]) -> Result<bool> {
        self.flush()?;
        let mut sh = self.sharing();
        let result = btree::remove(self.pager, &mut sh, self.state.record.root, key);
        let (root, removed) = self.track(sh, result)?;
        if removed {
            self.state.record.root = root;
            self.state.record.len -= 1;
            self.state.changed = true;
        }
        Ok(removed)
    }

    /// The value of `key`, including this transaction's writes.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<&[u8]>> {
        self.flush()?;
        btree::get(&*self.pager, self.state.record.root, key)
    }

    /// Entries with keys in `range`, including this transaction's writes.
    pub fn range<'k, R: RangeBounds<&'k [u8]>>(&mut self, range: R) -> Result<Range<'_>> {
        self.flush()?;
        Ok(Range::new(
            &*self.pager as &dyn PageSource,
            self.state.record.root,
            &range,
        ))
    }

    /// All entries.
    pub fn iter(&mut self) -> Result<Range<'_>> {
        self.range::<std::ops::RangeFull>(..)
    }

    /// Number of entries, in O(1).
    pub fn len(&mut self) -> Result<u64> {
        self.flush()?;
        Ok(self.state.record.len)
    }

    /// Whether the table is empty.
    pub fn is_empty(&mut self) -> Result<bool> {
        Ok(self.len()? == 0)
    }

    /// The key and value type names recorded when the table was created through the typed
    /// API; `None` for a table created through the byte API.
    pub fn type_names(&self) -> Option<&TypeNames> {
        self.state.record.types.as_ref()
    }
}
