//! `Database::backup_to`: the copy holds every snapshot and branch of one committed state,
//! exactly, with pages still shared and no free page; it is taken while a writer commits; it
//! never overwrites a file and leaves nothing behind when it fails.

mod common;
#[path = "common/storage.rs"]
mod storage;

use common::{Model, Rng};
use shadowkv::internals::format::meta::Meta;
use shadowkv::internals::format::records::RootRecord;
use shadowkv::internals::format::Ptr;
use shadowkv::internals::io::{MemStorage, Storage};
use shadowkv::internals::pager::ReadPages;
use shadowkv::{CheckReport, Database, Durability, Error};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use storage::{FaultError, FaultMode, Faulty};

/// Every named root: its kind (true for a snapshot) and its tables.
type Dump = BTreeMap<String, (bool, Model)>;

fn dump(db: &Database) -> Dump {
    let mut out = Dump::new();
    let snapshots = db.snapshots().unwrap().into_iter().map(|i| (i.name, true));
    let branches = db.branches().unwrap().into_iter().map(|i| (i.name, false));
    for (name, snapshot) in snapshots.chain(branches) {
        let rx = db.begin_read_at(&name).unwrap();
        let mut tables = Model::new();
        for table in rx.table_names().unwrap() {
            let t = rx.open_table(&table).unwrap();
            let entries = t
                .iter()
                .unwrap()
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
                .collect();
            tables.insert(table, entries);
        }
        assert!(out.insert(name, (snapshot, tables)).is_none());
    }
    out
}

/// The newest meta of a file's bytes (the one an open chooses).
fn newest_meta(bytes: &[u8]) -> Meta {
    shadowkv::testkit::newest_meta(&MemStorage::from_bytes(bytes.to_vec()))
        .expect("a valid meta")
        .1
}

/// Every root record of the newest state of the file at `path`, catalog pointers cleared.
fn root_records(path: &Path) -> Vec<(String, RootRecord)> {
    let bytes = std::fs::read(path).unwrap();
    let meta = newest_meta(&bytes);
    let len = bytes.len() as u64;
    let storage = MemStorage::from_bytes(bytes);
    let pages = ReadPages::new(
        storage.view(len).unwrap(),
        len,
        meta.page_size as usize,
        true,
    );
    let mut records = shadowkv::internals::txn::roots::list(&pages, meta.roots).unwrap();
    for (_, record) in &mut records {
        record.catalog = Ptr::default();
    }
    records
}

fn release_queue(path: &Path) -> Ptr {
    newest_meta(&std::fs::read(path).unwrap()).release
}

/// Every page is meta, free map or reachable: nothing free, nothing pending.
fn assert_compact(report: &CheckReport, path: &Path) {
    assert_eq!(report.free_pages, 0, "{report:?}");
    assert_eq!(report.pending_pages, 0, "{report:?}");
    assert_eq!(
        report.total_pages,
        report.meta_pages + report.freemap_pages + report.tree_pages + report.system_pages,
        "{report:?}"
    );
    assert_eq!(report.freemap_pages, 1, "one directory page: {report:?}");
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(len, report.total_pages * 4096, "file length of {report:?}");
}

