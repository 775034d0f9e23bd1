//! `check`: the full integrity and accounting proof.
//!
//! Invariants proved by `check`: every page of the file is exactly one of meta, free-map
//! structure, free, pending-free or reachable from a snapshot, a branch or the release queue; every reachable page's
//! checksum holds; keys are ordered within their bounds; each table's `len` is exact; the
//! meta's free and pending counts are exact. `tables` and `entries` are totals across roots;
//! `main_tables` and `main_entries` count `main` alone. The trees are walked by a visitor over
//! `btree::traverse` and the chains read through `pager::chain`, which bound both.

use crate::btree::traverse::{traverse, Child, Edge, Enter, Target, TreeKind, Visitor};
use crate::btree::{self, check_node};
use crate::format::freemap::{bitmap_body, bits_per_bitmap};
use crate::format::node::{LeafValue, NodeView};
use crate::format::records::TableRecord;
use crate::format::{self, tag, Ptr};
use crate::pager::{freemap, overflow_pages, IdMap, PageSource, ReadPages};
use crate::txn::Committed;
use crate::{Error, Result};

/// What [`Database::check`](crate::Database::check) verified and counted: every page of the
/// file falls in exactly one of the page counts, which add up to `total_pages`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The id of the commit checked (see [`WriteTxn::txn_id`](crate::WriteTxn::txn_id)).
    pub txn: u64,
    /// Pages in the file.
    pub total_pages: u64,
    /// Pages of the meta region, and the meta pages of the commit chain (with the page
    /// reserved for the next meta).
    pub meta_pages: u64,
    /// Free-map pages (bitmaps, directory, pending chain).
    pub freemap_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages waiting to be freed.
    pub pending_pages: u64,
    /// Pages reachable from snapshots and branches (catalogs, table nodes, overflow runs),
    /// each counted once however many roots share it.
    pub tree_pages: u64,
    /// Pages of the system trees (roots, reference counts, release queue).
    pub system_pages: u64,
    /// Total across roots: table records found in the catalogs of all snapshots and branches
    /// (a record on a catalog page shared by several roots counts once). What `main` holds is
    /// [`main_tables`](Self::main_tables).
    pub tables: u64,
    /// Total across roots: entries of the tables those records point at (a shared table
    /// counts once per record). What `main` holds is [`main_entries`](Self::main_entries).
    pub entries: u64,
    /// Tables in `main`'s catalog: what `begin_read` sees.
    pub main_tables: u64,
    /// Entries in `main`'s tables: what `begin_read` sees.
    pub main_entries: u64,
}

const META: u8 = 1;
const FREEMAP: u8 = 2;
const FREE: u8 = 3;
const PENDING: u8 = 4;
const TREE: u8 = 5;
const SYSTEM: u8 = 6;

/// Which page is what, and how many pages are accounted for so far (for progress reports).
struct Accounting<'p> {
    owner: Vec<u8>,
    marked: u64,
    /// Reported at about every thousandth of the file.
    next_report: u64,
    progress: &'p mut dyn FnMut(u64, u64),
}

impl Accounting<'_> {
    fn mark(&mut self, first: u64, count: u64, kind: u8) -> Result<()> {
        let end = first
            .checked_add(count)
            .filter(|e| *e <= self.owner.len() as u64);
        let Some(end) = end else {
            return Err(Error::corrupted(
                first,
                "page lies past the end of the file",
            ));
        };
        for id in first..end {
            let slot = &mut self.owner[id as usize];
            if *slot != 0 {
                return Err(Error::corrupted(
                    id,
                    format!("page used twice (as kind {} and {})", *slot, kind),
                ));
            }
            *slot = kind;
        }
        self.marked += end - first;
        if self.marked >= self.next_report {
            let total = self.owner.len() as u64;
            (self.progress)(self.marked, total);
            self.next_report = self.marked + total / 1000 + 1;
        }
        Ok(())
    }

    fn count(&self, kind: u8) -> u64 {
        self.owner.iter().filter(|k| **k == kind).count() as u64
    }
}

