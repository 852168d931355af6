//! `GET /metrics`: valid Prometheus text (every line parsed: `# HELP`,
//! `# TYPE`, `name{labels} value`), naming every documented metric, with
//! values that follow real traffic: connections opened and closed (by
//! reason, slow consumers included), subscriptions, rooms, events
//! received / delivered / dropped, bytes in and out, decode errors, and the
//! request/reply latency histogram.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use herald_config::SlowConsumerPolicy;
use herald_protocol::{CloseReason, ErrorCode};
use herald_tests::{RawClient, TestBroker, emit, http_request, seq_payload, start_broker};
use tokio_tungstenite::tungstenite::Message;

/// Every metric the broker documents, with its Prometheus type.
const FAMILIES: [(&str, &str); 20] = [
    ("herald_connections", "gauge"),
    ("herald_connections_opened_total", "counter"),
    ("herald_connections_refused_total", "counter"),
    ("herald_connections_closed_total", "counter"),
    ("herald_subscriptions", "gauge"),
    ("herald_rooms", "gauge"),
    ("herald_pending_requests", "gauge"),
    ("herald_events_received_total", "counter"),
    ("herald_events_delivered_total", "counter"),
    ("herald_events_dropped_total", "counter"),
    ("herald_bytes_received_total", "counter"),
    ("herald_bytes_sent_total", "counter"),
    ("herald_decode_errors_total", "counter"),
    ("herald_frames_refused_total", "counter"),
    ("herald_errors_sent_total", "counter"),
    ("herald_http_publishes_total", "counter"),
    ("herald_http_publishes_refused_total", "counter"),
    ("herald_requests_total", "counter"),
    ("herald_request_timeouts_total", "counter"),
    ("herald_request_duration_seconds", "histogram"),
];

/// One scrape, parsed and checked line by line.
#[derive(Debug, Default)]
struct Scrape {
    /// `name{labels}` (as written) → value.
    samples: BTreeMap<String, f64>,
    /// Family name → its `# TYPE`.
    types: BTreeMap<String, String>,
    /// Families with a `# HELP` line.
    helps: BTreeSet<String>,
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// Checks `{key="value",...}` (the braces included): label names, quoted
/// values with `\\`, `\"` and `\n` escapes, commas between pairs.
fn check_labels(labels: &str, line: &str) {
    let inner = labels
        .strip_prefix('{')
        .and_then(|l| l.strip_suffix('}'))
        .unwrap_or_else(|| panic!("labels not in braces: {line:?}"));
    let mut rest = inner;
    while !rest.is_empty() {
        let (key, after) = rest
            .split_once("=\"")
            .unwrap_or_else(|| panic!("label without =\"value\": {line:?}"));
        assert!(is_metric_name(key), "bad label name {key:?}: {line:?}");
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => {
                    let escaped = chars.next().map(|(_, c)| c);
                    assert!(
                        matches!(escaped, Some('\\' | '"' | 'n')),
                        "bad escape in {line:?}"
                    );
                }
                Some((i, '"')) => break i,
                Some(_) => {}
                None => panic!("unterminated label value: {line:?}"),
            }
        };
        rest = &after[end + 1..];
        if let Some(more) = rest.strip_prefix(',') {
            rest = more;
        } else {
            assert!(rest.is_empty(), "junk after a label value: {line:?}");
        }
    }
}

/// The family a sample belongs to: its name, or for a histogram series
/// the name without `_bucket` / `_sum` / `_count`.
fn family_of<'a>(name: &'a str, types: &BTreeMap<String, String>) -> &'a str {
    if types.contains_key(name) {
        return name;
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|base| types.get(*base).is_some_and(|t| t == "histogram"))
        .unwrap_or(name)
}

