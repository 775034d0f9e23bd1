//! The tables of issue 10: shadowkv's stream phases, and each goal's ratio taken within every
//! round (both sides measured in the same round) with its median and range.

use crate::report::{render, Results};
use crate::rounds::median;
use crate::streams::*;

/// A goal on the stream phases: the quantity of one round, and when it is met.
struct Goal {
    label: &'static str,
    target: &'static str,
    value: fn(&Streams) -> Option<f64>,
    met: fn(f64) -> bool,
}

const GOALS: [Goal; 8] = [
    Goal {
        label: "full send to io::sink / iterate (time)",
        target: "≤ 2",
        value: |s| Some(s.secs[SEND_SINK] / s.secs[ITERATE]),
        met: |x| x <= 2.0,
    },
    Goal {
        label: "full send to a file, fsynced / iterate (time)",
        target: "≤ 2",
        value: |s| Some(s.secs[SEND_FILE] / s.secs[ITERATE]),
        met: |x| x <= 2.0,
    },
    Goal {
        label: "full receive / phase 1 bulk load, same entries (time)",
        target: "≤ 1.5",
        value: |s| s.bulk_load.map(|b| s.secs[RECEIVE] / b),
        met: |x| x <= 1.5,
    },
    Goal {
        label: "full receive / load of the source in the streams phase",
        target: "≤ 1.5",
        value: |s| Some(s.secs[RECEIVE] / s.secs[LOAD]),
        met: |x| x <= 1.5,
    },
    Goal {
        label: "incremental send of 1% / full send, both to io::sink",
        target: "≤ 0.05",
        value: |s| Some(s.secs[INC_SINK] / s.secs[SEND_SINK]),
        met: |x| x <= 0.05,
    },
    Goal {
        label: "incremental send of 1% / full send, both to files",
        target: "≤ 0.05",
        value: |s| Some(s.secs[INC_FILE] / s.secs[SEND_FILE]),
        met: |x| x <= 0.05,
    },
    Goal {
        label: "diff of 10 changes: pages read / (10 × depth)",
        target: "about 1",
        value: |s| (s.depth > 0).then(|| s.diff_pages as f64 / (10.0 * f64::from(s.depth))),
        met: |x| (0.5..=2.0).contains(&x),
    },
    Goal {
        label: "diff of 10 changes: time (µs)",
        target: "< 1000",
        value: |s| Some(s.secs[DIFF] * 1e6),
        met: |x| x < 1000.0,
    },
];

/// Prints the stream table (if shadowkv ran them) and the goals. `rounds[k][e]` is engine
/// `names[e]` in round `k`; a single run is one round.
pub fn print(names: &[&str], rounds: &[Vec<Results>]) {
    let Some(me) = names.iter().position(|&n| n == "shadowkv") else {
        return;
    };
    let runs: Vec<&Streams> = rounds
        .iter()
        .filter(|r| r[me].failure.is_none())
        .filter_map(|r| r[me].streams.as_ref())
        .collect();
    if let Some(m) = crate::streams::median(runs.iter().copied()) {
        println!(
            "\n## shadowkv streams: median (min–max) of {} round(s), in ms\n",
            runs.len()
        );
        print!("{}", steps_table(&runs));
        print_sizes(&m);
    }
    println!("\n## Goals of issue 10: median (min–max) of the values taken within each round\n");
    let mut rows = vec![copy_goal(names, me, rounds)];
    // Without the stream phases (`--streams 0`) their goals would all read n/a.
    for g in GOALS.iter().filter(|_| !runs.is_empty()) {
        let values: Vec<f64> = runs.iter().filter_map(|s| (g.value)(s)).collect();
        rows.push(goal_row(g.label, g.target, &values, g.met));
    }
    print!("{}", render("goal", &["target", "value", "status"], &rows));
}

