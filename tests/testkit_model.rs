//! The testkit model as a property test: random operation sequences over the whole public
//! API (tables, snapshots, branches, restore, deletes, reopen, crash) applied to a database
//! and to `BTreeMap`s side by side, with every result, every expected error and `check()`
//! compared. Sequences are decoded from random bytes with `arbitrary`, the way the `ops` fuzz
//! target decodes them, so a failing case here replays under the fuzzer and vice versa.

use proptest::prelude::*;
use shadowkv::testkit::ops::RangeSpec;
use shadowkv::testkit::{
    run, run_with, BoundSpec, Config, End, Key, Name, Op, ReadOp, TableName, TxnOp, Value,
};
use shadowkv::Durability;

fn decode(bytes: &[u8]) -> Vec<Op> {
    shadowkv::testkit::ops_from_bytes(bytes)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_ops_match_the_model(
        config in any::<u8>(),
        bytes in proptest::collection::vec(any::<u8>(), 256..6000),
    ) {
        let ops = decode(&bytes);
        let config = Config::from_byte(config);
        if let Err(e) = run_with(config, &ops) {
            panic!("{config:?}: {e}\n{} ops", ops.len());
        }
    }
}

fn k(n: u8) -> Key {
    Key(n)
}

fn v(size: u8, fill: u8) -> Value {
    Value { size, fill }
}

const T1: TableName = TableName(0);
const T2: TableName = TableName(1);
const MAIN: Name = Name(0);
const R1: Name = Name(1);
const R2: Name = Name(2);

fn write(branch: Option<Name>, ops: Vec<TxnOp>, end: End) -> Op {
    Op::Write {
        branch,
        pin: true,
        ops,
        end,
    }
}

/// A hand-written sequence through every operation, including every expected error.
#[test]
fn scripted_tour_matches_the_model() {
    let all = RangeSpec {
        lo: BoundSpec::Unbounded,
        hi: BoundSpec::Unbounded,
        pattern: 0b1010_0110,
    };
    let ops = vec![
        write(
            None,
            vec![
                TxnOp::InsertMany(T1, k(0), 200, v(120, 1)),
                TxnOp::Insert(T2, k(248), v(0, 0)),
                TxnOp::Insert(T2, k(249), v(255, 3)),
                TxnOp::Insert(T2, k(250), v(1, 1)),
                TxnOp::Insert(T2, k(245), v(230, 9)),
                TxnOp::Range(T1, all),
                TxnOp::CreateSnapshot(R1),
                TxnOp::CreateSnapshot(R1),
                TxnOp::CreateSnapshot(MAIN),
                TxnOp::CreateSnapshot(Name(255)),
                TxnOp::TableNames,
            ],
            End::Commit,
        ),
        Op::CreateBranch(R2, R1),
        Op::CreateBranch(R2, R1),
        Op::CreateBranch(Name(3), Name(254)),
        write(Some(R1), vec![TxnOp::Len(T1)], End::Commit),
        write(
            Some(R2),
            vec![
                TxnOp::RemoveMany(T1, k(10), 150),
                TxnOp::DeleteTable(T2),
                TxnOp::DeleteTable(T2),
                TxnOp::Get(T1, k(5)),
                TxnOp::Get(T1, k(50)),
            ],
            End::CommitEventual,
        ),
        Op::Read {
            root: Some(R2),
            ops: vec![
                ReadOp::Get(T2, k(1)),
                ReadOp::Get(TableName(255), k(1)),
                ReadOp::Range(
                    T1,
                    RangeSpec {
                        lo: BoundSpec::Excluded(k(100)),
                        hi: BoundSpec::Included(k(20)),
                        pattern: 0,
                    },
                ),
                ReadOp::TableNames,
            ],
        },
        Op::Crash,
        Op::Restore(MAIN, R2),
        Op::Restore(R1, MAIN),
        Op::Restore(R2, Name(3)),
        Op::DeleteBranch(R1),
        Op::DeleteSnapshot(R2),
        Op::DeleteBranch(MAIN),
        Op::DeleteSnapshot(R1),
        Op::List,
        Op::Reopen,
        write(
            None,
            vec![TxnOp::InsertMany(T1, k(0), 255, v(250, 2))],
            End::Abort,
        ),
        write(
            None,
            vec![TxnOp::InsertMany(T1, k(0), 255, v(200, 2))],
            End::Crash,
        ),
        Op::DeleteBranch(R2),
        Op::Sync,
        Op::Check,
    ];
    run(&ops).unwrap();
    run_with(
        Config {
            page_size: 8192,
            verify_reads: false,
            durability: Durability::Eventual,
            ..Config::default()
        },
        &ops,
    )
    .unwrap();
}

