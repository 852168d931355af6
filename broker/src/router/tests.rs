//! Router unit tests over real outboxes (bounded channels), no sockets.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use herald_config::SlowConsumerPolicy;
use herald_protocol::envelope::{Emit, Reply};
use herald_protocol::{CloseReason, Envelope, ErrorCode, Pattern, decode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Router, SubKey};
use crate::frame;
use crate::outbox::{ConnId, ConnShared, Outbox};
use crate::stats::Stats;

struct Conn {
    outbox: Outbox,
    rx: mpsc::Receiver<Bytes>,
}

fn conn(id: u64, capacity: usize, policy: SlowConsumerPolicy) -> Conn {
    let (tx, rx) = mpsc::channel(capacity);
    let outbox = ConnShared::new(
        ConnId(id),
        tx,
        policy,
        CancellationToken::new(),
        Arc::new(Stats::default()),
    );
    Conn { outbox, rx }
}

fn key(pattern: &str, group: Option<&str>) -> SubKey {
    SubKey {
        namespace: "/".into(),
        pattern: Pattern::parse(pattern).expect("valid pattern"),
        group: group.map(Arc::from),
        responder: false,
    }
}

fn emit(event: &str) -> Emit {
    Emit {
        namespace: "/".into(),
        event: event.into(),
        payload: Bytes::from_static(b"\x01"),
        ..Emit::default()
    }
}

fn received(conn: &mut Conn) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    while let Ok(frame) = conn.rx.try_recv() {
        match decode(&frame::payload(&frame)) {
            Ok(Envelope::Event(e)) => out.push((e.event, e.group)),
            other => panic!("unexpected frame {other:?}"),
        }
    }
    out
}

fn router() -> Router {
    Router::new(Arc::new(Stats::default()))
}

#[test]
fn exact_and_pattern_deliver_once_per_connection() {
    let router = router();
    let mut a = conn(1, 16, SlowConsumerPolicy::Disconnect);
    let mut b = conn(2, 16, SlowConsumerPolicy::Disconnect);
    router.subscribe(&a.outbox, &key("order.created", None));
    router.subscribe(&a.outbox, &key("order.*", None));
    router.subscribe(&b.outbox, &key("order.>", None));
    let sender = conn(3, 16, SlowConsumerPolicy::Disconnect);
    assert_eq!(router.emit(&sender.outbox, &emit("order.created")), 2);
    assert_eq!(received(&mut a), vec![("order.created".into(), None)]);
    assert_eq!(received(&mut b), vec![("order.created".into(), None)]);
    assert_eq!(router.emit(&sender.outbox, &emit("order.eu.created")), 1);
    assert_eq!(received(&mut a), vec![]);
    assert_eq!(received(&mut b).len(), 1);
}

#[test]
fn queue_group_gets_each_event_once_spread_over_members() {
    let router = router();
    let mut members: Vec<Conn> = (1..=3)
        .map(|i| conn(i, 64, SlowConsumerPolicy::Disconnect))
        .collect();
    for m in &members {
        router.subscribe(&m.outbox, &key("job", Some("workers")));
    }
    // A member subscribed through a pattern in the same group counts once.
    router.subscribe(&members[0].outbox, &key("*", Some("other")));
    router.subscribe(&members[1].outbox, &key("*", Some("workers")));
    let sender = conn(9, 1, SlowConsumerPolicy::Disconnect);
    for _ in 0..30 {
        assert_eq!(router.emit(&sender.outbox, &emit("job")), 2);
    }
    let mut other = 0;
    let counts: Vec<usize> = members
        .iter_mut()
        .map(|m| {
            let got = received(m);
            other += got
                .iter()
                .filter(|(_, g)| g.as_deref() == Some("other"))
                .count();
            got.iter()
                .filter(|(_, g)| g.as_deref() == Some("workers"))
                .count()
        })
        .collect();
    assert_eq!(other, 30, "the other group gets every event too");
    assert_eq!(counts.iter().sum::<usize>(), 30);
    assert!(counts.iter().all(|c| *c > 0), "spread: {counts:?}");
}

