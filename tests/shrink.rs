//! The free map's settings for compaction: cutting the free tail at commit, the allocation
//! ceiling, moving free-map pages out of a region, and releasing every releasable pending page
//! after a reopen.

use shadowkv::internals::format::meta::Meta;
use shadowkv::internals::io::{MemStorage, Storage};
use shadowkv::internals::pager::freemap::{self, is_ceiling_reached, Heat};
use shadowkv::internals::pager::ReadPages;
use shadowkv::{Database, Durability};
use std::sync::Arc;

const PS: usize = 4096;
const KEYS: u32 = 2000;

fn key(i: u32) -> [u8; 4] {
    i.to_be_bytes()
}

fn value(i: u32) -> Vec<u8> {
    vec![i as u8; 5000]
}

/// The newest meta in the storage (the one an open chooses).
fn meta_of(mem: &MemStorage) -> Meta {
    shadowkv::testkit::newest_meta(mem).unwrap().1
}

fn pages_of(mem: &MemStorage, meta: &Meta) -> ReadPages {
    let len = meta.file_pages * PS as u64;
    ReadPages::new(mem.view(len).unwrap(), len, PS, true)
}

/// A file of two tables of overflow values: "low" first, then "high", which ends the file.
/// Returns the file's pages after "low" was loaded.
fn two_tables(db: &Database) -> u64 {
    for table in ["low", "high"] {
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(table).unwrap();
            for i in 0..KEYS {
                t.insert(&key(i), &value(i)).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let stats = db.stats().unwrap();
    assert!(stats.total_pages > 4 * KEYS as u64);
    stats.total_pages / 2
}

/// Removes all of "high" and every fourth key of "low" (gaps below the middle of the file).
fn remove_high_and_some_low(db: &Database) {
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("high").unwrap();
        for i in 0..KEYS {
            assert!(t.remove(&key(i)).unwrap());
        }
    }
    {
        let mut t = tx.open_table("low").unwrap();
        for i in (0..KEYS).step_by(4) {
            assert!(t.remove(&key(i)).unwrap());
        }
    }
    tx.commit().unwrap();
}

/// A small commit with the given ceiling and shrink threshold.
fn small_commit(db: &Database, n: u32, ceiling: Option<u64>, threshold: Option<u64>) {
    let mut tx = db.begin_write().unwrap();
    tx.free_map().set_ceiling(ceiling);
    tx.free_map().set_shrink_threshold(threshold);
    tx.open_table("small")
        .unwrap()
        .insert(&n.to_be_bytes(), b"x")
        .unwrap();
    tx.commit().unwrap();
}

/// Opens the database in `mem` again.
fn reopen(mem: &Arc<MemStorage>) -> Database {
    Database::options()
        .durability(Durability::Immediate)
        .open_storage(mem.clone())
        .unwrap()
}

fn new_db() -> (Arc<MemStorage>, Database) {
    let mem = Arc::new(MemStorage::new());
    let db = Database::options()
        .durability(Durability::Immediate)
        .open_storage(mem.clone())
        .unwrap();
    (mem, db)
}

/// Table "low" with `KEYS` entries, then every `step`-th removed in a second commit.
fn low_with_gaps(db: &Database, step: usize) {
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("low").unwrap();
    for i in 0..KEYS {
        t.insert(&key(i), &value(i)).unwrap();
    }
    tx.commit().unwrap();
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("low").unwrap();
    for i in (0..KEYS).step_by(step) {
        assert!(t.remove(&key(i)).unwrap());
    }
    tx.commit().unwrap();
}

#[test]
fn a_free_tail_over_the_threshold_is_cut() {
    let (mem, db) = new_db();
    // Gaps in "low"; the copies the removal makes go to the free pages after it.
    low_with_gaps(&db, 4);
    for n in 0..2 {
        small_commit(&db, n, None, None);
    }
    // The free tail (the growth's slack) is cut, and the meta, `check` and the file agree.
    let before = db.stats().unwrap().total_pages;
    small_commit(&db, 2, None, Some(0));
    let end = db.stats().unwrap().total_pages;
    assert!(end < before, "{end} pages, {before} before");
    assert_eq!(meta_of(&mem).file_pages, end);
    assert_eq!(db.check().unwrap().total_pages, end);
    // "high" grows the file past `end`; removed under a ceiling at `end`, it leaves a free
    // tail from `end` on once the pages the removal replaced are released.
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("high").unwrap();
        for i in 0..KEYS {
            // Three pages each, so the two-page gaps in "low" stay free.
            t.insert(&key(i), &[1u8; 9000]).unwrap();
        }
    }
    tx.commit().unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.free_map().set_ceiling(Some(end));
    {
        let mut t = tx.open_table("high").unwrap();
        for i in 0..KEYS {
            assert!(t.remove(&key(i)).unwrap());
        }
    }
    tx.commit().unwrap();
    for n in 3..5 {
        small_commit(&db, n, Some(end), None);
    }
    let before = db.stats().unwrap().total_pages;
    assert!(
        before > end + 3 * KEYS as u64,
        "{before} pages, {end} before \"high\""
    );
    // A threshold longer than the tail cuts nothing.
    small_commit(&db, 5, Some(end), Some(before));
    assert_eq!(db.stats().unwrap().total_pages, before);
    small_commit(&db, 6, Some(end), Some(64));
    let stats = db.stats().unwrap();
    assert!(
        stats.total_pages <= end,
        "{} pages, ceiling {end}",
        stats.total_pages
    );
    assert_eq!(meta_of(&mem).file_pages, stats.total_pages);
    assert_eq!(db.check().unwrap().total_pages, stats.total_pages);
    // The free map only records the shorter length; the commit cut the file to it once it
    // was durable (no view of a longer state was alive).
    assert_eq!(mem.len().unwrap(), stats.total_pages * PS as u64);
    drop(db);
    let db = reopen(&mem);
    db.check().unwrap();
    {
        let rx = db.begin_read().unwrap();
        let t = rx.open_table("low").unwrap();
        assert_eq!(t.get(&key(1)).unwrap(), Some(&value(1)[..]));
        assert_eq!(t.get(&key(4)).unwrap(), None);
    }
    // Later commits grow the shorter file again as they need.
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("high").unwrap();
        for i in 0..KEYS {
            // Three pages each, so the two-page gaps in "low" stay free.
            t.insert(&key(i), &[1u8; 9000]).unwrap();
        }
    }
    tx.commit().unwrap();
    db.check().unwrap();
}

