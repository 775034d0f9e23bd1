//! redb with its defaults (1 GiB cache); every commit `Durability::Immediate` (redb's default).

use super::{run_parallel, Engine, Res};
use crate::workload::Kv;
use ::redb::{Database, Durability, ReadableDatabase, ReadableTableMetadata, TableDefinition};
use std::path::{Path, PathBuf};

const TABLE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("bench");

pub struct Redb {
    db: Database,
    path: PathBuf,
    /// The persistent savepoint of the space workload's snapshot, while it is held.
    savepoint: Option<u64>,
}

impl Redb {
    pub fn open(dir: &Path) -> Res<Self> {
        let path = dir.join("bench.redb");
        let db = Database::create(&path)?;
        Ok(Redb {
            db,
            path,
            savepoint: None,
        })
    }
}

impl Engine for Redb {
    fn write_batches(&mut self, kvs: &[Kv], per_commit: usize) -> Res<()> {
        for chunk in kvs.chunks(per_commit) {
            let mut tx = self.db.begin_write()?;
            tx.set_durability(Durability::Immediate)?;
            {
                let mut t = tx.open_table(TABLE)?;
                for (k, v) in chunk {
                    t.insert(k.as_slice(), v.as_slice())?;
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
        for &k in keys {
            total += t.get(k)?.map_or(0, |v| v.value().len() as u64);
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
                let (k, v) = item?;
                std::hint::black_box((k.value(), v.value()));
                seen += 1;
            }
        }
        Ok(seen)
    }

    fn remove(&mut self, keys: &[&[u8]]) -> Res<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        {
            let mut t = tx.open_table(TABLE)?;
            for &k in keys {
                if t.remove(k)?.is_none() {
                    return Err("redb: a key to remove was not found".into());
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// A persistent savepoint, committed durably.
    fn snapshot(&mut self, _out: &Path) -> Res<()> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        tx.persistent_savepoint()?;
        tx.commit()?;
        Ok(())
    }

    fn count(&self) -> Res<u64> {
        let rx = self.db.begin_read()?;
        Ok(rx.open_table(TABLE)?.len()?)
    }

    fn data_file(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }

    /// `Database::compact` (`&mut`: no transaction may be open), which loops until a pass
    /// moves nothing; it returns false when no pass did anything.
    fn compact(&mut self) -> Res<Option<String>> {
        let did = self.db.compact()?;
        Ok(Some(format!("Database::compact returned {did}")))
    }

    /// A persistent savepoint, committed durably; its id is kept for the release.
    fn hold_snapshot(&mut self) -> Res<bool> {
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        self.savepoint = Some(tx.persistent_savepoint()?);
        tx.commit()?;
        Ok(true)
    }

    fn release_snapshot(&mut self) -> Res<()> {
        let id = self.savepoint.take().ok_or("redb: no savepoint held")?;
        let mut tx = self.db.begin_write()?;
        tx.set_durability(Durability::Immediate)?;
        if !tx.delete_persistent_savepoint(id)? {
            return Err("redb: the savepoint was not found".into());
        }
        tx.commit()?;
        Ok(())
    }

    /// A second persistent savepoint (phase 8's is still there), committed durably.
    fn hold_for_updates(&mut self) -> Res<&'static str> {
        self.hold_snapshot()?;
        Ok("a persistent savepoint")
    }

    fn release_after_updates(&mut self) -> Res<()> {
        self.release_snapshot()
    }
}
