//! Crash images: every write, length change and fsync of a workload is recorded, and the log
//! is cut at every I/O index. At each cut the unsynced tail is damaged the ways a power cut
//! can damage it (dropped, kept, torn at 512-byte sectors, landed out of order) and the image
//! is opened with the real engine. It must open; its state must be exactly one of the
//! model's states, no older than the last durable commit and no newer than the last commit
//! that had started writing; every snapshot and branch must match; `check()` must pass; and
//! the recovered database must accept a new commit.
//!
//! Durability points: a sync that ends a commit or a `Database::sync` makes the state it
//! ends durable (the engine's promise). `SHADOWKV_STRICT_SYNC=0` stops counting the growth
//! sync in the middle of a commit as making the previous (Eventual) commit durable.

mod common;
#[path = "common/storage.rs"]
mod storage;

use common::{Model, Rng};
use shadowkv::internals::io::MemStorage;
use shadowkv::{Database, Durability};
use std::collections::hash_map::DefaultHasher;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use storage::{
    apply, fresh_db_bytes, verify, Cuts, Damage, DurabilityMix, Op, Recording, Shape, Step,
    TableOp, Window, Workload, World, SECTOR,
};

static TOTAL_IMAGES: AtomicU64 = AtomicU64::new(0);

/// One state of the database the workload produced.
struct State {
    txn: u64,
    world: World,
    /// Op index at which the step producing it started and ended.
    start: usize,
    end: usize,
}

/// A recorded workload.
struct Recorded {
    name: String,
    page_size: usize,
    durability: Durability,
    initial: Vec<u8>,
    ops: Vec<Op>,
    states: Vec<State>,
    /// (index of a sync op that ended a commit or a `Database::sync`, state it made durable)
    durable_points: Vec<(usize, usize)>,
    /// How many steps of each kind ran.
    kinds: std::collections::BTreeMap<&'static str, usize>,
    /// States of an earlier timeline that a crash cut off (for a workload that continues
    /// from a crash image): seeing one again means a lost commit came back.
    dead: Vec<(u64, World)>,
}

fn record(
    name: &str,
    page_size: usize,
    durability: Durability,
    next_step: impl FnMut(&World) -> Option<Step>,
) -> Recorded {
    let initial = fresh_db_bytes(page_size);
    record_from(
        name,
        initial,
        World::default(),
        page_size,
        durability,
        next_step,
    )
}

/// Records a workload on a database that starts as `initial` (a fresh file or a crash
/// image) holding `world`.
fn record_from(
    name: &str,
    initial: Vec<u8>,
    mut world: World,
    page_size: usize,
    durability: Durability,
    mut next_step: impl FnMut(&World) -> Option<Step>,
) -> Recorded {
    let rec = Arc::new(Recording::new(initial.clone()));
    let db = Database::options()
        .durability(durability)
        .open_storage(rec.clone())
        .unwrap();
    verify(&db, &world).unwrap_or_else(|e| panic!("{name}: initial state: {e}"));
    let mut states = vec![State {
        txn: db.begin_read().unwrap().txn_id(),
        world: world.clone(),
        start: 0,
        end: 0,
    }];
    // The initial state is on disk already (open may sync it): durable from the start.
    let mut durable_points = Vec::new();
    let mut kinds = std::collections::BTreeMap::new();
    while let Some(step) = next_step(&world) {
        *kinds.entry(step_kind(&step)).or_insert(0) += 1;
        let before = rec.ops();
        world =
            apply(&db, &world, &step).unwrap_or_else(|e| panic!("{name}: {}: {e}", step.summary()));
        let after = rec.ops();
        let txn = db.begin_read().unwrap().txn_id();
        if matches!(step, Step::Receive { .. } | Step::Compact) {
            // A receive or a compaction commits several times; the commits before its last
            // change only its hidden staging root (or where pages lie), so each of them
            // recovers the world before the step.
            let last = states.last().unwrap();
            let (first, world) = (last.txn + 1, last.world.clone());
            for hidden in first..txn {
                states.push(State {
                    txn: hidden,
                    world: world.clone(),
                    start: before,
                    end: after,
                });
            }
        }
        let last = states.last().unwrap();
        if txn != last.txn {
            assert!(txn > last.txn);
            states.push(State {
                txn,
                world: world.clone(),
                start: before,
                end: after,
            });
        } else {
            assert_eq!(
                world,
                last.world,
                "{name}: {} changed the model, not the txn",
                step.summary()
            );
        }
        if after > before && rec.last_op().is_some_and(|op| op.is_sync()) {
            durable_points.push((after - 1, states.len() - 1));
        }
    }
    verify(&db, &world).unwrap();
    db.check().unwrap();
    Recorded {
        name: name.to_string(),
        page_size,
        durability,
        initial,
        ops: rec.log(),
        states,
        durable_points,
        kinds,
        dead: Vec::new(),
    }
}

