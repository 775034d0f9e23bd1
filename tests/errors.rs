//! Errors that say what went wrong and where: the path of a file that would not open, the
//! kind of name that was not found or is taken, why `main` cannot be deleted; and the
//! counts and times the API reports about `main` (its creation time, `CheckReport`'s
//! `main_*` fields next to the totals across roots).

use shadowkv::{Database, Error};
use std::time::{Duration, SystemTime};

fn db_with_one_table(dir: &tempfile::TempDir) -> Database {
    let db = Database::open(dir.path().join("e.db")).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("users").unwrap();
        t.insert(b"alice", b"1").unwrap();
        t.insert(b"bob", b"2").unwrap();
    }
    tx.commit().unwrap();
    db
}

#[test]
fn open_in_a_missing_directory_names_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("x.db");
    let e = Database::open(&path).expect_err("the directory is missing");
    // Still an `Error::Io` with the operating system's kind, for callers that match on it.
    match &e {
        Error::Io(io) => assert_eq!(io.kind(), std::io::ErrorKind::NotFound),
        other => panic!("expected Error::Io, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn not_found_names_the_kind() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_one_table(&dir);
    let cases: Vec<(Error, &str)> = vec![
        (
            db.begin_read().unwrap().open_table("nope").err().unwrap(),
            "table \"nope\"",
        ),
        (
            db.begin_read_at("ghost").err().unwrap(),
            "snapshot or branch \"ghost\"",
        ),
        (
            db.delete_snapshot("ghost").err().unwrap(),
            "snapshot \"ghost\"",
        ),
        (db.delete_branch("ghost").err().unwrap(), "branch \"ghost\""),
        (
            db.create_branch("b", "ghost").err().unwrap(),
            "snapshot or branch \"ghost\"",
        ),
        (
            db.restore("main", "ghost").err().unwrap(),
            "snapshot or branch \"ghost\"",
        ),
        (
            db.restore("ghost", "main").err().unwrap(),
            "branch \"ghost\"",
        ),
        (
            db.begin_write_on("ghost").err().unwrap(),
            "branch \"ghost\"",
        ),
    ];
    for (e, want) in cases {
        assert!(matches!(e, Error::NotFound(_)), "{e:?}");
        assert!(e.to_string().contains(want), "{e} should name {want}");
    }
}

#[test]
fn already_exists_names_the_kind() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_one_table(&dir);
    db.create_snapshot("s").unwrap();
    for e in [
        db.create_snapshot("s").err().unwrap(),
        db.create_branch("s", "main").err().unwrap(),
    ] {
        assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
        assert!(e.to_string().contains("snapshot or branch \"s\""), "{e}");
    }
}

#[test]
fn deleting_main_says_main_cannot_be_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_one_table(&dir);
    let e = db.delete_branch("main").expect_err("main is never deleted");
    assert!(matches!(e, Error::InvalidArgument(_)), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("main cannot be deleted"), "{msg}");
    assert!(!msg.contains("in use"), "{msg}");
}

#[test]
fn main_creation_time_is_its_first_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_one_table(&dir);
    let main = db.branches().unwrap();
    let main = main.iter().find(|b| b.name == "main").unwrap();
    let age = SystemTime::now()
        .duration_since(main.created)
        .unwrap_or(Duration::ZERO);
    assert!(age < Duration::from_secs(60), "main created {age:?} ago");
    // Kept by later commits and across a reopen.
    let created = main.created;
    drop(db);
    let db = Database::open(dir.path().join("e.db")).unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table("users")
        .unwrap()
        .insert(b"carol", b"3")
        .unwrap();
    tx.commit().unwrap();
    let branches = db.branches().unwrap();
    let main = branches.iter().find(|b| b.name == "main").unwrap();
    assert_eq!(main.created, created);
}

#[test]
fn check_report_counts_main_apart_from_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_one_table(&dir);
    db.create_snapshot("before").unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("users").unwrap();
        t.insert(b"carol", b"3").unwrap();
        t.remove(b"alice").unwrap();
    }
    tx.open_table("more").unwrap().insert(b"k", b"v").unwrap();
    tx.commit().unwrap();
    let report = db.check().unwrap();
    // main: users {bob, carol} and more {k}; the snapshot: users {alice, bob}.
    assert_eq!((report.main_tables, report.main_entries), (2, 3));
    assert_eq!((report.tables, report.entries), (3, 5));
    db.delete_snapshot("before").unwrap();
    let report = db.check().unwrap();
    assert_eq!((report.main_tables, report.main_entries), (2, 3));
}
