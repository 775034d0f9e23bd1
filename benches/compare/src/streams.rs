//! The shadowkv-only phases of issue 10: iterate, full send, full receive, incremental send
//! of 1% and diff of 10 changes. They run after the engine's last phase, on a database of
//! their own loaded with phase 1's entries, so that the stream carries exactly the entries
//! whose bulk load phase 1 timed and the main database's figures stay as they were.

use crate::engines::{sync_file, Res};
use crate::workload::{Kv, SplitMix64, Workload};
use shadowkv::{Database, Durability};
use std::collections::HashSet;
use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

const TABLE: &str = "bench";

/// The timed steps, in the order they run.
pub const STEPS: [&str; 8] = [
    "load of the source (phase 1's entries, 1 txn)",
    "iterate every entry",
    "full send to io::sink",
    "full send to a file, fsynced",
    "full receive from that file into a new file",
    "incremental send of 1% to io::sink",
    "incremental send of 1% to a file, fsynced",
    "diff of 10 changes (median of 5)",
];
pub const LOAD: usize = 0;
pub const ITERATE: usize = 1;
pub const SEND_SINK: usize = 2;
pub const SEND_FILE: usize = 3;
pub const RECEIVE: usize = 4;
pub const INC_SINK: usize = 5;
pub const INC_FILE: usize = 6;
pub const DIFF: usize = 7;

/// How many times the diff is taken; one diff is tens of microseconds, where one preemption
/// would be the whole figure, so the round keeps the median.
const DIFF_RUNS: usize = 5;

/// What one round of the stream phases measured.
#[derive(Clone, Debug, Default)]
pub struct Streams {
    /// Seconds per step of [`STEPS`].
    pub secs: [f64; 8],
    /// Whether other processes used more than `NOISY` of a core during each step.
    pub noisy: [bool; 8],
    /// Entries in the snapshot sent in full.
    pub entries: u64,
    pub full_bytes: u64,
    /// Distinct keys given new values before the incremental send.
    pub changed: u64,
    pub inc_bytes: u64,
    /// Pages the diff under the incremental send reads (both snapshots; untimed), and the
    /// pages in use in the file when it ran: why 1% of random keys costs more than 1%.
    pub inc_pages: u64,
    pub used_pages: u64,
    /// Changes the diff yielded, and the pages it read (both snapshots counted).
    pub diff_changes: u64,
    pub diff_pages: u64,
    /// The table's tree depth (`Database::stats`) when the diff ran.
    pub depth: u8,
    /// Phase 1's time for the same entries in this round, the receive's reference.
    pub bulk_load: Option<f64>,
}

/// Runs every step in `dir` (which it fills with two databases and two stream files).
/// `bulk_load` is phase 1's time in seconds.
pub fn run(w: &Workload, seed: u64, dir: &Path, bulk_load: Option<f64>) -> Res<Streams> {
    let mut s = Streams {
        bulk_load,
        ..Streams::default()
    };
    let db = open(&dir.join("source.shadowkv"))?;
    step(&mut s, LOAD, || commit(&db, w.load.iter()))?;
    db.create_snapshot("full")?;
    full(&db, &mut s, dir, w.load.len() as u64)?;

    // A thousandth of a percent of the keys would do for the diff; the 1% are what an hourly
    // incremental backup of a busy table might carry.
    let mut rng = SplitMix64::new(seed ^ 0x1e55_c0de);
    let picks = distinct(&mut rng, w.load.len(), w.load.len().div_ceil(100));
    s.changed = picks.len() as u64;
    commit(&db, changed(w, &picks, &mut rng).iter())?;
    db.create_snapshot("one-percent")?;
    incremental(&db, &mut s, dir)?;

    let picks = distinct(&mut rng, w.load.len(), 10.min(w.load.len()));
    commit(&db, changed(w, &picks, &mut rng).iter())?;
    db.create_snapshot("ten")?;
    diff(&db, &mut s)?;
    Ok(s)
}

/// A database with the comparison's settings (page size 4096, every commit durable).
fn open(path: &Path) -> Res<Database> {
    Ok(Database::options()
        .page_size(4096)
        .durability(Durability::Immediate)
        .open(path)?)
}

/// Writes `kvs` in one durable commit.
fn commit<'a>(db: &Database, kvs: impl Iterator<Item = &'a Kv>) -> Res<()> {
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table(TABLE)?;
        for (k, v) in kvs {
            t.insert(k, v)?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// `count` distinct indexes below `n`, in the order drawn.
fn distinct(rng: &mut SplitMix64, n: usize, count: usize) -> Vec<usize> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let i = rng.below(n);
        if seen.insert(i) {
            out.push(i);
        }
    }
    out
}

/// The loaded entries at `picks` with new random values of the same length.
fn changed(w: &Workload, picks: &[usize], rng: &mut SplitMix64) -> Vec<Kv> {
    picks
        .iter()
        .map(|&i| {
            let (k, v) = &w.load[i];
            let mut value = vec![0; v.len()];
            rng.fill(&mut value);
            (k.clone(), value)
        })
        .collect()
}

