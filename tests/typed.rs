//! Typed tables: round trips of every shipped codec, sort order of key encodings against
//! the types' own order (proptest), type names checked at open (also across a reopen),
//! decode errors, and a model test against `BTreeMap`.

use proptest::prelude::*;
use shadowkv::typed::{Codec, CodecError, Key, Postcard, TableDef};
use shadowkv::{Database, Error};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;

fn db() -> (tempfile::TempDir, Database) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("typed.db")).unwrap();
    (dir, db)
}

fn enc<C: Codec>(value: C::In<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    C::encode(value, &mut out).unwrap();
    out
}

/// Writes `key → value` through a typed table, reads it back on the write side and the read
/// side, and checks that both decode to what `check` expects.
fn round_trip<K: Key, V: Codec>(
    key: K::In<'_>,
    value: V::In<'_>,
    check: impl Fn(K::Ref<'_>, V::Ref<'_>),
) where
    for<'x> K::Ref<'x>: Debug,
    for<'x> V::Ref<'x>: Debug,
{
    let (_dir, db) = db();
    let def: TableDef<K, V> = TableDef::new("t");
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_typed(&def).unwrap();
        t.insert(key, value).unwrap();
        let v = t.get(key).unwrap().unwrap().into_bytes().into_owned();
        let (k2, v2) = t.first().unwrap().unwrap();
        assert_eq!(v2.bytes(), v);
        check(k2.value().unwrap(), v2.value().unwrap());
    }
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let t = rx.open_typed(&def).unwrap();
    let v = t.get(key).unwrap().unwrap();
    let (k, v2) = t.iter().unwrap().next().unwrap().unwrap();
    assert_eq!(format!("{v:?}"), format!("{v2:?}"));
    check(k, v);
    assert_eq!(t.len().unwrap(), 1);
}

#[test]
fn every_shipped_codec_round_trips() {
    round_trip::<u8, u16>(u8::MAX, 513, |k, v| assert_eq!((k, v), (255, 513)));
    round_trip::<u32, u64>(7, u64::MAX, |k, v| assert_eq!((k, v), (7, u64::MAX)));
    round_trip::<u128, i128>(u128::MAX, i128::MIN, |k, v| {
        assert_eq!((k, v), (u128::MAX, i128::MIN))
    });
    round_trip::<i8, i16>(-128, -1, |k, v| assert_eq!((k, v), (-128, -1)));
    round_trip::<i32, i64>(i32::MIN, i64::MAX, |k, v| {
        assert_eq!((k, v), (i32::MIN, i64::MAX))
    });
    round_trip::<bool, ()>(true, (), |k, v| assert_eq!((k, v), (true, ())));
    round_trip::<&str, &str>("a\0b", "ünï", |k, v| assert_eq!((k, v), ("a\0b", "ünï")));
    round_trip::<String, String>("k", "", |k, v| {
        assert_eq!((k.as_str(), v.as_str()), ("k", ""))
    });
    round_trip::<&[u8], Vec<u8>>(b"\0\xff", b"", |k, v| {
        assert_eq!((k, v), (&b"\0\xff"[..], vec![]))
    });
    round_trip::<Vec<u8>, &[u8]>(b"x", b"\0", |k, v| {
        assert_eq!((k, v), (b"x".to_vec(), &b"\0"[..]))
    });
    round_trip::<[u8; 4], [i16; 2]>([1, 2, 3, 4], [-1, 1], |k, v| {
        assert_eq!((k, v), ([1, 2, 3, 4], [-1, 1]))
    });
    round_trip::<[&str; 2], u8>(["a\0", ""], 0, |k, v| {
        assert_eq!((k, v), ([Cow::Borrowed("a\0"), Cow::Borrowed("")], 0))
    });
    round_trip::<(&str, u32), (u8, &[u8])>(("x\0y", 9), (1, b"z"), |k, v| {
        assert_eq!(k, (Cow::Borrowed("x\0y"), 9));
        assert_eq!(v, (1, &b"z"[..]));
    });
    round_trip::<(&[u8], String, i64), ()>((b"\0", "s", -3), (), |k, _| {
        assert_eq!(k, (Cow::Borrowed(&b"\0"[..]), "s".to_string(), -3))
    });
    round_trip::<((u8, &str), bool, &str, u16), u8>(((1, "n"), false, "m", 2), 0, |k, _| {
        assert_eq!(k, ((1, Cow::Borrowed("n")), false, Cow::Borrowed("m"), 2))
    });
}

