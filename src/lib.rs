//! shadowkv: an embedded, transactional key-value store built as a copy-on-write
//! (shadow-paging) B+tree in a single file.
//!
//! A write never overwrites a live page: it writes the changed nodes to fresh pages and then
//! swaps the root pointer. Readers never block the writer; every page pointer carries the
//! child's crc32c, so the whole file is a Merkle tree; a durable commit costs one fsync.
//!
//! Typed tables ([`typed`]) encode keys and values with a codec named in a [`TableDef`]; keys
//! keep their order (integers, strings, byte strings, arrays and tuples of them), reads
//! borrow from the map where the type allows, and the types are recorded in the table:
//!
//! ```
//! use shadowkv::{Database, Error, TableDef};
//!
//! const USERS: TableDef<u64, &str> = TableDef::new("users");          // id → name
//! const BY_NAME: TableDef<(&str, u64), ()> = TableDef::new("by_name"); // (name, id), sorted
//!
//! # fn main() -> Result<(), Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path().join("typed.db"))?;
//! let tx = db.begin_write()?;
//! let mut users = tx.open_typed(&USERS)?;                              // creates the table and
//! let mut by_name = tx.open_typed(&BY_NAME)?;                          // records its types
//! users.insert(1, "ada")?;
//! if let Some(guard) = users.get(1)? {                                 // own writes, as a guard
//!     let name: &str = guard.value()?;                                 // decoded on demand
//!     by_name.insert((name, 1), ())?;                                  // (several tables open)
//! }
//! tx.commit()?;
//!
//! let rx = db.begin_read()?;
//! let users = rx.open_typed(&USERS)?;
//! let name: Option<&str> = users.get(1)?;                             // borrowed, no copy
//! for entry in rx.open_typed(&BY_NAME)?.range(("a", 0)..("b", 0))? {
//!     let ((name, id), ()) = entry?;                                  // in (name, id) order
//! #   assert_eq!((&*name, id), ("ada", 1));
//! }
//! let wrong: TableDef<u32, &str> = TableDef::new("users");
//! assert!(matches!(rx.open_typed(&wrong), Err(Error::TypeMismatch { .. })));
//! # assert_eq!(name, Some("ada"));
//! # Ok(())
//! # }
//! ```
//!
//! The byte API underneath, with snapshots, branches, diffs and streams:
//!
//! ```
//! use shadowkv::{Database, Durability, Error};
//! use std::borrow::Cow;
//! use std::ops::Bound;
//!
//! # fn main() -> Result<(), Error> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let path = dir.path().join("example.db");
//! let db = Database::open(&path)?;                          // creates the file if missing
//! # drop(db);
//! let db = Database::options().page_size(8192).durability(Durability::Immediate).open(&path)?;
//!
//! let tx = db.begin_write()?;                               // branch "main"; one writer at a time
//! let mut t = tx.open_table("users")?;                      // creates the table if missing
//! let mut log = tx.open_table("log")?;                      // several tables open at once
//! t.insert(b"alice", b"1")?;                                // overwrites an existing value
//! let removed: bool = t.remove(b"bob")?;
//! let v: Option<Cow<[u8]>> = t.get(b"alice")?;              // sees this transaction's own writes:
//! log.insert(b"0001", &v.unwrap())?;                        // borrowed if committed, else copied
//! # assert!(!removed);
//! tx.commit()?;                                             // dropping a WriteTxn aborts it
//!
//! let rx = db.begin_read()?;                                // fixed view of main's last commit
//! let t = rx.open_table("users")?;                          // Error::NotFound if absent
//! let v: Option<&[u8]> = t.get(b"alice")?;                  // borrowed from the map, no copy
//! # assert_eq!(v, Some(&b"1"[..]));
//! for item in t.range(&b"a"[..]..&b"b"[..])? { let (k, v): (&[u8], &[u8]) = item?; }
//! t.range(&b"a"[..]..)?; t.range(..)?;                      // every std range form over &[u8],
//! t.range((Bound::Excluded(&b"a"[..]), Bound::Included(&b"z"[..])))?; // bound pairs too
//! for item in t.iter()?.rev() { let (k, v) = item?; }        // double-ended
//! let n: u64 = t.len()?;
//! # assert_eq!(n, 1);
//! # assert!(matches!(rx.open_table("nope"), Err(Error::NotFound(_))));
//! # drop(t); drop(rx);
//!
//! db.create_snapshot("nightly")?;                           // main's last commit; O(1)
//! let old = db.begin_read_at("nightly")?;                   // read any snapshot or branch
//! db.create_branch("experiment", "nightly")?;               // writable clone of a snapshot or branch; O(1)
//! let w = db.begin_write_on("experiment")?;             // writes never show on other branches
//! w.open_table("users")?.insert(b"carol", b"3")?;
//! w.commit()?;                                              // (one writer at a time, so finish it first)
//! db.restore("main", "nightly")?;                           // main := nightly; O(1)
//! # drop(old);
//! db.delete_snapshot("nightly")?;                           // frees what only it held
//! let names = db.snapshots()?;                              // Vec<SnapshotInfo>: name, txn id, creation time, exclusive bytes
//! let branches = db.branches()?;
//! # assert!(names.is_empty());
//! # assert_eq!(branches.len(), 2);
//! db.delete_branch("experiment")?;
//! let report = db.check()?;                                 // full integrity and accounting check
//! # assert_eq!(report.entries, 2);
//!
//! // Diff: what changed between two views of one database, in O(changes): a subtree that both
//! // roots share is never read.
//! db.create_snapshot("nightly")?;                           // (the name is free again)
//! let tx = db.begin_write()?;
//! tx.open_table("users")?.insert(b"dave", b"4")?;
//! tx.commit()?;
//! let base = db.begin_read_at("nightly")?;
//! let now = db.begin_read()?;                               // any two views: snapshots, branches
//! for change in now.diff(&base)? {                          // tables in name order, then keys in order
//!     let c = change?;
//!     let (table, key): (&str, &[u8]) = (c.table, c.key);
//!     let (old, new): (Option<&[u8]>, Option<&[u8]>) = (c.old, c.new); // None: absent on that side
//! #   assert_eq!((table, key, old, new), ("users", &b"dave"[..], None, Some(&b"4"[..])));
//! }
//! # drop(base); drop(now);
//!
//! // Streams, as zfs send/receive: a snapshot whole, or only what changed since an older one.
//! db.create_snapshot("nightly-2")?;
//! let mut out: Vec<u8> = Vec::new();                        // any std::io::Write
//! db.send("nightly", None, &mut out)?;                      // full stream of a snapshot
//! db.send("nightly-2", Some("nightly"), &mut out)?;         // incremental: O(changes since "nightly")
//! # let replica_path = dir.path().join("replica.db");
//! let replica = Database::open(&replica_path)?;
//! let mut input = &out[..];                                 // any std::io::Read; reads exactly one
//! replica.receive(&mut input)?;                             // stream per call, so streams concatenate;
//! replica.receive(&mut input)?;                             // creates snapshots "nightly", "nightly-2"
//! # assert!(input.is_empty());
//! # assert_eq!(replica.begin_read_at("nightly-2")?.open_table("users")?.len()?, 2);
//!
//! // Backup
//! # let backup_path = dir.path().join("backup.db");
//! db.backup_to(&backup_path)?;                              // hot: writers go on; every branch and
//!                                                           // snapshot, compacted, pages still shared
//! # drop(replica);
//! # assert_eq!(Database::open(&backup_path)?.snapshots()?.len(), 2);
//! # Ok(())
//! # }
//! ```
//!
//! The public API is what this page lists: [`Database`] and its [`Options`]; the typed
//! tables of [`typed`] and their [`TableDef`]; the
//! transactions [`ReadTxn`] and [`WriteTxn`], their tables [`Table`] and [`TableMut`] and the
//! iterators [`Range`] and [`RangeMut`]; [`Diff`] and [`Change`]; [`Durability`]; the reports [`Stats`],
//! [`TableStats`], [`CheckReport`], [`CompactReport`] and [`SnapshotInfo`] (alias
//! [`BranchInfo`]); [`Error`] and [`Result`]; and the limits [`MAX_KEY_LEN`] and
//! [`MAX_VALUE_LEN`].
//!
//! The engine behind it is private, in layers, each importing only those below it: `typed`,
//! `db`, `txn`, `btree`, `pager`, `format`, `io`. The `testkit` feature, meant for this crate's own
//! tests, fuzz targets and benches, adds the `testkit` module (a model-based test runner) and
//! a hidden `internals` module that re-exports the layers (`internals::format`,
//! `internals::io`, ...) and a few test-only methods (`Options::open_storage` on any storage,
//! such as an in-memory one); none of that is part of the API or covered by semver. See
//! `docs/ARCHITECTURE.md` for the map and the invariants, `docs/format.md` for the bytes.

