//! The runner: applies a sequence of [`Op`]s to a database on `MemStorage` and to the
//! [`Model`], and compares every result, every expected error and, after reopens, crashes
//! and at the end, the whole database.
//!
//! Invariants: every value the engine returns is compared with the model's; an error is
//! accepted only when the model predicts the same [`ErrKind`]; `check()` runs after every
//! reopen and crash and at the end (in fast mode, not again at a reopen that finds the very
//! chunks of storage and model tables that the last checked reopen found:
//! `MemStorage::unchanged_since`, `Model::unchanged_since`).

use super::model::{
    check_key, check_name, range_of, ErrKind, Expect, Kind, Model, ModelKey, ModelPrint,
    ModelValue, TableModel, Tables,
};
use super::ops::{End, Key, Name, Op, RangeSpec, ReadOp, TableName, TxnOp, Value, PLAIN_KEYS};
use crate::io::{Fingerprint, MemStorage};
use crate::{Database, Durability, Error, RangeMut, ReadTxn, TableMut, WriteTxn};
use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt::Debug;
use std::ops::Bound;
use std::sync::Arc;

mod copies;
mod more;
mod staged;

use staged::Staged;

/// How the database under test is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Page size of the new file.
    pub page_size: usize,
    /// `Options::verify_reads`.
    pub verify_reads: bool,
    /// The default durability of commits.
    pub durability: Durability,
    /// The fuzzer's fast mode: every result is still compared with the model, but the full
    /// `check()` and the whole-database comparison run only at every reopen and crash and
    /// at the end (for the replica too); `Op::Check`, `Op::Compact`, `Op::Backup` and
    /// `Op::Send` compare only what they touched; every comparison walks each table once
    /// (no second walk from the back, no `get` of every key: `check()` reads every page);
    /// only the first `Op::Backup` of a run copies (a backup reads and never changes the
    /// database, so a later one adds a copy of another state, which an input holding only
    /// that backup reaches too; each copy cost more than a reopen with its `check()`); a
    /// reopen that finds the storage and the model untouched since the last reopen that
    /// checked them does not check them again (the same bytes and model would pass again).
    pub fast: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            page_size: 4096,
            verify_reads: true,
            durability: Durability::Immediate,
            fast: false,
        }
    }
}

impl Config {
    /// A configuration chosen by one byte (for fuzzing): bit 0 verify, bit 1 eventual, bits
    /// 2..4 page size (mostly 4096).
    pub fn from_byte(b: u8) -> Config {
        Config {
            page_size: if b & 0b1_1100 == 0b1_1100 { 8192 } else { 4096 },
            verify_reads: b & 1 == 1,
            durability: if b & 2 == 2 {
                Durability::Eventual
            } else {
                Durability::Immediate
            },
            fast: false,
        }
    }
}

/// Runs `ops` with the default configuration.
pub fn run(ops: &[Op]) -> Result<(), String> {
    run_with(Config::default(), ops)
}

/// Runs `ops` against a fresh database and the model; `Err` describes the first mismatch.
pub fn run_with(config: Config, ops: &[Op]) -> Result<(), String> {
    let mut runner = Runner::new(config)?;
    for (i, op) in ops.iter().enumerate() {
        runner
            .apply(op)
            .map_err(|e| format!("op {i} {op:?}: {e}"))?;
    }
    if !config.fast {
        // (Fast mode: the reopen below checks the same bytes.)
        runner
            .full_check()
            .map_err(|e| format!("at the end: {e}"))?;
    }
    runner
        .reopen(false)
        .map_err(|e| format!("after the final reopen: {e}"))?;
    runner
        .check_replica()
        .map_err(|e| format!("the replica at the end: {e}"))
}

fn err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> String + '_ {
    move |e| format!("{what}: {e}")
}

/// Compares an engine result with the model's prediction: `Ok(Some(v))` when both hold the
/// same value, `Ok(None)` when both failed the same way.
fn outcome<T: PartialEq + Debug>(
    what: &str,
    got: Result<T, Error>,
    want: Expect<T>,
) -> Result<Option<T>, String> {
    match (got, want) {
        (Ok(g), Ok(w)) if g == w => Ok(Some(g)),
        (Err(e), Err(k)) if ErrKind::from(&e) == k => Ok(None),
        (Ok(g), Ok(w)) => Err(format!("{what}: got {g:?}, model says {w:?}")),
        (Ok(g), Err(k)) => Err(format!("{what}: got Ok({g:?}), model says {k:?}")),
        (Err(e), want) => Err(format!("{what}: got error {e:?}, model says {want:?}")),
    }
}

