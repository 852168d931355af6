//! Permissions in a cluster (two brokers over a real Redis): each node
//! enforces the tokens of its own connections, so what a token refuses is
//! refused whichever node the client is on, and a service power (moving a
//! session of another node into a room, emitting to its session id) is
//! admitted at the node where it is asked for.

use bytes::Bytes;
use herald_config::ClusterBackend;
use herald_protocol::envelope::RoomChange;
use herald_protocol::{Envelope, ErrorCode};
use herald_tests::auth::{claims, hs256, mint};
use herald_tests::cluster::{RedisServer, poll_until};
use herald_tests::{RawClient, TestBroker, emit, start_broker};
use serde_json::{Value, json};

async fn node(redis: &RedisServer, id: &str) -> TestBroker {
    let url = redis.url();
    start_broker(|s| {
        hs256(s);
        s.cluster.backend = ClusterBackend::Redis;
        s.cluster.redis_url = url;
        s.cluster.prefix = "auth".into();
        s.cluster.node_id = id.into();
    })
    .await
}

async fn wait_metric(broker: &TestBroker, name: &str, min: f64) {
    poll_until(&format!("{name} >= {min}"), || async {
        broker.get("/metrics").await.body.lines().any(|line| {
            line.split_once(' ').is_some_and(|(key, value)| {
                key == name && value.trim().parse::<f64>().is_ok_and(|v| v >= min)
            })
        })
    })
    .await;
}

async fn welcomed(broker: &TestBroker, sub: &str, herald: Value) -> (RawClient, String) {
    let mut client = broker.connect().await;
    match client.hello_token(Some(&mint(&claims(sub, herald)))).await {
        Envelope::Welcome(welcome) => (client, welcome.session),
        other => panic!("expected welcome, got {other:?}"),
    }
}

fn move_into(client: &mut RawClient, room: &str, sid: &str) -> Envelope {
    let id = client.next_id();
    Envelope::Join(RoomChange {
        id: Some(id),
        namespace: "/chat".into(),
        room: room.into(),
        sid: Some(sid.into()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_hold_on_every_node() {
    let redis = RedisServer::start().await;
    let a = node(&redis, "a").await;
    let b = node(&redis, "b").await;
    for n in [&a, &b] {
        wait_metric(n, "herald_cluster_up", 1.0).await;
    }
    let user = json!({"ns": {"/chat": {
        "publish": {"allow": ["msg.*"], "deny": ["msg.admin"]},
        "subscribe": {"allow": ["msg.*"]}
    }}});
    let service = json!({"ns": {"/chat": {"publish": {"allow": [">"]}, "powers": true}}});
    let (mut on_a, sid_a) = welcomed(&a, "alice", user.clone()).await;
    on_a.subscribe("/chat", "msg.*", None, false).await;
    wait_metric(&a, "herald_cluster_namespaces", 1.0).await;
    let (mut on_b, _) = welcomed(&b, "bob", user.clone()).await;

    // The same token rules on node b: refused there, delivered across.
    let refused = on_b
        .emit_acked(emit("/chat", "msg.hi", Bytes::from_static(b"\xa2hi")))
        .await;
    assert_eq!(refused, 0, "counted locally; delivered on node a");
    assert_eq!(on_a.expect_event().await.event, "msg.hi");
    let mut admin = emit("/chat", "msg.admin", Bytes::from_static(b"\xc0"));
    admin.id = Some(on_b.next_id());
    on_b.emit(admin).await;
    on_b.expect_error(ErrorCode::Forbidden).await;
    let wide = herald_protocol::envelope::Subscription {
        id: Some(on_b.next_id()),
        namespace: "/chat".into(),
        event: ">".into(),
        group: None,
        responder: false,
    };
    on_b.send(&Envelope::Subscribe(wide)).await;
    on_b.expect_error(ErrorCode::Forbidden).await;

    // Moving alice (node a) into a room from node b: refused to bob (no
    // powers), done for a service holding them.
    let bob_move = move_into(&mut on_b, "vip", &sid_a);
    on_b.send(&bob_move).await;
    on_b.expect_error(ErrorCode::Forbidden).await;
    let (mut svc, _) = welcomed(&b, "svc", service).await;
    let svc_move = move_into(&mut svc, "vip", &sid_a);
    let Envelope::Join(RoomChange { id: Some(id), .. }) = &svc_move else {
        unreachable!("a join with an id")
    };
    let id = *id;
    svc.send(&svc_move).await;
    svc.expect_ok(id).await;
    // Emitting to alice's session id from node b: the service may, bob not.
    let mut to_alice = emit("/chat", "msg.direct", Bytes::from_static(b"\xc0"));
    to_alice.room = Some(sid_a.clone());
    svc.emit_acked(to_alice.clone()).await;
    assert_eq!(on_a.expect_event().await.event, "msg.direct");
    to_alice.id = Some(on_b.next_id());
    on_b.emit(to_alice).await;
    on_b.expect_error(ErrorCode::Forbidden).await;
    on_a.assert_no_event().await;
    assert_eq!(b.stats().forbidden("powers"), 2);
    assert_eq!(b.stats().forbidden("publish"), 1);
}