#[test]
fn rooms_and_exclude_self_filter_receivers() {
    let router = router();
    let mut a = conn(1, 16, SlowConsumerPolicy::Disconnect);
    let mut b = conn(2, 16, SlowConsumerPolicy::Disconnect);
    for c in [&a, &b] {
        router.subscribe(&c.outbox, &key("chat", None));
    }
    router
        .join(&a.outbox, "/", "eu", usize::MAX)
        .expect("joins");
    let to_room = Emit {
        room: Some("eu".into()),
        ..emit("chat")
    };
    assert_eq!(router.emit(&b.outbox, &to_room), 1);
    assert_eq!(received(&mut a).len(), 1);
    assert_eq!(received(&mut b).len(), 0);
    let not_self = Emit {
        exclude_self: true,
        ..emit("chat")
    };
    assert_eq!(router.emit(&a.outbox, &not_self), 1);
    assert_eq!(received(&mut a).len(), 0);
    assert_eq!(received(&mut b).len(), 1);
    router.leave(&a.outbox, "/", "eu");
    assert_eq!(router.emit(&b.outbox, &to_room), 0);
    assert_eq!(router.room_count(), 0);
}

#[test]
fn unsubscribe_removes_empty_entries() {
    let router = router();
    let a = conn(1, 16, SlowConsumerPolicy::Disconnect);
    for k in [key("a.b", None), key("a.*", Some("g")), key("a.>", None)] {
        router.subscribe(&a.outbox, &k);
        assert_eq!(router.events.targets(), 1);
        router.unsubscribe(&a.outbox, &k);
        assert_eq!(router.events.targets(), 0);
    }
}

#[test]
fn slow_consumer_disconnect_policy_closes_only_the_slow_one() {
    let router = router();
    let slow = conn(1, 2, SlowConsumerPolicy::Disconnect);
    let mut fast = conn(2, 64, SlowConsumerPolicy::Disconnect);
    router.subscribe(&slow.outbox, &key("tick", None));
    router.subscribe(&fast.outbox, &key("tick", None));
    let sender = conn(3, 1, SlowConsumerPolicy::Disconnect);
    for _ in 0..10 {
        router.emit(&sender.outbox, &emit("tick"));
    }
    assert!(slow.outbox.close.is_cancelled());
    assert_eq!(slow.outbox.close_reason(), CloseReason::SlowConsumer);
    assert!(!fast.outbox.close.is_cancelled());
    assert_eq!(received(&mut fast).len(), 10);
}

#[test]
fn slow_consumer_drop_policy_counts() {
    let router = router();
    let slow = conn(1, 2, SlowConsumerPolicy::Drop);
    router.subscribe(&slow.outbox, &key("tick", None));
    let sender = conn(3, 1, SlowConsumerPolicy::Drop);
    let reached: u64 = (0..10)
        .map(|_| router.emit(&sender.outbox, &emit("tick")))
        .sum();
    assert_eq!(reached, 2);
    assert!(!slow.outbox.close.is_cancelled());
    assert_eq!(
        slow.outbox
            .unreported_drops
            .load(std::sync::atomic::Ordering::Relaxed),
        8
    );
}

#[tokio::test]
async fn request_goes_to_one_responder_and_reply_returns() {
    let router = router();
    let mut requester = conn(1, 16, SlowConsumerPolicy::Disconnect);
    let err = router
        .request(
            &requester.outbox,
            &emit("rpc"),
            7,
            std::time::Duration::from_secs(5),
        )
        .expect_err("no responders");
    assert_eq!(err.code, herald_protocol::ErrorCode::NoResponders);
    let mut r1 = conn(2, 16, SlowConsumerPolicy::Disconnect);
    let mut r2 = conn(3, 16, SlowConsumerPolicy::Disconnect);
    for r in [&r1, &r2] {
        router.subscribe(
            &r.outbox,
            &SubKey {
                responder: true,
                ..key("rpc", None)
            },
        );
    }
    router
        .request(
            &requester.outbox,
            &emit("rpc"),
            7,
            std::time::Duration::from_secs(5),
        )
        .expect("routed");
    let mut frames: Vec<Bytes> = Vec::new();
    for r in [&mut r1, &mut r2] {
        while let Ok(f) = r.rx.try_recv() {
            frames.push(f);
        }
    }
    assert_eq!(frames.len(), 1, "exactly one responder");
    let Ok(Envelope::Event(event)) = decode(&frame::payload(&frames[0])) else {
        panic!("not an event")
    };
    let handle = event.ack.expect("request carries a handle");
    // Only the chosen responder may answer, once.
    let reply = herald_protocol::envelope::Reply {
        ack: handle,
        ok: true,
        payload: Bytes::from_static(b"\x02"),
        args: false,
    };
    assert!(router.reply(ConnId(99), reply.clone()).is_err());
    let chosen = if r1.rx.is_empty() && r2.rx.is_empty() {
        // Both drained above; find who got it by trying both ids.
        [ConnId(2), ConnId(3)]
            .into_iter()
            .find(|id| router.reply(*id, reply.clone()).is_ok())
    } else {
        None
    };
    assert!(chosen.is_some());
    assert!(router.reply(chosen.expect("answered"), reply).is_err());
    let Ok(Envelope::Reply(back)) =
        decode(&frame::payload(&requester.rx.try_recv().expect("reply")))
    else {
        panic!("not a reply")
    };
    assert_eq!(back.ack, 7);
    assert_eq!(router.pending_requests(), 0);
}