/// A short, printable form of a key or value.
pub fn show(bytes: &[u8]) -> String {
    let head: String = String::from_utf8_lossy(&bytes[..bytes.len().min(24)]).into_owned();
    if bytes.len() > 24 {
        format!("{head:?}..({} bytes)", bytes.len())
    } else {
        format!("{head:?}")
    }
}

pub(super) fn bound_ref(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(k) => Bound::Included(k.as_slice()),
        Bound::Excluded(k) => Bound::Excluded(k.as_slice()),
    }
}

/// Walks `range` from both ends as `pattern` says and compares it with `want`.
/// `want` holds references where it can: the model's entries are compared, never copied.
fn walk_range<K: AsRef<[u8]>, V: AsRef<[u8]>, WK: AsRef<[u8]>, WV: AsRef<[u8]>>(
    mut range: impl DoubleEndedIterator<Item = crate::Result<(K, V)>>,
    want: &[(WK, WV)],
    pattern: u8,
) -> Result<(), String> {
    let (mut front, mut back) = (0usize, want.len());
    for step in 0..=want.len() {
        let from_back = (pattern >> (step % 8)) & 1 == 1;
        let got = if from_back {
            range.next_back()
        } else {
            range.next()
        };
        let expected = if front == back {
            None
        } else if from_back {
            back -= 1;
            Some(&want[back])
        } else {
            front += 1;
            Some(&want[front - 1])
        };
        let dir = if from_back { "back" } else { "front" };
        match (got, expected) {
            (None, None) => {
                let other = if from_back {
                    range.next()
                } else {
                    range.next_back()
                };
                return match other {
                    None => Ok(()),
                    Some(Ok((k, _))) => Err(format!(
                        "range ended at the {dir} but the other end still yields {}",
                        show(k.as_ref())
                    )),
                    Some(Err(e)) => Err(format!("range: error after the end: {e}")),
                };
            }
            (Some(Ok((k, v))), Some((wk, wv)))
                if k.as_ref() == wk.as_ref() && v.as_ref() == wv.as_ref() => {}
            (Some(Ok((k, v))), Some((wk, wv))) => {
                return Err(format!(
                    "range step {step} ({dir}): got {} = {}, model has {} = {}",
                    show(k.as_ref()),
                    show(v.as_ref()),
                    show(wk.as_ref()),
                    show(wv.as_ref())
                ))
            }
            (Some(Ok((k, _))), None) => {
                return Err(format!(
                    "range step {step} ({dir}): got {} past the end of the model's {} entries",
                    show(k.as_ref()),
                    want.len()
                ))
            }
            (None, Some((wk, _))) => {
                return Err(format!(
                    "range step {step} ({dir}): ended early, model has {}",
                    show(wk.as_ref())
                ))
            }
            (Some(Err(e)), _) => return Err(format!("range step {step} ({dir}): error {e:?}")),
        }
    }
    Err("range yielded more entries than the model holds".into())
}

fn check_range<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    range: impl DoubleEndedIterator<Item = crate::Result<(K, V)>>,
    table: &TableModel,
    spec: &RangeSpec,
) -> Result<(), String> {
    let (lo, hi) = (spec.lo.to_model_bound(), spec.hi.to_model_bound());
    walk_range(range, &range_of(table, &lo, &hi), spec.pattern)
        .map_err(|e| format!("range {:?}..{:?}: {e}", spec.lo, spec.hi))
}

fn range_bounds(spec: &RangeSpec) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    (spec.lo.to_bound(), spec.hi.to_bound())
}

/// Compares the tables a read transaction sees with `tables`: names, lengths, every entry
/// from both ends, and a `get` of every key.
pub fn compare_tables(rx: &ReadTxn<'_>, tables: &Tables, label: &str) -> Result<(), String> {
    compare_tables_with(rx, tables, label, true)
}

/// [`compare_tables`]; without `thorough`, one forward walk per table and no `get`s.
fn compare_tables_with(
    rx: &ReadTxn<'_>,
    tables: &Tables,
    label: &str,
    thorough: bool,
) -> Result<(), String> {
    let mut walked = Vec::new();
    compare_tables_in(rx, tables, label, (!thorough).then_some(&mut walked))
}

/// The trees one whole comparison has walked: each one's `Table::tree_identity` (the
/// readers stay alive until the comparison ends, so an address is never reused) and the
/// model table it matched.
type Walked<'m> = Vec<((usize, crate::format::Ptr, u64), &'m TableModel)>;

