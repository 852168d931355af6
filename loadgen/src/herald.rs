//! The Herald target: raw WebSocket clients speaking the envelopes of
//! `herald-protocol` directly (not the SDK), to keep the load generator lean.
//!
//! A subscriber sends `hello`, then `sub` with an id and waits for its `ok`.
//! A publisher encodes its `emit` frame once and only patches the payload
//! (the send time) for each message; emits carry no `id`, so the broker
//! acknowledges nothing (fire-and-forget). A task drains what the broker
//! sends the publisher, so its pings are answered and an `err` is reported;
//! at the end a `ping` envelope and its `pong` confirm that the broker has
//! handled every emit (and that no `err` came back).

use std::cell::Cell;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use herald_protocol::envelope::{Emit, Hello, Subscription};
use herald_protocol::{Envelope, PROTOCOL_VERSION, SUBPROTOCOL, WS_PATH};
use tokio_tungstenite::tungstenite::Message;

use crate::driver::{Driver, Publisher, Subscriber};
use crate::ws::{self, IDLE_READ_BUFFER, WsOptions, WsStream};
use crate::{BenchError, clock, event_scan};

/// The target name of Herald in results.
pub const TARGET: &str = "herald";
/// The namespace the benchmark publishes in unless told otherwise.
pub const DEFAULT_NAMESPACE: &str = "/bench";
/// How long the broker may take to answer `hello` or `sub`.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Normalises a broker URL: `ws://HOST:PORT` (or `wss://`) gets the
/// endpoint path `/v1/ws`; a URL that already has a path keeps it.
pub fn endpoint_url(url: &str) -> Result<String, BenchError> {
    let url = url.trim();
    let (scheme, rest) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => ("ws", rest),
        (None, Some(rest)) => ("wss", rest),
        (None, None) => {
            let reason = format!("expected ws://HOST:PORT or wss://HOST:PORT, got {url:?}");
            return Err(BenchError::invalid("--url", reason));
        }
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at(slash),
        None => (rest, ""),
    };
    if authority.is_empty() {
        return Err(BenchError::invalid(
            "--url",
            format!("no host in {url:?}; expected ws://HOST:PORT"),
        ));
    }
    let path = match path.trim_end_matches('/') {
        "" => WS_PATH,
        path => path,
    };
    Ok(format!("{scheme}://{authority}{path}"))
}

/// Opens Herald connections.
#[derive(Debug)]
pub struct HeraldDriver {
    url: String,
    /// Where publishers connect, when not to `url` (another cluster node).
    publish_url: Option<String>,
    namespace: String,
    sources: Vec<IpAddr>,
    next_source: Cell<usize>,
    /// The TLS client configuration for `wss://` URLs.
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The token every connection presents in `hello` (a broker with
    /// `auth.mode = "jwt"`).
    token: Option<String>,
    /// The name in results ([`TARGET`] unless renamed).
    name: String,
}

impl HeraldDriver {
    /// A driver for the broker at `url` (see [`endpoint_url`]) publishing
    /// in `namespace`.
    pub fn new(url: &str, namespace: &str) -> Result<HeraldDriver, BenchError> {
        herald_protocol::names::validate_namespace(namespace)
            .map_err(|e| BenchError::invalid("--namespace", e.to_string()))?;
        Ok(HeraldDriver {
            url: endpoint_url(url)?,
            publish_url: None,
            namespace: namespace.to_owned(),
            sources: Vec::new(),
            next_source: Cell::new(0),
            tls: None,
            token: None,
            name: TARGET.to_owned(),
        })
    }

    /// Reports its results under `name` (e.g. `herald-wss`).
    pub fn named(mut self, name: &str) -> HeraldDriver {
        self.name = name.to_owned();
        self
    }

    /// Trusts what `config` trusts for `wss://` URLs (the `herald-wss`
    /// benchmark target: a CA made for the run).
    pub fn with_tls(mut self, config: Arc<rustls::ClientConfig>) -> HeraldDriver {
        self.tls = Some(config);
        self
    }

    /// Presents `token` in every connection's `hello` (the `herald-auth`
    /// benchmark target: a broker that checks tokens).
    pub fn with_token(mut self, token: String) -> HeraldDriver {
        self.token = Some(token);
        self
    }

    /// Spreads connections round robin over these source addresses (to
    /// open more connections than one address has ephemeral ports).
    pub fn with_sources(mut self, sources: Vec<IpAddr>) -> HeraldDriver {
        self.sources = sources;
        self
    }

