//! Online compaction: pages move off the file's tail into free space below it, in bounded
//! steps (each one commit), and then the free tail is cut off.
//!
//! Invariants:
//! - The writer slot is held from the first step to the cut; readers go on. A reader keeps
//!   the state it began on: pages move only into free pages, and the pages they leave become
//!   pending like any page a commit replaces, so a reader's pages are never reused under it.
//!   Such a reader delays only the cut (the report says so).
//! - A page is moved once per step however many parents it has: every parent, in every
//!   root, is rewritten to the same copy (`Mover::memo`), so sharing stays as it was, and the
//!   refcount tree is rebuilt with each moved page's count under its new id. Snapshots and
//!   branches keep their contents, and their pages stay shared.
//! - A moved page keeps its birth, so each root's `shared_until` (the generation shortcut)
//!   stays true; only its own id and the pointers out of it change (`format::copy`). Its
//!   checksum is verified against its parent's pointer before it moves, so a compaction
//!   never carries damage on under a fresh checksum.
//! - Moved pages keep old births, which recovery does not verify: a step's commit syncs them
//!   before its meta (`txn/commit.rs`).
//! - Every page a step allocates lies below the cut-off (the free map's ceiling), and the
//!   free-map pages above it move too (`relocate_above`); a step that finds no room is
//!   dropped and retried smaller.
//! - Bounded: at most `max_steps` steps, each moving at most `STEP_PAGES` pages from the
//!   tail (plus their parents).

use super::pages::PageWalk;
use crate::btree::node_at;
use crate::btree::share::{build_refcount_tree, stored_count_map};
use crate::btree::traverse::{traverse, Child, Edge, Enter, Target, TreeKind, Visitor};
use crate::format::copy::move_node;
use crate::format::node::NodeView;
use crate::format::{checksum, PageId, Ptr};
use crate::pager::freemap::is_ceiling_reached;
use crate::pager::{overflow_pages, IdMap, PageSource, ReadPages, WritePager};
use crate::txn::roots::MAIN;
use crate::txn::{Durability, Shared, WriteTxn, WriterGuard};
use crate::{Error, Result};

/// What [`Database::compact`](crate::Database::compact) did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactReport {
    /// Bytes of the file before.
    pub bytes_before: u64,
    /// Bytes of the file after.
    pub bytes_after: u64,
    /// Pages written elsewhere: pages moved off the tail, and the parents rewritten to
    /// point at them (an overflow run counts its pages).
    pub pages_moved: u64,
    /// Commits taken.
    pub commits: u64,
    /// Whether a reader that began before the compaction kept the file from being cut as
    /// short as it could be. The first durable commit after that reader ends cuts it.
    pub truncation_delayed: bool,
}

/// The most pages one step moves off the tail (held in memory until its commit).
const STEP_PAGES: u64 = 8192;

/// Spare pages below the cut-off: the room a step's parents, refcount tree and free-map
/// pages take before the pages it frees come back (at the next step).
fn slack(used_pages: u64) -> u64 {
    (used_pages / 64).max(32)
}

/// Compacts the database: see the module invariants.
pub(crate) fn compact(shared: &Shared) -> Result<CompactReport> {
    let bytes_before = shared.file_len()?;
    let mut report = CompactReport {
        bytes_before,
        bytes_after: bytes_before,
        ..CompactReport::default()
    };
    let mut guard = shared.lock_writer()?;
    // Refilled leaves make the live pages fewer than the cut-off was measured on: a second
    // round, with the cut-off measured again, moves the pages between the two.
    for _round in 0..MAX_ROUNDS {
        let (next, cut) = compact_round(shared, guard, &mut report)?;
        guard = next;
        if !cut {
            break;
        }
    }
    drop(guard);
    report.bytes_after = shared.file_len()?;
    Ok(report)
}

/// The most rounds of steps and cuts (see `compact`).
const MAX_ROUNDS: usize = 3;

