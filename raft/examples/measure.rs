//! Issue 16's figures: committed writes per second through a 3-node cluster, one request
//! at a time and many in flight (batched into shared appends and applies); snapshot build
//! time at two sizes; bytes shipped for a whole snapshot and for an incremental one after
//! 1% of the keys changed.
//!
//! cargo run --release --manifest-path raft/Cargo.toml --example measure [-- SMALL LARGE]

use std::time::{Duration, Instant};

use openraft::storage::RaftStateMachine;
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, RaftSnapshotBuilder};
use shadowkv_raft::cluster::{test_config, BoxError, Client, Cluster};
use shadowkv_raft::{Request, SnapshotData, StateMachine, TypeConfig};

/// `n` puts, `inflight` requests at a time, `per_entry` puts in each request.
async fn writes(
    client: &Client,
    n: u64,
    inflight: u64,
    per_entry: u64,
) -> Result<Duration, BoxError> {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..inflight {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = lane * per_entry;
            while i < n {
                let key = |j: u64| format!("k{inflight}-{per_entry}-{j:08}");
                if per_entry == 1 {
                    client
                        .put(&key(i), "a value of some thirty bytes..")
                        .await?;
                } else {
                    let pairs = (i..(i + per_entry).min(n))
                        .map(|j| (key(j), "a value of some thirty bytes..".to_string()))
                        .collect();
                    client.put_batch(pairs).await?;
                }
                i += inflight * per_entry;
            }
            Ok::<_, BoxError>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(start.elapsed())
}

fn put(index: u64, key: u64, value: &str) -> Entry<TypeConfig> {
    Entry {
        log_id: LogId::new(CommittedLeaderId::new(1, 0), index),
        payload: EntryPayload::Normal(Request::Put {
            key: format!("key{key:09}"),
            value: value.to_string(),
        }),
    }
}

/// Applies `keys` puts (10,000 per commit) from log index `*next`.
async fn load(
    sm: &mut StateMachine,
    next: &mut u64,
    keys: impl Iterator<Item = u64>,
    value: &str,
) -> Result<(), BoxError> {
    let keys: Vec<u64> = keys.collect();
    for chunk in keys.chunks(10_000) {
        let entries: Vec<_> = chunk
            .iter()
            .map(|&k| {
                *next += 1;
                put(*next, k, value)
            })
            .collect();
        sm.apply(entries).await?;
    }
    Ok(())
}

fn stream_len(s: &SnapshotData) -> usize {
    match s {
        SnapshotData::Stream { bytes, .. } => bytes.len(),
        SnapshotData::Local { .. } => 0,
    }
}

// Storage calls block their worker thread for an fsync: more workers than cores keep the
// three nodes and the clients moving.
#[tokio::main(flavor = "multi_thread", worker_threads = 16)]
async fn main() -> Result<(), BoxError> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (small, large) = (
        args.first().copied().unwrap_or(100_000),
        args.get(1).copied().unwrap_or(1_000_000),
    );
    let dir = tempfile::tempdir()?;

    // 1. Committed writes per second through three nodes (every append and apply durable).
    let mut cluster = Cluster::new(dir.path().join("cluster"), test_config(1_000_000))?;
    for id in 1..=3 {
        cluster.start(id).await?;
    }
    cluster.initialize(&[1, 2, 3]).await?;
    cluster.leader(Duration::from_secs(30)).await?;
    let client = cluster.client();
    let counts = |c: &Cluster| -> (u64, u64) {
        c.running().iter().fold((0, 0), |(a, e), &id| {
            let (a2, e2) = c.node(id).unwrap().log.append_counts();
            (a + a2, e + e2)
        })
    };
    for (n, inflight, per_entry) in [
        (1_000u64, 1u64, 1u64),
        (5_000, 64, 1),
        (100_000, 1, 100),
        (200_000, 8, 100),
    ] {
        let (a0, e0) = counts(&cluster);
        let took = writes(&client, n, inflight, per_entry).await?;
        let (a1, e1) = counts(&cluster);
        println!(
            "writes: {n:>6} puts, {inflight:>3} requests in flight, {per_entry:>3} puts per request: {:>6.2} s, \
             {:>6.0} committed puts/s; {:.1} entries per log append (3 nodes)",
            took.as_secs_f64(),
            n as f64 / took.as_secs_f64(),
            (e1 - e0) as f64 / (a1 - a0) as f64
        );
    }
    drop(client);
    for id in cluster.running() {
        cluster.kill(id).await?;
    }

    // 2. Snapshot build time at two sizes: a named shadowkv snapshot, O(1).
    let value = "v".repeat(100);
    for (label, n) in [("small", small), ("large", large)] {
        let mut sm = StateMachine::open(dir.path().join(format!("build-{label}.db")), 1)?;
        let mut next = 0;
        load(&mut sm, &mut next, 0..n, &value).await?;
        let mut times = Vec::new();
        for _ in 0..21 {
            let mut b = sm.get_snapshot_builder().await;
            let start = Instant::now();
            let snap = b.build_snapshot().await?;
            times.push(start.elapsed());
            drop(snap);
        }
        times.sort();
        println!(
            "snapshot build at {n} keys: median {:.2} ms (min {:.2}, max {:.2}) over 21 builds; file {:.1} MiB",
            times[10].as_secs_f64() * 1e3,
            times[0].as_secs_f64() * 1e3,
            times[20].as_secs_f64() * 1e3,
            std::fs::metadata(dir.path().join(format!("build-{label}.db")))?.len() as f64 / 1048576.0
        );
    }

    // 3. Bytes shipped: whole, then incremental after 1% of the keys changed.
    let n = small;
    let mut leader = StateMachine::open(dir.path().join("ship-leader.db"), 1)?;
    let mut follower = StateMachine::open(dir.path().join("ship-follower.db"), 2)?;
    let mut next = 0;
    load(&mut leader, &mut next, 0..n, &value).await?;
    let s1 = leader.get_snapshot_builder().await.build_snapshot().await?;
    let SnapshotData::Local { name: name1, .. } = &*s1.snapshot else {
        unreachable!()
    };
    let start = Instant::now();
    let full = leader.stream_for(name1, &follower.raft_snapshots())?;
    let full_send = start.elapsed();
    let full_len = stream_len(&full);
    let start = Instant::now();
    follower.install_snapshot(&s1.meta, Box::new(full)).await?;
    let full_install = start.elapsed();

    // The changed keys get new values of the same length, as an update of a record would.
    let changed = format!("changed{}", "c".repeat(value.len() - 7));
    load(&mut leader, &mut next, (0..n).step_by(100), &changed).await?;
    let s2 = leader.get_snapshot_builder().await.build_snapshot().await?;
    let SnapshotData::Local { name: name2, .. } = &*s2.snapshot else {
        unreachable!()
    };
    let start = Instant::now();
    let inc = leader.stream_for(name2, &follower.raft_snapshots())?;
    let inc_send = start.elapsed();
    let inc_len = stream_len(&inc);
    let SnapshotData::Stream { base, .. } = &inc else {
        unreachable!()
    };
    assert_eq!(base.as_deref(), Some(name1.as_str()));
    let start = Instant::now();
    follower.install_snapshot(&s2.meta, Box::new(inc)).await?;
    let inc_install = start.elapsed();
    assert_eq!(
        follower.get("key000000000")?.as_deref(),
        Some(changed.as_str())
    );
    println!(
        "shipping at {n} keys: whole {full_len} bytes (send {:.1} ms, receive+restore {:.1} ms); \
         after 1% changed, incremental {inc_len} bytes (send {:.1} ms, receive+restore {:.1} ms): {:.2}% of whole",
        full_send.as_secs_f64() * 1e3,
        full_install.as_secs_f64() * 1e3,
        inc_send.as_secs_f64() * 1e3,
        inc_install.as_secs_f64() * 1e3,
        inc_len as f64 * 100.0 / full_len as f64
    );
    Ok(())
}
