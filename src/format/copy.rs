//! Page builders for writing a whole file in one pass (`Database::backup_to`): a node moved to
//! a new page with the pointers out of it replaced, a directory chain page, and the entries
//! of nodes filled in key order.
//!
//! Invariants:
//! - A moved node keeps its birth and every entry, key and record field byte for byte; only
//!   its own id and the pointers out of it change, and only once the page has validated.
//! - The pointers of a node are replaced in entry order, exactly as `btree::traverse::targets`
//!   lists them (every child of a branch and every overflow pointer of a table leaf; the
//!   non-null pointers of table and root records), and their number must match.
//! - A record is rewritten from its decoded form with only its pointer changed
//!   (`RootRecord { catalog, ..old }`), so fields added to a record later carry over.

use super::freemap::{dir_entries_per_page, set_chain_entry, DirEntry, CHAIN_ENTRIES_AT};
use super::node::{self, LeafValue, NodeView};
use super::records::{RootRecord, TableRecord};
use super::{tag, PageHeader, Ptr, U16Le, U32Le, U64Le, HEADER_BYTES};
use crate::{Error, Result};

/// What the values of a leaf hold, which says where its pointers are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeafValues {
    /// Table values: one pointer per value kept in an overflow run.
    Table,
    /// Table records (catalog leaves): one pointer per non-empty table.
    TableRecords,
    /// Root records (roots-tree leaves): one pointer per root that has a catalog.
    RootRecords,
}

/// Writes into `out` node `src` (page `old_id`) moved to page `new_id`: same birth, same
/// entries, and the pointers out of it (see the module invariants) replaced one for one by
/// `new`, in entry order. `out` must be a page of the same size.
pub fn move_node(
    src: &[u8],
    old_id: u64,
    out: &mut [u8],
    new_id: u64,
    values: LeafValues,
    new: &[Ptr],
) -> Result<()> {
    node::validate(src, old_id)?;
    let view = NodeView::new(src, old_id)?;
    out.copy_from_slice(src);
    let mut next = new.iter().copied();
    let mut take = || {
        next.next()
            .ok_or_else(|| Error::corrupted(old_id, "node has more pointers than were copied"))
    };
    // Bounded: one step per entry of the node.
    for i in 0..view.count() {
        if !view.is_leaf() {
            node::set_child(out, i, take()?);
            continue;
        }
        match (values, view.value(i)?) {
            (LeafValues::Table, LeafValue::Overflow { .. }) => node::set_overflow(out, i, take()?),
            (LeafValues::Table, LeafValue::Inline(_)) => {}
            (_, LeafValue::Overflow { .. }) => {
                return Err(Error::corrupted(old_id, "overflow value in a record tree"))
            }
            (LeafValues::TableRecords, LeafValue::Inline(bytes)) => {
                let old = TableRecord::decode(bytes, old_id)?;
                if !old.root.is_null() {
                    let record = TableRecord {
                        root: take()?,
                        ..old
                    };
                    node::overwrite_inline_value(out, i, &record.encode());
                }
            }
            (LeafValues::RootRecords, LeafValue::Inline(bytes)) => {
                let old = RootRecord::decode(bytes, old_id)?;
                if !old.catalog.is_null() {
                    let record = RootRecord {
                        catalog: take()?,
                        ..old
                    };
                    node::overwrite_inline_value(out, i, &record.encode());
                }
            }
        }
    }
    if next.next().is_some() {
        return Err(Error::corrupted(
            old_id,
            "node has fewer pointers than were copied",
        ));
    }
    let birth = PageHeader::read(src).txn.get();
    node::rebirth(out, new_id, birth);
    Ok(())
}

/// Directory chain page `id`, born in `txn`, holding `entries` (at most a page's worth) and
/// pointing at `next`.
pub fn dir_page(page_size: usize, id: u64, txn: u64, entries: &[DirEntry], next: Ptr) -> Vec<u8> {
    assert!(
        entries.len() <= dir_entries_per_page(page_size),
        "a directory page's worth of entries"
    );
    let mut page = vec![0u8; page_size];
    PageHeader {
        tag: tag::FREE_DIR,
        level: 0,
        count: U16Le::new(entries.len() as u16),
        free_end: U32Le::new(0),
        garbage: U32Le::new(0),
        page_id: U64Le::new(id),
        txn: U64Le::new(txn),
        ..PageHeader::default()
    }
    .write(&mut page);
    next.encode(&mut page[HEADER_BYTES..CHAIN_ENTRIES_AT]);
    for (i, entry) in entries.iter().enumerate() {
        set_chain_entry(&mut page, i, *entry);
    }
    page
}

