//! One adapter per engine behind the small [`Engine`] trait. Each adapter opens its store in a
//! directory of its own and commits durably (an fsync per commit) unless a method says otherwise.

use crate::workload::Kv;
use std::path::{Path, PathBuf};

mod lmdb;
mod redb;
mod shadow;
mod sled;
mod sqlite;

pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// Every engine this program knows, in the order it runs them.
pub const ALL: [&str; 5] = ["shadowkv", "lmdb", "redb", "sled", "sqlite"];

/// The operations of the workload. Read methods return a checksum-like total (the sum of the
/// value lengths, or the number of entries seen) that the caller compares with the expected one.
pub trait Engine {
    /// Writes `kvs` in commits of `per_commit` entries, each durable when it returns.
    fn write_batches(&mut self, kvs: &[Kv], per_commit: usize) -> Res<()>;
    /// Point lookups in one read transaction; returns the sum of the values' lengths.
    fn point_reads(&self, keys: &[&[u8]]) -> Res<u64>;
    /// One thread per list, each doing `point_reads` on its own list; returns the total.
    fn parallel_reads(&self, per_thread: &[Vec<&[u8]>]) -> Res<u64>;
    /// For each start key, reads `len` entries in key order from it, in one read transaction;
    /// returns the number of entries seen.
    fn range_scans(&self, starts: &[&[u8]], len: usize) -> Res<u64>;
    /// Removes every key in one durable transaction.
    fn remove(&mut self, keys: &[&[u8]]) -> Res<()>;
    /// Whether the engine has an equivalent of a full-database snapshot (else phase 8 is n/a).
    fn can_snapshot(&self) -> bool {
        true
    }
    /// The nearest equivalent of a full-database snapshot, durable on return, written under
    /// `out` if it needs a file.
    fn snapshot(&mut self, out: &Path) -> Res<()>;
    /// Whether the engine can write a compacted copy of a live database (else phase 9 is
    /// n/a): an offline or in-place compaction does not count.
    fn can_copy(&self) -> bool {
        false
    }
    /// Writes a compacted, consistent copy of the whole database to the new file `to`. The
    /// caller fsyncs it and its directory, so every engine's copy is durable on return.
    fn copy(&mut self, _to: &Path) -> Res<()> {
        Err("no compacting online copy".into())
    }
    /// The number of entries (for checks; not timed).
    fn count(&self) -> Res<u64>;
    /// The main data file, or `None` when the data lives in several files (sled).
    fn data_file(&self) -> Option<PathBuf>;
    /// The apparent size of the data file (LMDB: data.mdb), or 0 without one.
    fn file_bytes(&self) -> u64 {
        self.data_file().map_or(0, |f| disk_size(&f))
    }
    /// Compacts the store in place, giving space back to the file system; returns a note
    /// on what it did, or `None` when the engine has no in-place compaction.
    fn compact(&mut self) -> Res<Option<String>> {
        Ok(None)
    }
    /// Takes a snapshot that keeps the current state's pages until
    /// [`Engine::release_snapshot`]; `false` when the engine has none.
    fn hold_snapshot(&mut self) -> Res<bool> {
        Ok(false)
    }
    /// Deletes the snapshot taken by [`Engine::hold_snapshot`], durably.
    fn release_snapshot(&mut self) -> Res<()> {
        Err("no snapshot to release".into())
    }
    /// Phase 10, untimed: takes the engine's nearest equivalent of a snapshot, kept until
    /// [`Engine::release_after_updates`], so that the updates after it run against it.
    /// Returns what it holds (for the log); the default holds nothing.
    fn hold_for_updates(&mut self) -> Res<&'static str> {
        Ok("nothing (no snapshot)")
    }
    /// Phase 10, untimed: lets go of what [`Engine::hold_for_updates`] took.
    fn release_after_updates(&mut self) -> Res<()> {
        Ok(())
    }
}

/// Opens engine `name` in the empty directory `dir`.
pub fn open(name: &str, dir: &Path) -> Res<Box<dyn Engine>> {
    Ok(match name {
        "shadowkv" => Box::new(shadow::ShadowKv::open(dir)?),
        "lmdb" => Box::new(lmdb::Lmdb::open(dir)?),
        "redb" => Box::new(redb::Redb::open(dir)?),
        "sled" => Box::new(sled::Sled::open(dir)?),
        "sqlite" => Box::new(sqlite::Sqlite::open(dir)?),
        other => return Err(format!("unknown engine {other:?}").into()),
    })
}

/// The versions of the C libraries built in (the Rust crates' versions are in Cargo.lock).
pub fn c_versions() -> String {
    format!(
        "{}; SQLite {}",
        heed::lmdb_version().string,
        rusqlite::version()
    )
}

/// Runs `f` on each list in a thread of its own and adds up the results.
pub fn run_parallel<F>(per_thread: &[Vec<&[u8]>], f: F) -> Res<u64>
where
    F: Fn(&[&[u8]]) -> Res<u64> + Sync,
{
    std::thread::scope(|s| {
        let f = &f;
        let handles: Vec<_> = per_thread
            .iter()
            .map(|keys| s.spawn(move || f(keys)))
            .collect();
        let mut total = 0;
        for h in handles {
            total += h.join().expect("reader thread panicked")?;
        }
        Ok(total)
    })
}

/// The apparent size in bytes of every file under `path` (or of `path` itself).
pub fn disk_size(path: &Path) -> u64 {
    // Directory entries say whether they are directories without a stat of the file, and a
    // file's length comes from seeking to its end: on Linux 6.13+ a stat that asks for the
    // times makes the next write stamp a fine-grained mtime, and on ext4 without a journal the
    // next fdatasync then also writes the inode, which the next timed phase would pay for.
    match std::fs::read_dir(path) {
        Ok(entries) => entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => disk_size(&e.path()),
                Ok(t) if t.is_file() => file_len(&e.path()),
                _ => 0,
            })
            .sum(),
        // Not a directory (or gone): a file's length, or 0.
        Err(_) => file_len(path),
    }
}

fn file_len(path: &Path) -> u64 {
    use std::io::{Seek, SeekFrom};
    std::fs::File::open(path)
        .and_then(|mut f| f.seek(SeekFrom::End(0)))
        .unwrap_or(0)
}

/// fsyncs a file written by a snapshot, so that every engine's snapshot is durable on return;
/// given a directory, fsyncs it, so that a file just created in it survives a crash by name.
pub fn sync_file(path: &Path) -> Res<()> {
    std::fs::File::open(path)?.sync_all()?;
    Ok(())
}
