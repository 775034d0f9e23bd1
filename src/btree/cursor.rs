//! A double-ended range cursor over one tree.
//!
//! Invariants: each end keeps its root-to-leaf path (bounded by [`super::MAX_DEPTH`]); the
//! ends never cross, because each stops at the last key the other end returned.

use super::{node_at, value_bytes, MAX_DEPTH};
use crate::format::node::NodeView;
use crate::format::Ptr;
use crate::pager::PageSource;
use crate::{Error, Result};

/// One end of a key range.
#[derive(Clone, Debug)]
pub enum Bound {
    /// Keys from (or up to) this one, inclusive.
    Included(Vec<u8>),
    /// Keys past (or before) this one.
    Excluded(Vec<u8>),
    /// No limit.
    Unbounded,
}

struct End<'s> {
    /// Branches above the leaf: (node, index of the child followed).
    path: Vec<(NodeView<'s>, usize)>,
    leaf: Option<NodeView<'s>>,
    /// Next index to yield from `leaf` (front: counts up; back: one past, counts down).
    idx: usize,
}

/// Iterates `(key, value)` pairs of a tree within bounds, from both ends.
pub struct Cursor<'s, S: PageSource + ?Sized> {
    src: &'s S,
    front: Option<End<'s>>,
    back: Option<End<'s>>,
    low: Bound,
    high: Bound,
    root: Ptr,
    last_front: Option<&'s [u8]>,
    last_back: Option<&'s [u8]>,
    done: bool,
}

impl<'s, S: PageSource + ?Sized> Cursor<'s, S> {
    /// A cursor over `[low, high]` of the tree under `root`; positions lazily.
    pub fn new(src: &'s S, root: Ptr, low: Bound, high: Bound) -> Self {
        Cursor {
            src,
            front: None,
            back: None,
            low,
            high,
            root,
            last_front: None,
            last_back: None,
            done: root.is_null(),
        }
    }

    fn descend(
        &self,
        mut ptr: Ptr,
        level: Option<u8>,
        path: &mut Vec<(NodeView<'s>, usize)>,
        pick: &dyn Fn(&NodeView<'s>) -> Result<usize>,
    ) -> Result<NodeView<'s>> {
        let mut view = node_at(self.src, ptr, level)?;
        while !view.is_leaf() {
            if path.len() >= MAX_DEPTH {
                return Err(Error::corrupted(
                    ptr.page.0,
                    "cursor path deeper than the limit",
                ));
            }
            let i = pick(&view)?.min(view.count() - 1);
            ptr = view.child(i)?;
            path.push((view, i));
            view = node_at(self.src, ptr, Some(view.level() - 1))?;
        }
        Ok(view)
    }

    fn seek_front(&self) -> Result<End<'s>> {
        let mut path = Vec::new();
        let key = match &self.low {
            Bound::Included(k) | Bound::Excluded(k) => Some(k.as_slice()),
            Bound::Unbounded => None,
        };
        let leaf = self.descend(self.root, None, &mut path, &|v| match key {
            Some(k) => v.child_index(k),
            None => Ok(0),
        })?;
        let idx = match &self.low {
            Bound::Included(k) => leaf.search(k)?.unwrap_or_else(|i| i),
            Bound::Excluded(k) => leaf.search(k)?.map_or_else(|i| i, |i| i + 1),
            Bound::Unbounded => 0,
        };
        Ok(End {
            path,
            leaf: Some(leaf),
            idx,
        })
    }

