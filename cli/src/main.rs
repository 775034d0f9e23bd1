//! `shadowkv`: the command-line tool for shadowkv databases (issue 14).
//!
//! Every command takes the database file's path first. Output goes to standard output,
//! progress and errors to standard error. Exit codes: see [`fail`].

mod bytes;
mod cmd;
mod fail;
mod lock;
mod mdb;
mod progress;

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Keys and values are given and printed as text, or as 0x and hex pairs when not printable
(--hex: hex pairs always). Every page read is checked against its checksum.

Exit codes: 0 success; 1 corruption found (or a non-empty diff with --exit-code);
2 usage error; 3 any other error (missing file, locked database, bad input, ...).
A database that an application holds open is refused at once (the tool never waits).";

#[derive(Parser)]
#[command(
    name = "shadowkv",
    version,
    about = "Inspect, check, dump, load, snapshot, diff, send and receive shadowkv databases",
    after_help = EXIT_CODES,
    propagate_version = true
)]
struct Cli {
    /// Hide progress bars (they are hidden anyway when standard error is not a terminal)
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where to read: `main`'s last commit, or a snapshot or branch.
#[derive(Args, Clone)]
struct At {
    /// Read this snapshot or branch instead of main
    #[arg(long, value_name = "NAME")]
    at: Option<String>,
}

#[derive(Args, Clone, Copy)]
struct Hex {
    /// Keys and values as hex pairs, given and printed (default: text when printable,
    /// otherwise 0x and hex pairs)
    #[arg(long)]
    hex: bool,
}

/// Every command. The four groups are flattened: on the command line they are one list.
#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Inspect(InspectCommand),
    #[command(flatten)]
    Entries(EntriesCommand),
    #[command(flatten)]
    Roots(RootsCommand),
    #[command(flatten)]
    Whole(WholeCommand),
}

/// Commands that look at the file as a whole: sizes, a check, the list of tables.
#[derive(Subcommand)]
enum InspectCommand {
    /// Sizes and counts: file, pages, live/free/pending bytes, each table, snapshot and branch
    #[command(
        after_help = "Reads every entry once, to count each table's key and value bytes.\n\n\
                            Example:\n  shadowkv stat app.db\n  shadowkv stat app.db --json"
    )]
    Stat {
        /// The database file
        db: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Verify every page and the accounting of the file (exit 1 on corruption)
    #[command(after_help = "Example:\n  shadowkv check app.db && echo clean")]
    Check {
        /// The database file
        db: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// List the tables
    #[command(after_help = "Example:\n  shadowkv tables app.db --at nightly")]
    Tables {
        /// The database file
        db: PathBuf,
        #[command(flatten)]
        at: At,
        /// Print JSON (names and entry counts)
        #[arg(long)]
        json: bool,
    },
}

/// Commands that read or write a table's entries.
#[derive(Subcommand)]
enum EntriesCommand {
    /// Print the value of one key
    #[command(after_help = "Example:\n  shadowkv get app.db users alice\n  \
                            shadowkv get app.db users 0x00ff --at nightly")]
    Get {
        /// The database file
        db: PathBuf,
        /// The table
        table: String,
        /// The key: text, or 0x and hex pairs (with --hex: hex pairs)
        key: String,
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        hex: Hex,
    },
    /// Print entries in key order, one "KEY<TAB>VALUE" line each
    #[command(after_help = "Example:\n  shadowkv scan app.db users --from a --to m --limit 10")]
    Scan {
        /// The database file
        db: PathBuf,
        /// The table
        table: String,
        /// First key (included)
        #[arg(long, value_name = "KEY")]
        from: Option<String>,
        /// End key (excluded)
        #[arg(long, value_name = "KEY")]
        to: Option<String>,
        /// At most this many entries
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        #[command(flatten)]
        at: At,
        #[command(flatten)]
        hex: Hex,
    },
    /// Write tables in the text format of LMDB's mdb_dump (one database per table)
    #[command(after_help = "Example:\n  shadowkv dump app.db > app.dump\n  \
                            shadowkv dump app.db --table users | mdb_load -f /dev/stdin lmdb-env")]
    Dump {
        /// The database file
        db: PathBuf,
        /// Only this table
        #[arg(long, value_name = "T")]
        table: Option<String>,
        #[command(flatten)]
        at: At,
        /// Write to FILE instead of standard output
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Read mdb_dump text (bytevalue or print) into tables, in one transaction
    #[command(
        after_help = "Every database of the input goes to the table its database= line \
                            names; --table puts them all in one table (needed for LMDB's unnamed \
                            database). Existing keys are overwritten. All or nothing.\n\n\
                            Example:\n  mdb_dump -a lmdb-env | shadowkv load app.db\n  \
                            shadowkv load app.db --table users -i users.dump"
    )]
    Load {
        /// The database file
        db: PathBuf,
        /// Load every database of the input into this table
        #[arg(long, value_name = "T")]
        table: Option<String>,
        /// Read FILE instead of standard input
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Page size when the file is created
        #[arg(long, value_name = "BYTES")]
        page_size: Option<usize>,
    },
}