/// The full check of one committed state; `progress(pages checked, pages in the file)` is
/// called about a thousand times as pages are accounted for.
pub fn check(state: &Committed, progress: &mut dyn FnMut(u64, u64)) -> Result<CheckReport> {
    let meta = state.meta;
    let pages = &state.pages;
    let page_size = pages.page_size();
    if pages.view_pages() < meta.file_pages {
        return Err(Error::corrupted(
            meta.file_pages,
            "file shorter than the meta says",
        ));
    }
    let mut acc = Accounting {
        owner: vec![0; meta.file_pages as usize],
        marked: 0,
        next_report: 0,
        progress,
    };
    let first_data = format::first_data_page(page_size);
    acc.mark(0, first_data, META)?;
    // The commit chain's meta pages and the page reserved for the next one.
    let reserved = (meta.next_meta != 0).then_some(meta.next_meta);
    for page in state.chain.iter().map(|&(page, _)| page).chain(reserved) {
        acc.mark(page, 1, META)?;
    }
    check_free_map(state, &mut acc)?;

    let mut walker = Walker {
        pages,
        acc,
        parents: IdMap::default(),
        entries: IdMap::default(),
        report: CheckReport::default(),
    };
    // System trees: never shared, each page reached once. Their leaves point at the shared
    // pages (catalogs, tables, runs), which are walked once however many parents they have.
    for (root, kind) in [
        (meta.roots, TreeKind::Roots),
        (meta.refcounts, TreeKind::Refs),
        (meta.release, TreeKind::Release),
    ] {
        if !root.is_null() {
            traverse(pages, root, kind, &mut walker)?;
        }
    }
    check_counts(pages, meta.refcounts, &walker.parents)?;
    let acc = walker.acc;
    if let Some(leaked) = acc.owner.iter().position(|k| *k == 0) {
        return Err(Error::corrupted(
            leaked as u64,
            "page leaked: neither free, pending nor reachable",
        ));
    }
    (acc.progress)(acc.marked, acc.owner.len() as u64);
    let mut report = walker.report;
    report.txn = meta.txn;
    report.total_pages = meta.file_pages;
    report.meta_pages = acc.count(META);
    report.freemap_pages = acc.count(FREEMAP);
    report.free_pages = acc.count(FREE);
    report.pending_pages = acc.count(PENDING);
    report.tree_pages = acc.count(TREE);
    report.system_pages = acc.count(SYSTEM);
    (report.main_tables, report.main_entries) = main_counts(state)?;
    Ok(report)
}

/// Reference counts: every stored count must equal the parents found, and vice versa.
fn check_counts(pages: &ReadPages, refcounts: Ptr, parents: &IdMap<u32>) -> Result<()> {
    let stored = btree::share::stored_count_map(pages, refcounts)?;
    for (page, found) in parents {
        let want = stored.get(page).copied().unwrap_or(1);
        if want != *found {
            return Err(Error::corrupted(
                *page,
                format!("reference count {want} but {found} parents point at it"),
            ));
        }
    }
    if let Some(page) = stored.keys().find(|p| !parents.contains_key(p)) {
        return Err(Error::corrupted(
            *page,
            "reference count stored for an unreachable page",
        ));
    }
    Ok(())
}

/// Tables and entries of `main`, from its catalog's records: the walk above has just proved
/// every record's `len` equal to the entries under its root, so the records are enough.
fn main_counts(state: &Committed) -> Result<(u64, u64)> {
    let catalog = state.main.catalog;
    if catalog.is_null() {
        return Ok((0, 0));
    }
    let cursor = btree::Cursor::new(
        &state.pages,
        catalog,
        btree::Bound::Unbounded,
        btree::Bound::Unbounded,
    );
    let (mut tables, mut entries) = (0u64, 0u64);
    for item in cursor {
        let (_, value) = item?;
        tables += 1;
        // Saturating: the lengths are proved but still come from the file.
        entries = entries.saturating_add(TableRecord::decode(value, catalog.page.0)?.len);
    }
    Ok((tables, entries))
}

fn check_free_map(state: &Committed, acc: &mut Accounting<'_>) -> Result<()> {
    let meta = state.meta;
    let pages = &state.pages;
    let loaded = freemap::load_chains(pages, meta.free_dir, meta.pending, true)?;
    for ptr in &loaded.chain_pages {
        acc.mark(ptr.page.0, 1, FREEMAP)?;
    }
    let bits = bits_per_bitmap(pages.page_size());
    if meta.txn > 0 && loaded.dir.len() as u64 != meta.file_pages.div_ceil(bits) {
        return Err(Error::corrupted(
            meta.free_dir.page.0,
            "free-map directory does not cover the file",
        ));
    }
    let mut free_total = 0u64;
    for (k, (ptr, free)) in loaded.dir.iter().enumerate() {
        if ptr.is_null() {
            if *free != 0 {
                return Err(Error::corrupted(
                    meta.free_dir.page.0,
                    "free count without a bitmap",
                ));
            }
            continue;
        }
        let page = pages.tagged(*ptr, &[tag::BITMAP], true)?;
        acc.mark(ptr.page.0, 1, FREEMAP)?;
        let mut set = 0u64;
        for (byte_at, byte) in bitmap_body(page).iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    acc.mark(k as u64 * bits + byte_at as u64 * 8 + bit, 1, FREE)?;
                    set += 1;
                }
            }
        }
        if set != *free as u64 {
            return Err(Error::corrupted(
                ptr.page.0,
                "bitmap count disagrees with the directory",
            ));
        }
        free_total += set;
    }
    for p in &loaded.pending {
        acc.mark(p.page, 1, PENDING)?;
    }
    if free_total != meta.free_count || loaded.pending.len() as u64 != meta.pending_count {
        return Err(Error::corrupted(0, "meta free or pending count is wrong"));
    }
    Ok(())
}

