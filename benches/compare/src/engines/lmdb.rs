//! LMDB through heed: default environment flags (a durable commit fsyncs), a 64 GiB sparse
//! map, one named database of raw bytes.

use super::{run_parallel, sync_file, Engine, Res};
use crate::workload::Kv;
use heed::types::Bytes;
use heed::{CompactionOption, Database, Env, EnvOpenOptions};
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

pub struct Lmdb {
    env: Env,
    db: Database<Bytes, Bytes>,
    dir: PathBuf,
    /// Phase 10: the thread holding a read transaction open, and how to tell it to end it.
    reader: Option<(mpsc::Sender<()>, std::thread::JoinHandle<Res<()>>)>,
}

impl Lmdb {
    pub fn open(dir: &Path) -> Res<Self> {
        // Safety: the directory is new and private to this process; nothing else maps it.
        let env = unsafe {
            EnvOpenOptions::new()
                .map_size(64 << 30)
                .max_dbs(1)
                .open(dir)?
        };
        let mut wtxn = env.write_txn()?;
        let db = env.create_database(&mut wtxn, Some("bench"))?;
        wtxn.commit()?;
        Ok(Lmdb {
            env,
            db,
            dir: dir.to_path_buf(),
            reader: None,
        })
    }
}

impl Engine for Lmdb {
    fn write_batches(&mut self, kvs: &[Kv], per_commit: usize) -> Res<()> {
        for chunk in kvs.chunks(per_commit) {
            let mut wtxn = self.env.write_txn()?;
            for (k, v) in chunk {
                self.db.put(&mut wtxn, k, v)?;
            }
            wtxn.commit()?;
        }
        Ok(())
    }

    fn point_reads(&self, keys: &[&[u8]]) -> Res<u64> {
        let rtxn = self.env.read_txn()?;
        let mut total = 0;
        for k in keys {
            total += self.db.get(&rtxn, k)?.map_or(0, |v| v.len() as u64);
        }
        Ok(total)
    }

    fn parallel_reads(&self, per_thread: &[Vec<&[u8]>]) -> Res<u64> {
        run_parallel(per_thread, |keys| self.point_reads(keys))
    }

    fn range_scans(&self, starts: &[&[u8]], len: usize) -> Res<u64> {
        let rtxn = self.env.read_txn()?;
        let mut seen = 0;
        for &start in starts {
            let from = (Bound::Included(start), Bound::Unbounded);
            for item in self.db.range(&rtxn, &from)?.take(len) {
                std::hint::black_box(item?);
                seen += 1;
            }
        }
        Ok(seen)
    }

    fn remove(&mut self, keys: &[&[u8]]) -> Res<()> {
        let mut wtxn = self.env.write_txn()?;
        for k in keys {
            if !self.db.delete(&mut wtxn, k)? {
                return Err("lmdb: a key to remove was not found".into());
            }
        }
        wtxn.commit()?;
        Ok(())
    }

    /// `mdb_env_copy` of the whole environment (no compaction) to a new file, then fsync.
    fn snapshot(&mut self, out: &Path) -> Res<()> {
        let path = out.join("lmdb-copy.mdb");
        self.env.copy_to_path(&path, CompactionOption::Disabled)?;
        sync_file(&path)?;
        Ok(())
    }

    /// `mdb_env_copy2` with `MDB_CP_COMPACT` (heed `copy_to_path`, `CompactionOption::Enabled`):
    /// walks the trees in one read txn and writes only the pages in use, renumbered.
    fn can_copy(&self) -> bool {
        true
    }

    fn copy(&mut self, to: &Path) -> Res<()> {
        self.env.copy_to_path(to, CompactionOption::Enabled)?;
        Ok(())
    }

    fn count(&self) -> Res<u64> {
        let rtxn = self.env.read_txn()?;
        Ok(self.db.len(&rtxn)?)
    }

    fn data_file(&self) -> Option<PathBuf> {
        Some(self.dir.join("data.mdb"))
    }

    /// LMDB has no named snapshot: its equivalent is a read transaction, which keeps the
    /// pages of its state from reuse while it is open. One is opened in a thread of its own
    /// (a thread may hold one transaction at a time) and held until the release.
    fn hold_for_updates(&mut self) -> Res<&'static str> {
        let (env, db) = (self.env.clone(), self.db);
        let (ready_tx, ready) = mpsc::channel::<()>();
        let (stop, stop_rx) = mpsc::channel::<()>();
        let thread = std::thread::spawn(move || -> Res<()> {
            let rtxn = env.read_txn()?;
            std::hint::black_box(db.len(&rtxn)?);
            ready_tx.send(())?;
            // Until told to stop (or the sender is gone).
            let _ = stop_rx.recv();
            drop(rtxn);
            Ok(())
        });
        if ready.recv().is_err() {
            return Err(match thread.join() {
                Ok(Err(e)) => e,
                _ => "lmdb: the reader thread failed".into(),
            });
        }
        self.reader = Some((stop, thread));
        Ok("a read transaction held open (in another thread)")
    }

    fn release_after_updates(&mut self) -> Res<()> {
        let Some((stop, thread)) = self.reader.take() else {
            return Ok(());
        };
        drop(stop);
        thread
            .join()
            .map_err(|_| "lmdb: the reader thread panicked")?
    }
}
