//! Opening a file: creating it, choosing the meta slot, and checking only what the newest
//! commit wrote.
//!
//! Invariants:
//! - A failed open never writes to the file. A successful one writes only to retire a newer
//!   meta that failed verification (overwritten by the chosen one, then synced); a read-only
//!   one (`Options::read_only`) writes nothing at all and leaves that meta where it is (no
//!   commit can follow, so it can never be mistaken for a later one).
//! - The chosen meta is the newest whose checksum holds and whose pages born after its
//!   `durable_txn` all verify; the walk descends only into pointers born after that txn, so
//!   it costs what the unsynced commits wrote, never the whole file. It is a visitor over
//!   `btree::traverse` and reads chains through `pager::chain`, which bound it.

use crate::btree;
use crate::btree::traverse::{traverse, Child, Edge, Enter, TreeKind, Visitor};
use crate::format::freemap::{DirEntry, PendingEntry};
use crate::format::meta::{Meta, MetaError, MAGIC, META_BYTES};
use crate::format::node::NodeView;
use crate::format::{self, tag, Ptr, FORMAT_VERSION, META_SLOT_BYTES};
use crate::io::Storage;
use crate::pager::chain::Chain;
use crate::pager::{ReadPages, SearchStarts};
use crate::txn::commit::MAX_CHAIN;
use crate::txn::Committed;
use crate::{Error, Result};
use std::sync::Arc;

/// Writes the first meta of a new, empty file and syncs it.
pub fn create(storage: &dyn Storage, page_size: usize) -> Result<()> {
    let meta = Meta {
        page_size: page_size as u32,
        txn: 0,
        durable_txn: 0,
        file_pages: format::first_data_page(page_size),
        ..Meta::default()
    };
    let mut region = vec![0u8; (meta.file_pages as usize) * page_size];
    region[..META_BYTES].copy_from_slice(&meta.encode());
    storage.write_at(0, &region)?;
    storage.sync()?;
    Ok(())
}

