//! Refilling a table tree in a backup: its entries, streamed in key order, into full nodes,
//! so that a table thinned by removals is copied at the size of its live entries.
//!
//! Invariants:
//! - A table is refilled only when no node below its root has a stored reference count of
//!   two or more in the source: then every such node has one parent, inside the table, so the
//!   whole tree is reachable through its root alone. The root itself may be shared: it is
//!   rebuilt once and every parent points at the one copy (the copier's memo).
//! - Overflow runs are not rebuilt: each is copied through the copier's memo, exactly as a
//!   page-by-page copy does, so a run shared with another table stays shared.
//! - Every refilled node is born in the source root's birth. Nothing below a root is born
//!   after it, and a refilled node can only be shared through its root, so each named root's
//!   `shared_until` (the generation shortcut) stays true of it.
//! - Nodes are verified against their parents' checksums before their entries are used, as
//!   every page a backup copies; memory holds one open node per level, never the entries.

use super::backup::Copier;
use crate::btree::build::TreeBuilder;
use crate::btree::traverse::{traverse, Child, Edge, Enter, Target, TreeKind, Visitor};
use crate::format::node::{LeafValue, NodeView};
use crate::format::Ptr;
use crate::pager::{IdMap, PageSource, ReadPages};
use crate::{Error, Result};

/// Copies the table whose root `edge` points at (met for the first time) refilled, and
/// returns its new root; None, writing nothing, when a node below the root is shared.
pub(super) fn refill_table(copier: &mut Copier<'_>, edge: &Edge<'_>) -> Result<Option<Ptr>> {
    let mut probe = Probe {
        shared: &copier.shared,
        refillable: true,
    };
    traverse(copier.src, edge.ptr, TreeKind::Table, &mut probe)?;
    if !probe.refillable {
        return Ok(None);
    }
    let page_size = copier.src.page_size();
    let mut refill = Refill {
        tree: TreeBuilder::new(page_size, edge.ptr.txn.0),
        copier,
    };
    traverse(refill.copier.src, edge.ptr, TreeKind::Table, &mut refill)?;
    let Refill { tree, copier } = refill;
    tree.finish(copier.out).map(Some)
}

/// Whether a table may be refilled: reads only its branches, and checks every node pointer
/// below the root against the shared set.
struct Probe<'m> {
    shared: &'m IdMap<u32>,
    refillable: bool,
}

impl<'s> Visitor<'s, ReadPages> for Probe<'_> {
    type Out = ();

    fn enter(&mut self, edge: &Edge<'s>) -> Result<Enter<()>> {
        // Runs are not checked: a shared run stays shared through the memo.
        let node = matches!(edge.target, Target::Node(_));
        if node && edge.depth > 0 && self.shared.contains_key(&edge.ptr.page.0) {
            self.refillable = false;
        }
        // Leaves need no reading (their pointers are runs, copied through the memo), and
        // once the answer is no, nothing more is read.
        let leaf = edge.level == Some(0) || matches!(edge.target, Target::Overflow(_));
        Ok(if leaf || !self.refillable {
            Enter::Skip(())
        } else {
            Enter::Descend
        })
    }

    fn overflow(&mut self, _: &Edge<'s>, _: u64) -> Result<()> {
        Ok(())
    }

    fn leave(&mut self, _: &Edge<'s>, _: &NodeView<'s>, _: Vec<(Child, ())>) -> Result<()> {
        Ok(())
    }
}

/// The walk that refills: leaves are read in key order and their entries pushed into the new
/// tree; overflow runs are copied by the copier itself.
struct Refill<'c, 'a> {
    copier: &'c mut Copier<'a>,
    tree: TreeBuilder,
}

impl<'a> Visitor<'a, ReadPages> for Refill<'_, 'a> {
    /// The copy of an overflow run; nothing (null) for a node.
    type Out = Ptr;

    fn enter(&mut self, edge: &Edge<'a>) -> Result<Enter<Ptr>> {
        match edge.target {
            Target::Overflow(_) => self.copier.enter(edge),
            Target::Node(_) => Ok(Enter::Descend),
        }
    }

    fn read(&mut self, src: &'a ReadPages, edge: &Edge<'a>) -> Result<NodeView<'a>> {
        self.copier.read(src, edge)
    }

    fn overflow(&mut self, edge: &Edge<'a>, len: u64) -> Result<Ptr> {
        self.copier.overflow(edge, len)
    }

    /// A leaf's entries go to the new tree, each overflow value pointing at its run's copy.
    fn leave(&mut self, _: &Edge<'a>, view: &NodeView<'a>, kids: Vec<(Child, Ptr)>) -> Result<Ptr> {
        if !view.is_leaf() {
            return Ok(Ptr::default());
        }
        let mut runs = kids.into_iter().map(|(_, ptr)| ptr);
        // Bounded: one step per entry of the leaf.
        for i in 0..view.count() {
            let (key, value) = view.key_value(i)?;
            let value = match value {
                LeafValue::Inline(bytes) => LeafValue::Inline(bytes),
                LeafValue::Overflow { len, .. } => LeafValue::Overflow {
                    ptr: runs
                        .next()
                        .ok_or_else(|| Error::corrupted(view.id(), "overflow value not copied"))?,
                    len,
                },
            };
            self.tree.push(self.copier.out, key, value)?;
        }
        Ok(Ptr::default())
    }
}
