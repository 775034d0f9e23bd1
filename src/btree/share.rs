//! Sharing pages between roots: reference counts and copy-on-write of shared nodes (the
//! release queue, which drops a whole tree's references in bounded steps, is `release.rs`).
//!
//! Invariants:
//! - A page's reference count is the number of parents pointing at it across all roots (a
//!   parent is a node page, a root record or a release-queue entry). Only counts ≥ 2 are
//!   stored, in the refcount tree keyed by page id; an absent page counts 1.
//! - In a write transaction a count is the tree's plus the transaction's pending change
//!   ([`Refcounts`]); the changes reach the tree, in page order, only at [`Refcounts::flush`],
//!   before the tree is sealed. No count ever falls below 1: a page whose last reference goes
//!   is freed instead.
//! - A page born after its root's `shared_until` cannot be shared, so its count is never
//!   looked up (the generation shortcut). Pages born in the current txn are never shared.
//! - Copying a shared node adds one reference to each of its children and drops one from the
//!   original; copying an unshared node frees the original (its children change parent but
//!   not count).
//! - A flush edits the refcount tree change by change, or rebuilds it whole from its stored
//!   counts merged with the changes (many changes against a small tree); both leave the same
//!   counts, and a rebuild frees every page of the old tree.

use super::build::TreeBuilder;
use super::node_at;
use super::traverse::{targets, traverse, Child, Edge, Enter, TreeKind, Visitor};
use super::write::{modify_with_finger, Finger};
use crate::format::node::{LeafValue, NodeView};
use crate::format::records::{count_key, decode_count, decode_count_key, encode_count};
use crate::format::Ptr;
use crate::pager::{IdMap, IdSet, PageSource, WritePager};
use crate::{Error, Result};

/// The reference counts as one write transaction sees them: the refcount tree plus the
/// changes not yet applied to it. A change waits in memory until [`Refcounts::flush`], so
/// that a copied branch's hundred children cost a hash update each instead of a tree insert,
/// and a count raised and dropped again in the same transaction (a child copied after its
/// parent) never reaches the tree (the delayed references of btrfs).
#[derive(Debug, Default)]
pub struct Refcounts {
    /// Root of the refcount tree, without the pending changes.
    root: Ptr,
    /// Pending change of each page's count (zero when the changes cancelled out).
    pending: IdMap<i64>,
}

impl Refcounts {
    /// The counts stored in the refcount tree at `root`, with nothing pending.
    pub fn new(root: Ptr) -> Refcounts {
        Refcounts {
            root,
            pending: IdMap::default(),
        }
    }

    /// The reference count of `page` (1 when neither stored nor changed).
    fn count(&self, w: &WritePager, page: u64) -> Result<u32> {
        let change = self.pending.get(&page).copied().unwrap_or(0);
        changed_count(
            self.root.page.0,
            page,
            refcount(w, self.root, page)?,
            change,
        )
    }

    /// Adds one reference to `page`.
    pub fn add(&mut self, page: u64) {
        *self.pending.entry(page).or_insert(0) += 1;
    }

    /// Drops one reference to `page` when another parent still holds one, and says so. Its
    /// last reference is never dropped (no count falls below 1): then nothing changes, and
    /// the caller frees the page or takes it over.
    pub fn drop_if_shared(&mut self, w: &WritePager, page: u64) -> Result<bool> {
        if self.count(w, page)? <= 1 {
            return Ok(false);
        }
        *self.pending.entry(page).or_insert(0) -= 1;
        Ok(true)
    }

    /// The root of a tree that holds every count, pending ones applied. Few changes against a
    /// large tree go in one by one, each a finger insert or remove in page order (runs of
    /// neighbouring pages, such as a node's children, land in one leaf without a descent).
    /// Many changes against a small tree (the first copies after a snapshot add a count for
    /// every child of each copied branch) rebuild the tree bottom-up, merged with what it
    /// held: a packed append costs a tenth of a finger insert.
    pub fn flush(&mut self, w: &mut WritePager) -> Result<Ptr> {
        let mut changes: Vec<(u64, i64)> = self.pending.drain().filter(|c| c.1 != 0).collect();
        changes.sort_unstable_by_key(|c| c.0);
        if changes.len() >= REBUILD_MIN_CHANGES {
            let limit = changes.len() * REBUILD_MAX_STORED_PER_CHANGE;
            if let Some(old) = read_tree(w, self.root, limit)? {
                self.root = rebuild(w, self.root, old, &changes)?;
                return Ok(self.root);
            }
        }
        let mut finger: Option<Finger> = None;
        let mut none = Sharing::system(TreeKind::Refs);
        // Bounded: one step per pending change.
        for (page, change) in changes {
            let root_id = self.root.page.0;
            // The new count's bytes are returned by value: no allocation per change.
            let apply = |stored: Option<&[u8]>| -> Result<Option<_>> {
                let stored = stored.map_or(Ok(1), |bytes| decode_count(bytes, root_id))?;
                let count = changed_count(root_id, page, stored, change)?;
                Ok((count > 1).then(|| encode_count(count)))
            };
            let key = count_key(page);
            self.root = modify_with_finger(w, &mut none, self.root, &key, &mut finger, apply)?;
        }
        Ok(self.root)
    }

