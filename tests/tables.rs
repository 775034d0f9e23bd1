//! Several tables open at once in one write transaction, reads through `&self`, and the
//! write-side range iterator, against a `BTreeMap` model.

use proptest::prelude::*;
use shadowkv::{Database, Error};
use std::collections::BTreeMap;
use std::ops::Bound;

fn open(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("t.db")).unwrap()
}

fn key(i: u32) -> Vec<u8> {
    format!("k{i:06}").into_bytes()
}

#[test]
fn a_table_and_its_index_change_together() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let tx = db.begin_write().unwrap();
    let mut users = tx.open_table("users").unwrap();
    let mut by_email = tx.open_table("by_email").unwrap();
    for i in 0..500u32 {
        let email = format!("user{i}@example.com");
        users.insert(&key(i), email.as_bytes()).unwrap();
        by_email.insert(email.as_bytes(), &key(i)).unwrap();
    }
    // Change an address: the old one is read from one table while the other changes.
    let old = users.get(&key(7)).unwrap().unwrap();
    assert!(by_email.remove(&old).unwrap());
    by_email.insert(b"seven@example.com", &key(7)).unwrap();
    users.insert(&key(7), b"seven@example.com").unwrap();
    assert_eq!(&old[..], b"user7@example.com");
    assert_eq!(users.len().unwrap(), 500);
    assert_eq!(by_email.len().unwrap(), 500);
    tx.commit().unwrap();

    let rx = db.begin_read().unwrap();
    let users = rx.open_table("users").unwrap();
    let by_email = rx.open_table("by_email").unwrap();
    for item in users.iter().unwrap() {
        let (id, email) = item.unwrap();
        assert_eq!(by_email.get(email).unwrap(), Some(id));
    }
    assert_eq!(by_email.get(b"user7@example.com").unwrap(), None);
}

#[test]
fn the_same_table_twice_is_an_error_until_the_first_handle_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("t").unwrap();
    t.insert(b"a", b"1").unwrap();
    match tx.open_table("t") {
        Err(Error::InvalidArgument(msg)) => assert!(msg.contains("already open"), "{msg}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    drop(t);
    let t = tx.open_table("t").unwrap();
    assert_eq!(t.get(b"a").unwrap().as_deref(), Some(&b"1"[..]));
    tx.commit().unwrap();
}

#[test]
fn values_read_stay_valid_while_other_tables_and_the_same_page_change() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let tx = db.begin_write().unwrap();
    let mut a = tx.open_table("a").unwrap();
    for i in 0..100u32 {
        a.insert(&key(i), &[i as u8; 40]).unwrap();
    }
    tx.commit().unwrap();

    let tx = db.begin_write().unwrap();
    let mut a = tx.open_table("a").unwrap();
    let mut b = tx.open_table("b").unwrap();
    let committed = a.get(&key(1)).unwrap().unwrap(); // on a committed page: borrowed
    let other = a.get(&key(2)).unwrap().unwrap(); // two reads alive at once
    a.insert(&key(3), b"new").unwrap(); // (`a` changes only after the reads end)
    let written = a.get(&key(3)).unwrap().unwrap(); // on a page this txn wrote: copied
    for i in 0..2000u32 {
        b.insert(&key(i), &[7; 100]).unwrap();
    }
    assert_eq!(b.len().unwrap(), 2000);
    assert_eq!(&committed[..], &[1u8; 40]);
    assert_eq!(&other[..], &[2u8; 40]);
    assert_eq!(&written[..], b"new");
    tx.commit().unwrap();
}

#[test]
fn iterating_one_table_while_writing_another() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let tx = db.begin_write().unwrap();
    let mut src = tx.open_table("src").unwrap();
    for i in 0..1000u32 {
        src.insert(&key(i), &i.to_be_bytes()).unwrap();
    }
    let mut dst = tx.open_table("dst").unwrap();
    let mut copied = 0;
    for item in src.iter().unwrap() {
        let (k, v) = item.unwrap();
        dst.insert(&v, &k).unwrap();
        if copied % 100 == 0 {
            // A read of the table being written, between batches of the iterator.
            assert_eq!(dst.len().unwrap(), copied + 1);
        }
        copied += 1;
    }
    assert_eq!(copied, 1000);
    let back: Vec<_> = dst.iter().unwrap().rev().map(|e| e.unwrap().1).collect();
    assert_eq!(back.len(), 1000);
    assert_eq!(back[0].as_ref(), &key(999)[..]);
    tx.commit().unwrap();
}

fn bound(b: &Option<(bool, u32)>) -> Bound<Vec<u8>> {
    match b {
        None => Bound::Unbounded,
        Some((true, k)) => Bound::Included(key(*k)),
        Some((false, k)) => Bound::Excluded(key(*k)),
    }
}

fn as_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Committed entries, entries written in this transaction and removals, then a range
    /// walked from both ends in a random pattern (past several batches), with another
    /// table written between steps.
    #[test]
    fn range_from_both_ends_matches_the_model(
        committed in prop::collection::vec(0u32..600, 0..400),
        written in prop::collection::vec(0u32..600, 0..300),
        removed in prop::collection::vec(0u32..600, 0..100),
        lo in prop::option::of((any::<bool>(), 0u32..600)),
        hi in prop::option::of((any::<bool>(), 0u32..600)),
        pattern in prop::collection::vec(any::<bool>(), 0..700),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = open(&dir);
        let mut model = BTreeMap::new();
        let tx = db.begin_write().unwrap();
        let mut t = tx.open_table("t").unwrap();
        for i in &committed {
            t.insert(&key(*i), b"old").unwrap();
            model.insert(key(*i), b"old".to_vec());
        }
        tx.commit().unwrap();

        let tx = db.begin_write().unwrap();
        let mut t = tx.open_table("t").unwrap();
        let mut other = tx.open_table("other").unwrap();
        for i in &written {
            t.insert(&key(*i), &i.to_le_bytes()).unwrap();
            model.insert(key(*i), i.to_le_bytes().to_vec());
        }
        for i in &removed {
            let was = t.remove(&key(*i)).unwrap();
            prop_assert_eq!(was, model.remove(&key(*i)).is_some());
        }
        let (lo, hi) = (bound(&lo), bound(&hi));
        let bad = matches!((&lo, &hi), (Bound::Included(a) | Bound::Excluded(a),
            Bound::Included(b) | Bound::Excluded(b)) if a > b
            || (a == b && !(matches!(lo, Bound::Included(_)) && matches!(hi, Bound::Included(_)))));
        let mut want: Vec<(Vec<u8>, Vec<u8>)> = if bad {
            Vec::new()
        } else {
            model.range((lo.clone(), hi.clone())).map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        let mut range = t.range((as_ref(&lo), as_ref(&hi))).unwrap();
        for (step, from_back) in pattern.iter().enumerate() {
            other.insert(&(step as u32).to_be_bytes(), b"x").unwrap();
            let got = if *from_back { range.next_back() } else { range.next() };
            let expected = if want.is_empty() {
                None
            } else if *from_back {
                want.pop()
            } else {
                Some(want.remove(0))
            };
            let got = got.map(|e| e.map(|(k, v)| (k.into_owned(), v.into_owned())).unwrap());
            prop_assert_eq!(got, expected);
        }
        if want.is_empty() {
            prop_assert!(range.next().is_none() && range.next_back().is_none());
        }
    }
}
