//! Soak test: one writer thread and several reader threads on one database file for a fixed
//! time (`SHADOWKV_SOAK_SECS`, default 60, as the issue asks of CI; `SHADOWKV_SOAK_SEED` replays a run).
//!
//! The writer runs random operations: write transactions on `main` and on branches with
//! several tables open at once, snapshots, branches, restores, deletes, `compact()`,
//! `backup_to` (each backup opened and checked), and incremental send/receive to a replica.
//! Tables `a` and `b` hold the same keys in every commit (each pair op inserts or removes a
//! key in both), table `c` takes random writes.
//!
//! The readers hold views (`begin_read`, `begin_read_at` a snapshot) for a random time and
//! check that a view never changes while held (its checksum at the start equals the one at
//! the end), that a snapshot holds what it held when it was taken (the writer records the
//! checksum of `main` just before taking it), and that `a` and `b` have equal lengths in
//! every view.
//!
//! At the end: `check()` passes on the database and the replica; every snapshot the replica
//! received has the checksum the source recorded, and the replica's diff between each two
//! received snapshots equals the source's; after a final `compact()` the file is at most
//! `1.3 × live_bytes + 1 MiB`: the space issue's bound after a compaction, with a mebibyte
//! for what a small file holds besides its trees (metas, the free map).

mod common;

use common::Rng;
use shadowkv::{Database, Durability, Error, ReadTxn};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const KEYS: u64 = 3000;
const READERS: usize = 3;

/// What the writer publishes for the readers: each live snapshot's checksum.
#[derive(Default)]
struct Known {
    snapshots: Mutex<HashMap<String, u64>>,
    checks: AtomicU64,
    stop: AtomicBool,
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// A checksum of every table of a view: names, keys and values, in order.
fn checksum(rx: &ReadTxn<'_>) -> u64 {
    let mut h = DefaultHasher::new();
    for name in rx.table_names().unwrap() {
        h.write(name.as_bytes());
        let t = rx.open_table(&name).unwrap();
        for item in t.iter().unwrap() {
            let (k, v) = item.unwrap();
            h.write(k);
            h.write_u8(0xFF);
            h.write(v);
        }
    }
    h.finish()
}

/// `a` and `b` hold the same number of entries (the writer changes them together).
fn pairs_agree(rx: &ReadTxn<'_>) -> bool {
    let len = |t: &str| match rx.open_table(t) {
        Ok(t) => t.len().unwrap(),
        Err(Error::NotFound(_)) => 0,
        Err(e) => panic!("open_table({t}): {e}"),
    };
    len("a") == len("b")
}

fn reader(db: &Database, known: &Known, seed: u64) {
    let mut rng = Rng(seed);
    while !known.stop.load(Ordering::Relaxed) {
        let snapshot = {
            let snaps = known.snapshots.lock().unwrap();
            let names: Vec<(&String, &u64)> = snaps.iter().collect();
            match rng.chance(50) && !names.is_empty() {
                true => {
                    let (n, c) = names[rng.below(names.len() as u64) as usize];
                    Some((n.clone(), *c))
                }
                false => None,
            }
        };
        let rx = match &snapshot {
            None => db.begin_read().unwrap(),
            Some((name, _)) => match db.begin_read_at(name) {
                Ok(rx) => rx,
                Err(Error::NotFound(_)) => continue, // deleted meanwhile
                Err(e) => panic!("begin_read_at({name}): {e}"),
            },
        };
        let first = checksum(&rx);
        if let Some((name, recorded)) = &snapshot {
            assert_eq!(
                first, *recorded,
                "snapshot {name} changed since it was taken"
            );
        }
        assert!(pairs_agree(&rx), "a and b disagree in a view");
        std::thread::sleep(Duration::from_millis(rng.below(30)));
        assert_eq!(checksum(&rx), first, "a view changed while held");
        known.checks.fetch_add(3, Ordering::Relaxed);
    }
}

/// The writer's own state: names it made, and the replica.
struct Writer<'a> {
    db: &'a Database,
    known: &'a Known,
    rng: Rng,
    dir: PathBuf,
    branches: Vec<String>,
    next_name: u64,
    replica: Database,
    /// Snapshots sent to the replica, in order, with their checksums.
    sent: Vec<(String, u64)>,
    ops: u64,
}

fn value(rng: &mut Rng) -> Vec<u8> {
    let len = match rng.below(20) {
        0 => 5000 + rng.below(10_000),
        1..=4 => 0,
        _ => 10 + rng.below(400),
    } as usize;
    rng.bytes(len)
}

