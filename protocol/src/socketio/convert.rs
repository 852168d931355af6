//! Socket.IO arguments (JSON with binary attachments) ⇄ Herald payloads
//! (MessagePack), converted once per emit, never per receiver.
//!
//! # Arguments to a payload ([`args_to_payload`])
//! - ONE argument: the payload is that argument's MessagePack, `spread`
//!   false (so a Rust `on("order.created", |o: Order| …)` decodes what a
//!   browser sent as one object);
//! - 0 or 2+ arguments: a MessagePack array of them, `spread` true (the
//!   `args` flag of the native protocol);
//! - `null`, booleans, strings as themselves; integers (no fraction, no
//!   exponent, within 64 bits) as MessagePack integers in their shortest
//!   form; every other number as a float 64; arrays as arrays; objects as
//!   maps with string keys, in the order written (duplicates kept);
//! - in a BINARY_EVENT/BINARY_ACK, an object whose `_placeholder` is `true`
//!   is replaced by `bin` holding attachment `num` (as the reference
//!   parser: its other keys are ignored). A `num` that is not an index of
//!   the attachments, or an attachment no placeholder names, is an error.
//!   In a text EVENT/ACK such an object is just an object.
//!
//! # A payload to arguments ([`write_args`], [`event_packet`], …)
//! - an empty payload: no arguments;
//! - `spread` and a MessagePack array: its elements are the arguments;
//!   otherwise the payload is one argument;
//! - `nil`, booleans, strings (invalid UTF-8 replaced by U+FFFD), arrays
//!   and maps as JSON; integers exactly, in decimal (JavaScript reads
//!   beyond 2^53 with rounding); floats as `JSON.stringify` writes them,
//!   NaN and the infinities as `null`;
//! - `bin`: a placeholder `{"_placeholder":true,"num":n}` and an
//!   attachment, numbered from 0 in the order they occur;
//! - `ext`: `{"_ext":<type>,"data":<placeholder>}`, its data an attachment
//!   (one way: such an object coming back is a plain map);
//! - map keys that are not strings: their JSON text as the key (`1`,
//!   `true`, `null`, `[1,2]`; `bin` inside a key as an array of byte
//!   values), as JavaScript would have to stringify them;
//! - a payload that is not one valid MessagePack value (trailing bytes,
//!   truncation, reserved byte `0xc1`), or nested deeper than
//!   [`MAX_DEPTH`]: ONE binary argument holding the payload's bytes.
//!
//! What a client sent comes back to clients byte for byte: arguments ->
//! payload -> arguments gives the same JSON text when the client wrote the
//! canonical form (`JSON.stringify`'s, see [`super::json`]) with
//! placeholders numbered in order, as every Socket.IO encoder does.

mod to_json;
mod to_msgpack;

use bytes::Bytes;
use thiserror::Error;

use super::assemble::Assembled;
use super::encode::{write_ack_head, write_event_head};
use super::packet::Body;

pub use to_json::{MAX_DEPTH, write_args, write_data};
pub use to_msgpack::{args_to_payload, auth_to_payload, write_auth};

/// A Herald payload made from Socket.IO arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    /// The MessagePack bytes.
    pub bytes: Bytes,
    /// `true`: `bytes` is an array of several arguments (the native `args`
    /// flag); `false`: `bytes` is the one argument.
    pub spread: bool,
}

/// Why arguments could not become a payload.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConvertError {
    /// A placeholder's `num` names no attachment.
    #[error("placeholder num {num} is out of range: the packet has {count} attachment(s)")]
    PlaceholderOutOfRange {
        /// The placeholder's `num`.
        num: u64,
        /// How many attachments the packet has.
        count: usize,
    },
    /// A placeholder whose `num` is not a non-negative integer.
    #[error("placeholder without a valid num (a non-negative integer)")]
    PlaceholderWithoutNum,
    /// An attachment that no placeholder names.
    #[error("attachment {0} is not referenced by any placeholder")]
    UnusedAttachment(usize),
}

/// A Socket.IO packet ready to send: the text (after the Engine.IO `4`)
/// and the binary messages that follow it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SioMessage {
    /// The packet text, e.g. `2/chat,["ev",1]` or
    /// `51-["ev",{"_placeholder":true,"num":0}]`.
    pub text: String,
    /// The attachments, to send in order after the text.
    pub attachments: Vec<Bytes>,
}

impl Assembled {
    /// The Herald payload of an event's or ack's arguments (placeholders
    /// resolved against the attachments for binary types). CONNECT and
    /// DISCONNECT have no arguments: an empty array.
    pub fn args_payload(&self) -> Result<Payload, ConvertError> {
        match &self.packet.body {
            Body::Event {
                args, attachments, ..
            }
            | Body::Ack { args, attachments } => {
                args_to_payload(args, attachments.map(|_| self.attachments.as_slice()))
            }
            Body::Connect { .. } | Body::Disconnect => args_to_payload(&[], None),
        }
    }
}

/// An EVENT (or BINARY_EVENT) packet of `event` with the payload's
/// arguments, asking for an ack when `id` is set.
pub fn event_packet(
    namespace: &str,
    event: &str,
    payload: &Bytes,
    spread: bool,
    id: Option<u64>,
) -> SioMessage {
    let mut message = SioMessage::default();
    write_event_packet(
        &mut message.text,
        &mut message.attachments,
        namespace,
        event,
        payload,
        spread,
        id,
    );
    message
}

/// An ACK (or BINARY_ACK) packet answering `id` with the payload's
/// arguments.
pub fn ack_packet(namespace: &str, id: u64, payload: &Bytes, spread: bool) -> SioMessage {
    let mut message = SioMessage::default();
    write_ack_packet(
        &mut message.text,
        &mut message.attachments,
        namespace,
        id,
        payload,
        spread,
    );
    message
}

/// [`event_packet`], appending to the caller's buffers (the caller may
/// have put the Engine.IO `4` in `out` already).
pub fn write_event_packet(
    out: &mut String,
    attachments: &mut Vec<Bytes>,
    namespace: &str,
    event: &str,
    payload: &Bytes,
    spread: bool,
    id: Option<u64>,
) {
    // The head names the attachment count, known once the data is written.
    let before = attachments.len();
    let mut data = String::with_capacity(event.len() + payload.len() + 8);
    write_data(&mut data, Some(event), payload, spread, attachments);
    write_event_head(out, namespace, id, attachments.len() - before);
    out.push_str(&data);
}

/// [`ack_packet`], appending to the caller's buffers.
pub fn write_ack_packet(
    out: &mut String,
    attachments: &mut Vec<Bytes>,
    namespace: &str,
    id: u64,
    payload: &Bytes,
    spread: bool,
) {
    let before = attachments.len();
    let mut data = String::with_capacity(payload.len() + 8);
    write_data(&mut data, None, payload, spread, attachments);
    write_ack_head(out, namespace, id, attachments.len() - before);
    out.push_str(&data);
}

#[cfg(test)]
mod tests;
