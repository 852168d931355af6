//! Exact names and patterns (`*` one token, `>` the rest), and one
//! delivery per connection when several of its subscriptions match.

#![allow(clippy::unwrap_used)]

use herald_tests::{RawClient, emit, start_broker};

async fn events_of(client: &mut RawClient) -> Vec<String> {
    client
        .drain_events()
        .await
        .into_iter()
        .map(|event| event.event)
        .collect()
}

#[tokio::test]
async fn exact_and_wildcard_subscriptions_match_as_documented() {
    let broker = start_broker(|_| {}).await;
    let ns = "/shop";
    let mut exact = broker.client().await;
    exact.subscribe(ns, "order.created", None, false).await;
    let mut one = broker.client().await;
    one.subscribe(ns, "order.*", None, false).await;
    let mut rest = broker.client().await;
    rest.subscribe(ns, "order.>", None, false).await;
    let mut first_wild = broker.client().await;
    first_wild.subscribe(ns, "*.created", None, false).await;
    let mut everything = broker.client().await;
    everything.subscribe(ns, ">", None, false).await;
    let mut other_ns = broker.client().await;
    other_ns.subscribe("/other", "order.*", None, false).await;
    let mut publisher = broker.client().await;

    // order.created: exact, order.*, order.>, *.created, >
    assert_eq!(
        publisher
            .emit_acked(emit(ns, "order.created", &b"1"[..]))
            .await,
        5
    );
    // order.eu.created: order.> and > only (`*` is exactly one token).
    assert_eq!(
        publisher
            .emit_acked(emit(ns, "order.eu.created", &b"2"[..]))
            .await,
        2
    );
    // order: `order.>` needs at least one more token; `>` matches it.
    assert_eq!(publisher.emit_acked(emit(ns, "order", &b"3"[..])).await, 1);
    // invoice.created: *.created and >
    assert_eq!(
        publisher
            .emit_acked(emit(ns, "invoice.created", &b"4"[..]))
            .await,
        2
    );

    assert_eq!(events_of(&mut exact).await, ["order.created"]);
    assert_eq!(events_of(&mut one).await, ["order.created"]);
    assert_eq!(
        events_of(&mut rest).await,
        ["order.created", "order.eu.created"]
    );
    assert_eq!(
        events_of(&mut first_wild).await,
        ["order.created", "invoice.created"]
    );
    assert_eq!(
        events_of(&mut everything).await,
        [
            "order.created",
            "order.eu.created",
            "order",
            "invoice.created"
        ]
    );
    other_ns.assert_no_event().await;
}

#[tokio::test]
async fn a_connection_matching_several_ways_gets_one_copy() {
    let broker = start_broker(|_| {}).await;
    let ns = "/dedup";
    let mut many = broker.client().await;
    for target in ["order.created", "order.*", "order.>", "*.created", ">"] {
        many.subscribe(ns, target, None, false).await;
    }
    let mut single = broker.client().await;
    single.subscribe(ns, "order.created", None, false).await;
    let mut publisher = broker.client().await;

    for n in 0..3u8 {
        let receivers = publisher
            .emit_acked(emit(ns, "order.created", vec![n]))
            .await;
        assert_eq!(receivers, 2, "one per connection, not per subscription");
    }
    let got = many.drain_events().await;
    let payloads: Vec<u8> = got.iter().map(|event| event.payload[0]).collect();
    assert_eq!(payloads, [0, 1, 2]);
    assert_eq!(single.drain_events().await.len(), 3);

    // Dropping some of the overlapping subscriptions keeps one copy.
    many.unsubscribe(ns, "order.created", None, false).await;
    many.unsubscribe(ns, ">", None, false).await;
    assert_eq!(
        publisher
            .emit_acked(emit(ns, "order.created", &b"x"[..]))
            .await,
        2
    );
    assert_eq!(many.drain_events().await.len(), 1);
    assert_eq!(broker.stats().subscriptions, 4);
}

#[tokio::test]
async fn subscribing_twice_to_the_same_target_is_idempotent() {
    let broker = start_broker(|_| {}).await;
    let mut subscriber = broker.client().await;
    subscriber.subscribe("/idem", "a.b", None, false).await;
    subscriber.subscribe("/idem", "a.b", None, false).await;
    assert_eq!(broker.stats().subscriptions, 1);
    let mut publisher = broker.client().await;
    assert_eq!(
        publisher.emit_acked(emit("/idem", "a.b", &b"x"[..])).await,
        1
    );
    assert_eq!(subscriber.drain_events().await.len(), 1);
    // One unsubscribe removes it.
    subscriber.unsubscribe("/idem", "a.b", None, false).await;
    assert_eq!(
        publisher.emit_acked(emit("/idem", "a.b", &b"y"[..])).await,
        0
    );
}
