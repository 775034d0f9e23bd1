//! Hot backup: a new, compacted file holding every snapshot and branch of one committed state.
//!
//! Invariants:
//! - The copy is of one committed state, pinned as a reader for as long as the copy runs; the
//!   writer lock is never taken, so commits go on meanwhile.
//! - Every page reachable from a named root is copied exactly once, children before parents
//!   (so leaves come out in key order, and every parent knows its children's new checksums);
//!   a page shared by several parents stays shared (`memo`). Every page copied is verified
//!   against its parent's checksum first, so a backup never carries damage silently.
//! - Pages keep their births, so each root's `shared_until` (the generation shortcut) stays
//!   true; only the refcount tree and the free map are new, born in the copy's own txn (one
//!   past the source's).
//! - Reference counts are recounted from the parents actually copied, and the release queue
//!   is dropped (what it held is garbage), so the copy's counts are exact.
//! - The copy has no free and no pending page. It is written under a temporary name, synced,
//!   and only then given its name, which must not exist (see `io::NewFile`).

use super::backup_out::{write_file, PageOut};
use crate::btree::walk::{targets, Target, Walk};
use crate::btree::{self};
use crate::format::copy::{move_node, LeafValues};
use crate::format::meta::Meta;
use crate::format::roots::encode_count;
use crate::format::{tag, PageId, Ptr};
use crate::io::{NewFile, Storage};
use crate::pager::{IdMap, PageSource, ReadPages};
use crate::txn::{Committed, Shared};
use crate::{Error, Result};
use std::path::Path;

/// Writes a backup of the newest committed state to a new file at `path`.
pub(crate) fn backup_to(shared: &Shared, path: &Path) -> Result<()> {
    let io_error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AlreadyExists => Error::AlreadyExists(path.display().to_string()),
        _ => Error::Io(e),
    };
    let file = NewFile::create(path).map_err(io_error)?;
    let storage = file.writer()?;
    backup_to_storage(shared, &storage)?;
    drop(storage);
    file.publish().map_err(io_error)
}

/// Writes a backup of the newest committed state to `out`, which must be empty, and syncs it.
pub(crate) fn backup_to_storage(shared: &Shared, out: &dyn Storage) -> Result<()> {
    if !out.is_empty()? {
        return Err(Error::AlreadyExists("backup target is not empty".into()));
    }
    let pin = shared.begin_read();
    write_copy(pin.state(), out)
}

fn write_copy(state: &Committed, out: &dyn Storage) -> Result<()> {
    write_file(out, state.pages.page_size(), |out| {
        let meta = state.meta;
        let mut copier = Copier {
            src: &state.pages,
            out,
            memo: IdMap::default(),
            parents: IdMap::default(),
        };
        let roots = copier.copy(meta.roots, Target::Node(Walk::Roots), None)?;
        let txn = meta.txn + 1;
        let refcounts = copier.refcount_tree(txn)?;
        let free_dir = copier.out.free_map(txn)?;
        Ok(Meta {
            page_size: meta.page_size,
            txn,
            // The whole file is synced before it gets its name: everything in it is durable.
            durable_txn: txn,
            file_pages: copier.out.file_pages(),
            roots,
            refcounts,
            release: Ptr::default(),
            free_dir,
            pending: Ptr::default(),
            free_count: 0,
            pending_count: 0,
            release_seq: meta.release_seq,
        })
    })
}

/// The walk that copies: old pages in, new pages out.
struct Copier<'a> {
    src: &'a ReadPages,
    out: &'a mut PageOut,
    /// Every shareable page copied so far: its old pointer and its new one.
    memo: IdMap<(Ptr, Ptr)>,
    /// Parents found in the copy of every shareable page, by new page id.
    parents: IdMap<u32>,
}

impl Copier<'_> {
    /// Copies what `ptr` points at (once, however many parents point at it) and returns the
    /// pointer to the copy. `level` is the level a node must sit at, when known.
    fn copy(&mut self, ptr: Ptr, target: Target, level: Option<u8>) -> Result<Ptr> {
        if ptr.is_null() {
            return Ok(ptr);
        }
        let shareable = !matches!(
            target,
            Target::Node(Walk::Roots | Walk::Refs | Walk::Release)
        );
        if shareable {
            if let Some(&(old, new)) = self.memo.get(&ptr.page.0) {
                if old != ptr {
                    return Err(Error::corrupted(
                        ptr.page.0,
                        "two pointers to one page disagree",
                    ));
                }
                *self.parents.entry(new.page.0).or_insert(0) += 1;
                return Ok(new);
            }
        }
        let new = match target {
            Target::Overflow(len) => {
                let bytes = self.src.overflow_checked(ptr, len, true)?;
                let id = self.out.push_run(bytes)?;
                // Same bytes, so the same checksum; and the same birth.
                Ptr {
                    page: PageId(id),
                    ..ptr
                }
            }
            Target::Node(walk) => self.copy_node(ptr, walk, level)?,
        };
        if shareable {
            self.memo.insert(ptr.page.0, (ptr, new));
            *self.parents.entry(new.page.0).or_insert(0) += 1;
        }
        Ok(new)
    }

    /// Copies a node after everything it points at. Bounded: the level falls by one per step
    /// inside a tree, and a walk crosses at most three trees (roots, catalog, table).
    fn copy_node(&mut self, ptr: Ptr, walk: Walk, level: Option<u8>) -> Result<Ptr> {
        let src = self.src;
        let page = src.tagged(ptr, &[tag::LEAF, tag::BRANCH], true)?;
        let view = btree::node_at(src, ptr, level)?;
        let child_level = if view.is_leaf() {
            None
        } else {
            Some(view.level() - 1)
        };
        let pointers = targets(&view, walk)?;
        let mut new = Vec::with_capacity(pointers.len());
        // Bounded: one step per pointer of the node, which its count bounds.
        for (child, target) in pointers {
            new.push(self.copy(child, target, child_level)?);
        }
        let values = match walk {
            Walk::Table => LeafValues::Table,
            Walk::Catalog => LeafValues::TableRecords,
            Walk::Roots => LeafValues::RootRecords,
            Walk::Refs | Walk::Release => {
                return Err(Error::corrupted(
                    ptr.page.0,
                    "a system tree reached from a named root",
                ))
            }
        };
        let (id, crc) = self
            .out
            .push_page(|out, id| move_node(page, ptr.page.0, out, id, values, &new))?;
        Ok(Ptr {
            page: PageId(id),
            txn: ptr.txn,
            crc,
        })
    }

    /// The refcount tree of the copy: every page with two parents or more.
    fn refcount_tree(&mut self, txn: u64) -> Result<Ptr> {
        let mut shared: Vec<(u64, u32)> = self
            .parents
            .iter()
            .filter(|(_, n)| **n >= 2)
            .map(|(id, n)| (*id, *n))
            .collect();
        shared.sort_unstable();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = shared
            .into_iter()
            .map(|(id, n)| (id.to_be_bytes().to_vec(), encode_count(n).to_vec()))
            .collect();
        self.out.build_tree(&entries, txn)
    }
}
