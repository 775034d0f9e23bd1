//! Snapshots and branches against a model: one model map per name, `check()` after every
//! step, reopens, and the errors for bad names and read-only writes.

mod common;

use common::{Model, Rng};
use shadowkv::{Database, Durability, Error};
use std::collections::BTreeMap;

#[derive(Clone, Debug)]
struct Root {
    snapshot: bool,
    model: Model,
}

fn assert_root(db: &Database, name: &str, model: &Model) {
    common::assert_txn_matches(&db.begin_read_at(name).unwrap(), model, name);
}

fn assert_all(db: &Database, roots: &BTreeMap<String, Root>) {
    db.check().unwrap();
    for (name, root) in roots {
        assert_root(db, name, &root.model);
    }
    let snaps: Vec<String> = db
        .snapshots()
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    let want: Vec<String> = roots
        .iter()
        .filter(|(_, r)| r.snapshot)
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(snaps, want);
    let branches: Vec<String> = db.branches().unwrap().into_iter().map(|s| s.name).collect();
    let want: Vec<String> = roots
        .iter()
        .filter(|(_, r)| !r.snapshot)
        .map(|(n, _)| n.clone())
        .collect();
    assert_eq!(branches, want);
}

fn pick<'a>(
    rng: &mut Rng,
    roots: &'a BTreeMap<String, Root>,
    snapshot: Option<bool>,
) -> Option<&'a String> {
    let names: Vec<&String> = roots
        .iter()
        .filter(|(_, r)| snapshot.is_none_or(|s| r.snapshot == s))
        .map(|(n, _)| n)
        .collect();
    if names.is_empty() {
        None
    } else {
        Some(names[rng.below(names.len() as u64) as usize])
    }
}

fn write_some(
    rng: &mut Rng,
    db: &Database,
    branch: &str,
    model: &mut Model,
    snap: Option<String>,
) -> bool {
    let mut tx = db.begin_write_on(branch).unwrap();
    let mut staged = model.clone();
    let big = rng.chance(10);
    let ops = 1 + rng.below(if big { 1500 } else { 40 });
    for _ in 0..ops {
        let table = ["a", "b"][rng.below(2) as usize];
        if rng.chance(1) {
            assert_eq!(
                tx.delete_table(table).unwrap(),
                staged.remove(table).is_some()
            );
            continue;
        }
        let mut t = tx.open_table(table).unwrap();
        let m = staged.entry(table.to_string()).or_default();
        let key = format!("key{:05}", rng.below(4000)).into_bytes();
        if rng.chance(65) {
            let long = rng.chance(3);
            let len = if long {
                3000 + rng.below(9000) as usize
            } else {
                rng.below(90) as usize
            };
            let value = rng.bytes(len);
            t.insert(&key, &value).unwrap();
            m.insert(key, value);
        } else {
            assert_eq!(t.remove(&key).unwrap(), m.remove(&key).is_some());
        }
    }
    if let Some(name) = &snap {
        tx.create_snapshot(name).unwrap();
    }
    if rng.chance(10) {
        return false; // abort
    }
    tx.commit().unwrap();
    *model = staged;
    true
}

