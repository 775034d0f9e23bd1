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

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
    pub fn path(&self) -> &Path {
        &self.temp
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
    fn dropped_unpublished_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = NewFile::create(&dir.path().join("copy.db")).unwrap();
        fs::write(file.path(), b"half").unwrap();
        drop(file);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
