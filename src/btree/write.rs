//! Inserts, removes and sealing on a write transaction's pages.
//!
//! Invariants: see the module above. Every structural change goes through [`spill`],
//! [`insert_or_split`] and [`rebalance`], which keep nodes within a page and non-empty, and
//! which never hold a page borrow across an allocation. A leaf overflow that is not an append
//! (an entry landing past the last entry of a leaf with no right sibling) spills into its
//! siblings first (B*-tree style, see [`plan_spill`]: two leaves cut evenly, three cut in
//! three, or three into four about 3/4 full, or two into three about 2/3 full); the siblings
//! written are made writable by [`cow`] under their dirty parent before anything is written,
//! and every check that can refuse the spill (cuts, the parent's room for the new
//! separators) comes first, so a refused spill changes nothing and the leaf splits in two.
//! Append splits and branch splits are unchanged by spills.

use super::share::{cow, release_overflow, Sharing};
use super::{node_at, Path, Step, TreeKind, MAX_DEPTH};
use crate::format::node::{self, LeafValue, NodeView};
use crate::format::{Ptr, MAX_KEY_LEN, MAX_VALUE_LEN};
use crate::pager::{PageSource, WritePager};
use crate::{Error, Result};

/// Refuses a key or value over the limit (before anything changes).
pub fn check_sizes(key: &[u8], value_len: usize) -> Result<()> {
    if key.len() > MAX_KEY_LEN {
        return Err(Error::KeyTooLarge {
            len: key.len(),
            max: MAX_KEY_LEN,
        });
    }
    if value_len > MAX_VALUE_LEN {
        return Err(Error::ValueTooLarge {
            len: value_len,
            max: MAX_VALUE_LEN,
        });
    }
    Ok(())
}

/// Copies the path to `key` (making every node dirty) and returns it, root first.
fn dirty_path(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
    path: &mut Path,
) -> Result<()> {
    dirty_path_by(w, sh, root, |view, _| view.child_index(key), path)
}

/// [`dirty_path`] along a path already found (see [`super::locate`]), rewritten in place. A
/// copied node keeps its child pointers, so the pointers read on the way down still hold: no
/// node is read or searched again.
fn dirty_path_along(w: &mut WritePager, sh: &mut Sharing<'_>, path: &mut Path) -> Result<()> {
    for level in 0..path.len() {
        let ptr = path[level].ptr;
        if ptr.txn == w.txn() {
            // Already copied (and read on the way down): `cow` would return it as it is.
            continue;
        }
        let dirty = cow(w, sh, ptr)?;
        if dirty != ptr {
            if let Some(parent) = level.checked_sub(1).map(|l| path[l]) {
                node::set_child(w.page_mut(parent.ptr.page), parent.idx, dirty);
            }
            path[level].ptr = dirty;
        }
    }
    Ok(())
}

fn dirty_path_by(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    mut choose: impl FnMut(&NodeView, usize) -> Result<usize>,
    path: &mut Path,
) -> Result<()> {
    path.clear();
    let mut cur = cow(w, sh, root)?;
    let mut level: Option<u8> = None;
    loop {
        if path.len() >= MAX_DEPTH {
            return Err(Error::corrupted(cur.page.0, "path deeper than the limit"));
        }
        let view = node_at(w, cur, level)?;
        if view.is_leaf() {
            path.push(Step { ptr: cur, idx: 0 });
            return Ok(());
        }
        let idx = choose(&view, path.len())?;
        let child = view.child(idx)?;
        level = Some(view.level() - 1);
        // A child already copied is returned as it is by `cow`: skip the call (the next
        // round reads it, which checks that it is dirty).
        let mut dirty = child;
        if child.txn != w.txn() {
            dirty = cow(w, sh, child)?;
            if dirty != child {
                node::set_child(w.page_mut(cur.page), idx, dirty);
            }
        }
        path.push(Step { ptr: cur, idx });
        cur = dirty;
    }
}

/// Inserts or overwrites `key`. Returns the new root and whether a value was replaced.
pub fn insert(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
    value: &[u8],
) -> Result<(Ptr, bool)> {
    let mut path = Path::default();
    insert_landed(w, sh, root, key, value, &mut path).map(|(root, replaced, _)| (root, replaced))
}

/// Where a full insert or remove left its key, when nothing above the leaf changed (no
/// split, spill or rebalance): the slot after it in the leaf that ends the dirty path the
/// caller passed, so that a finger can be taken from the path without a descent.
type Landed = Option<usize>;

