//! Regression tests for the defects found by using the broker as a
//! hostile, careless or merely busy client would (issue #9), each named
//! after its defect, and the close and UTF-8 rules of RFC 6455.
//!
//! The memory-bound defects (trickling clients, byte-bounded queues) are
//! measured on the real daemon in `broker/tests/memory.rs`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_config::SlowConsumerPolicy;
use herald_protocol::envelope::{Emit, RoomChange, Subscription};
use herald_protocol::{CloseReason, Envelope, ErrorCode};
use herald_tests::{
    MuteSocket, TIMEOUT, TestBroker, client_frame, emit, payload_seq, seq_payload, start_broker,
};

/// A masked client frame (mask key zero) with `first` as its first byte.
fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126);
    let mut frame = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

/// Defect 1 ("a busy, well-behaved client is disconnected as a protocol
/// error"): 150 valid requests in a row answered `no_responders`, and 150
/// emits refused as too large, are answers, not invalid frames; the
/// connection stays open.
#[tokio::test]
async fn a_busy_client_refused_valid_requests_is_not_a_protocol_error() {
    let broker = start_broker(|s| s.limits.max_payload_bytes = 16).await;
    let mut client = broker.client().await;
    for ack in 1..=150 {
        let request = Emit {
            ack: Some(ack),
            ..emit("/", "nobody.home", "x")
        };
        client.feed(&Envelope::Emit(request)).await;
    }
    for id in 1000..1150 {
        let too_big = Emit {
            id: Some(id),
            ..emit("/", "big", vec![0u8; 17])
        };
        client.feed(&Envelope::Emit(too_big)).await;
    }
    client.flush().await;
    for _ in 0..150 {
        client.expect_error(ErrorCode::NoResponders).await;
    }
    for _ in 0..150 {
        client.expect_error(ErrorCode::PayloadTooLarge).await;
    }
    client.assert_no_event().await;
    assert_eq!(broker.stats().closed(CloseReason::ProtocolError), 0);
}

/// A broker whose connections have a short write deadline and room for
/// everything the test sends (so only the deadline can close them).
async fn broker_with_write_deadline(policy: SlowConsumerPolicy) -> TestBroker {
    start_broker(|s| {
        s.delivery.slow_consumer = policy;
        s.delivery.write_timeout = Duration::from_millis(500);
        s.delivery.queue_capacity = 65_536;
        s.delivery.max_queued_bytes = 256 << 20;
    })
    .await
}

/// Defect 2 ("a peer that stops reading can hold its connection
/// forever"): a subscriber that never reads fills its socket; the write
/// that cannot progress closes it as `slow_consumer` at the write
/// deadline, under both policies, and its subscription is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_is_closed_at_the_write_deadline() {
    for policy in [SlowConsumerPolicy::Disconnect, SlowConsumerPolicy::Drop] {
        let broker = broker_with_write_deadline(policy).await;
        let mut stuck = broker.client().await;
        stuck.subscribe("/stuck", "flood", None, false).await;
        // From here on `stuck` never reads.
        let mut publisher = broker.client().await;
        // 400 × 64 KiB = 25 MiB: far more than the sockets buffer, far
        // less than the queue may hold.
        for seq in 0..400 {
            publisher
                .emit(emit("/stuck", "flood", seq_payload(seq, 64 * 1024)))
                .await;
        }
        let stats = broker
            .wait_for_stats("the stuck reader's write-deadline close", |s| {
                s.closed(CloseReason::SlowConsumer) == 1
            })
            .await;
        assert_eq!(stats.events_dropped, 0, "{policy}: the queue never filled");
        broker
            .wait_for_stats("its subscription to go", |s| s.subscriptions == 0)
            .await;
        assert_eq!(broker.stats().connections_current, 1, "{policy}");
        publisher.assert_no_event().await;
        broker.assert_healthy().await;
        drop(stuck);
    }
}

