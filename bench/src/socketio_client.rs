//! The socketioxide target's client: Engine.IO v4 / Socket.IO v5 spoken
//! directly over a WebSocket (`/socket.io/?EIO=4&transport=websocket`).
//!
//! - The server opens with `0{...}`; the client connects to the main
//!   namespace with `40` and gets `40{"sid":...}`.
//! - Subscribe: `421["sub","ROOM"]`, confirmed by the ack `431["ok"]`.
//! - Publish: `42["pub","ROOM","PAYLOAD"]`; receive `42["msg","PAYLOAD"]`.
//! - Engine.IO pings (`2`) are answered with `3`.
//!
//! Socket.IO's default parser carries JSON text, so the payload travels as
//! a string of the same length: the send time as 16 hex digits, then
//! filler letters. (Binary payloads would take a second WebSocket frame per
//! message as socket.io attachments.)

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald_loadgen::ws::{self, IDLE_READ_BUFFER, WsOptions, WsStream};
use herald_loadgen::{BenchError, Driver, Publisher, Subscriber, clock};
use tokio_tungstenite::tungstenite::Message;

/// The target name of the socketioxide relay in results.
pub const TARGET: &str = "socketioxide";
/// How long the server may take to answer the handshake or a `sub`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// The payload as socket.io text: the stamp in hex, then ASCII filler.
pub fn encode_payload(payload: &[u8]) -> String {
    let stamp = clock::read_stamp(payload).unwrap_or(0);
    let mut text = format!("{stamp:016x}");
    text.extend(payload.iter().skip(16).map(|&byte| {
        if byte.is_ascii_alphanumeric() {
            char::from(byte)
        } else {
            'x'
        }
    }));
    text
}

/// The stamp of a payload written by [`encode_payload`], as the 8-byte
/// payload head the workloads read.
pub fn decode_payload(text: &str) -> Option<Bytes> {
    let stamp = u64::from_str_radix(text.get(..16)?, 16).ok()?;
    Some(Bytes::copy_from_slice(&stamp.to_be_bytes()))
}

/// The name and first argument of an event packet body (after `42`), when
/// both are strings.
pub fn parse_event(body: &str) -> Option<(String, String)> {
    let (name, argument): (String, String) = serde_json::from_str(body).ok()?;
    Some((name, argument))
}

/// Opens socket.io connections to one relay.
#[derive(Debug, Clone)]
pub struct SocketIoDriver {
    url: String,
}

impl SocketIoDriver {
    /// A driver for the relay at `addr` (`127.0.0.1:PORT`).
    pub fn new(addr: std::net::SocketAddr) -> SocketIoDriver {
        SocketIoDriver {
            url: format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
        }
    }

    /// Opens a WebSocket and connects to the main namespace.
    async fn open(&self, read_buffer: usize) -> Result<WsStream, BenchError> {
        let options = WsOptions {
            read_buffer,
            ..WsOptions::new(TARGET)
        };
        let mut ws = ws::connect(&self.url, options).await?;
        expect_text(&mut ws, "the Engine.IO open packet", |t| t.starts_with('0')).await?;
        send_text(&mut ws, "40".to_owned()).await?;
        expect_text(&mut ws, "the namespace connect", |t| t.starts_with("40")).await?;
        Ok(ws)
    }

    async fn subscribe(
        &self,
        room: &str,
        read_buffer: usize,
    ) -> Result<SocketIoSubscriber, BenchError> {
        let mut ws = self.open(read_buffer).await?;
        let room = json_string(room)?;
        send_text(&mut ws, format!("421[\"sub\",{room}]")).await?;
        expect_text(&mut ws, "the sub acknowledgement", |t| {
            t.starts_with("431[")
        })
        .await?;
        Ok(SocketIoSubscriber { ws })
    }
}

fn json_string(text: &str) -> Result<String, BenchError> {
    serde_json::to_string(text).map_err(|e| BenchError::target(TARGET, e.to_string()))
}

async fn send_text(ws: &mut WsStream, text: String) -> Result<(), BenchError> {
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| BenchError::target(TARGET, format!("sending: {e}")))
}

