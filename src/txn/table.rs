//! Read-only tables and range iterators.
//!
//! Invariants: a table borrows its transaction's pages, so every key and value it returns
//! lives as long as the transaction and is never copied.

use super::names::{TableRecord, TypeNames};
use crate::btree::{self, Bound as TreeBound, Cursor};
use crate::format::Ptr;
use crate::pager::{PageSource, ReadPages};
use crate::Result;
use std::ops::{Bound, RangeBounds};

/// A table in a read transaction, from [`ReadTxn::open_table`](crate::ReadTxn::open_table).
/// Keys and values it returns are borrowed from the file's memory map, with no copy, for as
/// long as the read transaction lives.
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

    /// What the entries this handle reads depend on: the pages it reads through (by address)
    /// and the table's root and length. For the testkit's whole comparisons, which walk a
    /// tree shared by several roots once: two handles alive at the same time with equal
    /// identities read the same entries.
    #[cfg(feature = "testkit")]
    pub(crate) fn tree_identity(&self) -> (usize, Ptr, u64) {
        let pages = std::ptr::from_ref(self.pages) as usize;
        (pages, self.record.root, self.record.len)
    }

    /// The value of `key`, borrowed from the map; `None` when it is absent.
    pub fn get(&self, key: &[u8]) -> Result<Option<&'t [u8]>> {
        btree::get(self.pages, self.record.root, key)
    }

    /// The entries with keys in `range`, in key order; double-ended (`.rev()` walks it
    /// backwards). `range` is any range of `&[u8]` (`a..b`, `a..=b`, `a..`, `..b`, `..`) or a
    /// pair of [`Bound`]s. Keys compare bytewise, so store integers big-endian to scan them
    /// in numeric order. Each item is a `Result`: a damaged page ends the iteration with an
    /// error.
    ///
    /// ```
    /// use shadowkv::Database;
    /// use std::ops::Bound;
    /// # fn main() -> shadowkv::Result<()> {
    /// # let dir = tempfile::tempdir().unwrap();
    /// let db = Database::open(dir.path().join("example.db"))?;
    /// let mut tx = db.begin_write()?;
    /// let mut t = tx.open_table("events")?;
    /// for n in [3u64, 10, 200, 1000] {
    ///     t.insert(&n.to_be_bytes(), b"")?;
    /// }
    /// drop(t);
    /// tx.commit()?;
    ///
    /// let rx = db.begin_read()?;
    /// let t = rx.open_table("events")?;
    /// let (low, high) = (10u64.to_be_bytes(), 1000u64.to_be_bytes());
    /// let mut in_range = Vec::new();
    /// for item in t.range(&low[..]..&high[..])? {
    ///     let (key, _value) = item?;
    ///     in_range.push(u64::from_be_bytes(key.try_into().unwrap()));
    /// }
    /// assert_eq!(in_range, [10, 200]);
    ///
    /// fn keys<'t>(
    ///     items: impl Iterator<Item = shadowkv::Result<(&'t [u8], &'t [u8])>>,
    /// ) -> shadowkv::Result<Vec<u64>> {
    ///     items.map(|item| Ok(u64::from_be_bytes(item?.0.try_into().unwrap()))).collect()
    /// }
    /// assert_eq!(keys(t.range(&low[..]..)?.rev())?, [1000, 200, 10]);
    /// let after_low = (Bound::Excluded(&low[..]), Bound::Unbounded);
    /// assert_eq!(keys(t.range(after_low)?)?, [200, 1000]);
    /// # Ok(())
    /// # }
    /// ```
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

pub(crate) fn to_tree_bound(bound: Bound<&&[u8]>) -> TreeBound {
    match bound {
        Bound::Included(k) => TreeBound::Included(k.to_vec()),
        Bound::Excluded(k) => TreeBound::Excluded(k.to_vec()),
        Bound::Unbounded => TreeBound::Unbounded,
    }
}

/// An iterator over the `(key, value)` pairs of a table in key order, from either end, made by
/// [`Table::range`], [`Table::iter`] and their [`TableMut`](crate::TableMut) counterparts.
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
    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        self.cursor.next()
    }
}

impl DoubleEndedIterator for Range<'_> {
    #[inline]
    fn next_back(&mut self) -> Option<Self::Item> {
        self.cursor.next_back()
    }
}
