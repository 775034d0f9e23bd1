//! The database handle: options, open and recovery, transactions, sync, check and stats.
//!
//! Invariants: `Database` is `Send + Sync`; all state shared with transactions lives in
//! [`crate::txn::Shared`]; a failed open never writes to the file (a successful one writes
//! only to retire a newer meta that failed verification, see `recover.rs`, and to sync
//! commits that were not durable yet); a read-only open (`Options::read_only`) never writes
//! a byte, syncs nothing, and opens the file under a shared lock and a read-only descriptor; an I/O error
//! from `Options::open` is still `Error::Io`, its message prefixed with the file's path;
//! every method that takes the writer slot does so through `Shared::lock_writer` (or
//! `try_lock_writer`), so none of them waits on a transaction of its own thread.

mod backup;
mod backup_out;
mod backup_refill;
mod check;
mod compact;
mod compact_refill;
mod listing;
mod pages;
mod receive;
pub(crate) mod recover;
mod send;
mod stats;

pub use check::CheckReport;
pub use compact::CompactReport;
pub use listing::{BranchInfo, SnapshotInfo};
pub use stats::{Stats, TableStats};

use crate::format::records::RootKind;
use crate::format::{self, MIN_PAGE_SIZE};
use crate::io::{FileStorage, Storage};
use crate::pager::WritePager;
use crate::txn::names::check_name;
use crate::txn::roots::{RootsEdit, MAIN};
use crate::txn::{Durability, ReadTxn, Shared, Shrink, WriteTxn};
use crate::{Error, Result};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

/// How to open a database: from [`Database::options`], set what differs from the defaults,
/// then [`open`](Options::open).
///
/// ```
/// use shadowkv::{Database, Durability};
/// # fn main() -> shadowkv::Result<()> {
/// # let dir = tempfile::tempdir().unwrap();
/// # let path = dir.path().join("example.db");
/// let db = Database::options()
///     .page_size(16384)                  // for a new file only
///     .durability(Durability::Eventual)  // commits skip the fsync; call db.sync()
///     .open(&path)?;
/// # drop(db);
/// // Open only an existing file.
/// let db = Database::options().create(false).open(&path)?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    page_size: usize,
    durability: Durability,
    verify_reads: bool,
    create: bool,
    shrink: Shrink,
    read_only: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            page_size: MIN_PAGE_SIZE,
            durability: Durability::Immediate,
            verify_reads: false,
            create: true,
            shrink: Shrink::Auto,
            read_only: false,
        }
    }
}

