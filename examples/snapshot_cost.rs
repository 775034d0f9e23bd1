//! What snapshots cost at 100k, 1M and 10M entries: taking one, the first write after one,
//! and deleting one that holds a whole table version alone.
//! Run with `cargo run --release --example snapshot_cost [N ...]`.

use shadowkv::{Database, Durability};
use std::time::Instant;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn key(&mut self) -> [u8; 20] {
        let mut k = [0u8; 20];
        for chunk in k.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes()[..chunk.len()]);
        }
        k
    }
}

fn load(db: &Database, seed: u64, n: u64) {
    let mut rng = Rng(seed);
    let value = [7u8; 100];
    let mut left = n;
    while left > 0 {
        let batch = left.min(2_000_000);
        let mut tx = db.begin_write().unwrap();
        tx.set_durability(Durability::Eventual);
        let mut t = tx.open_table("t").unwrap();
        for _ in 0..batch {
            t.insert(&rng.key(), &value).unwrap();
        }
        tx.commit().unwrap();
        left -= batch;
    }
    db.sync().unwrap();
}

fn one_write(db: &Database, rng: &mut Rng) -> f64 {
    let start = Instant::now();
    let tx = db.begin_write().unwrap();
    tx.open_table("t")
        .unwrap()
        .insert(&rng.key(), b"x")
        .unwrap();
    tx.commit().unwrap();
    start.elapsed().as_secs_f64() * 1e6
}

fn main() {
    let sizes: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N"))
        .collect();
    let sizes = if sizes.is_empty() {
        vec![100_000, 1_000_000, 10_000_000]
    } else {
        sizes
    };
    println!("| entries | snapshot (durable) | snapshot (no fsync) | write, steady (no fsync) | first write after snapshot (no fsync) | delete call (no fsync) | pages freed | commits to drain | file |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for n in sizes {
        let dir = tempfile::tempdir_in(".").unwrap();
        let path = dir.path().join("cost.db");
        let db = Database::open(&path).unwrap();
        load(&db, 1, n);
        let mut rng = Rng(99);
        // Taking a snapshot: median of 21, durable (one fsync) and without fsync.
        let mut durable = Vec::new();
        for i in 0..21 {
            let start = Instant::now();
            db.create_snapshot(&format!("d{i}")).unwrap();
            durable.push(start.elapsed().as_secs_f64() * 1e6);
            one_write(&db, &mut rng);
        }
        drop(db);
        let db = Database::options()
            .durability(Durability::Eventual)
            .open(&path)
            .unwrap();
        let mut eventual = Vec::new();
        for i in 0..21 {
            let start = Instant::now();
            db.create_snapshot(&format!("e{i}")).unwrap();
            eventual.push(start.elapsed().as_secs_f64() * 1e6);
            one_write(&db, &mut rng);
        }
        for i in 0..21 {
            db.delete_snapshot(&format!("d{i}")).unwrap();
            db.delete_snapshot(&format!("e{i}")).unwrap();
        }
        // The first write after a snapshot copies the shared path; compare with steady writes.
        let mut steady = Vec::new();
        let mut first = Vec::new();
        for i in 0..21 {
            for _ in 0..3 {
                steady.push(one_write(&db, &mut rng));
            }
            db.create_snapshot(&format!("f{i}")).unwrap();
            first.push(one_write(&db, &mut rng));
        }
        for i in 0..21 {
            db.delete_snapshot(&format!("f{i}")).unwrap();
        }
        // A snapshot that holds a whole table version alone, then deleted.
        db.create_snapshot("big").unwrap();
        load(&db, 1, n); // same keys, new values: every page of the table is rewritten
        let held = db
            .snapshots()
            .unwrap()
            .iter()
            .find(|s| s.name == "big")
            .unwrap()
            .exclusive_bytes
            / 4096;
        let start = Instant::now();
        db.delete_snapshot("big").unwrap();
        let delete_us = start.elapsed().as_secs_f64() * 1e6;
        let mut drains = 0;
        while db.check().unwrap().pending_pages + db.stats().unwrap().free_pages < held
            && drains < 10_000
        {
            one_write(&db, &mut rng);
            drains += 1;
        }
        let file = std::fs::metadata(&path).unwrap().len();
        let med = |v: &mut Vec<f64>| {
            v.sort_by(|a, b| a.partial_cmp(b).unwrap());
            v[v.len() / 2]
        };
        println!(
            "| {n} | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {:.0} µs | {held} | {drains} | {:.0} MiB |",
            med(&mut durable),
            med(&mut eventual),
            med(&mut steady),
            med(&mut first),
            delete_us,
            file as f64 / (1 << 20) as f64
        );
    }
}
