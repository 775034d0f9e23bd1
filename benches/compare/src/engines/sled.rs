//! sled 0.34 with its defaults; every commit is followed by `flush()` (an fsync).
//! sled has no snapshot or backup file of its own (only a full `export`), so phase 8 is n/a.

use super::{run_parallel, Engine, Res};
use crate::workload::Kv;
use std::path::{Path, PathBuf};

pub struct Sled {
    _db: ::sled::Db,
    tree: ::sled::Tree,
}

impl Sled {
    pub fn open(dir: &Path) -> Res<Self> {
        let db = ::sled::Config::new().path(dir.join("bench.sled")).open()?;
        let tree = db.open_tree("bench")?;
        Ok(Sled { _db: db, tree })
    }
}

impl Engine for Sled {
    /// Each commit is one atomic `apply_batch`, then `flush`.
    fn write_batches(&mut self, kvs: &[Kv], per_commit: usize) -> Res<()> {
        for chunk in kvs.chunks(per_commit) {
            let mut batch = ::sled::Batch::default();
            for (k, v) in chunk {
                batch.insert(k.as_slice(), v.as_slice());
            }
            self.tree.apply_batch(batch)?;
            self.tree.flush()?;
        }
        Ok(())
    }

    fn point_reads(&self, keys: &[&[u8]]) -> Res<u64> {
        let mut total = 0;
        for &k in keys {
            total += self.tree.get(k)?.map_or(0, |v| v.len() as u64);
        }
        Ok(total)
    }

    fn parallel_reads(&self, per_thread: &[Vec<&[u8]>]) -> Res<u64> {
        run_parallel(per_thread, |keys| self.point_reads(keys))
    }

    fn range_scans(&self, starts: &[&[u8]], len: usize) -> Res<u64> {
        let mut seen = 0;
        for &start in starts {
            for item in self.tree.range(start..).take(len) {
                std::hint::black_box(item?);
                seen += 1;
            }
        }
        Ok(seen)
    }

    /// One atomic batch of removals, then `flush`. (A batch does not say whether each key
    /// was present; the caller checks the count afterwards.)
    fn remove(&mut self, keys: &[&[u8]]) -> Res<()> {
        let mut batch = ::sled::Batch::default();
        for &k in keys {
            batch.remove(k);
        }
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        Ok(())
    }

    fn can_snapshot(&self) -> bool {
        false
    }

    fn snapshot(&mut self, _out: &Path) -> Res<()> {
        Err("sled has no snapshot".into())
    }

    fn count(&self) -> Res<u64> {
        Ok(self.tree.len() as u64)
    }

    /// sled keeps a directory (conf, db, snapshots); its size is the directory's.
    fn data_file(&self) -> Option<PathBuf> {
        None
    }
}
