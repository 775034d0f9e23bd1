//! The space workload of issue 11 (`--space 1`): how large each engine's file grows beside
//! the key and value bytes it holds ("live"), through four scenarios, each engine in fresh
//! temporary directories, one engine at a time:
//!
//! 1. a bulk load of N entries in one durable commit;
//! 2. then `--space-batches` (200) durable commits of `--batch-size` (1,000) new random
//!    entries, measured in windows of 20 batches: file size, entries/s and device work
//!    per entry (`disk.rs`);
//! 3. then a random 90% of the entries removed in one transaction, and the engine's in-place
//!    compaction (LMDB has none: its file is recorded as is);
//! 4. in a fresh store: a bulk load of N, a snapshot (LMDB has none: n/a), 90% of main's
//!    entries removed, the snapshot deleted, and the compaction.
//!
//! The entries come from the program's usual generator (`Workload::generate`), so every
//! engine writes the same bytes in the same order, and the removals are drawn from a PRNG
//! seeded from `--seed`.

use crate::disk::{self, IoPerOp};
use crate::engines::{self, Engine, Res};
use crate::report::{rate, render};
use crate::workload::{Config, SplitMix64, Workload};
use std::path::Path;
use std::time::Instant;

/// Batches per measured window of scenario 2.
const WINDOW: usize = 20;
/// The share of the entries that scenarios 3 and 4 remove.
const REMOVE: f64 = 0.9;
/// Issue 11's goals: file / live, shadowkv/LMDB batch throughput, and device writes per
/// entry staying flat (last window over first window).
const RATIO_GOAL: f64 = 1.3;
const THROUGHPUT_GOAL: f64 = 1.2;
const FLAT_GOAL: f64 = 1.25;

/// The scenario rows; `GOAL_ROWS[i]` says whether row `i` is held to the ratio goal (the
/// rows before a compaction are steps on the way, shown for what the compaction undoes).
const ROWS: [&str; 6] = [
    "1. after bulk load",
    "2. after the batches",
    "3a. 90% removed",
    "3b. then compacted",
    "4a. snapshot, 90% removed, snapshot deleted",
    "4b. then compacted",
];
const GOAL_ROWS: [bool; 6] = [true, true, false, true, false, true];

/// The entries and removal lists every engine is given, built once.
pub struct Lists<'a> {
    w: &'a Workload,
    /// Bytes of one key plus its value.
    entry: u64,
    batch_size: usize,
    /// Scenario 3: a random 90% of the load and the batches.
    remove_all: Vec<&'a [u8]>,
    /// Scenario 4: a random 90% of the load.
    remove_load: Vec<&'a [u8]>,
}

/// The space workload's entries: N to load and `batches` × `batch_size` to insert.
pub fn generate(cfg: &Config, batches: usize) -> Workload {
    Workload::generate(&Config {
        single_commits: 0,
        batches,
        reads: 0,
        threads: 0,
        scans: 0,
        ..cfg.clone()
    })
}

impl<'a> Lists<'a> {
    pub fn new(w: &'a Workload, cfg: &Config) -> Lists<'a> {
        let load: Vec<&[u8]> = w.load.iter().map(|(k, _)| k.as_slice()).collect();
        let all: Vec<&[u8]> = load
            .iter()
            .copied()
            .chain(w.batched.iter().map(|(k, _)| k.as_slice()))
            .collect();
        let mut rng = SplitMix64::new(cfg.seed ^ 0x5ace);
        Lists {
            w,
            entry: (cfg.key_size + cfg.value_size) as u64,
            batch_size: cfg.batch_size,
            remove_all: pick(all, &mut rng),
            remove_load: pick(load, &mut rng),
        }
    }
}

/// A random `REMOVE` share of `keys` (a partial Fisher–Yates shuffle).
fn pick<'a>(mut keys: Vec<&'a [u8]>, rng: &mut SplitMix64) -> Vec<&'a [u8]> {
    let k = (keys.len() as f64 * REMOVE).round() as usize;
    for i in 0..k {
        let j = i + rng.below(keys.len() - i);
        keys.swap(i, j);
    }
    keys.truncate(k);
    keys
}

/// A file size beside the key and value bytes held then.
#[derive(Clone, Copy, Debug)]
struct Point {
    file: u64,
    live: u64,
}

