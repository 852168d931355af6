//! The shared harness of Herald's end-to-end tests.
//!
//! The tests in `tests/tests/*.rs` start real brokers in-process on
//! `127.0.0.1:0` and drive them over real sockets, with raw protocol clients
//! (this module) and, where noted, the SDK. This crate holds what they
//! share:
//!
//! - [`TestBroker`]: a broker started with [`start_broker`] from the
//!   built-in defaults plus a settings closure, with its address, counters
//!   and graceful shutdown.
//! - [`RawClient`]: a WebSocket client that speaks the Herald envelopes
//!   directly (subprotocol `herald.v1`), with helpers for the common steps
//!   (`hello`, `subscribe`, `join`, `emit_acked`, `reply`, ...) and for the
//!   common checks (`expect_event`, `expect_error`, `expect_close`,
//!   `assert_no_event`).
//! - [`MuteSocket`]: a hand-written WebSocket client that never answers
//!   pings (a truly silent peer) and reads raw frames afterwards.
//! - [`http_get`] / [`http_post`] / [`http_request`]: a tiny HTTP/1.1
//!   client over a plain `TcpStream` for `/healthz`, `/readyz`, `/metrics`,
//!   the HTTP publish API and refused upgrades.
//! - Payload helpers ([`seq_payload`], [`payload_seq`]) that number events
//!   and let a receiver check that the bytes arrived intact.
//! - [`sdk`]: helpers for the tests that drive the broker through the SDK
//!   (bounded waits on channels, forwarding handlers, SDK clients).
//! - [`admin`]: a broker with the admin console on, admin API requests
//!   with credentials, its live stream, argon2 password hashes.
//! - [`tokens`]: for the SDK and CLI auth tests, a broker with
//!   `auth.mode = "jwt"`, short-lived tokens and the expiry settings (on
//!   top of [`auth`], which mints the tokens).
//! - [`cluster`]: a real `redis-server` on a free port and broker daemon
//!   processes clustered over it, for the broker's cluster tests.
//! - [`sioclient`]: real Socket.IO clients (Node, Python, headless
//!   Chromium) scripted over JSON lines, and the Socket.IO server they
//!   talk to (the Node reference server, or Herald).
//! - [`devtools`]: headless Chromium over the DevTools protocol (evaluate,
//!   click, wait for the DOM, screenshots), for the admin console test.
//! - [`tls`]: certificates made in the test (a CA, server and client
//!   certificates, as PEM files) and a raw TLS client (HTTPS requests,
//!   `wss://` upgrades, the certificate a broker serves).
//!
//! # Rules every test follows
//! - Every wait is bounded: a read gives up after [`TIMEOUT`] with a message
//!   saying what was awaited; [`wait_until`] polls a real condition a
//!   bounded number of times.
//! - No sleeping as synchronisation. To show that something did *not*
//!   arrive, [`RawClient::assert_no_event`] sends a `ping` envelope and
//!   waits for its `pong`: frames on one connection are ordered, and the
//!   broker handles a connection's envelopes in order, so anything queued
//!   for the client before the ping was handled arrives before the pong.
//!   To make sure another connection's emit was handled first, that
//!   connection does the same round trip ([`RawClient::barrier`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald_broker::{Broker, BrokerHandle, StatsSnapshot};
use herald_config::Settings;
use herald_protocol::envelope::Welcome;
use herald_protocol::envelope::{Emit, ErrorBody, Event, Hello, Reply, RoomChange, Subscription};
use herald_protocol::{CloseReason, Envelope, ErrorCode, PROTOCOL_VERSION, SUBPROTOCOL, WS_PATH};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod devtools;
pub mod engineio;
pub mod examples;
pub mod proxy;
pub mod sdk;
pub mod sioclient;
pub mod tls;
pub mod tokens;

/// How long any single wait of a test may take before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A broker running in this process for one test.
///
/// Dropping it without [`TestBroker::shutdown`] leaves its tasks to the
/// test's runtime, which ends with the test.
#[derive(Debug)]
pub struct TestBroker {
    handle: BrokerHandle,
    addr: SocketAddr,
    grace: Duration,
}

/// Starts a broker on `127.0.0.1:0` from the built-in defaults, after
/// `configure` has adjusted them. Panics if the settings are invalid.
pub async fn start_broker(configure: impl FnOnce(&mut Settings)) -> TestBroker {
    start_broker_on(local(0), configure).await
}

