//! Transactions: read transactions over a fixed committed state, the single write
//! transaction, tables, and the commit protocol.
//!
//! Invariants:
//! - A reader holds an `Arc` of the committed state it began on (meta + view), and is
//!   registered under that state's txn id for as long as it lives; a page freed by txn F is
//!   reused only when `F ≤ min(oldest reader, last durable txn)`.
//! - Readers register while holding the registry lock and reading the current state, so the
//!   writer's reclaim bound can never miss a reader that is about to start.
//! - One write transaction at a time (`writer`); a new state is published only after
//!   its commit finished (and, for durable commits, after its fsync succeeded).
//! - The writer slot records the thread that took it, from `lock_writer` until
//!   `WriterGuard::drop`. A thread never waits for a slot it holds itself (that wait could
//!   never end): it gets `Error::WouldDeadlock` at once. Other threads wait as before.
//! - A read-only `Shared` (`Options::read_only`) never hands out the slot: `take_writer` and
//!   `refuse_own_writer` answer `Error::ReadOnlyDatabase`, so nothing that writes can start.

mod buffer;
pub(crate) mod commit;
mod diff;
pub mod names;
pub mod roots;
mod table;
mod table_more;
mod table_mut;
mod write;

pub(crate) use diff::TableChanges;
pub use diff::{Change, Diff};
pub use table::{Range, Table};
pub(crate) use table_mut::CowEntry;
pub use table_mut::{RangeMut, TableMut};
pub(crate) use write::sync_or_poison;
pub use write::WriteTxn;

use crate::btree;
use crate::format::meta::Meta;
use crate::format::records::RootRecord;
use crate::format::Ptr;
use crate::io::Storage;
use crate::pager::{ReadPages, SearchStarts};
use crate::{Error, Result};
use parking_lot::{Condvar, Mutex, RwLock};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::ThreadId;

/// When a commit is durable: set for a database with
/// [`Options::durability`](crate::Options::durability) and for one transaction with
/// [`WriteTxn::set_durability`]. [`WriteTxn::commit`] says what each mode promises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `commit` returns after one fsync: the commit survives a power cut.
    #[default]
    Immediate,
    /// `commit` returns without an fsync; `Database::sync` or the next durable commit makes it
    /// durable. A crash loses only a suffix of such commits, never earlier durable state.
    Eventual,
}

/// A committed state: its meta, the slot it lives in, and a view of its pages.
pub struct Committed {
    /// The meta of this state.
    pub meta: Meta,
    /// Which meta slot holds it (0 or 1).
    pub slot: u8,
    /// Its pages.
    pub pages: ReadPages,
    /// The record of `main` in it (what `begin_read` reads).
    pub main: RootRecord,
    /// Where the next write transaction's free-run searches start (in memory only).
    pub starts: SearchStarts,
    /// The meta pages of the commit chain since its anchor (page, txn), oldest first: in use
    /// until the next anchor frees them (see `commit`).
    pub chain: Arc<Vec<(u64, u64)>>,
}

/// The last durable meta: which txn and which slot.
#[derive(Clone, Copy, Debug)]
pub struct DurableMark {
    /// Every txn up to this one is durable.
    pub txn: u64,
    /// The slot holding its meta, never overwritten until a newer durable commit.
    pub slot: u8,
}

/// State shared by the database handle and its transactions. Its fields are private to
/// `txn`: the layers above read and change them only through its methods.
pub struct Shared {
    /// Where the bytes live.
    storage: Arc<dyn Storage>,
    /// Page size of the file.
    page_size: usize,
    /// Verify checksums on every read.
    verify: bool,
    /// Default durability of commits.
    durability: Durability,
    /// The newest committed state.
    state: RwLock<Arc<Committed>>,
    /// Live readers by txn id.
    readers: Mutex<BTreeMap<u64, usize>>,
    /// The thread holding the writer slot, while a write transaction (or another user of
    /// the slot) is open.
    writer: Mutex<Option<ThreadId>>,
    writer_free: Condvar,
    /// The last durable commit: changed only through `mark_durable`.
    durable: Mutex<DurableMark>,
    /// Set by a failed fsync.
    poisoned: AtomicBool,
    /// Opened with `Options::read_only`: the writer slot is never handed out.
    read_only: bool,
    /// The highest txn id found in a meta slot at open: new txn ids go above it.
    txn_floor: u64,
    /// Set at open, cleared by the first commit: the first write transaction frees every
    /// pending page the reuse rule allows, older chain pages included (a commit otherwise
    /// reads only the head of the pending chain; see `pager::freemap`).
    release_all: AtomicBool,
    /// When a durable commit cuts the free pages at the file's end.
    shrink: Shrink,
}