#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct User {
    name: String,
    tags: Vec<String>,
    age: Option<u8>,
}

#[test]
fn postcard_values_round_trip() {
    let user = User {
        name: "ada".into(),
        tags: vec!["x".into(), String::new()],
        age: Some(36),
    };
    round_trip::<u64, Postcard<User>>(1, &user, |k, v| assert_eq!((k, &v), (1, &user)));
    assert_eq!(Postcard::<User>::type_name(), "postcard");
    assert!(Postcard::<User>::decode(&[0xff]).is_err());
    let mut bytes = enc::<Postcard<User>>(&user);
    bytes.push(0);
    assert!(
        Postcard::<User>::decode(&bytes).is_err(),
        "bytes past the value"
    );
}

#[test]
fn borrowed_reads_are_not_copies() {
    let (_dir, db) = db();
    const NAMES: TableDef<u64, &str> = TableDef::new("names");
    let tx = db.begin_write().unwrap();
    tx.open_typed(&NAMES).unwrap().insert(1, "one").unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    let t = rx.open_typed(&NAMES).unwrap();
    let typed = t.get(1).unwrap().unwrap();
    let raw = t.bytes().get(&1u64.to_be_bytes()).unwrap().unwrap();
    assert_eq!(typed.as_ptr(), raw.as_ptr());
}

#[test]
fn type_names() {
    assert_eq!(<(&str, u32)>::type_name(), "(str,u32)");
    assert_eq!(<[u8; 32]>::type_name(), "[u8;32]");
    assert_eq!(String::type_name(), <&str>::type_name());
    assert_eq!(Vec::<u8>::type_name(), "bytes");
    assert_eq!(<((i8, bool), ())>::type_name(), "((i8,bool),())");
}

#[test]
fn a_type_mismatch_is_an_error_also_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.db");
    const USERS: TableDef<u64, &str> = TableDef::new("users");
    const WRONG: TableDef<u32, &str> = TableDef::new("users");
    const SAME_ENCODING: TableDef<u64, String> = TableDef::new("users");
    {
        let db = Database::open(&path).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_typed(&USERS).unwrap().insert(1, "ada").unwrap();
        let err = tx.open_typed(&WRONG).unwrap_err();
        assert!(
            matches!(&err, Error::TypeMismatch { table, .. } if table == "users"),
            "{err}"
        );
        tx.commit().unwrap();
    }
    let db = Database::open(&path).unwrap();
    let rx = db.begin_read().unwrap();
    let err = rx.open_typed(&WRONG).unwrap_err();
    let Error::TypeMismatch {
        table,
        stored,
        requested,
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(table, "users");
    assert_eq!(stored, &("u64".to_string(), "str".to_string()));
    assert_eq!(requested, &("u32".to_string(), "str".to_string()));
    assert_eq!(
        err.to_string(),
        "table \"users\" was created with key type u64 and value type str, \
         but is opened as key type u32 and value type str"
    );
    let t = rx.open_typed(&SAME_ENCODING).unwrap();
    assert_eq!(t.get(1).unwrap().as_deref(), Some("ada"));
    let names = t.bytes().type_names().unwrap();
    assert_eq!((names.key.as_str(), names.value.as_str()), ("u64", "str"));
    drop(rx);
    let mut tx = db.begin_write().unwrap();
    assert!(matches!(
        tx.open_typed(&WRONG),
        Err(Error::TypeMismatch { .. })
    ));
    // Deleted and created again, the table takes the new types.
    tx.delete_table("users").unwrap();
    tx.open_typed(&WRONG).unwrap().insert(2, "bob").unwrap();
    tx.commit().unwrap();
    assert!(matches!(
        db.begin_read().unwrap().open_typed(&USERS),
        Err(Error::TypeMismatch { .. })
    ));
    db.check().unwrap();
}

