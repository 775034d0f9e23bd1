//! The operation language: every public entry point of the database, with arguments drawn
//! from small domains so that random sequences hit the same names and keys again and again.
//!
//! Invariants: every domain type maps *any* raw value to a valid argument (or to a
//! deliberately invalid one: an empty or over-long name, an over-long key), so any bytes
//! decode to a runnable sequence.

use std::ops::Bound;
use std::sync::OnceLock;

use arbitrary::Arbitrary;

use super::model::ModelKey;

/// Names of snapshots and branches: `main`, `r1`, `r2`, `r3`; 254 is a 256-byte name and
/// 255 the empty name (both invalid).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Name(pub u8);

impl Name {
    /// The name this value stands for.
    pub fn as_string(self) -> String {
        match self.0 {
            255 => String::new(),
            254 => "n".repeat(256),
            n => ["main", "r1", "r2", "r3"][n as usize % 4].to_string(),
        }
    }
}

/// Table names: `t1`, `t2`, `t3`; 254 is a 256-byte name and 255 the empty name.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableName(pub u8);

impl TableName {
    /// The name this value stands for.
    pub fn as_string(self) -> String {
        match self.0 {
            255 => String::new(),
            254 => "t".repeat(256),
            n => ["t1", "t2", "t3"][n as usize % 3].to_string(),
        }
    }
}

/// Keys: 0..=239 are `k000`..`k239`; 240..=247 are long keys (300 to 1000 bytes); 248 is the
/// empty key; 249 is exactly the largest key (1024 bytes); 250 is one byte over it; 251..=255
/// are runs of 0xFF (after every other key).
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Key(pub u8);

/// Keys `k000`..`k239` wrap at this count in ranges of keys.
pub const PLAIN_KEYS: u8 = 240;

impl Key {
    /// The key's bytes.
    pub fn bytes(self) -> Vec<u8> {
        let n = self.0;
        match n {
            0..=239 => self.plain_bytes().to_vec(),
            240..=247 => {
                let mut k = format!("k{:03}~", (n - 240) * 29).into_bytes();
                k.resize(300 + (n as usize - 240) * 100, b'~');
                k
            }
            248 => Vec::new(),
            249 => vec![b'm'; crate::format::MAX_KEY_LEN],
            250 => vec![b'm'; crate::format::MAX_KEY_LEN + 1],
            _ => vec![0xFF; n as usize - 250],
        }
    }

    /// The key as the model holds it (a plain key without allocating).
    pub fn model_key(self) -> ModelKey {
        let n = self.0;
        match n {
            0..=239 => ModelKey::from(&self.plain_bytes()[..]),
            _ => ModelKey::from(self.bytes()),
        }
    }

    /// The bytes of plain key `k000`..`k239` (this one's number, for one below 240).
    fn plain_bytes(self) -> [u8; 4] {
        let n = self.0;
        [b'k', b'0' + n / 100, b'0' + n / 10 % 10, b'0' + n % 10]
    }

    /// The plain key whose bytes these are (`k000`..`k239`), if any.
    pub fn plain_of(bytes: &[u8]) -> Option<Key> {
        let [b'k', digits @ ..] = bytes else {
            return None;
        };
        let [a, b, c] = <[u8; 3]>::try_from(digits)
            .ok()?
            .map(|d| d.wrapping_sub(b'0'));
        let n = [a, b, c]
            .iter()
            .try_fold(0u32, |n, &d| (d < 10).then(|| n * 10 + u32::from(d)))?;
        (n < u32::from(PLAIN_KEYS)).then_some(Key(n as u8))
    }

    /// The `i`-th plain key after this one (wrapping within `k000`..`k239`).
    pub fn plain_offset(self, i: usize) -> Key {
        Key(((self.0 as usize + i) % PLAIN_KEYS as usize) as u8)
    }
}

/// The longest value (`size` 255).
const MAX_LEN: usize = 70_001;

/// A value: its length comes from `size` (small, near the inline limit, overflow runs, page
/// multiples, a 70 KB run), its bytes from `fill`.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Value {
    /// Chooses the length.
    pub size: u8,
    /// Seeds the contents.
    pub fill: u8,
}