/// When a durable commit cuts the free pages at the end of the file (see
/// `Options::shrink_threshold`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shrink {
    /// A free tail of two growth steps or more.
    Auto,
    /// A free tail of at least this many bytes.
    AtLeast(u64),
    /// Never (a compaction still cuts).
    Never,
}

impl Shared {
    /// Shared state over an opened, recovered file.
    pub fn new(
        storage: Arc<dyn Storage>,
        committed: Committed,
        highest_txn: u64,
        durability: Durability,
        verify: bool,
        shrink: Shrink,
        read_only: bool,
    ) -> Self {
        let durable = DurableMark {
            txn: committed.meta.txn,
            slot: committed.slot,
        };
        Shared {
            storage,
            page_size: committed.meta.page_size as usize,
            verify,
            durability,
            state: RwLock::new(Arc::new(committed)),
            readers: Mutex::new(BTreeMap::new()),
            writer: Mutex::new(None),
            writer_free: Condvar::new(),
            durable: Mutex::new(durable),
            poisoned: AtomicBool::new(false),
            read_only,
            txn_floor: highest_txn,
            release_all: AtomicBool::new(true),
            shrink,
        }
    }

    /// The page size of the file.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The length of the file, in bytes.
    pub fn file_len(&self) -> Result<u64> {
        Ok(self.storage.len()?)
    }

    /// The last durable commit.
    pub fn durable_mark(&self) -> DurableMark {
        *self.durable.lock()
    }

    /// Records that every commit up to `txn`, whose meta is in `slot`, is durable (an fsync
    /// just returned), and returns the new mark. The mark only moves forward.
    pub fn mark_durable(&self, txn: u64, slot: u8) -> DurableMark {
        let mut mark = self.durable.lock();
        assert!(txn >= mark.txn, "the durable mark moves forward only");
        *mark = DurableMark { txn, slot };
        *mark
    }

    /// The newest committed state.
    pub fn current(&self) -> Arc<Committed> {
        self.state.read().clone()
    }

