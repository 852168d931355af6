//! Fuzzes the WebSocket frame parser with chunked input, as nats-server
//! fuzzes its parser: the first byte picks a chunk size, the rest is the
//! byte stream a client sends. Any stream must parse to messages or an
//! error, never a panic; feeding it in chunks must give exactly what
//! feeding it whole gives; and the parser never holds more bytes than
//! arrived.
//!
//! Run from `broker/`: `cargo fuzz run frames` (see README, "Fuzzing").

#![no_main]

use herald_broker::fuzz_api::{FrameParser, Incoming};
use libfuzzer_sys::fuzz_target;

/// Message limit for the run: small, so the size checks are reached.
const MAX_MESSAGE: usize = 4096;

/// What a stream parsed to: the messages, then the error if one ended it.
fn parse(stream: &[u8], chunk: usize) -> (Vec<Incoming>, Option<String>) {
    let mut parser = FrameParser::new(&[], MAX_MESSAGE);
    let mut messages = Vec::new();
    let mut fed = 0;
    for piece in stream.chunks(chunk) {
        parser.buffer().extend_from_slice(piece);
        fed += piece.len();
        loop {
            match parser.parse() {
                Ok(Some(message)) => messages.push(message),
                Ok(None) => break,
                Err(error) => return (messages, Some(error.to_string())),
            }
        }
        assert!(parser.buffer().len() <= fed, "holds more than arrived");
    }
    (messages, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let whole = parse(stream, stream.len().max(1));
    let chunked = parse(stream, usize::from(seed % 64) + 1);
    assert_eq!(whole, chunked, "chunking changed the result");
});
