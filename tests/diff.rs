//! `ReadTxn::diff` against a model: every pair of snapshots, branches written after a
//! restore, tables created and deleted, equal overwrites; and its cost in pages.

mod common;

use common::{Model, Rng};
use shadowkv::testkit::model::{diff as model_diff, Change};
use shadowkv::{Database, Error};
use std::collections::BTreeMap;

fn db_diff(db: &Database, base: &str, now: &str) -> (Vec<Change>, u64) {
    let base = db.begin_read_at(base).unwrap();
    let now = db.begin_read_at(now).unwrap();
    let mut diff = now.diff(&base).unwrap();
    let mut out = Vec::new();
    for change in diff.by_ref() {
        let c = change.unwrap();
        let owned = |v: Option<&[u8]>| v.map(<[u8]>::to_vec);
        out.push((
            c.table.to_string(),
            c.key.to_vec(),
            owned(c.old),
            owned(c.new),
        ));
    }
    (out, diff.pages_read())
}

/// Random writes on `branch`, mirrored in `model`: inserts, equal overwrites, removes, large
/// values, tables created empty and tables deleted.
fn write_round(db: &Database, branch: &str, model: &mut Model, rng: &mut Rng) {
    let mut tx = db.begin_write_on(branch).unwrap();
    for _ in 0..rng.below(60) {
        let table = format!("t{}", rng.below(4));
        let key = format!("k{:03}", rng.below(300)).into_bytes();
        match rng.below(20) {
            0 => {
                tx.delete_table(&table).unwrap();
                model.remove(&table);
            }
            1 => {
                tx.open_table(&table).unwrap();
                model.entry(table).or_default();
            }
            2..=5 => {
                let removed = tx.open_table(&table).unwrap().remove(&key).unwrap();
                let entries = model.entry(table).or_default();
                assert_eq!(removed, entries.remove(&key).is_some());
            }
            6..=7 => {
                // An overwrite with the value already there is no change.
                let entries = model.entry(table.clone()).or_default();
                let value = entries
                    .get(&key)
                    .cloned()
                    .unwrap_or_else(|| b"same".to_vec());
                tx.open_table(&table).unwrap().insert(&key, &value).unwrap();
                entries.insert(key, value);
            }
            n => {
                let len = if n == 8 { 3000 } else { rng.below(40) as usize };
                let value = rng.bytes(len);
                tx.open_table(&table).unwrap().insert(&key, &value).unwrap();
                model.entry(table).or_default().insert(key, value);
            }
        }
    }
    tx.commit().unwrap();
}

#[test]
fn diff_between_every_pair_of_views_equals_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("d.db")).unwrap();
    let mut rng = Rng(7);
    let mut views: BTreeMap<String, Model> = BTreeMap::new();
    let mut main = Model::new();
    for round in 0..12 {
        write_round(&db, "main", &mut main, &mut rng);
        let name = format!("s{round:02}");
        db.create_snapshot(&name).unwrap();
        views.insert(name, main.clone());
        if round % 4 == 3 {
            // A branch from an older snapshot, written after a restore of main: its pages
            // may be old yet never part of main's other snapshots.
            let from = format!("s{:02}", rng.below(round + 1));
            let branch = format!("b{round:02}");
            db.create_branch(&branch, &from).unwrap();
            let mut model = views[&from].clone();
            write_round(&db, &branch, &mut model, &mut rng);
            views.insert(branch.clone(), model);
            db.restore("main", &branch).unwrap();
            main = views[&branch].clone();
        }
    }
    views.insert("main".into(), main);
    for (a, ma) in &views {
        for (b, mb) in &views {
            let (got, _) = db_diff(&db, a, b);
            assert_eq!(got, model_diff(ma, mb), "diff from {a} to {b}");
        }
    }
    db.check().unwrap();
}

#[test]
fn a_few_changes_in_a_big_table_read_a_few_pages() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("d.db")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("big").unwrap();
        for i in 0..200_000u64 {
            t.insert(&(i * 7919 % 1_000_003).to_be_bytes(), &[i as u8; 40])
                .unwrap();
        }
    }
    tx.open_table("other").unwrap().insert(b"x", b"y").unwrap();
    tx.commit().unwrap();
    db.create_snapshot("before").unwrap();
    let depth = db.stats().unwrap().tables[0].depth as u64;
    assert!(
        depth >= 3,
        "a tree of depth {depth} is too shallow to show anything"
    );
    let tx = db.begin_write().unwrap();
    let mut want = Vec::new();
    for i in 0..10u64 {
        let key = (i * 100_003).to_be_bytes();
        let old = tx
            .open_table("big")
            .unwrap()
            .get(&key)
            .unwrap()
            .map(|v| v.into_owned());
        tx.open_table("big").unwrap().insert(&key, b"new").unwrap();
        want.push(("big".to_string(), key.to_vec(), old, Some(b"new".to_vec())));
    }
    tx.commit().unwrap();
    want.sort();
    let (got, pages) = db_diff(&db, "before", "main");
    assert_eq!(got, want);
    eprintln!("10 changes in 200k entries at depth {depth}: {pages} pages read");
    // Two catalog leaves, then at most the two root-to-leaf paths of each change (fewer
    // where paths meet), plus a neighbour where a split shifted a boundary.
    assert!(
        pages <= 2 + 10 * 2 * depth + 2 * depth,
        "10 changes at depth {depth} read {pages} pages"
    );
    let (none, pages) = db_diff(&db, "main", "main");
    assert!(none.is_empty());
    assert_eq!(pages, 0, "equal roots are skipped without a read");
}

