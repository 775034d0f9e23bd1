//! `Options::read_only`: a read-only open never writes a byte of the file (not even after a
//! crash or after commits that were never made durable), read-only handles share the file,
//! a writer and a read-only handle exclude each other (`Error::Locked`), and every writing
//! method answers `Error::ReadOnlyDatabase`.

use shadowkv::{Database, Durability, Error};
use std::path::Path;
use std::time::SystemTime;

fn read_only(path: &Path) -> shadowkv::Result<Database> {
    Database::options().read_only(true).open(path)
}

/// The file's bytes, length and modification time.
fn fingerprint(path: &Path) -> (Vec<u8>, u64, SystemTime) {
    let meta = std::fs::metadata(path).unwrap();
    (
        std::fs::read(path).unwrap(),
        meta.len(),
        meta.modified().unwrap(),
    )
}

/// Entries in table "t" of main.
fn len_of_t(db: &Database) -> u64 {
    db.begin_read()
        .unwrap()
        .open_table("t")
        .unwrap()
        .len()
        .unwrap()
}

fn put(db: &Database, table: &str, key: &[u8], value: &[u8], durability: Durability) {
    let mut tx = db.begin_write().unwrap();
    tx.set_durability(durability);
    tx.open_table(table).unwrap().insert(key, value).unwrap();
    tx.commit().unwrap();
}

/// Everything a read-only handle may do: reads of every root, listings, stats, check, a
/// send and a backup to a new file.
fn read_everything(db: &Database, backup: &Path) {
    for name in ["main", "snap"] {
        let rx = db.begin_read_at(name).unwrap();
        for t in rx.table_names().unwrap() {
            let table = rx.open_table(&t).unwrap();
            for item in table.iter().unwrap() {
                item.unwrap();
            }
        }
    }
    assert_eq!(db.snapshots().unwrap().len(), 1);
    assert_eq!(db.branches().unwrap().len(), 2);
    db.stats().unwrap();
    db.check().unwrap();
    let mut stream = Vec::new();
    db.send("snap", None, &mut stream).unwrap();
    assert!(!stream.is_empty());
    db.backup_to(backup).unwrap();
    Database::open(backup).unwrap().check().unwrap();
}

/// A database with a snapshot, a branch and, last, a commit that was not made durable.
fn build(path: &Path) {
    let db = Database::open(path).unwrap();
    for i in 0..50u32 {
        let value = vec![i as u8; 100 + i as usize * 40];
        put(&db, "t", &i.to_be_bytes(), &value, Durability::Immediate);
    }
    db.create_snapshot("snap").unwrap();
    db.create_branch("dev", "snap").unwrap();
    put(&db, "t", b"last", &[7u8; 3000], Durability::Eventual);
    assert!(format!("{db:?}").contains("txn"));
}

#[test]
fn read_only_open_writes_no_byte_even_of_an_unsynced_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    build(&path);
    let before = fingerprint(&path);
    // Let a write show in the mtime if one happened.
    std::thread::sleep(std::time::Duration::from_millis(20));
    {
        let db = read_only(&path).unwrap();
        let rx = db.begin_read().unwrap();
        // The last (Eventual) commit is there: opened from the newest valid meta.
        assert_eq!(
            rx.open_table("t").unwrap().get(b"last").unwrap(),
            Some(&[7u8; 3000][..])
        );
        drop(rx);
        read_everything(&db, &dir.path().join("backup"));
    }
    assert!(
        fingerprint(&path) == before,
        "a read-only open changed the file"
    );
}

