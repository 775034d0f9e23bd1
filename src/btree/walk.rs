//! What each kind of tree points at, for walks that follow every pointer: recovery, `check`
//! and space accounting.
//!
//! Invariants: a leaf's values are decoded by the kind of its tree; every pointer out of a
//! node is returned with what it points at, so a walk never guesses.

use crate::format::node::{LeafValue, NodeView};
use crate::format::roots::{decode_release, Released, RootRecord, TableRecord};
use crate::format::Ptr;
use crate::{Error, Result};

/// The kinds of tree in a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Walk {
    /// Names → root records (system).
    Roots,
    /// Page ids → reference counts (system).
    Refs,
    /// Sequence → pointers being released (system).
    Release,
    /// Table names → table records (one per snapshot or branch, shareable).
    Catalog,
    /// Keys → values (shareable).
    Table,
}

/// Where a pointer leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// A node of a tree of this kind.
    Node(Walk),
    /// An overflow run of this many bytes.
    Overflow(u64),
}

/// Every pointer out of `view`, a node of a `walk` tree.
pub fn targets(view: &NodeView<'_>, walk: Walk) -> Result<Vec<(Ptr, Target)>> {
    let mut out = Vec::new();
    for i in 0..view.count() {
        if !view.is_leaf() {
            out.push((view.child(i)?, Target::Node(walk)));
            continue;
        }
        let value = view.value(i)?;
        let inline = match value {
            LeafValue::Inline(bytes) => Some(bytes),
            LeafValue::Overflow { ptr, len } => {
                if walk != Walk::Table {
                    return Err(Error::corrupted(
                        view.id(),
                        "overflow value in a system tree",
                    ));
                }
                out.push((ptr, Target::Overflow(len)));
                None
            }
        };
        let Some(bytes) = inline else { continue };
        let (ptr, target) = match walk {
            Walk::Roots => (
                RootRecord::decode(bytes, view.id())?.catalog,
                Target::Node(Walk::Catalog),
            ),
            Walk::Catalog => (
                TableRecord::decode(bytes, view.id())?.root,
                Target::Node(Walk::Table),
            ),
            Walk::Release => {
                let (ptr, what) = decode_release(bytes, view.id())?;
                let target = match what {
                    Released::CatalogNode => Target::Node(Walk::Catalog),
                    Released::TableNode => Target::Node(Walk::Table),
                    Released::Overflow(len) => Target::Overflow(len),
                };
                (ptr, target)
            }
            Walk::Refs | Walk::Table => continue,
        };
        if !ptr.is_null() {
            out.push((ptr, target));
        }
    }
    Ok(out)
}
