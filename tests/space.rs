//! Space reuse: insert/delete cycles and rewrites of a large value keep the file bounded.

mod common;

use shadowkv::{Database, Durability};

fn file_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn insert_delete_cycles_stay_bounded() {
    for durability in [Durability::Immediate, Durability::Eventual] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cycles.db");
        let db = Database::options()
            .durability(durability)
            .open(&path)
            .unwrap();
        let mut rng = common::Rng(5);
        let mut sizes = Vec::new();
        for _cycle in 0..20 {
            for batch in 0..5 {
                let tx = db.begin_write().unwrap();
                let mut t = tx.open_table("t").unwrap();
                for i in 0..1000u32 {
                    t.insert(&(batch * 1000 + i).to_be_bytes(), &rng.bytes(100))
                        .unwrap();
                }
                tx.commit().unwrap();
            }
            for batch in 0..5 {
                let tx = db.begin_write().unwrap();
                let mut t = tx.open_table("t").unwrap();
                for i in 0..1000u32 {
                    assert!(t.remove(&(batch * 1000 + i).to_be_bytes()).unwrap());
                }
                tx.commit().unwrap();
            }
            sizes.push(file_len(&path));
        }
        db.check().unwrap();
        let settled = sizes[3];
        let last = *sizes.last().unwrap();
        assert!(
            last <= settled + settled / 4,
            "{durability:?}: file grew from {settled} to {last}: {sizes:?}"
        );
    }
}

#[test]
fn rewriting_a_large_value_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    let db = Database::open(&path).unwrap();
    let mut rng = common::Rng(6);
    let mut sizes = Vec::new();
    for round in 0..60 {
        let value = rng.bytes(1 << 20);
        let tx = db.begin_write().unwrap();
        tx.open_table("t").unwrap().insert(b"big", &value).unwrap();
        tx.commit().unwrap();
        let rx = db.begin_read().unwrap();
        assert!(
            rx.open_table("t").unwrap().get(b"big").unwrap() == Some(&value[..]),
            "round {round}"
        );
        sizes.push(file_len(&path));
    }
    db.check().unwrap();
    let last = *sizes.last().unwrap();
    // One live copy, one waiting for reuse, and growth slack.
    assert!(last <= 4 << 20, "file grew to {last} bytes: {sizes:?}");
}