#[test]
fn byte_tables_open_typed_and_typed_tables_open_as_bytes() {
    let (_dir, db) = db();
    const COUNTS: TableDef<&str, u64> = TableDef::new("counts");
    let tx = db.begin_write().unwrap();
    tx.open_table("counts")
        .unwrap()
        .insert(b"a", &5u64.to_be_bytes())
        .unwrap();
    {
        let mut t = tx.open_typed(&COUNTS).unwrap();
        assert_eq!(t.get("a").unwrap().unwrap().value().unwrap(), 5);
        t.insert("b", 6).unwrap();
        assert!(
            t.bytes_mut().type_names().is_none(),
            "opening typed records nothing"
        );
    }
    tx.open_typed(&TableDef::<u8, u8>::new("typed"))
        .unwrap()
        .insert(1, 2)
        .unwrap();
    tx.commit().unwrap();
    let rx = db.begin_read().unwrap();
    assert!(rx.open_table("counts").unwrap().type_names().is_none());
    // Any types open a table without names; its bytes may then fail to decode.
    let as_u32 = rx
        .open_typed(&TableDef::<&str, u32>::new("counts"))
        .unwrap();
    let err = as_u32.get("a").unwrap_err();
    assert!(
        matches!(&err, Error::Decode { table, .. } if table == "counts"),
        "{err}"
    );
    assert!(err.to_string().contains("value as u32"), "{err}");
    let raw = rx.open_table("typed").unwrap();
    assert_eq!(raw.get(&[1]).unwrap(), Some(&[2][..]));
}

/// A one-byte codec whose type name is `N` bytes long.
struct Named<const N: usize>;

impl<const N: usize> Codec for Named<N> {
    type In<'a> = u8;
    type Ref<'a> = u8;
    fn type_name() -> String {
        "x".repeat(N)
    }
    fn encode(v: u8, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.push(v);
        Ok(())
    }
    fn decode(b: &[u8]) -> Result<u8, CodecError> {
        u8::decode(b)
    }
}

impl<const N: usize> Key for Named<N> {}

#[test]
fn type_names_of_1_to_255_bytes_are_recorded() {
    let (_dir, db) = db();
    let tx = db.begin_write().unwrap();
    for bad in [
        tx.open_typed(&TableDef::<Named<256>, u8>::new("t"))
            .unwrap_err(),
        tx.open_typed(&TableDef::<u8, Named<0>>::new("t"))
            .unwrap_err(),
    ] {
        assert!(matches!(bad, Error::InvalidArgument(_)), "{bad}");
    }
    // The longest names fit in a catalog entry, with the longest table name.
    let name = "n".repeat(255);
    let def = TableDef::<Named<255>, Named<255>>::new(&name);
    tx.open_typed(&def).unwrap().insert(1, 2).unwrap();
    tx.commit().unwrap();
    assert_eq!(
        db.begin_read()
            .unwrap()
            .open_typed(&def)
            .unwrap()
            .get(1)
            .unwrap(),
        Some(2)
    );
    let other = TableDef::<Named<255>, Named<254>>::new(&name);
    assert!(matches!(
        db.begin_read().unwrap().open_typed(&other),
        Err(Error::TypeMismatch { .. })
    ));
    db.check().unwrap();
}

#[test]
fn typed_names_survive_backup_and_compaction() {
    let (dir, db) = db();
    const T: TableDef<u16, bool> = TableDef::new("t");
    let tx = db.begin_write().unwrap();
    {
        let mut t = tx.open_typed(&T).unwrap();
        for i in 0..2000 {
            t.insert(i, i % 3 == 0).unwrap();
        }
    }
    tx.commit().unwrap();
    let tx = db.begin_write().unwrap();
    tx.open_typed(&T)
        .unwrap()
        .retain(|k, _| k % 10 == 0)
        .unwrap();
    tx.commit().unwrap();
    db.compact().unwrap();
    db.check().unwrap();
    let backup = dir.path().join("backup.db");
    db.backup_to(&backup).unwrap();
    for db in [&db, &Database::open(&backup).unwrap()] {
        let rx = db.begin_read().unwrap();
        let t = rx.open_typed(&T).unwrap();
        assert_eq!(t.len().unwrap(), 200);
        assert_eq!(t.last().unwrap(), Some((1990, false)));
        assert!(rx.open_typed(&TableDef::<u16, u8>::new("t")).is_err());
    }
}

