//! The storage seam: the only layer that touches file descriptors, memory maps and `unsafe`.
//!
//! Invariants:
//! - A [`View`] returned by [`Storage::view`] shows every byte written before the call, and
//!   stays valid (never unmapped, never truncated under it) for as long as it is alive.
//! - Bytes that a live view exposes to a reader are never rewritten by the engine: the layers
//!   above only write pages that no reader can reach (copy-on-write), so a view reads stable
//!   bytes. Another *program* writing the file underneath is the one hazard left; the file
//!   lock keeps other shadowkv handles out, but not arbitrary processes (see ARCHITECTURE.md).
//! - `sync` returns only once every earlier `write_at` and `set_len` is durable.
//! - A view is read a piece at a time: [`View::slice`] gives one contiguous piece of the
//!   view or `None` past its end, and [`View::rebind`] compares addresses only, so a storage
//!   may keep its bytes in pieces (`MemStorage` does) and reads stay bounds-checked.

mod crc;
mod file;
#[cfg(any(test, feature = "testkit"))]
mod mem;
mod newfile;

pub(crate) use crc::{crc32c, crc32c_append};
pub use file::{FileStorage, OpenFileError};
#[cfg(any(test, feature = "testkit"))]
pub use mem::{Fingerprint, MemStorage};
pub use newfile::NewFile;

use std::io;
use std::sync::Arc;

/// A read-only view of a prefix of the storage, borrowed by transactions for zero-copy reads.
///
/// Its bytes are reached piece by piece rather than as one slice, so that a storage may keep
/// them in pieces (`MemStorage` shares chunks between views instead of copying the whole).
pub trait View: Send + Sync {
    /// The view's length: the `len` it was taken with.
    fn byte_len(&self) -> u64;
    /// The `len` bytes at `offset`, in one piece; `None` when they reach past the end.
    fn slice(&self, offset: u64, len: usize) -> Option<&[u8]>;
    /// The same bytes as `slice`, borrowed from this view, when `slice` was read from it (or
    /// from another handle on the same view); `None` for bytes held elsewhere. Only addresses
    /// are compared: nothing is read that the view does not own.
    fn rebind(&self, slice: &[u8]) -> Option<&[u8]>;
}

/// [`View::slice`] of one contiguous buffer.
pub(crate) fn slice_of(bytes: &[u8], offset: u64, len: usize) -> Option<&[u8]> {
    let start = usize::try_from(offset).ok()?;
    bytes.get(start..start.checked_add(len)?)
}

/// [`View::rebind`] of one contiguous buffer: `slice` borrowed from `bytes` when its
/// addresses lie inside them.
pub(crate) fn rebind_in<'a>(bytes: &'a [u8], slice: &[u8]) -> Option<&'a [u8]> {
    let start = (slice.as_ptr() as usize).checked_sub(bytes.as_ptr() as usize)?;
    bytes.get(start..start.checked_add(slice.len())?)
}

/// Asks the CPU to bring the first cache lines of `items` (up to [`PREFETCH_MAX_LINES`]) in
/// ahead of a read: a hint, which changes no value and never fails. A loop whose next items lie at random addresses (the sorted
/// flush of the insert buffer) issues it a few items ahead, so that their cache misses
/// overlap the work on the current item instead of following it.
#[inline]
pub(crate) fn prefetch<T>(items: &[T]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        const LINE: usize = 64;
        let start = items.as_ptr().cast::<u8>();
        let first = start.wrapping_sub(start as usize % LINE);
        let lines = (start as usize % LINE + std::mem::size_of_val(items))
            .div_ceil(LINE)
            .min(PREFETCH_MAX_LINES);
        for k in 0..lines {
            // SAFETY: `_mm_prefetch` needs SSE, which every x86_64 CPU has. It is a hint: it
            // reads nothing the program can observe and does not fault even on an unmapped
            // address (and these lines overlap `items`, a live borrow).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(first.wrapping_add(k * LINE).cast()) };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = items;
}

/// The most cache lines one [`prefetch`] asks for: a kilobyte covers a key and value held
/// inline and a node's slot array, while a long value would only push useful lines out.
pub(crate) const PREFETCH_MAX_LINES: usize = 16;

/// Where the database's bytes live: a file, memory, or a test double wrapping either.
pub trait Storage: Send + Sync + 'static {
    /// Reads exactly `buf.len()` bytes at `offset`; reading past the end is an error.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
    /// Writes all of `data` at `offset`, extending the storage if needed.
    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()>;
    /// Makes every earlier write and length change durable.
    fn sync(&self) -> io::Result<()>;
    /// The current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Whether the storage is empty.
    fn is_empty(&self) -> io::Result<bool> {
        Ok(self.len()? == 0)
    }
    /// Grows (or shrinks) the storage to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// A view of the first `len` bytes (`len` must not exceed the current length).
    fn view(&self, len: u64) -> io::Result<Arc<dyn View>>;
}

/// A view of nothing, for empty storage.
pub(crate) struct EmptyView;

impl View for EmptyView {
    fn byte_len(&self) -> u64 {
        0
    }
    fn slice(&self, offset: u64, len: usize) -> Option<&[u8]> {
        slice_of(&[], offset, len)
    }
    fn rebind(&self, _slice: &[u8]) -> Option<&[u8]> {
        None
    }
}

fn past_end(offset: u64, len: usize, storage_len: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        format!("read of {len} bytes at {offset} past the end ({storage_len} bytes)"),
    )
}
