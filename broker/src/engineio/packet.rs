//! Engine.IO v4 packets: a type digit and data (`0` open, `1` close,
//! `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop); a long-polling
//! payload joins packets with the record separator `\x1e`, and carries a
//! binary message as `b` + base64. Over a WebSocket each frame is one
//! packet, a binary frame a binary message.
//!
//! What a connection sends is queued as complete WebSocket frames (the
//! same queue the writer drains); a long-polling answer re-frames them
//! ([`append_item`]): each frame becomes one packet of the payload.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use thiserror::Error;

use super::Message;
use crate::frame::{self, Kind};

/// The record separator between the packets of a long-polling payload.
pub(crate) const SEPARATOR: u8 = 0x1e;

/// One packet from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Packet {
    Close,
    /// A ping, with its data (`probe` during an upgrade).
    Ping(Bytes),
    /// A pong, with its data.
    Pong(Bytes),
    Message(Message),
    Upgrade,
    Noop,
}

/// Why a packet or payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub(crate) enum PacketError {
    #[error("an empty packet")]
    Empty,
    #[error("unknown packet type {0:?} (expected 1 to 6, or b for binary)")]
    UnknownType(char),
    #[error("an open packet (0) is only sent by the server")]
    Open,
    #[error("a binary packet whose data is not valid base64")]
    Base64,
    #[error("a long-polling payload that is not UTF-8 text")]
    NotUtf8,
}

/// Parses one text packet (a WebSocket text frame, or one element of a
/// long-polling payload other than `b…`); `text` is valid UTF-8.
pub(crate) fn parse_text(text: Bytes) -> Result<Packet, PacketError> {
    let Some(&kind) = text.first() else {
        return Err(PacketError::Empty);
    };
    let data = text.slice(1..);
    match kind {
        b'0' => Err(PacketError::Open),
        b'1' => Ok(Packet::Close),
        b'2' => Ok(Packet::Ping(data)),
        b'3' => Ok(Packet::Pong(data)),
        b'4' => Ok(Packet::Message(Message::Text(data))),
        b'5' => Ok(Packet::Upgrade),
        b'6' => Ok(Packet::Noop),
        other => Err(PacketError::UnknownType(char::from(other))),
    }
}

/// Parses a long-polling POST body: packets joined by `\x1e`, binary
/// messages as `b` + base64.
pub(crate) fn parse_payload(body: &Bytes) -> Result<Vec<Packet>, PacketError> {
    std::str::from_utf8(body).map_err(|_| PacketError::NotUtf8)?;
    body.split(|b| *b == SEPARATOR)
        .map(|part| {
            // A slice of the body's buffer, not a copy.
            let part = body.slice_ref(part);
            match part.first() {
                Some(b'b') => STANDARD
                    .decode(&part[1..])
                    .map(|data| Packet::Message(Message::Binary(Bytes::from(data))))
                    .map_err(|_| PacketError::Base64),
                _ => parse_text(part),
            }
        })
        .collect()
}

/// The open packet: `0{"sid","upgrades","pingInterval","pingTimeout","maxPayload"}`.
pub(crate) fn open(
    sid: &str,
    upgrades: &[&str],
    ping_interval_ms: u128,
    ping_timeout_ms: u128,
    max_payload: usize,
) -> String {
    let handshake = serde_json::json!({
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    });
    format!("0{handshake}")
}

/// A queued text frame holding one packet of type `kind` with `data`.
pub(crate) fn text_frame(kind: u8, data: &[u8]) -> Bytes {
    let mut packet = Vec::with_capacity(1 + data.len());
    packet.push(kind);
    packet.extend_from_slice(data);
    frame::text(&packet)
}

/// One queue item for a message: its text frame (`4` + `text`), then one
/// binary frame per attachment, concatenated, so that a packet with
/// attachments is one item and never interleaves with another.
pub(crate) fn message_item(text: &str, attachments: &[Bytes]) -> Bytes {
    let head = text_frame(b'4', text.as_bytes());
    if attachments.is_empty() {
        return head;
    }
    let mut item = head.to_vec();
    for attachment in attachments {
        item.extend_from_slice(&frame::binary(attachment));
    }
    Bytes::from(item)
}

/// Appends the packets of one queued item to a long-polling answer: each
/// text frame's payload as it is, each binary frame as `b` + base64, all
/// separated by `\x1e`.
pub(crate) fn append_item(out: &mut Vec<u8>, item: &Bytes) {
    for (kind, payload) in frame::frames(item) {
        if !out.is_empty() {
            out.push(SEPARATOR);
        }
        match kind {
            Kind::Text => out.extend_from_slice(&payload),
            Kind::Binary => {
                out.push(b'b');
                let start = out.len();
                out.resize(
                    start + base64::encoded_len(payload.len(), true).unwrap_or(0),
                    0,
                );
                let written = STANDARD
                    .encode_slice(&payload, &mut out[start..])
                    .unwrap_or(0);
                out.truncate(start + written);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &'static str) -> Packet {
        Packet::Message(Message::Text(Bytes::from_static(s.as_bytes())))
    }

    #[test]
    fn payloads_split_on_the_record_separator() {
        let body = Bytes::from_static(b"4hello\x1ebAQIDBA==\x1e2probe\x1e3\x1e6\x1e5\x1e1\x1e4");
        assert_eq!(
            parse_payload(&body),
            Ok(vec![
                text("hello"),
                Packet::Message(Message::Binary(Bytes::from_static(&[1, 2, 3, 4]))),
                Packet::Ping(Bytes::from_static(b"probe")),
                Packet::Pong(Bytes::new()),
                Packet::Noop,
                Packet::Upgrade,
                Packet::Close,
                text(""),
            ])
        );
    }

    #[test]
    fn invalid_packets_are_refused() {
        for (body, error) in [
            (&b"abc"[..], PacketError::UnknownType('a')),
            (b"", PacketError::Empty),
            (b"4a\x1e", PacketError::Empty),
            (b"0{}", PacketError::Open),
            (b"b!!", PacketError::Base64),
            (b"4\xff", PacketError::NotUtf8),
        ] {
            assert_eq!(
                parse_payload(&Bytes::copy_from_slice(body)),
                Err(error),
                "{body:?}"
            );
        }
    }

    #[test]
    fn queued_items_reframe_as_payloads() {
        let mut out = Vec::new();
        append_item(&mut out, &text_frame(b'4', b"hello"));
        append_item(
            &mut out,
            &message_item(
                "51-[\"ev\",{\"_placeholder\":true,\"num\":0}]",
                &[Bytes::from_static(&[1, 2, 3, 4])],
            ),
        );
        append_item(&mut out, &text_frame(b'2', b""));
        assert_eq!(
            out,
            b"4hello\x1e451-[\"ev\",{\"_placeholder\":true,\"num\":0}]\x1ebAQIDBA==\x1e2".to_vec()
        );
    }

    #[test]
    fn the_open_packet_names_every_key() {
        let open = open("abc", &["websocket"], 300, 200, 1_000_000);
        let value: serde_json::Value =
            serde_json::from_str(open.strip_prefix('0').expect("type 0")).expect("JSON");
        assert_eq!(
            value,
            serde_json::json!({"sid":"abc","upgrades":["websocket"],"pingInterval":300,"pingTimeout":200,"maxPayload":1_000_000})
        );
    }
}
