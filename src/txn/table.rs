//! Read-only tables and range iterators.
//!
//! Invariants: a table borrows its transaction's pages, so every key and value it returns
//! lives as long as the transaction and is never copied.

use super::catalog::{TableRecord, TypeNames};
use crate::btree::{self, Bound as TreeBound, Cursor};
use crate::format::Ptr;
use crate::pager::{PageSource, ReadPages};
use crate::Result;
use std::ops::{Bound, RangeBounds};

/// A table in a read transaction.
pub struct Table<'t> {
    pages: &'t ReadPages,
    record: TableRecord,
}

impl std::fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("len", &self.record.len)
            .finish_non_exhaustive()
    }
}

impl<'t> Table<'t> {
    pub(crate) fn new(pages: &'t ReadPages, record: TableRecord) -> Self {
        Table { pages, record }
    }

    /// The value of `key`, borrowed from the map.
    pub fn get(&self, key: &[u8]) -> Result<Option<&'t [u8]>> {
        btree::get(self.pages, self.record.root, key)
    }

    /// Entries with keys in `range`, in key order; double-ended.
    pub fn range<'k, R: RangeBounds<&'k [u8]>>(&self, range: R) -> Result<Range<'t>> {
        Ok(Range::new(self.pages, self.record.root, &range))
    }

    /// All entries, in key order; double-ended.
    pub fn iter(&self) -> Result<Range<'t>> {
        self.range::<std::ops::RangeFull>(..)
    }

    /// Number of entries, in O(1).
    pub fn len(&self) -> Result<u64> {
        Ok(self.record.len)
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> Result<bool> {
        Ok(self.record.len == 0)
    }

    /// The key and value type names recorded when the table was created through the typed
    /// API; `None` for a table created through the byte API.
    pub fn type_names(&self) -> Option<&TypeNames> {
        self.record.types.as_ref()
    }
}

fn to_tree_bound(bound: Bound<&&[u8]>) -> TreeBound {
    match bound {
        Bound::Included(k) => TreeBound::Included(k.to_vec()),
        Bound::Excluded(k) => TreeBound::Excluded(k.to_vec()),
        Bound::Unbounded => TreeBound::Unbounded,
    }
}

/// An iterator over `(key, value)` pairs of a table, from either end.
pub struct Range<'t> {
    cursor: Cursor<'t, dyn PageSource + 't>,
}

impl<'t> Range<'t> {
    pub(crate) fn new<'k, R: RangeBounds<&'k [u8]>>(
        src: &'t (dyn PageSource + 't),
        root: Ptr,
        range: &R,
    ) -> Self {
        let low = to_tree_bound(range.start_bound());
        let high = to_tree_bound(range.end_bound());
        Range {
            cursor: Cursor::new(src, root, low, high),
        }
    }
}

impl<'t> Iterator for Range<'t> {
    type Item = Result<(&'t [u8], &'t [u8])>;
    fn next(&mut self) -> Option<Self::Item> {
        self.cursor.next()
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.cursor.next_back()
    }
}
