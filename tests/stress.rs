//! Concurrency stress: one reader per core reads main, snapshots and branches while a writer
//! commits, takes and deletes snapshots, and writes a branch. Every state satisfies an
//! invariant a torn state would break: table `t` holds `counter = C` and N keys whose values
//! derive from C (some in overflow pages), table `u` holds exactly `ulen` entries as `t`
//! records it. A snapshot named after a counter holds exactly that counter. A reader also keeps
//! an old transaction open for a while and checks that it never changes. Bounded by the
//! writer's rounds; no timing assertions. `check()` runs concurrently now and then, and at the
//! end.

mod common;

use common::Rng;
use shadowkv::{Database, Durability, Error, ReadTxn};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

const KEYS: u64 = 40;
const ROUNDS: u64 = 5000;

fn value(counter: u64, i: u64) -> Vec<u8> {
    let len = if i.is_multiple_of(9) {
        1800 + (counter % 7) * 300
    } else {
        8 + (i + counter) % 40
    };
    let seed = counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ i;
    (0..len)
        .map(|j| (seed.wrapping_add(j) % 251) as u8)
        .collect()
}

fn key(i: u64) -> Vec<u8> {
    format!("k{i:03}").into_bytes()
}

fn get_u64(t: &shadowkv::Table<'_>, k: &[u8]) -> Result<u64, String> {
    let v = t
        .get(k)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("{} missing", String::from_utf8_lossy(k)))?;
    Ok(u64::from_le_bytes(
        v.try_into().map_err(|_| "bad counter length".to_string())?,
    ))
}

/// Checks the invariant of one state; returns its counter.
fn check_state(rx: &ReadTxn<'_>) -> Result<u64, String> {
    let t = rx.open_table("t").map_err(|e| e.to_string())?;
    let counter = get_u64(&t, b"counter")?;
    let ulen = get_u64(&t, b"ulen")?;
    if t.len().map_err(|e| e.to_string())? != KEYS + 2 {
        return Err(format!("counter {counter}: t has the wrong length"));
    }
    for i in 0..KEYS {
        let got = t.get(&key(i)).map_err(|e| e.to_string())?;
        if got != Some(&value(counter, i)[..]) {
            return Err(format!("counter {counter}: key {i} is from another commit"));
        }
    }
    let u = rx.open_table("u").map_err(|e| e.to_string())?;
    let len = u.len().map_err(|e| e.to_string())?;
    let counted = u.iter().map_err(|e| e.to_string())?.count() as u64;
    if len != ulen || counted != ulen {
        return Err(format!(
            "counter {counter}: u has len {len}, {counted} entries, t says {ulen}"
        ));
    }
    Ok(counter)
}

/// One commit of the writer on `branch`: counter `c`, `u` grows by one entry.
fn commit_round(
    db: &Database,
    branch: &str,
    c: u64,
    snapshot: Option<&str>,
    durability: Durability,
) {
    let mut tx = db.begin_write_on(branch).unwrap();
    tx.set_durability(durability);
    {
        let mut t = tx.open_table("t").unwrap();
        let ulen = match t.get(b"ulen").unwrap() {
            Some(v) => u64::from_le_bytes(v[..].try_into().unwrap()),
            None => 0,
        };
        for i in 0..KEYS {
            t.insert(&key(i), &value(c, i)).unwrap();
        }
        t.insert(b"counter", &c.to_le_bytes()).unwrap();
        t.insert(b"ulen", &(ulen + 1).to_le_bytes()).unwrap();
    }
    tx.open_table("u")
        .unwrap()
        .insert(format!("u{c:08}").as_bytes(), &[c as u8; 20])
        .unwrap();
    if let Some(name) = snapshot {
        tx.create_snapshot(name).unwrap();
    }
    tx.commit().unwrap();
}

fn counter_of(name: &str) -> Option<u64> {
    name.strip_prefix('s')
        .or_else(|| name.strip_prefix('d'))
        .and_then(|n| n.parse().ok())
}