/// [`compare_tables_with`]: thorough without `walked`; with it, one forward walk per table
/// and none of a tree already walked against an equal model table in the same comparison
/// (a snapshot shares its tables with its branch until either changes, and main is read by
/// name and by `begin_read`): the walk would read the same entries from the same pages.
/// Every table's name, length and emptiness are still compared.
fn compare_tables_in<'m>(
    rx: &ReadTxn<'_>,
    tables: &'m Tables,
    label: &str,
    mut walked: Option<&mut Walked<'m>>,
) -> Result<(), String> {
    let names = rx.table_names().map_err(err(label))?;
    let want: Vec<&String> = tables.keys().collect();
    if names.iter().collect::<Vec<_>>() != want {
        return Err(format!("{label}: tables {names:?}, model has {want:?}"));
    }
    for (name, entries) in tables {
        let entries: &TableModel = entries;
        let label = format!("{label}/{name}");
        let t = rx.open_table(name).map_err(err(&label))?;
        let len = t.len().map_err(err(&label))?;
        if len != entries.len() as u64 || t.is_empty().map_err(err(&label))? != entries.is_empty() {
            return Err(format!("{label}: len {len}, model has {}", entries.len()));
        }
        let Some(walked) = walked.as_deref_mut() else {
            compare_entries(&t, entries, true).map_err(err(&label))?;
            continue;
        };
        let identity = t.tree_identity();
        let seen = |(id, m): &(_, &TableModel)| {
            *id == identity && (std::ptr::eq(*m, entries) || *m == entries)
        };
        if !walked.iter().any(seen) {
            compare_entries(&t, entries, false).map_err(err(&label))?;
            walked.push((identity, entries));
        }
    }
    Ok(())
}

/// One table's entries against its model: a forward walk, and if `thorough` a walk from the
/// back and a `get` of every key.
fn compare_entries(
    t: &crate::Table<'_>,
    entries: &TableModel,
    thorough: bool,
) -> Result<(), String> {
    let all: Vec<(&ModelKey, &ModelValue)> = entries.iter().collect();
    walk_range(t.iter().map_err(|e| e.to_string())?, &all, 0)?;
    if !thorough {
        return Ok(());
    }
    walk_range(t.iter().map_err(|e| e.to_string())?, &all, 0xFF)?;
    for (k, v) in entries {
        match t.get(k) {
            Ok(Some(got)) if got == v.as_ref() => {}
            other => {
                return Err(format!(
                    "get({}) gave {:?}, model has {}",
                    show(k),
                    other.map(|o| o.map(show)),
                    show(v)
                ))
            }
        }
    }
    Ok(())
}

/// Checks a whole database against the model: the lists of snapshots and branches, and
/// every root's tables and entries.
pub fn compare(db: &Database, model: &Model) -> Result<(), String> {
    compare_with(db, model, true)
}

/// [`compare`]; without `thorough`, one forward walk per table and no `get`s.
fn compare_with(db: &Database, model: &Model, thorough: bool) -> Result<(), String> {
    for kind in [Kind::Snapshot, Kind::Branch] {
        let branches = kind == Kind::Branch;
        let what = if branches {
            "branches()"
        } else {
            "snapshots()"
        };
        let got = match (thorough, branches) {
            // Fast mode: the names alone (Op::List compares the listings themselves).
            (false, _) => db.root_names(branches),
            (true, false) => db
                .snapshots()
                .map(|v| v.into_iter().map(|s| s.name).collect()),
            (true, true) => db
                .branches()
                .map(|v| v.into_iter().map(|s| s.name).collect()),
        };
        let got: Vec<String> = got.map_err(err(what))?;
        if got != model.names(kind) {
            return Err(format!(
                "{what} = {got:?}, model has {:?}",
                model.names(kind)
            ));
        }
    }
    // Every reader stays open until the end, for `Walked`.
    let mut readers = Vec::new();
    for (name, root) in &model.roots {
        let rx = db.begin_read_at(name).map_err(err(name))?;
        readers.push((name.as_str(), rx, &root.tables));
    }
    let rx = db.begin_read().map_err(err("begin_read()"))?;
    readers.push(("begin_read()", rx, model.main()));
    let mut walked = Vec::new();
    for (label, rx, tables) in &readers {
        compare_tables_in(rx, tables, label, (!thorough).then_some(&mut walked))?;
    }
    Ok(())
}

struct Runner {
    config: Config,
    storage: Arc<MemStorage>,
    db: Option<Database>,
    model: Model,
    /// The database that receives what `Op::Send` sends, and its model.
    replica: Option<(Database, Model)>,
    /// Whether an `Op::Backup` has run (fast mode runs only the first).
    backed_up: bool,
    /// Fast mode: the storage and the model at the last reopen whose full check passed.
    checked: Option<(Fingerprint, ModelPrint)>,
}

fn open(config: &Config, storage: &Arc<MemStorage>) -> Result<Database, String> {
    Database::options()
        .page_size(config.page_size)
        .verify_reads(config.verify_reads)
        .durability(config.durability)
        .open_storage(storage.clone())
        .map_err(|e| format!("open: {e:?}"))
}

