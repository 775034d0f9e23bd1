//! Every command of the `shadowkv` tool run as a process on real files: output, `--json`
//! parsed back, exit codes, damaged input, corruption and a locked database.

mod common;

use common::{contents, fixture, kv, ok, serial};
use predicates::prelude::*;
use serde_json::Value;
use std::time::{Duration, Instant};

fn json(cmd: &mut assert_cmd::Command) -> Value {
    serde_json::from_str(&ok(cmd)).expect("valid JSON")
}

#[test]
fn help_lists_every_command_and_each_gives_an_example() {
    let _serial = serial();
    let help = ok(kv().arg("--help"));
    let commands = [
        "stat", "check", "tables", "get", "scan", "dump", "load", "snapshot", "branch", "restore",
        "diff", "send", "receive", "backup", "compact",
    ];
    for c in commands {
        assert!(
            help.contains(&format!("  {c} ")),
            "{c} missing from --help:\n{help}"
        );
    }
    assert!(help.contains("Exit codes"));
    let mut leaves: Vec<Vec<&str>> = commands
        .iter()
        .filter(|c| !matches!(**c, "snapshot" | "branch"))
        .map(|c| vec![*c])
        .collect();
    for group in ["snapshot", "branch"] {
        for sub in ["create", "list", "delete"] {
            leaves.push(vec![group, sub]);
        }
    }
    for args in leaves {
        let text = ok(kv().args(&args).arg("--help"));
        assert!(
            text.contains("Example:"),
            "{args:?} --help has no example:\n{text}"
        );
    }
}

#[test]
fn usage_errors_exit_2_and_other_errors_3_with_one_line_naming_the_file() {
    let _serial = serial();
    kv().assert().code(2);
    kv().args(["frobnicate", "x.db"]).assert().code(2);
    kv().args(["get", "x.db"]).assert().code(2);
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    let out = kv().arg("stat").arg(&missing).assert().code(3);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("missing.db") && err.contains("No such file"),
        "{err}"
    );
    assert!(!missing.exists(), "a read command must not create the file");
    // Not a database: one line, no panic or Debug dump.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, vec![7u8; 10000]).unwrap();
    let out = kv().arg("stat").arg(&junk).assert().failure();
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("shadowkv: ") && err.contains("junk.db"),
        "{err}"
    );
    assert!(!err.contains("panicked") && !err.contains("{"), "{err}");
}

#[test]
fn stat_reports_sizes_tables_and_roots() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 500);
    kv().args(["snapshot", "create"])
        .arg(&db)
        .arg("nightly")
        .assert()
        .success();
    let text = ok(kv().arg("stat").arg(&db));
    for word in [
        "page size",
        "file",
        "live",
        "free",
        "pending",
        "users",
        "big",
        "nightly",
        "main",
    ] {
        assert!(text.contains(word), "{word} missing:\n{text}");
    }
    let s = json(kv().arg("stat").arg(&db).arg("--json"));
    assert_eq!(s["page_size"], 4096);
    assert!(s["file_bytes"].as_u64().unwrap() > 0);
    assert!(s["live_bytes"].as_u64().unwrap() > 0);
    assert!(s["free_bytes"].is_u64() && s["pending_bytes"].is_u64());
    let tables = s["tables"].as_array().unwrap();
    let big = tables.iter().find(|t| t["name"] == "big").unwrap();
    assert_eq!(big["entries"], 500);
    assert_eq!(big["key_bytes"], 500 * 11);
    assert_eq!(big["value_bytes"], 500 * 100);
    assert!(big["depth"].as_u64().unwrap() >= 2);
    let users = tables.iter().find(|t| t["name"] == "users").unwrap();
    assert_eq!(
        (users["entries"].as_u64(), users["value_bytes"].as_u64()),
        (Some(2), Some(2))
    );
    assert_eq!(s["snapshots"][0]["name"], "nightly");
    assert!(s["snapshots"][0]["exclusive_bytes"].is_u64());
    assert_eq!(s["branches"][0]["name"], "main");
}

