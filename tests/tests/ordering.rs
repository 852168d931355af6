//! Per-publisher ordering: events from one publisher on one namespace
//! arrive at each subscriber in the order they were emitted.

#![allow(clippy::unwrap_used)]

use herald_protocol::Envelope;
use herald_tests::{emit, payload_seq, seq_payload, start_broker};

const EVENTS: u64 = 10_000;
const SUBSCRIBERS: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_events_arrive_in_order_at_every_subscriber() {
    // The queue holds every event, so ordering is tested, not the
    // slow-consumer policy.
    let broker = start_broker(|s| s.delivery.queue_capacity = 16_384).await;
    let ns = "/ordered";
    let mut readers = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut subscriber = broker.client().await;
        // Mixed targets: exact and pattern subscribers share the ordering.
        let target = if i % 2 == 0 { "seq.next" } else { "seq.*" };
        subscriber.subscribe(ns, target, None, false).await;
        readers.push(tokio::spawn(async move {
            for expected in 0..EVENTS {
                let event = subscriber.expect_event().await;
                assert_eq!(
                    payload_seq(&event.payload),
                    expected,
                    "subscriber {i} got events out of order"
                );
            }
            subscriber.assert_no_event().await;
        }));
    }

    let mut publisher = broker.client().await;
    for seq in 0..EVENTS {
        publisher
            .feed(&Envelope::Emit(emit(ns, "seq.next", seq_payload(seq, 16))))
            .await;
        if seq % 256 == 255 {
            publisher.flush().await;
        }
    }
    publisher.flush().await;
    publisher.assert_no_event().await;

    for reader in readers {
        reader.await.unwrap();
    }
    let stats = broker.stats();
    assert_eq!(stats.events_received, EVENTS);
    assert_eq!(stats.events_delivered, EVENTS * SUBSCRIBERS as u64);
    assert_eq!(stats.events_dropped, 0);
}