/// Like [`start_broker`], on a given address (e.g. to restart a broker on
/// the port a previous one used).
pub async fn start_broker_on(
    addr: SocketAddr,
    configure: impl FnOnce(&mut Settings),
) -> TestBroker {
    let mut settings = Settings::defaults();
    settings.server.listen = addr;
    configure(&mut settings);
    let grace = settings.server.shutdown_grace;
    if let Err(error) = settings.validate() {
        panic!("the test's broker settings are invalid: {error}");
    }
    let handle = match Broker::start(settings).await {
        Ok(handle) => handle,
        Err(error) => panic!("the test broker did not start: {error}"),
    };
    let addr = handle.local_addr();
    TestBroker {
        handle,
        addr,
        grace,
    }
}

/// A `configure` for [`start_broker`] / [`start_broker_on`]: a shutdown
/// grace of 500 ms instead of the default 10 s, for tests that stop a broker
/// while clients may still be connected (e.g. SDK clients that reconnect)
/// and should not wait long for them to leave.
pub fn short_grace(settings: &mut Settings) {
    settings.server.shutdown_grace = Duration::from_millis(500);
}

/// `127.0.0.1:port`.
pub fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl TestBroker {
    /// The address the broker listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket URL of the broker (`ws://127.0.0.1:PORT/v1/ws`).
    pub fn url(&self) -> String {
        format!("ws://{}{WS_PATH}", self.addr)
    }

    /// The broker's handle, for `rooms()`, `pending_requests()`, ...
    pub fn handle(&self) -> &BrokerHandle {
        &self.handle
    }

    /// The broker's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.handle.stats()
    }

    /// Polls the broker's counters until `condition` holds (bounded by
    /// [`TIMEOUT`]); returns the snapshot that satisfied it.
    pub async fn wait_for_stats(
        &self,
        what: &str,
        condition: impl Fn(&StatsSnapshot) -> bool,
    ) -> StatsSnapshot {
        let mut last = self.stats();
        for _ in 0..POLL_ATTEMPTS {
            if condition(&last) {
                return last;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
            last = self.stats();
        }
        panic!("timed out after {TIMEOUT:?} waiting for {what}; broker stats: {last:#?}");
    }

    /// Opens a WebSocket with the `herald.v1` subprotocol (no `hello` yet).
    pub async fn connect(&self) -> RawClient {
        match connect_raw(self.addr, Some(SUBPROTOCOL)).await {
            Ok(client) => client,
            Err(error) => panic!("WebSocket upgrade to {} failed: {error}", self.url()),
        }
    }

    /// Opens a WebSocket and completes the `hello` / `welcome` handshake.
    pub async fn client(&self) -> RawClient {
        let mut client = self.connect().await;
        client.hello().await;
        client
    }

    /// `n` greeted clients.
    pub async fn clients(&self, n: usize) -> Vec<RawClient> {
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n {
            clients.push(self.client().await);
        }
        clients
    }

    /// Checks that the broker still serves new connections end to end:
    /// two fresh clients, one subscribes, the other emits, the first
    /// receives.
    pub async fn assert_healthy(&self) {
        let mut subscriber = self.client().await;
        subscriber
            .subscribe("/health-probe", "probe.check", None, false)
            .await;
        let mut publisher = self.client().await;
        let payload = Bytes::from_static(b"still alive");
        let receivers = publisher
            .emit_acked(emit("/health-probe", "probe.check", payload.clone()))
            .await;
        assert_eq!(
            receivers, 1,
            "the health probe's event should reach its subscriber"
        );
        let event = subscriber.expect_event().await;
        assert_eq!(event.payload, payload);
        subscriber.close().await;
        publisher.close().await;
    }

    /// HTTP `GET path` against the broker.
    pub async fn get(&self, path: &str) -> HttpResponse {
        http_get(self.addr, path).await
    }

    /// HTTP `POST path` with `body` (and `Content-Type`, when given).
    pub async fn post(&self, path: &str, content_type: Option<&str>, body: &[u8]) -> HttpResponse {
        http_post(self.addr, path, content_type, body).await
    }

    /// Gracefully stops the broker (bounded by the shutdown grace plus
    /// [`TIMEOUT`]); returns what [`BrokerHandle::shutdown`] returned.
    pub async fn shutdown(self) -> bool {
        let grace = self.grace;
        match tokio::time::timeout(grace + TIMEOUT, self.handle.shutdown()).await {
            Ok(drained) => drained,
            Err(_) => panic!(
                "broker shutdown did not finish within {:?}",
                grace + TIMEOUT
            ),
        }
    }

    /// Takes the handle out, e.g. to call `shutdown` in a spawned task.
    pub fn into_handle(self) -> BrokerHandle {
        self.handle
    }
}

