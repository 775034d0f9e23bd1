//! An in-memory [`Storage`] for tests and for building crash images.
//!
//! Invariants: a view is an `Arc` of the byte vector as it was; a later write clones the
//! vector when a view still holds it (copy-on-write), so a view never changes.

use super::{past_end, Storage, View};
use parking_lot::Mutex;
use std::io;
use std::sync::Arc;

/// Storage held in a byte vector.
#[derive(Default)]
pub struct MemStorage {
    bytes: Mutex<Arc<Vec<u8>>>,
}

impl MemStorage {
    /// Empty storage.
    pub fn new() -> Self {
        Self::default()
    }

    /// Storage that starts with these bytes (a crash image, a corrupted copy).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        MemStorage {
            bytes: Mutex::new(Arc::new(bytes)),
        }
    }

    /// A copy of the current bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.bytes.lock().as_ref().clone()
    }
}

struct MemView {
    bytes: Arc<Vec<u8>>,
    len: usize,
}

impl View for MemView {
    fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Storage for MemStorage {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        let bytes = self.bytes.lock();
        let end = offset.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= bytes.len() as u64 => {
                buf.copy_from_slice(&bytes[offset as usize..end as usize]);
                Ok(())
            }
            _ => Err(past_end(offset, buf.len(), bytes.len() as u64)),
        }
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut guard = self.bytes.lock();
        let bytes = Arc::make_mut(&mut guard);
        let end = offset as usize + data.len();
        if bytes.len() < end {
            bytes.resize(end, 0);
        }
        bytes[offset as usize..end].copy_from_slice(data);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.bytes.lock().len() as u64)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut guard = self.bytes.lock();
        Arc::make_mut(&mut guard).resize(len as usize, 0);
        Ok(())
    }

    fn view(&self, len: u64) -> io::Result<Arc<dyn View>> {
        let bytes = self.bytes.lock().clone();
        if len > bytes.len() as u64 {
            return Err(past_end(0, len as usize, bytes.len() as u64));
        }
        Ok(Arc::new(MemView {
            bytes,
            len: len as usize,
        }))
    }
}