fn responder_key(event: &str) -> SubKey {
    SubKey {
        responder: true,
        ..key(event, None)
    }
}

/// The handles of the requests waiting in a responder's queue.
fn handles(conn: &mut Conn) -> Vec<u64> {
    std::iter::from_fn(|| conn.rx.try_recv().ok())
        .map(|frame| match decode(&frame::payload(&frame)) {
            Ok(Envelope::Event(event)) => event.ack.expect("a request carries a handle"),
            other => panic!("unexpected frame {other:?}"),
        })
        .collect()
}

/// The answers waiting in a requester's queue: (ack, error code or none
/// for a reply, error message).
fn answers(conn: &mut Conn) -> Vec<(u64, Option<ErrorCode>, String)> {
    std::iter::from_fn(|| conn.rx.try_recv().ok())
        .map(|frame| match decode(&frame::payload(&frame)) {
            Ok(Envelope::Reply(reply)) => (reply.ack, None, String::new()),
            Ok(Envelope::Error(error)) => (
                error.id.expect("an answer names its request"),
                Some(error.code),
                error.message,
            ),
            other => panic!("unexpected frame {other:?}"),
        })
        .collect()
}

fn reply_to(handle: u64) -> Reply {
    Reply {
        ack: handle,
        ok: true,
        payload: Bytes::from_static(b"\x02"),
        args: false,
    }
}

/// A router with one responder on `rpc` and one request (ack 7) routed to
/// it: the router, the requester, the responder and the request's handle.
fn one_request(timeout: Duration) -> (Router, Conn, Conn, u64) {
    let router = router();
    let requester = conn(1, 16, SlowConsumerPolicy::Disconnect);
    let mut responder = conn(2, 16, SlowConsumerPolicy::Disconnect);
    router.subscribe(&responder.outbox, &responder_key("rpc"));
    router
        .request(&requester.outbox, &emit("rpc"), 7, timeout)
        .expect("routed");
    let [handle] = handles(&mut responder)[..] else {
        panic!("one request")
    };
    (router, requester, responder, handle)
}

#[tokio::test]
async fn a_reply_removes_the_requests_deadline_and_index_entry() {
    let (router, mut requester, responder, handle) = one_request(Duration::from_secs(30));
    assert_eq!(router.requests.armed(), 1);
    assert_eq!(router.requests.responders(), 1);
    router
        .reply(responder.outbox.id, reply_to(handle))
        .expect("answered");
    assert_eq!(router.pending_requests(), 0);
    assert_eq!(router.requests.armed(), 0, "nothing left to fire");
    assert_eq!(router.requests.responders(), 0);
    assert_eq!(answers(&mut requester), vec![(7, None, String::new())]);
}

/// The next frame queued to `conn`, which must be an error; fails after
/// 10 s (far beyond any timeout the tests set) instead of hanging.
async fn next_error(conn: &mut Conn) -> herald_protocol::envelope::ErrorBody {
    let frame = tokio::time::timeout(Duration::from_secs(10), conn.rx.recv())
        .await
        .expect("an answer arrives")
        .expect("the queue is open");
    match decode(&frame::payload(&frame)) {
        Ok(Envelope::Error(error)) => error,
        other => panic!("not an error: {other:?}"),
    }
}

#[tokio::test]
async fn a_timeout_answers_once_and_a_late_reply_is_refused() {
    let (router, mut requester, responder, handle) = one_request(Duration::from_millis(30));
    let error = next_error(&mut requester).await;
    assert_eq!(
        (error.id, error.code, error.message.as_str()),
        (Some(7), ErrorCode::Timeout, "no reply within 30 ms")
    );
    assert_eq!(requester.outbox.pending_requests.load(Relaxed), 0);
    // Nothing is left that could answer a second time.
    assert_eq!((router.pending_requests(), router.requests.armed()), (0, 0));
    let late = router.reply(responder.outbox.id, reply_to(handle));
    assert_eq!(late.map_err(|e| e.code), Err(ErrorCode::UnknownRequest));
    assert_eq!(answers(&mut requester), vec![]);
    assert_eq!(router.stats.request_timeouts.load(Relaxed), 1);
}

