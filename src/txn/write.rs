//! The write transaction, its tables, and the commit protocol.
//!
//! Invariants:
//! - Nothing reaches the storage before `commit`; dropping a `WriteTxn` aborts it.
//! - The meta goes to the slot that does not hold the last durable meta, so a torn meta or a
//!   lost page can only fall back to that durable state.
//! - A transaction that hit an error while changing a tree refuses to commit.

use super::catalog::{check_name, TableRecord};
use super::{table_names, Committed, Durability, DurableMark, Range, Shared, WriterGuard};
use crate::btree;
use crate::format::meta::Meta;
use crate::format::{Ptr, TxnId, META_SLOT_BYTES};
use crate::pager::freemap::FreeMap;
use crate::pager::{PageSource, ReadPages, WritePager};
use crate::{Error, Result};
use std::collections::HashMap;
use std::ops::RangeBounds;
use std::sync::atomic::Ordering;
use std::sync::Arc;

struct TableState {
    record: TableRecord,
    changed: bool,
    deleted: bool,
}

/// The one write transaction. Reads its own writes; `commit` makes them visible.
pub struct WriteTxn<'db> {
    shared: &'db Shared,
    _guard: WriterGuard<'db>,
    base: Arc<Committed>,
    pager: WritePager,
    catalog: Ptr,
    tables: HashMap<String, TableState>,
    durability: Durability,
    failed: bool,
}

/// A table inside a write transaction.
pub struct TableMut<'t> {
    pager: &'t mut WritePager,
    state: &'t mut TableState,
    failed: &'t mut bool,
}

