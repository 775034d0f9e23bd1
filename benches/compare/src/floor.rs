//! The I/O floor of a durable single-entry commit: the time the device takes for the writes
//! and the flush of one shadowkv commit, with no engine around them. It replays, on a scratch
//! file of the benchmark's size, the request pattern shadowkv showed in the device table and
//! the block tracepoints: a cold run of 3 pages somewhere in the file, a hot run of 9 pages
//! that alternates between two places near the end, and the meta, then one fdatasync. Its
//! rate bounds shadowkv's single-commit rate, and the floor's rate over a peer's measured rate
//! bounds the single-commit ratio that any cut in CPU work could reach on this disk.

use crate::disk;
use crate::workload::SplitMix64;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

const PAGE: u64 = 4096;
/// The scratch file's pages: about the benchmark's data file after its load.
const FILE_PAGES: u64 = 40_000;

/// Commit `i`'s writes, `(first page, pages)` each: a cold run (a leaf and its parent,
/// sometimes one more branch), the hot run (roots, catalog, free map), which alternates between
/// two places near the end, and the meta.
fn shadowkv_like(i: u64, rng: &mut SplitMix64) -> [(u64, u64); 3] {
    let hot = FILE_PAGES - 64 + (i % 2) * 16;
    [
        (2 + rng.below((FILE_PAGES - 80) as usize) as u64, 3),
        (hot, 9),
        (i % 2, 1),
    ]
}

/// Runs `commits` commits; returns ms per commit and the device work per commit.
fn replay(file: &File, commits: u64) -> io::Result<(f64, Option<disk::IoPerOp>)> {
    let buf = vec![0x5au8; (16 * PAGE) as usize];
    let mut rng = SplitMix64::new(0x0f10_0aa5);
    let mark = disk::mark();
    let start = Instant::now();
    for i in 0..commits {
        for (page, pages) in shadowkv_like(i, &mut rng) {
            file.write_all_at(&buf[..(pages * PAGE) as usize], page * PAGE)?;
        }
        file.sync_data()?;
    }
    let ms = start.elapsed().as_secs_f64() * 1e3 / commits as f64;
    Ok((ms, mark.and_then(|m| m.per_op_since(commits as usize))))
}

/// Measures the floor `rounds` times; prints each round and returns the median rate
/// (commits per second).
pub fn run(dir: &Path, commits: u64, rounds: usize) -> io::Result<f64> {
    let tmp = tempfile::Builder::new()
        .prefix("io-floor-")
        .tempdir_in(dir)?;
    let path = tmp.path().join("scratch");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    // Every block written once, as a database file's are.
    let chunk = vec![1u8; (256 * PAGE) as usize];
    for at in (0..FILE_PAGES).step_by(256) {
        file.write_all_at(&chunk, at * PAGE)?;
    }
    file.sync_all()?;
    println!(
        "\n## I/O floor of a shadowkv single-entry commit ({commits} commits per round; \
         device work: write requests / flush requests / KiB per commit)\n"
    );
    println!("| round | ms per commit | commits/s | device work |");
    println!("|---|---:|---:|---:|");
    let mut rates = Vec::new();
    for k in 0..rounds {
        let (ms, work) = replay(&file, commits)?;
        rates.push(1e3 / ms);
        let work = work.map_or_else(|| "n/a".into(), crate::report::io_text);
        println!("| {} | {ms:.3} | {:.0} | {work} |", k + 1, 1e3 / ms);
    }
    Ok(crate::rounds::median(&rates).unwrap_or(f64::NAN))
}