impl Runner {
    fn new(config: Config) -> Result<Runner, String> {
        let storage = Arc::new(MemStorage::with_chunk_size(config.page_size));
        let db = open(&config, &storage)?;
        Ok(Runner {
            config,
            storage,
            db: Some(db),
            model: Model::new(),
            replica: None,
            backed_up: false,
            checked: None,
        })
    }

    fn db(&self) -> &Database {
        self.db.as_ref().expect("database is open")
    }

    fn full_check(&self) -> Result<(), String> {
        self.db().check().map_err(|e| format!("check(): {e:?}"))?;
        compare_with(self.db(), &self.model, !self.config.fast)
    }

    /// `Op::Check`: the full check, or in fast mode main's tables against the model.
    fn check_op(&self) -> Result<(), String> {
        if !self.config.fast {
            return self.full_check();
        }
        let rx = self.db().begin_read().map_err(err("begin_read()"))?;
        compare_tables_with(&rx, self.model.main(), "main", false)
    }

    /// The replica's `check()` and its whole model (a no-op without a replica).
    fn check_replica(&self) -> Result<(), String> {
        let Some((replica, model)) = &self.replica else {
            return Ok(());
        };
        replica.check().map_err(err("check() of the replica"))?;
        compare_with(replica, model, !self.config.fast)
    }

    /// `Op::ReadOnly`: the bytes opened read-only equal the model, refuse a write and stay
    /// as they were; then the database is opened for writing again.
    fn read_only(&mut self, crash: bool) -> Result<(), String> {
        self.db = None;
        if crash {
            self.storage = Arc::new(self.storage.fork());
        }
        // A fork shares the chunks, so comparing with it skips every chunk left untouched.
        let before = self.storage.fork();
        let db = Database::options()
            .read_only(true)
            .verify_reads(self.config.verify_reads)
            .open_storage(self.storage.clone())
            .map_err(err("read-only open"))?;
        compare_with(&db, &self.model, false).map_err(|e| format!("read-only: {e}"))?;
        match db.begin_write() {
            Err(Error::ReadOnlyDatabase) => {}
            other => return Err(format!("read-only begin_write: {:?}", other.map(drop))),
        }
        drop(db);
        if !self.storage.same_bytes(&before) {
            return Err("a read-only open changed the bytes".into());
        }
        self.db = Some(open(&self.config, &self.storage)?);
        Ok(())
    }

    /// Drops the database and opens the same storage (`crash`: a copy of its bytes).
    fn reopen(&mut self, crash: bool) -> Result<(), String> {
        self.db = None;
        if crash {
            // The bytes as they are, shared chunk by chunk (what `to_bytes` would copy).
            self.storage = Arc::new(self.storage.fork());
        }
        self.db = Some(open(&self.config, &self.storage)?);
        if !self.config.fast {
            return self.full_check();
        }
        // The same bytes, opened afresh, against the same model: the check and comparison
        // that passed at that reopen would read the same and pass again.
        let unchanged = |(bytes, model): &(Fingerprint, ModelPrint)| {
            self.storage.unchanged_since(bytes) && self.model.unchanged_since(model)
        };
        if self.checked.as_ref().is_some_and(unchanged) {
            return Ok(());
        }
        self.full_check()?;
        self.checked = Some((self.storage.fingerprint(), self.model.print()));
        Ok(())
    }

    fn apply(&mut self, op: &Op) -> Result<(), String> {
        match op {
            Op::Write {
                branch,
                pin,
                ops,
                end,
            } => self.write(*branch, *pin, ops, *end),
            Op::Read { root, ops } => self.read(*root, ops),
            Op::CreateSnapshot(n) => {
                let name = n.as_string();
                let want = self.model.create_snapshot(&name);
                outcome("create_snapshot", self.db().create_snapshot(&name), want).map(drop)
            }
            Op::CreateBranch(n, from) => {
                let (name, from) = (n.as_string(), from.as_string());
                let want = self.model.create_branch(&name, &from);
                outcome("create_branch", self.db().create_branch(&name, &from), want).map(drop)
            }
            Op::Restore(n, from) => {
                let (name, from) = (n.as_string(), from.as_string());
                let want = self.model.restore(&name, &from);
                outcome("restore", self.db().restore(&name, &from), want).map(drop)
            }
            Op::DeleteSnapshot(n) => {
                let name = n.as_string();
                let want = self.model.delete(&name, Kind::Snapshot);
                outcome("delete_snapshot", self.db().delete_snapshot(&name), want).map(drop)
            }
            Op::DeleteBranch(n) => {
                let name = n.as_string();
                let want = self.model.delete(&name, Kind::Branch);
                outcome("delete_branch", self.db().delete_branch(&name), want).map(drop)
            }
            Op::List => self.list(),
            Op::Sync => self.db().sync().map_err(err("sync()")),
            Op::Check => self.check_op(),
            Op::Reopen => self.reopen(false),
            Op::Crash => self.reopen(true),
            Op::Diff(old, new) => self.diff(*old, *new),
            Op::Send { snapshot, base } => self.send(*snapshot, *base),
            Op::Backup => self.backup(),
            Op::Compact { pin } => self.compact(*pin),
            Op::ReadOnly { crash } => self.read_only(*crash),
        }
    }