const POLL_INTERVAL: Duration = Duration::from_millis(10);
const POLL_ATTEMPTS: u32 = 500;

/// Polls `condition` until it holds, at most [`TIMEOUT`] (500 attempts
/// 10 ms apart). For conditions no message announces (a counter, a
/// process exit); never as a stand-in for a message that can be awaited.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..POLL_ATTEMPTS {
        if condition() {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!("timed out after {TIMEOUT:?} waiting for {what}");
}

/// The client side of a WebSocket opened by the tests.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Opens a WebSocket to `addr` offering `subprotocol` (none when `None`).
/// A refused upgrade is `Err(WsError::Http(response))`.
pub async fn connect_raw(
    addr: SocketAddr,
    subprotocol: Option<&str>,
) -> Result<RawClient, WsError> {
    let mut request = format!("ws://{addr}{WS_PATH}").into_client_request()?;
    if let Some(protocol) = subprotocol {
        let value = HeaderValue::from_str(protocol).map_err(|e| WsError::HttpFormat(e.into()))?;
        request
            .headers_mut()
            .insert("Sec-WebSocket-Protocol", value);
    }
    // Nagle's algorithm would hold small frames back for tens of ms.
    let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (ws, _response) = tokio::time::timeout(TIMEOUT, connect)
        .await
        .map_err(|_| WsError::Io(std::io::Error::other("WebSocket connect timed out")))??;
    Ok(RawClient::new(ws))
}

/// The status and body of a refused upgrade (`WsError::Http`); panics on
/// any other outcome.
pub fn refused(result: Result<RawClient, WsError>) -> HttpResponse {
    match result {
        Ok(_) => panic!("the upgrade was accepted; expected it to be refused"),
        Err(WsError::Http(response)) => HttpResponse {
            status: response.status().as_u16(),
            head: format!("{:?}", response.headers()),
            body: String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned(),
        },
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
    }
}

/// An `Emit` with only namespace, event and payload set.
pub fn emit(namespace: &str, event: &str, payload: impl Into<Bytes>) -> Emit {
    Emit {
        namespace: namespace.into(),
        event: event.into(),
        payload: payload.into(),
        ..Emit::default()
    }
}

/// A binary frame holding a MessagePack map built from `value` (e.g. a
/// `BTreeMap`), for envelopes the typed codec cannot produce.
pub fn msgpack_frame(value: &impl Serialize) -> Message {
    match rmp_serde::to_vec_named(value) {
        Ok(bytes) => Message::Binary(bytes.into()),
        Err(error) => panic!("cannot encode test frame: {error}"),
    }
}

/// A binary frame holding a MessagePack map of string fields.
pub fn string_map_frame(fields: &[(&str, &str)]) -> Message {
    let map: BTreeMap<&str, &str> = fields.iter().copied().collect();
    msgpack_frame(&map)
}

/// A payload of `len` bytes (at least 8) carrying `seq` in its first eight
/// bytes (big-endian) and a pattern derived from `seq` in the rest, so a
/// receiver can check with [`payload_seq`] that it arrived intact.
pub fn seq_payload(seq: u64, len: usize) -> Bytes {
    assert!(len >= 8, "a sequence payload needs at least 8 bytes");
    let mut bytes = Vec::with_capacity(len);
    bytes.extend_from_slice(&seq.to_be_bytes());
    bytes.extend((8..len).map(|i| pattern_byte(seq, i)));
    bytes.into()
}

fn pattern_byte(seq: u64, i: usize) -> u8 {
    // Truncation is the point: a byte pattern that varies with seq and i.
    (seq.wrapping_mul(31).wrapping_add(i as u64) % 251) as u8
}

/// The sequence number of a [`seq_payload`]; panics if any byte differs
/// from what [`seq_payload`] wrote.
pub fn payload_seq(payload: &[u8]) -> u64 {
    assert!(
        payload.len() >= 8,
        "payload of {} bytes is too short",
        payload.len()
    );
    let mut head = [0u8; 8];
    head.copy_from_slice(&payload[..8]);
    let seq = u64::from_be_bytes(head);
    if let Some(i) = (8..payload.len()).find(|&i| payload[i] != pattern_byte(seq, i)) {
        panic!("payload of event {seq} is corrupt at byte {i}");
    }
    seq
}

