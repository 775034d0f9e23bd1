//! Listing snapshots and branches, with the space each references and holds alone.
//!
//! Invariants: `referenced` counts every page reachable from the root once; `exclusive`
//! counts the pages reachable only through pages whose count is 1, which is exactly what
//! deleting the root would free. Both are visitors over `btree::traverse`, which bounds them.

use super::pages::PageWalk;
use crate::btree::share::refcount;
use crate::btree::traverse::TreeKind;
use crate::format::records::{RootKind, RootRecord};
use crate::format::Ptr;
use crate::pager::{PageSource, ReadPages};
use crate::txn::Committed;
use crate::{Error, Result};
use std::time::{Duration, SystemTime};

/// A snapshot or branch, as `Database::snapshots` and `Database::branches` list them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its name.
    pub name: String,
    /// The txn whose state it holds (for a branch: its last commit).
    pub txn: u64,
    /// When it was created. For `main`: its first commit (`UNIX_EPOCH` before it has one; a
    /// file whose `main` was first written by an older build gets its next commit's time).
    pub created: SystemTime,
    /// Bytes of all pages it can reach.
    pub referenced_bytes: u64,
    /// Bytes of the pages only it can reach: what deleting it would free.
    pub exclusive_bytes: u64,
}

/// Branches are listed with the same fields.
pub type BranchInfo = SnapshotInfo;

/// Lists the roots of one kind in the committed `state`.
pub fn infos(state: &Committed, kind: RootKind) -> Result<Vec<SnapshotInfo>> {
    let pages = &state.pages;
    let mut out = Vec::new();
    for (name, record) in crate::txn::roots::list(pages, state.meta.roots)? {
        if record.kind != kind || crate::txn::names::is_hidden(&name) {
            continue;
        }
        out.push(info(pages, state.meta.refcounts, name, &record)?);
    }
    Ok(out)
}

/// The names [`list`] gives, without its two walks per root (test support: the runner's
/// whole comparisons need only the names; `snapshots()` and `branches()` are compared with
/// the model on their own).
#[cfg(feature = "testkit")]
pub fn names(state: &Committed, kind: RootKind) -> Result<Vec<String>> {
    let roots = crate::txn::roots::list(&state.pages, state.meta.roots)?;
    let wanted = |(name, record): &(String, RootRecord)| {
        record.kind == kind && !crate::txn::names::is_hidden(name)
    };
    Ok(roots
        .into_iter()
        .filter(wanted)
        .map(|(name, _)| name)
        .collect())
}

fn info(pages: &ReadPages, refs: Ptr, name: String, record: &RootRecord) -> Result<SnapshotInfo> {
    let page_size = pages.page_size() as u64;
    let referenced = count(pages, record.catalog, |_| Ok(true))?;
    let exclusive = count(pages, record.catalog, |ptr| {
        Ok(refcount(pages, refs, ptr.page.0)? <= 1)
    })?;
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

/// Counts the pages of the catalog under `catalog` and everything below it that `admit`
/// lets in; a page not admitted is not descended, and each page is counted once.
fn count(pages: &ReadPages, catalog: Ptr, admit: impl FnMut(Ptr) -> Result<bool>) -> Result<u64> {
    let mut walk = PageWalk::new(pages, admit);
    walk.walk(catalog, TreeKind::Catalog)?;
    Ok(walk.count)
}
