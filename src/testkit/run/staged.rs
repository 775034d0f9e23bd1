//! A write transaction's tables on the model's side, without a copy of the branch's tables
//! at every `begin_write` (that copy was a fifth of the fuzz target's time): either
//! borrowed from the committed model and copied table by table on the first op that may
//! change one (when the old tables must survive: an abort, a crash, a pinned reader), or
//! taken out of the model and changed in place (a commit without a pinned reader: the
//! transaction commits, or the run fails on the mismatch).
//!
//! Invariants: a borrowed table is copied only by [`Staged::get_mut`] (ops that read never
//! copy); [`Staged::into_changes`] names every table the transaction created, may have
//! changed or deleted, so that [`Changes::commit`] on the tables the transaction started
//! from (or on the empty set left where they were taken) gives exactly what changing a
//! whole copy in place gave.

use crate::testkit::model::{Model, TableModel, Tables};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The tables a write transaction sees, copied on write.
pub(super) struct Staged<'m> {
    tables: BTreeMap<String, Cow<'m, TableModel>>,
    /// The names of the tables the transaction started with.
    started: Vec<String>,
}

/// What a transaction did to its branch's tables.
pub(super) struct Changes {
    /// Tables deleted (and not created again).
    removed: Vec<String>,
    /// Tables created or possibly changed, whole.
    set: Vec<(String, TableModel)>,
}

impl<'m> Staged<'m> {
    /// The tables of `committed`, borrowed.
    pub(super) fn new(committed: &'m Tables) -> Self {
        let tables = (committed.iter())
            .map(|(name, t)| (name.clone(), Cow::Borrowed(t)))
            .collect();
        let started = committed.keys().cloned().collect();
        Staged { tables, started }
    }

    /// The tables `taken` out of the model, owned: changed in place.
    pub(super) fn owned(taken: Tables) -> Self {
        let started = taken.keys().cloned().collect();
        let tables = (taken.into_iter())
            .map(|(name, t)| (name, Cow::Owned(t)))
            .collect();
        Staged { tables, started }
    }

    /// `open_table(name)`: the table, created empty when missing.
    pub(super) fn open(&mut self, name: &str) {
        if !self.tables.contains_key(name) {
            self.tables
                .insert(name.to_string(), Cow::Owned(TableModel::new()));
        }
    }

    /// Table `name` to read (it must be open).
    pub(super) fn get(&self, name: &str) -> &TableModel {
        self.tables.get(name).expect("opened")
    }

    /// Table `name` to change (it must be open): copied here the first time.
    pub(super) fn get_mut(&mut self, name: &str) -> &mut TableModel {
        self.tables.get_mut(name).expect("opened").to_mut()
    }

    /// `delete_table(name)`: whether it existed.
    pub(super) fn remove(&mut self, name: &str) -> bool {
        self.tables.remove(name).is_some()
    }

    /// The names of the tables, in order.
    pub(super) fn names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// What changed relative to the tables the transaction started with.
    pub(super) fn into_changes(self) -> Changes {
        let removed = (self.started.into_iter())
            .filter(|name| !self.tables.contains_key(name))
            .collect();
        let set = (self.tables.into_iter())
            .filter_map(|(name, table)| match table {
                Cow::Owned(table) => Some((name, table)),
                Cow::Borrowed(_) => None,
            })
            .collect();
        Changes { removed, set }
    }
}

impl Changes {
    /// Commits these changes to `branch` in `model` (whose tables are those the transaction
    /// started from, or none when they were taken), with `snapshots` taken in the
    /// transaction (each a copy of the branch's tables as committed).
    pub(super) fn commit(self, model: &mut Model, branch: &str, snapshots: &[String]) {
        let tables = &mut (model.roots.get_mut(branch))
            .expect("committed branch exists")
            .tables;
        for name in self.removed {
            tables.remove(&name);
        }
        tables.extend(self.set);
        let Some((last, rest)) = snapshots.split_last() else {
            return;
        };
        // One copy a snapshot (the last takes the copy made to end the borrow above).
        let tables = tables.clone();
        for name in rest {
            model.insert_snapshot(name, tables.clone());
        }
        model.insert_snapshot(last, tables);
    }
}
