//! Sharing pages between roots: reference counts and copy-on-write of shared nodes (the
//! release queue, which drops a whole tree's references in bounded steps, is `release.rs`).
//!
//! Invariants:
//! - A page's reference count is the number of parents pointing at it across all roots (a
//!   parent is a node page, a root record or a release-queue entry). Only counts ≥ 2 are
//!   stored, in the refcount tree, 64 pages to an entry (`format::counts`); an absent page
//!   counts 1.
//! - In a write transaction a count is the tree's plus the transaction's pending change
//!   ([`Refcounts`]); the changes reach the tree, in key order, only at [`Refcounts::flush`],
//!   before the tree is sealed. No count ever falls below 1: a page whose last reference goes
//!   is freed instead.
//! - A page born after its root's `shared_until` cannot be shared, so its count is never
//!   looked up (the generation shortcut). Pages born in the current txn are never shared.
//! - Copying a shared node adds one reference to each of its children and drops one from the
//!   original; copying an unshared node frees the original (its children change parent but
//!   not count).
//! - A flush edits the refcount tree change by change, or rebuilds it whole from its stored
//!   counts merged with the changes (many changes against a small tree); both leave the same
//!   counts, and a rebuild frees every page of the old tree.

use super::build::TreeBuilder;
use super::node_at;
use super::traverse::{targets, traverse, Child, Edge, Enter, TreeKind, Visitor};
use super::write::{modify_with_finger, Finger};
use crate::format::counts::{
    chunk_count, chunk_first, chunk_key, chunk_offset, chunks, decode_chunk_key, CountChunk,
    CHUNK_PAGES,
};
use crate::format::node::{LeafValue, NodeView};
use crate::format::Ptr;
use crate::pager::{IdMap, IdSet, PageSource, WritePager};
use crate::{Error, Result};

/// The reference counts as one write transaction sees them: the refcount tree plus the
/// changes not yet applied to it. A change waits in memory until [`Refcounts::flush`], so
/// that a copied branch's hundred children cost a hash update each instead of a tree insert,
/// and a count raised and dropped again in the same transaction (a child copied after its
/// parent) never reaches the tree (the delayed references of btrfs).
#[derive(Debug, Default)]
pub struct Refcounts {
    /// Root of the refcount tree, without the pending changes.
    root: Ptr,
    /// Pending change of each page's count (zero when the changes cancelled out), by the
    /// chunk that holds it: a flush edits each chunk's entry once.
    pending: IdMap<ChunkChanges>,
}

/// The pending changes of one chunk's counts, by page within it.
type ChunkChanges = [i32; CHUNK_PAGES as usize];

impl Refcounts {
    /// The counts stored in the refcount tree at `root`, with nothing pending.
    pub fn new(root: Ptr) -> Refcounts {
        Refcounts {
            root,
            pending: IdMap::default(),
        }
    }

    /// The reference count of `page` (1 when neither stored nor changed).
    fn count(&self, w: &WritePager, page: u64) -> Result<u32> {
        let change = self
            .pending
            .get(&chunk_first(page))
            .map_or(0, |c| c[chunk_offset(page)]);
        changed_count(
            self.root.page.0,
            page,
            refcount(w, self.root, page)?,
            i64::from(change),
        )
    }

    /// The pending changes of the chunk holding `page`.
    fn changes_of(&mut self, page: u64) -> &mut i32 {
        let chunk = self
            .pending
            .entry(chunk_first(page))
            .or_insert([0; CHUNK_PAGES as usize]);
        &mut chunk[chunk_offset(page)]
    }

    /// Adds one reference to `page`.
    pub fn add(&mut self, page: u64) {
        *self.changes_of(page) += 1;
    }

    /// Drops one reference to `page` when another parent still holds one, and says so. Its
    /// last reference is never dropped (no count falls below 1): then nothing changes, and
    /// the caller frees the page or takes it over.
    pub fn drop_if_shared(&mut self, w: &WritePager, page: u64) -> Result<bool> {
        if self.count(w, page)? <= 1 {
            return Ok(false);
        }
        *self.changes_of(page) -= 1;
        Ok(true)
    }

