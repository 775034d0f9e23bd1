//! SQLite (rusqlite, bundled): journal_mode=WAL, synchronous=FULL, one `WITHOUT ROWID` table
//! keyed by a BLOB (a clustered B-tree, like the others). Other settings are SQLite's defaults
//! (2 MB page cache, no mmap). Each reader thread opens its own read-only connection.

use super::{sync_file, Engine, Res};
use crate::workload::Kv;
use rusqlite::{Connection, OpenFlags, OptionalExtension};
use std::path::{Path, PathBuf};

const GET: &str = "SELECT v FROM kv WHERE k = ?1";
const SCAN: &str = "SELECT k, v FROM kv WHERE k >= ?1 ORDER BY k LIMIT ?2";

pub struct Sqlite {
    conn: Connection,
    path: PathBuf,
    /// Phase 10: a second connection with a read transaction open.
    held: Option<Connection>,
}

impl Sqlite {
    pub fn open(dir: &Path) -> Res<Self> {
        let path = dir.join("bench.sqlite");
        let conn = Connection::open(&path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if mode != "wal" {
            return Err(format!("sqlite: journal_mode is {mode}, not wal").into());
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL;
             CREATE TABLE kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;",
        )?;
        Ok(Sqlite {
            conn,
            path,
            held: None,
        })
    }

    fn reader(&self) -> Res<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        Ok(Connection::open_with_flags(&self.path, flags)?)
    }
}

/// Point lookups inside one read transaction of `conn`.
fn point_reads(conn: &Connection, keys: &[&[u8]]) -> Res<u64> {
    let tx = conn.unchecked_transaction()?;
    let mut total = 0;
    {
        let mut get = tx.prepare_cached(GET)?;
        for &k in keys {
            let len = get
                .query_row([k], |r| Ok(r.get_ref(0)?.as_blob()?.len() as u64))
                .optional()?;
            total += len.unwrap_or(0);
        }
    }
    tx.commit()?;
    Ok(total)
}

impl Engine for Sqlite {
    fn write_batches(&mut self, kvs: &[Kv], per_commit: usize) -> Res<()> {
        for chunk in kvs.chunks(per_commit) {
            let tx = self.conn.transaction()?;
            {
                let mut put =
                    tx.prepare_cached("INSERT OR REPLACE INTO kv (k, v) VALUES (?1, ?2)")?;
                for (k, v) in chunk {
                    put.execute((k, v))?;
                }
            }
            tx.commit()?;
        }
        Ok(())
    }

    fn point_reads(&self, keys: &[&[u8]]) -> Res<u64> {
        point_reads(&self.conn, keys)
    }

    fn parallel_reads(&self, per_thread: &[Vec<&[u8]>]) -> Res<u64> {
        let conns = per_thread
            .iter()
            .map(|_| self.reader())
            .collect::<Res<Vec<_>>>()?;
        std::thread::scope(|s| {
            let handles: Vec<_> = conns
                .into_iter()
                .zip(per_thread)
                .map(|(conn, keys)| s.spawn(move || point_reads(&conn, keys)))
                .collect();
            let mut total = 0;
            for h in handles {
                total += h.join().expect("reader thread panicked")?;
            }
            Ok(total)
        })
    }

    fn range_scans(&self, starts: &[&[u8]], len: usize) -> Res<u64> {
        let tx = self.conn.unchecked_transaction()?;
        let mut seen = 0;
        {
            let mut scan = tx.prepare_cached(SCAN)?;
            for &start in starts {
                let mut rows = scan.query((start, len as i64))?;
                while let Some(row) = rows.next()? {
                    std::hint::black_box((row.get_ref(0)?.as_blob()?, row.get_ref(1)?.as_blob()?));
                    seen += 1;
                }
            }
        }
        tx.commit()?;
        Ok(seen)
    }

    fn remove(&mut self, keys: &[&[u8]]) -> Res<()> {
        let tx = self.conn.transaction()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM kv WHERE k = ?1")?;
            for &k in keys {
                if del.execute([k])? != 1 {
                    return Err("sqlite: a key to remove was not found".into());
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// `VACUUM INTO` a new file (a consistent, compacted copy), then fsync.
    fn snapshot(&mut self, out: &Path) -> Res<()> {
        let path = out.join("sqlite-copy.sqlite");
        let name = path.to_str().ok_or("sqlite: snapshot path is not UTF-8")?;
        self.conn.execute("VACUUM INTO ?1", [name])?;
        sync_file(&path)?;
        Ok(())
    }

    /// `VACUUM INTO` a new file: the same compacted copy as phase 8's snapshot, timed again
    /// here so that the copy table has every engine's compacting copy in one place.
    fn can_copy(&self) -> bool {
        true
    }

    fn copy(&mut self, to: &Path) -> Res<()> {
        let name = to.to_str().ok_or("sqlite: copy path is not UTF-8")?;
        self.conn.execute("VACUUM INTO ?1", [name])?;
        Ok(())
    }

    fn count(&self) -> Res<u64> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM kv", [], |r| r.get::<_, i64>(0))? as u64)
    }

    fn data_file(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }

    /// SQLite has no named snapshot: its equivalent is a read transaction on another
    /// connection (in WAL mode it keeps its state readable, and no checkpoint may go past it,
    /// so the WAL grows while it is open). `BEGIN` then one read, which starts it.
    fn hold_for_updates(&mut self) -> Res<&'static str> {
        let reader = self.reader()?;
        reader.execute_batch("BEGIN")?;
        let _: Option<Vec<u8>> = reader
            .query_row("SELECT k FROM kv LIMIT 1", [], |r| r.get(0))
            .optional()?;
        self.held = Some(reader);
        Ok("a read transaction held open (on a second connection)")
    }

    fn release_after_updates(&mut self) -> Res<()> {
        if let Some(reader) = self.held.take() {
            reader.execute_batch("COMMIT")?;
        }
        Ok(())
    }
}
