//! Saying who holds a database's lock. The library takes an exclusive `flock` on the file and
//! reports `Error::Locked` at once; on Linux, `/proc/locks` names the process that holds it.

use std::path::Path;

/// The message for a database that another handle holds open.
pub fn locked_message(path: &Path) -> String {
    let who = holder(path)
        .map(|(pid, name)| match name {
            Some(name) => format!("process {pid} ({name})"),
            None => format!("process {pid}"),
        })
        .unwrap_or_else(|| "another process (or another handle in one)".into());
    format!(
        "the database is locked: {who} has it open; shadowkv does not wait for the lock. \
         Close that application first, or inspect a copy made with its backup"
    )
}

#[cfg(target_os = "linux")]
fn holder(path: &Path) -> Option<(u32, Option<String>)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).ok()?;
    let (ino, dev) = (meta.ino(), meta.dev());
    // glibc's major()/minor() of a dev_t.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    for line in locks.lines() {
        // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"; a waiter's line has "->".
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.contains(&"->") {
            continue;
        }
        let Some(at) = fields.iter().position(|f| f.matches(':').count() == 2) else {
            continue;
        };
        let mut id = fields[at].split(':');
        let (Some(maj), Some(min), Some(i)) = (id.next(), id.next(), id.next()) else {
            continue;
        };
        let same_dev = u64::from_str_radix(maj, 16).ok() == Some(major)
            && u64::from_str_radix(min, 16).ok() == Some(minor);
        if i.parse::<u64>().ok() != Some(ino) || !same_dev || at == 0 {
            continue;
        }
        let pid: u32 = fields[at - 1].parse().ok()?;
        if pid == 0 {
            return None;
        }
        let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()
            .map(|s| s.trim().to_string());
        return Some((pid, name));
    }
    None
}

#[cfg(not(target_os = "linux"))]
fn holder(_path: &Path) -> Option<(u32, Option<String>)> {
    None
}
