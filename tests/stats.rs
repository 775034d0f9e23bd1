//! `Database::stats()` in bytes: live pages counted once however many roots share them, the
//! pending pages that only the oldest reader pins, and agreement with `check()`'s accounting.

mod common;

use shadowkv::{Database, Stats};

const VALUE: usize = 100;

fn open(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("stats.db")).unwrap()
}

/// Writes keys `from..to` of table "t" with values drawn from `rng`, in one commit.
fn put(db: &Database, from: u32, to: u32, rng: &mut common::Rng) {
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("t").unwrap();
    for i in from..to {
        t.insert(&i.to_be_bytes(), &rng.bytes(VALUE)).unwrap();
    }
    tx.commit().unwrap();
}

/// Stats, after asserting they agree exactly with `check()`'s page accounting.
fn stats_agreeing_with_check(db: &Database) -> Stats {
    let stats = db.stats().unwrap();
    let report = db.check().unwrap();
    let page = stats.page_size as u64;
    assert_eq!(stats.txn, report.txn);
    assert_eq!(
        stats.live_bytes,
        (report.tree_pages + report.system_pages) * page,
        "live bytes against check's tree and system pages"
    );
    assert_eq!(stats.free_bytes, report.free_pages * page);
    assert_eq!(stats.pending_bytes, report.pending_pages * page);
    let metadata = (report.meta_pages + report.freemap_pages) * page;
    assert_eq!(
        stats.live_bytes + stats.free_bytes + stats.pending_bytes + metadata,
        stats.total_pages * page,
        "live + free + pending + meta and free-map pages make the whole file"
    );
    assert_eq!(stats.used_pages * page, stats.live_bytes + metadata);
    stats
}

#[test]
fn live_bytes_count_a_page_shared_by_a_snapshot_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut rng = common::Rng(1);
    put(&db, 0, 20_000, &mut rng);
    let loaded = stats_agreeing_with_check(&db);
    let page = loaded.page_size as u64;
    assert!(loaded.live_bytes > 500 * page, "{loaded:?}");

    // The snapshot shares main's catalog: only the system trees change (a root record, a
    // reference count), by a page or two.
    db.create_snapshot("s").unwrap();
    let snapped = stats_agreeing_with_check(&db);
    let grown = snapped.live_bytes.abs_diff(loaded.live_bytes) / page;
    assert!(grown <= 3, "a snapshot changed live pages by {grown}");

    // One write to main copies its path (catalog root and the table's root-to-leaf path);
    // every other page stays shared and is still counted once.
    put(&db, 7, 8, &mut rng);
    let written = stats_agreeing_with_check(&db);
    let depth = written.tables[0].depth as u64;
    let copied = (written.live_bytes - snapped.live_bytes) / page;
    assert!(
        (1 + depth..=1 + depth + 3).contains(&copied),
        "a one-key write after a snapshot added {copied} live pages (table depth {depth})"
    );

    // Deleting the snapshot gives the copies' originals back over the next commits.
    db.delete_snapshot("s").unwrap();
    put(&db, 8, 9, &mut rng);
    let deleted = stats_agreeing_with_check(&db);
    assert!(deleted.live_bytes <= loaded.live_bytes + 3 * page);
}

#[test]
fn pinned_bytes_follow_the_oldest_reader() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut rng = common::Rng(2);
    put(&db, 0, 20_000, &mut rng);
    put(&db, 20_000, 20_001, &mut rng);
    let idle = stats_agreeing_with_check(&db);
    assert_eq!(idle.pinned_bytes, 0);
    assert_eq!(
        idle.oldest_reader_txn, None,
        "stats' own pin is not a reader"
    );

    // A reader on the newest state pins nothing: every pending page was freed before it.
    let current = db.begin_read().unwrap();
    let stats = db.stats().unwrap();
    assert_eq!(stats.oldest_reader_txn, Some(current.txn_id()));
    assert_eq!(stats.pinned_bytes, 0);

    // A big delete after it frees pages the reader can still see.
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("t").unwrap();
    for i in 0..20_000u32 {
        assert!(t.remove(&i.to_be_bytes()).unwrap());
    }
    tx.commit().unwrap();
    put(&db, 30_000, 30_001, &mut rng);
    let held = stats_agreeing_with_check(&db);
    let page = held.page_size as u64;
    assert_eq!(held.oldest_reader_txn, Some(current.txn_id()));
    assert!(held.pinned_bytes > 400 * page, "{held:?}");
    assert!(held.pinned_bytes <= held.pending_bytes);
    assert_eq!(current.open_table("t").unwrap().len().unwrap(), 20_001);

    // Once the reader ends nothing is pinned, and the next commit reuses the pages.
    drop(current);
    let dropped = db.stats().unwrap();
    assert_eq!((dropped.oldest_reader_txn, dropped.pinned_bytes), (None, 0));
    put(&db, 30_001, 30_002, &mut rng);
    let after = stats_agreeing_with_check(&db);
    assert_eq!(after.pinned_bytes, 0);
    // What stays pending is the last small commit's own frees: a path or two.
    assert!(
        after.pending_bytes <= 16 * page,
        "pending went from {} to {} bytes",
        held.pending_bytes,
        after.pending_bytes
    );
    assert!(
        after.free_bytes >= held.pinned_bytes - 16 * page,
        "{held:?}\n{after:?}"
    );
}

#[test]
fn stats_agree_with_check_across_snapshots_branches_and_releases() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let mut rng = common::Rng(3);
    put(&db, 0, 40_000, &mut rng);
    db.create_snapshot("old").unwrap();
    db.create_branch("b", "old").unwrap();
    stats_agreeing_with_check(&db);
    // Rewrite every value of main: the snapshot and the branch now hold the old pages.
    put(&db, 0, 40_000, &mut rng);
    let w = db.begin_write_on("b").unwrap();
    w.open_table("big")
        .unwrap()
        .insert(b"k", &[7; 50_000])
        .unwrap();
    w.commit().unwrap();
    stats_agreeing_with_check(&db);
    // Deleting both queues their pages; the queue drains over the following commits, and
    // the pages it still holds count as live.
    db.delete_snapshot("old").unwrap();
    db.delete_branch("b").unwrap();
    let mut last = stats_agreeing_with_check(&db);
    for i in 0..4 {
        put(&db, 50_000 + i, 50_001 + i, &mut rng);
        last = stats_agreeing_with_check(&db);
    }
    assert!(last.free_bytes + last.pending_bytes > 0);
}
