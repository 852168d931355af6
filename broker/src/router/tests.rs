//! Router unit tests over real outboxes (bounded channels), no sockets.

use std::sync::Arc;

use bytes::Bytes;
use herald_config::SlowConsumerPolicy;
use herald_protocol::envelope::Emit;
use herald_protocol::{CloseReason, Envelope, Pattern, decode};
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
    router.join("/", "eu", a.outbox.id);
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
    router.leave("/", "eu", a.outbox.id);
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
        router.unsubscribe(a.outbox.id, &k);
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
                            router.unsubscribe(conns[c].outbox.id, &sub_key(n, p, g));
                        }
                    }
                    Op::Join(c, n, r) => {
                        rooms.insert((c, n, r));
                        router.join(NAMESPACES[n], ROOMS[r], conns[c].outbox.id);
                    }
                    Op::Leave(c, n, r) => {
                        rooms.remove(&(c, n, r));
                        router.leave(NAMESPACES[n], ROOMS[r], conns[c].outbox.id);
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
