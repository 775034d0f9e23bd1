//! What the block device did during a phase: write requests, flush requests and bytes
//! written, read from `/sys/dev/block/MAJ:MIN/stat` of the device holding the stores. This is
//! what a durable commit costs on a disk whose requests dominate, and it repeats from run to
//! run where timings wobble. Linux only; elsewhere (or for a device with no stat file) nothing
//! is reported. Other processes' I/O lands in it too.
//!
//! On the kernels we measured, each flush also counts as one write request that carries no
//! data: a loop of one-page `pwrite` + `fdatasync` shows 2 writes, 1 flush and 8 sectors per
//! iteration.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static STAT_FILE: OnceLock<Option<PathBuf>> = OnceLock::new();

/// Finds the stat file of the device holding `dir` (call once, before any phase).
pub fn init(dir: &Path) {
    STAT_FILE.get_or_init(|| stat_file(dir));
}

/// The device's stat file, if it has one: for display.
pub fn device() -> Option<&'static Path> {
    STAT_FILE.get().and_then(|p| p.as_deref())
}

#[cfg(target_os = "linux")]
fn stat_file(dir: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata(dir).ok()?.dev();
    // glibc's gnu_dev_major / gnu_dev_minor.
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let path = PathBuf::from(format!("/sys/dev/block/{major}:{minor}/stat"));
    read(&path).map(|_| path)
}

#[cfg(not(target_os = "linux"))]
fn stat_file(_dir: &Path) -> Option<PathBuf> {
    None
}

/// Counters at one moment: write requests, sectors written (512 bytes), flush requests.
#[derive(Clone, Copy, Debug)]
pub struct DiskMark {
    writes: u64,
    sectors: u64,
    flushes: u64,
}

/// A phase's device work per operation.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct IoPerOp {
    pub writes: f64,
    pub flushes: f64,
    pub kib: f64,
}

fn read(path: &Path) -> Option<DiskMark> {
    let text = std::fs::read_to_string(path).ok()?;
    parse(&text)
}

/// Fields 5 and 7 (write I/Os, write sectors) and 16 (flush I/Os, kernels since 5.5).
fn parse(text: &str) -> Option<DiskMark> {
    let v: Vec<u64> = text
        .split_whitespace()
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    Some(DiskMark {
        writes: *v.get(4)?,
        sectors: *v.get(6)?,
        flushes: v.get(15).copied().unwrap_or(0),
    })
}

/// The counters now, if the device has a stat file.
pub fn mark() -> Option<DiskMark> {
    read(device()?)
}

impl DiskMark {
    /// The work done since this mark, per operation of `ops`.
    pub fn per_op_since(&self, ops: usize) -> Option<IoPerOp> {
        let now = mark()?;
        let ops = ops.max(1) as f64;
        let delta = |a: u64, b: u64| b.saturating_sub(a) as f64 / ops;
        Some(IoPerOp {
            writes: delta(self.writes, now.writes),
            flushes: delta(self.flushes, now.flushes),
            kib: delta(self.sectors, now.sectors) / 2.0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_write_and_flush_fields() {
        let line = "6611 4062 2226778 8098 214555 10313 10232576 268761 0 16244 286037 \
                    6311 60 6859336 3186 15275 5990\n";
        let m = parse(line).unwrap();
        assert_eq!((m.writes, m.sectors, m.flushes), (214555, 10232576, 15275));
        // An older kernel without the flush fields.
        let m = parse("1 2 3 4 5 6 7 8 9 10 11").unwrap();
        assert_eq!((m.writes, m.sectors, m.flushes), (5, 7, 0));
        assert!(parse("not numbers").is_none());
    }
}