    fn list(&self) -> Result<(), String> {
        let db = self.db();
        let names = |v: Vec<crate::SnapshotInfo>| v.into_iter().map(|s| s.name).collect();
        let snaps: Vec<String> = db.snapshots().map(names).map_err(err("snapshots()"))?;
        if snaps != self.model.names(Kind::Snapshot) {
            return Err(format!("snapshots() = {snaps:?}"));
        }
        let branches: Vec<String> = db.branches().map(names).map_err(err("branches()"))?;
        if branches != self.model.names(Kind::Branch) {
            return Err(format!("branches() = {branches:?}"));
        }
        let stats = db.stats().map_err(err("stats()"))?;
        let got: Vec<(String, u64)> = stats.tables.into_iter().map(|t| (t.name, t.len)).collect();
        let want: Vec<(String, u64)> = self
            .model
            .main()
            .iter()
            .map(|(n, t)| (n.clone(), t.len() as u64))
            .collect();
        if got != want {
            return Err(format!("stats().tables = {got:?}, model has {want:?}"));
        }
        Ok(())
    }

    fn write(
        &mut self,
        branch: Option<Name>,
        pin: bool,
        ops: &[TxnOp],
        end: End,
    ) -> Result<(), String> {
        let name = branch.map_or_else(|| crate::txn::roots::MAIN.to_string(), Name::as_string);
        let want = self.model.writable(&name).map(drop);
        let db = self.db.as_ref().expect("database is open");
        let pinned = match (&want, pin) {
            (Ok(()), true) => Some(db.begin_read_at(&name).map_err(err("pinned reader"))?),
            _ => None,
        };
        let got = match branch {
            None => db.begin_write(),
            Some(_) => db.begin_write_on(&name),
        };
        let Some((mut tx, ())) = outcome_tx(got, want)? else {
            return Ok(());
        };
        let durability = match end {
            End::Commit => None,
            End::CommitEventual => Some(Durability::Eventual),
            End::CommitImmediate => Some(Durability::Immediate),
            End::Abort | End::Crash => {
                let committed = self.model.writable(&name).expect("checked above");
                let mut staged = Staged::new(committed);
                txn_ops(&mut tx, &mut staged, &mut Vec::new(), &self.model, ops)?;
                drop(tx);
                if let Some(rx) = &pinned {
                    let label = "pinned reader after abort";
                    compare_tables_with(rx, committed, label, !self.config.fast)?;
                }
                drop(pinned);
                if end == End::Crash {
                    return self.reopen(true);
                }
                return Ok(());
            }
        };
        if let Some(d) = durability {
            tx.set_durability(d);
        }
        let mut snaps = Vec::new();
        let changes = if let Some(rx) = pinned {
            // The pinned reader must still see the committed tables: stage copies.
            let committed = self.model.writable(&name).expect("checked above");
            let mut staged = Staged::new(committed);
            txn_ops(&mut tx, &mut staged, &mut snaps, &self.model, ops)?;
            tx.commit().map_err(|e| format!("commit: {e:?}"))?;
            let label = "pinned reader after commit";
            compare_tables_with(&rx, committed, label, !self.config.fast)?;
            staged.into_changes()
        } else {
            // The transaction commits, or the run fails: its ops may change the model's
            // tables in place, taken out of the model for the transaction (no copy).
            let root = self.model.roots.get_mut(&name).expect("checked above");
            let mut staged = Staged::owned(std::mem::take(&mut root.tables));
            txn_ops(&mut tx, &mut staged, &mut snaps, &self.model, ops)?;
            tx.commit().map_err(|e| format!("commit: {e:?}"))?;
            staged.into_changes()
        };
        changes.commit(&mut self.model, &name, &snaps);
        Ok(())
    }

    fn read(&self, root: Option<Name>, ops: &[ReadOp]) -> Result<(), String> {
        let db = self.db();
        let (rx, want) = match root {
            None => (db.begin_read(), Ok(self.model.main())),
            Some(n) => {
                let name = n.as_string();
                (db.begin_read_at(&name), self.model.read_at(&name))
            }
        };
        let (rx, tables) = match (rx, want) {
            (Ok(rx), Ok(t)) => (rx, t),
            (Err(e), Err(k)) if ErrKind::from(&e) == k => return Ok(()),
            (Ok(_), Err(k)) => return Err(format!("begin_read: got a reader, model says {k:?}")),
            (Err(e), Ok(_)) => return Err(format!("begin_read: got error {e:?}")),
            (Err(e), Err(k)) => return Err(format!("begin_read: got {e:?}, model says {k:?}")),
        };
        for (i, op) in ops.iter().enumerate() {
            read_op(&rx, tables, op).map_err(|e| format!("read op {i} {op:?}: {e}"))?;
        }
        Ok(())
    }
}