/// [`insert`], also telling where the key landed; `path` is left holding the dirty path.
fn insert_landed(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
    value: &[u8],
    path: &mut Path,
) -> Result<(Ptr, bool, Landed)> {
    check_sizes(key, value.len())?;
    let inline = node::fits_inline(key.len(), value.len(), w.page_size());
    let stored = if inline {
        LeafValue::Inline(value)
    } else {
        LeafValue::Overflow {
            ptr: w.write_overflow(value)?,
            len: value.len() as u64,
        }
    };
    let root = if root.is_null() { w.new_node(0)? } else { root };
    dirty_path(w, sh, root, key, path)?;
    let leaf = path.last().expect("path has a leaf").ptr;
    let view = NodeView::new(w.page_mut(leaf.page), leaf.page.0)?;
    let (idx, replaced) = match view.search(key)? {
        Ok(i) => {
            let old = view.value(i)?;
            match (old, stored) {
                (LeafValue::Inline(o), LeafValue::Inline(n)) if o.len() == n.len() => {
                    node::overwrite_inline_value(w.page_mut(leaf.page), i, n);
                    return Ok((path[0].ptr, true, Some(i + 1)));
                }
                (LeafValue::Overflow { ptr, len }, _) => release_overflow(w, sh, ptr, len)?,
                _ => {}
            }
            node::remove(w.page_mut(leaf.page), leaf.page.0, i);
            (i, true)
        }
        Err(i) => (i, false),
    };
    let len = entry_len(key, stored);
    // Most inserts fit their leaf: the entry is written in place, with no copy of it.
    if node::insert(w.page_mut(leaf.page), leaf.page.0, idx, len, |out| {
        node::write_leaf_entry(out, key, stored)
    }) {
        return Ok((path[0].ptr, replaced, Some(idx + 1)));
    }
    let mut entry = vec![0u8; len];
    node::write_leaf_entry(&mut entry, key, stored);
    let split = insert_leaf(w, sh, path, idx, &entry)?;
    let root = fix_up(w, sh, path, split, false)?;
    Ok((root, replaced, None))
}

fn entry_len(key: &[u8], value: LeafValue<'_>) -> usize {
    match value {
        LeafValue::Inline(v) => node::leaf_inline_bytes(key.len(), v.len()) - node::SLOT_BYTES,
        LeafValue::Overflow { .. } => node::leaf_overflow_bytes(key.len()) - node::SLOT_BYTES,
    }
}

/// The leaf that the last of a run of ascending inserts went to, with its key bounds, so
/// that the next keys that fall inside it go straight in without a descent (a sorted flush
/// inserts mostly this way; a split or a miss falls back to a full insert).
pub struct Finger {
    root: Ptr,
    leaf: Ptr,
    /// Where the next ascending key is expected in the leaf (a hint).
    slot: usize,
    bounds: Bounds,
}

impl Finger {
    /// Whether `key` belongs in the finger's leaf under `root` (the root is unchanged since
    /// the finger was taken, and the key lies within the leaf's bounds).
    fn holds(&self, root: Ptr, key: &[u8]) -> bool {
        self.root == root
            && self.bounds.low.as_deref().is_none_or(|l| key >= l)
            && self.bounds.high.as_deref().is_none_or(|h| key < h)
    }
}

/// The key range `[low, high)` of the node a descent reaches (`None`: unbounded), narrowed
/// at each branch it passes.
#[derive(Default)]
struct Bounds {
    low: Option<Vec<u8>>,
    high: Option<Vec<u8>>,
}

impl Bounds {
    /// Narrows to the range of child `i` of branch `view`.
    fn narrow(&mut self, view: &NodeView<'_>, i: usize) -> Result<()> {
        if i > 0 {
            self.low = Some(view.key(i)?.to_vec());
        }
        if i + 1 < view.count() {
            self.high = Some(view.key(i + 1)?.to_vec());
        }
        Ok(())
    }
}

/// [`insert`] for ascending keys with small (inline) values, helped by `finger`.
pub fn insert_with_finger(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
    value: &[u8],
    finger: &mut Option<Finger>,
) -> Result<(Ptr, bool)> {
    check_sizes(key, value.len())?;
    let inline = node::fits_inline(key.len(), value.len(), w.page_size());
    if let Some(f) = finger.as_mut().filter(|f| inline && f.holds(root, key)) {
        let (edit, _) = LeafEdit::find(w, f, key)?;
        if let Some(slot) = edit.apply(w, key, Some(value)) {
            f.slot = slot;
            return Ok((root, edit.found.is_ok()));
        }
    }
    let mut path = Path::default();
    let (root, replaced, landed) = insert_landed(w, sh, root, key, value, &mut path)?;
    *finger = finger_after(w, root, key, &path, landed, finger.take())?;
    Ok((root, replaced))
}

/// Sets `key` to what `change` makes of its stored value (`None`: absent; a `None` result
/// removes the key), for ascending keys in a tree of small inline values, helped by `finger`:
/// while the keys stay inside the finger's leaf, each costs one search there (two key
/// comparisons when it lands just after the previous one) and an edit in place. A change
/// the leaf cannot take (a split, a rebalance, another length) is a full insert or remove.
pub fn modify_with_finger<F, V>(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
    finger: &mut Option<Finger>,
    change: F,
) -> Result<Ptr>
where
    F: FnOnce(Option<&[u8]>) -> Result<Option<V>>,
    V: AsRef<[u8]>,
{
    let root = if finger.as_ref().is_some_and(|f| f.holds(root, key)) || root.is_null() {
        root
    } else {
        // Copying the path is due anyway: the finger then stands on the key's leaf.
        let (path, held) = dirty_finger_path(w, sh, root, key)?;
        *finger = Some(held);
        path
    };
    let Some(f) = finger.as_mut().filter(|f| f.holds(root, key)) else {
        let new = change(super::get(w, root, key)?)?;
        return modify_fully(w, sh, root, key, new, finger);
    };
    let (edit, old) = LeafEdit::find(w, f, key)?;
    let old = match old {
        None => None,
        Some(LeafValue::Inline(value)) => Some(value),
        Some(LeafValue::Overflow { .. }) => {
            return Err(Error::corrupted(
                edit.leaf.page.0,
                "an overflow value in a system tree",
            ))
        }
    };
    let new = change(old)?;
    match edit.apply(w, key, new.as_ref().map(AsRef::as_ref)) {
        Some(slot) => {
            f.slot = slot;
            Ok(root)
        }
        None => modify_fully(w, sh, root, key, new, finger),
    }
}

