//! Fault injection through the `Storage` seam. A workload runs on a storage that fails its
//! N-th I/O operation (write_at, set_len or sync), and N moves one operation at a time
//! across the whole workload, once failing a single time and once failing for good. A third
//! sweep fills the disk (ENOSPC on every write and length change) for a while, then frees
//! it again.
//!
//! After every step: the call that hit the fault returned an error (and only such calls
//! did); the published state equals the model; a new root was never visible to readers
//! before its sync returned. After a failed sync every write gets `Error::Poisoned`, issues
//! no I/O, and reads keep working. At the end `check()` passes on the in-memory state and on
//! the bytes reopened, and the reopened state is the last published one (or the commit whose
//! sync failed, whose bytes did reach the storage).

mod common;
#[path = "common/storage.rs"]
mod storage;

use shadowkv::internals::io::MemStorage;
use shadowkv::{Database, Durability, Error};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;
use storage::{
    apply, fresh_db_bytes, verify, DurabilityMix, FaultError, FaultMode, Faulty, OpKind, Shape,
    Step, TableOp, Workload, World,
};

static TOTAL_FAULTS: AtomicU64 = AtomicU64::new(0);

/// One fault scenario.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    seed: u64,
    steps: usize,
    durability: Durability,
    mix: DurabilityMix,
    mode: FaultMode,
    error: FaultError,
    /// For a full disk: lift the fault after this many failed steps.
    lift_after: Option<usize>,
    /// A failing write lands half its bytes first.
    partial: bool,
}

#[derive(Debug)]
struct Outcome {
    /// I/O operations the run issued.
    ops: u64,
    /// Faults that fired.
    faults: u64,
    poisoned: bool,
    /// How the reopened state compared with the published one.
    reopened: std::cmp::Ordering,
}

fn shape(mix: DurabilityMix) -> Shape {
    Shape {
        durability: mix,
        key_space: 150,
        max_ops: 20,
        big_pct: 10,
        sync_pct: if mix == DurabilityMix::Immediate {
            0
        } else {
            8
        },
        ..Shape::default()
    }
}

fn io_code(e: &Error) -> Option<i32> {
    match e {
        Error::Io(io) => io.raw_os_error(),
        _ => None,
    }
}

