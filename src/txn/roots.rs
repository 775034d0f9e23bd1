//! Named roots inside a write transaction: the branch being written, snapshots and branches
//! taken, restored and deleted, and the system trees that record them.
//!
//! Invariants:
//! - `main` always exists: before its first commit it is an implicit empty branch, with no
//!   identity and a creation time of 0; its first written record gets both.
//! - `main` can never be deleted.
//! - Every record's catalog holds one reference on its catalog root page: cloning adds one
//!   (O(1)); restoring or deleting queues the old catalog for release (O(1) for the caller).
//! - Cloning from a branch moves that branch's `shared_until` to this txn, so its later writes
//!   look up counts for every page that may now be shared.
//! - `RootsEdit` is the one owner of the transaction's refcount root: trees change the counts
//!   through the `Sharing` it lends (`RootsEdit::sharing`) and the release queue through
//!   `RootsEdit::release_step`, so no copy of the root is ever written back.

use crate::btree::release::ReleaseQueue;
use crate::btree::share::Refcounts;
use crate::btree::{self, Bound, Cursor, Sharing, TreeKind};
use crate::format::meta::Meta;
use crate::format::records::{Released, RootKind, RootRecord};
use crate::format::Ptr;
use crate::pager::{PageSource, WritePager};
use crate::{Error, Result};

/// The name of the default branch.
pub const MAIN: &str = "main";

/// A new root record of `kind` over `catalog`, as of `txn`, created now with a new identity;
/// pages born up to `shared_until` may be shared with other roots.
pub fn new_root(kind: RootKind, catalog: Ptr, txn: u64, shared_until: u64) -> RootRecord {
    RootRecord {
        kind,
        catalog,
        txn,
        created_unix_secs: now_unix_secs(),
        shared_until,
        identity: new_identity(),
    }
}

