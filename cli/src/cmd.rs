//! The commands. Each opens the database, does one thing and prints its result; errors are
//! [`Fail`]s that name the file.

use crate::bytes::Shown;
use crate::fail::{CliResult, DbContext, Fail, EXIT_CORRUPT};
use crate::mdb;
use crate::progress::Progress;
use comfy_table::{presets, CellAlignment, Table as Grid};
use serde::Serialize;
use shadowkv::{Database, ReadTxn, SnapshotInfo};
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, IsTerminal, Read, Write};
use std::ops::Bound;
use std::path::Path;
use std::time::UNIX_EPOCH;

/// Opens an existing database (a missing file is an error, never created). Every page read
/// is verified against its checksum: the tool reports damage rather than print damaged data.
fn open(path: &Path) -> CliResult<Database> {
    Database::options()
        .create(false)
        .verify_reads(true)
        .open(path)
        .at(path)
}

/// Opens a database, creating it (with `page_size`, when given) if missing.
fn open_or_create(path: &Path, page_size: Option<usize>) -> CliResult<Database> {
    let mut options = Database::options().verify_reads(true);
    if let Some(size) = page_size {
        options = options.page_size(size);
    }
    options.open(path).at(path)
}

/// Runs `work` on a database opened or created at `path`; when the file was created here and
/// the work failed, removes it again, so a failed load or receive leaves nothing behind.
fn with_new_or_existing<T>(
    path: &Path,
    page_size: Option<usize>,
    work: impl FnOnce(&Database) -> CliResult<T>,
) -> CliResult<T> {
    let existed = path.exists();
    let result = open_or_create(path, page_size).and_then(|db| work(&db));
    if result.is_err() && !existed && path.exists() {
        let _ = std::fs::remove_file(path);
    }
    result
}

fn read_at<'d>(db: &'d Database, path: &Path, at: Option<&str>) -> CliResult<ReadTxn<'d>> {
    match at {
        Some(name) => db.begin_read_at(name).at(path),
        None => db.begin_read().at(path),
    }
}

fn size(bytes: u64) -> String {
    humansize::format_size(bytes, humansize::BINARY)
}

fn stdout() -> BufWriter<io::StdoutLock<'static>> {
    BufWriter::new(io::stdout().lock())
}