fn run(sc: Scenario, base: &[u8]) -> Outcome {
    let ctx = format!("{sc:?}");
    let inner = Arc::new(MemStorage::from_bytes(base.to_vec()));
    let faulty = Arc::new(Faulty::new(inner.clone(), sc.mode, sc.error));
    faulty.set_partial(sc.partial);
    let db = Arc::new(
        Database::options()
            .durability(sc.durability)
            .open_storage(faulty.clone())
            .unwrap(),
    );
    // Readers must never see a root before its sync returned: at every sync, the state
    // readers see is the one published before the step began.
    let visible_before = Arc::new(AtomicU64::new(db.begin_read().unwrap().txn_id()));
    let violations: Arc<Mutex<Vec<String>>> = Arc::default();
    {
        let weak: Weak<Database> = Arc::downgrade(&db);
        let visible_before = visible_before.clone();
        let violations = violations.clone();
        faulty.set_hook(Box::new(move |kind| {
            if kind != OpKind::Sync {
                return;
            }
            if let Some(db) = weak.upgrade() {
                let seen = db.begin_read().unwrap().txn_id();
                let want = visible_before.load(Ordering::SeqCst);
                if seen != want {
                    violations.lock().unwrap().push(format!(
                        "txn {seen} visible to readers before its sync (published before: {want})"
                    ));
                }
            }
        }));
    }
    let mut wl = Workload::new(sc.seed, shape(sc.mix));
    let mut world = World::default();
    let mut poisoned = false;
    // The state of the commit whose final sync failed: its bytes reached the storage.
    let mut unsynced: Option<World> = None;
    let mut failed_steps = 0;
    // The last state the engine made durable (a commit or sync that ended in a good sync).
    let mut durable = (db.begin_read().unwrap().txn_id(), World::default());
    for i in 0..sc.steps {
        let step = wl.next_step(&world);
        let ops_before = faulty.ops();
        let faults_before = faulty.failures();
        let syncs_before = faulty.good_syncs();
        let txn_before = db.begin_read().unwrap().txn_id();
        let world_before = world.clone();
        visible_before.store(txn_before, Ordering::SeqCst);
        let result = apply(&db, &world, &step);
        // A good sync inside the step (the fsync that makes file growth durable) made the
        // state before the step durable, whatever the step's own outcome.
        if faulty.good_syncs() > syncs_before {
            durable = (txn_before, world_before);
        }
        let fired = faulty.failures() > faults_before;
        let here = || format!("{ctx} step {i} {}", step.summary());
        match result {
            Ok(next) => {
                assert!(
                    !poisoned,
                    "{}: a write succeeded on a poisoned database",
                    here()
                );
                assert!(!fired, "{}: succeeded although its I/O failed", here());
                world = next;
                if faulty.ops() > ops_before && faulty.last_op() == Some((OpKind::Sync, true)) {
                    durable = (db.begin_read().unwrap().txn_id(), world.clone());
                }
            }
            Err(Error::Poisoned) => {
                assert!(poisoned, "{}: Poisoned without a failed sync", here());
                assert_eq!(
                    faulty.ops(),
                    ops_before,
                    "{}: a poisoned database issued I/O",
                    here()
                );
            }
            Err(e) => {
                assert!(!poisoned, "{}: {e} instead of Poisoned", here());
                assert!(fired, "{}: failed without a fault: {e}", here());
                assert_eq!(
                    io_code(&e),
                    Some(sc.error.code()),
                    "{}: the error is not the injected one: {e}",
                    here()
                );
                assert_eq!(
                    faulty.failures(),
                    faults_before + 1,
                    "{}: kept issuing I/O after a failure",
                    here()
                );
                failed_steps += 1;
                // A failed sync poisons (the kernel may have dropped the pages), and so does
                // a failed write of a meta, into a slot or with its run of pages (its bytes
                // are unknown); a failed write of pages alone or length change does not.
                let meta_write = matches!(faulty.last_failed(), Some((OpKind::Write, _)))
                    && faulty.last_failed_wrote_meta();
                if matches!(faulty.last_failed(), Some((OpKind::Sync, _))) || meta_write {
                    poisoned = true;
                    // The failed commit's bytes reached the storage (a short write of a meta
                    // page may land the whole meta); a reopen may find it.
                    unsynced = Some(world.after(&step));
                }
                // Nothing of the failed step is visible; the database still checks.
                verify(&db, &world).unwrap_or_else(|e| panic!("{}: after the fault: {e}", here()));
                db.check()
                    .unwrap_or_else(|e| panic!("{}: check() after the fault: {e}", here()));
            }
        }
        if poisoned {
            assert!(
                matches!(db.begin_write(), Err(Error::Poisoned)),
                "{}",
                here()
            );
            assert!(matches!(db.sync(), Err(Error::Poisoned)), "{}", here());
            assert!(
                matches!(db.create_snapshot("x-poisoned"), Err(Error::Poisoned)),
                "{}",
                here()
            );
            // Reads still work.
            verify(&db, &world).unwrap_or_else(|e| panic!("{}: reads when poisoned: {e}", here()));
        }
        if sc.lift_after.is_some_and(|n| failed_steps >= n) {
            faulty.lift();
        }
        let v = violations.lock().unwrap();
        assert!(v.is_empty(), "{}: {}", here(), v.join("; "));
    }
    faulty.clear_hook();
    if sc.lift_after.is_some() && faulty.failures() > 0 && !poisoned {
        // Once the disk has room again the database works: one more commit must succeed.
        faulty.lift();
        let tx = db.begin_write().unwrap();
        tx.open_table("after-full")
            .unwrap()
            .insert(b"k", b"v")
            .unwrap();
        tx.commit()
            .unwrap_or_else(|e| panic!("{ctx}: commit after the disk was freed: {e}"));
        world
            .roots
            .get_mut("main")
            .unwrap()
            .tables
            .entry("after-full".into())
            .or_default()
            .insert(b"k".to_vec(), b"v".to_vec());
    }
    verify(&db, &world).unwrap_or_else(|e| panic!("{ctx}: final state: {e}"));
    db.check()
        .unwrap_or_else(|e| panic!("{ctx}: final check(): {e}"));
    let mut outcome = Outcome {
        ops: faulty.ops(),
        faults: faulty.failures(),
        poisoned,
        reopened: std::cmp::Ordering::Equal,
    };
    let published = db.begin_read().unwrap().txn_id();
    drop(db);
    // Reopen what the storage holds (no power cut: every write that returned is there).
    let reopened = Database::options()
        .open_storage(Arc::new(MemStorage::from_bytes(inner.to_bytes())))
        .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
    reopened
        .check()
        .unwrap_or_else(|e| panic!("{ctx}: check() after reopen: {e}"));
    let txn = reopened.begin_read().unwrap().txn_id();
    outcome.reopened = txn.cmp(&published);
    if txn == published {
        verify(&reopened, &world).unwrap_or_else(|e| panic!("{ctx}: reopened: {e}"));
    } else if txn < published {
        // A short meta write destroyed the slot of the newest (Eventual) commits: only the
        // durable state may come back.
        assert!(
            sc.partial,
            "{ctx}: reopened txn {txn}, published {published}"
        );
        assert_eq!(
            txn, durable.0,
            "{ctx}: reopened neither the published nor the durable state"
        );
        verify(&reopened, &durable.1)
            .unwrap_or_else(|e| panic!("{ctx}: reopened the durable state: {e}"));
    } else {
        assert!(
            txn > published,
            "{ctx}: reopened txn {txn} < published {published}"
        );
        let model = unsynced
            .as_ref()
            .unwrap_or_else(|| panic!("{ctx}: reopened txn {txn}, published {published}"));
        verify(&reopened, model)
            .unwrap_or_else(|e| panic!("{ctx}: reopened the unsynced commit: {e}"));
    }
    // The reopened database takes new commits.
    let tx = reopened.begin_write().unwrap();
    tx.open_table("after-reopen")
        .unwrap()
        .insert(b"k", &[1u8; 3000])
        .unwrap();
    tx.commit()
        .unwrap_or_else(|e| panic!("{ctx}: commit after reopen: {e}"));
    reopened
        .check()
        .unwrap_or_else(|e| panic!("{ctx}: check() after reopen and commit: {e}"));
    outcome
}

