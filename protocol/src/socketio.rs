//! Socket.IO v5 (default parser) for the broker's Socket.IO front end,
//! free of I/O: packets in and out, binary attachments, and the conversion
//! between Socket.IO arguments (JSON) and Herald payloads (MessagePack).
//!
//! # Layout
//! - [`packet`]: decoding and validating a client's packet (the text after
//!   the Engine.IO `4`), as the reference server validates it.
//! - [`assemble`]: joining a binary packet with the binary messages that
//!   follow it.
//! - [`encode`]: writing the server's packets (CONNECT answers,
//!   CONNECT_ERROR, DISCONNECT, event and ack heads).
//! - [`convert`]: arguments ⇄ payloads, and whole event/ack packets from a
//!   payload, done once per emit.
//! - [`json`]: the order-preserving JSON value and the one JSON writer
//!   (`JSON.stringify`'s output).
//!
//! Engine.IO (the `4` prefix, transports, heartbeats) is the broker's
//! business; every text here is what follows the Engine.IO packet type.

pub mod assemble;
pub mod convert;
pub mod encode;
pub mod json;
pub mod packet;

pub use assemble::{Assembled, Assembler};
pub use convert::{
    ConvertError, Payload, SioMessage, ack_packet, args_to_payload, auth_to_payload, event_packet,
    write_ack_packet, write_args, write_auth, write_data, write_event_packet,
};
pub use encode::{
    write_ack_head, write_connect, write_connect_error, write_disconnect, write_event_head,
    write_head,
};
pub use json::Json;
pub use packet::{Body, Packet, PacketError, PacketLimits, PacketType, decode, decode_with};
