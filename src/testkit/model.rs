//! The model: what the database must contain, one map of tables per named root, and the
//! rules by which names, snapshots, branches, restores and deletions succeed or fail.
//!
//! Invariants: `main` is always present and always a branch; snapshots and branches share
//! one namespace; every rule here mirrors a documented behaviour of the public API and
//! returns the [`ErrKind`] the engine must return.

use crate::Error;
use std::collections::BTreeMap;
use std::ops::Bound;

/// One table: key → value.
pub type TableModel = BTreeMap<Vec<u8>, Vec<u8>>;
/// The tables of one root, by name.
pub type Tables = BTreeMap<String, TableModel>;

/// Whether a root can be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Writable.
    Branch,
    /// Read-only.
    Snapshot,
}

/// A named root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Root {
    /// Branch or snapshot.
    pub kind: Kind,
    /// Its tables.
    pub tables: Tables,
    /// Which snapshot this is, for streams: every snapshot created gets a new one (the
    /// engine's 128-bit identity); 0 for branches.
    pub identity: u64,
}

/// The kinds of error a test can expect; everything else (corruption, I/O, ...) is `Other`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ErrKind {
    /// `Error::NotFound`.
    NotFound,
    /// `Error::AlreadyExists`.
    AlreadyExists,
    /// `Error::ReadOnly`.
    ReadOnly,
    /// `Error::InvalidArgument`.
    InvalidArgument,
    /// `Error::KeyTooLarge`.
    KeyTooLarge,
    /// `Error::ValueTooLarge`.
    ValueTooLarge,
    /// Anything else, with its message: never expected by the model.
    Other(String),
}

impl From<&Error> for ErrKind {
    fn from(e: &Error) -> Self {
        match e {
            Error::NotFound(_) => ErrKind::NotFound,
            Error::AlreadyExists(_) => ErrKind::AlreadyExists,
            Error::ReadOnly(_) => ErrKind::ReadOnly,
            Error::InvalidArgument(_) => ErrKind::InvalidArgument,
            Error::KeyTooLarge { .. } => ErrKind::KeyTooLarge,
            Error::ValueTooLarge { .. } => ErrKind::ValueTooLarge,
            other => ErrKind::Other(other.to_string()),
        }
    }
}

/// The result the model predicts.
pub type Expect<T> = Result<T, ErrKind>;

/// The name rule: 1 to 255 bytes.
pub fn check_name(name: &str) -> Expect<()> {
    if name.is_empty() || name.len() > 255 {
        Err(ErrKind::InvalidArgument)
    } else {
        Ok(())
    }
}

/// The key rule: at most `MAX_KEY_LEN` bytes.
pub fn check_key(key: &[u8]) -> Expect<()> {
    if key.len() > crate::format::MAX_KEY_LEN {
        Err(ErrKind::KeyTooLarge)
    } else {
        Ok(())
    }
}

/// Every named root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Model {
    /// Roots by name (`main` always present).
    pub roots: BTreeMap<String, Root>,
    /// The identity the next snapshot gets.
    next_identity: u64,
}

impl Default for Model {
    fn default() -> Self {
        Self::new()
    }
}

impl Model {
    /// A new database: an empty `main`.
    pub fn new() -> Model {
        let mut roots = BTreeMap::new();
        roots.insert(
            crate::txn::roots::MAIN.to_string(),
            Root {
                kind: Kind::Branch,
                tables: Tables::new(),
                identity: 0,
            },
        );
        Model {
            roots,
            next_identity: 1,
        }
    }

    /// The tables of `main`.
    pub fn main(&self) -> &Tables {
        &self.roots[crate::txn::roots::MAIN].tables
    }