#[test]
fn a_ceiling_keeps_allocations_below_it_and_reports_exhaustion() {
    let (mem, db) = new_db();
    let middle = two_tables(&db);
    remove_high_and_some_low(&db);
    small_commit(&db, 0, Some(middle), None);
    let meta = meta_of(&mem);
    let pages = pages_of(&mem, &meta);
    let mut tx = db.begin_write().unwrap();
    let map = tx.free_map();
    map.set_ceiling(Some(middle));
    let mut taken = 0u64;
    let mut exhausted = false;
    // Bounded: every allocation takes a page of the file below the ceiling.
    for round in 0..middle {
        let (n, heat) = match round % 3 {
            0 => (1, Heat::Hot),
            1 => (1, Heat::Cold),
            _ => (2, Heat::Cold),
        };
        match map.alloc(&pages, n, heat) {
            Ok(id) => {
                assert!(id + n <= middle, "{n} pages at {id}, ceiling {middle}");
                taken += n;
            }
            Err(e) if is_ceiling_reached(&e) => {
                exhausted = true;
                break;
            }
            Err(e) => panic!("{e}"),
        }
    }
    assert!(exhausted);
    // Every fourth value of "low" was removed: two pages each, all taken.
    assert!(taken >= (KEYS / 4) as u64, "{taken} pages taken");
    // Single pages run out last: once runs of two are gone, the single pages left (in either
    // heat's extent) are taken one by one, and then none is found for either heat.
    for _ in 0..middle {
        match map.alloc(&pages, 1, Heat::Cold) {
            Ok(id) => assert!(id < middle, "page {id}, ceiling {middle}"),
            Err(e) => {
                assert!(is_ceiling_reached(&e), "{e}");
                break;
            }
        }
    }
    assert!(is_ceiling_reached(
        &map.alloc(&pages, 1, Heat::Hot).unwrap_err()
    ));
    assert_eq!(map.file_pages(), meta.file_pages);
    drop(tx);
    db.check().unwrap();
}