fn outcome_tx<'db, T>(
    got: crate::Result<WriteTxn<'db>>,
    want: Expect<T>,
) -> Result<Option<(WriteTxn<'db>, T)>, String> {
    match (got, want) {
        (Ok(tx), Ok(t)) => Ok(Some((tx, t))),
        (Err(e), Err(k)) if ErrKind::from(&e) == k => Ok(None),
        (Ok(_), Err(k)) => Err(format!("begin_write: got a transaction, model says {k:?}")),
        (Err(e), Ok(_)) => Err(format!("begin_write: got error {e:?}")),
        (Err(e), Err(k)) => Err(format!("begin_write: got {e:?}, model says {k:?}")),
    }
}

/// Opens table `t` in `tx` as the model predicts (creating it in `staged`); `None` when both
/// refused the name.
fn open_mut<'t>(
    tx: &'t WriteTxn<'_>,
    staged: &mut Staged,
    t: TableName,
) -> Result<Option<(TableMut<'t>, String)>, String> {
    let name = t.as_string();
    let got = tx.open_table(&name);
    match (got, check_name(&name)) {
        (Ok(table), Ok(())) => {
            staged.open(&name);
            Ok(Some((table, name)))
        }
        (Err(e), Err(k)) if ErrKind::from(&e) == k => Ok(None),
        (Ok(_), Err(k)) => Err(format!("open_table({name:?}): opened, model says {k:?}")),
        (Err(e), Ok(())) => Err(format!("open_table({name:?}): {e:?}")),
        (Err(e), Err(k)) => Err(format!("open_table({name:?}): {e:?}, model says {k:?}")),
    }
}

/// Runs a transaction's ops. A table's handle stays open from its first op until an op that
/// needs the whole transaction (`&mut`), so several tables are open at once and their
/// buffered writes interleave.
fn txn_ops(
    tx: &mut WriteTxn<'_>,
    staged: &mut Staged,
    snaps: &mut Vec<String>,
    model: &Model,
    ops: &[TxnOp],
) -> Result<(), String> {
    let mut i = 0;
    // Bounded: every pass consumes at least one op.
    while i < ops.len() {
        let end = ops[i..]
            .iter()
            .position(|op| table_of(op).is_none())
            .map_or(ops.len(), |p| i + p);
        if end > i {
            table_ops(tx, staged, &ops[i..end], i)?;
            i = end;
            continue;
        }
        txn_op(tx, staged, snaps, model, &ops[i])
            .map_err(|e| format!("txn op {i} {:?}: {e}", ops[i]))?;
        i += 1;
    }
    Ok(())
}

/// The table an op works on; `None` for an op on the whole transaction.
fn table_of(op: &TxnOp) -> Option<TableName> {
    match op {
        TxnOp::DeleteTable(_) | TxnOp::TableNames | TxnOp::CreateSnapshot(_) => None,
        TxnOp::Insert(t, ..) | TxnOp::InsertMany(t, ..) | TxnOp::Remove(t, _) => Some(*t),
        TxnOp::RemoveMany(t, ..) | TxnOp::Get(t, _) | TxnOp::Range(t, _) => Some(*t),
        TxnOp::Len(t) | TxnOp::More(t, _) => Some(*t),
    }
}

/// Table ops with every table's handle kept open across them; a second `open_table` of an
/// open table must be refused.
fn table_ops(
    tx: &WriteTxn<'_>,
    staged: &mut Staged,
    ops: &[TxnOp],
    first: usize,
) -> Result<(), String> {
    let mut open: HashMap<String, Option<TableMut<'_>>> = HashMap::new();
    for (j, op) in ops.iter().enumerate() {
        let t = table_of(op).expect("a table's op");
        let name = t.as_string();
        let label = |e: String| format!("txn op {} {op:?}: {e}", first + j);
        match open.get(&name) {
            None => {
                let handle = open_mut(tx, staged, t).map_err(label)?;
                open.insert(name.clone(), handle.map(|(table, _)| table));
            }
            Some(Some(_)) if j % 4 == 0 => match tx.open_table(&name) {
                Err(Error::InvalidArgument(_)) => {}
                other => return Err(label(format!("second open_table: {other:?}"))),
            },
            Some(_) => {}
        }
        if let Some(Some(table)) = open.get_mut(&name) {
            match op {
                // Reads leave the model's table uncopied.
                TxnOp::Get(..) | TxnOp::Range(..) | TxnOp::Len(_) => {
                    table_read(table, staged.get(&name), op).map_err(label)?
                }
                _ => table_op(table, staged.get_mut(&name), op).map_err(label)?,
            }
        }
    }
    Ok(())
}