fn run(seed: u64, steps: usize) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.db");
    let durability = if seed.is_multiple_of(2) {
        Durability::Immediate
    } else {
        Durability::Eventual
    };
    let open = || {
        Database::options()
            .durability(durability)
            .open(&path)
            .unwrap()
    };
    let mut db = open();
    let mut rng = Rng(seed);
    let mut roots: BTreeMap<String, Root> = BTreeMap::new();
    roots.insert(
        "main".into(),
        Root {
            snapshot: false,
            model: Model::new(),
        },
    );
    for next_name in 0..steps {
        let fresh = format!("r{next_name}");
        match rng.below(20) {
            0..=9 => {
                let branch = pick(&mut rng, &roots, Some(false)).unwrap().clone();
                let mut model = roots[&branch].model.clone();
                let snap = rng.chance(15).then(|| fresh.clone());
                if write_some(&mut rng, &db, &branch, &mut model, snap.clone()) {
                    roots.get_mut(&branch).unwrap().model = model.clone();
                    if let Some(name) = snap {
                        roots.insert(
                            name,
                            Root {
                                snapshot: true,
                                model,
                            },
                        );
                    }
                }
            }
            10..=11 => {
                db.create_snapshot(&fresh).unwrap();
                let model = roots["main"].model.clone();
                roots.insert(
                    fresh,
                    Root {
                        snapshot: true,
                        model,
                    },
                );
            }
            12..=13 => {
                let from = pick(&mut rng, &roots, None).unwrap().clone();
                db.create_branch(&fresh, &from).unwrap();
                let model = roots[&from].model.clone();
                roots.insert(
                    fresh,
                    Root {
                        snapshot: false,
                        model,
                    },
                );
            }
            14..=15 => {
                let branch = pick(&mut rng, &roots, Some(false)).unwrap().clone();
                let from = pick(&mut rng, &roots, None).unwrap().clone();
                db.restore(&branch, &from).unwrap();
                let model = roots[&from].model.clone();
                roots.get_mut(&branch).unwrap().model = model;
            }
            16 => {
                if let Some(name) = pick(&mut rng, &roots, Some(true)).cloned() {
                    db.delete_snapshot(&name).unwrap();
                    roots.remove(&name);
                }
            }
            17 => {
                if let Some(name) = pick(&mut rng, &roots, Some(false)).cloned() {
                    if name != "main" {
                        db.delete_branch(&name).unwrap();
                        roots.remove(&name);
                    }
                }
            }
            18 => {
                drop(db);
                db = open();
            }
            _ => {
                // Errors: duplicates, unknown names, writes to snapshots, wrong kinds.
                let existing = pick(&mut rng, &roots, None).unwrap().clone();
                assert!(matches!(
                    db.create_snapshot(&existing),
                    Err(Error::AlreadyExists(_))
                ));
                assert!(matches!(
                    db.create_branch(&existing, "main"),
                    Err(Error::AlreadyExists(_))
                ));
                assert!(matches!(
                    db.create_branch(&fresh, "no-such"),
                    Err(Error::NotFound(_))
                ));
                assert!(matches!(
                    db.begin_read_at("no-such"),
                    Err(Error::NotFound(_))
                ));
                assert!(matches!(
                    db.delete_snapshot("no-such"),
                    Err(Error::NotFound(_))
                ));
                if let Some(snap) = pick(&mut rng, &roots, Some(true)) {
                    assert!(matches!(db.begin_write_on(snap), Err(Error::ReadOnly(_))));
                    assert!(matches!(
                        db.delete_branch(snap),
                        Err(Error::InvalidArgument(_))
                    ));
                }
                assert!(matches!(
                    db.delete_branch("main"),
                    Err(Error::InvalidArgument(_))
                ));
                assert!(matches!(
                    db.create_snapshot(""),
                    Err(Error::InvalidArgument(_))
                ));
                assert!(matches!(
                    db.create_snapshot(&"x".repeat(256)),
                    Err(Error::InvalidArgument(_))
                ));
            }
        }
        assert_all(&db, &roots);
    }
    eprintln!(
        "seed {seed}: {} roots, {:?}, {:?}",
        roots.len(),
        db.check().unwrap(),
        db.snapshots()
            .unwrap()
            .iter()
            .map(|s| (s.referenced_bytes, s.exclusive_bytes))
            .collect::<Vec<_>>()
    );
    // Deleting everything but main returns every page it held alone.
    for (name, root) in roots.clone() {
        if name == "main" {
            continue;
        }
        if root.snapshot {
            db.delete_snapshot(&name).unwrap();
        } else {
            db.delete_branch(&name).unwrap();
        }
        roots.remove(&name);
    }
    for _ in 0..20 {
        let mut model = roots["main"].model.clone();
        if write_some(&mut rng, &db, "main", &mut model, None) {
            roots.get_mut("main").unwrap().model = model;
        }
    }
    assert_all(&db, &roots);
    let report = db.check().unwrap();
    eprintln!("seed {seed} after deleting all: {report:?}");
    assert_eq!(
        report.system_pages, 1,
        "only the roots tree with main's record is left"
    );
}

#[test]
fn snapshot_model_immediate() {
    run(100, 120);
}

#[test]
fn snapshot_model_eventual() {
    run(101, 120);
}

#[test]
fn snapshot_model_more_seeds() {
    for seed in 102..106 {
        run(seed, 50);
    }
}
