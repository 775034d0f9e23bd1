//! Never hang on yourself: every call that waits for the writer slot returns
//! `Error::WouldDeadlock` at once when the calling thread's own `WriteTxn` holds the slot,
//! works once that transaction is gone, and still waits for another thread's writer.
//! `try_begin_write` answers at once; readers are never refused.
//!
//! Each body runs on a helper thread under a 10 s guard, so that a regression fails the test
//! instead of hanging the suite.

use shadowkv::{Database, Durability, Error, Result};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use tempfile::TempDir;

/// Long enough for a loaded machine, short enough for a hang to fail the run soon.
const GUARD: Duration = Duration::from_secs(10);

/// Runs `body` on its own thread and fails if it panics or takes longer than `GUARD`. A hung
/// thread is left behind: the test fails either way.
fn within_guard(what: &str, body: impl FnOnce() + Send + 'static) {
    let (done, finished) = mpsc::channel();
    let handle = thread::spawn(move || {
        body();
        let _ = done.send(());
    });
    match finished.recv_timeout(GUARD) {
        Ok(()) => handle.join().unwrap(),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the body ends by sending"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what} hung for {GUARD:?}"),
    }
}

/// A database with a table on `main`, snapshot `s0` and branch `b0` to work on.
fn setup() -> (TempDir, Arc<Database>) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::options()
        .durability(Durability::Eventual)
        .open(dir.path().join("deadlock.db"))
        .unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table("t").unwrap().insert(b"k", b"v").unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s0").unwrap();
    db.create_branch("b0", "s0").unwrap();
    (dir, Arc::new(db))
}

/// A full send stream of snapshot `r`, from a database of its own.
fn stream() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let source = Database::open(dir.path().join("source.db")).unwrap();
    let tx = source.begin_write().unwrap();
    tx.open_table("r").unwrap().insert(b"a", b"1").unwrap();
    tx.commit().unwrap();
    source.create_snapshot("r").unwrap();
    let mut out = Vec::new();
    source.send("r", None, &mut out).unwrap();
    out
}

fn assert_would_deadlock<T>(what: &str, result: Result<T>) {
    match result {
        Err(Error::WouldDeadlock) => {}
        Err(e) => panic!("{what}: expected WouldDeadlock, got {e}"),
        Ok(_) => panic!("{what}: expected WouldDeadlock, got Ok"),
    }
}

/// With a `WriteTxn` open on this thread (committed at the end when `commit`, else dropped),
/// `call` is refused at once; the transaction still works; once it is gone, `call` works.
fn refused_then_works(
    what: &'static str,
    commit: bool,
    mut call: impl FnMut(&Database) -> Result<()> + Send + 'static,
) {
    let (_dir, db) = setup();
    within_guard(what, move || {
        let tx = db.begin_write().unwrap();
        tx.open_table("t").unwrap().insert(b"held", b"1").unwrap();
        assert_would_deadlock(what, call(&db));
        // The refusal left the open transaction alone.
        assert_eq!(
            tx.open_table("t").unwrap().get(b"held").unwrap().as_deref(),
            Some(&b"1"[..])
        );
        if commit {
            tx.commit().unwrap();
        } else {
            drop(tx);
        }
        call(&db).unwrap_or_else(|e| panic!("{what} after the transaction ended: {e}"));
        db.check().unwrap();
    });
}

#[test]
fn begin_write_is_refused_then_works() {
    refused_then_works("begin_write", true, |db| db.begin_write().map(drop));
}

#[test]
fn begin_write_on_is_refused_then_works() {
    refused_then_works("begin_write_on", false, |db| {
        db.begin_write_on("b0").map(drop)
    });
}

#[test]
fn try_begin_write_is_refused_on_its_own_thread() {
    refused_then_works("try_begin_write", true, |db| {
        let tx = db.try_begin_write()?;
        assert!(tx.is_some(), "the slot is free once the transaction ended");
        Ok(())
    });
    refused_then_works("try_begin_write_on", false, |db| {
        let tx = db.try_begin_write_on("b0")?;
        assert!(tx.is_some(), "the slot is free once the transaction ended");
        Ok(())
    });
}

#[test]
fn create_snapshot_is_refused_then_works() {
    refused_then_works("create_snapshot", true, |db| db.create_snapshot("s1"));
}

#[test]
fn create_branch_is_refused_then_works() {
    refused_then_works("create_branch", false, |db| db.create_branch("b1", "s0"));
}

#[test]
fn restore_is_refused_then_works() {
    refused_then_works("restore", true, |db| db.restore("b0", "s0"));
}

#[test]
fn delete_snapshot_is_refused_then_works() {
    refused_then_works("delete_snapshot", false, |db| db.delete_snapshot("s0"));
}

#[test]
fn delete_branch_is_refused_then_works() {
    refused_then_works("delete_branch", true, |db| db.delete_branch("b0"));
}

