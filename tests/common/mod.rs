//! Helpers shared by the integration tests: a seeded PRNG and model comparison.
#![allow(dead_code)]

use shadowkv::Database;
use std::collections::BTreeMap;

/// splitmix64: small, seeded, good enough for test data.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

pub type Model = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;

/// Asserts that the database's last commit equals the model exactly, table by table.
pub fn assert_matches(db: &Database, model: &Model) {
    assert_txn_matches(&db.begin_read().unwrap(), model, "main");
}

/// Asserts that what a read transaction sees equals the model exactly, table by table, in
/// both directions; `root` names it in failures.
pub fn assert_txn_matches(rx: &shadowkv::ReadTxn<'_>, model: &Model, root: &str) {
    let names = rx.table_names().unwrap();
    let want: Vec<String> = model.keys().cloned().collect();
    assert_eq!(names, want, "table names of {root} differ");
    for (table, entries) in model {
        let name = format!("{root}/{table}");
        let t = rx.open_table(table).unwrap();
        assert_eq!(t.len().unwrap(), entries.len() as u64, "len of {name}");
        let got: Vec<(Vec<u8>, Vec<u8>)> = t
            .iter()
            .unwrap()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert!(
            got == want,
            "contents of {name} differ: {} entries vs {} in the model",
            got.len(),
            want.len()
        );
        let mut back: Vec<(Vec<u8>, Vec<u8>)> = t
            .iter()
            .unwrap()
            .rev()
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        back.reverse();
        assert!(back == want, "reverse iteration of {name} differs");
    }
}
