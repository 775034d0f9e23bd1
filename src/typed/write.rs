//! Typed tables in a write transaction, and the guard their reads return.
//!
//! Invariants:
//! - Every method is a thin wrapper over one `TableMut` method (or two: `take` looks up then
//!   removes), so the insert buffer, copy-on-write and sharing rules stay the byte table's.
//! - A read returns an [`AccessGuard`] over the stored bytes (a `Cow`: borrowed where the
//!   byte table lends them, owned where it copies) and decodes only when `value` is called.
//! - `retain` decodes every entry and collects the doomed keys before removing any, so a
//!   decode error removes nothing.

use super::{decode, encode, Codec, Key, KeyBounds};
use crate::txn::{CowEntry, RangeMut, TableMut};
use crate::Result;
use std::borrow::Cow;
use std::marker::PhantomData;
use std::ops::RangeBounds;
use std::sync::Arc;

/// A table of a write transaction, with keys of codec `K` and values of codec `V`. It reads
/// its own transaction's writes.
pub struct TypedTableMut<'t, K: Key, V: Codec> {
    table: TableMut<'t>,
    name: Arc<str>,
    types: PhantomData<fn() -> (K, V)>,
}

/// Stored bytes of a key or a value, decoded on demand by [`AccessGuard::value`].
pub struct AccessGuard<'a, C: Codec> {
    bytes: Cow<'a, [u8]>,
    table: Arc<str>,
    what: &'static str,
    codec: PhantomData<fn() -> C>,
}

/// A pair of guards: an entry of a typed write table.
pub type GuardPair<'a, K, V> = (AccessGuard<'a, K>, AccessGuard<'a, V>);

impl<'a, C: Codec> AccessGuard<'a, C> {
    fn new(bytes: Cow<'a, [u8]>, table: &Arc<str>, what: &'static str) -> Self {
        AccessGuard {
            bytes,
            table: table.clone(),
            what,
            codec: PhantomData,
        }
    }

    /// The decoded key or value; `Error::Decode` when the bytes are not a `C`.
    pub fn value(&self) -> Result<C::Ref<'_>> {
        decode::<C>(&self.table, self.what, &self.bytes)
    }

    /// The stored bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The stored bytes, owned or borrowed.
    pub fn into_bytes(self) -> Cow<'a, [u8]> {
        self.bytes
    }
}

impl<C: Codec> std::fmt::Debug for AccessGuard<'_, C>
where
    for<'x> C::Ref<'x>: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.value() {
            Ok(value) => value.fmt(f),
            Err(e) => write!(f, "<{e}>"),
        }
    }
}

