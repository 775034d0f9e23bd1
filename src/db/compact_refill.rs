//! Refilling sparse leaves in a compaction: the leaves under one lowest branch, left thin by
//! removals, are rewritten into as few full leaves as their entries need, and the branch is
//! rewritten over them. Moving pages alone would keep a file that removals thinned at the
//! size of its pages, not of its entries.
//!
//! Invariants:
//! - Only leaves with one parent are refilled: none may have a stored reference count, so
//!   the branch is their only parent. The branch itself may be shared: it is rewritten once,
//!   and every parent points at the new copy (the mover's memo), so every root that reached
//!   the old leaves reaches the same entries in the new ones.
//! - Refilled leaves are born in the branch's birth, as the branch is: a child is never born
//!   after its parent, so each root's `shared_until` (the generation shortcut) stays true of
//!   them; the branch keeps its birth.
//! - Entries keep their order and bytes; a value in an overflow run keeps its run, which
//!   moves off the tail like any other (same memo, same checksum).
//! - Every leaf read is verified against its parent's checksum before its entries are used.
//! - Work is bounded by the branch's children: one pass to decide, one to rewrite.

use super::compact::Mover;
use crate::btree::shortest_separator;
use crate::btree::traverse::Edge;
use crate::format::copy::NodeFill;
use crate::format::node::{self, LeafValue, NodeView};
use crate::format::{checksum, tag, PageId, Ptr, TxnId, HEADER_BYTES};
use crate::pager::PageSource;
use crate::{Error, Result};

/// Refill when the entries fit in at most this share of the leaves they take now.
const REFILL_BELOW: (usize, usize) = (3, 4);

impl Mover<'_, '_> {
    /// Rewrites the leaves under the lowest branch `view` (behind `edge`) full, and the
    /// branch over them; None, writing nothing, when they are shared, not sparse enough, or
    /// their separators would not fit in one branch.
    pub(super) fn refill_leaves(
        &mut self,
        edge: &Edge<'_>,
        view: &NodeView<'_>,
    ) -> Result<Option<Ptr>> {
        let Some(leaves) = self.sparse_leaves(view)? else {
            return Ok(None);
        };
        if checksum(view.page_bytes()) != edge.ptr.crc {
            return Err(Error::corrupted(edge.ptr.page.0, "checksum mismatch"));
        }
        let birth = edge.ptr.txn.0;
        let fills = self.fill_leaves(&leaves, birth)?;
        // Separators as a split makes them: the shortest key between two neighbours.
        let keys: Vec<Vec<u8>> = fills
            .windows(2)
            .map(|pair| shortest_separator(&pair[0].last, &pair[1].first))
            .collect();
        let children = vec![Ptr::default(); fills.len()];
        if branch_over(self.src.page_size(), birth, &keys, &children).is_none() {
            return Ok(None);
        }
        let mut children = Vec::with_capacity(fills.len());
        for leaf in fills {
            children.push(self.write_fill(leaf.fill, birth)?);
        }
        for (ptr, _) in &leaves {
            self.pager.free_node(*ptr)?;
        }
        let branch = branch_over(self.src.page_size(), birth, &keys, &children)
            .expect("the same keys fitted above");
        let new = self.write_fill(branch, birth)?;
        self.pager.free_node(edge.ptr)?;
        Ok(Some(new))
    }