fn fill(db: &Database, branch: &str, table: &str, rng: &mut Rng, n: usize, vlen: usize) {
    let tx = db.begin_write_on(branch).unwrap();
    {
        let mut t = tx.open_table(table).unwrap();
        for _ in 0..n {
            t.insert(&rng.bytes(16), &rng.bytes(vlen)).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// Tables (one empty, one of overflow values), snapshots and branches sharing pages, and a
/// deleted snapshot whose pages are still being released.
fn build_source(path: &Path) -> Database {
    let db = Database::open(path).unwrap();
    let mut rng = Rng(11);
    fill(&db, "main", "a", &mut rng, 3000, 50);
    fill(&db, "main", "big", &mut rng, 20, 9000);
    let tx = db.begin_write().unwrap();
    tx.open_table("empty").unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s1").unwrap();
    fill(&db, "main", "a", &mut rng, 200, 50);
    fill(&db, "main", "big", &mut rng, 3, 5000);
    db.create_branch("b1", "s1").unwrap();
    // Enough inserts to copy every leaf of `a` in b1 (none left shared with s1), so that
    // its tree is refilled: 300 random ones may leave a leaf of about sixty untouched.
    fill(&db, "b1", "a", &mut rng, 1000, 70);
    fill(&db, "b1", "only-b1", &mut rng, 10, 10);
    db.create_snapshot("s2").unwrap();
    db.create_branch("b2", "main").unwrap();
    // A snapshot holding many pages alone, deleted: its pages are released over several
    // commits, so the release queue is not empty when the backup runs.
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("bulk").unwrap();
        for i in 0..100_000u32 {
            t.insert(&i.to_be_bytes(), &[7u8; 100]).unwrap();
        }
    }
    tx.commit().unwrap();
    db.create_snapshot("doomed").unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.delete_table("bulk").unwrap();
    tx.commit().unwrap();
    db.delete_snapshot("doomed").unwrap();
    assert!(
        !release_queue(path).is_null(),
        "the release queue should still hold the deleted snapshot's pages"
    );
    db
}

#[test]
fn a_backup_equals_its_source_root_by_root_and_holds_only_live_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, copy_path) = (dir.path().join("src.db"), dir.path().join("copy.db"));
    let src = build_source(&src_path);
    src.check().unwrap();
    src.backup_to(&copy_path).unwrap();
    let copy = Database::open(&copy_path).unwrap();
    let report = copy.check().unwrap();
    assert_compact(&report, &copy_path);
    assert!(release_queue(&copy_path).is_null());
    assert_eq!(dump(&copy), dump(&src));
    assert_eq!(root_records(&copy_path), root_records(&src_path));
    assert_eq!(dump(&copy)["main"].1["empty"].len(), 0);

    // Once the source has released the deleted snapshot, both hold the same live pages: the
    // copy kept every shared page shared.
    for _ in 0..100 {
        if release_queue(&src_path).is_null() {
            break;
        }
        src.begin_write().unwrap().commit().unwrap();
    }
    assert!(release_queue(&src_path).is_null());
    let src_report = src.check().unwrap();
    // A table with no shared node below its root is refilled, so the copy may be smaller;
    // a page shared in the source and copied twice would make it larger again, and a backup
    // of the backup (every tree already full) must come out page for page the same size.
    assert!(report.tree_pages <= src_report.tree_pages, "{report:?}");
    let again_path = dir.path().join("again.db");
    copy.backup_to(&again_path).unwrap();
    let again = Database::open(&again_path).unwrap().check().unwrap();
    assert_eq!(again.tree_pages, report.tree_pages);
    assert_eq!(report.tables, src_report.tables);
    assert_eq!(report.entries, src_report.entries);
    let info = |db: &Database| {
        let all = db.snapshots().unwrap().into_iter();
        all.chain(db.branches().unwrap()).collect::<Vec<_>>()
    };
    // Only b1's version of `a` is refilled (every other table shares nodes below its root,
    // or is one leaf), and its nodes are b1's alone: the other roots' sizes are unchanged.
    for (c, s) in info(&copy).into_iter().zip(info(&src)) {
        assert_eq!((&c.name, c.txn, c.created), (&s.name, s.txn, s.created));
        if c.name == "b1" {
            assert!(c.referenced_bytes < s.referenced_bytes, "{c:?} {s:?}");
            assert!(c.exclusive_bytes < s.exclusive_bytes, "{c:?} {s:?}");
        } else {
            assert_eq!(c, s);
        }
    }
    assert_eq!(info(&copy).len(), info(&src).len());
    eprintln!("source {src_report:?}\ncopy   {report:?}");
}

