//! A quick local profile of the hot paths, one phase at a time (for perf and callgrind):
//! bulk load of N random entries in one transaction, random reads, 100-entry range scans,
//! single-entry commits without fsync, durable single-entry commits, and removing half the
//! entries in one transaction followed by a snapshot.
//! Run with `cargo run --release --example probe [N] [phase ...]` (phases: load backup reads
//! scans commits durable batches streams updates remove; default all). `backup` times
//! `Database::backup_to` of the freshly loaded database (sync included), twice. With
//! `PROBE_KEEP` set in the environment the database file is kept (its directory is printed),
//! for a look at the pages each commit wrote (their birth txn is in their header).

use shadowkv::{Database, Durability};
use std::time::Instant;

fn key(i: u64) -> [u8; 20] {
    let mut z = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut k = [0u8; 20];
    for chunk in k.chunks_mut(8) {
        z = (z ^ (z >> 31)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
    k
}

fn rate(what: &str, n: u64, start: Instant) {
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{what:<28} {n:>9} in {secs:>7.3} s = {:>10.0} /s ({:.0} ns each)",
        n as f64 / secs,
        secs * 1e9 / n as f64
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("N"));
    let phases: Vec<String> = args.collect();
    let on = |p: &str| phases.is_empty() || phases.iter().any(|x| x == p);
    let dir = tempfile::tempdir_in(".").unwrap();
    let path = dir.path().join("probe.db");
    if std::env::var_os("PROBE_KEEP").is_some() {
        println!("keeping {}", dir.path().display());
    }
    let db = Database::options()
        .durability(Durability::Eventual)
        .open(&path)
        .unwrap();
    let value = [5u8; 100];
    let start = Instant::now();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in 0..n {
            t.insert(&key(i), &value).unwrap();
        }
    }
    let inserted = start.elapsed();
    tx.commit().unwrap();
    db.sync().unwrap();
    if on("load") {
        println!("inserts alone: {:.3} s", inserted.as_secs_f64());
        rate("bulk load + commit + sync", n, start);
        println!("file: {} bytes", std::fs::metadata(&path).unwrap().len());
    }
    if on("backup") {
        backup(&db, dir.path());
    }
    if on("reads") {
        let start = Instant::now();
        random_reads(&db, n);
        rate("random reads", n, start);
    }
    if on("scans") {
        let scans = n / 50;
        let start = Instant::now();
        range_scans(&db, n, scans);
        rate("range scans of 100", scans, start);
    }
    if on("commits") {
        let start = Instant::now();
        let commits = 5000;
        for i in 0..commits {
            let tx = db.begin_write().unwrap();
            tx.open_table("t")
                .unwrap()
                .insert(&key(n + i), &value)
                .unwrap();
            tx.commit().unwrap();
        }
        rate("single commits (no fsync)", commits, start);
    }
    if on("durable") {
        let start = Instant::now();
        let commits = 3000;
        durable_commits(&db, 2 * n, commits, &value);
        rate("single durable commits", commits, start);
    }
    if on("batches") {
        let start = Instant::now();
        let batches = 20;
        durable_batches(&db, 3 * n, batches, 1000, &value);
        rate("durable batches of 1000", batches * 1000, start);
    }
    if on("streams") {
        streams(&db, n, dir.path());
    }
    if on("updates") {
        // 1% of the keys rewritten in durable batches of 1000, first with no snapshot, then
        // right after one (every first write to a leaf then copies a shared page).
        let batches = (n / 100 / 1000).max(1);
        let start = Instant::now();
        durable_batches(&db, 0, batches, 1000, &value); // existing keys: 0..n were loaded
        rate("updates, no snapshot", batches * 1000, start);
        db.create_snapshot("before-updates").unwrap();
        let start = Instant::now();
        updates_after_snapshot(&db, n / 2, batches, 1000, &value);
        rate("updates after a snapshot", batches * 1000, start);
    }
    if on("remove") {
        remove_half_then_snapshot(&db, n);
    }
    if on("thinbackup") {
        // Half the keys removed, scattered: the backup refills half-empty leaves.
        if !on("remove") {
            remove_half_then_snapshot(&db, n);
        }
        backup(&db, dir.path());
    }
    if std::env::var_os("PROBE_KEEP").is_some() {
        drop(db);
        let _ = dir.keep();
    }
}

