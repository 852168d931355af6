//! Engine.IO v4 on the broker, through the raw echo endpoint
//! (`testing.engineio_echo_endpoint`): every check of the upstream
//! engine.io-protocol test suite (v4), plus CORS, body limits and the
//! connection limit. Real broker, real sockets: plain HTTP/1.1 over TCP and
//! tokio-tungstenite.
//!
//! The conformance broker runs the suite's settings (`ping_interval` 300ms,
//! `ping_timeout` 200ms, `max_payload` 1000000) for the handshake values
//! and the ping timeouts. With a 200 ms budget for each pong, a test
//! client sharing two busy cores with the broker could miss a pong it
//! does send, so the checks that answer pings give the pong 5 s
//! (`pinging_broker`, pings still every 300 ms), and the checks of
//! messages, closes and upgrades run where pings are a minute apart
//! (`quiet_broker`): no ping lands in an answer the check compares, or
//! ends a poll that must stay pending.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_protocol::CloseReason;
use herald_tests::engineio::{
    MAX_PAYLOAD, PING_INTERVAL_MS, PING_TIMEOUT_MS, check_open, open_packet, sid_query,
};
use herald_tests::{
    HttpResponse, TIMEOUT, TestBroker, Ws, http_request_bytes, start_broker, waiting_poll,
};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const PATH: &str = "/engine.io/";

async fn conformance_broker() -> TestBroker {
    start_broker(|s| {
        s.testing.engineio_echo_endpoint = PATH.into();
        s.socketio.ping_interval = Duration::from_millis(PING_INTERVAL_MS);
        s.socketio.ping_timeout = Duration::from_millis(PING_TIMEOUT_MS);
        s.socketio.max_payload = MAX_PAYLOAD;
        s.server.allowed_origins = vec!["*".into()];
    })
    .await
}

/// Pings every 300 ms, a pong due within 5 s.
async fn pinging_broker() -> TestBroker {
    start_broker(|s| {
        s.testing.engineio_echo_endpoint = PATH.into();
        s.socketio.ping_interval = Duration::from_millis(300);
        s.socketio.ping_timeout = Duration::from_secs(5);
    })
    .await
}

/// Pings a minute apart: a pending poll stays pending.
async fn quiet_broker() -> TestBroker {
    start_broker(|s| {
        s.testing.engineio_echo_endpoint = PATH.into();
        s.socketio.ping_interval = Duration::from_secs(60);
        s.socketio.ping_timeout = Duration::from_secs(60);
        s.server.allowed_origins = vec!["*".into()];
    })
    .await
}

/// One HTTP/1.1 request on its own connection (`Connection: close`).
async fn request(
    addr: SocketAddr,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut head = format!("{method} {PATH}?{query} HTTP/1.1\r\nHost: {addr}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if method != "GET" || !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    http_request_bytes(addr, &bytes).await
}

async fn get(addr: SocketAddr, query: &str) -> HttpResponse {
    request(addr, "GET", query, &[], b"").await
}

async fn post(addr: SocketAddr, query: &str, body: &[u8]) -> HttpResponse {
    request(addr, "POST", query, &[], body).await
}

/// The JSON error body of a refusal: its `code`.
fn error_code(response: &HttpResponse) -> u64 {
    let value: serde_json::Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not a JSON error body ({e}): {response:?}"));
    assert!(value["message"].is_string(), "{response:?}");
    value["code"].as_u64().expect("a numeric code")
}

fn header<'a>(response: &'a HttpResponse, name: &str) -> Option<&'a str> {
    response.head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// Opens a long-polling session; its sid.
async fn open_polling(addr: SocketAddr) -> String {
    let response = get(addr, "EIO=4&transport=polling").await;
    assert_eq!(response.status, 200, "{response:?}");
    open_packet(&response.body)["sid"]
        .as_str()
        .expect("sid")
        .to_owned()
}

