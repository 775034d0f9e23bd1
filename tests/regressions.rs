//! Bugs found along the way, each pinned by the smallest test that showed it.

use shadowkv::Database;

/// A table written and then deleted in the same transaction queued its unsealed pages (their
/// checksums not yet in their parents) for release; a commit that stopped draining before them
/// wrote queue entries with checksum 0, and recovery then rejected that commit.
#[test]
fn delete_table_after_writing_it_in_the_same_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let db = Database::open(&path).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("big").unwrap();
        for i in 0..60_000u32 {
            t.insert(&i.to_be_bytes(), &[1u8; 100]).unwrap();
        }
    }
    tx.commit().unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.open_table("big")
        .unwrap()
        .insert(&0u32.to_be_bytes(), b"changed")
        .unwrap();
    assert!(tx.delete_table("big").unwrap());
    tx.commit().unwrap();
    db.check().unwrap();
    drop(db);
    let db = Database::options().verify_reads(true).open(&path).unwrap();
    assert!(
        db.begin_read().unwrap().table_names().unwrap().is_empty(),
        "the committed delete was lost"
    );
    db.check().unwrap();
    // The queue drains over the next commits.
    for i in 0..40u32 {
        let tx = db.begin_write().unwrap();
        tx.open_table("small")
            .unwrap()
            .insert(&i.to_be_bytes(), b"x")
            .unwrap();
        tx.commit().unwrap();
    }
    let report = db.check().unwrap();
    assert!(report.tree_pages < 10, "{report:?}");
}
