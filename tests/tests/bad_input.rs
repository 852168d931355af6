//! Bad input gets its documented error (or close reason), is counted, and
//! never harms the connection that sent it (unless fatal) or any other.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use herald_protocol::envelope::{Emit, Hello, Reply, RoomChange, Subscription, Welcome};
use herald_protocol::{Envelope, ErrorCode, SUBPROTOCOL};
use herald_tests::{
    MuteSocket, RawClient, TestBroker, connect_raw, emit, msgpack_frame, refused, start_broker,
    string_map_frame,
};
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;

fn sub(id: u64, ns: &str, ev: &str, group: Option<&str>) -> Envelope {
    Envelope::Subscribe(Subscription {
        id: Some(id),
        namespace: ns.into(),
        event: ev.into(),
        group: group.map(str::to_owned),
        responder: false,
    })
}

fn join(id: u64, ns: &str, room: &str) -> Envelope {
    Envelope::Join(RoomChange {
        id: Some(id),
        namespace: ns.into(),
        room: room.into(),
        sid: None,
    })
}

/// Sends `frame` and expects `err` with `code`, the connection still
/// answering afterwards.
async fn refused_but_alive(client: &mut RawClient, frame: Message, code: ErrorCode) {
    client.send_raw(frame).await;
    client.expect_error(code).await;
    client.assert_no_event().await;
}

/// Expects `err` with `code`, then a `protocol_error` close (1002).
async fn refused_and_closed(client: &mut RawClient, code: ErrorCode) {
    client.expect_error(code).await;
    assert_eq!(
        client.expect_close().await,
        (1002, "protocol_error".to_owned())
    );
}

#[tokio::test]
async fn malformed_frames_are_bad_frame() {
    let broker = start_broker(|_| {}).await;
    let mut client = broker.client().await;
    let garbage: Vec<Message> = vec![
        Message::Binary(Bytes::from_static(&[0xc1, 0xff, 0x00, 0x13])),
        Message::Binary(Bytes::new()),
        // A MessagePack array, not a map.
        msgpack_frame(&[1, 2, 3]),
        // A map without `t`.
        string_map_frame(&[("ns", "/a"), ("ev", "b")]),
        // A map whose `t` is not a string.
        msgpack_frame(&BTreeMap::from([("t", 5)])),
        // A field of the wrong type (`id` must be an integer).
        string_map_frame(&[("t", "sub"), ("id", "seven"), ("ns", "/a"), ("ev", "b")]),
        // A map cut short.
        Message::Binary(Bytes::from_static(&[0x82, 0xa1, b't'])),
    ];
    let count = garbage.len() as u64;
    for frame in garbage {
        refused_but_alive(&mut client, frame, ErrorCode::BadFrame).await;
    }
    let stats = broker.stats();
    assert_eq!(stats.bad_frames, count);
    assert_eq!(stats.errors_sent, count);
    broker.assert_healthy().await;
}