fn parse(text: &str) -> Scrape {
    let mut scrape = Scrape::default();
    let mut names = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("HELP without text: {line:?}"));
            assert!(is_metric_name(name), "bad name in {line:?}");
            assert!(!help.trim().is_empty(), "empty HELP: {line:?}");
            assert!(scrape.helps.insert(name.to_owned()), "two HELPs: {line:?}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest
                .split_once(' ')
                .unwrap_or_else(|| panic!("TYPE without a type: {line:?}"));
            assert!(is_metric_name(name), "bad name in {line:?}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line:?}"
            );
            let previous = scrape.types.insert(name.to_owned(), kind.to_owned());
            assert!(previous.is_none(), "two TYPEs: {line:?}");
        } else {
            assert!(!line.starts_with('#'), "unexpected comment {line:?}");
            let (series, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample without a value: {line:?}"));
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                other => other
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let name = match series.find('{') {
                Some(brace) => {
                    check_labels(&series[brace..], line);
                    &series[..brace]
                }
                None => series,
            };
            assert!(is_metric_name(name), "bad name in {line:?}");
            names.push(name.to_owned());
            let previous = scrape.samples.insert(series.to_owned(), value);
            assert!(previous.is_none(), "the same series twice: {line:?}");
        }
    }
    for name in &names {
        let family = family_of(name, &scrape.types);
        assert!(
            scrape.types.contains_key(family),
            "{name} has no # TYPE line"
        );
        assert!(scrape.helps.contains(family), "{name} has no # HELP line");
    }
    scrape
}

impl Scrape {
    fn value(&self, series: &str) -> f64 {
        match self.samples.get(series) {
            Some(value) => *value,
            None => panic!(
                "no series {series}; the scrape has {:?}",
                self.samples.keys()
            ),
        }
    }

    fn closed(&self, reason: CloseReason) -> f64 {
        self.value(&format!(
            "herald_connections_closed_total{{reason=\"{}\"}}",
            reason.as_str()
        ))
    }
}

async fn scrape(broker: &TestBroker) -> Scrape {
    let response = broker.get("/metrics").await;
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{response:?}"
    );
    parse(&response.body)
}