/// Reads both slots and returns the state to open, verified, and the highest txn id any meta
/// with a valid checksum carries (a slot's, or a link's of the chain that slot starts). New
/// commits must number above that id: a newer meta that failed verification stays where it
/// is until overwritten, and it must never verify later (a redo could rewrite its missing
/// pages byte for byte if it reused its txn ids). With `read_only`, nothing is written (see
/// the module's invariants).
pub fn recover(storage: &dyn Storage, verify: bool, read_only: bool) -> Result<(Committed, u64)> {
    let len_bytes = storage.len()?;
    let mut slots = read_slots(storage, len_bytes)?;
    slots.sort_by_key(|(_, m)| std::cmp::Reverse(m.txn));
    let mut highest_txn = slots.first().map_or(0, |(_, m)| m.txn);
    let mut first_error = None;
    for &(slot, meta) in &slots {
        let links = read_links(storage, len_bytes, &meta)?;
        highest_txn = highest_txn.max(links.last().map_or(0, |(_, link)| link.txn));
        match choose(storage, len_bytes, slot, meta, &links, verify)? {
            Ok(state) => {
                let rejected = Rejected {
                    slot: slots
                        .iter()
                        .any(|(s, m)| *s != slot && m.txn > state.meta.txn),
                    link: links.len() > state.chain.len(),
                };
                if !read_only {
                    retire(storage, &state, &meta, rejected)?;
                }
                return Ok((state, highest_txn));
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or_else(|| Error::NotADatabase {
        reason: "no meta slot holds a valid checksum".into(),
    }))
}

/// The meta slots whose checksum holds and whose fields make sense, or the error for a file
/// of another version, a cut one, or one that is not a database.
fn read_slots(storage: &dyn Storage, len_bytes: u64) -> Result<Vec<(u8, Meta)>> {
    let mut slots: Vec<(u8, Meta)> = Vec::new();
    let mut unsupported = None;
    let mut damaged_version = None;
    let mut magic_seen = false;
    for slot in 0..2u8 {
        let at = slot as u64 * META_SLOT_BYTES as u64;
        if len_bytes < at + META_BYTES as u64 {
            continue;
        }
        let mut bytes = [0u8; META_BYTES];
        storage.read_at(at, &mut bytes)?;
        match Meta::decode(&bytes) {
            Ok(meta) if meta.is_sound() => {
                magic_seen = true;
                slots.push((slot, meta));
            }
            Ok(_) | Err(MetaError::BadChecksum) => magic_seen = true,
            Err(MetaError::BadVersion { found, checksum_ok }) => {
                magic_seen = true;
                // A genuine other version wins; a damaged version field is a torn slot,
                // unless no slot is readable at all.
                if checksum_ok {
                    unsupported = Some(found);
                } else {
                    damaged_version.get_or_insert(found);
                }
            }
            Err(MetaError::BadMagic) => {}
        }
    }
    if slots.is_empty() {
        unsupported = unsupported.or(damaged_version);
    }
    if let Some(found) = unsupported {
        return Err(Error::UnsupportedVersion {
            found,
            supported: FORMAT_VERSION,
        });
    }
    if !magic_seen {
        return Err(not_a_database(storage, len_bytes));
    }
    Ok(slots)
}

/// The error for a file without the magic in any slot: cut inside the first meta, or not a
/// database at all.
fn not_a_database(storage: &dyn Storage, len_bytes: u64) -> Error {
    let mut head = vec![0u8; (len_bytes as usize).min(MAGIC.len())];
    if let Err(e) = storage.read_at(0, &mut head) {
        return Error::Io(e);
    }
    if len_bytes < META_BYTES as u64 && !head.is_empty() && MAGIC.starts_with(&head) {
        return Error::Truncated {
            len_bytes,
            needed_bytes: META_BYTES as u64,
        };
    }
    Error::NotADatabase {
        reason: "no valid meta slot carries the shadowkv magic".into(),
    }
}

/// The newest state of the chain a slot starts (its meta `anchor`, then `links`) whose
/// commit verifies: `Ok(Err(e))` when none does (the caller tries the other slot), `Err`
/// when the open must fail. Only the state chosen is verified, as a slot's always was: what
/// it reaches was durable before its `durable_txn` and is verified after it; and the pages
/// of a durable state are never reused before a newer state is durable, which then verifies.
///
/// The newest state must fit the file: growth is made durable before any meta refers to it,
/// so no crash leaves a valid meta pointing past the end, and the file was cut short
/// (`Truncated`, with no fallback). An older one may not: a later durable commit shrank the
/// file, and it is chosen, never an older one.
fn choose(
    storage: &dyn Storage,
    len_bytes: u64,
    slot: u8,
    anchor: Meta,
    links: &[(u64, Meta)],
    verify: bool,
) -> Result<Result<Committed>> {
    let page_size = anchor.page_size as usize;
    let mut first_error = None;
    // Bounded: one round per link, and the anchor.
    for n in (0..=links.len()).rev() {
        let meta = if n == 0 { anchor } else { links[n - 1].1 };
        let needed_bytes = meta.file_pages.saturating_mul(page_size as u64);
        if needed_bytes > len_bytes {
            let truncated = Error::Truncated {
                len_bytes,
                needed_bytes,
            };
            if n == links.len() {
                return Err(truncated);
            }
            first_error.get_or_insert(truncated);
            continue;
        }
        let pages = ReadPages::new(storage.view(needed_bytes)?, needed_bytes, page_size, verify);
        if let Err(e) = verify_commit(&pages, &meta) {
            first_error.get_or_insert(e);
            continue;
        }
        let main = crate::txn::roots::main_record(&pages, meta.roots)?;
        let chain = links[..n]
            .iter()
            .map(|(id, link)| (*id, link.txn))
            .collect();
        return Ok(Ok(Committed {
            meta,
            slot,
            pages,
            main,
            starts: SearchStarts::default(),
            chain: Arc::new(chain),
        }));
    }
    Ok(Err(first_error.expect("the anchor was tried")))
}

/// Newer metas than the chosen state's whose checksums hold but whose commits failed
/// verification.
struct Rejected {
    /// The other slot holds one.
    slot: bool,
    /// A link of the chosen state's chain follows it.
    link: bool,
}

/// Retires the rejected metas: none may verify later (a redo could rewrite its missing
/// sectors byte for byte), so, durably and before anything else runs, the chosen state's
/// `anchor` overwrites a rejected slot (both slots then start the chain that reaches the
/// chosen state, until the next anchor writes the other one), and zeros overwrite the meta of
/// the first rejected link (the meta page the chosen state names, so the rejected links
/// behind it are out of reach; the next commit writes its own meta there).
fn retire(
    storage: &dyn Storage,
    state: &Committed,
    anchor: &Meta,
    rejected: Rejected,
) -> Result<()> {
    if rejected.link {
        let at = state.meta.next_meta * state.meta.page_size as u64;
        storage.write_at(at, &[0u8; META_BYTES])?;
    }
    if rejected.slot {
        let other = 1 - state.slot;
        storage.write_at(other as u64 * META_SLOT_BYTES as u64, &anchor.encode())?;
    }
    if rejected.slot || rejected.link {
        storage.sync()?;
    }
    Ok(())
}

/// The links of the chain after `anchor`, oldest first: the meta page each meta names, while
/// that page holds a meta that links to it (its `prev_checksum`, a higher txn, the same page
/// size) and is sound (`Meta::is_sound`; its file may be longer than the file: see
/// `choose`). At most
/// [`MAX_CHAIN`].
fn read_links(storage: &dyn Storage, len_bytes: u64, anchor: &Meta) -> Result<Vec<(u64, Meta)>> {
    let page_size = anchor.page_size as usize;
    let mut links: Vec<(u64, Meta)> = Vec::new();
    let mut last = *anchor;
    // Bounded: a chain holds at most MAX_CHAIN links.
    while links.len() < MAX_CHAIN && last.next_meta != 0 {
        let id = last.next_meta;
        let inside = id
            .checked_mul(page_size as u64)
            .filter(|at| at.saturating_add(page_size as u64) <= len_bytes);
        let Some(at) = inside else {
            // Past the end: a damaged meta, or past a cut (the states that cut the file name
            // no page there).
            break;
        };
        let mut bytes = [0u8; META_BYTES];
        storage.read_at(at, &mut bytes)?;
        let Ok(meta) = Meta::decode(&bytes) else {
            break;
        };
        let linked = meta.prev_checksum == last.checksum()
            && meta.txn > last.txn
            && meta.page_size == last.page_size
            && meta.is_sound();
        if !linked {
            break;
        }
        links.push((id, meta));
        last = meta;
    }
    Ok(links)
}

/// Verifies every page born after `meta.durable_txn`.
pub fn verify_commit(pages: &ReadPages, meta: &Meta) -> Result<()> {
    let after = meta.durable_txn;
    if meta.txn == 0 {
        return Ok(());
    }
    let mut unsynced = Unsynced { pages, after };
    for (root, kind) in [
        (meta.roots, TreeKind::Roots),
        (meta.refcounts, TreeKind::Refs),
        (meta.release, TreeKind::Release),
    ] {
        traverse(pages, root, kind, &mut unsynced)?;
    }
    // Bounded: `Chain` bounds each chain's length and each page's entries.
    for page in Chain::<DirEntry>::new(pages, meta.free_dir, tag::FREE_DIR, true).born_after(after)
    {
        for entry in page?.entries() {
            let bitmap: Ptr = entry.bitmap.into();
            if !bitmap.is_null() && bitmap.txn.0 > after {
                pages.tagged(bitmap, &[tag::BITMAP], true)?;
            }
        }
    }
    for page in
        Chain::<PendingEntry>::new(pages, meta.pending, tag::PENDING, true).born_after(after)
    {
        page?;
    }
    Ok(())
}

/// The walk of recovery: it descends only into pointers born after `after`, the pages the
/// unsynced commits wrote, and verifies each one's checksum.
struct Unsynced<'p> {
    pages: &'p ReadPages,
    after: u64,
}

impl<'p> Visitor<'p, ReadPages> for Unsynced<'p> {
    type Out = ();

    fn enter(&mut self, edge: &Edge<'p>) -> Result<Enter<()>> {
        let synced = edge.ptr.is_null() || edge.ptr.txn.0 <= self.after;
        Ok(if synced {
            Enter::Skip(())
        } else {
            Enter::Descend
        })
    }

    fn read(&mut self, src: &'p ReadPages, edge: &Edge<'p>) -> Result<NodeView<'p>> {
        src.tagged(edge.ptr, &[tag::LEAF, tag::BRANCH], true)?;
        btree::node_at(src, edge.ptr, edge.level)
    }

    fn overflow(&mut self, edge: &Edge<'p>, len: u64) -> Result<()> {
        self.pages.overflow_checked(edge.ptr, len, true).map(|_| ())
    }

    fn leave(&mut self, _: &Edge<'p>, _: &NodeView<'p>, _: Vec<(Child, ())>) -> Result<()> {
        Ok(())
    }
}
