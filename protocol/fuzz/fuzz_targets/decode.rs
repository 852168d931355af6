//! Fuzzes the envelope decoder: any bytes at all must decode to an envelope
//! or an error, never a panic; and whatever decodes must survive a round
//! trip (encode, decode again) unchanged, with stable bytes.
//!
//! Run from `protocol/`: `cargo +nightly fuzz run decode`.

#![no_main]

use bytes::Bytes;
use herald_protocol::{decode, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = decode(&Bytes::copy_from_slice(data)) else {
        return;
    };
    let encoded = encode(&envelope);
    let again = decode(&Bytes::from(encoded.clone())).expect("re-encoded envelope must decode");
    assert_eq!(again, envelope, "round trip changed the envelope");
    assert_eq!(encode(&again), encoded, "encoding is not stable");
});