#[test]
fn a_router_built_outside_a_runtime_still_times_requests_out() {
    let router = router();
    let mut requester = conn(1, 16, SlowConsumerPolicy::Disconnect);
    let responder = conn(2, 16, SlowConsumerPolicy::Disconnect);
    router.subscribe(&responder.outbox, &responder_key("rpc"));
    for runtime in 0..2 {
        // A runtime per round: the second starts the timeout task anew
        // after the first runtime (and its task) went away.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        rt.block_on(async {
            router
                .request(
                    &requester.outbox,
                    &emit("rpc"),
                    runtime,
                    Duration::from_millis(5),
                )
                .expect("routed");
            let error = next_error(&mut requester).await;
            assert_eq!((error.id, error.code), (Some(runtime), ErrorCode::Timeout));
        });
    }
}

#[tokio::test]
async fn a_gone_responder_fails_only_its_own_requests() {
    let router = router();
    let mut requester = conn(1, 64, SlowConsumerPolicy::Disconnect);
    let mut gone = conn(2, 64, SlowConsumerPolicy::Disconnect);
    let mut staying = conn(3, 64, SlowConsumerPolicy::Disconnect);
    for r in [&gone, &staying] {
        router.subscribe(&r.outbox, &responder_key("rpc"));
    }
    for ack in 0..20 {
        router
            .request(
                &requester.outbox,
                &emit("rpc"),
                ack,
                Duration::from_secs(30),
            )
            .expect("routed");
    }
    let gone_handles = handles(&mut gone);
    let staying_handles = handles(&mut staying);
    assert_eq!(gone_handles.len() + staying_handles.len(), 20);
    assert!(!gone_handles.is_empty() && !staying_handles.is_empty());
    assert_eq!(router.requests.responders(), 2);
    router.unsubscribe(&gone.outbox, &responder_key("rpc"));
    router.responder_gone(gone.outbox.id);
    let failed = answers(&mut requester);
    assert_eq!(failed.len(), gone_handles.len());
    assert!(
        failed
            .iter()
            .all(|(_, code, _)| *code == Some(ErrorCode::NoResponders))
    );
    assert_eq!(router.pending_requests(), staying_handles.len());
    assert_eq!(router.requests.armed(), staying_handles.len());
    assert_eq!(router.requests.responders(), 1);
    // Gone once: a second call finds nothing.
    router.responder_gone(gone.outbox.id);
    assert_eq!(answers(&mut requester), vec![]);
    for handle in staying_handles {
        router
            .reply(staying.outbox.id, reply_to(handle))
            .expect("still waiting");
    }
    assert_eq!(
        (
            router.pending_requests(),
            router.requests.armed(),
            router.requests.responders()
        ),
        (0, 0, 0)
    );
}

/// Many connections on one event (so its subscribers span many shards)
/// joining and leaving at random, some changes made while an emit holds
/// the snapshot: every emit reaches exactly the subscribers of the moment,
/// and its queue group exactly one of its members.
#[test]
fn churn_on_a_large_event_keeps_membership() {
    const CONNS: u64 = 3_000;
    let router = router();
    let mut conns: Vec<Conn> = (0..CONNS)
        .map(|i| conn(i, 8, SlowConsumerPolicy::Drop))
        .collect();
    let mut plain = std::collections::BTreeSet::new();
    let mut grouped = std::collections::BTreeSet::new();
    let sender = conn(CONNS, 1, SlowConsumerPolicy::Drop);
    // A fixed linear congruential sequence: the same run every time.
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        state >> 33
    };
    let mut held = None;
    for round in 0..30_000 {
        let c = (next() % CONNS) as usize;
        let (set, k) = if next() % 3 == 0 {
            (&mut grouped, key("hot", Some("g")))
        } else {
            (&mut plain, key("hot", None))
        };
        if set.insert(c) {
            router.subscribe(&conns[c].outbox, &k);
        } else {
            set.remove(&c);
            router.unsubscribe(&conns[c].outbox, &k);
        }
        match next() % 8 {
            0 => held = Some(router.snapshot("/", "hot")),
            1 => held = None,
            _ => {}
        }
        if round % 1_000 == 999 {
            let reached = router.emit(&sender.outbox, &emit("hot"));
            let expected = plain.len() + usize::from(!grouped.is_empty());
            assert_eq!(reached, expected as u64, "round {round}");
            let mut group_takers = Vec::new();
            for (i, conn) in conns.iter_mut().enumerate() {
                for (_, group) in received(conn) {
                    match group {
                        None => assert!(plain.contains(&i), "{i} is not subscribed"),
                        Some(_) => group_takers.push(i),
                    }
                }
            }
            assert_eq!(group_takers.len(), usize::from(!grouped.is_empty()));
            assert!(group_takers.iter().all(|i| grouped.contains(i)));
        }
    }
    drop(held);
    assert!(plain.len() > 500, "the event stayed large: {}", plain.len());
}