    /// The root of a tree that holds every count, pending ones applied. Few changes against a
    /// large tree go in chunk by chunk, each a finger edit of one entry in key order (the
    /// children of a node, neighbours in the file, mostly share a chunk). Many changes against
    /// a small tree (the first copies after a snapshot add a count for every child of each
    /// copied branch) rebuild the tree bottom-up, merged with what it held: a packed append
    /// costs a fraction of a finger edit.
    pub fn flush(&mut self, w: &mut WritePager) -> Result<Ptr> {
        let mut changed: Vec<(u64, ChunkChanges)> = self
            .pending
            .drain()
            .filter(|(_, changes)| changes.iter().any(|&c| c != 0))
            .collect();
        changed.sort_unstable_by_key(|c| c.0);
        if changed.len() >= REBUILD_MIN_CHUNKS {
            let limit = changed.len() * REBUILD_MAX_STORED_PER_CHANGED;
            if let Some(old) = read_tree(w, self.root, limit)? {
                self.root = rebuild(w, self.root, old, &changed)?;
                return Ok(self.root);
            }
        }
        let mut finger: Option<Finger> = None;
        let mut none = Sharing::system(TreeKind::Refs);
        // Bounded: one step per changed chunk.
        for (first, changes) in changed {
            let tree = self.root.page.0;
            // The new chunk's bytes are returned by value: no allocation per edit.
            let apply = |stored: Option<&[u8]>| -> Result<Option<_>> {
                let mut chunk = match stored {
                    Some(value) => CountChunk::decode(first, value, tree)?,
                    None => CountChunk::empty(first),
                };
                apply_changes(tree, &mut chunk, &changes)?;
                Ok((!chunk.is_empty()).then(|| chunk.encode()))
            };
            let key = chunk_key(first);
            self.root = modify_with_finger(w, &mut none, self.root, &key, &mut finger, apply)?;
        }
        Ok(self.root)
    }

    /// Takes a refcount tree that a compaction rebuilt (the same counts, pages moved).
    pub fn replace(&mut self, root: Ptr) {
        assert!(
            self.pending.is_empty(),
            "a rebuilt refcount tree would lose pending changes"
        );
        self.root = root;
    }
}

/// A stored count with a pending change applied. In a sound file it never falls below 1 (a
/// page whose last reference goes is freed, its count never dropped) nor past the stored
/// width; a damaged refcount tree (`tree`) can break either, which is corruption, not a bug.
fn changed_count(tree: u64, page: u64, stored: u32, change: i64) -> Result<u32> {
    let count = i64::from(stored) + change;
    u32::try_from(count)
        .ok()
        .filter(|&c| c >= 1)
        .ok_or_else(|| {
            Error::corrupted(
                tree,
                format!(
                    "page {page}: stored reference count {stored} changed by {change} is {count}"
                ),
            )
        })
}

/// `chunk`'s counts with `changes` (its pages' pending changes) applied.
fn apply_changes(tree: u64, chunk: &mut CountChunk, changes: &ChunkChanges) -> Result<()> {
    // Bounded: the 64 pages of a chunk. Offsets, not an open range of ids: the last chunk
    // ends at u64::MAX, past which a range would step (a damaged pointer can name it).
    for (bit, &change) in changes.iter().enumerate() {
        let page = chunk.first() + bit as u64;
        if change != 0 {
            let count = changed_count(tree, page, chunk.count(page), change.into())?;
            chunk.set(page, count);
        }
    }
    Ok(())
}

/// Fewest changed chunks for which a rebuild of the refcount tree is considered.
const REBUILD_MIN_CHUNKS: usize = 32;
/// A rebuild rewrites every stored chunk: it pays while the tree holds at most this many
/// per changed chunk.
const REBUILD_MAX_STORED_PER_CHANGED: usize = 4;

/// The refcount tree at `root` (null: none) read whole: its node pages and its entries.
struct ReadTree {
    pages: Vec<Ptr>,
    chunks: Vec<CountChunk>,
}

