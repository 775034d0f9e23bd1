//! A replicated shadowkv: openraft storage on shadowkv databases.
//!
//! - [`LogStore`]: the Raft log (table `log`, keyed by big-endian index), the vote, the
//!   committed log id and the last purged log id, in one database. An append is one durable
//!   commit for every entry that arrived together.
//! - [`StateMachine`]: a key-value map (table `kv`) with the last applied log id and the
//!   membership (table `sm_meta`) written in the same commit as the data. A Raft snapshot is a
//!   named shadowkv snapshot, built in O(1); it ships as a `send` stream, incremental when the
//!   receiver holds an older snapshot the sender still has, and installs as `receive` then
//!   `restore("main", name)`.
//! - [`cluster`]: an in-process network and a cluster of nodes for the demo and the tests.

// openraft's `StorageError` (224 bytes) is what its traits return; the helpers return it too.
#![allow(clippy::result_large_err)]

pub mod cluster;

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::{LogFlushed, RaftLogStorage, RaftStateMachine};
use openraft::{
    AnyError, BasicNode, Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, LogState,
    RaftLogReader, RaftSnapshotBuilder, Snapshot, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership, Vote,
};
use serde::{Deserialize, Serialize};
use shadowkv::{Database, Durability};

/// A node's id.
pub type NodeId = u64;

/// A client request: what the log carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Sets `key` to `value`.
    Put { key: String, value: String },
    /// Removes `key`.
    Delete { key: String },
    /// Several requests in one log entry, applied in order (the response is `None`).
    Batch(Vec<Request>),
}

/// Applies `req` to the `kv` table; returns the key's previous value.
fn apply_one(
    kv: &mut shadowkv::TableMut<'_>,
    req: Request,
) -> Result<Option<String>, shadowkv::Error> {
    let text = |v: &[u8]| String::from_utf8_lossy(v).into_owned();
    Ok(match req {
        Request::Put { key, value } => kv
            .replace(key.as_bytes(), value.as_bytes())?
            .map(|v| text(&v)),
        Request::Delete { key } => {
            let previous = kv.get(key.as_bytes())?.map(|v| text(&v));
            if previous.is_some() {
                kv.remove(key.as_bytes())?;
            }
            previous
        }
        Request::Batch(reqs) => {
            for r in reqs {
                apply_one(kv, r)?;
            }
            None
        }
    })
}

/// What applying a request returns: the key's previous value.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response {
    pub previous: Option<String>,
}

/// A Raft snapshot's data, as openraft passes it around (`generic-snapshot-data`).
#[derive(Debug)]
pub enum SnapshotData {
    /// A named snapshot in a node's state database: what building a snapshot returns. O(1):
    /// nothing is copied until it is shipped.
    Local { sm: StateMachine, name: String },
    /// A `send` stream of snapshot `name`, whole (`base: None`) or incremental from `base`;
    /// empty when the receiver already holds `name`.
    Stream {
        name: String,
        base: Option<String>,
        bytes: Vec<u8>,
    },
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = BasicNode,
        Entry = Entry<TypeConfig>,
        SnapshotData = SnapshotData,
        AsyncRuntime = openraft::TokioRuntime,
);

type StoreResult<T> = Result<T, StorageError<NodeId>>;

fn io_err(
    subject: ErrorSubject<NodeId>,
    verb: ErrorVerb,
    e: impl std::error::Error + 'static,
) -> StorageError<NodeId> {
    StorageIOError::new(subject, verb, AnyError::new(&e)).into()
}

fn store_err(verb: ErrorVerb) -> impl Fn(shadowkv::Error) -> StorageError<NodeId> {
    move |e| io_err(ErrorSubject::Store, verb, e)
}

fn read_err(e: shadowkv::Error) -> StorageError<NodeId> {
    io_err(ErrorSubject::Store, ErrorVerb::Read, e)
}

