//! The commit chain (docs/format.md section 4): a commit writes its meta into the page its base
//! named, in the same write as its hot pages, and a slot only every `MAX_CHAIN` commits.
//! Recovery follows the chain from a slot to the newest state that verifies, retires what it
//! rejected, and every page of the chain stays accounted for across reopens.

mod common;
#[path = "common/storage.rs"]
mod storage;

use shadowkv::internals::io::MemStorage;
use shadowkv::{Database, Durability};
use std::sync::Arc;
use storage::{fresh_db_bytes, image_without, writes_a_meta, Op, Recording};

/// One put of `key → value` in table `t`, as its own commit.
fn put(db: &Database, key: u32, durability: Durability) {
    let mut tx = db.begin_write().unwrap();
    tx.set_durability(durability);
    tx.open_table("t")
        .unwrap()
        .insert(&key.to_be_bytes(), &[key as u8; 300])
        .unwrap();
    tx.commit().unwrap();
}

/// Opens `bytes`, checks it, and returns the number of entries in `t` and the txn id.
fn reopen(bytes: Vec<u8>) -> (Database, u64, u64) {
    let db = Database::options()
        .open_storage(Arc::new(MemStorage::from_bytes(bytes)))
        .unwrap();
    db.check().unwrap();
    let rx = db.begin_read().unwrap();
    let len = rx.open_table("t").map_or(0, |t| t.len().unwrap());
    let txn = rx.txn_id();
    drop(rx);
    (db, len, txn)
}

/// The writes of `log` that land in a meta slot.
fn slot_writes(log: &[Op]) -> usize {
    log.iter()
        .filter(|op| matches!(op, Op::Write { offset, .. } if *offset < 8192))
        .count()
}

#[test]
fn links_carry_the_metas_and_a_slot_is_written_every_sixteen_commits() {
    let rec = Arc::new(Recording::new(fresh_db_bytes(4096)));
    let db = Database::options()
        .durability(Durability::Immediate)
        .open_storage(rec.clone())
        .unwrap();
    put(&db, 0, Durability::Immediate);
    let from = rec.ops();
    for key in 1..=64 {
        put(&db, key, Durability::Immediate);
        // Every state on the way reopens whole, the chain's pages all accounted for.
        if key % 7 == 0 {
            let (_, len, txn) = reopen(rec.bytes());
            assert_eq!((len, txn), (key as u64 + 1, key as u64 + 1));
        }
    }
    let log = rec.log()[from..].to_vec();
    let commits = log.iter().filter(|op| op.is_sync()).count();
    let metas = log
        .iter()
        .filter(|op| matches!(op, Op::Write { offset, data } if writes_a_meta(*offset, data)))
        .count();
    assert_eq!(commits, 64);
    assert_eq!(metas, 64, "one meta a commit");
    // 64 commits: 4 anchors (16 links after each), the rest links.
    assert!(
        (3..=5).contains(&slot_writes(&log)),
        "{} slot writes in 64 commits",
        slot_writes(&log)
    );
    drop(db);
    let (db, len, txn) = reopen(rec.bytes());
    assert_eq!((len, txn), (65, 65));
    // Commits go on from a reopened chain.
    put(&db, 65, Durability::Immediate);
    db.check().unwrap();
}

/// A link whose meta page landed but one of whose other pages did not: recovery falls back to
/// the link before it, zeros the rejected meta, and the state stays the same across reopens
/// and commits.
#[test]
fn a_link_that_does_not_verify_is_rejected_and_retired() {
    for durability in [Durability::Immediate, Durability::Eventual] {
        let initial = fresh_db_bytes(4096);
        let rec = Arc::new(Recording::new(initial.clone()));
        let db = Database::options().open_storage(rec.clone()).unwrap();
        for key in 0..5 {
            put(&db, key, durability);
        }
        let from = rec.ops();
        put(&db, 5, durability);
        drop(db);
        let log = rec.log();
        let before = image_without(&initial, &log[..from], &[]);
        let mut crashed = image_without(&initial, &log, &[]);
        // One page of the last commit, not its meta page, never landed.
        let (offset, data) = log[from..]
            .iter()
            .find_map(|op| match op {
                Op::Write { offset, data } if *offset >= 8192 && data.len() >= 8192 => {
                    Some((*offset as usize, data.clone()))
                }
                _ => None,
            })
            .expect("a run of pages");
        assert!(
            writes_a_meta(offset as u64, &data),
            "the last commit is a link"
        );
        let lost = (0..data.len() / 4096)
            .map(|i| offset + i * 4096)
            .find(|&at| !crashed[at..].starts_with(b"SHADOWKV"))
            .expect("a page besides the meta");
        crashed[lost..lost + 4096].copy_from_slice(&before[lost..lost + 4096]);
        let rec2 = Arc::new(Recording::new(crashed));
        let db = Database::options().open_storage(rec2.clone()).unwrap();
        db.check().unwrap();
        let rx = db.begin_read().unwrap();
        assert_eq!(
            rx.txn_id(),
            5,
            "{durability:?}: fell back to the link before"
        );
        assert_eq!(rx.open_table("t").unwrap().len().unwrap(), 5);
        drop(rx);
        // The open zeroed the rejected meta and synced: a meta write, then a sync.
        let opened = rec2.log();
        assert!(matches!(opened.last(), Some(Op::Sync)), "{opened:?}");
        drop(db);
        let (db, len, txn) = reopen(rec2.bytes());
        assert_eq!((len, txn), (5, 5));
        put(&db, 100, Durability::Immediate);
        drop(db);
    }
}

/// A newer anchor whose pages did not all land: recovery takes the older slot's chain to its
/// end, writes that chain's anchor over the rejected slot, and every page of the chain is
/// still accounted for after another reopen.
#[test]
fn a_rejected_anchor_leaves_the_chain_it_ended_whole() {
    let initial = fresh_db_bytes(4096);
    let rec = Arc::new(Recording::new(initial.clone()));
    let db = Database::options()
        .durability(Durability::Eventual)
        .open_storage(rec.clone())
        .unwrap();
    // The first commit is an anchor, then links, until the 17th commit after it anchors again.
    put(&db, 0, Durability::Immediate);
    for key in 1..=16 {
        put(&db, key, Durability::Immediate);
    }
    let from = rec.ops();
    put(&db, 17, Durability::Eventual);
    drop(db);
    let log = rec.log();
    assert_eq!(slot_writes(&log[from..]), 1, "the 18th commit is an anchor");
    let lost = (from..log.len())
        .find(|&i| matches!(&log[i], Op::Write { offset, .. } if *offset >= 8192))
        .expect("a page write of the anchor");
    let crashed = image_without(&initial, &log, &[lost]);
    let rec2 = Arc::new(Recording::new(crashed));
    let db = Database::options().open_storage(rec2.clone()).unwrap();
    db.check().unwrap();
    assert_eq!(db.begin_read().unwrap().txn_id(), 17);
    assert_eq!(slot_writes(&rec2.log()), 1, "the rejected slot was retired");
    drop(db);
    // Reopened as it is now (no commit since): the same state, the same pages.
    let (db, len, txn) = reopen(rec2.bytes());
    assert_eq!((len, txn), (17, 17));
    for key in 200..220 {
        put(&db, key, Durability::Immediate);
    }
    db.check().unwrap();
    drop(db);
}