/// One poll's payload (status 200 checked).
async fn poll(addr: SocketAddr, sid: &str) -> String {
    let response = get(addr, &sid_query(sid)).await;
    assert_eq!(response.status, 200, "{response:?}");
    response.body
}

/// A WebSocket to the echo endpoint with `query` (and `Origin`).
async fn ws_connect(addr: SocketAddr, query: &str, origin: Option<&str>) -> Result<Ws, WsError> {
    let mut request = format!("ws://{addr}{PATH}?{query}").into_client_request()?;
    if let Some(origin) = origin {
        request.headers_mut().insert(
            "Origin",
            HeaderValue::from_str(origin).expect("a header value"),
        );
    }
    let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (ws, _) = tokio::time::timeout(TIMEOUT, connect)
        .await
        .expect("the upgrade should be answered")?;
    Ok(ws)
}

/// The next data or close message (WebSocket pings skipped; `None` at the
/// end of the stream).
async fn next(ws: &mut Ws) -> Option<Message> {
    loop {
        match tokio::time::timeout(TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
            Ok(Some(Ok(message))) => return Some(message),
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("nothing arrived within {TIMEOUT:?}"),
        }
    }
}

/// The next message other than an Engine.IO ping (pings are answered).
async fn next_skipping_pings(ws: &mut Ws) -> Message {
    loop {
        match next(ws).await {
            Some(Message::Text(t)) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.unwrap();
            }
            Some(message) => return message,
            None => panic!("the WebSocket ended"),
        }
    }
}

/// A WebSocket session; the socket and its open packet.
async fn ws_session(addr: SocketAddr) -> (Ws, serde_json::Value) {
    let mut ws = ws_connect(addr, "EIO=4&transport=websocket", None)
        .await
        .expect("the upgrade");
    match next(&mut ws).await {
        Some(Message::Text(text)) => (ws, open_packet(&text)),
        other => panic!("expected the open packet, got {other:?}"),
    }
}

/// Reads until the WebSocket closes; true when it did (a close frame or
/// the end of the stream).
async fn closes(ws: &mut Ws) -> bool {
    for _ in 0..100 {
        match next(ws).await {
            Some(Message::Close(_)) | None => return true,
            Some(_) => {}
        }
    }
    false
}

fn refused_status(result: Result<Ws, WsError>) -> u16 {
    match result {
        Err(WsError::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
        Ok(_) => panic!("the upgrade was accepted"),
    }
}

/// Upgrades a polling session: probe, `3probe`, and the `5`.
async fn upgrade(addr: SocketAddr, sid: &str) -> Ws {
    let mut ws = ws_connect(addr, &format!("EIO=4&transport=websocket&sid={sid}"), None)
        .await
        .expect("the upgrade");
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("3probe")));
    ws.send(Message::text("5")).await.unwrap();
    ws
}

// ------------------------------------------------------------- handshake

#[tokio::test]
async fn handshake_over_polling() {
    let broker = conformance_broker().await;
    let response = get(broker.addr(), "EIO=4&transport=polling").await;
    assert_eq!(response.status, 200, "{response:?}");
    let sid = check_open(
        &open_packet(&response.body),
        serde_json::json!(["websocket"]),
    );
    // At least 120 random bits, base64url.
    assert!(sid.len() >= 20, "{sid}");
    assert!(
        sid.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "{sid}"
    );
    assert_ne!(open_polling(broker.addr()).await, sid);
}