#[test]
fn tables_get_scan_as_text_or_hex_at_any_view() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 20);
    assert_eq!(ok(kv().arg("tables").arg(&db)), "big\nbin\nusers\n");
    let t = json(kv().arg("tables").arg(&db).arg("--json"));
    assert_eq!(t[2]["name"], "users");
    assert_eq!(t[2]["entries"], 2);
    assert_eq!(ok(kv().arg("get").arg(&db).args(["users", "alice"])), "1\n");
    assert_eq!(
        ok(kv().arg("get").arg(&db).args(["bin", "0x00ff"])),
        "0x0102\n"
    );
    assert_eq!(
        ok(kv().arg("get").arg(&db).args(["bin", "00ff", "--hex"])),
        "0102\n"
    );
    assert_eq!(
        ok(kv()
            .arg("get")
            .arg(&db)
            .args(["users", "616c696365", "--hex"])),
        "31\n"
    );
    kv().arg("get")
        .arg(&db)
        .args(["users", "zed"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("not found").and(predicate::str::contains("zed")));
    kv().arg("get")
        .arg(&db)
        .args(["nope", "zed"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("table \"nope\""));
    assert_eq!(
        ok(kv().arg("scan").arg(&db).arg("users")),
        "alice\t1\nbob\t2\n"
    );
    assert_eq!(
        ok(kv().arg("scan").arg(&db).arg("bin")),
        "0x00\t\n0x00ff\t0x0102\n"
    );
    assert_eq!(
        ok(kv().arg("scan").arg(&db).args(["bin", "--hex"])),
        "00\t\n00ff\t0102\n"
    );
    let range = ok(kv().arg("scan").arg(&db).args([
        "big",
        "--from",
        "key00000003",
        "--to",
        "key00000010",
        "--limit",
        "4",
    ]));
    let keys: Vec<&str> = range
        .lines()
        .map(|l| l.split('\t').next().unwrap())
        .collect();
    assert_eq!(
        keys,
        ["key00000003", "key00000004", "key00000005", "key00000006"]
    );
    let to = ok(kv()
        .arg("scan")
        .arg(&db)
        .args(["big", "--to", "key00000002"]));
    assert_eq!(to.lines().count(), 2);
    // --at reads a snapshot.
    kv().args(["snapshot", "create"])
        .arg(&db)
        .arg("before")
        .assert()
        .success();
    let input =
        "VERSION=3\nformat=print\ndatabase=users\ntype=btree\nHEADER=END\n alice\n 9\nDATA=END\n";
    kv().arg("load")
        .arg(&db)
        .write_stdin(input)
        .assert()
        .success();
    assert_eq!(ok(kv().arg("get").arg(&db).args(["users", "alice"])), "9\n");
    let at = ["users", "alice", "--at", "before"];
    assert_eq!(ok(kv().arg("get").arg(&db).args(at)), "1\n");
    assert_eq!(
        ok(kv().arg("scan").arg(&db).args(["users", "--at", "before"])),
        "alice\t1\nbob\t2\n"
    );
    assert_eq!(
        ok(kv().arg("tables").arg(&db).args(["--at", "before"])),
        "big\nbin\nusers\n"
    );
    kv().arg("tables")
        .arg(&db)
        .args(["--at", "nope"])
        .assert()
        .code(3);
}

#[test]
fn dump_and_load_round_trip_in_mdb_dump_text() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 300);
    // Progress goes to standard error only when it is a terminal (here it is not), and
    // --quiet hides it anyway: nothing but the dump is written.
    let run = kv().arg("dump").arg(&db).assert().success().stderr("");
    let dump = String::from_utf8(run.get_output().stdout.clone()).unwrap();
    assert_eq!(ok(kv().args(["-q", "dump"]).arg(&db)), dump);
    assert_eq!(ok(kv().arg("dump").arg(&db).arg("--quiet")), dump);
    assert!(dump.starts_with("VERSION=3\nformat=bytevalue\ndatabase=big\ntype=btree\n"));
    assert!(
        dump.contains("HEADER=END\n 00\n \n 00ff\n 0102\nDATA=END\n"),
        "{dump}"
    );
    assert_eq!(dump.matches("DATA=END\n").count(), 3);
    // Into a new file, from standard input and from -i FILE.
    let copy = dir.path().join("copy.db");
    let out = ok(kv().arg("load").arg(&copy).write_stdin(dump.clone()));
    assert!(out.contains("loaded 304 entries into 3 tables"), "{out}");
    assert_eq!(contents(&copy), contents(&db));
    assert_eq!(ok(kv().arg("dump").arg(&copy)), dump);
    let file = dir.path().join("users.dump");
    kv().arg("dump")
        .arg(&db)
        .args(["--table", "users", "-o"])
        .arg(&file)
        .assert()
        .success();
    let one = std::fs::read_to_string(&file).unwrap();
    assert!(one.contains("database=users\n") && one.matches("DATA=END").count() == 1);
    let renamed = dir.path().join("renamed.db");
    kv().arg("load")
        .arg(&renamed)
        .args(["--table", "people", "-i"])
        .arg(&file)
        .assert()
        .success();
    assert_eq!(
        ok(kv().arg("scan").arg(&renamed).arg("people")),
        "alice\t1\nbob\t2\n"
    );
    // A snapshot's dump.
    kv().args(["snapshot", "create"])
        .arg(&db)
        .arg("s")
        .assert()
        .success();
    assert_eq!(ok(kv().arg("dump").arg(&db).args(["--at", "s"])), dump);
    kv().arg("dump")
        .arg(&db)
        .args(["--table", "nope"])
        .assert()
        .code(3);
    // The print format, LMDB's unnamed database (needs --table) and ignored header lines.
    let print = "VERSION=3\nformat=print\ntype=btree\nmapsize=1048576\nmaxreaders=126\n\
                 db_pagesize=4096\nHEADER=END\n a\\\\b\\00\n tab\\09here\nDATA=END\n";
    let p = dir.path().join("print.db");
    kv().arg("load")
        .arg(&p)
        .write_stdin(print)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("--table"));
    assert!(!p.exists(), "a failed load into a new file leaves no file");
    kv().arg("load")
        .arg(&p)
        .args(["--table", "t"])
        .write_stdin(print)
        .assert()
        .success();
    assert_eq!(
        contents(&p),
        vec![("t".into(), b"a\\b\x00".to_vec(), b"tab\there".to_vec())]
    );
}

