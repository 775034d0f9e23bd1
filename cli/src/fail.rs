//! The tool's one error type: an exit code and a one-line message that names the file.
//!
//! Exit codes (documented in `shadowkv --help` and README.md): 0 success; 1 corruption found
//! (or, for `diff --exit-code`, a non-empty diff); 2 usage error (clap); 3 any other error.

use std::fmt::Display;
use std::io;
use std::path::Path;

/// Corruption found: `check`'s finding, or any command that met a damaged page.
pub const EXIT_CORRUPT: u8 = 1;
/// Every error that is neither corruption nor a usage error.
pub const EXIT_ERROR: u8 = 3;

/// A failed command: what to print (one line) and the exit code.
#[derive(Debug)]
pub struct Fail {
    pub code: u8,
    pub message: String,
    /// Standard output went away (a closed pipe): stop quietly.
    pub broken_pipe: bool,
}

pub type CliResult<T = ()> = Result<T, Fail>;

impl Fail {
    pub fn new(message: impl Into<String>) -> Fail {
        Fail {
            code: EXIT_ERROR,
            message: message.into(),
            broken_pipe: false,
        }
    }

    /// An error about `path`: the message starts with it (once).
    pub fn at(path: &Path, cause: impl Display) -> Fail {
        Fail::new(with_path(path, cause))
    }

    /// A library error met while working on the database at `path`.
    pub fn db(path: &Path, e: shadowkv::Error) -> Fail {
        match e {
            shadowkv::Error::Corrupted { .. } | shadowkv::Error::Truncated { .. } => Fail {
                code: EXIT_CORRUPT,
                message: with_path(path, e),
                broken_pipe: false,
            },
            shadowkv::Error::Locked => {
                Fail::new(with_path(path, crate::lock::locked_message(path)))
            }
            other => Fail::at(path, other),
        }
    }
}

fn with_path(path: &Path, cause: impl Display) -> String {
    let shown = path.display().to_string();
    let cause = cause.to_string();
    if cause.contains(&shown) {
        cause
    } else {
        format!("{shown}: {cause}")
    }
}

/// Writing the command's output (standard output or `-o FILE`) failed.
impl From<io::Error> for Fail {
    fn from(e: io::Error) -> Fail {
        let mut fail = Fail::new(format!("cannot write the output: {e}"));
        fail.broken_pipe = e.kind() == io::ErrorKind::BrokenPipe;
        fail
    }
}

/// Attaches the database path to library errors.
pub trait DbContext<T> {
    fn at(self, path: &Path) -> CliResult<T>;
}

impl<T> DbContext<T> for shadowkv::Result<T> {
    fn at(self, path: &Path) -> CliResult<T> {
        self.map_err(|e| Fail::db(path, e))
    }
}
