//! Names of tables, snapshots and branches.
//!
//! Invariants: names are UTF-8 (a `&str`) of 1 to 255 bytes. A name that starts with U+0000
//! is reserved for the engine's hidden roots (a receive in progress): no user name does, so
//! no user call can reach one, and listings leave them out.

use crate::{Error, Result};

pub use crate::format::roots::TableRecord;

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
