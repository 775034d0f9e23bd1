//! shadowkv-compare: runs one workload on shadowkv, LMDB (heed), redb, sled and SQLite, one
//! engine at a time, each in a fresh temporary directory, and prints a table of throughputs,
//! file sizes and shadowkv/peer ratios.
//!
//! With `--rounds R` (R > 1) the whole workload runs R times, the engine order rotating by
//! one place each round (round k starts with the k-th engine given), so that over as many
//! rounds as engines each engine runs once in each position (with two engines that is
//! alternation). It then prints each round's rates, and the tables built
//! from the median of each phase and size over the rounds an engine completed; each ratio is
//! the median of the ratios taken within a round (both engines ran in it), with their
//! range. A median is flagged noisy if its phase was noisy in more than half of the rounds.
//!
//! ```text
//! cargo run --release -- [--n 1000000] [--key-size 20] [--value-size 100]
//!     [--engines shadowkv,lmdb,redb,sled,sqlite] [--reads 1000000] [--scans 20000]
//!     [--commits 1000] [--batches 20] [--batch-size 1000] [--threads T] [--seed S] [--dir D]
//!     [--rounds 1] [--io-floor 0] [--streams 1] [--space 0] [--space-batches 200]
//!     [--updates N/100] [--settle-ms 200]
//! ```
//!
//! Phase 9 times each engine's compacting online copy. Phase 10 takes each engine's
//! equivalent of a snapshot (untimed) and then times `--updates` updates of keys that phase 7
//! kept, in durable commits of `--batch-size`. Before each engine and each phase the program
//! syncs and pauses (`settle.rs`; `--settle-ms 0` turns that off). With `--streams 1` (the
//! default) shadowkv's run ends with the stream phases of `streams.rs`, printed in a table of their
//! own with the goals of issue 10 (`goals.rs`).
//!
//! With `--space 1` it runs the space workload of issue 11 instead (`space.rs`; by default
//! on shadowkv, LMDB and redb, with `--space-batches 200` batches of `--batch-size`).
//!
//! With `--io-floor 1` it then replays shadowkv's single-commit write pattern with no engine
//! around it (see `floor.rs`) and sets that floor beside each engine's single-commit rate.

mod disk;
mod engines;
mod floor;
mod goals;
mod noise;
mod report;
mod rounds;
mod settle;
mod space;
mod streams;
mod workload;

use engines::{Engine, Res};
use report::{Results, Size};
use std::path::{Path, PathBuf};
use std::time::Instant;
use workload::{expected_scan_entries, Config, Workload};

const USAGE: &str = "usage: shadowkv-compare [--n N] [--key-size B] [--value-size B] \
[--engines a,b,..] [--reads N] [--scans N] [--scan-len N] [--commits N] [--batches N] \
[--batch-size N] [--threads N] [--seed S] [--dir DIR] [--rounds R] [--io-floor 1] \
[--streams 0] [--space 1] [--space-batches N] [--updates N] [--settle-ms MS]";