/// The refcount tree at `root` when it holds at most `limit` entries, else None. The walk
/// stops reading once the limit is passed, so a large tree costs about `limit` entries' worth
/// of pages, not its size.
fn read_tree<S: PageSource + ?Sized>(src: &S, root: Ptr, limit: usize) -> Result<Option<ReadTree>> {
    let mut walk = CountWalk {
        tree: root.page.0,
        limit,
        read: ReadTree {
            pages: Vec::new(),
            chunks: Vec::new(),
        },
        seen: IdSet::default(),
    };
    traverse(src, root, TreeKind::Refs, &mut walk)?;
    Ok((walk.read.chunks.len() <= limit).then_some(walk.read))
}

/// [`read_tree`]'s visitor: the pages and the chunks in key order, until the limit. A page
/// reached twice (a damaged tree) is corruption: a rebuild would free it twice.
struct CountWalk {
    tree: u64,
    limit: usize,
    read: ReadTree,
    seen: IdSet,
}

impl<'s, S: PageSource + ?Sized + 's> Visitor<'s, S> for CountWalk {
    type Out = ();

    fn enter(&mut self, edge: &Edge<'s>) -> Result<Enter<()>> {
        if edge.ptr.is_null() || self.read.chunks.len() > self.limit {
            return Ok(Enter::Skip(()));
        }
        if !self.seen.insert(edge.ptr.page.0) {
            return Err(Error::corrupted(
                edge.ptr.page.0,
                "refcount tree page reached twice",
            ));
        }
        Ok(Enter::Descend)
    }

    fn overflow(&mut self, edge: &Edge<'s>, _len: u64) -> Result<()> {
        Err(Error::corrupted(
            edge.ptr.page.0,
            "overflow run in the refcount tree",
        ))
    }

    fn leave(&mut self, edge: &Edge<'s>, view: &NodeView<'s>, _: Vec<(Child, ())>) -> Result<()> {
        self.read.pages.push(edge.ptr);
        if !view.is_leaf() {
            return Ok(());
        }
        // Bounded: one step per entry of the leaf.
        for i in 0..view.count() {
            let (key, value) = view.key_value(i)?;
            let LeafValue::Inline(value) = value else {
                return Err(Error::corrupted(
                    self.tree,
                    "overflow value in the refcount tree",
                ));
            };
            let first = decode_chunk_key(key, self.tree)?;
            let chunk = CountChunk::decode(first, value, self.tree)?;
            self.read.chunks.push(chunk);
        }
        Ok(())
    }
}

/// A new refcount tree holding the counts of `old` (the tree at `root`) with `changed`
/// (sorted by chunk) applied, built bottom-up; the old pages are freed.
fn rebuild(
    w: &mut WritePager,
    root: Ptr,
    old: ReadTree,
    changed: &[(u64, ChunkChanges)],
) -> Result<Ptr> {
    let merged = merged_chunks(root.page.0, old.chunks, changed)?;
    for &ptr in &old.pages {
        w.free_node(ptr)?;
    }
    build_from_chunks(w, &merged)
}

/// A refcount tree, born in this txn and built bottom-up, holding `counts` (each 2 or more,
/// in strictly increasing page order); null when there is none.
pub fn build_refcount_tree(w: &mut WritePager, counts: &[(u64, u32)]) -> Result<Ptr> {
    build_from_chunks(w, &chunks(counts))
}

/// A refcount tree, born in this txn and built bottom-up, holding `chunks` (none empty, in
/// key order); null when there is none.
fn build_from_chunks(w: &mut WritePager, chunks: &[CountChunk]) -> Result<Ptr> {
    if chunks.is_empty() {
        return Ok(Ptr::default());
    }
    let mut tree = TreeBuilder::new(w.page_size(), w.txn().0);
    // Bounded: one step per chunk.
    for chunk in chunks {
        let value = chunk.encode();
        tree.push(
            w,
            &chunk_key(chunk.first()),
            LeafValue::Inline(value.as_ref()),
        )?;
    }
    tree.finish(w)
}

