//! Hot backup: a new, compacted file holding every snapshot and branch of one committed state.
//!
//! Invariants:
//! - The copy is of one committed state, pinned as a reader for as long as the copy runs; the
//!   writer lock is never taken, so commits go on meanwhile.
//! - Every page reachable from a named root is copied exactly once, children before parents
//!   (so leaves come out in key order, and every parent knows its children's new checksums);
//!   a page shared by several parents stays shared (`memo`). A table tree none of whose nodes
//!   below the root is shared is refilled instead, into full nodes (`backup_refill`); its
//!   root is still copied once for all its parents. Every page copied is verified
//!   against its parent's checksum first, so a backup never carries damage silently.
//! - Pages keep their births (a refilled table's nodes all take its root's), so each root's
//!   `shared_until` (the generation shortcut) stays true; only the refcount tree and the free
//!   map are new, born in the copy's own txn (one past the source's).
//! - Reference counts are recounted from the parents actually copied, and the release queue
//!   is dropped (what it held is garbage), so the copy's counts are exact.
//! - The copy has no free and no pending page. It is written under a temporary name, synced,
//!   and only then given its name, which must not exist (see `io::NewFile`).

use super::backup_out::{write_file, PageOut};
use super::backup_refill::refill_table;
use crate::btree::share::stored_count_map;
use crate::btree::traverse::{traverse, Child, Edge, Enter, Target, TreeKind, Visitor};
use crate::format::copy::move_node;
use crate::format::counts::{chunk_key, chunks};
use crate::format::meta::Meta;
use crate::format::node::NodeView;
use crate::format::{tag, PageId, Ptr};
use crate::io::{NewFile, Storage};
use crate::pager::{IdMap, PageSource, ReadPages};
use crate::txn::{Committed, Shared};
use crate::{Error, Result};
use std::path::Path;

/// Writes a backup of the newest committed state to a new file at `path`.
pub(crate) fn backup_to(shared: &Shared, path: &Path) -> Result<()> {
    let io_error = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            Error::AlreadyExists(format!("file {}", path.display()))
        }
        _ => Error::Io(super::with_path(path, e)),
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
            shared: stored_count_map(&state.pages, meta.refcounts)?,
        };
        let roots = traverse(&state.pages, meta.roots, TreeKind::Roots, &mut copier)?;
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
            // The copy's first commit writes a slot.
            next_meta: 0,
            prev_checksum: 0,
        })
    })
}

/// The walk that copies, a visitor of the one traversal: old pages in, new pages out.
pub(super) struct Copier<'a> {
    pub(super) src: &'a ReadPages,
    pub(super) out: &'a mut PageOut,
    /// Every shareable page copied so far: its old pointer and its new one.
    memo: IdMap<(Ptr, Ptr)>,
    /// Parents found in the copy of every shareable page, by new page id.
    parents: IdMap<u32>,
    /// Source pages with a stored reference count of two or more (see `backup_refill`).
    pub(super) shared: IdMap<u32>,
}

impl Copier<'_> {
    /// Records the copy of a shareable page and one parent of it.
    fn copied(&mut self, edge: &Edge<'_>, new: Ptr) -> Ptr {
        if edge.target.shareable() {
            self.memo.insert(edge.ptr.page.0, (edge.ptr, new));
            *self.parents.entry(new.page.0).or_insert(0) += 1;
        }
        new
    }
}

impl<'a> Visitor<'a, ReadPages> for Copier<'a> {
    type Out = Ptr;

    /// A page already copied (a shared one) is not copied again: one more parent of its copy.
    fn enter(&mut self, edge: &Edge<'a>) -> Result<Enter<Ptr>> {
        let ptr = edge.ptr;
        if ptr.is_null() {
            return Ok(Enter::Skip(ptr));
        }
        if !edge.target.shareable() {
            return Ok(Enter::Descend);
        }
        let Some(&(old, new)) = self.memo.get(&ptr.page.0) else {
            // A table's root, met first: refilled when nothing below it is shared.
            if edge.target == Target::Node(TreeKind::Table) && edge.level.is_none() {
                if let Some(new) = refill_table(self, edge)? {
                    return Ok(Enter::Skip(self.copied(edge, new)));
                }
            }
            return Ok(Enter::Descend);
        };
        if old != ptr {
            return Err(Error::corrupted(
                ptr.page.0,
                "two pointers to one page disagree",
            ));
        }
        *self.parents.entry(new.page.0).or_insert(0) += 1;
        Ok(Enter::Skip(new))
    }

    /// Every node copied is verified against its parent's checksum first.
    fn read(&mut self, src: &'a ReadPages, edge: &Edge<'a>) -> Result<NodeView<'a>> {
        let page = src.tagged(edge.ptr, &[tag::LEAF, tag::BRANCH], true)?;
        NodeView::new(page, edge.ptr.page.0)
    }

    fn overflow(&mut self, edge: &Edge<'a>, len: u64) -> Result<Ptr> {
        let bytes = self.src.overflow_checked(edge.ptr, len, true)?;
        let id = self.out.push_run(bytes)?;
        // Same bytes, so the same checksum; and the same birth.
        let new = Ptr {
            page: PageId(id),
            ..edge.ptr
        };
        Ok(self.copied(edge, new))
    }

    /// A node, after everything it points at: its copy points at their copies.
    fn leave(
        &mut self,
        edge: &Edge<'a>,
        view: &NodeView<'a>,
        kids: Vec<(Child, Ptr)>,
    ) -> Result<Ptr> {
        let values = edge.target.leaf_values().ok_or_else(|| {
            Error::corrupted(edge.ptr.page.0, "a system tree reached from a named root")
        })?;
        let new: Vec<Ptr> = kids.into_iter().map(|(_, ptr)| ptr).collect();
        let (page, old_id) = (view.page_bytes(), edge.ptr.page.0);
        let (id, crc) = self
            .out
            .push_page(|out, id| move_node(page, old_id, out, id, values, &new))?;
        let copy = Ptr {
            page: PageId(id),
            txn: edge.ptr.txn,
            crc,
        };
        Ok(self.copied(edge, copy))
    }
}

impl Copier<'_> {
    /// The refcount tree of the copy: every page with two parents or more.
    fn refcount_tree(&mut self, txn: u64) -> Result<Ptr> {
        let mut shared: Vec<(u64, u32)> = self
            .parents
            .iter()
            .filter(|(_, n)| **n >= 2)
            .map(|(id, n)| (*id, *n))
            .collect();
        shared.sort_unstable();
        let entries: Vec<(Vec<u8>, Vec<u8>)> = chunks(&shared)
            .iter()
            .map(|chunk| {
                let value = chunk.encode();
                (chunk_key(chunk.first()).to_vec(), value.as_ref().to_vec())
            })
            .collect();
        self.out.build_tree(&entries, txn)
    }
}