struct Args {
    cfg: Config,
    engines: Vec<String>,
    dir: PathBuf,
    /// How many times the whole workload runs (rotating the engine order).
    rounds: usize,
    /// After the engines, measure the I/O floor of a shadowkv single commit.
    io_floor: bool,
    /// Run the space workload (`space.rs`) instead of the phases, with this many batches.
    space: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut cfg = Config {
        n: 1_000_000,
        key_size: 20,
        value_size: 100,
        single_commits: 1000,
        batches: 20,
        batch_size: 1000,
        reads: 1_000_000,
        threads,
        scans: 20_000,
        scan_len: 100,
        seed: 0x5eed_5ad0,
        streams: true,
        updates: 0,
    };
    let mut updates = None;
    let mut engines: Vec<String> = engines::ALL.iter().map(|s| s.to_string()).collect();
    let mut dir = std::env::temp_dir();
    let mut rounds = 1;
    let mut io_floor = false;
    let (mut space, mut space_batches, mut engines_given) = (false, 200, false);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.into());
        }
        let value = args
            .next()
            .ok_or(format!("{flag} needs a value\n{USAGE}"))?;
        let num = || -> Result<usize, String> {
            value
                .replace(['_', ','], "")
                .parse()
                .map_err(|_| format!("{flag}: bad number {value:?}"))
        };
        match flag.as_str() {
            "--n" => cfg.n = num()?,
            "--key-size" => cfg.key_size = num()?,
            "--value-size" => cfg.value_size = num()?,
            "--reads" => cfg.reads = num()?,
            "--scans" => cfg.scans = num()?,
            "--scan-len" => cfg.scan_len = num()?,
            "--commits" => cfg.single_commits = num()?,
            "--batches" => cfg.batches = num()?,
            "--batch-size" => cfg.batch_size = num()?.max(1),
            "--threads" => cfg.threads = num()?.max(1),
            "--seed" => cfg.seed = num()? as u64,
            "--dir" => dir = PathBuf::from(&value),
            "--rounds" => rounds = num()?,
            "--io-floor" => io_floor = num()? != 0,
            "--streams" => cfg.streams = num()? != 0,
            "--space" => space = num()? != 0,
            "--space-batches" => space_batches = num()?,
            "--updates" => updates = Some(num()?),
            "--settle-ms" => settle::set_pause_ms(num()? as u64),
            "--engines" => {
                engines_given = true;
                engines = value.split(',').map(|s| s.trim().to_lowercase()).collect();
                if let Some(bad) = engines.iter().find(|e| !engines::ALL.contains(&e.as_str())) {
                    return Err(format!(
                        "unknown engine {bad:?}; known: {}",
                        engines::ALL.join(",")
                    ));
                }
            }
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if cfg.key_size < 8 {
        return Err("--key-size must be at least 8 so that N distinct keys exist".into());
    }
    if cfg.n == 0 {
        return Err("--n must be at least 1".into());
    }
    // Phase 10 updates distinct keys among those phase 7 keeps (half of them).
    let kept = (cfg.n + cfg.single_commits + cfg.batches * cfg.batch_size) / 2;
    cfg.updates = updates.unwrap_or(cfg.n / 100).min(kept);
    if rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    if space && !engines_given {
        engines = SPACE_ENGINES.iter().map(|s| s.to_string()).collect();
    }
    Ok(Args {
        cfg,
        engines,
        dir,
        rounds,
        io_floor,
        space: space.then_some(space_batches),
    })
}

/// The engines of the space workload unless `--engines` says otherwise.
const SPACE_ENGINES: [&str; 3] = ["shadowkv", "lmdb", "redb"];

/// The key lists every engine is given, built once.
struct Lists<'a> {
    reads: Vec<&'a [u8]>,
    parallel: Vec<Vec<&'a [u8]>>,
    scan_starts: Vec<&'a [u8]>,
    scan_entries: u64,
    removals: Vec<&'a [u8]>,
    existing: usize,
    /// Phase 10's keys (left by phase 7) with their new values.
    updates: Vec<workload::Kv>,
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2);
    });
    let cfg = &args.cfg;
    println!("# shadowkv-compare");
    disk::init(&args.dir);
    for line in report::machine(&args.dir) {
        println!("{line}");
    }

    println!("engines: {}", engines::c_versions());
    if let Some(batches) = args.space {
        return run_space(&args, batches);
    }
    println!(
        "workload: N={} key={}B value={}B; {} single commits; {} batches of {}; {} reads \
         (x{} threads in phase 5); {} scans of {}; {} updates after a snapshot in batches \
         of {}; seed {:#x}",
        cfg.n,
        cfg.key_size,
        cfg.value_size,
        cfg.single_commits,
        cfg.batches,
        cfg.batch_size,
        cfg.reads,
        cfg.threads,
        cfg.scans,
        cfg.scan_len,
        cfg.updates,
        cfg.batch_size,
        cfg.seed
    );
    let t = Instant::now();
    let w = Workload::generate(cfg);
    let existing = w.existing();
    let scan_starts = w.scan_starts(&existing);
    let lists = Lists {
        reads: w.reads(&existing),
        parallel: w.parallel_reads(&existing),
        scan_entries: expected_scan_entries(&existing, &scan_starts, cfg.scan_len),
        scan_starts,
        removals: w.removals(&existing),
        updates: w.updates(&existing),
        existing: existing.len(),
    };
    eprintln!(
        "generated the workload in {:.1} s",
        t.elapsed().as_secs_f64()
    );

    let names: Vec<&str> = args.engines.iter().map(String::as_str).collect();
    let medians: Vec<Results> = if args.rounds == 1 {
        let results: Vec<Results> = names
            .iter()
            .map(|name| run_engine(name, cfg, &w, &lists, &args.dir))
            .collect();
        print_single(&names, &results, cfg.threads);
        goals::print(&names, std::slice::from_ref(&results));
        results
    } else {
        let rounds: Vec<Vec<Results>> = (0..args.rounds)
            .map(|k| run_round(&names, k, args.rounds, cfg, &w, &lists, &args.dir))
            .collect();
        let medians = print_rounds(&names, &rounds, cfg.threads);
        goals::print(&names, &rounds);
        medians
    };
    if args.io_floor {
        print_floor(&names, &medians, cfg, &args);
    }
}

