//! The write transaction, its tables, snapshots and branches, and the commit protocol.
//!
//! Invariants:
//! - Nothing reaches the storage before `commit`; dropping a `WriteTxn` aborts it.
//! - The meta goes to the slot that does not hold the last durable meta, so a torn meta or a
//!   lost page can only fall back to that durable state.
//! - A transaction that hit an error while changing a tree refuses to commit.
//! - Every root record's catalog pointer holds one reference on its catalog root; taking a
//!   snapshot or a clone adds one (O(1)); dropping a root queues its catalog for release.

use super::names::{check_name, check_types, TableRecord, TypeNames};
use super::roots::{RootsEdit, SealedRoots};
use super::table_mut::{flush_table, TableMut, TableState};
use super::{table_names, Committed, Durability, Shared, Shrink, WriterGuard};
use crate::btree::{self, TreeKind};
use crate::format::records::{Released, RootKind};
use crate::format::{Ptr, TxnId};
use crate::pager::freemap::FreeMap;
use crate::pager::{PageSource, WritePager};
use crate::{Error, Result};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// What the open tables of a write transaction change together, behind one `RefCell` so
/// that several tables can be open at once (see `table_mut.rs` for the borrow rules).
pub(crate) struct Core {
    pub(crate) pager: WritePager,
    pub(crate) edit: RootsEdit,
    catalog: Ptr,
    /// Every table this transaction touched; `by_name` indexes it.
    pub(crate) tables: Vec<TableState>,
    by_name: HashMap<String, usize>,
    snapshots: Vec<String>,
    pub(crate) failed: bool,
}

/// A write transaction: changes to the tables of one branch (`main`, unless it was begun with
/// [`Database::begin_write_on`](crate::Database::begin_write_on)), which nobody else sees
/// until [`commit`](WriteTxn::commit) publishes them all at once.
///
/// It reads its own writes. A database has one write transaction at a time: it holds the
/// writer slot until it is committed or dropped (see [the writer
/// slot](crate::Database#the-writer-slot)), while readers go on undisturbed. Dropping it
/// without committing discards every change.
///
/// ```
/// use shadowkv::Database;
/// # fn main() -> shadowkv::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Database::open(dir.path().join("example.db"))?;
/// let tx = db.begin_write()?;
/// tx.open_table("users")?.insert(b"alice", b"1")?;
/// tx.open_table("ages")?.insert(b"alice", &42u32.to_be_bytes())?;
/// tx.commit()?; // both tables change, or neither does
///
/// let tx = db.begin_write()?;
/// tx.open_table("users")?.insert(b"bob", b"2")?;
/// drop(tx); // aborted: "bob" was never written
/// assert!(db.begin_read()?.open_table("users")?.get(b"bob")?.is_none());
/// # Ok(())
/// # }
/// ```
pub struct WriteTxn<'db> {
    shared: &'db Shared,
    _guard: WriterGuard<'db>,
    base: Arc<Committed>,
    core: RefCell<Core>,
    branch: String,
    durability: Durability,
}