impl Value {
    /// The value's length.
    pub fn len(self) -> usize {
        let s = self.size as usize;
        match self.size {
            0..=159 => s,
            160..=219 => 160 + (s - 160) * 25,
            220..=251 => 1500 + (s - 220) * 400,
            252..=254 => 4096 * (s - 250),
            255 => MAX_LEN,
        }
    }

    /// Whether the value is empty.
    pub fn is_empty(self) -> bool {
        self.len() == 0
    }

    /// The value's bytes, owned.
    pub fn bytes(self) -> Vec<u8> {
        self.slice().to_vec()
    }

    /// The value's bytes: a prefix of its fill's longest value, made once per process (the
    /// 256 fills take at most 18 MB), so that the runner and the model allocate and copy no
    /// value (making each one was a fiftieth of the fuzz target's instructions).
    pub fn slice(self) -> &'static [u8] {
        static FILLS: [OnceLock<Box<[u8]>>; 256] = [const { OnceLock::new() }; 256];
        let longest = FILLS[self.fill as usize].get_or_init(|| self.generate(MAX_LEN).into());
        &longest[..self.len()]
    }

    /// `len` bytes of this value's fill.
    fn generate(self, len: usize) -> Vec<u8> {
        // Byte `i` is `fill + i * 31 % 251`: a cycle of 251 bytes, repeated (a division per
        // byte made this a tenth of the fuzz target's time).
        const STEPS: [u8; 251] = {
            let mut steps = [0u8; 251];
            let mut i = 0;
            while i < 251 {
                steps[i] = (i * 31 % 251) as u8;
                i += 1;
            }
            steps
        };
        let cycle = STEPS.map(|step| self.fill.wrapping_add(step));
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            let n = (len - out.len()).min(cycle.len());
            out.extend_from_slice(&cycle[..n]);
        }
        out
    }

    /// The same size with another fill (for ranges of inserts).
    pub fn with_fill_offset(self, i: usize) -> Value {
        Value {
            size: self.size,
            fill: self.fill.wrapping_add(i as u8),
        }
    }
}

/// One end of a range.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BoundSpec {
    /// No limit.
    Unbounded,
    /// Inclusive.
    Included(Key),
    /// Exclusive.
    Excluded(Key),
}

impl BoundSpec {
    /// As a `std` bound over owned bytes.
    pub fn to_bound(self) -> Bound<Vec<u8>> {
        match self {
            BoundSpec::Unbounded => Bound::Unbounded,
            BoundSpec::Included(k) => Bound::Included(k.bytes()),
            BoundSpec::Excluded(k) => Bound::Excluded(k.bytes()),
        }
    }

    /// As a bound over the model's keys.
    pub fn to_model_bound(self) -> Bound<ModelKey> {
        self.to_bound().map(ModelKey::from)
    }
}

/// How a range is walked: bit `i % 8` of `pattern` says whether step `i` takes from the back.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub struct RangeSpec {
    /// Lower end.
    pub lo: BoundSpec,
    /// Upper end.
    pub hi: BoundSpec,
    /// Directions of the steps.
    pub pattern: u8,
}

/// An operation inside a write transaction.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum TxnOp {
    /// `open_table(t)?.insert(k, v)`.
    Insert(TableName, Key, Value),
    /// `open_table(t)?.remove(k)`.
    Remove(TableName, Key),
    /// `open_table(t)?.get(k)`.
    Get(TableName, Key),
    /// `count` inserts of consecutive plain keys from `start` (at most 8 when values are large).
    InsertMany(TableName, Key, u8, Value),
    /// `count` removes of consecutive plain keys from `start`.
    RemoveMany(TableName, Key, u8),
    /// `open_table(t)?.range(..)`, walked from both ends.
    Range(TableName, RangeSpec),
    /// `len` and `is_empty`.
    Len(TableName),
    /// `delete_table(t)`.
    DeleteTable(TableName),
    /// `table_names()`.
    TableNames,
    /// `create_snapshot(name)` on the transaction (taken at commit).
    CreateSnapshot(Name),
    /// One of the table's conveniences (`contains_key`, the ends, `replace`, ...).
    More(TableName, MoreOp),
}

