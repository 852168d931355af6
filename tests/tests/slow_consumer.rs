//! Slow consumers: a subscriber that stops reading fills its bounded
//! queue; the configured policy either disconnects it (`slow_consumer`)
//! or drops events for it (counted, and reported with an `err` of code
//! `dropped`), while the publisher and a fast subscriber get everything.
//!
//! The kernel's socket buffers absorb megabytes, so the queue is tiny (4
//! frames) and the payloads big (64 KiB): a bounded number of events then
//! really fills it.

#![allow(clippy::unwrap_used)]

use herald_config::SlowConsumerPolicy;
use herald_protocol::{CloseReason, Envelope, ErrorCode};
use herald_tests::{RawClient, TestBroker, emit, payload_seq, seq_payload, start_broker};
use tokio::task::JoinHandle;

const NS: &str = "/firehose";
const PAYLOAD: usize = 64 * 1024;
/// Upper bound on events before the queue must have overflowed (25 MiB).
const MAX_EVENTS: u64 = 400;
/// Events published after the overflow was seen.
const AFTER_OVERFLOW: u64 = 20;

/// A subscriber read in a task until the `done` event; yields the sequence
/// numbers of the `big` events it got, and the still open client.
async fn fast_subscriber(broker: &TestBroker) -> JoinHandle<(Vec<u64>, RawClient)> {
    let mut fast = broker.client().await;
    fast.subscribe(NS, "big", None, false).await;
    fast.subscribe(NS, "done", None, false).await;
    tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            let event = fast.expect_event().await;
            if event.event == "done" {
                break;
            }
            seqs.push(payload_seq(&event.payload));
        }
        fast.assert_no_event().await;
        (seqs, fast)
    })
}

/// Publishes 64 KiB events with acks until one reaches only one receiver
/// (the slow subscriber's queue was full), then `AFTER_OVERFLOW` more.
/// Returns (events published, the ack counts).
async fn publish_until_overflow(publisher: &mut RawClient) -> (u64, Vec<u64>) {
    let mut acks = Vec::new();
    let mut overflow_at = None;
    for seq in 0..MAX_EVENTS {
        let receivers = publisher
            .emit_acked(emit(NS, "big", seq_payload(seq, PAYLOAD)))
            .await;
        assert!(
            (1..=2).contains(&receivers),
            "event {seq} reached {receivers}"
        );
        acks.push(receivers);
        if receivers == 1 && overflow_at.is_none() {
            overflow_at = Some(seq);
        }
        if overflow_at.is_some_and(|at| seq >= at + AFTER_OVERFLOW) {
            break;
        }
    }
    let Some(at) = overflow_at else {
        panic!("{MAX_EVENTS} events of {PAYLOAD} bytes never filled a 4-frame queue");
    };
    println!("the slow subscriber's queue overflowed at event {at}");
    assert_eq!(
        publisher.emit_acked(emit(NS, "done", &b""[..])).await,
        1,
        "only the fast subscriber is left for `done`"
    );
    (acks.len() as u64, acks)
}

/// What [`overflow`] leaves behind for a policy test to check.
struct Overflowed {
    broker: TestBroker,
    /// The slow subscriber, not read yet.
    slow: RawClient,
    publisher: RawClient,
    /// The fast subscriber, still connected (it counts in the broker's
    /// connections).
    fast: RawClient,
    /// How many `big` events were published.
    published: u64,
    /// The ack count of each `big` event, in order.
    acks: Vec<u64>,
}