/// An op on the whole transaction (it takes `&mut`, so no table is open).
fn txn_op(
    tx: &mut WriteTxn<'_>,
    staged: &mut Staged,
    snaps: &mut Vec<String>,
    model: &Model,
    op: &TxnOp,
) -> Result<(), String> {
    match op {
        TxnOp::DeleteTable(t) => {
            let name = t.as_string();
            let want = check_name(&name).map(|()| staged.remove(&name));
            outcome("delete_table", tx.delete_table(&name), want).map(drop)
        }
        TxnOp::TableNames => {
            let want: Vec<String> = staged.names();
            outcome("table_names", tx.table_names(), Ok(want)).map(drop)
        }
        TxnOp::CreateSnapshot(n) => {
            let name = n.as_string();
            let want = model.txn_snapshot(snaps, &name);
            if outcome("create_snapshot", tx.create_snapshot(&name), want)?.is_some() {
                snaps.push(name);
            }
            Ok(())
        }
        _ => unreachable!("a table's op runs in table_ops"),
    }
}

/// An operation on one open table that may change it, against its model.
fn table_op(table: &mut TableMut<'_>, m: &mut TableModel, op: &TxnOp) -> Result<(), String> {
    match op {
        TxnOp::Insert(_, k, v) => insert(table, m, k.model_key(), v.slice()),
        TxnOp::InsertMany(_, start, count, v) => insert_many(table, m, *start, *count, *v),
        TxnOp::Remove(_, k) => {
            let key = k.model_key();
            outcome("remove", table.remove(&key), Ok(m.remove(&key).is_some())).map(drop)
        }
        TxnOp::RemoveMany(_, start, count) => remove_many(table, m, *start, *count),
        TxnOp::More(_, more) => more::more_op(table, m, more),
        _ => table_read(table, m, op),
    }
}

/// An operation on one open table that only reads it, against its model.
fn table_read(table: &mut TableMut<'_>, m: &TableModel, op: &TxnOp) -> Result<(), String> {
    match op {
        TxnOp::Get(_, k) => {
            let key = k.model_key();
            let want = m.get(&key).map(|v| v.to_vec());
            outcome("get", table_get(table, &key), Ok(want)).map(drop)
        }
        TxnOp::Range(_, spec) => {
            let (lo, hi) = range_bounds(spec);
            let range = table_range(table, &lo, &hi).map_err(err("range"))?;
            check_range(range, m, spec)
        }
        TxnOp::Len(_) => {
            let want = m.len() as u64;
            let (len, empty) = table_len(table);
            outcome("len", len, Ok(want))?;
            outcome("is_empty", empty, Ok(want == 0)).map(drop)
        }
        _ => unreachable!("not a table's read: {op:?}"),
    }
}

fn table_get(table: &TableMut<'_>, key: &[u8]) -> crate::Result<Option<Vec<u8>>> {
    table.get(key).map(|v| v.map(Cow::into_owned))
}

fn table_range<'a>(
    table: &'a TableMut<'_>,
    lo: &Bound<Vec<u8>>,
    hi: &Bound<Vec<u8>>,
) -> crate::Result<RangeMut<'a>> {
    table.range((bound_ref(lo), bound_ref(hi)))
}

fn table_len(table: &TableMut<'_>) -> (crate::Result<u64>, crate::Result<bool>) {
    (table.len(), table.is_empty())
}

/// `count` inserts of consecutive plain keys from `start` (at most 8 when values are large).
fn insert_many(
    table: &mut TableMut<'_>,
    m: &mut TableModel,
    start: Key,
    count: u8,
    v: Value,
) -> Result<(), String> {
    let n = if v.len() > 2000 {
        (count as usize).min(8)
    } else {
        count as usize
    };
    // Plain keys are never refused, so the model takes them all after the engine. They run
    // in order from `start` (wrapping past k239): sorted and merged in, they cost a compare
    // or two each, where inserting them one by one cost a search each (a tenth of the
    // instrumented target's time went to those compares, through libFuzzer's memcmp hook).
    let mut batch = Vec::with_capacity(n);
    for i in 0..n {
        let (key, value) = (
            start.plain_offset(i).model_key(),
            v.with_fill_offset(i).slice(),
        );
        outcome("insert", table.insert(&key, value), Ok(()))?;
        batch.push((key, ModelValue::Borrowed(value)));
    }
    if batch.len() < 8 {
        m.extend(batch);
    } else {
        // `collect` keeps the last value of a key inserted twice, `append` the batch's.
        m.append(&mut batch.into_iter().collect());
    }
    Ok(())
}

