//! The writing side of a backup: pages appended in order to an empty storage in large
//! chunks, which a second thread writes and syncs while the walk goes on; trees built
//! bottom-up from sorted entries; the free map of a file without a free page; and the meta.
//!
//! Invariants:
//! - Page ids are handed out in the order pages are appended, from the first data page on,
//!   with no gap: every page of the file is written once, and writes are sequential.
//! - A page's checksum is taken when it is appended, after its id is set, and no page is
//!   changed afterwards.
//! - The free map has no bitmap page (every directory entry is null with count 0) and there
//!   is no pending page: the file holds no free page.
//! - A tree is built by `btree::build::TreeBuilder` from its entries in key order, each node
//!   appended as it fills ([`NodeSink`]).
//! - At most [`CHUNKS`] chunks exist at once, so memory stays bounded whatever the file size.
//! - Nothing is complete until [`write_file`] has written the meta after every page and
//!   synced; a failure of either thread stops both and is returned.

use crate::btree::build::NodeSink;
use crate::format::copy::{dir_page, NodeFill};
use crate::format::freemap::{bits_per_bitmap, dir_entries_per_page, DirEntry};
use crate::format::meta::{Meta, META_BYTES};
use crate::format::node::LeafValue;
use crate::format::{self, PageId, Ptr, TxnId};
use crate::io::Storage;
use crate::{Error, Result};
use bytemuck::{Pod, Zeroable};
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};

/// The unit of the chunks: 4096 bytes aligned to 4096, so that a file opened for direct I/O
/// can take a chunk as it is (every page size is a multiple of it).
#[repr(C, align(4096))]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Block([u8; BLOCK]);
const BLOCK: usize = 4096;

/// Bytes gathered before one write: large sequential writes are what a disk does fastest.
const CHUNK_BYTES: usize = 8 << 20;
/// Chunks in memory at once: the one being filled, two queued, one being written.
const CHUNKS: usize = 4;
/// Bytes written between two syncs of the writer thread. The disk then works while the walk
/// goes on, instead of taking the whole file at the final sync.
const SYNC_BYTES: usize = 32 << 20;

/// Writes a new file to `storage` (which must be empty): `build` appends its pages and
/// returns its meta, which is written last, before one final sync.
pub(crate) fn write_file(
    storage: &dyn Storage,
    page_size: usize,
    build: impl FnOnce(&mut PageOut) -> Result<Meta>,
) -> Result<()> {
    std::thread::scope(|scope| {
        let (full_tx, full_rx) = sync_channel(CHUNKS - 2);
        let (empty_tx, empty_rx) = channel();
        let writer = std::thread::Builder::new()
            .name("shadowkv-backup".into())
            .spawn_scoped(scope, move || write_chunks(storage, full_rx, empty_tx))?;
        let first = format::first_data_page(page_size);
        let mut out = PageOut {
            page_size,
            next: first,
            buffer: chunk(page_size),
            buffered_from: first,
            chunks: 1,
            full: full_tx,
            empty: empty_rx,
        };
        let built = build(&mut out).and_then(|meta| out.flush().map(|()| meta));
        drop(out);
        let written = writer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        // The writer's own error explains a walk that stopped because the writer had.
        written?;
        let meta = built?;
        let mut region = vec![0u8; (format::first_data_page(page_size) as usize) * page_size];
        region[..META_BYTES].copy_from_slice(&meta.encode());
        storage.write_at(0, &region)?;
        storage.sync()?;
        Ok(())
    })
}

/// The writer thread: writes each chunk where it belongs and syncs every [`SYNC_BYTES`].
/// Bounded: it ends when the walk drops its sender (or at the first error).
fn write_chunks(
    storage: &dyn Storage,
    full: Receiver<(u64, Vec<Block>)>,
    empty: Sender<Vec<Block>>,
) -> Result<()> {
    let mut unsynced = 0;
    for (offset, chunk) in full {
        let bytes: &[u8] = bytemuck::cast_slice(&chunk);
        storage.write_at(offset, bytes)?;
        unsynced += bytes.len();
        if unsynced >= SYNC_BYTES {
            storage.sync()?;
            unsynced = 0;
        }
        // The walk may be done and gone: then the chunk is simply dropped.
        let _ = empty.send(chunk);
    }
    Ok(())
}

/// Pages appended in id order; full chunks go to the writer thread.
pub(crate) struct PageOut {
    page_size: usize,
    /// The id the next appended page gets.
    next: u64,
    /// Appended pages not yet handed to the writer; they start at page `buffered_from`.
    buffer: Vec<Block>,
    buffered_from: u64,
    /// Chunks allocated so far (at most [`CHUNKS`]).
    chunks: usize,
    full: SyncSender<(u64, Vec<Block>)>,
    /// Chunks the writer is done with, for reuse.
    empty: Receiver<Vec<Block>>,
}

/// An empty chunk with room for a full chunk and one more page.
fn chunk(page_size: usize) -> Vec<Block> {
    Vec::with_capacity((CHUNK_BYTES + page_size) / BLOCK)
}

impl PageOut {
    /// Pages of the file so far, meta region included.
    pub(crate) fn file_pages(&self) -> u64 {
        self.next
    }

