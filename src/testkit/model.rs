//! The model: what the database must contain, one map of tables per named root, and the
//! rules by which names, snapshots, branches, restores and deletions succeed or fail.
//!
//! Invariants: `main` is always present and always a branch; snapshots and branches share
//! one namespace; every rule here mirrors a documented behaviour of the public API and
//! returns the [`ErrKind`] the engine must return.

use crate::Error;
use std::borrow::{Borrow, Cow};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::ops::{Bound, Deref};
use std::sync::{Arc, Weak};

/// One table: key → value.
pub type TableModel = BTreeMap<ModelKey, ModelValue>;

/// A value of the model. The runner's values are made by [`crate::testkit::ops::Value`],
/// whose bytes lie in tables built once per process (`Value::slice`): the model borrows them,
/// so an insert, a copy of a table (copy on write, a pinned reader's, a replica's) and a drop
/// allocate and copy no value (they were a twentieth of the fuzz target's instructions).
/// Values from elsewhere (tests) are owned.
pub type ModelValue = Cow<'static, [u8]>;

/// A key of the model: its bytes, in the order of bytes, but compared by their first eight
/// bytes as one integer before any byte compare, and held inline when they are no more than
/// eight. The order of `Vec<u8>` calls `memcmp`, and under libFuzzer every `memcmp` that
/// differs goes through its hook (the model's searches, merges and sorts were a tenth of the
/// instrumented `ops` target); the fuzzer's keys differ within their first eight bytes, so
/// their compares end at the integer, and its plain keys (four bytes) allocate nothing when
/// made, copied with their table or dropped.
///
/// Invariants: `head` is the first eight bytes, padded with zeros; `long` holds all the bytes
/// of a key longer than eight and nothing otherwise, so equal fields mean equal bytes; the
/// order is exactly that of the bytes (a key that is a prefix of another has a head no
/// greater, and equal heads fall back to the bytes), so `Borrow<[u8]>` is sound.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ModelKey {
    head: [u8; 8],
    len: usize,
    long: Vec<u8>,
}

impl ModelKey {
    /// The key's bytes.
    pub fn bytes(&self) -> &[u8] {
        if self.len <= 8 {
            &self.head[..self.len]
        } else {
            &self.long
        }
    }

    /// The key's bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        if self.len <= 8 {
            self.head[..self.len].to_vec()
        } else {
            self.long
        }
    }

    fn head_of(bytes: &[u8]) -> [u8; 8] {
        let mut head = [0u8; 8];
        let n = bytes.len().min(8);
        head[..n].copy_from_slice(&bytes[..n]);
        head
    }
}

impl From<Vec<u8>> for ModelKey {
    fn from(bytes: Vec<u8>) -> Self {
        let (head, len) = (Self::head_of(&bytes), bytes.len());
        let long = if len <= 8 { Vec::new() } else { bytes };
        ModelKey { head, len, long }
    }
}

impl From<&[u8]> for ModelKey {
    fn from(bytes: &[u8]) -> Self {
        let (head, len) = (Self::head_of(bytes), bytes.len());
        let long = if len <= 8 { Vec::new() } else { bytes.to_vec() };
        ModelKey { head, len, long }
    }
}

impl Ord for ModelKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match u64::from_be_bytes(self.head).cmp(&u64::from_be_bytes(other.head)) {
            Ordering::Equal => self.bytes().cmp(other.bytes()),
            unequal => unequal,
        }
    }
}

impl PartialOrd for ModelKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Deref for ModelKey {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes()
    }
}

impl AsRef<[u8]> for ModelKey {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Borrow<[u8]> for ModelKey {
    fn borrow(&self) -> &[u8] {
        self.bytes()
    }
}

impl std::fmt::Debug for ModelKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.bytes().fmt(f)
    }
}
/// The tables of one root, by name. A table is shared by the roots that hold it until one
/// of them changes it (`Arc::make_mut`): a snapshot, a branch, a restore or an aborted
/// transaction copies no entries.
pub type Tables = BTreeMap<String, Arc<TableModel>>;

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

/// A model's roots at one moment, their tables held weakly: see [`Model::unchanged_since`].
pub struct ModelPrint(Vec<(String, Kind, u64, TablesPrint)>);