#[tokio::test]
async fn handshake_refuses_bad_eio_transport_and_method() {
    let broker = conformance_broker().await;
    let addr = broker.addr();
    for (method, query, code) in [
        ("GET", "transport=polling", 5),
        ("GET", "EIO=abc&transport=polling", 5),
        ("GET", "EIO=3&transport=polling", 5),
        ("GET", "EIO=4", 0),
        ("GET", "EIO=4&transport=abc", 0),
        ("POST", "EIO=4&transport=polling", 2),
        ("PUT", "EIO=4&transport=polling", 2),
        ("GET", "EIO=4&transport=polling&sid=nosuchsession", 1),
        ("POST", "EIO=4&transport=polling&sid=nosuchsession", 1),
        // transport=websocket without an upgrade.
        ("GET", "EIO=4&transport=websocket", 3),
    ] {
        let response = request(addr, method, query, &[], b"").await;
        assert_eq!(response.status, 400, "{method} {query}: {response:?}");
        assert_eq!(error_code(&response), code, "{method} {query}");
    }
}

#[tokio::test]
async fn handshake_over_websocket() {
    let broker = conformance_broker().await;
    let (ws, open) = ws_session(broker.addr()).await;
    check_open(&open, serde_json::json!([]));
    drop(ws);
    for query in [
        "transport=websocket",
        "EIO=abc&transport=websocket",
        "EIO=4",
        "EIO=4&transport=abc",
        "EIO=4&transport=websocket&sid=nosuchsession",
    ] {
        let status = refused_status(ws_connect(broker.addr(), query, None).await);
        assert_eq!(status, 400, "{query}");
    }
}

// ---------------------------------------------------------- message: polling

#[tokio::test]
async fn polling_sends_and_receives_one_text_packet() {
    let broker = quiet_broker().await;
    let sid = open_polling(broker.addr()).await;
    let pushed = post(broker.addr(), &sid_query(&sid), b"4hello").await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    assert_eq!(pushed.body, "ok");
    assert!(header(&pushed, "content-type").is_some_and(|v| v.starts_with("text/html")));
    assert_eq!(poll(broker.addr(), &sid).await, "4hello");
}

#[tokio::test]
async fn polling_sends_and_receives_several_text_packets() {
    let broker = quiet_broker().await;
    let sid = open_polling(broker.addr()).await;
    let body = b"4test1\x1e4test2\x1e4test3";
    assert_eq!(post(broker.addr(), &sid_query(&sid), body).await.body, "ok");
    assert_eq!(
        poll(broker.addr(), &sid).await,
        "4test1\x1e4test2\x1e4test3"
    );
}

#[tokio::test]
async fn polling_sends_and_receives_text_and_binary_packets() {
    let broker = quiet_broker().await;
    let sid = open_polling(broker.addr()).await;
    let body = b"4hello\x1ebAQIDBA==";
    assert_eq!(post(broker.addr(), &sid_query(&sid), body).await.body, "ok");
    assert_eq!(poll(broker.addr(), &sid).await, "4hello\x1ebAQIDBA==");
}

/// A poll answers at most 16 packets (python-engineio drops a session
/// on a longer payload); the rest follow in the next polls, in order.
#[tokio::test]
async fn polling_answers_at_most_16_packets_per_get() {
    let broker = quiet_broker().await;
    let sid = open_polling(broker.addr()).await;
    let query = sid_query(&sid);
    let burst: Vec<String> = (0..20).map(|i| format!("4m{i}")).collect();
    assert_eq!(
        post(broker.addr(), &query, burst.join("\x1e").as_bytes())
            .await
            .body,
        "ok"
    );
    // The session's inbox holds two bodies: the last of three more POSTs
    // returns only once the echo has taken the burst's body and queued
    // every echo of it.
    let mut sent = burst;
    for i in 0..3 {
        let tail = format!("4t{i}");
        assert_eq!(
            post(broker.addr(), &query, tail.as_bytes()).await.body,
            "ok"
        );
        sent.push(tail);
    }
    let first = poll(broker.addr(), &sid).await;
    assert_eq!(
        first.split('\x1e').count(),
        16,
        "the first poll answers 16 of the {} queued packets: {first}",
        sent.len()
    );
    let mut received: Vec<String> = first.split('\x1e').map(str::to_owned).collect();
    while received.len() < sent.len() {
        let answer = poll(broker.addr(), &sid).await;
        let packets: Vec<&str> = answer.split('\x1e').collect();
        assert!(packets.len() <= 16, "{answer}");
        received.extend(packets.into_iter().map(str::to_owned));
    }
    assert_eq!(received, sent, "every packet, once, in order");
}