/// A change to one key of a finger's leaf, as found there.
struct LeafEdit {
    leaf: Ptr,
    /// Where the key is (`Ok`) or would go (`Err`).
    found: std::result::Result<usize, usize>,
    /// The length of the stored value when it is inline (an overflow value is changed only
    /// by a full insert or remove, which releases its run).
    old_len: Option<usize>,
}

impl LeafEdit {
    /// Finds `key` in the leaf of finger `f` (starting at its slot hint); also returns the
    /// value stored there.
    fn find<'a>(
        w: &'a WritePager,
        f: &Finger,
        key: &[u8],
    ) -> Result<(LeafEdit, Option<LeafValue<'a>>)> {
        let view = NodeView::new(w.dirty_page(f.leaf.page), f.leaf.page.0)?;
        let found = view.search_near(key, f.slot)?;
        let old = match found {
            Ok(i) => Some(view.value(i)?),
            Err(_) => None,
        };
        let old_len = match old {
            Some(LeafValue::Inline(value)) => Some(value.len()),
            _ => None,
        };
        let edit = LeafEdit {
            leaf: f.leaf,
            found,
            old_len,
        };
        Ok((edit, old))
    }

    /// Makes the change in the leaf when it needs no split, rebalance or move; returns the
    /// slot where the next ascending key would go, or `None` when the leaf cannot take it.
    fn apply(&self, w: &mut WritePager, key: &[u8], new: Option<&[u8]>) -> Option<usize> {
        let id = self.leaf.page.0;
        match (self.found, new) {
            (Ok(i), Some(value)) if self.old_len == Some(value.len()) => {
                node::overwrite_inline_value(w.page_mut(self.leaf.page), i, value);
                Some(i + 1)
            }
            (Ok(i), None) => {
                let freed = node::leaf_inline_bytes(key.len(), self.old_len?);
                let used = node::used_bytes(w.dirty_page(self.leaf.page));
                keeps_a_quarter(w, used, freed).then(|| {
                    node::remove(w.page_mut(self.leaf.page), id, i);
                    i
                })
            }
            (Err(i), Some(value)) if node::fits_inline(key.len(), value.len(), w.page_size()) => {
                let stored = LeafValue::Inline(value);
                let fits = node::insert(
                    w.page_mut(self.leaf.page),
                    id,
                    i,
                    entry_len(key, stored),
                    |out| node::write_leaf_entry(out, key, stored),
                );
                fits.then_some(i + 1)
            }
            (Err(i), None) => Some(i),
            _ => None,
        }
    }
}

/// The full insert or remove behind [`modify_with_finger`], which then takes the finger
/// again (only on a leaf this transaction copied: a finger edits its leaf in place).
fn modify_fully<V: AsRef<[u8]>>(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
    new: Option<V>,
    finger: &mut Option<Finger>,
) -> Result<Ptr> {
    let mut path = Path::default();
    let (root, _, landed) = match new {
        Some(value) => insert_landed(w, sh, root, key, value.as_ref(), &mut path)?,
        None => remove_landed(w, sh, root, key, &mut path)?,
    };
    *finger = finger_after(w, root, key, &path, landed, finger.take())?;
    Ok(root)
}

/// The finger after an edit of `key` through `path`: on the slot the edit landed in, else
/// (the edit split, spilled or rebalanced) found afresh.
fn finger_after(
    w: &WritePager,
    root: Ptr,
    key: &[u8],
    path: &Path,
    landed: Option<usize>,
    old: Option<Finger>,
) -> Result<Option<Finger>> {
    match landed {
        Some(slot) => Ok(Some(finger_on(w, path, slot, old)?)),
        None => dirty_finger(w, root, key),
    }
}

/// Copies the path to `key` and returns the new root with a finger on the (now dirty) leaf,
/// its bounds read on the way down.
fn dirty_finger_path(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
) -> Result<(Ptr, Finger)> {
    let mut bounds = Bounds::default();
    let mut path = Path::default();
    let choose = |view: &NodeView, _| {
        let i = view.child_index(key)?;
        bounds.narrow(view, i)?;
        Ok(i)
    };
    dirty_path_by(w, sh, root, choose, &mut path)?;
    let root = path[0].ptr;
    let leaf = path.last().expect("path has a leaf").ptr;
    let slot = 0;
    Ok((
        root,
        Finger {
            root,
            leaf,
            slot,
            bounds,
        },
    ))
}

