//! The Socket.IO targets' client: Engine.IO v4 / Socket.IO v5 spoken
//! directly over a WebSocket (`/socket.io/?EIO=4&transport=websocket`),
//! in one of two dialects ([`Dialect`]) that map the workloads' topics
//! onto the server's semantics.
//!
//! - The server opens with `0{...}`; the client connects to a namespace
//!   with `40` (`40/ns,` for another than the main one) and gets
//!   `40{"sid":...}` (`40/ns,{"sid":...}`).
//! - [`Dialect::Relay`] (the socketioxide relay): every socket is in the
//!   main namespace; subscribe with `421["sub","ROOM"]`, confirmed by the
//!   ack `431["ok"]`; publish `42["pub","ROOM","PAYLOAD"]`; receive
//!   `42["msg","PAYLOAD"]`.
//! - [`Dialect::Herald`] (Herald's Socket.IO front end): a topic is a
//!   namespace of its own ([`herald_namespace`]). A socket that connects to
//!   a namespace is subscribed to everything emitted there, so the CONNECT
//!   answer is the subscriber's confirmation; publish `42/ns,["msg","PAYLOAD"]`
//!   (a Herald emit of `msg` to every other socket of the namespace, never
//!   back to the sender); receive the same packet.
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
/// The target name of Herald's Socket.IO front end in results.
pub const HERALD_TARGET: &str = "herald-socketio";
/// How long the server may take to answer the handshake or a `sub`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How the workloads' topics map onto a Socket.IO server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The socketioxide relay: rooms joined with `sub`, fed with `pub`.
    Relay,
    /// Herald: one namespace per topic, event `msg` emitted into it.
    Herald,
}

impl Dialect {
    /// The target's name in results.
    pub fn target(self) -> &'static str {
        match self {
            Dialect::Relay => TARGET,
            Dialect::Herald => HERALD_TARGET,
        }
    }
}

/// The Herald namespace standing for a workload topic: its dot-separated
/// tokens as path segments (`bench.r1a.e3` -> `/bench/r1a/e3`), any
/// character a namespace may not hold as `-`.
pub fn herald_namespace(topic: &str) -> String {
    let mut namespace = String::with_capacity(topic.len() + 1);
    for token in topic.split('.').filter(|t| !t.is_empty()) {
        namespace.push('/');
        namespace.extend(token.chars().map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        }));
    }
    if namespace.is_empty() {
        namespace.push('/');
    }
    namespace
}

/// What comes between a packet type and its body for `namespace`:
/// nothing for the main namespace, else `/ns,`.
fn namespace_prefix(namespace: &str) -> String {
    if namespace == "/" {
        String::new()
    } else {
        format!("{namespace},")
    }
}

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

/// The name and first argument of an event packet body (after `42` and
/// any namespace), when both are strings.
pub fn parse_event(body: &str) -> Option<(String, String)> {
    let (name, argument): (String, String) = serde_json::from_str(body).ok()?;
    Some((name, argument))
}

/// Opens socket.io connections to one server, in one dialect.
#[derive(Debug, Clone)]
pub struct SocketIoDriver {
    url: String,
    dialect: Dialect,
}

impl SocketIoDriver {
    /// A driver for the socketioxide relay at `addr` (`127.0.0.1:PORT`).
    pub fn new(addr: std::net::SocketAddr) -> SocketIoDriver {
        SocketIoDriver::with_dialect(addr, Dialect::Relay)
    }

    /// A driver for Herald's Socket.IO front end at `addr` (served on the
    /// broker's own port, at the default `/socket.io/` path).
    pub fn herald(addr: std::net::SocketAddr) -> SocketIoDriver {
        SocketIoDriver::with_dialect(addr, Dialect::Herald)
    }

    /// A driver for the server at `addr`, speaking `dialect`.
    pub fn with_dialect(addr: std::net::SocketAddr, dialect: Dialect) -> SocketIoDriver {
        SocketIoDriver {
            url: format!("ws://{addr}/socket.io/?EIO=4&transport=websocket"),
            dialect,
        }
    }

    fn target(&self) -> &'static str {
        self.dialect.target()
    }

    /// The namespace a socket for `topic` connects to.
    fn namespace(&self, topic: &str) -> String {
        match self.dialect {
            Dialect::Relay => "/".to_owned(),
            Dialect::Herald => herald_namespace(topic),
        }
    }

    /// Opens a WebSocket and connects to `namespace`; returns the
    /// namespace's packet prefix (`/ns,` or nothing).
    async fn open(
        &self,
        namespace: &str,
        read_buffer: usize,
    ) -> Result<(WsStream, String), BenchError> {
        let target = self.target();
        let options = WsOptions {
            read_buffer,
            ..WsOptions::new(target)
        };
        let mut ws = ws::connect(&self.url, options).await?;
        expect_text(target, &mut ws, "the Engine.IO open packet", |t| {
            t.starts_with('0')
        })
        .await?;
        let prefix = namespace_prefix(namespace);
        let connect = format!("40{prefix}");
        send_text(target, &mut ws, connect.clone()).await?;
        expect_text(target, &mut ws, "the namespace connect", |t| {
            t.starts_with(&connect) && t[connect.len()..].starts_with('{')
        })
        .await?;
        Ok((ws, prefix))
    }

    async fn subscribe(
        &self,
        topic: &str,
        read_buffer: usize,
    ) -> Result<SocketIoSubscriber, BenchError> {
        let target = self.target();
        let (mut ws, prefix) = self.open(&self.namespace(topic), read_buffer).await?;
        if self.dialect == Dialect::Relay {
            let room = json_string(target, topic)?;
            send_text(target, &mut ws, format!("421[\"sub\",{room}]")).await?;
            expect_text(target, &mut ws, "the sub acknowledgement", |t| {
                t.starts_with("431[")
            })
            .await?;
        }
        // Herald: connected to the topic's namespace is subscribed to it.
        Ok(SocketIoSubscriber {
            ws,
            target,
            event_prefix: format!("42{prefix}"),
        })
    }
}