impl std::fmt::Debug for WriteTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let core = self.core.borrow();
        f.debug_struct("WriteTxn")
            .field("txn", &core.pager.txn().0)
            .field("branch", &self.branch)
            .field("durability", &self.durability)
            .finish_non_exhaustive()
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
        // A link's meta page comes first in its run (see `commit`).
        let meta_page = (base.meta.next_meta != 0).then_some(base.meta.next_meta);
        free.start_searches_at(&base.pages, base.starts, meta_page)?;
        free.set_shrink_threshold(shrink_pages(shared.shrink, &free));
        let pager = WritePager::new(base.pages.clone(), txn, free);
        let edit = RootsEdit::new(&base.meta, branch, &pager)?;
        if edit.record.kind == RootKind::Snapshot {
            return Err(Error::ReadOnly(branch.to_string()));
        }
        let core = Core {
            catalog: edit.record.catalog,
            pager,
            edit,
            tables: Vec::new(),
            by_name: HashMap::new(),
            snapshots: Vec::new(),
            failed: false,
        };
        Ok(WriteTxn {
            shared,
            _guard: guard,
            base,
            core: RefCell::new(core),
            branch: branch.to_string(),
            durability: shared.durability,
        })
    }

    /// Sets the durability of this transaction's commit; the default is the database's
    /// ([`Options::durability`](crate::Options::durability)). See [`WriteTxn::commit`] for
    /// what each mode promises.
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// The id its commit will have. Commits are numbered in order, so a later commit has a
    /// larger id: the number [`ReadTxn::txn_id`](crate::ReadTxn::txn_id),
    /// [`SnapshotInfo::txn`](crate::SnapshotInfo::txn) and [`Stats::txn`](crate::Stats::txn)
    /// report. A transaction that is dropped, or commits no change, leaves its id to the
    /// next one.
    pub fn txn_id(&self) -> u64 {
        self.core.borrow().pager.txn().0
    }

    /// Bytes of the pages this transaction has made dirty so far (held in memory until the
    /// commit).
    pub(crate) fn dirty_bytes(&self) -> usize {
        let core = self.core.borrow();
        core.pager.dirty_pages() * core.pager.page_size()
    }

    /// The free map of this transaction, to set how its commit shrinks the file, where its
    /// allocations stop and which free-map pages move (for compaction and its tests).
    #[cfg(feature = "testkit")]
    #[doc(hidden)]
    pub fn free_map(&mut self) -> &mut FreeMap {
        self.core.get_mut().pager.free_map()
    }

    /// What the tables share, for a step that holds the transaction alone (`&mut self`).
    pub(crate) fn core_mut(&mut self) -> &mut Core {
        self.core.get_mut()
    }

    /// The branch this transaction writes.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// Opens the table `name`, creating it if missing (the new table exists for others once
    /// the transaction commits). Several tables may be open at once. `Error::InvalidArgument`
    /// when the name is empty, longer than 255 bytes or starts with U+0000, or when the table
    /// is open already in this transaction.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = shadowkv::Database::open(dir.path().join("db"))?;
    /// let tx = db.begin_write()?;
    /// let mut users = tx.open_table("users")?;
    /// let mut by_email = tx.open_table("users_by_email")?;
    /// users.insert(b"1", b"alice@example.com")?;
    /// by_email.insert(b"alice@example.com", b"1")?;
    /// let email = users.get(b"1")?.expect("just inserted");
    /// assert_eq!(by_email.get(&email)?.as_deref(), Some(&b"1"[..]));
    /// assert!(tx.open_table("users").is_err()); // open already
    /// tx.commit()?;
    /// # Ok::<(), shadowkv::Error>(())
    /// ```
    pub fn open_table(&self, name: &str) -> Result<TableMut<'_>> {
        check_name(name)?;
        self.open_loaded(name, None)
    }

    /// Opens a table as [`WriteTxn::open_table`] does, and checks the key and value type
    /// names recorded in it: a table this creates records `types`; one created with other
    /// names is `Error::TypeMismatch`; one created through the byte API (no names) opens
    /// as it is. The typed API (`shadowkv::typed`) is built on this.
    pub(crate) fn open_table_as(&self, name: &str, types: &TypeNames) -> Result<TableMut<'_>> {
        check_name(name)?;
        super::names::check_type_names(types)?;
        self.open_loaded(name, Some(types))
    }

    fn open_loaded(&self, name: &str, types: Option<&TypeNames>) -> Result<TableMut<'_>> {
        let mut core = self.core.borrow_mut();
        let index = core.load(name)?;
        let state = &mut core.tables[index];
        if state.deleted {
            // (A deleted table has no open handle: deleting takes `&mut self`.)
            let record = TableRecord {
                types: types.cloned(),
                ..TableRecord::default()
            };
            *state = TableState::new(name, record, false);
            state.changed = true;
        } else if let Some(types) = types {
            check_types(name, state.record.types.as_ref(), types)?;
        }
        drop(core);
        TableMut::open(&self.core, &self.base.pages, index)
    }

    /// Deletes the table `name` and all its entries; returns whether it existed. The
    /// deletion itself costs O(1): its space is reused gradually over the next commits.
    /// Snapshots and other branches that hold the table keep it.
    pub fn delete_table(&mut self, name: &str) -> Result<bool> {
        check_name(name)?;
        let core = self.core.get_mut();
        let index = core.load(name)?;
        let state = &mut core.tables[index];
        if state.deleted {
            return Ok(false);
        }
        let root = state.record.root;
        *state = TableState::new(name, TableRecord::default(), true);
        state.changed = true;
        let pushed = core
            .edit
            .release
            .push(&mut core.pager, root, Released::TableNode);
        core.failed |= pushed.is_err();
        pushed.map(|_| true)
    }

    /// Names of all tables as this transaction sees them (its own creations and deletions
    /// included), in order.
    pub fn table_names(&self) -> Result<Vec<String>> {
        let core = self.core.borrow();
        let mut names = table_names(&core.pager, core.catalog)?;
        let deleted = |n: &String| core.by_name.get(n).is_some_and(|&i| core.tables[i].deleted);
        names.retain(|n| !deleted(n));
        for state in &core.tables {
            if !state.deleted && !names.contains(&state.name) {
                names.push(state.name.clone());
            }
        }
        names.sort();
        Ok(names)
    }

    /// Takes a snapshot named `name` of exactly the state this transaction commits, atomically
    /// with its writes: the snapshot exists once the commit returns, and not at all if the
    /// transaction is dropped. `Error::AlreadyExists` when a snapshot or branch has that name.
    pub fn create_snapshot(&mut self, name: &str) -> Result<()> {
        check_name(name)?;
        let core = self.core.get_mut();
        if core.snapshots.iter().any(|n| n == name)
            || core.edit.lookup(&core.pager, name)?.is_some()
        {
            return Err(super::roots::name_taken(name));
        }
        core.snapshots.push(name.to_string());
        Ok(())
    }

    /// Applies a change to the named roots (snapshot, clone, restore, delete).
    pub(crate) fn edit_roots<T>(
        &mut self,
        f: impl FnOnce(&mut RootsEdit, &mut WritePager) -> Result<T>,
    ) -> Result<T> {
        let core = self.core.get_mut();
        let result = f(&mut core.edit, &mut core.pager);
        core.failed |= result.is_err();
        core.catalog = core.edit.record.catalog;
        result
    }

    /// Publishes every change of this transaction at once: its writes, the tables it created
    /// or deleted and the snapshots it took. Read transactions begun before keep the state
    /// they began on; those begun after `commit` returns see the changes. The commit is
    /// atomic: a crash at any moment leaves the database with all of it or none of it.
    ///
    /// When it is durable depends on the transaction's [`Durability`]:
    /// - `Immediate` (the default): `commit` returns once the changes are on stable storage
    ///   (one fsync), so they survive a crash or a power cut.
    /// - `Eventual`: `commit` returns without waiting for the disk. The changes are visible
    ///   at once and become durable at the next `Immediate` commit, at
    ///   [`Database::sync`](crate::Database::sync), when the database syncs on its own (to
    ///   bound the space that waits for a durable commit) or when the file is next opened.
    ///   The commit is already written to the operating system, so a crash of the process
    ///   loses nothing; a power cut before it is durable may lose it, with the `Eventual`
    ///   commits after it, but never a commit that was durable or anything before one.
    ///
    /// A transaction that changed nothing writes nothing; with `Immediate` it still makes
    /// earlier `Eventual` commits durable. The writer slot is released whatever the result.
    ///
    /// # Errors
    ///
    /// - `Error::InvalidArgument` when an earlier call of this transaction failed while
    ///   changing a table (other than a key or value over the size limit): nothing is
    ///   written, as if the transaction had been dropped.
    /// - `Error::Io` when the storage fails. Nothing is published: readers keep seeing the
    ///   last committed state. If the failure came while the commit was being made durable
    ///   (its final metadata write or an fsync), the database is also *poisoned*: from then
    ///   on writes and `sync` return `Error::Poisoned`, reads go on, and reopening the
    ///   database recovers a committed state from the file.
    /// - `Error::Poisoned` when the database was poisoned before.
    ///
    /// ```
    /// use shadowkv::{Database, Durability};
    /// # fn main() -> shadowkv::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Database::open(dir.path().join("example.db"))?;
    /// for batch in 0..3u32 {
    ///     let mut tx = db.begin_write()?;
    ///     tx.set_durability(Durability::Eventual); // no fsync for this commit
    ///     tx.open_table("log")?.insert(&batch.to_be_bytes(), b"entry")?;
    ///     tx.commit()?; // visible at once, durable later
    /// }
    /// db.sync()?; // all three are durable now
    /// assert_eq!(db.begin_read()?.open_table("log")?.len()?, 3);
    /// # Ok(())
    /// # }
    /// ```
    pub fn commit(self) -> Result<()> {
        self.commit_holding_lock().map(drop)
    }

    /// Commits and keeps the writer slot, for a sequence of commits (a receive). On an
    /// error the slot is released with the transaction. Its steps are the calls below,
    /// named as in docs/format.md section 12; the last two are in `commit.rs`.
    pub(crate) fn commit_holding_lock(self) -> Result<WriterGuard<'db>> {
        let mut core = self.core.into_inner();
        check_committable(self.shared, &core)?;
        if core.changes_nothing() {
            sync_if_owed(self.shared, self.durability, &self.base)?;
            return Ok(self._guard);
        }
        let roots = core.seal_everything()?;
        if self.durability != Durability::Immediate {
            // Only a durable commit may shrink: the file is cut after its fsync.
            core.pager.free_map().set_shrink_threshold(None);
        }
        let written =
            super::commit::write_pages_and_meta(self.shared, &self.base, core.pager, &roots)?;
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
        let free = self.core.get_mut().pager.free_map();
        free.file_pages() - free.free_pages()
    }

    /// Makes the commit cut the free pages at the end of the file, with every page it
    /// allocates below `ceiling` and the free-map pages at or above it moved below it (a
    /// compaction's last steps).
    pub(crate) fn cut_tail(&mut self, ceiling: u64) {
        let core = self.core.get_mut();
        let free = core.pager.free_map();
        free.set_ceiling(Some(ceiling));
        free.relocate_above(ceiling);
        free.set_shrink_threshold(Some(0));
        core.edit.changed = true;
    }

    /// The committed state this transaction started from.
    pub(crate) fn base(&self) -> &Arc<Committed> {
        &self.base
    }

    /// Drops every queued reference now, however many (a compaction moves only what the
    /// named roots reach, so the queue must be empty first).
    pub(crate) fn drain_releases(&mut self) -> Result<()> {
        let core = self.core.get_mut();
        let result = core.edit.release_step(&mut core.pager, usize::MAX);
        core.failed |= result.is_err();
        // What was dropped changed the refcounts and the free map, even with no record changed.
        core.edit.changed = true;
        result.map(drop)
    }
}