/// The space workload of issue 11 (`space.rs`) on every engine, one after another.
fn run_space(args: &Args, batches: usize) {
    let cfg = &args.cfg;
    println!(
        "space workload: N={} key={}B value={}B; {batches} batches of {}; seed {:#x}",
        cfg.n, cfg.key_size, cfg.value_size, cfg.batch_size, cfg.seed
    );
    let w = space::generate(cfg, batches);
    let lists = space::Lists::new(&w, cfg);
    let names: Vec<&str> = args.engines.iter().map(String::as_str).collect();
    let results: Vec<space::Space> = names
        .iter()
        .map(|name| space::run_engine(name, &lists, &args.dir))
        .collect();
    space::print(&names, &results, &lists);
}

/// Measures the I/O floor of a single commit (see [`floor`]) and sets it beside the engines'
/// single-commit rates.
fn print_floor(names: &[&str], results: &[Results], cfg: &Config, args: &Args) {
    let commits = (cfg.single_commits as u64).max(1);
    let floor = match floor::run(&args.dir, commits, args.rounds.max(3)) {
        Ok(rate) => rate,
        Err(e) => {
            println!("\nio floor failed: {e}");
            return;
        }
    };
    println!("\nmedian floor: {floor:.0} commits/s");
    for (name, r) in names.iter().zip(results) {
        if let Some(rate) = r.rates[1] {
            println!(
                "{name}: {rate:.0} commits/s, {:.2} of the floor; the floor over {name}: {:.2}",
                rate / floor,
                floor / rate
            );
        }
    }
}

/// Runs the workload on one engine; a failure is recorded in the result (which keeps the
/// phases that finished) and reported on stderr.
fn run_engine(name: &str, cfg: &Config, w: &Workload, l: &Lists, dir: &Path) -> Results {
    let mut r = Results::default();
    settle::before_engine();
    if let Err(e) = run(name, cfg, w, l, dir, &mut r) {
        eprintln!("{name}: FAILED: {e}");
        r.failure = Some(e.to_string());
    }
    r
}

/// Round `k` of `of`: every engine in that round's order; the results are in `names` order.
fn run_round(
    names: &[&str],
    k: usize,
    of: usize,
    cfg: &Config,
    w: &Workload,
    l: &Lists,
    dir: &Path,
) -> Vec<Results> {
    let order = rounds::order(names, k);
    eprintln!("## round {}/{of} (order: {})", k + 1, order.join(", "));
    let mut results = vec![Results::default(); names.len()];
    for name in order {
        results[index(names, name)] = run_engine(name, cfg, w, l, dir);
    }
    results
}

/// The output of one round: the results table, the ratio table and any failure.
fn print_single(names: &[&str], results: &[Results], threads: usize) {
    println!("\n## Results (higher rate is better; sizes in MiB)\n");
    print!("{}", report::results_table(names, results, threads));
    print_noise_note(results, "during that phase");
    print_io(names, results, "");
    if let Some(table) = report::ratio_table(names, results, threads) {
        println!("\n## shadowkv / peer ({RATIO_KEY})\n");
        print!("{table}");
    }
    for (name, r) in names.iter().zip(results) {
        if let Some(f) = &r.failure {
            println!("\n{name} failed: {f}");
        }
    }
}

