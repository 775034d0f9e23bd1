//! The difference between two trees of one file: every key whose value differs, in key order,
//! at a cost of O(changes × depth) pages.
//!
//! Invariants:
//! - Each side is a frontier: the unread subtrees and the entries not yet compared, in key
//!   order, next first. Everything already consumed on either side lies before everything
//!   left on both, except subtrees dropped from both sides at once for being equal (below),
//!   which yield no difference; so the output is in key order.
//! - A subtree whose pointer is equal on both sides (same page id, birth and checksum) is
//!   skipped without being read: a page is never changed while a committed state reaches it,
//!   so equal pointers mean equal contents. It is skipped when it is the next item of both
//!   sides, and when two branches of one level are expanded together, a child equal at the
//!   same index of both is dropped from both frontiers: one subtree holds the same keys with
//!   the same values on both sides, and no other item of either side holds any of its keys,
//!   so removing it from both leaves the differences as they were. Copy-on-write keeps every
//!   untouched sibling's pointer, so only the changed paths (and their immediate neighbours
//!   when splits or merges shifted them) are read, and a changed branch costs a comparison
//!   of its pointers' bytes, not a decode of each.
//! - This is the only rule that skips. A birth at or before the older root's txn is not used:
//!   after a `restore` a branch may hold old pages of another lineage, which the base never
//!   had, so a birth says nothing about the base unless one root descends from the other.
//! - Two leaves that share a layout (the same slots, as after values were overwritten in
//!   place) are merged at once: only the entries over bytes where the pages differ are
//!   decoded (`NodeView::changed_in_place`), every other entry being equal byte for byte; a
//!   key that differs there is left to the full merge. When one of the two carries an edit
//!   hint naming the other (`format::hint`: written by the pager from that same byte
//!   comparison when it sealed the copy), the entries it names are those read, and the pages
//!   are not compared. Two leaves of other layouts that end
//!   on the same key are merged at once entry by entry.
//! - Bounded: an expansion replaces a node by its entries or its children one level down
//!   (`node_at` checks the level), so no path is longer than `MAX_DEPTH`, and every round
//!   consumes an entry, consumes a pair of equal subtrees, or expands a node.

use super::{node_at, value_bytes};
use crate::format::node::{self, LeafValue, NodeView};
use crate::format::{Ptr, PTR_BYTES};
use crate::pager::PageSource;
use crate::Result;
use std::cmp::Ordering;

/// One key whose value differs between the two trees; `None` where the key is absent.
#[derive(Clone, Copy, Debug)]
pub struct EntryDiff<'s> {
    /// The key.
    pub key: &'s [u8],
    /// Its value in the old tree.
    pub old: Option<LeafValue<'s>>,
    /// Its value in the new tree.
    pub new: Option<LeafValue<'s>>,
}

#[derive(Clone, Copy)]
enum Item<'s> {
    /// A subtree not read yet; its level is unknown only for a root.
    Node {
        ptr: Ptr,
        level: Option<u8>,
    },
    Entry {
        key: &'s [u8],
        value: LeafValue<'s>,
    },
}

/// Leaf pairs lie scattered over the file, and each page's first lines and changed entries
/// are cache misses. A leaf comparison asks for the header and slots of the pair this many
/// pairs ahead...
const HEADS_AHEAD: usize = 8;
/// ...and for the entries that the hint of the pair this many ahead names (its header
/// asked for earlier).
const ENTRIES_AHEAD: usize = 3;
/// Lines of a page's start asked for: the header and about thirty slots.
const HEAD_LINES: usize = 4;
/// Changed entries asked for per pair...
const ENTRIES_PREFETCHED: usize = 4;
/// ...and bytes of each, from its start (its header, key and a short value).
const ENTRY_BYTES: usize = 192;

struct Frontier<'s, S: PageSource + ?Sized> {
    src: &'s S,
    /// Next item last.
    stack: Vec<Item<'s>>,
}

impl<'s, S: PageSource + ?Sized> Frontier<'s, S> {
    fn new(src: &'s S, root: Ptr) -> Self {
        let mut stack = Vec::new();
        if !root.is_null() {
            stack.push(Item::Node {
                ptr: root,
                level: None,
            });
        }
        Frontier { src, stack }
    }

