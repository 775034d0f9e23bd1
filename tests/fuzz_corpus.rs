//! Replays every committed fuzz corpus file (`fuzz/corpus/<target>/*`) through the same
//! bodies the cargo-fuzz targets call (`shadowkv::testkit::fuzz::*`), on stable and without
//! libFuzzer. Each input runs under `catch_unwind`, so a failure names the file.
//!
//! The seed corpus was written by the ignored test `write_seed_corpus` below
//! (`cargo test --release --test fuzz_corpus -- --ignored`), then extended with a few inputs
//! the fuzzer found.

mod common;

use common::Rng;
use shadowkv::internals::io::MemStorage;
use shadowkv::testkit::fuzz;
use shadowkv::{Database, Durability};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    out.sort();
    out
}

fn replay(target: &str, body: fn(&[u8])) {
    let dir = corpus_dir(target);
    let files = files(&dir);
    assert!(!files.is_empty(), "no corpus files in {}", dir.display());
    let mut failures = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap();
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failures.push(path.display().to_string());
        }
    }
    eprintln!("{target}: replayed {} corpus files", files.len());
    assert!(
        failures.is_empty(),
        "{target}: these inputs panicked: {failures:#?}"
    );
}

#[test]
fn replay_ops_corpus() {
    replay("ops", fuzz::ops);
}

#[test]
fn replay_open_bytes_corpus() {
    replay("open_bytes", fuzz::open_bytes);
}

#[test]
fn replay_node_decode_corpus() {
    replay("node_decode", fuzz::node_decode);
}

#[test]
fn replay_receive_bytes_corpus() {
    replay("receive_bytes", shadowkv::testkit::fuzz::receive_bytes);
}

/// The seed corpus must contain a real database file of the current format, and it must
/// open and pass `check`. After a format change the seeds are stale (they open as
/// `UnsupportedVersion` and the fuzzer learns little from them): this says so loudly without
/// failing; regenerate them with `write_seed_corpus`.
#[test]
fn open_bytes_corpus_holds_a_real_database() {
    let real = corpus_dir("open_bytes").join("db-small");
    let bytes = std::fs::read(&real).unwrap();
    match Database::options()
        .verify_reads(true)
        .open_storage(Arc::new(MemStorage::from_bytes(bytes)))
    {
        Ok(db) => {
            db.check().unwrap();
            assert!(!db.snapshots().unwrap().is_empty());
        }
        Err(shadowkv::Error::UnsupportedVersion { found, supported }) => eprintln!(
            "WARNING: fuzz/corpus/open_bytes/db-small is format {found}, this build writes \
             {supported}: regenerate the seeds with \
             `cargo test --release --test fuzz_corpus -- --ignored write_seed_corpus`"
        ),
        Err(e) => panic!("the real database seed does not open: {e}"),
    }
}

/// A small real database: two byte tables (one with an overflow value) and a typed one, a
/// snapshot, a branch with its own change, a deleted table; `eventual` leaves the last commit unsynced in the
/// meta (its `durable_txn` lags), so recovery verifies it.
fn small_database(eventual: bool) -> Vec<u8> {
    let storage = Arc::new(MemStorage::new());
    let db = Database::options().open_storage(storage.clone()).unwrap();
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t1").unwrap();
        for i in 0..60u32 {
            t.insert(format!("key{i:04}").as_bytes(), &[i as u8; 60])
                .unwrap();
        }
        let mut t = tx.open_table("t2").unwrap();
        t.insert(b"big", &vec![0xAB; 5000]).unwrap();
        t.insert(b"small", b"v").unwrap();
        tx.open_table("gone").unwrap().insert(b"x", b"y").unwrap();
        let typed = shadowkv::TableDef::<u32, &str>::new("typed");
        tx.open_typed(&typed).unwrap().insert(1, "one").unwrap();
    }
    tx.commit().unwrap();
    db.create_snapshot("s1").unwrap();
    db.create_branch("b1", "s1").unwrap();
    let tx = db.begin_write_on("b1").unwrap();
    tx.open_table("t1").unwrap().remove(b"key0003").unwrap();
    tx.commit().unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.delete_table("gone").unwrap();
    tx.open_table("t1")
        .unwrap()
        .insert(b"key0100", b"new")
        .unwrap();
    if eventual {
        tx.set_durability(Durability::Eventual);
    }
    tx.commit().unwrap();
    drop(db);
    storage.to_bytes()
}

