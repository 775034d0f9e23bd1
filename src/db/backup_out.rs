//! The writing side of a backup: pages appended in order to an empty storage through one
//! large buffer, trees built bottom-up from sorted entries, the free map of a file without a
//! free page, and the meta.
//!
//! Invariants:
//! - Page ids are handed out in the order pages are appended, from the first data page on,
//!   with no gap: every page of the file is written once, and writes are sequential.
//! - A page's checksum is taken when it is appended, after its id is set, and no page is
//!   changed afterwards.
//! - The free map has no bitmap page (every directory entry is null with count 0) and there
//!   is no pending page: the file holds no free page.
//! - Nothing is durable until `finish` has written the meta and synced.

use crate::format::copy::{dir_page, NodeFill};
use crate::format::freemap::{bits_per_bitmap, dir_entries_per_page, DirEntry};
use crate::format::meta::{Meta, META_BYTES};
use crate::format::{self, PageId, Ptr, TxnId};
use crate::io::Storage;
use crate::Result;

/// Bytes gathered before one write: large sequential writes are what a disk does fastest.
const BUFFER_BYTES: usize = 8 << 20;

/// Pages appended in id order to an empty storage.
pub(crate) struct PageOut<'a> {
    storage: &'a dyn Storage,
    page_size: usize,
    /// The id the next appended page gets.
    next: u64,
    /// Appended pages not yet written; they start at page `buffered_from`.
    buffer: Vec<u8>,
    buffered_from: u64,
}

impl<'a> PageOut<'a> {
    /// Appends to `storage` (which must be empty) from the first data page on.
    pub(crate) fn new(storage: &'a dyn Storage, page_size: usize) -> PageOut<'a> {
        let first = format::first_data_page(page_size);
        PageOut {
            storage,
            page_size,
            next: first,
            buffer: Vec::with_capacity(BUFFER_BYTES + page_size),
            buffered_from: first,
        }
    }

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
        self.buffer.resize(at + self.page_size, 0);
        let page = &mut self.buffer[at..];
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
        self.buffer.extend_from_slice(bytes);
        self.buffer
            .resize(at + (pages as usize) * self.page_size, 0);
        self.next += pages;
        self.flush_if_full()?;
        Ok(id)
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.buffer.len() >= BUFFER_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if !self.buffer.is_empty() {
            let offset = self.buffered_from * self.page_size as u64;
            self.storage.write_at(offset, &self.buffer)?;
            self.buffer.clear();
        }
        self.buffered_from = self.next;
        Ok(())
    }

    /// Builds a tree, born in `txn`, holding `entries` (keys strictly increasing, values
    /// inline) in full nodes, and returns its root (null when there is no entry).
    pub(crate) fn build_tree(&mut self, entries: &[(Vec<u8>, Vec<u8>)], txn: u64) -> Result<Ptr> {
        let ps = self.page_size;
        // Each level as (first key, pointer) per node: what the level above points at.
        let mut level: Vec<(Vec<u8>, Ptr)> = Vec::new();
        let mut fill = NodeFill::new(ps, 0, txn);
        let mut first: Option<&[u8]> = None;
        // Bounded: one step per entry.
        for (key, value) in entries {
            if !fill.push_leaf(key, value) {
                let full = std::mem::replace(&mut fill, NodeFill::new(ps, 0, txn));
                level.push((
                    first.unwrap_or_default().to_vec(),
                    self.push_fill(full, txn)?,
                ));
                assert!(fill.push_leaf(key, value), "an entry fits an empty node");
                first = None;
            }
            first.get_or_insert(key);
        }
        if fill.count() > 0 {
            level.push((
                first.unwrap_or_default().to_vec(),
                self.push_fill(fill, txn)?,
            ));
        }
        // Bounded: each round divides the nodes by at least two (three entries fit a node),
        // so at most MAX_DEPTH rounds.
        let mut height = 0u8;
        while level.len() > 1 {
            height += 1;
            level = self.branch_level(&level, height, txn)?;
        }
        Ok(level.pop().map_or(Ptr::default(), |(_, ptr)| ptr))
    }

    /// One level of branches over `children`; returns the level as (first key, pointer).
    fn branch_level(
        &mut self,
        children: &[(Vec<u8>, Ptr)],
        height: u8,
        txn: u64,
    ) -> Result<Vec<(Vec<u8>, Ptr)>> {
        let mut out = Vec::new();
        let mut fill = NodeFill::new(self.page_size, height, txn);
        let mut first: &[u8] = &[];
        // Bounded: one step per child.
        for (key, child) in children {
            // A node's first entry has the empty key (−∞); its least key moves up instead.
            let entry_key: &[u8] = if fill.count() == 0 { &[] } else { key };
            if !fill.push_branch(entry_key, *child) {
                let full = std::mem::replace(&mut fill, NodeFill::new(self.page_size, height, txn));
                out.push((first.to_vec(), self.push_fill(full, txn)?));
                assert!(fill.push_branch(&[], *child), "an entry fits an empty node");
            }
            if fill.count() == 1 {
                first = key;
            }
        }
        out.push((first.to_vec(), self.push_fill(fill, txn)?));
        Ok(out)
    }

    fn push_fill(&mut self, fill: NodeFill, txn: u64) -> Result<Ptr> {
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

    /// Writes what is buffered and the meta region (`meta` in slot 0, slot 1 empty), then
    /// syncs: the file is complete and durable.
    pub(crate) fn finish(mut self, meta: &Meta) -> Result<()> {
        self.flush()?;
        let mut region =
            vec![0u8; (format::first_data_page(self.page_size) as usize) * self.page_size];
        region[..META_BYTES].copy_from_slice(&meta.encode());
        self.storage.write_at(0, &region)?;
        self.storage.sync()?;
        Ok(())
    }
}