    /// Takes a refcount tree that a compaction rebuilt (the same counts, pages moved).
    pub fn replace(&mut self, root: Ptr) {
        assert!(
            self.pending.is_empty(),
            "a rebuilt refcount tree would lose pending changes"
        );
        self.root = root;
    }
}

/// A stored count with a pending change applied. In a sound file it never falls below 1 (a
/// page whose last reference goes is freed, its count never dropped) nor past the stored
/// width; a damaged refcount tree (`tree`) can break either, which is corruption, not a bug.
fn changed_count(tree: u64, page: u64, stored: u32, change: i64) -> Result<u32> {
    let count = i64::from(stored) + change;
    u32::try_from(count)
        .ok()
        .filter(|&c| c >= 1)
        .ok_or_else(|| {
            Error::corrupted(
                tree,
                format!(
                    "page {page}: stored reference count {stored} changed by {change} is {count}"
                ),
            )
        })
}

/// Fewest pending changes for which a rebuild of the refcount tree is considered.
const REBUILD_MIN_CHANGES: usize = 256;
/// A rebuild rewrites every stored count: it pays while the tree holds at most this many per
/// change (a finger insert costs about ten packed appends, callgrind).
const REBUILD_MAX_STORED_PER_CHANGE: usize = 4;

/// The refcount tree at `root` (null: none) read whole: its node pages and its counts.
struct ReadTree {
    pages: Vec<Ptr>,
    counts: Vec<(u64, u32)>,
}

/// The refcount tree at `root` when it holds at most `limit` counts, else None. The walk
/// stops reading once the limit is passed, so a large tree costs about `limit` counts' worth
/// of pages, not its size.
fn read_tree<S: PageSource + ?Sized>(src: &S, root: Ptr, limit: usize) -> Result<Option<ReadTree>> {
    let mut walk = CountWalk {
        tree: root.page.0,
        limit,
        read: ReadTree {
            pages: Vec::new(),
            counts: Vec::new(),
        },
        seen: IdSet::default(),
    };
    traverse(src, root, TreeKind::Refs, &mut walk)?;
    Ok((walk.read.counts.len() <= limit).then_some(walk.read))
}

/// [`read_tree`]'s visitor: the pages and the counts in page order, until the limit. A page
/// reached twice (a damaged tree) is corruption: a rebuild would free it twice.
struct CountWalk {
    tree: u64,
    limit: usize,
    read: ReadTree,
    seen: IdSet,
}

impl<'s, S: PageSource + ?Sized + 's> Visitor<'s, S> for CountWalk {
    type Out = ();

    fn enter(&mut self, edge: &Edge<'s>) -> Result<Enter<()>> {
        if edge.ptr.is_null() || self.read.counts.len() > self.limit {
            return Ok(Enter::Skip(()));
        }
        if !self.seen.insert(edge.ptr.page.0) {
            return Err(Error::corrupted(
                edge.ptr.page.0,
                "refcount tree page reached twice",
            ));
        }
        Ok(Enter::Descend)
    }

    fn overflow(&mut self, edge: &Edge<'s>, _len: u64) -> Result<()> {
        Err(Error::corrupted(
            edge.ptr.page.0,
            "overflow run in the refcount tree",
        ))
    }

    fn leave(&mut self, edge: &Edge<'s>, view: &NodeView<'s>, _: Vec<(Child, ())>) -> Result<()> {
        self.read.pages.push(edge.ptr);
        if !view.is_leaf() {
            return Ok(());
        }
        // Bounded: one step per entry of the leaf.
        for i in 0..view.count() {
            let (key, value) = view.key_value(i)?;
            let LeafValue::Inline(value) = value else {
                return Err(Error::corrupted(
                    self.tree,
                    "overflow value in the refcount tree",
                ));
            };
            self.read.counts.push((
                decode_count_key(key, self.tree)?,
                decode_count(value, self.tree)?,
            ));
        }
        Ok(())
    }
}

/// A new refcount tree holding the counts of `old` (the tree at `root`) with `changes`
/// (sorted by page) applied, built bottom-up; the old pages are freed.
fn rebuild(w: &mut WritePager, root: Ptr, old: ReadTree, changes: &[(u64, i64)]) -> Result<Ptr> {
    let counts = merged_counts(root.page.0, old.counts, changes)?;
    for &ptr in &old.pages {
        w.free_node(ptr)?;
    }
    build_refcount_tree(w, &counts)
}

/// A refcount tree, born in this txn and built bottom-up, holding `counts` (each 2 or more,
/// in page order); null when there is none.
pub fn build_refcount_tree(w: &mut WritePager, counts: &[(u64, u32)]) -> Result<Ptr> {
    if counts.is_empty() {
        return Ok(Ptr::default());
    }
    let mut tree = TreeBuilder::new(w.page_size(), w.txn().0);
    // Bounded: one step per count.
    for &(page, count) in counts {
        assert!(count > 1, "page {page}: a stored count of {count}");
        tree.push(w, &count_key(page), LeafValue::Inline(&encode_count(count)))?;
    }
    tree.finish(w)
}