/// A poisoned database or a transaction that failed midway commits nothing.
fn check_committable(shared: &Shared, core: &Core) -> Result<()> {
    if shared.poisoned.load(Ordering::Acquire) {
        return Err(Error::Poisoned);
    }
    if core.failed {
        return Err(Error::InvalidArgument(
            "this transaction hit an error while writing and cannot commit".into(),
        ));
    }
    Ok(())
}

/// Nothing to write; a durable commit still makes earlier Eventual commits durable.
fn sync_if_owed(shared: &Shared, durability: Durability, base: &Committed) -> Result<()> {
    let durable = shared.durable_mark().txn;
    if durability == Durability::Immediate && durable < base.meta.txn {
        sync_or_poison(shared)?;
        shared.mark_durable(base.meta.txn, base.slot);
    }
    Ok(())
}

impl Core {
    /// The index of table `name` in `tables`, loading its record from the catalog first.
    fn load(&mut self, name: &str) -> Result<usize> {
        if let Some(&index) = self.by_name.get(name) {
            return Ok(index);
        }
        let found = btree::get(&self.pager, self.catalog, name.as_bytes())?.map(<[u8]>::to_vec);
        let state = match found {
            Some(bytes) => {
                let record = TableRecord::decode(&bytes, self.catalog.page.0)?;
                // Copy the catalog path to this table first: when a catalog node is shared,
                // copying it gives the table root its second reference, so the table's own
                // writes see it as shared (copy-on-write goes top-down).
                let touched = btree::insert(
                    &mut self.pager,
                    &mut self.edit.sharing(TreeKind::Catalog),
                    self.catalog,
                    name.as_bytes(),
                    &bytes,
                );
                self.failed |= touched.is_err();
                self.catalog = touched?.0;
                TableState::new(name, record, false)
            }
            None => TableState::new(name, TableRecord::default(), true),
        };
        self.tables.push(state);
        self.by_name.insert(name.to_string(), self.tables.len() - 1);
        Ok(self.tables.len() - 1)
    }

