//! The abuse limits of `[rate_limits]` against a real broker over real
//! sockets (PROTOCOL.md §24): new connections per second and sessions at
//! once per client address (client sockets bound to distinct loopback
//! addresses, 127.0.0.x, to act as distinct clients), and the message
//! rate of native and Socket.IO connections.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use futures_util::{SinkExt, StreamExt};
use herald_protocol::envelope::Subscription;
use herald_protocol::{CloseReason, Envelope, ErrorCode, SUBPROTOCOL, WS_PATH};
use herald_tests::{HttpResponse, RawClient, TIMEOUT, TestBroker, Ws, emit, start_broker};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// `127.0.0.n`: one client address per test step.
fn client_ip(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// A TCP connection to `addr` from `ip`.
async fn connect_from(ip: IpAddr, addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::new(ip, 0))
        .unwrap_or_else(|e| panic!("cannot bind {ip}: {e}"));
    let stream = tokio::time::timeout(TIMEOUT, socket.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream
}

/// `GET path` from `ip`; `None` when the broker closed the connection
/// without answering.
async fn get_from(ip: IpAddr, addr: SocketAddr, path: &str) -> Option<HttpResponse> {
    let mut stream = connect_from(ip, addr).await;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    // The broker may have closed the socket already (a dropped flood).
    let _ = stream.write_all(request.as_bytes()).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("an answer or a close in time");
    if read.is_err() || raw.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status");
    Some(HttpResponse {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// A WebSocket upgrade of `/v1/ws` (subprotocol `herald.v1`) from `ip`.
async fn ws_from(ip: IpAddr, addr: SocketAddr) -> Result<RawClient, WsError> {
    let stream = connect_from(ip, addr).await;
    let mut request = format!("ws://{addr}{WS_PATH}").into_client_request()?;
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let handshake = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream));
    let (ws, _) = tokio::time::timeout(TIMEOUT, handshake)
        .await
        .expect("the upgrade answered in time")?;
    Ok(RawClient::new(ws))
}

fn refused_429(result: Result<RawClient, WsError>) -> HttpResponse {
    let refused = herald_tests::refused(result);
    assert_eq!(refused.status, 429, "{refused:?}");
    refused
}

fn error_body(response: &HttpResponse) -> (String, String) {
    let value: serde_json::Value = serde_json::from_str(&response.body).expect("a JSON body");
    let text = |key: &str| value["error"][key].as_str().unwrap_or_default().to_owned();
    (text("code"), text("message"))
}

#[tokio::test]
async fn new_connections_per_ip_get_a_burst_then_429_then_are_dropped_until_refilled() {
    let broker = start_broker(|s| {
        s.rate_limits.connections_per_ip_per_second = 1;
        s.rate_limits.connection_burst = 3;
    })
    .await;
    let addr = broker.addr();
    let flooder = client_ip(2);
    // The burst: every TCP connection takes a token, upgrades and plain
    // requests alike.
    let mut sessions = vec![ws_from(flooder, addr).await.expect("first")];
    for _ in 0..2 {
        let ok = get_from(flooder, addr, "/healthz").await.expect("served");
        assert_eq!(ok.status, 200);
    }
    // Over the rate: the upgrade is answered 429 naming the setting.
    let refused = refused_429(ws_from(flooder, addr).await);
    let (code, message) = error_body(&refused);
    assert_eq!(code, "rate_limited");
    assert!(
        message.contains("rate_limits.connections_per_ip_per_second"),
        "{message}"
    );
    assert!(
        refused.head.contains("\"retry-after\": \"1\""),
        "{refused:?}"
    );
    // Two more answered 429 (the burst's size in a row), then the flood
    // is closed unread.
    for _ in 0..2 {
        let answered = get_from(flooder, addr, "/healthz").await.expect("answered");
        assert_eq!(answered.status, 429, "{answered:?}");
    }
    assert!(
        get_from(flooder, addr, "/healthz").await.is_none(),
        "a flood past its 429s is closed without an answer"
    );
    // Another address is not harmed, and the open session still works.
    let mut other = ws_from(client_ip(3), addr).await.expect("another address");
    other.hello().await;
    sessions[0].hello().await;
    sessions[0].assert_no_event().await;
    let stats = broker.stats();
    assert_eq!(stats.rate_limited_connection_rate, 4, "{stats:?}");
    // A token is earned back within a second: the flooder is served again.
    let mut attempts = 0;
    let mut again = loop {
        attempts += 1;
        assert!(attempts < 100, "never served again");
        if let Ok(client) = ws_from(flooder, addr).await {
            break client;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    again.hello().await;
    let metrics = broker.get("/metrics").await;
    let line = format!(
        "herald_rate_limited_total{{kind=\"connection_rate\"}} {}",
        broker.stats().rate_limited_connection_rate
    );
    assert!(
        metrics.body.lines().any(|l| l == line),
        "{line} in {}",
        metrics.body
    );
    sessions.push(again);
    broker.assert_healthy().await;
}

#[tokio::test]
async fn sessions_per_ip_are_capped_for_native_and_engineio_sessions() {
    let broker = start_broker(|s| s.rate_limits.max_connections_per_ip = 2).await;
    let addr = broker.addr();
    let busy = client_ip(4);
    let mut first = ws_from(busy, addr).await.expect("first");
    first.hello().await;
    // An Engine.IO long-polling session counts too.
    let handshake = get_from(busy, addr, "/socket.io/?EIO=4&transport=polling")
        .await
        .expect("answered");
    assert_eq!(handshake.status, 200, "{handshake:?}");
    let refused = refused_429(ws_from(busy, addr).await);
    let (code, message) = error_body(&refused);
    assert_eq!(code, "rate_limited");
    assert!(
        message.contains("rate_limits.max_connections_per_ip"),
        "{message}"
    );
    let polling = get_from(busy, addr, "/socket.io/?EIO=4&transport=polling")
        .await
        .expect("answered");
    assert_eq!(polling.status, 429, "{polling:?}");
    assert_eq!(error_body(&polling).0, "rate_limited");
    // Plain HTTP requests are not sessions.
    assert_eq!(
        get_from(busy, addr, "/healthz").await.map(|r| r.status),
        Some(200)
    );
    // Another address is not harmed.
    let mut other = ws_from(client_ip(5), addr).await.expect("another address");
    other.hello().await;
    assert_eq!(broker.stats().rate_limited_connections_per_ip, 2);
    // A closed session gives its slot back.
    first.close().await;
    broker
        .wait_for_stats("the first session to end", |s| s.connections_current == 2)
        .await;
    let mut again = ws_from(busy, addr).await.expect("a slot was given back");
    again.hello().await;
    assert_eq!(broker.stats().connections_refused, 2);
}

fn subscribe(id: u64) -> Envelope {
    Envelope::Subscribe(Subscription {
        id: Some(id),
        namespace: "/".into(),
        event: format!("e{id}"),
        ..Subscription::default()
    })
}

#[tokio::test]
async fn native_messages_over_the_rate_are_answered_then_closed() {
    let broker = start_broker(|s| {
        s.rate_limits.messages_per_second = 1;
        s.rate_limits.message_burst = 5;
        s.rate_limits.max_rate_limited_messages = 3;
    })
    .await;
    let mut bystander = broker.client().await;
    let mut flooder = broker.client().await;
    // Eight at once: the burst of five is handled, the next three are
    // answered rate_limited with their ids, and the third closes.
    for id in 1..=8 {
        flooder.feed(&subscribe(id)).await;
    }
    flooder.flush().await;
    for id in 1..=5 {
        flooder.expect_ok(id).await;
    }
    let closing = flooder.read_until_close().await;
    let refused: Vec<_> = closing
        .envelopes
        .iter()
        .map(|envelope| match envelope {
            Envelope::Error(error) if error.code == ErrorCode::RateLimited => error.id,
            other => panic!("expected rate_limited errs, got {other:?}"),
        })
        .collect();
    assert_eq!(refused, vec![Some(6), Some(7), Some(8)]);
    let (code, reason) = RawClient::check_closing(&closing);
    assert_eq!((code, reason.as_str()), (1008, "rate_limited"));
    // Not handled: the refused subscriptions were not made.
    broker
        .wait_for_stats("the flooder's close", |s| {
            s.closed(CloseReason::RateLimited) == 1
        })
        .await;
    let stats = broker.stats();
    assert_eq!(stats.subscriptions, 0, "{stats:?}");
    assert_eq!(stats.rate_limited_messages, 3);
    // Another connection is not harmed.
    bystander.subscribe("/", "still.here", None, false).await;
    let mut publisher = broker.client().await;
    let receivers = publisher
        .emit_acked(emit("/", "still.here", &b"x"[..]))
        .await;
    assert_eq!(receivers, 1);
    assert_eq!(bystander.expect_event().await.event, "still.here");
    let metrics = broker.get("/metrics").await;
    for line in [
        "herald_rate_limited_total{kind=\"messages\"} 3",
        "herald_connections_closed_total{reason=\"rate_limited\"} 1",
    ] {
        assert!(
            metrics.body.lines().any(|l| l == line),
            "{line} in {}",
            metrics.body
        );
    }
}

#[tokio::test]
async fn native_messages_within_the_rate_are_never_refused_and_zero_never_closes() {
    let broker = start_broker(|s| {
        s.rate_limits.messages_per_second = 1;
        s.rate_limits.message_burst = 2;
        s.rate_limits.max_rate_limited_messages = 0;
    })
    .await;
    let mut client = broker.client().await;
    // All at once, so that no token is earned in between.
    for id in 1..=50 {
        client.feed(&subscribe(id)).await;
    }
    client.flush().await;
    client.expect_ok(1).await;
    client.expect_ok(2).await;
    for id in 3..=50 {
        let refused = client.expect_error(ErrorCode::RateLimited).await;
        assert_eq!(refused.id, Some(id));
        assert!(
            refused.message.contains("rate_limits.messages_per_second"),
            "{}",
            refused.message
        );
    }
    assert_eq!(broker.stats().closed(CloseReason::RateLimited), 0);
    assert_eq!(broker.stats().connections_current, 1);
}

/// A Socket.IO connection over a raw Engine.IO WebSocket, connected to
/// the namespace `/`.
async fn socketio_ws(broker: &TestBroker) -> Ws {
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket",
        broker.addr()
    );
    let (mut ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(url))
        .await
        .expect("in time")
        .expect("upgraded");
    let open = text(&mut ws).await;
    assert!(open.starts_with('0'), "{open}");
    ws.send(Message::text("40")).await.expect("send");
    let connected = text(&mut ws).await;
    assert!(connected.starts_with("40{\"sid\""), "{connected}");
    ws
}

/// The next text message (pings skipped); `None` at the end.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {}
            Some(Ok(Message::Text(text))) => return Some(text.as_str().to_owned()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(_)) | Some(Err(_)) | None => return None,
        }
    }
}