/// Writes the seed corpus. Run by hand; the files are committed.
#[test]
#[ignore]
fn write_seed_corpus() {
    let mut rng = Rng(0x5EED);
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), data).unwrap();
    };
    // ops: random byte strings of several sizes (every byte string decodes to ops).
    for (i, len) in [16usize, 200, 700, 1500, 3000].into_iter().enumerate() {
        let data = rng.bytes(len);
        write("ops", &format!("random-{i}"), &data);
    }
    // open_bytes: real files, a fresh one, and a few damaged or cut ones.
    let small = small_database(false);
    let eventual = small_database(true);
    write("open_bytes", "db-small", &small);
    write("open_bytes", "db-eventual", &eventual);
    let fresh = {
        let storage = Arc::new(MemStorage::new());
        drop(Database::options().open_storage(storage.clone()).unwrap());
        storage.to_bytes()
    };
    write("open_bytes", "db-fresh", &fresh);
    write("open_bytes", "db-cut", &small[..small.len() / 2]);
    write("open_bytes", "meta-only", &small[..4096]);
    write("open_bytes", "random", &rng.bytes(9000));
    // node_decode: real pages of each kind, a zero page, random bytes with a leaf tag.
    let ps = 4096;
    let mut kinds = std::collections::BTreeMap::new();
    for (id, page) in small.chunks(ps).enumerate().skip(2) {
        if (1..=5).contains(&page[0]) {
            kinds.entry(page[0]).or_insert((id, page.to_vec()));
        }
    }
    for (tag, (id, page)) in &kinds {
        write("node_decode", &format!("page-tag{tag}-id{id}"), page);
    }
    write("node_decode", "zeros", &[0u8; 4096]);
    let mut leafish = rng.bytes(4096);
    leafish[0] = 1;
    leafish[1] = 0;
    write("node_decode", "leaf-tag-random", &leafish);
    write("node_decode", "short", &[2, 1, 1, 0]);
    // receive_bytes: a full stream, then incremental ones on top of it, and random bytes.
    let streams = seed_streams();
    write("receive_bytes", "full", &streams[0]);
    write("receive_bytes", "full-incr", &streams[..2].concat());
    write("receive_bytes", "full-incr-incr", &streams.concat());
    write("receive_bytes", "random", &rng.bytes(300));
}

/// Three streams of a small database: s1 whole, s2 since s1, s3 since s2 (a deleted table,
/// an empty one, an overflow value, removes and overwrites, a typed table created again with
/// other types).
fn seed_streams() -> Vec<Vec<u8>> {
    let db = Database::options()
        .open_storage(Arc::new(MemStorage::new()))
        .unwrap();
    let tx = db.begin_write().unwrap();
    for i in 0..20u32 {
        let mut t = tx.open_table("t1").unwrap();
        t.insert(format!("key{i:02}").as_bytes(), &[i as u8; 30])
            .unwrap();
    }
    tx.open_table("gone").unwrap().insert(b"x", b"y").unwrap();
    let typed = shadowkv::TableDef::<u32, &str>::new("typed");
    tx.open_typed(&typed).unwrap().insert(1, "one").unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s1").unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.delete_table("gone").unwrap();
    tx.delete_table("typed").unwrap();
    let retyped = shadowkv::TableDef::<u64, bool>::new("typed");
    tx.open_typed(&retyped).unwrap().insert(2, true).unwrap();
    tx.open_table("empty").unwrap();
    tx.open_table("t1").unwrap().remove(b"key03").unwrap();
    tx.open_table("t1")
        .unwrap()
        .insert(b"big", &[0xAB; 5000])
        .unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s2").unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_table("t1")
        .unwrap()
        .insert(b"key04", b"new")
        .unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s3").unwrap();
    let mut out = vec![Vec::new(), Vec::new(), Vec::new()];
    db.send("s1", None, &mut out[0]).unwrap();
    db.send("s2", Some("s1"), &mut out[1]).unwrap();
    db.send("s3", Some("s2"), &mut out[2]).unwrap();
    out
}

// ---------------------------------------------------------------------------------------
// Engine bugs found by the fuzzer, now fixed; each test failed while its bug was there and
// pins the fix.
// Their fuzzer inputs are in `fuzz/artifacts-notes/` (see NOTES.md there), not in the corpus.

fn artifact(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fuzz/artifacts-notes")
            .join(name),
    )
    .unwrap()
}

