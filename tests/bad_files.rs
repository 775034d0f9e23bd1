//! Opening each kind of bad file gives a clear error, never a panic, and never writes.

use shadowkv::{Database, Error};
use std::path::Path;

fn make_db(path: &Path) {
    let db = Database::open(path).unwrap();
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_table("t").unwrap();
    for i in 0..5000u32 {
        t.insert(&i.to_be_bytes(), &[3u8; 100]).unwrap();
    }
    tx.commit().unwrap();
}

/// Opens `path` expecting an error, and checks the file is unchanged afterwards.
fn open_err(path: &Path) -> Error {
    let before = std::fs::read(path).unwrap();
    let err = match Database::open(path) {
        Ok(_) => panic!("opening a bad file succeeded"),
        Err(e) => e,
    };
    assert_eq!(
        std::fs::read(path).unwrap(),
        before,
        "a failed open wrote to the file"
    );
    err
}

#[test]
fn not_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("text.db");
    std::fs::write(
        &path,
        "hello, this is a text file and not a database\n".repeat(500),
    )
    .unwrap();
    assert!(matches!(open_err(&path), Error::NotADatabase { .. }));
    std::fs::write(&path, vec![0u8; 8192]).unwrap();
    assert!(matches!(open_err(&path), Error::NotADatabase { .. }));
    std::fs::write(&path, b"x").unwrap();
    assert!(matches!(open_err(&path), Error::NotADatabase { .. }));
}

#[test]
fn unsupported_version() {
    use shadowkv::internals::format::meta::META_BYTES;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v.db");
    make_db(&path);
    let good = std::fs::read(&path).unwrap();
    // A genuine newer version (its checksum holds) in both slots.
    let mut bytes = good.clone();
    for slot in [0usize, 4096] {
        bytes[slot + 8..slot + 12].copy_from_slice(&99u32.to_le_bytes());
        let crc = shadowkv::internals::format::checksum(&bytes[slot..slot + META_BYTES - 4]);
        bytes[slot + META_BYTES - 4..slot + META_BYTES].copy_from_slice(&crc.to_le_bytes());
    }
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        open_err(&path),
        Error::UnsupportedVersion { found: 99, .. }
    ));
    // A damaged version field in one slot is a torn slot: the other one opens.
    let mut bytes = good.clone();
    bytes[8] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let db = Database::open(&path).unwrap();
    db.check().unwrap();
}

#[test]
fn truncated_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    make_db(&path);
    let full = std::fs::read(&path).unwrap();
    for len in [full.len() / 2, 9000, 5000, 100] {
        std::fs::write(&path, &full[..len]).unwrap();
        let err = open_err(&path);
        assert!(
            matches!(err, Error::Truncated { .. }),
            "length {len}: {err}"
        );
    }
}

#[test]
fn locked_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let db = Database::open(&path).unwrap();
    assert!(matches!(Database::open(&path), Err(Error::Locked)));
    drop(db);
    Database::open(&path).unwrap();
}

#[test]
fn bad_page_sizes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    for size in [0, 512, 1000, 4095, 131072] {
        let r = Database::options()
            .page_size(size)
            .open(dir.path().join("p.db"));
        assert!(
            matches!(r, Err(Error::InvalidArgument(_))),
            "page size {size}"
        );
    }
    assert!(!dir.path().join("p.db").exists());
}
