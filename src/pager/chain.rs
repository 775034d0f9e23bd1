//! The one walk over page chains: the free map's directory chain and its pending chain.
//! Loading the free map, `check` and recovery all read chains through [`Chain`], so the
//! bounds of a chain are kept here and nowhere else.
//!
//! Invariants (the bounds):
//! - A chain visits at most as many pages as the committed state holds
//!   ([`ReadPages::view_pages`]), so a cycle in a damaged file ends in `Error::Corrupted`,
//!   never in a hang.
//! - Every page is read through its pointer with [`ReadPages::tagged`]: its id lies in the
//!   state's data pages, and its tag, own id and birth match (its checksum too when asked).
//! - A page's entry count is at most what fits in a page ([`chain_capacity`]), checked
//!   before any entry is read, so reading entries `0..count` never leaves the page.
//! - Policy: [`Chain::born_after`] stops at the first page born at or before a txn (recovery
//!   checks only what the unsynced commits wrote). Pages are otherwise visited head first.

use super::{PageSource, ReadPages};
use crate::format::freemap::{chain_capacity, chain_count, chain_entry, chain_next};
use crate::format::Ptr;
use crate::{Error, Result};
use bytemuck::Pod;
use std::marker::PhantomData;

/// One page of a chain, checked, with entries of type `T`.
pub(crate) struct ChainPage<'p, T> {
    /// The pointer it was reached through.
    pub ptr: Ptr,
    /// The whole page.
    pub page: &'p [u8],
    /// Its entry count, at most the page's capacity.
    pub count: usize,
    entry: PhantomData<T>,
}

impl<T: Pod> ChainPage<'_, T> {
    /// The page's entries, in order.
    pub fn entries(&self) -> impl Iterator<Item = T> + '_ {
        // Bounded: `count` was checked against the page's capacity when the page was read.
        (0..self.count).map(|i| chain_entry(self.page, i).expect("bounded by the capacity"))
    }
}

/// A walk along a chain of pages of one tag, head first; an iterator of checked pages.
pub(crate) struct Chain<'p, T> {
    pages: &'p ReadPages,
    next: Ptr,
    tag: u8,
    verify: bool,
    /// Pages born at or before this txn end the walk.
    after: Option<u64>,
    walked: u64,
    entry: PhantomData<T>,
}

impl<'p, T: Pod> Chain<'p, T> {
    /// The chain of `tag` pages starting at `head` (null: an empty chain); `verify` checks
    /// each page's checksum.
    pub fn new(pages: &'p ReadPages, head: Ptr, tag: u8, verify: bool) -> Self {
        Chain {
            pages,
            next: head,
            tag,
            verify,
            after: None,
            walked: 0,
            entry: PhantomData,
        }
    }

    /// Stops the walk at the first page born at or before `txn`.
    pub fn born_after(mut self, txn: u64) -> Self {
        self.after = Some(txn);
        self
    }

    fn read(&mut self) -> Result<ChainPage<'p, T>> {
        let ptr = self.next;
        if self.walked >= self.pages.view_pages() {
            return Err(Error::corrupted(
                ptr.page.0,
                "chain longer than the file (a cycle?)",
            ));
        }
        self.walked += 1;
        let page = self.pages.tagged(ptr, &[self.tag], self.verify)?;
        let count = chain_count(page);
        if count > chain_capacity::<T>(self.pages.page_size()) {
            return Err(Error::corrupted(ptr.page.0, "chain page count too large"));
        }
        self.next = chain_next(page);
        Ok(ChainPage {
            ptr,
            page,
            count,
            entry: PhantomData,
        })
    }
}

impl<'p, T: Pod> Iterator for Chain<'p, T> {
    type Item = Result<ChainPage<'p, T>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next.is_null() || self.after.is_some_and(|after| self.next.txn.0 <= after) {
            return None;
        }
        let page = self.read();
        if page.is_err() {
            // An error ends the walk: the iterator is fused.
            self.next = Ptr::default();
        }
        Some(page)
    }
}