/// The conveniences of a `TableMut` beyond get, insert, remove and range.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum MoreOp {
    /// `contains_key(k)`.
    ContainsKey(Key),
    /// `first()` and `last()`.
    Ends,
    /// `pop_first()` (false) or `pop_last()` (true).
    Pop(bool),
    /// `replace(k, v)`, which returns the value it replaced.
    Replace(Key, Value),
    /// `remove_range(range)`.
    RemoveRange(RangeSpec),
    /// `retain` keeping the keys whose last byte is not a multiple of `2 + n % 5`, or with
    /// `extract` the same entries taken by `extract_if`.
    Retain {
        /// Chooses the modulus.
        n: u8,
        /// `extract_if` instead of `retain`.
        extract: bool,
    },
}

/// An operation inside a read transaction.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum ReadOp {
    /// `open_table(t)?.get(k)`.
    Get(TableName, Key),
    /// `open_table(t)?.range(..)`, walked from both ends.
    Range(TableName, RangeSpec),
    /// `len` and `is_empty`.
    Len(TableName),
    /// `table_names()`.
    TableNames,
    /// `contains_key(k)`, `first()` and `last()`.
    Ends(TableName, Key),
}

/// How a write transaction ends.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// `commit()` with the database's durability.
    Commit,
    /// `set_durability(Eventual)` then `commit()`.
    CommitEventual,
    /// `set_durability(Immediate)` then `commit()`.
    CommitImmediate,
    /// Dropped: aborted.
    Abort,
    /// The process dies with the transaction open: the database is reopened from the bytes.
    Crash,
}

/// An operation on the database.
#[derive(Arbitrary, Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// A write transaction: `begin_write()` (`branch: None`) or `begin_write_on(branch)`,
    /// some operations, then its end. With `pin`, a read transaction on the same root is
    /// opened first and must still see the old state after the commit.
    Write {
        /// The branch, or `None` for `begin_write()`.
        branch: Option<Name>,
        /// Hold a reader on the same root across the transaction.
        pin: bool,
        /// The operations.
        ops: Vec<TxnOp>,
        /// How it ends.
        end: End,
    },
    /// A read transaction: `begin_read()` (`root: None`) or `begin_read_at(root)`.
    Read {
        /// The root, or `None` for `begin_read()`.
        root: Option<Name>,
        /// The operations.
        ops: Vec<ReadOp>,
    },
    /// `create_snapshot(name)` of main.
    CreateSnapshot(Name),
    /// `create_branch(name, from)`.
    CreateBranch(Name, Name),
    /// `restore(branch, from)`.
    Restore(Name, Name),
    /// `delete_snapshot(name)`.
    DeleteSnapshot(Name),
    /// `delete_branch(name)`.
    DeleteBranch(Name),
    /// `snapshots()`, `branches()` and `stats()`.
    List,
    /// `sync()`.
    Sync,
    /// `check()` and a full comparison with the model.
    Check,
    /// Drop the database and open the same storage again.
    Reopen,
    /// Drop the database and open a copy of the storage's bytes (a process crash).
    Crash,
    /// `diff` from the first view to the second (`None`: `main`), against the model's.
    Diff(Option<Name>, Option<Name>),
    /// `send(snapshot, base)` into a buffer, then `receive` of it by a second database, the
    /// replica, which keeps what it received across the run.
    Send {
        /// The snapshot sent.
        snapshot: Name,
        /// The base of an incremental stream.
        base: Option<Name>,
    },
    /// `backup_to` new storage; the copy must pass `check()` and equal the model.
    Backup,
    /// `compact()`; the database must pass `check()` and equal the model. With `pin`, a
    /// reader of main opened before must still read the same afterwards.
    Compact {
        /// Hold a reader of main across the compaction.
        pin: bool,
    },
    /// Drop the database and open its bytes with `Options::read_only` (`crash`: a copy of
    /// them, as after a process crash): it must equal the model, refuse writes with
    /// `Error::ReadOnlyDatabase`, and leave every byte as it was; then the database is
    /// opened again for writing.
    ReadOnly {
        /// Open a copy of the bytes rather than the storage itself.
        crash: bool,
    },
}

/// Most operations decoded from one input (bounds the time of one fuzz run).
pub const MAX_OPS: usize = 400;
/// Most operations in one decoded transaction.
pub const MAX_TXN_OPS: usize = 16;

