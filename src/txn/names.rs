//! Names of tables, snapshots and branches.
//!
//! Invariants: names are UTF-8 (a `&str`) of 1 to 255 bytes. A name that starts with U+0000
//! is reserved for the engine's hidden roots (a receive in progress): no user name does, so
//! no user call can reach one, and listings leave them out. A table's type names, when it
//! has them, are 1 to `MAX_TYPE_NAME_LEN` bytes each and never change while it exists: they
//! are set only when the table is created.

use crate::{Error, Result};

pub use crate::format::records::{TableRecord, TypeNames, MAX_TYPE_NAME_LEN};

/// Checks a table, snapshot or branch name.
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::InvalidArgument(format!(
            "names are 1 to 255 bytes; {:?} has {}",
            name,
            name.len()
        )));
    }
    if is_hidden(name) {
        return Err(Error::InvalidArgument(
            "names starting with U+0000 are reserved".into(),
        ));
    }
    Ok(())
}

/// Whether `name` is one of the engine's hidden roots.
pub fn is_hidden(name: &str) -> bool {
    name.starts_with('\0')
}

/// Checks type names before they are recorded: each 1 to `MAX_TYPE_NAME_LEN` bytes.
pub fn check_type_names(types: &TypeNames) -> Result<()> {
    for name in [&types.key, &types.value] {
        if !crate::format::records::valid_type_name(name) {
            return Err(Error::InvalidArgument(format!(
                "type names are 1 to {MAX_TYPE_NAME_LEN} bytes; {name:?} has {}",
                name.len()
            )));
        }
    }
    Ok(())
}

/// Whether table `table`, whose record holds `stored`, may be opened as `requested`: yes
/// when it holds no names (created through the byte API) or the same names.
pub fn check_types(table: &str, stored: Option<&TypeNames>, requested: &TypeNames) -> Result<()> {
    match stored {
        Some(stored) if stored != requested => Err(Error::TypeMismatch {
            table: table.to_string(),
            stored: (stored.key.clone(), stored.value.clone()),
            requested: (requested.key.clone(), requested.value.clone()),
        }),
        _ => Ok(()),
    }
}