#[test]
fn relocate_above_moves_free_map_pages_below_the_cutoff() {
    let (mem, db) = new_db();
    // Gaps of two pages below the end of "low".
    low_with_gaps(&db, 2);
    // A reader from here on holds back the frees of the commits that follow (not those of
    // the removal): their pending chain grows, its older pages kept as they are. Their hot
    // pages (the chain's) take runs at the end of the file; cold ones fill the gaps.
    let rx = db.begin_read().unwrap();
    for round in 0..30u32 {
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table("low").unwrap();
            for i in (1 + 2 * round..KEYS).step_by(400) {
                t.insert(&key(i), b"short").unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let chain = |mem: &MemStorage| {
        let meta = meta_of(mem);
        let pages = pages_of(mem, &meta);
        let loaded = freemap::load_chains(&pages, meta.free_dir, meta.pending, true).unwrap();
        let ids =
            |ptrs: &[shadowkv::internals::format::Ptr]| ptrs.iter().map(|p| p.page.0).collect();
        let bitmaps: Vec<u64> = ids(&loaded.dir.iter().map(|d| d.0).collect::<Vec<_>>());
        // One directory page, then the pending chain, newest first.
        (bitmaps, ids(&loaded.chain_pages[1..]))
    };
    let (_, pending): (_, Vec<u64>) = chain(&mem);
    assert!(pending.len() >= 4, "{pending:?}");
    // A commit rewrites the head of the pending chain and keeps the older pages as they are.
    small_commit(&db, 2, None, None);
    let (_, after): (_, Vec<u64>) = chain(&mem);
    let kept: Vec<u64> = pending[1..].to_vec();
    assert!(
        kept.iter().all(|p| after.contains(p)),
        "{pending:?} then {after:?}"
    );
    // Relocated from the lowest kept page up, the whole chain and the bitmaps move.
    let (bitmaps, pending) = chain(&mem);
    let cutoff = *pending[1..].iter().min().unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.free_map().relocate_above(cutoff);
    tx.open_table("small").unwrap().insert(b"k", b"v").unwrap();
    tx.commit().unwrap();
    let (new_bitmaps, new_pending) = chain(&mem);
    for p in bitmaps.iter().chain(&pending).filter(|&&p| p >= cutoff) {
        assert!(
            !new_bitmaps.contains(p) && !new_pending.contains(p),
            "page {p} stayed: {bitmaps:?} {pending:?} then {new_bitmaps:?} {new_pending:?}"
        );
    }
    let check = db.check().unwrap();
    assert_eq!(check.pending_pages, meta_of(&mem).pending_count);
    drop(rx);
    small_commit(&db, 3, None, None);
    db.check().unwrap();
}

#[test]
fn pending_pages_no_reader_holds_are_free_after_the_first_commit_after_reopen() {
    let (mem, db) = new_db();
    two_tables(&db);
    // A reader holds back the frees of many commits, so the pending chain grows long.
    let rx = db.begin_read().unwrap();
    for round in 0..40u32 {
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table("low").unwrap();
            for i in (round..KEYS).step_by(40) {
                t.insert(&key(i), &value(i + 1)).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    drop(rx);
    assert!(db.stats().unwrap().pending_pages > 2 * KEYS as u64);
    drop(db);
    let db = reopen(&mem);
    small_commit(&db, 0, None, None);
    let stats = db.stats().unwrap();
    // Only what the commit itself replaced waits: its path, the catalog, the roots, the
    // bitmap and the pages of the old pending chain.
    assert!(stats.pending_pages < 128, "{} pending", stats.pending_pages);
    let check = db.check().unwrap();
    assert_eq!(check.pending_pages, stats.pending_pages);
}
