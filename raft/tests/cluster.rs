//! Three-node clusters in one process: leader crash, a join by snapshot (whole, then
//! incremental), a restart of every node from its files.

use std::collections::BTreeMap;
use std::time::Duration;

use shadowkv::Database;
use shadowkv_raft::cluster::{test_config, BoxError, Client, Cluster};
use shadowkv_raft::NodeId;

const T: Duration = Duration::from_secs(30);

/// Writes `key{from..to}` = `value{i}-{tag}`, `inflight` requests at a time.
async fn write_keys(
    client: &Client,
    from: u64,
    to: u64,
    tag: &str,
    inflight: u64,
) -> Result<(), BoxError> {
    let mut tasks = Vec::new();
    for lane in 0..inflight {
        let (client, tag) = (client.clone(), tag.to_string());
        tasks.push(tokio::spawn(async move {
            let mut i = from + lane;
            while i < to {
                client
                    .put(&format!("key{i:06}"), &format!("value{i}-{tag}"))
                    .await?;
                i += inflight;
            }
            Ok::<_, BoxError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Every entry of node `id`'s `kv` table.
fn contents(cluster: &Cluster, id: NodeId) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let db = cluster.node(id).unwrap().sm.database();
    let rx = db.begin_read().unwrap();
    let t = rx.open_table("kv").unwrap();
    t.iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (k.to_vec(), v.to_vec())
        })
        .collect()
}

async fn three_nodes(dir: &std::path::Path, snapshot_every: u64) -> Result<Cluster, BoxError> {
    let mut cluster = Cluster::new(dir, test_config(snapshot_every))?;
    for id in 1..=3 {
        cluster.start(id).await?;
    }
    cluster.initialize(&[1, 2, 3]).await?;
    cluster.leader(T).await?;
    Ok(cluster)
}

const KEYS: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_crash() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let mut cluster = three_nodes(dir.path(), 5_000).await?;
    write_keys(&cluster.client(), 0, KEYS, "a", 64).await?;
    let old = cluster.leader(T).await?;
    cluster.kill(old).await?;
    let new = cluster.leader(T).await?;
    assert_ne!(old, new);
    let client = cluster.client();
    write_keys(&client, KEYS, KEYS + 1000, "b", 64).await?;
    assert_eq!(client.get("key000000").await?.as_deref(), Some("value0-a"));
    assert_eq!(
        client.get(&format!("key{:06}", KEYS + 999)).await?,
        Some(format!("value{}-b", KEYS + 999))
    );
    assert_eq!(
        client.delete("key000001").await?.as_deref(),
        Some("value1-a")
    );
    assert_eq!(client.get("key000001").await?, None);
    // The old leader comes back as a follower and catches up.
    cluster.start(old).await?;
    cluster.wait_applied(T).await?;
    let want = contents(&cluster, new);
    assert_eq!(want.len() as u64, KEYS + 1000 - 1);
    for id in cluster.running() {
        assert!(contents(&cluster, id) == want, "node {id} differs");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn join_by_snapshot_then_incremental_and_restart_all() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    // No automatic snapshots: they are triggered below.
    let mut cluster = three_nodes(dir.path(), u64::MAX / 2).await?;
    let n = 5_000;
    write_keys(&cluster.client(), 0, n, "a", 64).await?;
    let leader = cluster.leader(T).await?;
    let raft = cluster.node(leader).unwrap().raft.clone();
    raft.trigger().snapshot().await?;
    wait_snapshot(&cluster, leader).await?;
    purge(&raft).await?;

    // Node 4 joins: its log is behind the purge point, so it gets the snapshot, whole.
    cluster.start(4).await?;
    cluster.add_voter(4, &[1, 2, 3, 4]).await?;
    cluster.wait_applied(T).await?;
    let shipped = cluster.router.shipments();
    let full = shipped
        .iter()
        .find(|s| s.target == 4)
        .expect("a snapshot went to node 4")
        .clone();
    assert!(full.base.is_none());

    // Node 4 goes down; 1% of the keys change; a new snapshot; the log is purged again.
    cluster.kill(4).await?;
    let client = cluster.client();
    for i in (0..n).step_by(100) {
        client.put(&format!("key{i:06}"), "changed").await?;
    }
    let leader = cluster.leader(T).await?;
    let raft = cluster.node(leader).unwrap().raft.clone();
    let before = raft.metrics().borrow().snapshot;
    raft.trigger().snapshot().await?;
    while raft.metrics().borrow().snapshot == before {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    purge(&raft).await?;

    // Node 4 comes back and gets only what changed.
    cluster.start(4).await?;
    cluster.wait_applied(T).await?;
    let inc = cluster
        .router
        .shipments()
        .into_iter()
        .rfind(|s| s.target == 4 && s.bytes > 0)
        .expect("a second snapshot went to node 4");
    assert_eq!(
        inc.base.as_deref(),
        Some(full.name.as_str()),
        "incremental from the first"
    );
    println!(
        "snapshot to a new node: {} bytes whole; after 1% changed: {} bytes incremental",
        full.bytes, inc.bytes
    );
    assert!(inc.bytes * 10 < full.bytes);

    // Every node restarts from its files; all replicas hold the same contents.
    drop((client, raft));
    for id in cluster.running() {
        cluster.kill(id).await?;
    }
    for id in 1..=4 {
        cluster.start(id).await?;
    }
    cluster.leader(T).await?;
    cluster.client().put("after-restart", "1").await?;
    cluster.wait_applied(T).await?;
    let want = contents(&cluster, 1);
    assert_eq!(want.len() as u64, n + 1);
    for id in 2..=4 {
        assert!(contents(&cluster, id) == want, "node {id} differs");
    }
    same_by_diff(&cluster, &[1, 2, 3, 4], dir.path())
}

/// Every node's whole state database (its tables, the applied log id and the membership
/// too), taken as a snapshot and sent into one audit database, where shadowkv's `diff`
/// between node `ids[0]`'s copy and each other's must be empty: `diff` compares two views of
/// one database, so the replicas meet there.
fn same_by_diff(cluster: &Cluster, ids: &[NodeId], dir: &std::path::Path) -> Result<(), BoxError> {
    let audit = Database::open(dir.join("audit.db"))?;
    for &id in ids {
        let db = cluster.node(id).unwrap().sm.database();
        let name = format!("audit-{id}");
        db.create_snapshot(&name)?;
        let mut stream = Vec::new();
        db.send(&name, None, &mut stream)?;
        assert_eq!(audit.receive(&stream[..])?, name);
    }
    let first = audit.begin_read_at(&format!("audit-{}", ids[0]))?;
    let entries = first.open_table("kv")?.len()?;
    assert!(entries > 0, "the audit copy holds the map");
    for &id in &ids[1..] {
        let other = audit.begin_read_at(&format!("audit-{id}"))?;
        let mut diff = other.diff(&first)?;
        if let Some(change) = diff.next() {
            let c = change?;
            panic!(
                "node {id} differs from node {} in table {} at key {:?}: {:?} -> {:?}",
                ids[0],
                c.table,
                String::from_utf8_lossy(c.key),
                c.old.map(String::from_utf8_lossy),
                c.new.map(String::from_utf8_lossy)
            );
        }
    }
    Ok(())
}

async fn wait_snapshot(cluster: &Cluster, id: NodeId) -> Result<(), BoxError> {
    let raft = &cluster.node(id).unwrap().raft;
    for _ in 0..1500 {
        if raft.metrics().borrow().snapshot.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("no snapshot".into())
}

/// Purges the log up to the last snapshot and waits until it is done.
async fn purge(raft: &openraft::Raft<shadowkv_raft::TypeConfig>) -> Result<(), BoxError> {
    let upto = raft.metrics().borrow().snapshot.unwrap();
    raft.trigger().purge_log(upto.index).await?;
    for _ in 0..1500 {
        if raft.metrics().borrow().purged >= Some(upto) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err("log not purged".into())
}
