//! Memory bounds of the real daemon (its own allocator, measured from
//! `/proc/PID/status`) against clients that push: regression tests for the
//! defects of issue #9 that showed as broker RSS.
//!
//! Each test runs its own daemon, so their measurements do not mix.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::time::Duration;

use herald_tests::{MuteSocket, connect_raw, emit, seq_payload};
use support::Served;

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// The start of a masked binary frame announcing `announced` payload bytes,
/// with `sent` of them.
fn frame_start(announced: u64, sent: usize) -> Vec<u8> {
    let mut bytes = vec![0x82, 0x80 | 127];
    bytes.extend_from_slice(&announced.to_be_bytes());
    bytes.extend_from_slice(&[0, 0, 0, 0]);
    bytes.extend(std::iter::repeat_n(0x90, sent));
    bytes
}

/// Defect 3 ("a trickling client reserves a full message buffer"): 200
/// clients that each announce a 1 MiB frame and send a few bytes of it
/// cost the broker less than 48 KiB each (measured 30–36 KiB: a 16 KiB read
/// chunk, the session, allocator slack; the defect cost 1,178 KiB; RSS
/// moves by a few hundred KiB between samples, so the bound has room),
/// and are closed with
/// `message_timeout` once the message deadline passes.
#[tokio::test]
async fn trickling_clients_hold_little_memory_and_are_closed_at_the_message_deadline() {
    const CLIENTS: u64 = 200;
    let served = Served::start(&[("HERALD__SERVER__MESSAGE_TIMEOUT", "3s")]).await;
    // One full session first, so what every session shares is allocated.
    let mut warm = connect_raw(served.addr, Some(herald_protocol::SUBPROTOCOL))
        .await
        .unwrap();
    warm.hello().await;
    let before = served.rss();
    let mut tricklers = Vec::new();
    for _ in 0..CLIENTS {
        let mut client = MuteSocket::connect(served.addr).await;
        client.send_hello().await;
        client.send_bytes(&frame_start(MIB, 100)).await;
        tricklers.push(client);
    }
    // The peak is taken while they are all open and mid-message.
    let closed = "herald_connections_closed_total{reason=\"message_timeout\"}";
    let mut peak = served.rss();
    while served.metric(closed).await.unwrap_or(0.0) < 1.0 {
        peak = peak.max(served.rss());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let per_client = peak.saturating_sub(before) / CLIENTS;
    assert!(
        per_client < 48 * KIB,
        "{} KiB of broker RSS per trickling client (before {} KiB, peak {} KiB)",
        per_client / KIB,
        before / KIB,
        peak / KIB
    );
    served
        .wait_metric(closed, Duration::from_secs(3), |n| n >= CLIENTS as f64)
        .await;
    for client in &mut tricklers {
        let frames = client.read_to_close().await;
        let last = frames.last().expect("a close frame");
        assert_eq!(last.close(), (1008, "message_timeout".to_owned()));
    }
    warm.assert_no_event().await;
}

/// Defect 5 ("the outbound queue is bounded in frames, not bytes"): a
/// connection that subscribes to its own event, emits 1 MiB events and
/// never reads grows the broker by less than 64 MiB (its queue holds
/// `delivery.max_queued_bytes`, 8 MiB by default; the rest is dropped and
/// counted under the `drop` policy).
#[tokio::test]
async fn a_client_that_never_reads_its_own_large_events_is_bounded_in_bytes() {
    const EVENTS: u64 = 200;
    let served = Served::start(&[
        ("HERALD__DELIVERY__SLOW_CONSUMER", "drop"),
        // Only the byte bound is under test here.
        ("HERALD__DELIVERY__WRITE_TIMEOUT", "5m"),
    ])
    .await;
    let mut client = connect_raw(served.addr, Some(herald_protocol::SUBPROTOCOL))
        .await
        .unwrap();
    client.hello().await;
    client.subscribe("/self", "big", None, false).await;
    let before = served.rss();
    for seq in 0..EVENTS {
        // 1 MiB less a little, so the event fits `limits.max_payload_bytes`.
        client
            .emit(emit("/self", "big", seq_payload(seq, (MIB - KIB) as usize)))
            .await;
    }
    served
        .wait_metric("herald_events_received_total", Duration::ZERO, |n| {
            n >= EVENTS as f64
        })
        .await;
    let growth = served.rss().saturating_sub(before);
    assert!(
        growth < 64 * MIB,
        "broker RSS grew by {} MiB for one connection that never reads",
        growth / MIB
    );
    let dropped = served
        .metric("herald_events_dropped_total")
        .await
        .unwrap_or(0.0);
    assert!(dropped > 0.0, "the byte bound should have dropped events");
}