/// Many snapshots and branches sharing big trees, then all of them deleted: the release of
/// shared pages over several commits must leave an exact accounting.
#[test]
fn shared_trees_released_match_the_model() {
    let mut ops = vec![write(
        None,
        vec![
            TxnOp::InsertMany(T1, k(0), 240, v(200, 1)),
            TxnOp::InsertMany(T2, k(0), 8, v(255, 1)),
        ],
        End::Commit,
    )];
    for round in 0..6u8 {
        ops.push(Op::CreateSnapshot(Name(round % 4)));
        ops.push(Op::CreateBranch(Name(2), Name(1)));
        ops.push(write(
            Some(Name(2)),
            vec![TxnOp::InsertMany(T1, k(round * 30), 40, v(180, round))],
            End::Commit,
        ));
        ops.push(write(
            None,
            vec![
                TxnOp::RemoveMany(T1, k(round * 20), 30),
                TxnOp::Insert(T2, k(round), v(254, round)),
            ],
            End::CommitEventual,
        ));
        ops.push(Op::Check);
        ops.push(Op::DeleteBranch(Name(2)));
        ops.push(Op::DeleteSnapshot(Name(round % 4)));
        ops.push(Op::DeleteSnapshot(Name(1)));
        if round % 2 == 1 {
            ops.push(Op::Crash);
        }
    }
    run(&ops).unwrap();
}

/// The comparison is not vacuous: a model that differs from the database by one value, one
/// table or one snapshot is reported.
#[test]
fn compare_reports_a_wrong_model() {
    use shadowkv::internals::io::MemStorage;
    use shadowkv::testkit::{compare, Model};
    use std::sync::Arc;
    let db = shadowkv::Database::options()
        .open_storage(Arc::new(MemStorage::new()))
        .unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table("t1").unwrap().insert(b"k", b"v").unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s").unwrap();
    let mut model = Model::new();
    let mut tables = shadowkv::testkit::Tables::new();
    Arc::make_mut(tables.entry("t1".into()).or_default())
        .insert(b"k".to_vec().into(), b"v"[..].into());
    model.commit("main", tables, &[]);
    model.create_snapshot("s").unwrap();
    compare(&db, &model).unwrap();
    let mut wrong = model.clone();
    wrong
        .roots
        .get_mut("s")
        .unwrap()
        .tables
        .get_mut("t1")
        .map(Arc::make_mut)
        .unwrap()
        .insert(b"k".to_vec().into(), b"w"[..].into());
    assert!(compare(&db, &wrong).is_err());
    let mut wrong = model.clone();
    wrong
        .roots
        .get_mut("main")
        .unwrap()
        .tables
        .insert("t2".into(), Default::default());
    assert!(compare(&db, &wrong).is_err());
    let mut wrong = model.clone();
    wrong
        .delete("s", shadowkv::testkit::Kind::Snapshot)
        .unwrap();
    assert!(compare(&db, &wrong).is_err());
}

