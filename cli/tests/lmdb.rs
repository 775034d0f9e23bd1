//! Compatibility with LMDB's own tools, `mdb_dump` and `mdb_load` (Debian's `lmdb-utils`,
//! which `.ci/run` installs): a real LMDB environment with several named databases loads into
//! shadowkv whole, and a shadowkv dump loads into LMDB and dumps back identically.
//!
//! The tools must be present: a missing tool fails these tests with a message saying how to
//! install it, so they never pass without having run. (`SHADOWKV_SKIP_LMDB=1` skips them,
//! loudly, on a machine without them.)

mod common;

use common::{contents, fixture, kv, ok, serial};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The path of an LMDB tool; None (with a notice) only when skipping was asked for.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("SHADOWKV_SKIP_LMDB").is_some() => {
            eprintln!("SKIPPED: {name} is missing and SHADOWKV_SKIP_LMDB is set");
            None
        }
        None => panic!(
            "{name} not found: install Debian's lmdb-utils (apt-get install -y lmdb-utils; \
             .ci/run does), or set SHADOWKV_SKIP_LMDB=1 to skip the LMDB tests"
        ),
    }
}

/// Runs an LMDB tool, feeding `stdin`; its standard output.
fn run(tool: &Path, args: &[&std::ffi::OsStr], stdin: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} {args:?} failed: {}",
        tool.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A dump without the header lines that describe an LMDB environment rather than its data
/// (`maxreaders`, `db_pagesize`, `mapaddr`), which a shadowkv dump does not write.
fn data_lines(dump: &str) -> String {
    dump.lines()
        .filter(|l| {
            !["maxreaders=", "db_pagesize=", "mapaddr="]
                .iter()
                .any(|p| l.starts_with(p))
        })
        .map(|l| format!("{l}\n"))
        .collect()
}

/// One database in mdb_load's input, in the `print` format (`\xx` escapes). A backslash is
/// written `\5c`, not `\\`: mdb_load (0.9.x) decodes `\\` wrongly after an earlier escape
/// on the same line (it keeps a stale byte of its in-place buffer). shadowkv's own reader of
/// `\\` is tested in commands.rs.
fn print_db(name: &str, entries: &[(Vec<u8>, Vec<u8>)]) -> String {
    let text = |b: &[u8]| -> String {
        b.iter()
            .map(|&c| match c {
                0x20..=0x5b | 0x5d..=0x7e => (c as char).to_string(),
                _ => format!("\\{c:02x}"),
            })
            .collect()
    };
    let mut s = format!("VERSION=3\nformat=print\ndatabase={name}\ntype=btree\nHEADER=END\n");
    for (k, v) in entries {
        s += &format!(" {}\n {}\n", text(k), text(v));
    }
    s + "DATA=END\n"
}