fn write_err(e: shadowkv::Error) -> StorageError<NodeId> {
    io_err(ErrorSubject::Store, ErrorVerb::Write, e)
}

fn json_err(e: serde_json::Error) -> StorageError<NodeId> {
    io_err(ErrorSubject::Store, ErrorVerb::Read, e)
}

/// Reads `key` of table `table` in the committed state of branch/snapshot `at` (main if
/// `None`), decoded from JSON; `None` when the table or the key is missing.
fn read_json<T: for<'de> Deserialize<'de>>(
    db: &Database,
    at: Option<&str>,
    table: &str,
    key: &[u8],
) -> StoreResult<Option<T>> {
    let rx = match at {
        Some(name) => db.begin_read_at(name),
        None => db.begin_read(),
    }
    .map_err(read_err)?;
    let t = match rx.open_table(table) {
        Ok(t) => t,
        Err(shadowkv::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(read_err(e)),
    };
    match t.get(key).map_err(read_err)? {
        Some(bytes) => Ok(Some(serde_json::from_slice(bytes).map_err(json_err)?)),
        None => Ok(None),
    }
}

fn to_json<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("serializable")
}

const LOG: &str = "log";
const LOG_META: &str = "raft_meta";
const VOTE: &[u8] = b"vote";
const COMMITTED: &[u8] = b"committed";
const PURGED: &[u8] = b"purged";

/// The Raft log, the vote and the committed log id in one shadowkv database. Cloning shares
/// the database (the clone is the log reader).
#[derive(Clone)]
pub struct LogStore {
    db: Arc<Database>,
    /// Appends (commits) and entries appended since open.
    counts: Arc<[AtomicU64; 2]>,
}

impl LogStore {
    /// Opens (or creates) the log database at `path`.
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Self, shadowkv::Error> {
        Ok(LogStore {
            db: Arc::new(Database::open(path)?),
            counts: Arc::default(),
        })
    }

    /// Since open: the appends (each one durable commit) and the entries they carried.
    pub fn append_counts(&self) -> (u64, u64) {
        (
            self.counts[0].load(Ordering::Relaxed),
            self.counts[1].load(Ordering::Relaxed),
        )
    }

    /// The database that holds the log.
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    fn put_meta<T: Serialize>(&self, key: &[u8], value: &T) -> StoreResult<()> {
        let tx = self.db.begin_write().map_err(write_err)?;
        tx.open_table(LOG_META)
            .map_err(write_err)?
            .insert(key, &to_json(value))
            .map_err(write_err)?;
        tx.commit().map_err(write_err)
    }

