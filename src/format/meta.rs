//! The meta: the root of everything, written to one of two slots (an anchor) or to a meta
//! page that the meta before it named (a link of the commit chain).
//!
//! Invariants:
//! - Slot 0 lives at byte 0 and slot 1 at byte 4096 whatever the page size; the newest slot
//!   whose checksum holds (and whose commit verifies) is where recovery starts, and it
//!   follows the chain from there (`db::recover`).
//! - A meta page holds one encoded meta at its start, zeros after it; it is linked to the
//!   meta before it by `prev_checksum`, and its txn is above that meta's.
//! - The checksum covers every byte before it; magic and version are checked first so that a
//!   foreign file or a newer format gets its own error.
//! - Every meta written fits its file ([`Meta::fits_its_file`], asserted by `encode`), and
//!   recovery takes a slot whose meta does not for a damaged one: the pair of checks.

use super::{Ptr, PtrDisk, U32Le, U64Le, FORMAT_VERSION};
use bytemuck::{Pod, Zeroable};

/// The first eight bytes of every shadowkv file.
pub const MAGIC: [u8; 8] = *b"SHADOWKV";

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct MetaDisk {
    magic: [u8; 8],
    version: U32Le,
    page_size: U32Le,
    txn: U64Le,
    durable_txn: U64Le,
    file_pages: U64Le,
    roots: PtrDisk,
    refcounts: PtrDisk,
    release: PtrDisk,
    free_dir: PtrDisk,
    pending: PtrDisk,
    free_count: U64Le,
    pending_count: U64Le,
    release_seq: U64Le,
    next_meta: U64Le,
    prev_checksum: U32Le,
    reserved: [u8; 4],
    checksum: U32Le,
}
/// Bytes of an encoded meta.
pub const META_BYTES: usize = 184;
const _: () = assert!(std::mem::size_of::<MetaDisk>() == META_BYTES);

/// The decoded meta: everything needed to find the committed state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Meta {
    /// Page size fixed at creation.
    pub page_size: u32,
    /// The transaction this meta commits.
    pub txn: u64,
    /// Every transaction up to this one was durable before this meta was written; recovery
    /// verifies the pages born after it.
    pub durable_txn: u64,
    /// The file holds this many pages.
    pub file_pages: u64,
    /// Root of the roots tree (snapshot or branch name → root record); null when empty.
    pub roots: Ptr,
    /// Root of the refcount tree (page id → count, for counts of 2 or more).
    pub refcounts: Ptr,
    /// Root of the release queue (sequence → pointer whose reference is being dropped).
    pub release: Ptr,
    /// Head of the free-map directory chain; null before the first commit.
    pub free_dir: Ptr,
    /// Head of the pending-free chain; null when nothing waits.
    pub pending: Ptr,
    /// Pages marked free in the free map.
    pub free_count: u64,
    /// Pages waiting in the pending chain.
    pub pending_count: u64,
    /// The next sequence number of the release queue.
    pub release_seq: u64,
    /// The page the next commit may write its meta to, a meta page (see
    /// docs/format.md, the commit chain), taken in this meta's free map; 0 when the next
    /// commit writes a slot.
    pub next_meta: u64,
    /// In a meta page: the checksum of the meta it follows (the link recovery checks); 0 in
    /// a slot.
    pub prev_checksum: u32,
}

/// Why a meta slot did not decode.
#[derive(Debug, Clone, PartialEq, Eq)]
// Each name says what was bad; the lint fires only while the enum is not exported (no testkit).
#[allow(clippy::enum_variant_names)]
pub enum MetaError {
    /// No magic: not a shadowkv file (or a slot never written).
    BadMagic,
    /// A format version this build does not read; `checksum_ok` says whether the slot's
    /// checksum (where this version keeps it) holds, i.e. whether the version is genuine.
    BadVersion {
        /// The version found.
        found: u32,
        /// Whether the checksum holds.
        checksum_ok: bool,
    },
    /// The checksum does not match (a torn or damaged slot).
    BadChecksum,
}

impl Meta {
    /// Encodes into a full slot image.
    pub fn encode(&self) -> [u8; META_BYTES] {
        // Before the write; recovery's checks of a meta it reads are the pair (`open_slot`).
        assert!(
            self.durable_txn <= self.txn,
            "a meta's durable txn is not after it"
        );
        assert!(
            self.fits_its_file(),
            "a meta's free and pending pages fit in its file and its pointers inside it"
        );
        let mut disk = MetaDisk {
            magic: MAGIC,
            version: U32Le::new(FORMAT_VERSION),
            page_size: U32Le::new(self.page_size),
            txn: U64Le::new(self.txn),
            durable_txn: U64Le::new(self.durable_txn),
            file_pages: U64Le::new(self.file_pages),
            roots: self.roots.into(),
            refcounts: self.refcounts.into(),
            release: self.release.into(),
            free_dir: self.free_dir.into(),
            pending: self.pending.into(),
            free_count: U64Le::new(self.free_count),
            pending_count: U64Le::new(self.pending_count),
            release_seq: U64Le::new(self.release_seq),
            next_meta: U64Le::new(self.next_meta),
            prev_checksum: U32Le::new(self.prev_checksum),
            reserved: [0; 4],
            checksum: U32Le::new(0),
        };
        let crc = super::checksum(&bytemuck::bytes_of(&disk)[..META_BYTES - 4]);
        disk.checksum = U32Le::new(crc);
        let mut out = [0u8; META_BYTES];
        out.copy_from_slice(bytemuck::bytes_of(&disk));
        out
    }