/// The `stored` counts (of the tree at page `tree`) with `changes` applied, both sorted by
/// page: the counts of 2 or more, in page order. Stored pages out of order (a damaged tree)
/// are corruption: a tree built from them would be out of order too.
fn merged_counts(
    tree: u64,
    stored: Vec<(u64, u32)>,
    changes: &[(u64, i64)],
) -> Result<Vec<(u64, u32)>> {
    if stored.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err(Error::corrupted(tree, "refcount keys out of order"));
    }
    let mut out = Vec::with_capacity(stored.len() + changes.len());
    let mut stored = stored.into_iter().peekable();
    // Bounded: one round per change, each taking the stored counts below its page.
    for &(page, change) in changes {
        while let Some(below) = stored.next_if(|&(at, _)| at < page) {
            out.push(below);
        }
        let count = stored
            .next_if(|&(at, _)| at == page)
            .map_or(1, |(_, count)| count);
        out.push((page, changed_count(tree, page, count, change)?));
    }
    out.extend(stored);
    out.retain(|&(_, count)| count > 1);
    Ok(out)
}

/// The sharing context of a tree being written. It borrows the counts from their one owner
/// (the transaction's `RootsEdit`), so the counts it changes land there directly.
#[derive(Debug)]
pub struct Sharing<'a> {
    /// The counts (changed as pages are copied); `None` for a tree that is never shared,
    /// whose counts are never asked.
    refs: Option<&'a mut Refcounts>,
    /// Pages born after this txn cannot be shared.
    shared_until: u64,
    /// The kind of tree being written.
    kind: TreeKind,
}

impl<'a> Sharing<'a> {
    /// The context of a tree of `kind` whose pages born up to `shared_until` may be shared,
    /// with the counts in `refs`.
    pub fn new(refs: &'a mut Refcounts, shared_until: u64, kind: TreeKind) -> Sharing<'a> {
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

    /// The kind of tree being written.
    pub fn kind(&self) -> TreeKind {
        self.kind
    }

    /// The counts when the page born at `ptr.txn` may be shared (else it is this tree's
    /// alone, and whatever copies or drops it owes no count).
    fn counts_for(&mut self, w: &WritePager, ptr: Ptr) -> Option<&mut Refcounts> {
        if ptr.txn == w.txn() || ptr.txn.0 > self.shared_until {
            return None;
        }
        self.refs.as_deref_mut()
    }
}

/// The reference count of `page` stored in the refcount tree at `refs` (1 when not stored).
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
    let read = read_tree(src, refs, usize::MAX)?;
    Ok(read.map(|read| read.counts).unwrap_or_default())
}

/// Makes the node behind `ptr` writable for a tree in context `sh`: in place when dirty, a
/// copy that frees the original when unshared, a copy that shares its children when shared.
pub fn cow(w: &mut WritePager, sh: &mut Sharing<'_>, ptr: Ptr) -> Result<Ptr> {
    let kind = sh.kind;
    let Some(refs) = sh.counts_for(w, ptr) else {
        return w.make_dirty(ptr);
    };
    if !refs.drop_if_shared(w, ptr.page.0)? {
        return w.make_dirty(ptr);
    }
    let copy = w.copy_node(ptr)?;
    for child in targets(&node_at(w, copy, None)?, kind)? {
        refs.add(child.ptr.page.0);
    }
    Ok(copy)
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
    if refs.drop_if_shared(w, ptr.page.0)? {
        return Ok(());
    }
    w.free_overflow(ptr, len)
}

#[cfg(test)]
mod tests {
    use super::merged_counts;

    #[test]
    fn merging_applies_changes_in_page_order_and_keeps_counts_above_one() {
        let stored = vec![(3, 2), (5, 3), (9, 2)];
        let changes = [(1, 1), (5, -1), (7, 2), (9, -1), (11, 0)];
        let merged = merged_counts(100, stored, &changes).unwrap();
        // 1 gains a second parent, 5 keeps two, 7 gains two, 9 falls back to one (not
        // stored), 11 is unchanged at one; 3 is carried over.
        assert_eq!(merged, vec![(1, 2), (3, 2), (5, 2), (7, 3)]);
        assert_eq!(merged_counts(100, vec![(4, 2)], &[]).unwrap(), vec![(4, 2)]);
        assert_eq!(
            merged_counts(100, Vec::new(), &[(4, 1)]).unwrap(),
            vec![(4, 2)]
        );
    }

    #[test]
    fn merging_a_count_below_one_or_stored_counts_out_of_order_is_corruption() {
        assert!(merged_counts(100, vec![(4, 2)], &[(4, -2)]).is_err());
        assert!(merged_counts(100, Vec::new(), &[(4, -1)]).is_err());
        assert!(merged_counts(100, vec![(5, 2), (4, 2)], &[(9, 1)]).is_err());
        assert!(merged_counts(100, vec![(5, 2), (5, 3)], &[(9, 1)]).is_err());
    }
}
