//! Repetition: the engine order of each round, and how several rounds are folded into one
//! result per engine (medians) and one spread per shadowkv/peer ratio.

use crate::disk::IoPerOp;
use crate::report::{Metric, Results, Size};

/// The engine order of round `k` (0-based): the given order rotated left by `k` places, so
/// that over as many rounds as engines each engine runs once in each position (first, after
/// a given engine, last). With two engines this alternates the given order and its reverse.
pub fn order<'a>(names: &[&'a str], k: usize) -> Vec<&'a str> {
    let mut order = names.to_vec();
    if !order.is_empty() {
        let len = order.len();
        order.rotate_left(k % len);
    }
    order
}

/// The median of `values` (the mean of the two middle ones for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[mid]),
        _ => Some((v[mid - 1] + v[mid]) / 2.0),
    }
}

/// Whether something flagged in `flagged` of `of` rounds was flagged in more than half of them.
fn majority(flagged: usize, of: usize) -> bool {
    2 * flagged > of
}

/// One engine's results over the rounds it completed: the median rate of each phase (flagged
/// noisy if it was in more than half of those rounds) and the median of each size. Failed
/// runs are left out; if every run failed, the result carries their failures and no numbers.
pub fn median_results(runs: &[&Results]) -> Results {
    let ok: Vec<&Results> = runs
        .iter()
        .copied()
        .filter(|r| r.failure.is_none())
        .collect();
    if ok.is_empty() {
        let failures: Vec<&str> = runs.iter().filter_map(|r| r.failure.as_deref()).collect();
        return Results {
            failure: Some(failures.join("; ")),
            ..Results::default()
        };
    }
    let mut m = Results::default();
    for i in 0..m.rates.len() {
        let rates: Vec<f64> = ok.iter().filter_map(|r| r.rates[i]).collect();
        m.rates[i] = median(&rates);
        m.noisy[i] = majority(ok.iter().filter(|r| r.noisy[i]).count(), ok.len());
    }
    for i in 0..m.io.len() {
        let ios: Vec<IoPerOp> = ok.iter().filter_map(|r| r.io[i]).collect();
        let of = |f: fn(&IoPerOp) -> f64| median(&ios.iter().map(f).collect::<Vec<_>>());
        m.io[i] = (!ios.is_empty()).then(|| IoPerOp {
            writes: of(|io| io.writes).unwrap_or_default(),
            flushes: of(|io| io.flushes).unwrap_or_default(),
            kib: of(|io| io.kib).unwrap_or_default(),
        });
    }
    m.after_load = median_size(ok.iter().map(|r| r.after_load));
    m.after_commits = median_size(ok.iter().map(|r| r.after_commits));
    m.after_remove = median_size(ok.iter().map(|r| r.after_remove));
    m.after_updates = median_size(ok.iter().map(|r| r.after_updates));
    m.copy = median_size(ok.iter().map(|r| r.copy));
    m.streams = crate::streams::median(ok.iter().filter_map(|r| r.streams.as_ref()));
    m
}

/// The median data-file and all-files sizes of the runs that recorded one.
fn median_size(sizes: impl Iterator<Item = Option<Size>>) -> Option<Size> {
    let sizes: Vec<Size> = sizes.flatten().collect();
    let of = |f: fn(&Size) -> u64| {
        let v: Vec<f64> = sizes.iter().map(|s| f(s) as f64).collect();
        median(&v).map(|m| m.round() as u64)
    };
    Some(Size {
        file: of(|s| s.file)?,
        total: of(|s| s.total)?,
    })
}

/// The median of per-round ratios with their range, and whether more than half were noisy.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub noisy: bool,
}

/// The ratio `metric(ours) / metric(peer)` taken within each round where both engines
/// completed, summarised as a [`Spread`]; `None` if no round gave a ratio.
/// `rounds[k][e]` is engine `e`'s result in round `k`.
pub fn ratio_spread(
    rounds: &[Vec<Results>],
    ours: usize,
    peer: usize,
    m: Metric,
) -> Option<Spread> {
    let mut ratios = Vec::new();
    let mut noisy = 0;
    for round in rounds {
        let (a, b) = (&round[ours], &round[peer]);
        if a.failure.is_some() || b.failure.is_some() {
            continue;
        }
        if let (Some(x), Some(y)) = (m.value(a), m.value(b)) {
            if y > 0.0 {
                ratios.push(x / y);
                noisy += usize::from(m.noisy(a) || m.noisy(b));
            }
        }
    }
    Some(Spread {
        median: median(&ratios)?,
        min: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        max: ratios.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        noisy: majority(noisy, ratios.len()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(rate: f64, noisy: bool, file: u64) -> Results {
        let mut r = Results::default();
        r.rates[0] = Some(rate);
        r.noisy[0] = noisy;
        r.after_load = Some(Size {
            file,
            total: file + 1,
        });
        r
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn order_rotates() {
        let names = ["a", "b", "c"];
        assert_eq!(order(&names, 0), ["a", "b", "c"]);
        assert_eq!(order(&names, 1), ["b", "c", "a"]);
        assert_eq!(order(&names, 2), ["c", "a", "b"]);
        assert_eq!(order(&names, 3), ["a", "b", "c"]);
        assert_eq!(order(&["a", "b"], 1), ["b", "a"], "two engines alternate");
    }

    #[test]
    fn medians_skip_failed_runs_and_need_a_noisy_majority() {
        let failed = Results {
            failure: Some("boom".into()),
            ..run(1e9, true, 999)
        };
        let runs = [
            run(10.0, true, 7),
            failed,
            run(30.0, false, 7),
            run(20.0, false, 9),
        ];
        let m = median_results(&runs.iter().collect::<Vec<_>>());
        assert_eq!(m.rates[0], Some(20.0));
        assert!(!m.noisy[0], "noisy in 1 of 3 completed rounds");
        assert_eq!(m.rates[1], None);
        let size = m.after_load.unwrap();
        assert_eq!((size.file, size.total), (7, 8));
        assert!(m.failure.is_none());

        let all_failed = median_results(&[&runs[1]]);
        assert_eq!(all_failed.failure.as_deref(), Some("boom"));
        assert_eq!(all_failed.rates[0], None);
    }

    #[test]
    fn ratio_spread_pairs_engines_within_each_round() {
        let rounds = vec![
            vec![run(10.0, true, 1), run(20.0, false, 1)],
            vec![run(30.0, true, 1), run(10.0, true, 1)],
            vec![run(8.0, false, 1), run(10.0, false, 1)],
        ];
        let s = ratio_spread(&rounds, 0, 1, Metric::Rate(0)).unwrap();
        assert_eq!((s.median, s.min, s.max), (0.8, 0.5, 3.0));
        assert!(s.noisy, "noisy in 2 of 3 rounds");
        assert_eq!(ratio_spread(&rounds, 0, 1, Metric::Rate(1)), None);
    }
}
