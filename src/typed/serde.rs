//! The serde value codec (feature `serde`): any `Serialize + DeserializeOwned` type, stored in
//! the `postcard` format.
//!
//! Invariants: `Postcard<T>` is a value codec only. Postcard writes integers as varints
//! and strings length-first, so its bytes do not sort like the values: it does not
//! implement `Key`, and a table cannot use it as its key type. Decoding takes the whole
//! stored encoding (bytes left over are an error) and always copies into a new `T`.

use super::codec::{Codec, CodecError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;

/// Values of any serde type `T`, stored with `postcard`. Its type name is `postcard`: the
/// check at open catches a table of another encoding, not a `Postcard` of another `T`. For
/// a name of its own, wrap it: implement [`Codec`] for a marker type whose `encode` and
/// `decode` call `Postcard::<T>`'s and whose `type_name` is what you choose.
pub struct Postcard<T>(PhantomData<fn() -> T>);

impl<T: Serialize + DeserializeOwned + 'static> Codec for Postcard<T> {
    type In<'a> = &'a T;
    type Ref<'a> = T;
    fn type_name() -> String {
        "postcard".to_string()
    }
    fn encode(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
        let bytes =
            postcard::to_allocvec(value).map_err(|e| CodecError::new(format!("postcard: {e}")))?;
        out.extend_from_slice(&bytes);
        Ok(())
    }
    fn decode(bytes: &[u8]) -> Result<T, CodecError> {
        let (value, rest) = postcard::take_from_bytes(bytes)
            .map_err(|e| CodecError::new(format!("postcard: {e}")))?;
        match rest.is_empty() {
            true => Ok(value),
            false => Err(CodecError::new(format!(
                "postcard: {} bytes past the value",
                rest.len()
            ))),
        }
    }
}
