//! Keys and values on the command line: text when printable, otherwise `0x` and hex pairs.

/// How to show bytes.
#[derive(Clone, Copy, Debug)]
pub struct Shown {
    /// Always hex, without the `0x`.
    pub hex: bool,
}

impl Shown {
    /// Text when the bytes are UTF-8 without control characters and do not themselves start
    /// with `0x`; otherwise `0x` and lowercase hex pairs. With `--hex`: hex pairs alone.
    pub fn show(self, bytes: &[u8]) -> String {
        if self.hex {
            return hex::encode(bytes);
        }
        match std::str::from_utf8(bytes) {
            Ok(s) if !s.starts_with("0x") && !s.chars().any(char::is_control) => s.to_string(),
            _ => format!("0x{}", hex::encode(bytes)),
        }
    }

    /// A key given on the command line: with `--hex`, hex pairs (an `0x` in front is
    /// allowed); otherwise `0x` and hex pairs, or else the text's own bytes.
    pub fn parse(self, arg: &str) -> Result<Vec<u8>, String> {
        let digits = arg.strip_prefix("0x");
        if self.hex {
            let digits = digits.unwrap_or(arg);
            return hex::decode(digits).map_err(|e| format!("{arg:?} is not hex pairs: {e}"));
        }
        match digits.map(hex::decode) {
            Some(Ok(bytes)) => Ok(bytes),
            _ => Ok(arg.as_bytes().to_vec()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Shown;

    #[test]
    fn text_hex_round_trip() {
        let auto = Shown { hex: false };
        for bytes in [
            &b"alice"[..],
            b"\x00\x01",
            b"0x41",
            b"tab\there",
            b"",
            "ünï".as_bytes(),
        ] {
            assert_eq!(auto.parse(&auto.show(bytes)).unwrap(), bytes);
            let hex = Shown { hex: true };
            assert_eq!(hex.parse(&hex.show(bytes)).unwrap(), bytes);
        }
        assert_eq!(auto.show(b"alice"), "alice");
        assert_eq!(auto.show(b"\x00\xff"), "0x00ff");
    }
}