/// `count` removes of consecutive plain keys from `start`.
fn remove_many(
    table: &mut TableMut<'_>,
    m: &mut TableModel,
    start: Key,
    count: u8,
) -> Result<(), String> {
    let n = count as usize;
    if n < 8 {
        for i in 0..n {
            let key = start.plain_offset(i).model_key();
            outcome("remove", table.remove(&key), Ok(m.remove(&key).is_some()))?;
        }
        return Ok(());
    }
    // One pass over the model takes out the run's keys (a search per key cost compares
    // through libFuzzer's memcmp hook); a key comes round again after PLAIN_KEYS removes,
    // and is gone by then.
    let first = start.plain_offset(0).0 as usize;
    let plain = PLAIN_KEYS as usize;
    let mut held = vec![false; plain];
    m.retain(|k, _| match Key::plain_of(k) {
        Some(p) if (p.0 as usize + plain - first) % plain < n => {
            held[p.0 as usize] = true;
            false
        }
        _ => true,
    });
    for i in 0..n {
        let key = start.plain_offset(i);
        let want = i < plain && held[key.0 as usize];
        outcome("remove", table.remove(&key.model_key()), Ok(want))?;
    }
    Ok(())
}

/// Inserts into the table and, when the engine is expected to take it, into the model,
/// which borrows the value's bytes (no copy).
fn insert(
    table: &mut TableMut<'_>,
    m: &mut TableModel,
    key: ModelKey,
    value: &'static [u8],
) -> Result<(), String> {
    let want = check_key(&key);
    if outcome("insert", table.insert(&key, value), want)?.is_some() {
        m.insert(key, value.into());
    }
    Ok(())
}

fn read_op(rx: &ReadTxn<'_>, tables: &Tables, op: &ReadOp) -> Result<(), String> {
    let table = |t: TableName| -> Result<Option<(crate::Table<'_>, &TableModel)>, String> {
        let name = t.as_string();
        let want = check_name(&name).and_then(|()| tables.get(&name).ok_or(ErrKind::NotFound));
        match (rx.open_table(&name), want) {
            (Ok(table), Ok(m)) => Ok(Some((table, m))),
            (Err(e), Err(k)) if ErrKind::from(&e) == k => Ok(None),
            (Ok(_), Err(k)) => Err(format!("open_table({name:?}): opened, model says {k:?}")),
            (Err(e), Ok(_)) => Err(format!("open_table({name:?}): {e:?}")),
            (Err(e), Err(k)) => Err(format!("open_table({name:?}): {e:?}, model says {k:?}")),
        }
    };
    match op {
        ReadOp::Get(t, k) => {
            let Some((table, m)) = table(*t)? else {
                return Ok(());
            };
            let key = k.model_key();
            let got = table.get(&key).map(|v| v.map(<[u8]>::to_vec));
            outcome("get", got, Ok(m.get(&key).map(|v| v.to_vec()))).map(drop)
        }
        ReadOp::Range(t, spec) => {
            let Some((table, m)) = table(*t)? else {
                return Ok(());
            };
            let (lo, hi) = range_bounds(spec);
            let range = table
                .range((bound_ref(&lo), bound_ref(&hi)))
                .map_err(err("range"))?;
            check_range(range, m, spec)
        }
        ReadOp::Len(t) => {
            let Some((table, m)) = table(*t)? else {
                return Ok(());
            };
            outcome("len", table.len(), Ok(m.len() as u64))?;
            outcome("is_empty", table.is_empty(), Ok(m.is_empty())).map(drop)
        }
        ReadOp::Ends(t, k) => {
            let Some((table, m)) = table(*t)? else {
                return Ok(());
            };
            let key = k.model_key();
            outcome(
                "contains_key",
                table.contains_key(&key),
                Ok(m.contains_key(&key)),
            )?;
            let pair = |(k, v): (&ModelKey, &ModelValue)| (k.to_vec(), v.to_vec());
            let owned = |e: crate::Result<Option<(&[u8], &[u8])>>| {
                e.map(|e| e.map(|(k, v)| (k.to_vec(), v.to_vec())))
            };
            outcome("first", owned(table.first()), Ok(m.iter().next().map(pair)))?;
            outcome(
                "last",
                owned(table.last()),
                Ok(m.iter().next_back().map(pair)),
            )
            .map(drop)
        }
        ReadOp::TableNames => {
            let want: Vec<String> = tables.keys().cloned().collect();
            outcome("table_names", rx.table_names(), Ok(want)).map(drop)
        }
    }
}