    /// Connects publishers to the broker at `url` (see [`endpoint_url`])
    /// instead: with the subscribers on one cluster node and the
    /// publishers on another, every message crosses the cluster.
    pub fn with_publish_url(mut self, url: &str) -> Result<HeraldDriver, BenchError> {
        self.publish_url = Some(endpoint_url(url)?);
        Ok(self)
    }

    /// The endpoint URL subscribers (and, unless told otherwise,
    /// publishers) connect to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The endpoint URL publishers connect to.
    pub fn publish_url(&self) -> &str {
        self.publish_url.as_deref().unwrap_or(&self.url)
    }

    fn source(&self) -> Option<IpAddr> {
        if self.sources.is_empty() {
            return None;
        }
        let index = self.next_source.get();
        self.next_source.set(index.wrapping_add(1));
        self.sources.get(index % self.sources.len()).copied()
    }

    /// Opens a connection to `url` and completes `hello` / `welcome`.
    pub(crate) async fn open(&self, url: &str, read_buffer: usize) -> Result<WsStream, BenchError> {
        let options = WsOptions {
            subprotocol: Some(SUBPROTOCOL),
            source: self.source(),
            read_buffer,
            tls: self.tls.as_ref(),
            ..WsOptions::new(TARGET)
        };
        let mut ws = ws::connect(url, options).await?;
        let hello = Envelope::Hello(Hello {
            version: PROTOCOL_VERSION,
            client: Some("herald-bench".to_owned()),
            token: self.token.clone(),
            ..Hello::default()
        });
        send(&mut ws, &hello).await?;
        match answer(&mut ws, "the welcome").await? {
            Envelope::Welcome(_) => Ok(ws),
            other => Err(unexpected("welcome", &other)),
        }
    }

    async fn subscribe(
        &self,
        topic: &str,
        read_buffer: usize,
    ) -> Result<HeraldSubscriber, BenchError> {
        let ws = self.open_subscribed(topic, false, read_buffer).await?;
        Ok(HeraldSubscriber { ws })
    }

    /// Opens a connection with one subscription to `topic` (a responder
    /// subscription when `responder`), once the broker confirmed it.
    pub(crate) async fn open_subscribed(
        &self,
        topic: &str,
        responder: bool,
        read_buffer: usize,
    ) -> Result<WsStream, BenchError> {
        let mut ws = self.open(&self.url, read_buffer).await?;
        const SUB_ID: u64 = 1;
        let sub = Envelope::Subscribe(Subscription {
            id: Some(SUB_ID),
            namespace: self.namespace.clone(),
            event: topic.to_owned(),
            responder,
            ..Subscription::default()
        });
        send(&mut ws, &sub).await?;
        match answer(&mut ws, "the subscription's ok").await? {
            Envelope::Ok { id: SUB_ID } => Ok(ws),
            other => Err(unexpected("ok", &other)),
        }
    }