/// `NodeView::used_bytes` on a header whose `garbage` is larger than the entry region returns
/// a count no larger than the page, without a panic: `NodeView` promises that any bytes decode.
/// A regression test: it once computed `page.len() - free_end - garbage` unchecked, which
/// underflowed (a panic with overflow checks, a huge wrong count without).
#[test]
fn used_bytes_does_not_underflow() {
    use shadowkv::internals::format::node::NodeView;
    let mut page = vec![0u8; 4096];
    page[0] = 1; // leaf, level 0, count 0
    page[4..8].copy_from_slice(&4096u32.to_le_bytes()); // free_end: the page end
    page[8..12].copy_from_slice(&1u32.to_le_bytes()); // garbage: 1 byte, but there is none
    let view = NodeView::new(&page, 7).unwrap();
    let used = catch_unwind(AssertUnwindSafe(|| view.used_bytes()));
    assert!(
        matches!(used, Ok(n) if n <= page.len()),
        "used_bytes on a bad header: {:?}",
        used.map_err(|_| "panic")
    );
    let fuzzed = artifact("node_decode-used_bytes-underflow");
    let view = NodeView::new(&fuzzed, 7).unwrap();
    let used = catch_unwind(AssertUnwindSafe(|| view.used_bytes()));
    assert!(matches!(used, Ok(n) if n <= fuzzed.len()));
}

/// `Database::stats` on a meta whose checksum holds but whose free count exceeds the file (a
/// bug, or a crafted file) returns `Error::Corrupted` or counts that fit the file, without a
/// panic. A regression test: it once computed `file_pages - free_count - pending_count`
/// unchecked, which underflowed (a panic with overflow checks, a huge `used_pages` without).
#[test]
fn stats_do_not_underflow_on_bad_meta_counts() {
    use shadowkv::internals::format::meta::Meta;
    let mut bytes = small_database(false);
    let at = newest_meta_at(&bytes);
    let file_pages = Meta::decode(&bytes[at..]).unwrap().file_pages;
    bytes[at + 140..at + 148].copy_from_slice(&(file_pages + 1).to_le_bytes()); // free_count
    fuzz::fix_meta_checksums(&mut bytes);
    assert_eq!(
        Meta::decode(&bytes[at..]).unwrap().free_count,
        file_pages + 1
    );
    let db = Database::options()
        .open_storage(Arc::new(MemStorage::from_bytes(bytes)))
        .unwrap();
    match catch_unwind(AssertUnwindSafe(|| db.stats())) {
        Ok(Ok(stats)) => assert!(
            stats.used_pages <= stats.total_pages,
            "stats() of a bad meta: {} used of {} pages",
            stats.used_pages,
            stats.total_pages
        ),
        Ok(Err(e)) => assert!(matches!(e, shadowkv::Error::Corrupted { .. }), "{e}"),
        Err(_) => panic!("stats() panicked"),
    }
    let fuzzed = artifact("open_bytes-stats-underflow");
    assert!(catch_unwind(|| fuzz::open_bytes(&fuzzed)).is_ok());
}

/// A meta whose checksum holds but whose release pointer lies past the file, in the older
/// slot, while the newer slot's commit fails verification, makes `open` choose the older
/// slot or fail, never panic. A regression test: recovery once accepted that meta and, to
/// retire the newer slot, wrote it again, and `Meta::encode` asserted that it fits its file.
/// `open_bytes` found it in issue 17's 30-minute run (a 532 KB input: `db-small` with these
/// changes and more); recovery now takes such a meta for a damaged slot.
#[test]
fn a_meta_pointing_past_its_file_is_refused() {
    let mut bytes = std::fs::read(corpus_dir("open_bytes").join("db-small")).unwrap();
    // Slot 0's release pointer: page 175 << 40, past the 130-page file.
    bytes[85] = 175;
    // Slot 1's pending chain (page 25, born in its commit) zeroed: that commit no longer
    // verifies, and recovery falls back to slot 0.
    bytes[25 * 4096..26 * 4096].fill(0);
    assert!(catch_unwind(|| fuzz::open_bytes(&bytes)).is_ok());
}

/// A meta whose checksum holds but that names a file of nearly `u64::MAX` bytes and a next
/// meta page near its end is refused (`Truncated`) or passed over, never a panic. A
/// regression test: recovery computed the next meta page's offset unchecked (an overflow in
/// debug and fuzz builds), found in the first minutes of `open_bytes` on format 8.
#[test]
fn a_chain_page_past_any_file_is_refused() {
    use shadowkv::internals::format::meta::{Meta, META_BYTES};
    let bytes = small_database(false);
    for slot in 0..2 {
        let mut bytes = bytes.clone();
        let at = slot * 4096;
        let Ok(mut meta) = Meta::decode(&bytes[at..]) else {
            continue;
        };
        meta.file_pages = u64::MAX / 4096 + 7;
        meta.next_meta = meta.file_pages - 1;
        bytes[at..at + META_BYTES].copy_from_slice(&meta.encode());
        let opened = catch_unwind(|| {
            Database::options().open_storage(Arc::new(MemStorage::from_bytes(bytes.clone())))
        });
        assert!(opened.is_ok(), "slot {slot}: the open panicked");
        assert!(catch_unwind(|| fuzz::open_bytes(&bytes)).is_ok());
    }
}

