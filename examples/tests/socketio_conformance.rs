//! The upstream Socket.IO conformance suite (socketio/socket.io-protocol
//! `test-suite/test-suite.js`), ported check by check in its Engine.IO v4
//! form (`EIO=4`, `\x1e` between polling packets, the SERVER pings `2` and
//! the client answers `3`), against the broker's Socket.IO front end at
//! `/socket.io/` with the suite's settings, and the suite's handlers run by
//! the `socketio-conformance` example: a native SDK service started beside
//! the broker as a child process. Plus the `/chat` handlers of issue #10
//! and a Socket.IO client and a native SDK client in one room.
//!
//! Raw clients only: plain HTTP/1.1 for long-polling and tokio-tungstenite
//! for WebSocket, so every byte compared is the broker's. A WebSocket's
//! frames are read by a task that answers the broker's pings at once (the
//! suite's 200 ms ping timeout leaves no room for a test waiting on
//! something else), except where a check is about the heartbeat. Every
//! wait is bounded; a "does not receive" is proved by ordering (a later
//! frame arrives first).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{Service, wait_ready};
use futures_util::{SinkExt, StreamExt};
use herald_client::{Client, Event};
use herald_protocol::CloseReason;
use herald_tests::engineio::{
    MAX_PAYLOAD, PING_INTERVAL_MS, PING_TIMEOUT_MS, check_open, open_packet, sid_query,
};
use herald_tests::sdk::{client, recv};
use herald_tests::{
    HttpResponse, TIMEOUT, TestBroker, http_get, http_post, http_request, start_broker,
    waiting_poll,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const PATH: &str = "/socket.io/";
/// The Engine.IO query of a new long-polling session.
const POLLING: &str = "EIO=4&transport=polling";
/// The Engine.IO query of a new WebSocket session.
const WEBSOCKET: &str = "EIO=4&transport=websocket";

// ------------------------------------------------------------------ setup

/// A broker with the suite's settings.
async fn broker() -> TestBroker {
    start_broker(|s| {
        s.socketio.ping_interval = Duration::from_millis(PING_INTERVAL_MS);
        s.socketio.ping_timeout = Duration::from_millis(PING_TIMEOUT_MS);
        s.socketio.max_payload = MAX_PAYLOAD;
        s.socketio.connect_timeout = Duration::from_secs(1);
        s.server.allowed_origins = vec!["*".into()];
        s.socketio.namespaces = vec!["/".into(), "/custom".into(), "/chat".into()];
    })
    .await
}

/// The broker and the conformance service, ready.
struct Suite {
    broker: TestBroker,
    _service: Service,
    /// Kept so the service's stdout stays read.
    _lines: mpsc::Receiver<common::Raw>,
}

async fn suite() -> Suite {
    let broker = broker().await;
    let (tx, mut lines) = mpsc::channel(16);
    let service = Service::start("socketio-conformance", 0, &broker, &[], &tx);
    drop(tx);
    wait_ready(&mut lines, &[&service]).await;
    Suite {
        broker,
        _service: service,
        _lines: lines,
    }
}

impl Suite {
    fn addr(&self) -> SocketAddr {
        self.broker.addr()
    }
}

// ------------------------------------------------------------------- HTTP

async fn get(addr: SocketAddr, query: &str) -> HttpResponse {
    http_get(addr, &format!("{PATH}?{query}")).await
}

async fn post(addr: SocketAddr, query: &str, body: &[u8]) -> HttpResponse {
    http_post(addr, &format!("{PATH}?{query}"), None, body).await
}

/// Opens a long-polling session; its sid.
async fn open_polling(addr: SocketAddr) -> String {
    let response = get(addr, POLLING).await;
    assert_eq!(response.status, 200, "{response:?}");
    check_open(&open_packet(&response.body), json!(["websocket"]))
}

// -------------------------------------------------------------- WebSocket

/// A raw WebSocket whose frames a task reads (answering the broker's
/// Engine.IO pings when `auto_pong`) and forwards; writes go through a
/// writer task, so a pong never waits for the test.
struct Sock {
    out: mpsc::UnboundedSender<Message>,
    frames: mpsc::UnboundedReceiver<Message>,
}

async fn ws_connect(
    addr: SocketAddr,
    query: &str,
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    WsError,
> {
    let url = format!("ws://{addr}{PATH}?{query}");
    let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("the upgrade should be answered")?;
    Ok(ws)
}

impl Sock {
    async fn open(addr: SocketAddr, query: &str, auto_pong: bool) -> Sock {
        let ws = ws_connect(addr, query).await.expect("the upgrade");
        let (mut sink, mut stream) = ws.split();
        let (out, mut outgoing) = mpsc::unbounded_channel::<Message>();
        let (forward, frames) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(message) = outgoing.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
        });
        let pong = out.clone();
        tokio::spawn(async move {
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    Message::Text(t) if auto_pong && t.as_str() == "2" => {
                        let _ = pong.send(Message::text("3"));
                    }
                    Message::Ping(_) | Message::Pong(_) => {}
                    Message::Close(_) => break,
                    other => {
                        if forward.send(other).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        Sock { out, frames }
    }

    /// A WebSocket session; the socket (answering pings) and its open packet.
    async fn session(addr: SocketAddr) -> (Sock, Value) {
        Self::session_with(addr, true).await
    }

    async fn session_with(addr: SocketAddr, auto_pong: bool) -> (Sock, Value) {
        let mut sock = Sock::open(addr, WEBSOCKET, auto_pong).await;
        let open = open_packet(&sock.text().await);
        (sock, open)
    }

    fn send(&self, text: &str) {
        self.out.send(Message::text(text)).expect("the writer runs");
    }

    fn send_binary(&self, bytes: &[u8]) {
        self.out
            .send(Message::binary(bytes.to_vec()))
            .expect("the writer runs");
    }

    /// The next frame (bounded); `None` once the socket closed.
    async fn next(&mut self) -> Option<Message> {
        match tokio::time::timeout(TIMEOUT, self.frames.recv()).await {
            Ok(frame) => frame,
            Err(_) => panic!("nothing arrived within {TIMEOUT:?}"),
        }
    }

    async fn text(&mut self) -> String {
        match self.next().await {
            Some(Message::Text(t)) => t.as_str().to_owned(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    async fn binary(&mut self) -> Vec<u8> {
        match self.next().await {
            Some(Message::Binary(b)) => b.to_vec(),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// True once the socket closes (frames before the close are skipped;
    /// bounded).
    async fn closes(&mut self) -> bool {
        for _ in 0..100 {
            if self.next().await.is_none() {
                return true;
            }
        }
        false
    }
}

/// `initSocketIOConnection`: a WebSocket session connected to `/`, its
/// `auth` event read.
async fn sio_connect(addr: SocketAddr) -> Sock {
    let (mut sock, _) = Sock::session(addr).await;
    sock.send("40");
    assert_connect_answer(&sock.text().await, "");
    assert_eq!(sock.text().await, r#"42["auth",{}]"#);
    sock
}

/// A CONNECT answer for namespace prefix `nsp` (`""` or `/custom,`):
/// exactly `{"sid": <string>}`.
fn assert_connect_answer(data: &str, nsp: &str) -> String {
    let json = data
        .strip_prefix("40")
        .and_then(|rest| rest.strip_prefix(nsp))
        .unwrap_or_else(|| panic!("expected 40{nsp}..., got {data:?}"));
    let handshake: Value = serde_json::from_str(json).expect("handshake JSON");
    let object = handshake.as_object().expect("an object");
    assert_eq!(object.len(), 1, "{handshake}");
    handshake["sid"].as_str().expect("sid").to_owned()
}

// ============================================ Engine.IO protocol: handshake

#[tokio::test]
async fn eio_handshake_polling_opens_a_session() {
    let broker = broker().await;
    let response = get(broker.addr(), POLLING).await;
    assert_eq!(response.status, 200, "{response:?}");
    // v4: one packet, no length prefix.
    check_open(&open_packet(&response.body), json!(["websocket"]));
}

#[tokio::test]
async fn eio_handshake_polling_refuses_bad_eio_transport_and_method() {
    let broker = broker().await;
    let addr = broker.addr();
    for query in [
        "transport=polling",
        "EIO=abc&transport=polling",
        "EIO=4",
        "EIO=4&transport=abc",
    ] {
        let response = get(addr, query).await;
        assert_eq!(response.status, 400, "GET {query}: {response:?}");
    }
    let posted = post(addr, POLLING, b"").await;
    assert_eq!(posted.status, 400, "POST: {posted:?}");
    let put = http_request(
        addr,
        &format!(
            "PUT {PATH}?{POLLING} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .await;
    assert_eq!(put.status, 400, "PUT: {put:?}");
}

#[tokio::test]
async fn eio_handshake_websocket_opens_a_session_and_refuses_bad_queries() {
    let broker = broker().await;
    let (_sock, open) = Sock::session(broker.addr()).await;
    check_open(&open, json!([]));
    for query in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
    ] {
        match ws_connect(broker.addr(), query).await {
            Err(WsError::Http(response)) => {
                assert_eq!(response.status().as_u16(), 400, "{query}")
            }
            Err(other) => panic!("{query}: expected an HTTP refusal, got {other}"),
            Ok(_) => panic!("{query}: the upgrade was accepted"),
        }
    }
}

// ============================================ Engine.IO protocol: heartbeat

#[tokio::test]
async fn eio_heartbeat_polling_pings_and_takes_pongs() {
    let broker = broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    for round in 0..3 {
        let polled = get(addr, &sid_query(&sid)).await;
        assert_eq!(polled.status, 200, "round {round}: {polled:?}");
        assert_eq!(polled.body, "2", "round {round}");
        let pushed = post(addr, &sid_query(&sid), b"3").await;
        assert_eq!(pushed.status, 200, "round {round}: {pushed:?}");
    }
}

#[tokio::test]
async fn eio_heartbeat_polling_closes_upon_ping_timeout() {
    let broker = broker().await;
    let sid = open_polling(broker.addr()).await;
    // The suite sleeps ping_interval + ping_timeout; we await the close.
    broker
        .wait_for_stats("the ping timeout", |s| {
            s.closed(CloseReason::HeartbeatTimeout) == 1
        })
        .await;
    let polled = get(broker.addr(), &sid_query(&sid)).await;
    assert_eq!(polled.status, 400, "{polled:?}");
}

#[tokio::test]
async fn eio_heartbeat_websocket_pings_and_takes_pongs() {
    let broker = broker().await;
    let (mut sock, _) = Sock::session_with(broker.addr(), false).await;
    for _ in 0..3 {
        assert_eq!(sock.text().await, "2");
        sock.send("3");
    }
}

#[tokio::test]
async fn eio_heartbeat_websocket_closes_upon_ping_timeout() {
    let broker = broker().await;
    let (mut sock, _) = Sock::session_with(broker.addr(), false).await;
    assert_eq!(sock.text().await, "2");
    assert!(sock.closes().await);
    assert_eq!(broker.stats().closed(CloseReason::HeartbeatTimeout), 1);
}

// ================================================ Engine.IO protocol: close

#[tokio::test]
async fn eio_close_polling_forcefully_closes_the_session() {
    let broker = broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let pending = waiting_poll(&broker, format!("{PATH}?{}", sid_query(&sid))).await;
    let pushed = post(addr, &sid_query(&sid), b"1").await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    let polled = pending.await.unwrap();
    assert_eq!(polled.status, 200, "{polled:?}");
    assert_eq!(polled.body, "6");
    assert_eq!(get(addr, &sid_query(&sid)).await.status, 400);
}

#[tokio::test]
async fn eio_close_websocket_forcefully_closes_the_session() {
    let broker = broker().await;
    let (mut sock, _) = Sock::session(broker.addr()).await;
    sock.send("1");
    assert!(sock.closes().await);
}

// ============================================== Engine.IO protocol: upgrade

/// Upgrades polling session `sid`: probe, `3probe`, `5`; then connects to
/// `/` over the WebSocket (the answer proves the `5` was handled).
async fn upgraded(addr: SocketAddr, sid: &str) -> Sock {
    let mut sock = Sock::open(addr, &format!("{WEBSOCKET}&sid={sid}"), true).await;
    sock.send("2probe");
    assert_eq!(sock.text().await, "3probe");
    sock.send("5");
    sock.send("40");
    let answer = sock.text().await;
    assert_connect_answer(&answer, "");
    sock
}

#[tokio::test]
async fn eio_upgrade_from_polling_to_websocket() {
    let suite = suite().await;
    let sid = open_polling(suite.addr()).await;
    let mut sock = upgraded(suite.addr(), &sid).await;
    assert_eq!(sock.text().await, r#"42["auth",{}]"#);
    sock.send(r#"42["message","over the upgrade"]"#);
    assert_eq!(
        sock.text().await,
        r#"42["message-back","over the upgrade"]"#
    );
}

#[tokio::test]
async fn eio_upgrade_ignores_http_requests_with_the_same_sid_after() {
    let broker = broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let _sock = upgraded(addr, &sid).await;
    let polled = get(addr, &sid_query(&sid)).await;
    assert_eq!(polled.status, 400, "{polled:?}");
}

#[tokio::test]
async fn eio_upgrade_ignores_a_websocket_with_the_same_sid_after() {
    let broker = broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let _sock = upgraded(addr, &sid).await;
    match ws_connect(addr, &format!("{WEBSOCKET}&sid={sid}")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status().as_u16(), 400),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(ws) => {
            // Accepted at the HTTP level: it must close without a session.
            let mut second = ws;
            let end = tokio::time::timeout(TIMEOUT, second.next()).await;
            assert!(
                matches!(end, Ok(None | Some(Ok(Message::Close(_)) | Err(_)))),
                "{end:?}"
            );
        }
    }
}

// ============================================== Socket.IO protocol: connect

#[tokio::test]
async fn sio_connect_to_the_main_namespace() {
    let suite = suite().await;
    let (mut sock, _) = Sock::session(suite.addr()).await;
    sock.send("40");
    assert_connect_answer(&sock.text().await, "");
    assert_eq!(sock.text().await, r#"42["auth",{}]"#);
}

#[tokio::test]
async fn sio_connect_to_the_main_namespace_with_a_payload() {
    let suite = suite().await;
    let (mut sock, _) = Sock::session(suite.addr()).await;
    sock.send(r#"40{"token":"123"}"#);
    assert_connect_answer(&sock.text().await, "");
    assert_eq!(sock.text().await, r#"42["auth",{"token":"123"}]"#);
}

#[tokio::test]
async fn sio_connect_to_a_custom_namespace() {
    let suite = suite().await;
    let (mut sock, _) = Sock::session(suite.addr()).await;
    sock.send("40/custom,");
    assert_connect_answer(&sock.text().await, "/custom,");
    assert_eq!(sock.text().await, r#"42/custom,["auth",{}]"#);
}

#[tokio::test]
async fn sio_connect_to_a_custom_namespace_with_a_payload() {
    let suite = suite().await;
    let (mut sock, _) = Sock::session(suite.addr()).await;
    sock.send(r#"40/custom,{"token":"abc"}"#);
    assert_connect_answer(&sock.text().await, "/custom,");
    assert_eq!(sock.text().await, r#"42/custom,["auth",{"token":"abc"}]"#);
}

#[tokio::test]
async fn sio_connect_to_an_unknown_namespace_is_refused() {
    let suite = suite().await;
    let (mut sock, _) = Sock::session(suite.addr()).await;
    sock.send("40/random");
    assert_eq!(
        sock.text().await,
        r#"44/random,{"message":"Invalid namespace"}"#
    );
}

#[tokio::test]
async fn sio_connect_with_an_invalid_handshake_closes() {
    let suite = suite().await;
    let (mut sock, _) = Sock::session(suite.addr()).await;
    sock.send("4abc");
    assert!(sock.closes().await);
}

#[tokio::test]
async fn sio_no_connect_within_connect_timeout_closes() {
    let suite = suite().await;
    // Pongs answered, so only the missing CONNECT can end it (1 s).
    let (mut sock, _) = Sock::session(suite.addr()).await;
    assert!(sock.closes().await);
    assert_eq!(
        suite.broker.stats().closed(CloseReason::HeartbeatTimeout),
        0
    );
}

// =========================================== Socket.IO protocol: disconnect

#[tokio::test]
async fn sio_disconnect_from_the_main_namespace_closes() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    sock.send("41");
    assert!(sock.closes().await);
}

#[tokio::test]
async fn sio_connect_then_disconnect_a_custom_namespace() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    sock.send("40/custom");
    assert_connect_answer(&sock.text().await, "/custom,");
    assert_eq!(sock.text().await, r#"42/custom,["auth",{}]"#);
    sock.send("41/custom");
    sock.send(r#"42["message","message to main namespace"]"#);
    assert_eq!(
        sock.text().await,
        r#"42["message-back","message to main namespace"]"#
    );
}

// ============================================== Socket.IO protocol: message

#[tokio::test]
async fn sio_message_plain_text() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    sock.send(r#"42["message",1,"2",{"3":[true]}]"#);
    assert_eq!(
        sock.text().await,
        r#"42["message-back",1,"2",{"3":[true]}]"#
    );
}

#[tokio::test]
async fn sio_message_with_binary_attachments() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    sock.send(r#"452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#);
    sock.send_binary(&[1, 2, 3]);
    sock.send_binary(&[4, 5, 6]);
    assert_eq!(
        sock.text().await,
        r#"452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(sock.binary().await, [1, 2, 3]);
    assert_eq!(sock.binary().await, [4, 5, 6]);
}

#[tokio::test]
async fn sio_message_plain_text_with_an_ack() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    sock.send(r#"42456["message-with-ack",1,"2",{"3":[false]}]"#);
    assert_eq!(sock.text().await, r#"43456[1,"2",{"3":[false]}]"#);
    sock.send(r#"421["message-with-ack",1,"2",{"3":[true]}]"#);
    assert_eq!(sock.text().await, r#"431[1,"2",{"3":[true]}]"#);
}

#[tokio::test]
async fn sio_message_with_binary_attachments_and_an_ack() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    sock.send(
        r#"452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    sock.send_binary(&[1, 2, 3]);
    sock.send_binary(&[4, 5, 6]);
    assert_eq!(
        sock.text().await,
        r#"462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(sock.binary().await, [1, 2, 3]);
    assert_eq!(sock.binary().await, [4, 5, 6]);
}

#[tokio::test]
async fn sio_invalid_packets_close_the_connection() {
    let suite = suite().await;
    for packet in [
        // Unknown packet type.
        "4abc",
        "49",
        // Invalid payload format.
        "42{}",
        // Invalid ack id.
        r#"42abc["message-with-ack",1,"2",{"3":[false]}]"#,
        // Unknown Engine.IO packet type.
        "9",
    ] {
        let mut sock = sio_connect(suite.addr()).await;
        sock.send(packet);
        assert!(sock.closes().await, "{packet}");
    }
    // The broker lives on.
    let mut sock = sio_connect(suite.addr()).await;
    sock.send(r#"42["message","still here"]"#);
    assert_eq!(sock.text().await, r#"42["message-back","still here"]"#);
}

// ============================================================ /chat (#10)

/// A socket connected to `/chat` (no `auth` event there).
async fn chat(addr: SocketAddr) -> Sock {
    let (mut sock, _) = Sock::session(addr).await;
    sock.send("40/chat,");
    assert_connect_answer(&sock.text().await, "/chat,");
    sock
}

/// Sends `/chat` event `args` (a JSON array) with ack id `id`; the ack's
/// arguments.
async fn chat_request(sock: &mut Sock, id: u64, args: Value) -> Value {
    sock.send(&format!("42/chat,{id}{args}"));
    let answer = sock.text().await;
    let prefix = format!("43/chat,{id}");
    let json = answer
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("expected {prefix}..., got {answer:?}"));
    serde_json::from_str(json).expect("ack JSON")
}

/// The next `/chat` event: its arguments array (name first).
async fn chat_event(sock: &mut Sock) -> Value {
    let frame = sock.text().await;
    let json = frame
        .strip_prefix("42/chat,")
        .unwrap_or_else(|| panic!("expected a /chat event, got {frame:?}"));
    serde_json::from_str(json).expect("event JSON")
}

async fn join(sock: &mut Sock, id: u64, room: &str) {
    let ack = chat_request(sock, id, json!(["join", room])).await;
    assert_eq!(ack, json!([{"ok": true, "room": room}]));
}

#[tokio::test]
async fn chat_echo_acks_its_arguments_binary_included() {
    let suite = suite().await;
    let mut sock = chat(suite.addr()).await;
    let ack = chat_request(&mut sock, 1, json!(["echo", 1, "2", {"3": [true]}])).await;
    assert_eq!(ack, json!([1, "2", {"3": [true]}]));
    sock.send(
        r#"452-/chat,2["echo","bin",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#,
    );
    sock.send_binary(&[1, 2, 3]);
    sock.send_binary(&[]);
    assert_eq!(
        sock.text().await,
        r#"462-/chat,2["bin",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]"#
    );
    assert_eq!(sock.binary().await, [1, 2, 3]);
    assert_eq!(sock.binary().await, Vec::<u8>::new());
}

#[tokio::test]
async fn chat_publish_reaches_only_the_other_room_members() {
    let suite = suite().await;
    let addr = suite.addr();
    let (mut a, mut b, mut c) = (chat(addr).await, chat(addr).await, chat(addr).await);
    join(&mut a, 1, "r").await;
    join(&mut b, 1, "r").await;
    join(&mut c, 1, "elsewhere").await;

    let ack = chat_request(
        &mut a,
        2,
        json!(["publish", {"room": "r", "data": {"x": [1, "y"]}}]),
    )
    .await;
    assert_eq!(ack, json!([{"ok": true, "recipients": 1}]));
    assert_eq!(
        chat_event(&mut b).await,
        json!(["broadcast", {"room": "r", "data": {"x": [1, "y"]}}])
    );

    // Room null: every other /chat socket. A's and C's next event is this
    // one, so the room publish reached neither.
    let ack = chat_request(&mut b, 2, json!(["publish", {"room": null, "data": 7}])).await;
    assert_eq!(ack, json!([{"ok": true, "recipients": 2}]));
    for sock in [&mut a, &mut c] {
        assert_eq!(
            chat_event(sock).await,
            json!(["broadcast", {"room": null, "data": 7}])
        );
    }

    // After B leaves, nobody else is in r.
    let ack = chat_request(&mut b, 3, json!(["leave", "r"])).await;
    assert_eq!(ack, json!([{"ok": true, "room": "r"}]));
    let ack = chat_request(&mut a, 3, json!(["publish", {"room": "r", "data": 8}])).await;
    assert_eq!(ack, json!([{"ok": true, "recipients": 0}]));
    let ack = chat_request(&mut c, 2, json!(["publish", {"room": null, "data": 9}])).await;
    assert_eq!(ack, json!([{"ok": true, "recipients": 2}]));
    for sock in [&mut a, &mut b] {
        assert_eq!(
            chat_event(sock).await,
            json!(["broadcast", {"room": null, "data": 9}])
        );
    }
}

// ============================================ Socket.IO + native, one room

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Note {
    text: String,
    n: u32,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socketio_client_and_a_native_client_share_a_room() {
    let suite = suite().await;
    let mut sock = chat(suite.addr()).await;
    join(&mut sock, 1, "mixed").await;

    let native: Client = client(&suite.broker, "native-in-room").await;
    let ns = native.of("/chat");
    ns.join("mixed").await.unwrap();
    let (tx, mut notes) = mpsc::channel(4);
    ns.on_event("note", move |e: Event<Note>| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((e.from.clone(), e.data)).await;
        }
    })
    .await
    .unwrap();

    // Native -> socket: one argument. (Another event name: the native
    // client is in the room too and would get its own `note`.)
    let hello = Note {
        text: "from native".into(),
        n: 1,
    };
    ns.to("mixed").emit("hello", &hello).await.unwrap();
    assert_eq!(
        chat_event(&mut sock).await,
        json!(["hello", {"text": "from native", "n": 1}])
    );

    // Socket -> native: one JSON object decoded as a Rust struct.
    sock.send(r#"42/chat,["note",{"text":"from socket","n":2}]"#);
    let (from, note) = recv(&mut notes).await;
    assert_eq!(
        note,
        Note {
            text: "from socket".into(),
            n: 2
        }
    );
    assert!(from.is_some(), "the socket's session id travels as `from`");
}

// ======================================= Herald's own answers to bad input

/// The `$error` object of an ack's one argument (or of a `$error` event).
fn error_code(args: &str) -> String {
    let value: Value = serde_json::from_str(args).expect("JSON arguments");
    let error = value
        .get(0)
        .and_then(|first| first.get("$error").or_else(|| first.get("error")))
        .or_else(|| value.get(1))
        .unwrap_or_else(|| panic!("no error in {args}"));
    error["code"].as_str().expect("a code").to_owned()
}

#[tokio::test]
async fn sio_requests_without_a_responder_are_acked_with_an_error() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    sock.send(r#"427["nobody.answers",1]"#);
    let ack = sock.text().await;
    let args = ack.strip_prefix("437").expect("the ack of 7");
    assert_eq!(error_code(args), "no_responders", "{ack}");
}

#[tokio::test]
async fn sio_event_names_herald_refuses_are_answered_not_delivered() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    // With an ack: the ack carries the error.
    sock.send(r#"423["chat message","hi"]"#);
    let ack = sock.text().await;
    assert_eq!(
        error_code(ack.strip_prefix("433").expect("ack 3")),
        "invalid_event"
    );
    // Without: a `$error` event.
    sock.send(r#"42["chat message","hi"]"#);
    let event = sock.text().await;
    let args = event.strip_prefix("42").expect("an event");
    let value: Value = serde_json::from_str(args).unwrap();
    assert_eq!(value[0], "$error", "{event}");
    assert_eq!(value[1]["code"], "invalid_event", "{event}");
    // The session is still usable.
    sock.send(r#"42["message","still here"]"#);
    assert_eq!(sock.text().await, r#"42["message-back","still here"]"#);
}

#[tokio::test]
async fn sio_client_commands_are_acked_and_refusals_named() {
    let suite = suite().await;
    let mut sock = sio_connect(suite.addr()).await;
    sock.send(r#"421["$join","lobby"]"#);
    assert_eq!(sock.text().await, r#"431[{"ok":true}]"#);
    sock.send(r#"422["$subscribe","order.*"]"#);
    assert_eq!(sock.text().await, r#"432[{"ok":true}]"#);
    sock.send(r#"423["$subscribe","order.>.x"]"#);
    let ack = sock.text().await;
    assert_eq!(
        error_code(ack.strip_prefix("433").unwrap()),
        "invalid_pattern",
        "{ack}"
    );
    sock.send(r#"424["$bogus"]"#);
    let ack = sock.text().await;
    assert_eq!(
        error_code(ack.strip_prefix("434").unwrap()),
        "invalid_event",
        "{ack}"
    );
    // Its own session id is a room nobody joins.
    let (mut other, _) = Sock::session(suite.addr()).await;
    other.send("40");
    let sid = assert_connect_answer(&other.text().await, "");
    sock.send(&format!(r#"425["$join","{sid}"]"#));
    let ack = sock.text().await;
    assert_eq!(
        error_code(ack.strip_prefix("435").unwrap()),
        "forbidden",
        "{ack}"
    );
    sock.send(r#"426["$leave","lobby"]"#);
    assert_eq!(sock.text().await, r#"436[{"ok":true}]"#);
}
