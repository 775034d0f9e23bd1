//! An in-memory [`Storage`] for tests and for building crash images.
//!
//! Invariants:
//! - The bytes live in fixed-size chunks (of [`CHUNK`] bytes, or the size given to
//!   [`MemStorage::with_chunk_size`]), each behind its own `Arc`; there are exactly
//!   `ceil(len / size)` of them, and every byte at or past `len` is zero (so growing only
//!   appends zero chunks, and a shrink zeroes the cut tail).
//! - A view holds its own list of the chunk `Arc`s as they were when it was taken. A write
//!   clones only the chunks it touches that a view (or a fork) still shares
//!   (`Arc::make_mut`; a write over a whole shared chunk makes a new one instead), so a
//!   view never changes, and taking one costs one `Arc` per chunk
//!   rather than a copy of the bytes (a commit takes one; the old whole-vector copy-on-write
//!   copied the whole file at every commit).
//! - [`CHUNK`] is a multiple of every page size (`format::MAX_PAGE_SIZE` divides it), so a
//!   page never straddles two chunks and reads of pages borrow straight from one; a chunk
//!   size given to [`MemStorage::with_chunk_size`] should be a multiple of the page size for
//!   the same reason (the runner gives the page size: a commit then copies only the pages it
//!   writes, not 64 KiB around each). A read that does straddle (an overflow run) is served
//!   from a joined copy of the chunks it spans (at most [`JOIN_BYTES`] of them), made once
//!   per view and kept in a cache shared with the storage: the next view reuses it for as
//!   long as those chunks are the same `Arc`s (a commit touches few). A longer read, or a
//!   longer one starting in the same chunk, is served from a copy of the whole view, made
//!   once per view.
//! - [`MemStorage::fork`] is a copy that shares the chunks: the two never see each other's
//!   later writes. A [`Fingerprint`] holds the chunks weakly; a chunk written since has
//!   another address ([`MemStorage::unchanged_since`]).

use super::{past_end, rebind_in, Storage, View};
use parking_lot::Mutex;
use std::io;
use std::ops::Range;
use std::sync::{Arc, LazyLock, OnceLock};

/// Bytes per chunk: 64 KiB, the largest page size, so every page lies within one chunk.
pub const CHUNK: usize = 1 << 16;

const _: () = assert!(CHUNK.is_multiple_of(crate::format::MAX_PAGE_SIZE));

type Chunk = Arc<Vec<u8>>;

/// The longest join of chunks for one read (a 70 KB overflow value fits, whatever the chunk
/// size): a longer read is served from one copy of the whole view, so that reads of many
/// long runs (a damaged file's) copy the file once per view rather than once a run.
const JOIN_BYTES: usize = 2 * CHUNK;

/// The one chunk of zeros of the default size that every growth appends: growth then costs
/// no copy, and a write of zeros into it (the engine zero-fills the pages a commit grows the
/// file by) is skipped. A storage with another chunk size has its own.
static ZERO_CHUNK: LazyLock<Chunk> = LazyLock::new(|| Arc::new(vec![0u8; CHUNK]));

/// Storage held in memory, in shared chunks.
pub struct MemStorage {
    state: Mutex<Chunks>,
    joins: Arc<JoinCache>,
}

/// Joined runs of chunks, by first chunk, each with the chunks it was made of: a view
/// reuses a join whose chunks are the same `Arc`s as its own (holding them keeps their
/// addresses from being reused by other chunks).
#[derive(Default)]
struct JoinCache {
    runs: Mutex<std::collections::HashMap<usize, Join>>,
}

/// A joined run: the chunks it was made of, and their bytes in one piece.
type Join = (Vec<Chunk>, Arc<Vec<u8>>);

impl JoinCache {
    /// `chunks` (which start at chunk `first`) in one piece.
    fn join(&self, first: usize, chunks: &[Chunk]) -> Arc<Vec<u8>> {
        let mut runs = self.runs.lock();
        if let Some((made_of, joined)) = runs.get(&first) {
            let same = made_of.len() == chunks.len()
                && made_of.iter().zip(chunks).all(|(a, b)| Arc::ptr_eq(a, b));
            if same {
                return joined.clone();
            }
        }
        let mut joined = Vec::with_capacity(chunks.iter().map(|c| c.len()).sum());
        for chunk in chunks {
            joined.extend_from_slice(chunk);
        }
        let joined = Arc::new(joined);
        runs.insert(first, (chunks.to_vec(), joined.clone()));
        joined
    }
}

/// The chunks and the length; see the module's invariants.
#[derive(Clone)]
struct Chunks {
    chunks: Vec<Chunk>,
    len: u64,
    /// Bytes per chunk.
    size: usize,
    /// A chunk of `size` zeros, shared by every chunk that growth appended.
    zero: Chunk,
}

