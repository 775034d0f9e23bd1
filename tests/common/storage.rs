//! Storage doubles for the reliability tests, and the model of a whole database they check
//! against.
//!
//! - [`Recording`] logs every `write_at`, `set_len` and `sync` in order; [`Window`] and
//!   [`Damage`] turn a prefix of that log into the bytes a power cut could leave behind.
//! - [`Faulty`] fails chosen I/O operations with an `io::Error`.
//! - [`World`] is the model: one `BTreeMap` per table, per snapshot and branch. [`Step`]s are
//!   generated from a seeded [`Rng`], applied to a database and to the model, and
//!   [`verify`] compares the two.
//!
//! Included with `#[path = "common/storage.rs"] mod storage;` next to `mod common;`.
#![allow(dead_code)]

use crate::common::{Model, Rng};
use shadowkv::internals::io::{MemStorage, Storage, View};
use shadowkv::{Database, Durability, Error};
use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The unit a disk writes atomically.
pub const SECTOR: usize = 512;

// ---------------------------------------------------------------------------------------------
// Recording storage and crash images
// ---------------------------------------------------------------------------------------------

/// One logged I/O operation.
#[derive(Clone, Debug)]
pub enum Op {
    Write { offset: u64, data: Arc<[u8]> },
    SetLen(u64),
    Sync,
}

impl Op {
    pub fn is_sync(&self) -> bool {
        matches!(self, Op::Sync)
    }
}

/// A [`MemStorage`] that logs every mutating operation.
pub struct Recording {
    inner: MemStorage,
    log: Mutex<Vec<Op>>,
}

impl Recording {
    pub fn new(initial: Vec<u8>) -> Self {
        Recording {
            inner: MemStorage::from_bytes(initial),
            log: Mutex::new(Vec::new()),
        }
    }

    /// Operations logged so far.
    pub fn ops(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    pub fn log(&self) -> Vec<Op> {
        self.log.lock().unwrap().clone()
    }

    pub fn last_op(&self) -> Option<Op> {
        self.log.lock().unwrap().last().cloned()
    }

    pub fn bytes(&self) -> Vec<u8> {
        self.inner.to_bytes()
    }
}

impl Storage for Recording {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut log = self.log.lock().unwrap();
        self.inner.write_at(offset, data)?;
        log.push(Op::Write {
            offset,
            data: data.into(),
        });
        Ok(())
    }
    fn sync(&self) -> io::Result<()> {
        let mut log = self.log.lock().unwrap();
        self.inner.sync()?;
        log.push(Op::Sync);
        Ok(())
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut log = self.log.lock().unwrap();
        self.inner.set_len(len)?;
        log.push(Op::SetLen(len));
        Ok(())
    }
    fn view(&self, len: u64) -> io::Result<Arc<dyn View>> {
        self.inner.view(len)
    }
}

/// Applies one operation to a byte image the way a file would.
pub fn apply_op(bytes: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { offset, data } => {
            let start = *offset as usize;
            let end = start + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[start..end].copy_from_slice(data);
        }
        Op::SetLen(len) => bytes.resize(*len as usize, 0),
        Op::Sync => {}
    }
}

/// What happens to one unsynced operation in a crash image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Never reached the disk.
    Drop,
    /// Reached the disk whole.
    Keep,
    /// Only the sectors whose bit is set reached the disk (bit i = i-th sector the write
    /// touches, counted from the sector holding its first byte).
    Torn(Vec<bool>),
    /// Only the first `n` bytes reached the disk: a tear inside a sector, harsher than the
    /// sector-atomic disks the engine assumes (used for the small meta writes, whose checksum
    /// must reject the torn slot).
    Prefix(usize),
}

/// How the unsynced tail of a log reaches the disk.
#[derive(Clone, Debug)]
pub struct Damage {
    /// One fate per unsynced operation.
    pub fates: Vec<Fate>,
    /// The order in which the surviving operations land (indices into the unsynced tail).
    /// Later ones win where two overlap.
    pub order: Vec<usize>,
    pub label: &'static str,
}

impl Damage {
    pub fn uniform(n: usize, fate: Fate, label: &'static str) -> Self {
        Damage {
            fates: vec![fate; n],
            order: (0..n).collect(),
            label,
        }
    }
}