#[test]
fn a_backup_can_be_written_to_and_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, copy_path) = (dir.path().join("src.db"), dir.path().join("copy.db"));
    let src = build_source(&src_path);
    src.backup_to(&copy_path).unwrap();
    let copy = Database::open(&copy_path).unwrap();
    // The same changes on both sides, touching shared pages of every kind.
    for db in [&src, &copy] {
        let mut rng = Rng(5);
        fill(db, "main", "a", &mut rng, 500, 40);
        fill(db, "b1", "big", &mut rng, 4, 7000);
        fill(db, "b2", "empty", &mut rng, 10, 10);
        db.create_snapshot("s3").unwrap();
        db.delete_snapshot("s1").unwrap();
        db.delete_branch("b2").unwrap();
        db.restore("b1", "s2").unwrap();
        fill(db, "main", "a", &mut rng, 100, 40);
        db.check().unwrap();
    }
    let want = dump(&src);
    assert_eq!(dump(&copy), want);
    drop(copy);
    let copy = Database::open(&copy_path).unwrap();
    copy.check().unwrap();
    assert_eq!(dump(&copy), want);
    // A backup of the backup is as small as the backup's live data.
    let again = dir.path().join("again.db");
    copy.backup_to(&again).unwrap();
    let again_db = Database::open(&again).unwrap();
    assert_compact(&again_db.check().unwrap(), &again);
    assert_eq!(dump(&again_db), want);
}

#[test]
fn an_empty_database_backs_up() {
    let dir = tempfile::tempdir().unwrap();
    let src = Database::open(dir.path().join("src.db")).unwrap();
    let copy_path = dir.path().join("copy.db");
    src.backup_to(&copy_path).unwrap();
    let copy = Database::open(&copy_path).unwrap();
    assert_compact(&copy.check().unwrap(), &copy_path);
    assert_eq!(dump(&copy), dump(&src));
    let tx = copy.begin_write().unwrap();
    tx.open_table("t").unwrap().insert(b"k", b"v").unwrap();
    tx.commit().unwrap();
    copy.check().unwrap();
}

/// Commit i adds key i to `t` and sets `last` in `m` to i; every seventh commit is then
/// snapshotted as `s{i}`, and the snapshot five before it deleted. A consistent state holds
/// keys 1..=last, and each snapshot its own prefix.
fn assert_consistent(db: &Database) -> u64 {
    let read_last = |rx: &shadowkv::ReadTxn<'_>| -> u64 {
        let m = rx.open_table("m").unwrap();
        let last = u64::from_be_bytes(m.get(b"last").unwrap().unwrap().try_into().unwrap());
        let t = rx.open_table("t").unwrap();
        assert_eq!(t.len().unwrap(), last, "keys 1..=last");
        let mut want = 1u64;
        for item in t.iter().unwrap() {
            let (k, v) = item.unwrap();
            assert_eq!(k, want.to_be_bytes());
            assert_eq!(v, want.to_le_bytes());
            want += 1;
        }
        assert_eq!(want, last + 1);
        last
    };
    let last = read_last(&db.begin_read().unwrap());
    let snapshots = db.snapshots().unwrap();
    for info in &snapshots {
        let i: u64 = info.name[1..].parse().unwrap();
        assert_eq!(read_last(&db.begin_read_at(&info.name).unwrap()), i);
        assert!(i <= last && i.is_multiple_of(7));
    }
    // The newest snapshots are kept, five or six of them.
    assert!(snapshots.len() <= 6, "{} snapshots", snapshots.len());
    last
}