impl Options {
    /// Page size for a new file: a power of two from 4096 to 65536 (ignored for an existing
    /// file, whose page size is fixed).
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size;
        self
    }

    /// Default durability of commits ([`Durability::Immediate`] unless set); a transaction
    /// may change its own with [`WriteTxn::set_durability`].
    pub fn durability(mut self, durability: Durability) -> Self {
        self.durability = durability;
        self
    }

    /// Verify the checksum of every page on read (off by default; `check` always verifies).
    pub fn verify_reads(mut self, verify: bool) -> Self {
        self.verify_reads = verify;
        self
    }

    /// Create the file when it is missing (on by default).
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// When a durable commit leaves at least `bytes` free at the end of the file, the file is
    /// cut to its last used page (`None`: never; `compact()` still cuts). The default cuts a
    /// free tail of two growth steps or more (at least 1 MiB): a tail that size is not
    /// needed back soon, since the file grows one step at a time, and each regrowth costs an
    /// extra fsync. Commits with `Durability::Eventual` never cut: the file must stay as long
    /// as the last durable state says.
    pub fn shrink_threshold(mut self, bytes: Option<u64>) -> Self {
        self.shrink = bytes.map_or(Shrink::Never, Shrink::AtLeast);
        self
    }

    /// Open for reading only (off by default). The file must exist; it is opened with a
    /// read-only descriptor under a *shared* lock: other read-only handles may open it at the
    /// same time, but while any is open a writer's open gets [`Error::Locked`], and a
    /// read-only open while a writer has the file gets `Error::Locked` at once.
    ///
    /// Not a byte of the file is written, not even by recovery: a file left by a crash, or
    /// whose last commits were [`Durability::Eventual`], opens at its newest meta whose
    /// commit verifies, with no repair, no retiring of a newer meta that failed to verify
    /// and no fsync. Every method that would write returns [`Error::ReadOnlyDatabase`]:
    /// `begin_write`, `try_begin_write` (and their `_on` forms), `create_snapshot`,
    /// `create_branch`, `restore`, `delete_snapshot`, `delete_branch`, `sync`, `compact` and
    /// `receive`. Reads, `check`, `stats`, the listings, `send` and `backup_to` (which only
    /// reads this file and writes a new one) work as usual.
    ///
    /// ```
    /// use shadowkv::{Database, Error};
    /// # fn main() -> shadowkv::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let path = dir.path().join("example.db");
    /// # drop(Database::open(&path)?);
    /// let a = Database::options().read_only(true).open(&path)?;
    /// let b = Database::options().read_only(true).open(&path)?; // readers share the file
    /// assert!(matches!(a.begin_write(), Err(Error::ReadOnlyDatabase)));
    /// assert!(matches!(Database::open(&path), Err(Error::Locked)));
    /// # drop((a, b));
    /// # Ok(())
    /// # }
    /// ```
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Opens (or creates) the database file at `path`.
    ///
    /// An I/O error here is an `Error::Io` whose message starts with the path (its
    /// `io::ErrorKind` is the operating system's).
    pub fn open(self, path: impl AsRef<Path>) -> Result<Database> {
        self.check_page_size()?;
        let path = path.as_ref();
        let opened = match self.read_only {
            true => FileStorage::open_read_only(path),
            false => FileStorage::open(path, self.create).map(|(storage, _created)| storage),
        };
        let storage = opened.map_err(|e| match e {
            crate::io::OpenFileError::Locked => Error::Locked,
            crate::io::OpenFileError::Io(e) => Error::Io(with_path(path, e)),
        })?;
        // Recovery reads the file too: its I/O errors name the path as well.
        self.open_on(Arc::new(storage)).map_err(|e| match e {
            Error::Io(e) => Error::Io(with_path(path, e)),
            other => other,
        })
    }

    /// Opens a database on any [`Storage`] (memory, or a test double). Empty storage is
    /// initialised as a new database. Test support: only with the `testkit` feature, and no
    /// part of the public API.
    #[cfg(feature = "testkit")]
    #[doc(hidden)]
    pub fn open_storage(self, storage: Arc<dyn Storage>) -> Result<Database> {
        self.open_on(storage)
    }

    /// Opens a database on `storage`; empty storage is initialised as a new database.
    fn open_on(self, storage: Arc<dyn Storage>) -> Result<Database> {
        self.check_page_size()?;
        if storage.len()? == 0 {
            if !self.create || self.read_only {
                return Err(Error::NotFound("database file (it is empty)".into()));
            }
            recover::create(storage.as_ref(), self.page_size)?;
        }
        let (committed, highest_txn) =
            recover::recover(storage.as_ref(), self.verify_reads, self.read_only)?;
        if committed.meta.durable_txn < committed.meta.txn && !self.read_only {
            // Commits written without fsync (or before a crash) become durable now.
            storage.sync()?;
        }
        let shared = Shared::new(
            storage,
            committed,
            highest_txn,
            self.durability,
            self.verify_reads,
            self.shrink,
            self.read_only,
        );
        Ok(Database {
            shared: Arc::new(shared),
        })
    }

    fn check_page_size(&self) -> Result<()> {
        if !format::valid_page_size(self.page_size) {
            return Err(Error::InvalidArgument(format!(
                "page size {} is not a power of two from 4096 to 65536",
                self.page_size
            )));
        }
        Ok(())
    }
}