/// The device work of the writing phases, if the device has a stat file.
fn print_io(names: &[&str], results: &[Results], what: &str) {
    let (Some(device), Some(table)) = (disk::device(), report::io_table(names, results)) else {
        return;
    };
    println!(
        "\n## Device work per operation ({what}write requests / flush requests / KiB written, \
         from {}; each flush also counts as one write request without data)\n",
        device.display()
    );
    print!("{table}");
}

/// What the ratios mean, for the ratio tables' headers.
const RATIO_KEY: &str =
    "rates and 1/time: > 1 means shadowkv is faster; bytes: < 1 means shadowkv is smaller";

/// The footnote for `*`, if any cell of `results` is flagged; `when` says when it applies.
fn print_noise_note(results: &[Results], when: &str) {
    if results.iter().any(|r| r.noisy.iter().any(|&n| n)) {
        let pct = NOISY * 100.0;
        println!(
            "\n\\* other processes used more than {pct}% of a core {when}: treat it as suspect."
        );
    }
}

/// The output of several rounds (`rounds[k][e]` is engine `names[e]` in round `k`): each
/// round's rates, then the tables of medians and of per-round ratios, then the failures.
/// Returns the medians.
fn print_rounds(names: &[&str], rounds: &[Vec<Results>], threads: usize) -> Vec<Results> {
    println!("\n## Rounds (rates as in the results below; snapshot in ms)");
    for (k, round) in rounds.iter().enumerate() {
        print_round(names, k, round, threads);
    }
    let medians: Vec<Results> = (0..names.len())
        .map(|e| rounds::median_results(&rounds.iter().map(|r| &r[e]).collect::<Vec<_>>()))
        .collect();
    let n = rounds.len();
    let orders: Vec<String> = (0..n.min(2))
        .map(|k| format!("({})", rounds::order(names, k).join(", ")))
        .collect();
    println!(
        "\n## Results: medians of {n} rounds, engine order rotating each round: {}{} \
         (higher rate is better; sizes in MiB)\n",
        orders.join(", "),
        if n > 2 { ", ..." } else { "" }
    );
    print!("{}", report::results_table(names, &medians, threads));
    print_noise_note(
        &medians,
        "during that phase in more than half of the rounds",
    );
    print_io(names, &medians, "medians of the rounds; ");
    if let Some(table) = report::spread_table(names, rounds, threads) {
        println!(
            "\n## shadowkv / peer: median (min–max) of the ratios taken within each of the \
             {n} rounds ({RATIO_KEY})\n"
        );
        print!("{table}");
    }
    print_round_failures(names, rounds);
    medians
}

/// Round `k`'s rates, one row per engine in the order they ran, and its failures.
fn print_round(names: &[&str], k: usize, round: &[Results], threads: usize) {
    let order = rounds::order(names, k);
    println!("\n### Round {} (order: {})\n", k + 1, order.join(", "));
    let ran: Vec<&Results> = order.iter().map(|n| &round[index(names, n)]).collect();
    print!("{}", report::round_table(&order, &ran, threads));
    for (name, r) in order.iter().zip(&ran) {
        if let Some(f) = &r.failure {
            println!("\n{name} failed in round {}: {f}", k + 1);
        }
    }
}

/// Where engine `name` is in `names`.
fn index(names: &[&str], name: &str) -> usize {
    names
        .iter()
        .position(|&n| n == name)
        .expect("a listed engine")
}

/// For each engine that failed in some round: in which rounds, and how many rounds are left.
fn print_round_failures(names: &[&str], rounds: &[Vec<Results>]) {
    for (e, name) in names.iter().enumerate() {
        let failed: Vec<String> = rounds
            .iter()
            .enumerate()
            .filter(|(_, r)| r[e].failure.is_some())
            .map(|(k, _)| (k + 1).to_string())
            .collect();
        let left = rounds.len() - failed.len();
        if left == 0 {
            println!("\n{name} failed in every round.");
        } else if !failed.is_empty() {
            println!(
                "\n{name} failed in round(s) {}; its medians use the other {left} round(s).",
                failed.join(", ")
            );
        }
    }
}

