//! Snapshots and branches in a few steps: a nightly snapshot, an experiment branch, a restore
//! and a delete. Run with `cargo run --release --example snapshots`.

use shadowkv::{Database, Error};

fn show(db: &Database, root: &str) -> Result<Vec<(String, String)>, Error> {
    let rx = db.begin_read_at(root)?;
    let t = rx.open_table("prices")?;
    t.iter()?
        .map(|item| {
            item.map(|(k, v)| {
                (
                    String::from_utf8_lossy(k).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
        })
        .collect()
}

fn main() -> Result<(), Error> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("shop.db"))?;

    // Day one: load prices on main.
    let tx = db.begin_write()?;
    {
        let mut t = tx.open_table("prices")?;
        t.insert(b"apple", b"1.00")?;
        t.insert(b"pear", b"1.50")?;
    }
    tx.commit()?;

    // The nightly snapshot: O(1), whatever the size of the database.
    db.create_snapshot("nightly")?;

    // A branch to try out new prices without touching main.
    db.create_branch("experiment", "nightly")?;
    let w = db.begin_write_on("experiment")?;
    {
        let mut t = w.open_table("prices")?;
        t.insert(b"apple", b"0.80")?;
        t.insert(b"cherry", b"4.00")?;
    }
    w.commit()?;
    println!("main:       {:?}", show(&db, "main")?);
    println!("experiment: {:?}", show(&db, "experiment")?);
    assert_eq!(
        show(&db, "main")?.len(),
        2,
        "the branch's writes never show on main"
    );

    // Meanwhile main gets a bad update ...
    let tx = db.begin_write()?;
    tx.open_table("prices")?.insert(b"pear", b"999.00")?;
    tx.commit()?;
    println!("main, after a bad update: {:?}", show(&db, "main")?);

    // ... and is rolled back to the nightly snapshot in O(1).
    db.restore("main", "nightly")?;
    println!("main, restored:           {:?}", show(&db, "main")?);
    assert_eq!(show(&db, "main")?, show(&db, "nightly")?);

    for s in db.snapshots()?.iter().chain(db.branches()?.iter()) {
        println!(
            "{:<11} txn {:>3}  references {:>6} bytes, holds {:>6} bytes alone",
            s.name, s.txn, s.referenced_bytes, s.exclusive_bytes
        );
    }

    // Deleting returns the pages only the deleted root held; writing to a snapshot is refused.
    assert!(matches!(
        db.begin_write_on("nightly"),
        Err(Error::ReadOnly(_))
    ));
    db.delete_branch("experiment")?;
    db.delete_snapshot("nightly")?;
    let report = db.check()?;
    println!("after the deletes: {report:?}");
    Ok(())
}