/// Moves the failure point across the whole workload: each operation fails once, and fails
/// for good from there; then the disk fills up from each operation on and frees again.
fn sweep(seed: u64, steps: usize, durability: Durability, mix: DurabilityMix) -> u64 {
    let start = Instant::now();
    let base = fresh_db_bytes(4096);
    let plain = Scenario {
        seed,
        steps,
        durability,
        mix,
        mode: FaultMode::Off,
        error: FaultError::Eio,
        lift_after: None,
        partial: false,
    };
    let total = run(plain, &base).ops;
    let mut faults = 0;
    let mut runs = 0;
    let mut poisoned = 0;
    let mut reopened = [0u64; 3];
    for n in 0..total {
        let scenarios = [
            Scenario {
                mode: FaultMode::Once(n),
                error: if n % 2 == 0 {
                    FaultError::Eio
                } else {
                    FaultError::NoSpace
                },
                partial: n % 4 >= 2,
                ..plain
            },
            Scenario {
                mode: FaultMode::From(n),
                partial: n % 4 < 2,
                ..plain
            },
            Scenario {
                mode: FaultMode::WritesFrom(n),
                error: FaultError::NoSpace,
                lift_after: Some(1 + (n % 3) as usize),
                ..plain
            },
        ];
        for sc in scenarios {
            let out = run(sc, &base);
            // The fault fires if the run reaches op n (the engine need not issue the same ops
            // on every run); a full disk from op n on may meet only syncs.
            assert!(
                out.faults > 0 || out.ops <= n || matches!(sc.mode, FaultMode::WritesFrom(_)),
                "{sc:?}: the fault never fired ({} ops)",
                out.ops
            );
            faults += out.faults;
            runs += 1;
            poisoned += out.poisoned as u64;
            reopened[(out.reopened as i8 + 1) as usize] += 1;
        }
    }
    let all = TOTAL_FAULTS.fetch_add(faults, Ordering::SeqCst) + faults;
    eprintln!(
        "seed {seed} {durability:?}/{mix:?}: {total} I/O ops, {runs} runs, {faults} faults injected, \
         {poisoned} runs poisoned; reopened older/same/newer than published: {reopened:?}; \
         {:.1?}; {all} faults so far",
        start.elapsed()
    );
    faults
}

#[test]
fn faults_immediate() {
    for seed in [1, 4] {
        sweep(seed, 30, Durability::Immediate, DurabilityMix::Immediate);
    }
}

#[test]
fn faults_eventual() {
    for seed in [2, 5] {
        sweep(seed, 30, Durability::Eventual, DurabilityMix::Eventual);
    }
}

#[test]
fn faults_mixed() {
    for seed in [3, 6] {
        sweep(seed, 30, Durability::Eventual, DurabilityMix::Mixed);
    }
}

