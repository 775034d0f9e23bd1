//! Checks of one node as a full walk reaches it: checksum, well-formedness, level, key order
//! and the bounds its parent gives.
//!
//! Invariants: everything here is bounded by the node's own count; the walk that calls it
//! bounds the depth by the level, which must fall by one per step. The keys of a node are
//! checked to ascend strictly, so only its first and last are compared with the bounds.

use super::node_at;
use crate::format::node::{self, key_head, NodeView};
use crate::format::{tag, Ptr};
use crate::pager::{PageSource, ReadPages};
use crate::{Error, Result};
use std::cmp::Ordering;

/// Verifies the node behind `ptr` and returns its view. `level` is the level it must sit at
/// (None for a root); every key must lie in `[low, high)`.
pub fn check_node<'s>(
    src: &'s ReadPages,
    ptr: Ptr,
    level: Option<u8>,
    low: Option<&[u8]>,
    high: Option<&[u8]>,
) -> Result<NodeView<'s>> {
    src.tagged(ptr, &[tag::LEAF, tag::BRANCH], true)?;
    node::validate(src.node(ptr)?, ptr.page.0)?;
    let view = node_at(src, ptr, level)?;
    let bad = |what: &str| Err(Error::corrupted(ptr.page.0, what.to_string()));
    if view.is_leaf() && view.count() == 0 {
        return bad("empty leaf in a tree");
    }
    // Keys are ordered by the heads in their slots first (`validate` checked each against its
    // key), so most compares never read the keys: one integer compare instead of a memcmp.
    let (low, high) = (
        low.map(|l| (l, key_head(l))),
        high.map(|h| (h, key_head(h))),
    );
    let first = usize::from(!view.is_leaf());
    for i in first + 1..view.count() {
        if view.order_between(i - 1, i)?.is_ge() {
            return bad("keys out of order");
        }
    }
    // The keys ascend, so they all lie within the bounds when the first and the last do.
    if let Some(last) = view.count().checked_sub(1).filter(|&last| last >= first) {
        let below = |(l, head)| view.order_at(first, l, head).map(Ordering::is_lt);
        let above = |(h, head)| view.order_at(last, h, head).map(Ordering::is_ge);
        if low.map(below).transpose()? == Some(true) || high.map(above).transpose()? == Some(true) {
            return bad("key outside the bounds its parent gives");
        }
    }
    Ok(view)
}

/// A `[low, high)` key range; None is unbounded.
pub type KeyBounds<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// The key bounds of child `i` of branch `view`, within the branch's own `[low, high)`.
pub fn child_bounds<'a>(
    view: &NodeView<'a>,
    i: usize,
    low: Option<&'a [u8]>,
    high: Option<&'a [u8]>,
) -> Result<KeyBounds<'a>> {
    let child_low = if i == 0 { low } else { Some(view.key(i)?) };
    let child_high = if i + 1 < view.count() {
        Some(view.key(i + 1)?)
    } else {
        high
    };
    Ok((child_low, child_high))
}
