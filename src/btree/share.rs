//! Sharing pages between roots: reference counts and copy-on-write of shared nodes (the
//! release queue, which drops a whole tree's references in bounded steps, is `release.rs`).
//!
//! Invariants:
//! - A page's reference count is the number of parents pointing at it across all roots (a
//!   parent is a node page, a root record or a release-queue entry). Only counts ≥ 2 are
//!   stored, in the refcount tree keyed by page id; an absent page counts 1.
//! - A page born after its root's `shared_until` cannot be shared, so its count is never
//!   looked up (the generation shortcut). Pages born in the current txn are never shared.
//! - Copying a shared node adds one reference to each of its children and drops one from the
//!   original; copying an unshared node frees the original (its children change parent but
//!   not count).

use super::node_at;
use super::traverse::{targets, TreeKind};
use crate::format::records::{count_key, decode_count, decode_count_key, encode_count};
use crate::format::Ptr;
use crate::pager::{IdMap, PageSource, WritePager};
use crate::Result;

/// The sharing context of a tree being written. It borrows the refcount tree's root from its
/// one owner (the transaction's `RootsEdit`), so the counts it changes land there directly.
#[derive(Debug)]
pub struct Sharing<'a> {
    /// Root of the refcount tree (updated as counts change); `None` for a tree that is never
    /// shared, whose counts are never asked.
    refs: Option<&'a mut Ptr>,
    /// Pages born after this txn cannot be shared.
    shared_until: u64,
    /// The kind of tree being written.
    kind: TreeKind,
}

impl<'a> Sharing<'a> {
    /// The context of a tree of `kind` whose pages born up to `shared_until` may be shared,
    /// with the counts in the refcount tree at `refs`.
    pub fn new(refs: &'a mut Ptr, shared_until: u64, kind: TreeKind) -> Sharing<'a> {
        Sharing {
            refs: Some(refs),
            shared_until,
            kind,
        }
    }

    /// The context of a system tree (roots, refcounts, release queue), which is never
    /// shared: every committed page is born after txn 0, so no count is asked.
    pub fn system(kind: TreeKind) -> Sharing<'static> {
        Sharing {
            refs: None,
            shared_until: 0,
            kind,
        }
    }

    /// The refcount root when the page born at `ptr.txn` may be shared (else it is this
    /// tree's alone, and whatever copies or drops it owes no count).
    fn counts_for(&mut self, w: &WritePager, ptr: Ptr) -> Option<&mut Ptr> {
        if ptr.txn == w.txn() || ptr.txn.0 > self.shared_until {
            return None;
        }
        self.refs.as_deref_mut()
    }
}

/// The reference count of `page` (1 when not stored).
pub fn refcount<S: PageSource + ?Sized>(src: &S, refs: Ptr, page: u64) -> Result<u32> {
    match super::get(src, refs, &count_key(page))? {
        Some(bytes) => decode_count(bytes, refs.page.0),
        None => Ok(1),
    }
}

/// Every stored reference count (each 2 or more), by page id: the pages that have two
/// parents or more, for a walk that must tell shared pages apart (backup, compaction).
pub fn stored_count_map<S: PageSource + ?Sized>(src: &S, refs: Ptr) -> Result<IdMap<u32>> {
    Ok(stored_counts(src, refs)?.into_iter().collect())
}

/// Every stored reference count (each 2 or more), by page id in order.
pub fn stored_counts<S: PageSource + ?Sized>(src: &S, refs: Ptr) -> Result<Vec<(u64, u32)>> {
    let mut out = Vec::new();
    // Bounded: one step per entry of the refcount tree, which the cursor walks once.
    for item in super::Cursor::new(src, refs, super::Bound::Unbounded, super::Bound::Unbounded) {
        let (key, value) = item?;
        out.push((
            decode_count_key(key, refs.page.0)?,
            decode_count(value, refs.page.0)?,
        ));
    }
    Ok(out)
}

pub(super) fn set_count(w: &mut WritePager, refs: &mut Ptr, page: u64, count: u32) -> Result<()> {
    let mut none = Sharing::system(TreeKind::Refs);
    *refs = if count <= 1 {
        super::remove(w, &mut none, *refs, &count_key(page))?.0
    } else {
        super::insert(w, &mut none, *refs, &count_key(page), &encode_count(count))?.0
    };
    Ok(())
}

/// Adds one reference to `page`.
pub fn incref(w: &mut WritePager, refs: &mut Ptr, page: u64) -> Result<()> {
    incref_all(w, refs, &mut [page])
}

/// Makes the node behind `ptr` writable for a tree in context `sh`: in place when dirty, a
/// copy that frees the original when unshared, a copy that shares its children when shared.
pub fn cow(w: &mut WritePager, sh: &mut Sharing<'_>, ptr: Ptr) -> Result<Ptr> {
    let kind = sh.kind;
    let Some(refs) = sh.counts_for(w, ptr) else {
        return w.make_dirty(ptr);
    };
    let count = refcount(w, *refs, ptr.page.0)?;
    if count <= 1 {
        return w.make_dirty(ptr);
    }
    let copy = w.copy_node(ptr)?;
    let kids = targets(&node_at(w, copy, None)?, kind)?;
    let mut pages: Vec<u64> = kids.iter().map(|child| child.ptr.page.0).collect();
    incref_all(w, refs, &mut pages)?;
    set_count(w, refs, ptr.page.0, count - 1).map(|()| copy)
}

/// Adds one reference to each of `pages` (the children of a copied node). In page order,
/// so that after the first, each count goes straight into the refcount leaf the previous one
/// went to (a finger insert): the children of a node mostly lie close together.
fn incref_all(w: &mut WritePager, refs: &mut Ptr, pages: &mut [u64]) -> Result<()> {
    pages.sort_unstable();
    let mut finger = None;
    let mut none = Sharing::system(TreeKind::Refs);
    for &page in pages.iter() {
        let key = count_key(page);
        let count = match super::get_with_finger(w, *refs, &key, &finger)? {
            Some(bytes) => decode_count(bytes, refs.page.0)?,
            None => 1,
        };
        let (key, value) = (count_key(page), encode_count(count + 1));
        *refs = super::insert_with_finger(w, &mut none, *refs, &key, &value, &mut finger)?.0;
    }
    Ok(())
}

/// Drops this tree's reference to an overflow run: frees it unless another parent shares it.
pub fn release_overflow(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    ptr: Ptr,
    len: u64,
) -> Result<()> {
    let Some(refs) = sh.counts_for(w, ptr) else {
        return w.free_overflow(ptr, len);
    };
    let count = refcount(w, *refs, ptr.page.0)?;
    if count > 1 {
        return set_count(w, refs, ptr.page.0, count - 1);
    }
    w.free_overflow(ptr, len)
}