/// Number of sectors a write touches.
pub fn sectors_of(offset: u64, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let first = offset as usize / SECTOR;
    let last = (offset as usize + len - 1) / SECTOR;
    last - first + 1
}

/// The log cut at one point: the durable image (everything up to the last sync before the
/// cut) and the operations issued after that sync.
pub struct Window<'a> {
    pub durable: &'a [u8],
    pub unsynced: &'a [Op],
}

impl Window<'_> {
    /// The crash image this damage leaves.
    pub fn image(&self, damage: &Damage) -> Vec<u8> {
        let mut bytes = self.durable.to_vec();
        for &i in &damage.order {
            let op = &self.unsynced[i];
            match (&damage.fates[i], op) {
                (Fate::Drop, _) => {}
                (Fate::Keep, op) => apply_op(&mut bytes, op),
                (Fate::Torn(mask), Op::Write { offset, data }) => {
                    let start = *offset as usize;
                    let end = start + data.len();
                    let first_sector = start / SECTOR;
                    for (k, keep) in mask.iter().enumerate() {
                        if !keep {
                            continue;
                        }
                        let s = ((first_sector + k) * SECTOR).max(start);
                        let e = ((first_sector + k + 1) * SECTOR).min(end);
                        if s >= e {
                            continue;
                        }
                        if bytes.len() < e {
                            bytes.resize(e, 0);
                        }
                        bytes[s..e].copy_from_slice(&data[s - start..e - start]);
                    }
                }
                (Fate::Torn(_), op) => apply_op(&mut bytes, op),
                (Fate::Prefix(n), Op::Write { offset, data }) => {
                    let n = (*n).min(data.len());
                    apply_op(
                        &mut bytes,
                        &Op::Write {
                            offset: *offset,
                            data: data[..n].into(),
                        },
                    );
                }
                (Fate::Prefix(_), op) => apply_op(&mut bytes, op),
            }
        }
        bytes
    }

    /// Indices of the unsynced writes.
    pub fn writes(&self) -> Vec<usize> {
        (0..self.unsynced.len())
            .filter(|&i| matches!(self.unsynced[i], Op::Write { .. }))
            .collect()
    }

    /// Every damage worth trying exhaustively at this cut: nothing lost, everything lost,
    /// every subset of the writes (all of them when there are at most `max_subset_bits`,
    /// else each one alone dropped or kept, and every prefix and suffix), torn writes, and the
    /// writes landing in reverse order.
    pub fn exhaustive(&self, max_subset_bits: usize) -> Vec<Damage> {
        let n = self.unsynced.len();
        let n_ops = n;
        let mut out = vec![
            Damage::uniform(n, Fate::Keep, "all kept (process crash)"),
            Damage::uniform(n, Fate::Drop, "all dropped"),
        ];
        if n == 0 {
            return out;
        }
        let writes = self.writes();
        let with = |keep: &dyn Fn(usize) -> bool, label| {
            let mut d = Damage::uniform(n, Fate::Drop, label);
            for (j, &w) in writes.iter().enumerate() {
                if keep(j) {
                    d.fates[w] = Fate::Keep;
                }
            }
            // set_len: kept with the writes (the growth before a sync).
            for (i, op) in self.unsynced.iter().enumerate() {
                if matches!(op, Op::SetLen(_)) {
                    d.fates[i] = Fate::Keep;
                }
            }
            d
        };
        let k = writes.len();
        if k <= max_subset_bits {
            for mask in 0..(1u64 << k) {
                out.push(with(&|j| mask >> j & 1 == 1, "subset"));
            }
        } else {
            for j in 0..k {
                out.push(with(&|x| x != j, "one dropped"));
                out.push(with(&|x| x == j, "one kept"));
                out.push(with(&|x| x < j, "prefix kept"));
                out.push(with(&|x| x >= j, "suffix kept"));
            }
        }
        // Torn writes: each write torn in several patterns, the others kept or dropped.
        for &w in &writes {
            let Op::Write { offset, data } = &self.unsynced[w] else {
                unreachable!()
            };
            let s = sectors_of(*offset, data.len());
            if data.len() < SECTOR {
                // A write inside one sector (the meta): torn at byte granularity.
                for n in [8, data.len() / 2, data.len() - 4] {
                    let mut d =
                        Damage::uniform(n_ops, Fate::Keep, "small write torn inside a sector");
                    d.fates[w] = Fate::Prefix(n);
                    out.push(d);
                }
                continue;
            }
            if s < 2 {
                continue;
            }
            let mut patterns: Vec<Vec<bool>> = vec![
                (0..s).map(|i| i < s / 2).collect(),
                (0..s).map(|i| i >= s / 2).collect(),
                (0..s).map(|i| i % 2 == 0).collect(),
                (0..s).map(|i| i == 0).collect(),
                (0..s).map(|i| i + 1 < s).collect(),
            ];
            patterns.dedup();
            for pattern in patterns {
                for others_kept in [true, false] {
                    let mut d = Damage::uniform(
                        n,
                        if others_kept { Fate::Keep } else { Fate::Drop },
                        if others_kept {
                            "one torn, rest kept"
                        } else {
                            "one torn, rest dropped"
                        },
                    );
                    if !others_kept {
                        for (i, op) in self.unsynced.iter().enumerate() {
                            if matches!(op, Op::SetLen(_)) {
                                d.fates[i] = Fate::Keep;
                            }
                        }
                    }
                    d.fates[w] = Fate::Torn(pattern.clone());
                    out.push(d);
                }
            }
        }
        // Reordered: everything lands, older writes last (they win where they overlap).
        let mut rev = Damage::uniform(n, Fate::Keep, "all kept, reverse order");
        rev.order.reverse();
        out.push(rev);
        out
    }

    /// A random damage: each write kept, dropped or torn at random sectors, landing in a
    /// random order; a length change kept or not.
    pub fn random(&self, rng: &mut Rng) -> Damage {
        let n = self.unsynced.len();
        let mut d = Damage::uniform(n, Fate::Drop, "random");
        let bias = rng.below(3); // 0: mostly kept, 1: mostly dropped, 2: mostly torn
        for (i, op) in self.unsynced.iter().enumerate() {
            d.fates[i] = match op {
                Op::Write { offset, data } => {
                    let roll = rng.below(100);
                    let (keep, drop) = match bias {
                        0 => (70, 15),
                        1 => (15, 70),
                        _ => (20, 20),
                    };
                    if roll < keep {
                        Fate::Keep
                    } else if roll < keep + drop {
                        Fate::Drop
                    } else {
                        let s = sectors_of(*offset, data.len());
                        Fate::Torn((0..s).map(|_| rng.chance(50)).collect())
                    }
                }
                _ => {
                    if rng.chance(50) {
                        Fate::Keep
                    } else {
                        Fate::Drop
                    }
                }
            };
        }
        if rng.chance(50) {
            // Fisher-Yates
            for i in (1..n).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                d.order.swap(i, j);
            }
        }
        d
    }
}