#[test]
fn a_backup_taken_while_a_writer_commits_is_one_committed_state() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(
        Database::options()
            .durability(Durability::Eventual)
            .open(dir.path().join("src.db"))
            .unwrap(),
    );
    // Some bulk, so that a backup takes a while.
    let mut rng = Rng(3);
    fill(&db, "main", "bulk", &mut rng, 50_000, 100);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (db, stop) = (db.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let tx = db.begin_write().unwrap();
                {
                    let mut t = tx.open_table("t").unwrap();
                    t.insert(&i.to_be_bytes(), &i.to_le_bytes()).unwrap();
                    let mut m = tx.open_table("m").unwrap();
                    m.insert(b"last", &i.to_be_bytes()).unwrap();
                }
                tx.commit().unwrap();
                if i.is_multiple_of(7) {
                    db.create_snapshot(&format!("s{i}")).unwrap();
                    if i > 35 {
                        db.delete_snapshot(&format!("s{}", i - 35)).unwrap();
                    }
                }
            }
            i
        })
    };
    // Wait for the first commit, so that `t` exists in every backup.
    while db.begin_read().unwrap().open_table("m").is_err() {
        std::thread::yield_now();
    }
    let mut seen = Vec::new();
    for round in 0..8 {
        let path = dir.path().join(format!("copy{round}.db"));
        db.backup_to(&path).unwrap();
        let copy = Database::open(&path).unwrap();
        copy.check().unwrap();
        seen.push(assert_consistent(&copy));
    }
    stop.store(true, Ordering::Relaxed);
    let commits = writer.join().unwrap();
    db.check().unwrap();
    assert!(
        seen.windows(2).all(|w| w[0] <= w[1]),
        "backups go forward: {seen:?}"
    );
    eprintln!("{commits} commits during the backups; backups at {seen:?}");
}

#[test]
fn an_existing_path_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("src.db")).unwrap();
    fill(&db, "main", "t", &mut Rng(1), 100, 10);
    let taken = dir.path().join("taken");
    std::fs::write(&taken, b"precious").unwrap();
    assert!(matches!(db.backup_to(&taken), Err(Error::AlreadyExists(_))));
    assert_eq!(std::fs::read(&taken).unwrap(), b"precious");
    // A directory is refused too, and a missing directory is an I/O error.
    assert!(matches!(
        db.backup_to(dir.path()),
        Err(Error::AlreadyExists(_))
    ));
    let missing = dir.path().join("no-such-dir").join("copy.db");
    assert!(matches!(db.backup_to(&missing), Err(Error::Io(_))));
    // Nothing else was created: no copy, no temporary file.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["src.db", "taken"]);
}

#[test]
fn a_damaged_source_fails_the_backup_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("src.db");
    let pattern = [0xABu8; 10_000];
    {
        let db = Database::open(&src_path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table("t")
            .unwrap()
            .insert(b"big", &pattern)
            .unwrap();
        tx.commit().unwrap();
        // A later commit, so that opening verifies only its pages and not the damaged run.
        fill(&db, "main", "other", &mut Rng(2), 10, 10);
    }
    let mut bytes = std::fs::read(&src_path).unwrap();
    let at = bytes
        .windows(pattern.len())
        .position(|w| w == pattern)
        .expect("the overflow run is in the file");
    bytes[at + 5000] ^= 1;
    std::fs::write(&src_path, &bytes).unwrap();
    let db = Database::open(&src_path).unwrap();
    let copy_path = dir.path().join("copy.db");
    assert!(matches!(
        db.backup_to(&copy_path),
        Err(Error::Corrupted { .. })
    ));
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, ["src.db"]);
}

#[test]
fn a_failing_write_or_sync_fails_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let db = build_source(&dir.path().join("src.db"));
    let want = dump(&db);
    // Bounded: the backup takes a few dozen operations.
    for n in 0..1000 {
        for partial in [false, true] {
            let faulty = Faulty::new(
                Arc::new(MemStorage::new()),
                FaultMode::Once(n),
                FaultError::NoSpace,
            );
            faulty.set_partial(partial);
            let result = db.backup_to_storage(&faulty);
            if faulty.failures() > 0 {
                assert!(matches!(result, Err(Error::Io(_))), "op {n}: {result:?}");
                continue;
            }
            result.unwrap();
            let copy = Database::options()
                .open_storage(faulty.inner.clone())
                .unwrap();
            copy.check().unwrap();
            assert_eq!(dump(&copy), want);
            assert!(n > 2, "a backup writes pages, the meta, and syncs");
            return;
        }
    }
    panic!("the backup never finished");
}