/// How a connection ended, as read by [`RawClient::read_until_close`].
#[derive(Debug, Default)]
pub struct Closing {
    /// Envelopes other than `close` that arrived first, in order.
    pub envelopes: Vec<Envelope>,
    /// The `close` envelope, if one arrived.
    pub close_envelope: Option<(CloseReason, String)>,
    /// The WebSocket close frame's code and reason, if one arrived (None
    /// when the connection ended without a closing handshake).
    pub frame: Option<(u16, String)>,
    /// How the stream ended without a close frame: the read error, or
    /// "end of stream".
    pub ended: Option<String>,
}

/// A raw Herald protocol client over tokio-tungstenite.
#[derive(Debug)]
pub struct RawClient {
    ws: Ws,
    next_id: u64,
}

impl RawClient {
    /// Wraps an open WebSocket.
    pub fn new(ws: Ws) -> RawClient {
        RawClient { ws, next_id: 0 }
    }

    /// A fresh correlation id (also used for ping timestamps).
    pub fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// Sends one envelope as a binary frame.
    pub async fn send(&mut self, envelope: &Envelope) {
        let frame = Message::Binary(herald_protocol::encode(envelope).into());
        self.send_raw(frame).await;
    }

    /// Sends any WebSocket message as it is.
    pub async fn send_raw(&mut self, message: Message) {
        match tokio::time::timeout(TIMEOUT, self.ws.send(message)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("sending a frame failed: {error}"),
            Err(_) => panic!("sending a frame did not finish within {TIMEOUT:?}"),
        }
    }

    /// Queues an envelope without flushing (see [`RawClient::flush`]); for
    /// fast bulk sends.
    pub async fn feed(&mut self, envelope: &Envelope) {
        let frame = Message::Binary(herald_protocol::encode(envelope).into());
        match tokio::time::timeout(TIMEOUT, self.ws.feed(frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("feeding a frame failed: {error}"),
            Err(_) => panic!("feeding a frame did not finish within {TIMEOUT:?}"),
        }
    }

    /// Flushes frames queued by [`RawClient::feed`].
    pub async fn flush(&mut self) {
        match tokio::time::timeout(TIMEOUT, self.ws.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!("flushing failed: {error}"),
            Err(_) => panic!("flushing did not finish within {TIMEOUT:?}"),
        }
    }

    /// The next WebSocket message of any kind (control frames included),
    /// `None` when the stream ended, `Some(Err)` on a transport error.
    /// Panics when nothing arrives within [`TIMEOUT`].
    pub async fn next_message(&mut self) -> Option<Result<Message, WsError>> {
        match tokio::time::timeout(TIMEOUT, self.ws.next()).await {
            Ok(next) => next,
            Err(_) => panic!("no frame arrived within {TIMEOUT:?}"),
        }
    }

    /// The next data or close message, skipping WebSocket pings and pongs
    /// (the client answers pings by itself while reading).
    pub async fn recv_message(&mut self) -> Message {
        loop {
            match self.next_message().await {
                None => panic!("the connection ended while a frame was expected"),
                Some(Err(error)) => panic!("reading failed while a frame was expected: {error}"),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(message)) => return message,
            }
        }
    }

