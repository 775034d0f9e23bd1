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

pub mod build;
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
#[inline(always)]
pub fn node_at<S: PageSource + ?Sized>(
    src: &S,
    ptr: Ptr,
    level: Option<u8>,
) -> Result<NodeView<'_>> {
    let page = src.node(ptr)?;
    let view = NodeView::new(page, ptr.page.0)?;
    // A search over the slots reads one of them a step, each step depending on the last:
    // loading the whole array at once turns those misses into one wait.
    crate::io::prefetch(view.slot_bytes());
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
#[derive(Clone, Copy, Debug, Default)]
pub struct Step {
    /// The node.
    pub ptr: Ptr,
    /// The child followed.
    pub idx: usize,
}

/// Steps a [`Path`] keeps inline: a tree of a million entries is four levels deep.
const INLINE_STEPS: usize = 8;

/// A root-to-leaf path, root first. Its steps are kept inline (no allocation per descent)
/// until a path deeper than `INLINE_STEPS`, which moves them to the heap.
#[derive(Clone, Default)]
pub struct Path {
    inline: [Step; INLINE_STEPS],
    len: usize,
    /// Every step, once the path is deeper than the inline steps.
    deep: Vec<Step>,
}

impl Path {
    /// Empties the path (for a new descent).
    pub fn clear(&mut self) {
        self.len = 0;
        self.deep.clear();
    }

    /// Appends a step (one level down).
    pub fn push(&mut self, step: Step) {
        if self.len < INLINE_STEPS {
            self.inline[self.len] = step;
        } else {
            if self.deep.is_empty() {
                self.deep.extend_from_slice(&self.inline);
            }
            self.deep.push(step);
        }
        self.len += 1;
    }
}

impl std::ops::Deref for Path {
    type Target = [Step];

    fn deref(&self) -> &[Step] {
        if self.len <= INLINE_STEPS {
            &self.inline[..self.len]
        } else {
            &self.deep
        }
    }
}

impl std::ops::DerefMut for Path {
    fn deref_mut(&mut self) -> &mut [Step] {
        if self.len <= INLINE_STEPS {
            &mut self.inline[..self.len]
        } else {
            &mut self.deep
        }
    }
}

/// The path to `key`, when `key` is in the tree: fills `steps` (cleared first) with the node
/// and the child index taken at each branch, root first, then the leaf (with index 0), and
/// returns the key's slot in the leaf. A writer then copies exactly that path without
/// reading or searching it again.
pub fn locate<S: PageSource + ?Sized>(
    src: &S,
    root: Ptr,
    key: &[u8],
    steps: &mut Path,
) -> Result<Option<usize>> {
    steps.clear();
    if root.is_null() {
        return Ok(None);
    }
    let (leaf, view) = descend(src, root, key, |step| steps.push(step))?;
    steps.push(Step { ptr: leaf, idx: 0 });
    Ok(view.search(key)?.ok())
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

#[cfg(test)]
mod tests {
    use super::{Path, Step, INLINE_STEPS};
    use crate::format::{PageId, Ptr};

    #[test]
    fn a_path_keeps_its_steps_past_the_inline_ones() {
        let step = |i: usize| Step {
            ptr: Ptr {
                page: PageId(i as u64),
                ..Ptr::default()
            },
            idx: i,
        };
        let mut path = Path::default();
        for round in 0..2 {
            for i in 0..3 * INLINE_STEPS {
                path.push(step(i));
                assert_eq!(path.len(), i + 1, "round {round}");
            }
            path[1].idx = 99;
            let idx: Vec<usize> = path.iter().map(|s| s.idx).collect();
            let mut want: Vec<usize> = (0..3 * INLINE_STEPS).collect();
            want[1] = 99;
            assert_eq!(idx, want);
            assert_eq!(
                path.last().map(|s| s.ptr.page.0),
                Some(3 * INLINE_STEPS as u64 - 1)
            );
            path.clear();
            assert!(path.is_empty());
        }
    }
}
