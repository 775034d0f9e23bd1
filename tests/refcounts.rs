//! Reference counts changed in memory during a transaction and applied at commit (delayed
//! references): counts raised and dropped in one transaction cancel, counts of pages in many
//! refcount leaves land in order, and `check()` (which recounts every parent) agrees after
//! each commit, with every root reading what a model says it holds.

mod common;

use shadowkv::Database;
use std::collections::BTreeMap;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;

fn key(i: u64) -> Vec<u8> {
    // Spread over the key space, so one write per key touches leaves all over the tree.
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes().to_vec()
}

fn contents(db: &Database, root: Option<&str>) -> Model {
    let rx = match root {
        Some(name) => db.begin_read_at(name).unwrap(),
        None => db.begin_read().unwrap(),
    };
    let t = rx.open_table("t").unwrap();
    let mut out = Model::new();
    for item in t.iter().unwrap() {
        let (k, v) = item.unwrap();
        out.insert(k.to_vec(), v.to_vec());
    }
    out
}

/// Writes `keys` with values tagged `tag` (or removes them) in one transaction on `branch`.
fn write(db: &Database, model: &mut Model, branch: &str, keys: &[u64], tag: u8, remove: bool) {
    let tx = db.begin_write_on(branch).unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for &i in keys {
            if remove {
                t.remove(&key(i)).unwrap();
                model.remove(&key(i));
            } else {
                let value = vec![tag; 40 + (i % 60) as usize];
                t.insert(&key(i), &value).unwrap();
                model.insert(key(i), value);
            }
        }
    }
    tx.commit().unwrap();
    db.check().unwrap();
}

/// A fresh database with keys `0..n` written on main in one transaction, and its model.
fn loaded(n: u64) -> (tempfile::TempDir, Database, Model) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("r.db")).unwrap();
    let mut main = Model::new();
    let all: Vec<u64> = (0..n).collect();
    write(&db, &mut main, "main", &all, 1, false);
    (dir, db, main)
}

/// A snapshot, then one transaction that writes a key in nearly every leaf: every shared
/// branch is copied (each child gains a count) and then nearly every child leaf is copied
/// too (it loses that count again in the same transaction).
#[test]
fn counts_raised_and_dropped_in_one_transaction_cancel() {
    let (_dir, db, mut main) = loaded(30_000);
    db.create_snapshot("s1").unwrap();
    let frozen = main.clone();
    let every_tenth: Vec<u64> = (0..30_000).step_by(10).collect();
    write(&db, &mut main, "main", &every_tenth, 2, false);
    assert_eq!(contents(&db, Some("s1")), frozen);
    assert_eq!(contents(&db, None), main);
    // A second round after the branches are main's own: only leaves still shared change.
    let odd: Vec<u64> = (5..30_000).step_by(10).collect();
    write(&db, &mut main, "main", &odd, 3, false);
    assert_eq!(contents(&db, Some("s1")), frozen);
    db.delete_snapshot("s1").unwrap();
    for _ in 0..8 {
        write(&db, &mut main, "main", &[7], 4, false);
    }
    assert_eq!(contents(&db, None), main);
}

/// Snapshots, a branch and removals interleaved at random, with `check()` after each commit
/// and every root compared with its model.
#[test]
fn counts_stay_exact_across_snapshots_branches_and_removals() {
    let (_dir, db, mut main) = loaded(8_000);
    let mut rng = common::Rng(4242);
    let mut roots: BTreeMap<String, Model> = BTreeMap::new();
    db.create_branch("b", "main").unwrap();
    let mut branch = main.clone();
    for round in 0..24u64 {
        let keys: Vec<u64> = (0..300).map(|_| rng.below(10_000)).collect();
        let remove = rng.below(4) == 0;
        let tag = (round % 200) as u8 + 5;
        if rng.below(3) == 0 {
            write(&db, &mut branch, "b", &keys, tag, remove);
        } else {
            write(&db, &mut main, "main", &keys, tag, remove);
        }
        if round % 5 == 0 {
            let name = format!("s{round}");
            db.create_snapshot(&name).unwrap();
            roots.insert(name, main.clone());
        }
        if round % 7 == 6 {
            let oldest = roots.keys().next().cloned().unwrap();
            db.delete_snapshot(&oldest).unwrap();
            roots.remove(&oldest);
            db.check().unwrap();
        }
    }
    for (name, model) in &roots {
        assert_eq!(&contents(&db, Some(name)), model, "snapshot {name}");
    }
    assert_eq!(contents(&db, Some("b")), branch);
    assert_eq!(contents(&db, None), main);
}

/// Snapshots of a large tree, each followed by a few writes spread over it: every branch is
/// copied while most leaves stay shared, so one commit adds a count for nearly every leaf.
/// The first such commit builds the refcount tree from nothing, the second merges its counts
/// with the stored ones (leaves then shared three ways), and deleting the snapshots drops
/// them again; `check()` recounts every parent after each step.
#[test]
fn many_counts_at_once_build_and_merge_the_refcount_tree() {
    let (_dir, db, mut main) = loaded(60_000);
    let mut snapshots = Vec::new();
    for (round, name) in ["s1", "s2", "s3"].into_iter().enumerate() {
        db.create_snapshot(name).unwrap();
        snapshots.push((name, main.clone()));
        let spread: Vec<u64> = (round as u64..60_000).step_by(1_201).collect();
        write(&db, &mut main, "main", &spread, 2 + round as u8, false);
        for (name, model) in &snapshots {
            assert_eq!(&contents(&db, Some(name)), model, "snapshot {name}");
        }
        assert_eq!(contents(&db, None), main);
    }
    for (name, _) in &snapshots[..2] {
        db.delete_snapshot(name).unwrap();
        db.check().unwrap();
    }
    let (name, model) = &snapshots[2];
    assert_eq!(&contents(&db, Some(name)), model);
    let first: Vec<u64> = (0..5_000).collect();
    write(&db, &mut main, "main", &first, 9, true);
    assert_eq!(contents(&db, None), main);
}

/// One page with more than 255 parents: its chunk stores 4-byte counts, beside neighbours
/// with small counts, and goes back to 1-byte counts when the snapshots go (a decoder
/// rejects a 4-byte chunk whose counts all fit a byte, so a stale width would fail here).
#[test]
fn counts_past_one_byte_widen_their_chunk_and_narrow_again() {
    let (_dir, db, mut main) = loaded(3_000);
    let names: Vec<String> = (0..300).map(|i| format!("s{i:03}")).collect();
    for name in &names {
        db.create_snapshot(name).unwrap();
    }
    // main's catalog root now has 301 parents; copying it gives its children a second one.
    write(&db, &mut main, "main", &[1, 2, 3], 2, false);
    let frozen = contents(&db, Some("s000"));
    assert_eq!(contents(&db, Some("s299")), frozen);
    assert_eq!(contents(&db, None), main);
    let stats = db.stats().unwrap();
    assert!(stats.live_bytes > 0);
    for name in &names[..250] {
        db.delete_snapshot(name).unwrap();
    }
    write(&db, &mut main, "main", &[4], 3, false);
    for name in &names[250..] {
        assert_eq!(contents(&db, Some(name)), frozen);
        db.delete_snapshot(name).unwrap();
    }
    for _ in 0..4 {
        write(&db, &mut main, "main", &[5], 4, false);
    }
    assert_eq!(contents(&db, None), main);
}