/// Walks the cut points of a log in order, keeping the durable image up to date.
pub struct Cuts<'a> {
    initial: Vec<u8>,
    ops: &'a [Op],
    durable: Vec<u8>,
    /// Index of the first op after the last sync.
    synced_upto: usize,
}

impl<'a> Cuts<'a> {
    pub fn new(initial: Vec<u8>, ops: &'a [Op]) -> Self {
        Cuts {
            durable: initial.clone(),
            initial,
            ops,
            synced_upto: 0,
        }
    }

    /// The window at cut `cut` (ops `0..cut` issued). Cuts must be visited in increasing
    /// order.
    pub fn at(&mut self, cut: usize) -> Window<'_> {
        let last_sync = self.ops[..cut].iter().rposition(Op::is_sync);
        let upto = last_sync.map_or(0, |s| s + 1);
        if upto < self.synced_upto {
            self.durable = self.initial.clone();
            self.synced_upto = 0;
        }
        for op in &self.ops[self.synced_upto..upto] {
            apply_op(&mut self.durable, op);
        }
        self.synced_upto = upto;
        Window {
            durable: &self.durable,
            unsynced: &self.ops[upto..cut],
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Fault injection
// ---------------------------------------------------------------------------------------------

/// Which I/O operation a fault hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    Write,
    SetLen,
    Sync,
}

/// The error a fault returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultError {
    /// EIO
    Eio,
    /// ENOSPC
    NoSpace,
}

impl FaultError {
    pub fn make(self) -> io::Error {
        match self {
            FaultError::Eio => io::Error::from_raw_os_error(5),
            FaultError::NoSpace => io::Error::from_raw_os_error(28),
        }
    }
    pub fn code(self) -> i32 {
        match self {
            FaultError::Eio => 5,
            FaultError::NoSpace => 28,
        }
    }
}

