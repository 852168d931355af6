//! The Herald wire protocol, free of I/O.
//!
//! # Layout
//! - [`names`]: the rules for namespaces, event names, patterns, rooms and
//!   queue groups, and the token matcher (`*` one token, `>` the rest).
//! - [`envelope`]: the typed envelopes both sides exchange.
//! - [`codec`]: MessagePack encoding of envelopes (one envelope per binary
//!   WebSocket frame) and the forward-compatibility rule for unknown fields.
//! - [`error`]: error codes carried by `err` envelopes, close reasons, and
//!   the decode error type.
//! - [`socketio`]: Socket.IO v5 packets and the JSON ⇄ MessagePack
//!   conversion of their arguments, for the broker's Socket.IO front end.
//!
//! PROTOCOL.md at the repository root is the normative description; this
//! crate is its reference implementation, and its golden-bytes tests pin it.

pub mod codec;
pub mod envelope;
pub mod error;
pub mod names;
pub mod socketio;

pub use codec::{
    Decoded, EmitRef, EventRef, EventView, decode, decode_view, encode, encode_emit, encode_event,
    encode_event_into, encode_into, event_len_hint,
};
pub use envelope::{Envelope, Limits, Recovery, Resume, ResumeSub};
pub use error::{CloseReason, DecodeError, ErrorCode};
pub use names::{NameError, Pattern};

/// The WebSocket subprotocol a client must offer (`Sec-WebSocket-Protocol`).
pub const SUBPROTOCOL: &str = "herald.v1";

/// The protocol version carried in `hello` and `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;

/// The path of the WebSocket endpoint on a broker.
pub const WS_PATH: &str = "/v1/ws";