    /// The namespace this driver publishes in.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }
}

/// How long a polite close may take: our close frame, the broker's answer
/// and the end of the stream.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes `ws` the polite way: a close frame, then reading until the
/// broker's own close and the end of the stream (bounded by
/// [`CLOSE_TIMEOUT`]), so the broker sees `client_closed`, and the socket
/// is not reset with unread bytes in it.
pub(crate) async fn close_politely(ws: &mut WsStream) -> Result<(), BenchError> {
    let closing = async {
        ws.close(None)
            .await
            .map_err(|e| BenchError::target(TARGET, format!("closing: {e}")))?;
        while let Some(message) = ws.next().await {
            if let Err(error) = message {
                return Err(BenchError::target(TARGET, format!("closing: {error}")));
            }
        }
        Ok(())
    };
    tokio::time::timeout(CLOSE_TIMEOUT, closing)
        .await
        .map_err(|_| BenchError::timeout(CLOSE_TIMEOUT, "the broker to end a closed connection"))?
}

/// Sends one envelope and flushes it.
pub(crate) async fn send(ws: &mut WsStream, envelope: &Envelope) -> Result<(), BenchError> {
    let frame = Message::Binary(herald_protocol::encode(envelope).into());
    ws.send(frame)
        .await
        .map_err(|e| BenchError::target(TARGET, format!("sending {}: {e}", envelope.kind())))
}

/// The next envelope from the broker other than an event, bounded by
/// [`ANSWER_TIMEOUT`]; an `err` or `close` envelope is returned as an
/// error.
async fn answer(ws: &mut WsStream, what: &str) -> Result<Envelope, BenchError> {
    let reading = async {
        loop {
            let frame = match ws.next().await {
                None | Some(Ok(Message::Close(_))) => {
                    return Err(BenchError::target(
                        TARGET,
                        format!("the connection closed while waiting for {what}"),
                    ));
                }
                Some(Err(error)) => {
                    return Err(BenchError::target(
                        TARGET,
                        format!("connection lost while waiting for {what}: {error}"),
                    ));
                }
                Some(Ok(Message::Binary(frame))) => frame,
                Some(Ok(_)) => continue,
            };
            // The broker adds a subscription, then queues its `ok`: an event
            // published in between arrives first. Such events are skipped
            // (the fast path first: a busy event may send many).
            if event_scan::event_payload(&frame).is_some() {
                continue;
            }
            match decode_envelope(&frame)? {
                Envelope::Error(error) => {
                    return Err(BenchError::target(
                        TARGET,
                        format!(
                            "the broker refused (waiting for {what}): {} {}",
                            error.code, error.message
                        ),
                    ));
                }
                Envelope::Event(_) => {}
                envelope => return Ok(envelope),
            }
        }
    };
    tokio::time::timeout(ANSWER_TIMEOUT, reading)
        .await
        .map_err(|_| BenchError::timeout(ANSWER_TIMEOUT, format!("{what} from the broker")))?
}

/// The next envelope, skipping WebSocket control frames; a `close`
/// envelope becomes an error naming the reason; `None` at the end.
pub(crate) async fn next_envelope(
    stream: &mut (impl StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin),
) -> Result<Option<Envelope>, BenchError> {
    loop {
        let message = match stream.next().await {
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
            Message::Binary(frame) => return decode_envelope(&frame).map(Some),
            Message::Close(_) => return Ok(None),
            Message::Text(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
        }
    }
}

/// Decodes a frame from the broker; a `close` envelope becomes an error
/// naming the reason.
pub(crate) fn decode_envelope(frame: &Bytes) -> Result<Envelope, BenchError> {
    let envelope = herald_protocol::decode(frame).map_err(|e| {
        BenchError::target(TARGET, format!("undecodable frame from the broker: {e}"))
    })?;
    if let Envelope::Close { reason, message } = envelope {
        return Err(BenchError::target(
            TARGET,
            format!("the broker closed the connection: {reason} ({message})"),
        ));
    }
    Ok(envelope)
}

fn unexpected(expected: &str, got: &Envelope) -> BenchError {
    BenchError::target(
        TARGET,
        format!("expected {expected} from the broker, got {}", got.kind()),
    )
}

impl Driver for HeraldDriver {
    type Subscriber = HeraldSubscriber;
    type Publisher = HeraldPublisher;

    fn name(&self) -> &str {
        &self.name
    }

    async fn subscriber(&self, topic: &str) -> Result<HeraldSubscriber, BenchError> {
        self.subscribe(topic, ws::BUSY_READ_BUFFER).await
    }

    async fn idle_subscriber(&self, topic: &str) -> Result<HeraldSubscriber, BenchError> {
        self.subscribe(topic, IDLE_READ_BUFFER).await
    }

    async fn publisher(&self, topic: &str) -> Result<HeraldPublisher, BenchError> {
        let ws = self.open(self.publish_url(), ws::BUSY_READ_BUFFER).await?;
        let (sink, stream) = ws.split();
        let broker_error = Arc::new(Mutex::new(None));
        let (pongs_in, pongs) = tokio::sync::mpsc::channel(4);
        tokio::spawn(drain_publisher_inbox(
            stream,
            Arc::clone(&broker_error),
            pongs_in,
        ));
        Ok(HeraldPublisher {
            sink,
            template: EmitTemplate::new(&self.namespace, topic, 128),
            broker_error,
            pongs,
        })
    }
}

/// A subscribed Herald connection.
#[derive(Debug)]
pub struct HeraldSubscriber {
    ws: WsStream,
}

impl HeraldSubscriber {
    /// Closes the connection politely (see [`CLOSE_TIMEOUT`]).
    pub async fn close(mut self) -> Result<(), BenchError> {
        close_politely(&mut self.ws).await
    }
}

impl Subscriber for HeraldSubscriber {
    async fn next_payload(&mut self) -> Result<Option<Bytes>, BenchError> {
        loop {
            // The fast path for events; anything else goes through the
            // reference decoder below.
            let frame = match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Err(error)) => {
                    return Err(BenchError::target(
                        TARGET,
                        format!("connection lost: {error}"),
                    ));
                }
                Some(Ok(Message::Binary(frame))) => frame,
                Some(Ok(_)) => continue,
            };
            if let Some(payload) = event_scan::event_payload(&frame) {
                return Ok(Some(payload));
            }
            match decode_envelope(&frame)? {
                Envelope::Event(event) => return Ok(Some(event.payload)),
                // A `dropped` notice: the missing events show up as loss.
                Envelope::Error(error) if error.code == herald_protocol::ErrorCode::Dropped => {}
                Envelope::Error(error) => {
                    return Err(BenchError::target(
                        TARGET,
                        format!("the broker sent an error: {} {}", error.code, error.message),
                    ));
                }
                _ => {}
            }
        }
    }
}