/// When faults fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Never.
    Off,
    /// The operation with this index (counting write_at, set_len and sync) fails, once.
    Once(u64),
    /// Every operation from this index on fails, until `lift`.
    From(u64),
    /// Every write_at and set_len from this index on fails (syncs still work), until `lift`:
    /// a full disk.
    WritesFrom(u64),
}

type Hook = Box<dyn Fn(OpKind) + Send + Sync>;

/// Builds the image of `ops` applied to `initial` with the writes at the given indices
/// dropped.
pub fn image_without(initial: &[u8], ops: &[Op], dropped: &[usize]) -> Vec<u8> {
    let mut bytes = initial.to_vec();
    for (i, op) in ops.iter().enumerate() {
        if !dropped.contains(&i) {
            apply_op(&mut bytes, op);
        }
    }
    bytes
}

/// Whether a write of `data` at `offset` carries a meta: it lands in the meta region, or one
/// of its 4 KiB-aligned pieces starts with the magic (a meta page of the commit chain, which
/// starts a page, and pages are multiples of 4 KiB).
pub fn writes_a_meta(offset: u64, data: &[u8]) -> bool {
    offset < 8192
        || (offset.is_multiple_of(4096)
            && data.chunks(4096).any(|page| page.starts_with(b"SHADOWKV")))
}

/// A storage that fails chosen operations.
pub struct Faulty {
    pub inner: Arc<MemStorage>,
    ops: AtomicU64,
    failures: AtomicU64,
    mode: Mutex<FaultMode>,
    error: FaultError,
    lifted: AtomicBool,
    last_failed: Mutex<Option<(OpKind, u64)>>,
    /// The last failed operation was a write that carried a meta (see `writes_a_meta`).
    last_failed_meta: AtomicBool,
    /// The last operation: its kind and whether it succeeded.
    last_op: Mutex<Option<(OpKind, bool)>>,
    /// A failing write_at writes the first half of its bytes before it fails.
    partial: AtomicBool,
    hook: Mutex<Option<Hook>>,
    /// Syncs that succeeded.
    good_syncs: AtomicU64,
}

impl Faulty {
    pub fn new(inner: Arc<MemStorage>, mode: FaultMode, error: FaultError) -> Self {
        Faulty {
            inner,
            ops: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            mode: Mutex::new(mode),
            error,
            lifted: AtomicBool::new(false),
            last_failed: Mutex::new(None),
            last_failed_meta: AtomicBool::new(false),
            last_op: Mutex::new(None),
            partial: AtomicBool::new(false),
            hook: Mutex::new(None),
            good_syncs: AtomicU64::new(0),
        }
    }

    /// Operations seen so far (write_at, set_len, sync).
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }

    /// Syncs that succeeded so far.
    pub fn good_syncs(&self) -> u64 {
        self.good_syncs.load(Ordering::SeqCst)
    }

    /// Faults fired so far.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::SeqCst)
    }

    /// The kind (and offset, for a write) of the last operation that failed.
    pub fn last_failed(&self) -> Option<(OpKind, u64)> {
        *self.last_failed.lock().unwrap()
    }

    /// Whether the last operation that failed was a write carrying a meta: into a slot, or a
    /// meta page of the commit chain (see [`writes_a_meta`]).
    pub fn last_failed_wrote_meta(&self) -> bool {
        self.last_failed_meta.load(Ordering::SeqCst)
    }

    /// The last operation: its kind and whether it succeeded.
    pub fn last_op(&self) -> Option<(OpKind, bool)> {
        *self.last_op.lock().unwrap()
    }

    /// Makes a failing write land half its bytes first (a short write).
    pub fn set_partial(&self, partial: bool) {
        self.partial.store(partial, Ordering::SeqCst);
    }

    /// Changes when faults fire (indices count every operation since the storage was made).
    pub fn set_mode(&self, mode: FaultMode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Stops injecting faults.
    pub fn lift(&self) {
        self.lifted.store(true, Ordering::SeqCst);
    }

    /// Runs `hook` at the start of every operation (before it fails or succeeds).
    pub fn set_hook(&self, hook: Hook) {
        *self.hook.lock().unwrap() = Some(hook);
    }

    pub fn clear_hook(&self) {
        *self.hook.lock().unwrap() = None;
    }

    fn gate(&self, kind: OpKind, offset: u64) -> io::Result<()> {
        if let Some(hook) = self.hook.lock().unwrap().as_ref() {
            hook(kind);
        }
        let n = self.ops.fetch_add(1, Ordering::SeqCst);
        let fail = !self.lifted.load(Ordering::SeqCst)
            && match *self.mode.lock().unwrap() {
                FaultMode::Off => false,
                FaultMode::Once(at) => n == at,
                FaultMode::From(at) => n >= at,
                FaultMode::WritesFrom(at) => n >= at && kind != OpKind::Sync,
            };
        *self.last_op.lock().unwrap() = Some((kind, !fail));
        if fail {
            self.failures.fetch_add(1, Ordering::SeqCst);
            *self.last_failed.lock().unwrap() = Some((kind, offset));
            return Err(self.error.make());
        }
        Ok(())
    }
}

