//! Space and concurrency around snapshots: a deleted snapshot's pages are reused, and readers
//! on snapshots and branches keep working while the writer commits and deletes.

mod common;

use shadowkv::Database;
use std::sync::atomic::{AtomicBool, Ordering};

fn rewrite_all(db: &Database, rng: &mut common::Rng, n: u32) {
    for batch in 0..(n / 1000) {
        let tx = db.begin_write().unwrap();
        let mut t = tx.open_table("t").unwrap();
        for i in batch * 1000..(batch + 1) * 1000 {
            t.insert(&i.to_be_bytes(), &rng.bytes(100)).unwrap();
        }
        tx.commit().unwrap();
    }
}

#[test]
fn deleting_a_snapshot_returns_its_pages_for_reuse() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("space.db");
    let db = Database::open(&path).unwrap();
    let mut rng = common::Rng(77);
    let n = 20_000;
    rewrite_all(&db, &mut rng, n);
    db.create_snapshot("pin").unwrap();
    // A full rewrite while the snapshot pins the old version: the file must hold both.
    rewrite_all(&db, &mut rng, n);
    let pinned = db.snapshots().unwrap();
    assert_eq!(pinned.len(), 1);
    assert!(
        pinned[0].exclusive_bytes > 0,
        "the snapshot holds the old version alone"
    );
    let exclusive = pinned[0].exclusive_bytes;
    let before_delete = std::fs::metadata(&path).unwrap().len();
    db.delete_snapshot("pin").unwrap();
    db.check().unwrap();
    // The next full rewrites fit in the pages the snapshot returned.
    for _ in 0..3 {
        rewrite_all(&db, &mut rng, n);
    }
    let after = std::fs::metadata(&path).unwrap().len();
    let report = db.check().unwrap();
    assert!(
        after <= before_delete,
        "file grew from {before_delete} to {after} after the delete; report {report:?}"
    );
    eprintln!("snapshot held {exclusive} bytes alone; file {before_delete} -> {after}; {report:?}");
}

#[test]
fn a_reader_on_a_deleted_snapshot_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("reader.db")).unwrap();
    let mut rng = common::Rng(78);
    rewrite_all(&db, &mut rng, 5000);
    db.create_snapshot("old").unwrap();
    let rx = db.begin_read_at("old").unwrap();
    let expected: Vec<(Vec<u8>, Vec<u8>)> = rx
        .open_table("t")
        .unwrap()
        .iter()
        .unwrap()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    db.delete_snapshot("old").unwrap();
    for _ in 0..10 {
        rewrite_all(&db, &mut rng, 5000);
    }
    let t = rx.open_table("t").unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>)> = t
        .iter()
        .unwrap()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    assert!(
        got == expected,
        "the deleted snapshot's reader saw a change"
    );
    drop(rx);
    db.check().unwrap();
}

#[test]
fn readers_on_snapshots_and_branches_while_the_writer_commits_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::options()
        .durability(shadowkv::Durability::Eventual)
        .open(dir.path().join("conc.db"))
        .unwrap();
    let done = AtomicBool::new(false);
    // Each commit of round r writes key "round" = r and 50 keys "k{i}" = r; any consistent
    // state has all 51 values equal.
    let write_round = |db: &Database, branch: &str, round: u64| {
        let tx = db.begin_write_on(branch).unwrap();
        let mut t = tx.open_table("t").unwrap();
        for i in 0..50u64 {
            t.insert(format!("k{i:03}").as_bytes(), &round.to_le_bytes())
                .unwrap();
        }
        t.insert(b"round", &round.to_le_bytes()).unwrap();
        tx.commit().unwrap();
    };
    write_round(&db, "main", 0);
    db.create_branch("side", "main").unwrap();
    std::thread::scope(|s| {
        for reader in 0..3 {
            let db = &db;
            let done = &done;
            s.spawn(move || {
                let mut checked = 0u64;
                while !done.load(Ordering::Acquire) || checked < 50 {
                    let names: Vec<String> = db
                        .snapshots()
                        .unwrap()
                        .into_iter()
                        .chain(db.branches().unwrap())
                        .map(|s| s.name)
                        .collect();
                    let name = &names[(checked as usize + reader) % names.len()];
                    let Ok(rx) = db.begin_read_at(name) else {
                        continue;
                    }; // deleted meanwhile
                    let t = rx.open_table("t").unwrap();
                    let round = t.get(b"round").unwrap().unwrap().to_vec();
                    for item in t.iter().unwrap() {
                        let (_, v) = item.unwrap();
                        assert_eq!(v, &round[..], "torn state on {name}");
                    }
                    checked += 1;
                }
            });
        }
        for round in 1..=150u64 {
            write_round(&db, if round % 3 == 0 { "side" } else { "main" }, round);
            if round % 10 == 0 {
                db.create_snapshot(&format!("s{round}")).unwrap();
            }
            if round % 10 == 5 && round > 20 {
                db.delete_snapshot(&format!("s{}", round - 15)).unwrap();
            }
        }
        done.store(true, Ordering::Release);
    });
    db.sync().unwrap();
    db.check().unwrap();
}
