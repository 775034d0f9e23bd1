//! Fixed-width codecs: the integers, `bool` and `()`.
//!
//! Invariants: every encoding here has one width per type and sorts like the values:
//! unsigned integers big-endian; signed integers big-endian with the sign bit flipped (so
//! `MIN` encodes as all zeros and `-1 < 0`); `false` as 0x00 and `true` as 0x01; `()` as no
//! bytes. Decoding accepts exactly the width, and for `bool` only 0x00 and 0x01.

use super::codec::{fixed, split, Codec, CodecError, Element, Key};

/// `Element` for a fixed-width codec: the part is the plain encoding.
macro_rules! fixed_element {
    ($t:ty, $width:expr) => {
        impl Element for $t {
            type Part<'a> = <$t as Codec>::Ref<'a>;
            fn encode_part(value: Self::In<'_>, out: &mut Vec<u8>) -> Result<(), CodecError> {
                <$t as Codec>::encode(value, out)
            }
            fn decode_part(bytes: &[u8]) -> Result<(Self::Part<'_>, &[u8]), CodecError> {
                let (head, rest) = split(bytes, $width)?;
                Ok((<$t as Codec>::decode(head)?, rest))
            }
        }
        impl Key for $t {}
    };
}

macro_rules! unsigned {
    ($($t:ty),*) => {$(
        impl Codec for $t {
            type In<'a> = $t;
            type Ref<'a> = $t;
            fn type_name() -> String {
                stringify!($t).to_string()
            }
            fn encode(value: $t, out: &mut Vec<u8>) -> Result<(), CodecError> {
                out.extend_from_slice(&value.to_be_bytes());
                Ok(())
            }
            fn decode(bytes: &[u8]) -> Result<$t, CodecError> {
                Ok(<$t>::from_be_bytes(fixed(bytes)?))
            }
        }
        fixed_element!($t, std::mem::size_of::<$t>());
    )*};
}

macro_rules! signed {
    ($($t:ty => $u:ty),*) => {$(
        impl Codec for $t {
            type In<'a> = $t;
            type Ref<'a> = $t;
            fn type_name() -> String {
                stringify!($t).to_string()
            }
            fn encode(value: $t, out: &mut Vec<u8>) -> Result<(), CodecError> {
                let flipped = (value as $u) ^ (1 << (<$u>::BITS - 1));
                out.extend_from_slice(&flipped.to_be_bytes());
                Ok(())
            }
            fn decode(bytes: &[u8]) -> Result<$t, CodecError> {
                let flipped = <$u>::from_be_bytes(fixed(bytes)?);
                Ok((flipped ^ (1 << (<$u>::BITS - 1))) as $t)
            }
        }
        fixed_element!($t, std::mem::size_of::<$t>());
    )*};
}

unsigned!(u8, u16, u32, u64, u128);
signed!(i8 => u8, i16 => u16, i32 => u32, i64 => u64, i128 => u128);

impl Codec for bool {
    type In<'a> = bool;
    type Ref<'a> = bool;
    fn type_name() -> String {
        "bool".to_string()
    }
    fn encode(value: bool, out: &mut Vec<u8>) -> Result<(), CodecError> {
        out.push(u8::from(value));
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<bool, CodecError> {
        match bytes {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(CodecError::new(format!("{bytes:?} is not a bool"))),
        }
    }
}
fixed_element!(bool, 1);

impl Codec for () {
    type In<'a> = ();
    type Ref<'a> = ();
    fn type_name() -> String {
        "()".to_string()
    }
    fn encode(_: (), _: &mut Vec<u8>) -> Result<(), CodecError> {
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<(), CodecError> {
        fixed::<0>(bytes).map(drop)
    }
}
fixed_element!((), 0);

#[cfg(test)]
mod tests {
    use super::*;

    fn enc<C: Codec>(v: C::In<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        C::encode(v, &mut out).unwrap();
        out
    }

    #[test]
    fn signed_order_and_bytes() {
        assert_eq!(enc::<i8>(i8::MIN), [0x00]);
        assert_eq!(enc::<i8>(-1), [0x7F]);
        assert_eq!(enc::<i8>(0), [0x80]);
        assert_eq!(enc::<i16>(1), [0x80, 0x01]);
        assert_eq!(i64::decode(&enc::<i64>(-5)).unwrap(), -5);
        assert!(u32::decode(&[1, 2, 3]).is_err());
        assert!(bool::decode(&[2]).is_err());
        assert!(<()>::decode(&[0]).is_err());
    }
}