    /// The next envelope. Panics on a timeout, a close frame, a text frame
    /// or an undecodable frame.
    pub async fn recv(&mut self) -> Envelope {
        match self.recv_message().await {
            Message::Binary(frame) => match herald_protocol::decode(&frame) {
                Ok(envelope) => envelope,
                Err(error) => panic!("the broker sent an undecodable frame: {error}"),
            },
            Message::Close(frame) => panic!("expected an envelope, got a close frame {frame:?}"),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// Sends `hello` (protocol version 1) and returns the `welcome`.
    pub async fn hello(&mut self) -> Welcome {
        self.send(&Envelope::Hello(Hello {
            version: PROTOCOL_VERSION,
            client: Some("herald-tests".into()),
            ..Hello::default()
        }))
        .await;
        match self.recv().await {
            Envelope::Welcome(welcome) => welcome,
            other => panic!("expected welcome, got {other:?}"),
        }
    }

    /// Waits for `ok` with `id`.
    pub async fn expect_ok(&mut self, id: u64) {
        match self.recv().await {
            Envelope::Ok { id: got } if got == id => {}
            other => panic!("expected ok for id {id}, got {other:?}"),
        }
    }

    /// Subscribes (with a correlation id) and waits for the `ok`.
    pub async fn subscribe(&mut self, ns: &str, ev: &str, group: Option<&str>, responder: bool) {
        self.subscription_change(Envelope::Subscribe, ns, ev, group, responder)
            .await;
    }

    /// Unsubscribes (with a correlation id) and waits for the `ok`.
    pub async fn unsubscribe(&mut self, ns: &str, ev: &str, group: Option<&str>, responder: bool) {
        self.subscription_change(Envelope::Unsubscribe, ns, ev, group, responder)
            .await;
    }

    /// Sends `kind` (`Subscribe` or `Unsubscribe`) of a [`Subscription`]
    /// with a fresh correlation id and waits for the `ok`.
    async fn subscription_change(
        &mut self,
        kind: fn(Subscription) -> Envelope,
        ns: &str,
        ev: &str,
        group: Option<&str>,
        responder: bool,
    ) {
        let id = self.next_id();
        self.send(&kind(Subscription {
            id: Some(id),
            namespace: ns.into(),
            event: ev.into(),
            group: group.map(str::to_owned),
            responder,
        }))
        .await;
        self.expect_ok(id).await;
    }

    /// Joins a room and waits for the `ok`.
    pub async fn join(&mut self, ns: &str, room: &str) {
        self.room_change(Envelope::Join, ns, room).await;
    }

    /// Leaves a room and waits for the `ok`.
    pub async fn leave(&mut self, ns: &str, room: &str) {
        self.room_change(Envelope::Leave, ns, room).await;
    }

    /// Sends `kind` (`Join` or `Leave`) of a [`RoomChange`] with a fresh
    /// correlation id and waits for the `ok`.
    async fn room_change(&mut self, kind: fn(RoomChange) -> Envelope, ns: &str, room: &str) {
        let id = self.next_id();
        self.send(&kind(RoomChange {
            id: Some(id),
            namespace: ns.into(),
            room: room.into(),
            sid: None,
        }))
        .await;
        self.expect_ok(id).await;
    }

    /// Sends an `emit` as it is (fire and forget unless it carries an id).
    pub async fn emit(&mut self, emit: Emit) {
        self.send(&Envelope::Emit(emit)).await;
    }

    /// Sends an `emit` with a fresh `id` and returns the broker's `ack`
    /// count (connections the event was queued to). Events addressed to
    /// this client that arrive before the ack are a test failure.
    pub async fn emit_acked(&mut self, mut emit: Emit) -> u64 {
        let id = self.next_id();
        emit.id = Some(id);
        self.send(&Envelope::Emit(emit)).await;
        match self.recv().await {
            Envelope::Ack { id: got, receivers } if got == id => receivers,
            other => panic!("expected ack for emit {id}, got {other:?}"),
        }
    }

    /// Sends a request: an `emit` with `ack` (and a timeout in ms).
    pub async fn request(&mut self, mut emit: Emit, ack: u64, timeout_ms: Option<u64>) {
        emit.ack = Some(ack);
        emit.timeout_ms = timeout_ms;
        self.send(&Envelope::Emit(emit)).await;
    }

    /// Answers a request received as an event with `ack = handle`.
    pub async fn reply(&mut self, handle: u64, ok: bool, payload: impl Into<Bytes>) {
        self.send(&Envelope::Reply(Reply {
            ack: handle,
            ok,
            payload: payload.into(),
            args: false,
        }))
        .await;
    }

    /// The next envelope, which must be an `event`.
    pub async fn expect_event(&mut self) -> Event {
        match self.recv().await {
            Envelope::Event(event) => event,
            other => panic!("expected an event, got {other:?}"),
        }
    }

    /// The next envelope, which must be a `reply`.
    pub async fn expect_reply(&mut self) -> Reply {
        match self.recv().await {
            Envelope::Reply(reply) => reply,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// The next envelope, which must be an `err` with `code`.
    pub async fn expect_error(&mut self, code: ErrorCode) -> ErrorBody {
        match self.recv().await {
            Envelope::Error(error) if error.code == code => error,
            other => panic!("expected err {code}, got {other:?}"),
        }
    }

    /// Sends a `ping` envelope and waits for its `pong`, returning every
    /// envelope that arrived first. Because the broker handles a
    /// connection's envelopes in order and frames on a connection are
    /// ordered, everything the broker had queued for this client before
    /// the ping was handled is in the result.
    pub async fn barrier(&mut self) -> Vec<Envelope> {
        let ts = self.next_id() | (1 << 62);
        self.send(&Envelope::Ping { ts: Some(ts) }).await;
        let mut before = Vec::new();
        loop {
            match self.recv().await {
                Envelope::Pong { ts: Some(got) } if got == ts => return before,
                other => before.push(other),
            }
        }
    }

    /// Collects the events that arrive before a [`barrier`](Self::barrier);
    /// any other envelope is a test failure.
    pub async fn drain_events(&mut self) -> Vec<Event> {
        self.barrier()
            .await
            .into_iter()
            .map(|envelope| match envelope {
                Envelope::Event(event) => event,
                other => panic!("expected only events before the pong, got {other:?}"),
            })
            .collect()
    }

    /// Asserts that nothing at all is queued for this client (checked with
    /// a ping / pong round trip, not a sleep).
    pub async fn assert_no_event(&mut self) {
        let before = self.barrier().await;
        assert!(
            before.is_empty(),
            "expected nothing before the pong, got {before:?}"
        );
    }

    /// Reads everything up to the end of the connection: envelopes, the
    /// `close` envelope and the close frame. Panics if the connection does
    /// not end within [`TIMEOUT`] of the last frame.
    pub async fn read_until_close(&mut self) -> Closing {
        let mut closing = Closing::default();
        loop {
            match self.next_message().await {
                None => {
                    closing.ended = Some("end of stream".into());
                    return closing;
                }
                Some(Err(error)) => {
                    closing.ended = Some(error.to_string());
                    return closing;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                Some(Ok(Message::Close(frame))) => {
                    closing.frame = Some(frame.map_or((1005, String::new()), |f| {
                        (u16::from(f.code), f.reason.as_str().to_owned())
                    }));
                    return closing;
                }
                Some(Ok(Message::Text(text))) => {
                    panic!("the broker sent a text frame: {text:?}")
                }
                Some(Ok(Message::Binary(frame))) => match herald_protocol::decode(&frame) {
                    Ok(Envelope::Close { reason, message }) => {
                        assert!(
                            closing.close_envelope.is_none(),
                            "two close envelopes: {:?} then {reason}",
                            closing.close_envelope
                        );
                        closing.close_envelope = Some((reason, message));
                    }
                    Ok(envelope) => {
                        assert!(
                            closing.close_envelope.is_none(),
                            "{envelope:?} arrived after the close envelope"
                        );
                        closing.envelopes.push(envelope);
                    }
                    Err(error) => panic!("the broker sent an undecodable frame: {error}"),
                },
            }
        }
    }

    /// Expects the connection to close next: a `close` envelope naming the
    /// reason, then a close frame whose code and reason text match it.
    /// Returns the close frame's (code, reason). Any other envelope first is
    /// a test failure.
    pub async fn expect_close(&mut self) -> (u16, String) {
        let closing = self.read_until_close().await;
        assert!(
            closing.envelopes.is_empty(),
            "expected the connection to close, got {:?} first",
            closing.envelopes
        );
        Self::check_closing(&closing)
    }

    /// Checks that `closing` has a `close` envelope and a matching close
    /// frame; returns the frame's (code, reason).
    pub fn check_closing(closing: &Closing) -> (u16, String) {
        let Some((reason, _message)) = &closing.close_envelope else {
            panic!("the connection closed without a close envelope: {closing:?}");
        };
        let Some((code, text)) = &closing.frame else {
            panic!("the connection ended without a close frame: {closing:?}");
        };
        assert_eq!(
            (*code, text.as_str()),
            (reason.ws_code(), reason.as_str()),
            "the close frame does not match the close envelope"
        );
        (*code, text.clone())
    }

    /// Closes the connection from the client side (close frame 1000) and
    /// reads until the broker's answer, bounded by [`TIMEOUT`].
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(TIMEOUT, self.ws.close(None)).await;
        let _ = tokio::time::timeout(TIMEOUT, async {
            while let Some(Ok(_)) = self.ws.next().await {}
        })
        .await;
    }

    /// The underlying WebSocket, for tests that need it directly.
    pub fn ws(&mut self) -> &mut Ws {
        &mut self.ws
    }
}

/// One frame read by [`MuteSocket`]: its opcode and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    /// The WebSocket opcode (0x2 binary, 0x8 close, 0x9 ping, ...).
    pub opcode: u8,
    /// The unmasked payload.
    pub payload: Vec<u8>,
}

impl RawFrame {
    /// The envelope in a binary frame; panics for other frames.
    pub fn envelope(&self) -> Envelope {
        assert_eq!(self.opcode, 0x2, "not a binary frame: {self:?}");
        match herald_protocol::decode(&Bytes::copy_from_slice(&self.payload)) {
            Ok(envelope) => envelope,
            Err(error) => panic!("undecodable frame: {error}"),
        }
    }

    /// The code and reason of a close frame; panics for other frames.
    pub fn close(&self) -> (u16, String) {
        assert_eq!(self.opcode, 0x8, "not a close frame: {self:?}");
        assert!(self.payload.len() >= 2, "close frame without a code");
        let code = u16::from_be_bytes([self.payload[0], self.payload[1]]);
        (
            code,
            String::from_utf8_lossy(&self.payload[2..]).into_owned(),
        )
    }
}

/// A WebSocket client written by hand over a `TcpStream`, which (unlike a
/// WebSocket library) never answers pings or close frames by itself: a
/// peer that is truly silent, whose frames can still be read afterwards.
#[derive(Debug)]
pub struct MuteSocket {
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl MuteSocket {
    /// Upgrades a TCP connection to `addr` with subprotocol `herald.v1`.
    pub async fn connect(addr: SocketAddr) -> MuteSocket {
        MuteSocket::connect_with(addr, WS_PATH, None).await
    }

    /// Upgrades a TCP connection to `path` on `addr` (e.g. the echo
    /// endpoint, which ignores the `herald.v1` offer).
    pub async fn connect_to(addr: SocketAddr, path: &str) -> MuteSocket {
        MuteSocket::connect_with(addr, path, None).await
    }

    /// [`MuteSocket::connect`] with a receive buffer of about `bytes`
    /// (the kernel may round it), so that a broker writing to a peer that
    /// does not read finds the socket full after little data.
    pub async fn connect_with_receive_buffer(addr: SocketAddr, bytes: u32) -> MuteSocket {
        MuteSocket::connect_with(addr, WS_PATH, Some(bytes)).await
    }

    async fn connect_with(addr: SocketAddr, path: &str, receive_buffer: Option<u32>) -> MuteSocket {
        let upgrade = async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            if let Some(bytes) = receive_buffer {
                socket.set_recv_buffer_size(bytes)?;
            }
            let mut stream = socket.connect(addr).await?;
            stream.set_nodelay(true)?;
            let request = format!(
                "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {SUBPROTOCOL}\r\n\r\n"
            );
            stream.write_all(request.as_bytes()).await?;
            let mut buffer = Vec::new();
            let mut chunk = [0u8; 1024];
            let end = loop {
                if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                    break end + 4;
                }
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(std::io::Error::other("closed during the upgrade"));
                }
                buffer.extend_from_slice(&chunk[..n]);
            };
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            if !head.starts_with("HTTP/1.1 101") {
                return Err(std::io::Error::other(format!("upgrade refused: {head}")));
            }
            buffer.drain(..end);
            Ok(MuteSocket { stream, buffer })
        };
        match tokio::time::timeout(TIMEOUT, upgrade).await {
            Ok(Ok(socket)) => socket,
            Ok(Err(error)) => panic!("mute socket upgrade failed: {error}"),
            Err(_) => panic!("mute socket upgrade timed out"),
        }
    }

    /// Sends an envelope in a masked binary frame (mask key zero).
    pub async fn send(&mut self, envelope: &Envelope) {
        self.send_bytes(&client_frame(envelope)).await;
    }

    /// Writes `bytes` to the socket as they are (for frames that break
    /// RFC 6455's rules on purpose).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.send_bytes_within(bytes, TIMEOUT).await;
    }