/// Defect 4 ("error answers echo the whole bad name, escaped up to 5×"):
/// a `join` with a 1 MB room name of control characters is answered with a
/// short `err` that quotes only the start of the name.
#[tokio::test]
async fn error_answers_quote_only_the_start_of_a_bad_name() {
    let broker = start_broker(|s| s.limits.max_payload_bytes = 2 << 20).await;
    let mut client = broker.client().await;
    let huge = "\u{1}".repeat(1 << 20);
    client
        .send(&Envelope::Join(RoomChange {
            id: Some(1),
            namespace: "/".into(),
            room: huge.clone(),
            sid: None,
        }))
        .await;
    let error = client.expect_error(ErrorCode::InvalidRoom).await;
    assert!(
        error.message.len() < 1024,
        "a {}-byte answer to a bad name",
        error.message.len()
    );
    client
        .send(&Envelope::Join(RoomChange {
            id: Some(2),
            namespace: huge,
            room: "r".into(),
            sid: None,
        }))
        .await;
    let error = client.expect_error(ErrorCode::InvalidNamespace).await;
    assert!(error.message.len() < 1024, "{}", error.message.len());
    client.assert_no_event().await;
}

/// Starts a broker on a runtime of its own with ONE worker thread (the
/// clients run on the test's runtime), as a broker pinned to one core.
fn broker_on_one_worker(
    configure: impl FnOnce(&mut herald_config::Settings) + Send + 'static,
) -> (tokio::runtime::Runtime, TestBroker) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let broker = runtime.block_on(start_broker(configure));
        (runtime, broker)
    })
    .join()
    .unwrap()
}

/// Defect 8 ("one flooding publisher starves every writer, and fast
/// subscribers are cut off"), scaled to a debug build: a broker on one
/// worker thread, 30 subscribers that read as fast as they can, and one
/// publisher whose 5,000 events (40× the queue of 128 frames) are all on
/// the socket at once. Back-pressure holds the publisher instead of
/// cutting readers off: every subscriber gets every event in order, none
/// is closed as a slow consumer, and a subscriber that never reads, beside
/// them, is still closed by the `disconnect` policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_publisher_on_one_worker_loses_nothing_for_reading_subscribers() {
    const SUBSCRIBERS: usize = 30;
    const EVENTS: u64 = 5_000;
    let (runtime, broker) = broker_on_one_worker(|s| {
        s.delivery.queue_capacity = 128;
        s.delivery.slow_consumer = SlowConsumerPolicy::Disconnect;
    });
    let mut readers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let mut client = broker.client().await;
        client.subscribe("/flood", "tick", None, false).await;
        readers.push(tokio::spawn(async move {
            for next in 0..EVENTS {
                let event = client.expect_event().await;
                assert_eq!(payload_seq(&event.payload), next, "out of order or lost");
            }
            client
        }));
    }
    // It also takes "bulk" events (64 KiB each, for it alone), so what it
    // is sent outgrows the kernel's socket buffers and its queue.
    let mut stalled = MuteSocket::connect_with_receive_buffer(broker.addr(), 4096).await;
    stalled.send_hello().await;
    for event in ["tick", "bulk"] {
        stalled
            .send(&Envelope::Subscribe(Subscription {
                id: None,
                namespace: "/flood".into(),
                event: event.into(),
                group: None,
                responder: false,
            }))
            .await;
    }
    broker
        .wait_for_stats("every subscription", |s| {
            s.subscriptions == SUBSCRIBERS as u64 + 2
        })
        .await;
    let mut publisher = MuteSocket::connect(broker.addr()).await;
    publisher.send_hello().await;
    let mut flood = Vec::new();
    for seq in 0..EVENTS {
        let tick = emit("/flood", "tick", seq_payload(seq, 128));
        flood.extend(client_frame(&Envelope::Emit(tick)));
        if seq % 50 == 0 {
            let bulk = emit("/flood", "bulk", seq_payload(seq, 64 * 1024));
            flood.extend(client_frame(&Envelope::Emit(bulk)));
        }
    }
    publisher.send_bytes_within(&flood, TIMEOUT * 6).await;
    for reader in readers {
        let finished = tokio::time::timeout(TIMEOUT * 6, reader).await;
        let mut client = finished
            .expect("a subscriber did not get every event in time")
            .unwrap();
        client.assert_no_event().await;
    }
    let stats = broker
        .wait_for_stats("the subscriber that never reads to be closed", |s| {
            s.closed(CloseReason::SlowConsumer) >= 1
        })
        .await;
    assert_eq!(
        stats.closed(CloseReason::SlowConsumer),
        1,
        "only the subscriber that never reads is a slow consumer: {stats:#?}"
    );
    assert!(stats.publisher_stalls > 0, "{stats:#?}");
    drop(stalled);
    runtime.shutdown_background();
}