#[test]
fn a_non_empty_storage_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("src.db")).unwrap();
    let target = MemStorage::from_bytes(vec![1u8; 10]);
    assert!(matches!(
        db.backup_to_storage(&target),
        Err(Error::AlreadyExists(_))
    ));
    assert_eq!(target.to_bytes(), vec![1u8; 10]);
}

#[test]
fn every_page_size_backs_up() {
    for page_size in [8192, 16384, 65536] {
        let dir = tempfile::tempdir().unwrap();
        let src = Database::options()
            .page_size(page_size)
            .open(dir.path().join("src.db"))
            .unwrap();
        let mut rng = Rng(page_size as u64);
        fill(&src, "main", "a", &mut rng, 2000, 60);
        fill(&src, "main", "big", &mut rng, 5, 3 * page_size);
        src.create_snapshot("s").unwrap();
        fill(&src, "main", "a", &mut rng, 100, 60);
        let copy_path = dir.path().join("copy.db");
        src.backup_to(&copy_path).unwrap();
        let copy = Database::open(&copy_path).unwrap();
        let report = copy.check().unwrap();
        assert_eq!((report.free_pages, report.pending_pages), (0, 0));
        assert_eq!(
            std::fs::metadata(&copy_path).unwrap().len(),
            report.total_pages * page_size as u64
        );
        assert_eq!(dump(&copy), dump(&src));
        assert_eq!(
            root_records(&copy_path),
            root_records(&dir.path().join("src.db"))
        );
    }
}

/// Drains the source's release queue, so that its `check` counts only live pages.
fn drain_release_queue(db: &Database, path: &Path) {
    // Bounded: the queue shrinks by a budget per commit.
    for _ in 0..100 {
        if release_queue(path).is_null() {
            return;
        }
        db.begin_write().unwrap().commit().unwrap();
    }
    panic!("the release queue did not drain");
}

#[test]
fn a_thinned_table_is_refilled_into_full_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, copy_path) = (dir.path().join("src.db"), dir.path().join("copy.db"));
    let src = Database::open(&src_path).unwrap();
    const N: u64 = 200_000;
    const VALUE: usize = 20;
    let tx = src.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in 0..N {
            t.insert(&i.to_be_bytes(), &[i as u8; VALUE]).unwrap();
        }
    }
    tx.commit().unwrap();
    let tx = src.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in (0..N).step_by(2) {
            t.remove(&i.to_be_bytes()).unwrap();
        }
    }
    tx.commit().unwrap();
    // The snapshot shares the catalog (and so the table's root) with main.
    src.create_snapshot("s").unwrap();
    drain_release_queue(&src, &src_path);
    let src_report = src.check().unwrap();
    src.backup_to(&copy_path).unwrap();
    let copy = Database::open(&copy_path).unwrap();
    let report = copy.check().unwrap();
    assert_compact(&report, &copy_path);
    assert_eq!(dump(&copy), dump(&src));
    assert_eq!(dump(&copy)["s"].1["t"].len() as u64, N / 2);
    assert_eq!(report.entries, src_report.entries);
    assert!(
        report.tree_pages * 10 <= src_report.tree_pages * 6,
        "copy {report:?}\nsource {src_report:?}"
    );
    // Full leaves: within a few percent of the live bytes over the usable bytes of a page.
    use shadowkv::internals::format::node::{leaf_inline_bytes, usable_bytes};
    let live = (N / 2) * leaf_inline_bytes(8, VALUE) as u64;
    let least = live.div_ceil(usable_bytes(4096) as u64);
    assert!(
        report.tree_pages <= least + least / 20 + 2,
        "{} tree pages for at least {least} leaves",
        report.tree_pages
    );
    eprintln!("source {src_report:?}\ncopy   {report:?}");
}