/// A node being filled with entries in key order, for a tree built bottom-up (the refcount
/// tree, the trees of a backup, the leaves a compaction refills). Its count and free end are
/// kept here and written to the header once, at [`NodeFill::finish`].
pub struct NodeFill {
    page: Vec<u8>,
    level: u8,
    count: usize,
    free_end: usize,
}

impl NodeFill {
    /// An empty node at `level` (0 for a leaf), born in `txn`; its id is given at
    /// [`NodeFill::finish`].
    pub fn new(page_size: usize, level: u8, txn: u64) -> NodeFill {
        let mut page = vec![0u8; page_size];
        node::init(&mut page, level, 0, txn);
        NodeFill {
            page,
            level,
            count: 0,
            free_end: page_size,
        }
    }

    /// Entries so far.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Appends a leaf entry whose value is inline or in an overflow run (keys must come in
    /// increasing order). Returns false, changing nothing, when it does not fit.
    pub fn push_leaf_entry(&mut self, key: &[u8], value: LeafValue<'_>) -> bool {
        assert_eq!(self.level, 0, "push_leaf_entry on a branch");
        let with_slot = match value {
            LeafValue::Inline(bytes) => node::leaf_inline_bytes(key.len(), bytes.len()),
            LeafValue::Overflow { .. } => node::leaf_overflow_bytes(key.len()),
        };
        self.append(key, with_slot, |out| {
            node::write_leaf_entry(out, key, value)
        })
    }

    /// Appends a branch entry (the first one's key must be empty). Returns false, changing
    /// nothing, when it does not fit.
    pub fn push_branch(&mut self, key: &[u8], child: Ptr) -> bool {
        assert!(self.level > 0, "push_branch on a leaf");
        let with_slot = node::branch_entry_bytes(key.len());
        self.append(key, with_slot, |out| {
            node::write_branch_entry(out, key, child)
        })
    }

    fn append(&mut self, key: &[u8], with_slot: usize, fill: impl FnOnce(&mut [u8])) -> bool {
        let len = with_slot - node::SLOT_BYTES;
        let head = node::key_head(key);
        match node::append_built(&mut self.page, self.count, self.free_end, len, head, fill) {
            Some(free_end) => {
                self.count += 1;
                self.free_end = free_end;
                true
            }
            None => false,
        }
    }

    /// The txn the node is born in (given to [`NodeFill::new`]).
    pub fn birth(&self) -> u64 {
        PageHeader::read(&self.page).txn.get()
    }

    /// The finished page, as page `id`.
    pub fn finish(mut self, id: u64) -> Vec<u8> {
        node::set_built_counts(&mut self.page, self.count, self.free_end);
        let birth = self.birth();
        node::rebirth(&mut self.page, id, birth);
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::NodeFill;
    use crate::format::node::{self, LeafValue, NodeView};

    /// A node filled until an entry no longer fits holds exactly the bytes that
    /// `node::fill_raw` writes for the same entries, and validates.
    #[test]
    fn a_filled_node_is_what_fill_raw_writes() {
        let mut fill = NodeFill::new(4096, 0, 9);
        let mut keys = Vec::new();
        // Bounded: a 4096-byte page holds fewer than 4096 entries.
        for i in 0u32..4096 {
            let key = format!("key{i:05}");
            let value = vec![i as u8; (i % 50) as usize];
            if !fill.push_leaf_entry(key.as_bytes(), LeafValue::Inline(&value)) {
                break;
            }
            keys.push(key);
        }
        assert_eq!(fill.count(), keys.len());
        assert!(keys.len() > 40, "{} entries", keys.len());
        let page = fill.finish(77);
        node::validate(&page, 77).unwrap();
        let view = NodeView::new(&page, 77).unwrap();
        let entries: Vec<&[u8]> = (0..view.count()).map(|i| view.entry(i).unwrap()).collect();
        let mut expected = vec![0u8; 4096];
        assert!(node::fill_raw(&mut expected, 0, 77, 9, &entries));
        assert_eq!(page, expected);
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(view.key(i).unwrap(), key.as_bytes());
        }
    }
}