/// The `stored` chunks (of the tree at page `tree`) with `changed` applied, both sorted by
/// first page: the chunks that still hold a count, in key order. Stored chunks out of order
/// (a damaged tree) are corruption: a tree built from them would be out of order too.
fn merged_chunks(
    tree: u64,
    stored: Vec<CountChunk>,
    changed: &[(u64, ChunkChanges)],
) -> Result<Vec<CountChunk>> {
    if stored
        .windows(2)
        .any(|pair| pair[0].first() >= pair[1].first())
    {
        return Err(Error::corrupted(tree, "refcount keys out of order"));
    }
    let mut out = Vec::with_capacity(stored.len() + changed.len());
    let mut stored = stored.into_iter().peekable();
    // Bounded: one round per changed chunk, each taking the stored chunks below it.
    for (first, changes) in changed {
        while let Some(below) = stored.next_if(|c| c.first() < *first) {
            out.push(below);
        }
        let mut chunk = stored
            .next_if(|c| c.first() == *first)
            .unwrap_or_else(|| CountChunk::empty(*first));
        apply_changes(tree, &mut chunk, changes)?;
        if !chunk.is_empty() {
            out.push(chunk);
        }
    }
    out.extend(stored);
    Ok(out)
}

/// The sharing context of a tree being written. It borrows the counts from their one owner
/// (the transaction's `RootsEdit`), so the counts it changes land there directly.
#[derive(Debug)]
pub struct Sharing<'a> {
    /// The counts (changed as pages are copied); `None` for a tree that is never shared,
    /// whose counts are never asked.
    refs: Option<&'a mut Refcounts>,
    /// Pages born after this txn cannot be shared.
    shared_until: u64,
    /// The kind of tree being written.
    kind: TreeKind,
}

impl<'a> Sharing<'a> {
    /// The context of a tree of `kind` whose pages born up to `shared_until` may be shared,
    /// with the counts in `refs`.
    pub fn new(refs: &'a mut Refcounts, shared_until: u64, kind: TreeKind) -> Sharing<'a> {
        Sharing {
            refs: Some(refs),
            shared_until,
            kind,
        }
    }

    /// The context of a system tree (roots, refcounts, release queue), which is never
    /// shared: every committed page is born after txn 0, so no count is asked.
    pub fn system(kind: TreeKind) -> Sharing<'static> {
        Sharing {
            refs: None,
            shared_until: 0,
            kind,
        }
    }

    /// The kind of tree being written.
    pub fn kind(&self) -> TreeKind {
        self.kind
    }

    /// The counts when the page born at `ptr.txn` may be shared (else it is this tree's
    /// alone, and whatever copies or drops it owes no count).
    fn counts_for(&mut self, w: &WritePager, ptr: Ptr) -> Option<&mut Refcounts> {
        if ptr.txn == w.txn() || ptr.txn.0 > self.shared_until {
            return None;
        }
        self.refs.as_deref_mut()
    }
}

/// The reference count of `page` stored in the refcount tree at `refs` (1 when not stored).
pub fn refcount<S: PageSource + ?Sized>(src: &S, refs: Ptr, page: u64) -> Result<u32> {
    match super::get(src, refs, &chunk_key(chunk_first(page)))? {
        Some(value) => chunk_count(value, page, refs.page.0),
        None => Ok(1),
    }
}

/// Every stored reference count (each 2 or more), by page id: the pages that have two
/// parents or more, for a walk that must tell shared pages apart (backup, compaction).
pub fn stored_count_map<S: PageSource + ?Sized>(src: &S, refs: Ptr) -> Result<IdMap<u32>> {
    Ok(stored_counts(src, refs)?.into_iter().collect())
}

/// Every stored reference count (each 2 or more), by page id in order.
pub fn stored_counts<S: PageSource + ?Sized>(src: &S, refs: Ptr) -> Result<Vec<(u64, u32)>> {
    let read = read_tree(src, refs, usize::MAX)?;
    let chunks = read.map(|read| read.chunks).unwrap_or_default();
    Ok(chunks.iter().flat_map(CountChunk::iter).collect())
}