/// One round: the cut-off measured, the steps, the cut. Says whether it cut the file by more
/// than its slack, so that another round may be worth its while.
fn compact_round<'s>(
    shared: &'s Shared,
    guard: WriterGuard<'s>,
    report: &mut CompactReport,
) -> Result<(WriterGuard<'s>, bool)> {
    let (guard, drained) = drain_releases(shared, guard, report)?;
    let mut txn = begin(shared, guard)?;
    let file_pages = txn.base().meta.file_pages;
    let used = txn.pages_not_free();
    let cutoff = used + slack(used);
    let mut guard = txn.abandon();
    if !drained || cutoff >= file_pages {
        // Nothing past the slack to give back (or no room to work in): no commit.
        return Ok((guard, false));
    }
    guard = move_steps(shared, guard, cutoff, report)?;
    // Two cuts: the first frees what the last step left pending and cuts what it can; the
    // free-map pages it replaces are pending in their turn, and the second cuts past them.
    for _ in 0..2 {
        let (next, done) = cut_tail(shared, guard, cutoff)?;
        guard = next;
        report.commits += done as u64;
    }
    let state_pages = shared.current().meta.file_pages;
    let cut = shared.truncate_to_state()?;
    report.truncation_delayed = !cut || state_pages > cutoff;
    let gained = file_pages.saturating_sub(state_pages) > slack(used);
    Ok((guard, cut && gained))
}

fn begin<'s>(shared: &'s Shared, guard: WriterGuard<'s>) -> Result<WriteTxn<'s>> {
    let mut txn = WriteTxn::begin_locked(shared, MAIN, guard)?;
    txn.set_durability(Durability::Immediate);
    Ok(txn)
}

/// Commits `txn`, and says whether it could: a commit that found no room below the ceiling
/// fails whole, and the writer slot is taken again.
fn commit_or_no_room<'s>(shared: &'s Shared, txn: WriteTxn<'s>) -> Result<(WriterGuard<'s>, bool)> {
    match txn.commit_holding_lock() {
        Ok(guard) => Ok((guard, true)),
        Err(e) if is_ceiling_reached(&e) => Ok((shared.lock_writer()?, false)),
        Err(e) => Err(e),
    }
}

/// One commit that cuts the free tail, its free-map pages below the cut-off, or else
/// anywhere in the file; never one that grows the file (a reader may pin what would make
/// room). Says whether it committed.
fn cut_tail<'s>(
    shared: &'s Shared,
    guard: WriterGuard<'s>,
    cutoff: u64,
) -> Result<(WriterGuard<'s>, bool)> {
    let mut txn = begin(shared, guard)?;
    txn.cut_tail(cutoff);
    let (guard, done) = commit_or_no_room(shared, txn)?;
    if done {
        return Ok((guard, true));
    }
    let mut txn = begin(shared, guard)?;
    let file_pages = txn.base().meta.file_pages;
    txn.cut_tail(file_pages);
    commit_or_no_room(shared, txn)
}

/// Drops every queued reference in one commit, when any is queued: moves follow the named
/// roots only, so nothing may wait in the release queue. Says whether the queue is empty
/// (a drain that found no room in the file without growing it leaves it as it was).
fn drain_releases<'s>(
    shared: &'s Shared,
    guard: WriterGuard<'s>,
    report: &mut CompactReport,
) -> Result<(WriterGuard<'s>, bool)> {
    if shared.current().meta.release.is_null() {
        return Ok((guard, true));
    }
    let mut txn = begin(shared, guard)?;
    let file_pages = txn.base().meta.file_pages;
    txn.core_mut()
        .pager
        .free_map()
        .set_ceiling(Some(file_pages));
    match txn.drain_releases() {
        Err(e) if is_ceiling_reached(&e) => return Ok((txn.abandon(), false)),
        result => result?,
    }
    let (guard, done) = commit_or_no_room(shared, txn)?;
    report.commits += done as u64;
    Ok((guard, done))
}

/// Steps until one finds nothing left to move; a step without room is retried smaller.
fn move_steps<'s>(
    shared: &'s Shared,
    mut guard: WriterGuard<'s>,
    cutoff: u64,
    report: &mut CompactReport,
) -> Result<WriterGuard<'s>> {
    let max_steps = 16 + 4 * shared.current().meta.file_pages / STEP_PAGES;
    let mut budget = STEP_PAGES;
    // Bounded: at most `max_steps` steps.
    for _ in 0..max_steps {
        // A writer may have come in between steps (a slot lost to a failed commit).
        let (next, drained) = drain_releases(shared, guard, report)?;
        if !drained {
            return Ok(next);
        }
        let mut txn = begin(shared, next)?;
        let (next, moved) = match relocate(&mut txn, cutoff, budget) {
            Ok(0) => return Ok(txn.abandon()),
            Ok(moved) => {
                let (next, done) = commit_or_no_room(shared, txn)?;
                (next, if done { moved } else { 0 })
            }
            Err(e) if is_ceiling_reached(&e) => (txn.abandon(), 0),
            Err(e) => return Err(e),
        };
        guard = next;
        if moved > 0 {
            report.pages_moved += moved;
            report.commits += 1;
            continue;
        }
        if budget <= 16 {
            return Ok(guard);
        }
        budget /= 4;
    }
    Ok(guard)
}