    fn peek(&self) -> Option<Item<'s>> {
        self.stack.last().copied()
    }

    /// The node `depth` items below the next one, if that item is a node.
    fn node_below(&self, depth: usize) -> Option<Ptr> {
        let at = self.stack.len().checked_sub(depth + 1)?;
        match self.stack[at] {
            Item::Node { ptr, .. } => Some(ptr),
            Item::Entry { .. } => None,
        }
    }

    /// Replaces the next item, a node, by its entries or children (in key order).
    fn expand(&mut self) -> Result<()> {
        let Some(Item::Node { ptr, level }) = self.stack.pop() else {
            unreachable!("only a node is expanded");
        };
        let view = node_at(self.src, ptr, level)?;
        self.push_items(&view)
    }

    /// Pushes the entries or children of `view`, the node just taken off the stack.
    fn push_items(&mut self, view: &NodeView<'s>) -> Result<()> {
        let start = self.stack.len();
        // Bounded: a node holds `count` entries.
        for i in (0..view.count()).rev() {
            self.stack.push(if view.is_leaf() {
                let (key, value) = view.key_value(i)?;
                Item::Entry { key, value }
            } else {
                Item::Node {
                    ptr: view.child(i)?,
                    level: Some(view.level() - 1),
                }
            });
        }
        debug_assert!(self.stack.len() - start == view.count());
        Ok(())
    }
}

/// An entry: its key and its value as stored.
type KeyValue<'s> = (&'s [u8], LeafValue<'s>);

/// Of the next entries of the two sides (`None`: that side has none left), the one with the
/// lower key, or both when their keys are equal.
fn first_of<'s>(
    old: Option<KeyValue<'s>>,
    new: Option<KeyValue<'s>>,
) -> (Option<KeyValue<'s>>, Option<KeyValue<'s>>) {
    let order = match (old, new) {
        (Some((a, _)), Some((b, _))) => a.cmp(b),
        (Some(_), None) => Ordering::Less,
        (None, _) => Ordering::Greater,
    };
    match order {
        Ordering::Less => (old, None),
        Ordering::Greater => (None, new),
        Ordering::Equal => (old, new),
    }
}

/// Which side to expand when the two next items are not both entries.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expand {
    Old,
    New,
    Both,
}

/// Iterates the keys whose values differ between an old and a new tree of one file.
pub struct TreeDiff<'s, S: PageSource + ?Sized> {
    old: Frontier<'s, S>,
    new: Frontier<'s, S>,
    pages_read: u64,
    failed: bool,
    /// Differences found by merging two leaves at once, next last.
    pending: Vec<EntryDiff<'s>>,
    /// The entries a leaf comparison found over differing bytes (kept for its allocation).
    changed: Vec<usize>,
}

impl<'s, S: PageSource + ?Sized> TreeDiff<'s, S> {
    /// The diff from the tree under `old_root` (read through `old_src`) to the tree under
    /// `new_root`; a null root is an empty tree.
    pub fn new(old_src: &'s S, old_root: Ptr, new_src: &'s S, new_root: Ptr) -> Self {
        TreeDiff {
            old: Frontier::new(old_src, old_root),
            new: Frontier::new(new_src, new_root),
            pages_read: 0,
            failed: false,
            pending: Vec::new(),
            changed: Vec::new(),
        }
    }

    /// Node pages read so far, both sides together.
    pub fn pages_read(&self) -> u64 {
        self.pages_read
    }

    fn expand(&mut self, which: Expand) -> Result<()> {
        if which == Expand::Both {
            return self.branches();
        }
        if which != Expand::New {
            self.old.expand()?;
            self.pages_read += 1;
        }
        if which != Expand::Old {
            self.new.expand()?;
            self.pages_read += 1;
        }
        Ok(())
    }

    /// Expands the two next items, branches of one level, together. A child whose pointer is
    /// the same at the same index on both sides is one subtree on both: it is dropped from
    /// both frontiers unread (see the module invariants), so that the pairs left to compare
    /// are only the children that differ.
    fn branches(&mut self) -> Result<()> {
        let (Some(Item::Node { ptr: a, level }), Some(Item::Node { ptr: b, .. })) =
            (self.old.stack.pop(), self.new.stack.pop())
        else {
            unreachable!("only two nodes are expanded together");
        };
        let old = node_at(self.old.src, a, level)?;
        let new = node_at(self.new.src, b, level)?;
        self.pages_read += 2;
        assert!(!old.is_leaf(), "two leaves are merged, not expanded");
        let below = Some(old.level() - 1);
        let (m, n) = (old.count(), new.count());
        // Bounded: a branch holds `count` children; pushed last first.
        for i in (0..m.max(n)).rev() {
            let a = (i < m).then(|| old.child_bytes(i)).transpose()?;
            let b = (i < n).then(|| new.child_bytes(i)).transpose()?;
            if a.is_some() && a == b {
                continue;
            }
            let node = |bytes: &[u8; PTR_BYTES]| Item::Node {
                ptr: Ptr::decode(bytes),
                level: below,
            };
            self.old.stack.extend(a.map(node));
            self.new.stack.extend(b.map(node));
        }
        if below == Some(0) {
            // The pipeline of `prefetch_ahead` starts over with this branch's leaves.
            for depth in 0..HEADS_AHEAD {
                self.prefetch_heads(depth);
            }
        }
        Ok(())
    }

