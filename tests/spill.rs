//! Leaf spills (B*-tree style, `btree/write.rs` `spill`): a leaf that overflows on an insert
//! before its last entry shares its entries with a sibling (two even leaves, or three about
//! 2/3 full) instead of splitting in two. The page counts of `check()` tell a spill from a
//! split: a two-way spill adds no page, a split or a three-way spill one. Every test checks
//! the contents against a model and runs `check()`, which also verifies reference counts.

mod common;

use common::Rng;
use shadowkv::Database;
use std::collections::BTreeMap;

type Map = BTreeMap<Vec<u8>, Vec<u8>>;

/// Keys spaced by ten, so that inserts can land between any two loaded keys.
fn key(i: u64) -> Vec<u8> {
    format!("k{:09}", i * 10).into_bytes()
}

fn value(rng: &mut Rng) -> Vec<u8> {
    rng.bytes(100)
}

/// Loads keys `0..n` ascending in one commit (append splits: packed leaves, a short last one).
fn load(db: &Database, n: u64, rng: &mut Rng, model: &mut Map) {
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in 0..n {
            let (k, v) = (key(i), value(rng));
            t.insert(&k, &v).unwrap();
            model.insert(k, v);
        }
    }
    tx.commit().unwrap();
}

/// Inserts `k` in its own commit (on `root`, `main` when None) and returns the tree pages.
fn put_on(db: &Database, root: Option<&str>, k: Vec<u8>, v: Vec<u8>, model: &mut Map) -> u64 {
    let tx = match root {
        None => db.begin_write().unwrap(),
        Some(branch) => db.begin_write_on(branch).unwrap(),
    };
    tx.open_table("t").unwrap().insert(&k, &v).unwrap();
    tx.commit().unwrap();
    model.insert(k, v);
    db.check().unwrap().tree_pages
}

fn put(db: &Database, k: Vec<u8>, v: Vec<u8>, model: &mut Map) -> u64 {
    put_on(db, None, k, v, model)
}

fn remove(db: &Database, keys: &[Vec<u8>], model: &mut Map) {
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for k in keys {
            assert!(t.remove(k).unwrap());
            model.remove(k);
        }
    }
    tx.commit().unwrap();
}

/// Asserts that `root` (`main` when None) holds exactly `model` in table `t`.
fn assert_holds(db: &Database, root: Option<&str>, model: &Map) {
    let rx = match root {
        None => db.begin_read().unwrap(),
        Some(name) => db.begin_read_at(name).unwrap(),
    };
    let t = rx.open_table("t").unwrap();
    let got: Map = t
        .iter()
        .unwrap()
        .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
        .collect();
    assert!(
        got == *model,
        "{root:?}: {} entries, want {}",
        got.len(),
        model.len()
    );
}

/// Asserts that root `name` (a snapshot or a branch) holds `other` and main `main`, deletes
/// `name`, and asserts that main is intact and `check()` passes (reference counts included).
fn delete_after_check(db: &Database, name: &str, other: &Map, main: &Map) {
    assert_holds(db, Some(name), other);
    assert_holds(db, None, main);
    if db.branches().unwrap().iter().any(|b| b.name == name) {
        db.delete_branch(name).unwrap();
    } else {
        db.delete_snapshot(name).unwrap();
    }
    db.check().unwrap();
    assert_holds(db, None, main);
}

/// Commits `n` writes in one transaction, each from `next`: a key with a value to insert,
/// or with None to remove it; the model follows.
fn commit_writes(
    db: &Database,
    model: &mut Map,
    n: usize,
    mut next: impl FnMut() -> (Vec<u8>, Option<Vec<u8>>),
) {
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for _ in 0..n {
            match next() {
                (k, Some(v)) => {
                    t.insert(&k, &v).unwrap();
                    model.insert(k, v);
                }
                (k, None) => {
                    t.remove(&k).unwrap();
                    model.remove(&k);
                }
            }
        }
    }
    tx.commit().unwrap();
}

fn open(dir: &tempfile::TempDir) -> Database {
    Database::open(dir.path().join("spill.db")).unwrap()
}