/// The walk of `check`: every page is verified, keys included, and marked; a shareable page
/// is walked on its first parent only, and its parents are counted.
struct Walker<'a, 'p> {
    pages: &'a ReadPages,
    acc: Accounting<'p>,
    /// Parents found so far of every shareable page (node or overflow run).
    parents: IdMap<u32>,
    /// Entries under every table node already walked (shared subtrees are walked once).
    entries: IdMap<u64>,
    report: CheckReport,
}

impl<'a> Visitor<'a, ReadPages> for Walker<'a, '_> {
    /// Entries under a table node (0 for anything else).
    type Out = u64;
    const KEY_BOUNDS: bool = true;

    /// Counts one parent of a shareable page and walks it on its first visit only.
    fn enter(&mut self, edge: &Edge<'a>) -> Result<Enter<u64>> {
        if matches!(
            edge.target,
            Target::Node(TreeKind::Roots | TreeKind::Refs | TreeKind::Release)
        ) {
            return Ok(Enter::Descend);
        }
        let page = edge.ptr.page.0;
        let parents = self.parents.entry(page).or_insert(0);
        *parents += 1;
        if *parents == 1 {
            return Ok(Enter::Descend);
        }
        match edge.target {
            Target::Node(TreeKind::Table) => match self.entries.get(&page) {
                Some(entries) => Ok(Enter::Skip(*entries)),
                None => Err(Error::corrupted(
                    page,
                    "node reached again inside its own subtree",
                )),
            },
            _ => Ok(Enter::Skip(0)),
        }
    }

    fn read(&mut self, src: &'a ReadPages, edge: &Edge<'a>) -> Result<NodeView<'a>> {
        let view = check_node(src, edge.ptr, edge.level, edge.low, edge.high)?;
        let kind = match edge.target {
            Target::Node(TreeKind::Catalog | TreeKind::Table) => TREE,
            _ => SYSTEM,
        };
        self.acc.mark(edge.ptr.page.0, 1, kind)?;
        Ok(view)
    }

    fn overflow(&mut self, edge: &Edge<'a>, len: u64) -> Result<u64> {
        let pages = self.pages;
        pages.overflow_checked(edge.ptr, len, true)?;
        let count = overflow_pages(len, pages.page_size());
        self.acc.mark(edge.ptr.page.0, count, TREE)?;
        Ok(0)
    }

    fn leave(
        &mut self,
        edge: &Edge<'a>,
        view: &NodeView<'a>,
        kids: Vec<(Child, u64)>,
    ) -> Result<u64> {
        let entries = match edge.target {
            Target::Node(TreeKind::Table) if view.is_leaf() => view.count() as u64,
            Target::Node(TreeKind::Table) => kids.iter().map(|(_, n)| n).sum(),
            Target::Node(TreeKind::Catalog) if view.is_leaf() => {
                self.table_records(view, &kids)?;
                0
            }
            Target::Node(TreeKind::Catalog) => 0,
            _ => return Ok(0),
        };
        self.entries.insert(edge.ptr.page.0, entries);
        Ok(entries)
    }
}

impl Walker<'_, '_> {
    /// Checks each table record of a catalog leaf against the entries found under its root
    /// (`kids`: the walked roots, in slot order).
    fn table_records(&mut self, view: &NodeView<'_>, kids: &[(Child, u64)]) -> Result<()> {
        let mut kids = kids.iter().peekable();
        // Bounded: one step per slot of the leaf.
        for slot in 0..view.count() {
            let record = TableRecord::decode(inline(view, slot)?, view.id())?;
            let found = match kids.next_if(|(child, _)| child.slot == slot) {
                Some((_, entries)) => *entries,
                None => 0,
            };
            if found != record.len {
                return Err(Error::corrupted(
                    view.id(),
                    "table length disagrees with its entries",
                ));
            }
            self.report.tables += 1;
            self.report.entries += found;
        }
        Ok(())
    }
}

fn inline<'a>(view: &NodeView<'a>, i: usize) -> Result<&'a [u8]> {
    match view.value(i)? {
        LeafValue::Inline(bytes) => Ok(bytes),
        LeafValue::Overflow { .. } => Err(Error::corrupted(
            view.id(),
            "catalog value in an overflow run",
        )),
    }
}