    /// The next difference, or None when both sides are consumed.
    fn step(&mut self) -> Result<Option<EntryDiff<'s>>> {
        // Bounded: see the module invariants.
        loop {
            if let Some(diff) = self.pending.pop() {
                return Ok(Some(diff));
            }
            let which = match (self.old.peek(), self.new.peek()) {
                (None, None) => return Ok(None),
                (Some(Item::Node { ptr: a, .. }), Some(Item::Node { ptr: b, .. })) if a == b => {
                    self.old.stack.pop();
                    self.new.stack.pop();
                    continue;
                }
                (
                    Some(Item::Node {
                        ptr: a,
                        level: Some(0),
                    }),
                    Some(Item::Node {
                        ptr: b,
                        level: Some(0),
                    }),
                ) => {
                    self.leaves(a, b)?;
                    continue;
                }
                (Some(Item::Node { level: a, .. }), Some(Item::Node { level: b, .. })) => {
                    match (a, b) {
                        (None, _) => Expand::Old,
                        (_, None) => Expand::New,
                        (Some(a), Some(b)) => match a.cmp(&b) {
                            Ordering::Greater => Expand::Old,
                            Ordering::Less => Expand::New,
                            Ordering::Equal => Expand::Both,
                        },
                    }
                }
                (Some(Item::Node { .. }), _) => Expand::Old,
                (_, Some(Item::Node { .. })) => Expand::New,
                (old, new) => match self.compare(old, new)? {
                    Some(diff) => return Ok(Some(diff)),
                    None => continue,
                },
            };
            self.expand(which)?;
        }
    }

    /// Consumes the next entry of one or both sides; the difference, if any.
    fn compare(
        &mut self,
        old: Option<Item<'s>>,
        new: Option<Item<'s>>,
    ) -> Result<Option<EntryDiff<'s>>> {
        let entry = |item| match item {
            Some(Item::Entry { key, value }) => Some((key, value)),
            _ => None,
        };
        let (old, new) = first_of(entry(old), entry(new));
        if old.is_some() {
            self.old.stack.pop();
        }
        if new.is_some() {
            self.new.stack.pop();
        }
        self.difference(old, new)
    }

    /// The difference between the entries of one key on the two sides, if any.
    fn difference(
        &self,
        old: Option<KeyValue<'s>>,
        new: Option<KeyValue<'s>>,
    ) -> Result<Option<EntryDiff<'s>>> {
        if let (Some((_, a)), Some((_, b))) = (old, new) {
            if self.same_value(a, b)? {
                return Ok(None);
            }
        }
        let key = old.or(new).expect("one side has an entry").0;
        Ok(Some(EntryDiff {
            key,
            old: old.map(|(_, v)| v),
            new: new.map(|(_, v)| v),
        }))
    }

    /// Takes the two next items, both leaves. Two leaves of one layout whose entries differ
    /// only in values hold the same keys; two leaves that end on the same key hold, between
    /// them, every key up to that one that either side has left (everything after them on
    /// both sides is greater). Either way they are merged here at once: an entry equal byte
    /// for byte on both sides (same key, same stored value) costs one comparison, and only
    /// the differences are kept. Otherwise their entries go on the stacks.
    fn leaves(&mut self, a: Ptr, b: Ptr) -> Result<()> {
        let old = node_at(self.old.src, a, Some(0))?;
        let new = node_at(self.new.src, b, Some(0))?;
        self.pages_read += 2;
        self.old.stack.pop();
        self.new.stack.pop();
        self.prefetch_ahead();
        debug_assert!(self.pending.is_empty());
        let mut changed = std::mem::take(&mut self.changed);
        // A leaf copied from the other and changed in place says which entries changed.
        let hinted = old.hinted_changes(&new, at(a), at(b), &mut changed);
        #[cfg(any(debug_assertions, feature = "testkit"))]
        if hinted {
            prove_hint(&old, &new, &changed)?;
        }
        let in_place = hinted || old.changed_in_place(&new, &mut changed)?;
        let merged = if in_place {
            self.in_place(&old, &new, &changed)
        } else {
            Ok(false)
        };
        self.changed = changed;
        if !merged? {
            let last = |v: &NodeView<'s>| v.count().checked_sub(1).map(|i| v.key(i)).transpose();
            if old.count() == 0 || last(&old)? != last(&new)? {
                self.old.push_items(&old)?;
                return self.new.push_items(&new);
            }
            self.merge(&old, &new)?;
        }
        // Next last.
        self.pending.reverse();
        Ok(())
    }

    /// Prefetches for the leaf pairs ahead on the two frontiers (when they hold pairs of
    /// nodes at the same depth, as after [`TreeDiff::branches`]): a hint, nothing checked.
    /// The pair [`ENTRIES_AHEAD`] ahead is read raw, its header alone, since it is decoded
    /// and checked when its turn comes.
    fn prefetch_ahead(&mut self) {
        self.prefetch_heads(HEADS_AHEAD);
        let (Some(a), Some(b)) = (
            self.old.node_below(ENTRIES_AHEAD),
            self.new.node_below(ENTRIES_AHEAD),
        ) else {
            return;
        };
        let (Some(old), Some(new)) = (self.old.src.unchecked(a), self.new.src.unchecked(b)) else {
            return;
        };
        node::hinted_entry_starts([old, new], [at(a), at(b)], ENTRIES_PREFETCHED, |entry| {
            crate::io::prefetch(&entry[..entry.len().min(ENTRY_BYTES)]);
        });
    }

    /// Prefetches the first lines of the pair `depth` items below the next ones.
    fn prefetch_heads(&self, depth: usize) {
        if let (Some(a), Some(b)) = (self.old.node_below(depth), self.new.node_below(depth)) {
            self.old.src.prefetch_head(a, HEAD_LINES);
            self.new.src.prefetch_head(b, HEAD_LINES);
        }
    }

    /// Two leaves of one layout: only the entries at `changed` can differ, and each sits at
    /// the same index on both sides. Their differences go to `pending`; false (and nothing
    /// kept) when a key differs there, a change of layout that [`TreeDiff::merge`] handles.
    fn in_place(
        &mut self,
        old: &NodeView<'s>,
        new: &NodeView<'s>,
        changed: &[usize],
    ) -> Result<bool> {
        for &i in changed {
            let (a, b) = (old.key_value(i)?, new.key_value(i)?);
            if a.0 != b.0 {
                self.pending.clear();
                return Ok(false);
            }
            if let Some(diff) = self.difference(Some(a), Some(b))? {
                self.pending.push(diff);
            }
        }
        Ok(true)
    }

    /// Two leaves that end on the same key, merged entry by entry; their differences go to
    /// `pending`, in key order.
    fn merge(&mut self, old: &NodeView<'s>, new: &NodeView<'s>) -> Result<()> {
        let (mut i, mut j) = (0, 0);
        // Bounded: every round moves past an entry of one leaf or of both.
        while i < old.count() || j < new.count() {
            if i < old.count() && j < new.count() && old.entry(i)? == new.entry(j)? {
                (i, j) = (i + 1, j + 1);
                continue;
            }
            let a = (i < old.count()).then(|| old.key_value(i)).transpose()?;
            let b = (j < new.count()).then(|| new.key_value(j)).transpose()?;
            let (a, b) = first_of(a, b);
            i += usize::from(a.is_some());
            j += usize::from(b.is_some());
            if let Some(diff) = self.difference(a, b)? {
                self.pending.push(diff);
            }
        }
        Ok(())
    }

    fn same_value(&self, a: LeafValue<'s>, b: LeafValue<'s>) -> Result<bool> {
        match (a, b) {
            (LeafValue::Inline(a), LeafValue::Inline(b)) => Ok(a == b),
            (
                LeafValue::Overflow { ptr: pa, len: la },
                LeafValue::Overflow { ptr: pb, len: lb },
            ) if pa == pb && la == lb => Ok(true),
            (a, b) => Ok(value_bytes(self.old.src, a)? == value_bytes(self.new.src, b)?),
        }
    }
}