/// A fresh database in a temporary directory (kept alive by the caller) with keys `0..n`
/// loaded, its model and the generator that made the values.
fn loaded(seed: u64, n: u64) -> (tempfile::TempDir, Database, Rng, Map) {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let (mut rng, mut model) = (Rng(seed), Map::new());
    load(&db, n, &mut rng, &mut model);
    (dir, db, rng, model)
}

/// 40 entries load as two leaves under a root: the first 15/16 full, the second short.
const TWO_LEAVES: u64 = 40;

/// Inserts keys `numbers` (each between two loaded keys, before the last) one commit each,
/// and asserts that none adds a page: every overflow spilled into a sibling.
fn inserts_add_no_page(db: &Database, numbers: std::ops::Range<u64>, rng: &mut Rng, m: &mut Map) {
    let pages = db.check().unwrap().tree_pages;
    for n in numbers {
        let k = format!("k{n:09}").into_bytes();
        assert_eq!(put(db, k, value(rng), m), pages, "insert {n}");
    }
    assert_holds(db, None, m);
}

/// Inserts into the middle of the first leaf (keys 50..62), or past its last entry (keys
/// 291..300: after its last loaded key, k000000290 at 10-byte keys and 15/16 of a page, and
/// before the second leaf's separator): a split would add a leaf; the spill moves entries
/// into the short right leaf instead, for as long as both fit in two pages. An entry landing
/// last in a leaf that has a right sibling is a random insert, not an append.
#[test]
fn an_overflowing_leaf_spills_into_its_right_sibling() {
    for (seed, keys) in [(1, 50..62), (9, 291..300)] {
        let (_dir, db, mut rng, mut model) = loaded(seed, TWO_LEAVES);
        inserts_add_no_page(&db, keys, &mut rng, &mut model);
    }
}

#[test]
fn the_last_leaf_spills_into_its_left_sibling() {
    let (_dir, db, mut rng, mut model) = loaded(2, TWO_LEAVES);
    // Room in the first leaf (still over a quarter full, so no rebalance).
    let gone: Vec<Vec<u8>> = (2..12).map(key).collect();
    remove(&db, &gone, &mut model);
    // The second leaf fills up from the middle (never an append) and overflows: it has no
    // right sibling, so it spills left.
    inserts_add_no_page(&db, 301..336, &mut rng, &mut model);
}

#[test]
fn two_full_leaves_become_three() {
    let (_dir, db, mut rng, mut model) = loaded(3, TWO_LEAVES);
    let pages = db.check().unwrap().tree_pages;
    let mut grew_at = None;
    // Up to 2 × 34 entries fit in the two leaves; past that the pair becomes three leaves,
    // one page more, and each keeps room: the next inserts add no page.
    for j in 0..30u64 {
        let k = format!("k{:09}", 1 + j * 7 % 380).into_bytes();
        let k = [k, j.to_be_bytes().to_vec()].concat();
        let now = put(&db, k, value(&mut rng), &mut model);
        assert!(now <= pages + 1, "insert {j}: {now} pages from {pages}");
        if now == pages + 1 && grew_at.is_none() {
            grew_at = Some(model.len());
        }
    }
    let grew_at = grew_at.expect("the two leaves overflowed");
    assert!(
        grew_at > 55,
        "a third leaf at {grew_at} entries: a split, not a spill"
    );
    assert_holds(&db, None, &model);
}

/// Random inserts into packed leaves: splits would leave them about half full (56% of the
/// page bytes here hold entry bytes), spills into one sibling at about two thirds (73%), and
/// spills over both siblings at about three quarters (77% with a 32-byte page header, 74.5%
/// with format 9's 64 bytes).
#[test]
fn random_inserts_keep_leaves_two_thirds_full() {
    let (_dir, db, mut rng, mut model) = loaded(4, 20_000);
    for _ in 0..10 {
        commit_writes(&db, &mut model, 1000, || {
            let k = format!("k{:09}", rng.below(200_000)).into_bytes();
            (k, Some(value(&mut rng)))
        });
    }
    assert_holds(&db, None, &model);
    let report = db.check().unwrap();
    let data: usize = model.iter().map(|(k, v)| k.len() + v.len()).sum();
    let tree = report.tree_pages as usize * 4096;
    assert!(
        data * 100 / tree >= 74,
        "{data} bytes of entries in {tree} bytes of pages"
    );
}

