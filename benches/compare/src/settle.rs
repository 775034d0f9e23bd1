//! The same starting conditions for every engine and every phase, as far as a process can
//! set them (it cannot drop the page cache without root and a global side effect):
//!
//! - before each engine: `sync()` of every file system, so that nothing the previous engine
//!   or the workload's generation left dirty (the previous engine's deleted files: on ext4
//!   without a journal, their freed blocks' bitmaps and inode tables; with `-o discard`, the
//!   discards) is written back while the next engine is timed; `malloc_trim(0)`, so that each
//!   engine starts with the heap given back to the system instead of inheriting free memory
//!   from the one before; then a pause of 5× `--settle-ms`, for the device to finish;
//! - before each timed phase: `sync()` and a pause of `--settle-ms`.
//!
//! `--settle-ms 0` turns all of it off (as before this existed).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The pause before each phase in ms (0: no settling at all).
static PAUSE_MS: AtomicU64 = AtomicU64::new(DEFAULT_MS);

/// The default of `--settle-ms`.
pub const DEFAULT_MS: u64 = 200;

pub fn set_pause_ms(ms: u64) {
    PAUSE_MS.store(ms, Ordering::Relaxed);
}

#[cfg(unix)]
extern "C" {
    fn sync();
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
extern "C" {
    fn malloc_trim(pad: usize) -> i32;
}

fn sync_all() {
    // Safety: sync(2) takes no arguments and cannot fail.
    #[cfg(unix)]
    unsafe {
        sync()
    };
}

fn trim_heap() {
    // Safety: glibc's malloc_trim only gives free heap memory back to the system.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    unsafe {
        malloc_trim(0);
    }
}

/// Before an engine's first phase (see the module's documentation).
pub fn before_engine() {
    let ms = PAUSE_MS.load(Ordering::Relaxed);
    if ms > 0 {
        sync_all();
        trim_heap();
        std::thread::sleep(Duration::from_millis(5 * ms));
    }
}

/// Before each timed phase.
pub fn before_phase() {
    let ms = PAUSE_MS.load(Ordering::Relaxed);
    if ms > 0 {
        sync_all();
        std::thread::sleep(Duration::from_millis(ms));
    }
}
