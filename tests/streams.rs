//! `send` and `receive`: faithful full and incremental copies, one stream per call, and
//! all-or-nothing receives of damaged, truncated and foreign streams.

mod common;

use common::{Model, Rng};
use shadowkv::internals::io::MemStorage;
use shadowkv::{Database, Error};
use std::sync::Arc;

fn mem_db(page_size: usize) -> Database {
    Database::options()
        .page_size(page_size)
        .open_storage(Arc::new(MemStorage::new()))
        .unwrap()
}

/// What a user can see of every snapshot and branch: names, kinds and contents.
fn visible(db: &Database) -> Vec<(String, bool, Model)> {
    let mut out = Vec::new();
    let snaps = db.snapshots().unwrap().into_iter().map(|s| (s.name, true));
    let branches = db.branches().unwrap().into_iter().map(|b| (b.name, false));
    for (name, snapshot) in snaps.chain(branches) {
        out.push((name.clone(), snapshot, contents(db, &name)));
    }
    out
}

fn contents(db: &Database, name: &str) -> Model {
    let rx = db.begin_read_at(name).unwrap();
    let mut model = Model::new();
    for table in rx.table_names().unwrap() {
        let t = rx.open_table(&table).unwrap();
        let entries = model.entry(table).or_default();
        for item in t.iter().unwrap() {
            let (k, v) = item.unwrap();
            entries.insert(k.to_vec(), v.to_vec());
        }
    }
    model
}

/// Three snapshots of a source with an empty table, overflow values, drops and re-creates.
fn source() -> (Database, Vec<(String, Model)>) {
    let db = mem_db(4096);
    let mut rng = Rng(11);
    let mut snaps = Vec::new();
    for round in 0..3 {
        let mut tx = db.begin_write().unwrap();
        tx.open_table("empty").unwrap();
        if round == 1 {
            tx.delete_table("gone").unwrap();
            tx.open_table("late").unwrap().insert(b"k", b"v").unwrap();
        } else {
            tx.open_table("gone")
                .unwrap()
                .insert(b"g", &[round as u8])
                .unwrap();
        }
        {
            let mut t = tx.open_table("main").unwrap();
            for _ in 0..400 {
                let key = format!("key{:04}", rng.below(600)).into_bytes();
                match rng.below(10) {
                    0..=2 => {
                        t.remove(&key).unwrap();
                    }
                    3 => t.insert(&key, &rng.bytes(5000)).unwrap(),
                    _ => {
                        let len = rng.below(50) as usize;
                        t.insert(&key, &rng.bytes(len)).unwrap();
                    }
                }
            }
        }
        tx.commit().unwrap();
        let name = format!("s{round}");
        db.create_snapshot(&name).unwrap();
        snaps.push((name.clone(), contents(&db, &name)));
    }
    (db, snaps)
}

fn streams(db: &Database) -> Vec<Vec<u8>> {
    let mut out = vec![Vec::new(), Vec::new(), Vec::new()];
    db.send("s0", None, &mut out[0]).unwrap();
    db.send("s1", Some("s0"), &mut out[1]).unwrap();
    db.send("s2", Some("s1"), &mut out[2]).unwrap();
    out
}

#[test]
fn concatenated_full_and_incremental_streams_make_identical_snapshots() {
    let (db, snaps) = source();
    let all: Vec<u8> = streams(&db).concat();
    // Another page size: streams carry entries, not pages.
    let replica = mem_db(8192);
    let mut input = &all[..];
    for (name, model) in &snaps {
        assert_eq!(&replica.receive(&mut input).unwrap(), name);
        assert_eq!(&contents(&replica, name), model, "{name} differs");
        replica.check().unwrap();
    }
    assert!(input.is_empty(), "every byte was read, and no more");
    // A received snapshot can seed a branch and be the base of a later stream.
    replica.create_branch("work", "s2").unwrap();
    assert_eq!(contents(&replica, "work"), snaps[2].1);
}

#[test]
fn receive_reads_exactly_one_stream() {
    let (db, _) = source();
    let first = streams(&db).swap_remove(0);
    let mut bytes = first.clone();
    bytes.extend_from_slice(b"trailing bytes of something else");
    let replica = mem_db(4096);
    let mut input = &bytes[..];
    replica.receive(&mut input).unwrap();
    assert_eq!(input, b"trailing bytes of something else");
}

#[test]
fn a_stream_sends_only_snapshots_that_exist() {
    let (db, _) = source();
    let mut out = Vec::new();
    assert!(matches!(
        db.send("main", None, &mut out),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        db.send("nope", None, &mut out),
        Err(Error::NotFound(_))
    ));
    assert!(matches!(
        db.send("s1", Some("nope"), &mut out),
        Err(Error::NotFound(_))
    ));
}

fn assert_refused(replica: &Database, stream: &[u8], what: &str) -> Error {
    let before = visible(replica);
    let err = replica.receive(stream).expect_err(what);
    assert_eq!(visible(replica), before, "{what} changed what a user sees");
    replica.check().unwrap();
    err
}