    /// Appends one page that `fill` writes (given a zeroed page and its id), and returns its
    /// id and checksum.
    pub(crate) fn push_page(
        &mut self,
        fill: impl FnOnce(&mut [u8], u64) -> Result<()>,
    ) -> Result<(u64, u32)> {
        let id = self.next;
        let at = self.buffer.len();
        self.buffer
            .resize(at + self.page_size / BLOCK, Block::zeroed());
        let page: &mut [u8] = bytemuck::cast_slice_mut(&mut self.buffer[at..]);
        if let Err(e) = fill(page, id) {
            self.buffer.truncate(at);
            return Err(e);
        }
        let crc = format::checksum(page);
        self.next += 1;
        self.flush_if_full()?;
        Ok((id, crc))
    }

    /// Appends an overflow run holding `bytes` (zero-padded to whole pages); returns its
    /// first page.
    pub(crate) fn push_run(&mut self, bytes: &[u8]) -> Result<u64> {
        let id = self.next;
        let pages = crate::pager::overflow_pages(bytes.len() as u64, self.page_size);
        let at = self.buffer.len();
        let blocks = (pages as usize) * self.page_size / BLOCK;
        self.buffer.resize(at + blocks, Block::zeroed());
        let run: &mut [u8] = bytemuck::cast_slice_mut(&mut self.buffer[at..]);
        run[..bytes.len()].copy_from_slice(bytes);
        self.next += pages;
        self.flush_if_full()?;
        Ok(id)
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.buffer.len() * BLOCK >= CHUNK_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Hands the buffered pages to the writer thread and starts a new chunk: one the writer
    /// is done with, or a new one while fewer than [`CHUNKS`] exist.
    fn flush(&mut self) -> Result<()> {
        if !self.buffer.is_empty() {
            // A closed channel means the writer stopped on an error, which `write_file`
            // reports in place of this one.
            let stopped = || Error::Io(std::io::Error::other("the backup writer stopped"));
            let mut next = match self.empty.try_recv() {
                Ok(chunk) => chunk,
                Err(_) if self.chunks < CHUNKS => {
                    self.chunks += 1;
                    chunk(self.page_size)
                }
                Err(_) => self.empty.recv().map_err(|_| stopped())?,
            };
            next.clear();
            let full = std::mem::replace(&mut self.buffer, next);
            let offset = self.buffered_from * self.page_size as u64;
            self.full.send((offset, full)).map_err(|_| stopped())?;
        }
        self.buffered_from = self.next;
        Ok(())
    }

    /// Builds a tree, born in `txn`, holding `entries` (keys strictly increasing, values
    /// inline) in full nodes, and returns its root (null when there is no entry).
    pub(crate) fn build_tree(&mut self, entries: &[(Vec<u8>, Vec<u8>)], txn: u64) -> Result<Ptr> {
        if entries.is_empty() {
            return Ok(Ptr::default());
        }
        let mut tree = crate::btree::build::TreeBuilder::new(self.page_size, txn);
        // Bounded: one step per entry.
        for (key, value) in entries {
            tree.push(self, key, LeafValue::Inline(value))?;
        }
        tree.finish(self)
    }

    /// Appends the free map of a file with no free page: directory pages, born in `txn`,
    /// whose entries cover the whole file (their own pages included) and are all null.
    /// Returns the head of the directory chain.
    pub(crate) fn free_map(&mut self, txn: u64) -> Result<Ptr> {
        let bits = bits_per_bitmap(self.page_size);
        let per_page = dir_entries_per_page(self.page_size) as u64;
        let mut dir_pages = 1u64;
        // Bounded: the count only grows, and one directory page covers more pages than it
        // adds, so it settles within two rounds.
        loop {
            let need = (self.next + dir_pages).div_ceil(bits).div_ceil(per_page);
            if need <= dir_pages {
                break;
            }
            dir_pages = need;
        }
        let entries = vec![DirEntry::default(); (self.next + dir_pages).div_ceil(bits) as usize];
        let first = self.next;
        // Each page points at the next one, so the chain is encoded last page first.
        let mut pages = Vec::new();
        let mut next = Ptr::default();
        for i in (0..dir_pages).rev() {
            let chunk = entries
                .chunks(per_page as usize)
                .nth(i as usize)
                .unwrap_or(&[]);
            let page = dir_page(self.page_size, first + i, txn, chunk, next);
            next = Ptr {
                page: PageId(first + i),
                txn: TxnId(txn),
                crc: format::checksum(&page),
            };
            pages.push(page);
        }
        for page in pages.iter().rev() {
            self.push_page(|out, _| {
                out.copy_from_slice(page);
                Ok(())
            })?;
        }
        Ok(next)
    }
}

/// Each finished node is appended, its checksum taken then.
impl NodeSink for PageOut {
    fn put_node(&mut self, fill: NodeFill) -> Result<Ptr> {
        let txn = fill.birth();
        let (id, crc) = self.push_page(|page, id| {
            page.copy_from_slice(&fill.finish(id));
            Ok(())
        })?;
        Ok(Ptr {
            page: PageId(id),
            txn: TxnId(txn),
            crc,
        })
    }
}
