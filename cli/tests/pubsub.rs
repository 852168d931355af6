//! `herald sub` and `herald pub` against a real broker: delivery, JSON
//! lines, `--count`, patterns, queue groups, rooms, receiver counts.

mod common;

use common::{Running, herald, run};
use herald_tests::start_broker;
use serde_json::json;

/// Starts `herald sub` with `args` and waits for its "subscribed" note.
async fn sub(url: &str, args: &[&str]) -> Running {
    let mut full = vec!["sub"];
    full.extend_from_slice(args);
    Running::started(herald(url, &full), "subscribed").await
}

/// Runs `herald pub` with `args`; returns its stdout line (exit 0 checked).
async fn publish(url: &str, args: &[&str]) -> String {
    let mut full = vec!["pub"];
    full.extend_from_slice(args);
    let done = run(herald(url, &full)).await;
    done.assert_code(0);
    assert_eq!(done.stderr, "", "pub printed on stderr");
    done.stdout.trim_end().to_owned()
}

#[tokio::test]
async fn sub_prints_what_pub_publishes_and_exits_after_count() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let subscriber = sub(&url, &["/orders", "order.created", "--count", "1"]).await;

    let said = publish(
        &url,
        &["/orders", "order.created", r#"{"id":42,"total":19.99}"#],
    )
    .await;
    assert_eq!(said, "published 1 event to 1 receiver");

    let done = subscriber.finish().await;
    done.assert_code(0);
    assert_eq!(
        done.lines(),
        [r#"{"namespace":"/orders","event":"order.created","payload":{"id":42,"total":19.99}}"#]
    );
    assert!(
        done.stderr
            .contains("herald: subscribed to \"order.created\" in /orders"),
        "{done:?}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn count_stops_after_exactly_n_events() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let subscriber = sub(&url, &["/c", "tick", "-n", "2"]).await;

    // All three reach the subscriber's connection; it prints two and exits.
    let said = publish(&url, &["/c", "tick", "[1,2,3]", "--repeat", "3"]).await;
    assert!(said.starts_with("published 3 events to "), "{said}");

    let done = subscriber.finish().await;
    done.assert_code(0);
    assert_eq!(done.json_lines().len(), 2, "{done:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn patterns_report_the_event_name_and_payloads_keep_their_shape() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let subscriber = sub(&url, &["/orders", "order.>", "--count", "2"]).await;

    let payload = r#"{"zeta":{"nested":[1,-2,3.5,null,true,"ünï 🎉"]},"alpha":18446744073709551615,"min":-9223372036854775808,"empty":{},"list":[]}"#;
    publish(&url, &["/orders", "order.eu.created", payload]).await;
    publish(&url, &["/orders", "order.paid", r#""just a string""#]).await;

    let done = subscriber.finish().await;
    done.assert_code(0);
    let lines = done.lines();
    assert_eq!(
        lines[0],
        format!(r#"{{"namespace":"/orders","event":"order.eu.created","payload":{payload}}}"#),
        "the payload comes back byte for byte, keys in order"
    );
    assert_eq!(
        lines[1],
        r#"{"namespace":"/orders","event":"order.paid","payload":"just a string"}"#
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn binary_and_ext_payloads_from_an_sdk_publisher_are_shown_as_json() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let subscriber = sub(&url, &["/raw", "blob", "--count", "1"]).await;

    let client = herald_client::Client::connect(url.as_str())
        .await
        .expect("the SDK connects");
    let payload = rmpv::Value::Map(vec![
        (
            rmpv::Value::from("bin"),
            rmpv::Value::Binary(vec![0, 1, 255]),
        ),
        (rmpv::Value::from(7), rmpv::Value::Ext(3, vec![9, 8])),
        (rmpv::Value::from("f32"), rmpv::Value::F32(0.1)),
        (rmpv::Value::from("nan"), rmpv::Value::F64(f64::NAN)),
    ]);
    let reached = client
        .of("/raw")
        .emit_acked("blob", &payload)
        .await
        .expect("the SDK publishes");
    assert_eq!(reached, 1);

    let done = subscriber.finish().await;
    done.assert_code(0);
    assert_eq!(
        done.lines(),
        [
            r#"{"namespace":"/raw","event":"blob","payload":{"bin":[0,1,255],"7":{"$ext":{"type":3,"data":[9,8]}},"f32":0.1,"nan":"NaN"}}"#
        ]
    );
    client.close().await.expect("the SDK closes");
    broker.shutdown().await;
}

#[tokio::test]
async fn pub_reports_how_many_receivers_it_reached() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();

    let said = publish(&url, &["/count", "ping", "{}"]).await;
    assert_eq!(said, "published 1 event to 0 receivers");

    let mut subscribers = Vec::new();
    for _ in 0..3 {
        subscribers.push(sub(&url, &["/count", "ping", "--count", "2"]).await);
    }
    let said = publish(&url, &["/count", "ping", "{}"]).await;
    assert_eq!(said, "published 1 event to 3 receivers");
    let said = publish(&url, &["/count", "ping", r#"{"again":true}"#]).await;
    assert_eq!(said, "published 1 event to 3 receivers");

    for subscriber in subscribers {
        let done = subscriber.finish().await;
        done.assert_code(0);
        let payloads: Vec<_> = done
            .json_lines()
            .into_iter()
            .map(|l| l["payload"].clone())
            .collect();
        assert_eq!(payloads, [json!({}), json!({"again": true})], "in order");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn repeat_reports_the_total() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let first = sub(&url, &["/rep", "n", "--count", "3"]).await;
    let second = sub(&url, &["/rep", "n", "--count", "3"]).await;

    let said = publish(&url, &["/rep", "n", "7", "--repeat", "3"]).await;
    assert_eq!(said, "published 3 events to 6 receivers in total");

    for subscriber in [first, second] {
        let done = subscriber.finish().await;
        done.assert_code(0);
        assert_eq!(done.json_lines().len(), 3);
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn a_queue_group_gets_each_event_once() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let first = sub(
        &url,
        &["/jobs", "job.*", "--queue", "workers", "--count", "2"],
    )
    .await;
    let second = sub(
        &url,
        &["/jobs", "job.*", "--queue", "workers", "--count", "2"],
    )
    .await;

    for n in 0..4 {
        let said = publish(&url, &["/jobs", "job.run", &format!(r#"{{"n":{n}}}"#)]).await;
        assert_eq!(
            said, "published 1 event to 1 receiver",
            "one member per event"
        );
    }

    let mut seen = Vec::new();
    for member in [first, second] {
        let done = member.finish().await;
        done.assert_code(0);
        let lines = done.json_lines();
        assert_eq!(lines.len(), 2, "round robin: two each; {done:?}");
        seen.extend(lines.iter().map(|line| line["payload"]["n"].clone()));
        assert!(
            done.stderr.contains("(queue group \"workers\")"),
            "{done:?}"
        );
    }
    seen.sort_by_key(|n| n.as_u64());
    assert_eq!(
        seen,
        [json!(0), json!(1), json!(2), json!(3)],
        "each event once"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn rooms_filter_emits_aimed_at_them() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    // A member of room "eu", and a plain subscriber in no room.
    let member = sub(&url, &["/news", "headline", "--room", "eu", "--count", "2"]).await;
    let outsider = sub(&url, &["/news", "headline", "--count", "1"]).await;

    let said = publish(&url, &["/news", "headline", r#""eu only""#, "--room", "eu"]).await;
    assert_eq!(said, "published 1 event to 1 receiver", "only the member");
    let said = publish(&url, &["/news", "headline", r#""nobody""#, "--room", "us"]).await;
    assert_eq!(said, "published 1 event to 0 receivers", "room us is empty");
    let said = publish(&url, &["/news", "headline", r#""everyone""#]).await;
    assert_eq!(said, "published 1 event to 2 receivers", "no room: both");

    let done = member.finish().await;
    done.assert_code(0);
    assert_eq!(
        done.lines(),
        [
            r#"{"namespace":"/news","event":"headline","room":"eu","payload":"eu only"}"#,
            r#"{"namespace":"/news","event":"headline","payload":"everyone"}"#,
        ]
    );
    let done = outsider.finish().await;
    done.assert_code(0);
    assert_eq!(
        done.lines(),
        [r#"{"namespace":"/news","event":"headline","payload":"everyone"}"#]
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn sub_stops_quietly_when_its_reader_goes_away() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let mut subscriber = sub(&url, &["/pipe", "line"]).await;

    publish(&url, &["/pipe", "line", "1"]).await;
    let first = subscriber.next_line().await;
    assert!(first.contains(r#""payload":1"#), "{first}");
    // As `herald sub ... | head -1` does after its first line.
    subscriber.close_stdout();
    publish(&url, &["/pipe", "line", "2"]).await;

    let done = subscriber.finish().await;
    done.assert_code(0);
    assert!(!done.stderr.contains("error"), "{done:?}");
    broker.shutdown().await;
}