#[tokio::test]
async fn polling_closes_the_session_on_an_invalid_packet() {
    let broker = quiet_broker().await;
    let sid = open_polling(broker.addr()).await;
    let pushed = post(broker.addr(), &sid_query(&sid), b"abc").await;
    assert_eq!(pushed.status, 400, "{pushed:?}");
    let polled = get(broker.addr(), &sid_query(&sid)).await;
    assert_eq!(polled.status, 400, "{polled:?}");
    assert_eq!(error_code(&polled), 1);
}

#[tokio::test]
async fn polling_closes_the_session_on_a_duplicate_poll() {
    let broker = quiet_broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let first = waiting_poll(&broker, format!("{PATH}?{}", sid_query(&sid))).await;
    let second = get(addr, &format!("{}&t=burst", sid_query(&sid))).await;
    assert_eq!(second.status, 400, "{second:?}");
    let first = first.await.unwrap();
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.body, "1");
    assert_eq!(get(addr, &sid_query(&sid)).await.status, 400);
}

// -------------------------------------------------------- message: websocket

#[tokio::test]
async fn websocket_sends_and_receives_text_and_binary_packets() {
    let broker = quiet_broker().await;
    let (mut ws, _) = ws_session(broker.addr()).await;
    ws.send(Message::text("4hello")).await.unwrap();
    assert_eq!(next_skipping_pings(&mut ws).await, Message::text("4hello"));
    ws.send(Message::binary(vec![1u8, 2, 3, 4])).await.unwrap();
    assert_eq!(
        next_skipping_pings(&mut ws).await,
        Message::binary(vec![1u8, 2, 3, 4])
    );
}

#[tokio::test]
async fn websocket_closes_the_session_on_an_invalid_packet() {
    let broker = quiet_broker().await;
    let (mut ws, _) = ws_session(broker.addr()).await;
    ws.send(Message::text("abc")).await.unwrap();
    assert!(closes(&mut ws).await);
    broker
        .wait_for_stats("the close counted as a protocol error", |s| {
            s.closed(CloseReason::ProtocolError) == 1
        })
        .await;
}

// --------------------------------------------------------------- heartbeat

#[tokio::test]
async fn polling_heartbeat_sends_pings_and_takes_pongs() {
    let broker = pinging_broker().await;
    let sid = open_polling(broker.addr()).await;
    for _ in 0..3 {
        let polled = get(broker.addr(), &sid_query(&sid)).await;
        assert_eq!(polled.status, 200, "{polled:?}");
        assert_eq!(polled.body, "2");
        let pushed = post(broker.addr(), &sid_query(&sid), b"3").await;
        assert_eq!(pushed.status, 200, "{pushed:?}");
    }
}

#[tokio::test]
async fn polling_heartbeat_closes_without_a_pong() {
    let broker = conformance_broker().await;
    let sid = open_polling(broker.addr()).await;
    // The suite sleeps ping_interval + ping_timeout; we wait for the close.
    broker
        .wait_for_stats("the ping timeout", |s| {
            s.closed(CloseReason::HeartbeatTimeout) == 1
        })
        .await;
    let polled = get(broker.addr(), &sid_query(&sid)).await;
    assert_eq!(polled.status, 400, "{polled:?}");
    assert_eq!(broker.handle().engineio_sessions(), 0);
}

#[tokio::test]
async fn websocket_heartbeat_sends_pings_and_takes_pongs() {
    let broker = pinging_broker().await;
    let (mut ws, _) = ws_session(broker.addr()).await;
    for _ in 0..3 {
        assert_eq!(next(&mut ws).await, Some(Message::text("2")));
        ws.send(Message::text("3")).await.unwrap();
    }
    assert_eq!(broker.stats().closed(CloseReason::HeartbeatTimeout), 0);
}