/// An open database. Cheap to share across threads (`Send + Sync`).
///
/// # The writer slot
///
/// There is one writer at a time. A [`WriteTxn`] holds the database's single writer slot from
/// `begin_write` until it is committed or dropped, and the methods that change named roots,
/// `sync`, `compact` and `receive` take the same slot for their own commits. Each method says
/// whether it takes the slot. One that does waits while another thread holds it; but when the
/// slot is held by a `WriteTxn` open on the *calling* thread, that wait could never end, so
/// the call returns [`Error::WouldDeadlock`] at once instead: commit or drop the transaction
/// first. (The slot remembers the thread that took it; a `WriteTxn` moved to another thread
/// still counts as its beginner's.) Readers never take the slot and are never refused.
pub struct Database {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Database {
    /// The newest committed txn, the page size and the file's length: what identifies the
    /// state a handle is at, without reading anything.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.shared.current();
        f.debug_struct("Database")
            .field("txn", &state.meta.txn)
            .field("page_size", &self.shared.page_size())
            .field("file_pages", &state.meta.file_pages)
            .finish_non_exhaustive()
    }
}

/// `e` with `path` in front of its message, same kind: callers still match `Error::Io` and
/// `e.kind()`, and the message says which file.
fn with_path(path: &Path, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

impl Database {
    /// Opens the database at `path`, creating it if missing, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Options::default().open(path)
    }

    /// Options for opening a database.
    pub fn options() -> Options {
        Options::default()
    }

    /// A read transaction on the last commit.
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn begin_read(&self) -> Result<ReadTxn<'_>> {
        Ok(self.shared.begin_read())
    }

    /// The write transaction on `main`; waits while another thread's one is open.
    ///
    /// Writer slot: takes it until the transaction is committed or dropped
    /// ([see above](Database#the-writer-slot)).
    pub fn begin_write(&self) -> Result<WriteTxn<'_>> {
        WriteTxn::begin(&self.shared, MAIN)
    }

    /// The write transaction on `main` if no other is open, else `Ok(None)` at once.
    ///
    /// A busy slot is an expected answer, not a failure, so it is `None` rather than an
    /// error: `if let Some(tx) = db.try_begin_write()? { ... }` handles it, and `?` still
    /// passes on only real errors. `Error::WouldDeadlock` when the open transaction is this
    /// thread's own: no retry could succeed until it is committed or dropped.
    ///
    /// Writer slot: takes it if free, never waits ([see above](Database#the-writer-slot)).
    pub fn try_begin_write(&self) -> Result<Option<WriteTxn<'_>>> {
        WriteTxn::try_begin(&self.shared, MAIN)
    }

    /// A read transaction on snapshot or branch `name`.
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn begin_read_at(&self, name: &str) -> Result<ReadTxn<'_>> {
        self.shared.begin_read_at(name)
    }

    /// The write transaction on branch `branch`; `Error::ReadOnly` for a snapshot.
    ///
    /// Writer slot: takes it until the transaction is committed or dropped
    /// ([see above](Database#the-writer-slot)).
    pub fn begin_write_on(&self, branch: &str) -> Result<WriteTxn<'_>> {
        WriteTxn::begin(&self.shared, branch)
    }

    /// [`Database::try_begin_write`] on branch `branch`: `Ok(None)` at once while another
    /// thread's write transaction is open.
    ///
    /// Writer slot: takes it if free, never waits ([see above](Database#the-writer-slot)).
    pub fn try_begin_write_on(&self, branch: &str) -> Result<Option<WriteTxn<'_>>> {
        WriteTxn::try_begin(&self.shared, branch)
    }

    fn edit_roots(
        &self,
        on: &str,
        f: impl FnOnce(&mut RootsEdit, &mut WritePager) -> Result<()>,
    ) -> Result<()> {
        let mut tx = WriteTxn::begin(&self.shared, on)?;
        tx.edit_roots(f)?;
        tx.commit()
    }

    /// Snapshots the last commit of `main` as `name`: O(1), whatever the size of the data.
    /// The snapshot is read-only and shares every page with `main` until `main` changes
    /// them. `Error::AlreadyExists` when a snapshot or branch has that name. To snapshot
    /// another branch, or a state together with the writes that make it, use
    /// [`WriteTxn::create_snapshot`].
    ///
    /// Writer slot: takes it ([see above](Database#the-writer-slot)).
    ///
    /// ```
    /// use shadowkv::Database;
    /// # fn main() -> shadowkv::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Database::open(dir.path().join("example.db"))?;
    /// let mut tx = db.begin_write()?;
    /// tx.open_table("users")?.insert(b"alice", b"1")?;
    /// tx.commit()?;
    /// db.create_snapshot("before-cleanup")?;
    ///
    /// let mut tx = db.begin_write()?;
    /// tx.delete_table("users")?;
    /// tx.commit()?;
    ///
    /// let old = db.begin_read_at("before-cleanup")?;
    /// assert_eq!(old.open_table("users")?.get(b"alice")?, Some(&b"1"[..]));
    /// drop(old);
    /// db.restore("main", "before-cleanup")?; // main is back where it was
    /// assert!(db.begin_read()?.open_table("users").is_ok());
    /// # Ok(())
    /// # }
    /// ```
    pub fn create_snapshot(&self, name: &str) -> Result<()> {
        check_name(name)?;
        self.edit_roots(MAIN, |edit, w| {
            edit.clone_root(w, name, MAIN, RootKind::Snapshot)
        })
    }

    /// Creates branch `name`, a writable clone of snapshot or branch `from`: O(1).
    ///
    /// Writer slot: takes it ([see above](Database#the-writer-slot)).
    pub fn create_branch(&self, name: &str, from: &str) -> Result<()> {
        check_name(name)?;
        self.edit_roots(MAIN, |edit, w| {
            edit.clone_root(w, name, from, RootKind::Branch)
        })
    }

    /// Sets branch `branch` to the state of snapshot (or branch) `from`: O(1). Later
    /// snapshots are kept.
    ///
    /// Writer slot: takes it ([see above](Database#the-writer-slot)).
    pub fn restore(&self, branch: &str, from: &str) -> Result<()> {
        check_name(branch)?;
        check_name(from)?;
        self.edit_roots(MAIN, |edit, w| edit.restore(w, branch, from))
    }

    /// Deletes snapshot `name`: O(1); the pages only it held return over the next commits.
    ///
    /// Writer slot: takes it ([see above](Database#the-writer-slot)).
    pub fn delete_snapshot(&self, name: &str) -> Result<()> {
        check_name(name)?;
        self.edit_roots(MAIN, |edit, w| edit.delete(w, name, RootKind::Snapshot))
    }

    /// Deletes branch `name` (not `main`): O(1); its pages return over the next commits.
    ///
    /// Writer slot: takes it ([see above](Database#the-writer-slot)).
    pub fn delete_branch(&self, name: &str) -> Result<()> {
        check_name(name)?;
        self.edit_roots(MAIN, |edit, w| edit.delete(w, name, RootKind::Branch))
    }

    /// Every snapshot, by name, with the space each references and holds alone.
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn snapshots(&self) -> Result<Vec<SnapshotInfo>> {
        listing::infos(self.shared.begin_read().state(), RootKind::Snapshot)
    }

    /// Every branch (`main` included), by name, with the space each references and holds alone.
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn branches(&self) -> Result<Vec<BranchInfo>> {
        listing::infos(self.shared.begin_read().state(), RootKind::Branch)
    }

    /// The names of the snapshots (`branches: false`) or branches, as [`snapshots`] and
    /// [`branches`] list them, without walking their pages. Test support: only with the
    /// `testkit` feature, and no part of the public API.
    ///
    /// [`snapshots`]: Self::snapshots
    /// [`branches`]: Self::branches
    #[cfg(feature = "testkit")]
    #[doc(hidden)]
    pub fn root_names(&self, branches: bool) -> Result<Vec<String>> {
        let kind = match branches {
            true => RootKind::Branch,
            false => RootKind::Snapshot,
        };
        listing::names(self.shared.begin_read().state(), kind)
    }

    /// Writes snapshot `snapshot` to `out` as a stream (format: docs/stream.md), in the
    /// manner of `zfs send`: the whole snapshot, or with `base` only what changed since that
    /// older snapshot, at a cost of O(changes). Reads one committed state; writers go on.
    /// Both names must be snapshots.
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn send(&self, snapshot: &str, base: Option<&str>, mut out: impl Write) -> Result<()> {
        send::send(&self.shared, snapshot, base, &mut out)
    }

    /// Reads exactly one stream from `input` (and not a byte past its end) and creates the
    /// snapshot it carries, with the sender's name and identity; returns that name. An
    /// incremental stream needs the very snapshot it was computed from.
    ///
    /// All or nothing: a truncated, damaged or foreign stream (`Error::BadStream`), a base
    /// this database lacks (`NotFound`) or a name already in use (`AlreadyExists`) leaves
    /// the database's snapshots and branches as they were, and so does a crash. Memory stays
    /// bounded by the largest value plus a fixed buffer.
    ///
    /// Writer slot: takes it for the whole call ([see above](Database#the-writer-slot)).
    pub fn receive(&self, mut input: impl Read) -> Result<String> {
        receive::receive(&self.shared, &mut input)
    }

    /// Makes every commit so far durable (one fsync).
    ///
    /// Writer slot: takes it ([see above](Database#the-writer-slot)).
    pub fn sync(&self) -> Result<()> {
        let _writer = self.shared.lock_writer()?;
        let state = self.shared.current();
        crate::txn::sync_or_poison(&self.shared)?;
        self.shared.mark_durable(state.meta.txn, state.slot);
        Ok(())
    }

    /// Writes a compacted copy of every snapshot and branch, as of the last commit, to a new
    /// file at `path`, and syncs it. Writers go on meanwhile. Pages shared between roots stay
    /// shared in the copy, which holds no free page. `Error::AlreadyExists` when `path`
    /// exists; on any failure nothing is left at `path`.
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn backup_to(&self, path: impl AsRef<Path>) -> Result<()> {
        backup::backup_to(&self.shared, path.as_ref())
    }

    /// [`Database::backup_to`] onto any empty [`Storage`] (for tests through the storage
    /// seam). Test support: only with the `testkit` feature, and no part of the public API.
    #[cfg(feature = "testkit")]
    #[doc(hidden)]
    pub fn backup_to_storage(&self, out: &dyn Storage) -> Result<()> {
        backup::backup_to_storage(&self.shared, out)
    }

    /// Gives space back: moves the pages at the end of the file into free pages below, in
    /// bounded steps (each a commit; readers go on), then cuts the file after its last used
    /// page. Snapshots and branches are kept, and pages they share stay shared. A reader that
    /// began before delays only the cut; the report says so, and the first durable commit
    /// after that reader ends makes the cut.
    ///
    /// Writer slot: takes it for the whole call ([see above](Database#the-writer-slot)).
    pub fn compact(&self) -> Result<CompactReport> {
        compact::compact(&self.shared)
    }

    /// Verifies every page and the exact accounting of the whole file.
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn check(&self) -> Result<CheckReport> {
        self.check_with_progress(|_, _| {})
    }

    /// As [`Database::check`], calling `progress(pages_checked, pages_in_file)` about a
    /// thousand times along the way, for a progress bar.
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let db = shadowkv::Database::open(dir.path().join("db"))?;
    /// let mut last = (0, 0);
    /// db.check_with_progress(|done, total| last = (done, total))?;
    /// assert_eq!(last.0, last.1); // every page of the file was accounted for
    /// # Ok::<(), shadowkv::Error>(())
    /// ```
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn check_with_progress(&self, mut progress: impl FnMut(u64, u64)) -> Result<CheckReport> {
        check::check(self.shared.begin_read().state(), &mut progress)
    }

    /// Sizes and counts of the last commit: pages from the meta, and in bytes the live data
    /// (every page reachable from a snapshot, a branch or a system tree, shared pages counted
    /// once), the free and pending space, and the pending space that only the oldest open
    /// reader keeps from reuse. Walks every reachable page once and reads the pending chain:
    /// O(pages reachable), unlike the page counts alone. See [`Stats`] for each field.
    ///
    /// Writer slot: not taken; never waits for a writer.
    pub fn stats(&self) -> Result<Stats> {
        stats::stats(&self.shared)
    }
}

#[cfg(test)]
mod tests {
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn database_is_send_and_sync() {
        assert_send_sync::<super::Database>();
    }
}