    /// Whether the free and pending pages fit in the file and every pointer lies inside it.
    /// [`encode`](Self::encode) asserts it; recovery refuses a slot whose meta breaks it (a
    /// damaged slot whose checksum holds), so a meta it chose can be written again.
    pub fn fits_its_file(&self) -> bool {
        let pointers = [
            self.roots,
            self.refcounts,
            self.release,
            self.free_dir,
            self.pending,
        ];
        self.free_count.saturating_add(self.pending_count) <= self.file_pages
            && (pointers.iter()).all(|ptr| ptr.is_null() || ptr.page.0 < self.file_pages)
            && self.next_meta < self.file_pages
    }

    /// Whether a meta whose checksum holds also makes sense: an allowed page size, a durable
    /// txn not after its txn, a file reaching past the meta region, and everything inside
    /// it ([`fits_its_file`](Self::fits_its_file)). Recovery takes no other meta, from a
    /// slot or from a meta page.
    pub fn is_sound(&self) -> bool {
        super::valid_page_size(self.page_size as usize)
            && self.durable_txn <= self.txn
            && self.file_pages >= super::first_data_page(self.page_size as usize)
            && self.fits_its_file()
    }

    /// Makes the checksum of the meta in the first [`META_BYTES`] of `bytes` hold again,
    /// whatever its fields say, so that tests can damage a field and reach the code that
    /// trusts it.
    #[cfg(feature = "testkit")]
    pub fn reseal(bytes: &mut [u8]) {
        let mut disk: MetaDisk = bytemuck::pod_read_unaligned(&bytes[..META_BYTES]);
        disk.checksum = U32Le::new(super::checksum(&bytes[..META_BYTES - 4]));
        bytes[..META_BYTES].copy_from_slice(bytemuck::bytes_of(&disk));
    }

    /// Decodes a slot; `bytes` must hold at least [`META_BYTES`].
    pub fn decode(bytes: &[u8]) -> Result<Meta, MetaError> {
        let disk: MetaDisk = bytemuck::pod_read_unaligned(&bytes[..META_BYTES]);
        if disk.magic != MAGIC {
            return Err(MetaError::BadMagic);
        }
        let crc_ok = super::checksum(&bytes[..META_BYTES - 4]) == disk.checksum.get();
        if disk.version.get() != FORMAT_VERSION {
            return Err(MetaError::BadVersion {
                found: disk.version.get(),
                checksum_ok: crc_ok,
            });
        }
        if !crc_ok {
            return Err(MetaError::BadChecksum);
        }
        Ok(Meta {
            page_size: disk.page_size.get(),
            txn: disk.txn.get(),
            durable_txn: disk.durable_txn.get(),
            file_pages: disk.file_pages.get(),
            roots: disk.roots.into(),
            refcounts: disk.refcounts.into(),
            release: disk.release.into(),
            free_dir: disk.free_dir.into(),
            pending: disk.pending.into(),
            free_count: disk.free_count.get(),
            pending_count: disk.pending_count.get(),
            release_seq: disk.release_seq.get(),
            next_meta: disk.next_meta.get(),
            prev_checksum: disk.prev_checksum.get(),
        })
    }

    /// The checksum `encode` writes: what the meta page that follows this meta links to.
    pub fn checksum(&self) -> u32 {
        let bytes = self.encode();
        u32::from_le_bytes(bytes[META_BYTES - 4..].try_into().expect("four bytes"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage() {
        let meta = Meta {
            page_size: 4096,
            txn: 7,
            durable_txn: 6,
            file_pages: 10,
            ..Meta::default()
        };
        let mut bytes = meta.encode();
        assert_eq!(Meta::decode(&bytes), Ok(meta));
        bytes[20] ^= 1;
        assert_eq!(Meta::decode(&bytes), Err(MetaError::BadChecksum));
        bytes[0] ^= 1;
        assert_eq!(Meta::decode(&bytes), Err(MetaError::BadMagic));
        assert_eq!(Meta::decode(&[0u8; META_BYTES]), Err(MetaError::BadMagic));
    }

    #[test]
    fn a_pointer_past_the_file_does_not_fit() {
        let mut meta = Meta {
            page_size: 4096,
            txn: 7,
            file_pages: 10,
            ..Meta::default()
        };
        assert!(meta.fits_its_file());
        meta.pending.page.0 = 10;
        assert!(!meta.fits_its_file());
        meta.pending = Ptr::default();
        meta.free_count = 6;
        meta.pending_count = 5;
        assert!(!meta.fits_its_file());
    }
}
