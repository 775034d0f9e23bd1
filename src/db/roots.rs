//! Listing snapshots and branches, with the space each references and holds alone.
//!
//! Invariants: `referenced` counts every page reachable from the root once; `exclusive`
//! counts the pages reachable only through pages whose count is 1, which is exactly what
//! deleting the root would free. Both walks are bounded by the tree levels.

use crate::btree::share::refcount;
use crate::btree::walk::{targets, Target, Walk};
use crate::btree::{node_at, MAX_DEPTH};
use crate::format::roots::{RootKind, RootRecord};
use crate::format::Ptr;
use crate::pager::{overflow_pages, PageSource, ReadPages};
use crate::txn::Committed;
use crate::{Error, Result};
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// A snapshot or branch, as `Database::snapshots` and `Database::branches` list them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// The txn whose state it holds (for a branch: its last commit).
    pub txn: u64,
    /// When it was created.
    pub created: SystemTime,
    /// Bytes of all pages it can reach.
    pub referenced_bytes: u64,
    /// Bytes of the pages only it can reach: what deleting it would free.
    pub exclusive_bytes: u64,
}

/// Branches are listed with the same fields.
pub type BranchInfo = SnapshotInfo;

/// Lists the roots of one kind in the committed `state`.
pub fn list(state: &Committed, kind: RootKind) -> Result<Vec<SnapshotInfo>> {
    let pages = &state.pages;
    let mut out = Vec::new();
    for (name, record) in crate::txn::roots::list(pages, state.meta.roots)? {
        if record.kind != kind || crate::txn::catalog::is_hidden(&name) {
            continue;
        }
        out.push(info(pages, state.meta.refcounts, name, &record)?);
    }
    Ok(out)
}

fn info(pages: &ReadPages, refs: Ptr, name: String, record: &RootRecord) -> Result<SnapshotInfo> {
    let page_size = pages.page_size() as u64;
    let referenced = walk(
        pages,
        record.catalog,
        Target::Node(Walk::Catalog),
        &mut |_| Ok(true),
    )?;
    let exclusive = walk(
        pages,
        record.catalog,
        Target::Node(Walk::Catalog),
        &mut |ptr| Ok(refcount(pages, refs, ptr.page.0)? <= 1),
    )?;
    // A damaged record may hold a time that no SystemTime can represent.
    let created = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(record.created_unix_secs))
        .ok_or_else(|| {
            Error::corrupted(
                record.catalog.page.0,
                format!("root {name:?}: creation time out of range"),
            )
        })?;
    Ok(SnapshotInfo {
        name,
        txn: record.txn,
        created,
        referenced_bytes: referenced * page_size,
        exclusive_bytes: exclusive * page_size,
    })
}

/// Counts the pages under `ptr` that `enter` admits (a page not admitted is not descended).
/// Bounded: the depth across catalog and table trees is at most three tree heights, and a
/// page is entered at most once.
fn walk(
    pages: &ReadPages,
    ptr: Ptr,
    target: Target,
    enter: &mut dyn FnMut(Ptr) -> Result<bool>,
) -> Result<u64> {
    let mut seen = HashSet::new();
    walk_from(pages, ptr, target, enter, &mut seen, 0)
}

fn walk_from(
    pages: &ReadPages,
    ptr: Ptr,
    target: Target,
    enter: &mut dyn FnMut(Ptr) -> Result<bool>,
    seen: &mut HashSet<u64>,
    depth: usize,
) -> Result<u64> {
    if depth > 3 * MAX_DEPTH {
        return Err(Error::corrupted(
            ptr.page.0,
            "tree deeper than the limit (a cycle?)",
        ));
    }
    if ptr.is_null() || !seen.insert(ptr.page.0) || !enter(ptr)? {
        return Ok(0);
    }
    match target {
        Target::Overflow(len) => Ok(overflow_pages(len, pages.page_size())),
        Target::Node(kind) => {
            let view = node_at(pages, ptr, None)?;
            let mut total = 1;
            for (child, child_target) in targets(&view, kind)? {
                total += walk_from(pages, child, child_target, enter, seen, depth + 1)?;
            }
            Ok(total)
        }
    }
}
