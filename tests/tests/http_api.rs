//! The HTTP publish API, `POST /v1/emit/{event}?namespace=..&room=..`:
//! what is POSTed (JSON or MessagePack) reaches WebSocket subscribers (raw
//! clients and the SDK) as ordinary events; the answer counts the
//! receivers; each bad request gets its own status and error code, and the
//! broker keeps serving.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use herald_protocol::SUBPROTOCOL;
use herald_tests::sdk::{client, forward, recv};
use herald_tests::{
    HttpResponse, RawClient, TIMEOUT, TestBroker, connect_raw, emit, http_get, http_post,
    http_request, http_request_bytes, refused, seq_payload, short_grace, start_broker,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

const JSON: Option<&str> = Some("application/json");
const MSGPACK: Option<&str> = Some("application/msgpack");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
}

fn order_json(id: u64, item: &str) -> Vec<u8> {
    format!(r#"{{"id":{id},"item":"{item}"}}"#).into_bytes()
}

/// The `receivers` of a successful publish; fails on any other answer.
fn receivers(response: &HttpResponse) -> u64 {
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{response:?}"
    );
    response
        .body
        .trim()
        .strip_prefix(r#"{"receivers":"#)
        .and_then(|rest| rest.strip_suffix('}'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("expected {{\"receivers\":N}}, got {response:?}"))
}

/// Checks a refusal: its status, a JSON error body with `code`, and a
/// message containing `mentions`.
fn assert_refused(response: &HttpResponse, status: u16, code: &str, mentions: &str) {
    assert_eq!(response.status, status, "{response:?}");
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{response:?}"
    );
    assert!(response.body.starts_with(r#"{"error":{"#), "{response:?}");
    assert!(
        response.body.contains(&format!(r#""code":"{code}""#)),
        "expected code {code}: {response:?}"
    );
    assert!(
        response.body.contains(mentions),
        "expected the message to mention {mentions:?}: {response:?}"
    );
}

fn decode_order(payload: &[u8]) -> Order {
    rmp_serde::from_slice(payload).expect("the payload is a MessagePack Order")
}

async fn subscriber(broker: &TestBroker, ns: &str, ev: &str) -> RawClient {
    let mut client = broker.client().await;
    client.subscribe(ns, ev, None, false).await;
    client
}

#[tokio::test]
async fn json_posted_to_the_default_namespace_reaches_websocket_subscribers() {
    let broker = start_broker(|_| {}).await;
    let mut first = subscriber(&broker, "/", "order.created").await;
    let mut second = subscriber(&broker, "/", "order.created").await;
    let mut elsewhere = subscriber(&broker, "/orders", "order.created").await;

    let response = broker
        .post("/v1/emit/order.created", JSON, &order_json(7, "lamp"))
        .await;
    assert_eq!(receivers(&response), 2);

    for client in [&mut first, &mut second] {
        let event = client.expect_event().await;
        assert_eq!(event.namespace, "/");
        assert_eq!(event.event, "order.created");
        assert_eq!(event.room, None);
        assert_eq!(event.ack, None);
        assert_eq!(
            decode_order(&event.payload),
            Order {
                id: 7,
                item: "lamp".into()
            }
        );
        client.assert_no_event().await;
    }
    elsewhere.assert_no_event().await;
    let stats = broker.stats();
    assert_eq!((stats.events_received, stats.events_delivered), (1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_handlers_decode_json_posted_to_their_namespace() {
    let broker = start_broker(short_grace).await;
    let sdk = client(&broker, "http-api-test").await;
    let (tx, mut rx) = mpsc::channel(16);
    sdk.of("/orders")
        .on("order.created", forward::<Order>(&tx))
        .await
        .expect("subscribed");

    // The namespace as it is, and percent-encoded as most clients send it.
    for (id, query) in [(1, "namespace=/orders"), (2, "namespace=%2Forders")] {
        let response = broker
            .post(
                &format!("/v1/emit/order.created?{query}"),
                Some("application/json; charset=utf-8"),
                &order_json(id, "book"),
            )
            .await;
        assert_eq!(receivers(&response), 1, "{query}");
        assert_eq!(
            recv(&mut rx).await,
            Order {
                id,
                item: "book".into()
            }
        );
    }
    sdk.close().await.expect("close");
    broker.shutdown().await;
}

#[tokio::test]
async fn msgpack_bodies_are_delivered_byte_for_byte() {
    let broker = start_broker(|_| {}).await;
    let mut sub = subscriber(&broker, "/shop", "order.created").await;
    let order = Order {
        id: 9,
        item: "chair".into(),
    };
    let named = rmp_serde::to_vec_named(&order).unwrap();
    let tuple = rmp_serde::to_vec(&(1u8, "two", [3.5f64])).unwrap();
    for body in [&named, &tuple] {
        for content_type in [MSGPACK, Some("application/x-msgpack")] {
            let response = broker
                .post("/v1/emit/order.created?namespace=/shop", content_type, body)
                .await;
            assert_eq!(receivers(&response), 1);
            let event = sub.expect_event().await;
            assert_eq!(&event.payload[..], &body[..]);
            if body == &named {
                assert_eq!(decode_order(&event.payload), order);
            }
        }
    }
    sub.assert_no_event().await;
}

#[tokio::test]
async fn the_answer_counts_receivers_like_the_websocket_ack() {
    let broker = start_broker(|_| {}).await;
    let post = || broker.post("/v1/emit/job.ready?namespace=/jobs", JSON, b"null");
    assert_eq!(receivers(&post().await), 0, "nobody subscribed");

    let mut plain = vec![subscriber(&broker, "/jobs", "job.ready").await];
    assert_eq!(receivers(&post().await), 1);
    plain[0].expect_event().await;

    plain.push(subscriber(&broker, "/jobs", "job.ready").await);
    plain.push(subscriber(&broker, "/jobs", "job.*").await);
    let mut workers = Vec::new();
    for _ in 0..2 {
        let mut worker = broker.client().await;
        worker
            .subscribe("/jobs", "job.ready", Some("workers"), false)
            .await;
        workers.push(worker);
    }
    // Three plain subscribers, plus one delivery for the queue group.
    assert_eq!(receivers(&post().await), 4);
    for client in &mut plain {
        assert_eq!(client.drain_events().await.len(), 1);
    }
    let mut group_events = 0;
    for worker in &mut workers {
        group_events += worker.drain_events().await.len();
    }
    assert_eq!(group_events, 1, "one member of the group gets the event");
    let stats = broker.stats();
    assert_eq!(stats.events_received, 3);
    assert_eq!(stats.events_delivered, 5);
}

#[tokio::test]
async fn a_room_parameter_reaches_only_the_members_of_that_room() {
    let broker = start_broker(|_| {}).await;
    let mut member = subscriber(&broker, "/chat", "msg.new").await;
    member.join("/chat", "eu west").await;
    let mut outsider = subscriber(&broker, "/chat", "msg.new").await;
    outsider.join("/chat", "us").await;

    let response = broker
        .post(
            "/v1/emit/msg.new?namespace=/chat&room=eu%20west",
            JSON,
            br#""hello""#,
        )
        .await;
    assert_eq!(receivers(&response), 1);
    let event = member.expect_event().await;
    assert_eq!(event.room.as_deref(), Some("eu west"));
    let text: String = rmp_serde::from_slice(&event.payload).unwrap();
    assert_eq!(text, "hello");
    outsider.assert_no_event().await;

    let empty_room = broker
        .post("/v1/emit/msg.new?namespace=/chat&room=nobody", JSON, b"1")
        .await;
    assert_eq!(receivers(&empty_room), 0);
    member.assert_no_event().await;
}

#[tokio::test]
async fn pattern_subscribers_receive_posted_events_once_per_connection() {
    let broker = start_broker(|_| {}).await;
    let mut both = subscriber(&broker, "/", "order.*").await;
    both.subscribe("/", "order.>", None, false).await;
    let mut rest = subscriber(&broker, "/", "order.>").await;
    let mut other = subscriber(&broker, "/", "invoice.*").await;

    let response = broker
        .post("/v1/emit/order.created", JSON, br#"{"n":1}"#)
        .await;
    assert_eq!(receivers(&response), 2);
    for client in [&mut both, &mut rest] {
        let events = client.drain_events().await;
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].event, "order.created");
    }
    other.assert_no_event().await;
}

#[tokio::test]
async fn each_bad_request_gets_its_status_and_error_code() {
    let broker = start_broker(|_| {}).await;
    let mut sub = subscriber(&broker, "/", ">").await;
    let mut trailing = rmp_serde::to_vec(&[1u8, 2]).unwrap();
    trailing.push(0xc0);
    let post = |path: &'static str, content_type: Option<&'static str>, body: &[u8]| {
        let body = body.to_vec();
        let broker = &broker;
        async move { broker.post(path, content_type, &body).await }
    };

    // Bodies.
    let r = post("/v1/emit/a.b", JSON, b"{\"id\":").await;
    assert_refused(&r, 400, "invalid_json", "not valid JSON");
    let r = post("/v1/emit/a.b", None, b"").await;
    assert_refused(&r, 400, "invalid_json", "not valid JSON");
    let r = post("/v1/emit/a.b", MSGPACK, &trailing).await;
    assert_refused(&r, 400, "invalid_msgpack", "trailing byte");
    let r = post("/v1/emit/a.b", MSGPACK, &[0x92, 0x01]).await;
    assert_refused(&r, 400, "invalid_msgpack", "MessagePack");
    let r = post("/v1/emit/a.b", MSGPACK, &[0xc1]).await;
    assert_refused(&r, 400, "invalid_msgpack", "MessagePack");
    // Names: namespace, event, room.
    let r = post("/v1/emit/a.b?namespace=orders", JSON, b"1").await;
    assert_refused(&r, 400, "invalid_name", "invalid namespace");
    let r = post("/v1/emit/order.*", JSON, b"1").await;
    assert_refused(&r, 400, "invalid_name", "invalid event name");
    let r = post("/v1/emit/", JSON, b"1").await;
    assert_refused(&r, 400, "invalid_name", "invalid event name");
    let r = post("/v1/emit/a.b?room=", JSON, b"1").await;
    assert_refused(&r, 400, "invalid_name", "invalid room");
    let r = post("/v1/emit/a.b?room=%07", JSON, b"1").await;
    assert_refused(&r, 400, "invalid_name", "invalid room");
    // The query string.
    let r = post("/v1/emit/a.b?ack=1", JSON, b"1").await;
    assert_refused(&r, 400, "invalid_query", "request/reply needs a WebSocket");
    let r = post("/v1/emit/a.b?room=x&room=y", JSON, b"1").await;
    assert_refused(&r, 400, "invalid_query", "more than once");
    // Content types.
    let r = post("/v1/emit/a.b", Some("text/plain"), b"1").await;
    assert_refused(&r, 415, "unsupported_media_type", "text/plain");
    let form = Some("application/x-www-form-urlencoded");
    let r = post("/v1/emit/a.b", form, b"a=1").await;
    let hint = "application/json or application/msgpack";
    assert_refused(&r, 415, "unsupported_media_type", hint);

    // A body that cannot be read: malformed chunked encoding.
    let r = http_request(
        broker.addr(),
        "POST /v1/emit/a.b HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n1\r\n0\r\n\r\n",
    )
    .await;
    assert_refused(&r, 400, "bad_body", "could not be read");

    for method in ["GET", "PUT", "DELETE"] {
        let response = http_request(
            broker.addr(),
            &format!(
                "{method} /v1/emit/a.b HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\
                 Connection: close\r\n\r\n"
            ),
        )
        .await;
        assert_refused(&response, 405, "method_not_allowed", "use POST");
        assert!(
            response.head.to_ascii_lowercase().contains("allow: post"),
            "{response:?}"
        );
    }

    sub.assert_no_event().await;
    let stats = broker.stats();
    assert_eq!(stats.events_received, 0, "nothing was routed");
    // Fifteen refused publishes; the 405s are refused by path routing,
    // before any publish.
    assert_eq!(
        (stats.http_publishes, stats.http_publishes_refused),
        (0, 15)
    );
    let good = broker.post("/v1/emit/a.b", JSON, b"1").await;
    assert_eq!(receivers(&good), 1, "the broker still publishes");
    broker.assert_healthy().await;
}

#[tokio::test]
async fn oversize_bodies_are_refused_with_413_and_the_broker_keeps_serving() {
    const LIMIT: usize = 1024;
    let broker = start_broker(|s| s.limits.max_payload_bytes = LIMIT).await;
    let mut sub = subscriber(&broker, "/", "big").await;
    let addr = broker.addr();

    // A Content-Length over the limit is refused before the body is sent.
    let announced = http_request(
        addr,
        &format!(
            "POST /v1/emit/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/msgpack\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            LIMIT + 1
        ),
    )
    .await;
    assert_refused(
        &announced,
        413,
        "payload_too_large",
        "limits.max_payload_bytes = 1024",
    );

    // A chunked body is cut off once it passes the limit.
    let chunk = vec![b'7'; 700];
    let mut chunked =
        b"POST /v1/emit/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
        Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..2 {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(&chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let cut = http_request_bytes(addr, &chunked).await;
    assert_refused(
        &cut,
        413,
        "payload_too_large",
        "limits.max_payload_bytes = 1024",
    );

    // JSON under the limit whose MessagePack form is over it: 1.5 takes 3
    // bytes in JSON and 9 as a MessagePack float.
    let floats = format!("[{}]", vec!["1.5"; 200].join(","));
    assert!(floats.len() <= LIMIT);
    let grown = broker.post("/v1/emit/big", JSON, floats.as_bytes()).await;
    assert_refused(&grown, 413, "payload_too_large", "as MessagePack");

    sub.assert_no_event().await;
    assert_eq!(broker.stats().events_received, 0);

    // Exactly the limit is fine: a MessagePack bin 16 (3 header bytes).
    let mut at_limit = vec![0xc5];
    at_limit.extend_from_slice(&u16::try_from(LIMIT - 3).unwrap().to_be_bytes());
    at_limit.extend_from_slice(&seq_payload(1, LIMIT - 3));
    assert_eq!(at_limit.len(), LIMIT);
    assert_eq!(
        receivers(&broker.post("/v1/emit/big", MSGPACK, &at_limit).await),
        1
    );
    assert_eq!(&sub.expect_event().await.payload[..], &at_limit[..]);
    broker.assert_healthy().await;
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let broker = start_broker(|s| s.server.handshake_timeout = Duration::from_millis(500)).await;
    // Ten bytes announced, three sent, and the connection kept open.
    let response = http_request(
        broker.addr(),
        "POST /v1/emit/slow HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 10\r\nConnection: close\r\n\r\n[1,",
    )
    .await;
    assert_refused(&response, 408, "body_timeout", "server.handshake_timeout");
    // A body sent at once is fine.
    let prompt = broker.post("/v1/emit/slow", JSON, b"[1,2]").await;
    assert_eq!(receivers(&prompt), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_while_the_broker_shuts_down_is_refused_with_503() {
    const EVENTS: u64 = 300;
    let broker = start_broker(|s| {
        s.delivery.queue_capacity = 1_000;
        // Room for the whole backlog (19 MiB).
        s.delivery.max_queued_bytes = 64 << 20;
        s.server.shutdown_grace = Duration::from_secs(5);
    })
    .await;
    let addr = broker.addr();
    // A subscriber that does not read until shutdown holds the shutdown
    // open (its queued events are still being written).
    let mut backlog = subscriber(&broker, "/bye", "big").await;
    let mut publisher = broker.client().await;
    for seq in 0..EVENTS {
        let n = publisher
            .emit_acked(emit("/bye", "big", seq_payload(seq, 64 * 1024)))
            .await;
        assert_eq!(n, 1);
    }
    let shutdown = tokio::spawn(broker.into_handle().shutdown());
    // Readiness goes false at once; poll it (bounded), as nothing
    // announces it.
    let mut ready = 200;
    for _ in 0..500 {
        ready = http_get(addr, "/readyz").await.status;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(ready, 503, "/readyz during shutdown");
    assert!(!shutdown.is_finished(), "the backlog holds the shutdown");
    let response = http_post(addr, "/v1/emit/big?namespace=/bye", JSON, b"1").await;
    assert_refused(&response, 503, "shutting_down", "shutting down");
    // WebSocket upgrades are refused the same way, for comparison.
    let upgrade = refused(connect_raw(addr, Some(SUBPROTOCOL)).await);
    assert_eq!(upgrade.status, 503);

    let closing = backlog.read_until_close().await;
    assert_eq!(closing.envelopes.len(), EVENTS as usize);
    let drained = tokio::time::timeout(TIMEOUT * 2, shutdown)
        .await
        .expect("shutdown finishes once the backlog is read")
        .unwrap();
    assert!(drained);
    publisher.close().await;
}