impl<K: Key, V: Codec> std::fmt::Debug for TypedTableMut<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TypedTableMut")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl<'t, K: Key, V: Codec> TypedTableMut<'t, K, V> {
    pub(super) fn new(table: TableMut<'t>, name: &str) -> Self {
        TypedTableMut {
            table,
            name: name.into(),
            types: PhantomData,
        }
    }

    fn pair<'a>(&self, (key, value): (Cow<'a, [u8]>, Cow<'a, [u8]>)) -> GuardPair<'a, K, V> {
        (
            AccessGuard::new(key, &self.name, "key"),
            AccessGuard::new(value, &self.name, "value"),
        )
    }

    /// Inserts or overwrites `key` (the byte table's buffered fast path).
    pub fn insert(&mut self, key: K::In<'_>, value: V::In<'_>) -> Result<()> {
        self.table.insert(&encode::<K>(key)?, &encode::<V>(value)?)
    }

    /// Inserts or overwrites `key`, and returns the value it replaced.
    pub fn replace(
        &mut self,
        key: K::In<'_>,
        value: V::In<'_>,
    ) -> Result<Option<AccessGuard<'static, V>>> {
        let old = (self.table).replace(&encode::<K>(key)?, &encode::<V>(value)?)?;
        Ok(old.map(|v| AccessGuard::new(Cow::Owned(v), &self.name, "value")))
    }

    /// Removes `key`; returns whether it was there.
    pub fn remove(&mut self, key: K::In<'_>) -> Result<bool> {
        self.table.remove(&encode::<K>(key)?)
    }

    /// Removes `key` and returns its value.
    pub fn take(&mut self, key: K::In<'_>) -> Result<Option<AccessGuard<'static, V>>> {
        let key = encode::<K>(key)?;
        let Some(old) = self.table.get(&key)?.map(Cow::into_owned) else {
            return Ok(None);
        };
        self.table.remove(&key)?;
        Ok(Some(AccessGuard::new(Cow::Owned(old), &self.name, "value")))
    }

    /// The value of `key`, including this transaction's writes.
    pub fn get(&self, key: K::In<'_>) -> Result<Option<AccessGuard<'t, V>>> {
        let found = self.table.get(&encode::<K>(key)?)?;
        Ok(found.map(|v| AccessGuard::new(v, &self.name, "value")))
    }

    /// Whether `key` is in the table.
    pub fn contains_key(&self, key: K::In<'_>) -> Result<bool> {
        self.table.contains_key(&encode::<K>(key)?)
    }

    /// The entry with the least key.
    pub fn first(&self) -> Result<Option<GuardPair<'_, K, V>>> {
        self.iter()?.next().transpose()
    }

    /// The entry with the greatest key.
    pub fn last(&self) -> Result<Option<GuardPair<'_, K, V>>> {
        self.iter()?.next_back().transpose()
    }

    /// Removes the entry with the least key and returns it.
    pub fn pop_first(&mut self) -> Result<Option<GuardPair<'static, K, V>>> {
        let entry = self.table.pop_first()?;
        Ok(entry.map(|(k, v)| self.pair((Cow::Owned(k), Cow::Owned(v)))))
    }

    /// Removes the entry with the greatest key and returns it.
    pub fn pop_last(&mut self) -> Result<Option<GuardPair<'static, K, V>>> {
        let entry = self.table.pop_last()?;
        Ok(entry.map(|(k, v)| self.pair((Cow::Owned(k), Cow::Owned(v)))))
    }

    /// Keeps only the entries for which `keep(key, value)` is true; returns how many were
    /// removed. A key or value that does not decode is an error, and then nothing is removed.
    pub fn retain(&mut self, mut keep: impl FnMut(K::Ref<'_>, V::Ref<'_>) -> bool) -> Result<u64> {
        let mut doomed = Vec::new();
        for entry in self.iter()? {
            let (key, value) = entry?;
            if !keep(key.value()?, value.value()?) {
                doomed.push(key.into_bytes().into_owned());
            }
        }
        self.remove_keys(&doomed)
    }

    /// Removes the entries for which `take(key, value)` is true and returns them, in key
    /// order. A key or value that does not decode is an error, and then nothing is removed.
    pub fn extract_if(
        &mut self,
        mut take: impl FnMut(K::Ref<'_>, V::Ref<'_>) -> bool,
    ) -> Result<Vec<GuardPair<'static, K, V>>> {
        let mut taken = Vec::new();
        for entry in self.iter()? {
            let (key, value) = entry?;
            if take(key.value()?, value.value()?) {
                taken.push((
                    key.into_bytes().into_owned(),
                    value.into_bytes().into_owned(),
                ));
            }
        }
        for (key, _) in &taken {
            self.table.remove(key)?;
        }
        let owned = |(k, v): (Vec<u8>, Vec<u8>)| self.pair((Cow::Owned(k), Cow::Owned(v)));
        Ok(taken.into_iter().map(owned).collect())
    }

    /// Removes every entry whose key is in `range`; returns how many there were.
    pub fn remove_range<'k, R: RangeBounds<K::In<'k>>>(&mut self, range: R) -> Result<u64> {
        let bounds = KeyBounds::new::<K, R>(&range)?;
        self.table.remove_range(bounds.as_bytes())
    }

    fn remove_keys(&mut self, keys: &[Vec<u8>]) -> Result<u64> {
        for key in keys {
            self.table.remove(key)?;
        }
        Ok(keys.len() as u64)
    }

    /// Entries with keys in `range`, in key order, including this transaction's writes;
    /// double-ended.
    pub fn range<'k, R: RangeBounds<K::In<'k>>>(
        &self,
        range: R,
    ) -> Result<TypedRangeMut<'_, K, V>> {
        let bounds = KeyBounds::new::<K, R>(&range)?;
        let inner = self.table.range(bounds.as_bytes())?;
        Ok(TypedRangeMut::new(inner, &self.name))
    }

    /// All entries, in key order; double-ended.
    pub fn iter(&self) -> Result<TypedRangeMut<'_, K, V>> {
        let inner = self.table.iter()?;
        Ok(TypedRangeMut::new(inner, &self.name))
    }

    /// Number of entries, in O(1).
    pub fn len(&self) -> Result<u64> {
        self.table.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> Result<bool> {
        self.table.is_empty()
    }

    /// The byte table underneath, to read or write the stored bytes as they are.
    pub fn bytes_mut(&mut self) -> &mut TableMut<'t> {
        &mut self.table
    }
}

/// An iterator over the entries of a typed write table, as guards, from either end.
pub struct TypedRangeMut<'a, K: Key, V: Codec> {
    inner: RangeMut<'a>,
    name: Arc<str>,
    types: PhantomData<fn() -> (K, V)>,
}

impl<'a, K: Key, V: Codec> TypedRangeMut<'a, K, V> {
    fn new(inner: RangeMut<'a>, name: &Arc<str>) -> Self {
        TypedRangeMut {
            inner,
            name: name.clone(),
            types: PhantomData,
        }
    }

    fn guards(&self, item: Result<CowEntry<'a>>) -> Result<GuardPair<'a, K, V>> {
        let (key, value) = item?;
        Ok((
            AccessGuard::new(key, &self.name, "key"),
            AccessGuard::new(value, &self.name, "value"),
        ))
    }
}

impl<'a, K: Key, V: Codec> Iterator for TypedRangeMut<'a, K, V> {
    type Item = Result<GuardPair<'a, K, V>>;
    fn next(&mut self) -> Option<Self::Item> {
        let item = self.inner.next()?;
        Some(self.guards(item))
    }
}

impl<K: Key, V: Codec> DoubleEndedIterator for TypedRangeMut<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let item = self.inner.next_back()?;
        Some(self.guards(item))
    }
}
