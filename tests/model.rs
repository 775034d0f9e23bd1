//! Random operations across several tables, with aborts and reopens, checked against
//! BTreeMaps; `check()` runs after every transaction.

mod common;

use common::{assert_matches, Model, Rng};
use shadowkv::{Database, Durability};
use std::ops::Bound;

fn key(rng: &mut Rng, space: u64) -> Vec<u8> {
    let n = rng.below(space);
    let mut k = format!("k{n:06}").into_bytes();
    if rng.chance(10) {
        k.extend(std::iter::repeat_n(b'x', rng.below(300) as usize));
    }
    k
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(100) {
        0..=2 => 2000 + rng.below(30_000) as usize,
        3..=10 => rng.below(1500) as usize,
        _ => rng.below(120) as usize,
    };
    rng.bytes(len)
}

fn run(seed: u64, txns: usize, page_size: usize) {
    run_with(seed, txns, page_size, 3000, 1, 60);
}

/// `space` keys, `drop_pct` chance of deleting a table per op, `remove_pct` of ops removing.
fn run_with(seed: u64, txns: usize, page_size: usize, space: u64, drop_pct: u64, ops_per_txn: u64) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.db");
    let open = || {
        Database::options()
            .page_size(page_size)
            .durability(if seed.is_multiple_of(2) {
                Durability::Immediate
            } else {
                Durability::Eventual
            })
            .open(&path)
            .unwrap()
    };
    let mut db = open();
    let mut rng = Rng(seed);
    let mut model = Model::new();
    let tables = ["alpha", "beta", "gamma"];
    for round in 0..txns {
        if round + 1 == txns {
            let r = db.check().unwrap();
            eprintln!(
                "seed {seed}: {r:?} model sizes {:?}",
                model.values().map(|m| m.len()).collect::<Vec<_>>()
            );
        }
        let mut staged = model.clone();
        let mut tx = db.begin_write().unwrap();
        let big = rng.chance(10);
        let ops = 1 + rng.below(if big { 2000 } else { ops_per_txn });
        for _ in 0..ops {
            let name = tables[rng.below(3) as usize];
            if drop_pct > 0 && rng.chance(drop_pct) {
                let existed = tx.delete_table(name).unwrap();
                assert_eq!(existed, staged.remove(name).is_some());
                continue;
            }
            let mut t = tx.open_table(name).unwrap();
            let m = staged.entry(name.to_string()).or_default();
            let k = key(&mut rng, space);
            match rng.below(10) {
                0..=5 => {
                    let v = value(&mut rng);
                    t.insert(&k, &v).unwrap();
                    m.insert(k, v);
                }
                6..=7 => assert_eq!(t.remove(&k).unwrap(), m.remove(&k).is_some()),
                8 => assert_eq!(t.get(&k).unwrap().as_deref(), m.get(&k).map(|v| &v[..])),
                _ => {
                    let hi = key(&mut rng, space);
                    let (lo, hi) = if k <= hi { (k, hi) } else { (hi, k) };
                    let got: Vec<Vec<u8>> = t
                        .range((Bound::Included(&lo[..]), Bound::Excluded(&hi[..])))
                        .unwrap()
                        .map(|r| r.unwrap().0.to_vec())
                        .collect();
                    let want: Vec<Vec<u8>> = m
                        .range::<Vec<u8>, _>((Bound::Included(&lo), Bound::Excluded(&hi)))
                        .map(|(k, _)| k.clone())
                        .collect();
                    assert_eq!(got, want);
                }
            }
            assert_eq!(t.len().unwrap(), m.len() as u64);
        }
        if rng.chance(15) {
            drop(tx); // abort
        } else {
            tx.commit().unwrap();
            model = staged;
        }
        db.check().unwrap();
        assert_matches(&db, &model);
        if rng.chance(8) {
            drop(db);
            db = open();
            db.check().unwrap();
            assert_matches(&db, &model);
        }
    }
}

#[test]
fn model_4k_immediate() {
    run(2, 150, 4096);
}

#[test]
fn model_4k_eventual() {
    run(3, 150, 4096);
}

#[test]
fn model_64k() {
    run(4, 60, 65536);
}

#[test]
fn model_many_seeds() {
    for seed in 10..16 {
        run(seed, 40, 4096);
    }
}

#[test]
fn model_deep_trees() {
    // No table drops and many ops per txn: trees grow to several levels, then shrink.
    run_with(20, 60, 4096, 40_000, 0, 1500);
    run_with(21, 60, 4096, 40_000, 0, 1500);
}