/// The finger at `key`'s leaf when this transaction copied that leaf (a finger edits its
/// leaf in place; a rebalance may leave the key's place in a leaf nothing copied).
fn dirty_finger(w: &WritePager, root: Ptr, key: &[u8]) -> Result<Option<Finger>> {
    if root.is_null() {
        return Ok(None);
    }
    Ok(Some(finger_at(w, root, key)?).filter(|f| f.leaf.txn == w.txn()))
}

/// Whether a node using `used` bytes stays at least a quarter full without `freed` of them
/// (the rule of [`is_underfull`]).
fn keeps_a_quarter(w: &WritePager, used: usize, freed: usize) -> bool {
    !under_a_quarter(w, used - freed)
}

/// Whether a node with `used` bytes of entries holds less than a quarter of a page: the
/// one threshold below which a node is merged or rebalanced with a sibling.
fn under_a_quarter(w: &WritePager, used: usize) -> bool {
    used < node::usable_bytes(w.page_size()) / 4
}

/// Descends the (dirty) path to `key` and records its leaf and bounds.
fn finger_at(w: &WritePager, root: Ptr, key: &[u8]) -> Result<Finger> {
    let mut bounds = Bounds::default();
    let mut ptr = root;
    let mut view = node_at(w, ptr, None)?;
    while !view.is_leaf() {
        let i = view.child_index(key)?;
        bounds.narrow(&view, i)?;
        ptr = view.child(i)?;
        view = node_at(w, ptr, Some(view.level() - 1))?;
    }
    Ok(Finger {
        root,
        leaf: ptr,
        slot: 0,
        bounds,
    })
}

/// The finger on the dirty leaf that ends `path` (reached from its root, nothing above the
/// leaf changed since), with slot hint `slot`; its bounds come from the branches of the path,
/// the deepest first, so mostly from the leaf's parent alone. The buffers of `old` are
/// reused.
fn finger_on(w: &WritePager, path: &[Step], slot: usize, old: Option<Finger>) -> Result<Finger> {
    let mut bounds = old.map(|f| f.bounds).unwrap_or_default();
    let (mut low, mut high) = (None, None);
    // Bounded: one round per branch of the path.
    for step in path[..path.len() - 1].iter().rev() {
        let view = node_at(w, step.ptr, None)?;
        if low.is_none() && step.idx > 0 {
            low = Some(view.key(step.idx)?);
        }
        if high.is_none() && step.idx + 1 < view.count() {
            high = Some(view.key(step.idx + 1)?);
        }
        if low.is_some() && high.is_some() {
            break;
        }
    }
    set_bound(&mut bounds.low, low);
    set_bound(&mut bounds.high, high);
    Ok(Finger {
        root: path[0].ptr,
        leaf: path.last().expect("path has a leaf").ptr,
        slot,
        bounds,
    })
}

/// Sets a bound to `key`, reusing its buffer.
fn set_bound(bound: &mut Option<Vec<u8>>, key: Option<&[u8]>) {
    match (bound.as_mut(), key) {
        (Some(buf), Some(key)) => {
            buf.clear();
            buf.extend_from_slice(key);
        }
        (_, key) => *bound = key.map(<[u8]>::to_vec),
    }
}

/// Removes `key`. Returns the new root and whether the key was there.
pub fn remove(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
) -> Result<(Ptr, bool)> {
    let mut path = Path::default();
    remove_landed(w, sh, root, key, &mut path).map(|(root, found, _)| (root, found))
}

/// [`remove`], also telling where the key was; `path` is left holding the dirty path.
fn remove_landed(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    root: Ptr,
    key: &[u8],
    path: &mut Path,
) -> Result<(Ptr, bool, Landed)> {
    let Some(slot) = super::locate(w, root, key, path)? else {
        return Ok((root, false, None));
    };
    dirty_path_along(w, sh, path)?;
    let leaf = path.last().expect("path has a leaf").ptr;
    let view = NodeView::new(w.page_mut(leaf.page), leaf.page.0)?;
    assert!(view.key(slot)? == key, "the located slot holds another key");
    if let LeafValue::Overflow { ptr, len } = view.value(slot)? {
        release_overflow(w, sh, ptr, len)?;
    }
    node::remove(w.page_mut(leaf.page), leaf.page.0, slot);
    if path.len() > 1 && !is_underfull(w, leaf) {
        // Only the leaf changed, and it needs no rebalance: the branches above keep their
        // entries and the root its shape.
        return Ok((path[0].ptr, true, Some(slot)));
    }
    let root = fix_up(w, sh, path, None, true)?;
    Ok((root, true, None))
}

