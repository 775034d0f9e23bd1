//! Typed tables: users by id, and an email → id index kept consistent with them in each
//! transaction, both tables open at once. Run with `cargo run --example typed`.

use shadowkv::typed::{TableDef, TypedTableMut};
use shadowkv::{Database, Error, Result};

/// id → (name, email, year of birth).
const USERS: TableDef<u64, (&str, &str, u16)> = TableDef::new("users");
/// email → id.
const BY_EMAIL: TableDef<&str, u64> = TableDef::new("users_by_email");

/// The two tables of one write transaction.
struct Users<'t> {
    users: TypedTableMut<'t, u64, (&'static str, &'static str, u16)>,
    by_email: TypedTableMut<'t, &'static str, u64>,
}

impl Users<'_> {
    /// Adds a user, refusing an email already taken.
    fn add(&mut self, id: u64, name: &str, email: &str, born: u16) -> Result<()> {
        if let Some(owner) = self.by_email.get(email)? {
            let owner = owner.value()?;
            return Err(Error::AlreadyExists(format!(
                "email {email} (user {owner})"
            )));
        }
        self.by_email.insert(email, id)?;
        self.users.insert(id, (name, email, born))
    }

    /// Changes a user's email, moving its index entry in the same transaction.
    fn change_email(&mut self, id: u64, email: &str) -> Result<()> {
        let user = (self.users.get(id)?).ok_or_else(|| Error::NotFound(format!("user {id}")))?;
        let (name, old, born) = user.value()?; // `user` stays readable while the index changes
        if self.by_email.contains_key(email)? {
            return Err(Error::AlreadyExists(format!("email {email}")));
        }
        self.by_email.remove(&old)?;
        self.by_email.insert(email, id)?;
        self.users.insert(id, (&name, email, born))
    }

    /// Removes a user and its index entry.
    fn remove(&mut self, id: u64) -> Result<bool> {
        let Some(user) = self.users.take(id)? else {
            return Ok(false);
        };
        let (_, email, _) = user.value()?;
        self.by_email.remove(&email)
    }
}

fn main() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let db = Database::open(dir.path().join("typed.db"))?;

    let tx = db.begin_write()?;
    let mut t = Users {
        users: tx.open_typed(&USERS)?,
        by_email: tx.open_typed(&BY_EMAIL)?,
    };
    t.add(1, "Ada", "ada@example.org", 1815)?;
    t.add(2, "Alan", "alan@example.org", 1912)?;
    t.add(3, "Grace", "grace@example.org", 1906)?;
    tx.commit()?;

    let tx = db.begin_write()?;
    let mut t = Users {
        users: tx.open_typed(&USERS)?,
        by_email: tx.open_typed(&BY_EMAIL)?,
    };
    let taken = t.add(4, "Impostor", "ada@example.org", 2000);
    println!("adding a taken email: {}", taken.unwrap_err());
    t.change_email(2, "turing@example.org")?;
    t.remove(3)?;
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
