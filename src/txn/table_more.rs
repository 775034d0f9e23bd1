//! A table's conveniences beyond `get`, `insert`, `remove` and `range`: membership, the two
//! ends, taking an end, replacing with the old value back, and removing a range or by a
//! predicate. Each is built on those primitives, so the insert buffer, copy-on-write and
//! sharing rules are theirs and live in one place.
//!
//! Invariants:
//! - A method that removes several entries first collects their keys (at most the table's
//!   entries, held in memory), then removes them one by one: a cursor never runs over a tree
//!   that is changing under it.
//! - `replace` looks the key up before it inserts; `insert` stays the buffered fast path.

use super::table::Table;
use super::table_mut::{CowEntry, TableMut};
use crate::Result;
use std::borrow::Cow;
use std::ops::RangeBounds;

/// An entry copied out of a table.
type Entry = (Vec<u8>, Vec<u8>);

fn owned((key, value): CowEntry<'_>) -> Entry {
    (key.into_owned(), value.into_owned())
}

impl TableMut<'_> {
    /// Whether `key` is in the table.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The entry with the least key.
    pub fn first(&self) -> Result<Option<CowEntry<'_>>> {
        self.iter()?.next().transpose()
    }

    /// The entry with the greatest key.
    pub fn last(&self) -> Result<Option<CowEntry<'_>>> {
        self.iter()?.next_back().transpose()
    }

    /// Removes the entry with the least key and returns it.
    pub fn pop_first(&mut self) -> Result<Option<Entry>> {
        let first = self.first()?.map(owned);
        self.take(first)
    }

    /// Removes the entry with the greatest key and returns it.
    pub fn pop_last(&mut self) -> Result<Option<Entry>> {
        let last = self.last()?.map(owned);
        self.take(last)
    }

    fn take(&mut self, entry: Option<Entry>) -> Result<Option<Entry>> {
        if let Some((key, _)) = &entry {
            self.remove(key)?;
        }
        Ok(entry)
    }

    /// Inserts or overwrites `key`, and returns the value it replaced. It looks the key up
    /// first, so a load that needs no old values is faster with [`TableMut::insert`].
    pub fn replace(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        crate::btree::check_sizes(key, value.len())?;
        let old = self.get(key)?.map(Cow::into_owned);
        self.insert(key, value)?;
        Ok(old)
    }

    /// Removes every entry whose key is in `range`; returns how many there were.
    pub fn remove_range<'k, R: RangeBounds<&'k [u8]>>(&mut self, range: R) -> Result<u64> {
        let keys = self
            .range(range)?
            .map(|entry| entry.map(|(key, _)| key.into_owned()))
            .collect::<Result<Vec<_>>>()?;
        self.remove_all(&keys)
    }

    /// Keeps only the entries for which `keep(key, value)` is true; returns how many were
    /// removed.
    pub fn retain(&mut self, mut keep: impl FnMut(&[u8], &[u8]) -> bool) -> Result<u64> {
        let doomed = self.matching(|key, value| !keep(key, value))?;
        let keys: Vec<Vec<u8>> = doomed.into_iter().map(|(key, _)| key).collect();
        self.remove_all(&keys)
    }

    /// Removes the entries for which `take(key, value)` is true and returns them, in key
    /// order.
    pub fn extract_if(&mut self, take: impl FnMut(&[u8], &[u8]) -> bool) -> Result<Vec<Entry>> {
        let taken = self.matching(take)?;
        for (key, _) in &taken {
            self.remove(key)?;
        }
        Ok(taken)
    }

    /// Copies of the entries for which `pick` is true, in key order.
    fn matching(&self, mut pick: impl FnMut(&[u8], &[u8]) -> bool) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        // Bounded: one step per entry of the table.
        for entry in self.iter()? {
            let (key, value) = entry?;
            if pick(&key, &value) {
                out.push(owned((key, value)));
            }
        }
        Ok(out)
    }

    fn remove_all(&mut self, keys: &[Vec<u8>]) -> Result<u64> {
        for key in keys {
            self.remove(key)?;
        }
        Ok(keys.len() as u64)
    }
}

impl<'t> Table<'t> {
    /// Whether `key` is in the table.
    pub fn contains_key(&self, key: &[u8]) -> Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The entry with the least key.
    pub fn first(&self) -> Result<Option<(&'t [u8], &'t [u8])>> {
        self.iter()?.next().transpose()
    }

    /// The entry with the greatest key.
    pub fn last(&self) -> Result<Option<(&'t [u8], &'t [u8])>> {
        self.iter()?.next_back().transpose()
    }
}
