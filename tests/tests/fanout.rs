//! Fan-out: one emit reaches every subscriber, bytes intact, and the
//! broker's `ack` counts the receivers.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures_util::future::join_all;
use herald_tests::{emit, payload_seq, seq_payload, start_broker};

const SUBSCRIBERS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_subscribers_all_receive_intact_payloads() {
    let broker = start_broker(|_| {}).await;
    let mut subscribers = broker.clients(SUBSCRIBERS).await;
    for subscriber in &mut subscribers {
        subscriber.subscribe("/fanout", "tick", None, false).await;
    }
    let mut publisher = broker.client().await;

    // Every byte value, then numbered payloads of a few sizes.
    let every_byte: Bytes = (0..=255u8).cycle().take(1024).collect::<Vec<u8>>().into();
    let numbered: Vec<Bytes> = [8usize, 1000, 100_000]
        .iter()
        .enumerate()
        .map(|(seq, &len)| seq_payload(seq as u64, len))
        .collect();

    let receivers = publisher
        .emit_acked(emit("/fanout", "tick", every_byte.clone()))
        .await;
    assert_eq!(receivers, SUBSCRIBERS as u64);
    for payload in &numbered {
        let receivers = publisher
            .emit_acked(emit("/fanout", "tick", payload.clone()))
            .await;
        assert_eq!(receivers, SUBSCRIBERS as u64);
    }

    join_all(subscribers.iter_mut().map(|subscriber| {
        let every_byte = every_byte.clone();
        let numbered = numbered.clone();
        async move {
            let first = subscriber.expect_event().await;
            assert_eq!(first.namespace, "/fanout");
            assert_eq!(first.event, "tick");
            assert_eq!(first.room, None);
            assert_eq!(first.group, None);
            assert_eq!(first.ack, None);
            assert_eq!(first.payload, every_byte);
            for (seq, payload) in numbered.iter().enumerate() {
                let event = subscriber.expect_event().await;
                assert_eq!(payload_seq(&event.payload), seq as u64);
                assert_eq!(event.payload, *payload);
            }
            subscriber.assert_no_event().await;
        }
    }))
    .await;

    // The publisher did not subscribe, so it gets nothing back.
    publisher.assert_no_event().await;
    let stats = broker.stats();
    assert_eq!(stats.events_received, 4);
    assert_eq!(stats.events_delivered, 4 * SUBSCRIBERS as u64);
    assert_eq!(stats.events_dropped, 0);
}

#[tokio::test]
async fn emit_without_subscribers_is_acked_with_zero() {
    let broker = start_broker(|_| {}).await;
    let mut publisher = broker.client().await;
    let receivers = publisher
        .emit_acked(emit("/fanout", "nobody.listens", &b"x"[..]))
        .await;
    assert_eq!(receivers, 0);
    publisher.assert_no_event().await;
}

#[tokio::test]
async fn namespaces_are_separate() {
    let broker = start_broker(|_| {}).await;
    let mut in_a = broker.client().await;
    in_a.subscribe("/a", "tick", None, false).await;
    let mut in_b = broker.client().await;
    in_b.subscribe("/b", "tick", None, false).await;
    let mut in_root = broker.client().await;
    in_root.subscribe("/", "tick", None, false).await;
    let mut publisher = broker.client().await;

    assert_eq!(publisher.emit_acked(emit("/a", "tick", &b"a"[..])).await, 1);
    assert_eq!(publisher.emit_acked(emit("/", "tick", &b"r"[..])).await, 1);
    assert_eq!(in_a.expect_event().await.payload, &b"a"[..]);
    assert_eq!(in_root.expect_event().await.payload, &b"r"[..]);
    in_a.assert_no_event().await;
    in_b.assert_no_event().await;
    in_root.assert_no_event().await;
}

#[tokio::test]
async fn unsubscribe_stops_delivery_and_disconnect_cleans_up() {
    let broker = start_broker(|_| {}).await;
    let mut subscriber = broker.client().await;
    subscriber.subscribe("/u", "tick", None, false).await;
    let mut leaver = broker.client().await;
    leaver.subscribe("/u", "tick", None, false).await;
    let mut publisher = broker.client().await;
    assert_eq!(broker.stats().subscriptions, 2);

    assert_eq!(publisher.emit_acked(emit("/u", "tick", &b"1"[..])).await, 2);
    assert_eq!(subscriber.expect_event().await.payload, &b"1"[..]);
    subscriber.unsubscribe("/u", "tick", None, false).await;
    assert_eq!(publisher.emit_acked(emit("/u", "tick", &b"2"[..])).await, 1);
    subscriber.assert_no_event().await;
    assert_eq!(leaver.drain_events().await.len(), 2);

    leaver.close().await;
    broker
        .wait_for_stats("the closed connection's subscription to be removed", |s| {
            s.subscriptions == 0 && s.connections_current == 2
        })
        .await;
    assert_eq!(publisher.emit_acked(emit("/u", "tick", &b"3"[..])).await, 0);
}