/// The router against a naive model: random subscribe / unsubscribe /
/// join / leave / emit sequences, and after each emit the frames every
/// connection got must be exactly what the model says: one plain frame per
/// eligible connection with a matching plain subscription, and one frame per
/// queue group with an eligible matching member, taken by such a member.
mod model {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    const CONNS: usize = 4;
    const NAMESPACES: &[&str] = &["/", "/a"];
    const EVENTS: &[&str] = &["x", "x.y", "x.z", "y.y"];
    const PATTERNS: &[&str] = &["x", "x.y", "x.*", "x.>", "*.y", ">"];
    const GROUPS: &[Option<&str>] = &[None, Some("g"), Some("h")];
    const ROOMS: &[&str] = &["r1", "r2"];

    #[derive(Debug, Clone)]
    enum Op {
        Sub(usize, usize, usize, usize),
        Unsub(usize, usize, usize, usize),
        Join(usize, usize, usize),
        Leave(usize, usize, usize),
        Emit(usize, usize, usize, Option<usize>, bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        let c = 0..CONNS;
        let ns = 0..NAMESPACES.len();
        prop_oneof![
            3 => (c.clone(), ns.clone(), 0..PATTERNS.len(), 0..GROUPS.len())
                .prop_map(|(c, n, p, g)| Op::Sub(c, n, p, g)),
            1 => (c.clone(), ns.clone(), 0..PATTERNS.len(), 0..GROUPS.len())
                .prop_map(|(c, n, p, g)| Op::Unsub(c, n, p, g)),
            1 => (c.clone(), ns.clone(), 0..ROOMS.len()).prop_map(|(c, n, r)| Op::Join(c, n, r)),
            1 => (c.clone(), ns.clone(), 0..ROOMS.len()).prop_map(|(c, n, r)| Op::Leave(c, n, r)),
            4 => (c, ns, 0..EVENTS.len(), proptest::option::of(0..ROOMS.len()), any::<bool>())
                .prop_map(|(c, n, e, r, x)| Op::Emit(c, n, e, r, x)),
        ]
    }

    fn sub_key(n: usize, p: usize, g: usize) -> SubKey {
        SubKey {
            namespace: NAMESPACES[n].into(),
            pattern: Pattern::parse(PATTERNS[p]).expect("valid"),
            group: GROUPS[g].map(Arc::from),
            responder: false,
        }
    }