impl Storage for Faulty {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_at(offset, buf)
    }
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        if let Err(e) = self.gate(OpKind::Write, offset) {
            self.last_failed_meta
                .store(writes_a_meta(offset, data), Ordering::SeqCst);
            if self.partial.load(Ordering::SeqCst) {
                self.inner.write_at(offset, &data[..data.len() / 2])?;
            }
            return Err(e);
        }
        self.inner.write_at(offset, data)
    }
    fn sync(&self) -> io::Result<()> {
        self.gate(OpKind::Sync, 0)?;
        self.good_syncs.fetch_add(1, Ordering::SeqCst);
        self.inner.sync()
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.gate(OpKind::SetLen, len)?;
        self.inner.set_len(len)
    }
    fn view(&self, len: u64) -> io::Result<Arc<dyn View>> {
        self.inner.view(len)
    }
}

// ---------------------------------------------------------------------------------------------
// The model: every snapshot and branch, and the steps that change them
// ---------------------------------------------------------------------------------------------

/// One named root in the model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    pub snapshot: bool,
    pub tables: Model,
}

/// The model of a whole database: every snapshot and branch by name (`main` always there).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct World {
    pub roots: BTreeMap<String, Root>,
}

impl Default for World {
    fn default() -> Self {
        let mut roots = BTreeMap::new();
        roots.insert(
            "main".to_string(),
            Root {
                snapshot: false,
                tables: Model::new(),
            },
        );
        World { roots }
    }
}

impl World {
    fn names(&self, snapshot: Option<bool>) -> Vec<&String> {
        self.roots
            .iter()
            .filter(|(_, r)| snapshot.is_none_or(|s| r.snapshot == s))
            .map(|(n, _)| n)
            .collect()
    }

    fn pick(&self, rng: &mut Rng, snapshot: Option<bool>) -> Option<String> {
        let names = self.names(snapshot);
        if names.is_empty() {
            None
        } else {
            Some(names[rng.below(names.len() as u64) as usize].clone())
        }
    }

    /// The model after `step` succeeds.
    pub fn after(&self, step: &Step) -> World {
        let mut next = self.clone();
        match step {
            Step::Write {
                branch,
                ops,
                snapshot,
                abort,
                ..
            } => {
                if *abort {
                    return next;
                }
                let tables = &mut next.roots.get_mut(branch).expect("branch in model").tables;
                for op in ops {
                    match op {
                        TableOp::Insert(t, k, v) => {
                            tables
                                .entry(t.clone())
                                .or_default()
                                .insert(k.clone(), v.clone());
                        }
                        TableOp::Remove(t, k) => {
                            tables.entry(t.clone()).or_default().remove(k);
                        }
                        TableOp::DeleteTable(t) => {
                            tables.remove(t);
                        }
                    }
                }
                let tables = tables.clone();
                if let Some(name) = snapshot {
                    next.roots.insert(
                        name.clone(),
                        Root {
                            snapshot: true,
                            tables,
                        },
                    );
                }
            }
            Step::Snapshot(name) => {
                let tables = next.roots["main"].tables.clone();
                next.roots.insert(
                    name.clone(),
                    Root {
                        snapshot: true,
                        tables,
                    },
                );
            }
            Step::Branch { name, from } => {
                let tables = next.roots[from].tables.clone();
                next.roots.insert(
                    name.clone(),
                    Root {
                        snapshot: false,
                        tables,
                    },
                );
            }
            Step::Restore { branch, from } => {
                let tables = next.roots[from].tables.clone();
                next.roots.get_mut(branch).unwrap().tables = tables;
            }
            Step::DeleteSnapshot(name) | Step::DeleteBranch(name) => {
                next.roots.remove(name);
            }
            Step::Sync | Step::Compact => {}
            Step::Receive {
                name, tables, ok, ..
            } => {
                if *ok {
                    let root = Root {
                        snapshot: true,
                        tables: tables.clone(),
                    };
                    next.roots.insert(name.clone(), root);
                }
            }
        }
        next
    }

