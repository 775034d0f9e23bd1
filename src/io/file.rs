//! The file [`Storage`]: pwrite for writes, a read-only shared memory map for reads.
//!
//! Invariants:
//! - The map is read-only; all writes go through `pwrite`, which the shared map sees.
//! - A map may reach past the end of the file (room to grow without remapping), but readers
//!   get windows of it that never reach past the file's length, and the file is never
//!   shrunk below a window that is still alive (checked in `set_len`).
//! - The file is locked for the life of the handle: exclusively by a handle that may write,
//!   shared by a read-only one ([`FileStorage::open_read_only`]), whose descriptor is opened
//!   read-only, so it cannot write a byte. Both locks are `flock`-style (std's `File::lock`
//!   family), so a writer and a read-only handle exclude each other, and read-only handles
//!   share.
//! - `len` is the file's length: it is read at open, and every change of length goes through
//!   this handle (`set_len`, a `write_at` past the end), which updates it. Asking the file
//!   instead costs a `statx` per commit, and on ext4 without a journal a stat makes the next
//!   write stamp a fine-grained mtime, so every `fdatasync` then also writes the inode block:
//!   one more synchronous device write per commit (measured with the block tracepoints).
//!   A new map re-reads the length from the file before trusting it.
//! - Bytes the file grew by are populated in the current map (page tables filled,
//!   `MADV_POPULATE_READ`) when the first window reaching them is handed out, which is when
//!   the writer publishes the commit that wrote them: readers of fresh pages then take no
//!   page fault per 64 KiB block (a diff of a 1% change took 177 of them, a fifth of its
//!   time). Best effort: a kernel without it (before 5.14) says no and reads fault as
//!   before. The bytes a map starts with are not populated: they may not be cached, and
//!   populating would read them all from the device.

use super::{past_end, rebind_in, slice_of, EmptyView, Storage, View};
use memmap2::{Mmap, MmapOptions};
use parking_lot::Mutex;
use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

/// A database file on disk.
pub struct FileStorage {
    file: File,
    /// The file's length in bytes (see the module invariants).
    len: AtomicU64,
    maps: Mutex<Maps>,
}

#[derive(Default)]
struct Maps {
    /// The newest map, reused while the file fits in it.
    current: Option<Arc<MapView>>,
    /// Every window handed out that may still be alive, to refuse shrinking under one.
    handed_out: Vec<Weak<Window>>,
    /// Bytes of `current` from its start whose page tables are filled, or that it began
    /// with (see the module invariants).
    populated: usize,
}

/// A map of the file that reaches past its end, so that growth rarely needs a new map (a new
/// map costs a page fault on every page touched again).
struct MapView {
    map: Mmap,
}

/// The part of a map that lay inside the file when it was handed out: the only bytes ever
/// read through it.
struct Window {
    map: Arc<MapView>,
    len: usize,
}

impl Window {
    fn bytes(&self) -> &[u8] {
        &self.map.map[..self.len]
    }
}

impl View for Window {
    fn byte_len(&self) -> u64 {
        self.len as u64
    }
    fn slice(&self, offset: u64, len: usize) -> Option<&[u8]> {
        slice_of(self.bytes(), offset, len)
    }
    fn rebind(&self, slice: &[u8]) -> Option<&[u8]> {
        rebind_in(self.bytes(), slice)
    }
}

/// Bytes mapped ahead of the file's end: twice its length, at least 1 GiB of address space.
fn reservation(file_len: u64) -> u64 {
    file_len.saturating_mul(2).max(1 << 30)
}

/// Why opening a file failed before any database logic ran.
pub enum OpenFileError {
    /// Another handle holds the lock.
    Locked,
    /// The operating system said no.
    Io(io::Error),
}

