//! Helpers shared by the tool's tests: the binary, and databases made with the library.

#![allow(dead_code)]

use assert_cmd::Command;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Taken by every test for its whole run: the tests of one file run one at a time. A test
/// opens databases in this process (fixtures, contents, a lock holder), and a child that
/// another thread spawns inherits every open file until it execs, holding the file's lock
/// that long: a test that closes a database and then runs the binary on it could find it
/// locked. (The tool itself never waits for a lock, by design.)
pub fn serial() -> MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `shadowkv` binary, with a time limit (nothing it does here takes long, and a lock must
/// never be waited for).
pub fn kv() -> Command {
    let mut cmd = assert_cmd::cargo::cargo_bin_cmd!("shadowkv");
    cmd.timeout(std::time::Duration::from_secs(60));
    cmd
}

/// Standard output of a successful run.
pub fn ok(cmd: &mut Command) -> String {
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out).expect("UTF-8 output")
}

/// A database with tables `users` (alice=1, bob=2), `bin` (00ff=0102, 0x00=empty) and `big`
/// (`n` entries of 100-byte values).
pub fn fixture(dir: &Path, name: &str, n: u32) -> PathBuf {
    let path = dir.join(name);
    let db = shadowkv::Database::open(&path).unwrap();
    let tx = db.begin_write().unwrap();
    let mut users = tx.open_table("users").unwrap();
    users.insert(b"alice", b"1").unwrap();
    users.insert(b"bob", b"2").unwrap();
    let mut bin = tx.open_table("bin").unwrap();
    bin.insert(b"\x00\xff", b"\x01\x02").unwrap();
    bin.insert(b"\x00", b"").unwrap();
    let mut big = tx.open_table("big").unwrap();
    for i in 0..n {
        big.insert(format!("key{i:08}").as_bytes(), &[b'v'; 100])
            .unwrap();
    }
    tx.commit().unwrap();
    path
}

/// Every entry of every table of `main`, for comparing a database before and after.
pub fn contents(path: &Path) -> Vec<(String, Vec<u8>, Vec<u8>)> {
    let db = shadowkv::Database::options()
        .create(false)
        .open(path)
        .unwrap();
    let rx = db.begin_read().unwrap();
    let mut out = Vec::new();
    for name in rx.table_names().unwrap() {
        let t = rx.open_table(&name).unwrap();
        for item in t.iter().unwrap() {
            let (k, v) = item.unwrap();
            out.push((name.clone(), k.to_vec(), v.to_vec()));
        }
    }
    out
}