#[tokio::test]
async fn metrics_are_prometheus_text_naming_every_metric() {
    let broker = start_broker(|_| {}).await;
    let scrape = scrape(&broker).await;
    for (name, kind) in FAMILIES {
        assert_eq!(
            scrape.types.get(name).map(String::as_str),
            Some(kind),
            "{name}"
        );
        assert!(scrape.helps.contains(name), "{name} has no HELP");
    }
    for (name, kind) in FAMILIES {
        if kind != "histogram" && name != "herald_connections_closed_total" {
            assert_eq!(scrape.value(name), 0.0, "{name} on a fresh broker");
        }
    }
    for reason in CloseReason::ALL {
        assert_eq!(scrape.closed(*reason), 0.0);
    }
    assert_eq!(scrape.value("herald_request_duration_seconds_count"), 0.0);
    assert_eq!(
        scrape.value("herald_request_duration_seconds_bucket{le=\"+Inf\"}"),
        0.0
    );

    let post = http_request(
        broker.addr(),
        "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(post.status, 405, "{post:?}");
    assert!(post.body.contains("method_not_allowed"), "{post:?}");
}

#[tokio::test]
async fn connection_event_byte_and_error_metrics_follow_the_traffic() {
    const NS: &str = "/metered";
    const PAYLOAD: usize = 10_000;
    let broker = start_broker(|_| {}).await;
    let mut subscriber = broker.client().await;
    let mut publisher = broker.client().await;
    subscriber.subscribe(NS, "tick", None, false).await;
    subscriber.subscribe(NS, "tock.*", None, false).await;
    subscriber.join(NS, "lobby").await;
    publisher.join(NS, "lobby").await;
    publisher.join(NS, "kitchen").await;

    let before = scrape(&broker).await;
    assert_eq!(before.value("herald_connections"), 2.0);
    assert_eq!(before.value("herald_connections_opened_total"), 2.0);
    assert_eq!(before.value("herald_subscriptions"), 2.0);
    assert_eq!(before.value("herald_rooms"), 2.0);

    let receivers = publisher
        .emit_acked(emit(NS, "tick", seq_payload(1, PAYLOAD)))
        .await;
    assert_eq!(receivers, 1);
    subscriber.expect_event().await;
    let nobody = publisher
        .emit_acked(emit(NS, "nobody.listens", &b"x"[..]))
        .await;
    assert_eq!(nobody, 0);

    let after = scrape(&broker).await;
    assert_eq!(after.value("herald_events_received_total"), 2.0);
    assert_eq!(after.value("herald_events_delivered_total"), 1.0);
    let bytes_in =
        after.value("herald_bytes_received_total") - before.value("herald_bytes_received_total");
    let bytes_out =
        after.value("herald_bytes_sent_total") - before.value("herald_bytes_sent_total");
    assert!(
        bytes_in > PAYLOAD as f64,
        "bytes received grew by {bytes_in}"
    );
    assert!(bytes_out > PAYLOAD as f64, "bytes sent grew by {bytes_out}");
    let stats = broker.stats();
    assert!(after.value("herald_bytes_received_total") <= stats.bytes_received as f64);
    assert!(after.value("herald_bytes_sent_total") <= stats.bytes_sent as f64);

    // A frame that is not MessagePack: a decode error, refused with err.
    publisher
        .send_raw(Message::Binary(Bytes::from_static(&[0xc1, 0x00])))
        .await;
    publisher.expect_error(ErrorCode::BadFrame).await;
    let bad = scrape(&broker).await;
    assert_eq!(bad.value("herald_decode_errors_total"), 1.0);
    assert_eq!(bad.value("herald_frames_refused_total"), 1.0);
    assert_eq!(bad.value("herald_errors_sent_total"), 1.0);

    // A refused upgrade (no subprotocol) is counted too.
    let refused = broker.get("/v1/ws").await;
    assert_eq!(refused.status, 400);
    assert_eq!(
        scrape(&broker)
            .await
            .value("herald_connections_refused_total"),
        1.0
    );

    publisher.close().await;
    broker
        .wait_for_stats("the publisher's close", |s| s.connections_current == 1)
        .await;
    let closed = scrape(&broker).await;
    assert_eq!(closed.value("herald_connections"), 1.0);
    assert_eq!(closed.closed(CloseReason::ClientClosed), 1.0);
    assert_eq!(closed.value("herald_rooms"), 1.0, "only the lobby is left");

    subscriber.close().await;
    broker
        .wait_for_stats("the subscriber's close", |s| s.connections_current == 0)
        .await;
    let empty = scrape(&broker).await;
    assert_eq!(empty.value("herald_connections"), 0.0);
    assert_eq!(empty.value("herald_connections_opened_total"), 2.0);
    assert_eq!(empty.closed(CloseReason::ClientClosed), 2.0);
    assert_eq!(empty.value("herald_subscriptions"), 0.0);
    assert_eq!(empty.value("herald_rooms"), 0.0);
}

#[tokio::test]
async fn http_publishes_are_counted_and_count_as_received_events() {
    let broker = start_broker(|_| {}).await;
    let mut subscriber = broker.client().await;
    subscriber.subscribe("/", "hello", None, false).await;
    let response = broker
        .post("/v1/emit/hello", Some("application/json"), b"\"world\"")
        .await;
    assert_eq!(response.status, 200, "{response:?}");
    subscriber.expect_event().await;
    let refused = broker
        .post("/v1/emit/hello", Some("text/plain"), b"world")
        .await;
    assert_eq!(refused.status, 415, "{refused:?}");
    let scrape = scrape(&broker).await;
    assert_eq!(scrape.value("herald_http_publishes_total"), 1.0);
    assert_eq!(scrape.value("herald_http_publishes_refused_total"), 1.0);
    assert_eq!(scrape.value("herald_events_received_total"), 1.0);
    assert_eq!(scrape.value("herald_events_delivered_total"), 1.0);
}

/// Publishes 64 KiB events to a subscriber that never reads (its queue
/// holds 4 frames) until an emit reaches nobody; returns the broker and
/// both clients (the slow one, the publisher), still open.
async fn overflow(policy: SlowConsumerPolicy) -> (TestBroker, RawClient, RawClient) {
    let broker = start_broker(|s| {
        s.delivery.queue_capacity = 4;
        s.delivery.slow_consumer = policy;
    })
    .await;
    let mut slow = broker.client().await;
    slow.subscribe("/fire", "big", None, false).await;
    let mut publisher = broker.client().await;
    for seq in 0..400 {
        let receivers = publisher
            .emit_acked(emit("/fire", "big", seq_payload(seq, 64 * 1024)))
            .await;
        if receivers == 0 {
            return (broker, slow, publisher);
        }
    }
    panic!("400 events of 64 KiB never filled a 4-frame queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_disconnects_are_counted_by_reason() {
    let (broker, _slow, _publisher) = overflow(SlowConsumerPolicy::Disconnect).await;
    let stats = broker
        .wait_for_stats("the slow consumer's close", |s| {
            s.closed(CloseReason::SlowConsumer) == 1 && s.connections_current == 1
        })
        .await;
    let scrape = scrape(&broker).await;
    assert_eq!(scrape.closed(CloseReason::SlowConsumer), 1.0);
    assert_eq!(scrape.value("herald_connections"), 1.0);
    assert_eq!(scrape.value("herald_events_dropped_total"), 0.0);
    assert_eq!(
        scrape.value("herald_events_delivered_total"),
        stats.events_delivered as f64
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_events_are_counted() {
    let (broker, _slow, _publisher) = overflow(SlowConsumerPolicy::Drop).await;
    let stats = broker.stats();
    assert!(stats.events_dropped >= 1);
    let scrape = scrape(&broker).await;
    assert_eq!(
        scrape.value("herald_events_dropped_total"),
        stats.events_dropped as f64
    );
    assert_eq!(scrape.value("herald_connections"), 2.0, "nobody was closed");
    assert_eq!(scrape.closed(CloseReason::SlowConsumer), 0.0);
}

#[tokio::test]
async fn the_latency_histogram_counts_replies_and_timeouts_are_counted() {
    const NS: &str = "/rpc";
    let broker = start_broker(|_| {}).await;
    let mut responder = broker.client().await;
    responder.subscribe(NS, "math.double", None, true).await;
    let mut requester = broker.client().await;

    requester
        .request(emit(NS, "math.double", &b"21"[..]), 1, Some(5_000))
        .await;
    let handle = responder.expect_event().await.ack.unwrap();
    let waiting = scrape(&broker).await;
    assert_eq!(waiting.value("herald_pending_requests"), 1.0);
    assert_eq!(waiting.value("herald_requests_total"), 1.0);
    assert_eq!(waiting.value("herald_request_duration_seconds_count"), 0.0);
    responder.reply(handle, true, &b"42"[..]).await;
    assert_eq!(requester.expect_reply().await.ack, 1);

    let answered = scrape(&broker).await;
    assert_eq!(answered.value("herald_pending_requests"), 0.0);
    assert_eq!(answered.value("herald_request_duration_seconds_count"), 1.0);
    assert_eq!(
        answered.value("herald_request_duration_seconds_bucket{le=\"+Inf\"}"),
        1.0
    );
    assert_eq!(
        answered.value("herald_request_duration_seconds_bucket{le=\"60\"}"),
        1.0
    );
    assert!(answered.value("herald_request_duration_seconds_sum") > 0.0);

    // A request the responder ignores times out: counted, not timed.
    requester
        .request(emit(NS, "math.double", &b"0"[..]), 2, Some(50))
        .await;
    responder.expect_event().await;
    let error = requester.expect_error(ErrorCode::Timeout).await;
    assert_eq!(error.id, Some(2));
    let timed_out = scrape(&broker).await;
    assert_eq!(timed_out.value("herald_request_timeouts_total"), 1.0);
    assert_eq!(timed_out.value("herald_requests_total"), 2.0);
    assert_eq!(
        timed_out.value("herald_request_duration_seconds_count"),
        1.0
    );
    assert_eq!(timed_out.value("herald_pending_requests"), 0.0);
}

#[test]
fn the_parser_refuses_what_prometheus_would() {
    let bad = [
        "metric_without_value",
        "# TYPE x_total countr\nx_total 1",
        "# TYPE x gauge\nx{a=\"1\" 1",
        "# TYPE x gauge\nx 1",
        "# HELP x help\nx 1",
        "# HELP x help\n# TYPE x gauge\nx one",
    ];
    for text in bad {
        let result = std::panic::catch_unwind(|| parse(text));
        assert!(result.is_err(), "accepted {text:?}");
    }
    let good = parse("# HELP x_total a help\n# TYPE x_total counter\nx_total{r=\"a\\\"b\"} 3\n");
    assert_eq!(good.value("x_total{r=\"a\\\"b\"}"), 3.0);
}