    /// [`MuteSocket::send_bytes`] for a large write that the broker may
    /// take slowly (a flood held back by back-pressure), bounded by
    /// `limit`.
    pub async fn send_bytes_within(&mut self, bytes: &[u8], limit: Duration) {
        match tokio::time::timeout(limit, self.stream.write_all(bytes)).await {
            Ok(Ok(())) => {}
            other => panic!("mute socket send failed: {other:?}"),
        }
    }

    /// Writes `bytes` unless the broker stops taking them: false when the
    /// write failed or made no progress for `within` (the broker stopped
    /// reading, or closed). A socket that returned false may hold half a
    /// frame; send nothing more on it.
    pub async fn try_send_bytes(&mut self, bytes: &[u8], within: Duration) -> bool {
        let mut rest = bytes;
        while !rest.is_empty() {
            match tokio::time::timeout(within, self.stream.write(rest)).await {
                Ok(Ok(n @ 1..)) => rest = &rest[n..],
                _ => return false,
            }
        }
        true
    }

    /// Sends `hello` without reading the `welcome`.
    pub async fn send_hello(&mut self) {
        self.send(&Envelope::Hello(Hello {
            version: PROTOCOL_VERSION,
            ..Hello::default()
        }))
        .await;
    }

    /// Reads every frame up to and including the close frame, or until
    /// the connection ends; bounded by [`TIMEOUT`].
    pub async fn read_to_close(&mut self) -> Vec<RawFrame> {
        let mut frames = Vec::new();
        let read_all = async {
            loop {
                while let Some(frame) = self.parse_frame() {
                    let close = frame.opcode == 0x8;
                    frames.push(frame);
                    if close {
                        return;
                    }
                }
                let mut chunk = [0u8; 16 * 1024];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => self.buffer.extend_from_slice(&chunk[..n]),
                }
            }
        };
        if tokio::time::timeout(TIMEOUT, read_all).await.is_err() {
            panic!("the connection did not close within {TIMEOUT:?}; read {frames:?}");
        }
        frames
    }

    /// Takes one complete unmasked frame off the buffer, if there is one.
    fn parse_frame(&mut self) -> Option<RawFrame> {
        let b = &self.buffer;
        if b.len() < 2 {
            return None;
        }
        assert_eq!(b[1] & 0x80, 0, "the broker masked a frame");
        let (len, header) = match b[1] & 0x7f {
            126 if b.len() >= 4 => (usize::from(u16::from_be_bytes([b[2], b[3]])), 4),
            127 if b.len() >= 10 => {
                let mut len = [0u8; 8];
                len.copy_from_slice(&b[2..10]);
                (usize::try_from(u64::from_be_bytes(len)).ok()?, 10)
            }
            126 | 127 => return None,
            n => (usize::from(n), 2),
        };
        if b.len() < header + len {
            return None;
        }
        let frame = RawFrame {
            opcode: b[0] & 0x0f,
            payload: b[header..header + len].to_vec(),
        };
        self.buffer.drain(..header + len);
        Some(frame)
    }
}