#![deny(unsafe_code)]
#![deny(missing_docs)]

#[allow(unsafe_code)]
mod io;

mod btree;
mod db;
mod error;
mod format;
mod pager;
mod txn;
pub mod typed;

#[cfg(feature = "testkit")]
pub mod testkit;

/// The engine's layers, for the crate's own tests, testkit, fuzz targets, benches and
/// examples: compiled only with the `testkit` feature, hidden from the docs, and no part of
/// the public API (nothing here is covered by semver).
#[cfg(feature = "testkit")]
#[doc(hidden)]
pub mod internals {
    /// The copy-on-write B+tree (`src/btree`).
    pub mod btree {
        pub use crate::btree::*;
    }
    /// The on-disk bytes (`src/format`).
    pub mod format {
        pub use crate::format::*;
    }
    /// The storage seam (`src/io`).
    pub mod io {
        pub use crate::io::*;
    }
    /// Pages as the layers above see them (`src/pager`).
    pub mod pager {
        pub use crate::pager::*;
    }
    /// Transactions (`src/txn`).
    pub mod txn {
        pub use crate::txn::*;
    }
}

pub use db::{
    BranchInfo, CheckReport, CompactReport, Database, Options, SnapshotInfo, Stats, TableStats,
};
pub use error::{Error, Result};
pub use txn::{Change, Diff, Durability, Range, RangeMut, ReadTxn, Table, TableMut, WriteTxn};
pub use typed::TableDef;

/// The longest key, in bytes; a longer one gets `Error::KeyTooLarge`. Keys sort bytewise
/// (lexicographically, shorter first on a common prefix): store integers big-endian to keep
/// their order.
pub const MAX_KEY_LEN: usize = format::MAX_KEY_LEN;
/// The longest value, in bytes; a longer one gets `Error::ValueTooLarge`.
pub const MAX_VALUE_LEN: usize = format::MAX_VALUE_LEN;