#[test]
fn write_side_conveniences() {
    let (_dir, db) = db();
    const T: TableDef<(&str, u32), i64> = TableDef::new("t");
    let tx = db.begin_write().unwrap();
    let mut t = tx.open_typed(&T).unwrap();
    for (i, name) in ["b", "a", "c", "a\0"].iter().enumerate() {
        t.insert((name, i as u32), -(i as i64)).unwrap();
    }
    assert_eq!(
        t.replace(("b", 0), 10).unwrap().unwrap().value().unwrap(),
        0
    );
    assert!(t.replace(("z", 0), 1).unwrap().is_none());
    assert_eq!(t.take(("z", 0)).unwrap().unwrap().value().unwrap(), 1);
    assert!(t.take(("z", 0)).unwrap().is_none());
    assert!(t.contains_key(("a\0", 3)).unwrap());
    let keys: Vec<String> = t
        .iter()
        .unwrap()
        .map(|e| e.unwrap().0.value().unwrap().0.into_owned())
        .collect();
    assert_eq!(keys, ["a", "a\0", "b", "c"]);
    let in_range = t.range(("a", 0)..("b", 0)).unwrap().count();
    assert_eq!(in_range, 2);
    let (k, v) = t.pop_first().unwrap().unwrap();
    assert_eq!(format!("{k:?} {v:?}"), "(\"a\", 1) -1");
    let (k, _) = t.pop_last().unwrap().unwrap();
    assert_eq!(k.value().unwrap().0, "c");
    assert_eq!(t.remove_range(("a", 0)..=("a\0", 9)).unwrap(), 1);
    assert_eq!(t.len().unwrap(), 1);
    assert!(t.remove(("b", 0)).unwrap());
    assert!(t.is_empty().unwrap());
}

/// Natural order of the values equals bytewise order of their encodings.
fn same_order<K: Key>(a: K::In<'_>, b: K::In<'_>, natural: std::cmp::Ordering) {
    assert_eq!(enc::<K>(a).cmp(&enc::<K>(b)), natural);
}