    /// The entries of `leaves`, in order, in full leaves born in `birth` (not yet written);
    /// their overflow runs move off the tail like any other.
    fn fill_leaves(&mut self, leaves: &[(Ptr, NodeView<'_>)], birth: u64) -> Result<Vec<Filled>> {
        let page_size = self.src.page_size();
        let mut done = Vec::new();
        let mut open = Filled::new(page_size, birth);
        // Bounded: the branch's children, and each leaf's entries.
        for (leaf_ptr, leaf) in leaves {
            for i in 0..leaf.count() {
                let (key, value) = leaf.key_value(i)?;
                let value = match value {
                    LeafValue::Inline(bytes) => LeafValue::Inline(bytes),
                    LeafValue::Overflow { ptr, len } => LeafValue::Overflow {
                        ptr: self.move_run(ptr, len)?,
                        len,
                    },
                };
                if !open.push(key, value) {
                    done.push(std::mem::replace(&mut open, Filled::new(page_size, birth)));
                    if !open.push(key, value) {
                        return Err(Error::corrupted(
                            leaf_ptr.page.0,
                            "entry larger than a node",
                        ));
                    }
                }
            }
        }
        if open.fill.count() > 0 || done.is_empty() {
            done.push(open);
        }
        Ok(done)
    }

    /// The leaves of the lowest branch `view`, verified, when none is shared and their entries
    /// would fit in at most three quarters of them (and two fewer at least).
    fn sparse_leaves<'v>(&self, view: &NodeView<'v>) -> Result<Option<Vec<(Ptr, NodeView<'v>)>>>
    where
        Self: 'v,
    {
        let capacity = self.src.page_size() - HEADER_BYTES;
        let mut leaves = Vec::with_capacity(view.count());
        let mut used = 0;
        for slot in 0..view.count() {
            let ptr = view.child(slot)?;
            if self.shared.contains_key(&ptr.page.0) || self.memo.contains_key(&ptr.page.0) {
                return Ok(None);
            }
            let page = self.src.tagged(ptr, &[tag::LEAF], true)?;
            let leaf = NodeView::new(page, ptr.page.0)?;
            used += leaf.used_bytes();
            leaves.push((ptr, leaf));
        }
        // A full leaf wastes a little at its end (entries are not split): count 15/16.
        let needed = (used * 16).div_ceil(capacity * 15).max(1);
        let (num, den) = REFILL_BELOW;
        let sparse = needed * den <= leaves.len() * num && needed + 2 <= leaves.len();
        Ok(sparse.then_some(leaves))
    }

    /// Writes a filled node to a page below the cut-off, born in `birth`.
    fn write_fill(&mut self, fill: NodeFill, birth: u64) -> Result<Ptr> {
        let id = self.pager.alloc_moved(1)?;
        let page = fill.finish(id).into_boxed_slice();
        node::validate(&page, id)?;
        let crc = checksum(&page);
        self.pager.put_moved(id, page);
        self.moved += 1;
        Ok(Ptr {
            page: PageId(id),
            txn: TxnId(birth),
            crc,
        })
    }
}

/// A leaf being filled, with its least and greatest key (for the separators).
struct Filled {
    fill: NodeFill,
    first: Vec<u8>,
    last: Vec<u8>,
}

impl Filled {
    fn new(page_size: usize, birth: u64) -> Filled {
        Filled {
            fill: NodeFill::new(page_size, 0, birth),
            first: Vec::new(),
            last: Vec::new(),
        }
    }

    /// Appends an entry; false, changing nothing, when it does not fit.
    fn push(&mut self, key: &[u8], value: LeafValue<'_>) -> bool {
        if !self.fill.push_leaf_entry(key, value) {
            return false;
        }
        if self.fill.count() == 1 {
            self.first = key.to_vec();
        }
        self.last = key.to_vec();
        true
    }
}

/// The lowest branch over `children`, separated by `keys` (one fewer: the first entry's key is
/// empty), born in `birth`; None when they do not fit in one node.
fn branch_over(
    page_size: usize,
    birth: u64,
    keys: &[Vec<u8>],
    children: &[Ptr],
) -> Option<NodeFill> {
    let mut branch = NodeFill::new(page_size, 1, birth);
    for (i, child) in children.iter().enumerate() {
        let key: &[u8] = if i == 0 { &[] } else { &keys[i - 1] };
        if !branch.push_branch(key, *child) {
            return None;
        }
    }
    Some(branch)
}
