//! `check` and `stats`: the full integrity and accounting proof, and cheap counters.
//!
//! Invariants proved by `check`: every page of the file is exactly one of meta, free-map
//! structure, free, pending-free or reachable from the catalog; every reachable page's
//! checksum holds; keys are ordered within their bounds; each table's `len` is exact; the
//! meta's free and pending counts are exact.

use crate::btree::{self, check_tree};
use crate::format::freemap::bits_per_bitmap;
use crate::format::{self, tag, HEADER_BYTES};
use crate::pager::{freemap, PageSource};
use crate::txn::catalog::TableRecord;
use crate::txn::{Committed, Shared};
use crate::{Error, Result};

/// What `check` counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckReport {
    /// The txn id checked.
    pub txn: u64,
    /// Pages in the file.
    pub total_pages: u64,
    /// Pages of the meta region.
    pub meta_pages: u64,
    /// Free-map pages (bitmaps, directory, pending chain).
    pub freemap_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages waiting to be freed.
    pub pending_pages: u64,
    /// Pages reachable from the catalog (catalog, table nodes, overflow runs).
    pub tree_pages: u64,
    /// Tables.
    pub tables: u64,
    /// Entries across all tables.
    pub entries: u64,
}

/// One table in [`Stats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableStats {
    /// Its name.
    pub name: String,
    /// Entries.
    pub len: u64,
    /// Tree depth (0 when empty).
    pub depth: u8,
}

/// Sizes and counts, without a full check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// The newest txn id.
    pub txn: u64,
    /// Bytes of the file.
    pub file_bytes: u64,
    /// The page size.
    pub page_size: usize,
    /// Pages in the file.
    pub total_pages: u64,
    /// Pages in use (neither free nor pending).
    pub used_pages: u64,
    /// Free pages.
    pub free_pages: u64,
    /// Pages waiting to be freed.
    pub pending_pages: u64,
    /// Every table.
    pub tables: Vec<TableStats>,
}

const META: u8 = 1;
const FREEMAP: u8 = 2;
const FREE: u8 = 3;
const PENDING: u8 = 4;
const TREE: u8 = 5;

struct Accounting {
    owner: Vec<u8>,
}

impl Accounting {
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
        Ok(())
    }

    fn count(&self, kind: u8) -> u64 {
        self.owner.iter().filter(|k| **k == kind).count() as u64
    }
}

/// The full check of one committed state.
pub fn check(state: &Committed) -> Result<CheckReport> {
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
    };
    let first_data = format::first_data_page(page_size);
    acc.mark(0, first_data, META)?;

    let loaded = freemap::load_chains(pages, meta.free_dir, meta.pending, meta.file_pages, true)?;
    for id in &loaded.chain_pages {
        acc.mark(*id, 1, FREEMAP)?;
    }
    let bits = bits_per_bitmap(page_size);
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
        for (byte_at, byte) in page[HEADER_BYTES..].iter().enumerate() {
            for bit in 0..8 {
                if byte & (1 << bit) != 0 {
                    let id = k as u64 * bits + byte_at as u64 * 8 + bit;
                    acc.mark(id, 1, FREE)?;
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
    for (_, id) in &loaded.pending {
        acc.mark(*id, 1, PENDING)?;
    }
    if free_total != meta.free_count || loaded.pending.len() as u64 != meta.pending_count {
        return Err(Error::corrupted(0, "meta free or pending count is wrong"));
    }

    let mut on_page = |first: u64, count: u64| acc.mark(first, count, TREE);
    let mut report = CheckReport::default();
    check_tree(pages, meta.catalog, &mut on_page)?;
    if !meta.catalog.is_null() {
        let cursor = btree::Cursor::new(
            pages,
            meta.catalog,
            btree::Bound::Unbounded,
            btree::Bound::Unbounded,
        );
        for item in cursor {
            let (name, value) = item?;
            if std::str::from_utf8(name).is_err() || name.is_empty() {
                return Err(Error::corrupted(meta.catalog.page.0, "bad table name"));
            }
            let record = TableRecord::decode(value, meta.catalog.page.0)?;
            let stats = check_tree(pages, record.root, &mut on_page)?;
            if stats.entries != record.len {
                return Err(Error::corrupted(
                    record.root.page.0,
                    "table length disagrees with its entries",
                ));
            }
            report.tables += 1;
            report.entries += stats.entries;
        }
    }
    if let Some(leaked) = acc.owner.iter().position(|k| *k == 0) {
        return Err(Error::corrupted(
            leaked as u64,
            "page leaked: neither free, pending nor reachable",
        ));
    }
    report.txn = meta.txn;
    report.total_pages = meta.file_pages;
    report.meta_pages = acc.count(META);
    report.freemap_pages = acc.count(FREEMAP);
    report.free_pages = acc.count(FREE);
    report.pending_pages = acc.count(PENDING);
    report.tree_pages = acc.count(TREE);
    Ok(report)
}

/// Counters of the newest state.
pub fn stats(shared: &Shared) -> Result<Stats> {
    let state = shared.current();
    let meta = state.meta;
    let pages = &state.pages;
    let mut tables = Vec::new();
    if !meta.catalog.is_null() {
        let cursor = btree::Cursor::new(
            pages,
            meta.catalog,
            btree::Bound::Unbounded,
            btree::Bound::Unbounded,
        );
        for item in cursor {
            let (name, value) = item?;
            let record = TableRecord::decode(value, meta.catalog.page.0)?;
            let depth = btree::root_level(pages, record.root)?.map_or(0, |l| l + 1);
            tables.push(TableStats {
                name: String::from_utf8_lossy(name).into_owned(),
                len: record.len,
                depth,
            });
        }
    }
    Ok(Stats {
        txn: meta.txn,
        file_bytes: shared.storage.len()?,
        page_size: pages.page_size(),
        total_pages: meta.file_pages,
        used_pages: meta.file_pages - meta.free_count - meta.pending_count,
        free_pages: meta.free_count,
        pending_pages: meta.pending_count,
        tables,
    })
}