#[tokio::test]
async fn text_frames_are_refused() {
    let broker = start_broker(|_| {}).await;
    let mut client = broker.client().await;
    let error = {
        client
            .send_raw(Message::Text(r#"{"t":"ping"}"#.into()))
            .await;
        client.expect_error(ErrorCode::TextFrame).await
    };
    assert!(error.message.contains("binary"), "{}", error.message);
    client.assert_no_event().await;
    broker.assert_healthy().await;
}

#[tokio::test]
async fn unknown_envelope_types_are_refused_and_unknown_fields_ignored() {
    let broker = start_broker(|_| {}).await;
    let mut client = broker.client().await;
    client
        .send_raw(string_map_frame(&[("t", "frobnicate"), ("ns", "/a")]))
        .await;
    let error = client.expect_error(ErrorCode::UnknownType).await;
    assert!(error.message.contains("frobnicate"), "{}", error.message);

    // A newer peer's extra fields are ignored (the forward-compatibility
    // rule): this ping is answered.
    #[derive(Serialize)]
    struct PingFromTheFuture {
        t: &'static str,
        ts: u64,
        trace_id: &'static str,
        priority: u8,
    }
    client
        .send_raw(msgpack_frame(&PingFromTheFuture {
            t: "ping",
            ts: 99,
            trace_id: "abc",
            priority: 3,
        }))
        .await;
    assert_eq!(client.recv().await, Envelope::Pong { ts: Some(99) });
    broker.assert_healthy().await;
}

#[tokio::test]
async fn missing_fields_and_misdirected_envelopes_are_invalid_envelope() {
    let broker = start_broker(|_| {}).await;
    let mut client = broker.client().await;
    for fields in [
        &[("t", "sub"), ("ev", "x")][..],
        &[("t", "emit"), ("ns", "/a")][..],
        &[("t", "join"), ("ns", "/a")][..],
        &[("t", "reply")][..],
    ] {
        let error = {
            client.send_raw(string_map_frame(fields)).await;
            client.expect_error(ErrorCode::InvalidEnvelope).await
        };
        assert!(
            error.message.contains("missing"),
            "{fields:?}: {}",
            error.message
        );
        client.assert_no_event().await;
    }
    // Envelopes only a broker sends.
    let broker_only = [
        Envelope::Welcome(Welcome::default()),
        Envelope::Ack {
            id: 1,
            receivers: 1,
        },
        Envelope::Ok { id: 1 },
        Envelope::Event(herald_protocol::envelope::Event {
            namespace: "/a".into(),
            event: "b".into(),
            ..Default::default()
        }),
    ];
    for envelope in broker_only {
        client.send(&envelope).await;
        client.expect_error(ErrorCode::InvalidEnvelope).await;
    }
    // A second hello is refused but not fatal.
    client
        .send(&Envelope::Hello(Hello {
            version: 1,
            ..Hello::default()
        }))
        .await;
    client.expect_error(ErrorCode::HelloRequired).await;
    client.assert_no_event().await;
    broker.assert_healthy().await;
}

#[tokio::test]
async fn invalid_names_are_refused_with_their_own_codes() {
    let broker = start_broker(|_| {}).await;
    let mut client = broker.client().await;
    let cases: Vec<(Envelope, ErrorCode)> = vec![
        (
            sub(1, "orders", "created", None),
            ErrorCode::InvalidNamespace,
        ),
        (
            sub(2, "/orders/", "created", None),
            ErrorCode::InvalidNamespace,
        ),
        (sub(3, "/orders", "a..b", None), ErrorCode::InvalidPattern),
        (sub(4, "/orders", "a.>.b", None), ErrorCode::InvalidPattern),
        (
            sub(5, "/orders", "a.b", Some("two words")),
            ErrorCode::InvalidGroup,
        ),
        (sub(6, "/orders", "a.b", Some("")), ErrorCode::InvalidGroup),
        (join(7, "/orders", ""), ErrorCode::InvalidRoom),
        (join(8, "/orders", "line\nbreak"), ErrorCode::InvalidRoom),
        (join(9, "no-slash", "eu"), ErrorCode::InvalidNamespace),
        (
            Envelope::Emit(Emit {
                id: Some(10),
                ..emit("/orders", "order.*", &b""[..])
            }),
            ErrorCode::InvalidEvent,
        ),
        (
            Envelope::Emit(Emit {
                id: Some(11),
                ..emit("/orders", "", &b""[..])
            }),
            ErrorCode::InvalidEvent,
        ),
        (
            Envelope::Emit(Emit {
                id: Some(12),
                ..emit("/or ders", "a", &b""[..])
            }),
            ErrorCode::InvalidNamespace,
        ),
        (
            Envelope::Emit(Emit {
                id: Some(13),
                room: Some("\u{7}".into()),
                ..emit("/orders", "a", &b""[..])
            }),
            ErrorCode::InvalidRoom,
        ),
        (
            // A request answers with its ack id.
            Envelope::Emit(Emit {
                ack: Some(14),
                ..emit("/orders", "a.>", &b""[..])
            }),
            ErrorCode::InvalidEvent,
        ),
    ];
    for (envelope, code) in cases {
        client.send(&envelope).await;
        let error = client.expect_error(code).await;
        let expected_id = match &envelope {
            Envelope::Subscribe(s) => s.id,
            Envelope::Join(j) => j.id,
            Envelope::Emit(e) => e.ack.or(e.id),
            _ => None,
        };
        assert_eq!(error.id, expected_id, "{envelope:?}");
    }
    assert_eq!(broker.stats().subscriptions, 0);
    assert_eq!(broker.handle().rooms(), 0);
    client.assert_no_event().await;
    broker.assert_healthy().await;
}

#[tokio::test]
async fn oversize_payloads_are_refused_and_oversize_frames_close() {
    let broker = start_broker(|s| s.limits.max_payload_bytes = 1024).await;
    let mut client = broker.client().await;
    let welcome_limit = {
        let mut other = broker.connect().await;
        other.hello().await.limits.max_payload
    };
    assert_eq!(welcome_limit, 1024, "welcome announces the limit");

    // At the limit: accepted.
    let receivers = client
        .emit_acked(emit("/big", "blob", vec![7u8; 1024]))
        .await;
    assert_eq!(receivers, 0);
    // One byte over: refused, the connection stays.
    client
        .emit(Emit {
            id: Some(500),
            ..emit("/big", "blob", vec![7u8; 1025])
        })
        .await;
    let error = client.expect_error(ErrorCode::PayloadTooLarge).await;
    assert_eq!(error.id, Some(500));
    assert!(
        error.message.contains("max_payload_bytes"),
        "{}",
        error.message
    );
    // A reply over the limit too.
    client
        .send(&Envelope::Reply(Reply {
            ack: 77,
            ok: true,
            payload: vec![0u8; 2048].into(),
            args: false,
        }))
        .await;
    assert_eq!(
        client.expect_error(ErrorCode::PayloadTooLarge).await.id,
        Some(77)
    );
    client.assert_no_event().await;

    // A frame above the frame limit (payload limit + 64 KiB of envelope
    // room) closes the connection with 1009.
    client
        .emit(emit("/big", "blob", vec![7u8; 1024 + 65 * 1024]))
        .await;
    assert_eq!(
        client.expect_close().await,
        (1009, "message_too_big".to_owned())
    );
    broker.assert_healthy().await;
}

#[tokio::test]
async fn subscription_and_room_limits() {
    let broker = start_broker(|s| {
        s.limits.max_subscriptions_per_connection = 3;
        s.limits.max_rooms_per_connection = 2;
    })
    .await;
    let mut client = broker.client().await;
    for ev in ["a", "b.*", "c.>"] {
        client.subscribe("/lim", ev, None, false).await;
    }
    client.send(&sub(100, "/lim", "d", None)).await;
    let error = client.expect_error(ErrorCode::TooManySubscriptions).await;
    assert_eq!(error.id, Some(100));
    // The same target again is not a new subscription; a group on the
    // same event is.
    client.subscribe("/lim", "a", None, false).await;
    client.send(&sub(101, "/lim", "a", Some("g"))).await;
    client.expect_error(ErrorCode::TooManySubscriptions).await;
    // Unsubscribing frees a slot.
    client.unsubscribe("/lim", "a", None, false).await;
    client.subscribe("/lim", "d", None, false).await;
    assert_eq!(broker.stats().subscriptions, 3);

    client.join("/lim", "r1").await;
    client.join("/lim", "r2").await;
    client.join("/lim", "r1").await; // already in it
    client.send(&join(200, "/lim", "r3")).await;
    let error = client.expect_error(ErrorCode::TooManyRooms).await;
    assert_eq!(error.id, Some(200));
    client.leave("/lim", "r1").await;
    client.join("/lim", "r3").await;

    // The limits are per connection.
    let mut other = broker.client().await;
    for ev in ["x", "y", "z"] {
        other.subscribe("/lim", ev, None, false).await;
    }
    client.assert_no_event().await;
    broker.assert_healthy().await;
}

#[tokio::test]
async fn the_first_envelope_must_be_hello() {
    let broker = start_broker(|_| {}).await;
    let mut client = broker.connect().await;
    client.send(&sub(1, "/a", "b", None)).await;
    refused_and_closed(&mut client, ErrorCode::HelloRequired).await;

    // Garbage before hello is fatal too.
    let mut client = broker.connect().await;
    client
        .send_raw(Message::Binary(Bytes::from_static(b"\xc1garbage")))
        .await;
    refused_and_closed(&mut client, ErrorCode::BadFrame).await;

    let stats = broker
        .wait_for_stats("both closes to be counted", |s| {
            s.closed(herald_protocol::CloseReason::ProtocolError) == 2
        })
        .await;
    assert_eq!(stats.connections_current, 0);
    broker.assert_healthy().await;
}

#[tokio::test]
async fn an_unsupported_version_is_refused_and_closed() {
    let broker = start_broker(|_| {}).await;
    let mut client = broker.connect().await;
    client
        .send(&Envelope::Hello(Hello {
            version: 2,
            ..Hello::default()
        }))
        .await;
    let error = client.expect_error(ErrorCode::UnsupportedVersion).await;
    assert!(error.message.contains('2'), "{}", error.message);
    assert_eq!(
        client.expect_close().await,
        (1002, "protocol_error".to_owned())
    );
    broker.assert_healthy().await;
}

async fn assert_subprotocol_refused(broker: &TestBroker, offered: Option<&str>) {
    let response = refused(connect_raw(broker.addr(), offered).await);
    assert_eq!(response.status, 400, "offered {offered:?}: {response:?}");
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("application/json"),
        "{response:?}"
    );
    assert!(response.body.contains(SUBPROTOCOL), "{response:?}");
    assert!(
        response
            .body
            .contains("\"code\":\"unsupported_subprotocol\""),
        "{response:?}"
    );
}

#[tokio::test]
async fn a_missing_or_wrong_subprotocol_is_refused_with_400() {
    let broker = start_broker(|_| {}).await;
    assert_subprotocol_refused(&broker, None).await;
    assert_subprotocol_refused(&broker, Some("herald.v2")).await;
    assert_subprotocol_refused(&broker, Some("chat")).await;
    // Offering several, one of them herald.v1, is accepted.
    let mut client = connect_raw(broker.addr(), Some("chat, herald.v1"))
        .await
        .unwrap();
    client.hello().await;
    assert_eq!(broker.stats().connections_refused, 3);
    broker.assert_healthy().await;
}

#[tokio::test]
async fn the_connection_limit_refuses_with_503() {
    let broker = start_broker(|s| s.server.max_connections = 2).await;
    let first = broker.client().await;
    let mut second = broker.client().await;
    let response = refused(connect_raw(broker.addr(), Some(SUBPROTOCOL)).await);
    assert_eq!(response.status, 503, "{response:?}");
    assert!(
        response.body.contains("\"code\":\"connection_limit\""),
        "{response:?}"
    );
    assert!(
        response.body.contains("server.max_connections"),
        "{response:?}"
    );
    // HTTP endpoints are not sessions and still answer.
    assert_eq!(broker.get("/healthz").await.status, 200);
    second.assert_no_event().await;

    // Once a session ends, its slot is free again (the permit is released
    // as the session task finishes: retry a bounded number of times).
    first.close().await;
    let mut third = None;
    for _ in 0..500 {
        match connect_raw(broker.addr(), Some(SUBPROTOCOL)).await {
            Ok(client) => {
                third = Some(client);
                break;
            }
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
        }
    }
    let mut third = third.expect("a slot should free up after a close");
    third.hello().await;
    third.assert_no_event().await;
}

#[tokio::test]
async fn a_long_run_of_invalid_frames_closes_the_connection() {
    let broker = start_broker(|_| {}).await;
    let garbage = || Message::Binary(Bytes::from_static(&[0xc1]));

    // 99 invalid, one valid, 99 invalid: the run restarts, still open.
    let mut patient = broker.client().await;
    for _ in 0..99 {
        patient.send_raw(garbage()).await;
    }
    patient.send(&Envelope::Ping { ts: Some(1) }).await;
    for _ in 0..99 {
        patient.send_raw(garbage()).await;
    }
    for _ in 0..99 {
        patient.expect_error(ErrorCode::BadFrame).await;
    }
    assert_eq!(patient.recv().await, Envelope::Pong { ts: Some(1) });
    for _ in 0..99 {
        patient.expect_error(ErrorCode::BadFrame).await;
    }
    patient.send(&Envelope::Ping { ts: Some(2) }).await;
    assert_eq!(patient.recv().await, Envelope::Pong { ts: Some(2) });

    // 100 in a row: closed with protocol_error.
    let mut flooder = broker.client().await;
    for _ in 0..100 {
        flooder.send_raw(garbage()).await;
    }
    for _ in 0..100 {
        flooder.expect_error(ErrorCode::BadFrame).await;
    }
    assert_eq!(
        flooder.expect_close().await,
        (1002, "protocol_error".to_owned())
    );
    patient.assert_no_event().await;
    broker.assert_healthy().await;
}

/// Frames that break RFC 6455's rules close the connection with
/// `protocol_error` (1002); other connections carry on.
#[tokio::test]
async fn websocket_framing_violations_close_with_protocol_error() {
    let broker = start_broker(|_| {}).await;
    let mut bystander = broker.client().await;
    bystander.subscribe("/", "tick", None, false).await;
    let masked = |first: u8, payload: &[u8]| {
        let mut frame = vec![first, 0x80 | payload.len() as u8, 0, 0, 0, 0];
        frame.extend_from_slice(payload);
        frame
    };
    let cases: [(&str, Vec<u8>); 6] = [
        ("an unmasked binary frame", vec![0x82, 0x01, 0x90]),
        ("a reserved bit", masked(0x82 | 0x40, &[0x90])),
        ("a reserved opcode", masked(0x83, &[0x90])),
        ("a fragmented ping", masked(0x09, b"hi")),
        ("a one-byte close payload", masked(0x88, &[3])),
        (
            "a new message inside a fragmented one",
            [masked(0x02, &[0x81]), masked(0x82, &[0x80])].concat(),
        ),
    ];
    for (what, bytes) in &cases {
        let mut client = MuteSocket::connect(broker.addr()).await;
        client.send_hello().await;
        client.send_bytes(bytes).await;
        let frames = client.read_to_close().await;
        let last = frames
            .last()
            .unwrap_or_else(|| panic!("{what}: no frame before the connection ended"));
        assert_eq!(last.close(), (1002, "protocol_error".to_owned()), "{what}");
    }
    broker
        .wait_for_stats("the protocol-error closes", |s| {
            s.closed(herald_protocol::CloseReason::ProtocolError) == cases.len() as u64
        })
        .await;
    let mut publisher = broker.client().await;
    assert_eq!(publisher.emit_acked(emit("/", "tick", "x")).await, 1);
    assert_eq!(bystander.expect_event().await.event, "tick");
    broker.assert_healthy().await;
}
