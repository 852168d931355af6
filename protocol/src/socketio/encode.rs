//! Writing the server's Socket.IO packets as the reference server writes
//! them: the text after the Engine.IO `4`, appended to a caller's buffer
//! (so the caller can put the `4`, or a WebSocket frame header, first).
//!
//! The namespace is written only when it is not `/`, followed by `,`
//! (`40{"sid":"…"}` but `40/custom,{"sid":"…"}`); binary types carry
//! `<attachments>-` right after the type digit; the ack id comes right
//! before the data.

use std::fmt::Write as _;

use super::json::write_str;
use super::packet::PacketType;

/// Appends a packet head: type digit, `<attachments>-` for binary types,
/// `<namespace>,` unless the namespace is `/`, then the ack id.
pub fn write_head(
    out: &mut String,
    kind: PacketType,
    namespace: &str,
    id: Option<u64>,
    attachments: usize,
) {
    out.push(kind.digit());
    if kind.is_binary() {
        let _ = write!(out, "{attachments}-");
    }
    if namespace != "/" {
        out.push_str(namespace);
        out.push(',');
    }
    if let Some(id) = id {
        let _ = write!(out, "{id}");
    }
}

/// Appends the head of an event: `EVENT` when `attachments` is 0,
/// `BINARY_EVENT` otherwise (as the reference encoder picks). The caller
/// appends the data array `["name",…]`.
pub fn write_event_head(out: &mut String, namespace: &str, id: Option<u64>, attachments: usize) {
    let kind = if attachments == 0 {
        PacketType::Event
    } else {
        PacketType::BinaryEvent
    };
    write_head(out, kind, namespace, id, attachments);
}

/// Appends the head of an acknowledgement: `ACK` when `attachments` is 0,
/// `BINARY_ACK` otherwise. The caller appends the data array.
pub fn write_ack_head(out: &mut String, namespace: &str, id: u64, attachments: usize) {
    let kind = if attachments == 0 {
        PacketType::Ack
    } else {
        PacketType::BinaryAck
    };
    write_head(out, kind, namespace, Some(id), attachments);
}

/// Appends the acceptance of a CONNECT: `0{"sid":"…"}` (`0/ns,{…}`).
pub fn write_connect(out: &mut String, namespace: &str, sid: &str) {
    write_head(out, PacketType::Connect, namespace, None, 0);
    out.push_str("{\"sid\":");
    write_str(out, sid);
    out.push('}');
}

/// Appends a refused CONNECT: `4{"message":"…"}` (`4/ns,{…}`); the
/// reference server's message for an unknown namespace is
/// `Invalid namespace`.
pub fn write_connect_error(out: &mut String, namespace: &str, message: &str) {
    write_head(out, PacketType::ConnectError, namespace, None, 0);
    out.push_str("{\"message\":");
    write_str(out, message);
    out.push('}');
}

/// Appends a server-side DISCONNECT: `1` (`1/ns,`).
pub fn write_disconnect(out: &mut String, namespace: &str) {
    write_head(out, PacketType::Disconnect, namespace, None, 0);
}
