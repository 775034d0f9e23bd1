//! shadowkv: one file, page size 4096 (the default), every commit `Durability::Immediate`.

use super::{run_parallel, Engine, Res};
use crate::workload::Kv;
use shadowkv::{Database, Durability};
use std::path::{Path, PathBuf};

const TABLE: &str = "bench";
/// The name of the snapshot of phase 8 and of the space workload.
const SNAPSHOT: &str = "bench";
/// The snapshot taken before phase 10's updates (phase 8's is still there, of the same state).
const UPDATES_SNAPSHOT: &str = "before-updates";

pub struct ShadowKv {
    db: Database,
    path: PathBuf,
}

impl ShadowKv {
    pub fn open(dir: &Path) -> Res<Self> {
        let path = dir.join("bench.shadowkv");
        let db = Database::options()
            .page_size(4096)
            .durability(Durability::Immediate)
            .open(&path)?;
        Ok(ShadowKv { db, path })
    }
}

impl Engine for ShadowKv {
    fn write_batches(&mut self, kvs: &[Kv], per_commit: usize) -> Res<()> {
        for chunk in kvs.chunks(per_commit) {
            let tx = self.db.begin_write()?;
            {
                let mut t = tx.open_table(TABLE)?;
                for (k, v) in chunk {
                    t.insert(k, v)?;
                }
            }
            tx.commit()?;
        }
        Ok(())
    }

    fn point_reads(&self, keys: &[&[u8]]) -> Res<u64> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(TABLE)?;
        let mut total = 0;
        for k in keys {
            total += t.get(k)?.map_or(0, |v| v.len() as u64);
        }
        Ok(total)
    }

    fn parallel_reads(&self, per_thread: &[Vec<&[u8]>]) -> Res<u64> {
        run_parallel(per_thread, |keys| self.point_reads(keys))
    }

    fn range_scans(&self, starts: &[&[u8]], len: usize) -> Res<u64> {
        let rx = self.db.begin_read()?;
        let t = rx.open_table(TABLE)?;
        let mut seen = 0;
        for &start in starts {
            for item in t.range(start..)?.take(len) {
                std::hint::black_box(item?);
                seen += 1;
            }
        }
        Ok(seen)
    }

    fn remove(&mut self, keys: &[&[u8]]) -> Res<()> {
        let tx = self.db.begin_write()?;
        {
            let mut t = tx.open_table(TABLE)?;
            for k in keys {
                if !t.remove(k)? {
                    return Err("shadowkv: a key to remove was not found".into());
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn can_snapshot(&self) -> bool {
        cfg!(feature = "shadowkv-snapshot")
    }

    fn snapshot(&mut self, _out: &Path) -> Res<()> {
        snapshot(&self.db)
    }

    /// `Database::backup_to`: every snapshot and branch of the last commit, pages shared
    /// between roots kept shared, no free page; it syncs the copy itself (the caller's fsyncs
    /// then find it clean).
    fn can_copy(&self) -> bool {
        true
    }

    fn copy(&mut self, to: &Path) -> Res<()> {
        self.db.backup_to(to)?;
        Ok(())
    }

    fn count(&self) -> Res<u64> {
        let rx = self.db.begin_read()?;
        Ok(rx.open_table(TABLE)?.len()?)
    }

    fn data_file(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }

    /// `Database::compact`: moves tail pages into free space below, then cuts the file.
    fn compact(&mut self) -> Res<Option<String>> {
        compact(&self.db).map(Some)
    }

    fn hold_snapshot(&mut self) -> Res<bool> {
        snapshot(&self.db)?;
        Ok(true)
    }

    fn release_snapshot(&mut self) -> Res<()> {
        self.db.delete_snapshot(SNAPSHOT)?;
        Ok(())
    }

    /// A second named snapshot (`create_snapshot`, committed durably) of the last commit.
    fn hold_for_updates(&mut self) -> Res<&'static str> {
        hold_for_updates(&self.db)
    }

    fn release_after_updates(&mut self) -> Res<()> {
        if cfg!(feature = "shadowkv-snapshot") {
            self.db.delete_snapshot(UPDATES_SNAPSHOT)?;
        }
        Ok(())
    }
}

#[cfg(feature = "shadowkv-snapshot")]
fn hold_for_updates(db: &Database) -> Res<&'static str> {
    db.create_snapshot(UPDATES_SNAPSHOT)?;
    Ok("create_snapshot")
}

/// Without `create_snapshot` the updates run with no snapshot.
#[cfg(not(feature = "shadowkv-snapshot"))]
fn hold_for_updates(_db: &Database) -> Res<&'static str> {
    Ok("nothing (built without the shadowkv-snapshot feature)")
}

/// The compaction, then what `Database::stats` says of the space, as a note.
#[cfg(feature = "shadowkv-compact")]
fn compact(db: &Database) -> Res<String> {
    let r = db.compact()?;
    let s = db.stats()?;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    Ok(format!(
        "compact: {} pages moved in {} commits, {:.1} -> {:.1} MiB{}; stats: live {:.1}, \
         free {:.1}, pending {:.1}, pinned {:.1} MiB",
        r.pages_moved,
        r.commits,
        mib(r.bytes_before),
        mib(r.bytes_after),
        if r.truncation_delayed {
            ", truncation delayed"
        } else {
            ""
        },
        mib(s.live_bytes),
        mib(s.free_bytes),
        mib(s.pending_bytes),
        mib(s.pinned_bytes),
    ))
}

/// Without the `shadowkv-compact` feature (a shadowkv older than `Database::compact`).
#[cfg(not(feature = "shadowkv-compact"))]
fn compact(_db: &Database) -> Res<String> {
    Err("built without the shadowkv-compact feature".into())
}

/// Phase 8 for shadowkv: a named snapshot of main's last commit (O(1), committed durably).
#[cfg(feature = "shadowkv-snapshot")]
fn snapshot(db: &Database) -> Res<()> {
    db.create_snapshot(SNAPSHOT)?;
    Ok(())
}

/// Without the `shadowkv-snapshot` feature (for a shadowkv older than
/// `Database::create_snapshot`), the phase is reported as n/a.
#[cfg(not(feature = "shadowkv-snapshot"))]
fn snapshot(_db: &Database) -> Res<()> {
    Err("built without the shadowkv-snapshot feature".into())
}