    /// Entries over all roots (for sizing workloads).
    pub fn entries(&self) -> usize {
        self.roots
            .values()
            .flat_map(|r| r.tables.values())
            .map(|t| t.len())
            .sum()
    }
}

/// One change to a table inside a write transaction.
#[derive(Clone, Debug)]
pub enum TableOp {
    Insert(String, Vec<u8>, Vec<u8>),
    Remove(String, Vec<u8>),
    DeleteTable(String),
}

/// One call against the database.
#[derive(Clone, Debug)]
pub enum Step {
    Write {
        branch: String,
        ops: Vec<TableOp>,
        snapshot: Option<String>,
        durability: Durability,
        abort: bool,
    },
    Snapshot(String),
    Branch {
        name: String,
        from: String,
    },
    Restore {
        branch: String,
        from: String,
    },
    DeleteSnapshot(String),
    DeleteBranch(String),
    Sync,
    /// `receive` of a stream made elsewhere: it creates snapshot `name` holding `tables`, or,
    /// when `ok` is false, is refused and changes nothing a user can see.
    Receive {
        name: String,
        stream: Vec<u8>,
        tables: Model,
        ok: bool,
    },
    /// `compact()`: several commits, none of which changes what a user can see.
    Compact,
}

impl Step {
    /// A one-line description (without the bytes).
    pub fn summary(&self) -> String {
        match self {
            Step::Write {
                branch,
                ops,
                snapshot,
                durability,
                abort,
            } => {
                let big = ops
                    .iter()
                    .filter(|o| matches!(o, TableOp::Insert(_, _, v) if v.len() > 1000))
                    .count();
                let drops = ops
                    .iter()
                    .filter(|o| matches!(o, TableOp::DeleteTable(_)))
                    .count();
                format!(
                    "write on {branch}: {} ops ({big} big values, {drops} table deletes), \
                     snapshot {snapshot:?}, {durability:?}{}",
                    ops.len(),
                    if *abort { ", aborted" } else { "" }
                )
            }
            Step::Receive {
                name, stream, ok, ..
            } => format!("receive {name:?} ({} bytes, ok: {ok})", stream.len()),
            other => format!("{other:?}"),
        }
    }
}

/// Durability of the write transactions a workload makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DurabilityMix {
    Immediate,
    Eventual,
    Mixed,
}

/// The shape of a generated workload.
#[derive(Clone, Debug)]
pub struct Shape {
    pub tables: &'static [&'static str],
    pub key_space: u64,
    /// Table operations per write transaction: 1..=max_ops.
    pub max_ops: u64,
    /// Percent of inserted values that go to overflow pages (1.5 KiB to 6 KiB).
    pub big_pct: u64,
    pub durability: DurabilityMix,
    /// Percent of steps that are write transactions (the rest: snapshots, branches, ...).
    pub write_pct: u64,
    /// Most snapshots and branches alive at once (main excluded).
    pub max_roots: usize,
    pub abort_pct: u64,
    /// Percent of steps that are `Database::sync` (on top of the ones drawn with the others).
    pub sync_pct: u64,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            tables: &["a", "b", "c"],
            key_space: 64,
            max_ops: 12,
            big_pct: 8,
            durability: DurabilityMix::Immediate,
            write_pct: 55,
            max_roots: 5,
            abort_pct: 4,
            sync_pct: 0,
        }
    }
}

/// Generates steps from a seed; names are fresh across the whole run.
pub struct Workload {
    pub rng: Rng,
    pub shape: Shape,
    fresh: u64,
}

impl Workload {
    pub fn new(seed: u64, shape: Shape) -> Self {
        Workload {
            rng: Rng(seed),
            shape,
            fresh: 0,
        }
    }