impl Point {
    fn ratio(self) -> f64 {
        self.file as f64 / self.live as f64
    }
}

/// One window of scenario 2: where it ended, its rate and device work per entry.
struct Window {
    batches: usize,
    at: Point,
    rate: f64,
    io: Option<IoPerOp>,
    noisy: bool,
}

/// One engine's results.
#[derive(Default)]
pub struct Space {
    rows: [Option<Point>; 6],
    windows: Vec<Window>,
    /// Whether the engine has no in-place compaction (its file is recorded as is).
    no_compaction: bool,
    notes: Vec<String>,
}

/// Runs both stores of one engine; a failure ends that store's scenarios and is noted.
pub fn run_engine(name: &str, l: &Lists, dir: &Path) -> Space {
    let mut s = Space::default();
    if let Err(e) = grow_and_shrink(name, l, dir, &mut s) {
        eprintln!("{name:>8}: space scenarios 1-3 FAILED: {e}");
        s.notes.push(format!("{name}: scenarios 1-3 failed: {e}"));
    }
    if let Err(e) = snapshot_scenario(name, l, dir, &mut s) {
        eprintln!("{name:>8}: space scenario 4 FAILED: {e}");
        s.notes.push(format!("{name}: scenario 4 failed: {e}"));
    }
    s
}

/// Scenarios 1 to 3 on one store.
fn grow_and_shrink(name: &str, l: &Lists, parent: &Path, s: &mut Space) -> Res<()> {
    let tmp = tempdir(name, parent)?;
    let mut e = engines::open(name, tmp.path())?;
    let load = &l.w.load;
    step(name, "bulk load", || e.write_batches(load, load.len()))?;
    s.rows[0] = Some(point(&*e, l, load.len())?);
    let mut held = load.len();
    for chunk in l.w.batched.chunks(l.batch_size * WINDOW) {
        let last = s.windows.last().map_or(0, |w| w.batches);
        let w = window(&mut *e, l, chunk, &mut held, last)?;
        eprintln!(
            "{name:>8}: {} batches: {:.1} MiB, {} entries/s",
            w.batches,
            w.at.file as f64 / MIB,
            rate(Some(w.rate))
        );
        s.windows.push(w);
    }
    s.rows[1] = Some(point(&*e, l, held)?);
    step(name, "remove 90%", || e.remove(&l.remove_all))?;
    held -= l.remove_all.len();
    s.rows[2] = Some(point(&*e, l, held)?);
    compact(name, &mut *e, s, "scenario 3");
    s.rows[3] = Some(point(&*e, l, held)?);
    Ok(())
}

/// Scenario 4 on a store of its own; n/a where the engine has no snapshot.
fn snapshot_scenario(name: &str, l: &Lists, parent: &Path, s: &mut Space) -> Res<()> {
    let tmp = tempdir(name, parent)?;
    let mut e = engines::open(name, tmp.path())?;
    let load = &l.w.load;
    step(name, "bulk load (scenario 4)", || {
        e.write_batches(load, load.len())
    })?;
    if !e.hold_snapshot()? {
        s.notes.push(format!("{name}: no snapshot: scenario 4 n/a"));
        return Ok(());
    }
    step(name, "remove 90% under the snapshot", || {
        e.remove(&l.remove_load)
    })?;
    let held = load.len() - l.remove_load.len();
    e.release_snapshot()?;
    s.rows[4] = Some(point(&*e, l, held)?);
    compact(name, &mut *e, s, "scenario 4");
    s.rows[5] = Some(point(&*e, l, held)?);
    Ok(())
}

/// Writes one window's `chunk` in durable batches, timed, with the device's work.
fn window(
    e: &mut dyn Engine,
    l: &Lists,
    chunk: &[crate::workload::Kv],
    held: &mut usize,
    batches_before: usize,
) -> Res<Window> {
    let cpu = crate::noise::mark();
    let disk = disk::mark();
    let t = Instant::now();
    e.write_batches(chunk, l.batch_size)?;
    let secs = t.elapsed().as_secs_f64();
    let io = disk.and_then(|d| d.per_op_since(chunk.len()));
    let noisy = crate::noisy(cpu.others_since(), secs);
    *held += chunk.len();
    Ok(Window {
        batches: batches_before + chunk.len().div_ceil(l.batch_size),
        at: point(e, l, *held)?,
        rate: chunk.len() as f64 / secs,
        io,
        noisy,
    })
}