fn step_kind(step: &storage::Step) -> &'static str {
    use storage::Step;
    match step {
        Step::Write { abort: true, .. } => "abort",
        Step::Write {
            snapshot: Some(_), ..
        } => "write+snapshot",
        Step::Write { .. } => "write",
        Step::Snapshot(_) => "snapshot",
        Step::Branch { .. } => "branch",
        Step::Restore { .. } => "restore",
        Step::DeleteSnapshot(_) => "delete snapshot",
        Step::DeleteBranch(_) => "delete branch",
        Step::Sync => "sync",
        Step::Receive { .. } => "receive",
        Step::Compact => "compact",
    }
}

/// Bounds on the state an image cut at `cut` may recover.
struct Bounds {
    /// The newest state the engine promised durable.
    lo: usize,
    /// The newest state all of whose writes were followed by some sync.
    lo_strict: usize,
    /// The newest state whose step had started writing.
    hi: usize,
}

impl Recorded {
    fn bounds(&self, cut: usize) -> Bounds {
        let lo = self
            .durable_points
            .iter()
            .filter(|(sync, _)| *sync < cut)
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(0);
        let last_sync = self.ops[..cut].iter().rposition(Op::is_sync);
        let lo_strict = last_sync.map_or(0, |s| {
            self.states.iter().rposition(|st| st.end <= s).unwrap_or(0)
        });
        let hi = self
            .states
            .iter()
            .rposition(|st| st.start < cut)
            .unwrap_or(0)
            .max(lo);
        Bounds { lo, lo_strict, hi }
    }
}

#[derive(Default)]
struct Tally {
    images: u64,
    strict_violations: u64,
    failures: Vec<String>,
}

fn strict() -> bool {
    // Every sync is a durability point (the engine advances its durable mark at the growth
    // fsync too); `SHADOWKV_STRICT_SYNC=0` checks only the weaker promise.
    !std::env::var("SHADOWKV_STRICT_SYNC").is_ok_and(|v| v == "0")
}

/// Opens one image and checks it against the bounds. Returns an error message on failure.
fn check_image(
    run: &Recorded,
    bounds: &Bounds,
    image: Vec<u8>,
    tally: &mut Tally,
) -> Result<(), String> {
    let mem = Arc::new(MemStorage::from_bytes(image));
    let db = Database::options()
        .durability(run.durability)
        .open_storage(mem)
        .map_err(|e| format!("open failed: {e}"))?;
    let txn = db
        .begin_read()
        .map_err(|e| format!("begin_read: {e}"))?
        .txn_id();
    let dead = || {
        run.dead
            .iter()
            .find(|(t, w)| *t == txn && verify(&db, w).is_ok())
            .map_or(String::new(), |_| {
                format!(" = txn {txn} of the timeline the earlier crash cut off: a lost commit came back")
            })
    };
    let Some(idx) = run.states.iter().position(|s| s.txn == txn) else {
        return Err(format!(
            "recovered txn {txn}, which no step produced{}",
            dead()
        ));
    };
    if idx < bounds.lo || idx > bounds.hi {
        return Err(format!(
            "recovered state #{idx} (txn {txn}), allowed #{}..=#{} (txns {}..={}){}",
            bounds.lo,
            bounds.hi,
            run.states[bounds.lo].txn,
            run.states[bounds.hi].txn,
            dead()
        ));
    }
    if idx < bounds.lo_strict {
        tally.strict_violations += 1;
        if strict() {
            return Err(format!(
                "recovered state #{idx} (txn {txn}), but a sync had made #{} (txn {}) durable",
                bounds.lo_strict, run.states[bounds.lo_strict].txn
            ));
        }
    }
    verify(&db, &run.states[idx].world)
        .map_err(|e| format!("state #{idx} (txn {txn}): {e}{}", dead()))?;
    db.check()
        .map_err(|e| format!("check() of state #{idx} (txn {txn}): {e}"))?;
    // The recovered database must take a new commit and still check.
    let tx = db.begin_write().map_err(|e| format!("begin_write: {e}"))?;
    tx.open_table("zz-after-crash")
        .and_then(|mut t| t.insert(b"key", &[7u8; 2000]))
        .map_err(|e| format!("insert after recovery: {e}"))?;
    tx.commit()
        .map_err(|e| format!("commit after recovery: {e}"))?;
    db.check()
        .map_err(|e| format!("check() after a commit on state #{idx}: {e}"))?;
    Ok(())
}

fn hash(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    h.finish()
}