/// Makes the node behind `ptr` writable for a tree in context `sh`: in place when dirty, a
/// copy that frees the original when unshared, a copy that shares its children when shared.
pub fn cow(w: &mut WritePager, sh: &mut Sharing<'_>, ptr: Ptr) -> Result<Ptr> {
    let kind = sh.kind;
    let Some(refs) = sh.counts_for(w, ptr) else {
        return w.make_dirty(ptr);
    };
    if !refs.drop_if_shared(w, ptr.page.0)? {
        return w.make_dirty(ptr);
    }
    let copy = w.copy_node(ptr)?;
    for child in targets(&node_at(w, copy, None)?, kind)? {
        refs.add(child.ptr.page.0);
    }
    Ok(copy)
}

/// Drops this tree's reference to an overflow run: frees it unless another parent shares it.
pub fn release_overflow(
    w: &mut WritePager,
    sh: &mut Sharing<'_>,
    ptr: Ptr,
    len: u64,
) -> Result<()> {
    let Some(refs) = sh.counts_for(w, ptr) else {
        return w.free_overflow(ptr, len);
    };
    if refs.drop_if_shared(w, ptr.page.0)? {
        return Ok(());
    }
    w.free_overflow(ptr, len)
}

#[cfg(test)]
mod tests {
    use super::{merged_chunks, ChunkChanges};
    use crate::format::counts::{chunk_first, chunk_offset, chunks, CountChunk, CHUNK_PAGES};

    /// `merged_chunks` over page-level counts and changes (both sorted by page).
    fn merged(stored: &[(u64, u32)], changes: &[(u64, i32)]) -> crate::Result<Vec<(u64, u32)>> {
        let mut changed: Vec<(u64, ChunkChanges)> = Vec::new();
        for &(page, change) in changes {
            let first = chunk_first(page);
            if changed.last().is_none_or(|c| c.0 != first) {
                changed.push((first, [0; CHUNK_PAGES as usize]));
            }
            changed.last_mut().unwrap().1[chunk_offset(page)] += change;
        }
        let out = merged_chunks(100, chunks(stored), &changed)?;
        Ok(out.iter().flat_map(CountChunk::iter).collect())
    }

    #[test]
    fn merging_applies_changes_in_page_order_and_keeps_counts_above_one() {
        let stored = [(3, 2), (5, 3), (9, 2), (70, 2), (200, 4)];
        let changes = [
            (1, 1),
            (5, -1),
            (7, 2),
            (9, -1),
            (11, 0),
            (70, -1),
            (130, 1),
        ];
        // 1 gains a second parent, 5 keeps two, 7 gains two, 9 falls back to one (not
        // stored), 11 is unchanged at one; 70's chunk empties and goes; 3 and 200 are carried
        // over; 130 starts a chunk of its own.
        let want = vec![(1, 2), (3, 2), (5, 2), (7, 3), (130, 2), (200, 4)];
        assert_eq!(merged(&stored, &changes).unwrap(), want);
        assert_eq!(merged(&[(4, 2)], &[]).unwrap(), vec![(4, 2)]);
        assert_eq!(merged(&[], &[(4, 1)]).unwrap(), vec![(4, 2)]);
        // The last chunk of the id space ends at u64::MAX (a damaged pointer can name it).
        let top = [(u64::MAX - 1, 2), (u64::MAX, 3)];
        assert_eq!(
            merged(&top, &[(u64::MAX, 1)]).unwrap(),
            vec![(u64::MAX - 1, 2), (u64::MAX, 4)]
        );
    }

    #[test]
    fn merging_a_count_below_one_or_stored_chunks_out_of_order_is_corruption() {
        assert!(merged(&[(4, 2)], &[(4, -2)]).is_err());
        assert!(merged(&[], &[(4, -1)]).is_err());
        let mut unordered = chunks(&[(5, 2), (70, 2)]);
        unordered.reverse();
        assert!(merged_chunks(100, unordered, &[]).is_err());
        let twice = [chunks(&[(5, 2)]), chunks(&[(6, 2)])].concat();
        assert!(merged_chunks(100, twice, &[]).is_err());
    }
}
