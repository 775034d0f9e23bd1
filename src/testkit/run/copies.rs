//! The runner's operations that look at two views or copy a database: `diff`, `send` with
//! `receive` by a replica, `backup_to`, and `compact`, which copies pages within one.
//!
//! Invariants: each is compared with the model like every other operation: a diff with the
//! model's difference of two roots, a received snapshot with the sender's model root (and
//! the replica's whole model), a backup with the whole model (in fast mode only the first backup of a run, with main's tables); the replica and the backup
//! must pass `check()`; a compacted database must pass it too, be no longer than before, and
//! a reader opened before the compaction still reads what it read.

use super::{compare, compare_tables_with, err, outcome, Runner};
use crate::io::MemStorage;
use crate::testkit::model::{diff as model_diff, Change, Expect, Model};
use crate::testkit::ops::Name;
use crate::txn::roots::MAIN;
use crate::Database;
use std::sync::Arc;

fn name_of(n: Option<Name>) -> String {
    n.map_or(MAIN.to_string(), Name::as_string)
}

impl Runner {
    pub(super) fn diff(&self, old: Option<Name>, new: Option<Name>) -> Result<(), String> {
        let (a, b) = (name_of(old), name_of(new));
        let want: Expect<Vec<Change>> = self
            .model
            .read_at(&a)
            .and_then(|ta| Ok(model_diff(ta, self.model.read_at(&b)?)));
        let db = self.db();
        let got = (|| {
            let (ra, rb) = (db.begin_read_at(&a)?, db.begin_read_at(&b)?);
            let owned = |v: Option<&[u8]>| v.map(<[u8]>::to_vec);
            rb.diff(&ra)?
                .map(|c| {
                    c.map(|c| {
                        (
                            c.table.to_string(),
                            c.key.to_vec(),
                            owned(c.old),
                            owned(c.new),
                        )
                    })
                })
                .collect::<crate::Result<Vec<Change>>>()
        })();
        outcome(&format!("diff({a} -> {b})"), got, want).map(drop)
    }

    pub(super) fn send(&mut self, snapshot: Name, base: Option<Name>) -> Result<(), String> {
        let (name, base_name) = (snapshot.as_string(), base.map(Name::as_string));
        let what = format!("send({name}, {base_name:?})");
        let want = self.model.snapshot(&name).and_then(|root| {
            let base = base_name
                .as_deref()
                .map(|b| self.model.snapshot(b))
                .transpose()?;
            Ok((root.clone(), base.map(|b| b.identity)))
        });
        let mut stream = Vec::new();
        let sent = self.db().send(&name, base_name.as_deref(), &mut stream);
        let Some(()) = outcome(&what, sent, want.clone().map(drop))? else {
            return Ok(());
        };
        let (root, base_identity) = want.expect("sent as the model predicted");
        if self.replica.is_none() {
            let db = Database::options()
                .page_size(self.config.page_size)
                .open_storage(Arc::new(MemStorage::with_chunk_size(self.config.page_size)))
                .map_err(err("open the replica"))?;
            self.replica = Some((db, Model::new()));
        }
        let (replica, model) = self.replica.as_mut().expect("made above");
        let want = model.receive(&name, &root, base_identity);
        let got = replica.receive(&stream[..]).map(drop);
        let received = outcome(&format!("receive of {what}"), got, want)?.is_some();
        if self.config.fast {
            // The snapshot received; the rest waits for the check at the end.
            if !received {
                return Ok(());
            }
            let rx = replica
                .begin_read_at(&name)
                .map_err(err("read the received"))?;
            return compare_tables_with(&rx, &root.tables, &name, false);
        }
        // Received or refused, the replica holds exactly what its model says.
        self.check_replica()
            .map_err(|e| format!("replica after {what}: {e}"))
    }

    pub(super) fn backup(&mut self) -> Result<(), String> {
        if self.config.fast && std::mem::replace(&mut self.backed_up, true) {
            return Ok(());
        }
        let storage = Arc::new(MemStorage::with_chunk_size(self.config.page_size));
        self.db()
            .backup_to_storage(storage.as_ref())
            .map_err(err("backup_to"))?;
        let copy = Database::options()
            .verify_reads(true)
            .open_storage(storage)
            .map_err(err("open the backup"))?;
        if self.config.fast {
            let rx = copy.begin_read().map_err(err("read the backup"))?;
            return compare_tables_with(&rx, self.model.main(), "backup", false);
        }
        copy.check().map_err(err("check() of the backup"))?;
        compare(&copy, &self.model).map_err(|e| format!("backup: {e}"))
    }

    pub(super) fn compact(&self, pin: bool) -> Result<(), String> {
        let db = self.db();
        let pinned = match pin {
            true => Some(db.begin_read().map_err(err("pinned reader"))?),
            false => None,
        };
        let report = db.compact().map_err(err("compact()"))?;
        if report.bytes_after > report.bytes_before {
            return Err(format!("compact() grew the file: {report:?}"));
        }
        if let Some(rx) = &pinned {
            let label = "reader across compact()";
            compare_tables_with(rx, self.model.main(), label, !self.config.fast)?;
        }
        drop(pinned);
        if self.config.fast {
            let rx = db.begin_read().map_err(err("begin_read()"))?;
            return compare_tables_with(&rx, self.model.main(), "after compact()", false);
        }
        db.check().map_err(err("check() after compact()"))?;
        compare(db, &self.model).map_err(|e| format!("after compact(): {e}"))
    }
}
