//! shadowkv: one file, page size 4096 (the default), every commit `Durability::Immediate`.

use super::{run_parallel, Engine, Res};
use crate::workload::Kv;
use shadowkv::{Database, Durability};
use std::path::{Path, PathBuf};

const TABLE: &str = "bench";

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
            let mut tx = self.db.begin_write()?;
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
        let mut tx = self.db.begin_write()?;
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
}

/// Phase 8 for shadowkv: a named snapshot of main's last commit (O(1), committed durably).
#[cfg(feature = "shadowkv-snapshot")]
fn snapshot(db: &Database) -> Res<()> {
    db.create_snapshot("bench")?;
    Ok(())
}

/// Without the `shadowkv-snapshot` feature (for a shadowkv older than
/// `Database::create_snapshot`), the phase is reported as n/a.
#[cfg(not(feature = "shadowkv-snapshot"))]
fn snapshot(_db: &Database) -> Res<()> {
    Err("built without the shadowkv-snapshot feature".into())
}