/// Walks the path bottom-up: inserts split halves into parents, rebalances underfull
/// children (only after a remove: an insert never empties a node, and rebalancing the lone
/// entry of an append split would undo it), grows or shrinks the root. Returns the new root.
fn fix_up(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    path: &[Step],
    mut split: Option<(Vec<u8>, Ptr)>,
    after_remove: bool,
) -> Result<Ptr> {
    for level in (0..path.len() - 1).rev() {
        let parent = path[level].ptr;
        let idx = path[level].idx;
        if let Some((sep, right)) = split.take() {
            let mut entry = vec![0u8; node::branch_entry_bytes(sep.len()) - node::SLOT_BYTES];
            node::write_branch_entry(&mut entry, &sep, right);
            split = insert_or_split(w, parent, idx + 1, &entry)?;
        } else if after_remove && is_underfull(w, path[level + 1].ptr) {
            split = rebalance(w, sh, parent, idx)?;
        }
    }
    let mut root = path[0].ptr;
    if let Some((sep, right)) = split {
        let level = node_at(w, root, None)?.level() + 1;
        let new_root = w.new_node(level)?;
        let mut left_entry = vec![0u8; node::branch_entry_bytes(0) - node::SLOT_BYTES];
        node::write_branch_entry(&mut left_entry, &[], root);
        let mut right_entry = vec![0u8; node::branch_entry_bytes(sep.len()) - node::SLOT_BYTES];
        node::write_branch_entry(&mut right_entry, &sep, right);
        let page = w.page_mut(new_root.page);
        assert!(node::push_raw(page, new_root.page.0, &left_entry));
        assert!(node::push_raw(page, new_root.page.0, &right_entry));
        root = new_root;
    }
    // Shrink: a branch root with one child gives way to it; an empty leaf root empties the tree.
    loop {
        let view = node_at(w, root, None)?;
        if view.is_leaf() {
            if view.count() == 0 {
                w.free_node(root)?;
                return Ok(Ptr::default());
            }
            return Ok(root);
        }
        if view.count() != 1 {
            return Ok(root);
        }
        let child = view.child(0)?;
        w.free_node(root)?;
        root = child;
    }
}

/// Whether the dirty node `ptr` is under a quarter full (from its header: a dirty page was
/// validated when it was copied and edits keep it valid).
fn is_underfull(w: &WritePager, ptr: Ptr) -> bool {
    under_a_quarter(w, node::used_bytes(w.dirty_page(ptr.page)))
}

/// A separator and a new right node for a parent to take after a child's split.
type Split = Option<(Vec<u8>, Ptr)>;

/// Inserts raw entry `entry` at `idx` of the (dirty) leaf that ends `path`, which does not
/// have room for it: [`spill`] shares the leaf's entries with its siblings first, unless the
/// entry lands past the last entry of a leaf with no right sibling (ascending inserts at the
/// end of a tree or of a branch: the append split packs them); a root leaf or a refused
/// spill splits ([`insert_or_split`]). Only tables spill: the system trees are written in
/// ascending runs (the refcount flush goes in page order), which a spill would rewrite
/// sibling after sibling and an append split packs.
fn insert_leaf(
    w: &mut WritePager,
    sh: &mut Sharing,
    path: &[Step],
    idx: usize,
    entry: &[u8],
) -> Result<Split> {
    let leaf = path.last().expect("path has a leaf").ptr;
    let parent = path.len().checked_sub(2).and_then(|i| path.get(i));
    if let Some(&parent) = parent.filter(|_| sh.kind() == TreeKind::Table) {
        let count = NodeView::new(w.dirty_page(leaf.page), leaf.page.0)?.count();
        let last_child = parent.idx + 1 == node_at(w, parent.ptr, None)?.count();
        if idx < count || !last_child {
            if let Some(split) = spill(w, sh, parent, leaf, idx, entry)? {
                return Ok(split);
            }
        }
    }
    insert_or_split(w, leaf, idx, entry)
}

/// The B*-tree answer to a leaf overflow: the entries of `leaf` (child `parent.idx` of the
/// dirty branch `parent.ptr`) with `entry` at `idx` are shared with its siblings (see
/// [`plan_spill`]: into one sibling, else over both, else into one more leaf). The siblings
/// written are made writable through [`cow`]. Returns the split for the parent (`Some(None)`
/// when there is none), or None, changing nothing, when no cut fits or the parent cannot
/// take the longer separators: the caller then splits.
fn spill(
    w: &mut WritePager,
    sh: &mut Sharing,
    parent: Step,
    leaf: Ptr,
    idx: usize,
    entry: &[u8],
) -> Result<Option<Split>> {
    let li = parent.idx;
    let SpillWindow {
        lo,
        children: window,
        free,
    } = spill_window(w, parent.ptr, li)?;
    if window.len() < 2 {
        return Ok(None);
    }
    // Copies of the pages (the entries are rewritten in place), not an allocation each.
    let pages: Vec<Vec<u8>> = window
        .iter()
        .map(|&(ptr, _)| Ok(node_at(w, ptr, Some(0))?.page_bytes().to_vec()))
        .collect::<Result<_>>()?;
    let views: Vec<NodeView> = pages
        .iter()
        .zip(&window)
        .map(|(page, &(ptr, _))| NodeView::new(page, ptr.page.0))
        .collect::<Result<_>>()?;
    let usable = node::usable_bytes(w.page_size());
    let Some(plan) = plan_spill(&views, li - lo, idx, entry, usable)? else {
        return Ok(None);
    };
    let seps: Vec<Vec<u8>> = plan.cuts[1..plan.cuts.len() - 1]
        .iter()
        .map(|&c| shortest_separator(entry_key(plan.all[c - 1], 0), entry_key(plan.all[c], 0)))
        .collect();
    // Nodes in key order: the window's, with a new leaf right after `leaf` (where the parent
    // takes the split) when there is one part more than nodes.
    let nodes = plan.nodes.clone();
    let new_at = (plan.cuts.len() - 1 > nodes.len()).then_some(li - lo - nodes.start + 1);
    let keyed = |k: usize| new_at.map_or(k, |n| k + usize::from(k >= n));
    let growth: usize = (nodes.start + 1..nodes.end)
        .map(|k| node::branch_entry_bytes(seps[keyed(k - nodes.start) - 1].len()))
        .zip(&window[nodes.start + 1..nodes.end])
        .map(|(new, &(_, old))| (new - node::SLOT_BYTES).saturating_sub(old))
        .sum();
    if growth > free {
        return Ok(None);
    }
    let mut order = Vec::with_capacity(nodes.len() + 1);
    for k in nodes.clone() {
        let dirty = if lo + k == li {
            leaf
        } else {
            cow(w, sh, window[k].0)?
        };
        node::set_child(w.page_mut(parent.ptr.page), lo + k, dirty);
        order.push(dirty);
    }
    if let Some(n) = new_at {
        order.insert(n, w.new_node(0)?);
    }
    for (part, ptr) in plan.cuts.windows(2).zip(&order) {
        fill(w, *ptr, 0, &plan.all[part[0]..part[1]]);
    }
    for k in nodes.start + 1..nodes.end {
        set_key(w, parent.ptr, lo + k, &seps[keyed(k - nodes.start) - 1])?;
    }
    Ok(Some(new_at.map(|n| (seps[n - 1].clone(), order[n]))))
}