#[test]
fn refused_streams_leave_the_replica_as_it_was() {
    let (db, _) = source();
    let s = streams(&db);
    let replica = mem_db(4096);
    let err = assert_refused(&replica, &s[1], "an incremental stream without its base");
    assert!(matches!(err, Error::NotFound(_)), "{err}");
    replica.receive(&s[0][..]).unwrap();
    let err = assert_refused(&replica, &s[0], "a name already in use");
    assert!(matches!(err, Error::AlreadyExists(_)), "{err}");
    let err = assert_refused(
        &replica,
        b"SQLite format 3\0 and more bytes",
        "a foreign file",
    );
    assert!(matches!(err, Error::BadStream { .. }), "{err}");
    // A well-formed header whose creation time no listing could show.
    let mut far = s[1].clone();
    let name_len = u32::from_le_bytes(far[64..68].try_into().unwrap()) as usize;
    far[56..64].copy_from_slice(&u64::MAX.to_le_bytes());
    let crc = shadowkv::internals::format::checksum(&far[..72 + name_len]);
    far[72 + name_len..76 + name_len].copy_from_slice(&crc.to_le_bytes());
    let err = assert_refused(&replica, &far, "a creation time out of range");
    assert!(matches!(err, Error::BadStream { .. }), "{err}");
    let mut newer = s[1].clone();
    newer[8] = 9; // the version
    let err = assert_refused(&replica, &newer, "a newer version");
    assert!(
        matches!(err, Error::UnsupportedVersion { found: 9, .. }),
        "{err}"
    );
    replica.receive(&s[1][..]).unwrap();
}

#[test]
fn every_truncation_and_every_flipped_byte_is_refused() {
    let (db, _) = source();
    // A small incremental stream, so that every byte can be tried.
    let tx = db.begin_write().unwrap();
    tx.open_table("main")
        .unwrap()
        .insert(b"one", b"more")
        .unwrap();
    tx.open_table("extra")
        .unwrap()
        .insert(b"x", &[7; 3000])
        .unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s3").unwrap();
    let mut stream = Vec::new();
    db.send("s3", Some("s2"), &mut stream).unwrap();
    let replica = mem_db(4096);
    for s in &streams(&db) {
        replica.receive(&s[..]).unwrap();
    }
    for len in 0..stream.len() {
        let err = assert_refused(&replica, &stream[..len], "a truncated stream");
        assert!(
            matches!(err, Error::BadStream { .. }),
            "cut at {len}: {err}"
        );
    }
    for i in (0..stream.len()).step_by(if stream.len() > 4000 { 7 } else { 1 }) {
        let mut bad = stream.clone();
        bad[i] ^= 0x10;
        let err = assert_refused(&replica, &bad, "a damaged stream");
        assert!(
            matches!(
                err,
                Error::BadStream { .. } | Error::UnsupportedVersion { .. }
            ),
            "byte {i}: {err}"
        );
    }
    replica.receive(&stream[..]).unwrap();
    assert_eq!(contents(&replica, "s3"), contents(&db, "s3"));
}

#[test]
fn a_big_full_receive_spans_several_commits_and_fills_pages_like_a_bulk_load() {
    let db = mem_db(4096);
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("big").unwrap();
        let mut rng = Rng(3);
        for _ in 0..200_000 {
            t.insert(&rng.bytes(20), &rng.bytes(100)).unwrap();
        }
    }
    tx.commit().unwrap();
    db.create_snapshot("all").unwrap();
    let mut stream = Vec::new();
    db.send("all", None, &mut stream).unwrap();
    assert!(
        stream.len() > 20 << 20,
        "the stream spans two receive chunks"
    );
    let replica = mem_db(4096);
    let before = replica.begin_read().unwrap().txn_id();
    replica.receive(&stream[..]).unwrap();
    // Bounded memory: the staging root took the stream in chunks, a commit each (with the
    // commit that creates it and the one that publishes it).
    let commits = replica.begin_read().unwrap().txn_id() - before;
    assert!(
        commits >= 4,
        "a stream of {} bytes in {commits} commits",
        stream.len()
    );
    assert_eq!(contents(&replica, "all"), contents(&db, "all"));
    let (src, dst) = (db.check().unwrap(), replica.check().unwrap());
    assert!(
        dst.tree_pages <= src.tree_pages + src.tree_pages / 20,
        "received {} tree pages for the bulk load's {}",
        dst.tree_pages,
        src.tree_pages
    );
}

/// The fuzz target's checksum fixer leaves real streams as they are, and makes a stream whose
/// value bytes were changed valid again (so that the fuzzer's mutations reach the receiver's
/// logic behind the checksums).
#[test]
fn the_fuzz_checksum_fixer_makes_edited_streams_valid() {
    let (db, _) = source();
    let all: Vec<u8> = streams(&db).concat();
    let mut same = all.clone();
    shadowkv::testkit::fuzz::fix_stream_checksums(&mut same);
    assert!(same == all, "real streams are left as they are");
    let mut edited = all.clone();
    let at = edited.len() / 3;
    edited[at] ^= 0x40;
    assert!(mem_db(4096).receive(&edited[..]).is_err() || at > streams(&db)[0].len());
    shadowkv::testkit::fuzz::fix_stream_checksums(&mut edited);
    let replica = mem_db(4096);
    let mut input = &edited[..];
    let mut received = 0;
    while !input.is_empty() && replica.receive(&mut input).is_ok() {
        received += 1;
    }
    assert!(
        received >= 1,
        "an edited value byte passes once the checksums are fixed"
    );
    replica.check().unwrap();
}
