//! Backups with snapshots, in the manner of `zfs send -i`: a live database takes a snapshot
//! every night; the first night's snapshot goes to a replica whole, each later one only as
//! its changes since the night before. The replica is then restored from the last snapshot
//! and read, and the live database is copied whole, hot, with `backup_to`.
//!
//! `cargo run --release --example backup [entries]` (200,000 by default)

use shadowkv::{Database, Error};
use std::time::Instant;

/// A day's work: 1% of the keys rewritten, a few removed, a few added.
fn day(db: &Database, night: u64, entries: u64) -> Result<(), Error> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table("orders")?;
        for i in 0..entries / 100 {
            let key = key(i * 7919 * night % entries);
            t.insert(&key, format!("updated on day {night}").as_bytes())?;
        }
        for i in 0..entries / 1000 {
            t.remove(&key(i * 104_729 * night % entries))?;
            t.insert(&key(entries * night + i), b"new order")?;
        }
    }
    tx.open_table("audit")?
        .insert(&night.to_be_bytes(), b"night batch closed")?;
    tx.commit()
}

fn key(i: u64) -> [u8; 8] {
    i.to_be_bytes()
}

fn load(db: &Database, entries: u64) -> Result<(), Error> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table("orders")?;
        for i in 0..entries {
            t.insert(&key(i), format!("order {i} with some payload").as_bytes())?;
        }
    }
    tx.open_table("audit")?;
    tx.commit()
}

/// One entry: its table, key and value.
type Entry = (String, Vec<u8>, Vec<u8>);

/// Every entry of every table, for comparing two views.
fn contents(db: &Database, name: &str) -> Result<Vec<Entry>, Error> {
    let rx = db.begin_read_at(name)?;
    let mut out = Vec::new();
    for table in rx.table_names()? {
        for item in rx.open_table(&table)?.iter()? {
            let (k, v) = item?;
            out.push((table.clone(), k.to_vec(), v.to_vec()));
        }
    }
    Ok(out)
}

fn main() -> Result<(), Error> {
    let entries: u64 = std::env::args().nth(1).map_or(200_000, |s| {
        s.replace('_', "").parse().expect("a number of entries")
    });
    let dir = tempfile::tempdir()?;
    let live = Database::open(dir.path().join("live.db"))?;
    let replica = Database::open(dir.path().join("replica.db"))?;
    load(&live, entries)?;
    println!("live database: {entries} orders");

    for night in 1..=5u64 {
        if night > 1 {
            day(&live, night, entries)?;
        }
        let name = format!("night-{night}");
        live.create_snapshot(&name)?;
        let base = (night > 1).then(|| format!("night-{}", night - 1));
        let start = Instant::now();
        let mut stream = Vec::new();
        live.send(&name, base.as_deref(), &mut stream)?;
        let sent = start.elapsed();
        let start = Instant::now();
        replica.receive(&stream[..])?;
        let received = start.elapsed();
        let kind = if base.is_some() {
            "incremental"
        } else {
            "full"
        };
        println!(
            "{name}: {kind:>11} stream of {:>10} bytes, sent in {:>8.2?}, received in {:>8.2?}",
            stream.len(),
            sent,
            received
        );
        if let Some(base) = base {
            // The base is no longer needed on the live side: tomorrow's base is tonight's.
            let (old, new) = (live.begin_read_at(&base)?, live.begin_read_at(&name)?);
            let start = Instant::now();
            let mut diff = new.diff(&old)?;
            let changes = diff.by_ref().count();
            println!(
                "          diff since {base}: {changes} changed entries, {} pages read, {:.2?}",
                diff.pages_read(),
                start.elapsed()
            );
            drop(diff);
            drop((old, new));
            live.delete_snapshot(&base)?;
        }
    }

    // The replica holds every night; restore its main branch to the last one and read it.
    replica.restore("main", "night-5")?;
    assert_eq!(contents(&replica, "main")?, contents(&live, "night-5")?);
    let names: Vec<String> = replica.snapshots()?.into_iter().map(|s| s.name).collect();
    println!("replica snapshots: {names:?}; main restored to night-5 and equal to the live one");
    replica.check()?;

    // A hot copy of the live database while a writer goes on.
    let copy = dir.path().join("copy.db");
    let start = Instant::now();
    std::thread::scope(|s| -> Result<(), Error> {
        let writer = s.spawn(|| day(&live, 6, entries));
        live.backup_to(&copy)?;
        writer.join().expect("the writer thread")
    })?;
    let copied = Database::open(&copy)?;
    copied.check()?;
    println!(
        "backup_to: {:.2?}, {} bytes (live file {} bytes); it opens and checks",
        start.elapsed(),
        std::fs::metadata(&copy)?.len(),
        std::fs::metadata(dir.path().join("live.db"))?.len()
    );
    Ok(())
}