impl Chunks {
    fn new(size: usize) -> Chunks {
        let zero = match size {
            CHUNK => ZERO_CHUNK.clone(),
            _ => Arc::new(vec![0u8; size]),
        };
        Chunks {
            chunks: Vec::new(),
            len: 0,
            size,
            zero,
        }
    }

    fn count_for(&self, len: u64) -> usize {
        (len as usize).div_ceil(self.size)
    }

    /// Grows or shrinks to `len`, keeping the bytes past `len` zero.
    fn resize(&mut self, len: u64) {
        if len < self.len {
            let cut = len as usize % self.size;
            self.chunks.truncate(self.count_for(len));
            if cut != 0 {
                // The cut chunk keeps stale bytes past the new end: zero them, so a later
                // growth reads zeros there as a file would.
                let last = self.chunks.last_mut().expect("a partial chunk exists");
                Arc::make_mut(last)[cut..].fill(0);
            }
        } else {
            self.chunks.resize(self.count_for(len), self.zero.clone());
        }
        self.len = len;
    }

    /// Calls `f(chunk, range in the chunk, range in the caller's buffer)` for every piece of
    /// the `len` bytes at `offset` (which the caller has checked lie inside).
    fn pieces(size: usize, at: u64, len: usize, mut f: impl FnMut(usize, Range<usize>, usize)) {
        let mut done = 0;
        while done < len {
            let at = at as usize + done;
            let (index, start) = (at / size, at % size);
            let n = (size - start).min(len - done);
            f(index, start..start + n, done);
            done += n;
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(self.len as usize);
        for chunk in &self.chunks {
            bytes.extend_from_slice(chunk);
        }
        bytes.truncate(self.len as usize);
        bytes
    }
}

impl Default for MemStorage {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStorage {
    /// Empty storage, in chunks of [`CHUNK`] bytes.
    pub fn new() -> Self {
        Self::with_chunk_size(CHUNK)
    }

    /// Empty storage in chunks of `size` bytes (a power of two, at least 512): the page size
    /// makes a commit copy only the pages it writes (see the module's invariants).
    pub fn with_chunk_size(size: usize) -> Self {
        assert!(size.is_power_of_two() && size >= 512, "chunk size {size}");
        MemStorage {
            state: Mutex::new(Chunks::new(size)),
            joins: Arc::default(),
        }
    }

    /// Storage that starts with these bytes (a crash image, a corrupted copy).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        let mut state = Chunks::new(CHUNK);
        state.chunks = (bytes.chunks(CHUNK))
            .map(|piece| {
                let mut chunk = piece.to_vec();
                chunk.resize(CHUNK, 0);
                Arc::new(chunk)
            })
            .collect();
        state.len = bytes.len() as u64;
        MemStorage {
            state: Mutex::new(state),
            joins: Arc::default(),
        }
    }

    /// A copy of the current bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.state.lock().to_bytes()
    }

    /// A copy of this storage as it is now (a crash image), sharing the chunks: it costs one
    /// `Arc` per chunk, and a later write to either copies only the chunks it touches.
    pub fn fork(&self) -> MemStorage {
        MemStorage {
            state: Mutex::new(self.state.lock().clone()),
            joins: Arc::default(),
        }
    }

    /// Whether `other` holds the same bytes; chunks still shared (untouched since a
    /// [`fork`](Self::fork)) compare without being read.
    pub fn same_bytes(&self, other: &MemStorage) -> bool {
        let (a, b) = (self.state.lock().clone(), other.state.lock().clone());
        a.len == b.len
            && a.chunks
                .iter()
                .zip(&b.chunks)
                .all(|(x, y)| Arc::ptr_eq(x, y) || x == y)
    }

    /// The storage as it is now, for [`unchanged_since`](Self::unchanged_since): unlike a
    /// fork, it holds the chunks weakly, so later writes copy nothing for it.
    pub fn fingerprint(&self) -> Fingerprint {
        let state = self.state.lock();
        Fingerprint {
            len: state.len,
            chunks: state.chunks.iter().map(Arc::downgrade).collect(),
        }
    }

    /// Whether this storage holds exactly the chunks `print` saw (taken of it, or of the
    /// storage it was forked from): nothing written, nor the length set, since. A write of any chunk moves it (`Arc::make_mut` gives a chunk with only
    /// weak references left a new allocation), and the weak reference keeps the old address
    /// from being reused, so equal addresses mean untouched chunks. Conservative: a write of
    /// equal bytes counts as a change.
    pub fn unchanged_since(&self, print: &Fingerprint) -> bool {
        let state = self.state.lock();
        state.len == print.len
            && state.chunks.len() == print.chunks.len()
            && (state.chunks.iter().zip(&print.chunks))
                .all(|(chunk, then)| std::ptr::eq(Arc::as_ptr(chunk), then.as_ptr()))
    }
}

