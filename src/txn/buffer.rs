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

/// Buffered inserts: keys and values packed in chunks of memory.
#[derive(Default)]
pub struct InsertBuffer {
    /// Keys and values, each pair within one chunk. A chunk never grows past the capacity it
    /// was made with, so nothing buffered is copied again (one arena doubling in place copied
    /// all it held at each doubling: about the buffered bytes once more).
    chunks: Vec<Vec<u8>>,
    /// Bytes buffered, over all chunks.
    bytes: usize,
    items: Vec<Item>,
}

/// Where one buffered insert lies.
#[derive(Clone, Copy)]
struct Item {
    chunk: u32,
    /// Offset of the key in its chunk; the value follows it.
    at: u32,
    key_len: u32,
    value_len: u32,
}

/// Flush once this many bytes are buffered.
pub const FLUSH_BYTES: usize = 256 << 20;

/// The first chunk's capacity; each next one doubles it, up to [`MAX_CHUNK`] (or the one
/// pair it must hold).
const FIRST_CHUNK: usize = 4096;

/// The capacity a chunk doubles up to.
const MAX_CHUNK: usize = 16 << 20;

impl InsertBuffer {
    /// Buffers an insert.
    pub fn push(&mut self, key: &[u8], value: &[u8]) {
        let need = key.len() + value.len();
        let room = |c: &Vec<u8>| c.capacity() - c.len() >= need;
        if !self.chunks.last().is_some_and(room) {
            let next = self.chunks.last().map_or(FIRST_CHUNK, |c| c.capacity() * 2);
            self.chunks
                .push(Vec::with_capacity(next.min(MAX_CHUNK).max(need)));
        }
        let chunk_index = self.chunks.len() - 1;
        let chunk = &mut self.chunks[chunk_index];
        self.items.push(Item {
            chunk: chunk_index as u32,
            at: chunk.len() as u32,
            key_len: key.len() as u32,
            value_len: value.len() as u32,
        });
        chunk.extend_from_slice(key);
        chunk.extend_from_slice(value);
        self.bytes += need;
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn key(&self, item: Item) -> &[u8] {
        let at = item.at as usize;
        &self.chunks[item.chunk as usize][at..at + item.key_len as usize]
    }

    fn value(&self, item: Item) -> &[u8] {
        let at = item.at as usize + item.key_len as usize;
        &self.chunks[item.chunk as usize][at..at + item.value_len as usize]
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
        let key_of = |at: &(u64, u32)| self.key(self.items[at.1 as usize]);
        if order.len() < RADIX_FROM {
            order.sort_unstable_by(|a, b| {
                a.0.cmp(&b.0)
                    .then_with(|| key_of(a).cmp(key_of(b)))
                    .then(a.1.cmp(&b.1))
            });
        } else {
            // The same order: a stable radix sort by prefix keeps the insertion order among
            // equal prefixes, and a stable sort by key of each run of one prefix keeps it
            // among equal keys.
            radix_sort(&mut order);
            for run in order.chunk_by_mut(|a, b| a.0 == b.0) {
                if run.len() > 1 {
                    run.sort_by(|a, b| key_of(a).cmp(key_of(b)));
                }
            }
        }
        let mut out: Vec<(&[u8], &[u8])> = Vec::with_capacity(order.len());
        for (i, (prefix, at)) in order.iter().enumerate() {
            // The items lie in insertion order: start loading one a few places ahead.
            if let Some((_, ahead)) = order.get(i + PREFETCH_AHEAD) {
                crate::io::prefetch(std::slice::from_ref(&self.items[*ahead as usize]));
            }
            let item = self.items[*at as usize];
            let key = self.key(item);
            // Equal keys have equal prefixes: the keys are compared only then.
            if order.get(i + 1).is_some_and(|(next_prefix, next)| {
                next_prefix == prefix && self.key(self.items[*next as usize]) == key
            }) {
                continue;
            }
            out.push((key, self.value(item)));
        }
        out
    }
}

/// How many items ahead of the one it reads a loop over items in key order (which lie at
/// random places in memory) starts loading the next: enough to cover a memory access.
pub const PREFETCH_AHEAD: usize = 8;

/// From this many buffered inserts on, [`InsertBuffer::sorted`] sorts the prefixes with
/// [`radix_sort`] (a few passes over the items instead of about log2(n) comparisons each).
const RADIX_FROM: usize = 1024;

/// Sorts `items` by their `u64` stably: a least-significant-digit radix sort, one byte a
/// pass, which skips a byte that every item has alike.
fn radix_sort(items: &mut Vec<(u64, u32)>) {
    let mut counts = [[0usize; 256]; 8];
    for &(prefix, _) in items.iter() {
        for (byte, count) in counts.iter_mut().enumerate() {
            count[(prefix >> (8 * byte)) as usize & 0xff] += 1;
        }
    }
    let mut spare = vec![(0u64, 0u32); items.len()];
    for (byte, count) in counts.iter().enumerate() {
        if count.contains(&items.len()) {
            continue;
        }
        let mut at = [0usize; 256];
        let mut sum = 0;
        for (slot, n) in at.iter_mut().zip(count) {
            *slot = sum;
            sum += n;
        }
        for &item in items.iter() {
            let digit = (item.0 >> (8 * byte)) as usize & 0xff;
            spare[at[digit]] = item;
            at[digit] += 1;
        }
        std::mem::swap(items, &mut spare);
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

    #[test]
    fn sorted_matches_a_map_past_the_radix_threshold() {
        // Keys with long shared prefixes, short keys, keys that are prefixes of others, and
        // repeated keys: the last insert of each key wins, in key order.
        let mut b = InsertBuffer::default();
        let mut model = std::collections::BTreeMap::new();
        let mut z = 7u64;
        for i in 0..3 * super::RADIX_FROM as u64 {
            z = z
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = match i % 4 {
                0 => (z >> 40).to_be_bytes().to_vec(),
                1 => format!("user:{:06}", z % 2000).into_bytes(),
                2 => vec![b'k'; (z % 12) as usize],
                _ => z.to_le_bytes()[..(z % 9) as usize].to_vec(),
            };
            let value = i.to_le_bytes();
            b.push(&key, &value);
            model.insert(key, value.to_vec());
        }
        let got: Vec<(Vec<u8>, Vec<u8>)> = b
            .sorted()
            .into_iter()
            .map(|(k, v)| (k.to_vec(), v.to_vec()))
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = model.into_iter().collect();
        assert_eq!(got, want);
    }
}
