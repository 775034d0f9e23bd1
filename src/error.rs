//! The one error type of the crate.
//!
//! Invariants: corruption and I/O are values of this enum, never panics; every variant that
//! callers may want to match on is a variant of its own.

use std::io;

/// Everything that can go wrong in shadowkv.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The operating system reported an I/O error. From `Options::open` the message starts
    /// with the file's path.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The file exists but does not start with a shadowkv meta page.
    #[error("not a shadowkv database: {reason}")]
    NotADatabase {
        /// What was wrong with the header.
        reason: String,
    },
    /// The file is a shadowkv database of a format this build cannot read.
    #[error("unsupported format version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// The version recorded in the file.
        found: u32,
        /// The version this build reads and writes.
        supported: u32,
    },
    /// The file is shorter than its own metadata says it must be.
    #[error("file truncated: {len_bytes} bytes on disk, {needed_bytes} needed")]
    Truncated {
        /// Bytes actually present.
        len_bytes: u64,
        /// Bytes the newest valid meta refers to.
        needed_bytes: u64,
    },
    /// A page failed a checksum, a bound or a structural check.
    #[error("corruption found on page {page}: {reason}")]
    Corrupted {
        /// The page on which the damage was found.
        page: u64,
        /// What was wrong.
        reason: String,
    },
    /// A table, snapshot or branch of that name does not exist. The message names the kind
    /// and the name (`table "users"`, `snapshot "nightly"`, `snapshot or branch "x"`).
    #[error("not found: {0}")]
    NotFound(String),
    /// A table, snapshot or branch of that name exists already; the message says which kind.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A key is longer than the largest key allowed.
    #[error("key of {len} bytes is over the limit of {max} bytes")]
    KeyTooLarge {
        /// Length of the key given.
        len: usize,
        /// The largest key allowed.
        max: usize,
    },
    /// A value is longer than the largest value allowed.
    #[error("value of {len} bytes is over the limit of {max} bytes")]
    ValueTooLarge {
        /// Length of the value given.
        len: usize,
        /// The largest value allowed.
        max: usize,
    },
    /// Another process (or another handle in this one) holds the file's lock.
    #[error("database file is locked by another handle")]
    Locked,
    /// An fsync failed earlier; the database refuses writes until it is reopened.
    #[error("database poisoned by a failed sync; reopen it to recover the last durable state")]
    Poisoned,
    /// An argument is outside what the API accepts (a bad page size, an empty name, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A send stream given to `receive` is truncated, damaged or not a shadowkv stream.
    #[error("bad stream: {reason}")]
    BadStream {
        /// What was wrong.
        reason: String,
    },
    /// A call that waits for the writer slot was made on a thread whose own write
    /// transaction (`WriteTxn`) holds that slot: the wait could never end, so the call
    /// returns this at once instead. Commit or drop the transaction first. Calls made on
    /// other threads still wait.
    #[error(
        "a write transaction is already open on this thread; commit or drop it before \
         beginning another write, or calling a method that needs the writer slot"
    )]
    WouldDeadlock,
    /// A table was opened with key and value types other than those it was created with
    /// (the names are the codecs' `type_name`s, stored in the table's record).
    #[error(
        "table {table:?} was created with key type {} and value type {}, \
         but is opened as key type {} and value type {}",
        stored.0, stored.1, requested.0, requested.1
    )]
    TypeMismatch {
        /// The table's name.
        table: String,
        /// The (key, value) type names stored in the table.
        stored: (String, String),
        /// The (key, value) type names it was opened with.
        requested: (String, String),
    },
    /// Stored bytes could not be decoded as the type a typed table reads them as: damage, or
    /// a table written with other types through an API that records none.
    #[error("table {table:?}: cannot decode {reason}")]
    Decode {
        /// The table's name.
        table: String,
        /// What could not be decoded, and why.
        reason: String,
    },
    /// The named root is a read-only snapshot.
    #[error("{0} is a snapshot and cannot be written")]
    ReadOnly(String),
    /// The database was opened with [`Options::read_only`](crate::Options::read_only): every
    /// method that would write to its file (a write transaction, snapshots, branches,
    /// restore, deletes, `sync`, `compact`, `receive`) returns this at once. A separate
    /// variant from [`Error::ReadOnly`], which names a snapshot of a writable database.
    #[error("database opened read-only (Options::read_only): it cannot be written")]
    ReadOnlyDatabase,
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Shorthand used by decoders.
    pub(crate) fn corrupted(page: u64, reason: impl Into<String>) -> Self {
        Error::Corrupted {
            page,
            reason: reason.into(),
        }
    }
}

/// One step of an iterator that ends after its first error: `failed` is set by an error, and
/// once set nothing more is read (a damaged page would only give the same error again).
pub(crate) fn fused_step<T>(
    failed: &mut bool,
    step: impl FnOnce() -> Result<Option<T>>,
) -> Option<Result<T>> {
    if *failed {
        return None;
    }
    let next = step();
    *failed = next.is_err();
    next.transpose()
}