proptest! {
    #[test]
    fn unsigned_order(a: u64, b: u64, c: u8, d: u8, e: u128, f: u128) {
        same_order::<u64>(a, b, a.cmp(&b));
        same_order::<u8>(c, d, c.cmp(&d));
        same_order::<u128>(e, f, e.cmp(&f));
    }

    #[test]
    fn signed_order(a: i64, b: i64, c: i8, d: i8, e: i128, f: i128, g: i16, h: i16) {
        same_order::<i64>(a, b, a.cmp(&b));
        same_order::<i8>(c, d, c.cmp(&d));
        same_order::<i128>(e, f, e.cmp(&f));
        same_order::<i16>(g, h, g.cmp(&h));
        prop_assert_eq!(i64::decode(&enc::<i64>(a)).unwrap(), a);
    }

    #[test]
    fn string_and_bytes_order(a: String, b: String, c: Vec<u8>, d: Vec<u8>) {
        same_order::<&str>(&a, &b, a.cmp(&b));
        same_order::<&[u8]>(&c, &d, c.cmp(&d));
    }

    #[test]
    fn tuple_order(
        a in ("[a\\x00b]{0,4}", any::<u16>()), b in ("[a\\x00b]{0,4}", any::<u16>()),
        c in (prop::collection::vec(0u8..3, 0..4), any::<i8>(), "[\\x00a]{0,3}"),
        d in (prop::collection::vec(0u8..3, 0..4), any::<i8>(), "[\\x00a]{0,3}"),
    ) {
        same_order::<(&str, u16)>((&a.0, a.1), (&b.0, b.1), a.cmp(&b));
        let (ci, di) = ((&c.0[..], c.1, &c.2[..]), (&d.0[..], d.1, &d.2[..]));
        same_order::<(&[u8], i8, &str)>(ci, di, ci.cmp(&di));
        let bytes = enc::<(&[u8], i8, &str)>(ci);
        let round = <(&[u8], i8, &str)>::decode(&bytes).unwrap();
        prop_assert_eq!((&*round.0, round.1, round.2), ci);
    }

    #[test]
    fn nested_and_array_order(
        a in prop::array::uniform3("[\\x00\\x01a]{0,3}"),
        b in prop::array::uniform3("[\\x00\\x01a]{0,3}"),
        x: (u8, bool), y: (u8, bool),
    ) {
        let ai = [a[0].as_str(), a[1].as_str(), a[2].as_str()];
        let bi = [b[0].as_str(), b[1].as_str(), b[2].as_str()];
        same_order::<[&str; 3]>(ai, bi, a.cmp(&b));
        same_order::<((&str, &str), (u8, bool))>((("", &a[0]), x), (("", &b[0]), y), (&a[0], x).cmp(&(&b[0], y)));
    }

    #[test]
    fn decoding_any_bytes_never_panics(bytes: Vec<u8>) {
        let _ = <(&str, u32, &[u8])>::decode(&bytes);
        let _ = <([String; 2], (bool, i8), Vec<u8>)>::decode(&bytes);
        let _ = <&str>::decode(&bytes);
        let _ = bool::decode(&bytes);
        let _ = Postcard::<User>::decode(&bytes);
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(String, u8, i32),
    Replace(String, u8, i32),
    Remove(String, u8),
    Take(String, u8),
    PopFirst,
    PopLast,
    RetainEven,
    ExtractNegative,
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    let key = ("[ab\\x00]{0,3}", 0u8..4);
    prop_oneof![
        4 => (key.clone(), any::<i32>()).prop_map(|((s, n), v)| Op::Insert(s, n, v)),
        2 => (key.clone(), any::<i32>()).prop_map(|((s, n), v)| Op::Replace(s, n, v)),
        2 => key.clone().prop_map(|(s, n)| Op::Remove(s, n)),
        1 => key.prop_map(|(s, n)| Op::Take(s, n)),
        1 => Just(Op::PopFirst),
        1 => Just(Op::PopLast),
        1 => Just(Op::RetainEven),
        1 => Just(Op::ExtractNegative),
        1 => Just(Op::Commit),
    ]
}

const MODEL: TableDef<(&str, u8), i32> = TableDef::new("model");

type Map = BTreeMap<(String, u8), i32>;

fn apply(t: &mut shadowkv::typed::TypedTableMut<'_, (&str, u8), i32>, m: &mut Map, op: &Op) {
    match op {
        Op::Insert(s, n, v) => {
            t.insert((s, *n), *v).unwrap();
            m.insert((s.clone(), *n), *v);
        }
        Op::Replace(s, n, v) => {
            let old = t.replace((s, *n), *v).unwrap().map(|g| g.value().unwrap());
            assert_eq!(old, m.insert((s.clone(), *n), *v));
        }
        Op::Remove(s, n) => assert_eq!(
            t.remove((s, *n)).unwrap(),
            m.remove(&(s.clone(), *n)).is_some()
        ),
        Op::Take(s, n) => {
            let old = t.take((s, *n)).unwrap().map(|g| g.value().unwrap());
            assert_eq!(old, m.remove(&(s.clone(), *n)));
        }
        Op::PopFirst => {
            let got = t.pop_first().unwrap().map(|(_, v)| v.value().unwrap());
            assert_eq!(got, m.pop_first().map(|(_, v)| v));
        }
        Op::PopLast => {
            let got = t.pop_last().unwrap().map(|(_, v)| v.value().unwrap());
            assert_eq!(got, m.pop_last().map(|(_, v)| v));
        }
        Op::RetainEven => {
            let before = m.len();
            m.retain(|_, v| *v % 2 == 0);
            assert_eq!(
                t.retain(|_, v| v % 2 == 0).unwrap(),
                (before - m.len()) as u64
            );
        }
        Op::ExtractNegative => {
            let want: Vec<((String, u8), i32)> = m
                .iter()
                .filter(|(_, v)| **v < 0)
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            m.retain(|_, v| *v >= 0);
            let got: Vec<((String, u8), i32)> = t
                .extract_if(|_, v| v < 0)
                .unwrap()
                .into_iter()
                .map(|(k, v)| owned((k.value().unwrap(), v.value().unwrap())))
                .collect();
            assert_eq!(got, want);
        }
        Op::Commit => unreachable!(),
    }
}

fn owned(entry: ((Cow<'_, str>, u8), i32)) -> ((String, u8), i32) {
    let ((s, n), v) = entry;
    ((s.into_owned(), n), v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn typed_ops_match_a_btreemap(ops in prop::collection::vec(op(), 1..60)) {
        let (_dir, db) = db();
        let mut model = Map::new();
        for batch in ops.split(|op| matches!(op, Op::Commit)) {
            let tx = db.begin_write().unwrap();
            {
                let mut t = tx.open_typed(&MODEL).unwrap();
                for op in batch {
                    apply(&mut t, &mut model, op);
                }
                prop_assert_eq!(t.len().unwrap(), model.len() as u64);
            }
            tx.commit().unwrap();
            let rx = db.begin_read().unwrap();
            let t = rx.open_typed(&MODEL).unwrap();
            let got: Vec<_> = t.iter().unwrap().map(|e| owned(e.unwrap())).collect();
            let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), *v)).collect();
            prop_assert_eq!(&got, &want);
            let back: Vec<_> = t.range(("a", 0)..("b", 2)).unwrap().rev().map(|e| owned(e.unwrap())).collect();
            let low = ("a".to_string(), 0);
            let high = ("b".to_string(), 2);
            let want: Vec<_> = model.range(low..high).rev().map(|(k, v)| (k.clone(), *v)).collect();
            prop_assert_eq!(back, want);
        }
        db.check().unwrap();
    }
}

#[test]
fn streams_carry_type_names() {
    let (dir, db) = db();
    const T: TableDef<&str, u32> = TableDef::new("t");
    const RETYPED: TableDef<&str, i64> = TableDef::new("t");
    let tx = db.begin_write().unwrap();
    tx.open_typed(&T).unwrap().insert("a", 1).unwrap();
    tx.open_table("raw").unwrap().insert(b"k", b"v").unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s1").unwrap();
    let mut tx = db.begin_write().unwrap();
    tx.delete_table("t").unwrap();
    tx.open_typed(&RETYPED).unwrap().insert("b", -2).unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s2").unwrap();
    let mut out = Vec::new();
    db.send("s1", None, &mut out).unwrap();
    db.send("s2", Some("s1"), &mut out).unwrap();
    let replica = Database::open(dir.path().join("replica.db")).unwrap();
    let mut input = &out[..];
    replica.receive(&mut input).unwrap();
    replica.receive(&mut input).unwrap();
    let s1 = replica.begin_read_at("s1").unwrap();
    assert_eq!(s1.open_typed(&T).unwrap().get("a").unwrap(), Some(1));
    assert!(matches!(
        s1.open_typed(&RETYPED),
        Err(Error::TypeMismatch { .. })
    ));
    assert!(s1.open_table("raw").unwrap().type_names().is_none());
    let s2 = replica.begin_read_at("s2").unwrap();
    let t = s2.open_typed(&RETYPED).unwrap();
    assert_eq!(
        t.iter()
            .unwrap()
            .collect::<shadowkv::Result<Vec<_>>>()
            .unwrap(),
        [("b", -2)]
    );
    assert!(matches!(s2.open_typed(&T), Err(Error::TypeMismatch { .. })));
    replica.check().unwrap();
}

#[test]
fn version_1_streams_are_still_received() {
    let (dir, db) = db();
    let tx = db.begin_write().unwrap();
    tx.open_table("raw").unwrap().insert(b"k", b"v").unwrap();
    tx.commit().unwrap();
    db.create_snapshot("s1").unwrap();
    let mut out = Vec::new();
    db.send("s1", None, &mut out).unwrap();
    out[8..12].copy_from_slice(&1u32.to_le_bytes());
    shadowkv::testkit::streams::fix_stream_checksums(&mut out);
    let replica = Database::open(dir.path().join("replica.db")).unwrap();
    replica.receive(&mut &out[..]).unwrap();
    let s1 = replica.begin_read_at("s1").unwrap();
    assert_eq!(
        s1.open_table("raw").unwrap().get(b"k").unwrap(),
        Some(&b"v"[..])
    );
}