impl<'s, S: PageSource + ?Sized> Iterator for TreeDiff<'s, S> {
    type Item = Result<EntryDiff<'s>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut failed = self.failed;
        let next = crate::error::fused_step(&mut failed, || self.step());
        self.failed = failed;
        next
    }
}

/// Builds with tests or fuzzing prove each hint they use: the two leaves have one layout,
/// and every entry over a differing byte is one the hint names. A hint the engine wrote
/// always holds; one that does not is a damaged page (an error, not a panic: fuzzers feed
/// such pages).
#[cfg(any(debug_assertions, feature = "testkit"))]
fn prove_hint(old: &NodeView<'_>, new: &NodeView<'_>, named: &[usize]) -> Result<()> {
    let mut differ = Vec::new();
    let holds = matches!(old.changed_in_place(new, &mut differ), Ok(true))
        && differ.iter().all(|i| named.binary_search(i).is_ok());
    if holds {
        Ok(())
    } else {
        Err(crate::Error::corrupted(
            new.id(),
            format!("an edit hint that does not hold: {differ:?} changed, {named:?} named"),
        ))
    }
}

/// A page's id and birth, as an edit hint names its base.
fn at(ptr: Ptr) -> (u64, u64) {
    (ptr.page.0, ptr.txn.0)
}