/// Seconds since the Unix epoch, now.
pub fn now_unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A fresh 128-bit identity for a new root. Drawn from the standard library's randomly keyed
/// hasher, mixed with the clock and a process-wide counter, so two roots never share one in
/// practice (no dependency is needed for 128 random-enough bits).
pub fn new_identity() -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut out = [0u8; 16];
    for half in out.chunks_exact_mut(8) {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(nanos);
        h.write_u64(count);
        h.write_u32(std::process::id());
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

/// `NotFound` for a name looked up among snapshots and branches (one namespace).
pub fn not_found_root(name: &str) -> Error {
    Error::NotFound(format!("snapshot or branch {name:?}"))
}

/// `AlreadyExists` for a name taken by a snapshot or a branch (one namespace).
pub fn name_taken(name: &str) -> Error {
    Error::AlreadyExists(format!("snapshot or branch {name:?}"))
}

/// Looks a name up in a roots tree (`main` is implicit).
pub fn lookup<S: PageSource + ?Sized>(
    src: &S,
    roots: Ptr,
    name: &str,
) -> Result<Option<RootRecord>> {
    match btree::get(src, roots, name.as_bytes())? {
        Some(bytes) => Ok(Some(RootRecord::decode(bytes, roots.page.0)?)),
        None if name == MAIN => Ok(Some(RootRecord::empty_branch())),
        None => Ok(None),
    }
}

/// The record of `main` in a committed roots tree.
pub fn main_record<S: PageSource + ?Sized>(src: &S, roots: Ptr) -> Result<RootRecord> {
    Ok(lookup(src, roots, MAIN)?.expect("main is implicit"))
}

/// Every named root, in name order (with `main` even before its first commit).
pub fn list<S: PageSource + ?Sized>(src: &S, roots: Ptr) -> Result<Vec<(String, RootRecord)>> {
    let mut out = Vec::new();
    for item in Cursor::new(src, roots, Bound::Unbounded, Bound::Unbounded) {
        let (name, value) = item?;
        let name = String::from_utf8(name.to_vec())
            .map_err(|_| Error::corrupted(roots.page.0, "root name is not UTF-8"))?;
        out.push((name, RootRecord::decode(value, roots.page.0)?));
    }
    if !out.iter().any(|(n, _)| n == MAIN) {
        out.push((MAIN.to_string(), RootRecord::empty_branch()));
        out.sort_by(|a, b| a.0.cmp(&b.0));
    }
    Ok(out)
}

/// The sealed system trees, for the meta.
pub struct SealedRoots {
    /// Root of the roots tree.
    pub roots: Ptr,
    /// Root of the refcount tree.
    pub refs: Ptr,
    /// The release queue.
    pub release: ReleaseQueue,
}

/// The named roots as one write transaction changes them.
pub struct RootsEdit {
    /// The branch being written.
    pub branch: String,
    /// Its record (written back at seal when changed).
    pub record: RootRecord,
    roots: Ptr,
    /// The reference counts: this edit is their one owner. Trees written in this
    /// transaction change them through the [`Sharing`] that [`RootsEdit::sharing`] lends.
    refs: Refcounts,
    /// The release queue.
    pub release: ReleaseQueue,
    /// Whether any record changed.
    pub changed: bool,
    branch_dirty: bool,
}

impl RootsEdit {
    /// Starts from the committed `meta`, writing `branch`.
    pub fn new(meta: &Meta, branch: &str, src: &WritePager) -> Result<RootsEdit> {
        let record = lookup(src, meta.roots, branch)?
            .ok_or_else(|| Error::NotFound(format!("branch {branch:?}")))?;
        Ok(RootsEdit {
            branch: branch.to_string(),
            record,
            roots: meta.roots,
            refs: Refcounts::new(meta.refcounts),
            release: ReleaseQueue {
                root: meta.release,
                seq: meta.release_seq,
            },
            changed: false,
            branch_dirty: false,
        })
    }

    /// Takes a roots tree that a compaction moved (records unchanged but their pointers).
    pub fn replace_roots(&mut self, roots: Ptr) {
        assert!(
            !self.branch_dirty,
            "a moved roots tree would lose the branch's record"
        );
        self.roots = roots;
        self.changed = true;
    }

    /// Takes a refcount tree that a compaction rebuilt (the same counts, pages moved).
    pub fn replace_refs(&mut self, refs: Ptr) {
        self.refs.replace(refs);
        self.changed = true;
    }

    /// The sharing context of this branch's trees of `kind` (its catalog and its tables):
    /// their pages born up to the branch's `shared_until` may be shared, and the counts that
    /// copying or dropping them changes go straight into this edit's refcount tree.
    pub fn sharing(&mut self, kind: TreeKind) -> Sharing<'_> {
        Sharing::new(&mut self.refs, self.record.shared_until, kind)
    }

    /// Drops at most `budget` queued references (deleted snapshots, branches and tables);
    /// returns how many it dropped.
    pub fn release_step(&mut self, w: &mut WritePager, budget: usize) -> Result<usize> {
        self.release.process(w, &mut self.refs, budget)
    }

    /// Marks the branch record as changed.
    pub fn touch_branch(&mut self) {
        self.branch_dirty = true;
        self.changed = true;
    }

    /// The record of `name` as this transaction sees it.
    pub fn lookup(&self, w: &WritePager, name: &str) -> Result<Option<RootRecord>> {
        if name == self.branch {
            return Ok(Some(self.record));
        }
        lookup(w, self.roots, name)
    }

    /// Writes the record of `name`.
    pub fn put(&mut self, w: &mut WritePager, name: &str, record: RootRecord) -> Result<()> {
        if name == self.branch {
            self.record = record;
            self.touch_branch();
            return Ok(());
        }
        self.roots = btree::insert(
            w,
            &mut Sharing::system(TreeKind::Roots),
            self.roots,
            name.as_bytes(),
            &record.encode(),
        )?
        .0;
        self.changed = true;
        Ok(())
    }

    /// Records the new root `name`, which shares `record.catalog`: one more reference on
    /// that catalog. The one way a root comes to share another's trees (a clone, or a
    /// snapshot taken by a write transaction).
    pub fn add_root(&mut self, w: &mut WritePager, name: &str, record: RootRecord) -> Result<()> {
        if !record.catalog.is_null() {
            self.refs.add(record.catalog.page.0);
        }
        self.put(w, name, record)
    }

    /// Creates `name` as a snapshot or branch sharing the state of `from`: O(1).
    pub fn clone_root(
        &mut self,
        w: &mut WritePager,
        name: &str,
        from: &str,
        kind: RootKind,
    ) -> Result<()> {
        let mut src = self.lookup(w, from)?.ok_or_else(|| not_found_root(from))?;
        if self.lookup(w, name)?.is_some() {
            return Err(name_taken(name));
        }
        let txn = w.txn().0;
        self.add_root(w, name, new_root(kind, src.catalog, src.txn, txn))?;
        if src.kind == RootKind::Branch {
            src.shared_until = txn;
            self.put(w, from, src)?;
        }
        Ok(())
    }

    /// Sets branch `branch` to the state of `from`: O(1); the old state is queued for release.
    pub fn restore(&mut self, w: &mut WritePager, branch: &str, from: &str) -> Result<()> {
        let mut target = self
            .lookup(w, branch)?
            .ok_or_else(|| Error::NotFound(format!("branch {branch:?}")))?;
        if target.kind == RootKind::Snapshot {
            return Err(Error::ReadOnly(branch.to_string()));
        }
        let mut src = self.lookup(w, from)?.ok_or_else(|| not_found_root(from))?;
        if branch == from {
            return Ok(());
        }
        let txn = w.txn().0;
        if !src.catalog.is_null() {
            self.refs.add(src.catalog.page.0);
        }
        self.release
            .push(w, target.catalog, Released::CatalogNode)?;
        target.catalog = src.catalog;
        target.txn = txn;
        target.shared_until = txn;
        self.put(w, branch, target)?;
        if src.kind == RootKind::Branch {
            src.shared_until = txn;
            self.put(w, from, src)?;
        }
        Ok(())
    }

    /// Deletes snapshot or branch `name` (of the given kind): O(1); its pages return over the
    /// next commits.
    pub fn delete(&mut self, w: &mut WritePager, name: &str, kind: RootKind) -> Result<()> {
        if name == MAIN {
            return Err(Error::InvalidArgument(format!(
                "{MAIN} cannot be deleted (it is the default branch)"
            )));
        }
        if name == self.branch {
            return Err(Error::InvalidArgument(format!(
                "{name} is in use and cannot be deleted"
            )));
        }
        let record = self.lookup(w, name)?.ok_or_else(|| {
            let what = match kind {
                RootKind::Branch => "branch",
                RootKind::Snapshot => "snapshot",
            };
            Error::NotFound(format!("{what} {name:?}"))
        })?;
        if record.kind != kind {
            let what = if record.kind == RootKind::Branch {
                "a branch"
            } else {
                "a snapshot"
            };
            return Err(Error::InvalidArgument(format!("{name} is {what}")));
        }
        self.remove_name(w, name)?;
        self.release
            .push(w, record.catalog, Released::CatalogNode)?;
        self.changed = true;
        Ok(())
    }

    /// Names of the hidden roots (see `names::is_hidden`).
    pub fn hidden(&self, w: &WritePager) -> Result<Vec<String>> {
        let mut names: Vec<String> = list(w, self.roots)?.into_iter().map(|(n, _)| n).collect();
        names.retain(|n| super::names::is_hidden(n));
        Ok(names)
    }

    /// The name of the snapshot whose identity is `identity`, if there is one.
    pub fn find_snapshot(&self, w: &WritePager, identity: [u8; 16]) -> Result<Option<String>> {
        let found = list(w, self.roots)?.into_iter().find(|(_, r)| {
            r.kind == RootKind::Snapshot && r.identity == identity && r.identity != [0; 16]
        });
        Ok(found.map(|(name, _)| name))
    }

    /// Renames root `from` to `name` and sets its record with `f`: the catalog reference
    /// moves with the record, so no count changes.
    pub fn rename(
        &mut self,
        w: &mut WritePager,
        from: &str,
        name: &str,
        f: impl FnOnce(RootRecord) -> RootRecord,
    ) -> Result<()> {
        if from == self.branch || name == self.branch {
            return Err(Error::InvalidArgument(format!("{from} is in use")));
        }
        let record = self.lookup(w, from)?.ok_or_else(|| not_found_root(from))?;
        if self.lookup(w, name)?.is_some() {
            return Err(name_taken(name));
        }
        self.remove_name(w, from)?;
        self.put(w, name, f(record))
    }

    /// Takes `name` out of the roots tree (its record's reference moves or is released by
    /// the caller).
    fn remove_name(&mut self, w: &mut WritePager, name: &str) -> Result<()> {
        let sharing = &mut Sharing::system(TreeKind::Roots);
        self.roots = btree::remove(w, sharing, self.roots, name.as_bytes())?.0;
        self.changed = true;
        Ok(())
    }

    /// Writes the branch record and seals the three system trees.
    pub fn seal(&mut self, w: &mut WritePager) -> Result<SealedRoots> {
        if self.branch_dirty {
            if self.record.identity == [0; 16] {
                // `main`'s first written record replaces the implicit one.
                self.record.identity = new_identity();
            }
            if self.record.created_unix_secs == 0 {
                // Only `main`'s implicit record has no time (every other record is made
                // with one): it is created now, at its first write. A file whose `main` was
                // written before this rule gets the time of its next commit on `main`.
                self.record.created_unix_secs = now_unix_secs();
            }
            let name = self.branch.clone();
            self.roots = btree::insert(
                w,
                &mut Sharing::system(TreeKind::Roots),
                self.roots,
                name.as_bytes(),
                &self.record.encode(),
            )?
            .0;
            self.branch_dirty = false;
        }
        let roots = btree::seal(w, self.roots)?;
        let refs = self.refs.flush(w)?;
        let refs = btree::seal(w, refs)?;
        let release_root = btree::seal(w, self.release.root)?;
        Ok(SealedRoots {
            roots,
            refs,
            release: ReleaseQueue {
                root: release_root,
                seq: self.release.seq,
            },
        })
    }
}
