//! Checks of one node as a full walk reaches it: checksum, well-formedness, level, key order
//! and the bounds its parent gives.
//!
//! Invariants: everything here is bounded by the node's own count; the walk that calls it
//! bounds the depth by the level, which must fall by one per step.

use super::node_at;
use crate::format::node::{self, NodeView};
use crate::format::{tag, Ptr};
use crate::pager::{PageSource, ReadPages};
use crate::{Error, Result};

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
