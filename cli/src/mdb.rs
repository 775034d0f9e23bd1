//! The text format of LMDB's `mdb_dump` and `mdb_load`.
//!
//! A stream is one or more databases, each a header and its data:
//!
//! ```text
//! VERSION=3
//! format=bytevalue
//! database=users
//! type=btree
//! HEADER=END
//!  616c696365
//!  31
//! DATA=END
//! ```
//!
//! Each entry is a key line and a value line, both starting with one space. `bytevalue`
//! writes hex pairs; `print` (read only) writes printable bytes as themselves, `\\` for a
//! backslash and `\` with two hex digits for any other byte (a backslash followed by neither
//! is taken as itself: LMDB 0.9's mdb_dump -p writes backslashes unescaped). Header lines this tool does not
//! need (`mapsize`, `maxreaders`, `db_pagesize`, ...) are read and ignored, as `mdb_load`
//! does; the flags for duplicate keys and non-bytewise key orders are refused, since a
//! shadowkv table holds one value per key in bytewise order.

use std::io::{self, BufRead, Write};

/// The LMDB flags that a header may carry (`NAME=1`), none of which a shadowkv table can hold.
const REFUSED_FLAGS: [&str; 7] = [
    "duplicates",
    "dupsort",
    "dupfixed",
    "integerdup",
    "reversedup",
    "integerkey",
    "reversekey",
];

/// Writes the header of one database. `mapsize` is a hint for `mdb_load`, which sizes the
/// LMDB environment it creates by it.
pub fn write_header(out: &mut dyn Write, name: &str, mapsize: u64) -> io::Result<()> {
    write!(
        out,
        "VERSION=3\nformat=bytevalue\ndatabase={name}\ntype=btree\nmapsize={mapsize}\nHEADER=END\n"
    )
}

/// Writes one entry as two hex lines.
pub fn write_entry(out: &mut dyn Write, key: &[u8], value: &[u8]) -> io::Result<()> {
    out.write_all(b" ")?;
    out.write_all(hex::encode(key).as_bytes())?;
    out.write_all(b"\n ")?;
    out.write_all(hex::encode(value).as_bytes())?;
    out.write_all(b"\n")
}

/// Ends one database.
pub fn write_end(out: &mut dyn Write) -> io::Result<()> {
    out.write_all(b"DATA=END\n")
}

/// What reading a stream can meet.
#[derive(Debug)]
pub enum Event {
    /// A database begins; `name` is its `database=` line, None for LMDB's unnamed database.
    Begin { name: Option<String> },
    /// One entry of the current database.
    Entry { key: Vec<u8>, value: Vec<u8> },
    /// The current database ended (`DATA=END`).
    End,
}

/// Why a stream could not be read: the line and what was wrong with it.
#[derive(Debug)]
pub enum ReadError {
    Io(io::Error),
    Bad { line: u64, reason: String },
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Io(e) => write!(f, "cannot read the input: {e}"),
            ReadError::Bad { line, reason } => write!(f, "line {line}: {reason}"),
        }
    }
}

/// Reads a stream, calling `on` for each event in order.
pub fn read(
    input: &mut dyn BufRead,
    mut on: impl FnMut(Event, u64) -> Result<(), String>,
) -> Result<(), ReadError> {
    let mut reader = Lines {
        input,
        line: 0,
        buf: Vec::new(),
    };
    let mut databases = 0u64;
    loop {
        // The end of the input between databases (or an empty input, as mdb_load takes it).
        let Some(format) = read_header(&mut reader, &mut on, databases)? else {
            return Ok(());
        };
        databases += 1;
        loop {
            if !reader.next()? {
                return Err(reader.bad("input ends before DATA=END (truncated?)"));
            }
            if reader.buf == b"DATA=END" {
                on(Event::End, reader.line).map_err(|r| reader.bad(r))?;
                break;
            }
            let key = reader.data(format)?;
            let key_line = reader.line;
            if !reader.next()? {
                return Err(reader.bad("input ends after a key, before its value (truncated?)"));
            }
            if reader.buf == b"DATA=END" {
                return Err(reader.bad("DATA=END after a key without its value"));
            }
            let value = reader.data(format)?;
            // An entry the caller refuses is reported at its key's line.
            on(Event::Entry { key, value }, key_line).map_err(|reason| ReadError::Bad {
                line: key_line,
                reason,
            })?;
        }
    }
}

#[derive(Clone, Copy)]
enum Format {
    Bytevalue,
    Print,
}

