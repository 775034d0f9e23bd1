//! Probe: many single-key commits without fsync on a 200k-entry database (for profiling).
use shadowkv::{Database, Durability};
fn main() {
    let dir = tempfile::tempdir_in(".").unwrap();
    let db = Database::options()
        .durability(Durability::Eventual)
        .open(dir.path().join("p.db"))
        .unwrap();
    let mut x = 1u64;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_table("t").unwrap();
        for _ in 0..200_000 {
            t.insert(&next().to_be_bytes(), &[1u8; 100]).unwrap();
        }
    }
    tx.commit().unwrap();
    let start = std::time::Instant::now();
    for _ in 0..20000 {
        let mut tx = db.begin_write().unwrap();
        tx.open_table("t")
            .unwrap()
            .insert(&next().to_be_bytes(), &[2u8; 100])
            .unwrap();
        tx.commit().unwrap();
    }
    println!(
        "{:.1} µs per commit",
        start.elapsed().as_secs_f64() * 1e6 / 20000.0
    );
    println!("{:?}", db.check().unwrap());
}