    /// Indexes of the tables whose `pick` holds, in name order (so that I/O is reproducible).
    fn tables_in_name_order(&self, pick: impl Fn(&TableState) -> bool) -> Vec<usize> {
        let mut picked: Vec<usize> = (0..self.tables.len())
            .filter(|&i| pick(&self.tables[i]))
            .collect();
        picked.sort_by(|&a, &b| self.tables[a].name.cmp(&self.tables[b].name));
        picked
    }

    /// Applies every table's buffered inserts, in name order.
    fn flush_tables(&mut self) -> Result<()> {
        for index in self.tables_in_name_order(|t| !t.buffer.is_empty()) {
            flush_table(self, index)?;
        }
        Ok(())
    }

    fn seal_tables(&mut self) -> Result<()> {
        let changed = self.tables_in_name_order(|t| t.changed);
        if changed.is_empty() && self.catalog == self.edit.record.catalog {
            return Ok(());
        }
        let mut sh = self.edit.sharing(TreeKind::Catalog);
        let mut catalog = self.catalog;
        for index in changed {
            let state = &self.tables[index];
            let key = state.name.as_bytes();
            if state.deleted {
                catalog = btree::remove(&mut self.pager, &mut sh, catalog, key)?.0;
            } else {
                let root = btree::seal(&mut self.pager, state.record.root)?;
                let record = TableRecord {
                    root,
                    len: state.record.len,
                    types: state.record.types.clone(),
                };
                let value = record.encode();
                catalog = btree::insert(&mut self.pager, &mut sh, catalog, key, &value)?.0;
            }
        }
        self.catalog = btree::seal(&mut self.pager, catalog)?;
        self.edit.record.catalog = self.catalog;
        self.edit.record.txn = self.pager.txn().0;
        self.edit.touch_branch();
        Ok(())
    }