impl Writer<'_> {
    fn name(&mut self, prefix: &str) -> String {
        self.next_name += 1;
        format!("{prefix}{}", self.next_name)
    }

    /// A write transaction on `branch`: pair ops on `a` and `b` and random ones on `c`,
    /// with all three tables open at once.
    fn write(&mut self, branch: &str) {
        let mut tx = self.db.begin_write_on(branch).unwrap();
        if self.rng.chance(30) {
            tx.set_durability(Durability::Eventual);
        }
        {
            let mut a = tx.open_table("a").unwrap();
            let mut b = tx.open_table("b").unwrap();
            let mut c = tx.open_table("c").unwrap();
            for _ in 0..1 + self.rng.below(40) {
                let key = format!("k{:05}", self.rng.below(KEYS)).into_bytes();
                if self.rng.chance(60) {
                    let present = a.get(&key).unwrap().is_some();
                    if present {
                        assert!(a.remove(&key).unwrap() && b.remove(&key).unwrap());
                    } else {
                        a.insert(&key, &value(&mut self.rng)).unwrap();
                        b.insert(&key, b"").unwrap();
                    }
                } else if self.rng.chance(70) {
                    c.insert(&key, &value(&mut self.rng)).unwrap();
                } else {
                    c.remove(&key).unwrap();
                }
            }
        }
        if self.rng.chance(5) {
            return; // dropped: aborted
        }
        tx.commit().unwrap();
    }

    fn main_checksum(&self) -> u64 {
        checksum(&self.db.begin_read().unwrap())
    }

    fn snapshot(&mut self) {
        let name = self.name("s");
        let sum = self.main_checksum();
        self.db.create_snapshot(&name).unwrap();
        self.known.snapshots.lock().unwrap().insert(name, sum);
    }

    fn random_snapshot(&mut self) -> Option<String> {
        let snaps = self.known.snapshots.lock().unwrap();
        let mut names: Vec<&String> = snaps.keys().collect();
        names.sort();
        let pick = (!names.is_empty()).then(|| self.rng.below(names.len() as u64) as usize);
        pick.map(|i| names[i].clone())
    }

    fn branch(&mut self) {
        let from = self.random_snapshot().unwrap_or_else(|| "main".into());
        let name = self.name("b");
        self.db.create_branch(&name, &from).unwrap();
        self.branches.push(name);
    }

    fn delete(&mut self) {
        if self.rng.chance(50) && !self.branches.is_empty() {
            let i = self.rng.below(self.branches.len() as u64) as usize;
            let name = self.branches.swap_remove(i);
            self.db.delete_branch(&name).unwrap();
        } else if let Some(name) = self.random_snapshot() {
            // Keep the last snapshot sent: the next incremental stream starts from it.
            if self.sent.last().is_some_and(|(s, _)| *s == name) {
                return;
            }
            self.known.snapshots.lock().unwrap().remove(&name);
            self.db.delete_snapshot(&name).unwrap();
        }
    }

    fn restore(&mut self) {
        let Some(from) = self.random_snapshot() else {
            return;
        };
        let i = self.rng.below(self.branches.len() as u64 + 1) as usize;
        let branch = self
            .branches
            .get(i)
            .cloned()
            .unwrap_or_else(|| "main".into());
        self.db.restore(&branch, &from).unwrap();
    }

    fn backup(&mut self) {
        let name = self.name("backup-");
        let path = self.dir.join(name);
        let sum = self.main_checksum();
        self.db.backup_to(&path).unwrap();
        {
            let copy = Database::open(&path).unwrap();
            copy.check().unwrap();
            assert_eq!(checksum(&copy.begin_read().unwrap()), sum, "backup of main");
        }
        std::fs::remove_file(&path).unwrap();
        self.known.checks.fetch_add(2, Ordering::Relaxed);
    }

    /// A new snapshot of main, sent to the replica (incremental from the last one sent).
    fn send(&mut self) {
        self.snapshot();
        let name = format!("s{}", self.next_name);
        let sum = self.known.snapshots.lock().unwrap()[&name];
        let base = self.sent.last().map(|(s, _)| s.clone());
        let mut stream = Vec::new();
        self.db.send(&name, base.as_deref(), &mut stream).unwrap();
        assert_eq!(self.replica.receive(&stream[..]).unwrap(), name);
        let got = checksum(&self.replica.begin_read_at(&name).unwrap());
        assert_eq!(got, sum, "received snapshot {name}");
        self.sent.push((name, sum));
        self.known.checks.fetch_add(1, Ordering::Relaxed);
    }

    fn step(&mut self) {
        // Bounded names, so that the file stays small enough for CI.
        let live = self.known.snapshots.lock().unwrap().len() + self.branches.len();
        if live > 24 {
            self.delete();
        }
        match self.rng.below(100) {
            0..=69 => self.write("main"),
            70..=77 => match self.branches.is_empty() {
                true => self.write("main"),
                false => {
                    let i = self.rng.below(self.branches.len() as u64) as usize;
                    self.write(&self.branches[i].clone());
                }
            },
            78..=83 => self.snapshot(),
            84..=86 => self.branch(),
            87..=91 => self.delete(),
            92..=93 => self.restore(),
            94 => {
                self.db.compact().unwrap();
            }
            95 => self.backup(),
            _ => self.send(),
        }
        self.ops += 1;
    }
}