/// One step: moves up to `budget` pages lying at or above `cutoff` (and the parents that
/// point at them) below it, in every named root, and rebuilds the refcount tree when a
/// counted page moved. Returns the pages moved.
fn relocate(txn: &mut WriteTxn<'_>, cutoff: u64, budget: u64) -> Result<u64> {
    let base = txn.base().clone();
    let src = &base.pages;
    assert!(
        txn.core_mut().edit.release.is_empty(),
        "the release queue was drained first"
    );
    let core = txn.core_mut();
    core.pager.free_map().set_ceiling(Some(cutoff));
    core.pager.free_map().relocate_above(cutoff);
    let counts = stored_count_map(src, base.meta.refcounts)?;
    let mut mover = Mover {
        src,
        pager: &mut core.pager,
        cutoff,
        budget,
        moved: 0,
        memo: IdMap::default(),
        shared: &counts,
    };
    let roots = traverse(src, base.meta.roots, TreeKind::Roots, &mut mover)?;
    let (mut moved, memo) = (mover.moved, mover.memo);
    if roots != base.meta.roots {
        core.edit.replace_roots(roots);
    }
    moved += rebuild_refs(txn, src, base.meta.refcounts, &counts, cutoff, &memo)?;
    Ok(moved)
}

/// The walk that moves pages: every node whose page lies in the tail, or one of whose
/// children moved, is written to a new page below the cut-off; sparse leaves are refilled
/// (`compact_refill`).
pub(super) struct Mover<'a, 'p> {
    pub(super) src: &'a ReadPages,
    pub(super) pager: &'p mut WritePager,
    cutoff: u64,
    budget: u64,
    pub(super) moved: u64,
    /// Every shareable page visited: its pointer after this step (itself when it stayed).
    pub(super) memo: IdMap<Ptr>,
    /// The stored reference counts: the pages with two parents or more.
    pub(super) shared: &'a IdMap<u32>,
}

impl Mover<'_, '_> {
    /// Whether the page or run `[id, id + n)` reaches into the tail and the step may still
    /// move it.
    fn should_move(&self, id: u64, n: u64) -> bool {
        id + n > self.cutoff && self.moved < self.budget
    }

    fn remember(&mut self, edge: &Edge<'_>, new: Ptr) -> Ptr {
        if edge.target.shareable() {
            self.memo.insert(edge.ptr.page.0, new);
        }
        new
    }

    /// The overflow run behind `ptr` after this step: moved below the cut-off when it
    /// reaches into the tail, once however many values point at it.
    pub(super) fn move_run(&mut self, ptr: Ptr, len: u64) -> Result<Ptr> {
        if let Some(&new) = self.memo.get(&ptr.page.0) {
            return Ok(new);
        }
        let n = overflow_pages(len, self.src.page_size());
        let mut new = ptr;
        if self.should_move(ptr.page.0, n) {
            let bytes = self.src.overflow_checked(ptr, len, true)?;
            let id = self.pager.alloc_moved(n)?;
            self.pager.put_moved(id, bytes.into());
            self.pager.free_overflow(ptr, len)?;
            self.moved += n;
            // Same bytes, so the same checksum; and the same birth.
            new.page = PageId(id);
        }
        self.memo.insert(ptr.page.0, new);
        Ok(new)
    }