#[test]
fn damaged_input_to_load_is_refused_and_changes_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 50);
    let before = contents(&db);
    let good = "VERSION=3\nformat=bytevalue\ndatabase=users\ntype=btree\nHEADER=END\n 7a\n 7a\n 79\n 79\nDATA=END\n";
    let damaged = [
        (&good[..good.len() - 9], "truncated"),  // truncated
        (&good[..good.len() - 14], "truncated"), // truncated after a key
        ("hello\n", "line 1"),                   // not a dump
        (&good.replace(" 79\n 79", " 7g\n 79")[..], "line 8"), // bad hex
        (&good.replace(" 79\n 79", "79\n 79")[..], "line 8"), // no leading space
        (&good.replace("type=btree", "dupsort=1")[..], "dupsort"), // duplicates
        (&good.replace("bytevalue", "base64")[..], "format"),
    ];
    for (input, says) in damaged {
        kv().arg("load")
            .arg(&db)
            .write_stdin(input)
            .assert()
            .code(3)
            .stderr(
                predicate::str::contains(says)
                    .and(predicate::str::contains("nothing was loaded"))
                    .and(predicate::str::contains("a.db")),
            );
        assert_eq!(contents(&db), before, "after {input:?}");
    }
    // Two databases, the second damaged: the first is not loaded either.
    let two = format!(
        "{good}{}",
        good.replace("users", "other")
            .replace(" 7a\n 7a\n", " 7a\n")
    );
    kv().arg("load").arg(&db).write_stdin(two).assert().code(3);
    assert_eq!(contents(&db), before);
    // A key over the limit.
    let long = format!(
        "VERSION=3\nformat=bytevalue\ndatabase=users\ntype=btree\nHEADER=END\n {}\n 00\nDATA=END\n",
        "61".repeat(shadowkv::MAX_KEY_LEN + 1)
    );
    kv().arg("load")
        .arg(&db)
        .write_stdin(long)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("line 6").and(predicate::str::contains("key")));
    assert_eq!(contents(&db), before);
}

