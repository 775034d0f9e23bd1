//! On-disk bytes only: little-endian scalars, page pointers, the page header, the meta slots,
//! node pages and the free-space pages. No I/O and no `unsafe` here.
//!
//! Invariants:
//! - Every on-disk integer is little-endian and fixed-width ([`U16Le`], [`U32Le`], [`U64Le`]),
//!   so every on-disk struct has alignment 1 and is read with `bytemuck` from any offset.
//! - Page tag 0 is invalid: a page of zeros never decodes.
//! - Every page pointer carries the child's id, its crc32c and the txn that wrote it.

pub mod copy;
pub mod counts;
pub mod freemap;
pub mod hint;
pub mod meta;
pub mod node;
pub mod records;
pub mod stream;

use bytemuck::{Pod, Zeroable};

/// The format version this build reads and writes.
pub const FORMAT_VERSION: u32 = 9;
/// Smallest and largest page sizes (both powers of two).
pub const MIN_PAGE_SIZE: usize = 4096;
/// See [`MIN_PAGE_SIZE`].
pub const MAX_PAGE_SIZE: usize = 65536;
/// The largest key, for every page size.
pub const MAX_KEY_LEN: usize = 1024;
/// The largest value (values past the inline limit live in overflow runs).
pub const MAX_VALUE_LEN: usize = 1 << 30;
/// Bytes at the start of the file holding the two meta slots (each 4096 bytes).
pub const META_REGION_BYTES: u64 = 8192;
/// Size of one meta slot.
pub const META_SLOT_BYTES: usize = 4096;

/// Identifies a page by its index in the file (offset = id × page size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PageId(pub u64);

/// Identifies a committed transaction; transaction ids grow by one per commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct TxnId(pub u64);

macro_rules! le_int {
    ($name:ident, $int:ty, $n:expr) => {
        /// A little-endian integer with alignment 1.
        #[repr(transparent)]
        #[derive(Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
        pub struct $name([u8; $n]);
        impl $name {
            /// Encodes `value`.
            pub fn new(value: $int) -> Self {
                $name(value.to_le_bytes())
            }
            /// Decodes the value.
            pub fn get(self) -> $int {
                <$int>::from_le_bytes(self.0)
            }
        }
        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.get().fmt(f)
            }
        }
    };
}
le_int!(U16Le, u16, 2);
le_int!(U32Le, u32, 4);
le_int!(U64Le, u64, 8);

/// In-memory form of a pointer to a page (or to an overflow run).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Ptr {
    /// The page pointed at.
    pub page: PageId,
    /// The transaction that wrote it (its birth).
    pub txn: TxnId,
    /// crc32c of the page (or of the overflow bytes).
    pub crc: u32,
}

/// On-disk form of [`Ptr`]: 20 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PtrDisk {
    page: U64Le,
    txn: U64Le,
    crc: U32Le,
}
const _: () = assert!(std::mem::size_of::<PtrDisk>() == PTR_BYTES);
/// Bytes of an on-disk pointer.
pub const PTR_BYTES: usize = 20;

impl From<Ptr> for PtrDisk {
    fn from(p: Ptr) -> Self {
        PtrDisk {
            page: U64Le::new(p.page.0),
            txn: U64Le::new(p.txn.0),
            crc: U32Le::new(p.crc),
        }
    }
}

impl From<PtrDisk> for Ptr {
    fn from(p: PtrDisk) -> Self {
        Ptr {
            page: PageId(p.page.get()),
            txn: TxnId(p.txn.get()),
            crc: p.crc.get(),
        }
    }
}

impl Ptr {
    /// Decodes a pointer from the first [`PTR_BYTES`] of `bytes`.
    pub fn decode(bytes: &[u8]) -> Ptr {
        (*bytemuck::from_bytes::<PtrDisk>(&bytes[..PTR_BYTES])).into()
    }
    /// Encodes this pointer into the first [`PTR_BYTES`] of `out`.
    pub fn encode(self, out: &mut [u8]) {
        out[..PTR_BYTES].copy_from_slice(bytemuck::bytes_of(&PtrDisk::from(self)));
    }
    /// The null pointer (page 0 is a meta page, so no tree points at it).
    pub fn is_null(self) -> bool {
        self.page.0 == 0
    }
}

