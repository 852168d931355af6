//! The example services together against a real broker: two `billing`
//! copies (a queue group), one `notifier` and one `orders` run as child
//! processes (the example binaries cargo built for this test) against a
//! broker started in-process on a real socket.
//!
//! Checks: every order is billed exactly once across both billing copies,
//! and both take part (the broker hands a queue group's events round
//! robin); the notifier sees `order.created` and `order.billed` for every
//! order; orders gets its invoice by request/reply. Services talk to the
//! test only through their stdout lines ([`Line`]); every read is bounded
//! and children are killed when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::BTreeMap;

use common::{Raw, Service, TIMEOUT, Tagged, next_line, wait_ready};
use herald_examples::{Line, ORDER_BILLED, ORDER_CREATED};
use herald_tests::start_broker;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Orders the test places.
const ORDERS: u64 = 50;

/// Reads `lines` until `done` holds for everything read so far, then
/// stops the services with SIGTERM and reads the rest (so a late
/// duplicate is seen too). Returns every line read.
async fn collect_then_stop(
    lines: &mut mpsc::Receiver<Raw>,
    services: &mut [Service],
    waiting_for: &str,
    done: impl Fn(&[Tagged]) -> bool,
) -> Vec<Tagged> {
    let refs: Vec<&Service> = services.iter().collect();
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    while !done(&seen) {
        match next_line(lines, deadline, waiting_for, &refs).await {
            Some(line) => seen.push(line),
            None => panic!("the services ended while waiting for {waiting_for}"),
        }
    }
    for service in services.iter() {
        service.terminate().await;
    }
    while let Some(line) = next_line(lines, deadline, "the services' last lines", &refs).await {
        seen.push(line);
    }
    for service in services.iter_mut() {
        service.assert_exits_cleanly().await;
    }
    seen
}

/// Order ids and how often each occurs among `ids`.
fn counts(ids: impl Iterator<Item = u64>) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Every order id from 1 to `ORDERS` exactly once.
fn each_order_once() -> BTreeMap<u64, usize> {
    (1..=ORDERS).map(|id| (id, 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_billing_copies_bill_each_order_once_and_the_notifier_sees_every_order_event() {
    let broker = start_broker(|_| {}).await;

    let (billing_tx, mut billing_lines) = mpsc::channel(256);
    let (notifier_tx, mut notifier_lines) = mpsc::channel(256);
    let (orders_tx, mut orders_lines) = mpsc::channel(256);
    let mut billing = vec![
        Service::start("billing", 0, &broker, &[], &billing_tx),
        Service::start("billing", 1, &broker, &[], &billing_tx),
    ];
    let mut notifier = vec![Service::start("notifier", 0, &broker, &[], &notifier_tx)];
    // Each channel closes once its services' stdout ended.
    drop((billing_tx, notifier_tx));
    wait_ready(&mut billing_lines, &billing.iter().collect::<Vec<_>>()).await;
    wait_ready(&mut notifier_lines, &notifier.iter().collect::<Vec<_>>()).await;

    let count = ORDERS.to_string();
    let mut orders = Service::start("orders", 0, &broker, &["--count", &count], &orders_tx);
    drop(orders_tx);
    let mut printed = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while let Some((_, line)) = next_line(&mut orders_lines, deadline, "orders", &[&orders]).await {
        printed.push(line);
    }
    orders.assert_exits_cleanly().await;
    // The invoice comes first (request/reply), then every order, in order.
    let mut expected = vec![Line::Invoice {
        number: "INV-000001".into(),
        order_id: 1,
    }];
    expected.extend((1..=ORDERS).map(|order_id| Line::Created { order_id }));
    assert_eq!(printed, expected);

    let billed = collect_then_stop(&mut billing_lines, &mut billing, "billed lines", |seen| {
        seen.len() >= ORDERS as usize
    })
    .await;
    let billed_ids = billed.iter().map(|(_, line)| match line {
        Line::Billed { order_id } => *order_id,
        other => panic!("billing printed {other:?}"),
    });
    assert_eq!(
        counts(billed_ids),
        each_order_once(),
        "every order billed exactly once"
    );
    for copy in 0..billing.len() {
        assert!(
            billed.iter().any(|(by, _)| *by == copy),
            "billing copy {copy} billed nothing; the queue group should share the orders"
        );
    }

    let notified = collect_then_stop(
        &mut notifier_lines,
        &mut notifier,
        "notifications",
        |seen| seen.len() >= 2 * ORDERS as usize,
    )
    .await;
    for event in [ORDER_CREATED, ORDER_BILLED] {
        let ids = notified.iter().filter_map(|(_, line)| match line {
            Line::Notified {
                event: name,
                order_id,
            } if name == event => Some(*order_id),
            Line::Notified { .. } => None,
            other => panic!("notifier printed {other:?}"),
        });
        assert_eq!(counts(ids), each_order_once(), "{event} notifications");
    }

    broker.shutdown().await;
}
