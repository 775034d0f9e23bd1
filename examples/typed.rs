//! Typed tables: users by id, and an email → id index kept consistent with them in each
//! transaction. Run with `cargo run --example typed`.
//!
//! A write transaction opens one table at a time today, so each step opens the table it
//! needs in a block of its own.

use shadowkv::typed::TableDef;
use shadowkv::{Database, Error, Result, WriteTxn};

/// id → (name, email, year of birth).
const USERS: TableDef<u64, (&str, &str, u16)> = TableDef::new("users");
/// email → id.
const BY_EMAIL: TableDef<&str, u64> = TableDef::new("users_by_email");

/// Adds a user, refusing an email already taken.
fn add_user(tx: &mut WriteTxn<'_>, id: u64, name: &str, email: &str, born: u16) -> Result<()> {
    {
        let mut index = tx.open_typed(&BY_EMAIL)?;
        if let Some(owner) = index.get(email)? {
            let owner = owner.value()?;
            return Err(Error::AlreadyExists(format!(
                "email {email} (user {owner})"
            )));
        }
        index.insert(email, id)?;
    }
    tx.open_typed(&USERS)?.insert(id, (name, email, born))
}

/// Changes a user's email, moving its index entry in the same transaction.
fn change_email(tx: &mut WriteTxn<'_>, id: u64, email: &str) -> Result<()> {
    let (name, old, born) = {
        let mut users = tx.open_typed(&USERS)?;
        let user = users
            .get(id)?
            .ok_or_else(|| Error::NotFound(format!("user {id}")))?;
        let (name, old, born) = user.value()?;
        (name.into_owned(), old.into_owned(), born)
    };
    {
        let mut index = tx.open_typed(&BY_EMAIL)?;
        if index.contains_key(email)? {
            return Err(Error::AlreadyExists(format!("email {email}")));
        }
        index.remove(&old)?;
        index.insert(email, id)?;
    }
    tx.open_typed(&USERS)?.insert(id, (&name, email, born))
}

/// Removes a user and its index entry.
fn remove_user(tx: &mut WriteTxn<'_>, id: u64) -> Result<bool> {
    let Some(user) = tx.open_typed(&USERS)?.take(id)? else {
        return Ok(false);
    };
    let (_, email, _) = user.value()?;
    tx.open_typed(&BY_EMAIL)?.remove(&email)
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("typed.db"))?;

    let mut tx = db.begin_write()?;
    add_user(&mut tx, 1, "Ada", "ada@example.org", 1815)?;
    add_user(&mut tx, 2, "Alan", "alan@example.org", 1912)?;
    add_user(&mut tx, 3, "Grace", "grace@example.org", 1906)?;
    tx.commit()?;

    let mut tx = db.begin_write()?;
    let taken = add_user(&mut tx, 4, "Impostor", "ada@example.org", 2000);
    println!("adding a taken email: {}", taken.unwrap_err());
    change_email(&mut tx, 2, "turing@example.org")?;
    remove_user(&mut tx, 3)?;
    tx.commit()?;

    let rx = db.begin_read()?;
    let users = rx.open_typed(&USERS)?;
    for entry in users.iter()? {
        let (id, (name, email, born)) = entry?; // `name` and `email` borrow from the map
        println!("user {id}: {name:?} <{email}>, born {born}");
    }
    let index = rx.open_typed(&BY_EMAIL)?;
    let emails: Vec<(&str, u64)> = index.iter()?.collect::<Result<_>>()?;
    println!("index: {emails:?}");
    println!(
        "who is turing@example.org? {:?}",
        index.get("turing@example.org")?
    );
    let mut after_1900 = Vec::new();
    for entry in users.iter()? {
        let (id, (_, _, born)) = entry?;
        if born > 1900 {
            after_1900.push(id);
        }
    }
    println!("users born after 1900: {after_1900:?}");

    // The type names are stored: opening the table with other types is an error.
    let wrong: TableDef<u32, &str> = TableDef::new("users");
    println!(
        "opened with other types: {}",
        rx.open_typed(&wrong).unwrap_err()
    );
    assert_eq!(users.len()?, index.len()?);
    Ok(())
}