/// A meta (checksum sound) that names a free page for the next commit's meta: the next write
/// commit is refused with `Corrupted`, never a panic, and nothing is written twice. Rebuilt
/// from `db-small` of the current format: `corpus/open_bytes/crash-next-meta-free`, the input
/// that found it on format 8 (a commit handed the page out twice, an assert in `write_out`),
/// is a format-8 file that format 9 refuses at its version.
#[test]
fn a_next_meta_on_a_free_page_is_refused() {
    use shadowkv::internals::format::meta::META_BYTES;
    let mut bytes = small_database(false);
    let storage = MemStorage::from_bytes(bytes.clone());
    let (at, mut meta) = shadowkv::testkit::newest_meta(&storage).unwrap();
    let db = Database::options()
        .open_storage(Arc::new(MemStorage::from_bytes(bytes.clone())))
        .unwrap();
    assert!(db.check().unwrap().free_pages > 0);
    drop(db);
    // The last page of the file: free in a small database (the rest of its growth step).
    meta.next_meta = meta.file_pages - 1;
    let at = at as usize;
    bytes[at..at + META_BYTES].copy_from_slice(&meta.encode());
    let db = Database::options()
        .open_storage(Arc::new(MemStorage::from_bytes(bytes.clone())))
        .unwrap();
    let tx = db.begin_write();
    let outcome = tx.and_then(|tx| {
        tx.open_table("t")?.insert(b"k", b"v")?;
        tx.commit()
    });
    assert!(
        matches!(outcome, Err(shadowkv::Error::Corrupted { .. })),
        "{outcome:?}"
    );
    assert!(catch_unwind(|| fuzz::open_bytes(&bytes)).is_ok());
}

/// A free-map directory entry claiming `u32::MAX` free pages (every checksum valid, so verified
/// reads do not help) makes a write return `Error::Corrupted` or succeed, never panic. A
/// regression test: `FreeMap::set_free` once did `self.dir[k].free += 1` on the count it had
/// loaded unchecked, which overflowed as soon as `begin_write` released a pending page into
/// that bitmap (a panic where overflow checks are on: run this test without `--release` to
/// see that path).
#[test]
fn freemap_count_does_not_overflow() {
    use shadowkv::internals::format::freemap::{chain_entry, set_chain_entry, DirEntry};
    use shadowkv::internals::format::meta::{Meta, META_BYTES};
    use shadowkv::internals::format::{checksum, U32Le};
    let mut bytes = small_database(false);
    let meta_at = newest_meta_at(&bytes);
    let mut meta = Meta::decode(&bytes[meta_at..]).unwrap();
    let at = meta.free_dir.page.0 as usize * 4096;
    let page = &mut bytes[at..at + 4096];
    let mut entry: DirEntry = chain_entry(page, 0).unwrap();
    entry.free_count = U32Le::new(u32::MAX);
    set_chain_entry(page, 0, entry);
    meta.free_dir.crc = checksum(page);
    bytes[meta_at..meta_at + META_BYTES].copy_from_slice(&meta.encode());
    let db = Database::options()
        .verify_reads(true)
        .open_storage(Arc::new(MemStorage::from_bytes(bytes)))
        .unwrap();
    match catch_unwind(AssertUnwindSafe(|| fuzz::write_some(&db))) {
        Err(_) => panic!("begin_write panicked on a free-map count of u32::MAX"),
        Ok(Err(e)) => assert!(matches!(e, shadowkv::Error::Corrupted { .. }), "{e}"),
        Ok(Ok(())) => {}
    }
    let fuzzed = artifact("open_bytes-freemap-count-overflow");
    assert!(catch_unwind(|| fuzz::open_bytes(&fuzzed)).is_ok());
}

