//! Trees built bottom-up from entries in increasing key order, each node greedily full: the
//! refcount tree when a commit changes many counts, and the trees a backup writes.
//!
//! Invariants:
//! - [`TreeBuilder`] holds one open node per level, so memory grows with the height, never
//!   with the entries; every node is full except the last of each level.
//! - Keys are pushed strictly increasing: the caller's duty (its entries come from a sorted
//!   map or from a walk in key order).
//! - Every node of one tree is born in one txn; the sink gives it its page id.
//! - The height stops at [`MAX_DEPTH`].

use super::MAX_DEPTH;
use crate::format::copy::NodeFill;
use crate::format::node::LeafValue;
use crate::format::Ptr;
use crate::pager::WritePager;
use crate::{Error, Result};

/// Where a builder's finished nodes go: a page id is chosen, the node written, its pointer
/// returned (born where the node says, [`NodeFill::birth`]).
pub trait NodeSink {
    /// Places the finished node `fill` on a page of its own.
    fn put_node(&mut self, fill: NodeFill) -> Result<Ptr>;
}

/// `new_filled` asserts that the node is born in the write txn.
impl NodeSink for WritePager {
    fn put_node(&mut self, fill: NodeFill) -> Result<Ptr> {
        self.new_filled(fill)
    }
}

/// A tree built bottom-up from entries pushed in strictly increasing key order: each level
/// keeps one open node, and a node that is full is appended and becomes an entry of the level
/// above (its first key, its pointer). Every node is born in one txn.
pub struct TreeBuilder {
    page_size: usize,
    txn: u64,
    /// The open node of each level, leaves first.
    levels: Vec<Open>,
}

/// The open node of one level.
struct Open {
    fill: NodeFill,
    /// The least key under it: what the level above files it under.
    first: Vec<u8>,
    /// Whether a node of this level was appended already (then this one is not the root).
    closed_any: bool,
}

impl TreeBuilder {
    /// An empty tree whose nodes will be born in `txn`.
    pub fn new(page_size: usize, txn: u64) -> TreeBuilder {
        TreeBuilder {
            page_size,
            txn,
            levels: vec![Open {
                fill: NodeFill::new(page_size, 0, txn),
                first: Vec::new(),
                closed_any: false,
            }],
        }
    }

    /// Appends one leaf entry; its key must be above every key pushed before.
    pub fn push(
        &mut self,
        out: &mut impl NodeSink,
        key: &[u8],
        value: LeafValue<'_>,
    ) -> Result<()> {
        if !self.levels[0].fill.push_leaf_entry(key, value) {
            let (first, ptr) = self.close(out, 0)?;
            self.add_child(out, 1, first, ptr)?;
            if !self.levels[0].fill.push_leaf_entry(key, value) {
                return Err(Error::corrupted(
                    0,
                    "a leaf entry larger than a node allows",
                ));
            }
        }
        if self.levels[0].fill.count() == 1 {
            self.levels[0].first = key.to_vec();
        }
        Ok(())
    }

    /// Appends the open node of level `h` and opens an empty one there; returns the closed
    /// node's least key and pointer.
    fn close(&mut self, out: &mut impl NodeSink, h: usize) -> Result<(Vec<u8>, Ptr)> {
        let open = &mut self.levels[h];
        let empty = NodeFill::new(self.page_size, h as u8, self.txn);
        let fill = std::mem::replace(&mut open.fill, empty);
        open.closed_any = true;
        let first = std::mem::take(&mut open.first);
        Ok((first, out.put_node(fill)?))
    }

    /// Files `child`, whose least key is `key`, in the open node of level `h` (opening the
    /// level if it is new), closing that node into the level above when it is full.
    fn add_child(
        &mut self,
        out: &mut impl NodeSink,
        h: usize,
        key: Vec<u8>,
        child: Ptr,
    ) -> Result<()> {
        if h == self.levels.len() {
            if h >= MAX_DEPTH {
                return Err(Error::corrupted(child.page.0, "tree deeper than the limit"));
            }
            self.levels.push(Open {
                fill: NodeFill::new(self.page_size, h as u8, self.txn),
                first: Vec::new(),
                closed_any: false,
            });
        }
        // A node's first entry has the empty key (−∞); its least key moves up instead.
        let entry_key: &[u8] = if self.levels[h].fill.count() == 0 {
            &[]
        } else {
            &key
        };
        if !self.levels[h].fill.push_branch(entry_key, child) {
            let (first, ptr) = self.close(out, h)?;
            // Bounded: one level up per call, and the levels stop at MAX_DEPTH (above).
            self.add_child(out, h + 1, first, ptr)?;
            if !self.levels[h].fill.push_branch(&[], child) {
                return Err(Error::corrupted(
                    child.page.0,
                    "a branch entry larger than a node allows",
                ));
            }
        }
        if self.levels[h].fill.count() == 1 {
            self.levels[h].first = key;
        }
        Ok(())
    }

    /// Appends every open node, lowest level first, and returns the root: the open node of
    /// the top level, which no other node of its level precedes. With no entry pushed, the
    /// root is one empty leaf.
    pub fn finish(mut self, out: &mut impl NodeSink) -> Result<Ptr> {
        let mut h = 0;
        // Bounded: one step per level, and the levels stop at MAX_DEPTH (`add_child`).
        loop {
            if h + 1 == self.levels.len() && !self.levels[h].closed_any {
                let top = self.levels.pop().map(|open| open.fill);
                let top = top.unwrap_or_else(|| NodeFill::new(self.page_size, 0, self.txn));
                return out.put_node(top);
            }
            let (first, ptr) = self.close(out, h)?;
            self.add_child(out, h + 1, first, ptr)?;
            h += 1;
        }
    }
}
