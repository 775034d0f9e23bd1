//! A cluster in one process: nodes talk through an in-process router instead of sockets.
//!
//! Each node has a directory with two shadowkv files: `log.db` ([`LogStore`]) and `sm.db`
//! ([`StateMachine`]). Killing a node shuts its Raft down and closes its files; starting it
//! again reopens them.
//!
//! Snapshot shipping: before openraft hands a snapshot to a follower, the router asks the
//! follower which Raft snapshots it holds (in a real deployment, one small RPC) and sends
//! only what the follower lacks: nothing if it holds the snapshot, an incremental `send`
//! stream from the newest snapshot both hold, else the whole snapshot. Each shipment is
//! recorded ([`Router::shipments`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openraft::error::{
    Fatal, InstallSnapshotError, RPCError, RaftError, RemoteError, ReplicationClosed,
    StreamingError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft, Snapshot, Vote};

use crate::{LogStore, NodeId, Request, SnapshotData, StateMachine, TypeConfig};

/// One snapshot sent to a follower.
#[derive(Clone, Debug)]
pub struct Shipment {
    pub target: NodeId,
    pub name: String,
    /// The snapshot the stream was computed from (`None`: a whole snapshot).
    pub base: Option<String>,
    /// Stream bytes (0 when the follower held the snapshot already).
    pub bytes: usize,
}

#[derive(Clone)]
struct Peer {
    raft: Raft<TypeConfig>,
    sm: StateMachine,
}

/// Routes RPCs between the live nodes of one process.
#[derive(Default)]
pub struct Router {
    peers: Mutex<BTreeMap<NodeId, Peer>>,
    shipped: Mutex<Vec<Shipment>>,
}

impl Router {
    fn peer(&self, id: NodeId) -> Result<Peer, Unreachable> {
        self.peers
            .lock()
            .unwrap()
            .get(&id)
            .cloned()
            .ok_or_else(|| Unreachable::new(&std::io::Error::other(format!("node {id} is down"))))
    }

    /// Every snapshot shipment so far.
    pub fn shipments(&self) -> Vec<Shipment> {
        self.shipped.lock().unwrap().clone()
    }
}

/// The network factory a node's Raft uses.
pub struct Network {
    router: Arc<Router>,
}

/// A connection to one node.
pub struct Connection {
    router: Arc<Router>,
    target: NodeId,
}

impl RaftNetworkFactory<TypeConfig> for Network {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            router: self.router.clone(),
            target,
        }
    }
}

type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let peer = self.router.peer(self.target)?;
        peer.raft
            .append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        unreachable!("snapshots ship whole through full_snapshot")
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let peer = self.router.peer(self.target)?;
        peer.raft
            .vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        _cancel: impl std::future::Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let peer = self.router.peer(self.target)?;
        let held = peer.sm.raft_snapshots();
        let Snapshot { meta, snapshot } = snapshot;
        let data = match *snapshot {
            SnapshotData::Local { sm, name } => sm
                .stream_for(&name, &held)
                .map_err(|e| Unreachable::new(&e))?,
            s => s,
        };
        if let SnapshotData::Stream { name, base, bytes } = &data {
            self.router.shipped.lock().unwrap().push(Shipment {
                target: self.target,
                name: name.clone(),
                base: base.clone(),
                bytes: bytes.len(),
            });
        }
        let snapshot = Snapshot {
            meta,
            snapshot: Box::new(data),
        };
        peer.raft
            .install_full_snapshot(vote, snapshot)
            .await
            .map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }
}

/// A running node.
pub struct Node {
    pub id: NodeId,
    pub raft: Raft<TypeConfig>,
    pub sm: StateMachine,
    pub log: LogStore,
}

/// Errors of the cluster helpers.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A cluster of nodes in one process, each with its files under `dir/n<id>/`.
pub struct Cluster {
    pub router: Arc<Router>,
    pub config: Arc<Config>,
    dir: PathBuf,
    nodes: BTreeMap<NodeId, Node>,
}

/// A Raft config for an in-process cluster on a busy machine.
pub fn test_config(snapshot_every: u64) -> Config {
    Config {
        heartbeat_interval: 100,
        election_timeout_min: 400,
        election_timeout_max: 800,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 0,
        max_payload_entries: 1000,
        ..Default::default()
    }
}

impl Cluster {
    /// A cluster with no node yet.
    pub fn new(dir: impl AsRef<Path>, config: Config) -> Result<Self, BoxError> {
        Ok(Cluster {
            router: Arc::default(),
            config: Arc::new(config.validate()?),
            dir: dir.as_ref().to_path_buf(),
            nodes: BTreeMap::new(),
        })
    }

    /// Starts node `id` from its files (creating them if new).
    pub async fn start(&mut self, id: NodeId) -> Result<(), BoxError> {
        let dir = self.dir.join(format!("n{id}"));
        std::fs::create_dir_all(&dir)?;
        let log = LogStore::open(dir.join("log.db"))?;
        let sm = StateMachine::open(dir.join("sm.db"), id)?;
        let network = Network {
            router: self.router.clone(),
        };
        let raft = Raft::new(id, self.config.clone(), network, log.clone(), sm.clone()).await?;
        self.router.peers.lock().unwrap().insert(
            id,
            Peer {
                raft: raft.clone(),
                sm: sm.clone(),
            },
        );
        self.nodes.insert(id, Node { id, raft, sm, log });
        Ok(())
    }

