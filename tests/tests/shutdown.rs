//! Graceful shutdown: readiness goes false and new upgrades are refused;
//! every client gets what was queued for it, then a `close` envelope with
//! `shutting_down`, then close frame 1001; `shutdown()` returns true.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_protocol::{CloseReason, Envelope, SUBPROTOCOL};
use herald_tests::{
    RawClient, connect_raw, emit, http_get, payload_seq, refused, seq_payload, start_broker,
};
use tokio::net::TcpStream;

const NS: &str = "/bye";
/// Enough 64 KiB events that the kernel's buffers cannot hold them all, so
/// the subscriber that is not reading still has events queued at shutdown.
const EVENTS: u64 = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_queues_then_closes_every_client_with_1001() {
    let broker = start_broker(|s| {
        s.delivery.queue_capacity = 1_000;
        // Room for the whole backlog (19 MiB).
        s.delivery.max_queued_bytes = 64 << 20;
        s.server.shutdown_grace = Duration::from_secs(5);
    })
    .await;
    let addr = broker.addr();
    let mut backlog = broker.client().await; // not read until shutdown
    backlog.subscribe(NS, "big", None, false).await;
    let mut idle = broker.client().await;
    let mut publisher = broker.client().await;
    for seq in 0..EVENTS {
        let receivers = publisher
            .emit_acked(emit(NS, "big", seq_payload(seq, 64 * 1024)))
            .await;
        assert_eq!(receivers, 1);
    }
    assert_eq!(http_get(addr, "/readyz").await.status, 200);

    let shutdown = tokio::spawn(broker.into_handle().shutdown());

    // While the backlog is still being written, the broker is not ready
    // and refuses new sessions, but is alive.
    let mut ready = 200;
    for _ in 0..500 {
        ready = http_get(addr, "/readyz").await.status;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready, 503, "/readyz during shutdown");
    assert!(
        !shutdown.is_finished(),
        "the backlog should hold the shutdown"
    );
    assert_eq!(http_get(addr, "/healthz").await.status, 200);
    let response = refused(connect_raw(addr, Some(SUBPROTOCOL)).await);
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.body.contains("\"code\":\"shutting_down\""),
        "{response:?}"
    );

    // Clients with nothing queued: the close envelope, then 1001.
    for client in [&mut idle, &mut publisher] {
        assert_eq!(
            client.expect_close().await,
            (1001, "shutting_down".to_owned())
        );
    }

    // The backlog: every event, in order, then the close.
    let closing = backlog.read_until_close().await;
    let seqs: Vec<u64> = closing
        .envelopes
        .iter()
        .map(|envelope| match envelope {
            Envelope::Event(event) => payload_seq(&event.payload),
            other => panic!("expected only events before the close, got {other:?}"),
        })
        .collect();
    assert_eq!(seqs, (0..EVENTS).collect::<Vec<_>>());
    assert_eq!(
        RawClient::check_closing(&closing),
        (1001, "shutting_down".to_owned())
    );
    let (reason, message) = closing.close_envelope.unwrap();
    assert_eq!(reason, CloseReason::ShuttingDown);
    assert!(!message.is_empty());

    let drained = tokio::time::timeout(Duration::from_secs(10), shutdown)
        .await
        .expect("shutdown should finish once the backlog is read")
        .unwrap();
    assert!(drained, "every connection finished within the grace");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );
}

#[tokio::test]
async fn shutdown_of_an_idle_broker_is_quick_and_closes_the_port() {
    let broker = start_broker(|_| {}).await;
    let addr = broker.addr();
    assert!(broker.handle().is_ready());
    assert!(broker.shutdown().await);
    assert!(TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_client_closed_by_shutdown_sees_the_reason_before_the_frame() {
    let broker = start_broker(|_| {}).await;
    let mut client = broker.client().await;
    client.subscribe(NS, "x", None, false).await;
    let mut publisher = broker.client().await;
    publisher
        .emit_acked(emit(NS, "x", &b"last words"[..]))
        .await;
    assert!(broker.shutdown().await);
    let closing = client.read_until_close().await;
    assert_eq!(closing.envelopes.len(), 1, "{closing:?}");
    assert_eq!(
        RawClient::check_closing(&closing),
        (1001, "shutting_down".to_owned())
    );
    assert_eq!(
        publisher.expect_close().await,
        (1001, "shutting_down".to_owned())
    );
}