/// A storage's length and chunks at one moment, held weakly: see
/// [`MemStorage::unchanged_since`].
pub struct Fingerprint {
    len: u64,
    chunks: Vec<std::sync::Weak<Vec<u8>>>,
}

/// A view: the chunks as they were, and joined copies made for reads that straddle chunks.
struct MemView {
    chunks: Vec<Chunk>,
    len: u64,
    /// Bytes per chunk.
    size: usize,
    /// `runs[i]`: the chunks from `i` that the first read starting in chunk `i` and
    /// straddling its end (an overflow run) spans, in one piece, taken from `joins`.
    runs: Vec<OnceLock<Arc<Vec<u8>>>>,
    joins: Arc<JoinCache>,
    /// The indexes of the runs made so far, so that [`View::rebind`] looks only at those.
    made: Mutex<Vec<usize>>,
    /// The whole view in one piece, made on the first read longer than a run.
    joined: OnceLock<Vec<u8>>,
    /// Each chunk's address and index, sorted by address, for [`View::rebind`].
    by_address: OnceLock<Vec<(usize, usize)>>,
}

impl View for MemView {
    fn byte_len(&self) -> u64 {
        self.len
    }

    fn slice(&self, offset: u64, len: usize) -> Option<&[u8]> {
        let end = offset.checked_add(len as u64).filter(|&e| e <= self.len)?;
        if len == 0 {
            return Some(&[]);
        }
        let (first, last) = (offset as usize / self.size, (end as usize - 1) / self.size);
        let start = offset as usize % self.size;
        if first == last {
            return Some(&self.chunks[first][start..start + len]);
        }
        if (last - first + 1) * self.size <= JOIN_BYTES {
            let run = self.runs[first].get_or_init(|| {
                self.made.lock().push(first);
                self.joins.join(first, &self.chunks[first..=last])
            });
            if let Some(piece) = run.get(start..start + len) {
                return Some(piece);
            }
        }
        let joined = self.joined.get_or_init(|| {
            let mut whole = Chunks::new(self.size);
            whole.chunks = self.chunks.clone();
            whole.len = self.len;
            whole.to_bytes()
        });
        Some(&joined[offset as usize..end as usize])
    }

    fn rebind(&self, slice: &[u8]) -> Option<&[u8]> {
        let address = slice.as_ptr() as usize;
        if let Some(same) = self.joined.get().and_then(|j| rebind_in(j, slice)) {
            return Some(same);
        }
        let made = self.made.lock().clone();
        let mut runs = made.iter().filter_map(|&i| self.runs[i].get());
        if let Some(same) = runs.find_map(|run| rebind_in(run, slice)) {
            return Some(same);
        }
        let index = self.by_address.get_or_init(|| {
            let mut index: Vec<(usize, usize)> = (self.chunks.iter().enumerate())
                .map(|(i, c)| (c.as_ptr() as usize, i))
                .collect();
            index.sort_unstable();
            index
        });
        // The chunk with the greatest address not above the slice's is the only candidate.
        let at = index.partition_point(|&(start, _)| start <= address);
        let (_, chunk) = *index.get(at.checked_sub(1)?)?;
        rebind_in(&self.chunks[chunk], slice)
    }
}

