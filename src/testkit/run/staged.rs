//! A write transaction's tables on the model's side: borrowed from the committed model, and
//! copied table by table on the first op that may change one (a whole copy of the branch's
//! tables at every `begin_write` was a fifth of the fuzz target's time).
//!
//! Invariants: a table is copied only by [`Staged::get_mut`] (ops that read never copy); at
//! the end, [`Staged::into_changes`] names every table created, possibly changed or deleted,
//! so that [`Changes::apply`] to the committed tables gives exactly what changing a whole
//! copy in place gave.

use crate::testkit::model::{Model, TableModel, Tables};
use std::borrow::Cow;
use std::collections::BTreeMap;

/// The tables a write transaction sees, copied on write.
pub(super) struct Staged<'m> {
    tables: BTreeMap<String, Cow<'m, TableModel>>,
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
        Staged { tables }
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

    /// What changed relative to `committed` (the tables this was made from).
    pub(super) fn into_changes(self, committed: &Tables) -> Changes {
        let removed = (committed.keys())
            .filter(|name| !self.tables.contains_key(*name))
            .cloned()
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
    /// Commits these changes to `branch` in `model`, with `snapshots` taken in the
    /// transaction (each a copy of the branch's tables as committed).
    pub(super) fn commit(self, model: &mut Model, branch: &str, snapshots: &[String]) {
        let tables = &mut (model.roots.get_mut(branch))
            .expect("committed branch exists")
            .tables;
        for name in self.removed {
            tables.remove(&name);
        }
        tables.extend(self.set);
        if snapshots.is_empty() {
            return;
        }
        let tables = tables.clone();
        for name in snapshots {
            model.insert_snapshot(name, tables.clone());
        }
    }
}
