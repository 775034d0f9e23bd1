//! A write transaction's tables on the model's side, without a copy of the branch's tables
//! at every `begin_write` (that copy was a fifth of the fuzz target's time): the model's
//! tables are shared (`Arc`), so the transaction starts from the branch's map of them and
//! copies a table only on the first op that may change it while another root, an older
//! snapshot or the committed branch itself (kept for an abort, a crash or a pinned reader)
//! still holds it; a table the transaction alone holds is changed in place.
//!
//! Invariants: a table is copied only by [`Staged::get_mut`] (ops that read never copy),
//! and only when shared; [`Staged::into_changes`] gives the tables as the transaction left
//! them, so that [`Changes::commit`] sets exactly what changing a whole copy in place gave.

use crate::testkit::model::{Model, TableModel, Tables};
use std::sync::Arc;

/// The tables a write transaction sees, copied on write.
pub(super) struct Staged {
    tables: Tables,
}

/// What a transaction did to its branch's tables: the tables it left.
pub(super) struct Changes {
    tables: Tables,
}

impl Staged {
    /// The tables of `committed`, shared with it.
    pub(super) fn new(committed: &Tables) -> Self {
        Staged {
            tables: committed.clone(),
        }
    }

    /// The tables `taken` out of the model: changed in place unless another root shares them.
    pub(super) fn owned(taken: Tables) -> Self {
        Staged { tables: taken }
    }

    /// `open_table(name)`: the table, created empty when missing.
    pub(super) fn open(&mut self, name: &str) {
        if !self.tables.contains_key(name) {
            self.tables.insert(name.to_string(), Arc::default());
        }
    }

    /// Table `name` to read (it must be open).
    pub(super) fn get(&self, name: &str) -> &TableModel {
        self.tables.get(name).expect("opened")
    }

    /// Table `name` to change (it must be open): copied here the first time if shared.
    pub(super) fn get_mut(&mut self, name: &str) -> &mut TableModel {
        Arc::make_mut(self.tables.get_mut(name).expect("opened"))
    }

    /// `delete_table(name)`: whether it existed.
    pub(super) fn remove(&mut self, name: &str) -> bool {
        self.tables.remove(name).is_some()
    }

    /// The names of the tables, in order.
    pub(super) fn names(&self) -> Vec<String> {
        self.tables.keys().cloned().collect()
    }

    /// The tables as the transaction left them.
    pub(super) fn into_changes(self) -> Changes {
        Changes {
            tables: self.tables,
        }
    }
}

impl Changes {
    /// Commits these tables to `branch` in `model`, with `snapshots` taken in the
    /// transaction (each holding the branch's tables as committed, shared).
    pub(super) fn commit(self, model: &mut Model, branch: &str, snapshots: &[String]) {
        model.commit(branch, self.tables, snapshots);
    }
}