/// `durable_batches` over existing keys, right after a snapshot (a separate function for
/// callgrind).
#[inline(never)]
fn updates_after_snapshot(db: &Database, first: u64, batches: u64, size: u64, value: &[u8]) {
    durable_batches(db, first, batches, size, value)
}

/// Iterating every entry, a full send, a receive of it into a new file, an incremental send
/// after 1% of the keys changed, and a diff of 10 changes.
fn streams(db: &Database, n: u64, dir: &std::path::Path) {
    db.create_snapshot("full").unwrap();
    let start = Instant::now();
    let rx = db.begin_read_at("full").unwrap();
    let seen = rx.open_table("t").unwrap().iter().unwrap().count() as u64;
    rate("iterate every entry", seen, start);
    drop(rx);
    let start = Instant::now();
    full_send_to_sink(db);
    rate("full send to io::sink", seen, start);
    let start = Instant::now();
    let mut stream = Vec::new();
    db.send("full", None, &mut stream).unwrap();
    rate("full send to a new Vec", seen, start);
    let replica = Database::open(dir.join("replica.db")).unwrap();
    let start = Instant::now();
    replica.receive(&stream[..]).unwrap();
    rate("full receive", seen, start);
    change_one_percent(db, n);
    db.create_snapshot("one-percent").unwrap();
    let start = Instant::now();
    let incremental = incremental_send(db);
    rate("incremental send of 1%", n / 100, start);
    let start = Instant::now();
    incremental_send_to_sink(db);
    rate("incremental send of 1% to io::sink", n / 100, start);
    let (old, new) = (
        db.begin_read_at("full").unwrap(),
        db.begin_read_at("one-percent").unwrap(),
    );
    let mut diff = new.diff(&old).unwrap();
    let changes = diff.by_ref().count();
    println!(
        "diff of 1%: {changes} changes, {} pages read",
        diff.pages_read()
    );
    drop((old, new));
    let start = Instant::now();
    replica.receive(&incremental[..]).unwrap();
    rate("incremental receive of 1%", n / 100, start);
    let tx = db.begin_write().unwrap();
    for i in 0..10 {
        tx.open_table("t")
            .unwrap()
            .insert(&key(i * 7), &[7u8; 100])
            .unwrap();
    }
    tx.commit().unwrap();
    let (old, new) = (
        db.begin_read_at("one-percent").unwrap(),
        db.begin_read().unwrap(),
    );
    let start = Instant::now();
    let mut diff = new.diff(&old).unwrap();
    let changes = diff.by_ref().count() as u64;
    rate("diff of 10 changes", changes, start);
    println!("diff of 10 changes read {} pages", diff.pages_read());
}

