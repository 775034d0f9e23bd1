//! The tree traversal as a future `backup_to` or `compact()` would drive it: a children-first
//! copy of every live page, shared pages copied once for all their parents, with each
//! copied branch's child pointers rewritten to the copies. It must reach exactly the pages
//! `check()` counts as tree and system pages.

mod common;

use shadowkv::internals::btree::traverse::{
    traverse, Child, Edge, Enter, Target, TreeKind, Visitor,
};
use shadowkv::internals::format::node::{set_child, NodeView};
use shadowkv::internals::format::{PageId, Ptr};
use shadowkv::internals::io::{MemStorage, Storage};
use shadowkv::internals::pager::{overflow_pages, ReadPages};
use shadowkv::Database;
use std::collections::HashMap;

/// Copies pages to new ids in post-order: a node gets its id only after all its children.
struct Copy {
    page_size: usize,
    next: u64,
    /// Old first page → new first page, for nodes and runs.
    copied: HashMap<u64, u64>,
    /// Pages copied (a run counts its pages).
    pages: u64,
    /// Branch pointers rewritten.
    rewritten: usize,
}

impl Copy {
    fn assign(&mut self, old: u64, pages: u64) -> u64 {
        let new = self.next;
        self.next += pages;
        self.pages += pages;
        assert!(
            self.copied.insert(old, new).is_none(),
            "page {old} copied twice"
        );
        new
    }
}

impl<'p> Visitor<'p, ReadPages> for Copy {
    type Out = u64;

    fn enter(&mut self, edge: &Edge<'p>) -> shadowkv::Result<Enter<u64>> {
        if edge.ptr.is_null() {
            return Ok(Enter::Skip(0));
        }
        Ok(match self.copied.get(&edge.ptr.page.0) {
            Some(new) => Enter::Skip(*new),
            None => Enter::Descend,
        })
    }

    fn overflow(&mut self, edge: &Edge<'p>, len: u64) -> shadowkv::Result<u64> {
        Ok(self.assign(edge.ptr.page.0, overflow_pages(len, self.page_size)))
    }

    fn leave(
        &mut self,
        edge: &Edge<'p>,
        view: &NodeView<'p>,
        kids: Vec<(Child, u64)>,
    ) -> shadowkv::Result<u64> {
        let mut copy = vec![0u8; self.page_size];
        copy.copy_from_slice(view.page_bytes());
        for (child, new) in &kids {
            assert_eq!(
                self.copied.get(&child.ptr.page.0),
                Some(new),
                "children first"
            );
            if !view.is_leaf() {
                let ptr = Ptr {
                    page: PageId(*new),
                    ..child.ptr
                };
                set_child(&mut copy, child.slot, ptr);
                let rewritten = NodeView::new(&copy, *new)?;
                assert_eq!(rewritten.child(child.slot)?.page.0, *new);
                self.rewritten += 1;
            }
        }
        assert!(matches!(edge.target, Target::Node(_)));
        Ok(self.assign(edge.ptr.page.0, 1))
    }
}

#[test]
fn a_post_order_copy_reaches_every_live_page_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("copy.db");
    let db = Database::open(&path).unwrap();
    let mut rng = common::Rng(5);
    for round in 0..4u32 {
        let tx = db.begin_write().unwrap();
        for table in ["a", "b"] {
            let mut t = tx.open_table(table).unwrap();
            for i in 0..2_000u32 {
                let len = if i % 97 == 0 { 9_000 } else { 40 };
                t.insert(&(round * 10_000 + i).to_be_bytes(), &rng.bytes(len))
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        db.create_snapshot(&format!("s{round}")).unwrap();
    }
    db.create_branch("dev", "s1").unwrap();
    db.delete_snapshot("s0").unwrap();
    let report = db.check().unwrap();
    drop(db);

    let bytes = std::fs::read(&path).unwrap();
    let meta = shadowkv::testkit::newest_meta(&MemStorage::from_bytes(bytes.clone()))
        .unwrap()
        .1;
    let page_size = meta.page_size as usize;
    let storage = MemStorage::from_bytes(bytes);
    let len = storage.len().unwrap();
    let pages = ReadPages::new(storage.view(len).unwrap(), len, page_size, true);
    let mut copy = Copy {
        page_size,
        next: 1 << 40,
        copied: HashMap::new(),
        pages: 0,
        rewritten: 0,
    };
    for (root, kind) in [
        (meta.roots, TreeKind::Roots),
        (meta.refcounts, TreeKind::Refs),
        (meta.release, TreeKind::Release),
    ] {
        traverse(&pages, root, kind, &mut copy).unwrap();
    }
    assert_eq!(copy.pages, report.tree_pages + report.system_pages);
    assert!(copy.rewritten > 0);
}