/// Reads one header through `HEADER=END`; None at the end of the input before any line.
fn read_header(
    reader: &mut Lines<'_>,
    on: &mut impl FnMut(Event, u64) -> Result<(), String>,
    databases: u64,
) -> Result<Option<Format>, ReadError> {
    let mut format = Format::Bytevalue;
    let mut name = None;
    let mut first = true;
    loop {
        if !reader.next()? {
            if first {
                return Ok(None);
            }
            return Err(reader.bad("input ends inside a header, before HEADER=END (truncated?)"));
        }
        let line = String::from_utf8_lossy(&reader.buf).into_owned();
        if first && !line.starts_with("VERSION=") {
            let what = if databases == 0 {
                "not an mdb_dump stream: it should start with VERSION=3"
            } else {
                "expected VERSION=3 to begin the next database"
            };
            return Err(reader.bad(what));
        }
        first = false;
        if line == "HEADER=END" {
            on(Event::Begin { name }, reader.line).map_err(|r| reader.bad(r))?;
            return Ok(Some(format));
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(reader.bad(format!("unexpected header line {line:?}")));
        };
        match key {
            "VERSION" => match value.parse::<u32>() {
                Ok(1..=3) => {}
                _ => return Err(reader.bad(format!("unsupported VERSION={value} (3 is read)"))),
            },
            "format" => {
                format = match value {
                    "bytevalue" => Format::Bytevalue,
                    "print" => Format::Print,
                    _ => return Err(reader.bad(format!("unsupported format={value}"))),
                }
            }
            "database" => name = Some(value.to_string()),
            "type" if value != "btree" => {
                return Err(reader.bad(format!("unsupported type={value} (btree is read)")))
            }
            flag if REFUSED_FLAGS.contains(&flag) && value != "0" => {
                return Err(reader.bad(format!(
                    "{flag}={value} is not supported: a shadowkv table holds one value per key, \
                     keys in bytewise order"
                )))
            }
            // type=btree, mapsize, mapaddr, maxreaders, db_pagesize, and anything else:
            // ignored, as mdb_load ignores what it does not know.
            _ => {}
        }
    }
}

struct Lines<'a> {
    input: &'a mut dyn BufRead,
    line: u64,
    buf: Vec<u8>,
}

impl Lines<'_> {
    /// Reads the next line into `buf`, without its line end; false at the end of the input.
    fn next(&mut self) -> Result<bool, ReadError> {
        self.buf.clear();
        let n = self
            .input
            .read_until(b'\n', &mut self.buf)
            .map_err(ReadError::Io)?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        Ok(true)
    }

    fn bad(&self, reason: impl Into<String>) -> ReadError {
        ReadError::Bad {
            line: self.line,
            reason: reason.into(),
        }
    }

    /// The bytes of a key or value line.
    fn data(&self, format: Format) -> Result<Vec<u8>, ReadError> {
        let Some(text) = self.buf.strip_prefix(b" ") else {
            return Err(self.bad(
                "expected a key or value line (starting with a space) or DATA=END".to_string(),
            ));
        };
        match format {
            Format::Bytevalue => hex::decode(text)
                .map_err(|e| self.bad(format!("bad hex in a key or value line: {e}"))),
            Format::Print => Ok(unprint(text)),
        }
    }
}

/// Decodes a `format=print` line.
fn unprint(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] != b'\\' {
            out.push(text[i]);
            i += 1;
        } else if text.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let Some(byte) = text.get(i + 1..i + 3).and_then(|p| hex::decode(p).ok()) {
            out.push(byte[0]);
            i += 3;
        } else {
            // A backslash followed by neither: itself. mdb_dump -p (0.9.x) writes a backslash
            // unescaped, so this is how its output means it.
            out.push(b'\\');
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        read(&mut text.as_bytes(), |e, _| {
            out.push(format!("{e:?}"));
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(out)
    }

    #[test]
    fn reads_both_formats_and_several_databases() {
        let text = "VERSION=3\nformat=bytevalue\ndatabase=a\ntype=btree\nmapsize=1\nHEADER=END\n 6b\n 76\nDATA=END\n\
                    VERSION=3\nformat=print\ntype=btree\nHEADER=END\n k\\\\\\01\n v\nDATA=END\n";
        let got = events(text).unwrap();
        assert_eq!(got.len(), 6);
        assert!(got[3].contains("None"));
        assert!(got[4].contains("[107, 92, 1]"), "{got:?}");
    }

    #[test]
    fn refuses_damage() {
        let whole = "VERSION=3\nformat=bytevalue\ntype=btree\nHEADER=END\n 6b\n 76\nDATA=END\n";
        for cut in 1..whole.len() - 1 {
            let err = events(&whole[..cut]);
            assert!(err.is_err() || whole[..cut].ends_with("DATA=END"), "{cut}");
        }
        assert!(events("hello\n").unwrap_err().contains("line 1"));
        assert!(events("VERSION=3\nHEADER=END\n zz\n 00\nDATA=END\n")
            .unwrap_err()
            .contains("line 3"));
        assert!(events("VERSION=3\ndupsort=1\nHEADER=END\nDATA=END\n").is_err());
    }
}
