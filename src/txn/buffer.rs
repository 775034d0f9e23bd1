//! A write transaction's buffer of inserts into one table.
//!
//! Inserts of small values are appended here and applied to the tree in key order when
//! anything reads or removes from the table, when the buffer grows large, and at commit. A
//! sorted flush descends to neighbouring leaves one after another (hot in cache) and fills
//! pages instead of half-filling them, so a bulk load of random keys costs about what a load
//! of sorted keys does.
//!
//! Invariants: the buffer holds only entries whose sizes were checked; applying it in a
//! stable key order makes the last insert of a key win, as it would have unbuffered.

/// Buffered inserts: keys and values packed in one arena.
#[derive(Default)]
pub struct InsertBuffer {
    arena: Vec<u8>,
    /// (offset of the key in `arena`, key length, value length).
    items: Vec<(usize, u32, u32)>,
}

/// Flush once this many bytes are buffered.
pub const FLUSH_BYTES: usize = 256 << 20;

impl InsertBuffer {
    /// Buffers an insert.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        self.items
            .push((self.arena.len(), key.len() as u32, value.len() as u32));
        self.arena.extend_from_slice(key);
        self.arena.extend_from_slice(value);
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> usize {
        self.arena.len()
    }

    fn key(&self, item: (usize, u32, u32)) -> &[u8] {
        &self.arena[item.0..item.0 + item.1 as usize]
    }

    /// The buffered inserts in key order, one per key (the last insert of a key wins).
    pub fn sorted(&self) -> Vec<(&[u8], &[u8])> {
        // Sort by an 8-byte prefix first (most comparisons end there), then the key, then
        // the insertion order, so that equal keys keep their order without a stable sort.
        let prefix = |key: &[u8]| {
            let mut b = [0u8; 8];
            let n = key.len().min(8);
            b[..n].copy_from_slice(&key[..n]);
            u64::from_be_bytes(b)
        };
        let mut order: Vec<(u64, u32)> = self
            .items
            .iter()
            .enumerate()
            .map(|(i, item)| (prefix(self.key(*item)), i as u32))
            .collect();
        order.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| {
                    self.key(self.items[a.1 as usize])
                        .cmp(self.key(self.items[b.1 as usize]))
                })
                .then(a.1.cmp(&b.1))
        });
        let mut out: Vec<(&[u8], &[u8])> = Vec::with_capacity(order.len());
        for (i, (_, at)) in order.iter().enumerate() {
            let item = self.items[*at as usize];
            let key = self.key(item);
            if order
                .get(i + 1)
                .is_some_and(|(_, next)| self.key(self.items[*next as usize]) == key)
            {
                continue;
            }
            let k = item.0 + item.1 as usize;
            out.push((key, &self.arena[k..k + item.2 as usize]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::InsertBuffer;

    #[test]
    fn sorted_keeps_the_last_insert_of_each_key() {
        let mut b = InsertBuffer::default();
        b.push(b"b", b"1");
        b.push(b"a", b"2");
        b.push(b"b", b"3");
        b.push(b"c", b"");
        b.push(b"b", b"4");
        let got: Vec<(&[u8], &[u8])> = b.sorted();
        assert_eq!(
            got,
            vec![
                (&b"a"[..], &b"2"[..]),
                (&b"b"[..], &b"4"[..]),
                (&b"c"[..], &b""[..])
            ]
        );
    }
}