impl Storage for MemStorage {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let state = self.state.lock();
        let end = offset.checked_add(buf.len() as u64);
        if !matches!(end, Some(end) if end <= state.len) {
            return Err(past_end(offset, buf.len(), state.len));
        }
        Chunks::pieces(state.size, offset, buf.len(), |index, range, done| {
            buf[done..done + range.len()].copy_from_slice(&state.chunks[index][range]);
        });
        Ok(())
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock();
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "write past u64"))?;
        if state.len < end {
            state.resize(end);
        }
        let Chunks {
            chunks, size, zero, ..
        } = &mut *state;
        Chunks::pieces(*size, offset, data.len(), |index, range, done| {
            let piece = &data[done..done + range.len()];
            if Arc::ptr_eq(&chunks[index], zero) && piece == &zero[..piece.len()] {
                return; // Zeros over zeros: the shared chunk already says it.
            }
            let chunk = &mut chunks[index];
            if range.len() == chunk.len() && Arc::strong_count(chunk) > 1 {
                // A view or a fork shares the chunk and the write covers it: a new chunk of
                // the written bytes, not a copy of the old one to overwrite.
                *chunk = Arc::new(piece.to_vec());
            } else {
                // Copies the chunk only when a view or a fork still shares it.
                Arc::make_mut(chunk)[range].copy_from_slice(piece);
            }
        });
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.state.lock().resize(len);
        Ok(())
    }

    fn view(&self, len: u64) -> io::Result<Arc<dyn View>> {
        let state = self.state.lock();
        if len > state.len {
            return Err(past_end(0, len as usize, state.len));
        }
        let count = state.count_for(len);
        Ok(Arc::new(MemView {
            chunks: state.chunks[..count].to_vec(),
            len,
            size: state.size,
            runs: (0..count).map(|_| OnceLock::new()).collect(),
            made: Mutex::new(Vec::new()),
            joins: self.joins.clone(),
            joined: OnceLock::new(),
            by_address: OnceLock::new(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_view_never_changes_and_straddling_reads_join() {
        let s = MemStorage::new();
        s.write_at(CHUNK as u64 - 2, &[1, 2, 3, 4]).unwrap();
        let v = s.view(CHUNK as u64 + 2).unwrap();
        let fork = s.fork();
        s.write_at(CHUNK as u64 - 1, &[9, 9]).unwrap();
        assert_eq!(v.slice(CHUNK as u64 - 2, 4), Some(&[1, 2, 3, 4][..]));
        assert_eq!(v.slice(CHUNK as u64 - 2, 5), None);
        let page = v.slice(CHUNK as u64, 2).unwrap();
        assert_eq!(v.rebind(page), Some(&[3, 4][..]));
        let joined = v.slice(CHUNK as u64 - 1, 2).unwrap();
        assert_eq!(v.rebind(joined), Some(&[2, 3][..]));
        assert_eq!(v.rebind(&[2, 3]), None);
        assert!(!s.same_bytes(&fork));
        assert_eq!(fork.to_bytes()[CHUNK - 1..], [2, 3, 4]);
    }

    #[test]
    fn small_chunks_join_reads_over_many_and_copy_only_what_is_written() {
        let s = MemStorage::with_chunk_size(512);
        let bytes: Vec<u8> = (0..2000u32).map(|i| (i % 251) as u8).collect();
        s.write_at(100, &bytes).unwrap();
        let v = s.view(2100).unwrap();
        s.write_at(600, &[0xAA; 10]).unwrap();
        // The first straddling read from chunk 0 joins chunks 0 and 1; a longer one from
        // the same chunk is served from the whole view.
        assert_eq!(v.slice(100, 500), Some(&bytes[..500]));
        assert_eq!(v.slice(100, 2000), Some(&bytes[..]));
        let joined = v.slice(1000, 100).unwrap();
        assert_eq!(v.rebind(joined), Some(&bytes[900..1000]));
        let now = s.view(2100).unwrap();
        assert_eq!(now.slice(600, 10), Some(&[0xAA; 10][..]));
        assert_eq!(now.slice(500, 100), Some(&bytes[400..500]));
        let fork = s.fork();
        s.write_at(2000, &[1]).unwrap();
        assert!(!s.same_bytes(&fork));
        assert_eq!(fork.to_bytes()[610..2100], bytes[510..]);
    }

    #[test]
    fn a_shrink_zeroes_what_a_growth_exposes_again() {
        let s = MemStorage::from_bytes(vec![7; CHUNK + 10]);
        s.set_len(5).unwrap();
        s.set_len(CHUNK as u64 * 2).unwrap();
        let mut buf = [1u8; 3];
        s.read_at(4, &mut buf).unwrap();
        assert_eq!(buf, [7, 0, 0]);
        assert!(s.read_at(CHUNK as u64 * 2 - 1, &mut buf).is_err());
        assert_eq!(s.to_bytes().len(), CHUNK * 2);
        assert!(s.same_bytes(&s.fork()));
    }

    #[test]
    fn a_fingerprint_sees_every_write_and_costs_no_copy() {
        let s = MemStorage::with_chunk_size(512);
        s.write_at(0, &[5; 1500]).unwrap();
        let print = s.fingerprint();
        assert!(s.unchanged_since(&print));
        let _ = s.view(1500).unwrap();
        let fork = s.fork();
        assert!(s.unchanged_since(&print) && fork.unchanged_since(&print));
        // A write of equal bytes counts; the fork keeps what it had.
        s.write_at(700, &[5]).unwrap();
        assert!(!s.unchanged_since(&print) && fork.unchanged_since(&print));
        // With no fork or view holding the chunk, a write changes it in place: the weak
        // reference still tells.
        drop(fork);
        let print = s.fingerprint();
        let before = Arc::strong_count(&s.state.lock().chunks[2]);
        s.write_at(1100, &[6]).unwrap();
        assert_eq!(before, 1);
        assert!(!s.unchanged_since(&print));
        let print = s.fingerprint();
        s.set_len(1024).unwrap();
        assert!(!s.unchanged_since(&print));
        let print = s.fingerprint();
        s.set_len(1600).unwrap();
        assert!(!s.unchanged_since(&print));
    }
}