/// A write on a database whose meta (checksum valid) says `txn` is `u64::MAX` is refused with
/// `Error::Corrupted`, or else its commit survives a reopen; it never panics. A regression
/// test: `WriteTxn::begin` once numbered the new transaction `max(meta.txn, txn_floor) + 1`
/// unchecked, which overflowed (a panic with overflow checks; in a release build the id
/// wrapped to 0, the commit wrote a meta older than the one it replaced, and the write was
/// gone after a reopen).
#[test]
fn txn_id_does_not_wrap_at_the_maximum() {
    use shadowkv::internals::format::meta::{Meta, META_BYTES};
    let mut bytes = small_database(false);
    let at = newest_meta_at(&bytes);
    let mut meta = Meta::decode(&bytes[at..]).unwrap();
    meta.txn = u64::MAX;
    bytes[at..at + META_BYTES].copy_from_slice(&meta.encode());
    let storage = Arc::new(MemStorage::from_bytes(bytes));
    let db = Database::options()
        .verify_reads(true)
        .open_storage(storage.clone())
        .unwrap();
    let wrote = catch_unwind(AssertUnwindSafe(|| -> shadowkv::Result<()> {
        let tx = db.begin_write()?;
        tx.open_table("t1")?.insert(b"after", b"overflow")?;
        tx.commit()
    }));
    match wrote {
        Err(_) => panic!("begin_write or commit panicked at txn u64::MAX"),
        Ok(Err(e)) => assert!(matches!(e, shadowkv::Error::Corrupted { .. }), "{e}"),
        Ok(Ok(())) => {
            drop(db);
            let db = Database::options()
                .open_storage(Arc::new(MemStorage::from_bytes(storage.to_bytes())))
                .unwrap();
            let rx = db.begin_read().unwrap();
            let got = rx
                .open_table("t1")
                .unwrap()
                .get(b"after")
                .unwrap()
                .map(<[u8]>::to_vec);
            assert_eq!(
                got.as_deref(),
                Some(&b"overflow"[..]),
                "a committed write was lost on reopen"
            );
        }
    }
    let fuzzed = artifact("open_bytes-txn-id-overflow");
    assert!(catch_unwind(|| fuzz::open_bytes(&fuzzed)).is_ok());
}

/// `branches()` on a file where a branch node's child pointer names the node itself (its own
/// id and birth, so the header check passes; default `verify_reads(false)`) returns or reports
/// `Error::Corrupted`, and `check()` reports the cycle. A regression test: the space walk of
/// `snapshots()` and `branches()` (`walk` in src/db/roots.rs, now src/db/listing.rs) once had no depth bound and kept
/// no set of pages seen, so it recursed until the stack overflowed and the process aborted.
/// Found by the `open_bytes` target (a SIGSEGV without an artifact), reproduced here by hand.
/// A stack overflow cannot be caught, so the body runs in a child process.
#[test]
fn roots_walk_stops_on_a_cycle() {
    if std::env::var_os("SHADOWKV_CYCLE_CHILD").is_some() {
        roots_walk_cycle_body();
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "roots_walk_stops_on_a_cycle", "--nocapture"])
        .env("SHADOWKV_CYCLE_CHILD", "1")
        .status()
        .unwrap();
    assert!(status.success(), "the child process died: {status}");
}

fn roots_walk_cycle_body() {
    use shadowkv::internals::format::node::NodeView;
    use shadowkv::internals::format::{PageId, Ptr, TxnId};
    let mut bytes = small_database(false);
    // The branch node of `t1` on branch `b1`, written by the write on b1 (txn 4): exclusive
    // to b1, and older than the last commit, so opening does not verify it.
    let mut target = None;
    for id in 2..bytes.len() / 4096 {
        let page = &bytes[id * 4096..(id + 1) * 4096];
        let born = u64::from_le_bytes(page[24..32].try_into().unwrap());
        if let Ok(view) = NodeView::new(page, id as u64) {
            if !view.is_leaf() && born == 4 {
                let entry = view.entry(0).unwrap();
                let at = entry.as_ptr() as usize - page.as_ptr() as usize;
                let klen = u16::from_le_bytes([entry[0], entry[1]]) as usize;
                target = Some((id, at + 2 + klen, born));
            }
        }
    }
    let (id, at, born) = target.expect("a branch node born in txn 4");
    let mut ptr = [0u8; 20];
    Ptr {
        page: PageId(id as u64),
        txn: TxnId(born),
        crc: 0,
    }
    .encode(&mut ptr);
    bytes[id * 4096 + at..id * 4096 + at + 20].copy_from_slice(&ptr);
    let db = Database::options()
        .open_storage(Arc::new(MemStorage::from_bytes(bytes)))
        .unwrap();
    assert!(db.check().is_err(), "check() sees the cycle");
    match db.branches() {
        Ok(_) => {}
        Err(e) => assert!(matches!(e, shadowkv::Error::Corrupted { .. }), "{e}"),
    }
}

/// Where the newest meta of a file's bytes lies (a slot, or a meta page of the commit chain).
fn newest_meta_at(bytes: &[u8]) -> usize {
    let storage = MemStorage::from_bytes(bytes.to_vec());
    shadowkv::testkit::newest_meta(&storage).unwrap().0 as usize
}