fn describe(window: &Window<'_>, damage: &Damage) -> String {
    let fates: Vec<String> = damage
        .fates
        .iter()
        .zip(window.unsynced)
        .map(|(f, op)| {
            let what = match op {
                Op::Write { offset, data } => format!("w@{offset}+{}", data.len()),
                Op::SetLen(l) => format!("len {l}"),
                Op::Sync => "sync".into(),
            };
            let fate = match f {
                storage::Fate::Drop => "drop".to_string(),
                storage::Fate::Keep => "keep".to_string(),
                storage::Fate::Prefix(n) => format!("first {n} bytes"),
                storage::Fate::Torn(m) => format!(
                    "torn {}",
                    m.iter()
                        .map(|b| if *b { '1' } else { '0' })
                        .collect::<String>()
                ),
            };
            format!("{what}:{fate}")
        })
        .collect();
    format!(
        "{} [{}] order {:?}",
        damage.label,
        fates.join(", "),
        damage.order
    )
}

/// Checks every cut of a recorded workload: the exhaustive damages, plus `random_per_cut`
/// random ones.
fn sweep(
    run: &Recorded,
    max_subset_bits: usize,
    random_per_cut: usize,
    cap_per_cut: usize,
    seed: u64,
) -> Tally {
    let start = Instant::now();
    let mut tally = Tally::default();
    let mut rng = Rng(seed);
    let mut cuts = Cuts::new(run.initial.clone(), &run.ops);
    for cut in 0..=run.ops.len() {
        let bounds = run.bounds(cut);
        let window = cuts.at(cut);
        let mut damages = if max_subset_bits > 0 {
            window.exhaustive(max_subset_bits)
        } else {
            vec![Damage::uniform(
                window.unsynced.len(),
                storage::Fate::Keep,
                "all kept",
            )]
        };
        if damages.len() > cap_per_cut {
            // Keep "all kept" and "all dropped", sample the rest.
            for i in (3..damages.len()).rev() {
                let j = 2 + rng.below(i as u64 - 1) as usize;
                damages.swap(i, j);
            }
            damages.truncate(cap_per_cut);
        }
        for _ in 0..random_per_cut {
            damages.push(window.random(&mut rng));
        }
        let mut seen = HashSet::new();
        for damage in damages {
            let image = window.image(&damage);
            if !seen.insert(hash(&image)) {
                continue;
            }
            tally.images += 1;
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let mut t = Tally::default();
                let r = check_image(run, &bounds, image, &mut t);
                (r, t.strict_violations)
            }));
            let result = match result {
                Ok((r, strict)) => {
                    tally.strict_violations += strict;
                    r
                }
                Err(p) => Err(format!(
                    "panic: {}",
                    p.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default()
                )),
            };
            if let Err(e) = result {
                if tally.failures.len() < 12 {
                    tally.failures.push(format!(
                        "{} cut {cut}/{} ({}): {e}\n    damage: {}",
                        run.name,
                        run.ops.len(),
                        run.ops
                            .get(cut.wrapping_sub(1))
                            .map_or("start".to_string(), |op| format!("after {}", op_name(op))),
                        describe(&window, &damage)
                    ));
                } else {
                    tally.failures.push(String::new());
                }
            }
        }
    }
    let total = TOTAL_IMAGES.fetch_add(tally.images, Ordering::SeqCst) + tally.images;
    eprintln!(
        "{}: {:?}\n  {} ops, {} states, {} durable points, page size {}: {} images in {:.1?} ({} where a \
         synced-but-unpromised Eventual commit was lost), {} failures; {} images so far",
        run.name,
        run.kinds,
        run.ops.len(),
        run.states.len(),
        run.durable_points.len(),
        run.page_size,
        tally.images,
        start.elapsed(),
        tally.strict_violations,
        tally.failures.len(),
        total
    );
    tally
}

fn op_name(op: &Op) -> String {
    match op {
        Op::Write { offset, data } => format!("write {}+{}", offset, data.len()),
        Op::SetLen(l) => format!("set_len {l}"),
        Op::Sync => "sync".into(),
    }
}

