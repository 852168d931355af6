//! Queue groups: each event reaches exactly one member per group, spread
//! over the members, while plain subscribers beside the group get all.

#![allow(clippy::unwrap_used)]

use herald_tests::{RawClient, emit, payload_seq, seq_payload, start_broker};

const EVENTS: u64 = 300;

/// The sequence numbers of the events that arrived before a barrier,
/// checking that each names `group`.
async fn seqs(client: &mut RawClient, group: Option<&str>) -> Vec<u64> {
    client
        .drain_events()
        .await
        .into_iter()
        .map(|event| {
            assert_eq!(event.group.as_deref(), group);
            payload_seq(&event.payload)
        })
        .collect()
}

fn assert_exactly_once(what: &str, per_member: &[Vec<u64>]) {
    let mut all: Vec<u64> = per_member.iter().flatten().copied().collect();
    all.sort_unstable();
    let expected: Vec<u64> = (0..EVENTS).collect();
    assert_eq!(all, expected, "{what}: every event exactly once");
    for (i, got) in per_member.iter().enumerate() {
        assert!(!got.is_empty(), "{what}: member {i} got nothing");
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "{what}: member {i} got events out of order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_group_gets_each_event_once_spread_over_members() {
    let broker = start_broker(|_| {}).await;
    let ns = "/jobs";
    let mut workers = broker.clients(3).await;
    for worker in &mut workers {
        worker
            .subscribe(ns, "job.run", Some("workers"), false)
            .await;
    }
    let mut auditors = broker.clients(2).await;
    for auditor in &mut auditors {
        auditor.subscribe(ns, "job.run", Some("audit"), false).await;
    }
    let mut plain = broker.client().await;
    plain.subscribe(ns, "job.run", None, false).await;
    let mut publisher = broker.client().await;

    for seq in 0..EVENTS {
        let receivers = publisher
            .emit_acked(emit(ns, "job.run", seq_payload(seq, 16)))
            .await;
        assert_eq!(receivers, 3, "plain + one worker + one auditor");
    }

    let mut per_worker = Vec::new();
    for worker in &mut workers {
        per_worker.push(seqs(worker, Some("workers")).await);
    }
    assert_exactly_once("workers", &per_worker);
    let mut per_auditor = Vec::new();
    for auditor in &mut auditors {
        per_auditor.push(seqs(auditor, Some("audit")).await);
    }
    assert_exactly_once("audit", &per_auditor);
    let all: Vec<u64> = (0..EVENTS).collect();
    assert_eq!(seqs(&mut plain, None).await, all);
}

#[tokio::test]
async fn a_group_spanning_an_exact_name_and_patterns_still_delivers_once() {
    let broker = start_broker(|_| {}).await;
    let ns = "/span";
    let mut members = broker.clients(3).await;
    for (member, target) in members.iter_mut().zip(["job.run", "job.*", "job.>"]) {
        member.subscribe(ns, target, Some("g"), false).await;
    }
    let mut publisher = broker.client().await;
    for seq in 0..EVENTS {
        let receivers = publisher
            .emit_acked(emit(ns, "job.run", seq_payload(seq, 8)))
            .await;
        assert_eq!(receivers, 1);
    }
    let mut per_member = Vec::new();
    for member in &mut members {
        per_member.push(seqs(member, Some("g")).await);
    }
    assert_exactly_once("group g", &per_member);
}

#[tokio::test]
async fn a_member_leaving_the_group_gets_no_more() {
    let broker = start_broker(|_| {}).await;
    let ns = "/leave";
    let mut stayer = broker.client().await;
    stayer.subscribe(ns, "t", Some("g"), false).await;
    let mut leaver = broker.client().await;
    leaver.subscribe(ns, "t", Some("g"), false).await;
    let mut publisher = broker.client().await;

    leaver.unsubscribe(ns, "t", Some("g"), false).await;
    for seq in 0..20 {
        assert_eq!(
            publisher
                .emit_acked(emit(ns, "t", seq_payload(seq, 8)))
                .await,
            1
        );
    }
    assert_eq!(seqs(&mut stayer, Some("g")).await.len(), 20);
    leaver.assert_no_event().await;

    // The last member gone, the group is gone.
    stayer.close().await;
    broker
        .wait_for_stats("the last member to disconnect", |s| s.subscriptions == 0)
        .await;
    assert_eq!(publisher.emit_acked(emit(ns, "t", &b"x"[..])).await, 0);
}