/// Decodes bytes into a sequence of operations, as the `ops` fuzz target and the property
/// test do. Write transactions get most of the weight and a short list of their own
/// operations; each of the other operations is chosen by one byte, about equally often,
/// and its arguments are decoded with the derived [`Arbitrary`]. Any bytes decode (to an
/// empty sequence at worst).
pub fn ops_from_bytes(data: &[u8]) -> Vec<Op> {
    ops_from_bytes_at_most(data, MAX_OPS)
}

/// [`ops_from_bytes`], stopping after `max` operations (the rest of the bytes is not read).
pub fn ops_from_bytes_at_most(data: &[u8], max: usize) -> Vec<Op> {
    let mut u = arbitrary::Unstructured::new(data);
    let mut ops = Vec::new();
    while !u.is_empty() && ops.len() < max.min(MAX_OPS) {
        match decode_op(&mut u) {
            Ok(op) => ops.push(op),
            Err(_) => break,
        }
    }
    ops
}

fn decode_op(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Op> {
    Ok(match u.int_in_range(0u8..=19)? {
        0..=11 => {
            let branch = Option::<Name>::arbitrary(u)?;
            let pin = u.ratio(1u8, 8)?;
            let n = u.int_in_range(0..=MAX_TXN_OPS)?;
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                ops.push(TxnOp::arbitrary(u)?);
            }
            let end = match u.int_in_range(0u8..=15)? {
                0..=8 => End::Commit,
                9..=11 => End::CommitEventual,
                12 => End::CommitImmediate,
                13..=14 => End::Abort,
                _ => End::Crash,
            };
            Op::Write {
                branch,
                pin,
                ops,
                end,
            }
        }
        12..=13 => {
            let root = Option::<Name>::arbitrary(u)?;
            let n = u.int_in_range(0..=MAX_TXN_OPS)?;
            let mut ops = Vec::with_capacity(n);
            for _ in 0..n {
                ops.push(ReadOp::arbitrary(u)?);
            }
            Op::Read { root, ops }
        }
        _ => other_op(u)?,
    })
}

/// One of the operations other than transactions, each chosen by one byte value in 15. (The
/// derived choice of a variant reads a `u32` whose high byte decides, so the `0xFF` bytes
/// that libFuzzer's mutations favour picked the last variant, `ReadOnly`, for a tenth of
/// all the ops the fuzzer ran.)
fn other_op(u: &mut arbitrary::Unstructured<'_>) -> arbitrary::Result<Op> {
    Ok(match u.int_in_range(0u8..=14)? {
        0 => Op::CreateSnapshot(u.arbitrary()?),
        1 => Op::CreateBranch(u.arbitrary()?, u.arbitrary()?),
        2 => Op::Restore(u.arbitrary()?, u.arbitrary()?),
        3 => Op::DeleteSnapshot(u.arbitrary()?),
        4 => Op::DeleteBranch(u.arbitrary()?),
        5 => Op::List,
        6 => Op::Sync,
        7 => Op::Check,
        8 => Op::Reopen,
        9 => Op::Crash,
        10 => Op::Diff(u.arbitrary()?, u.arbitrary()?),
        11 => Op::Send {
            snapshot: u.arbitrary()?,
            base: u.arbitrary()?,
        },
        12 => Op::Backup,
        13 => Op::Compact {
            pin: u.arbitrary()?,
        },
        _ => Op::ReadOnly {
            crash: u.arbitrary()?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_a_prefix_of_its_fills_longest() {
        for fill in [0u8, 1, 77, 250, 255] {
            for size in [0u8, 1, 8, 159, 160, 219, 220, 251, 252, 254, 255] {
                let v = Value { size, fill };
                assert_eq!(v.slice(), &v.generate(v.len())[..], "{v:?}");
                assert_eq!(v.bytes().len(), v.len());
            }
        }
    }

    #[test]
    fn plain_of_inverts_the_plain_keys_alone() {
        for n in 0..=255u8 {
            let want = (n < PLAIN_KEYS).then_some(Key(n));
            assert_eq!(Key::plain_of(&Key(n).bytes()), want, "key {n}");
            assert_eq!(Key(n).model_key().bytes(), Key(n).bytes(), "key {n}");
        }
        for bytes in [&b"k24"[..], b"k240", b"k9:9", b"j001", b"k0010"] {
            assert_eq!(Key::plain_of(bytes), None, "{bytes:?}");
        }
    }
}
