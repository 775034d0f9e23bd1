//! Typed tables in a read transaction.
//!
//! Invariants: every key and value is decoded from bytes borrowed from the transaction's
//! map, so a codec that borrows (`&str`, `&[u8]`) yields values that live as long as the
//! transaction, with no copy.

use super::{decode, encode, Codec, Key, KeyBounds};
use crate::txn::{Range, Table};
use crate::Result;
use std::marker::PhantomData;
use std::ops::RangeBounds;

/// A table of a read transaction, with keys of codec `K` and values of codec `V`.
pub struct TypedTable<'t, K: Key, V: Codec> {
    table: Table<'t>,
    name: String,
    types: PhantomData<fn() -> (K, V)>,
}

impl<K: Key, V: Codec> std::fmt::Debug for TypedTable<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedTable")
            .field("name", &self.name)
            .field("table", &self.table)
            .finish()
    }
}

impl<'t, K: Key, V: Codec> TypedTable<'t, K, V> {
    pub(super) fn new(table: Table<'t>, name: &str) -> Self {
        TypedTable {
            table,
            name: name.to_string(),
            types: PhantomData,
        }
    }

    /// The value of `key`, decoded from the map.
    pub fn get(&self, key: K::In<'_>) -> Result<Option<V::Ref<'t>>> {
        match self.table.get(&encode::<K>(key)?)? {
            Some(bytes) => decode::<V>(&self.name, "value", bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `key` is in the table.
    pub fn contains_key(&self, key: K::In<'_>) -> Result<bool> {
        self.table.contains_key(&encode::<K>(key)?)
    }

    /// Entries with keys in `range` (any std range form over `K::In`), in key order;
    /// double-ended.
    pub fn range<'k, R: RangeBounds<K::In<'k>>>(&self, range: R) -> Result<TypedRange<'t, K, V>> {
        let bounds = KeyBounds::new::<K, R>(&range)?;
        let inner = self.table.range(bounds.as_bytes())?;
        Ok(TypedRange::new(inner, &self.name))
    }

    /// All entries, in key order; double-ended.
    pub fn iter(&self) -> Result<TypedRange<'t, K, V>> {
        Ok(TypedRange::new(self.table.iter()?, &self.name))
    }

    /// The entry with the least key.
    pub fn first(&self) -> Result<Option<(K::Ref<'t>, V::Ref<'t>)>> {
        self.iter()?.next().transpose()
    }

    /// The entry with the greatest key.
    pub fn last(&self) -> Result<Option<(K::Ref<'t>, V::Ref<'t>)>> {
        self.iter()?.next_back().transpose()
    }

    /// Number of entries, in O(1).
    pub fn len(&self) -> Result<u64> {
        self.table.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> Result<bool> {
        self.table.is_empty()
    }

    /// The byte table underneath, to read the stored bytes as they are.
    pub fn bytes(&self) -> &Table<'t> {
        &self.table
    }
}

/// An iterator over the decoded `(key, value)` pairs of a typed table, from either end.
pub struct TypedRange<'t, K: Key, V: Codec> {
    inner: Range<'t>,
    name: String,
    types: PhantomData<fn() -> (K, V)>,
}

impl<'t, K: Key, V: Codec> TypedRange<'t, K, V> {
    fn new(inner: Range<'t>, name: &str) -> Self {
        TypedRange {
            inner,
            name: name.to_string(),
            types: PhantomData,
        }
    }

    fn decode(&self, item: Result<(&'t [u8], &'t [u8])>) -> Result<(K::Ref<'t>, V::Ref<'t>)> {
        let (key, value) = item?;
        Ok((
            decode::<K>(&self.name, "key", key)?,
            decode::<V>(&self.name, "value", value)?,
        ))
    }
}

impl<'t, K: Key, V: Codec> Iterator for TypedRange<'t, K, V> {
    type Item = Result<(K::Ref<'t>, V::Ref<'t>)>;
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        Some(self.decode(item))
    }
}

impl<K: Key, V: Codec> DoubleEndedIterator for TypedRange<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = self.inner.next_back()?;
        Some(self.decode(item))
    }
}