#[tokio::test]
async fn websocket_heartbeat_closes_without_a_pong() {
    let broker = conformance_broker().await;
    let (mut ws, _) = ws_session(broker.addr()).await;
    assert_eq!(next(&mut ws).await, Some(Message::text("2")));
    assert!(closes(&mut ws).await);
    assert_eq!(broker.stats().closed(CloseReason::HeartbeatTimeout), 1);
}

// ------------------------------------------------------------------- close

#[tokio::test]
async fn polling_close_ends_the_pending_poll_with_a_noop() {
    let broker = quiet_broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let pending = waiting_poll(&broker, format!("{PATH}?{}", sid_query(&sid))).await;
    let pushed = post(addr, &sid_query(&sid), b"1").await;
    assert_eq!(pushed.status, 200, "{pushed:?}");
    let polled = pending.await.unwrap();
    assert_eq!(polled.status, 200, "{polled:?}");
    assert_eq!(polled.body, "6");
    assert_eq!(get(addr, &sid_query(&sid)).await.status, 400);
    broker
        .wait_for_stats("the client's close counted", |s| {
            s.closed(CloseReason::ClientClosed) == 1 && s.connections_current == 0
        })
        .await;
}

#[tokio::test]
async fn websocket_close_packet_closes_the_socket() {
    let broker = quiet_broker().await;
    let (mut ws, _) = ws_session(broker.addr()).await;
    ws.send(Message::text("1")).await.unwrap();
    assert!(closes(&mut ws).await);
    broker
        .wait_for_stats("the client's close counted", |s| {
            s.closed(CloseReason::ClientClosed) == 1 && s.connections_current == 0
        })
        .await;
}

// ----------------------------------------------------------------- upgrade

#[tokio::test]
async fn upgrade_from_polling_to_websocket() {
    let broker = pinging_broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let mut ws = ws_connect(addr, &format!("EIO=4&transport=websocket&sid={sid}"), None)
        .await
        .expect("the upgrade");
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("3probe")));
    // A poll during the upgrade is ended with a noop.
    let polled = get(addr, &sid_query(&sid)).await;
    assert_eq!(polled.status, 200, "{polled:?}");
    assert_eq!(polled.body, "6");
    ws.send(Message::text("5")).await.unwrap();
    ws.send(Message::text("4hello")).await.unwrap();
    assert_eq!(next_skipping_pings(&mut ws).await, Message::text("4hello"));
    // The heartbeat goes on over the WebSocket.
    assert_eq!(next(&mut ws).await, Some(Message::text("2")));
    ws.send(Message::text("3")).await.unwrap();
}

#[tokio::test]
async fn upgrade_ends_a_waiting_poll_and_carries_queued_packets_over() {
    let broker = quiet_broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let pending = waiting_poll(&broker, format!("{PATH}?{}", sid_query(&sid))).await;
    let mut ws = ws_connect(addr, &format!("EIO=4&transport=websocket&sid={sid}"), None)
        .await
        .expect("the upgrade");
    ws.send(Message::text("2probe")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("3probe")));
    let polled = pending.await.unwrap();
    assert_eq!(polled.body, "6", "{polled:?}");
    // Posted (and echoed into the queue) during the upgrade, before the 5:
    // the echo comes out of the WebSocket.
    assert_eq!(post(addr, &sid_query(&sid), b"4queued").await.body, "ok");
    ws.send(Message::text("5")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("4queued")));
    ws.send(Message::text("4after")).await.unwrap();
    assert_eq!(next(&mut ws).await, Some(Message::text("4after")));
}

