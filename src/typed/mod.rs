//! Typed tables: a layer over the byte tables that encodes keys and values with a [`Codec`]
//! named in a [`TableDef`], and records the codecs' type names in the table.
//!
//! ```
//! use shadowkv::typed::TableDef;
//! # fn main() -> shadowkv::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let db = shadowkv::Database::open(dir.path().join("t.db"))?;
//! const USERS: TableDef<u64, &str> = TableDef::new("users");
//! let mut tx = db.begin_write()?;
//! tx.open_typed(&USERS)?.insert(7, "ada")?;
//! tx.commit()?;
//! let rx = db.begin_read()?;
//! assert_eq!(rx.open_typed(&USERS)?.get(7)?, Some("ada")); // borrowed, no copy
//! # Ok(())
//! # }
//! ```
//!
//! Invariants:
//! - This layer uses only the public API of `txn` (and the error type); it adds no state.
//! - A table created here records `(K::type_name(), V::type_name())` in its catalog record;
//!   opening it with other names is `Error::TypeMismatch`, in this run or any later one. A
//!   table created through the byte API records none and opens with any codecs.
//! - Stored bytes a codec cannot decode are `Error::Decode` naming the table, never a panic.
//! - Keys are encoded by a [`Key`] codec, so the tree's bytewise order is the keys' order.

mod bytes;
mod codec;
mod read;
mod scalars;
#[cfg(feature = "serde")]
mod serde;
mod tuple;
mod write;

pub use codec::{Codec, CodecError, Element, Key};
pub use read::{TypedRange, TypedTable};
#[cfg(feature = "serde")]
pub use serde::Postcard;
pub use write::{AccessGuard, TypedRangeMut, TypedTableMut};

pub use crate::txn::names::TypeNames;
use crate::txn::{ReadTxn, WriteTxn};
use crate::{Error, Result};
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

/// A table's name with its key codec `K` and value codec `V`; cheap to copy and usable in a
/// `const`: `const USERS: TableDef<u64, &str> = TableDef::new("users");`.
pub struct TableDef<'n, K: Key, V: Codec> {
    name: &'n str,
    types: PhantomData<fn() -> (K, V)>,
}

impl<'n, K: Key, V: Codec> TableDef<'n, K, V> {
    /// The definition of table `name` (checked when it is opened).
    pub const fn new(name: &'n str) -> Self {
        TableDef {
            name,
            types: PhantomData,
        }
    }

    /// The table's name.
    pub fn name(&self) -> &'n str {
        self.name
    }

    /// The type names this definition records and checks: `(K::type_name(), V::type_name())`.
    pub fn type_names(&self) -> TypeNames {
        TypeNames {
            key: K::type_name(),
            value: V::type_name(),
        }
    }
}

impl<K: Key, V: Codec> Clone for TableDef<'_, K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K: Key, V: Codec> Copy for TableDef<'_, K, V> {}

impl<K: Key, V: Codec> std::fmt::Debug for TableDef<'_, K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let types = self.type_names();
        f.debug_struct("TableDef")
            .field("name", &self.name)
            .field("key", &types.key)
            .field("value", &types.value)
            .finish()
    }
}

impl ReadTxn<'_> {
    /// Opens an existing table with typed keys and values: `Error::NotFound` when it is
    /// absent, `Error::TypeMismatch` when it was created with other type names.
    pub fn open_typed<K: Key, V: Codec>(
        &self,
        def: &TableDef<'_, K, V>,
    ) -> Result<TypedTable<'_, K, V>> {
        let table = self.open_table_as(def.name, &def.type_names())?;
        Ok(TypedTable::new(table, def.name))
    }
}

impl WriteTxn<'_> {
    /// Opens a table with typed keys and values, creating it (and recording its type names)
    /// if missing; `Error::TypeMismatch` when it was created with other type names.
    pub fn open_typed<K: Key, V: Codec>(
        &self,
        def: &TableDef<'_, K, V>,
    ) -> Result<TypedTableMut<'_, K, V>> {
        let table = self.open_table_as(def.name, &def.type_names())?;
        Ok(TypedTableMut::new(table, def.name))
    }
}

/// The encoding of `value`; a codec's refusal is `InvalidArgument`.
pub(crate) fn encode<C: Codec>(value: C::In<'_>) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    C::encode(value, &mut out)
        .map_err(|e| Error::InvalidArgument(format!("cannot encode a {}: {e}", C::type_name())))?;
    Ok(out)
}

/// Decodes the `what` ("key" or "value") of table `table`.
pub(crate) fn decode<'a, C: Codec>(table: &str, what: &str, bytes: &'a [u8]) -> Result<C::Ref<'a>> {
    C::decode(bytes).map_err(|e| Error::Decode {
        table: table.to_string(),
        reason: format!("a {what} as {}: {e}", C::type_name()),
    })
}

/// Encoded bounds of a typed key range.
pub(crate) struct KeyBounds(Bound<Vec<u8>>, Bound<Vec<u8>>);

impl KeyBounds {
    pub(crate) fn new<'k, K: Key, R: RangeBounds<K::In<'k>>>(range: &R) -> Result<Self> {
        let one = |b: Bound<&K::In<'k>>| -> Result<Bound<Vec<u8>>> {
            Ok(match b {
                Bound::Included(k) => Bound::Included(encode::<K>(*k)?),
                Bound::Excluded(k) => Bound::Excluded(encode::<K>(*k)?),
                Bound::Unbounded => Bound::Unbounded,
            })
        };
        Ok(KeyBounds(
            one(range.start_bound())?,
            one(range.end_bound())?,
        ))
    }

    /// The bounds as the byte API takes them.
    pub(crate) fn as_bytes(&self) -> (Bound<&[u8]>, Bound<&[u8]>) {
        (
            self.0.as_ref().map(Vec::as_slice),
            self.1.as_ref().map(Vec::as_slice),
        )
    }
}