    fn seek_back(&self) -> Result<End<'s>> {
        let mut path = Vec::new();
        let key = match &self.high {
            Bound::Included(k) | Bound::Excluded(k) => Some(k.as_slice()),
            Bound::Unbounded => None,
        };
        let leaf = self.descend(self.root, None, &mut path, &|v| match key {
            Some(k) => v.child_index(k),
            None => Ok(v.count() - 1),
        })?;
        let idx = match &self.high {
            Bound::Included(k) => leaf.search(k)?.map_or_else(|i| i, |i| i + 1),
            Bound::Excluded(k) => leaf.search(k)?.unwrap_or_else(|i| i),
            Bound::Unbounded => leaf.count(),
        };
        Ok(End {
            path,
            leaf: Some(leaf),
            idx,
        })
    }

    /// Moves `end` to the next leaf to the right (front) or left (back); None at the edge.
    fn step_leaf(&self, end: &mut End<'s>, forward: bool) -> Result<()> {
        loop {
            let Some((view, i)) = end.path.pop() else {
                end.leaf = None;
                return Ok(());
            };
            let next = if forward { i + 1 } else { i.wrapping_sub(1) };
            if next < view.count() {
                let child = view.child(next)?;
                end.path.push((view, next));
                let leaf = self.descend(child, Some(view.level() - 1), &mut end.path, &|v| {
                    Ok(if forward { 0 } else { v.count() - 1 })
                })?;
                end.idx = if forward { 0 } else { leaf.count() };
                end.leaf = Some(leaf);
                return Ok(());
            }
        }
    }

    /// The front's next entry when it is the common case: in the current leaf, inline, within
    /// the bounds. None sends the step to [`Cursor::next_front`], which decides every case
    /// (and reports a damaged entry); this only saves a scan's step the general path's work.
    #[inline(always)]
    fn next_in_leaf(&mut self) -> Option<(&'s [u8], &'s [u8])> {
        let end = self.front.as_mut()?;
        let leaf = end.leaf.as_ref()?;
        if end.idx >= leaf.count() {
            return None;
        }
        let (key, value) = leaf.inline_entry(end.idx)?;
        if !front_may_yield(&self.high, self.last_back, key) {
            return None;
        }
        end.idx += 1;
        self.last_front = Some(key);
        Some((key, value))
    }

    /// [`Cursor::next_in_leaf`] for the back end.
    #[inline(always)]
    fn next_back_in_leaf(&mut self) -> Option<(&'s [u8], &'s [u8])> {
        let end = self.back.as_mut()?;
        let idx = end.idx.checked_sub(1)?;
        let (key, value) = end.leaf.as_ref()?.inline_entry(idx)?;
        if !back_may_yield(&self.low, self.last_front, key) {
            return None;
        }
        end.idx = idx;
        self.last_back = Some(key);
        Some((key, value))
    }

    fn next_front(&mut self) -> Result<Option<(&'s [u8], &'s [u8])>> {
        if self.front.is_none() {
            self.front = Some(self.seek_front()?);
        }
        loop {
            let end = self.front.as_ref().expect("set above");
            let Some(leaf) = end.leaf else {
                return Ok(None);
            };
            let idx = end.idx;
            if idx < leaf.count() {
                let (key, value) = leaf.key_value(idx)?;
                if !front_may_yield(&self.high, self.last_back, key) {
                    return Ok(None);
                }
                let value = value_bytes(self.src, value)?;
                self.front.as_mut().expect("set above").idx = idx + 1;
                self.last_front = Some(key);
                return Ok(Some((key, value)));
            }
            let mut end = self.front.take().expect("set above");
            let stepped = self.step_leaf(&mut end, true);
            self.front = Some(end);
            stepped?;
        }
    }

    fn next_back(&mut self) -> Result<Option<(&'s [u8], &'s [u8])>> {
        if self.back.is_none() {
            self.back = Some(self.seek_back()?);
        }
        loop {
            let end = self.back.as_ref().expect("set above");
            let Some(leaf) = end.leaf else {
                return Ok(None);
            };
            let idx = end.idx;
            if idx > 0 {
                let (key, value) = leaf.key_value(idx - 1)?;
                if !back_may_yield(&self.low, self.last_front, key) {
                    return Ok(None);
                }
                let value = value_bytes(self.src, value)?;
                self.back.as_mut().expect("set above").idx = idx - 1;
                self.last_back = Some(key);
                return Ok(Some((key, value)));
            }
            let mut end = self.back.take().expect("set above");
            let stepped = self.step_leaf(&mut end, false);
            self.back = Some(end);
            stepped?;
        }
    }

    fn finish(
        &mut self,
        r: Result<Option<(&'s [u8], &'s [u8])>>,
    ) -> Option<Result<(&'s [u8], &'s [u8])>> {
        match r {
            Ok(Some(item)) => Some(Ok(item)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// Whether the front end may yield `key`: within the high bound, and before the last key
/// the back end yielded (the ends never cross).
#[inline(always)]
fn front_may_yield(high: &Bound, last_back: Option<&[u8]>, key: &[u8]) -> bool {
    let within = match high {
        Bound::Included(k) => key <= k.as_slice(),
        Bound::Excluded(k) => key < k.as_slice(),
        Bound::Unbounded => true,
    };
    within && last_back.is_none_or(|b| key < b)
}

/// [`front_may_yield`] for the back end: within the low bound, after the front's last key.
#[inline(always)]
fn back_may_yield(low: &Bound, last_front: Option<&[u8]>, key: &[u8]) -> bool {
    let within = match low {
        Bound::Included(k) => key >= k.as_slice(),
        Bound::Excluded(k) => key > k.as_slice(),
        Bound::Unbounded => true,
    };
    within && last_front.is_none_or(|f| key > f)
}

impl<'s, S: PageSource + ?Sized> Iterator for Cursor<'s, S> {
    type Item = Result<(&'s [u8], &'s [u8])>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(item) = self.next_in_leaf() {
            return Some(Ok(item));
        }
        let r = self.next_front();
        self.finish(r)
    }
}

impl<'s, S: PageSource + ?Sized> DoubleEndedIterator for Cursor<'s, S> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if let Some(item) = self.next_back_in_leaf() {
            return Some(Ok(item));
        }
        let r = Cursor::next_back(self);
        self.finish(r)
    }
}