#[test]
fn a_table_shared_below_its_root_is_copied_page_by_page() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, copy_path) = (dir.path().join("src.db"), dir.path().join("copy.db"));
    let src = Database::open(&src_path).unwrap();
    let mut rng = Rng(21);
    fill(&src, "main", "t", &mut rng, 20_000, 40);
    src.create_branch("b", "main").unwrap();
    // A few writes on main: main's copy of the table now shares most of its nodes with b's.
    fill(&src, "main", "t", &mut rng, 5, 40);
    drain_release_queue(&src, &src_path);
    let src_report = src.check().unwrap();
    src.backup_to(&copy_path).unwrap();
    let copy = Database::open(&copy_path).unwrap();
    let report = copy.check().unwrap();
    assert_compact(&report, &copy_path);
    assert_eq!(dump(&copy), dump(&src));
    assert_eq!(report.tree_pages, src_report.tree_pages);
    assert_eq!(report.entries, src_report.entries);
}

#[test]
fn overflow_runs_shared_between_refilled_tables_stay_shared() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, copy_path) = (dir.path().join("src.db"), dir.path().join("copy.db"));
    let src = Database::open(&src_path).unwrap();
    let mut rng = Rng(31);
    fill(&src, "main", "big", &mut rng, 30, 10_000);
    fill(&src, "main", "big", &mut rng, 20, 10);
    src.create_snapshot("s").unwrap();
    // One write on main: its table's root is copied, and every run now has two parents,
    // one in each version of the table; neither version has a node below its root.
    fill(&src, "main", "big", &mut rng, 1, 10);
    drain_release_queue(&src, &src_path);
    let src_report = src.check().unwrap();
    src.backup_to(&copy_path).unwrap();
    let copy = Database::open(&copy_path).unwrap();
    let report = copy.check().unwrap();
    assert_compact(&report, &copy_path);
    assert_eq!(dump(&copy), dump(&src));
    assert!(report.tree_pages <= src_report.tree_pages, "{report:?}");
    // The copy is a copy of the runs once: 30 runs of 3 pages each, shared.
    assert!(report.tree_pages < 2 * 30 * 3, "{report:?}");
}

#[test]
fn a_thinned_table_of_overflow_values_is_refilled_and_its_runs_stay_shared() {
    let dir = tempfile::tempdir().unwrap();
    let (src_path, copy_path) = (dir.path().join("src.db"), dir.path().join("copy.db"));
    let src = Database::open(&src_path).unwrap();
    const N: u32 = 2000;
    let tx = src.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in 0..N {
            t.insert(&i.to_be_bytes(), &[i as u8; 2100]).unwrap();
        }
    }
    tx.commit().unwrap();
    src.create_snapshot("s").unwrap();
    // Every leaf of main's version is rewritten, so neither version shares a node below its
    // root any more; the runs of the values kept are shared by both (count 2).
    let tx = src.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for i in (0..N).step_by(2) {
            t.remove(&i.to_be_bytes()).unwrap();
        }
    }
    tx.commit().unwrap();
    drain_release_queue(&src, &src_path);
    let src_report = src.check().unwrap();
    src.backup_to(&copy_path).unwrap();
    let copy = Database::open(&copy_path).unwrap();
    let report = copy.check().unwrap();
    assert_compact(&report, &copy_path);
    assert_eq!(dump(&copy), dump(&src));
    // Refilled leaves make it smaller; a run copied twice would make it larger by far.
    assert!(
        report.tree_pages < src_report.tree_pages,
        "copy {report:?}\nsource {src_report:?}"
    );
    assert!(report.tree_pages >= N as u64, "{report:?}");
    eprintln!("source {src_report:?}\ncopy   {report:?}");
}
