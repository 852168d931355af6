//! [`Payload`]: an event's bytes as the wire carries them, for relays that
//! pass payloads on without decoding them.
//!
//! A payload is one MessagePack value, the one argument of a native emit;
//! or, with the `args` flag, a MessagePack array of several arguments (a
//! Socket.IO client's `emit(ev, a, b)` or multi-value ack). Typed handlers
//! see the bytes decoded as their type; raw handlers
//! ([`Namespace::on_raw`](crate::Namespace::on_raw),
//! [`Namespace::on_request_raw`](crate::Namespace::on_request_raw)) and raw
//! emits ([`Emitter::emit_raw`](crate::Emitter::emit_raw)) keep the bytes
//! and the flag together, so a relay forwards `...args` exactly.

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// MessagePack bytes, and whether they hold several arguments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Payload {
    /// One MessagePack value (an array when `args` is true).
    pub bytes: Bytes,
    /// The bytes are an array whose items are the arguments, to be spread
    /// by receivers that take arguments (Socket.IO clients).
    pub args: bool,
}

impl Payload {
    /// One argument: `bytes` is the MessagePack of one value.
    pub fn one(bytes: impl Into<Bytes>) -> Payload {
        Payload {
            bytes: bytes.into(),
            args: false,
        }
    }

    /// Several arguments: `array` is the MessagePack of an array, one item
    /// per argument.
    pub fn args(array: impl Into<Bytes>) -> Payload {
        Payload {
            bytes: array.into(),
            args: true,
        }
    }

    /// One argument, encoded with the SDK's convention
    /// (`rmp_serde::to_vec_named`).
    pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Payload, Error> {
        encode(value).map(Payload::one)
    }

    /// The bytes decoded as `T` (with `args`, `T` should be a tuple or a
    /// sequence: the array of arguments).
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Error> {
        rmp_serde::from_slice(&self.bytes).map_err(|e| Error::Decode(e.to_string()))
    }
}

/// The SDK's payload convention: a MessagePack map keyed by field name.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Bytes, Error> {
    rmp_serde::to_vec_named(value)
        .map(Bytes::from)
        .map_err(|e| Error::Encode(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_and_several_arguments() {
        let one = Payload::encode(&7_u8).expect("encodes");
        assert_eq!(one, Payload::one(vec![0x07]));
        assert_eq!(one.decode::<u8>(), Ok(7));

        let several = Payload::args(rmp_serde::to_vec(&(1_u8, "a")).expect("encodes"));
        assert!(several.args);
        assert_eq!(several.decode::<(u8, String)>(), Ok((1, "a".to_owned())));
        assert!(matches!(several.decode::<u8>(), Err(Error::Decode(_))));
    }
}