/// As the comparison's stream phase does: 1% of the keys, distinct and drawn at random, get
/// new random values of the same length, in one commit.
fn change_one_percent(db: &Database, n: u64) {
    let mut seed = 0x1e55_c0de_u64;
    let mut next = move || {
        seed = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let z = (seed ^ (seed >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        let z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut picked = std::collections::HashSet::new();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        // Bounded: n / 100 distinct picks out of n.
        while (picked.len() as u64) < n / 100 {
            let j = next() % n;
            if picked.insert(j) {
                let mut value = [0u8; 100];
                for chunk in value.chunks_mut(8) {
                    chunk.copy_from_slice(&next().to_le_bytes()[..chunk.len()]);
                }
                t.insert(&key(j), &value).unwrap();
            }
        }
    }
    tx.commit().unwrap();
}

/// The full send of the streams phase, to `io::sink` (a separate function for callgrind).
#[inline(never)]
fn full_send_to_sink(db: &Database) {
    db.send("full", None, std::io::sink()).unwrap();
}

/// The incremental send of the streams phase (a separate function for callgrind).
#[inline(never)]
fn incremental_send(db: &Database) -> Vec<u8> {
    let mut incremental = Vec::new();
    db.send("one-percent", Some("full"), &mut incremental)
        .unwrap();
    incremental
}

/// The incremental send of the streams phase to `io::sink`, as the full one goes (a separate
/// function for callgrind: the goal is the ratio of the two).
#[inline(never)]
fn incremental_send_to_sink(db: &Database) {
    db.send("one-percent", Some("full"), std::io::sink())
        .unwrap();
}

/// Times two backups of the loaded database, each to a new file, fsync included.
#[inline(never)]
fn backup(db: &Database, dir: &std::path::Path) {
    for round in 0..2 {
        let path = dir.join(format!("backup{round}.db"));
        let start = Instant::now();
        db.backup_to(&path).unwrap();
        let secs = start.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&path).unwrap().len();
        println!(
            "backup_to #{round}: {secs:.3} s, {bytes} bytes ({:.0} MB/s)",
            bytes as f64 / secs / 1e6
        );
        std::fs::remove_file(&path).unwrap();
    }
}

/// `batches` durable commits of `size` random keys each, from key `first` on (new keys, or
/// existing ones for the `updates` phase).
#[inline(never)]
fn durable_batches(db: &Database, first: u64, batches: u64, size: u64, value: &[u8]) {
    for b in 0..batches {
        let mut tx = db.begin_write().unwrap();
        tx.set_durability(Durability::Immediate);
        {
            let mut t = tx.open_table("t").unwrap();
            for i in 0..size {
                t.insert(&key(first + b * size + i), value).unwrap();
            }
        }
        tx.commit().unwrap();
    }
}

/// Removes every other key of the load in one durable transaction, then takes a snapshot
/// (the first commit after a large removal releases every page the removal freed).
#[inline(never)]
fn remove_half_then_snapshot(db: &Database, n: u64) {
    let start = Instant::now();
    let mut tx = db.begin_write().unwrap();
    tx.set_durability(Durability::Immediate);
    remove_half(&tx, n);
    let removed = start.elapsed();
    tx.commit().unwrap();
    println!("removes alone: {:.3} s", removed.as_secs_f64());
    rate("remove half, 1 txn", n / 2, start);
    let start = Instant::now();
    snapshot(db, "after-remove");
    println!(
        "snapshot after the removal: {:.3} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    let start = Instant::now();
    snapshot(db, "next");
    println!(
        "next snapshot: {:.3} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
}

/// Removes every other loaded key (in a scattered key order: the keys are hashed).
#[inline(never)]
fn remove_half(tx: &shadowkv::WriteTxn, n: u64) {
    let mut t = tx.open_table("t").unwrap();
    for i in (0..n).step_by(2) {
        assert!(t.remove(&key(i)).unwrap());
    }
}

#[inline(never)]
fn snapshot(db: &Database, name: &str) {
    db.create_snapshot(name).unwrap();
}

/// Durable single-entry commits of keys `first..first + commits` (a function of its own, so
/// that `valgrind --tool=callgrind --toggle-collect=probe::durable_commits` sees only them).
#[inline(never)]
fn durable_commits(db: &Database, first: u64, commits: u64, value: &[u8]) {
    for i in 0..commits {
        let mut tx = db.begin_write().unwrap();
        tx.set_durability(Durability::Immediate);
        tx.open_table("t")
            .unwrap()
            .insert(&key(first + i), value)
            .unwrap();
        tx.commit().unwrap();
    }
}

/// `n` reads of loaded keys in a scattered order (a separate function for callgrind).
#[inline(never)]
fn random_reads(db: &Database, n: u64) {
    let rx = db.begin_read().unwrap();
    let t = rx.open_table("t").unwrap();
    let mut sum = 0u64;
    for i in 0..n {
        let j = (i.wrapping_mul(0x2545_F491_4F6C_DD1D)) % n;
        sum += t.get(&key(j)).unwrap().expect("present")[0] as u64;
    }
    assert_eq!(sum, 5 * n);
}

/// `scans` scans of 100 entries from existing keys.
#[inline(never)]
fn range_scans(db: &Database, n: u64, scans: u64) {
    let rx = db.begin_read().unwrap();
    let t = rx.open_table("t").unwrap();
    let mut total = 0u64;
    for i in 0..scans {
        let k = key((i * 7919) % n);
        total += t.range(&k[..]..).unwrap().take(100).count() as u64;
    }
    assert!(total > 0);
}
