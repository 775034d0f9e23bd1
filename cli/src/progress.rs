//! Progress on standard error: hidden with `--quiet` or when standard error is not a
//! terminal (indicatif's stderr target hides itself then).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::time::Duration;

#[derive(Clone, Copy)]
pub struct Progress {
    pub quiet: bool,
}

impl Progress {
    fn new_bar(self, len: Option<u64>, template: &str, message: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(template)
            .expect("a valid progress template")
            .with_key(
                "rate",
                |state: &indicatif::ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:.0}/s", state.per_sec());
                },
            )
            .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(message.to_string());
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }

    /// Bytes done of `total` (a bar with rate and ETA), or of an unknown total (a spinner
    /// with the count and rate).
    pub fn bytes(self, total: Option<u64>, message: &str) -> ProgressBar {
        match total {
            Some(_) => self.new_bar(
                total,
                "{spinner} {msg} [{bar:25}] {binary_bytes}/{binary_total_bytes} \
                 {binary_bytes_per_sec} ETA {eta}",
                message,
            ),
            None => self.new_bar(
                None,
                "{spinner} {msg} {binary_bytes} {binary_bytes_per_sec} {elapsed}",
                message,
            ),
        }
    }

    /// Entries done of `total`, with rate and ETA.
    pub fn entries(self, total: u64, message: &str) -> ProgressBar {
        self.new_bar(
            Some(total),
            "{spinner} {msg} [{bar:25}] {human_pos}/{human_len} entries {rate} ETA {eta}",
            message,
        )
    }

    /// Pages checked of the file's pages, with rate and ETA (the length is set by the first
    /// report).
    pub fn pages(self, message: &str) -> ProgressBar {
        self.new_bar(
            Some(0),
            "{spinner} {msg} [{bar:25}] {human_pos}/{human_len} pages {rate} ETA {eta}",
            message,
        )
    }

    /// Work whose progress the library does not report (backup, compact): a spinner with
    /// the time spent.
    pub fn spinner(self, message: &str) -> ProgressBar {
        self.new_bar(None, "{spinner} {msg} {elapsed}", message)
    }
}