/// The engine's compaction, timed; a failure or a `false` is noted, not fatal.
fn compact(name: &str, e: &mut dyn Engine, s: &mut Space, what: &str) {
    let t = Instant::now();
    let note = match e.compact() {
        Ok(Some(note)) => note,
        Ok(None) => {
            s.no_compaction = true;
            "no in-place compaction: the file as is".into()
        }
        Err(err) => format!("compaction FAILED: {err}"),
    };
    let note = format!(
        "{name}, {what}: {note} ({:.2} s)",
        t.elapsed().as_secs_f64()
    );
    eprintln!("{note}");
    s.notes.push(note);
}

/// The file size now, after checking that the engine holds `held` entries.
fn point(e: &dyn Engine, l: &Lists, held: usize) -> Res<Point> {
    let count = e.count()?;
    if count != held as u64 {
        return Err(format!("holds {count} entries, expected {held}").into());
    }
    Ok(Point {
        file: e.file_bytes(),
        live: held as u64 * l.entry,
    })
}

/// Runs `f`, printing how long it took.
fn step(name: &str, what: &str, f: impl FnOnce() -> Res<()>) -> Res<()> {
    let t = Instant::now();
    f()?;
    eprintln!("{name:>8}: {what}: {:.3} s", t.elapsed().as_secs_f64());
    Ok(())
}

fn tempdir(name: &str, parent: &Path) -> Res<tempfile::TempDir> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("space-{name}-"))
        .tempdir_in(parent)?)
}

const MIB: f64 = (1u64 << 20) as f64;

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / MIB)
}

/// Prints every table of the space workload and its notes.
pub fn print(names: &[&str], results: &[Space], l: &Lists) {
    println!(
        "\n## Space (issue 11): file / live, live = key + value bytes held ({} B per entry); \
         MiB\n",
        l.entry
    );
    print!("{}", scenario_table(names, results));
    if let Some(lmdb) = names.iter().position(|&n| n == "lmdb") {
        if results[lmdb].no_compaction {
            println!("\nLMDB: no compaction (rows 3b and 4b: its file as is).");
        }
    }
    println!(
        "\n## Scenario 2 every {WINDOW} batches of {}: file MiB (file / live), entries/s, \
         device writes and KiB per entry\n",
        l.batch_size
    );
    print!("{}", series_table(names, results));
    print_series_goals(names, results);
    for s in results {
        for note in &s.notes {
            println!("\n{note}");
        }
    }
}

/// Rows: the scenarios; columns: live, then each engine's file and ratio (and shadowkv's
/// goal).
fn scenario_table(names: &[&str], results: &[Space]) -> String {
    let mut header = vec!["live MiB".to_string()];
    for &n in names {
        header.push(format!("{n} MiB"));
        header.push(format!("{n} ratio"));
        if n == "shadowkv" {
            header.push(format!("goal ≤ {RATIO_GOAL}x"));
        }
    }
    let rows = (0..ROWS.len())
        .map(|i| (ROWS[i].to_string(), scenario_cells(names, results, i)))
        .collect::<Vec<_>>();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    render("scenario", &header, &rows)
}

fn scenario_cells(names: &[&str], results: &[Space], i: usize) -> Vec<String> {
    let live = results.iter().find_map(|s| s.rows[i]).map(|p| p.live);
    let mut cells = vec![live.map_or("n/a".into(), mib)];
    for (&n, s) in names.iter().zip(results) {
        let p = s.rows[i];
        cells.push(p.map_or("n/a".into(), |p| mib(p.file)));
        let as_is = s.no_compaction && (i == 3 || i == 5);
        cells.push(p.map_or("n/a".into(), |p| {
            format!("{:.2}x{}", p.ratio(), if as_is { " (as is)" } else { "" })
        }));
        if n == "shadowkv" {
            cells.push(goal_cell(p, GOAL_ROWS[i]));
        }
    }
    cells
}

fn goal_cell(p: Option<Point>, held_to_goal: bool) -> String {
    match p {
        Some(p) if held_to_goal => met(p.ratio() <= RATIO_GOAL).into(),
        Some(_) => "—".into(),
        None => "n/a".into(),
    }
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "not met"
    }
}