#[test]
fn an_lmdb_environment_loads_into_shadowkv_with_every_table_and_entry() {
    let _serial = serial();
    let (Some(mdb_load), Some(mdb_dump)) = (tool("mdb_load"), tool("mdb_dump")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join("env");
    std::fs::create_dir(&env).unwrap();
    // Three named databases: text, binary (every byte value, a backslash, an empty value)
    // and a thousand entries.
    let mut expected: Vec<(String, Vec<u8>, Vec<u8>)> = Vec::new();
    let users: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"alice".to_vec(), b"admin".to_vec()),
        (b"bob".to_vec(), b"back\\slash".to_vec()),
    ];
    // No backslash in the binary keys and values: `mdb_dump -p` (LMDB 0.9) prints a
    // backslash unescaped, which makes `\\a3` ambiguous; "back\\slash" below is not.
    let binary: Vec<(Vec<u8>, Vec<u8>)> = (0..=255u8)
        .filter(|&b| b != b'\\' && 0xff - b != b'\\')
        .map(|b| {
            (
                vec![b, 0xff - b],
                if b % 7 == 0 {
                    Vec::new()
                } else {
                    vec![b; (b % 13) as usize]
                },
            )
        })
        .collect();
    let many: Vec<(Vec<u8>, Vec<u8>)> = (0..1000u32)
        .map(|i| (i.to_be_bytes().to_vec(), format!("value {i}").into_bytes()))
        .collect();
    let mut input = String::new();
    for (name, entries) in [("users", &users), ("binary", &binary), ("many", &many)] {
        input += &print_db(name, entries);
        expected.extend(
            entries
                .iter()
                .map(|(k, v)| (name.to_string(), k.clone(), v.clone())),
        );
    }
    for chunk in input.split_inclusive("DATA=END\n") {
        // mdb_load opens at most two named databases at once: load one at a time.
        run(&mdb_load, &[env.as_os_str()], chunk.as_bytes());
    }
    expected.sort();

    // `mdb_dump -a` (bytevalue) and `mdb_dump -a -p` (print), each into its own file.
    for (flags, file) in [(&["-a"][..], "bytes.db"), (&["-a", "-p"][..], "print.db")] {
        let mut args: Vec<&std::ffi::OsStr> = flags.iter().map(|f| f.as_ref()).collect();
        args.push(env.as_os_str());
        let dump = run(&mdb_dump, &args, b"");
        assert_eq!(
            String::from_utf8_lossy(&dump).matches("HEADER=END").count(),
            3
        );
        let db = dir.path().join(file);
        let out = ok(kv().arg("load").arg(&db).write_stdin(dump));
        assert!(out.contains("loaded 1256 entries into 3 tables"), "{out}");
        assert_eq!(ok(kv().arg("tables").arg(&db)), "binary\nmany\nusers\n");
        let mut got = contents(&db);
        got.sort();
        assert_eq!(got, expected, "{file}");
        kv().arg("check").arg(&db).assert().success();
    }
}

#[test]
fn a_shadowkv_dump_loads_into_lmdb_and_dumps_back_identically() {
    let _serial = serial();
    let (Some(mdb_load), Some(mdb_dump)) = (tool("mdb_load"), tool("mdb_dump")) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 3000);
    let dump = ok(kv().arg("dump").arg(&db));
    let env = dir.path().join("env");
    std::fs::create_dir(&env).unwrap();
    for chunk in dump.split_inclusive("DATA=END\n") {
        run(&mdb_load, &[env.as_os_str()], chunk.as_bytes());
    }
    let back = run(&mdb_dump, &["-a".as_ref(), env.as_os_str()], b"");
    let back = String::from_utf8(back).unwrap();
    assert_eq!(data_lines(&back), dump);
    // Also one stream with every database, as mdb_load reads it with -f.
    let file = dir.path().join("all.dump");
    std::fs::write(&file, &dump).unwrap();
    let env2 = dir.path().join("env2");
    std::fs::create_dir(&env2).unwrap();
    run(
        &mdb_load,
        &["-f".as_ref(), file.as_os_str(), env2.as_os_str()],
        b"",
    );
    let back2 = run(&mdb_dump, &["-a".as_ref(), env2.as_os_str()], b"");
    assert_eq!(data_lines(&String::from_utf8(back2).unwrap()), dump);
    // And one table alone, as LMDB's unnamed database: `mdb_dump` without -s, then back.
    let one = ok(kv().arg("dump").arg(&db).args(["--table", "users"]));
    let plain = one.replace("database=users\n", "");
    let env3 = dir.path().join("env3");
    std::fs::create_dir(&env3).unwrap();
    run(&mdb_load, &[env3.as_os_str()], plain.as_bytes());
    let main_db = run(&mdb_dump, &[env3.as_os_str()], b"");
    assert_eq!(
        data_lines(&String::from_utf8(main_db.clone()).unwrap()),
        plain
    );
    let db2 = dir.path().join("b.db");
    kv().arg("load")
        .arg(&db2)
        .args(["--table", "users"])
        .write_stdin(main_db)
        .assert()
        .success();
    assert_eq!(ok(kv().arg("dump").arg(&db2)), one);
}
