//! The workload: keys, values and the lists of lookups, all drawn from one seeded PRNG so that
//! every engine sees exactly the same bytes in the same order.

use std::collections::HashSet;

/// A key and its value.
pub type Kv = (Vec<u8>, Vec<u8>);

/// splitmix64 (Steele, Lea, Flood 2014): tiny, fast, and good enough for benchmark data.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (Lemire's multiply-shift; the bias is negligible here).
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_u64() as u128 * n as u128) >> 64) as usize
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0; len];
        self.fill(&mut v);
        v
    }
}

/// Sizes of every phase, from the command line.
#[derive(Clone, Debug)]
pub struct Config {
    pub n: usize,
    pub key_size: usize,
    pub value_size: usize,
    pub single_commits: usize,
    pub batches: usize,
    pub batch_size: usize,
    pub reads: usize,
    pub threads: usize,
    pub scans: usize,
    pub scan_len: usize,
    pub seed: u64,
    /// Whether shadowkv's run ends with the stream phases (`streams.rs`).
    pub streams: bool,
    /// Phase 10: how many keys left after phase 7 get a new value (default N/100).
    pub updates: usize,
}

/// The entries written by phases 1–3 and the keys looked up by phases 4–7.
pub struct Workload {
    /// Phase 1: written in one transaction.
    pub load: Vec<Kv>,
    /// Phase 2: one durable commit each.
    pub singles: Vec<Kv>,
    /// Phase 3: durable commits of `batch_size` entries.
    pub batched: Vec<Kv>,
    /// Indices into `existing()` for phase 4.
    read_idx: Vec<usize>,
    /// Indices into `existing()` for phase 5, one list per thread.
    par_idx: Vec<Vec<usize>>,
    /// Indices into `existing()` for phase 6.
    scan_idx: Vec<usize>,
    /// Phase 10: distinct indices into `existing()` of keys that phase 7 keeps (odd ones),
    /// in random order, and their new values.
    update_idx: Vec<usize>,
    update_values: Vec<Vec<u8>>,
}

impl Workload {
    pub fn generate(cfg: &Config) -> Workload {
        let mut rng = SplitMix64::new(cfg.seed);
        let total = cfg.n + cfg.single_commits + cfg.batches * cfg.batch_size;
        let mut seen = HashSet::with_capacity(total);
        let mut all = Vec::with_capacity(total);
        while all.len() < total {
            let key = rng.bytes(cfg.key_size);
            if seen.insert(key.clone()) {
                all.push((key, rng.bytes(cfg.value_size)));
            }
        }
        drop(seen);
        let batched = all.split_off(cfg.n + cfg.single_commits);
        let singles = all.split_off(cfg.n);
        let load = all;
        let mut pick = |count: usize| (0..count).map(|_| rng.below(total)).collect::<Vec<_>>();
        let read_idx = pick(cfg.reads);
        let par_idx = (0..cfg.threads).map(|_| pick(cfg.reads)).collect();
        let scan_idx = pick(cfg.scans);
        // Drawn after every other list, so that those are the same as before phase 10 existed.
        let kept = total / 2; // phase 7 removes the even indices and keeps the odd ones
        let updates = cfg.updates.min(kept);
        let mut chosen = HashSet::with_capacity(updates);
        let mut update_idx = Vec::with_capacity(updates);
        while update_idx.len() < updates {
            let i = 2 * rng.below(kept) + 1;
            if chosen.insert(i) {
                update_idx.push(i);
            }
        }
        let update_values = (0..updates).map(|_| rng.bytes(cfg.value_size)).collect();
        Workload {
            load,
            singles,
            batched,
            read_idx,
            par_idx,
            scan_idx,
            update_idx,
            update_values,
        }
    }

    /// Every key present after phase 3, in insertion order (which is random order).
    pub fn existing(&self) -> Vec<&[u8]> {
        self.load
            .iter()
            .chain(&self.singles)
            .chain(&self.batched)
            .map(|(k, _)| k.as_slice())
            .collect()
    }

    pub fn reads<'a>(&self, existing: &[&'a [u8]]) -> Vec<&'a [u8]> {
        self.read_idx.iter().map(|&i| existing[i]).collect()
    }

    pub fn parallel_reads<'a>(&self, existing: &[&'a [u8]]) -> Vec<Vec<&'a [u8]>> {
        let per = |idx: &Vec<usize>| idx.iter().map(|&i| existing[i]).collect();
        self.par_idx.iter().map(per).collect()
    }

    pub fn scan_starts<'a>(&self, existing: &[&'a [u8]]) -> Vec<&'a [u8]> {
        self.scan_idx.iter().map(|&i| existing[i]).collect()
    }

    /// Phase 7: every other key in insertion order, so a random half.
    pub fn removals<'a>(&self, existing: &[&'a [u8]]) -> Vec<&'a [u8]> {
        existing.iter().step_by(2).copied().collect()
    }
}

impl Workload {
    /// Phase 10: keys that phase 7 left, each with a new value of the same length.
    pub fn updates(&self, existing: &[&[u8]]) -> Vec<Kv> {
        self.update_idx
            .iter()
            .zip(&self.update_values)
            .map(|(&i, v)| (existing[i].to_vec(), v.clone()))
            .collect()
    }
}

/// How many entries the scans must return in total: a scan that starts near the end of the
/// key space returns fewer than `len`. Used to check every engine's answer.
pub fn expected_scan_entries(existing: &[&[u8]], starts: &[&[u8]], len: usize) -> u64 {
    let mut sorted = existing.to_vec();
    sorted.sort_unstable();
    starts
        .iter()
        .map(|s| {
            let pos = sorted
                .binary_search(s)
                .expect("scan starts at an existing key");
            len.min(sorted.len() - pos) as u64
        })
        .sum()
}
