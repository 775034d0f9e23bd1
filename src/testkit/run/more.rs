//! The runner's side of `TxnOp::More`: each convenience of a `TableMut` against the model's
//! `BTreeMap`, result and resulting contents alike.
//!
//! Invariants: the model changes only when the engine's call is expected to succeed, so a
//! refused call (a key over the limit) leaves both sides as they were.

use super::{bound_ref, outcome};
use crate::testkit::model::{check_key, range_of, ModelKey, TableModel};
use crate::testkit::ops::MoreOp;
use crate::txn::CowEntry;
use crate::TableMut;

type Entry = (Vec<u8>, Vec<u8>);

fn first(m: &TableModel) -> Option<Entry> {
    m.iter().next().map(|(k, v)| (k.to_vec(), v.to_vec()))
}

fn last(m: &TableModel) -> Option<Entry> {
    m.iter().next_back().map(|(k, v)| (k.to_vec(), v.to_vec()))
}

fn owned(entry: crate::Result<Option<CowEntry<'_>>>) -> crate::Result<Option<Entry>> {
    entry.map(|e| e.map(|(k, v)| (k.into_owned(), v.into_owned())))
}

/// Applies `op` to the table and to its model, and compares what each returned.
pub(super) fn more_op(
    table: &mut TableMut<'_>,
    m: &mut TableModel,
    op: &MoreOp,
) -> Result<(), String> {
    match op {
        MoreOp::ContainsKey(k) => {
            let key = k.model_key();
            outcome(
                "contains_key",
                table.contains_key(&key),
                Ok(m.contains_key(&key)),
            )
            .map(drop)
        }
        MoreOp::Ends => {
            outcome("first", owned(table.first()), Ok(first(m)))?;
            outcome("last", owned(table.last()), Ok(last(m))).map(drop)
        }
        MoreOp::Pop(back) => {
            let (got, want) = match back {
                false => (table.pop_first(), m.pop_first()),
                true => (table.pop_last(), m.pop_last()),
            };
            let want = want.map(|(k, v)| (k.into_bytes(), v.into_owned()));
            outcome("pop", got, Ok(want)).map(drop)
        }
        MoreOp::Replace(k, v) => {
            let (key, value) = (k.model_key(), v.slice());
            let want = check_key(&key).map(|()| m.get(&key).map(|v| v.to_vec()));
            if outcome("replace", table.replace(&key, value), want)?.is_some() {
                m.insert(key, value.into());
            }
            Ok(())
        }
        MoreOp::RemoveRange(spec) => {
            let (lo, hi) = (spec.lo.to_model_bound(), spec.hi.to_model_bound());
            let doomed: Vec<ModelKey> = (range_of(m, &lo, &hi).into_iter())
                .map(|(k, _)| k.clone())
                .collect();
            for key in &doomed {
                m.remove(key);
            }
            let (lo, hi) = (spec.lo.to_bound(), spec.hi.to_bound());
            let got = table.remove_range((bound_ref(&lo), bound_ref(&hi)));
            outcome("remove_range", got, Ok(doomed.len() as u64)).map(drop)
        }
        MoreOp::Retain { n, extract } => retain(table, m, 2 + n % 5, *extract),
    }
}

/// `retain` or `extract_if` of the entries whose key's last byte is a multiple of `modulus`.
fn retain(
    table: &mut TableMut<'_>,
    m: &mut TableModel,
    modulus: u8,
    extract: bool,
) -> Result<(), String> {
    let doomed = |key: &[u8]| key.last().is_some_and(|b| b % modulus == 0);
    let taken: Vec<Entry> = (m.iter())
        .filter(|(k, _)| doomed(k))
        .map(|(k, v)| (k.to_vec(), v.to_vec()))
        .collect();
    m.retain(|k, _| !doomed(k));
    if extract {
        let got = table.extract_if(|k, _| doomed(k));
        outcome("extract_if", got, Ok(taken)).map(drop)
    } else {
        let got = table.retain(|k, _| !doomed(k));
        outcome("retain", got, Ok(taken.len() as u64)).map(drop)
    }
}