/// The leaves a spill may write: children `lo..lo + children.len()` of the parent, at most
/// one each side of the overflowing leaf.
struct SpillWindow {
    lo: usize,
    /// Each child with the length of its entry in the parent.
    children: Vec<(Ptr, usize)>,
    /// The parent's free bytes.
    free: usize,
}

/// The [`SpillWindow`] around child `li` of dirty branch `parent`.
fn spill_window(w: &WritePager, parent: Ptr, li: usize) -> Result<SpillWindow> {
    let view = node_at(w, parent, None)?;
    let lo = li.saturating_sub(1);
    let hi = (li + 1).min(view.count() - 1);
    let children = (lo..=hi)
        .map(|i| Ok((view.child(i)?, view.entry(i)?.len())))
        .collect::<Result<_>>()?;
    let free = node::free_bytes(view.page_bytes());
    Ok(SpillWindow { lo, children, free })
}

/// Where a spill puts the entries: the nodes of the window it rewrites, their raw entries in
/// key order with the new one, and the cuts between the parts (one part more than nodes
/// when a leaf is added).
struct SpillPlan<'a> {
    nodes: std::ops::Range<usize>,
    all: Vec<&'a [u8]>,
    cuts: Vec<usize>,
}

/// The cheapest spill that fits, tried in order: the leaf (window node `at`) and its right
/// sibling cut evenly in two; with its left sibling; the three cut in three; the three cut
/// in four (each about 3/4 full); with only one sibling, the two cut in three (each about
/// 2/3 full). None when no cut fits (huge entries). A node's entries are listed once, when
/// a try first needs them.
fn plan_spill<'a>(
    views: &[NodeView<'a>],
    at: usize,
    idx: usize,
    entry: &'a [u8],
    usable: usize,
) -> Result<Option<SpillPlan<'a>>> {
    let n = views.len();
    let mut tries: Vec<(std::ops::Range<usize>, usize)> = Vec::with_capacity(4);
    if at + 1 < n {
        tries.push((at..at + 2, 2));
    }
    if at > 0 {
        tries.push((at - 1..at + 1, 2));
    }
    tries.extend([(0..n, n), (0..n, n + 1)]);
    tries.dedup();
    let mut lists: Vec<Option<Vec<&[u8]>>> = vec![None; n];
    for (nodes, parts) in tries {
        let listed = views[nodes.clone()]
            .iter()
            .map(NodeView::count)
            .sum::<usize>();
        let mut all = Vec::with_capacity(listed + 1);
        for k in nodes.clone() {
            if lists[k].is_none() {
                let mut list = views[k].entries()?;
                if k == at {
                    // The new entry goes at `idx` among the leaf's entries.
                    list.insert(idx, entry);
                }
                lists[k] = Some(list);
            }
            all.extend_from_slice(lists[k].as_deref().expect("listed above"));
        }
        let sizes: Vec<usize> = all.iter().map(|e| e.len() + node::SLOT_BYTES).collect();
        if let Some(cuts) = even_cuts(&sizes, parts, usable) {
            return Ok(Some(SpillPlan { nodes, all, cuts }));
        }
    }
    Ok(None)
}

/// Cuts entries of `sizes` bytes into `parts` runs of about equal bytes (each cut at the
/// entry boundary nearest its share); None unless every run is non-empty and fits `usable`.
fn even_cuts(sizes: &[usize], parts: usize, usable: usize) -> Option<Vec<usize>> {
    let total: usize = sizes.iter().sum();
    let mut cuts = vec![0];
    let (mut acc, mut i) = (0, 0);
    for part in 1..parts {
        let share = total * part / parts;
        // Bounded: `i` only grows, up to the number of entries.
        while i < sizes.len() && acc + sizes[i] / 2 <= share {
            acc += sizes[i];
            i += 1;
        }
        cuts.push(i);
    }
    cuts.push(sizes.len());
    let fits = cuts
        .windows(2)
        .all(|c| c[0] < c[1] && sizes[c[0]..c[1]].iter().sum::<usize>() <= usable);
    fits.then_some(cuts)
}

