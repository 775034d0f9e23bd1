//! The one traversal of trees, and the one answer to "what does this node point at".
//!
//! Recovery, `check`, the snapshot and branch listings, and the copy-on-write of shared nodes
//! all follow pointers through [`targets`], and every walk that descends more than one node
//! is a [`Visitor`] over [`traverse`]. A visitor decides, per pointer, whether to descend
//! ([`Visitor::enter`]: a visited set, a birth txn) and how strictly to read a node
//! ([`Visitor::read`]); it folds the results of a node's children into the node's own
//! ([`Visitor::leave`], post-order), which is what a count, an entry total or a children-first
//! copy that rewrites child pointers needs.
//!
//! Invariants (the bounds of every walk over trees, kept here and nowhere else):
//! - A node's level is its parent's minus one, and a root's level is below [`MAX_DEPTH`];
//!   `traverse` checks both for every node it reads, whatever the visitor's `read` does.
//! - A pointer out of a leaf starts a tree of a lower kind (roots or release queue → catalog
//!   → table → overflow run), so a path crosses at most three trees: `traverse` refuses a
//!   node deeper than [`MAX_PATH`], so a cycle in a damaged file ends in `Error::Corrupted`.
//! - Page ids, tags, own ids and births are checked by the [`PageSource`] every node is read
//!   through; a node yields at most `count` pointers, each decoded with bounds checks.
//! - The release-queue drain (`share::ReleaseQueue::process`) is not a traversal: its stack
//!   is the queue on disk, bounded by its per-commit budget; it uses `targets` like the rest.
//! - Nor are the two lazy iterations over one tree's entries, the range cursor (`cursor.rs`)
//!   and the diff of two trees (`diff.rs`): they yield one entry at a time in key order, so
//!   they keep their own stacks, each bounded by `node_at`'s level check (a child one level
//!   below its parent) within a single tree.

use super::check::child_bounds;
use super::{node_at, MAX_DEPTH};
use crate::format::copy::LeafValues;
use crate::format::node::{LeafValue, NodeView};
use crate::format::records::{decode_release, Released, RootRecord, TableRecord};
use crate::format::Ptr;
use crate::pager::PageSource;
use crate::{Error, Result};

/// The deepest path a traversal follows, in nodes: three trees of at most [`MAX_DEPTH`] levels.
pub const MAX_PATH: usize = 3 * MAX_DEPTH;

/// The kinds of tree in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeKind {
    /// Names → root records (system).
    Roots,
    /// Page ids → reference counts (system).
    Refs,
    /// Sequence → pointers being released (system).
    Release,
    /// Table names → table records (one per snapshot or branch, shareable).
    Catalog,
    /// Keys → values (shareable).
    Table,
}

/// Where a pointer leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A node of a tree of this kind.
    Node(TreeKind),
    /// An overflow run of this many bytes.
    Overflow(u64),
}

impl Target {
    /// The same target as a release-queue entry names it: only shareable pages are released.
    pub fn released(self) -> Option<Released> {
        match self {
            Target::Node(TreeKind::Catalog) => Some(Released::CatalogNode),
            Target::Node(TreeKind::Table) => Some(Released::TableNode),
            Target::Overflow(len) => Some(Released::Overflow(len)),
            Target::Node(_) => None,
        }
    }
}

impl Target {
    /// Whether pages of this kind may have several parents (system trees never do).
    pub fn shareable(self) -> bool {
        !matches!(
            self,
            Target::Node(TreeKind::Roots | TreeKind::Refs | TreeKind::Release)
        )
    }

    /// Where the pointers in this node's leaf values are, for a node moved whole; None for
    /// the trees a move never reaches from a named root (refcounts, release queue) and for
    /// runs.
    pub fn leaf_values(self) -> Option<LeafValues> {
        match self {
            Target::Node(TreeKind::Table) => Some(LeafValues::Table),
            Target::Node(TreeKind::Catalog) => Some(LeafValues::TableRecords),
            Target::Node(TreeKind::Roots) => Some(LeafValues::RootRecords),
            _ => None,
        }
    }
}