    fn last_log_id(&self) -> StoreResult<Option<LogId<NodeId>>> {
        let rx = self.db.begin_read().map_err(read_err)?;
        let t = match rx.open_table(LOG) {
            Ok(t) => t,
            Err(shadowkv::Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(read_err(e)),
        };
        match t.last().map_err(read_err)? {
            Some((_, v)) => {
                let e: Entry<TypeConfig> = serde_json::from_slice(v).map_err(json_err)?;
                Ok(Some(e.log_id))
            }
            None => Ok(None),
        }
    }
}

fn bound_key(b: Bound<&u64>) -> Bound<[u8; 8]> {
    match b {
        Bound::Included(i) => Bound::Included(i.to_be_bytes()),
        Bound::Excluded(i) => Bound::Excluded(i.to_be_bytes()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_slice(b: &Bound<[u8; 8]>) -> Bound<&[u8]> {
    match b {
        Bound::Included(k) => Bound::Included(&k[..]),
        Bound::Excluded(k) => Bound::Excluded(&k[..]),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> StoreResult<Vec<Entry<TypeConfig>>> {
        let (lo, hi) = (bound_key(range.start_bound()), bound_key(range.end_bound()));
        let rx = self.db.begin_read().map_err(read_err)?;
        let t = match rx.open_table(LOG) {
            Ok(t) => t,
            Err(shadowkv::Error::NotFound(_)) => return Ok(Vec::new()),
            Err(e) => return Err(read_err(e)),
        };
        let mut out = Vec::new();
        for item in t.range((as_slice(&lo), as_slice(&hi))).map_err(read_err)? {
            let (_, v) = item.map_err(read_err)?;
            out.push(serde_json::from_slice(v).map_err(json_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> StoreResult<LogState<TypeConfig>> {
        let last_purged_log_id: Option<LogId<NodeId>> =
            read_json(&self.db, None, LOG_META, PURGED)?;
        let last_log_id = self.last_log_id()?.or(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> StoreResult<()> {
        self.put_meta(VOTE, vote)
    }

    async fn read_vote(&mut self) -> StoreResult<Option<Vote<NodeId>>> {
        read_json(&self.db, None, LOG_META, VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId<NodeId>>) -> StoreResult<()> {
        self.put_meta(COMMITTED, &committed)
    }

    async fn read_committed(&mut self) -> StoreResult<Option<LogId<NodeId>>> {
        Ok(read_json::<Option<LogId<NodeId>>>(&self.db, None, LOG_META, COMMITTED)?.flatten())
    }

    /// Every entry of one call in one durable commit; the callback fires after it.
    async fn append<I>(&mut self, entries: I, callback: LogFlushed<TypeConfig>) -> StoreResult<()>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let tx = self.db.begin_write().map_err(store_err(ErrorVerb::Write))?;
        {
            let mut t = tx.open_table(LOG).map_err(write_err)?;
            let mut n = 0;
            for e in entries {
                t.insert(&e.log_id.index.to_be_bytes(), &to_json(&e))
                    .map_err(write_err)?;
                n += 1;
            }
            self.counts[0].fetch_add(1, Ordering::Relaxed);
            self.counts[1].fetch_add(n, Ordering::Relaxed);
        }
        let res = tx
            .commit()
            .map_err(|e| std::io::Error::other(e.to_string()));
        let failed = res
            .as_ref()
            .err()
            .map(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(res);
        match failed {
            Some(e) => Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e)),
            None => Ok(()),
        }
    }

    /// Removes the entries from `log_id.index` on.
    async fn truncate(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let tx = self.db.begin_write().map_err(write_err)?;
        let from = log_id.index.to_be_bytes();
        tx.open_table(LOG)
            .map_err(write_err)?
            .remove_range(&from[..]..)
            .map_err(write_err)?;
        tx.commit().map_err(write_err)
    }

    /// Removes the entries up to `log_id.index` and records it as the last purged, in one commit.
    async fn purge(&mut self, log_id: LogId<NodeId>) -> StoreResult<()> {
        let tx = self.db.begin_write().map_err(write_err)?;
        let to = log_id.index.to_be_bytes();
        tx.open_table(LOG)
            .map_err(write_err)?
            .remove_range(..=&to[..])
            .map_err(write_err)?;
        tx.open_table(LOG_META)
            .map_err(write_err)?
            .insert(PURGED, &to_json(&Some(log_id)))
            .map_err(write_err)?;
        tx.commit().map_err(write_err)
    }
}

const KV: &str = "kv";
const SM_META: &str = "sm_meta";
const APPLIED: &[u8] = b"last_applied";
const MEMBERSHIP: &[u8] = b"membership";
const SNAP_PREFIX: &str = "raft-snap-";
/// Snapshots kept: the newest, and the one before it as a base for incremental shipping.
const KEEP_SNAPSHOTS: usize = 2;

/// The key-value state machine in a shadowkv database (branch `main`). Cloning shares it.
#[derive(Clone, Debug)]
pub struct StateMachine {
    db: Arc<Database>,
    node: NodeId,
    /// The Raft snapshots the database holds, oldest first: `Database::snapshots` walks
    /// every page of every snapshot to size it, so it is read once, at open.
    names: Arc<Mutex<Vec<String>>>,
}

impl StateMachine {
    /// Opens (or creates) the state database at `path` for node `node`. Lists its snapshots
    /// once (`Database::snapshots`, which reads every page they reference).
    ///
    /// Applies commit with `Durability::Eventual` (no fsync): the log is durable, a crash
    /// loses only a suffix of applies, and openraft applies the committed entries past the
    /// recovered last-applied again at start. Snapshots and installs are durable commits, and
    /// the log is purged only up to a snapshot, so no entry an apply lost is ever gone.
    pub fn open(path: impl AsRef<std::path::Path>, node: NodeId) -> Result<Self, shadowkv::Error> {
        let db = Database::options()
            .durability(Durability::Eventual)
            .open(path)?;
        let mut names: Vec<String> = db
            .snapshots()?
            .into_iter()
            .map(|s| s.name)
            .filter(|n| n.starts_with(SNAP_PREFIX))
            .collect();
        names.sort();
        Ok(StateMachine {
            db: Arc::new(db),
            node,
            names: Arc::new(Mutex::new(names)),
        })
    }

    /// The state database (a read of `kv` in `main` sees every applied entry).
    pub fn database(&self) -> &Arc<Database> {
        &self.db
    }

    /// Reads `key` from the applied state.
    pub fn get(&self, key: &str) -> Result<Option<String>, shadowkv::Error> {
        get_kv(&self.db, key)
    }

    /// The Raft snapshots this state database holds, oldest first.
    pub fn raft_snapshots(&self) -> Vec<String> {
        self.names.lock().unwrap().clone()
    }

    /// Records snapshot `name` (just created or received), then deletes the Raft snapshots
    /// but the newest [`KEEP_SNAPSHOTS`].
    fn add_and_prune(&self, name: &str) -> Result<(), shadowkv::Error> {
        let old = {
            let mut names = self.names.lock().unwrap();
            if !names.iter().any(|n| n == name) {
                names.push(name.to_string());
                names.sort();
            }
            let n = names.len().saturating_sub(KEEP_SNAPSHOTS);
            names.drain(..n).collect::<Vec<_>>()
        };
        for name in &old {
            self.db.delete_snapshot(name)?;
        }
        Ok(())
    }

    /// The stream that brings a receiver holding the snapshots `held` to this database's
    /// snapshot `name`: empty if it holds `name`, incremental from the newest older snapshot
    /// both hold, whole otherwise.
    pub fn stream_for(&self, name: &str, held: &[String]) -> Result<SnapshotData, shadowkv::Error> {
        if held.iter().any(|h| h == name) {
            return Ok(SnapshotData::Stream {
                name: name.to_string(),
                base: None,
                bytes: Vec::new(),
            });
        }
        let mine = self.raft_snapshots();
        let base = held
            .iter()
            .filter(|h| h.as_str() < name && mine.contains(h))
            .max()
            .cloned();
        let mut bytes = Vec::new();
        self.db.send(name, base.as_deref(), &mut bytes)?;
        Ok(SnapshotData::Stream {
            name: name.to_string(),
            base,
            bytes,
        })
    }

    fn meta_of(&self, name: &str) -> StoreResult<SnapshotMeta<NodeId, BasicNode>> {
        let last_log_id =
            read_json::<Option<LogId<NodeId>>>(&self.db, Some(name), SM_META, APPLIED)?.flatten();
        let last_membership =
            read_json(&self.db, Some(name), SM_META, MEMBERSHIP)?.unwrap_or_default();
        Ok(SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id: name.to_string(),
        })
    }
}

/// Reads `key` from the `kv` table of `db`'s main branch.
pub fn get_kv(db: &Database, key: &str) -> Result<Option<String>, shadowkv::Error> {
    let rx = db.begin_read()?;
    let t = match rx.open_table(KV) {
        Ok(t) => t,
        Err(shadowkv::Error::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(t.get(key.as_bytes())?
        .map(|v| String::from_utf8_lossy(v).into_owned()))
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    /// An O(1) named shadowkv snapshot of `main`: nothing is copied.
    async fn build_snapshot(&mut self) -> StoreResult<Snapshot<TypeConfig>> {
        let applied =
            read_json::<Option<LogId<NodeId>>>(&self.db, None, SM_META, APPLIED)?.flatten();
        let order = applied.map_or(0, |l| l.index + 1);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!("{SNAP_PREFIX}{order:020}-{nanos:039}-n{}", self.node);
        self.db.create_snapshot(&name).map_err(write_err)?;
        self.add_and_prune(&name).map_err(write_err)?;
        // Durable before openraft may purge the log up to it.
        self.db.sync().map_err(write_err)?;
        let meta = self.meta_of(&name)?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotData::Local {
                sm: self.clone(),
                name,
            }),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> StoreResult<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>)> {
        let applied =
            read_json::<Option<LogId<NodeId>>>(&self.db, None, SM_META, APPLIED)?.flatten();
        let membership = read_json(&self.db, None, SM_META, MEMBERSHIP)?.unwrap_or_default();
        Ok((applied, membership))
    }

    /// Every entry of one call in one commit, with the last applied log id and membership.
    async fn apply<I>(&mut self, entries: I) -> StoreResult<Vec<Response>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + Send,
        I::IntoIter: Send,
    {
        let tx = self.db.begin_write().map_err(write_err)?;
        let mut out = Vec::new();
        {
            let mut kv = tx.open_table(KV).map_err(write_err)?;
            let mut meta = tx.open_table(SM_META).map_err(write_err)?;
            let mut last = None;
            let mut membership = None;
            for e in entries {
                last = Some(e.log_id);
                let resp = match e.payload {
                    EntryPayload::Blank => Response::default(),
                    EntryPayload::Normal(req) => Response {
                        previous: apply_one(&mut kv, req).map_err(write_err)?,
                    },
                    EntryPayload::Membership(m) => {
                        membership = Some(StoredMembership::new(Some(e.log_id), m));
                        Response::default()
                    }
                };
                out.push(resp);
            }
            if let Some(last) = last {
                meta.insert(APPLIED, &to_json(&Some(last)))
                    .map_err(write_err)?;
            }
            if let Some(m) = membership {
                meta.insert(MEMBERSHIP, &to_json(&m)).map_err(write_err)?;
            }
        }
        tx.commit().map_err(write_err)?;
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> StoreResult<Box<SnapshotData>> {
        Ok(Box::new(SnapshotData::Stream {
            name: String::new(),
            base: None,
            bytes: Vec::new(),
        }))
    }

    /// `receive` of the stream (unless this database holds the snapshot already), then
    /// `restore("main", name)`; older snapshots past the newest two are deleted.
    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<SnapshotData>,
    ) -> StoreResult<()> {
        let held = self.raft_snapshots();
        let data = match *snapshot {
            SnapshotData::Local { sm, name } => sm.stream_for(&name, &held).map_err(read_err)?,
            s => s,
        };
        let SnapshotData::Stream { name, bytes, .. } = data else {
            unreachable!("converted above")
        };
        debug_assert_eq!(name, meta.snapshot_id);
        if !held.contains(&name) {
            let got = self.db.receive(&bytes[..]).map_err(write_err)?;
            debug_assert_eq!(got, name);
        }
        self.db.restore("main", &name).map_err(write_err)?;
        self.add_and_prune(&name).map_err(write_err)?;
        self.db.sync().map_err(write_err)?;
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> StoreResult<Option<Snapshot<TypeConfig>>> {
        let Some(name) = self.raft_snapshots().pop() else {
            return Ok(None);
        };
        Ok(Some(Snapshot {
            meta: self.meta_of(&name)?,
            snapshot: Box::new(SnapshotData::Local {
                sm: self.clone(),
                name,
            }),
        }))
    }
}