#[tokio::test]
async fn upgrade_refuses_http_requests_with_the_same_sid_after() {
    let broker = quiet_broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let mut ws = upgrade(addr, &sid).await;
    // Once an echo comes back over the WebSocket, the 5 was handled.
    ws.send(Message::text("4first")).await.unwrap();
    assert_eq!(next_skipping_pings(&mut ws).await, Message::text("4first"));
    let polled = get(addr, &sid_query(&sid)).await;
    assert_eq!(polled.status, 400, "{polled:?}");
    assert_eq!(error_code(&polled), 3);
    assert_eq!(post(addr, &sid_query(&sid), b"4x").await.status, 400);
    ws.send(Message::text("4hello")).await.unwrap();
    assert_eq!(next_skipping_pings(&mut ws).await, Message::text("4hello"));
}

#[tokio::test]
async fn upgrade_refuses_a_second_websocket_with_the_same_sid() {
    let broker = quiet_broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let mut ws = upgrade(addr, &sid).await;
    let second = ws_connect(addr, &format!("EIO=4&transport=websocket&sid={sid}"), None).await;
    assert_eq!(refused_status(second), 400);
    ws.send(Message::text("4hello")).await.unwrap();
    assert_eq!(next_skipping_pings(&mut ws).await, Message::text("4hello"));
}

// ---------------------------------------------------------------- CORS etc.

#[tokio::test]
async fn cors_echoes_allowed_origins_with_credentials() {
    let broker = quiet_broker().await;
    let origin = [("Origin", "https://app.example")];
    let response = request(
        broker.addr(),
        "GET",
        "EIO=4&transport=polling",
        &origin,
        b"",
    )
    .await;
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        header(&response, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        header(&response, "access-control-allow-credentials"),
        Some("true")
    );
    let preflight = request(
        broker.addr(),
        "OPTIONS",
        "EIO=4&transport=polling",
        &[
            ("Origin", "https://app.example"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type, x-token"),
        ],
        b"",
    )
    .await;
    assert_eq!(preflight.status, 204, "{preflight:?}");
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        Some("https://app.example")
    );
    assert_eq!(
        header(&preflight, "access-control-allow-methods"),
        Some("GET, POST")
    );
    assert_eq!(
        header(&preflight, "access-control-allow-headers"),
        Some("content-type, x-token")
    );
    // Without an Origin (a non-browser client): no CORS headers.
    let plain = get(broker.addr(), "EIO=4&transport=polling").await;
    assert_eq!(plain.status, 200);
    assert_eq!(header(&plain, "access-control-allow-origin"), None);
}