impl FileStorage {
    /// Opens (creating if `create`) and locks the file at `path`.
    ///
    /// Returns whether the file was created by this call; a created file and its directory
    /// entry are synced before this returns, so the file survives a crash.
    pub fn open(path: &Path, create: bool) -> Result<(FileStorage, bool), OpenFileError> {
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)
            .map_err(OpenFileError::Io)?;
        lock_result(file.try_lock())?;
        let created = !existed;
        if created {
            file.sync_all().map_err(OpenFileError::Io)?;
            if let Some(dir) = path.parent() {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(OpenFileError::Io)?;
            }
        }
        Ok((FileStorage::on(file)?, created))
    }

    /// Opens the existing file at `path` for reading only, under a shared lock: other
    /// read-only handles may hold it too, a writer may not (either side gets `Locked` at
    /// once). The descriptor is read-only, so every `write_at`, `set_len` and `sync` through
    /// this handle fails with the operating system's error.
    pub fn open_read_only(path: &Path) -> Result<FileStorage, OpenFileError> {
        let file = OpenOptions::new()
            .read(true)
            .open(path)
            .map_err(OpenFileError::Io)?;
        lock_result(file.try_lock_shared())?;
        FileStorage::on(file)
    }

    fn on(file: File) -> Result<FileStorage, OpenFileError> {
        let len = file.metadata().map_err(OpenFileError::Io)?.len();
        Ok(FileStorage {
            file,
            len: AtomicU64::new(len),
            maps: Mutex::new(Maps::default()),
        })
    }
}

fn lock_result(result: Result<(), TryLockError>) -> Result<(), OpenFileError> {
    match result {
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(OpenFileError::Locked),
        Err(TryLockError::Error(e)) => Err(OpenFileError::Io(e)),
    }
}

impl FileStorage {
    /// Re-reads the length from the file after a failed change (the failure itself is what the
    /// caller reports; if the file cannot say, the kept length stays).
    fn refresh_len(&self) {
        if let Ok(meta) = self.file.metadata() {
            self.len.store(meta.len(), Ordering::Release);
        }
    }
}