async fn text(ws: &mut Ws) -> String {
    next_text(ws).await.expect("a text message")
}

#[tokio::test]
async fn socketio_events_over_the_rate_are_refused_like_other_refusals_then_closed() {
    let broker = start_broker(|s| {
        s.rate_limits.messages_per_second = 1;
        s.rate_limits.message_burst = 4;
        s.rate_limits.max_rate_limited_messages = 3;
    })
    .await;
    let mut bystander = socketio_ws(&broker).await;
    let mut flooder = socketio_ws(&broker).await;
    // CONNECT took one token; three events take the rest, then an event
    // with an ack, a command with an ack and an event without one are
    // over the rate.
    for _ in 0..3 {
        flooder
            .feed(Message::text("42[\"chat.msg\",1]"))
            .await
            .expect("feed");
    }
    for over in [
        "425[\"chat.msg\",2]",
        "426[\"$join\",\"room\"]",
        "42[\"chat.msg\",3]",
    ] {
        flooder.feed(Message::text(over)).await.expect("feed");
    }
    flooder.flush().await.expect("flush");
    let event_ack = text(&mut flooder).await;
    assert!(event_ack.starts_with("435["), "{event_ack}");
    assert!(event_ack.contains("\"rate_limited\""), "{event_ack}");
    let command_ack = text(&mut flooder).await;
    assert!(
        command_ack.starts_with("436[{\"ok\":false,\"error\":{\"code\":\"rate_limited\""),
        "{command_ack}"
    );
    let error = text(&mut flooder).await;
    assert!(
        error.starts_with("42[\"$error\",{\"code\":\"rate_limited\""),
        "{error}"
    );
    while let Some(more) = next_text(&mut flooder).await {
        assert!(
            more.starts_with('1') || more.starts_with("41"),
            "after the close: {more}"
        );
    }
    broker
        .wait_for_stats("the flooder's close", |s| {
            s.closed(CloseReason::RateLimited) == 1
        })
        .await;
    assert_eq!(broker.stats().rate_limited_messages, 3);
    // The three events within the rate reached the bystander.
    for _ in 0..3 {
        assert_eq!(text(&mut bystander).await, "42[\"chat.msg\",1]");
    }
}