    /// Names of the roots of one kind, in order.
    pub fn names(&self, kind: Kind) -> Vec<String> {
        self.roots
            .iter()
            .filter(|(_, r)| r.kind == kind)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// `begin_read_at(name)`: the root's tables.
    pub fn read_at(&self, name: &str) -> Expect<&Tables> {
        check_name(name)?;
        self.roots
            .get(name)
            .map(|r| &r.tables)
            .ok_or(ErrKind::NotFound)
    }

    /// `begin_write_on(branch)`: the tables a write transaction starts from.
    pub fn begin_write(&self, branch: &str) -> Expect<Tables> {
        self.writable(branch).cloned()
    }

    /// [`begin_write`](Self::begin_write) without the copy: the committed tables, borrowed.
    pub fn writable(&self, branch: &str) -> Expect<&Tables> {
        check_name(branch)?;
        match self.roots.get(branch) {
            None => Err(ErrKind::NotFound),
            Some(r) if r.kind == Kind::Snapshot => Err(ErrKind::ReadOnly),
            Some(r) => Ok(&r.tables),
        }
    }

    /// `WriteTxn::create_snapshot(name)` with `staged` already queued in the transaction.
    pub fn txn_snapshot(&self, staged: &[String], name: &str) -> Expect<()> {
        check_name(name)?;
        if staged.iter().any(|s| s == name) || self.roots.contains_key(name) {
            return Err(ErrKind::AlreadyExists);
        }
        Ok(())
    }

    /// A write transaction on `branch` committed `tables` and took snapshots `snapshots`.
    pub fn commit(&mut self, branch: &str, tables: Tables, snapshots: &[String]) {
        for name in snapshots {
            self.insert_snapshot(name, tables.clone());
        }
        self.roots
            .get_mut(branch)
            .expect("committed branch exists")
            .tables = tables;
    }

    /// `Database::create_snapshot(name)`: main's last commit.
    pub fn create_snapshot(&mut self, name: &str) -> Expect<()> {
        check_name(name)?;
        if self.roots.contains_key(name) {
            return Err(ErrKind::AlreadyExists);
        }
        let tables = self.main().clone();
        self.insert_snapshot(name, tables);
        Ok(())
    }

    /// Adds snapshot `name` holding `tables`, with a new identity.
    pub fn insert_snapshot(&mut self, name: &str, tables: Tables) {
        let identity = self.next_identity;
        self.next_identity += 1;
        let root = Root {
            kind: Kind::Snapshot,
            tables,
            identity,
        };
        self.roots.insert(name.to_string(), root);
    }

    /// `receive` of a stream of `root` as snapshot `name`, on top of the snapshot with
    /// identity `base` when the stream is incremental: the received snapshot keeps the
    /// sender's identity.
    pub fn receive(&mut self, name: &str, root: &Root, base: Option<u64>) -> Expect<()> {
        if self.roots.contains_key(name) {
            return Err(ErrKind::AlreadyExists);
        }
        let has_base = |id| {
            let mut snapshots = self.roots.values().filter(|r| r.kind == Kind::Snapshot);
            snapshots.any(|r| r.identity == id)
        };
        if base.is_some_and(|id| !has_base(id)) {
            return Err(ErrKind::NotFound);
        }
        self.roots.insert(name.to_string(), root.clone());
        Ok(())
    }

    /// The snapshot `name`, for `send` (`InvalidArgument` for a branch).
    pub fn snapshot(&self, name: &str) -> Expect<&Root> {
        check_name(name)?;
        match self.roots.get(name) {
            None => Err(ErrKind::NotFound),
            Some(r) if r.kind == Kind::Branch => Err(ErrKind::InvalidArgument),
            Some(r) => Ok(r),
        }
    }

    /// `Database::create_branch(name, from)`.
    pub fn create_branch(&mut self, name: &str, from: &str) -> Expect<()> {
        check_name(name)?;
        let tables = self
            .roots
            .get(from)
            .ok_or(ErrKind::NotFound)?
            .tables
            .clone();
        if self.roots.contains_key(name) {
            return Err(ErrKind::AlreadyExists);
        }
        self.roots.insert(
            name.to_string(),
            Root {
                kind: Kind::Branch,
                tables,
                identity: 0,
            },
        );
        Ok(())
    }

    /// `Database::restore(branch, from)`.
    pub fn restore(&mut self, branch: &str, from: &str) -> Expect<()> {
        check_name(branch)?;
        check_name(from)?;
        match self.roots.get(branch) {
            None => return Err(ErrKind::NotFound),
            Some(r) if r.kind == Kind::Snapshot => return Err(ErrKind::ReadOnly),
            Some(_) => {}
        }
        let tables = self
            .roots
            .get(from)
            .ok_or(ErrKind::NotFound)?
            .tables
            .clone();
        self.roots.get_mut(branch).expect("checked").tables = tables;
        Ok(())
    }

    /// `Database::delete_snapshot` (`kind` Snapshot) or `delete_branch` (`kind` Branch).
    pub fn delete(&mut self, name: &str, kind: Kind) -> Expect<()> {
        check_name(name)?;
        if name == crate::txn::roots::MAIN {
            return Err(ErrKind::InvalidArgument);
        }
        match self.roots.get(name) {
            None => Err(ErrKind::NotFound),
            Some(r) if r.kind != kind => Err(ErrKind::InvalidArgument),
            Some(_) => {
                self.roots.remove(name);
                Ok(())
            }
        }
    }
}

/// One changed entry: table, key, old value, new value.
pub type Change = (String, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// The model's difference from `old` to `new`: tables in name order, then keys.
pub fn diff(old: &Tables, new: &Tables) -> Vec<Change> {
    let empty = Default::default();
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (
            old.get(name).unwrap_or(&empty),
            new.get(name).unwrap_or(&empty),
        );
        let mut keys: Vec<&Vec<u8>> = a.keys().chain(b.keys()).collect();
        keys.sort();
        keys.dedup();
        for key in keys {
            let (x, y) = (a.get(key), b.get(key));
            if x != y {
                out.push((name.clone(), key.clone(), x.cloned(), y.cloned()));
            }
        }
    }
    out
}

/// The entries of `table` within the bounds, in order (empty when the bounds cross).
pub fn range_of(
    table: &TableModel,
    lo: &Bound<Vec<u8>>,
    hi: &Bound<Vec<u8>>,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    table
        .iter()
        .filter(|(k, _)| {
            let above = match lo {
                Bound::Unbounded => true,
                Bound::Included(b) => k.as_slice() >= b.as_slice(),
                Bound::Excluded(b) => k.as_slice() > b.as_slice(),
            };
            let below = match hi {
                Bound::Unbounded => true,
                Bound::Included(b) => k.as_slice() <= b.as_slice(),
                Bound::Excluded(b) => k.as_slice() < b.as_slice(),
            };
            above && below
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}