#[test]
fn snapshots_branches_and_restore() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 10);
    let out = ok(kv().args(["snapshot", "create"]).arg(&db).arg("s1"));
    assert!(out.contains("s1"));
    kv().args(["snapshot", "create"])
        .arg(&db)
        .arg("s1")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("already exists"));
    let list = json(kv().args(["snapshot", "list"]).arg(&db).arg("--json"));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["name"], "s1");
    assert!(list[0]["txn"].is_u64() && list[0]["exclusive_bytes"].is_u64());
    assert!(list[0]["referenced_bytes"].as_u64().unwrap() > 0);
    assert!(ok(kv().args(["snapshot", "list"]).arg(&db)).contains("s1"));

    kv().args(["branch", "create"])
        .arg(&db)
        .args(["exp", "--from", "s1"])
        .assert()
        .success();
    let branches = json(kv().args(["branch", "list"]).arg(&db).arg("--json"));
    let names: Vec<&str> = branches
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["exp", "main"]);
    assert!(ok(kv().args(["branch", "list"]).arg(&db)).contains("exp"));

    // Change main, snapshot it on a branch, restore main.
    let input =
        "VERSION=3\nformat=print\ndatabase=users\ntype=btree\nHEADER=END\n carol\n 3\nDATA=END\n";
    kv().arg("load")
        .arg(&db)
        .write_stdin(input)
        .assert()
        .success();
    assert_eq!(ok(kv().arg("get").arg(&db).args(["users", "carol"])), "3\n");
    kv().args(["snapshot", "create"])
        .arg(&db)
        .args(["of-exp", "--branch", "exp"])
        .assert()
        .success();
    kv().arg("get")
        .arg(&db)
        .args(["users", "carol", "--at", "of-exp"])
        .assert()
        .code(3);
    let out = ok(kv().arg("restore").arg(&db).args(["main", "s1"]));
    assert!(out.contains("main") && out.contains("s1"));
    kv().arg("get")
        .arg(&db)
        .args(["users", "carol"])
        .assert()
        .code(3);
    kv().arg("restore")
        .arg(&db)
        .args(["main", "nope"])
        .assert()
        .code(3);

    kv().args(["snapshot", "delete"])
        .arg(&db)
        .arg("s1")
        .assert()
        .success();
    kv().args(["snapshot", "delete"])
        .arg(&db)
        .arg("s1")
        .assert()
        .code(3);
    kv().args(["branch", "delete"])
        .arg(&db)
        .arg("exp")
        .assert()
        .success();
    let list = json(kv().args(["snapshot", "list"]).arg(&db).arg("--json"));
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(
        json(kv().args(["branch", "list"]).arg(&db).arg("--json"))[0]["name"],
        "main"
    );
}

