//! Criterion micro-benchmarks: point reads, inserts, commits, range scans and page checksums.
//!
//! A package of its own (benches/micro/), so that the root's `cargo test` does not build
//! criterion. Run from benches/micro: `cargo bench`; `cargo bench -- --test` runs each once.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shadowkv::{Database, Durability};
use std::cell::Cell;
use std::hint::black_box;
use std::time::{Duration, Instant};
use tempfile::TempDir;

const ENTRIES: u64 = 100_000;
const TABLE: &str = "bench";

/// splitmix64: a bijection on u64, so distinct indices give distinct keys.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// A random-looking 20-byte key for index `i`.
fn key(i: u64) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..8].copy_from_slice(&mix(i).to_be_bytes());
    k[8..16].copy_from_slice(&mix(!i).to_le_bytes());
    k[16..].copy_from_slice(&(i as u32).to_le_bytes());
    k
}

/// A 100-byte value for index `i`.
fn value(i: u64) -> [u8; 100] {
    [i as u8; 100]
}

/// A fresh database in a temporary folder holding `ENTRIES` entries.
fn load() -> (TempDir, Database) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let db = Database::open(dir.path().join("micro.db")).expect("open");
    for chunk in 0..10 {
        let tx = db.begin_write().expect("begin_write");
        {
            let mut t = tx.open_table(TABLE).expect("open_table");
            for i in chunk * ENTRIES / 10..(chunk + 1) * ENTRIES / 10 {
                t.insert(&key(i), &value(i)).expect("insert");
            }
        }
        tx.commit().expect("commit");
    }
    (dir, db)
}

fn reads(c: &mut Criterion) {
    let (_dir, db) = load();
    let rx = db.begin_read().expect("begin_read");
    let t = rx.open_table(TABLE).expect("open_table");
    let n = Cell::new(0u64);
    let next = || {
        n.set(n.get() + 1);
        mix(n.get() ^ 0x5EED) % ENTRIES
    };

    c.bench_function("get (random, 100k entries)", |b| {
        b.iter(|| {
            let i = next();
            let v = t.get(black_box(&key(i))).expect("get");
            assert!(v.is_some(), "key {i} missing");
            v
        })
    });

    let mut group = c.benchmark_group("range");
    group.throughput(Throughput::Elements(100));
    group.bench_function("scan 100 entries", |b| {
        b.iter(|| {
            let start = key(next());
            let mut count = 0;
            for item in t.range(&start[..]..).expect("range").take(100) {
                let (k, v) = item.expect("range item");
                black_box((k, v));
                count += 1;
            }
            count
        })
    });
    group.finish();
}

fn writes(c: &mut Criterion) {
    let (_dir, db) = load();
    let n = Cell::new(ENTRIES);
    let next = || {
        n.set(n.get() + 1);
        n.get()
    };

    // Random inserts inside one write transaction, which is then aborted (so the database
    // keeps its 100k entries from one sample to the next).
    c.bench_function("insert (random, one txn)", |b| {
        b.iter_custom(|iters| {
            let tx = db.begin_write().expect("begin_write");
            let mut t = tx.open_table(TABLE).expect("open_table");
            let start = Instant::now();
            for _ in 0..iters {
                let i = next();
                t.insert(black_box(&key(i)), black_box(&value(i)))
                    .expect("insert");
            }
            start.elapsed()
        })
    });

    let mut group = c.benchmark_group("commit (one insert)");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for (name, durability) in [
        ("eventual", Durability::Eventual),
        ("immediate", Durability::Immediate),
    ] {
        group.bench_function(name, |b| {
            b.iter(|| {
                let i = next();
                let mut tx = db.begin_write().expect("begin_write");
                tx.set_durability(durability);
                tx.open_table(TABLE)
                    .expect("open_table")
                    .insert(&key(i), &value(i))
                    .expect("insert");
                tx.commit().expect("commit");
            })
        });
    }
    group.finish();
    db.sync().expect("sync");
}

fn checksum(c: &mut Criterion) {
    let mut group = c.benchmark_group("crc32c");
    group.throughput(Throughput::Bytes(4096));
    let page: Vec<u8> = (0..4096).map(|i| mix(i) as u8).collect();
    group.bench_function("4096-byte page", |b| {
        b.iter(|| shadowkv::internals::format::checksum(black_box(&page)))
    });
    group.finish();
}

criterion_group!(benches, reads, writes, checksum);
criterion_main!(benches);
