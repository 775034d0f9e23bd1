//! A guided tour of shadowkv: load a million entries, read them back in every way the API
//! offers, reopen the file, check it, and print what it cost.
//!
//! Run with `cargo run --release --example tour`. Every phase asserts its results and panics
//! with a clear message on a wrong answer.

use shadowkv::{Database, Result};
use std::time::{Duration, Instant};

const ENTRIES: u64 = 1_000_000;
const COMMITS: u64 = 10;
const READS: u64 = 200_000;
const TABLE: &str = "tour";
/// Bounds that hold every 20-byte key.
const EVERYTHING: (&[u8], &[u8]) = (&[], &[0xFF; 21]);

/// splitmix64: a bijection on u64, so distinct indices give distinct keys.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// The 20-byte key of entry `i`: random-looking, unique (its first 8 bytes are `mix(i)`).
fn key(i: u64) -> [u8; 20] {
    let mut k = [0u8; 20];
    k[..8].copy_from_slice(&mix(i).to_be_bytes());
    k[8..16].copy_from_slice(&mix(i ^ 0xA5A5_A5A5).to_le_bytes());
    k[16..].copy_from_slice(&(mix(!i) as u32).to_le_bytes());
    k
}

/// The 100-byte value of entry `i`: its index, then bytes derived from it.
fn value(i: u64) -> [u8; 100] {
    let mut v = [0u8; 100];
    v[..8].copy_from_slice(&i.to_le_bytes());
    for (n, chunk) in v[8..].chunks_mut(8).enumerate() {
        let word = mix(i.wrapping_mul(31).wrapping_add(n as u64)).to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
    v
}

/// Checks one scanned entry against the generator and returns its index.
fn check_entry(k: &[u8], v: &[u8]) -> u64 {
    assert_eq!(v.len(), 100, "value of key {k:02x?} has length {}", v.len());
    let i = u64::from_le_bytes(v[..8].try_into().unwrap());
    assert!(
        i < ENTRIES,
        "value of key {k:02x?} names index {i}, out of range"
    );
    assert_eq!(k, &key(i)[..], "entry {i} is stored under the wrong key");
    assert_eq!(v, &value(i)[..], "entry {i} has a wrong value");
    i
}

/// Bytes as MiB with one decimal.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / 1048576.0)
}

/// Prints one phase's timing.
fn report(phase: &str, ops: u64, took: Duration) {
    let rate = ops as f64 / took.as_secs_f64();
    println!(
        "{phase:<22} {ops:>9} ops in {:>8.3} s  = {:>12.0} ops/s",
        took.as_secs_f64(),
        rate
    );
}

/// Random point reads, each verified.
fn point_reads(db: &Database, seed: u64, phase: &str) -> Result<()> {
    let rx = db.begin_read()?;
    let t = rx.open_table(TABLE)?;
    assert_eq!(t.len()?, ENTRIES, "table length is wrong");
    let start = Instant::now();
    for n in 0..READS {
        let i = mix(seed.wrapping_add(n)) % ENTRIES;
        let got = t.get(&key(i))?;
        let got = got.unwrap_or_else(|| panic!("{phase}: key of entry {i} is missing"));
        assert_eq!(
            got,
            &value(i)[..],
            "{phase}: entry {i} read back a wrong value"
        );
    }
    assert_eq!(
        t.get(b"no such key")?,
        None,
        "{phase}: an absent key was found"
    );
    report(phase, READS, start.elapsed());
    Ok(())
}

