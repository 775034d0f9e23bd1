//! The full check of one committed tree: checksums, key order, separator bounds, levels,
//! overflow runs. Every page it reaches is reported for the file-wide page accounting.
//!
//! Invariants: the walk is bounded by [`super::MAX_DEPTH`] levels and by each node's count;
//! a page reached twice is reported twice, and the accounting catches it.

use super::node_at;
use crate::format::node::{LeafValue, NodeView};
use crate::format::Ptr;
use crate::pager::{overflow_pages, PageSource, ReadPages};
use crate::{Error, Result};

/// What a tree check found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TreeStats {
    /// Entries in the leaves.
    pub entries: u64,
    /// Levels (0 for an empty tree).
    pub depth: u8,
    /// Node pages.
    pub node_pages: u64,
    /// Overflow pages.
    pub overflow_pages: u64,
}

/// Checks the tree under `root`, calling `on_page(first, count)` for every node page and
/// overflow run.
pub fn check_tree(
    src: &ReadPages,
    root: Ptr,
    on_page: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<TreeStats> {
    let mut stats = TreeStats::default();
    if root.is_null() {
        return Ok(stats);
    }
    let level = node_at(src, root, None)?.level();
    stats.depth = level + 1;
    walk(src, root, Some(level), None, None, &mut stats, on_page)?;
    Ok(stats)
}

fn walk(
    src: &ReadPages,
    ptr: Ptr,
    level: Option<u8>,
    low: Option<&[u8]>,
    high: Option<&[u8]>,
    stats: &mut TreeStats,
    on_page: &mut dyn FnMut(u64, u64) -> Result<()>,
) -> Result<()> {
    src.tagged(
        ptr,
        &[crate::format::tag::LEAF, crate::format::tag::BRANCH],
        true,
    )?;
    crate::format::node::validate(src.node(ptr)?, ptr.page.0)?;
    let view = node_at(src, ptr, level)?;
    on_page(ptr.page.0, 1)?;
    stats.node_pages += 1;
    let bad = |what: &str| Err(Error::corrupted(ptr.page.0, what.to_string()));
    let mut prev: Option<&[u8]> = None;
    for i in 0..view.count() {
        let key = view.key(i)?;
        if view.is_leaf() || i > 0 {
            if prev.is_some_and(|p| p >= key) {
                return bad("keys out of order");
            }
            if low.is_some_and(|l| key < l) || high.is_some_and(|h| key >= h) {
                return bad("key outside the bounds its parent gives");
            }
            prev = Some(key);
        }
    }
    if view.is_leaf() {
        if view.count() == 0 {
            return bad("empty leaf in a tree");
        }
        stats.entries += view.count() as u64;
        for i in 0..view.count() {
            if let LeafValue::Overflow { ptr: run, len } = view.value(i)? {
                check_overflow(src, run, len, view)?;
                let n = overflow_pages(len, src.page_size());
                on_page(run.page.0, n)?;
                stats.overflow_pages += n;
            }
        }
        return Ok(());
    }
    for i in 0..view.count() {
        let child_low = if i == 0 { low } else { Some(view.key(i)?) };
        let child_high = if i + 1 < view.count() {
            Some(view.key(i + 1)?)
        } else {
            high
        };
        walk(
            src,
            view.child(i)?,
            Some(view.level() - 1),
            child_low,
            child_high,
            stats,
            on_page,
        )?;
    }
    Ok(())
}

fn check_overflow(src: &ReadPages, run: Ptr, len: u64, leaf: NodeView<'_>) -> Result<()> {
    if run.txn.0 > crate::btree::header_txn(src.raw_page(leaf.id())?) {
        return Err(Error::corrupted(
            leaf.id(),
            "overflow run born after its leaf",
        ));
    }
    src.overflow_checked(run, len, true)?;
    Ok(())
}