/// A root's tables by name, held weakly.
type TablesPrint = Vec<(String, Weak<TableModel>)>;

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

    /// The roots as they are now, for [`unchanged_since`](Self::unchanged_since).
    pub fn print(&self) -> ModelPrint {
        let tables = |t: &Tables| (t.iter().map(|(n, t)| (n.clone(), Arc::downgrade(t)))).collect();
        let roots = self.roots.iter();
        ModelPrint(
            roots
                .map(|(n, r)| (n.clone(), r.kind, r.identity, tables(&r.tables)))
                .collect(),
        )
    }

    /// Whether the model holds what `print` saw: the same roots, of the same kinds and
    /// identities, holding the same table allocations. A table changed since has another
    /// address (`Arc::make_mut` moves a table that only weak references share), and the weak
    /// reference keeps the old address from being reused. Conservative: a table changed
    /// back, or replaced by an equal one, counts as a change.
    pub fn unchanged_since(&self, print: &ModelPrint) -> bool {
        let same_tables = |t: &Tables, then: &TablesPrint| {
            t.len() == then.len()
                && (t.iter().zip(then))
                    .all(|((n, t), (m, w))| n == m && std::ptr::eq(Arc::as_ptr(t), w.as_ptr()))
        };
        self.roots.len() == print.0.len()
            && (self.roots.iter().zip(&print.0)).all(|((n, r), (m, kind, id, then))| {
                n == m && r.kind == *kind && r.identity == *id && same_tables(&r.tables, then)
            })
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

/// The model's difference from `old` to `new`: tables in name order, then keys. (Generic
/// over the key, so that tests keeping plain `Vec<u8>` keys can use it too.)
pub fn diff<K, V, T>(old: &BTreeMap<String, T>, new: &BTreeMap<String, T>) -> Vec<Change>
where
    K: Ord + AsRef<[u8]>,
    V: AsRef<[u8]> + PartialEq,
    T: Borrow<BTreeMap<K, V>>,
{
    let empty = BTreeMap::new();
    let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
    names.sort();
    names.dedup();
    let mut out = Vec::new();
    for name in names {
        let (a, b) = (
            old.get(name).map_or(&empty, Borrow::borrow),
            new.get(name).map_or(&empty, Borrow::borrow),
        );
        diff_table(name, a, b, &mut out);
    }
    out
}

/// One table's changes, by one merge of the two sorted maps (no key searched or sorted).
fn diff_table<K: Ord + AsRef<[u8]>, V: AsRef<[u8]> + PartialEq>(
    name: &str,
    a: &BTreeMap<K, V>,
    b: &BTreeMap<K, V>,
    out: &mut Vec<Change>,
) {
    let (mut a, mut b) = (a.iter().peekable(), b.iter().peekable());
    let owned = |v: Option<&V>| v.map(|v| v.as_ref().to_vec());
    let change = |k: &K, x: Option<&V>, y: Option<&V>| {
        (name.to_string(), k.as_ref().to_vec(), owned(x), owned(y))
    };
    loop {
        let order = match (a.peek(), b.peek()) {
            (None, None) => return,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some((ka, _)), Some((kb, _))) => ka.cmp(kb),
        };
        match order {
            Ordering::Less => {
                let (k, x) = a.next().expect("peeked");
                out.push(change(k, Some(x), None));
            }
            Ordering::Greater => {
                let (k, y) = b.next().expect("peeked");
                out.push(change(k, None, Some(y)));
            }
            Ordering::Equal => {
                let ((k, x), (_, y)) = (a.next().expect("peeked"), b.next().expect("peeked"));
                if x != y {
                    out.push(change(k, Some(x), Some(y)));
                }
            }
        }
    }
}

/// The entries of `table` within the bounds, in order, borrowed (empty when the bounds
/// cross).
pub fn range_of<'m>(
    table: &'m TableModel,
    lo: &Bound<ModelKey>,
    hi: &Bound<ModelKey>,
) -> Vec<(&'m ModelKey, &'m ModelValue)> {
    let crossed = match (lo, hi) {
        (Bound::Included(a), Bound::Included(b)) => a > b,
        (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
            a >= b
        }
        _ => false,
    };
    if crossed {
        return Vec::new();
    }
    table
        .range::<ModelKey, _>((lo.as_ref(), hi.as_ref()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_keys_order_as_their_bytes() {
        let mut keys: Vec<Vec<u8>> = (0..=255u8)
            .map(|n| crate::testkit::ops::Key(n).bytes())
            .collect();
        let edges: [&[u8]; 9] = [
            b"",
            b"\0",
            b"k",
            b"k\0",
            &[0; 8],
            &[0; 9],
            b"abcdefgh",
            b"abcdefgha",
            b"abcdefgg\xff",
        ];
        keys.extend(edges.iter().map(|k| k.to_vec()));
        for a in &keys {
            for b in &keys {
                let (ma, mb) = (ModelKey::from(a.clone()), ModelKey::from(b.clone()));
                assert_eq!(ma.cmp(&mb), a.cmp(b), "{a:?} against {b:?}");
                assert_eq!(ma == mb, a == b);
            }
        }
    }
}