    /// Starts a read transaction on the newest state.
    pub fn begin_read(&self) -> ReadTxn<'_> {
        let mut readers = self.readers.lock();
        let state = self.current();
        *readers.entry(state.meta.txn).or_insert(0) += 1;
        drop(readers);
        let catalog = state.main.catalog;
        ReadTxn {
            shared: self,
            state,
            catalog,
        }
    }

    /// Starts a read transaction on the snapshot or branch `name` in the newest state.
    pub fn begin_read_at(&self, name: &str) -> Result<ReadTxn<'_>> {
        names::check_name(name)?;
        let mut txn = self.begin_read();
        let record = roots::lookup(&txn.state.pages, txn.state.meta.roots, name)?
            .ok_or_else(|| roots::not_found_root(name))?;
        txn.catalog = record.catalog;
        Ok(txn)
    }

    fn end_read(&self, txn: u64) {
        let mut readers = self.readers.lock();
        let count = readers.get_mut(&txn).expect("reader was registered");
        *count -= 1;
        if *count == 0 {
            readers.remove(&txn);
        }
    }

    /// The bounds for reusing freed pages: (oldest reader's txn, last durable txn).
    pub fn reclaim_bounds(&self) -> (u64, u64) {
        let oldest = self
            .readers
            .lock()
            .keys()
            .next()
            .copied()
            .unwrap_or(u64::MAX);
        (oldest, self.durable_mark().txn)
    }

    /// The oldest open reader's txn, leaving out one registration at `own`: the caller's own
    /// pin, so that a caller that reads the registry while pinned does not see itself.
    pub fn oldest_reader_except(&self, own: u64) -> Option<u64> {
        let readers = self.readers.lock();
        // Ascending txn order: the first entry still held by someone else is the oldest.
        readers
            .iter()
            .find(|(txn, count)| **txn != own || **count > 1)
            .map(|(txn, _)| *txn)
    }

    /// Waits for the writer slot and takes it. `Error::WouldDeadlock` at once when this
    /// thread holds it already: the wait would be for the caller itself.
    pub fn lock_writer(&self) -> Result<WriterGuard<'_>> {
        // Waiting, `take_writer` never answers `None`; the arm only keeps the match total.
        match self.take_writer(true)? {
            Some(guard) => Ok(guard),
            None => Err(Error::WouldDeadlock),
        }
    }

    /// Takes the writer slot if it is free; `None` at once when another thread holds it.
    /// `Error::WouldDeadlock` when this thread holds it: no retry could ever succeed.
    pub fn try_lock_writer(&self) -> Result<Option<WriterGuard<'_>>> {
        self.take_writer(false)
    }

    /// `Error::WouldDeadlock` when this thread holds the writer slot, checked before a call
    /// consumes anything it cannot give back (a stream's header). Another thread's holding
    /// is not looked at: only this thread can make the answer true or false. On a read-only
    /// database, `Error::ReadOnlyDatabase`.
    pub fn refuse_own_writer(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnlyDatabase);
        }
        match *self.writer.lock() {
            Some(holder) if holder == std::thread::current().id() => Err(Error::WouldDeadlock),
            _ => Ok(()),
        }
    }

    /// The one place the slot is taken. `None` only when `wait` is false and another thread
    /// holds the slot.
    fn take_writer(&self, wait: bool) -> Result<Option<WriterGuard<'_>>> {
        if self.read_only {
            return Err(Error::ReadOnlyDatabase);
        }
        if self.poisoned.load(Ordering::Acquire) {
            return Err(Error::Poisoned);
        }
        let me = std::thread::current().id();
        let mut holder = self.writer.lock();
        while let Some(other) = *holder {
            if other == me {
                return Err(Error::WouldDeadlock);
            }
            if !wait {
                return Ok(None);
            }
            self.writer_free.wait(&mut holder);
        }
        *holder = Some(me);
        Ok(Some(WriterGuard { shared: self }))
    }

    /// Cuts the file to the newest state's length once that state is durable. Returns
    /// whether the file is now that short: not while a view of an older, longer state is
    /// alive (a reader that began before the state shrank), nor before the state is durable
    /// (a crash must find the file as long as the durable meta says).
    pub fn truncate_to_state(&self) -> Result<bool> {
        let state = self.current();
        let needed = state.meta.file_pages * self.page_size as u64;
        if self.storage.len()? <= needed {
            return Ok(true);
        }
        if self.durable_mark().txn != state.meta.txn {
            return Ok(false);
        }
        self.cut_file(needed)
    }

    /// Cuts the file to `len_bytes`, the length of a durable state: whether it could, which
    /// it cannot while a view reaching past that length is alive.
    pub(crate) fn cut_file(&self, len_bytes: u64) -> Result<bool> {
        match self.storage.set_len(len_bytes) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Ok(false),
            Err(e) => Err(Error::Io(e)),
        }
    }
}

/// Holds the single writer slot until dropped.
pub struct WriterGuard<'a> {
    shared: &'a Shared,
}

impl Drop for WriterGuard<'_> {
    fn drop(&mut self) {
        *self.shared.writer.lock() = None;
        self.shared.writer_free.notify_one();
    }
}

