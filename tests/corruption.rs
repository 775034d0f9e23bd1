//! Corruption sweeps: damage a real database file in every way a disk or a bug can, open
//! each damaged image with `verify_reads(true)`, read everything (every snapshot and branch,
//! every table from both ends, a `get` per key), write (insert + commit), and `check()`.
//!
//! Each image must end one of these ways, never in a panic, a hang, an unbounded allocation or
//! wrong data:
//! - **open error**: a clean `Corrupted`, `NotADatabase`, `Truncated` or `UnsupportedVersion`;
//! - **fallback**: it opens at an older commit (the newest meta or a page the newest commit
//!   wrote was hit) and every value read is that commit's;
//! - **detected**: reads, `check()` or the write report `Error::Corrupted`, and every value
//!   that was returned is right;
//! - **harmless**: no error, every value right. Allowed only when the damage hit bytes that
//!   no root reaches (free or pending pages, the slack after an overflow value, the unused
//!   tail of a meta slot, the older meta slot). Damage to a reachable byte that goes
//!   unreported is a **miss**, and fails the sweep.
//!
//! The exhaustive sweep on the small file covers, for every page: the first 64 bytes of the
//! page and every 7th byte after them (every byte of the two meta slots' 176 meta bytes),
//! each XORed with 0x01 and with 0xFF; the page zeroed; filled with random bytes; swapped with
//! every other page; replaced by each older version of itself; and every truncation at a page
//! boundary. That is the sample `SHADOWKV_FULL_SWEEP=0` takes; by default every byte is flipped. The sampled sweep on a larger
//! file draws single bit flips, bursts of byte damage and torn 512-byte sectors (zeros, or
//! the sector's content from an older version of the file).
//!
//! Each image runs on a worker thread under `catch_unwind`; a watchdog fails the test when
//! one image takes longer than [`IMAGE_LIMIT`]. A global allocator refuses any single
//! allocation over 256 MiB (the process aborts) and the largest one is asserted small.

mod common;