/// Every two snapshots received one after the other: the replica's diff between them equals
/// the source's.
fn diffs_agree(db: &Database, replica: &Database, sent: &[(String, u64)]) -> u64 {
    let changes = |d: &Database, old: &str, new: &str| {
        let (ro, rn) = (d.begin_read_at(old).unwrap(), d.begin_read_at(new).unwrap());
        let diff = rn.diff(&ro).unwrap();
        let all: Vec<_> = diff
            .map(|c| {
                let c = c.unwrap();
                let own = |v: Option<&[u8]>| v.map(<[u8]>::to_vec);
                (c.table.to_string(), c.key.to_vec(), own(c.old), own(c.new))
            })
            .collect();
        all
    };
    let mut compared = 0;
    for pair in sent.windows(2) {
        let (old, new) = (&pair[0].0, &pair[1].0);
        let snaps = db.snapshots().unwrap();
        if !snaps.iter().any(|s| s.name == *old) || !snaps.iter().any(|s| s.name == *new) {
            continue; // deleted at the source since (the replica keeps it)
        }
        assert!(
            changes(db, old, new) == changes(replica, old, new),
            "diff {old} -> {new}"
        );
        compared += 1;
    }
    compared
}

fn finish(db: &Database, replica: &Database, w_sent: &[(String, u64)]) -> u64 {
    db.check().unwrap();
    replica.check().unwrap();
    let mut checks = 2;
    for (name, sum) in w_sent {
        let got = checksum(&replica.begin_read_at(name).unwrap());
        assert_eq!(got, *sum, "replica snapshot {name}");
        checks += 1;
    }
    checks += diffs_agree(db, replica, w_sent);
    db.compact().unwrap();
    db.check().unwrap();
    let stats = db.stats().unwrap();
    let bound = stats.live_bytes * 13 / 10 + (1 << 20);
    println!(
        "soak: after compact(): file {} bytes, live {} bytes (bound {bound})",
        stats.file_bytes, stats.live_bytes
    );
    assert!(stats.file_bytes <= bound, "file too large: {stats:?}");
    checks + 2
}

fn open(path: &Path) -> Database {
    Database::options().verify_reads(true).open(path).unwrap()
}

#[test]
fn soak() {
    let secs = env_u64("SHADOWKV_SOAK_SECS").unwrap_or(60);
    let seed = env_u64("SHADOWKV_SOAK_SEED").unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
        now.unwrap().as_nanos() as u64 | 1
    });
    println!("soak: seed {seed} (SHADOWKV_SOAK_SEED={seed} replays the writer), {secs} s");
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir.path().join("soak.db"));
    let known = Known::default();
    let mut writer = Writer {
        db: &db,
        known: &known,
        rng: Rng(seed),
        dir: dir.path().to_path_buf(),
        branches: Vec::new(),
        next_name: 0,
        replica: open(&dir.path().join("replica.db")),
        sent: Vec::new(),
        ops: 0,
    };
    let start = Instant::now();
    std::thread::scope(|s| {
        for i in 0..READERS {
            let (db, known) = (&db, &known);
            s.spawn(move || reader(db, known, seed.wrapping_add(i as u64 + 1) | 1));
        }
        let deadline = start + Duration::from_secs(secs);
        while Instant::now() < deadline {
            writer.step();
        }
        writer.send();
        known.stop.store(true, Ordering::Relaxed);
    });
    let elapsed = start.elapsed().as_secs_f64();
    let (ops, sent) = (writer.ops, std::mem::take(&mut writer.sent));
    let replica = std::mem::replace(&mut writer.replica, open(&dir.path().join("spare.db")));
    let checks = known.checks.load(Ordering::Relaxed) + finish(&db, &replica, &sent);
    println!(
        "soak: {ops} writer ops in {elapsed:.1} s ({:.0} ops/s), {} snapshots sent, {checks} checks",
        ops as f64 / elapsed,
        sent.len()
    );
}
