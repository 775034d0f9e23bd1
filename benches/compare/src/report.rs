//! What the machine is, and the two tables: results per engine, then shadowkv/peer ratios.

use std::path::Path;

/// The timed phases reported as a rate, with their unit.
pub const PHASES: [(&str, &str); 10] = [
    ("1 bulk load, 1 txn", "entries/s"),
    ("2 single-entry commits", "commits/s"),
    ("3 batch commits", "entries/s"),
    ("4 point reads, 1 thread", "reads/s"),
    ("5 point reads, T threads", "reads/s"),
    ("6 range scans", "scans/s"),
    ("7 remove half, 1 txn", "entries/s"),
    ("8 snapshot", "ms"),
    ("9 compacted copy", "ms"),
    ("10 updates after snapshot", "entries/s"),
];

/// Whether phase `i` is shown as a time (one operation) rather than a rate.
pub fn timed(i: usize) -> bool {
    PHASES[i].1 == "ms"
}

/// Bytes on disk at one moment: the main data file and every file of the engine.
#[derive(Clone, Copy, Debug, Default)]
pub struct Size {
    pub file: u64,
    pub total: u64,
}

/// Everything measured for one engine; `None` where a phase was not run or does not apply.
#[derive(Clone, Debug, Default)]
pub struct Results {
    /// Operations per second, one per phase; for the snapshot (one operation) that is 1/time.
    pub rates: [Option<f64>; 10],
    /// Whether other processes used the CPU noticeably during each phase.
    pub noisy: [bool; 10],
    /// What the block device did per operation of each phase (see [`crate::disk`]).
    pub io: [Option<crate::disk::IoPerOp>; 10],
    pub after_load: Option<Size>,
    pub after_commits: Option<Size>,
    pub after_remove: Option<Size>,
    /// After phase 10's updates, while the snapshot (or read transaction) is still held.
    pub after_updates: Option<Size>,
    /// The compacted copy of phase 9 (file and total are its one file).
    pub copy: Option<Size>,
    /// The shadowkv-only stream phases, when they ran.
    pub streams: Option<crate::streams::Streams>,
    /// Why the run stopped early, if it did.
    pub failure: Option<String>,
}

/// The size rows: when, which bytes (the data file or every file), and the label.
type SizeRow = (fn(&Results) -> Option<Size>, bool, &'static str);
const SIZES: [SizeRow; 9] = [
    (|r| r.after_load, false, "data file after load"),
    (|r| r.after_commits, false, "data file after commits"),
    (|r| r.after_remove, false, "data file after remove"),
    (
        |r| r.after_updates,
        false,
        "data file after updates (phase 10)",
    ),
    (|r| r.after_load, true, "all files after load"),
    (|r| r.after_commits, true, "all files after commits"),
    (|r| r.after_remove, true, "all files after remove"),
    (
        |r| r.after_updates,
        true,
        "all files after updates (phase 10)",
    ),
    (|r| r.copy, false, "compacted copy (phase 9)"),
];

/// A description of the machine and of the directory the stores live in.
pub fn machine(dir: &Path) -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |text: &str, name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split(':').nth(1))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "unknown".into())
    };
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_kib: u64 = field(&meminfo, "MemTotal")
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    vec![
        format!(
            "cpu: {} ({} MHz)",
            field(&cpuinfo, "model name"),
            field(&cpuinfo, "cpu MHz")
        ),
        format!("nproc: {nproc}"),
        format!("memory: {:.1} GiB", mem_kib as f64 / (1024.0 * 1024.0)),
        format!("kernel: {}", kernel.trim()),
        format!("stores in: {} ({})", dir.display(), filesystem(dir)),
    ]
}

/// The file system type of the mount that holds `dir`, from /proc/mounts.
fn filesystem(dir: &Path) -> String {
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (dev, mount, fs) = (parts.next()?, parts.next()?, parts.next()?);
            dir.starts_with(mount)
                .then(|| (mount.len(), format!("{fs} on {dev}")))
        })
        .max_by_key(|(len, _)| *len)
        .map_or_else(|| "unknown fs".into(), |(_, s)| s)
}

