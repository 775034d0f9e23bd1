//! Readers on several threads while a writer commits; an old reader keeps its view.

mod common;

use shadowkv::Database;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn readers_never_see_half_a_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::options()
        .durability(shadowkv::Durability::Eventual)
        .open(dir.path().join("iso.db"))
        .unwrap();
    {
        let tx = db.begin_write().unwrap();
        tx.open_table("t")
            .unwrap()
            .insert(b"round", &0u64.to_le_bytes())
            .unwrap();
        tx.commit().unwrap();
    }
    let old = db.begin_read().unwrap();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                let mut seen = 0u64;
                while !done.load(Ordering::Acquire) {
                    let rx = db.begin_read().unwrap();
                    let t = rx.open_table("t").unwrap();
                    let round =
                        u64::from_le_bytes(t.get(b"round").unwrap().unwrap().try_into().unwrap());
                    assert!(round >= seen, "time went backwards");
                    seen = round;
                    // Each round adds 20 keys and the round marker: all or nothing.
                    assert_eq!(t.len().unwrap(), 1 + 20 * round);
                    let keys = t.range(&b"k"[..]..&b"l"[..]).unwrap().count() as u64;
                    assert_eq!(keys, 20 * round);
                }
            });
        }
        for round in 1..=300u64 {
            let tx = db.begin_write().unwrap();
            let mut t = tx.open_table("t").unwrap();
            for i in 0..20 {
                t.insert(format!("k{round:05}-{i:02}").as_bytes(), &[7u8; 64])
                    .unwrap();
            }
            t.insert(b"round", &round.to_le_bytes()).unwrap();
            tx.commit().unwrap();
        }
        done.store(true, Ordering::Release);
    });
    // The reader opened before all of it still sees round 0 and nothing else.
    let t = old.open_table("t").unwrap();
    assert_eq!(t.len().unwrap(), 1);
    assert_eq!(t.get(b"round").unwrap(), Some(&0u64.to_le_bytes()[..]));
    assert_eq!(t.iter().unwrap().count(), 1);
    drop(old);
    db.check().unwrap();
}

#[test]
fn old_reader_keeps_its_view_through_hundreds_of_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::options()
        .durability(shadowkv::Durability::Eventual)
        .open(dir.path().join("old.db"))
        .unwrap();
    let mut rng = common::Rng(9);
    let tx = db.begin_write().unwrap();
    let mut snapshot = Vec::new();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in 0..3000u32 {
            let v = rng.bytes(50);
            t.insert(&i.to_be_bytes(), &v).unwrap();
            snapshot.push((i.to_be_bytes().to_vec(), v));
        }
    }
    tx.commit().unwrap();
    let old = db.begin_read().unwrap();
    for _ in 0..400 {
        let tx = db.begin_write().unwrap();
        let mut t = tx.open_table("t").unwrap();
        for _ in 0..30 {
            let k = (rng.below(3000) as u32).to_be_bytes();
            if rng.chance(50) {
                t.remove(&k).unwrap();
            } else {
                t.insert(&k, &rng.bytes(80)).unwrap();
            }
        }
        tx.commit().unwrap();
    }
    let t = old.open_table("t").unwrap();
    let got: Vec<(Vec<u8>, Vec<u8>)> = t
        .iter()
        .unwrap()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    assert!(got == snapshot, "the old reader's view changed");
    db.check().unwrap();
    drop(old);
    // Once the reader is gone its pages come back.
    for _ in 0..3 {
        let tx = db.begin_write().unwrap();
        tx.open_table("t").unwrap().insert(b"x", b"y").unwrap();
        tx.commit().unwrap();
    }
    db.sync().unwrap();
    let report = db.check().unwrap();
    assert!(report.free_pages > 0);
}
