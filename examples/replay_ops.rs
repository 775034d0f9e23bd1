//! Times the `ops` fuzz body over a directory of inputs, uninstrumented: the figure to
//! watch when making the target faster (`fuzz/README.md`, "Speed of ops").
//!
//! `cargo run --release --example replay_ops -- fuzz/corpus/ops [rounds]`
//!
//! Invariants: every input runs through `shadowkv::testkit::fuzz::ops`, the fuzz target's own
//! body, so a mismatch panics here as it would under libFuzzer.

use std::path::PathBuf;
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(args.next().unwrap_or_else(|| "fuzz/corpus/ops".into()));
    let rounds: usize = args.next().map_or(1, |r| r.parse().expect("rounds"));
    let mut inputs: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("entry").path())
        .map(|p| {
            let bytes = std::fs::read(&p).expect("input");
            (p, bytes)
        })
        .collect();
    inputs.sort();
    let mut slowest: Vec<(f64, PathBuf)> = Vec::new();
    let start = Instant::now();
    for _ in 0..rounds {
        for (path, data) in &inputs {
            let t = Instant::now();
            shadowkv::testkit::fuzz::ops(data);
            slowest.push((t.elapsed().as_secs_f64(), path.clone()));
        }
    }
    let total = start.elapsed().as_secs_f64();
    let runs = inputs.len() * rounds;
    println!(
        "{runs} runs in {total:.2} s: {:.0} exec/s, {:.2} ms per input",
        runs as f64 / total,
        total * 1000.0 / runs as f64
    );
    slowest.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (secs, path) in slowest.iter().take(5) {
        println!("  {:.2} ms {}", secs * 1000.0, path.display());
    }
}