/// Reads until a text frame satisfying `wanted`, answering pings, bounded
/// by [`ANSWER_TIMEOUT`].
async fn expect_text(
    ws: &mut WsStream,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<(), BenchError> {
    let reading = async {
        loop {
            match next_text(ws).await? {
                Some(text) if wanted(&text) => return Ok(()),
                Some(text) if text.starts_with("44") => {
                    return Err(BenchError::target(
                        TARGET,
                        format!("the server refused the connection: {text}"),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(BenchError::target(
                        TARGET,
                        format!("the connection closed while waiting for {what}"),
                    ));
                }
            }
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, reading)
        .await
        .map_err(|_| BenchError::timeout(ANSWER_TIMEOUT, what.to_owned()))?
}

/// The next Engine.IO text packet other than a ping (which is answered).
async fn next_text(ws: &mut WsStream) -> Result<Option<String>, BenchError> {
    loop {
        let message = match ws.next().await {
            None => return Ok(None),
            Some(Err(error)) => {
                return Err(BenchError::target(
                    TARGET,
                    format!("connection lost: {error}"),
                ));
            }
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) if text.as_str() == "2" => send_text(ws, "3".to_owned()).await?,
            Message::Text(text) => return Ok(Some(text.as_str().to_owned())),
            Message::Close(_) => return Ok(None),
            _ => {}
        }
    }
}

impl Driver for SocketIoDriver {
    type Subscriber = SocketIoSubscriber;
    type Publisher = SocketIoPublisher;

    fn name(&self) -> &str {
        TARGET
    }

    async fn subscriber(&self, topic: &str) -> Result<SocketIoSubscriber, BenchError> {
        self.subscribe(topic, ws::BUSY_READ_BUFFER).await
    }

    async fn idle_subscriber(&self, topic: &str) -> Result<SocketIoSubscriber, BenchError> {
        self.subscribe(topic, IDLE_READ_BUFFER).await
    }

    async fn publisher(&self, topic: &str) -> Result<SocketIoPublisher, BenchError> {
        Ok(SocketIoPublisher {
            ws: self.open(ws::BUSY_READ_BUFFER).await?,
            prefix: format!("42[\"pub\",{},\"", json_string(topic)?),
        })
    }
}

/// A socket.io connection in one room.
#[derive(Debug)]
pub struct SocketIoSubscriber {
    ws: WsStream,
}

impl Subscriber for SocketIoSubscriber {
    async fn next_payload(&mut self) -> Result<Option<Bytes>, BenchError> {
        loop {
            let Some(text) = next_text(&mut self.ws).await? else {
                return Ok(None);
            };
            let Some(body) = text.strip_prefix("42") else {
                continue;
            };
            let Some((name, payload)) = parse_event(body) else {
                return Err(BenchError::target(
                    TARGET,
                    format!("unexpected event packet: {text}"),
                ));
            };
            if name == "msg" {
                return decode_payload(&payload).map(Some).ok_or_else(|| {
                    BenchError::target(TARGET, format!("malformed payload: {payload}"))
                });
            }
        }
    }
}

/// A socket.io connection publishing to one room.
#[derive(Debug)]
pub struct SocketIoPublisher {
    ws: WsStream,
    /// `42["pub","ROOM","`: the packet up to the payload.
    prefix: String,
}

impl Publisher for SocketIoPublisher {
    async fn feed(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        let payload = encode_payload(payload);
        let mut packet = String::with_capacity(self.prefix.len() + payload.len() + 2);
        packet.push_str(&self.prefix);
        packet.push_str(&payload);
        packet.push_str("\"]");
        self.ws
            .feed(Message::Text(packet.into()))
            .await
            .map_err(|e| BenchError::target(TARGET, format!("publishing: {e}")))
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        self.ws
            .flush()
            .await
            .map_err(|e| BenchError::target(TARGET, format!("publishing: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_travel_as_text_of_the_same_length() {
        let mut payload = clock::payload_template(128);
        clock::write_stamp(&mut payload, 0x0123_4567_89ab_cdef);
        let text = encode_payload(&payload);
        assert_eq!(text.len(), 128);
        assert!(text.starts_with("0123456789abcdef"));
        assert!(text.bytes().all(|b| b.is_ascii_alphanumeric()));
        let decoded = decode_payload(&text).expect("decodable");
        assert_eq!(clock::read_stamp(&decoded), Some(0x0123_4567_89ab_cdef));
        assert_eq!(decode_payload("xyz"), None);
        assert_eq!(decode_payload("zzzzzzzzzzzzzzzz"), None);
    }

    #[test]
    fn event_packets_are_parsed() {
        assert_eq!(
            parse_event(r#"["msg","abc"]"#),
            Some(("msg".to_owned(), "abc".to_owned()))
        );
        assert_eq!(parse_event(r#"["msg",1]"#), None);
        assert_eq!(parse_event("not json"), None);
    }
}
