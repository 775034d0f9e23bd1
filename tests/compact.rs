//! `compact()` and the automatic shrink: the file gives space back, every snapshot and branch
//! keeps its contents, shared pages stay shared, and readers are never disturbed.

use shadowkv::{Database, Durability};
use std::collections::BTreeMap;

type Entries = BTreeMap<Vec<u8>, Vec<u8>>;

fn key(i: u64) -> Vec<u8> {
    format!("key{i:08}").into_bytes()
}

fn value(i: u64, len: usize) -> Vec<u8> {
    (0..len).map(|j| (i as usize * 31 + j) as u8).collect()
}

fn open(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("db")).unwrap()
}

fn file_len(dir: &tempfile::TempDir) -> u64 {
    std::fs::metadata(dir.path().join("db")).unwrap().len()
}

fn insert_range(db: &Database, table: &str, range: std::ops::Range<u64>, len: usize) {
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table(table).unwrap();
    for i in range {
        t.insert(&key(i), &value(i, len)).unwrap();
    }
    tx.commit().unwrap();
}

fn remove_where(
    db: &Database,
    table: &str,
    range: std::ops::Range<u64>,
    keep: impl Fn(u64) -> bool,
) {
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table(table).unwrap();
    for i in range.filter(|&i| !keep(i)) {
        t.remove(&key(i)).unwrap();
    }
    tx.commit().unwrap();
}

/// Every entry of table `name` as `rx` sees it.
fn entries(rx: &shadowkv::ReadTxn<'_>, name: &str) -> Entries {
    let t = rx.open_table(name).unwrap();
    t.iter()
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

/// Every table of the root `name`, read whole.
fn contents(db: &Database, name: &str) -> BTreeMap<String, Entries> {
    let rx = db.begin_read_at(name).unwrap();
    let mut out = BTreeMap::new();
    for table in rx.table_names().unwrap() {
        let entries = entries(&rx, &table);
        out.insert(table, entries);
    }
    out
}

fn every_root(db: &Database) -> BTreeMap<String, BTreeMap<String, Entries>> {
    let mut names: Vec<String> = db
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    names.extend(db.branches().unwrap().into_iter().map(|b| b.name));
    names
        .into_iter()
        .map(|n| (n.clone(), contents(db, &n)))
        .collect()
}

fn live_bytes(roots: &BTreeMap<String, BTreeMap<String, Entries>>) -> u64 {
    // Entries equal across roots are counted once (they are shared pages' contents).
    let mut seen = std::collections::HashSet::new();
    let mut total = 0;
    for tables in roots.values() {
        for (name, entries) in tables {
            for (k, v) in entries {
                if seen.insert((name.clone(), k.clone(), v.clone())) {
                    total += (k.len() + v.len()) as u64;
                }
            }
        }
    }
    total
}

#[test]
fn compact_after_mass_removal_gives_space_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    for chunk in 0..10 {
        insert_range(&db, "t", chunk * 5000..(chunk + 1) * 5000, 100);
    }
    remove_where(&db, "t", 0..50_000, |i| i % 10 == 0);
    let before = every_root(&db);
    let report = db.compact().unwrap();
    assert!(every_root(&db) == before, "contents changed");
    db.check().unwrap();
    let live = live_bytes(&before);
    assert!(!report.truncation_delayed, "{report:?}");
    assert!(report.pages_moved > 0 && report.commits >= 2, "{report:?}");
    assert_eq!(report.bytes_after, file_len(&dir));
    assert!(
        report.bytes_after * 10 <= live * 13 + (1 << 20) * 10,
        "file {} for {live} live bytes: {report:?}",
        report.bytes_after
    );
    assert!(report.bytes_after * 3 < report.bytes_before, "{report:?}");
    drop(db);
    let db = open(&dir);
    assert!(every_root(&db) == before, "contents changed");
    db.check().unwrap();
}

#[test]
fn compact_keeps_snapshots_and_branches_and_their_sharing() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    insert_range(&db, "t", 0..20_000, 80);
    insert_range(&db, "big", 0..40, 20_000);
    db.create_snapshot("s1").unwrap();
    db.create_branch("b1", "main").unwrap();
    {
        let tx = db.begin_write_on("b1").unwrap();
        let mut t = tx.open_table("t").unwrap();
        for i in (0..20_000).step_by(7) {
            t.insert(&key(i), b"branch").unwrap();
        }
        tx.commit().unwrap();
    }
    insert_range(&db, "t", 20_000..40_000, 80);
    remove_where(&db, "t", 0..40_000, |i| i % 4 == 0);
    db.create_snapshot("s2").unwrap();
    remove_where(&db, "t", 0..40_000, |i| i % 8 == 0);
    let before = every_root(&db);
    let listed = |db: &Database| {
        let mut v: Vec<(String, u64)> = db
            .snapshots()
            .unwrap()
            .into_iter()
            .chain(db.branches().unwrap())
            .map(|s| (s.name, s.referenced_bytes))
            .collect();
        v.sort();
        v
    };
    let sizes = listed(&db);
    let report = db.compact().unwrap();
    assert!(report.pages_moved > 0, "{report:?}");
    assert!(every_root(&db) == before, "contents changed");
    // Still shared: no root references more than before (sparse leaves were refilled, so
    // some reference less), and the roots untouched by removals reference exactly as much.
    let after = listed(&db);
    for ((name, was), (same, now)) in sizes.iter().zip(&after) {
        assert_eq!(name, same);
        assert!(now <= was, "{name}: {now} > {was}");
    }
    assert_eq!(after[0], sizes[0], "b1 was not thinned");
    let checked = db.check().unwrap();
    assert!(checked.tree_pages * 4096 <= report.bytes_after);
    assert!(report.bytes_after <= report.bytes_before);
    // Deleting what was shared after the move frees it exactly (the counts followed the moves).
    db.delete_snapshot("s1").unwrap();
    db.delete_branch("b1").unwrap();
    for _ in 0..4 {
        insert_range(&db, "other", 0..10, 8);
    }
    let after = db.check().unwrap();
    assert!(after.tree_pages < checked.tree_pages);
    let main = contents(&db, "main");
    assert!(main["t"] == before["main"]["t"] && main["big"] == before["main"]["big"]);
    assert!(contents(&db, "s2") == before["s2"], "s2 changed");
}

