//! Pages reached from roots, each once: the one walk behind the listings' byte counts,
//! `stats`' live bytes and a compaction's list of the refcount tree's pages.
//!
//! Invariants:
//! - A page (a node, or an overflow run by its first page) is offered to `admit` and counted
//!   at most once per `PageWalk`, however many roots or parents reach it; a page not admitted
//!   is not descended.
//! - An overflow run is counted without being read, after a check that it lies inside the
//!   state's data pages; counts saturate, so overlapping runs in a damaged file cannot
//!   overflow them.

use crate::btree::traverse::{traverse, Child, Edge, Enter, TreeKind, Visitor};
use crate::format::node::NodeView;
use crate::format::{first_data_page, Ptr};
use crate::pager::{overflow_pages, IdSet, PageSource, ReadPages};
use crate::{Error, Result};

/// A count of the pages that `admit` lets in, over any number of trees.
pub(super) struct PageWalk<'p, F> {
    pages: &'p ReadPages,
    seen: IdSet,
    admit: F,
    /// Pages counted so far.
    pub(super) count: u64,
}

impl<'p, F: FnMut(Ptr) -> Result<bool>> PageWalk<'p, F> {
    pub(super) fn new(pages: &'p ReadPages, admit: F) -> Self {
        PageWalk {
            pages,
            seen: IdSet::default(),
            admit,
            count: 0,
        }
    }

    /// Counts the pages of the `kind` tree under `root` (null: none) not counted before.
    pub(super) fn walk(&mut self, root: Ptr, kind: TreeKind) -> Result<()> {
        traverse(self.pages, root, kind, self)
    }
}

impl<'p, F: FnMut(Ptr) -> Result<bool>> Visitor<'p, ReadPages> for PageWalk<'p, F> {
    type Out = ();

    fn enter(&mut self, edge: &Edge<'p>) -> Result<Enter<()>> {
        let ptr = edge.ptr;
        if ptr.is_null() || !self.seen.insert(ptr.page.0) || !(self.admit)(ptr)? {
            return Ok(Enter::Skip(()));
        }
        Ok(Enter::Descend)
    }

    fn overflow(&mut self, edge: &Edge<'p>, len: u64) -> Result<()> {
        let first = edge.ptr.page.0;
        let count = overflow_pages(len, self.pages.page_size());
        let inside = first >= first_data_page(self.pages.page_size())
            && first
                .checked_add(count)
                .is_some_and(|end| end <= self.pages.view_pages());
        if !inside {
            return Err(Error::corrupted(
                first,
                "overflow run lies outside the file",
            ));
        }
        self.count = self.count.saturating_add(count);
        Ok(())
    }

    fn leave(&mut self, _: &Edge<'p>, _: &NodeView<'p>, _: Vec<(Child, ())>) -> Result<()> {
        self.count += 1;
        Ok(())
    }
}