/// One row per window of scenario 2.
fn series_table(names: &[&str], results: &[Space]) -> String {
    let mut header: Vec<String> = vec!["live MiB".into()];
    header.extend(names.iter().map(|n| format!("{n} MiB")));
    header.extend(names.iter().map(|n| format!("{n} entries/s")));
    let ratio = throughput_pair(names);
    if ratio.is_some() {
        header.push("shadowkv/lmdb".into());
    }
    header.extend(names.iter().map(|n| format!("{n} writes, KiB")));
    let windows = results.iter().map(|s| s.windows.len()).max().unwrap_or(0);
    let rows: Vec<(String, Vec<String>)> = (0..windows)
        .map(|k| series_row(results, k, ratio))
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    render("batches", &header, &rows)
}

/// The positions of shadowkv and LMDB, when both ran.
fn throughput_pair(names: &[&str]) -> Option<(usize, usize)> {
    let at = |x: &str| names.iter().position(|&n| n == x);
    Some((at("shadowkv")?, at("lmdb")?))
}

fn series_row(results: &[Space], k: usize, pair: Option<(usize, usize)>) -> (String, Vec<String>) {
    let w: Vec<Option<&Window>> = results.iter().map(|s| s.windows.get(k)).collect();
    let first = w.iter().flatten().next().expect("some engine has window k");
    let na = || "n/a".to_string();
    let mut cells = vec![mib(first.at.live)];
    cells.extend(
        w.iter()
            .map(|w| w.map_or_else(na, |w| format!("{} ({:.2}x)", mib(w.at.file), w.at.ratio()))),
    );
    cells.extend(
        w.iter()
            .map(|w| w.map_or_else(na, |w| rate(Some(w.rate)) + if w.noisy { "*" } else { "" })),
    );
    if let Some((s, l)) = pair {
        cells.push(match (w[s], w[l]) {
            (Some(a), Some(b)) => format!("{:.2}x", a.rate / b.rate),
            _ => na(),
        });
    }
    cells.extend(w.iter().map(|w| {
        w.and_then(|w| w.io)
            .map_or_else(na, |io| format!("{:.2}, {:.2}", io.writes, io.kib))
    }));
    (first.batches.to_string(), cells)
}

/// The throughput goal over the windows and, per engine, whether device writes stay flat.
fn print_series_goals(names: &[&str], results: &[Space]) {
    if let Some((s, l)) = throughput_pair(names) {
        print_throughput_goal(&results[s].windows, &results[l].windows);
    }
    println!("\nDevice writes per entry flat (last window ≤ {FLAT_GOAL} × first):");
    for (n, s) in names.iter().zip(results) {
        let io = |w: Option<&Window>| w.and_then(|w| w.io).map(|io| io.writes);
        match (io(s.windows.first()), io(s.windows.last())) {
            (Some(a), Some(b)) => println!(
                "- {n}: {a:.2} → {b:.2} ({:.2}x): {}",
                b / a,
                met(b <= FLAT_GOAL * a)
            ),
            _ => println!("- {n}: n/a"),
        }
    }
    if results.iter().any(|s| s.windows.iter().any(|w| w.noisy)) {
        println!("\n\\* other processes used more than 5% of a core during that window.");
    }
}

/// shadowkv / LMDB per window, and over all windows (entries over the summed time).
fn print_throughput_goal(shadow: &[Window], lmdb: &[Window]) {
    let ratios: Vec<f64> = shadow
        .iter()
        .zip(lmdb)
        .map(|(a, b)| a.rate / b.rate)
        .collect();
    let ok = ratios.iter().filter(|&&r| r >= THROUGHPUT_GOAL).count();
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    // Every window holds the same entries (batches a multiple of 20): a harmonic mean.
    let secs = |ws: &[Window]| ws.iter().map(|w| 1.0 / w.rate).sum::<f64>();
    println!(
        "\nshadowkv / LMDB batch throughput ≥ {THROUGHPUT_GOAL}x: met in {ok} of {} windows \
         (range {lo:.2}x–{hi:.2}x; over all windows {:.2}x): {}",
        ratios.len(),
        secs(lmdb) / secs(shadow),
        met(!ratios.is_empty() && ok == ratios.len())
    );
}