/// Commands on snapshots and branches.
#[derive(Subcommand)]
enum RootsCommand {
    /// Create, list or delete snapshots (read-only, O(1) copies of main)
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Create, list or delete branches (writable clones)
    #[command(subcommand)]
    Branch(BranchCommand),
    /// Set a branch to the state of a snapshot (or branch)
    #[command(after_help = "Example:\n  shadowkv restore app.db main nightly")]
    Restore {
        /// The database file
        db: PathBuf,
        /// The branch to set
        branch: String,
        /// The snapshot (or branch) whose state it takes
        snapshot: String,
    },
    /// What changed from A to B (snapshots or branches): "+", "-" or "M", table, key
    #[command(
        after_help = "Example:\n  shadowkv diff app.db nightly main --values\n  \
                            shadowkv diff app.db nightly main --exit-code >/dev/null || echo changed"
    )]
    Diff {
        /// The database file
        db: PathBuf,
        /// The older view
        a: String,
        /// The newer view
        b: String,
        /// Print the values too (old for "-", new for "+", old and new for "M")
        #[arg(long)]
        values: bool,
        /// Exit with 1 when there is any change
        #[arg(long)]
        exit_code: bool,
        /// Print JSON
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        hex: Hex,
    },
}

/// Commands that copy a whole snapshot or the whole file, or rewrite the file: streams,
/// backups and compaction.
#[derive(Subcommand)]
enum WholeCommand {
    /// Write a snapshot as a stream, whole or since --base (as zfs send)
    #[command(
        after_help = "Example:\n  shadowkv send app.db nightly -o full.stream\n  \
                            shadowkv send app.db nightly-2 --base nightly | shadowkv receive replica.db"
    )]
    Send {
        /// The database file
        db: PathBuf,
        /// The snapshot to send
        snapshot: String,
        /// Only what changed since this older snapshot
        #[arg(long, value_name = "SNAPSHOT")]
        base: Option<String>,
        /// Write to FILE instead of standard output
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Read one stream from send and create its snapshot (creates the file if missing)
    #[command(after_help = "Example:\n  shadowkv receive replica.db -i full.stream")]
    Receive {
        /// The database file
        db: PathBuf,
        /// Read FILE instead of standard input
        #[arg(short, long, value_name = "FILE")]
        input: Option<PathBuf>,
        /// Page size when the file is created
        #[arg(long, value_name = "BYTES")]
        page_size: Option<usize>,
    },
    /// Write a compacted copy of every snapshot and branch to a new file
    #[command(after_help = "Example:\n  shadowkv backup app.db /backups/app-2026-12-07.db")]
    Backup {
        /// The database file
        db: PathBuf,
        /// The new file to write (must not exist)
        dest: PathBuf,
    },
    /// Give space back: move pages off the end of the file and cut it
    #[command(after_help = "Example:\n  shadowkv compact app.db")]
    Compact {
        /// The database file
        db: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Snapshot main's last commit (or a branch's, with --branch)
    #[command(after_help = "Example:\n  shadowkv snapshot create app.db nightly")]
    Create {
        /// The database file
        db: PathBuf,
        /// Its name
        name: String,
        /// Snapshot this branch instead of main
        #[arg(long, value_name = "BRANCH")]
        branch: Option<String>,
    },
    /// List snapshots with the bytes each holds alone
    #[command(after_help = "Example:\n  shadowkv snapshot list app.db --json")]
    List {
        /// The database file
        db: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a snapshot (frees what only it held)
    #[command(after_help = "Example:\n  shadowkv snapshot delete app.db nightly")]
    Delete {
        /// The database file
        db: PathBuf,
        /// Its name
        name: String,
    },
}

#[derive(Subcommand)]
enum BranchCommand {
    /// Create a branch from a snapshot or branch (main by default)
    #[command(after_help = "Example:\n  shadowkv branch create app.db experiment --from nightly")]
    Create {
        /// The database file
        db: PathBuf,
        /// Its name
        name: String,
        /// The snapshot or branch to clone
        #[arg(long, value_name = "NAME", default_value = "main")]
        from: String,
    },
    /// List branches (main included) with the bytes each holds alone
    #[command(after_help = "Example:\n  shadowkv branch list app.db")]
    List {
        /// The database file
        db: PathBuf,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Delete a branch (not main)
    #[command(after_help = "Example:\n  shadowkv branch delete app.db experiment")]
    Delete {
        /// The database file
        db: PathBuf,
        /// Its name
        name: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let progress = progress::Progress { quiet: cli.quiet };
    match run(cli.command, progress) {
        Ok(code) => ExitCode::from(code),
        Err(fail) if fail.broken_pipe => ExitCode::SUCCESS,
        Err(fail) => {
            eprintln!("shadowkv: {}", fail.message);
            ExitCode::from(fail.code)
        }
    }
}

/// Runs one command; `Ok` carries the exit code of a command that finished (0, or 1 for a
/// non-empty diff with --exit-code or corruption that check reports).
fn run(command: Command, progress: progress::Progress) -> fail::CliResult<u8> {
    match command {
        Command::Inspect(command) => inspect(command, progress),
        Command::Entries(command) => entries(command, progress),
        Command::Roots(command) => roots(command),
        Command::Whole(command) => whole(command, progress),
    }
}

fn inspect(command: InspectCommand, progress: progress::Progress) -> fail::CliResult<u8> {
    use InspectCommand as C;
    match command {
        C::Stat { db, json } => cmd::stat(&db, json),
        C::Check { db, json } => cmd::check(&db, json, progress),
        C::Tables { db, at, json } => cmd::tables(&db, at.at.as_deref(), json),
    }
}

fn entries(command: EntriesCommand, progress: progress::Progress) -> fail::CliResult<u8> {
    use EntriesCommand as C;
    match command {
        C::Get {
            db,
            table,
            key,
            at,
            hex,
        } => cmd::get(
            &db,
            &table,
            &key,
            at.at.as_deref(),
            bytes::Shown { hex: hex.hex },
        ),
        C::Scan {
            db,
            table,
            from,
            to,
            limit,
            at,
            hex,
        } => cmd::scan(
            &db,
            &table,
            cmd::ScanRange {
                from: from.as_deref(),
                to: to.as_deref(),
                limit,
            },
            at.at.as_deref(),
            bytes::Shown { hex: hex.hex },
        ),
        C::Dump {
            db,
            table,
            at,
            output,
        } => cmd::dump(
            &db,
            table.as_deref(),
            at.at.as_deref(),
            output.as_deref(),
            progress,
        ),
        C::Load {
            db,
            table,
            input,
            page_size,
        } => cmd::load(&db, table.as_deref(), input.as_deref(), page_size, progress),
    }
}

fn roots(command: RootsCommand) -> fail::CliResult<u8> {
    use RootsCommand as C;
    match command {
        C::Snapshot(SnapshotCommand::Create { db, name, branch }) => {
            cmd::snapshot_create(&db, &name, branch.as_deref())
        }
        C::Snapshot(SnapshotCommand::List { db, json }) => {
            cmd::list(&db, cmd::Kind::Snapshot, json)
        }
        C::Snapshot(SnapshotCommand::Delete { db, name }) => {
            cmd::delete(&db, cmd::Kind::Snapshot, &name)
        }
        C::Branch(BranchCommand::Create { db, name, from }) => {
            cmd::branch_create(&db, &name, &from)
        }
        C::Branch(BranchCommand::List { db, json }) => cmd::list(&db, cmd::Kind::Branch, json),
        C::Branch(BranchCommand::Delete { db, name }) => cmd::delete(&db, cmd::Kind::Branch, &name),
        C::Restore {
            db,
            branch,
            snapshot,
        } => cmd::restore(&db, &branch, &snapshot),
        C::Diff {
            db,
            a,
            b,
            values,
            exit_code,
            json,
            hex,
        } => cmd::diff(
            &db,
            &a,
            &b,
            cmd::DiffOptions {
                values,
                exit_code,
                json,
                shown: bytes::Shown { hex: hex.hex },
            },
        ),
    }
}

fn whole(command: WholeCommand, progress: progress::Progress) -> fail::CliResult<u8> {
    use WholeCommand as C;
    match command {
        C::Send {
            db,
            snapshot,
            base,
            output,
        } => cmd::send(&db, &snapshot, base.as_deref(), output.as_deref(), progress),
        C::Receive {
            db,
            input,
            page_size,
        } => cmd::receive(&db, input.as_deref(), page_size, progress),
        C::Backup { db, dest } => cmd::backup(&db, &dest, progress),
        C::Compact { db, json } => cmd::compact(&db, json, progress),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