/// Gives entry `i` of dirty branch `parent` the key `key` (its child stays); the caller has
/// checked that the page has room for the longer entry.
fn set_key(w: &mut WritePager, parent: Ptr, i: usize, key: &[u8]) -> Result<()> {
    let new = with_key(node_at(w, parent, None)?.entry(i)?, key);
    let page = w.page_mut(parent.page);
    node::remove(page, parent.page.0, i);
    assert!(
        node::insert(page, parent.page.0, i, new.len(), |out| out
            .copy_from_slice(&new)),
        "a separator replaced in a branch with room"
    );
    Ok(())
}

/// Inserts a raw entry at `idx` of dirty node `ptr`; when it does not fit, splits the node
/// and returns the separator and the new right node for the parent.
fn insert_or_split(
    w: &mut WritePager,
    ptr: Ptr,
    idx: usize,
    entry: &[u8],
) -> Result<Option<(Vec<u8>, Ptr)>> {
    let page = w.page_mut(ptr.page);
    if node::insert(page, ptr.page.0, idx, entry.len(), |out| {
        out.copy_from_slice(entry)
    }) {
        return Ok(None);
    }
    let view = NodeView::new(page, ptr.page.0)?;
    let level = view.level();
    if idx == view.count() {
        return append_split(w, ptr, level, entry).map(Some);
    }
    // One copy of the page to read the entries from while the node is rewritten.
    let copy = view.page_bytes().to_vec();
    let view = NodeView::new(&copy, ptr.page.0)?;
    let mut entries = view.entries()?;
    entries.insert(idx, entry);
    let (sep, right) = distribute(w, ptr, level, &entries)?;
    Ok(Some((
        sep,
        right.expect("an overflowing node splits in two"),
    )))
}

/// Splits the full dirty node `ptr` for `entry`, which sorts after every entry in it
/// (ascending inserts, a sorted flush): the node keeps its entries up to about 15/16 of a page
/// (so a sorted load packs its leaves, and the first random insert into one still fits), and
/// the rest move with `entry` to a new right sibling. Nothing is re-encoded: the moved entries are copied off the node's end and cut
/// from it (`node::truncate`: ascending inserts laid them out lowest, so the free end moves
/// past them and the node keeps no garbage).
/// Returns the separator and the new node.
fn append_split(w: &mut WritePager, ptr: Ptr, level: u8, entry: &[u8]) -> Result<(Vec<u8>, Ptr)> {
    let usable = node::usable_bytes(w.page_size());
    let target = usable - usable / 16;
    let view = NodeView::new(w.dirty_page(ptr.page), ptr.page.0)?;
    let count = view.count();
    // The cut is the number of leading entries (with slots) that fit in `target`, found
    // from the end: the bytes of the first `cut` are the node's used bytes (from its
    // header, which a dirty node keeps true) less those of the rest, and the rest is short.
    let used = view.used_bytes();
    let (mut cut, mut rest) = (count, 0);
    // Bounded: at most `count` entries.
    while cut > 0 && used - rest > target {
        cut -= 1;
        rest += view.entry(cut)?.len() + node::SLOT_BYTES;
    }
    let cut = cut.max(1);
    let mut right_entries: Vec<Vec<u8>> = (cut..count)
        .map(|i| view.entry(i).map(<[u8]>::to_vec))
        .collect::<Result<_>>()?;
    right_entries.push(entry.to_vec());
    let sep = split_key(view.entry(cut - 1)?, &mut right_entries[0], level);
    node::truncate(w.page_mut(ptr.page), ptr.page.0, cut);
    let right = w.new_node(level)?;
    let page = w.page_mut(right.page);
    for e in &right_entries {
        assert!(node::push_raw(page, right.page.0, e), "moved entries fit");
    }
    Ok((sep, right))
}

/// Rebalances the underfull child `idx` of dirty branch `parent` with a sibling: merges the
/// two when they fit in one page, else shares their entries evenly.
fn rebalance(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    parent: Ptr,
    idx: usize,
) -> Result<Option<(Vec<u8>, Ptr)>> {
    let view = node_at(w, parent, None)?;
    if view.count() < 2 {
        return Ok(None);
    }
    let (li, ri) = if idx > 0 {
        (idx - 1, idx)
    } else {
        (idx, idx + 1)
    };
    let (left, right) = (view.child(li)?, view.child(ri)?);
    let sep = view.key(ri)?.to_vec();
    let child_level = view.level() - 1;
    // Both become writable first: a shared sibling's children gain the merged node as parent.
    let left = cow(w, sh, left)?;
    let right = cow(w, sh, right)?;
    // Copies of the two pages to read the entries from while they are rewritten.
    let left_copy = node_at(w, left, Some(child_level))?.page_bytes().to_vec();
    let right_copy = node_at(w, right, Some(child_level))?.page_bytes().to_vec();
    let mut entries = NodeView::new(&left_copy, left.page.0)?.entries()?;
    let first_right = entries.len();
    entries.extend(NodeView::new(&right_copy, right.page.0)?.entries()?);
    let keyed;
    if child_level > 0 {
        // The right node's first entry has an empty key: it takes the parent's separator.
        keyed = with_key(entries[first_right], &sep);
        entries[first_right] = &keyed;
    }
    w.free_node(right)?;
    let (new_sep, new_right) = distribute(w, left, child_level, &entries)?;
    let page = w.page_mut(parent.page);
    node::remove(page, parent.page.0, ri);
    node::set_child(page, li, left);
    match new_right {
        None => Ok(None),
        Some(new_right) => {
            let mut entry = vec![0u8; node::branch_entry_bytes(new_sep.len()) - node::SLOT_BYTES];
            node::write_branch_entry(&mut entry, &new_sep, new_right);
            insert_or_split(w, parent, ri, &entry)
        }
    }
}