impl<'db> WriteTxn<'db> {
    pub(crate) fn begin(shared: &'db Shared) -> Result<Self> {
        let guard = shared.lock_writer()?;
        let base = shared.current();
        let bound = shared.reclaim_bound();
        let txn = TxnId(base.meta.txn + 1);
        let meta = base.meta;
        let free = FreeMap::load(
            &base.pages,
            txn,
            meta.free_dir,
            meta.pending,
            meta.file_pages,
            bound,
        )?;
        let pager = WritePager::new(base.pages.clone(), txn, free);
        Ok(WriteTxn {
            shared,
            _guard: guard,
            catalog: meta.catalog,
            base,
            pager,
            tables: HashMap::new(),
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

    fn load(&mut self, name: &str) -> Result<()> {
        if !self.tables.contains_key(name) {
            let found = btree::get(&self.pager, self.catalog, name.as_bytes())?;
            let state = match found {
                Some(bytes) => TableState {
                    record: TableRecord::decode(bytes, self.catalog.page.0)?,
                    changed: false,
                    deleted: false,
                },
                None => TableState {
                    record: TableRecord::default(),
                    changed: false,
                    deleted: true,
                },
            };
            self.tables.insert(name.to_string(), state);
        }
        Ok(())
    }

    /// Opens a table, creating it if missing.
    pub fn open_table(&mut self, name: &str) -> Result<TableMut<'_>> {
        check_name(name)?;
        self.load(name)?;
        let state = self.tables.get_mut(name).expect("loaded");
        if state.deleted {
            *state = TableState {
                record: TableRecord::default(),
                changed: true,
                deleted: false,
            };
        }
        Ok(TableMut {
            pager: &mut self.pager,
            state,
            failed: &mut self.failed,
        })
    }

    /// Deletes a table and frees its pages. Returns whether it existed.
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
        };
        if let Err(e) = btree::free_tree(&mut self.pager, root) {
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

    /// Commits: the numbered steps of the commit protocol.
    pub fn commit(mut self) -> Result<()> {
        // 1. A poisoned database or a transaction that failed midway commits nothing.
        if self.shared.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        if self.failed {
            return Err(Error::InvalidArgument(
                "this transaction hit an error while writing and cannot commit".into(),
            ));
        }
        // 2. Seal every changed table and record it in the catalog.
        let mut names: Vec<&String> = self
            .tables
            .iter()
            .filter(|(_, t)| t.changed)
            .map(|(n, _)| n)
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        names.sort();
        let mut catalog = self.catalog;
        for name in names {
            let state = &self.tables[name];
            if state.deleted {
                catalog = btree::remove(&mut self.pager, catalog, name.as_bytes())?.0;
            } else {
                let root = btree::seal(&mut self.pager, state.record.root)?;
                let record = TableRecord {
                    root,
                    len: state.record.len,
                };
                catalog =
                    btree::insert(&mut self.pager, catalog, name.as_bytes(), &record.encode())?.0;
            }
        }
        // 3. Seal the catalog: every checksum now sits in its parent's pointer.
        let catalog = btree::seal(&mut self.pager, catalog)?;
        // 4. Write the free map and all dirty pages, one write per contiguous run.
        let shared = self.shared;
        let storage = shared.storage.as_ref();
        let txn = self.pager.txn().0;
        let durable = *shared.durable.lock();
        let (persisted, file_pages) = self.pager.write_out(storage, |len_bytes| {
            storage.set_len(len_bytes)?;
            sync_or_poison(shared)
        })?;
        // 5. Write the meta into the slot that does not hold the last durable meta.
        let meta = Meta {
            page_size: shared.page_size as u32,
            txn,
            durable_txn: durable.txn,
            file_pages,
            catalog,
            free_dir: persisted.free_dir,
            pending: persisted.pending,
            free_count: persisted.free_count,
            pending_count: persisted.pending_count,
        };
        let slot = 1 - durable.slot;
        storage.write_at(slot as u64 * META_SLOT_BYTES as u64, &meta.encode())?;
        // 6. A durable commit costs one fsync; a failed fsync poisons the database (the
        //    kernel may have dropped the dirty pages, so a retry proves nothing).
        //    An Eventual commit is synced anyway once the pages it cannot reuse (freed since
        //    the last durable commit) pile up, so that the file does not grow without bound.
        let pending_limit = (file_pages / 4).max(1024);
        let synced =
            self.durability == Durability::Immediate || persisted.pending_count > pending_limit;
        if synced {
            sync_or_poison(shared)?;
        }
        // 7. Publish the new state to readers, and advance the durable mark.
        let view = storage.view(file_pages * shared.page_size as u64)?;
        let pages = ReadPages::new(view, shared.page_size, shared.verify);
        *shared.state.write() = Arc::new(Committed { meta, slot, pages });
        if synced {
            *shared.durable.lock() = DurableMark { txn, slot };
        }
        drop(self.base);
        Ok(())
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

impl TableMut<'_> {
    fn track<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if !matches!(e, Error::KeyTooLarge { .. } | Error::ValueTooLarge { .. }) {
                *self.failed = true;
            }
        }
        result
    }

    /// Inserts or overwrites `key`.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let result = btree::insert(self.pager, self.state.record.root, key, value);
        let (root, replaced) = self.track(result)?;
        self.state.record.root = root;
        self.state.record.len += u64::from(!replaced);
        self.state.changed = true;
        Ok(())
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: &[u8]) -> Result<bool> {
        let result = btree::remove(self.pager, self.state.record.root, key);
        let (root, removed) = self.track(result)?;
        if removed {
            self.state.record.root = root;
            self.state.record.len -= 1;
            self.state.changed = true;
        }
        Ok(removed)
    }

    /// The value of `key`, including this transaction's writes.
    pub fn get(&self, key: &[u8]) -> Result<Option<&[u8]>> {
        btree::get(&*self.pager, self.state.record.root, key)
    }

    /// Entries with keys in `range`, including this transaction's writes.
    pub fn range<'k, R: RangeBounds<&'k [u8]>>(&self, range: R) -> Result<Range<'_>> {
        Ok(Range::new(
            &*self.pager as &dyn PageSource,
            self.state.record.root,
            &range,
        ))
    }

    /// All entries.
    pub fn iter(&self) -> Result<Range<'_>> {
        self.range::<std::ops::RangeFull>(..)
    }

    /// Number of entries, in O(1).
    pub fn len(&self) -> Result<u64> {
        Ok(self.state.record.len)
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.state.record.len == 0)
    }
}