#[tokio::test]
async fn cors_refuses_origins_not_listed() {
    let broker = start_broker(|s| {
        s.testing.engineio_echo_endpoint = PATH.into();
        s.server.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let addr = broker.addr();
    let evil = [("Origin", "https://evil.example")];
    let response = request(addr, "GET", "EIO=4&transport=polling", &evil, b"").await;
    assert_eq!(response.status, 403, "{response:?}");
    assert_eq!(error_code(&response), 4);
    let preflight = request(addr, "OPTIONS", "EIO=4&transport=polling", &evil, b"").await;
    assert_eq!(preflight.status, 403, "{preflight:?}");
    let upgrade = ws_connect(
        addr,
        "EIO=4&transport=websocket",
        Some("https://evil.example"),
    )
    .await;
    assert_eq!(refused_status(upgrade), 403);
    // Listed, and same-origin pages, are allowed.
    let ok = [("Origin", "https://app.example")];
    assert_eq!(
        request(addr, "GET", "EIO=4&transport=polling", &ok, b"")
            .await
            .status,
        200
    );
    let same = format!("http://{addr}");
    let same = [("Origin", same.as_str())];
    let response = request(addr, "GET", "EIO=4&transport=polling", &same, b"").await;
    assert_eq!(response.status, 200, "{response:?}");
    let ws = ws_connect(
        addr,
        "EIO=4&transport=websocket",
        Some("https://app.example"),
    )
    .await;
    assert!(ws.is_ok());
}

#[tokio::test]
async fn an_oversize_post_is_refused_and_closes_the_session() {
    let broker = start_broker(|s| {
        s.testing.engineio_echo_endpoint = PATH.into();
        s.socketio.max_payload = 1000;
    })
    .await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let mut body = b"4".to_vec();
    body.extend(std::iter::repeat_n(b'x', 999));
    assert_eq!(post(addr, &sid_query(&sid), &body).await.status, 200);
    body.push(b'y');
    let refused = post(addr, &sid_query(&sid), &body).await;
    assert_eq!(refused.status, 413, "{refused:?}");
    assert_eq!(get(addr, &sid_query(&sid)).await.status, 400);
    broker
        .wait_for_stats("the close counted", |s| {
            s.closed(CloseReason::MessageTooBig) == 1
        })
        .await;
    // Over a WebSocket the same limit closes with 1009.
    let (mut ws, _) = ws_session(addr).await;
    ws.send(Message::text(format!("4{}", "x".repeat(1000))))
        .await
        .unwrap();
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
}

#[tokio::test]
async fn sessions_share_the_connection_limit() {
    let broker = start_broker(|s| {
        s.testing.engineio_echo_endpoint = PATH.into();
        s.server.max_connections = 2;
    })
    .await;
    let addr = broker.addr();
    let first = open_polling(addr).await;
    let (_ws, _) = ws_session(addr).await;
    let refused = get(addr, "EIO=4&transport=polling").await;
    assert_eq!(refused.status, 503, "{refused:?}");
    assert_eq!(
        refused_status(ws_connect(addr, "EIO=4&transport=websocket", None).await),
        503
    );
    assert_eq!(
        refused_status(
            herald_tests::connect_raw(addr, Some(herald_protocol::SUBPROTOCOL))
                .await
                .map(|_| unreachable!())
        ),
        503
    );
    // A session that ends gives its permit back.
    assert_eq!(post(addr, &sid_query(&first), b"1").await.status, 200);
    broker
        .wait_for_stats("the polling session to end", |s| s.connections_current == 1)
        .await;
    open_polling(addr).await;
}

#[tokio::test]
async fn shutdown_ends_waiting_polls_and_websockets() {
    let broker = quiet_broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let (mut ws, _) = ws_session(addr).await;
    let pending = waiting_poll(&broker, format!("{PATH}?{}", sid_query(&sid))).await;
    let handle = broker.into_handle();
    let shutdown = tokio::spawn(handle.shutdown());
    let polled = pending.await.unwrap();
    assert_eq!(polled.body, "1", "{polled:?}");
    match next(&mut ws).await {
        Some(Message::Close(Some(frame))) => assert_eq!(u16::from(frame.code), 1001),
        other => panic!("expected a 1001 close, got {other:?}"),
    }
    let drained = tokio::time::timeout(TIMEOUT * 3, shutdown)
        .await
        .expect("shutdown finishes")
        .unwrap();
    assert!(drained, "every Engine.IO session finished within the grace");
}

/// Upstream v4 suite: "closes the session upon cancelled polling request".
#[tokio::test]
async fn polling_closes_the_session_when_a_waiting_poll_is_abandoned() {
    use tokio::io::AsyncWriteExt;
    let broker = quiet_broker().await;
    let addr = broker.addr();
    let sid = open_polling(addr).await;
    let mut abandoned = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {PATH}?{} HTTP/1.1\r\nHost: {addr}\r\n\r\n",
        sid_query(&sid)
    );
    abandoned.write_all(request.as_bytes()).await.unwrap();
    herald_tests::wait_until("the poll to wait", || {
        broker.handle().engineio_polls_waiting() == 1
    })
    .await;
    drop(abandoned);
    let polled = get(addr, &sid_query(&sid)).await;
    assert_eq!(polled.status, 400, "{polled:?}");
    assert_eq!(get(addr, &sid_query(&sid)).await.status, 400);
}