fn assert_clean(tallies: Vec<Tally>) {
    let failures: Vec<String> = tallies.into_iter().flat_map(|t| t.failures).collect();
    if !failures.is_empty() {
        let shown: Vec<&String> = failures.iter().filter(|f| !f.is_empty()).collect();
        panic!(
            "{} crash images failed; the first ones:\n{}",
            failures.len(),
            shown
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

/// A generated workload of `steps` steps.
fn generated(
    name: &str,
    seed: u64,
    shape: Shape,
    steps: usize,
    page_size: usize,
    durability: Durability,
) -> Recorded {
    let mut wl = Workload::new(seed, shape);
    let mut left = steps;
    record(name, page_size, durability, |world| {
        left = left.checked_sub(1)?;
        Some(wl.next_step(world))
    })
}

fn shape(durability: DurabilityMix) -> Shape {
    Shape {
        durability,
        key_space: 300,
        max_ops: 16,
        sync_pct: if durability == DurabilityMix::Immediate {
            0
        } else {
            8
        },
        ..Shape::default()
    }
}

fn write(branch: &str, ops: Vec<TableOp>, durability: Durability) -> Step {
    Step::Write {
        branch: branch.to_string(),
        ops,
        snapshot: None,
        durability,
        abort: false,
    }
}

/// A table of more than 1024 overflow values, shared by a snapshot and a branch, then
/// dropped: the release queue frees it over several commits, and the pending pages force the
/// engine's own sync of an Eventual commit.
fn release_script(seed: u64, durability: Durability) -> Vec<Step> {
    let write = |branch: &str, ops| write(branch, ops, durability);
    let mut rng = Rng(seed);
    let mut steps = Vec::new();
    let ins =
        |t: &str, i: u64, v: Vec<u8>| TableOp::Insert(t.into(), format!("k{i:05}").into_bytes(), v);
    for chunk in 0..4u64 {
        let mut ops = Vec::new();
        for i in 0..300 {
            let len = 1600 + rng.below(400) as usize;
            ops.push(ins("big", chunk * 300 + i, rng.bytes(len)));
        }
        for i in 0..20 {
            ops.push(ins("small", chunk * 20 + i, rng.bytes(30)));
        }
        steps.push(write("main", ops));
    }
    steps.push(Step::Snapshot("s1".into()));
    steps.push(write("main", vec![TableOp::DeleteTable("big".into())]));
    steps.push(Step::Branch {
        name: "b1".into(),
        from: "s1".into(),
    });
    steps.push(write(
        "b1",
        (0..40)
            .map(|i| ins("big", i * 29, rng.bytes(1700)))
            .collect(),
    ));
    steps.push(Step::Sync);
    steps.push(Step::DeleteSnapshot("s1".into()));
    for i in 0..3 {
        steps.push(write("main", vec![ins("small", 1000 + i, rng.bytes(40))]));
    }
    steps.push(Step::DeleteBranch("b1".into()));
    for i in 0..6 {
        steps.push(write("main", vec![ins("small", 2000 + i, rng.bytes(40))]));
    }
    steps.push(Step::Sync);
    steps
}

/// Every cut of three generated 30-step workloads, each with every kind of damage.
fn exhaustive(label: &str, mix: DurabilityMix, runs: [(u64, usize, Durability); 3]) {
    let mut tallies = Vec::new();
    for (seed, page_size, durability) in runs {
        let run = generated(
            &format!("{label}/{seed}"),
            seed,
            shape(mix),
            30,
            page_size,
            durability,
        );
        tallies.push(sweep(&run, 6, 2, usize::MAX, seed * 1000));
    }
    assert_clean(tallies);
}

#[test]
fn crash_exhaustive_immediate() {
    let d = Durability::Immediate;
    exhaustive(
        "immediate",
        DurabilityMix::Immediate,
        [(1, 4096, d), (2, 4096, d), (3, 4096, d)],
    );
}

#[test]
fn crash_exhaustive_eventual() {
    let d = Durability::Eventual;
    exhaustive(
        "eventual",
        DurabilityMix::Eventual,
        [(11, 4096, d), (12, 4096, d), (13, 4096, d)],
    );
}

#[test]
fn crash_exhaustive_mixed() {
    let (i, e) = (Durability::Immediate, Durability::Eventual);
    exhaustive(
        "mixed",
        DurabilityMix::Mixed,
        [(21, 4096, i), (22, 8192, e), (23, 16384, i)],
    );
}

#[test]
fn crash_release_queue() {
    let mut tallies = Vec::new();
    for (seed, durability) in [(31, Durability::Eventual), (32, Durability::Immediate)] {
        let mut script = release_script(seed, durability).into_iter();
        let run = record(&format!("release/{seed}"), 4096, durability, |_| {
            script.next()
        });
        tallies.push(sweep(&run, 4, 2, 24, seed));
    }
    assert_clean(tallies);
}

/// Three streams made on another database: `r1` whole, `r2` since `r1` (a table dropped, one
/// created empty, overflow values), and `r2` damaged in its last record.
fn receive_streams() -> Vec<(String, Vec<u8>, Model, bool)> {
    let source = Database::options()
        .open_storage(Arc::new(MemStorage::new()))
        .unwrap();
    let mut rng = Rng(41);
    let tx = source.begin_write().unwrap();
    for i in 0..150u32 {
        let len = if i % 40 == 0 { 3000 } else { 40 };
        let mut t = tx.open_table("recv").unwrap();
        t.insert(format!("k{i:04}").as_bytes(), &rng.bytes(len))
            .unwrap();
    }
    tx.open_table("dropped")
        .unwrap()
        .insert(b"x", b"y")
        .unwrap();
    tx.commit().unwrap();
    source.create_snapshot("r1").unwrap();
    let mut tx = source.begin_write().unwrap();
    tx.delete_table("dropped").unwrap();
    tx.open_table("empty").unwrap();
    for i in (0..150u32).step_by(7) {
        tx.open_table("recv")
            .unwrap()
            .remove(format!("k{i:04}").as_bytes())
            .unwrap();
    }
    tx.open_table("recv")
        .unwrap()
        .insert(b"k9999", &[9; 2500])
        .unwrap();
    tx.commit().unwrap();
    source.create_snapshot("r2").unwrap();
    let model = |name: &str| {
        let rx = source.begin_read_at(name).unwrap();
        let mut m = Model::new();
        for table in rx.table_names().unwrap() {
            let entries = m.entry(table.clone()).or_default();
            for item in rx.open_table(&table).unwrap().iter().unwrap() {
                let (k, v) = item.unwrap();
                entries.insert(k.to_vec(), v.to_vec());
            }
        }
        m
    };
    let (mut full, mut incr) = (Vec::new(), Vec::new());
    source.send("r1", None, &mut full).unwrap();
    source.send("r2", Some("r1"), &mut incr).unwrap();
    let mut damaged = incr.clone();
    let at = damaged.len() - 10;
    damaged[at] ^= 1;
    vec![
        ("r1".into(), full, model("r1"), true),
        ("r2".into(), damaged, model("r2"), false),
        ("r2".into(), incr, model("r2"), true),
    ]
}

/// Receives into a live database, between writes: a full stream, a damaged incremental one
/// (refused after its records were applied to the hidden staging root), then the good one.
/// Every cut must recover a state of the model: no partial snapshot, nothing lost.
#[test]
fn crash_receive() {
    let mut tallies = Vec::new();
    for (seed, durability) in [(51, Durability::Immediate), (52, Durability::Eventual)] {
        let mut rng = Rng(seed);
        let mut steps = Vec::new();
        let ins = |i: u64, v| TableOp::Insert("local".into(), format!("l{i:03}").into_bytes(), v);
        for (name, stream, tables, ok) in receive_streams() {
            steps.push(write(
                "main",
                vec![ins(rng.below(50), rng.bytes(30))],
                durability,
            ));
            steps.push(Step::Receive {
                name,
                stream,
                tables,
                ok,
            });
        }
        steps.push(write("main", vec![ins(99, rng.bytes(30))], durability));
        steps.push(Step::Sync);
        let mut script = steps.into_iter();
        let run = record(&format!("receive/{seed}"), 4096, durability, |_| {
            script.next()
        });
        assert_eq!(run.kinds["receive"], 3);
        tallies.push(sweep(&run, 4, 2, 24, seed));
    }
    assert_clean(tallies);
}

/// Compacts a file that a snapshot, a branch and mass removals left with a long tail: pages
/// shared by several roots move once, the refcount tree is rebuilt, the free tail is cut.
/// Every cut of the I/O log must recover a state of the model with nothing lost, and no
/// recovered state may point past the end of the (possibly shorter) file.
#[test]
fn crash_compact() {
    let mut tallies = Vec::new();
    for (seed, durability) in [(61, Durability::Immediate), (62, Durability::Eventual)] {
        let mut rng = Rng(seed);
        let write = |branch: &str, ops| write(branch, ops, durability);
        let ins = |t: &str, i: u64, v: Vec<u8>| {
            TableOp::Insert(t.into(), format!("k{i:05}").into_bytes(), v)
        };
        let mut steps = Vec::new();
        for chunk in 0..3u64 {
            let ops = (0..150)
                .map(|i| ins("a", chunk * 150 + i, rng.bytes(120)))
                .collect();
            steps.push(write("main", ops));
        }
        steps.push(Step::Snapshot("s1".into()));
        steps.push(Step::Branch {
            name: "b1".into(),
            from: "main".into(),
        });
        let big = (0..6).map(|i| ins("big", i, rng.bytes(9000))).collect();
        steps.push(write("b1", big));
        let ops = (0..300)
            .map(|i| ins("a", 1000 + i, rng.bytes(120)))
            .collect();
        steps.push(write("main", ops));
        let ops = (0..430).map(|i| TableOp::Remove("a".into(), format!("k{:05}", i).into_bytes()));
        steps.push(write("main", ops.collect()));
        steps.push(Step::DeleteSnapshot("s1".into()));
        steps.push(Step::Compact);
        steps.push(write("main", vec![ins("a", 7, rng.bytes(30))]));
        steps.push(Step::Compact);
        steps.push(Step::Sync);
        let mut script = steps.into_iter();
        let run = record(&format!("compact/{seed}"), 4096, durability, |_| {
            script.next()
        });
        assert_eq!(run.kinds["compact"], 2);
        tallies.push(sweep(&run, 3, 2, 16, seed));
    }
    assert_clean(tallies);
}

/// A table of 3 MiB of overflow values is dropped; as the release queue frees it over the
/// next durable commits, each commit that leaves a free tail of 1 MiB or more (the default
/// threshold) cuts the file. Every cut of the I/O log, the truncations included, must recover
/// a state of the model, and no recovered meta may point past the end of the shorter file.
#[test]
fn crash_auto_shrink() {
    let mut tallies = Vec::new();
    for seed in [71u64, 72] {
        let mut rng = Rng(seed);
        let durability = Durability::Immediate;
        let ins = |t: &str, i: u64, v: Vec<u8>| {
            TableOp::Insert(t.into(), format!("k{i:05}").into_bytes(), v)
        };
        let mut steps = vec![write(
            "main",
            vec![ins("keep", 0, rng.bytes(50))],
            durability,
        )];
        for chunk in 0..4u64 {
            let ops = (0..25)
                .map(|i| ins("big", chunk * 25 + i, rng.bytes(30_000)))
                .collect();
            steps.push(write("main", ops, durability));
        }
        steps.push(write(
            "main",
            vec![TableOp::DeleteTable("big".into())],
            durability,
        ));
        for i in 1..6 {
            steps.push(write(
                "main",
                vec![ins("keep", i, rng.bytes(50))],
                durability,
            ));
        }
        let mut script = steps.into_iter();
        let run = record(&format!("auto-shrink/{seed}"), 4096, durability, |_| {
            script.next()
        });
        let lengths: Vec<u64> = (run.ops.iter())
            .filter_map(|op| match op {
                storage::Op::SetLen(len) => Some(*len),
                _ => None,
            })
            .collect();
        assert!(
            lengths.windows(2).any(|pair| pair[1] < pair[0]),
            "the file was never cut: {lengths:?}"
        );
        tallies.push(sweep(&run, 3, 2, 16, seed));
    }
    assert_clean(tallies);
}

/// Seeded random scenarios: random workloads, every cut, random damages.
#[test]
fn crash_random_scenarios() {
    let mut tallies = Vec::new();
    for seed in 100..108u64 {
        let mix = [
            DurabilityMix::Immediate,
            DurabilityMix::Eventual,
            DurabilityMix::Mixed,
        ][seed as usize % 3];
        let shape = Shape {
            key_space: 2000,
            max_ops: 120,
            big_pct: 12,
            ..shape(mix)
        };
        let run = generated(
            &format!("random/{seed}"),
            seed,
            shape,
            40,
            4096,
            if mix == DurabilityMix::Immediate {
                Durability::Immediate
            } else {
                Durability::Eventual
            },
        );
        tallies.push(sweep(&run, 0, 6, usize::MAX, seed));
    }
    assert_clean(tallies);
}

/// Crash, recover, go on, crash again. The first crash loses commits whose meta reached the
/// disk but whose pages were torn, so the slot the next commits write still holds a valid
/// meta of that dead timeline (with the same txn ids the new timeline will use). A second
/// crash must never bring it back: every image of the continued workload must recover a
/// state of the new timeline.
#[test]
fn crash_twice() {
    let mut tallies = Vec::new();
    for seed in [41u64, 42] {
        let gen1 = generated(
            &format!("twice/{seed}"),
            seed,
            shape(DurabilityMix::Eventual),
            24,
            4096,
            Durability::Eventual,
        );
        // Pick images that lost acknowledged (unsynced) commits, from torn pages.
        let mut picks: Vec<(usize, Vec<u8>, usize)> = Vec::new();
        let mut cuts = Cuts::new(gen1.initial.clone(), &gen1.ops);
        for cut in 0..=gen1.ops.len() {
            let window = cuts.at(cut);
            let acked = gen1
                .states
                .iter()
                .rposition(|st| st.end <= cut)
                .unwrap_or(0);
            for damage in window.exhaustive(0) {
                if damage.label != "one torn, rest kept" {
                    continue;
                }
                let image = window.image(&damage);
                let db = Database::options()
                    .durability(Durability::Eventual)
                    .open_storage(Arc::new(MemStorage::from_bytes(image.clone())))
                    .unwrap();
                let txn = db.begin_read().unwrap().txn_id();
                let idx = gen1.states.iter().position(|s| s.txn == txn).unwrap();
                if idx + 1 < acked && picks.last().is_none_or(|p| p.0 + 6 <= cut) {
                    picks.push((cut, image, idx));
                    break;
                }
            }
        }
        assert!(!picks.is_empty(), "no image lost a commit to a torn page");
        for (n, (cut, image, idx)) in picks.into_iter().take(6).enumerate() {
            let seed2 = seed * 100 + n as u64;
            let mut wl = Workload::new(seed2, shape(DurabilityMix::Eventual)).names_from(10_000);
            let mut left = 14;
            let mut gen2 = record_from(
                &format!("twice/{seed}/cut{cut}/state{idx}"),
                image,
                gen1.states[idx].world.clone(),
                4096,
                Durability::Eventual,
                |world| {
                    left = usize::checked_sub(left, 1)?;
                    Some(wl.next_step(world))
                },
            );
            gen2.dead = gen1.states[idx + 1..]
                .iter()
                .map(|s| (s.txn, s.world.clone()))
                .collect();
            tallies.push(sweep(&gen2, 4, 2, 40, seed2));
        }
    }
    assert_clean(tallies);
}

/// One put in its own transaction.
fn put(db: &Database, table: &str, key: &[u8], value: &[u8], durability: Durability) {
    let mut tx = db.begin_write().unwrap();
    tx.set_durability(durability);
    tx.open_table(table).unwrap().insert(key, value).unwrap();
    tx.commit().unwrap();
}

/// The scenario of the two lost-commit tests: commit 1 (table t, durable), commit 2 (table t,
/// Eventual) and commit 3 (table u, Eventual), each a put of `value`. Returns the fresh file's
/// bytes, the logged operations and the range of them that commit 2 issued.
fn three_commits(value: &[u8]) -> (Vec<u8>, Vec<Op>, std::ops::Range<usize>) {
    let initial = fresh_db_bytes(4096);
    let rec = Arc::new(Recording::new(initial.clone()));
    let db = Database::options()
        .durability(Durability::Eventual)
        .open_storage(rec.clone())
        .unwrap();
    put(&db, "t", b"a", value, Durability::Immediate); // txn 1, durable
                                                       // Placement hints live in memory from commit to commit; reopening here makes commit 2
                                                       // start from what the disk alone says, as the redo after a crash does, so that the redo
                                                       // writes the same pages.
    drop(db);
    let db = Database::options()
        .durability(Durability::Eventual)
        .open_storage(rec.clone())
        .unwrap();
    let before2 = rec.ops();
    put(&db, "t", b"b", value, Durability::Eventual); // txn 2
    let after2 = rec.ops();
    put(&db, "u", b"c", value, Durability::Eventual); // txn 3
    drop(db);
    (initial, rec.log(), before2..after2)
}

/// A commit lost in one crash must stay lost. Crash 1 loses a page of Eventual commit 2, so
/// recovery falls back from the valid meta of commit 3 to the durable commit 1, but that meta
/// stays in its slot. The recovered database redoes commit 2 (same bytes, same pages) and
/// crashes again before its meta lands: recovery must give commit 1 again, never the lost
/// commit 3 (whose missing page the redo has just rewritten).
#[test]
fn lost_commit_stays_lost_after_second_crash() {
    let (initial, ops1, commit2) = three_commits(b"v");
    let mut tried = 0;
    for lost in commit2 {
        if !matches!(&ops1[lost], Op::Write { offset, .. } if *offset >= 8192) {
            continue;
        }
        // Crash 1: one page write of commit 2 never reached the disk.
        let image1 = storage::image_without(&initial, &ops1, &[lost]);
        let db = Database::options()
            .durability(Durability::Eventual)
            .open_storage(Arc::new(MemStorage::from_bytes(image1.clone())))
            .unwrap();
        if db.begin_read().unwrap().txn_id() != 1 {
            continue; // commit 3 did not need that page
        }
        tried += 1;
        drop(db);
        // Generation 2: redo commit 2, crash before its meta lands.
        let rec2 = Arc::new(Recording::new(image1.clone()));
        let db = Database::options()
            .durability(Durability::Eventual)
            .open_storage(rec2.clone())
            .unwrap();
        put(&db, "t", b"b", b"v", Durability::Eventual);
        drop(db);
        let ops2 = rec2.log();
        let meta_write = ops2.iter().rposition(writes_a_meta).unwrap();
        let image2 = storage::image_without(&image1, &ops2, &[meta_write]);
        let db = Database::options()
            .open_storage(Arc::new(MemStorage::from_bytes(image2)))
            .unwrap();
        let rx = db.begin_read().unwrap();
        assert_eq!(
            (rx.txn_id(), rx.table_names().unwrap()),
            (1, vec!["t".to_string()]),
            "crash 2 brought back commit 3 (table u), lost in crash 1 \
             (crash 1 lost op {lost}: {})",
            op_name(&ops1[lost])
        );
    }
    assert!(tried > 0, "no lost page made crash 1 fall back to commit 1");
}

/// Whether `op` writes a meta: into a slot, or a meta page of the commit chain.
fn writes_a_meta(op: &Op) -> bool {
    matches!(op, Op::Write { offset, data } if storage::writes_a_meta(*offset, data))
}

/// The bytes that `op` writes to page `page` (with their offset), if it writes it.
fn page_bytes(op: &Op, page: u64, page_size: u64) -> Option<(u64, &[u8])> {
    let Op::Write { offset, data } = op else {
        return None;
    };
    let start = page * page_size;
    if start < *offset || start + page_size > offset + data.len() as u64 {
        return None;
    }
    let at = (start - offset) as usize;
    Some((start, &data[at..at + page_size as usize]))
}

/// The same as [`lost_commit_stays_lost_after_second_crash`] with torn pages: crash 1 lands
/// only the first sector (the header, with the birth txn) of one page of commit 2; the redo
/// after recovery writes that page again under a new txn id, and crash 2 lands only its
/// other sectors. The body of a leaf does not depend on the txn id, so the page is commit 2's
/// again, byte for byte, and the meta of the lost commit 3 verifies. Renumbering txn ids
/// cannot prevent this; the slot holding the rejected meta has to be made invalid (durably)
/// before the first commit after such a recovery writes pages.
#[test]
fn lost_commit_stays_lost_after_torn_pages() {
    const PAGE: u64 = 4096;
    let (initial, ops1, commit2) = three_commits(&[b'v'; 100]);
    let mut tried = 0;
    for i in commit2 {
        let Op::Write { offset, data } = &ops1[i] else {
            continue;
        };
        if *offset < 8192 {
            continue; // the meta
        }
        for page in offset / PAGE..(offset + data.len() as u64) / PAGE {
            // Crash 1: only the header sector of `page` landed.
            let mut image1 = initial.clone();
            for (j, op) in ops1.iter().enumerate() {
                storage::apply_op(&mut image1, op);
                if j == i {
                    let start = (page * PAGE) as usize;
                    let before = storage::image_without(&initial, &ops1[..i], &[]);
                    let old = before
                        .get(start + SECTOR..start + PAGE as usize)
                        .map_or(vec![0; PAGE as usize - SECTOR], <[u8]>::to_vec);
                    image1[start + SECTOR..start + PAGE as usize].copy_from_slice(&old);
                }
            }
            let db = Database::options()
                .durability(Durability::Eventual)
                .open_storage(Arc::new(MemStorage::from_bytes(image1.clone())))
                .unwrap();
            if db.begin_read().unwrap().txn_id() != 1 {
                continue; // commit 3 does not need that page
            }
            drop(db);
            // Generation 2 redoes commit 2; crash 2 lands only the body of `page`.
            let rec2 = Arc::new(Recording::new(image1.clone()));
            let db = Database::options()
                .durability(Durability::Eventual)
                .open_storage(rec2.clone())
                .unwrap();
            put(&db, "t", b"b", &[b'v'; 100], Durability::Eventual);
            drop(db);
            let log2 = rec2.log();
            let Some(at) = log2
                .iter()
                .position(|op| page_bytes(op, page, PAGE).is_some())
            else {
                continue;
            };
            let (start, bytes) = page_bytes(&log2[at], page, PAGE).expect("found above");
            tried += 1;
            // Whatever generation 2 synced before that write (recovery retiring the rejected
            // meta, a growth) is on the disk.
            let mut image2 = image1.clone();
            if let Some(last_sync) = log2[..at].iter().rposition(Op::is_sync) {
                for op in &log2[..last_sync] {
                    storage::apply_op(&mut image2, op);
                }
            }
            let s = start as usize;
            image2[s + SECTOR..s + PAGE as usize].copy_from_slice(&bytes[SECTOR..]);
            let db = Database::options()
                .open_storage(Arc::new(MemStorage::from_bytes(image2)))
                .unwrap();
            let rx = db.begin_read().unwrap();
            assert_eq!(
                (rx.txn_id(), rx.table_names().unwrap()),
                (1, vec!["t".to_string()]),
                "crash 2 brought back commit 3 (table u), lost in crash 1: page {page} is \
                 commit 2's header sector (crash 1) + the redo's other sectors (crash 2)"
            );
        }
    }
    assert!(tried > 0, "no torn page made crash 1 fall back to commit 1");
}