#[test]
fn readers_never_see_a_torn_state() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stress.db");
    let db = Database::options()
        .durability(Durability::Eventual)
        .open(&path)
        .unwrap();
    commit_round(&db, "main", 0, None, Durability::Immediate);
    db.create_branch("side", "main").unwrap();
    let readers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    let checks = AtomicU64::new(0);
    std::thread::scope(|s| {
        for r in 0..readers {
            let (db, done, reads, checks) = (&db, &done, &reads, &checks);
            s.spawn(move || {
                let mut rng = Rng(r as u64 + 1);
                let mut last_main = 0;
                let mut held: Option<(ReadTxn<'_>, u64, u32)> = None;
                let mut iterations = 0u64;
                while !done.load(Ordering::Acquire) && iterations < 2_000_000 {
                    iterations += 1;
                    match rng.below(10) {
                        0..=3 => {
                            let rx = db.begin_read().unwrap();
                            let c = check_state(&rx).unwrap_or_else(|e| panic!("main: {e}"));
                            assert!(c >= last_main, "main went back from {last_main} to {c}");
                            last_main = c;
                        }
                        4..=6 => {
                            let snaps = db.snapshots().unwrap();
                            if snaps.is_empty() {
                                continue;
                            }
                            let name = &snaps[rng.below(snaps.len() as u64) as usize].name;
                            match db.begin_read_at(name) {
                                Ok(rx) => {
                                    let c = check_state(&rx)
                                        .unwrap_or_else(|e| panic!("snapshot {name}: {e}"));
                                    assert_eq!(Some(c), counter_of(name), "snapshot {name}");
                                }
                                Err(Error::NotFound(_)) => {} // deleted meanwhile
                                Err(e) => panic!("snapshot {name}: {e}"),
                            }
                        }
                        7 => {
                            let rx = db.begin_read_at("side").unwrap();
                            check_state(&rx).unwrap_or_else(|e| panic!("side: {e}"));
                        }
                        8 => {
                            // Hold a transaction for a while: it must not change under us.
                            match held.take() {
                                Some((rx, c, left)) => {
                                    let again = check_state(&rx)
                                        .unwrap_or_else(|e| panic!("held txn: {e}"));
                                    assert_eq!(again, c, "a held read txn changed");
                                    if left > 0 {
                                        held = Some((rx, c, left - 1));
                                    }
                                }
                                None => {
                                    let rx = db.begin_read().unwrap();
                                    let c = check_state(&rx).unwrap();
                                    held = Some((rx, c, 20));
                                }
                            }
                        }
                        _ => {
                            if r == 0 && rng.chance(10) {
                                db.check()
                                    .unwrap_or_else(|e| panic!("concurrent check: {e}"));
                                checks.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        // The writer.
        let mut rng = Rng(99);
        let mut live: Vec<String> = Vec::new();
        let mut side = 0u64;
        for c in 1..=ROUNDS {
            let durability = if c % 10 == 0 {
                Durability::Immediate
            } else {
                Durability::Eventual
            };
            let in_txn = (c % 7 == 0).then(|| format!("s{c}"));
            commit_round(&db, "main", c, in_txn.as_deref(), durability);
            live.extend(in_txn);
            if c % 5 == 0 {
                let name = format!("d{c}");
                db.create_snapshot(&name).unwrap();
                live.push(name);
            }
            if live.len() > 12 {
                let victim = live.remove(rng.below(live.len() as u64) as usize);
                db.delete_snapshot(&victim).unwrap();
            }
            if c % 3 == 0 {
                side += 1;
                commit_round(&db, "side", 1_000_000 + side, None, Durability::Eventual);
            }
            if c % 97 == 0 {
                // Reset the branch to a snapshot: readers of it see one state or the other.
                if let Some(from) = live.first() {
                    db.restore("side", from).unwrap();
                }
            }
            if c % 50 == 0 {
                db.sync().unwrap();
            }
        }
        done.store(true, Ordering::Release);
    });
    eprintln!(
        "{readers} readers, {ROUNDS} rounds: {} reads, {} concurrent checks",
        reads.load(Ordering::Relaxed),
        checks.load(Ordering::Relaxed)
    );
    let report = db.check().unwrap();
    eprintln!("{report:?}");
    for snap in db.snapshots().unwrap() {
        db.delete_snapshot(&snap.name).unwrap();
    }
    db.delete_branch("side").unwrap();
    for c in ROUNDS + 1..ROUNDS + 4 {
        commit_round(&db, "main", c, None, Durability::Immediate);
    }
    db.check().unwrap();
    let rx = db.begin_read().unwrap();
    assert_eq!(check_state(&rx).unwrap(), ROUNDS + 3);
    drop(rx);
    drop(db);
    let db = Database::open(&path).unwrap();
    db.check().unwrap();
    assert_eq!(check_state(&db.begin_read().unwrap()).unwrap(), ROUNDS + 3);
}