/// Opening a file whose newest commits were never synced fsyncs them; when that fsync fails
/// the open fails cleanly, and a later open (the fault gone) recovers the same state.
#[test]
fn failed_sync_at_open() {
    let inner = Arc::new(MemStorage::from_bytes(fresh_db_bytes(4096)));
    let db = Database::options()
        .durability(Durability::Eventual)
        .open_storage(inner.clone())
        .unwrap();
    let mut world = World::default();
    let mut wl = Workload::new(7, shape(DurabilityMix::Eventual));
    for _ in 0..12 {
        let step = wl.next_step(&world);
        if matches!(step, storage::Step::Sync) {
            continue;
        }
        world = apply(&db, &world, &step).unwrap();
    }
    let tx = db.begin_write().unwrap();
    tx.open_table("last").unwrap().insert(b"k", b"v").unwrap();
    tx.commit().unwrap(); // Eventual: not synced
    world = world.after(&storage::Step::Write {
        branch: "main".into(),
        ops: vec![storage::TableOp::Insert(
            "last".into(),
            b"k".to_vec(),
            b"v".to_vec(),
        )],
        snapshot: None,
        durability: Durability::Eventual,
        abort: false,
    });
    let txn = db.begin_read().unwrap().txn_id();
    drop(db);
    let bytes = inner.to_bytes();
    for error in [FaultError::Eio, FaultError::NoSpace] {
        let faulty = Arc::new(Faulty::new(
            Arc::new(MemStorage::from_bytes(bytes.clone())),
            FaultMode::Once(0),
            error,
        ));
        match Database::options().open_storage(faulty.clone()) {
            Err(e) => assert_eq!(io_code(&e), Some(error.code()), "{e}"),
            Ok(_) => panic!("open succeeded although its sync failed"),
        }
        assert_eq!(faulty.failures(), 1);
        TOTAL_FAULTS.fetch_add(faulty.failures(), Ordering::SeqCst);
        let db = Database::options().open_storage(faulty).unwrap();
        assert_eq!(db.begin_read().unwrap().txn_id(), txn);
        verify(&db, &world).unwrap();
        db.check().unwrap();
    }
}

/// A receive whose N-th I/O fails, once or for good, for every N of the receive (a stream
/// of several chunks would take too long here; this one is staged, applied and published in
/// three commits). The call fails with the injected error or succeeds whole; what a user sees
/// is the state before or after it, never a partial snapshot; `check()` passes; and the
/// reopened bytes hold the state before it or after it.
#[test]
fn receive_under_faults() {
    let source = Database::options()
        .open_storage(Arc::new(MemStorage::new()))
        .unwrap();
    let tx = source.begin_write().unwrap();
    for i in 0..400u32 {
        let value = vec![i as u8; if i % 50 == 0 { 3000 } else { 60 }];
        tx.open_table("t")
            .unwrap()
            .insert(&i.to_be_bytes(), &value)
            .unwrap();
    }
    tx.open_table("empty").unwrap();
    tx.commit().unwrap();
    source.create_snapshot("s").unwrap();
    let mut stream = Vec::new();
    source.send("s", None, &mut stream).unwrap();
    let expected = {
        let mut world = World::default();
        let rx = source.begin_read_at("s").unwrap();
        let mut tables = common::Model::new();
        for name in rx.table_names().unwrap() {
            let entries = tables.entry(name.clone()).or_default();
            for item in rx.open_table(&name).unwrap().iter().unwrap() {
                let (k, v) = item.unwrap();
                entries.insert(k.to_vec(), v.to_vec());
            }
        }
        world.roots.insert(
            "s".into(),
            storage::Root {
                snapshot: true,
                tables,
            },
        );
        world
    };
    let before = World::default();
    let base = fresh_db_bytes(4096);
    let ops = count_ops(&base, |db| db.receive(&stream[..]).map(drop));
    assert!(
        ops >= 6,
        "a receive of three commits issued {ops} I/O operations"
    );
    eprintln!("receive_under_faults: {ops} operations, each failed once and for good");
    under_each_fault(
        &base,
        ops,
        |db| db.receive(&stream[..]).map(drop),
        |db, ok, ctx| {
            let now = if ok { &expected } else { &before };
            verify(db, now).unwrap_or_else(|e| panic!("{ctx}: published state: {e}"));
        },
        |reopened, ctx| {
            if verify(reopened, &before).is_err() {
                verify(reopened, &expected)
                    .unwrap_or_else(|e| panic!("{ctx}: reopened neither before nor after: {e}"));
            }
        },
    );
}