    fn frames(conn: &mut Conn) -> Vec<Option<String>> {
        let mut out = Vec::new();
        while let Ok(frame) = conn.rx.try_recv() {
            let Ok(Envelope::Event(event)) = decode(&frame::payload(&frame)) else {
                panic!("not an event frame");
            };
            out.push(event.group);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn router_matches_the_model(ops in proptest::collection::vec(op(), 1..60)) {
            let router = router();
            let mut conns: Vec<Conn> = (0..CONNS)
                .map(|i| conn(i as u64, 1024, SlowConsumerPolicy::Disconnect))
                .collect();
            // (conn, ns, pattern, group) and (conn, ns, room)
            let mut subs: BTreeSet<(usize, usize, usize, usize)> = BTreeSet::new();
            let mut rooms: BTreeSet<(usize, usize, usize)> = BTreeSet::new();
            for op in ops {
                match op {
                    Op::Sub(c, n, p, g) => {
                        // The session de-duplicates; so does the model.
                        if subs.insert((c, n, p, g)) {
                            router.subscribe(&conns[c].outbox, &sub_key(n, p, g));
                        }
                    }
                    Op::Unsub(c, n, p, g) => {
                        if subs.remove(&(c, n, p, g)) {
                            router.unsubscribe(&conns[c].outbox, &sub_key(n, p, g));
                        }
                    }
                    Op::Join(c, n, r) => {
                        rooms.insert((c, n, r));
                        router
                            .join(&conns[c].outbox, NAMESPACES[n], ROOMS[r], usize::MAX)
                            .expect("joins");
                    }
                    Op::Leave(c, n, r) => {
                        rooms.remove(&(c, n, r));
                        router.leave(&conns[c].outbox, NAMESPACES[n], ROOMS[r]);
                    }
                    Op::Emit(from, n, e, room, xs) => {
                        let eligible = |c: usize| {
                            !(xs && c == from) && room.is_none_or(|r| rooms.contains(&(c, n, r)))
                        };
                        let matching = |p: usize| {
                            Pattern::parse(PATTERNS[p]).expect("valid").matches(EVENTS[e])
                        };
                        let plain: BTreeSet<usize> = subs
                            .iter()
                            .filter(|(c, sn, p, g)| *sn == n && GROUPS[*g].is_none() && matching(*p) && eligible(*c))
                            .map(|(c, ..)| *c)
                            .collect();
                        let mut members: BTreeMap<&str, BTreeSet<usize>> = BTreeMap::new();
                        for (c, sn, p, g) in &subs {
                            if let Some(group) = GROUPS[*g] {
                                if *sn == n && matching(*p) && eligible(*c) {
                                    members.entry(group).or_default().insert(*c);
                                }
                            }
                        }
                        let emit = Emit {
                            namespace: NAMESPACES[n].into(),
                            event: EVENTS[e].into(),
                            room: room.map(|r| ROOMS[r].to_owned()),
                            exclude_self: xs,
                            payload: Bytes::from_static(b"\x00"),
                            ..Emit::default()
                        };
                        let reached = router.emit(&conns[from].outbox, &emit);
                        prop_assert_eq!(reached, (plain.len() + members.len()) as u64);
                        let mut got_plain = BTreeSet::new();
                        let mut got_group: BTreeMap<String, Vec<usize>> = BTreeMap::new();
                        for (c, conn) in conns.iter_mut().enumerate() {
                            for group in frames(conn) {
                                match group {
                                    None => prop_assert!(got_plain.insert(c), "two plain frames to {}", c),
                                    Some(g) => got_group.entry(g).or_default().push(c),
                                }
                            }
                        }
                        prop_assert_eq!(&got_plain, &plain);
                        prop_assert_eq!(got_group.len(), members.len());
                        for (group, takers) in &got_group {
                            prop_assert_eq!(takers.len(), 1, "group {} delivered {:?}", group, takers);
                            let allowed = members.get(group.as_str());
                            prop_assert!(allowed.is_some_and(|m| m.contains(&takers[0])));
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn presence_counts_subscriptions_and_rooms_per_connection() {
    let router = router();
    let a = conn(1, 16, SlowConsumerPolicy::Disconnect);
    let mut watcher = conn(2, 16, SlowConsumerPolicy::Disconnect);
    router.subscribe(&watcher.outbox, &key("$presence.*", None));
    assert_eq!(router.presence("/", None).len(), 1);

    // Two subscriptions and a room keep `a` present until the last goes.
    router.subscribe(&a.outbox, &key("x", None));
    router.subscribe(&a.outbox, &key("y.>", None));
    router.join(&a.outbox, "/", "r", 8).expect("joins");
    assert_eq!(router.presence("/", None).len(), 2);
    assert_eq!(router.presence("/", Some("r")).len(), 1);
    assert_eq!(router.presence("/other", None).len(), 0);
    assert_eq!(
        received(&mut watcher),
        [("$presence.join".to_owned(), None)],
        "the namespace join; the room's is for its members only"
    );
    router.unsubscribe(&a.outbox, &key("x", None));
    router.unsubscribe(&a.outbox, &key("y.>", None));
    assert_eq!(router.presence("/", None).len(), 2);
    router.leave_rooms(&a.outbox, None);
    assert_eq!(router.presence("/", None).len(), 1);
    assert_eq!(
        received(&mut watcher),
        [("$presence.leave".to_owned(), None)]
    );
    // The watcher never hears itself.
    router.unsubscribe(&watcher.outbox, &key("$presence.*", None));
    assert!(router.presence("/", None).is_empty());
    assert!(received(&mut watcher).is_empty());
}