/// Leaves in `path`'s file that carry an edit hint (format 9: a leaf copied and changed
/// only in place names its base and the entries that may differ).
fn hinted_leaves(path: &std::path::Path) -> usize {
    use shadowkv::internals::format::{hint, tag, PageHeader};
    let bytes = std::fs::read(path).unwrap();
    bytes
        .chunks_exact(4096)
        .filter(|page| PageHeader::read(page).tag == tag::LEAF && hint::read(page).is_some())
        .count()
}

/// Values overwritten with others of their length keep a leaf's layout, so the copy names
/// its base and what changed, and the diff reads only those entries (builds with `testkit`
/// also prove every hint used against the whole pages). Inserts and removes now and then
/// change layouts, branches diverge from one base, and every pair of views is diffed.
#[test]
fn diffs_over_overwrites_in_place_use_edit_hints_and_equal_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.db");
    let db = Database::open(&path).unwrap();
    let mut rng = Rng(0x4147);
    let mut main = Model::new();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in 0..3000u64 {
            let (key, value) = ((i * 3).to_be_bytes().to_vec(), rng.bytes(40));
            t.insert(&key, &value).unwrap();
            main.entry("t".into()).or_default().insert(key, value);
        }
    }
    tx.commit().unwrap();
    let mut views: BTreeMap<String, Model> = BTreeMap::new();
    views.insert("s".into(), main.clone());
    db.create_snapshot("s").unwrap();
    for round in 0..8u64 {
        let branch = if round % 3 == 2 { "b" } else { "main" };
        if branch == "b" && !views.contains_key("b") {
            db.create_branch("b", "s").unwrap();
            views.insert("b".into(), views["s"].clone());
        }
        let mut model = if branch == "main" {
            main.clone()
        } else {
            views["b"].clone()
        };
        let name = format!("{branch}{round}");
        let mut tx = db.begin_write_on(branch).unwrap();
        {
            let mut t = tx.open_table("t").unwrap();
            let entries = model.get_mut("t").unwrap();
            for _ in 0..40 {
                let key = (rng.below(3000) * 3 + u64::from(rng.below(30) == 0)).to_be_bytes();
                let value = match rng.below(10) {
                    // The same bytes again: no change, though the leaf is copied.
                    0 => entries
                        .get(&key[..])
                        .cloned()
                        .unwrap_or_else(|| vec![1; 40]),
                    _ => rng.bytes(40),
                };
                if rng.below(25) == 0 {
                    t.remove(&key).unwrap();
                    entries.remove(&key[..]);
                } else {
                    t.insert(&key, &value).unwrap();
                    entries.insert(key.to_vec(), value);
                }
            }
        }
        tx.create_snapshot(&name).unwrap();
        tx.commit().unwrap();
        views.insert(name, model.clone());
        views.insert(branch.into(), model.clone());
        if branch == "main" {
            main = model;
        }
    }
    assert!(
        hinted_leaves(&path) > 20,
        "{} hinted leaves",
        hinted_leaves(&path)
    );
    for (a, ma) in &views {
        for (b, mb) in &views {
            let (got, _) = db_diff(&db, a, b);
            assert_eq!(got, model_diff(ma, mb), "diff from {a} to {b}");
        }
    }
    db.check().unwrap();
}

#[test]
fn views_of_two_databases_cannot_be_diffed() {
    let dir = tempfile::tempdir().unwrap();
    let a = Database::open(dir.path().join("a.db")).unwrap();
    let b = Database::open(dir.path().join("b.db")).unwrap();
    let (ra, rb) = (a.begin_read().unwrap(), b.begin_read().unwrap());
    assert!(matches!(ra.diff(&rb), Err(Error::InvalidArgument(_))));
}

#[test]
fn diff_of_deep_trees_after_scattered_edits_equals_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("d.db")).unwrap();
    let mut rng = Rng(99);
    let mut model = Model::new();
    let tx = db.begin_write().unwrap();
    for i in 0..20_000u64 {
        let (key, value) = (format!("{i:08}").into_bytes(), rng.bytes(30));
        tx.open_table("deep").unwrap().insert(&key, &value).unwrap();
        model.entry("deep".into()).or_default().insert(key, value);
    }
    tx.commit().unwrap();
    for round in 0..6 {
        let base = format!("r{round}");
        db.create_snapshot(&base).unwrap();
        let before = model.clone();
        let tx = db.begin_write().unwrap();
        // Edits in place, inserts between keys and past the ends, removes, equal rewrites.
        for _ in 0..(1 + round * 40) {
            let i = rng.below(21_000);
            let key = match rng.below(3) {
                0 => format!("{i:08}"),
                1 => format!("{i:08}x"),
                _ => format!("{:08}", i % 20),
            }
            .into_bytes();
            let entries = model.entry("deep".into()).or_default();
            let mut t = tx.open_table("deep").unwrap();
            match rng.below(4) {
                0 => {
                    t.remove(&key).unwrap();
                    entries.remove(&key);
                }
                1 => {
                    let value = entries.get(&key).cloned().unwrap_or_default();
                    t.insert(&key, &value).unwrap();
                    entries.insert(key, value);
                }
                _ => {
                    let len = if rng.chance(5) { 2000 } else { 30 };
                    let value = rng.bytes(len);
                    t.insert(&key, &value).unwrap();
                    entries.insert(key, value);
                }
            }
        }
        tx.commit().unwrap();
        db.create_snapshot(&format!("n{round}")).unwrap();
        let (got, _) = db_diff(&db, &base, "main");
        assert_eq!(got, model_diff(&before, &model), "round {round}");
        let (back, _) = db_diff(&db, "main", &base);
        assert_eq!(
            back,
            model_diff(&model, &before),
            "round {round}, backwards"
        );
    }
}