/// Diffs, streams and backups through the runner, each checked against the model: streams of
/// snapshots received by a replica whole and incrementally (with the refusals a missing base,
/// a name in use, a branch or a missing snapshot get), diffs between every pair of views,
/// backups before and after a crash.
#[test]
fn scripted_streams_diffs_and_backups_match_the_model() {
    let r3 = Name(3);
    let mut ops = vec![
        write(
            None,
            vec![
                TxnOp::InsertMany(T1, k(0), 200, v(120, 1)),
                TxnOp::Insert(T2, k(3), v(255, 7)),
            ],
            End::Commit,
        ),
        Op::CreateSnapshot(R1),
        Op::Send {
            snapshot: R2,
            base: None,
        },
        Op::Send {
            snapshot: MAIN,
            base: None,
        },
        Op::Send {
            snapshot: R1,
            base: Some(R2),
        },
        write(
            None,
            vec![TxnOp::RemoveMany(T1, k(20), 30), TxnOp::DeleteTable(T2)],
            End::Commit,
        ),
        Op::CreateSnapshot(R2),
        Op::Send {
            snapshot: R2,
            base: Some(R1),
        },
        Op::Send {
            snapshot: R1,
            base: None,
        },
        Op::Send {
            snapshot: R2,
            base: Some(R1),
        },
        Op::Send {
            snapshot: R1,
            base: None,
        },
        Op::Backup,
        Op::CreateBranch(r3, R1),
        write(
            Some(r3),
            vec![TxnOp::Insert(T2, k(9), v(3, 3))],
            End::Commit,
        ),
        Op::Restore(MAIN, r3),
        Op::Crash,
        Op::Backup,
        Op::DeleteSnapshot(R1),
        Op::CreateSnapshot(R1),
        Op::Send {
            snapshot: R1,
            base: Some(R2),
        },
    ];
    for old in [None, Some(R1), Some(R2), Some(r3)] {
        for new in [None, Some(R1), Some(R2), Some(r3)] {
            ops.push(Op::Diff(old, new));
        }
    }
    ops.push(Op::Check);
    run(&ops).unwrap();
    run_with(
        Config {
            page_size: 8192,
            verify_reads: true,
            durability: Durability::Eventual,
            ..Config::default()
        },
        &ops,
    )
    .unwrap();
}

/// `compact()` between writes, snapshots, branches, deletes, reopens and crashes, with and
/// without a reader held across it: after each, the contents equal the model's and `check()`
/// passes (the runner's `Op::Compact`); the last compactions find a file already tight.
#[test]
fn scripted_compactions_match_the_model() {
    let r3 = Name(3);
    let mut ops = vec![
        write(
            None,
            vec![
                TxnOp::InsertMany(T1, k(0), 240, v(120, 1)),
                TxnOp::InsertMany(T2, k(0), 40, v(254, 2)),
            ],
            End::Commit,
        ),
        Op::Compact { pin: false },
        Op::CreateSnapshot(R1),
        Op::CreateBranch(R2, MAIN),
        write(
            Some(R2),
            vec![
                TxnOp::RemoveMany(T1, k(0), 200),
                TxnOp::Insert(T2, k(7), v(3, 3)),
            ],
            End::Commit,
        ),
        write(None, vec![TxnOp::RemoveMany(T1, k(30), 180)], End::Commit),
        Op::Compact { pin: true },
        Op::Check,
        Op::DeleteSnapshot(R1),
        Op::Compact { pin: false },
        Op::Reopen,
        Op::CreateBranch(r3, R2),
        write(Some(r3), vec![TxnOp::DeleteTable(T2)], End::Commit),
        Op::Restore(MAIN, r3),
        Op::Compact { pin: true },
        Op::Crash,
        Op::Compact { pin: false },
        Op::DeleteBranch(R2),
        write(
            None,
            vec![TxnOp::InsertMany(T1, k(100), 100, v(60, 4))],
            End::Commit,
        ),
        Op::Compact { pin: false },
        Op::Compact { pin: false },
        Op::Diff(None, Some(r3)),
        Op::Backup,
        Op::Check,
    ];
    run(&ops).unwrap();
    ops.push(Op::Reopen);
    ops.push(Op::Check);
    for page_size in [4096, 16384] {
        let config = Config {
            page_size,
            verify_reads: true,
            durability: Durability::Eventual,
            ..Config::default()
        };
        run_with(config, &ops).unwrap();
    }
}