    fn changes_nothing(&self) -> bool {
        !self.tables.iter().any(|t| t.changed)
            && self.snapshots.is_empty()
            && !self.edit.changed
            && self.edit.release.is_empty()
    }

    /// Every tree this commit changed, sealed, up to the system trees (docs/format.md
    /// section 12 names these steps).
    fn seal_everything(&mut self) -> Result<SealedRoots> {
        // The buffered inserts, table by table in name order.
        self.flush_tables()?;
        // Queued references dropped (deleted snapshots, branches, tables) in a bounded step,
        //    at least as large as this commit's own writes so the queue drains as space is used.
        let budget = (2 * self.pager.dirty_pages()).max(1024);
        self.edit.release_step(&mut self.pager, budget)?;
        // Every changed table sealed, record it in the branch's catalog, seal the catalog.
        self.seal_tables()?;
        // Snapshots taken by this transaction share the sealed catalog.
        self.record_snapshots()?;
        // The system trees sealed: roots, reference counts, release queue.
        self.edit.seal(&mut self.pager)
    }

    /// One root record per snapshot taken, each one more reference on the catalog.
    fn record_snapshots(&mut self) -> Result<()> {
        let txn = self.pager.txn().0;
        for name in std::mem::take(&mut self.snapshots) {
            let catalog = self.edit.record.catalog;
            let record = super::roots::new_root(RootKind::Snapshot, catalog, txn, 0);
            self.edit.add_root(&mut self.pager, &name, record)?;
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

/// One fsync; a failure poisons the database (the kernel may have dropped the dirty pages,
/// so a retry that succeeds proves nothing).
pub(crate) fn sync_or_poison(shared: &Shared) -> Result<()> {
    shared.storage.sync().map_err(|e| {
        shared.poisoned.store(true, Ordering::Release);
        Error::Io(e)
    })
}
