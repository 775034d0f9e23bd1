//! The handle and transaction types print something a user can read with `{:?}`.

use shadowkv::{Database, Options};
use std::sync::Arc;

#[test]
fn handles_and_transactions_implement_debug() {
    let db: Database = Options::default()
        .open_storage(Arc::new(shadowkv::internals::io::MemStorage::new()))
        .unwrap();
    let tx = db.begin_write().unwrap();
    assert!(format!("{tx:?}").starts_with("WriteTxn { txn: "), "{tx:?}");
    assert!(format!("{tx:?}").contains("branch: \"main\""), "{tx:?}");
    let t = tx.open_table("t").unwrap();
    assert_eq!(format!("{t:?}"), "TableMut { name: \"t\", .. }");
    tx.commit().unwrap();
    let shown = format!("{db:?}");
    assert!(shown.starts_with("Database { txn: "), "{shown}");
    let rx = db.begin_read().unwrap();
    assert!(format!("{rx:?}").starts_with("ReadTxn { txn: "), "{rx:?}");
    let t = rx.open_table("t").unwrap();
    assert_eq!(format!("{t:?}"), "Table { len: 0, .. }");
}

#[test]
fn the_size_limits_are_public_and_enforced() {
    let db: Database = Options::default()
        .open_storage(Arc::new(shadowkv::internals::io::MemStorage::new()))
        .unwrap();
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("t").unwrap();
    t.insert(&vec![1u8; shadowkv::MAX_KEY_LEN], b"v").unwrap();
    let too_long = vec![1u8; shadowkv::MAX_KEY_LEN + 1];
    assert!(matches!(
        t.insert(&too_long, b"v"),
        Err(shadowkv::Error::KeyTooLarge { .. })
    ));
    const { assert!(shadowkv::MAX_VALUE_LEN >= 1 << 30) };
}
