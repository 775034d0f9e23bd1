//! The copy-on-write B+tree: lookups, inserts with splits, removes with merges, cursors, the
//! commit-time sealing pass and the invariant check.
//!
//! Invariants:
//! - Keys in a node are strictly increasing; every key under branch entry i lies in
//!   `[key_i, key_{i+1})` (entry 0's key is empty and means −∞).
//! - All leaves are at level 0 and a child's level is its parent's minus one, so a descent
//!   takes at most [`MAX_DEPTH`] steps even in a corrupted file.
//! - A write copies the root-to-leaf path once per transaction (pages already dirty are
//!   edited in place) and frees the copied pages; a leaf spill also copies the sibling
//!   leaves it writes to (at most one each side), through the same [`share::cow`], under
//!   their dirty parent.
//! - After a remove no non-root node is left under a quarter full unless its sibling could
//!   not share entries with it.
//! - Every walk that follows pointers below one path is a visitor over [`traverse`], which
//!   holds the bounds of such walks; [`traverse::targets`] alone says what a node points at.

mod check;
mod cursor;
pub mod diff;
pub mod release;
pub mod share;
pub mod traverse;
mod write;

pub use check::check_node;
pub use cursor::{Bound, Cursor};
pub use share::Sharing;
pub use traverse::TreeKind;
pub(crate) use write::shortest_separator;
pub use write::{check_sizes, insert, insert_with_finger, remove, seal};

use crate::format::node::{LeafValue, NodeView};
use crate::format::Ptr;
use crate::pager::PageSource;
use crate::{Error, Result};

/// The deepest tree a descent accepts.
pub const MAX_DEPTH: usize = 32;

/// Reads the node behind `ptr` and checks that it sits at `level` (when known).
#[inline]
pub fn node_at<S: PageSource + ?Sized>(
    src: &S,
    ptr: Ptr,
    level: Option<u8>,
) -> Result<NodeView<'_>> {
    let page = src.node(ptr)?;
    let view = NodeView::new(page, ptr.page.0)?;
    if let Some(level) = level {
        if view.level() != level {
            return Err(Error::corrupted(
                ptr.page.0,
                format!(
                    "node at level {} where {} was expected",
                    view.level(),
                    level
                ),
            ));
        }
    }
    if view.level() as usize >= MAX_DEPTH {
        return Err(Error::corrupted(ptr.page.0, "tree deeper than the limit"));
    }
    Ok(view)
}

/// The level of the root (its height), or None for an empty tree.
pub fn root_level<S: PageSource + ?Sized>(src: &S, root: Ptr) -> Result<Option<u8>> {
    if root.is_null() {
        return Ok(None);
    }
    Ok(Some(node_at(src, root, None)?.level()))
}

/// Finds the leaf that would hold `key`.
pub fn find_leaf<'s, S: PageSource + ?Sized>(
    src: &'s S,
    root: Ptr,
    key: &[u8],
) -> Result<NodeView<'s>> {
    descend(src, root, key, |_| {}).map(|(_, leaf)| leaf)
}

/// The descent to the leaf whose range holds `key`, calling `taken` with each branch and the
/// child index chosen there, root first; returns the leaf and its pointer. Bounded: `node_at`
/// checks that each level is one below its parent.
#[inline]
fn descend<'s, S: PageSource + ?Sized>(
    src: &'s S,
    root: Ptr,
    key: &[u8],
    mut taken: impl FnMut(Step),
) -> Result<(Ptr, NodeView<'s>)> {
    let mut ptr = root;
    let mut view = node_at(src, root, None)?;
    while !view.is_leaf() {
        let idx = view.child_index(key)?;
        taken(Step { ptr, idx });
        ptr = view.child(idx)?;
        view = node_at(src, ptr, Some(view.level() - 1))?;
    }
    Ok((ptr, view))
}

/// One step of a root-to-leaf path: a node and the index of the child followed (0 at a leaf).
#[derive(Clone, Copy, Debug)]
pub struct Step {
    /// The node.
    pub ptr: Ptr,
    /// The child followed.
    pub idx: usize,
}

/// Where a key sits: the node and the child index taken at each branch, root first, then the
/// leaf (with index 0), and the key's slot in that leaf.
pub struct Located {
    /// One step per level, root first; the last is the leaf.
    pub steps: Vec<Step>,
    /// The key's slot in the leaf.
    pub slot: usize,
}

/// The path to `key`, when `key` is in the tree: a writer then copies exactly that path
/// without reading or searching it again.
pub fn locate<S: PageSource + ?Sized>(src: &S, root: Ptr, key: &[u8]) -> Result<Option<Located>> {
    if root.is_null() {
        return Ok(None);
    }
    let mut steps = Vec::with_capacity(8);
    let (leaf, view) = descend(src, root, key, |step| steps.push(step))?;
    steps.push(Step { ptr: leaf, idx: 0 });
    Ok(view.search(key)?.ok().map(|slot| Located { steps, slot }))
}

/// Looks `key` up; the value as stored.
pub fn get_raw<'s, S: PageSource + ?Sized>(
    src: &'s S,
    root: Ptr,
    key: &[u8],
) -> Result<Option<LeafValue<'s>>> {
    if root.is_null() {
        return Ok(None);
    }
    let leaf = find_leaf(src, root, key)?;
    match leaf.search(key)? {
        Ok(i) => Ok(Some(leaf.value(i)?)),
        Err(_) => Ok(None),
    }
}

/// Resolves a stored value to its bytes.
pub fn value_bytes<'s, S: PageSource + ?Sized>(
    src: &'s S,
    value: LeafValue<'s>,
) -> Result<&'s [u8]> {
    match value {
        LeafValue::Inline(bytes) => Ok(bytes),
        LeafValue::Overflow { ptr, len } => src.overflow(ptr, len),
    }
}

/// Looks `key` up and returns the value's bytes.
pub fn get<'s, S: PageSource + ?Sized>(
    src: &'s S,
    root: Ptr,
    key: &[u8],
) -> Result<Option<&'s [u8]>> {
    match get_raw(src, root, key)? {
        Some(value) => Ok(Some(value_bytes(src, value)?)),
        None => Ok(None),
    }
}
