//! Server-to-client WebSocket frames, built once and written as they are.
//!
//! Everything a connection's queue holds is a complete frame (RFC 6455
//! §5.2): header and payload in one [`Bytes`]. Server frames are never
//! masked, so the frame of an event is the same bytes for every receiver:
//! the router builds it once per emit and each writer only copies it into
//! its batch. The envelope is encoded straight after room reserved for the
//! longest header, and the header is written just in front of it, so no
//! frame is copied to be framed.

use bytes::Bytes;
use herald_protocol::{Envelope, EventRef, encode_event_into, encode_into, event_len_hint};

/// The longest header of an unmasked frame: 2 bytes + a 64-bit length.
const MAX_HEADER: usize = 10;
/// FIN bit: every frame we send is a whole message.
const FIN: u8 = 0x80;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Control frames carry at most this many payload bytes (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: usize = 125;

/// A binary frame holding one encoded envelope.
pub(crate) fn envelope(envelope: &Envelope) -> Bytes {
    data(OP_BINARY, 64, |out| encode_into(envelope, out))
}

/// A binary frame holding one `event` envelope.
pub(crate) fn event(event: &EventRef<'_>) -> Bytes {
    data(OP_BINARY, event_len_hint(event), |out| {
        encode_event_into(event, out)
    })
}

/// A text frame carrying `payload`, which the caller has as valid UTF-8
/// (the echo endpoint sends back a text message it read).
pub(crate) fn text(payload: &[u8]) -> Bytes {
    data(OP_TEXT, payload.len(), |out| out.extend_from_slice(payload))
}

/// A binary frame carrying `payload` as it is (the echo endpoint).
pub(crate) fn binary(payload: &[u8]) -> Bytes {
    data(OP_BINARY, payload.len(), |out| {
        out.extend_from_slice(payload)
    })
}

/// A ping frame with an empty payload (the heartbeat).
pub(crate) fn ping() -> Bytes {
    Bytes::from_static(&[FIN | OP_PING, 0])
}

/// A pong frame echoing a ping's payload (cut to the control-frame limit).
pub(crate) fn pong(payload: &[u8]) -> Bytes {
    control(OP_PONG, &payload[..payload.len().min(MAX_CONTROL_PAYLOAD)])
}

/// A close frame: the status code, then the reason (cut to fit, on a
/// character boundary).
pub(crate) fn close(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    control(OP_CLOSE, &payload)
}

/// A close frame without a status code (the answer to a client's close
/// that gave none).
pub(crate) fn close_empty() -> Bytes {
    control(OP_CLOSE, &[])
}

fn control(opcode: u8, payload: &[u8]) -> Bytes {
    let mut frame = Vec::with_capacity(2 + payload.len());
    // Callers keep payloads within 125 bytes: the length fits in 7 bits.
    frame.extend_from_slice(&[FIN | opcode, payload.len() as u8]);
    frame.extend_from_slice(payload);
    Bytes::from(frame)
}

/// A whole data frame of `opcode`: the payload is encoded with `fill`
/// after room for the header, then the header is written right in front
/// of it.
fn data(opcode: u8, len_hint: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Bytes {
    let mut frame = Vec::with_capacity(MAX_HEADER + len_hint);
    frame.resize(MAX_HEADER, 0);
    fill(&mut frame);
    let len = frame.len() - MAX_HEADER;
    let mut header = [0u8; MAX_HEADER];
    header[0] = FIN | opcode;
    let header_len = match len {
        0..=125 => {
            header[1] = len as u8;
            2
        }
        126..=0xFFFF => {
            header[1] = 126;
            header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        }
        _ => {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        }
    };
    let start = MAX_HEADER - header_len;
    frame[start..MAX_HEADER].copy_from_slice(&header[..header_len]);
    Bytes::from(frame).slice(start..)
}

/// The payload of a data frame built here (tests and the benchmark API
/// read queued frames back).
pub(crate) fn payload(frame: &Bytes) -> Bytes {
    let header_len = match frame.get(1).map(|b| b & 0x7f) {
        Some(126) => 4,
        Some(127) => 10,
        _ => 2,
    };
    frame.slice(header_len.min(frame.len())..)
}

/// The kind of a data frame read back by [`frames`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Text,
    Binary,
}

/// The data frames of one queued item (one or more whole frames built
/// here, back to back), each as its kind and payload (a slice of `item`,
/// no copy). Engine.IO long-polling re-frames queued items with it.
/// Control frames are skipped; a malformed tail (never built here) ends
/// the iteration.
pub(crate) fn frames(item: &Bytes) -> Frames {
    Frames { rest: item.clone() }
}

/// Iterator returned by [`frames`].
#[derive(Debug)]
pub(crate) struct Frames {
    rest: Bytes,
}

impl Iterator for Frames {
    type Item = (Kind, Bytes);

    fn next(&mut self) -> Option<(Kind, Bytes)> {
        loop {
            let (&first, &second) = (self.rest.first()?, self.rest.get(1)?);
            let (header_len, len) = match second & 0x7f {
                126 => {
                    let bytes = self.rest.get(2..4)?;
                    (
                        4usize,
                        usize::from(u16::from_be_bytes([bytes[0], bytes[1]])),
                    )
                }
                127 => {
                    let mut word = [0u8; 8];
                    word.copy_from_slice(self.rest.get(2..10)?);
                    (10, usize::try_from(u64::from_be_bytes(word)).ok()?)
                }
                n => (2, usize::from(n)),
            };
            let end = len.checked_add(header_len)?;
            if self.rest.len() < end {
                self.rest = Bytes::new();
                return None;
            }
            let payload = self.rest.slice(header_len..end);
            self.rest = self.rest.slice(end..);
            match first & 0x0f {
                OP_TEXT => return Some((Kind::Text, payload)),
                OP_BINARY => return Some((Kind::Binary, payload)),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use herald_protocol::{ErrorCode, decode};
    use proptest::prelude::*;
    use tokio_tungstenite::tungstenite::protocol::{Role, WebSocket};
    use tokio_tungstenite::tungstenite::{Message, protocol::frame::coding::CloseCode};

    use super::*;

    /// Reads `bytes` back the way a client does: tungstenite in the client
    /// role, which refuses masked server frames and bad headers.
    fn read_as_client(bytes: &[u8]) -> Vec<Message> {
        let mut socket =
            WebSocket::from_raw_socket(Cursor::new(bytes.to_vec()), Role::Client, None);
        let mut messages = Vec::new();
        while let Ok(message) = socket.read() {
            messages.push(message);
        }
        messages
    }

    #[test]
    fn envelope_frames_parse_back() {
        let error = Envelope::error(Some(7), ErrorCode::InvalidEvent, "bad event");
        let frame = envelope(&error);
        match read_as_client(&frame).as_slice() {
            [Message::Binary(payload)] => {
                assert_eq!(decode(payload).expect("valid envelope"), error);
            }
            other => panic!("expected one binary message, got {other:?}"),
        }
    }

    #[test]
    fn echo_frames_keep_their_kind_and_bytes() {
        let long = vec![9u8; 70_000];
        let mut bytes = text("héllo".as_bytes()).to_vec();
        bytes.extend_from_slice(&binary(&[0, 0xff]));
        bytes.extend_from_slice(&binary(&long));
        bytes.extend_from_slice(&text(b""));
        match read_as_client(&bytes).as_slice() {
            [
                Message::Text(hello),
                Message::Binary(short),
                Message::Binary(long_back),
                Message::Text(empty),
            ] => {
                assert_eq!(hello.as_str(), "héllo");
                assert_eq!(&short[..], &[0, 0xff]);
                assert_eq!(&long_back[..], &long[..]);
                assert!(empty.is_empty());
            }
            other => panic!("expected text, binary, binary, text; got {other:?}"),
        }
    }

    #[test]
    fn control_frames_parse_back() {
        let mut bytes = ping().to_vec();
        bytes.extend_from_slice(&pong(b"abc"));
        bytes.extend_from_slice(&close(1008, "slow_consumer"));
        let messages = read_as_client(&bytes);
        assert!(matches!(&messages[0], Message::Ping(p) if p.is_empty()));
        assert!(matches!(&messages[1], Message::Pong(p) if &p[..] == b"abc"));
        match &messages[2] {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, CloseCode::from(1008));
                assert_eq!(frame.reason.as_str(), "slow_consumer");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
    }

    #[test]
    fn long_close_reasons_are_cut_on_a_char_boundary() {
        let reason = "é".repeat(100);
        let frame = close(1000, &reason);
        assert!(frame.len() <= 2 + MAX_CONTROL_PAYLOAD);
        assert!(matches!(
            &read_as_client(&frame)[0],
            Message::Close(Some(_))
        ));
    }

    #[test]
    fn frames_of_an_item_come_back_in_order() {
        let long = vec![3u8; 70_000];
        let mid = vec![4u8; 300];
        let item = [
            text(b"42[\"ev\"]"),
            binary(&long),
            ping(),
            binary(&mid),
            text(b""),
        ]
        .concat();
        let got: Vec<(Kind, Bytes)> = frames(&Bytes::from(item)).collect();
        assert_eq!(
            got,
            vec![
                (Kind::Text, Bytes::from_static(b"42[\"ev\"]")),
                (Kind::Binary, Bytes::from(long)),
                (Kind::Binary, Bytes::from(mid)),
                (Kind::Text, Bytes::new()),
            ]
        );
        // A cut frame ends the iteration instead of reading past the end.
        let cut = text(b"hello").slice(..4);
        assert_eq!(frames(&cut).count(), 0);
    }

    proptest! {
        /// Every payload size crosses the 7-bit, 16-bit and 64-bit length
        /// forms correctly.
        #[test]
        fn events_of_any_size_parse_back(size in prop_oneof![0usize..300, 65_000usize..66_000]) {
            let payload = vec![0x5a; size];
            let event = EventRef {
                namespace: "/",
                event: "tick",
                room: None,
                group: None,
                payload: &payload,
                ack: None,
                from: None,
                args: false,
                ..EventRef::default()
            };
            let frame = super::event(&event);
            let messages = read_as_client(&frame);
            prop_assert_eq!(messages.len(), 1);
            match &messages[0] {
                Message::Binary(bytes) => {
                    prop_assert_eq!(&bytes[..], &herald_protocol::encode_event(&event)[..]);
                }
                other => prop_assert!(false, "expected binary, got {:?}", other),
            }
        }
    }
}
