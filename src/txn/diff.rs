//! What changed between two views of one database: tables in name order, then keys in order.
//!
//! Invariants:
//! - Both views belong to one database, so a page id means the same page on both sides
//!   (`ReadTxn::diff` refuses views of two databases).
//! - The catalogs are diffed like any tree ([`TreeDiff`]), so a table whose record is equal
//!   on both sides costs nothing; a changed table's entries are diffed under its two roots,
//!   and a table present on one side only shows as all its entries added or removed.
//! - A key overwritten with an equal value is not a change.

use super::names::TableRecord;
use crate::btree::diff::TreeDiff;
use crate::btree::value_bytes;
use crate::format::node::LeafValue;
use crate::format::Ptr;
use crate::pager::ReadPages;
use crate::{Error, Result};

/// One changed entry between two views.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change<'a> {
    /// The table it belongs to.
    pub table: &'a str,
    /// The key.
    pub key: &'a [u8],
    /// Its value in the base view; `None` when the key was absent there.
    pub old: Option<&'a [u8]>,
    /// Its value in the newer view; `None` when the key is absent there.
    pub new: Option<&'a [u8]>,
}

/// A table whose record differs between two views; `None` where the table is absent.
#[derive(Clone, Debug)]
pub(crate) struct TableChange<'a> {
    pub name: &'a str,
    pub old: Option<TableRecord>,
    pub new: Option<TableRecord>,
}

/// The tables whose records differ between two catalogs, in name order.
pub(crate) struct TableChanges<'a> {
    catalogs: TreeDiff<'a, ReadPages>,
}

impl<'a> TableChanges<'a> {
    pub fn new(old: (&'a ReadPages, Ptr), new: (&'a ReadPages, Ptr)) -> Self {
        TableChanges {
            catalogs: TreeDiff::new(old.0, old.1, new.0, new.1),
        }
    }

    pub fn pages_read(&self) -> u64 {
        self.catalogs.pages_read()
    }
}

fn table_record(value: Option<LeafValue<'_>>, key: &[u8]) -> Result<Option<TableRecord>> {
    match value {
        None => Ok(None),
        Some(LeafValue::Inline(bytes)) => Ok(Some(TableRecord::decode(bytes, 0)?)),
        Some(LeafValue::Overflow { ptr, .. }) => Err(Error::corrupted(
            ptr.page.0,
            format!("catalog record of {key:?} stored out of line"),
        )),
    }
}

impl<'a> Iterator for TableChanges<'a> {
    type Item = Result<TableChange<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let diff = match self.catalogs.next()? {
            Ok(diff) => diff,
            Err(e) => return Some(Err(e)),
        };
        let change = || -> Result<TableChange<'a>> {
            let name = std::str::from_utf8(diff.key)
                .map_err(|_| Error::corrupted(0, "table name is not UTF-8"))?;
            Ok(TableChange {
                name,
                old: table_record(diff.old, diff.key)?,
                new: table_record(diff.new, diff.key)?,
            })
        };
        Some(change())
    }
}

/// Iterates the entries that differ between two views, tables in name order and keys in
/// order within a table. Made by [`ReadTxn::diff`](super::ReadTxn::diff).
pub struct Diff<'a> {
    old: &'a ReadPages,
    new: &'a ReadPages,
    tables: TableChanges<'a>,
    table: Option<(&'a str, TreeDiff<'a, ReadPages>)>,
    pages_read: u64,
    failed: bool,
}

impl<'a> Diff<'a> {
    pub(crate) fn new(old: (&'a ReadPages, Ptr), new: (&'a ReadPages, Ptr)) -> Self {
        Diff {
            old: old.0,
            new: new.0,
            tables: TableChanges::new(old, new),
            table: None,
            pages_read: 0,
            failed: false,
        }
    }

    /// Node pages read so far: the measure of a diff's cost, which grows with the changes
    /// and the depth of the trees, not with their size.
    pub fn pages_read(&self) -> u64 {
        let current = self.table.as_ref().map_or(0, |(_, d)| d.pages_read());
        self.pages_read + current + self.tables.pages_read()
    }

    fn step(&mut self) -> Result<Option<Change<'a>>> {
        // Bounded: every round yields an entry, or moves to the next changed table.
        loop {
            if let Some((table, entries)) = &mut self.table {
                if let Some(diff) = entries.next().transpose()? {
                    let value = |src, v: Option<LeafValue<'a>>| v.map(|v| value_bytes(src, v));
                    return Ok(Some(Change {
                        table,
                        key: diff.key,
                        old: value(self.old, diff.old).transpose()?,
                        new: value(self.new, diff.new).transpose()?,
                    }));
                }
                self.pages_read += entries.pages_read();
                self.table = None;
            }
            let Some(change) = self.tables.next().transpose()? else {
                return Ok(None);
            };
            let root = |r: &Option<TableRecord>| r.as_ref().map_or(Ptr::default(), |r| r.root);
            let entries = TreeDiff::new(self.old, root(&change.old), self.new, root(&change.new));
            self.table = Some((change.name, entries));
        }
    }
}

impl<'a> Iterator for Diff<'a> {
    type Item = Result<Change<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut failed = self.failed;
        let next = crate::error::fused_step(&mut failed, || self.step());
        self.failed = failed;
        next
    }
}