#[test]
fn sync_is_refused_then_works() {
    refused_then_works("sync", false, |db| db.sync());
}

#[test]
fn compact_is_refused_then_works() {
    refused_then_works("compact", true, |db| db.compact().map(drop));
}

#[test]
fn receive_is_refused_without_reading_the_stream_then_works() {
    let bytes = stream();
    let len = bytes.len() as u64;
    // One reader over both calls: had the refused call consumed the header, the second
    // would fail on a stream that starts mid-way.
    let mut input = std::io::Cursor::new(bytes);
    refused_then_works("receive", false, move |db| {
        let name = db.receive(&mut input)?;
        assert_eq!(name, "r");
        assert_eq!(input.position(), len, "exactly one stream read");
        Ok(())
    });
}

#[test]
fn a_transaction_on_a_branch_also_refuses_its_thread() {
    let (_dir, db) = setup();
    within_guard("begin_write under begin_write_on", move || {
        let tx = db.begin_write_on("b0").unwrap();
        assert_would_deadlock("begin_write", db.begin_write());
        assert_would_deadlock("create_snapshot", db.create_snapshot("s1"));
        tx.commit().unwrap();
        db.begin_write().unwrap().commit().unwrap();
    });
}

#[test]
fn the_error_says_what_to_do() {
    let message = Error::WouldDeadlock.to_string();
    assert!(message.contains("already open on this thread"), "{message}");
    assert!(message.contains("commit or drop"), "{message}");
}

#[test]
fn readers_are_never_refused_on_the_writers_thread() {
    let (dir, db) = setup();
    let backup = dir.path().join("backup.db");
    within_guard("reads under an open WriteTxn", move || {
        let tx = db.begin_write().unwrap();
        tx.open_table("t").unwrap().insert(b"k", b"new").unwrap();
        let rx = db.begin_read().unwrap();
        assert_eq!(
            rx.open_table("t").unwrap().get(b"k").unwrap(),
            Some(&b"v"[..])
        );
        let at = db.begin_read_at("b0").unwrap();
        assert_eq!(at.open_table("t").unwrap().len().unwrap(), 1);
        assert_eq!(db.snapshots().unwrap().len(), 1);
        assert_eq!(db.branches().unwrap().len(), 2);
        db.check().unwrap();
        db.stats().unwrap();
        db.send("s0", None, std::io::sink()).unwrap();
        db.backup_to(&backup).unwrap();
        tx.commit().unwrap();
    });
}

#[test]
fn other_threads_get_busy_at_once_or_wait_their_turn() {
    let (_dir, db) = setup();
    within_guard("a writer on another thread", move || {
        another_threads_writer(&db)
    });
}

/// Thread A holds the slot; this thread's `try_begin_write` answers `None` at once, reads go
/// on, and a plain `begin_write` on thread C waits until A commits, then sees A's write.
fn another_threads_writer(db: &Arc<Database>) {
    let (holding, held) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let a = {
        let db = Arc::clone(db);
        thread::spawn(move || {
            let tx = db.begin_write().unwrap();
            tx.open_table("t").unwrap().insert(b"a", b"1").unwrap();
            holding.send(()).unwrap();
            released.recv().unwrap();
            tx.commit().unwrap();
        })
    };
    held.recv_timeout(GUARD).unwrap();
    assert!(db.try_begin_write().unwrap().is_none());
    assert!(db.try_begin_write_on("b0").unwrap().is_none());
    assert!(db.begin_read().unwrap().open_table("t").is_ok());

    let (got, c_has_slot) = mpsc::channel();
    let c = {
        let db = Arc::clone(db);
        thread::spawn(move || {
            let tx = db.begin_write().unwrap();
            got.send(()).unwrap();
            let seen = tx
                .open_table("t")
                .unwrap()
                .get(b"a")
                .unwrap()
                .map(|v| v.into_owned());
            tx.open_table("t").unwrap().insert(b"c", b"3").unwrap();
            tx.commit().unwrap();
            seen
        })
    };
    // C must still be waiting: A has not let go.
    let early = c_has_slot.recv_timeout(Duration::from_millis(300));
    assert_eq!(
        early,
        Err(mpsc::RecvTimeoutError::Timeout),
        "C did not wait"
    );
    release.send(()).unwrap();
    c_has_slot.recv_timeout(GUARD).unwrap();
    a.join().unwrap();
    assert_eq!(
        c.join().unwrap().as_deref(),
        Some(&b"1"[..]),
        "C began after A's commit"
    );
    let tx = db
        .try_begin_write()
        .unwrap()
        .expect("the slot is free again");
    assert_eq!(tx.branch(), "main");
    drop(tx);
    let rx = db.begin_read().unwrap();
    assert_eq!(rx.open_table("t").unwrap().len().unwrap(), 3);
}