#[test]
fn diff_marks_values_exit_code_and_json() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 10);
    kv().args(["snapshot", "create"])
        .arg(&db)
        .arg("a")
        .assert()
        .success();
    // No change: empty, exit 0 even with --exit-code.
    assert_eq!(
        ok(kv().arg("diff").arg(&db).args(["a", "main", "--exit-code"])),
        ""
    );
    assert_eq!(
        json(kv().arg("diff").arg(&db).args(["a", "main", "--json"])),
        serde_json::json!([])
    );
    {
        let handle = shadowkv::Database::open(&db).unwrap();
        let tx = handle.begin_write().unwrap();
        let mut users = tx.open_table("users").unwrap();
        users.insert(b"alice", b"one").unwrap();
        users.remove(b"bob").unwrap();
        users.insert(b"carol", b"3").unwrap();
        tx.open_table("bin")
            .unwrap()
            .insert(b"\x01", b"\xfe")
            .unwrap();
        tx.commit().unwrap();
    }
    let text = ok(kv().arg("diff").arg(&db).args(["a", "main"]));
    assert_eq!(
        text,
        "+\tbin\t0x01\nM\tusers\talice\n-\tusers\tbob\n+\tusers\tcarol\n"
    );
    let values = ok(kv().arg("diff").arg(&db).args(["a", "main", "--values"]));
    assert_eq!(
        values,
        "+\tbin\t0x01\t0xfe\nM\tusers\talice\t1\tone\n-\tusers\tbob\t2\n+\tusers\tcarol\t3\n"
    );
    let back = ok(kv().arg("diff").arg(&db).args(["main", "a"]));
    assert_eq!(
        back,
        "-\tbin\t0x01\nM\tusers\talice\n+\tusers\tbob\n-\tusers\tcarol\n"
    );
    kv().arg("diff")
        .arg(&db)
        .args(["a", "main", "--exit-code"])
        .assert()
        .code(1);
    let j = json(
        kv().arg("diff")
            .arg(&db)
            .args(["a", "main", "--json", "--values"]),
    );
    let j = j.as_array().unwrap();
    assert_eq!(j.len(), 4);
    assert_eq!(
        (j[0]["change"].as_str(), j[0]["key_hex"].as_str()),
        (Some("+"), Some("01"))
    );
    assert_eq!(j[0]["new_hex"], "fe");
    assert_eq!(
        (
            j[1]["change"].as_str(),
            j[1]["old"].as_str(),
            j[1]["new"].as_str()
        ),
        (Some("M"), Some("1"), Some("one"))
    );
    assert_eq!(j[2]["change"], "-");
    assert!(j[2].get("new").is_none());
    kv().arg("diff")
        .arg(&db)
        .args(["a", "nope"])
        .assert()
        .code(3);
}

#[test]
fn send_and_receive_full_incremental_and_damaged() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 200);
    kv().args(["snapshot", "create"])
        .arg(&db)
        .arg("s1")
        .assert()
        .success();
    let input =
        "VERSION=3\nformat=print\ndatabase=users\ntype=btree\nHEADER=END\n carol\n 3\nDATA=END\n";
    kv().arg("load")
        .arg(&db)
        .write_stdin(input)
        .assert()
        .success();
    kv().args(["snapshot", "create"])
        .arg(&db)
        .arg("s2")
        .assert()
        .success();
    let full = dir.path().join("full.stream");
    let out = ok(kv().arg("send").arg(&db).args(["s1", "-o"]).arg(&full));
    assert!(out.contains("s1") && out.contains("full.stream"), "{out}");
    let incremental = kv()
        .arg("send")
        .arg(&db)
        .args(["s2", "--base", "s1"])
        .assert()
        .success();
    let incremental = incremental.get_output().stdout.clone();
    assert!(!incremental.is_empty());

    // Damaged streams: refused with a clear message, the replica unchanged.
    let replica = dir.path().join("replica.db");
    let bytes = std::fs::read(&full).unwrap();
    kv().arg("receive")
        .arg(&replica)
        .write_stdin(&bytes[..bytes.len() / 2])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("bad stream").and(predicate::str::contains("unchanged")));
    assert!(
        !replica.exists(),
        "a failed receive into a new file leaves no file"
    );
    kv().arg("receive")
        .arg(&replica)
        .args(["-i"])
        .arg(&full)
        .assert()
        .success()
        .stdout("received snapshot s1\n");
    let before = ok(kv().args(["snapshot", "list", "--json"]).arg(&replica));
    let mut flipped = incremental.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x55;
    kv().arg("receive")
        .arg(&replica)
        .write_stdin(flipped)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("bad stream"));
    kv().arg("receive")
        .arg(&replica)
        .write_stdin(&b"not a stream at all"[..])
        .assert()
        .code(3);
    assert_eq!(
        ok(kv().args(["snapshot", "list", "--json"]).arg(&replica)),
        before
    );

    kv().arg("receive")
        .arg(&replica)
        .write_stdin(incremental.clone())
        .assert()
        .success()
        .stdout("received snapshot s2\n");
    assert_eq!(
        ok(kv()
            .arg("get")
            .arg(&replica)
            .args(["users", "carol", "--at", "s2"])),
        "3\n"
    );
    assert_eq!(
        ok(kv().arg("dump").arg(&replica).args(["--at", "s2"])),
        ok(kv().arg("dump").arg(&db).args(["--at", "s2"]))
    );
    // Streams concatenate: a full and an incremental in one input.
    let both = [bytes.clone(), incremental].concat();
    let second = dir.path().join("second.db");
    let out = ok(kv().arg("receive").arg(&second).write_stdin(both));
    assert_eq!(out, "received snapshot s1\nreceived snapshot s2\n");
    kv().arg("send")
        .arg(&db)
        .arg("nope")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("nope"));
}