    /// Fresh names start after `n` (to continue a model that already has names).
    pub fn names_from(mut self, n: u64) -> Self {
        self.fresh = n;
        self
    }

    fn fresh(&mut self, prefix: &str) -> String {
        self.fresh += 1;
        format!("{prefix}{}", self.fresh)
    }

    fn value(&mut self) -> Vec<u8> {
        let len = if self.rng.chance(self.shape.big_pct) {
            1500 + self.rng.below(4600) as usize
        } else {
            self.rng.below(100) as usize
        };
        self.rng.bytes(len)
    }

    fn durability(&mut self) -> Durability {
        match self.shape.durability {
            DurabilityMix::Immediate => Durability::Immediate,
            DurabilityMix::Eventual => Durability::Eventual,
            DurabilityMix::Mixed => {
                if self.rng.chance(50) {
                    Durability::Immediate
                } else {
                    Durability::Eventual
                }
            }
        }
    }

    fn write(&mut self, world: &World) -> Step {
        let branch = if self.rng.chance(70) {
            "main".to_string()
        } else {
            world.pick(&mut self.rng, Some(false)).unwrap()
        };
        let n = 1 + self.rng.below(self.shape.max_ops);
        let mut ops = Vec::new();
        for _ in 0..n {
            let table = self.shape.tables[self.rng.below(self.shape.tables.len() as u64) as usize];
            let roll = self.rng.below(100);
            if roll < 3 {
                ops.push(TableOp::DeleteTable(table.to_string()));
            } else {
                let key = format!("k{:04}", self.rng.below(self.shape.key_space)).into_bytes();
                if roll < 68 {
                    let value = self.value();
                    ops.push(TableOp::Insert(table.to_string(), key, value));
                } else {
                    ops.push(TableOp::Remove(table.to_string(), key));
                }
            }
        }
        let snapshot = (self.rng.chance(10) && world.roots.len() <= self.shape.max_roots)
            .then(|| self.fresh("t"));
        let durability = self.durability();
        let abort = self.rng.chance(self.shape.abort_pct);
        Step::Write {
            branch,
            ops,
            snapshot,
            durability,
            abort,
        }
    }

    /// The next step, given the current model.
    pub fn next_step(&mut self, world: &World) -> Step {
        let full = world.roots.len() > self.shape.max_roots;
        if self.rng.chance(self.shape.sync_pct) {
            return Step::Sync;
        }
        let roll = self.rng.below(100);
        if roll < self.shape.write_pct {
            return self.write(world);
        }
        match self.rng.below(if full { 2 } else { 7 }) {
            0 => {
                if let Some(name) = world.pick(&mut self.rng, Some(true)) {
                    return Step::DeleteSnapshot(name);
                }
            }
            1 => {
                let names: Vec<String> = world
                    .names(Some(false))
                    .into_iter()
                    .filter(|n| *n != "main")
                    .cloned()
                    .collect();
                if !names.is_empty() {
                    let name = names[self.rng.below(names.len() as u64) as usize].clone();
                    return Step::DeleteBranch(name);
                }
            }
            2 => return Step::Snapshot(self.fresh("s")),
            3 => {
                let from = world.pick(&mut self.rng, None).unwrap();
                return Step::Branch {
                    name: self.fresh("b"),
                    from,
                };
            }
            4 => {
                let branch = world.pick(&mut self.rng, Some(false)).unwrap();
                let from = world.pick(&mut self.rng, None).unwrap();
                return Step::Restore { branch, from };
            }
            5 => return Step::Sync,
            _ => {}
        }
        self.write(world)
    }
}