/// The results table: one row per phase or size, one column per engine.
pub fn results_table(names: &[&str], results: &[Results], threads: usize) -> String {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for (i, (phase, unit)) in PHASES.iter().enumerate() {
        let label = format!("{} ({unit})", phase.replace('T', &threads.to_string()));
        rows.push((label, results.iter().map(|r| cell(r, i)).collect()));
    }
    for (moment, total, label) in SIZES {
        let cells = results
            .iter()
            .map(|r| mib(moment(r).map(|s| if total { s.total } else { s.file })));
        rows.push((format!("{label} (MiB)"), cells.collect()));
    }
    render("phase", names, &rows)
}

/// A phase's device work per operation, as `writes / flushes / KiB`.
pub fn io_text(io: crate::disk::IoPerOp) -> String {
    let kib = if io.kib >= 100.0 {
        format!("{:.0}", io.kib)
    } else {
        format!("{:.1}", io.kib)
    };
    format!("{:.2} / {:.2} / {kib}", io.writes, io.flushes)
}

/// The writing phases' device work per operation: one row per phase, one column per engine
/// (None when no engine recorded any).
pub fn io_table(names: &[&str], results: &[Results]) -> Option<String> {
    let mut rows: Vec<(String, Vec<String>)> = Vec::new();
    for i in [0, 1, 2, 6, 7, 8, 9] {
        let cells: Vec<String> = results
            .iter()
            .map(|r| r.io[i].map_or_else(|| "n/a".into(), io_text))
            .collect();
        rows.push((format!("{} (per {})", PHASES[i].0, OPS[i]), cells));
    }
    results
        .iter()
        .any(|r| r.io.iter().any(Option::is_some))
        .then(|| render("phase", names, &rows))
}

/// What one operation of each phase is.
const OPS: [&str; 10] = [
    "entry", "commit", "entry", "read", "read", "scan", "entry", "snapshot", "copy", "entry",
];

/// Phase `i` of `r` as shown in the results: a rate, or a time in ms for the snapshot and the
/// copy, with `*` if it was noisy.
fn cell(r: &Results, i: usize) -> String {
    let text = if timed(i) {
        ms(r.rates[i].map(|r| 1e3 / r))
    } else {
        rate(r.rates[i])
    };
    star(text, r.noisy[i])
}

/// A quantity compared in the ratio table: the rate of phase `i`, or the bytes of size row `i`.
#[derive(Clone, Copy, Debug)]
pub enum Metric {
    Rate(usize),
    Bytes(usize),
}

impl Metric {
    pub fn value(self, r: &Results) -> Option<f64> {
        match self {
            Metric::Rate(i) => r.rates[i],
            Metric::Bytes(i) => {
                let (moment, total, _) = SIZES[i];
                moment(r).map(|s| if total { s.total } else { s.file } as f64)
            }
        }
    }

    pub fn noisy(self, r: &Results) -> bool {
        match self {
            Metric::Rate(i) => r.noisy[i],
            Metric::Bytes(_) => false,
        }
    }
}

/// The rows of the ratio table: a label and what it compares.
fn ratio_rows(threads: usize) -> Vec<(String, Metric)> {
    let rates = PHASES.iter().enumerate().map(|(i, (phase, _))| {
        let kind = if timed(i) { "1/time" } else { "rate" };
        let label = format!("{} ({kind})", phase.replace('T', &threads.to_string()));
        (label, Metric::Rate(i))
    });
    let sizes = SIZES
        .iter()
        .enumerate()
        .map(|(i, (_, _, label))| (format!("{label} (bytes)"), Metric::Bytes(i)));
    rates.chain(sizes).collect()
}

/// A table with one row per ratio and one column per peer of shadowkv, each cell given by
/// `cell(peer, metric)`. `None` if shadowkv was not run or ran alone.
fn peer_table(
    names: &[&str],
    threads: usize,
    cell: impl Fn(usize, usize, Metric) -> String,
) -> Option<String> {
    let me = names.iter().position(|&n| n == "shadowkv")?;
    let peers: Vec<usize> = (0..names.len()).filter(|&i| i != me).collect();
    if peers.is_empty() {
        return None;
    }
    let rows: Vec<(String, Vec<String>)> = ratio_rows(threads)
        .into_iter()
        .map(|(label, m)| (label, peers.iter().map(|&p| cell(me, p, m)).collect()))
        .collect();
    let header: Vec<&str> = peers.iter().map(|&p| names[p]).collect();
    Some(render("phase", &header, &rows))
}