impl From<Released> for Target {
    fn from(what: Released) -> Target {
        match what {
            Released::CatalogNode => Target::Node(TreeKind::Catalog),
            Released::TableNode => Target::Node(TreeKind::Table),
            Released::Overflow(len) => Target::Overflow(len),
        }
    }
}

/// One pointer out of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Child {
    /// The slot of the node that holds it (a node slot holds at most one pointer).
    pub slot: usize,
    /// The pointer (never null out of a leaf; a branch's may be, in a damaged file).
    pub ptr: Ptr,
    /// What it leads to.
    pub target: Target,
}

/// Every pointer out of `view`, a node of a `kind` tree, in slot order.
pub fn targets(view: &NodeView<'_>, kind: TreeKind) -> Result<Vec<Child>> {
    if view.is_leaf() && kind == TreeKind::Table && !view.any_flagged()? {
        // A table leaf points only through overflow values.
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(view.count());
    // Bounded: one step per slot of the node.
    for slot in 0..view.count() {
        if !view.is_leaf() {
            let ptr = view.child(slot)?;
            out.push(Child {
                slot,
                ptr,
                target: Target::Node(kind),
            });
            continue;
        }
        if let Some((ptr, target)) = leaf_target(view, slot, kind)? {
            out.push(Child { slot, ptr, target });
        }
    }
    Ok(out)
}

/// What leaf slot `slot` of a `kind` tree points at, if anything.
fn leaf_target(view: &NodeView<'_>, slot: usize, kind: TreeKind) -> Result<Option<(Ptr, Target)>> {
    let bytes = match (view.value(slot)?, kind) {
        (LeafValue::Overflow { ptr, len }, TreeKind::Table) => {
            return Ok(Some((ptr, Target::Overflow(len))))
        }
        (LeafValue::Overflow { .. }, TreeKind::Catalog) => {
            return Err(Error::corrupted(
                view.id(),
                "catalog value in an overflow run",
            ))
        }
        (LeafValue::Overflow { .. }, _) => {
            return Err(Error::corrupted(
                view.id(),
                "overflow value in a system tree",
            ))
        }
        (LeafValue::Inline(bytes), _) => bytes,
    };
    let (ptr, target) = match kind {
        TreeKind::Roots => (
            RootRecord::decode(bytes, view.id())?.catalog,
            Target::Node(TreeKind::Catalog),
        ),
        TreeKind::Catalog => (
            TableRecord::decode(bytes, view.id())?.root,
            Target::Node(TreeKind::Table),
        ),
        TreeKind::Release => {
            let (ptr, what) = decode_release(bytes, view.id())?;
            (ptr, what.into())
        }
        TreeKind::Refs | TreeKind::Table => return Ok(None),
    };
    Ok((!ptr.is_null()).then_some((ptr, target)))
}

/// A pointer as a traversal follows it.
#[derive(Clone, Copy, Debug)]
pub struct Edge<'s> {
    /// The pointer.
    pub ptr: Ptr,
    /// What it leads to.
    pub target: Target,
    /// The level the node must sit at: None for the root of a tree.
    pub level: Option<u8>,
    /// Nodes above it on the path (0 at the traversal's root).
    pub depth: usize,
    /// Keys under it are at least this (None: unbounded, or not asked for).
    pub low: Option<&'s [u8]>,
    /// Keys under it are below this (None: unbounded, or not asked for).
    pub high: Option<&'s [u8]>,
}

/// What a visitor does with a pointer before anything behind it is read.
pub enum Enter<T> {
    /// Read it and, for a node, visit its children.
    Descend,
    /// Neither read it nor go below it; this is its result.
    Skip(T),
}

/// A walk over trees, as [`traverse`] drives it: `enter` (pre-order, may skip), then `read`
/// for a node or `overflow` for a run, then the children, then `leave` (post-order).
pub trait Visitor<'s, S: PageSource + ?Sized + 's> {
    /// What a visited subtree yields (a count, a new pointer, nothing).
    type Out;
    /// Whether edges carry their key bounds (costs key reads at every branch).
    const KEY_BOUNDS: bool = false;