use common::Rng;
use shadowkv::internals::btree::traverse::{traverse, Child, Edge, Enter, TreeKind, Visitor};
use shadowkv::internals::format::meta::META_BYTES;
use shadowkv::internals::format::node::NodeView;
use shadowkv::internals::format::{first_data_page, HEADER_BYTES, META_SLOT_BYTES};
use shadowkv::internals::io::{MemStorage, Storage};
use shadowkv::internals::pager::{freemap, ReadPages};
use shadowkv::testkit::model::{ModelKey, ModelValue};
use shadowkv::testkit::{show, Kind, Model, TableModel, Tables};
use shadowkv::{Database, Durability, Error, WriteTxn};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::{BTreeMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------
// A guard on allocation sizes.

struct Guard;

static LARGEST_ALLOC: AtomicUsize = AtomicUsize::new(0);
const ALLOC_REFUSE: usize = 256 << 20;

// SAFETY: forwards to the system allocator; refusing (null) is allowed by the contract.
unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_REFUSE {
            return std::ptr::null_mut();
        }
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if layout.size() > ALLOC_REFUSE {
            return std::ptr::null_mut();
        }
        LARGEST_ALLOC.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_REFUSE {
            return std::ptr::null_mut();
        }
        LARGEST_ALLOC.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GUARD: Guard = Guard;

/// The longest one image may take.
const IMAGE_LIMIT: Duration = Duration::from_secs(2);
const PS: usize = 4096;

// ---------------------------------------------------------------------------------------
// Building a real file, with the model of every commit and a copy of every older version.

struct Built {
    bytes: Vec<u8>,
    /// Every earlier version of the file, oldest first.
    history: Vec<Vec<u8>>,
    /// The model of every commit, by txn.
    models: BTreeMap<u64, Model>,
}

struct Builder {
    storage: Arc<MemStorage>,
    db: Option<Database>,
    model: Model,
    built: Built,
}

impl Builder {
    fn new() -> Builder {
        let storage = Arc::new(MemStorage::new());
        let db = Database::options().open_storage(storage.clone()).unwrap();
        let mut b = Builder {
            storage,
            db: Some(db),
            model: Model::new(),
            built: Built {
                bytes: Vec::new(),
                history: Vec::new(),
                models: BTreeMap::new(),
            },
        };
        b.record();
        b
    }

    fn db(&self) -> &Database {
        self.db.as_ref().unwrap()
    }

    fn record(&mut self) {
        let txn = self.db().stats().unwrap().txn;
        self.built.models.insert(txn, self.model.clone());
        self.built.history.push(self.storage.to_bytes());
    }

    /// A write transaction on `branch`, applied to the model too.
    fn write(
        &mut self,
        branch: &str,
        eventual: bool,
        f: impl FnOnce(&mut WriteTxn<'_>, &mut Tables),
    ) {
        let mut tables = self.model.roots[branch].tables.clone();
        let db = self.db.as_ref().unwrap();
        let mut tx = db.begin_write_on(branch).unwrap();
        if eventual {
            tx.set_durability(Durability::Eventual);
        }
        f(&mut tx, &mut tables);
        tx.commit().unwrap();
        self.model.commit(branch, tables, &[]);
        self.record();
    }

    fn snapshot(&mut self, name: &str) {
        self.db().create_snapshot(name).unwrap();
        self.model.create_snapshot(name).unwrap();
        self.record();
    }

    fn branch(&mut self, name: &str, from: &str) {
        self.db().create_branch(name, from).unwrap();
        self.model.create_branch(name, from).unwrap();
        self.record();
    }

    fn delete_snapshot(&mut self, name: &str) {
        self.db().delete_snapshot(name).unwrap();
        self.model.delete(name, Kind::Snapshot).unwrap();
        self.record();
    }

    fn finish(mut self) -> Built {
        self.db = None;
        self.built.bytes = self.storage.to_bytes();
        let last = self.built.history.pop().unwrap();
        assert_eq!(last, self.built.bytes);
        self.built
    }
}

fn put(tx: &mut WriteTxn<'_>, tables: &mut Tables, table: &str, key: &[u8], value: &[u8]) {
    tx.open_table(table).unwrap().insert(key, value).unwrap();
    Arc::make_mut(tables.entry(table.to_string()).or_default())
        .insert(key.into(), value.to_vec().into());
}

fn del(tx: &mut WriteTxn<'_>, tables: &mut Tables, table: &str, key: &[u8]) {
    let removed = tx.open_table(table).unwrap().remove(key).unwrap();
    let t = Arc::make_mut(tables.entry(table.to_string()).or_default());
    assert_eq!(removed, t.remove(key).is_some());
}

fn value(seed: usize, len: usize) -> Vec<u8> {
    (0..len).map(|i| (seed * 131 + i * 7) as u8).collect()
}

/// A few dozen pages: two tables (one with an overflow value), a snapshot, a branch with its
/// own changes, later changes on main, a deleted table; the last commit is Eventual.
fn small_file() -> Built {
    let mut b = Builder::new();
    b.write("main", false, |tx, m| {
        for i in 0..60 {
            put(
                tx,
                m,
                "t1",
                format!("key{i:03}").as_bytes(),
                &value(i, 40 + i),
            );
        }
        put(tx, m, "t2", b"big", &value(99, 6000));
        put(tx, m, "t2", b"a", b"1");
        put(tx, m, "tmp", b"x", b"y");
    });
    b.snapshot("snap");
    b.branch("br", "snap");
    b.write("br", false, |tx, m| {
        put(tx, m, "t1", b"key500", b"on the branch");
        del(tx, m, "t1", b"key001");
        put(tx, m, "t2", b"big2", &value(7, 9000));
    });
    b.write("main", false, |tx, m| {
        for i in 10..20 {
            put(
                tx,
                m,
                "t1",
                format!("key{i:03}").as_bytes(),
                &value(i + 1000, 30),
            );
        }
        del(tx, m, "t2", b"a");
        assert!(tx.delete_table("tmp").unwrap());
        m.remove("tmp");
    });
    b.write("main", true, |tx, m| {
        put(tx, m, "t1", b"key030", b"eventual");
    });
    b.finish()
}

/// Several tables, snapshots and branches, overflow values, deletions: a few hundred pages.
fn large_file() -> Built {
    let mut b = Builder::new();
    for round in 0..6usize {
        b.write("main", round % 3 == 2, |tx, m| {
            for t in 0..4usize {
                let table = format!("table{t}");
                for i in 0..300usize {
                    let k = (i * 7 + round * 13 + t) % 900;
                    let len = if (i + round) % 97 == 0 {
                        5000 + i * 10
                    } else {
                        20 + (i * 11) % 200
                    };
                    put(
                        tx,
                        m,
                        &table,
                        format!("k{k:05}").as_bytes(),
                        &value(i + round, len),
                    );
                }
                for i in 0..40usize {
                    del(
                        tx,
                        m,
                        &table,
                        format!("k{:05}", (i * 31 + round * 17) % 900).as_bytes(),
                    );
                }
            }
        });
        if round % 2 == 0 {
            b.snapshot(&format!("snap{round}"));
        }
        if round == 3 {
            b.branch("dev", "snap2");
            b.write("dev", false, |tx, m| {
                for i in 0..100usize {
                    put(
                        tx,
                        m,
                        "table1",
                        format!("d{i:04}").as_bytes(),
                        &value(i, 100),
                    );
                }
                put(tx, m, "devonly", b"big", &value(5, 20_000));
            });
        }
        if round == 4 {
            b.delete_snapshot("snap0");
        }
    }
    b.finish()
}

// ---------------------------------------------------------------------------------------
// Which bytes of the file matter.

/// For every byte region of the file: whether damage there must be reported.
struct Roles {
    /// Bytes of each page that a root reaches (0 for free and pending pages; the value's
    /// length on the last page of an overflow run; the whole page otherwise).
    live_bytes: Vec<usize>,
    /// Where the newest meta lies (a slot, or a meta page of the commit chain).
    meta_at: usize,
    newest_txn: u64,
}

impl Roles {
    fn of(bytes: &[u8]) -> Roles {
        let storage = MemStorage::from_bytes(bytes.to_vec());
        let (meta_at, meta) = shadowkv::testkit::newest_meta(&storage).unwrap();
        let chain = shadowkv::testkit::chain_pages(&storage).unwrap();
        let view = storage.view(bytes.len() as u64).unwrap();
        let pages = ReadPages::new(view, bytes.len() as u64, PS, true);
        let n = meta.file_pages as usize;
        assert_eq!(n * PS, bytes.len());
        let mut live = vec![PS; n];
        for p in live.iter_mut().take(first_data_page(PS) as usize) {
            *p = 0;
        }
        let loaded = freemap::load_chains(&pages, meta.free_dir, meta.pending, true).unwrap();
        let bits = freemap_bits();
        for (k, (ptr, _)) in loaded.dir.iter().enumerate() {
            if ptr.is_null() {
                continue;
            }
            let page = pages.raw_page(ptr.page.0).unwrap();
            for (byte_at, byte) in page[HEADER_BYTES..].iter().enumerate() {
                for bit in 0..8 {
                    let id = k as u64 * bits + byte_at as u64 * 8 + bit;
                    if byte & (1 << bit) != 0 && (id as usize) < n {
                        live[id as usize] = 0;
                    }
                }
            }
        }
        for p in &loaded.pending {
            live[p.page as usize] = 0;
        }
        // A meta page of the commit chain: its meta is checked, the zeros after it are not.
        for page in chain {
            live[page as usize] = META_BYTES;
        }
        // The page reserved for the next meta holds nothing yet.
        if meta.next_meta != 0 {
            live[meta.next_meta as usize] = 0;
        }
        // Overflow runs: only the value's bytes are covered by its checksum.
        let mut runs = Runs {
            seen: HashSet::new(),
            runs: Vec::new(),
        };
        for (root, kind) in [
            (meta.roots, TreeKind::Roots),
            (meta.refcounts, TreeKind::Refs),
            (meta.release, TreeKind::Release),
        ] {
            traverse(&pages, root, kind, &mut runs).unwrap();
        }
        for (first, len) in runs.runs {
            let full = len as usize / PS;
            let rest = len as usize % PS;
            if rest != 0 {
                live[first as usize + full] = rest;
            }
        }
        Roles {
            live_bytes: live,
            meta_at: meta_at as usize,
            newest_txn: meta.txn,
        }
    }

    /// Whether damage to bytes `[start, end)` must be reported (or fall back).
    fn must_detect(&self, start: usize, end: usize) -> bool {
        if start < self.meta_at + META_BYTES && end > self.meta_at {
            return true;
        }
        let first = start / PS;
        let last = (end - 1) / PS;
        (first..=last).any(|p| {
            let page_start = p * PS;
            let live_end = page_start + self.live_bytes.get(p).copied().unwrap_or(0);
            start.max(page_start) < live_end && end > page_start
        })
    }

    fn live_pages(&self) -> usize {
        self.live_bytes.iter().filter(|b| **b > 0).count()
    }
}

fn freemap_bits() -> u64 {
    shadowkv::internals::format::freemap::bits_per_bitmap(PS)
}

/// The overflow runs the trees reach, each once: a visitor over the engine's traversal.
struct Runs {
    seen: HashSet<u64>,
    runs: Vec<(u64, u64)>,
}

impl<'p> Visitor<'p, ReadPages> for Runs {
    type Out = ();

    fn enter(&mut self, edge: &Edge<'p>) -> shadowkv::Result<Enter<()>> {
        let first = !edge.ptr.is_null() && self.seen.insert(edge.ptr.page.0);
        Ok(if first {
            Enter::Descend
        } else {
            Enter::Skip(())
        })
    }

    fn overflow(&mut self, edge: &Edge<'p>, len: u64) -> shadowkv::Result<()> {
        self.runs.push((edge.ptr.page.0, len));
        Ok(())
    }

    fn leave(
        &mut self,
        _: &Edge<'p>,
        _: &NodeView<'p>,
        _: Vec<(Child, ())>,
    ) -> shadowkv::Result<()> {
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Damage.

/// A damaged image and the byte ranges that changed.
type Damaged = (Vec<u8>, Vec<(usize, usize)>);

/// What each worker is running: (image index, since when).
type Running = Arc<Vec<Mutex<Option<(usize, Instant)>>>>;

#[derive(Clone, Debug)]
enum Damage {
    /// XOR one byte.
    Xor { at: usize, mask: u8 },
    /// Zero a page.
    Zero { page: usize },
    /// Fill a page with random bytes.
    Random { page: usize, seed: u64 },
    /// Swap two pages.
    Swap { a: usize, b: usize },
    /// Put back an older version of a page (from `history[version]`).
    Stale { page: usize, version: usize },
    /// Cut the file to `len` bytes.
    Truncate { len: usize },
    /// Overwrite `len` bytes at `at` with random bytes.
    Burst { at: usize, len: usize, seed: u64 },
    /// A torn 512-byte sector: zeros, or its content in `history[version]`.
    Torn { at: usize, version: Option<usize> },
}

fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..n).map(|_| rng.next() as u8).collect()
}

impl Damage {
    /// The damaged image and the byte ranges that changed (None: the image is unchanged).
    fn apply(&self, base: &[u8], history: &[Vec<u8>]) -> Option<Damaged> {
        let mut img = base.to_vec();
        let copy_from = |img: &mut Vec<u8>, src: &[u8], at: usize, len: usize| -> bool {
            if src.len() < at + len || src[at..at + len] == img[at..at + len] {
                return false;
            }
            img[at..at + len].copy_from_slice(&src[at..at + len]);
            true
        };
        let range = match *self {
            Damage::Xor { at, mask } => {
                img[at] ^= mask;
                vec![(at, at + 1)]
            }
            Damage::Zero { page } => {
                let r = page * PS..(page + 1) * PS;
                if img[r.clone()].iter().all(|b| *b == 0) {
                    return None;
                }
                img[r.clone()].fill(0);
                vec![(r.start, r.end)]
            }
            Damage::Random { page, seed } => {
                img[page * PS..(page + 1) * PS].copy_from_slice(&random_bytes(seed, PS));
                vec![(page * PS, (page + 1) * PS)]
            }
            Damage::Swap { a, b } => {
                if img[a * PS..(a + 1) * PS] == img[b * PS..(b + 1) * PS] {
                    return None;
                }
                let pa = img[a * PS..(a + 1) * PS].to_vec();
                img.copy_within(b * PS..(b + 1) * PS, a * PS);
                img[b * PS..(b + 1) * PS].copy_from_slice(&pa);
                vec![(a * PS, (a + 1) * PS), (b * PS, (b + 1) * PS)]
            }
            Damage::Stale { page, version } => {
                if !copy_from(&mut img, &history[version], page * PS, PS) {
                    return None;
                }
                vec![(page * PS, (page + 1) * PS)]
            }
            Damage::Truncate { len } => {
                img.truncate(len);
                vec![(len, base.len())]
            }
            Damage::Burst { at, len, seed } => {
                img[at..at + len].copy_from_slice(&random_bytes(seed, len));
                vec![(at, at + len)]
            }
            Damage::Torn { at, version } => {
                match version {
                    None => {
                        if img[at..at + 512].iter().all(|b| *b == 0) {
                            return None;
                        }
                        img[at..at + 512].fill(0);
                    }
                    Some(v) => {
                        if !copy_from(&mut img, &history[v], at, 512) {
                            return None;
                        }
                    }
                }
                vec![(at, at + 512)]
            }
        };
        if img == base {
            return None;
        }
        Some((img, range))
    }

    fn kind(&self) -> &'static str {
        match self {
            Damage::Xor { mask: 0xFF, .. } => "xor 0xFF",
            Damage::Xor { .. } => "bit flip",
            Damage::Zero { .. } => "zeroed page",
            Damage::Random { .. } => "random page",
            Damage::Swap { .. } => "swapped pages",
            Damage::Stale { .. } => "stale page",
            Damage::Truncate { .. } => "truncation",
            Damage::Burst { .. } => "byte burst",
            Damage::Torn { version: None, .. } => "torn sector (zeros)",
            Damage::Torn { .. } => "torn sector (old)",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Running one image.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    OpenError,
    Fallback,
    Detected,
    Harmless,
}

/// What reading a database against a model found.
#[derive(Default)]
struct Verdict {
    detected: usize,
    wrong: Vec<String>,
}

impl Verdict {
    fn error(&mut self, what: &str, e: Error) {
        match e {
            Error::Corrupted { .. } => self.detected += 1,
            other => self
                .wrong
                .push(format!("{what}: unexpected error {other:?}")),
        }
    }
}

/// Reads every root of `model` from `db`: every value returned must be the model's.
fn read_against(db: &Database, model: &Model, gets_every: usize) -> Verdict {
    let mut v = Verdict::default();
    for (kind, list) in [
        (Kind::Snapshot, db.snapshots()),
        (Kind::Branch, db.branches()),
    ] {
        match list {
            Ok(infos) => {
                let names: Vec<String> = infos.into_iter().map(|i| i.name).collect();
                if names != model.names(kind) {
                    v.wrong.push(format!(
                        "{kind:?} list {names:?}, want {:?}",
                        model.names(kind)
                    ));
                }
            }
            Err(e) => v.error("list", e),
        }
    }
    for (name, root) in &model.roots {
        match db.begin_read_at(name) {
            Ok(rx) => read_tables(&rx, &root.tables, name, gets_every, &mut v),
            Err(e) => v.error(name, e),
        }
    }
    v
}

fn read_tables(
    rx: &shadowkv::ReadTxn<'_>,
    tables: &Tables,
    root: &str,
    gets_every: usize,
    v: &mut Verdict,
) {
    match rx.table_names() {
        Ok(names) => {
            if names.iter().collect::<Vec<_>>() != tables.keys().collect::<Vec<_>>() {
                v.wrong.push(format!("{root}: tables {names:?}"));
            }
        }
        Err(e) => v.error(root, e),
    }
    for (name, model) in tables {
        let label = format!("{root}/{name}");
        let t = match rx.open_table(name) {
            Ok(t) => t,
            Err(e) => {
                v.error(&label, e);
                continue;
            }
        };
        match t.len() {
            Ok(n) if n == model.len() as u64 => {}
            Ok(n) => v
                .wrong
                .push(format!("{label}: len {n}, want {}", model.len())),
            Err(e) => v.error(&label, e),
        }
        let want: Vec<(&ModelKey, &ModelValue)> = model.iter().collect();
        match t.iter() {
            Ok(it) => compare_iter(it, want.iter().copied(), &label, "forward", v),
            Err(e) => v.error(&label, e),
        }
        match t.iter() {
            Ok(it) => compare_iter(it.rev(), want.iter().rev().copied(), &label, "backward", v),
            Err(e) => v.error(&label, e),
        }
        get_some(&t, model, gets_every, &label, v);
    }
}

fn get_some(
    t: &shadowkv::Table<'_>,
    model: &TableModel,
    every: usize,
    label: &str,
    v: &mut Verdict,
) {
    for (k, want) in model.iter().step_by(every) {
        match t.get(k) {
            Ok(Some(got)) if got == want.as_ref() => {}
            Ok(got) => v
                .wrong
                .push(format!("{label}: get({}) = {:?}", show(k), got.map(show))),
            Err(e) => v.error(label, e),
        }
    }
}

fn compare_iter<'a, 'b>(
    it: impl Iterator<Item = shadowkv::Result<(&'a [u8], &'a [u8])>>,
    mut want: impl Iterator<Item = (&'b ModelKey, &'b ModelValue)>,
    label: &str,
    dir: &str,
    v: &mut Verdict,
) {
    for item in it {
        match (item, want.next()) {
            (Ok((k, val)), Some((wk, wv))) if k == wk.bytes() && val == wv.as_ref() => {}
            (Ok((k, val)), w) => {
                v.wrong.push(format!(
                    "{label} {dir}: got {} = {}, want {:?}",
                    show(k),
                    show(val),
                    w.map(|(wk, wv)| format!("{} = {}", show(wk), show(wv)))
                ));
                return;
            }
            (Err(e), _) => {
                v.error(label, e);
                return;
            }
        }
    }
    if let Some((wk, _)) = want.next() {
        v.wrong
            .push(format!("{label} {dir}: ended before {}", show(wk)));
    }
}

struct ImageResult {
    outcome: Outcome,
    wrong: Vec<String>,
}

/// Opens, reads, writes and checks one image.
fn run_image(img: Vec<u8>, models: &BTreeMap<u64, Model>, gets_every: usize) -> ImageResult {
    let storage = Arc::new(MemStorage::from_bytes(img));
    let db = match Database::options()
        .verify_reads(true)
        .create(false)
        .open_storage(storage)
    {
        Ok(db) => db,
        Err(e) => {
            let wrong = match e {
                Error::Corrupted { .. }
                | Error::NotADatabase { .. }
                | Error::Truncated { .. }
                | Error::UnsupportedVersion { .. } => vec![],
                Error::NotFound(ref what) if what.contains("empty") => vec![],
                other => vec![format!("open: unexpected error {other:?}")],
            };
            return ImageResult {
                outcome: Outcome::OpenError,
                wrong,
            };
        }
    };
    let txn = match db.begin_read() {
        Ok(rx) => rx.txn_id(),
        Err(e) => {
            return ImageResult {
                outcome: Outcome::Detected,
                wrong: vec![format!("begin_read: {e:?}")],
            }
        }
    };
    let newest = *models.keys().last().unwrap();
    let Some(model) = models.get(&txn) else {
        return ImageResult {
            outcome: Outcome::Fallback,
            wrong: vec![format!("opened at txn {txn}, which no commit had")],
        };
    };
    let mut v = read_against(&db, model, gets_every);
    if let Err(e) = db.check() {
        v.error("check", e);
    }
    // Write, read back, check again.
    let wrote = (|| -> shadowkv::Result<()> {
        let tx = db.begin_write()?;
        tx.open_table("t1")?
            .insert(b"zz-written", b"after damage")?;
        tx.commit()
    })();
    match wrote {
        Ok(()) => {
            match db.begin_read().and_then(|rx| {
                let t = rx.open_table("t1")?;
                Ok(t.get(b"zz-written")?.map(<[u8]>::to_vec))
            }) {
                Ok(Some(got)) if got == b"after damage" => {}
                Ok(got) => v.wrong.push(format!("written key reads back as {got:?}")),
                Err(e) => v.error("read back", e),
            }
            if let Err(e) = db.check() {
                v.error("check after write", e);
            }
        }
        Err(e) => v.error("write", e),
    }
    let outcome = if txn < newest {
        Outcome::Fallback
    } else if v.detected > 0 {
        Outcome::Detected
    } else {
        Outcome::Harmless
    };
    ImageResult {
        outcome,
        wrong: v.wrong,
    }
}

// ---------------------------------------------------------------------------------------
// The sweep driver: worker threads, a watchdog, counts per kind of damage.

#[derive(Default, Clone)]
struct Counts {
    images: usize,
    unchanged: usize,
    open_error: usize,
    fallback: usize,
    detected: usize,
    harmless: usize,
    /// Damage that no root reaches, yet reported (not a failure; counted to see).
    false_alarm: usize,
}

struct Report {
    counts: BTreeMap<&'static str, Counts>,
    failures: Vec<String>,
    slowest: Duration,
    slowest_image: String,
}

fn sweep(name: &str, built: &Built, damages: Vec<Damage>, gets_every: usize) -> Report {
    let roles = Arc::new(Roles::of(&built.bytes));
    assert_eq!(roles.newest_txn, *built.models.keys().last().unwrap());
    eprintln!(
        "{name}: {} pages ({} reachable), {} commits, {} damages",
        built.bytes.len() / PS,
        roles.live_pages(),
        built.models.len(),
        damages.len()
    );
    let damages = Arc::new(damages);
    // Count the engine's allocations, not the list of damages just built.
    LARGEST_ALLOC.store(0, Ordering::Relaxed);
    let next = Arc::new(AtomicUsize::new(0));
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(4);
    let running: Running = Arc::new((0..workers).map(|_| Mutex::new(None)).collect());
    let (tx, rx) = mpsc::channel::<(usize, Option<ImageResult>, bool, Duration)>();
    let shared = Arc::new((
        built.bytes.clone(),
        built.history.clone(),
        built.models.clone(),
    ));
    for w in 0..workers {
        let (damages, next, running, tx, shared, roles) = (
            damages.clone(),
            next.clone(),
            running.clone(),
            tx.clone(),
            shared.clone(),
            roles.clone(),
        );
        std::thread::spawn(move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= damages.len() {
                return;
            }
            let (base, history, models) = &*shared;
            let start = Instant::now();
            *running[w].lock().unwrap() = Some((i, start));
            let result = match damages[i].apply(base, history) {
                None => Some(None),
                Some((img, ranges)) => {
                    let must = match damages[i] {
                        // The file is shorter than its meta says: always reported.
                        Damage::Truncate { .. } => true,
                        // Both metas intact, in each other's slot: either outcome is right.
                        Damage::Swap { a: 0, b: 1 } => false,
                        _ => ranges.iter().any(|(s, e)| roles.must_detect(*s, *e)),
                    };
                    catch_unwind(AssertUnwindSafe(|| run_image(img, models, gets_every)))
                        .ok()
                        .map(|r| Some((r, must)))
                }
            };
            *running[w].lock().unwrap() = None;
            let msg = match result {
                Some(Some((r, must))) => (i, Some(r), must, start.elapsed()),
                Some(None) => (i, None, false, start.elapsed()),
                None => (
                    i,
                    Some(ImageResult {
                        outcome: Outcome::OpenError,
                        wrong: vec!["PANIC".into()],
                    }),
                    true,
                    start.elapsed(),
                ),
            };
            if tx.send(msg).is_err() {
                return;
            }
        });
    }
    drop(tx);
    let mut report = Report {
        counts: BTreeMap::new(),
        failures: Vec::new(),
        slowest: Duration::ZERO,
        slowest_image: String::new(),
    };
    let mut done = 0;
    let mut progress = Progress::new(damages.len());
    while done < damages.len() {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok((i, result, must, took)) => {
                done += 1;
                progress.tick(name, done, report.failures.len());
                let d = &damages[i];
                if took > report.slowest {
                    report.slowest = took;
                    report.slowest_image = format!("{d:?}");
                }
                let c = report.counts.entry(d.kind()).or_default();
                c.images += 1;
                let Some(r) = result else {
                    c.unchanged += 1;
                    continue;
                };
                match r.outcome {
                    Outcome::OpenError => c.open_error += 1,
                    Outcome::Fallback => c.fallback += 1,
                    Outcome::Detected => c.detected += 1,
                    Outcome::Harmless => c.harmless += 1,
                }
                if !must
                    && r.outcome != Outcome::Harmless
                    && !matches!(d, Damage::Swap { a: 0, b: 1 })
                {
                    c.false_alarm += 1;
                }
                if !r.wrong.is_empty() {
                    report
                        .failures
                        .push(format!("{d:?}: {}", r.wrong.join("; ")));
                } else if must && r.outcome == Outcome::Harmless {
                    report.failures.push(format!(
                        "{d:?}: MISSED: damage to reachable bytes went unreported"
                    ));
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        for slot in running.iter() {
            if let Some((i, start)) = *slot.lock().unwrap() {
                if start.elapsed() > IMAGE_LIMIT {
                    panic!(
                        "{name}: image {:?} still running after {:?} (a hang?)",
                        damages[i], IMAGE_LIMIT
                    );
                }
            }
        }
    }
    assert_eq!(done, damages.len(), "{name}: a worker died");
    print_report(name, &report);
    report
}

/// Progress lines on stderr, one per tenth of the images: a sweep runs for minutes, and a
/// silent one cannot be told from a hung one.
struct Progress {
    start: Instant,
    total: usize,
    step: usize,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            start: Instant::now(),
            total,
            step: total.div_ceil(10).max(1),
        }
    }

    fn tick(&mut self, name: &str, done: usize, failures: usize) {
        if done.is_multiple_of(self.step) || done == self.total {
            eprintln!(
                "{name}: {done}/{} images ({}%) in {:.1?}, {failures} failures so far",
                self.total,
                done * 100 / self.total,
                self.start.elapsed()
            );
        }
    }
}

fn print_report(name: &str, report: &Report) {
    eprintln!(
        "{name}: {:<22} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7}",
        "damage", "images", "same", "open-err", "fallback", "detected", "harmless", "f-alarm"
    );
    let mut total = Counts::default();
    for (kind, c) in &report.counts {
        eprintln!(
            "{name}: {kind:<22} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7}",
            c.images, c.unchanged, c.open_error, c.fallback, c.detected, c.harmless, c.false_alarm
        );
        total.images += c.images;
        total.unchanged += c.unchanged;
        total.open_error += c.open_error;
        total.fallback += c.fallback;
        total.detected += c.detected;
        total.harmless += c.harmless;
        total.false_alarm += c.false_alarm;
    }
    eprintln!(
        "{name}: {:<22} {:>7} {:>7} {:>7} {:>8} {:>8} {:>8} {:>7}",
        "TOTAL",
        total.images,
        total.unchanged,
        total.open_error,
        total.fallback,
        total.detected,
        total.harmless,
        total.false_alarm
    );
    eprintln!(
        "{name}: slowest image {:?} ({}), largest allocation {} KiB, {} failures",
        report.slowest,
        report.slowest_image,
        LARGEST_ALLOC.load(Ordering::Relaxed) >> 10,
        report.failures.len()
    );
    for f in report.failures.iter().take(30) {
        eprintln!("{name}: FAIL {f}");
    }
}

fn assert_clean(name: &str, report: &Report, file_len: usize) {
    assert!(
        report.failures.is_empty(),
        "{name}: {} images failed; first: {:#?}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(10)]
    );
    let largest = LARGEST_ALLOC.load(Ordering::Relaxed);
    assert!(
        largest < 64 * file_len.max(1 << 20),
        "{name}: an allocation of {largest} bytes for a file of {file_len}"
    );
}

// ---------------------------------------------------------------------------------------
// The sweeps.

#[test]
fn built_files_are_sound() {
    for built in [small_file(), large_file()] {
        let db = Database::options()
            .verify_reads(true)
            .open_storage(Arc::new(MemStorage::from_bytes(built.bytes.clone())))
            .unwrap();
        db.check().unwrap();
        let model = built.models.values().last().unwrap();
        let v = read_against(&db, model, 1);
        assert!(v.wrong.is_empty() && v.detected == 0, "{:?}", v.wrong);
        let roles = Roles::of(&built.bytes);
        assert!(roles.live_pages() > 0 && roles.live_pages() < built.bytes.len() / PS);
    }
}

#[test]
fn exhaustive_sweep_on_a_small_file() {
    let built = small_file();
    let pages = built.bytes.len() / PS;
    // Every byte by default (about 4 minutes on 2 cores); `SHADOWKV_FULL_SWEEP=0` samples.
    let full = !std::env::var("SHADOWKV_FULL_SWEEP").is_ok_and(|v| v == "0");
    let mut damages = Vec::new();
    for at in 0..built.bytes.len() {
        let in_page = at % PS;
        let meta_bytes = at < 2 * META_SLOT_BYTES && at % META_SLOT_BYTES < META_BYTES;
        if full || meta_bytes || in_page < 64 || in_page.is_multiple_of(7) {
            damages.push(Damage::Xor { at, mask: 0x01 });
            damages.push(Damage::Xor { at, mask: 0xFF });
        }
    }
    for page in 0..pages {
        damages.push(Damage::Zero { page });
        damages.push(Damage::Random {
            page,
            seed: page as u64,
        });
        for b in page + 1..pages {
            damages.push(Damage::Swap { a: page, b });
        }
        for version in 0..built.history.len() {
            damages.push(Damage::Stale { page, version });
        }
    }
    for cut in 0..pages {
        damages.push(Damage::Truncate { len: cut * PS });
    }
    let report = sweep("small", &built, damages, 1);
    assert_clean("small", &report, built.bytes.len());
}

#[test]
fn sampled_sweep_on_a_larger_file() {
    let built = large_file();
    let len = built.bytes.len();
    let mut rng = Rng(0xC0FFEE);
    let mut damages = Vec::new();
    for _ in 0..1500 {
        damages.push(Damage::Xor {
            at: rng.below(len as u64) as usize,
            mask: 1 << rng.below(8),
        });
    }
    for _ in 0..300 {
        let n = 1 + rng.below(64) as usize;
        let at = rng.below((len - n) as u64) as usize;
        damages.push(Damage::Burst {
            at,
            len: n,
            seed: rng.next(),
        });
    }
    for _ in 0..400 {
        let at = rng.below((len / 512) as u64) as usize * 512;
        let version = if rng.below(2) == 0 {
            None
        } else {
            Some(rng.below(built.history.len() as u64) as usize)
        };
        damages.push(Damage::Torn { at, version });
    }
    let report = sweep("large", &built, damages, 17);
    assert_clean("large", &report, len);
}