/// Walks a scan, checking every entry and the key order; returns the count.
fn scan<'a>(
    items: impl Iterator<Item = Result<(&'a [u8], &'a [u8])>>,
    ascending: bool,
    (low, high): (&[u8], &[u8]),
    phase: &str,
) -> Result<u64> {
    let start = Instant::now();
    let (mut count, mut prev): (u64, Option<&[u8]>) = (0, None);
    for item in items {
        let (k, v) = item?;
        if let Some(p) = prev {
            let ordered = if ascending { p < k } else { p > k };
            assert!(ordered, "{phase}: keys out of order at entry {count}");
        }
        assert!(low <= k && k < high, "{phase}: key {k:02x?} out of bounds");
        check_entry(k, v);
        prev = Some(k);
        count += 1;
        assert!(count <= ENTRIES, "{phase}: more than {ENTRIES} entries");
    }
    report(phase, count, start.elapsed());
    Ok(count)
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir().expect("cannot create a temporary folder");
    let path = dir.path().join("tour.db");
    println!(
        "shadowkv tour: {ENTRIES} entries (20-byte keys, 100-byte values) in {}",
        path.display()
    );

    // 1. Load, in a handful of durable commits.
    let db = Database::open(&path)?;
    let per_commit = ENTRIES / COMMITS;
    let start = Instant::now();
    for c in 0..COMMITS {
        let tx = db.begin_write()?;
        {
            let mut t = tx.open_table(TABLE)?;
            for i in c * per_commit..(c + 1) * per_commit {
                t.insert(&key(i), &value(i))?;
            }
        }
        tx.commit()?;
        let done = (c + 1) * per_commit;
        let secs = start.elapsed().as_secs_f64();
        println!("  commit {:>2}: {done:>9} entries, {secs:>7.2} s", c + 1);
    }
    report("insert + commit", ENTRIES, start.elapsed());

    // 2. Random point reads.
    point_reads(&db, 1, "random get")?;

    // 3. Scans: the whole table forward, a key range, and the whole table backward.
    let rx = db.begin_read()?;
    let t = rx.open_table(TABLE)?;
    let all = scan(t.iter()?, true, EVERYTHING, "full scan")?;
    assert_eq!(all, ENTRIES, "full scan count is wrong");

    let (low, high) = (&[0x40u8][..], &[0x80u8][..]);
    let want = (0..ENTRIES).filter(|i| (0x40..0x80).contains(&key(*i)[0]));
    let got = scan(
        t.range(low..high)?,
        true,
        (low, high),
        "range scan [40, 80)",
    )?;
    assert_eq!(
        got,
        want.count() as u64,
        "range scan [40, 80) count is wrong"
    );

    let all = scan(t.iter()?.rev(), false, EVERYTHING, "reverse scan")?;
    assert_eq!(all, ENTRIES, "reverse scan count is wrong");
    drop(rx);

    // 4. Reopen the file and read again.
    drop(db);
    let start = Instant::now();
    let db = Database::open(&path)?;
    println!(
        "reopen                 {:>9.3} ms",
        start.elapsed().as_secs_f64() * 1e3
    );
    point_reads(&db, 2, "random get (reopened)")?;

    // 5. The full integrity check, and the stats.
    let start = Instant::now();
    let check = db.check()?;
    report("check (pages)", check.total_pages, start.elapsed());
    println!("{check:#?}");
    assert_eq!(
        check.main_entries, ENTRIES,
        "check counted the wrong number of entries"
    );
    let stats = db.stats()?;
    println!("{stats:#?}");

    // The tour holds every entry it wrote: that many keys and values are its live data.
    let data = ENTRIES * (20 + 100);
    let in_use = stats.live_bytes + stats.free_bytes + stats.pending_bytes;
    assert!(stats.live_bytes >= data, "live pages cannot hold the data");
    assert!(in_use <= stats.file_bytes, "stats exceed the file");
    println!(
        "space: {} of keys and values held; live {} ({:.2}x), free {}, pending {}, file {} ({:.2}x)",
        mib(data),
        mib(stats.live_bytes),
        stats.live_bytes as f64 / data as f64,
        mib(stats.free_bytes),
        mib(stats.pending_bytes),
        mib(stats.file_bytes),
        stats.file_bytes as f64 / data as f64
    );

    // 6. Give the space back: compact, then the same figures again.
    let start = Instant::now();
    let compacted = db.compact()?;
    report(
        "compact (pages moved)",
        compacted.pages_moved,
        start.elapsed(),
    );
    let stats = db.stats()?;
    assert_eq!(db.check()?.main_entries, ENTRIES, "compaction lost entries");
    assert!(stats.file_bytes <= compacted.bytes_before && !compacted.truncation_delayed);
    println!(
        "after compact: live {} ({:.2}x), free {}, pending {}, file {} ({:.2}x) in {} commits",
        mib(stats.live_bytes),
        stats.live_bytes as f64 / data as f64,
        mib(stats.free_bytes),
        mib(stats.pending_bytes),
        mib(stats.file_bytes),
        stats.file_bytes as f64 / data as f64,
        compacted.commits
    );
    println!("tour complete: all assertions passed");
    Ok(())
}