/// Runs every phase on one engine in a fresh directory, filling `r` as it goes.
fn run(
    name: &str,
    cfg: &Config,
    w: &Workload,
    l: &Lists,
    parent: &Path,
    r: &mut Results,
) -> Res<()> {
    let tmp = tempfile::Builder::new()
        .prefix(&format!("compare-{name}-"))
        .tempdir_in(parent)?;
    let data = tmp.path().join("data");
    let out = tmp.path().join("snapshot");
    std::fs::create_dir(&data)?;
    std::fs::create_dir(&out)?;
    let mut e = engines::open(name, &data)?;

    phase(name, 0, w.load.len(), r, || {
        e.write_batches(&w.load, w.load.len())
    })?;
    expect(name, "entries after load", e.count()?, w.load.len() as u64)?;
    r.after_load = Some(size(&*e, &data));

    phase(name, 1, w.singles.len(), r, || {
        e.write_batches(&w.singles, 1)
    })?;
    phase(name, 2, w.batched.len(), r, || {
        e.write_batches(&w.batched, cfg.batch_size)
    })?;
    expect(name, "entries after commits", e.count()?, l.existing as u64)?;
    r.after_commits = Some(size(&*e, &data));

    let value_bytes = (cfg.reads * cfg.value_size) as u64;
    let mut got = 0;
    phase(name, 3, cfg.reads, r, || {
        got = e.point_reads(&l.reads)?;
        Ok(())
    })?;
    expect(name, "value bytes read", got, value_bytes)?;
    let total_reads = cfg.reads * cfg.threads;
    phase(name, 4, total_reads, r, || {
        got = e.parallel_reads(&l.parallel)?;
        Ok(())
    })?;
    expect(
        name,
        "value bytes read",
        got,
        value_bytes * cfg.threads as u64,
    )?;
    phase(name, 5, cfg.scans, r, || {
        got = e.range_scans(&l.scan_starts, cfg.scan_len)?;
        Ok(())
    })?;
    expect(name, "entries scanned", got, l.scan_entries)?;

    phase(name, 6, l.removals.len(), r, || e.remove(&l.removals))?;
    expect(
        name,
        "entries after removal",
        e.count()?,
        (l.existing - l.removals.len()) as u64,
    )?;
    r.after_remove = Some(size(&*e, &data));

    snapshot_and_copy(name, &mut *e, &out, r)?;
    updates_after_snapshot(name, cfg, &mut *e, &data, l, r)?;
    drop(e);
    if cfg.streams && name == "shadowkv" {
        run_streams(cfg, w, tmp.path(), r)?;
    }
    // Untimed; the next engine's settle (a sync and a pause) follows.
    let t = Instant::now();
    tmp.close()?;
    eprintln!(
        "{name:>8}: files removed in {:.0} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

/// The sizes of engine `e`'s data file and of its directory `data` (untimed).
fn size(e: &dyn Engine, data: &Path) -> Size {
    Size {
        file: engines::disk_size(&e.data_file().unwrap_or_else(|| data.to_path_buf())),
        total: engines::disk_size(data),
    }
}

/// Phase 10, after every other phase on the engine's file: the engine's equivalent of a
/// snapshot (untimed; see `Engine::hold_for_updates`), then the updates of keys that phase 7
/// kept, in durable commits of `batch_size`; then the snapshot is let go (untimed).
fn updates_after_snapshot(
    name: &str,
    cfg: &Config,
    e: &mut dyn Engine,
    data: &Path,
    l: &Lists,
    r: &mut Results,
) -> Res<()> {
    if l.updates.is_empty() {
        return Ok(());
    }
    let held = e.hold_for_updates()?;
    eprintln!("{name:>8}: {} holds {held}", report::PHASES[9].0);
    phase(name, 9, l.updates.len(), r, || {
        e.write_batches(&l.updates, cfg.batch_size)
    })?;
    r.after_updates = Some(size(e, data));
    e.release_after_updates()?;
    expect(
        name,
        "entries after updates",
        e.count()?,
        (l.existing - l.removals.len()) as u64,
    )
}

/// shadowkv's stream phases, in a directory of their own under `parent`.
fn run_streams(cfg: &Config, w: &Workload, parent: &Path, r: &mut Results) -> Res<()> {
    // Phase 1 loaded the same entries into a fresh file: the receive's reference.
    let bulk_load = r.rates[0].map(|rate| w.load.len() as f64 / rate);
    let dir = parent.join("streams");
    std::fs::create_dir(&dir)?;
    r.streams = Some(streams::run(w, cfg.seed, &dir, bulk_load)?);
    Ok(())
}

/// Phases 8 and 9, each where the engine has it; their files go under `out`.
fn snapshot_and_copy(name: &str, e: &mut dyn Engine, out: &Path, r: &mut Results) -> Res<()> {
    if e.can_snapshot() {
        phase(name, 7, 1, r, || e.snapshot(out))?;
    } else {
        eprintln!("{name:>8}: {}: n/a", report::PHASES[7].0);
    }
    copy(name, e, out, r)
}

/// Phase 9: the engine's compacting online copy into a new file under `out`, then an fsync
/// of the file and of its directory inside the timed span, so every copy is durable on
/// return (neither `mdb_env_copyfd2` nor `VACUUM INTO` syncs; an engine whose copy syncs
/// itself pays a second, nearly empty fsync); then the copy's size.
fn copy(name: &str, e: &mut dyn Engine, out: &Path, r: &mut Results) -> Res<()> {
    if !e.can_copy() {
        eprintln!("{name:>8}: {}: n/a", report::PHASES[8].0);
        return Ok(());
    }
    let to = out.join(format!("{name}-compacted"));
    phase(name, 8, 1, r, || {
        e.copy(&to)?;
        engines::sync_file(&to)?;
        engines::sync_file(out)
    })?;
    let bytes = engines::disk_size(&to);
    r.copy = Some(Size {
        file: bytes,
        total: bytes,
    });
    Ok(())
}

/// Times phase `i` and stores its rate (`ops` per second) in `r`, with a flag if other
/// processes used more than `NOISY` of a core meanwhile.
fn phase(
    name: &str,
    i: usize,
    ops: usize,
    r: &mut Results,
    f: impl FnOnce() -> Res<()>,
) -> Res<()> {
    settle::before_phase();
    let cpu = noise::mark();
    let disk = disk::mark();
    let t = Instant::now();
    f()?;
    let secs = t.elapsed().as_secs_f64();
    let others = cpu.others_since();
    let own = cpu.own_since();
    r.rates[i] = Some(ops as f64 / secs);
    r.noisy[i] = noisy(others, secs);
    r.io[i] = disk.and_then(|d| d.per_op_since(ops));
    // This process's CPU time: steadier than the wall time of a CPU-bound phase when other
    // processes load the machine (a hint for comparing runs, not a result).
    let mut note = format!(" (own CPU {own:.2} s)");
    if others > 0.0 {
        note += &format!(" (other processes: {others:.2} CPU-s)");
    }
    if let Some(io) = r.io[i].filter(|io| io.writes > 0.0) {
        note += &format!(" [device per op: {}]", report::io_text(io));
    }
    let (phase, unit) = report::PHASES[i];
    let time = if unit == "ms" {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{secs:.3} s")
    };
    eprintln!("{name:>8}: {phase}: {time}{note}");
    Ok(())
}

/// The share of one core that other processes may use during a phase before it is flagged.
const NOISY: f64 = 0.05;

/// Whether `others` CPU-seconds of other processes during `secs` flag a phase as noisy.
fn noisy(others: f64, secs: f64) -> bool {
    others >= 0.02 && others > NOISY * secs
}

fn expect(name: &str, what: &str, got: u64, want: u64) -> Res<()> {
    if got != want {
        return Err(format!("{name}: {what}: got {got}, expected {want}").into());
    }
    Ok(())
}
