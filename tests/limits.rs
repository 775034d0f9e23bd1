//! Keys and values at the limits and just over them.

mod common;

use shadowkv::{Database, Error};

#[test]
fn largest_keys_work_and_larger_ones_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("keys.db")).unwrap();
    let mut rng = common::Rng(1);
    let mut keys = Vec::new();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in 0..3000u32 {
            let mut k = rng.bytes(1024);
            k[..4].copy_from_slice(&i.to_be_bytes());
            t.insert(&k, &rng.bytes(200)).unwrap();
            keys.push(k);
        }
        let too_long = vec![1u8; 1025];
        assert!(matches!(
            t.insert(&too_long, b"v"),
            Err(Error::KeyTooLarge {
                len: 1025,
                max: 1024
            })
        ));
        // The refusal changed nothing: the transaction goes on.
        t.insert(b"after", b"ok").unwrap();
    }
    tx.commit().unwrap();
    db.check().unwrap();
    let rx = db.begin_read().unwrap();
    let t = rx.open_table("t").unwrap();
    assert_eq!(t.len().unwrap(), 3001);
    for k in keys.iter().step_by(7) {
        assert!(t.get(k).unwrap().is_some());
    }
    drop(rx);
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for k in &keys {
            assert!(t.remove(k).unwrap());
        }
    }
    tx.commit().unwrap();
    let report = db.check().unwrap();
    assert_eq!(report.entries, 1);
}

#[test]
fn one_gib_value_round_trips_and_one_more_byte_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("values.db");
    let db = Database::open(&path).unwrap();
    let mut value = vec![0u8; 1 << 30];
    for (i, chunk) in value.chunks_mut(4096).enumerate() {
        chunk[0] = i as u8;
        chunk[4095] = (i >> 8) as u8;
    }
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        t.insert(b"huge", &value).unwrap();
        value.push(1);
        assert!(matches!(
            t.insert(b"huger", &value),
            Err(Error::ValueTooLarge { len, max }) if len == (1 << 30) + 1 && max == 1 << 30
        ));
        value.pop();
    }
    tx.commit().unwrap();
    drop(db);
    let db = Database::open(&path).unwrap();
    let rx = db.begin_read().unwrap();
    let t = rx.open_table("t").unwrap();
    let got = t.get(b"huge").unwrap().unwrap();
    assert_eq!(got.len(), 1 << 30);
    assert!(got == &value[..]);
    assert_eq!(t.get(b"huger").unwrap(), None);
    drop(rx);
    db.check().unwrap();
}