#[test]
fn read_only_open_of_a_crash_state_does_not_repair_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let db = Database::open(&path).unwrap();
    put(&db, "t", b"a", &[1u8; 500], Durability::Immediate);
    drop(db);
    let durable = std::fs::read(&path).unwrap();
    let db = Database::open(&path).unwrap();
    put(&db, "t", b"b", &[2u8; 20_000], Durability::Eventual);
    drop(db);
    // The pages the unsynced commit wrote are lost (garbage), its meta survived: the newer
    // meta's checksum holds but its commit does not verify.
    let mut crashed = std::fs::read(&path).unwrap();
    let page = 4096;
    for at in (2 * page..crashed.len()).step_by(page) {
        let end = (at + page).min(crashed.len());
        // The meta page of the commit chain survived, as a slot would.
        if durable.get(at..end) != Some(&crashed[at..end])
            && !crashed[at..].starts_with(b"SHADOWKV")
        {
            crashed[at + 100] ^= 0x5A;
        }
    }
    std::fs::write(&path, &crashed).unwrap();
    let before = fingerprint(&path);
    std::thread::sleep(std::time::Duration::from_millis(20));
    {
        let db = read_only(&path).unwrap();
        let rx = db.begin_read().unwrap();
        let t = rx.open_table("t").unwrap();
        assert_eq!(t.get(b"a").unwrap(), Some(&[1u8; 500][..]));
        assert_eq!(
            t.get(b"b").unwrap(),
            None,
            "fell back to the durable commit"
        );
        drop(t);
        drop(rx);
        db.check().unwrap();
    }
    assert!(
        fingerprint(&path) == before,
        "a read-only open repaired the file"
    );
    // A writable open does retire the rejected meta: the file changes.
    let db = Database::open(&path).unwrap();
    assert_eq!(len_of_t(&db), 1);
    drop(db);
    assert!(std::fs::read(&path).unwrap() != before.0);
}

#[test]
fn read_only_handles_share_and_exclude_writers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let writer = Database::open(&path).unwrap();
    put(&writer, "t", b"k", b"v", Durability::Immediate);
    // A writer holds the file: a read-only open is refused at once.
    assert!(matches!(read_only(&path), Err(Error::Locked)));
    drop(writer);
    let a = read_only(&path).unwrap();
    let b = read_only(&path).unwrap();
    assert_eq!(
        b.begin_read()
            .unwrap()
            .open_table("t")
            .unwrap()
            .get(b"k")
            .unwrap(),
        Some(&b"v"[..])
    );
    // Readers hold the file: a writer is refused, with either one still open.
    assert!(matches!(Database::open(&path), Err(Error::Locked)));
    drop(a);
    assert!(matches!(Database::open(&path), Err(Error::Locked)));
    drop(b);
    Database::open(&path).unwrap();
}

#[test]
fn read_only_open_needs_an_existing_database() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(read_only(&missing), Err(Error::Io(_))));
    assert!(!missing.exists(), "a read-only open created the file");
    let empty = dir.path().join("empty");
    std::fs::write(&empty, b"").unwrap();
    assert!(matches!(read_only(&empty), Err(Error::NotFound(_))));
    assert_eq!(std::fs::metadata(&empty).unwrap().len(), 0);
}

#[test]
fn every_writing_method_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    build(&path);
    let mut stream = Vec::new();
    {
        let db = Database::open(&path).unwrap();
        db.send("snap", None, &mut stream).unwrap();
    }
    let before = fingerprint(&path);
    let db = read_only(&path).unwrap();
    let refused = |what: &str, r: shadowkv::Result<()>| match r {
        Err(Error::ReadOnlyDatabase) => {}
        other => panic!("{what}: {other:?}"),
    };
    refused("begin_write", db.begin_write().map(drop));
    refused("begin_write_on", db.begin_write_on("dev").map(drop));
    refused("try_begin_write", db.try_begin_write().map(drop));
    refused("try_begin_write_on", db.try_begin_write_on("dev").map(drop));
    refused("create_snapshot", db.create_snapshot("s2"));
    refused("create_branch", db.create_branch("b2", "snap"));
    refused("restore", db.restore("main", "snap"));
    refused("delete_snapshot", db.delete_snapshot("snap"));
    refused("delete_branch", db.delete_branch("dev"));
    refused("sync", db.sync());
    refused("compact", db.compact().map(drop));
    let mut input = &stream[..];
    refused("receive", db.receive(&mut input).map(drop));
    assert_eq!(input.len(), stream.len(), "receive read the stream");
    let message = Error::ReadOnlyDatabase.to_string();
    assert!(message.contains("read-only"), "{message}");
    // Still readable, and nothing was written.
    assert_eq!(len_of_t(&db), 51);
    drop(db);
    assert!(fingerprint(&path) == before);
}