/// A branch entry with its key replaced.
fn with_key(entry: &[u8], key: &[u8]) -> Vec<u8> {
    let ptr = node::branch_entry_child(entry);
    let mut out = vec![0u8; node::branch_entry_bytes(key.len()) - node::SLOT_BYTES];
    node::write_branch_entry(&mut out, key, ptr);
    out
}

/// The separator between a split's halves, from the left half's last entry and the right
/// half's first: for leaves the shortest key between them; for branches the right half's
/// first key, which moves up and leaves an empty key in its entry.
fn split_key(last_left: &[u8], first_right: &mut Vec<u8>, level: u8) -> Vec<u8> {
    if level == 0 {
        return shortest_separator(entry_key(last_left, 0), entry_key(first_right, 0));
    }
    let sep = entry_key(first_right, level).to_vec();
    *first_right = with_key(first_right, &[]);
    sep
}

fn entry_key(entry: &[u8], level: u8) -> &[u8] {
    node::entry_key(entry, level == 0)
}

/// Rewrites node `left` with `entries`, spilling about half of their bytes into a new right
/// node when they do not fit in one page. Returns the separator and the right node, if any.
/// The entries are read from elsewhere than the node (a copy of its page).
fn distribute(
    w: &mut WritePager,
    left: Ptr,
    level: u8,
    entries: &[&[u8]],
) -> Result<(Vec<u8>, Option<Ptr>)> {
    let usable = node::usable_bytes(w.page_size());
    let total: usize = entries.iter().map(|e| e.len() + node::SLOT_BYTES).sum();
    if total <= usable {
        fill(w, left, level, entries);
        return Ok((Vec::new(), None));
    }
    let mut acc = 0;
    let mut cut = 0;
    while cut < entries.len() && acc + entries[cut].len() + node::SLOT_BYTES <= total / 2 {
        acc += entries[cut].len() + node::SLOT_BYTES;
        cut += 1;
    }
    let cut = cut.clamp(1, entries.len() - 1);
    let (left_entries, right_entries) = entries.split_at(cut);
    let (last_left, first_right) = (left_entries[cut - 1], right_entries[0]);
    let mut first = first_right.to_vec();
    let sep = split_key(last_left, &mut first, level);
    let mut right_entries = right_entries.to_vec();
    right_entries[0] = &first;
    let right = w.new_node(level)?;
    fill(w, left, level, left_entries);
    fill(w, right, level, &right_entries);
    Ok((sep, Some(right)))
}

/// Rewrites dirty node `ptr` at `level` with `entries`, which fit in one page.
fn fill<E: AsRef<[u8]>>(w: &mut WritePager, ptr: Ptr, level: u8, entries: &[E]) {
    let page = w.page_mut(ptr.page);
    assert!(
        node::fill_raw(page, level, ptr.page.0, ptr.txn.0, entries),
        "distributed entries fit"
    );
}

/// The shortest key `s` with `left < s ≤ right` (prefix truncation of separators).
pub(crate) fn shortest_separator(left: &[u8], right: &[u8]) -> Vec<u8> {
    debug_assert!(left < right);
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    right[..(common + 1).min(right.len())].to_vec()
}

/// Checksums every dirty page under `root` bottom-up and returns the sealed root pointer.
pub fn seal(w: &mut WritePager, root: Ptr) -> Result<Ptr> {
    if root.is_null() || root.txn != w.txn() {
        return Ok(root);
    }
    let view = node_at(w, root, None)?;
    if !view.is_leaf() {
        for (i, child) in view.children_born_in(w.txn().0)? {
            let sealed = seal(w, child)?;
            node::set_child(w.page_mut(root.page), i, sealed);
        }
    }
    Ok(w.seal(root.page))
}

#[cfg(test)]
mod tests {
    use super::shortest_separator;

    #[test]
    fn separators_are_short_and_between() {
        assert_eq!(shortest_separator(b"apple", b"banana"), b"b");
        assert_eq!(shortest_separator(b"abc", b"abd"), b"abd");
        assert_eq!(shortest_separator(b"ab", b"abc"), b"abc");
        assert_eq!(shortest_separator(b"abc1", b"abd"), b"abd");
    }
}