#[test]
fn a_reader_keeps_its_view_and_only_delays_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    for chunk in 0..6 {
        insert_range(&db, "t", chunk * 5000..(chunk + 1) * 5000, 100);
    }
    remove_where(&db, "t", 0..30_000, |i| i % 5 == 0);
    let want = contents(&db, "main");
    let rx = db.begin_read().unwrap();
    let report = db.compact().unwrap();
    assert!(report.truncation_delayed, "{report:?}");
    assert!(contents(&db, "main") == want, "main changed");
    let seen = entries(&rx, "t");
    assert!(seen == want["t"], "the reader's view changed");
    drop(rx);
    let delayed = file_len(&dir);
    // With the reader gone, compacting again cuts the file.
    let report = db.compact().unwrap();
    assert!(!report.truncation_delayed, "{report:?}");
    assert!(report.bytes_after < delayed, "{report:?} after {delayed}");
    assert!(contents(&db, "main") == want, "main changed");
    db.check().unwrap();
}

#[test]
fn deleting_the_snapshot_that_held_most_pages_then_compacting() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    insert_range(&db, "t", 0..40_000, 100);
    db.create_snapshot("old").unwrap();
    {
        let mut tx = db.begin_write().unwrap();
        tx.delete_table("t").unwrap();
        tx.commit().unwrap();
    }
    insert_range(&db, "small", 0..2000, 100);
    let bytes_with_snapshot = file_len(&dir);
    db.delete_snapshot("old").unwrap();
    let report = db.compact().unwrap();
    let roots = every_root(&db);
    let live = live_bytes(&roots);
    assert!(
        report.bytes_after * 10 <= live * 13 + (1 << 20) * 10,
        "file {} for {live} live bytes (was {bytes_with_snapshot})",
        report.bytes_after
    );
    db.check().unwrap();
}

/// Loads `keep` entries into table "keep", then `tail` larger ones into table "tail" (at
/// the end of the file), drops "tail" and makes `commits` one-entry commits; returns the
/// file's length before the drop.
fn grow_then_drop_a_tail(
    db: &Database,
    dir: &tempfile::TempDir,
    keep: u64,
    tail: u64,
    commits: u64,
) -> u64 {
    insert_range(db, "keep", 0..keep, 100);
    insert_range(db, "tail", 0..tail, 200);
    let grown = file_len(dir);
    let mut tx = db.begin_write().unwrap();
    tx.delete_table("tail").unwrap();
    tx.commit().unwrap();
    for i in 0..commits {
        insert_range(db, "keep", i..i + 1, 100);
    }
    grown
}

#[test]
fn a_durable_commit_cuts_a_large_free_tail_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    // The release queue frees the table over the next commits; the free tail is cut as it
    // appears.
    let grown = grow_then_drop_a_tail(&db, &dir, 5000, 30_000, 20);
    let stats = db.stats().unwrap();
    assert!(file_len(&dir) * 2 < grown, "{} of {grown}", file_len(&dir));
    assert_eq!(stats.file_bytes, file_len(&dir));
    db.check().unwrap();
    let db2 = {
        drop(db);
        open(&dir)
    };
    assert_eq!(contents(&db2, "main")["keep"].len(), 5000);
    db2.check().unwrap();
}

#[test]
fn eventual_commits_and_a_disabled_threshold_never_cut() {
    for (durability, threshold) in [
        (Durability::Eventual, Some(0)),
        (Durability::Immediate, None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::options()
            .durability(durability)
            .shrink_threshold(threshold)
            .open(dir.path().join("db"))
            .unwrap();
        let grown = grow_then_drop_a_tail(&db, &dir, 2000, 20_000, 10);
        assert_eq!(file_len(&dir), grown, "{durability:?} {threshold:?}");
        db.check().unwrap();
        // compact() cuts whatever the setting.
        let report = db.compact().unwrap();
        assert!(report.bytes_after * 2 < grown, "{report:?}");
        db.check().unwrap();
    }
}

#[test]
fn refilled_leaves_under_a_branch_of_short_separators_with_long_keys() {
    // Long keys whose first bytes differ: a branch holds short separators, far more children
    // than it could hold full keys for.
    let long_key = |i: u64| {
        let mut k = format!("{:016x}", i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).into_bytes();
        k.resize(600, b'~');
        k
    };
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("t").unwrap();
    for i in 0..6000 {
        t.insert(&long_key(i), &value(i, 20)).unwrap();
    }
    tx.commit().unwrap();
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("t").unwrap();
    for i in (0..6000).filter(|i| i % 3 != 0) {
        t.remove(&long_key(i)).unwrap();
    }
    tx.commit().unwrap();
    let before = every_root(&db);
    let report = db.compact().unwrap();
    assert!(report.pages_moved > 0, "{report:?}");
    assert!(every_root(&db) == before, "contents changed");
    db.check().unwrap();
}