/// The table conveniences (`contains_key`, `first`/`last`, `pop_first`/`pop_last`,
/// `replace`, `remove_range`, `retain`, `extract_if`) against the model, on a table with
/// overflow values, a snapshot sharing its pages, and keys over the limit.
#[test]
fn scripted_table_conveniences_match_the_model() {
    use shadowkv::testkit::ops::MoreOp;
    let more = |op| TxnOp::More(T1, op);
    let spec = |lo: u8, hi: u8| RangeSpec {
        lo: BoundSpec::Included(k(lo)),
        hi: BoundSpec::Excluded(k(hi)),
        pattern: 0b1010,
    };
    let ops = vec![
        write(
            None,
            vec![
                more(MoreOp::Ends),
                more(MoreOp::Pop(false)),
                TxnOp::InsertMany(T1, k(0), 200, v(120, 1)),
                TxnOp::Insert(T1, k(7), v(254, 2)),
                more(MoreOp::ContainsKey(k(7))),
                more(MoreOp::ContainsKey(k(239))),
                more(MoreOp::Ends),
                more(MoreOp::Replace(k(7), v(3, 3))),
                more(MoreOp::Replace(k(230), v(3, 4))),
                more(MoreOp::Replace(k(250), v(3, 4))),
            ],
            End::Commit,
        ),
        Op::CreateSnapshot(R1),
        write(
            None,
            vec![
                more(MoreOp::Pop(false)),
                more(MoreOp::Pop(true)),
                more(MoreOp::RemoveRange(spec(20, 60))),
                more(MoreOp::Retain {
                    n: 1,
                    extract: false,
                }),
                more(MoreOp::Retain {
                    n: 2,
                    extract: true,
                }),
                more(MoreOp::Ends),
            ],
            End::Commit,
        ),
        Op::Read {
            root: Some(R1),
            ops: vec![ReadOp::Ends(T1, k(7)), ReadOp::Ends(T2, k(1))],
        },
        Op::Read {
            root: None,
            ops: vec![ReadOp::Ends(T1, k(7)), ReadOp::Ends(T1, k(21))],
        },
        Op::Check,
        Op::Reopen,
        Op::Check,
    ];
    run(&ops).unwrap();
}

/// `Op::ReadOnly`: after durable and Eventual commits, a snapshot and a branch, the bytes
/// opened read-only (as they are, and as a crash copy) equal the model, refuse writes and
/// stay unchanged; writing goes on afterwards.
#[test]
fn scripted_read_only_opens_match_the_model() {
    let ops = vec![
        write(
            None,
            vec![TxnOp::InsertMany(T1, k(0), 120, v(100, 1))],
            End::Commit,
        ),
        Op::CreateSnapshot(R1),
        Op::CreateBranch(R2, R1),
        write(
            Some(R2),
            vec![TxnOp::Insert(T2, k(3), v(255, 4))],
            End::CommitEventual,
        ),
        write(
            None,
            vec![TxnOp::RemoveMany(T1, k(10), 30)],
            End::CommitEventual,
        ),
        Op::ReadOnly { crash: false },
        Op::ReadOnly { crash: true },
        write(None, vec![TxnOp::Insert(T2, k(9), v(10, 9))], End::Commit),
        Op::ReadOnly { crash: true },
        Op::Check,
    ];
    for durability in [Durability::Immediate, Durability::Eventual] {
        let config = Config {
            durability,
            ..Config::default()
        };
        run_with(config, &ops).unwrap();
        run_with(
            Config {
                fast: true,
                ..config
            },
            &ops,
        )
        .unwrap();
    }
}

/// `Model::unchanged_since` sees a commit, a new snapshot, a deleted one, and a table
/// changed in place, shared or not.
#[test]
fn a_model_print_sees_every_change() {
    use shadowkv::testkit::{Kind, Model, TableModel, Tables};
    use std::sync::Arc;
    fn main_t(model: &mut Model) -> &mut Arc<TableModel> {
        let main = model.roots.get_mut("main").unwrap();
        main.tables.get_mut("t").unwrap()
    }
    let mut model = Model::new();
    let print = model.print();
    assert!(model.unchanged_since(&print));
    let mut tables = Tables::new();
    Arc::make_mut(tables.entry("t".into()).or_default())
        .insert(b"k".to_vec().into(), b"v"[..].into());
    model.commit("main", tables, &[]);
    assert!(!model.unchanged_since(&print));
    let print = model.print();
    model.create_snapshot("s").unwrap();
    assert!(!model.unchanged_since(&print));
    // Shared with the snapshot: copied.
    let print = model.print();
    assert_eq!(Arc::strong_count(main_t(&mut model)), 2);
    Arc::make_mut(main_t(&mut model)).insert(b"k2".to_vec().into(), b"w"[..].into());
    assert!(!model.unchanged_since(&print));
    let print = model.print();
    model.delete("s", Kind::Snapshot).unwrap();
    assert!(!model.unchanged_since(&print));
    // Held by main alone: changed where it is, and still seen.
    let print = model.print();
    assert_eq!(Arc::strong_count(main_t(&mut model)), 1);
    Arc::make_mut(main_t(&mut model)).remove(&b"k2"[..]);
    assert!(!model.unchanged_since(&print));
}
