//! Heartbeats and the handshake timeout: a silent client is closed with
//! `heartbeat_timeout`, one that reads (and so answers pings) stays open,
//! and a connection that never says hello is closed with
//! `handshake_timeout`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_protocol::{CloseReason, Envelope};
use herald_tests::{MuteSocket, RawClient, TIMEOUT, start_broker};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn a_client_that_never_reads_is_closed_and_one_that_reads_stays() {
    let broker = start_broker(|s| {
        s.server.heartbeat_interval = Duration::from_millis(100);
        s.server.heartbeat_timeout = Duration::from_millis(300);
    })
    .await;
    // Silent: it never reads, so it never answers a ping.
    let mut silent = MuteSocket::connect(broker.addr()).await;
    silent.send_hello().await;
    let mut reader = broker.client().await;

    // The reader reads (answering the broker's pings as it does) until the
    // silent client has been closed, counting pings; bounded.
    let mut pings = 0;
    while broker.stats().closed(CloseReason::HeartbeatTimeout) == 0 || pings < 5 {
        assert!(pings < 100, "100 pings and the silent client is still open");
        match reader.next_message().await {
            Some(Ok(Message::Ping(_))) => pings += 1,
            other => panic!("expected only pings, got {other:?}"),
        }
    }
    // Five intervals (more than the timeout) later the reader is open.
    reader.assert_no_event().await;

    // The silent client, reading now, finds its welcome, the pings it
    // left unanswered, and why it was closed.
    let frames = silent.read_to_close().await;
    let (last, rest) = frames.split_last().unwrap();
    assert_eq!(last.close(), (1008, "heartbeat_timeout".to_owned()));
    let (close_envelope, rest) = rest.split_last().unwrap();
    match close_envelope.envelope() {
        Envelope::Close { reason, message } => {
            assert_eq!(reason, CloseReason::HeartbeatTimeout);
            assert!(message.contains("heartbeat_timeout"), "{message}");
        }
        other => panic!("expected the close envelope, got {other:?}"),
    }
    let (welcome, pings) = rest.split_first().unwrap();
    match welcome.envelope() {
        Envelope::Welcome(welcome) => assert_eq!(welcome.heartbeat_ms, 100),
        other => panic!("expected welcome, got {other:?}"),
    }
    assert!(
        !pings.is_empty() && pings.iter().all(|f| f.opcode == 0x9),
        "{pings:?}"
    );

    let stats = broker.stats();
    assert_eq!(stats.closed(CloseReason::HeartbeatTimeout), 1);
    assert_eq!(stats.connections_current, 1);
}

#[tokio::test]
async fn no_hello_within_the_handshake_timeout_closes() {
    let broker = start_broker(|s| s.server.handshake_timeout = Duration::from_millis(200)).await;
    // Connected first and greeted: past its own deadline by the time the
    // other one is closed, and still open.
    let mut greeted = broker.client().await;
    let mut mute = broker.connect().await;
    let closing = mute.read_until_close().await;
    assert!(closing.envelopes.is_empty(), "{closing:?}");
    let (code, reason) = RawClient::check_closing(&closing);
    assert_eq!((code, reason.as_str()), (1002, "handshake_timeout"));
    greeted.assert_no_event().await;
    let stats = broker
        .wait_for_stats("the close to be counted", |s| {
            s.closed(CloseReason::HandshakeTimeout) == 1
        })
        .await;
    assert_eq!(stats.connections_current, 1);
}

#[tokio::test]
async fn a_tcp_connection_that_sends_no_request_is_dropped() {
    let broker = start_broker(|s| s.server.handshake_timeout = Duration::from_millis(200)).await;
    let mut idle = TcpStream::connect(broker.addr()).await.unwrap();
    let mut buf = Vec::new();
    // The broker closes it (reading returns EOF or a reset) well within
    // the test timeout.
    let read = tokio::time::timeout(TIMEOUT, idle.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the idle TCP connection was not closed");
    broker.assert_healthy().await;
}