/// Applies `step` to the database. On success returns the model after it; panics when the
/// database answers differently from the model (a removed key that was not there, ...).
pub fn apply(db: &Database, world: &World, step: &Step) -> shadowkv::Result<World> {
    match step {
        Step::Write {
            branch,
            ops,
            snapshot,
            durability,
            abort,
        } => {
            let mut tx = db.begin_write_on(branch)?;
            tx.set_durability(*durability);
            // The branch's tables as the ops go, to check what removals report.
            let mut tables = world.roots[branch].tables.clone();
            for op in ops {
                match op {
                    TableOp::Insert(t, k, v) => {
                        tx.open_table(t)?.insert(k, v)?;
                        tables
                            .entry(t.clone())
                            .or_default()
                            .insert(k.clone(), v.clone());
                    }
                    TableOp::Remove(t, k) => {
                        let removed = tx.open_table(t)?.remove(k)?;
                        let entries = tables.entry(t.clone()).or_default();
                        assert_eq!(
                            removed,
                            entries.remove(k).is_some(),
                            "remove({t}, {k:?}) disagrees with the model"
                        );
                    }
                    TableOp::DeleteTable(t) => {
                        let existed = tx.delete_table(t)?;
                        assert_eq!(
                            existed,
                            tables.remove(t).is_some(),
                            "delete_table({t}) disagrees with the model"
                        );
                    }
                }
            }
            if let Some(name) = snapshot {
                tx.create_snapshot(name)?;
            }
            if *abort {
                drop(tx);
            } else {
                tx.commit()?;
            }
        }
        Step::Snapshot(name) => db.create_snapshot(name)?,
        Step::Branch { name, from } => db.create_branch(name, from)?,
        Step::Restore { branch, from } => db.restore(branch, from)?,
        Step::DeleteSnapshot(name) => db.delete_snapshot(name)?,
        Step::DeleteBranch(name) => db.delete_branch(name)?,
        Step::Sync => db.sync()?,
        Step::Compact => {
            db.compact()?;
        }
        Step::Receive { stream, ok, .. } => {
            let received = db.receive(&stream[..]);
            if *ok {
                received?;
            } else {
                assert!(received.is_err(), "a damaged stream was received");
            }
        }
    }
    Ok(world.after(step))
}

/// Compares every snapshot and branch of the database's newest state with the model.
pub fn verify(db: &Database, world: &World) -> Result<(), String> {
    let fmt = |e: Error| format!("{e}");
    let snaps: Vec<String> = db
        .snapshots()
        .map_err(fmt)?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let want: Vec<String> = world.names(Some(true)).into_iter().cloned().collect();
    if snaps != want {
        return Err(format!("snapshots {snaps:?}, model {want:?}"));
    }
    let branches: Vec<String> = db
        .branches()
        .map_err(fmt)?
        .into_iter()
        .map(|s| s.name)
        .collect();
    let want: Vec<String> = world.names(Some(false)).into_iter().cloned().collect();
    if branches != want {
        return Err(format!("branches {branches:?}, model {want:?}"));
    }
    for (name, root) in &world.roots {
        let rx = db.begin_read_at(name).map_err(fmt)?;
        verify_tables(&rx, &root.tables).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

/// Compares the tables a read transaction sees with a model.
pub fn verify_tables(rx: &shadowkv::ReadTxn<'_>, model: &Model) -> Result<(), String> {
    let fmt = |e: Error| format!("{e}");
    let names = rx.table_names().map_err(fmt)?;
    let want: Vec<String> = model.keys().cloned().collect();
    if names != want {
        return Err(format!("tables {names:?}, model {want:?}"));
    }
    for (table, entries) in model {
        let t = rx.open_table(table).map_err(fmt)?;
        let len = t.len().map_err(fmt)?;
        if len != entries.len() as u64 {
            return Err(format!("{table}: len {len}, model {}", entries.len()));
        }
        let mut it = entries.iter();
        for item in t.iter().map_err(fmt)? {
            let (k, v) = item.map_err(fmt)?;
            match it.next() {
                Some((mk, mv)) if mk.as_slice() == k && mv.as_slice() == v => {}
                Some((mk, _)) => {
                    return Err(format!(
                        "{table}: found {:?} ({} bytes), model {:?}",
                        String::from_utf8_lossy(k),
                        v.len(),
                        String::from_utf8_lossy(mk)
                    ))
                }
                None => {
                    return Err(format!(
                        "{table}: extra key {:?}",
                        String::from_utf8_lossy(k)
                    ))
                }
            }
        }
        if let Some((mk, _)) = it.next() {
            return Err(format!(
                "{table}: missing key {:?}",
                String::from_utf8_lossy(mk)
            ));
        }
    }
    Ok(())
}

/// The bytes of a freshly created database with this page size.
pub fn fresh_db_bytes(page_size: usize) -> Vec<u8> {
    let mem = Arc::new(MemStorage::new());
    let db = Database::options()
        .page_size(page_size)
        .open_storage(mem.clone())
        .unwrap();
    drop(db);
    mem.to_bytes()
}