/// One envelope as a client's masked binary WebSocket frame (mask key
/// zero), ready to write to a socket as it is (e.g. many of them at once,
/// to flood a broker faster than any client library would).
pub fn client_frame(envelope: &Envelope) -> Vec<u8> {
    let payload = herald_protocol::encode(envelope);
    let mut frame = vec![0x82];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= usize::from(u16::MAX) => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(&payload);
    frame
}

/// A parsed HTTP/1.1 response.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The status line and headers, as text (for failure messages and
    /// header checks).
    pub head: String,
    /// The body (lossy UTF-8).
    pub body: String,
}

/// `GET path` with `Connection: close`.
pub async fn http_get(addr: SocketAddr, path: &str) -> HttpResponse {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
    )
    .await
}

/// `POST path` with `body`, `Content-Length`, `Connection: close` and,
/// when given, `Content-Type: content_type` (e.g. for the HTTP publish API,
/// `POST /v1/emit/{event}`).
pub async fn http_post(
    addr: SocketAddr,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> HttpResponse {
    let content_type = content_type
        .map(|value| format!("Content-Type: {value}\r\n"))
        .unwrap_or_default();
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{content_type}Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    http_request_bytes(addr, &request).await
}

/// Sends `request` (a complete HTTP/1.1 request that asks for
/// `Connection: close`) and reads the response until the server closes.
pub async fn http_request(addr: SocketAddr, request: &str) -> HttpResponse {
    http_request_bytes(addr, request.as_bytes()).await
}

/// Starts `GET path` (an Engine.IO long-poll) on its own task and returns
/// once the broker holds it waiting (it is the only waiting poll); await
/// the handle for the response.
pub async fn waiting_poll(
    broker: &TestBroker,
    path: String,
) -> tokio::task::JoinHandle<HttpResponse> {
    let addr = broker.addr();
    let pending = tokio::spawn(async move { http_get(addr, &path).await });
    wait_until("the poll to wait", || {
        broker.handle().engineio_polls_waiting() == 1
    })
    .await;
    pending
}

/// [`http_request`] for a request given as bytes (e.g. with a binary body).
pub async fn http_request_bytes(addr: SocketAddr, request: &[u8]) -> HttpResponse {
    match try_http_request_bytes(addr, request).await {
        Ok(response) => response,
        Err(error) => panic!("HTTP request to {addr} failed: {error}"),
    }
}

/// [`http_request_bytes`] that returns a failed exchange (refused, reset,
/// no answer within [`TIMEOUT`]) as an error instead of panicking, for
/// polls of a server that may still be starting.
pub async fn try_http_request_bytes(
    addr: SocketAddr,
    request: &[u8],
) -> std::io::Result<HttpResponse> {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(request).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>(raw)
    };
    let raw = match tokio::time::timeout(TIMEOUT, exchange).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("no answer within {TIMEOUT:?}"),
            ));
        }
    };
    Ok(parse_http_response(&raw))
}

/// An HTTP/1.1 response read to its end, split into status, head and
/// body; panics on anything else.
pub fn parse_http_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        panic!("malformed HTTP response: {text:?}");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status code in {head:?}"));
    HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}