    /// Stops node `id` as a crash would (no goodbye to the others) and closes its files.
    pub async fn kill(&mut self, id: NodeId) -> Result<(), BoxError> {
        self.router.peers.lock().unwrap().remove(&id);
        if let Some(node) = self.nodes.remove(&id) {
            node.raft.shutdown().await?;
        }
        Ok(())
    }

    /// Node `id`, if running.
    pub fn node(&self, id: NodeId) -> Option<&Node> {
        self.nodes.get(&id)
    }

    /// The ids of the running nodes.
    pub fn running(&self) -> Vec<NodeId> {
        self.nodes.keys().copied().collect()
    }

    /// Makes the running nodes `members` the first voters (on the lowest of them).
    pub async fn initialize(&self, members: &[NodeId]) -> Result<(), BoxError> {
        let map: BTreeMap<NodeId, BasicNode> = members
            .iter()
            .map(|&id| (id, BasicNode::new(format!("n{id}"))))
            .collect();
        let first = self.nodes.get(&members[0]).ok_or("not running")?;
        first.raft.initialize(map).await?;
        Ok(())
    }

    /// A running node that some running node sees as leader, waiting up to `timeout`.
    pub async fn leader(&self, timeout: Duration) -> Result<NodeId, BoxError> {
        let end = Instant::now() + timeout;
        loop {
            for node in self.nodes.values() {
                let m = node.raft.metrics().borrow().clone();
                if m.current_leader == Some(node.id)
                    && node.raft.ensure_linearizable().await.is_ok()
                {
                    return Ok(node.id);
                }
            }
            if Instant::now() > end {
                return Err("no leader".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A client handle (cheap to clone, usable from other tasks). It finds the leader among
    /// the nodes running at each request and holds no node's files open.
    pub fn client(&self) -> Client {
        Client {
            router: self.router.clone(),
        }
    }

    /// Adds node `id` (running) as a learner, then makes the voters `voters`.
    pub async fn add_voter(&self, id: NodeId, voters: &[NodeId]) -> Result<(), BoxError> {
        let leader = self.leader(Duration::from_secs(10)).await?;
        let raft = &self.nodes[&leader].raft;
        raft.add_learner(id, BasicNode::new(format!("n{id}")), true)
            .await?;
        let set: BTreeSet<NodeId> = voters.iter().copied().collect();
        raft.change_membership(set, false).await?;
        Ok(())
    }

    /// Waits until every running node has applied up to the leader's last log index.
    pub async fn wait_applied(&self, timeout: Duration) -> Result<u64, BoxError> {
        let leader = self.leader(timeout).await?;
        let want = self.nodes[&leader]
            .raft
            .metrics()
            .borrow()
            .last_log_index
            .unwrap_or(0);
        for node in self.nodes.values() {
            node.raft
                .wait(Some(timeout))
                .applied_index_at_least(Some(want), "caught up")
                .await?;
        }
        Ok(want)
    }
}

/// Sends requests to whichever node leads, retrying while leadership moves.
#[derive(Clone)]
pub struct Client {
    router: Arc<Router>,
}

impl Client {
    fn leader(&self) -> Option<(Raft<TypeConfig>, StateMachine)> {
        let peers = self.router.peers.lock().unwrap();
        peers.iter().find_map(|(id, p)| {
            let leads = p.raft.metrics().borrow().current_leader == Some(*id);
            leads.then(|| (p.raft.clone(), p.sm.clone()))
        })
    }

    async fn write(&self, req: Request) -> Result<Option<String>, BoxError> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((raft, _)) = self.leader() {
                match raft.client_write(req.clone()).await {
                    Ok(resp) => return Ok(resp.data.previous),
                    Err(e) if Instant::now() > end => return Err(e.into()),
                    Err(_) => {}
                }
            } else if Instant::now() > end {
                return Err("no leader".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Sets `key` to `value` (committed on a quorum and applied on the leader); returns the
    /// previous value.
    pub async fn put(&self, key: &str, value: &str) -> Result<Option<String>, BoxError> {
        self.write(Request::Put {
            key: key.into(),
            value: value.into(),
        })
        .await
    }

    /// Sets every `(key, value)` of `pairs` in one log entry (one request, one commit on
    /// each node).
    pub async fn put_batch(&self, pairs: Vec<(String, String)>) -> Result<(), BoxError> {
        let reqs = pairs
            .into_iter()
            .map(|(key, value)| Request::Put { key, value })
            .collect();
        self.write(Request::Batch(reqs)).await.map(drop)
    }

    /// Removes `key`; returns the previous value.
    pub async fn delete(&self, key: &str) -> Result<Option<String>, BoxError> {
        self.write(Request::Delete { key: key.into() }).await
    }

    /// A linearizable read: the leader confirms it still leads and has applied everything
    /// committed before the read, then reads its state machine.
    pub async fn get(&self, key: &str) -> Result<Option<String>, BoxError> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((raft, sm)) = self.leader() {
                match raft.ensure_linearizable().await {
                    Ok(_) => return Ok(sm.get(key)?),
                    Err(e) if Instant::now() > end => return Err(e.into()),
                    Err(_) => {}
                }
            } else if Instant::now() > end {
                return Err("no leader".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
