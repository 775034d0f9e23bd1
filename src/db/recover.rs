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
use crate::txn::Committed;
use crate::{Error, Result};

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

/// Reads both slots and returns the state to open, verified, and the highest txn id any slot
/// with a valid checksum carries. New commits must number above that id: a newer meta that
/// failed verification stays in its slot until overwritten, and it must never verify later
/// (a redo could rewrite its missing pages byte for byte if it reused its txn ids).
/// With `read_only`, nothing is written (see the module's invariants).
pub fn recover(storage: &dyn Storage, verify: bool, read_only: bool) -> Result<(Committed, u64)> {
    let len_bytes = storage.len()?;
    let mut slots = read_slots(storage, len_bytes)?;
    slots.sort_by_key(|(_, m)| std::cmp::Reverse(m.txn));
    let highest_txn = slots.first().map_or(0, |(_, m)| m.txn);
    let mut first_error = None;
    for (slot, meta) in slots {
        let retire = (!read_only).then_some(highest_txn);
        match open_slot(storage, len_bytes, slot, meta, verify, retire)? {
            Ok(committed) => return Ok((committed, highest_txn)),
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
            Ok(meta)
                if format::valid_page_size(meta.page_size as usize)
                    && meta.durable_txn <= meta.txn
                    && meta.file_pages >= format::first_data_page(meta.page_size as usize)
                    && meta.fits_its_file() =>
            {
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

/// The state of one slot's meta, verified: `Ok(Err(e))` when its commit fails verification
/// (the caller tries the other slot), `Err` when the open must fail. The other slot is
/// retired when `retire` is the highest txn of a slot and that is above `meta.txn` (`None`,
/// read-only: never).
fn open_slot(
    storage: &dyn Storage,
    len_bytes: u64,
    slot: u8,
    meta: Meta,
    verify: bool,
    retire: Option<u64>,
) -> Result<Result<Committed>> {
    let page_size = meta.page_size as usize;
    let needed_bytes = meta.file_pages.saturating_mul(page_size as u64);
    if needed_bytes > len_bytes {
        // Growth is made durable before any meta refers to it, so no crash leaves a valid
        // meta pointing past the end: the file was cut short.
        return Err(Error::Truncated {
            len_bytes,
            needed_bytes,
        });
    }
    let pages = ReadPages::new(storage.view(needed_bytes)?, needed_bytes, page_size, verify);
    if let Err(e) = verify_commit(&pages, &meta) {
        return Ok(Err(e));
    }
    let main = crate::txn::roots::main_record(&pages, meta.roots)?;
    if retire.is_some_and(|highest_txn| meta.txn < highest_txn) {
        // A newer meta with a valid checksum failed verification. It must never verify
        // later (a redo could rewrite its missing sectors byte for byte), so the chosen meta
        // overwrites it, durably, before anything else runs.
        let other = 1 - slot;
        storage.write_at(other as u64 * META_SLOT_BYTES as u64, &meta.encode())?;
        storage.sync()?;
    }
    Ok(Ok(Committed {
        meta,
        slot,
        pages,
        main,
        starts: SearchStarts::default(),
    }))
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