/// Page tags. 0 is invalid so that a zeroed page never decodes.
pub mod tag {
    /// A B+tree leaf.
    pub const LEAF: u8 = 1;
    /// A B+tree branch.
    pub const BRANCH: u8 = 2;
    /// A page of the free-map directory chain.
    pub const FREE_DIR: u8 = 3;
    /// A free-map bitmap page.
    pub const BITMAP: u8 = 4;
    /// A page of the pending-free chain.
    pub const PENDING: u8 = 5;
}

/// The 64-byte header at the start of every tagged page.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, Pod, Zeroable)]
pub struct PageHeader {
    /// One of [`tag`]; 0 is invalid.
    pub tag: u8,
    /// Height above the leaves for tree pages (leaves are 0); 0 elsewhere.
    pub level: u8,
    /// Number of entries.
    pub count: U16Le,
    /// Node pages: offset of the lowest entry byte (entries grow down from the page end).
    pub free_end: U32Le,
    /// Node pages: bytes of dead entries between `free_end` and the end.
    pub garbage: U32Le,
    /// Zero.
    pub reserved: U32Le,
    /// The page's own id: a misdirected write is caught.
    pub page_id: U64Le,
    /// The transaction that wrote the page.
    pub txn: U64Le,
    /// Leaves with an edit hint (see [`hint`]): the id of the page this one was copied from;
    /// zero elsewhere.
    pub base_page: U64Le,
    /// Leaves with an edit hint: the birth txn of that page; zero when there is no hint.
    pub base_txn: U64Le,
    /// Leaves with an edit hint: bit `i % 128` is set for every entry `i` that may differ
    /// from the base's (two little-endian words, bits 0–63 first); zero elsewhere.
    pub changed: [U64Le; 2],
}
/// Bytes of [`PageHeader`].
pub const HEADER_BYTES: usize = 64;
const _: () = assert!(std::mem::size_of::<PageHeader>() == HEADER_BYTES);

impl PageHeader {
    /// Reads the header of `page` (which must hold at least [`HEADER_BYTES`]).
    pub fn read(page: &[u8]) -> PageHeader {
        *bytemuck::from_bytes(&page[..HEADER_BYTES])
    }
    /// Writes this header to the start of `page`.
    pub fn write(&self, page: &mut [u8]) {
        page[..HEADER_BYTES].copy_from_slice(bytemuck::bytes_of(self));
    }
}

/// crc32c of a page or a byte run.
pub fn checksum(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Checks a page read through a pointer: its checksum (when `verify`), its tag, its own id
/// and its birth txn. Returns the header.
#[inline]
pub fn check_page(
    page: &[u8],
    ptr: Ptr,
    verify: bool,
    want_tag: &[u8],
) -> crate::Result<PageHeader> {
    if verify && checksum(page) != ptr.crc {
        return Err(crate::Error::corrupted(ptr.page.0, "checksum mismatch"));
    }
    let header = PageHeader::read(page);
    if !want_tag.contains(&header.tag) {
        return Err(crate::Error::corrupted(
            ptr.page.0,
            format!("unexpected page tag {}", header.tag),
        ));
    }
    if header.page_id.get() != ptr.page.0 || header.txn.get() != ptr.txn.0 {
        return Err(crate::Error::corrupted(
            ptr.page.0,
            format!(
                "page header says page {} txn {}, pointer says page {} txn {}",
                header.page_id.get(),
                header.txn.get(),
                ptr.page.0,
                ptr.txn.0
            ),
        ));
    }
    Ok(header)
}

/// Whether `size` is an allowed page size.
pub fn valid_page_size(size: usize) -> bool {
    size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&size)
}

/// The first page id after the meta region.
pub fn first_data_page(page_size: usize) -> u64 {
    META_REGION_BYTES.div_ceil(page_size as u64)
}