    /// Writes node `view` to a new page with its children's new pointers; frees the old one.
    fn move_node(
        &mut self,
        edge: &Edge<'_>,
        view: &NodeView<'_>,
        kids: &[(Child, Ptr)],
    ) -> Result<Ptr> {
        let old = edge.ptr;
        let page = view.page_bytes();
        if checksum(page) != old.crc {
            return Err(Error::corrupted(old.page.0, "checksum mismatch"));
        }
        let values = edge.target.leaf_values().ok_or_else(|| {
            Error::corrupted(old.page.0, "a system tree reached from a named root")
        })?;
        let id = self.pager.alloc_moved(1)?;
        let mut out = vec![0u8; page.len()].into_boxed_slice();
        let new: Vec<Ptr> = kids.iter().map(|(_, ptr)| *ptr).collect();
        move_node(page, old.page.0, &mut out, id, values, &new)?;
        let crc = checksum(&out);
        self.pager.put_moved(id, out);
        self.pager.free_node(old)?;
        self.moved += 1;
        Ok(Ptr {
            page: PageId(id),
            txn: old.txn,
            crc,
        })
    }
}

impl<'a> Visitor<'a, ReadPages> for Mover<'a, '_> {
    type Out = Ptr;

    /// A shared page already visited is not visited again: its parents all get its result.
    fn enter(&mut self, edge: &Edge<'a>) -> Result<Enter<Ptr>> {
        if edge.ptr.is_null() {
            return Ok(Enter::Skip(edge.ptr));
        }
        if let Some(&new) = self.memo.get(&edge.ptr.page.0) {
            if edge.target.shareable() {
                return Ok(Enter::Skip(new));
            }
        }
        // A table's lowest branch may have its leaves refilled. A child's level is its
        // parent's less one, so only a table's root is read here just to learn its level.
        let maybe_branch = matches!(edge.level, None | Some(1)) && self.moved < self.budget;
        if edge.target == Target::Node(TreeKind::Table) && maybe_branch {
            let view = node_at(self.src, edge.ptr, edge.level)?;
            if view.level() == 1 {
                if let Some(new) = self.refill_leaves(edge, &view)? {
                    return Ok(Enter::Skip(self.remember(edge, new)));
                }
            }
        }
        Ok(Enter::Descend)
    }

    fn overflow(&mut self, edge: &Edge<'a>, len: u64) -> Result<Ptr> {
        self.move_run(edge.ptr, len)
    }

    fn leave(
        &mut self,
        edge: &Edge<'a>,
        view: &NodeView<'a>,
        kids: Vec<(Child, Ptr)>,
    ) -> Result<Ptr> {
        let changed = kids.iter().any(|(child, new)| child.ptr != *new);
        let new = if changed || self.should_move(edge.ptr.page.0, 1) {
            self.move_node(edge, view, &kids)?
        } else {
            edge.ptr
        };
        Ok(self.remember(edge, new))
    }
}

/// Rebuilds the refcount tree below the cut-off when a counted page moved or one of its own
/// pages lies in the tail: the same counts, under the moved pages' new ids. Returns the pages
/// of the old tree it replaced.
fn rebuild_refs(
    txn: &mut WriteTxn<'_>,
    src: &ReadPages,
    refs: Ptr,
    counts: &IdMap<u32>,
    cutoff: u64,
    memo: &IdMap<Ptr>,
) -> Result<u64> {
    let old_pages = tree_pages(src, refs)?;
    let new_id = |id: u64| memo.get(&id).map_or(id, |ptr| ptr.page.0);
    let remapped = counts.keys().any(|&id| new_id(id) != id);
    if !remapped && old_pages.iter().all(|ptr| ptr.page.0 < cutoff) {
        return Ok(0);
    }
    let mut counts: Vec<(u64, u32)> = counts.iter().map(|(&id, &n)| (new_id(id), n)).collect();
    counts.sort_unstable();
    let core = txn.core_mut();
    for &ptr in &old_pages {
        core.pager.free_node(ptr)?;
    }
    let root = build_refcount_tree(&mut core.pager, &counts)?;
    core.edit.replace_refs(root);
    Ok(old_pages.len() as u64)
}

/// Every node page of the refcount tree under `root`.
fn tree_pages(src: &ReadPages, root: Ptr) -> Result<Vec<Ptr>> {
    let mut pages = Vec::new();
    let mut walk = PageWalk::new(src, |ptr| {
        pages.push(ptr);
        Ok(true)
    });
    walk.walk(root, TreeKind::Refs)?;
    drop(walk);
    Ok(pages)
}
