//! A three-node replicated shadowkv in one process: put, get, delete, a leader crash, a
//! restart from the files.
//!
//! cargo run --release --manifest-path raft/Cargo.toml --example demo

use std::time::Duration;

use shadowkv_raft::cluster::{test_config, BoxError, Cluster};

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<(), BoxError> {
    let dir = tempfile::tempdir()?;
    let t = Duration::from_secs(30);
    let mut cluster = Cluster::new(dir.path(), test_config(1000))?;
    for id in 1..=3 {
        cluster.start(id).await?;
    }
    cluster.initialize(&[1, 2, 3]).await?;
    let leader = cluster.leader(t).await?;
    println!("node {leader} leads");

    let client = cluster.client();
    client.put("alice", "1").await?;
    client.put("bob", "2").await?;
    println!("get alice = {:?}", client.get("alice").await?); // linearizable, via the leader
    println!("delete bob (was {:?})", client.delete("bob").await?);
    println!("get bob = {:?}", client.get("bob").await?);

    cluster.kill(leader).await?;
    let next = cluster.leader(t).await?;
    println!("node {leader} crashed; node {next} leads");
    let client = cluster.client();
    client.put("carol", "3").await?;
    println!(
        "get alice = {:?}, carol = {:?}",
        client.get("alice").await?,
        client.get("carol").await?
    );

    drop(client);
    cluster.start(leader).await?;
    cluster.wait_applied(t).await?;
    for id in cluster.running() {
        let sm = &cluster.node(id).unwrap().sm;
        println!(
            "node {id}: alice={:?} bob={:?} carol={:?}",
            sm.get("alice")?,
            sm.get("bob")?,
            sm.get("carol")?
        );
    }
    Ok(())
}