/// The set-up both policy tests share: a broker with a 4-frame queue and
/// `policy`, a slow subscriber that is not read, a fast subscriber and a
/// publisher that publishes until the slow subscriber's queue overflowed
/// ([`publish_until_overflow`]); checks that the fast subscriber got every
/// event, in order.
async fn overflow(policy: SlowConsumerPolicy) -> Overflowed {
    let broker = start_broker(|s| {
        s.delivery.queue_capacity = 4;
        s.delivery.slow_consumer = policy;
    })
    .await;
    let mut slow = broker.client().await;
    slow.subscribe(NS, "big", None, false).await;
    let fast = fast_subscriber(&broker).await;
    let mut publisher = broker.client().await;

    // The slow subscriber is not read until the publisher is done.
    let (published, acks) = publish_until_overflow(&mut publisher).await;

    // The fast subscriber got every event, in order.
    let all: Vec<u64> = (0..published).collect();
    let (seqs, fast) = fast.await.unwrap();
    assert_eq!(seqs, all);
    Overflowed {
        broker,
        slow,
        publisher,
        fast,
        published,
        acks,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_policy_closes_the_slow_subscriber_only() {
    let Overflowed {
        broker,
        mut slow,
        mut publisher,
        fast: _fast,
        published: _,
        acks,
    } = overflow(SlowConsumerPolicy::Disconnect).await;
    // Once full, the slow subscriber was cut off: every later event
    // reached the fast subscriber only.
    let first_single = acks.iter().position(|&n| n == 1).unwrap();
    assert!(acks[first_single..].iter().all(|&n| n == 1), "{acks:?}");

    // Reading the slow subscriber now shows what it was sent before the
    // cut (in order, intact), and why it was closed.
    let closing = slow.read_until_close().await;
    let mut expected = 0;
    for envelope in &closing.envelopes {
        let Envelope::Event(event) = envelope else {
            panic!("the slow subscriber got {envelope:?}");
        };
        assert_eq!(payload_seq(&event.payload), expected);
        expected += 1;
    }
    assert!(expected <= first_single as u64);
    let (code, reason) = RawClient::check_closing(&closing);
    assert_eq!((code, reason.as_str()), (1008, "slow_consumer"));

    let stats = broker
        .wait_for_stats("the slow consumer's close to be counted", |s| {
            s.closed(CloseReason::SlowConsumer) == 1
        })
        .await;
    assert_eq!(stats.connections_current, 2, "{stats:#?}");
    assert_eq!(stats.events_dropped, 0);
    publisher.assert_no_event().await;
    broker.assert_healthy().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_policy_keeps_the_slow_subscriber_and_reports_drops() {
    let Overflowed {
        broker,
        mut slow,
        mut publisher,
        fast: _fast,
        published,
        acks,
    } = overflow(SlowConsumerPolicy::Drop).await;

    // The slow subscriber is still connected, and the drops are counted.
    let stats = broker.stats();
    assert!(stats.events_dropped > 0, "{stats:#?}");
    assert_eq!(stats.connections_current, 3, "{stats:#?}");
    let dropped = stats.events_dropped;
    let reached_slow: u64 = acks.iter().map(|n| n - 1).sum();
    assert_eq!(
        reached_slow + dropped,
        published,
        "every event queued or counted"
    );

    // Reading it now: the events that fit (in order, intact) and at least
    // one `err` with code `dropped`.
    let mut last = None;
    let mut received = 0;
    let mut notices = 0;
    while received < reached_slow {
        match slow.recv().await {
            Envelope::Event(event) => {
                let seq = payload_seq(&event.payload);
                assert!(last.is_none_or(|l| seq > l), "{seq} after {last:?}");
                last = Some(seq);
                received += 1;
            }
            Envelope::Error(error) if error.code == ErrorCode::Dropped => notices += 1,
            other => panic!("the slow subscriber got {other:?}"),
        }
    }
    for envelope in slow.barrier().await {
        match envelope {
            Envelope::Error(error) if error.code == ErrorCode::Dropped => notices += 1,
            other => panic!("unexpected after the last event: {other:?}"),
        }
    }
    assert!(
        notices > 0,
        "no `dropped` error reached the slow subscriber"
    );

    // It still works both ways.
    slow.assert_no_event().await;
    assert_eq!(
        publisher
            .emit_acked(emit(NS, "big", seq_payload(0, 8)))
            .await,
        2
    );
    assert_eq!(slow.drain_events().await.len(), 1);
    let stats = broker.stats();
    assert_eq!(
        stats.events_dropped, dropped,
        "nothing dropped once it read"
    );
    assert!(
        stats.closed_by_reason.iter().all(|(_, n)| *n == 0),
        "{stats:#?}"
    );
}

/// Regression: under the `drop` policy an overflowing queue used to drop
/// the broker's answers to the slow connection too (an `ack` lost means a
/// client waiting forever). Answers now use slots events may not take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_to_a_slow_connection_are_not_dropped() {
    let broker = start_broker(|s| {
        s.delivery.queue_capacity = 16;
        s.delivery.slow_consumer = SlowConsumerPolicy::Drop;
    })
    .await;
    let mut slow = broker.client().await;
    slow.subscribe(NS, "big", None, false).await;
    let mut publisher = broker.client().await;
    let mut overflowed = false;
    for seq in 0..MAX_EVENTS {
        let receivers = publisher
            .emit_acked(emit(NS, "big", seq_payload(seq, PAYLOAD)))
            .await;
        if receivers == 0 {
            overflowed = true;
            break;
        }
    }
    assert!(overflowed, "the slow subscriber's queue never filled");
    // Its event queue is full; it now asks for an answer, then reads.
    let id = slow.next_id();
    let mut ask = emit(NS, "nobody.listens", &b""[..]);
    ask.id = Some(id);
    slow.send(&Envelope::Emit(ask)).await;
    let mut events = 0;
    loop {
        match slow.recv().await {
            Envelope::Event(_) => events += 1,
            Envelope::Error(error) if error.code == ErrorCode::Dropped => {}
            Envelope::Ack { id: got, receivers } => {
                assert_eq!((got, receivers), (id, 0));
                break;
            }
            other => panic!("the slow subscriber got {other:?}"),
        }
    }
    assert!(events > 0);
    assert!(broker.stats().events_dropped > 0);
    broker.assert_healthy().await;
}
