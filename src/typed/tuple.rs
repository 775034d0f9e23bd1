//! Tuples of 2 to 4 codecs.
//!
//! Invariants: a tuple is the part encodings of every member but the last, then the last
//! member's plain encoding. Parts are prefix-free and order-preserving, so a tuple key sorts
//! lexicographically: by its first member, then its second, and so on (proved by the
//! proptests in tests/typed.rs). Nested, a tuple's part is every member's part.

use super::codec::{Codec, CodecError, Element, Key};

macro_rules! tuple {
    ($($p:ident $pv:ident),* ; $l:ident $lv:ident) => {
        impl<$($p: Element,)* $l: Codec> Codec for ($($p,)* $l,) {
            type In<'a> = ($($p::In<'a>,)* $l::In<'a>,);
            type Ref<'a> = ($($p::Part<'a>,)* $l::Ref<'a>,);
            fn type_name() -> String {
                let names = [$($p::type_name(),)* $l::type_name()];
                format!("({})", names.join(","))
            }
            fn encode(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
                let ($($pv,)* $lv,) = value;
                $($p::encode_part($pv, out)?;)*
                $l::encode($lv, out)
            }
            fn decode(bytes: &[u8]) -> Result<Self::Ref<'_>, CodecError> {
                let rest = bytes;
                $(let ($pv, rest) = $p::decode_part(rest)?;)*
                Ok(($($pv,)* $l::decode(rest)?,))
            }
        }

        impl<$($p: Element,)* $l: Element> Element for ($($p,)* $l,) {
            type Part<'a> = ($($p::Part<'a>,)* $l::Part<'a>,);
            fn encode_part(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
                let ($($pv,)* $lv,) = value;
                $($p::encode_part($pv, out)?;)*
                $l::encode_part($lv, out)
            }
            fn decode_part(bytes: &[u8]) -> Result<(Self::Part<'_>, &[u8]), CodecError> {
                let rest = bytes;
                $(let ($pv, rest) = $p::decode_part(rest)?;)*
                let ($lv, rest) = $l::decode_part(rest)?;
                Ok((($($pv,)* $lv,), rest))
            }
        }

        impl<$($p: Element + Key,)* $l: Key> Key for ($($p,)* $l,) {}
    };
}

tuple!(A a; B b);
tuple!(A a, B b; C c);
tuple!(A a, B b, C c; D d);

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    #[test]
    fn tuple_round_trip_and_name() {
        type T = (&'static str, u32, &'static [u8]);
        let mut out = Vec::new();
        T::encode(("a\0b", 7, b"\0tail"), &mut out).unwrap();
        assert_eq!(out, b"a\0\xffb\0\0\0\0\0\x07\0tail");
        let (s, n, b) = T::decode(&out).unwrap();
        assert_eq!((s, n, b), (Cow::Borrowed("a\0b"), 7, &b"\0tail"[..]));
        assert_eq!(T::type_name(), "(str,u32,bytes)");
        assert!(T::decode(b"a\0\0\0\0").is_err());
    }
}