/// A compaction of a file with a snapshot, a branch and a long tail, with each of its I/O
/// operations failed once and from then on: an error is an I/O error or `Poisoned`, the
/// published state and the reopened file hold exactly the same contents (a compaction changes
/// none), and both pass `check()`; a failed truncate or fsync loses nothing.
#[test]
fn compact_under_faults() {
    let (base, world) = {
        let inner = Arc::new(MemStorage::new());
        let db = Database::options().open_storage(inner.clone()).unwrap();
        let mut world = World::default();
        let ins = |i: u64, len: usize| {
            TableOp::Insert(
                "t".into(),
                format!("k{i:05}").into_bytes(),
                vec![i as u8; len],
            )
        };
        let write = |branch: &str, ops: Vec<TableOp>| Step::Write {
            branch: branch.into(),
            ops,
            snapshot: None,
            durability: Durability::Immediate,
            abort: false,
        };
        let steps = [
            write("main", (0..600).map(|i| ins(i, 100)).collect()),
            Step::Snapshot("s".into()),
            Step::Branch {
                name: "b".into(),
                from: "main".into(),
            },
            write("b", (0..8).map(|i| ins(i, 5000)).collect()),
            write("main", (600..900).map(|i| ins(i, 100)).collect()),
            write(
                "main",
                (0..900)
                    .filter(|i| i % 3 != 0)
                    .map(|i| TableOp::Remove("t".into(), format!("k{i:05}").into_bytes()))
                    .collect(),
            ),
        ];
        for step in &steps {
            world = apply(&db, &world, step).unwrap();
        }
        drop(db);
        (inner.to_bytes(), world)
    };
    let ops = count_ops(&base, |db| {
        let report = db.compact()?;
        assert!(report.pages_moved > 0, "{report:?}");
        Ok(())
    });
    eprintln!("compact_under_faults: {ops} operations, each failed once and for good");
    let same = |db: &Database, ctx: &str| {
        verify(db, &world).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    };
    under_each_fault(
        &base,
        ops,
        |db| db.compact().map(drop),
        |db, _, ctx| same(db, ctx),
        same,
    );
}

/// The I/O operations `act` issues on a database opened on a copy of `base`.
fn count_ops(base: &[u8], act: impl Fn(&Database) -> shadowkv::Result<()>) -> u64 {
    let faulty = Arc::new(Faulty::new(
        Arc::new(MemStorage::from_bytes(base.to_vec())),
        FaultMode::Off,
        FaultError::Eio,
    ));
    let db = Database::options().open_storage(faulty.clone()).unwrap();
    let start = faulty.ops();
    act(&db).unwrap();
    faulty.ops() - start
}

/// Runs `act` on a database opened on a copy of `base` once per I/O operation it issues,
/// with that operation failing once, and again with it failing from then on. An error must
/// be an I/O error or `Poisoned`; `published(db, ok, ctx)` checks what readers see, then the
/// database must pass `check()`, and so must the file reopened from what storage holds,
/// which goes to `reopened(db, ctx)`.
fn under_each_fault(
    base: &[u8],
    ops: u64,
    act: impl Fn(&Database) -> shadowkv::Result<()>,
    published: impl Fn(&Database, bool, &str),
    reopened: impl Fn(&Database, &str),
) {
    for n in 0..ops {
        for mode in [FaultMode::Once(n), FaultMode::From(n)] {
            let inner = Arc::new(MemStorage::from_bytes(base.to_vec()));
            let faulty = Arc::new(Faulty::new(inner.clone(), FaultMode::Off, FaultError::Eio));
            let db = Database::options().open_storage(faulty.clone()).unwrap();
            faulty.set_mode(match mode {
                FaultMode::Once(k) => FaultMode::Once(faulty.ops() + k),
                FaultMode::From(k) => FaultMode::From(faulty.ops() + k),
                other => other,
            });
            let ctx = format!("{mode:?} of {ops}");
            let result = act(&db);
            if let Err(e) = &result {
                assert!(
                    io_code(e) == Some(5) || matches!(e, Error::Poisoned),
                    "{ctx}: {e}"
                );
            }
            published(&db, result.is_ok(), &format!("{ctx}: published state"));
            db.check().unwrap_or_else(|e| panic!("{ctx}: check(): {e}"));
            TOTAL_FAULTS.fetch_add(faulty.failures(), Ordering::SeqCst);
            drop(db);
            let again = Database::options()
                .open_storage(Arc::new(MemStorage::from_bytes(inner.to_bytes())))
                .unwrap_or_else(|e| panic!("{ctx}: reopen: {e}"));
            again
                .check()
                .unwrap_or_else(|e| panic!("{ctx}: check() after reopen: {e}"));
            reopened(&again, &format!("{ctx}: reopened"));
        }
    }
}