/// Iterate, full send (to a sink, to a file) and full receive of snapshot "full", which
/// holds `entries` entries.
fn full(db: &Database, s: &mut Streams, dir: &Path, entries: u64) -> Res<()> {
    let mut seen = 0;
    step(s, ITERATE, || {
        let rx = db.begin_read_at("full")?;
        for item in rx.open_table(TABLE)?.iter()? {
            std::hint::black_box(item?);
            seen += 1;
        }
        Ok(())
    })?;
    expect("entries iterated", seen == entries)?;
    s.entries = entries;
    step(s, SEND_SINK, || {
        Ok(db.send("full", None, std::io::sink())?)
    })?;
    let path = dir.join("full.stream");
    step(s, SEND_FILE, || send_file(db, "full", None, &path))?;
    s.full_bytes = std::fs::metadata(&path)?.len();

    let replica = open(&dir.join("replica.shadowkv"))?;
    step(s, RECEIVE, || {
        let input = BufReader::with_capacity(256 << 10, File::open(&path)?);
        let name = replica.receive(input)?;
        expect("received snapshot", name == "full")
    })?;
    let got = replica.begin_read_at("full")?.open_table(TABLE)?.len()?;
    expect("entries received", got == s.entries)
}

/// Sends `name` (from `base`) to a new file at `path`, then fsyncs the file and its directory.
fn send_file(db: &Database, name: &str, base: Option<&str>, path: &Path) -> Res<()> {
    let mut file = File::create(path)?;
    db.send(name, base, &mut file)?;
    file.sync_all()?;
    sync_file(path.parent().ok_or("a stream file has a directory")?)
}

/// The incremental send from "full" to "one-percent", to a sink and to a file.
fn incremental(db: &Database, s: &mut Streams, dir: &Path) -> Res<()> {
    let base = Some("full");
    step(s, INC_SINK, || {
        Ok(db.send("one-percent", base, std::io::sink())?)
    })?;
    let path = dir.join("one-percent.stream");
    step(s, INC_FILE, || send_file(db, "one-percent", base, &path))?;
    s.inc_bytes = std::fs::metadata(&path)?.len();
    let (old, new) = (db.begin_read_at("full")?, db.begin_read_at("one-percent")?);
    let mut d = new.diff(&old)?;
    for change in d.by_ref() {
        change?;
    }
    s.inc_pages = d.pages_read();
    s.used_pages = db.stats()?.used_pages;
    Ok(())
}

/// The diff from "one-percent" to "ten", taken [`DIFF_RUNS`] times; keeps the median time.
fn diff(db: &Database, s: &mut Streams) -> Res<()> {
    let (old, new) = (db.begin_read_at("one-percent")?, db.begin_read_at("ten")?);
    let cpu = crate::noise::mark();
    let mut times = Vec::with_capacity(DIFF_RUNS);
    for _ in 0..DIFF_RUNS {
        let t = Instant::now();
        let mut d = new.diff(&old)?;
        let mut changes = 0;
        for change in d.by_ref() {
            std::hint::black_box(change?);
            changes += 1;
        }
        times.push(t.elapsed().as_secs_f64());
        (s.diff_changes, s.diff_pages) = (changes, d.pages_read());
    }
    let secs = crate::rounds::median(&times).unwrap_or_default();
    s.secs[DIFF] = secs;
    s.noisy[DIFF] = crate::noisy(cpu.others_since(), times.iter().sum());
    eprintln!(
        "shadowkv: {}: {:.1} µs, {} changes, {} pages read",
        STEPS[DIFF],
        secs * 1e6,
        s.diff_changes,
        s.diff_pages
    );
    s.depth = db
        .stats()?
        .tables
        .iter()
        .find(|t| t.name == TABLE)
        .map_or(0, |t| t.depth);
    expect("changes in the diff", s.diff_changes == 10.min(s.entries))
}

/// Times step `i`, flagging it noisy as the main phases are.
fn step(s: &mut Streams, i: usize, f: impl FnOnce() -> Res<()>) -> Res<()> {
    let cpu = crate::noise::mark();
    let t = Instant::now();
    f()?;
    let secs = t.elapsed().as_secs_f64();
    let others = cpu.others_since();
    s.secs[i] = secs;
    s.noisy[i] = crate::noisy(others, secs);
    eprintln!("shadowkv: {}: {:.3} s", STEPS[i], secs);
    Ok(())
}

fn expect(what: &str, ok: bool) -> Res<()> {
    if ok {
        Ok(())
    } else {
        Err(format!("shadowkv streams: wrong {what}").into())
    }
}

/// The median of each step and count over the rounds that ran the stream phases; a step is
/// noisy if it was in more than half of them. `None` if no round ran them.
pub fn median<'a>(runs: impl Iterator<Item = &'a Streams>) -> Option<Streams> {
    let runs: Vec<&Streams> = runs.collect();
    let first = runs.first()?;
    let med = |f: &dyn Fn(&Streams) -> f64| {
        let v: Vec<f64> = runs.iter().map(|s| f(s)).collect();
        crate::rounds::median(&v).unwrap_or_default()
    };
    let mut m = Streams {
        entries: first.entries,
        changed: first.changed,
        diff_changes: first.diff_changes,
        depth: first.depth,
        full_bytes: med(&|s| s.full_bytes as f64) as u64,
        inc_bytes: med(&|s| s.inc_bytes as f64) as u64,
        inc_pages: med(&|s| s.inc_pages as f64) as u64,
        used_pages: med(&|s| s.used_pages as f64) as u64,
        diff_pages: med(&|s| s.diff_pages as f64) as u64,
        ..Streams::default()
    };
    for i in 0..STEPS.len() {
        m.secs[i] = med(&|s| s.secs[i]);
        m.noisy[i] = 2 * runs.iter().filter(|s| s.noisy[i]).count() > runs.len();
    }
    let loads: Vec<f64> = runs.iter().filter_map(|s| s.bulk_load).collect();
    m.bulk_load = crate::rounds::median(&loads);
    Some(m)
}
