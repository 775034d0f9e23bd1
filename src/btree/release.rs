//! The release queue: pointers whose reference is being dropped (deleted snapshots,
//! branches and tables), a few per commit, so that dropping a whole tree costs each commit a
//! bounded step.
//!
//! Invariants:
//! - The queue is a stack (largest sequence first), so dropping a tree is a depth-first walk
//!   whose queue holds at most depth × fanout entries.
//! - A queued pointer holds the reference it drops: a page it reaches stays counted until its
//!   entry is processed.

use super::share::{Refcounts, Sharing};
use super::traverse::{targets, TreeKind};
use super::{node_at, Bound, Cursor};
use crate::format::records::{decode_release, encode_release, Released};
use crate::format::Ptr;
use crate::pager::WritePager;
use crate::{Error, Result};

/// The release queue: pointers whose reference is being dropped, a few per commit.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReleaseQueue {
    /// Root of the queue tree.
    pub root: Ptr,
    /// The next sequence number.
    pub seq: u64,
}

impl ReleaseQueue {
    /// Queues `ptr` for release.
    /// Pages written by this transaction are not sealed yet (their checksums are not in
    /// their parents), so they are released at once, down to the committed pages below them,
    /// which are queued.
    pub fn push(&mut self, w: &mut WritePager, ptr: Ptr, what: Released) -> Result<()> {
        if ptr.is_null() {
            return Ok(());
        }
        if ptr.txn == w.txn() {
            return self.free_now(w, ptr, what);
        }
        let key = self.seq.to_be_bytes();
        self.seq += 1;
        self.root = super::insert(
            w,
            &mut Sharing::system(TreeKind::Release),
            self.root,
            &key,
            &encode_release(ptr, what),
        )?
        .0;
        Ok(())
    }

    /// Frees the page (or run) behind `ptr`, whose last reference is being dropped, and
    /// queues its children.
    fn free_now(&mut self, w: &mut WritePager, ptr: Ptr, what: Released) -> Result<()> {
        let kind = match what {
            Released::Overflow(len) => return w.free_overflow(ptr, len),
            Released::CatalogNode => TreeKind::Catalog,
            Released::TableNode => TreeKind::Table,
        };
        let kids = targets(&node_at(w, ptr, None)?, kind)?;
        for child in kids {
            let what = child.target.released().ok_or_else(|| {
                Error::corrupted(ptr.page.0, "a released node points at a system tree")
            })?;
            self.push(w, child.ptr, what)?;
        }
        w.free_node(ptr)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.root.is_null()
    }

    /// An empty queue is a null root, not an empty leaf left behind by the last removal: a
    /// compaction then has no page of it to move.
    fn drop_empty_root(&mut self, w: &mut WritePager) -> Result<()> {
        if !self.root.is_null() {
            let root = std::mem::take(&mut self.root);
            assert!(
                super::node_at(w, root, None)?.count() == 0,
                "an empty queue's root holds entries"
            );
            w.free_node(root)?;
        }
        Ok(())
    }

    /// Releases up to `budget` queued pointers: a shared page loses one reference; an
    /// unshared one is freed and its children are queued. Returns how many were released.
    pub fn process(
        &mut self,
        w: &mut WritePager,
        refs: &mut Refcounts,
        budget: usize,
    ) -> Result<usize> {
        for done in 0..budget {
            let last = {
                let mut cursor = Cursor::new(w, self.root, Bound::Unbounded, Bound::Unbounded);
                match cursor.next_back() {
                    None => return self.drop_empty_root(w).map(|()| done),
                    Some(item) => {
                        let (key, value) = item?;
                        (key.to_vec(), decode_release(value, self.root.page.0)?)
                    }
                }
            };
            let (key, (ptr, what)) = last;
            self.root =
                super::remove(w, &mut Sharing::system(TreeKind::Release), self.root, &key)?.0;
            // `push` releases pages born in this txn at once: every queued page is committed.
            if refs.drop_if_shared(w, ptr.page.0)? {
                continue;
            }
            self.free_now(w, ptr, what)?;
        }
        Ok(budget)
    }
}