/// Ratios shadowkv/peer: rates and 1/time (higher is better for shadowkv), and bytes (lower
/// is smaller for shadowkv). `None` if shadowkv was not run.
pub fn ratio_table(names: &[&str], results: &[Results], threads: usize) -> Option<String> {
    peer_table(names, threads, |me, p, m| {
        let (ours, theirs) = (&results[me], &results[p]);
        let text = match (m.value(ours), m.value(theirs)) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "n/a".into(),
        };
        star(text, m.noisy(ours) || m.noisy(theirs))
    })
}

/// Like [`ratio_table`] over several rounds: each cell is the median of the ratios taken
/// within each round, with their range when it is wider than the rounding.
/// `rounds[k][e]` is engine `names[e]`'s result in round `k`.
pub fn spread_table(names: &[&str], rounds: &[Vec<Results>], threads: usize) -> Option<String> {
    peer_table(names, threads, |me, p, m| {
        let Some(s) = crate::rounds::ratio_spread(rounds, me, p, m) else {
            return "n/a".into();
        };
        let (median, min, max) = (
            format!("{:.2}", s.median),
            format!("{:.2}", s.min),
            format!("{:.2}", s.max),
        );
        let text = if min == max {
            median
        } else {
            format!("{median} ({min}–{max})")
        };
        star(text, s.noisy)
    })
}

/// The rates of one round, compactly: one row per engine (in the order they ran), one column
/// per phase; the snapshot and copy columns are times in ms.
pub fn round_table(names: &[&str], results: &[&Results], threads: usize) -> String {
    let header: Vec<String> = SHORT
        .iter()
        .map(|s| s.replace('T', &threads.to_string()))
        .collect();
    let rows: Vec<(String, Vec<String>)> = names
        .iter()
        .zip(results)
        .map(|(name, r)| {
            (
                name.to_string(),
                (0..PHASES.len()).map(|i| cell(r, i)).collect(),
            )
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    render("engine", &header, &rows)
}

/// Short phase names for [`round_table`]'s header; `T` becomes the thread count.
const SHORT: [&str; 10] = [
    "1 load",
    "2 single",
    "3 batch",
    "4 read x1",
    "5 read xT",
    "6 scan",
    "7 remove",
    "8 snap ms",
    "9 copy ms",
    "10 upd snap",
];

fn star(text: String, noisy: bool) -> String {
    if noisy {
        text + "*"
    } else {
        text
    }
}

/// A markdown table: `corner` heads the label column; every other column has one width.
pub fn render(corner: &str, header: &[&str], rows: &[(String, Vec<String>)]) -> String {
    let len = |s: &str| s.chars().count();
    let first = rows
        .iter()
        .map(|(l, _)| len(l))
        .max()
        .unwrap_or(0)
        .max(len(corner));
    let width = rows
        .iter()
        .flat_map(|(_, cells)| cells.iter().map(|c| len(c)))
        .chain(header.iter().map(|h| len(h)))
        .max()
        .unwrap_or(0)
        .max(8);
    let mut out = format!("| {corner:<first$} |");
    for h in header {
        out += &format!(" {h:>width$} |");
    }
    out += &format!("\n|{}|", "-".repeat(first + 2));
    for _ in header {
        out += &format!("{}:|", "-".repeat(width + 1));
    }
    for (label, cells) in rows {
        out += &format!("\n| {label:<first$} |");
        for c in cells {
            out += &format!(" {c:>width$} |");
        }
    }
    out + "\n"
}

/// A rate rounded to an integer, with thousands separators.
pub fn rate(r: Option<f64>) -> String {
    let Some(r) = r else { return "n/a".into() };
    if r < 100.0 {
        return format!("{r:.1}");
    }
    let digits = format!("{:.0}", r);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub fn ms(t: Option<f64>) -> String {
    t.map_or_else(|| "n/a".into(), |t| format!("{t:.2}"))
}

fn mib(b: Option<u64>) -> String {
    b.map_or_else(
        || "n/a".into(),
        |b| format!("{:.1}", b as f64 / (1024.0 * 1024.0)),
    )
}