/// A spill copies the sibling it writes to; when a snapshot shares that sibling, the copy
/// must leave the snapshot's version and every reference count exact.
#[test]
fn spills_into_siblings_shared_with_a_snapshot() {
    let (_dir, db, mut rng, mut model) = loaded(5, 2_000);
    db.create_snapshot("before").unwrap();
    let before = model.clone();
    for j in 0..300u64 {
        let k = format!("k{:09}", rng.below(20_000)).into_bytes();
        put(&db, k, value(&mut rng), &mut model);
        if j % 50 == 0 {
            assert_holds(&db, Some("before"), &before);
        }
    }
    delete_after_check(&db, "before", &before, &model);
}

/// Spills on a branch and on main from one shared tree: each sees only its own inserts.
#[test]
fn spills_on_a_branch_leave_main_alone() {
    let (_dir, db, mut rng, mut model) = loaded(6, 2_000);
    db.create_branch("b", "main").unwrap();
    let mut branch = model.clone();
    for _ in 0..200 {
        let k = format!("k{:09}", rng.below(20_000)).into_bytes();
        put_on(&db, Some("b"), k, value(&mut rng), &mut branch);
        let k = format!("k{:09}", rng.below(20_000)).into_bytes();
        put(&db, k, value(&mut rng), &mut model);
    }
    delete_after_check(&db, "b", &branch, &model);
}

/// Entries whose values live in overflow runs move between leaves as pointers: the runs
/// are neither copied nor released, and removing everything leaves no page behind.
#[test]
fn spills_move_overflow_values_intact() {
    let (_dir, db, mut rng, mut model) = loaded(7, 400);
    db.create_snapshot("s").unwrap();
    for j in 0..200u64 {
        let k = format!("k{:09}", rng.below(4_000)).into_bytes();
        let len = if j % 3 == 0 { 5_000 + j as usize } else { 100 };
        put(&db, k, rng.bytes(len), &mut model);
    }
    assert_holds(&db, None, &model);
    db.delete_snapshot("s").unwrap();
    let keys: Vec<Vec<u8>> = model.keys().cloned().collect();
    remove(&db, &keys, &mut model);
    let report = db.check().unwrap();
    assert!(report.tree_pages <= 2, "left behind: {report:?}");
}

/// Spills survive a reopen and random removes between them (rebalancing then meets leaves
/// that spills shaped).
#[test]
fn spills_mixed_with_removes_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let (mut rng, mut model) = (Rng(8), Map::new());
    for round in 0..4 {
        let db = open(&dir);
        if round == 0 {
            load(&db, 3_000, &mut rng, &mut model);
        }
        commit_writes(&db, &mut model, 2_000, || {
            let k = format!("k{:09}", rng.below(30_000)).into_bytes();
            if rng.chance(30) {
                return (k, None);
            }
            let len = 1 + rng.below(300) as usize;
            (k, Some(rng.bytes(len)))
        });
        db.check().unwrap();
        assert_holds(&db, None, &model);
    }
}

/// Separators of very different lengths (short between heads, about 900 bytes between long
/// keys of one head): a spill whose new separators outgrow the parent's room must fall back
/// to a split (this test takes that path 49 times), and the branches above split often.
#[test]
fn spills_under_branches_full_of_long_separators() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(&dir);
    let (mut rng, mut model) = (Rng(10), Map::new());
    let prefix = vec![b'p'; 900];
    for _ in 0..20 {
        commit_writes(&db, &mut model, 100, || {
            // A short head, then (for half of the keys) the long pad: separators between
            // heads are short, between keys of one head long.
            let head = format!("{:03}", rng.below(300));
            let pad = if rng.chance(50) { &prefix[..] } else { &[][..] };
            let tail = format!("{:06}", rng.below(1_000_000));
            let len = rng.below(200) as usize;
            let k = [head.as_bytes(), pad, tail.as_bytes()].concat();
            (k, Some(rng.bytes(len)))
        });
        db.check().unwrap();
    }
    assert_holds(&db, None, &model);
}