fn json_string(target: &str, text: &str) -> Result<String, BenchError> {
    serde_json::to_string(text).map_err(|e| BenchError::target(target, e.to_string()))
}

async fn send_text(target: &str, ws: &mut WsStream, text: String) -> Result<(), BenchError> {
    ws.send(Message::Text(text.into()))
        .await
        .map_err(|e| BenchError::target(target, format!("sending: {e}")))
}

/// Reads until a text frame satisfying `wanted`, answering pings, bounded
/// by [`ANSWER_TIMEOUT`].
async fn expect_text(
    target: &str,
    ws: &mut WsStream,
    what: &str,
    wanted: impl Fn(&str) -> bool,
) -> Result<(), BenchError> {
    let reading = async {
        loop {
            match next_text(target, ws).await? {
                Some(text) if wanted(&text) => return Ok(()),
                Some(text) if text.starts_with("44") => {
                    return Err(BenchError::target(
                        target,
                        format!("the server refused the connection: {text}"),
                    ));
                }
                Some(_) => {}
                None => {
                    return Err(BenchError::target(
                        target,
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
async fn next_text(target: &str, ws: &mut WsStream) -> Result<Option<String>, BenchError> {
    loop {
        let message = match ws.next().await {
            None => return Ok(None),
            Some(Err(error)) => {
                return Err(BenchError::target(
                    target,
                    format!("connection lost: {error}"),
                ));
            }
            Some(Ok(message)) => message,
        };
        match message {
            Message::Text(text) if text.as_str() == "2" => {
                send_text(target, ws, "3".to_owned()).await?
            }
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
        self.target()
    }

    async fn subscriber(&self, topic: &str) -> Result<SocketIoSubscriber, BenchError> {
        self.subscribe(topic, ws::BUSY_READ_BUFFER).await
    }

    async fn idle_subscriber(&self, topic: &str) -> Result<SocketIoSubscriber, BenchError> {
        self.subscribe(topic, IDLE_READ_BUFFER).await
    }

    async fn publisher(&self, topic: &str) -> Result<SocketIoPublisher, BenchError> {
        let target = self.target();
        let (ws, prefix) = self
            .open(&self.namespace(topic), ws::BUSY_READ_BUFFER)
            .await?;
        let prefix = match self.dialect {
            Dialect::Relay => format!("42{prefix}[\"pub\",{},\"", json_string(target, topic)?),
            Dialect::Herald => format!("42{prefix}[\"msg\",\""),
        };
        Ok(SocketIoPublisher { ws, target, prefix })
    }
}

/// A socket.io connection receiving one topic's `msg` events.
#[derive(Debug)]
pub struct SocketIoSubscriber {
    ws: WsStream,
    target: &'static str,
    /// `42` and the namespace prefix: what an event packet starts with.
    event_prefix: String,
}

impl Subscriber for SocketIoSubscriber {
    async fn next_payload(&mut self) -> Result<Option<Bytes>, BenchError> {
        loop {
            let Some(text) = next_text(self.target, &mut self.ws).await? else {
                return Ok(None);
            };
            let Some(body) = text.strip_prefix(&self.event_prefix) else {
                continue;
            };
            let Some((name, payload)) = parse_event(body) else {
                return Err(BenchError::target(
                    self.target,
                    format!("unexpected event packet: {text}"),
                ));
            };
            if name == "msg" {
                return decode_payload(&payload).map(Some).ok_or_else(|| {
                    BenchError::target(self.target, format!("malformed payload: {payload}"))
                });
            }
        }
    }
}

/// A socket.io connection publishing to one topic.
#[derive(Debug)]
pub struct SocketIoPublisher {
    ws: WsStream,
    target: &'static str,
    /// The packet up to the payload: `42["pub","ROOM","` (relay) or
    /// `42/ns,["msg","` (Herald).
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
            .map_err(|e| BenchError::target(self.target, format!("publishing: {e}")))
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        self.ws
            .flush()
            .await
            .map_err(|e| BenchError::target(self.target, format!("publishing: {e}")))
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

    #[test]
    fn topics_become_valid_herald_namespaces() {
        let run = herald_loadgen::flow::run_id();
        let topic = herald_loadgen::flow::event_name(&run, 7);
        let namespace = herald_namespace(&topic);
        assert_eq!(namespace, format!("/bench/{run}/e7"));
        assert!(herald_protocol::names::validate_namespace(&namespace).is_ok());
        assert_eq!(herald_namespace("a.b c..d"), "/a/b-c/d");
        assert_eq!(herald_namespace(""), "/");
        assert_eq!(namespace_prefix("/"), "");
        assert_eq!(namespace_prefix("/a/b"), "/a/b,");
    }
}