fn print_json(value: &impl Serialize) -> CliResult {
    let mut out = stdout();
    serde_json::to_writer_pretty(&mut out, value).map_err(io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

fn grid(header: &[&str]) -> Grid {
    let mut grid = Grid::new();
    grid.load_preset(presets::UTF8_FULL_CONDENSED);
    grid.set_header(header.to_vec());
    grid
}

fn right_align(grid: &mut Grid, columns: std::ops::Range<usize>) {
    for i in columns {
        if let Some(column) = grid.column_mut(i) {
            column.set_cell_alignment(CellAlignment::Right);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// stat

#[derive(Serialize)]
struct StatJson {
    path: String,
    txn: u64,
    page_size: usize,
    file_bytes: u64,
    total_pages: u64,
    used_pages: u64,
    live_bytes: u64,
    free_bytes: u64,
    pending_bytes: u64,
    pinned_bytes: u64,
    tables: Vec<TableJson>,
    snapshots: Vec<RootJson>,
    branches: Vec<RootJson>,
}

#[derive(Serialize)]
struct TableJson {
    name: String,
    entries: u64,
    /// Tree depth (0 when empty).
    depth: u8,
    key_bytes: u64,
    value_bytes: u64,
}

#[derive(Serialize)]
struct RootJson {
    name: String,
    txn: u64,
    created_unix: u64,
    created: String,
    referenced_bytes: u64,
    exclusive_bytes: u64,
}

impl From<&SnapshotInfo> for RootJson {
    fn from(info: &SnapshotInfo) -> RootJson {
        let secs = info
            .created
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        RootJson {
            name: info.name.clone(),
            txn: info.txn,
            created_unix: secs,
            created: humantime::format_rfc3339_seconds(
                UNIX_EPOCH + std::time::Duration::from_secs(secs),
            )
            .to_string(),
            referenced_bytes: info.referenced_bytes,
            exclusive_bytes: info.exclusive_bytes,
        }
    }
}

pub fn stat(path: &Path, json: bool) -> CliResult<u8> {
    let report = stat_report(path)?;
    if json {
        print_json(&report)?;
    } else {
        print_stat(&report)?;
    }
    Ok(0)
}

/// What `stat` reports: the library's stats, the key and value bytes of each table, and the
/// snapshots and branches.
fn stat_report(path: &Path) -> CliResult<StatJson> {
    let db = open(path)?;
    let stats = db.stats().at(path)?;
    let tables = table_sizes(&db, path, &stats.tables)?;
    let snapshots: Vec<RootJson> = db.snapshots().at(path)?.iter().map(Into::into).collect();
    let branches: Vec<RootJson> = db.branches().at(path)?.iter().map(Into::into).collect();
    Ok(StatJson {
        path: path.display().to_string(),
        txn: stats.txn,
        page_size: stats.page_size,
        file_bytes: stats.file_bytes,
        total_pages: stats.total_pages,
        used_pages: stats.used_pages,
        live_bytes: stats.live_bytes,
        free_bytes: stats.free_bytes,
        pending_bytes: stats.pending_bytes,
        pinned_bytes: stats.pinned_bytes,
        tables,
        snapshots,
        branches,
    })
}

/// Each table's entries and depth, with its key and value bytes. The library reports entries
/// and depth; the bytes take a scan of each table (O(data)), from the same kind of view
/// (main's last commit).
fn table_sizes(
    db: &Database,
    path: &Path,
    tables: &[shadowkv::TableStats],
) -> CliResult<Vec<TableJson>> {
    let rx = db.begin_read().at(path)?;
    let mut out = Vec::new();
    for t in tables {
        let (mut key_bytes, mut value_bytes) = (0u64, 0u64);
        if let Ok(table) = rx.open_table(&t.name) {
            for item in table.iter().at(path)? {
                let (k, v) = item.at(path)?;
                key_bytes += k.len() as u64;
                value_bytes += v.len() as u64;
            }
        }
        out.push(TableJson {
            name: t.name.clone(),
            entries: t.len,
            depth: t.depth,
            key_bytes,
            value_bytes,
        });
    }
    Ok(out)
}

/// `stat` as text: the summary, then the tables, then the snapshots and branches.
fn print_stat(report: &StatJson) -> CliResult<()> {
    let mut out = stdout();
    writeln!(out, "{}", stat_summary(report))?;
    writeln!(out)?;
    let mut t = grid(&["table", "entries", "depth", "key bytes", "value bytes"]);
    for table in &report.tables {
        t.add_row(vec![
            table.name.clone(),
            table.entries.to_string(),
            table.depth.to_string(),
            size(table.key_bytes),
            size(table.value_bytes),
        ]);
    }
    right_align(&mut t, 1..5);
    writeln!(out, "{t}")?;
    writeln!(out)?;
    let mut r = roots_grid();
    for root in &report.branches {
        add_root(&mut r, "branch", root);
    }
    for root in &report.snapshots {
        add_root(&mut r, "snapshot", root);
    }
    writeln!(out, "{r}")?;
    out.flush()?;
    Ok(())
}

/// The first block of `stat`'s text: the file, its sizes and its last txn.
fn stat_summary(report: &StatJson) -> Grid {
    let mut summary = Grid::new();
    summary.load_preset(presets::NOTHING);
    let line =
        |what: &str, bytes: u64| vec![what.to_string(), size(bytes), format!("{bytes} bytes")];
    summary.add_row(vec![
        "database".to_string(),
        report.path.clone(),
        String::new(),
    ]);
    summary.add_row(vec![
        "page size".to_string(),
        size(report.page_size as u64),
        format!("{} pages", report.total_pages),
    ]);
    summary.add_row(line("file", report.file_bytes));
    summary.add_row(line("live", report.live_bytes));
    summary.add_row(line("free", report.free_bytes));
    summary.add_row(line("pending", report.pending_bytes));
    if report.pinned_bytes > 0 {
        summary.add_row(line("pinned by a reader", report.pinned_bytes));
    }
    summary.add_row(vec![
        "last txn".to_string(),
        report.txn.to_string(),
        String::new(),
    ]);
    summary
}

fn roots_grid() -> Grid {
    let mut r = grid(&["name", "kind", "txn", "created", "referenced", "exclusive"]);
    right_align(&mut r, 2..3);
    right_align(&mut r, 4..6);
    r
}

fn add_root(grid: &mut Grid, kind: &str, root: &RootJson) {
    grid.add_row(vec![
        root.name.clone(),
        kind.to_string(),
        root.txn.to_string(),
        root.created.clone(),
        size(root.referenced_bytes),
        size(root.exclusive_bytes),
    ]);
}

// ---------------------------------------------------------------------------------------------
// check

#[derive(Serialize)]
struct CheckJson {
    ok: bool,
    /// The damaged page, when the damage is on one page.
    #[serde(skip_serializing_if = "Option::is_none")]
    page: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    report: Option<CheckReportJson>,
}

#[derive(Serialize)]
struct CheckReportJson {
    txn: u64,
    total_pages: u64,
    meta_pages: u64,
    freemap_pages: u64,
    free_pages: u64,
    pending_pages: u64,
    tree_pages: u64,
    system_pages: u64,
    tables: u64,
    entries: u64,
    main_tables: u64,
    main_entries: u64,
}

pub fn check(path: &Path, json: bool, progress: Progress) -> CliResult<u8> {
    let bar = progress.pages("verifying every page");
    let result = Database::options().create(false).open(path).and_then(|db| {
        db.check_with_progress(|done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
    });
    bar.finish_and_clear();
    match result {
        Ok(r) => {
            print_check_ok(path, &r, json)?;
            Ok(0)
        }
        Err(e @ (shadowkv::Error::Corrupted { .. } | shadowkv::Error::Truncated { .. })) => {
            let (page, reason) = match &e {
                shadowkv::Error::Corrupted { page, reason } => (Some(*page), reason.clone()),
                other => (None, other.to_string()),
            };
            if json {
                print_json(&CheckJson {
                    ok: false,
                    page,
                    reason: Some(reason),
                    report: None,
                })?;
            }
            eprintln!("shadowkv: {}: {e}", path.display());
            Ok(EXIT_CORRUPT)
        }
        Err(e) => Err(Fail::db(path, e)),
    }
}

/// The report of a check that found no damage, as JSON or as one line of text.
fn print_check_ok(path: &Path, r: &shadowkv::CheckReport, json: bool) -> CliResult<()> {
    if json {
        return print_json(&CheckJson {
            ok: true,
            page: None,
            reason: None,
            report: Some(CheckReportJson {
                txn: r.txn,
                total_pages: r.total_pages,
                meta_pages: r.meta_pages,
                freemap_pages: r.freemap_pages,
                free_pages: r.free_pages,
                pending_pages: r.pending_pages,
                tree_pages: r.tree_pages,
                system_pages: r.system_pages,
                tables: r.tables,
                entries: r.entries,
                main_tables: r.main_tables,
                main_entries: r.main_entries,
            }),
        });
    }
    let mut out = stdout();
    writeln!(
        out,
        "{}: ok: {} pages verified ({} in trees, {} system, {} free, {} pending, \
         {} meta, {} free map); {} table{} and {} entries in main, txn {}",
        path.display(),
        r.total_pages,
        r.tree_pages,
        r.system_pages,
        r.free_pages,
        r.pending_pages,
        r.meta_pages,
        r.freemap_pages,
        r.main_tables,
        if r.main_tables == 1 { "" } else { "s" },
        r.main_entries,
        r.txn
    )?;
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// tables, get, scan

#[derive(Serialize)]
struct TableNameJson {
    name: String,
    entries: u64,
}

pub fn tables(path: &Path, at: Option<&str>, json: bool) -> CliResult<u8> {
    let db = open(path)?;
    let rx = read_at(&db, path, at)?;
    let names = rx.table_names().at(path)?;
    if json {
        let mut list = Vec::new();
        for name in names {
            let entries = rx.open_table(&name).and_then(|t| t.len()).at(path)?;
            list.push(TableNameJson { name, entries });
        }
        print_json(&list)?;
    } else {
        let mut out = stdout();
        for name in names {
            writeln!(out, "{name}")?;
        }
        out.flush()?;
    }
    Ok(0)
}

fn key_arg(shown: Shown, arg: &str) -> CliResult<Vec<u8>> {
    shown.parse(arg).map_err(Fail::new)
}

pub fn get(path: &Path, table: &str, key: &str, at: Option<&str>, shown: Shown) -> CliResult<u8> {
    let key_bytes = key_arg(shown, key)?;
    let db = open(path)?;
    let rx = read_at(&db, path, at)?;
    let t = rx.open_table(table).at(path)?;
    match t.get(&key_bytes).at(path)? {
        Some(value) => {
            let mut out = stdout();
            writeln!(out, "{}", shown.show(value))?;
            out.flush()?;
            Ok(0)
        }
        None => Err(Fail::at(
            path,
            format!("not found: key {key} in table {table:?}"),
        )),
    }
}

pub struct ScanRange<'a> {
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub limit: Option<u64>,
}

pub fn scan(
    path: &Path,
    table: &str,
    range: ScanRange<'_>,
    at: Option<&str>,
    shown: Shown,
) -> CliResult<u8> {
    let from = range.from.map(|k| key_arg(shown, k)).transpose()?;
    let to = range.to.map(|k| key_arg(shown, k)).transpose()?;
    let db = open(path)?;
    let rx = read_at(&db, path, at)?;
    let t = rx.open_table(table).at(path)?;
    let lower = from.as_deref().map_or(Bound::Unbounded, Bound::Included);
    let upper = to.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
    if let (Some(f), Some(t)) = (&from, &to) {
        if f >= t {
            return Ok(0);
        }
    }
    let mut out = stdout();
    let limit = range.limit.unwrap_or(u64::MAX);
    for item in t
        .range((lower, upper))
        .at(path)?
        .take(limit.try_into().unwrap_or(usize::MAX))
    {
        let (k, v) = item.at(path)?;
        writeln!(out, "{}\t{}", shown.show(k), shown.show(v))?;
    }
    out.flush()?;
    Ok(0)
}

// ---------------------------------------------------------------------------------------------
// dump, load

/// Output to a file (removed again when the command fails) or to standard output.
struct Output {
    path: Option<std::path::PathBuf>,
    writer: Box<dyn Write>,
}

impl Output {
    fn new(path: Option<&Path>) -> CliResult<Output> {
        Ok(match path {
            Some(p) => Output {
                path: Some(p.to_path_buf()),
                writer: Box::new(BufWriter::with_capacity(
                    1 << 16,
                    File::create(p).map_err(|e| Fail::at(p, e))?,
                )),
            },
            None => Output {
                path: None,
                writer: Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
            },
        })
    }

    /// Flushes; on failure (of the work or of the flush) removes the file.
    fn finish<T>(mut self, result: CliResult<T>) -> CliResult<T> {
        let result = result.and_then(|t| {
            self.writer.flush().map_err(|e| self.write_fail(e))?;
            Ok(t)
        });
        drop(self.writer);
        if let (Err(_), Some(p)) = (&result, &self.path) {
            let _ = std::fs::remove_file(p);
        }
        result
    }

    fn write_fail(&self, e: io::Error) -> Fail {
        match &self.path {
            Some(p) => Fail::at(p, e),
            None => Fail::from(e),
        }
    }
}

pub fn dump(
    path: &Path,
    table: Option<&str>,
    at: Option<&str>,
    output: Option<&Path>,
    progress: Progress,
) -> CliResult<u8> {
    let db = open(path)?;
    let rx = read_at(&db, path, at)?;
    let names = match table {
        Some(name) => vec![name.to_string()],
        None => rx.table_names().at(path)?,
    };
    let mut total = 0;
    for name in &names {
        total += rx.open_table(name).and_then(|t| t.len()).at(path)?;
    }
    // mdb_load sizes the LMDB environment it creates by this: room for the data several
    // times over, in whole MiB.
    let file_bytes = std::fs::metadata(path).map_or(0, |m| m.len());
    let mapsize = (file_bytes.saturating_mul(4).max(16 << 20)).div_ceil(1 << 20) << 20;
    let mut out = Output::new(output)?;
    let bar = progress.entries(total, "dumping");
    let result = (|| {
        for name in &names {
            let t = rx.open_table(name).at(path)?;
            let w = &mut out.writer;
            mdb::write_header(w, name, mapsize).map_err(|e| out.write_fail(e))?;
            for item in t.iter().at(path)? {
                let (k, v) = item.at(path)?;
                mdb::write_entry(&mut out.writer, k, v).map_err(|e| out.write_fail(e))?;
                bar.inc(1);
            }
            mdb::write_end(&mut out.writer).map_err(|e| out.write_fail(e))?;
        }
        Ok(0)
    })();
    bar.finish_and_clear();
    out.finish(result)
}

/// An input file (its length known, for a bar with an ETA) or standard input.
fn input(path: Option<&Path>) -> CliResult<(Box<dyn Read>, Option<u64>, String)> {
    match path {
        Some(p) => {
            let file = File::open(p).map_err(|e| Fail::at(p, e))?;
            let len = file.metadata().ok().map(|m| m.len());
            Ok((Box::new(file), len, p.display().to_string()))
        }
        None => Ok((Box::new(io::stdin()), None, "standard input".to_string())),
    }
}

pub fn load(
    path: &Path,
    table: Option<&str>,
    input_path: Option<&Path>,
    page_size: Option<usize>,
    progress: Progress,
) -> CliResult<u8> {
    let (reader, len, input_name) = input(input_path)?;
    with_new_or_existing(path, page_size, |db| {
        let bar = progress.bytes(len, "loading");
        let mut reader = BufReader::with_capacity(1 << 16, bar.wrap_read(reader));
        let tx = db.begin_write().at(path)?;
        let mut current = None;
        let mut entries = 0u64;
        let mut loaded_tables: Vec<String> = Vec::new();
        let read = mdb::read(&mut reader, |event, _line| {
            match event {
                mdb::Event::Begin { name } => {
                    let name = table.map(str::to_string).or(name).ok_or_else(|| {
                        "this database has no database= line (LMDB's unnamed database): \
                         give --table NAME"
                            .to_string()
                    })?;
                    current = None;
                    current = Some(
                        tx.open_table(&name)
                            .map_err(|e| format!("table {name:?}: {e}"))?,
                    );
                    if !loaded_tables.contains(&name) {
                        loaded_tables.push(name);
                    }
                }
                mdb::Event::Entry { key, value } => {
                    let t = current.as_mut().expect("an entry follows a header");
                    t.insert(&key, &value).map_err(|e| e.to_string())?;
                    entries += 1;
                    if entries.is_multiple_of(4096) {
                        bar.set_message(format!("loading: {entries} entries"));
                    }
                }
                mdb::Event::End => current = None,
            }
            Ok(())
        });
        drop(current);
        bar.finish_and_clear();
        if let Err(e) = read {
            return Err(Fail::new(format!(
                "{input_name}: {e}; nothing was loaded ({} is unchanged)",
                path.display()
            )));
        }
        let spinner = progress.spinner("committing");
        tx.commit().at(path)?;
        spinner.finish_and_clear();
        print_loaded(entries, &loaded_tables)?;
        Ok(0)
    })
}

/// What `load` did: the entries and the tables they went to.
fn print_loaded(entries: u64, loaded_tables: &[String]) -> CliResult<()> {
    let mut out = stdout();
    writeln!(
        out,
        "loaded {entries} entries into {} table{}{}",
        loaded_tables.len(),
        if loaded_tables.len() == 1 { "" } else { "s" },
        if loaded_tables.is_empty() {
            String::new()
        } else {
            format!(" ({})", loaded_tables.join(", "))
        }
    )?;
    out.flush()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// snapshots and branches

#[derive(Clone, Copy)]
pub enum Kind {
    Snapshot,
    Branch,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Snapshot => "snapshot",
            Kind::Branch => "branch",
        }
    }
}

fn done(message: String) -> CliResult<u8> {
    let mut out = stdout();
    writeln!(out, "{message}")?;
    out.flush()?;
    Ok(0)
}

pub fn snapshot_create(path: &Path, name: &str, branch: Option<&str>) -> CliResult<u8> {
    let db = open(path)?;
    match branch {
        None => db.create_snapshot(name).at(path)?,
        Some(branch) => {
            let mut tx = db.begin_write_on(branch).at(path)?;
            tx.create_snapshot(name).at(path)?;
            tx.commit().at(path)?;
        }
    }
    done(format!(
        "created snapshot {name} of {}",
        branch.unwrap_or("main")
    ))
}

pub fn branch_create(path: &Path, name: &str, from: &str) -> CliResult<u8> {
    let db = open(path)?;
    db.create_branch(name, from).at(path)?;
    done(format!("created branch {name} from {from}"))
}

pub fn list(path: &Path, kind: Kind, json: bool) -> CliResult<u8> {
    let db = open(path)?;
    let infos = match kind {
        Kind::Snapshot => db.snapshots(),
        Kind::Branch => db.branches(),
    }
    .at(path)?;
    let roots: Vec<RootJson> = infos.iter().map(Into::into).collect();
    if json {
        return print_json(&roots).map(|()| 0);
    }
    let mut grid = roots_grid();
    for root in &roots {
        add_root(&mut grid, kind.name(), root);
    }
    let mut out = stdout();
    writeln!(out, "{grid}")?;
    out.flush()?;
    Ok(0)
}

pub fn delete(path: &Path, kind: Kind, name: &str) -> CliResult<u8> {
    let db = open(path)?;
    match kind {
        Kind::Snapshot => db.delete_snapshot(name),
        Kind::Branch => db.delete_branch(name),
    }
    .at(path)?;
    done(format!("deleted {} {name}", kind.name()))
}

pub fn restore(path: &Path, branch: &str, snapshot: &str) -> CliResult<u8> {
    let db = open(path)?;
    db.restore(branch, snapshot).at(path)?;
    done(format!("restored branch {branch} to {snapshot}"))
}

// ---------------------------------------------------------------------------------------------
// diff

pub struct DiffOptions {
    pub values: bool,
    pub exit_code: bool,
    pub json: bool,
    pub shown: Shown,
}

#[derive(Serialize)]
struct ChangeJson<'a> {
    change: &'static str,
    table: &'a str,
    key: String,
    key_hex: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    old: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    old_hex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_hex: Option<String>,
}

pub fn diff(path: &Path, a: &str, b: &str, options: DiffOptions) -> CliResult<u8> {
    let db = open(path)?;
    let base = db.begin_read_at(a).at(path)?;
    let new = db.begin_read_at(b).at(path)?;
    let shown = options.shown;
    let mut out = stdout();
    let mut changes = 0u64;
    if options.json {
        write!(out, "[")?;
    }
    for change in new.diff(&base).at(path)? {
        let c = change.at(path)?;
        let mark = match (c.old, c.new) {
            (None, _) => "+",
            (_, None) => "-",
            _ => "M",
        };
        if options.json {
            let value = |v: Option<&[u8]>| v.filter(|_| options.values).map(|v| shown.show(v));
            let value_hex = |v: Option<&[u8]>| v.filter(|_| options.values).map(hex::encode);
            let item = ChangeJson {
                change: mark,
                table: c.table,
                key: shown.show(c.key),
                key_hex: hex::encode(c.key),
                old: value(c.old),
                old_hex: value_hex(c.old),
                new: value(c.new),
                new_hex: value_hex(c.new),
            };
            write!(out, "{}\n  ", if changes == 0 { "" } else { "," })?;
            serde_json::to_writer(&mut out, &item).map_err(io::Error::from)?;
        } else {
            write!(out, "{mark}\t{}\t{}", c.table, shown.show(c.key))?;
            if options.values {
                for v in [c.old, c.new].into_iter().flatten() {
                    write!(out, "\t{}", shown.show(v))?;
                }
            }
            writeln!(out)?;
        }
        changes += 1;
    }
    if options.json {
        writeln!(out, "{}]", if changes == 0 { "" } else { "\n" })?;
    }
    out.flush()?;
    Ok(if options.exit_code && changes > 0 {
        1
    } else {
        0
    })
}

// ---------------------------------------------------------------------------------------------
// send, receive, backup, compact

pub fn send(
    path: &Path,
    snapshot: &str,
    base: Option<&str>,
    output: Option<&Path>,
    progress: Progress,
) -> CliResult<u8> {
    if output.is_none() && io::stdout().is_terminal() {
        return Err(Fail::new(
            "refusing to write a binary stream to a terminal: redirect standard output or give -o FILE",
        ));
    }
    let db = open(path)?;
    let mut out = Output::new(output)?;
    let bar = progress.bytes(None, "sending");
    let result = {
        let mut counted = bar.wrap_write(&mut out.writer);
        db.send(snapshot, base, &mut counted).map_err(|e| match e {
            shadowkv::Error::Io(e) if output.is_none() => Fail::from(e),
            e => Fail::db(path, e),
        })
    };
    let sent = bar.position();
    bar.finish_and_clear();
    out.finish(result)?;
    if let Some(file) = output {
        done(format!(
            "sent snapshot {snapshot}{} to {} ({})",
            base.map(|b| format!(" since {b}")).unwrap_or_default(),
            file.display(),
            size(sent)
        ))?;
    }
    Ok(0)
}

pub fn receive(
    path: &Path,
    input_path: Option<&Path>,
    page_size: Option<usize>,
    progress: Progress,
) -> CliResult<u8> {
    let (reader, len, input_name) = input(input_path)?;
    let mut received = Vec::new();
    let result = with_new_or_existing(path, page_size, |db| {
        let bar = progress.bytes(len, "receiving");
        let mut reader = BufReader::with_capacity(1 << 16, bar.wrap_read(reader));
        // Streams concatenate: one receive each, until the input ends.
        loop {
            match db.receive(&mut reader) {
                Ok(name) => received.push(name),
                Err(e @ shadowkv::Error::BadStream { .. }) => {
                    bar.finish_and_clear();
                    return Err(Fail::new(format!(
                        "{input_name}: {e}; {} is unchanged{}",
                        path.display(),
                        if received.is_empty() {
                            String::new()
                        } else {
                            format!(" since snapshot {}", received.join(", "))
                        }
                    )));
                }
                Err(e) => {
                    bar.finish_and_clear();
                    return Err(Fail::db(path, e));
                }
            }
            match reader.fill_buf() {
                Ok([]) => break,
                Ok(_) => {}
                Err(e) => return Err(Fail::new(format!("{input_name}: {e}"))),
            }
        }
        bar.finish_and_clear();
        Ok(())
    });
    // Streams received before a failure are kept: say so.
    if let Err(fail) = result {
        if !received.is_empty() {
            eprintln!(
                "shadowkv: received snapshot {} before the error",
                received.join(", ")
            );
        }
        return Err(fail);
    }
    let mut out = stdout();
    for name in &received {
        writeln!(out, "received snapshot {name}")?;
    }
    out.flush()?;
    Ok(0)
}

pub fn backup(path: &Path, dest: &Path, progress: Progress) -> CliResult<u8> {
    let db = open(path)?;
    // The library writes the copy under a temporary name beside `dest` and reports no
    // progress: the bar follows that file's length, against the live bytes it will hold.
    let bar = progress.bytes(db.stats().ok().map(|s| s.live_bytes), "backing up");
    let finished = std::sync::atomic::AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        scope.spawn(|| {
            // Bounded: ends when the backup does.
            while !finished.load(std::sync::atomic::Ordering::Acquire) {
                bar.set_position(temp_bytes(dest));
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        });
        let result = db.backup_to(dest);
        finished.store(true, std::sync::atomic::Ordering::Release);
        result
    });
    bar.finish_and_clear();
    result.map_err(|e| match e {
        shadowkv::Error::AlreadyExists(_) => {
            Fail::at(dest, "already exists; backup writes a new file")
        }
        e => Fail::db(path, e),
    })?;
    let bytes = std::fs::metadata(dest).map_or(0, |m| m.len());
    done(format!(
        "backed up {} to {} ({})",
        path.display(),
        dest.display(),
        size(bytes)
    ))
}

/// Bytes in the temporary files a backup to `dest` writes (`.NAME.*.tmp` beside it).
fn temp_bytes(dest: &Path) -> u64 {
    let Some(name) = dest.file_name() else {
        return 0;
    };
    let prefix = format!(".{}.", name.to_string_lossy());
    let dir = match dest.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with(&prefix) && n.ends_with(".tmp")
        })
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

#[derive(Serialize)]
struct CompactJson {
    bytes_before: u64,
    bytes_after: u64,
    pages_moved: u64,
    commits: u64,
    truncation_delayed: bool,
}

pub fn compact(path: &Path, json: bool, progress: Progress) -> CliResult<u8> {
    let db = open(path)?;
    // The library gives no progress callback: a spinner while it works.
    let spinner = progress.spinner("compacting");
    let result = db.compact();
    spinner.finish_and_clear();
    let r = result.at(path)?;
    if json {
        return print_json(&CompactJson {
            bytes_before: r.bytes_before,
            bytes_after: r.bytes_after,
            pages_moved: r.pages_moved,
            commits: r.commits,
            truncation_delayed: r.truncation_delayed,
        })
        .map(|()| 0);
    }
    done(format!(
        "{}: {} -> {} ({} pages moved in {} commits){}",
        path.display(),
        size(r.bytes_before),
        size(r.bytes_after),
        r.pages_moved,
        r.commits,
        if r.truncation_delayed {
            "; a reader delayed the cut"
        } else {
            ""
        }
    ))
}