/// Reads what the broker sends a publisher (so WebSocket pings get their
/// pongs), keeps the first error it reports and passes `pong`s on.
async fn drain_publisher_inbox(
    mut stream: SplitStream<WsStream>,
    broker_error: Arc<Mutex<Option<String>>>,
    pongs: tokio::sync::mpsc::Sender<Option<u64>>,
) {
    loop {
        let problem = match next_envelope(&mut stream).await {
            Ok(None) => return,
            Ok(Some(Envelope::Error(error))) => {
                format!(
                    "the broker refused an emit: {} {}",
                    error.code, error.message
                )
            }
            Ok(Some(Envelope::Pong { ts })) => {
                let _ = pongs.try_send(ts);
                continue;
            }
            Ok(Some(_)) => continue,
            Err(error) => error.to_string(),
        };
        if let Ok(mut slot) = broker_error.lock() {
            slot.get_or_insert(problem);
        }
    }
}

/// An `emit` frame encoded once, whose payload is overwritten per message.
#[derive(Debug, Clone)]
struct EmitTemplate {
    namespace: String,
    event: String,
    frame: Vec<u8>,
    /// Where the payload starts in `frame`; its length is the template's.
    payload_at: usize,
}

impl EmitTemplate {
    fn new(namespace: &str, event: &str, payload_len: usize) -> EmitTemplate {
        let payload = clock::payload_template(payload_len);
        let frame = herald_protocol::encode(&Envelope::Emit(Emit {
            namespace: namespace.to_owned(),
            event: event.to_owned(),
            payload: Bytes::from(payload.clone()),
            ..Emit::default()
        }));
        // `d` is the last key of an emit without room, xs or ack, so the
        // payload is the frame's tail; checked, not assumed.
        let payload_at = frame.len().saturating_sub(payload_len);
        let payload_at = if frame.get(payload_at..) == Some(payload.as_slice()) {
            payload_at
        } else {
            usize::MAX
        };
        EmitTemplate {
            namespace: namespace.to_owned(),
            event: event.to_owned(),
            frame,
            payload_at,
        }
    }

    /// The frame of an emit carrying `payload`.
    fn frame(&mut self, payload: &[u8]) -> Bytes {
        if self.frame.len().checked_sub(self.payload_at) != Some(payload.len()) {
            // A first message of another size re-encodes the template.
            *self = EmitTemplate::new(&self.namespace.clone(), &self.event.clone(), payload.len());
        }
        if self.payload_at == usize::MAX {
            return encode_emit(&self.namespace, &self.event, payload);
        }
        let mut frame = BytesMut::with_capacity(self.frame.len());
        frame.extend_from_slice(&self.frame[..self.payload_at]);
        frame.extend_from_slice(payload);
        frame.freeze()
    }
}

fn encode_emit(namespace: &str, event: &str, payload: &[u8]) -> Bytes {
    herald_protocol::encode(&Envelope::Emit(Emit {
        namespace: namespace.to_owned(),
        event: event.to_owned(),
        payload: Bytes::copy_from_slice(payload),
        ..Emit::default()
    }))
    .into()
}

/// A Herald connection that publishes to one event.
#[derive(Debug)]
pub struct HeraldPublisher {
    sink: SplitSink<WsStream, Message>,
    template: EmitTemplate,
    broker_error: Arc<Mutex<Option<String>>>,
    pongs: tokio::sync::mpsc::Receiver<Option<u64>>,
}

impl HeraldPublisher {
    /// Sends a close frame; the task that reads the connection sees the
    /// broker's answer and the end of the stream.
    pub async fn close(mut self) -> Result<(), BenchError> {
        tokio::time::timeout(CLOSE_TIMEOUT, self.sink.close())
            .await
            .map_err(|_| BenchError::timeout(CLOSE_TIMEOUT, "the close frame to be sent"))?
            .map_err(|e| BenchError::target(TARGET, format!("closing: {e}")))
    }

    fn check_broker_error(&self) -> Result<(), BenchError> {
        let problem = self.broker_error.lock().ok().and_then(|slot| slot.clone());
        match problem {
            Some(problem) => Err(BenchError::target(TARGET, problem)),
            None => Ok(()),
        }
    }
}