/// One row per step: the median time with its range, and its rate.
fn steps_table(runs: &[&Streams]) -> String {
    let rows: Vec<(String, Vec<String>)> = STEPS
        .iter()
        .enumerate()
        .map(|(i, label)| {
            let ms: Vec<f64> = runs.iter().map(|s| s.secs[i] * 1e3).collect();
            let noisy = 2 * runs.iter().filter(|s| s.noisy[i]).count() > runs.len();
            let star = if noisy { "*" } else { "" };
            let per = |n: fn(&Streams) -> u64| {
                let rates: Vec<f64> = runs.iter().map(|s| n(s) as f64 / s.secs[i]).collect();
                crate::report::rate(median(&rates))
            };
            let rate = match i {
                INC_SINK | INC_FILE => per(|s| s.changed) + " changes/s",
                DIFF => per(|s| s.diff_changes) + " changes/s",
                _ => per(|s| s.entries) + " entries/s",
            };
            let digits = if median(&ms).unwrap_or_default() >= 10.0 {
                1
            } else {
                3
            };
            (label.to_string(), vec![spread(&ms, digits) + star, rate])
        })
        .collect();
    render("step", &["time (ms)", "rate"], &rows)
}

/// The streams' sizes and the diff's counts (the same in every round but the byte counts,
/// which are medians).
fn print_sizes(m: &Streams) {
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!(
        "\nfull stream: {:.1} MiB for {} entries ({:.1} B per entry); incremental stream: \
         {:.2} MiB for {} changed keys ({:.2}% of the full stream), whose diff reads {} pages \
         (both snapshots; {} pages in use); diff of the 10 changes: {} changes, {} pages read, \
         table depth {}",
        mib(m.full_bytes),
        m.entries,
        m.full_bytes as f64 / m.entries.max(1) as f64,
        mib(m.inc_bytes),
        m.changed,
        100.0 * m.inc_bytes as f64 / m.full_bytes.max(1) as f64,
        m.inc_pages,
        m.used_pages,
        m.diff_changes,
        m.diff_pages,
        m.depth
    );
}

/// shadowkv's copy time over the fastest peer's copy time, within each round.
fn copy_goal(names: &[&str], me: usize, rounds: &[Vec<Results>]) -> (String, Vec<String>) {
    let secs = |r: &Results| {
        let rate = r.rates[8].filter(|_| r.failure.is_none())?;
        Some(1.0 / rate)
    };
    let mut values = Vec::new();
    let mut fastest = Vec::new();
    for round in rounds {
        let peers = (0..names.len()).filter(|&e| e != me);
        let best = peers
            .filter_map(|e| secs(&round[e]).map(|t| (t, e)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        if let (Some(ours), Some((theirs, e))) = (secs(&round[me]), best) {
            values.push(ours / theirs);
            fastest.push(names[e]);
        }
    }
    fastest.sort_unstable();
    fastest.dedup();
    let label = if fastest.is_empty() {
        "compacted copy: shadowkv / fastest peer (time)".to_string()
    } else {
        format!(
            "compacted copy: shadowkv / fastest peer ({}) (time)",
            fastest.join(", ")
        )
    };
    goal_row(&label, "≤ 0.50", &values, |x| x <= 0.5)
}

/// A goal's row: the median (min–max) and whether the median meets it, with how many rounds
/// did.
fn goal_row(
    label: &str,
    target: &str,
    values: &[f64],
    met: fn(f64) -> bool,
) -> (String, Vec<String>) {
    let status = match median(values) {
        None => "n/a".to_string(),
        Some(m) => {
            let word = if met(m) { "met" } else { "not met" };
            let k = values.iter().filter(|&&v| met(v)).count();
            format!("{word} ({k} of {} rounds)", values.len())
        }
    };
    let digits = if values.iter().all(|&v| v >= 10.0) {
        0
    } else {
        3
    };
    let cells = vec![target.to_string(), spread(values, digits), status];
    (label.to_string(), cells)
}

/// `median (min–max)` of `values` with `digits` decimals; the range only if it shows.
fn spread(values: &[f64], digits: usize) -> String {
    let Some(m) = median(values) else {
        return "n/a".into();
    };
    let f = |x: f64| format!("{x:.digits$}");
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if f(min) == f(max) {
        f(m)
    } else {
        format!("{} ({}–{})", f(m), f(min), f(max))
    }
}
