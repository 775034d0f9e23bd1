//! A new file written under a temporary name beside its final path, and given that name only
//! once it is complete (for `Database::backup_to`).
//!
//! Invariants:
//! - An existing file at the final path is never overwritten: the name is taken with a hard
//!   link, which fails when the name exists (a rename would replace it).
//! - Until [`NewFile::publish`] succeeds nothing appears at the final path, and a `NewFile`
//!   dropped unpublished removes its temporary file, so a failure leaves no half-written file
//!   under either name.
//! - `publish` syncs the directory, so the new name survives a crash; the caller syncs the
//!   file's bytes before it publishes.
//! - [`NewFile::writer`] writes aligned data with direct I/O where the file system allows it
//!   (no copy into the page cache, and the disk works during the write rather than at the
//!   sync), everything else through the page cache; `sync` makes both durable.

use super::{Storage, View};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Distinguishes the temporary names of backups running at once in one process.
static NEXT_TEMP: AtomicU64 = AtomicU64::new(0);

/// A file under construction: see the module invariants.
pub struct NewFile {
    temp: PathBuf,
    target: PathBuf,
    published: bool,
}

fn exists_error(target: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!("{} exists", target.display()),
    )
}

/// The directory a path lives in ("." for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

impl NewFile {
    /// Creates an empty temporary file beside `target`. Fails with
    /// `io::ErrorKind::AlreadyExists` when `target` exists (checked again at publish).
    pub fn create(target: &Path) -> io::Result<NewFile> {
        if target.symlink_metadata().is_ok() {
            return Err(exists_error(target));
        }
        let name = target.file_name().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "backup path has no file name")
        })?;
        let dir = parent_dir(target);
        // Bounded: a few fresh names; a clash means a leftover of a crashed process that had
        // the same pid, and the next number avoids it.
        for _ in 0..16 {
            let n = NEXT_TEMP.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!(
                ".{}.{}-{n}.tmp",
                name.to_string_lossy(),
                std::process::id()
            ));
            match OpenOptions::new().write(true).create_new(true).open(&temp) {
                Ok(_) => {
                    return Ok(NewFile {
                        temp,
                        target: target.to_path_buf(),
                        published: false,
                    })
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free temporary name beside the backup path",
        ))
    }

    /// Where the bytes are written until [`NewFile::publish`].
    #[cfg(test)]
    pub fn path(&self) -> &Path {
        &self.temp
    }

    /// A storage that writes the file (it has no views: nothing reads it back).
    pub fn writer(&self) -> io::Result<NewFileWriter> {
        let buffered = OpenOptions::new().read(true).write(true).open(&self.temp)?;
        // Not every file system takes direct I/O (tmpfs refuses it): then every write goes
        // through the page cache.
        let direct = OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(&self.temp)
            .ok();
        Ok(NewFileWriter {
            buffered,
            direct,
            len: AtomicU64::new(0),
        })
    }

    /// Gives the file its final name, unless that name exists by now, and syncs the
    /// directory.
    pub fn publish(mut self) -> io::Result<()> {
        match fs::hard_link(&self.temp, &self.target) {
            Ok(()) => {
                self.published = true;
                // The backup is complete under its name; a temporary name that cannot be
                // removed only wastes its directory entry, so that failure is not reported.
                let _ = fs::remove_file(&self.temp);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e),
            Err(_) => {
                // A file system without hard links: rename, after checking once more that
                // the name is free (a file created in between would be replaced).
                if self.target.symlink_metadata().is_ok() {
                    return Err(exists_error(&self.target));
                }
                fs::rename(&self.temp, &self.target)?;
                self.published = true;
            }
        }
        File::open(parent_dir(&self.target))?.sync_all()
    }
}

/// Writes a [`NewFile`]: see the module invariants.
pub struct NewFileWriter {
    buffered: File,
    direct: Option<File>,
    len: AtomicU64,
}

/// Direct I/O wants the memory, the offset and the length aligned to the logical block size
/// (512 or 4096 bytes): 4096 is enough everywhere.
const DIRECT_ALIGN: usize = 4096;

impl Storage for NewFileWriter {
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.buffered.read_exact_at(buf, offset)
    }

    fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let aligned = (data.as_ptr() as usize).is_multiple_of(DIRECT_ALIGN)
            && data.len().is_multiple_of(DIRECT_ALIGN)
            && offset.is_multiple_of(DIRECT_ALIGN as u64);
        match &self.direct {
            Some(direct) if aligned => direct.write_all_at(data, offset)?,
            _ => self.buffered.write_all_at(data, offset)?,
        }
        self.len
            .fetch_max(offset.saturating_add(data.len() as u64), Ordering::AcqRel);
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        // fdatasync covers the file, whichever descriptor wrote it; it also flushes the disk's
        // cache, which direct writes alone do not.
        self.buffered.sync_data()
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.len.load(Ordering::Acquire))
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.buffered.set_len(len)?;
        self.len.store(len, Ordering::Release);
        Ok(())
    }

    fn view(&self, _len: u64) -> io::Result<Arc<dyn View>> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a file being written is not read back",
        ))
    }
}

impl Drop for NewFile {
    fn drop(&mut self) {
        if !self.published {
            // Best effort: the error that made the caller give up is the one it reports.
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publishes_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("copy.db");
        let file = NewFile::create(&target).unwrap();
        fs::write(file.path(), b"one").unwrap();
        file.publish().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"one");
        let err = NewFile::create(&target).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        // Only the published file is left.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_name_taken_meanwhile_wins_and_nothing_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("copy.db");
        let file = NewFile::create(&target).unwrap();
        fs::write(file.path(), b"mine").unwrap();
        fs::write(&target, b"theirs").unwrap();
        let err = file.publish().err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"theirs");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_writer_takes_aligned_and_unaligned_writes() {
        #[repr(C, align(4096))]
        struct Aligned([u8; 8192]);
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("copy.db");
        let file = NewFile::create(&target).unwrap();
        let writer = file.writer().unwrap();
        let block = Aligned([7u8; 8192]);
        writer.write_at(4096, &block.0).unwrap();
        writer.write_at(0, &[1u8; 100]).unwrap();
        writer.write_at(12288, &block.0[1..4097]).unwrap();
        writer.sync().unwrap();
        assert_eq!(writer.len().unwrap(), 16384);
        drop(writer);
        file.publish().unwrap();
        let bytes = fs::read(&target).unwrap();
        assert_eq!(bytes.len(), 16384);
        assert_eq!(&bytes[..100], &[1u8; 100][..]);
        assert!(bytes[100..4096].iter().all(|b| *b == 0));
        assert!(bytes[4096..].iter().all(|b| *b == 7));
    }

    #[test]
    fn dropped_unpublished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = NewFile::create(&dir.path().join("copy.db")).unwrap();
        fs::write(file.path(), b"half").unwrap();
        drop(file);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
