//! Names of tables, snapshots and branches.
//!
//! Invariants: names are UTF-8 (a `&str`) of 1 to 255 bytes.

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
    Ok(())
}