/// A read transaction: a fixed view of one commit of a branch or snapshot. Any number may be
/// open, on any thread; they never wait for the writer and the writer never waits for them.
///
/// Keys and values are borrowed straight from the file's memory map, with no copy, and live
/// as long as the transaction. A long-lived read transaction keeps the space of the pages it
/// can see from being reused, so end it (drop it) when done.
///
/// ```
/// use shadowkv::Database;
/// # fn main() -> shadowkv::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// let db = Database::open(dir.path().join("example.db"))?;
/// let mut tx = db.begin_write()?;
/// tx.open_table("users")?.insert(b"alice", b"1")?;
/// tx.commit()?;
///
/// let rx = db.begin_read()?;
/// let mut tx = db.begin_write()?;
/// tx.open_table("users")?.insert(b"alice", b"2")?;
/// tx.commit()?;
/// // `rx` still sees the commit it began on.
/// assert_eq!(rx.open_table("users")?.get(b"alice")?, Some(&b"1"[..]));
/// assert_eq!(db.begin_read()?.open_table("users")?.get(b"alice")?, Some(&b"2"[..]));
/// # Ok(())
/// # }
/// ```
pub struct ReadTxn<'db> {
    shared: &'db Shared,
    state: Arc<Committed>,
    catalog: Ptr,
}

impl std::fmt::Debug for ReadTxn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn")
            .field("txn", &self.state.meta.txn)
            .finish_non_exhaustive()
    }
}

impl ReadTxn<'_> {
    /// Opens an existing table; `Error::NotFound` when there is none of that name.
    pub fn open_table(&self, name: &str) -> Result<Table<'_>> {
        names::check_name(name)?;
        let pages = &self.state.pages;
        match btree::get(pages, self.catalog, name.as_bytes())? {
            Some(bytes) => {
                let record = names::TableRecord::decode(bytes, self.catalog.page.0)?;
                Ok(Table::new(pages, record))
            }
            None => Err(Error::NotFound(format!("table {name:?}"))),
        }
    }

    /// Opens an existing table as [`ReadTxn::open_table`] does, and checks the key and value
    /// type names recorded in it: `Error::TypeMismatch` when it was created with others; a
    /// table created through the byte API (no names) opens as it is.
    pub(crate) fn open_table_as(&self, name: &str, types: &names::TypeNames) -> Result<Table<'_>> {
        let table = self.open_table(name)?;
        names::check_types(name, table.type_names(), types)?;
        Ok(table)
    }

    /// Names of all tables, in order.
    pub fn table_names(&self) -> Result<Vec<String>> {
        table_names(&self.state.pages, self.catalog)
    }

    /// The committed state this transaction pins.
    pub(crate) fn state(&self) -> &Committed {
        &self.state
    }

    /// Every entry that differs between `base` and this view, tables in name order and keys in
    /// order within a table. Both views must belong to this database; any two will do
    /// (snapshots, branches, `main`, in either order of age).
    ///
    /// The cost is O(changes × depth): a subtree that both views share is never read. An
    /// entry overwritten with an equal value is not a change; a table created or deleted
    /// between the views shows as all its entries added or removed.
    pub fn diff<'a>(&'a self, base: &'a ReadTxn<'_>) -> Result<Diff<'a>> {
        if !std::ptr::eq(self.shared, base.shared) {
            return Err(Error::InvalidArgument(
                "diff compares two views of one database, and these belong to two".into(),
            ));
        }
        Ok(Diff::new(
            (&base.state.pages, base.catalog),
            (&self.state.pages, self.catalog),
        ))
    }

    /// The id of the commit this transaction reads (see [`WriteTxn::txn_id`]).
    pub fn txn_id(&self) -> u64 {
        self.state.meta.txn
    }
}

impl Drop for ReadTxn<'_> {
    fn drop(&mut self) {
        self.shared.end_read(self.state.meta.txn);
    }
}

/// Names in a catalog tree.
pub(crate) fn table_names<S: crate::pager::PageSource + ?Sized>(
    src: &S,
    catalog_root: Ptr,
) -> Result<Vec<String>> {
    let cursor = btree::Cursor::new(
        src,
        catalog_root,
        btree::Bound::Unbounded,
        btree::Bound::Unbounded,
    );
    cursor
        .map(|item| {
            let (key, _) = item?;
            String::from_utf8(key.to_vec())
                .map_err(|_| Error::corrupted(catalog_root.page.0, "table name is not UTF-8"))
        })
        .collect()
}