/// RFC 6455 §7.4: a close frame with a code no endpoint may send is a
/// protocol error (1002); a close reason that is not UTF-8 closes with
/// 1007; a valid close is answered with the client's own code.
#[tokio::test]
async fn close_frames_are_validated_and_their_code_echoed() {
    let broker = start_broker(|_| {}).await;
    let close = |code: u16, reason: &[u8]| {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason);
        masked(0x88, &payload)
    };
    // The frame sent, and the close frame expected back (none: empty).
    type Case = (Vec<u8>, Option<(u16, &'static str)>);
    let cases: Vec<Case> = vec![
        (close(1000, b"bye"), Some((1000, ""))),
        (close(4321, b""), Some((4321, ""))),
        (close(1003, b"no"), Some((1003, ""))),
        (masked(0x88, b""), None),
        (close(999, b""), Some((1002, "protocol_error"))),
        (close(1005, b""), Some((1002, "protocol_error"))),
        (close(2999, b""), Some((1002, "protocol_error"))),
        (close(5000, b""), Some((1002, "protocol_error"))),
        (close(1000, &[0xff, 0xfe]), Some((1007, "invalid_utf8"))),
    ];
    for (bytes, expected) in &cases {
        let mut client = MuteSocket::connect(broker.addr()).await;
        client.send_hello().await;
        client.send_bytes(bytes).await;
        let frames = client.read_to_close().await;
        let last = frames.last().expect("a close frame");
        match expected {
            Some((code, reason)) => {
                assert_eq!(last.close(), (*code, (*reason).to_owned()), "{bytes:?}")
            }
            None => {
                assert_eq!(last.opcode, 0x8);
                assert!(last.payload.is_empty(), "an empty close is echoed empty");
            }
        }
    }
    broker.assert_healthy().await;
}

/// RFC 6455 §8.1: a text message that is not UTF-8 closes with 1007
/// (valid text is still refused as `text_frame`, and the connection stays).
#[tokio::test]
async fn text_that_is_not_utf8_closes_with_1007() {
    let broker = start_broker(|_| {}).await;
    let mut client = MuteSocket::connect(broker.addr()).await;
    client.send_hello().await;
    client.send_bytes(&masked(0x81, "ok ✓".as_bytes())).await;
    client.send_bytes(&masked(0x01, b"fine")).await;
    client.send_bytes(&masked(0x80, &[0xc3, 0x28])).await;
    let frames = client.read_to_close().await;
    let codes: Vec<ErrorCode> = frames
        .iter()
        .filter(|f| f.opcode == 0x2)
        .filter_map(|f| match f.envelope() {
            Envelope::Error(body) => Some(body.code),
            _ => None,
        })
        .collect();
    assert_eq!(codes, vec![ErrorCode::TextFrame]);
    let last = frames.last().expect("a close frame");
    assert_eq!(last.close(), (1007, "invalid_utf8".to_owned()));
    assert_eq!(broker.stats().closed(CloseReason::InvalidUtf8), 1);
}