    /// Before the page behind `edge` is read: descend into it, or skip it with a result.
    fn enter(&mut self, edge: &Edge<'s>) -> Result<Enter<Self::Out>>;

    /// Reads the node behind `edge`, checked as strictly as this walk needs; it is visited
    /// pre-order here. The traversal checks its level afterwards.
    fn read(&mut self, src: &'s S, edge: &Edge<'s>) -> Result<NodeView<'s>> {
        node_at(src, edge.ptr, edge.level)
    }

    /// An overflow run of `len` bytes (a run has no children).
    fn overflow(&mut self, edge: &Edge<'s>, len: u64) -> Result<Self::Out>;

    /// A node after all its children, with each child's result in slot order.
    fn leave(
        &mut self,
        edge: &Edge<'s>,
        view: &NodeView<'s>,
        kids: Vec<(Child, Self::Out)>,
    ) -> Result<Self::Out>;
}

/// Walks the `kind` tree under `root` with `visitor` and returns the root's result. A null
/// root is offered to `enter` like any other pointer.
pub fn traverse<'s, S, V>(src: &'s S, root: Ptr, kind: TreeKind, visitor: &mut V) -> Result<V::Out>
where
    S: PageSource + ?Sized,
    V: Visitor<'s, S>,
{
    let edge = Edge {
        ptr: root,
        target: Target::Node(kind),
        level: None,
        depth: 0,
        low: None,
        high: None,
    };
    visit(src, &edge, visitor)
}

fn visit<'s, S, V>(src: &'s S, edge: &Edge<'s>, visitor: &mut V) -> Result<V::Out>
where
    S: PageSource + ?Sized,
    V: Visitor<'s, S>,
{
    if let Enter::Skip(out) = visitor.enter(edge)? {
        return Ok(out);
    }
    let kind = match edge.target {
        Target::Overflow(len) => return visitor.overflow(edge, len),
        Target::Node(kind) => kind,
    };
    if edge.depth > MAX_PATH {
        return Err(Error::corrupted(
            edge.ptr.page.0,
            "tree deeper than the limit (a cycle?)",
        ));
    }
    let view = visitor.read(src, edge)?;
    check_level(edge, &view)?;
    let children = targets(&view, kind)?;
    let mut kids = Vec::with_capacity(children.len());
    // Bounded: at most `count` children, each one level lower or in a lower kind of tree,
    // and the depth is checked above.
    for (k, &child) in children.iter().enumerate() {
        // The next sibling's first lines load while this child's subtree is walked: a walk
        // over many leaves (a backup, a check) otherwise waits on each one in turn.
        if let Some(next) = children
            .get(k + 1)
            .filter(|c| matches!(c.target, Target::Node(_)))
        {
            src.prefetch_node(next.ptr);
        }
        let next = child_edge(edge, &view, child, V::KEY_BOUNDS)?;
        let out = visit(src, &next, visitor)?;
        kids.push((child, out));
    }
    visitor.leave(edge, &view, kids)
}

/// The level bound, for every node whatever read it.
fn check_level(edge: &Edge<'_>, view: &NodeView<'_>) -> Result<()> {
    if edge.level.is_some_and(|level| level != view.level()) {
        return Err(Error::corrupted(
            edge.ptr.page.0,
            "node at a level other than one below its parent",
        ));
    }
    if view.level() as usize >= MAX_DEPTH {
        return Err(Error::corrupted(
            edge.ptr.page.0,
            "tree deeper than the limit",
        ));
    }
    Ok(())
}

/// The edge to `child` of `view`: one level down in the same tree out of a branch, the root
/// of another tree (or a run) out of a leaf.
fn child_edge<'s>(
    edge: &Edge<'s>,
    view: &NodeView<'s>,
    child: Child,
    key_bounds: bool,
) -> Result<Edge<'s>> {
    let (level, (low, high)) = if view.is_leaf() {
        (None, (None, None))
    } else if key_bounds {
        let bounds = child_bounds(view, child.slot, edge.low, edge.high)?;
        (Some(view.level() - 1), bounds)
    } else {
        (Some(view.level() - 1), (None, None))
    };
    Ok(Edge {
        ptr: child.ptr,
        target: child.target,
        level,
        depth: edge.depth + 1,
        low,
        high,
    })
}