impl Publisher for HeraldPublisher {
    async fn feed(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        let frame = self.template.frame(payload);
        self.sink
            .feed(Message::Binary(frame))
            .await
            .map_err(|e| BenchError::target(TARGET, format!("publishing: {e}")))
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        self.sink
            .flush()
            .await
            .map_err(|e| BenchError::target(TARGET, format!("publishing: {e}")))?;
        self.check_broker_error()
    }

    /// Flushes, then sends a `ping` envelope and waits for its `pong`: the
    /// broker handles a connection's envelopes in order, so by then it has
    /// handled every emit, and any `err` it answered has arrived.
    async fn finish(&mut self) -> Result<(), BenchError> {
        const BARRIER: u64 = u64::MAX;
        let ping = Envelope::Ping { ts: Some(BARRIER) };
        self.sink
            .feed(Message::Binary(herald_protocol::encode(&ping).into()))
            .await
            .map_err(|e| BenchError::target(TARGET, format!("publishing: {e}")))?;
        self.flush().await?;
        let waiting = async {
            loop {
                match self.pongs.recv().await {
                    Some(Some(BARRIER)) => return Ok(()),
                    Some(_) => {}
                    None => {
                        return Err(BenchError::target(
                            TARGET,
                            "the publisher's connection closed before the final pong",
                        ));
                    }
                }
            }
        };
        tokio::time::timeout(ANSWER_TIMEOUT, waiting)
            .await
            .map_err(|_| BenchError::timeout(ANSWER_TIMEOUT, "the publisher's final pong"))??;
        self.check_broker_error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_urls() {
        let cases = [
            ("ws://127.0.0.1:7400", "ws://127.0.0.1:7400/v1/ws"),
            ("ws://127.0.0.1:7400/", "ws://127.0.0.1:7400/v1/ws"),
            ("ws://h:1/v1/ws", "ws://h:1/v1/ws"),
            (" ws://h:1/custom/ ", "ws://h:1/custom"),
            ("wss://h:1", "wss://h:1/v1/ws"),
        ];
        for (given, expected) in cases {
            assert_eq!(endpoint_url(given).expect("valid URL"), expected);
        }
        for bad in ["http://h:1", "ws://", "wss://", "127.0.0.1:7400"] {
            let error = endpoint_url(bad).expect_err("refused");
            assert!(error.to_string().contains("--url"), "{error}");
        }
    }

    #[test]
    fn emit_template_patches_only_the_payload() {
        let mut template = EmitTemplate::new("/bench", "bench.t0", 16);
        let mut payload = clock::payload_template(16);
        clock::write_stamp(&mut payload, 42);
        let frame = template.frame(&payload);
        let Ok(Envelope::Emit(emit)) = herald_protocol::decode(&frame) else {
            panic!("the frame should decode as an emit");
        };
        assert_eq!(emit.namespace, "/bench");
        assert_eq!(emit.event, "bench.t0");
        assert_eq!(emit.payload.as_ref(), payload.as_slice());
        assert_eq!(emit.id, None, "fire-and-forget: no ack asked");
        assert_eq!(
            frame.as_ref(),
            encode_emit("/bench", "bench.t0", &payload).as_ref(),
            "the patched frame equals a fresh encoding"
        );
        // Another size re-encodes the template.
        let big = clock::payload_template(300);
        let frame = template.frame(&big);
        let Ok(Envelope::Emit(emit)) = herald_protocol::decode(&frame) else {
            panic!("the frame should decode as an emit");
        };
        assert_eq!(emit.payload.len(), 300);
    }

    #[test]
    fn publishers_may_go_to_another_node() {
        let driver = HeraldDriver::new("ws://127.0.0.1:1", DEFAULT_NAMESPACE).expect("valid");
        assert_eq!(driver.publish_url(), "ws://127.0.0.1:1/v1/ws");
        let driver = driver
            .with_publish_url("ws://127.0.0.1:2")
            .expect("valid URL");
        assert_eq!(driver.url(), "ws://127.0.0.1:1/v1/ws");
        assert_eq!(driver.publish_url(), "ws://127.0.0.1:2/v1/ws");
        let error = HeraldDriver::new("ws://127.0.0.1:1", DEFAULT_NAMESPACE)
            .expect("valid")
            .with_publish_url("http://127.0.0.1:2")
            .expect_err("refused");
        assert!(error.to_string().contains("--url"), "{error}");
    }

    #[test]
    fn bad_namespace_is_refused() {
        let error = HeraldDriver::new("ws://127.0.0.1:1", "bench").expect_err("refused");
        assert!(error.to_string().contains("--namespace"), "{error}");
    }
}