impl Storage for FileStorage {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                past_end(
                    offset,
                    buf.len(),
                    self.file.metadata().map_or(0, |m| m.len()),
                )
            } else {
                e
            }
        })
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let result = self.file.write_all_at(data, offset);
        if result.is_ok() {
            self.len
                .fetch_max(offset.saturating_add(data.len() as u64), Ordering::AcqRel);
        } else {
            // A failed write may have extended the file part of the way.
            self.refresh_len();
        }
        result
    }

    fn sync(&self) -> io::Result<()> {
        // fdatasync also makes a size change durable, which reading the data needs.
        self.file.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.len.load(Ordering::Acquire))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut maps = self.maps.lock();
        maps.handed_out.retain(|weak| weak.strong_count() > 0);
        let live_max = maps
            .handed_out
            .iter()
            .filter_map(Weak::upgrade)
            .map(|w| w.len as u64)
            .max()
            .unwrap_or(0);
        if len < live_max {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cannot shrink to {len} bytes under a live view of {live_max} bytes"),
            ));
        }
        let result = self.file.set_len(len);
        // A cut unmaps what lay past it; growing back over it populates it again.
        let cut = usize::try_from(len).unwrap_or(usize::MAX);
        maps.populated = maps.populated.min(cut);
        if result.is_ok() {
            self.len.store(len, Ordering::Release);
        } else {
            // The length may or may not have changed.
            self.refresh_len();
        }
        result
    }

    fn view(&self, len: u64) -> io::Result<Arc<dyn View>> {
        if len == 0 {
            return Ok(Arc::new(EmptyView));
        }
        let file_len = self.len.load(Ordering::Acquire);
        if len > file_len {
            return Err(past_end(0, len as usize, file_len));
        }
        let len = usize::try_from(len)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "file too large to map"))?;
        let mut maps = self.maps.lock();
        let map = match &maps.current {
            Some(current) if current.map.len() >= len => current.clone(),
            _ => {
                let file_len = self.file.metadata()?.len();
                if (len as u64) > file_len {
                    return Err(past_end(0, len, file_len));
                }
                let map_len = usize::try_from(reservation(file_len)).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "file too large to map")
                })?;
                // SAFETY: the map is read-only and shared, and may reach past the end of the
                // file; only windows of it are handed out, and a window never reaches past
                // the file's length when it is handed out (checked above: against the file
                // itself here, and against `len` for a window of an existing map, which is
                // the file's length while this handle holds the lock). The file is never
                // shrunk below a live window (`set_len` checks `handed_out`), so no byte read
                // through a window can lie past the end of the file and fault. We hold the
                // file's lock (exclusive, or shared with other read-only handles, which
                // cannot write), so no other shadowkv handle writes or shrinks it, and this
                // handle writes only pages that no live reader can reach (the copy-on-write
                // invariant of the pager), so the bytes a reader borrows do not change while
                // borrowed. Changes by an outside program are the documented residual hazard.
                let map = unsafe { MmapOptions::new().len(map_len).map(&self.file)? };
                let map = Arc::new(MapView { map });
                maps.current = Some(map.clone());
                maps.populated = len;
                map
            }
        };
        if len > maps.populated {
            // Best effort (see the module invariants): a failure costs only page faults.
            let grown = len - maps.populated;
            let _ = map
                .map
                .advise_range(memmap2::Advice::PopulateRead, maps.populated, grown);
            maps.populated = len;
        }
        let window = Arc::new(Window { map, len });
        maps.handed_out.retain(|weak| weak.strong_count() > 0);
        maps.handed_out.push(Arc::downgrade(&window));
        Ok(window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kept_length_follows_every_change_of_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [1u8; 100]).unwrap();
        let Ok((storage, created)) = FileStorage::open(&path, false) else {
            panic!("open failed");
        };
        assert!(!created);
        let real = || std::fs::metadata(&path).unwrap().len();
        assert_eq!(storage.len().unwrap(), 100);
        // A write inside the file changes nothing; one past the end extends it.
        storage.write_at(10, &[2u8; 10]).unwrap();
        assert_eq!((storage.len().unwrap(), real()), (100, 100));
        storage.write_at(8190, &[3u8; 10]).unwrap();
        assert_eq!((storage.len().unwrap(), real()), (8200, 8200));
        storage.set_len(16384).unwrap();
        assert_eq!((storage.len().unwrap(), real()), (16384, 16384));
        // Views reach up to the length and no further.
        assert_eq!(storage.view(16384).unwrap().slice(8190, 1), Some(&[3][..]));
        assert!(storage.view(16385).is_err());
        // Shrinking under a live view is refused and leaves the length as it was.
        let view = storage.view(16384).unwrap();
        assert!(storage.set_len(4096).is_err());
        assert_eq!((storage.len().unwrap(), real()), (16384, 16384));
        drop(view);
        storage.set_len(4096).unwrap();
        assert_eq!((storage.len().unwrap(), real()), (4096, 4096));
    }

    /// Minor page faults taken by this thread so far (Linux).
    #[cfg(target_os = "linux")]
    fn minor_faults(buf: &mut String) -> u64 {
        use std::io::Read;
        buf.clear();
        File::open("/proc/thread-self/stat")
            .and_then(|mut f| f.read_to_string(buf))
            .unwrap();
        // The tenth field, counted after the command name's closing parenthesis.
        let rest = &buf[buf.rfind(')').unwrap() + 2..];
        rest.split(' ').nth(7).unwrap().parse().unwrap()
    }

    #[cfg(target_os = "linux")]
    fn kernel_at_least(major: u32, minor: u32) -> bool {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
        let mut parts = release.split(|c: char| !c.is_ascii_digit());
        let mut next = || {
            parts
                .next()
                .and_then(|p| p.parse::<u32>().ok())
                .unwrap_or(0)
        };
        (next(), next()) >= (major, minor)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn bytes_the_file_grew_by_are_read_without_page_faults() {
        if !kernel_at_least(5, 14) {
            eprintln!("SKIPPED: MADV_POPULATE_READ needs Linux 5.14 or later");
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [0u8; 4096]).unwrap();
        let Ok((storage, _)) = FileStorage::open(&path, false) else {
            panic!("open failed");
        };
        let first = storage.view(4096).unwrap();
        let grown = 4 << 20;
        storage.write_at(4096, &vec![7u8; grown]).unwrap();
        let view = storage.view(4096 + grown as u64).unwrap();
        let mut buf = String::with_capacity(4096);
        minor_faults(&mut buf);
        let before = minor_faults(&mut buf);
        let mut sum = 0u64;
        for page in 1..=grown / 4096 {
            sum += u64::from(view.slice(page as u64 * 4096, 1).unwrap()[0]);
        }
        let faults = minor_faults(&mut buf) - before;
        assert_eq!(sum, 7 * (grown / 4096) as u64);
        // Faulted in on demand, these 1,024 pages took 8 faults here (the page cache maps a
        // folio, 64 to 512 KiB, a fault); the reads of the stat file may take one or two.
        assert!(
            faults <= 2,
            "{faults} page faults reading pages the file grew by"
        );
        drop(first);
    }
}