#[test]
fn backup_and_compact() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 3000);
    kv().args(["snapshot", "create"])
        .arg(&db)
        .arg("s")
        .assert()
        .success();
    let dest = dir.path().join("backup.db");
    let out = ok(kv().arg("backup").arg(&db).arg(&dest));
    assert!(out.contains("backup.db"));
    assert_eq!(contents(&dest), contents(&db));
    assert_eq!(
        json(kv().args(["snapshot", "list", "--json"]).arg(&dest))[0]["name"],
        "s"
    );
    kv().arg("backup")
        .arg(&db)
        .arg(&dest)
        .assert()
        .code(3)
        .stderr(predicate::str::contains("backup.db").and(predicate::str::contains("exists")));
    // Remove most of the data, then compact.
    {
        let handle = shadowkv::Database::open(&db).unwrap();
        kv().args(["snapshot", "delete"])
            .arg(&db)
            .arg("s")
            .assert()
            .code(3); // locked by us
        let tx = handle.begin_write().unwrap();
        tx.open_table("big")
            .unwrap()
            .remove_range(&b"key00000100"[..]..)
            .unwrap();
        tx.commit().unwrap();
    }
    kv().args(["snapshot", "delete"])
        .arg(&db)
        .arg("s")
        .assert()
        .success();
    let r = json(kv().arg("compact").arg(&db).arg("--json"));
    assert!(
        r["bytes_after"].as_u64() < r["bytes_before"].as_u64(),
        "{r}"
    );
    assert!(ok(kv().arg("compact").arg(&db)).contains("->"));
    kv().arg("check").arg(&db).assert().success();
    assert_eq!(contents(&db).len(), 2 + 2 + 100);
}

#[test]
fn check_is_clean_then_finds_corruption_and_names_the_page() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 4000);
    kv().arg("compact").arg(&db).assert().success();
    let out = ok(kv().arg("check").arg(&db));
    assert!(out.contains("ok"), "{out}");
    let report = json(kv().arg("check").arg(&db).arg("--json"));
    assert_eq!(report["ok"], true);
    assert_eq!(report["report"]["main_entries"], 4004);
    // Damage a page in the middle of the file, which after the compaction holds table data.
    let mut bytes = std::fs::read(&db).unwrap();
    let pages = bytes.len() / 4096;
    let page = pages / 2;
    for b in &mut bytes[page * 4096 + 1000..page * 4096 + 1016] {
        *b ^= 0xa5;
    }
    std::fs::write(&db, &bytes).unwrap();
    let out = kv().arg("check").arg(&db).assert().code(1);
    let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
    assert!(
        err.contains("a.db") && err.contains(&format!("page {page}")),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    let out = kv().arg("check").arg(&db).arg("--json").assert().code(1);
    let report: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(report["ok"], false);
    assert_eq!(report["page"], page as u64);
    assert!(report["reason"].is_string());
    // Reading the damaged data fails with the same code.
    kv().arg("dump").arg(&db).arg("-q").assert().code(1);
}

#[test]
fn a_locked_database_is_refused_at_once_naming_the_holder() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let db = fixture(dir.path(), "a.db", 10);
    let holder = shadowkv::Database::open(&db).unwrap();
    for args in [&["stat"][..], &["check"], &["tables"], &["compact"]] {
        let start = Instant::now();
        let out = kv()
            .args(args)
            .arg(&db)
            .timeout(Duration::from_secs(20))
            .assert()
            .code(3);
        assert!(start.elapsed() < Duration::from_secs(10), "{args:?} waited");
        let err = String::from_utf8(out.get_output().stderr.clone()).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("a.db") && err.contains("locked"), "{err}");
        assert!(
            err.contains(&format!("process {}", std::process::id())),
            "names the holder: {err}"
        );
    }
    drop(holder);
    kv().arg("stat").arg(&db).assert().success();
}
