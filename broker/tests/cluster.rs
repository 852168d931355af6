//! Herald nodes clustered over Redis, end to end: a real `redis-server`
//! on a free loopback port and three broker daemon processes on
//! 127.0.0.1, with subscribers spread over them.
//!
//! Cross-node "did not arrive" checks use per-publisher order: after the
//! event that must not arrive, the same publisher emits a marker the
//! receiver does get; if the marker comes first, the event was not
//! delivered. Conditions no message announces (a metric, `/readyz`) are
//! polled with bounded loops.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use herald_client::{Client, ConnectionState, ReconnectPolicy};
use herald_protocol::envelope::Event;
use herald_protocol::{ErrorCode, SUBPROTOCOL};
use herald_tests::cluster::{Deadline, Node, NodeConfig, RedisServer};
use herald_tests::sdk::{bounded, forward, recv, wait_state};
use herald_tests::{RawClient, emit, http_post, payload_seq, seq_payload};
use tokio::sync::mpsc;

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herald-broker"))
}

/// Redis and three nodes of cluster `prefix`.
struct Cluster {
    redis: RedisServer,
    nodes: Vec<Node>,
}

impl Cluster {
    async fn start(prefix: &str) -> Cluster {
        let redis = RedisServer::start().await;
        let mut nodes = Vec::new();
        for id in ["a", "b", "c"] {
            nodes.push(Node::start(&bin(), &NodeConfig::new(&redis, prefix, id)).await);
        }
        let cluster = Cluster { redis, nodes };
        for node in &cluster.nodes {
            node.wait_metric("herald_cluster_up", |v| v == 1.0).await;
        }
        cluster
    }

    fn node(&self, i: usize) -> &Node {
        &self.nodes[i]
    }
}

/// Waits until `node` listens on the Redis channels of `n` namespaces.
async fn wait_namespaces(node: &Node, n: usize) {
    node.wait_metric("herald_cluster_namespaces", |v| v >= n as f64)
        .await;
}

/// Waits until `node` sees exactly `n` queue-group / responder entries on
/// the other nodes.
async fn wait_remote_entries(node: &Node, n: usize) {
    node.wait_metric("herald_cluster_remote_entries", |v| v == n as f64)
        .await;
}

fn text(event: &Event) -> &str {
    std::str::from_utf8(&event.payload).unwrap()
}

async fn next_text(client: &mut RawClient) -> String {
    text(&client.expect_event().await).to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_fan_out_reaches_subscribers_on_every_node() {
    let cluster = Cluster::start("fanout").await;
    let (a, b, c) = (cluster.node(0), cluster.node(1), cluster.node(2));
    let mut publisher = a.client().await;
    publisher.subscribe("/chat", "room.msg", None, false).await;
    let mut exact_b = b.client().await;
    exact_b.subscribe("/chat", "room.msg", None, false).await;
    let mut pattern_c = c.client().await;
    pattern_c.subscribe("/chat", "room.*", None, false).await;
    let mut lobby_c = c.client().await;
    lobby_c.subscribe("/chat", "room.>", None, false).await;
    lobby_c.join("/chat", "lobby").await;
    wait_namespaces(b, 1).await;
    wait_namespaces(c, 1).await;

    // Exclude-self: everyone else, on every node, gets it.
    let mut first = emit("/chat", "room.msg", "one");
    first.exclude_self = true;
    assert_eq!(publisher.emit_acked(first).await, 0, "local receivers only");
    for client in [&mut exact_b, &mut pattern_c, &mut lobby_c] {
        assert_eq!(next_text(client).await, "one");
    }
    publisher.assert_no_event().await;

    // A room: only its members (on C), then a marker for everyone.
    let mut in_room = emit("/chat", "room.msg", "lobby only");
    in_room.room = Some("lobby".into());
    publisher.emit(in_room).await;
    publisher.emit(emit("/chat", "room.msg", "marker")).await;
    let got = lobby_c.expect_event().await;
    assert_eq!(
        (text(&got), got.room.as_deref()),
        ("lobby only", Some("lobby"))
    );
    assert_eq!(next_text(&mut lobby_c).await, "marker");
    assert_eq!(
        next_text(&mut exact_b).await,
        "marker",
        "B is not in the room"
    );
    assert_eq!(next_text(&mut pattern_c).await, "marker", "not in the room");
    assert_eq!(next_text(&mut publisher).await, "marker");

    // Other events in the namespace reach only matching subscribers.
    publisher.emit(emit("/chat", "room.join", "join")).await;
    publisher.emit(emit("/chat", "room.msg", "marker 2")).await;
    assert_eq!(next_text(&mut exact_b).await, "marker 2");
    assert_eq!(next_text(&mut pattern_c).await, "join");
    assert_eq!(next_text(&mut lobby_c).await, "join");

    // HTTP publish on A fans out to B and C.
    let response = http_post(
        a.addr(),
        "/v1/emit/room.msg?namespace=/chat",
        Some("application/msgpack"),
        b"\xa4http",
    )
    .await;
    assert_eq!(response.status, 200, "{}", response.body);
    for client in [&mut exact_b, &mut pattern_c, &mut lobby_c] {
        let event = client.expect_event().await;
        if event.event == "room.msg" && event.payload.as_ref() == b"marker 2" {
            // lobby_c and pattern_c still had "marker 2" queued.
            assert_eq!(client.expect_event().await.payload.as_ref(), b"\xa4http");
        } else {
            assert_eq!(event.payload.as_ref(), b"\xa4http");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_group_spanning_three_nodes_gets_each_event_exactly_once() {
    const EVENTS: u64 = 60;
    let cluster = Cluster::start("groups").await;
    let mut members = Vec::new();
    for (i, node) in cluster.nodes.iter().enumerate() {
        let mut member = node.client().await;
        let pattern = if i == 2 { "job.*" } else { "job.run" };
        member
            .subscribe("/work", pattern, Some("workers"), false)
            .await;
        members.push(member);
    }
    // A second member on B: still one delivery per event.
    let mut extra = cluster.node(1).client().await;
    extra
        .subscribe("/work", "job.run", Some("workers"), false)
        .await;
    members.push(extra);
    let a = cluster.node(0);
    // A sees B's and C's entries.
    wait_remote_entries(a, 2).await;

    let mut publisher = a.client().await;
    for seq in 0..EVENTS {
        publisher
            .emit(emit("/work", "job.run", seq_payload(seq, 16)))
            .await;
    }
    let mut counts: BTreeMap<u64, usize> = BTreeMap::new();
    let mut per_member = vec![0; members.len()];
    let mut received = 0;
    let deadline = Deadline::start();
    while received < EVENTS {
        for (i, member) in members.iter_mut().enumerate() {
            for event in member.drain_events().await {
                assert_eq!(event.group.as_deref(), Some("workers"));
                *counts.entry(payload_seq(&event.payload)).or_default() += 1;
                per_member[i] += 1;
                received += 1;
            }
        }
        deadline.tick("every job to be delivered").await;
    }
    // Nothing more arrives: every member drained after a barrier on each.
    publisher.barrier().await;
    for member in &mut members {
        let late = member.drain_events().await;
        assert!(late.is_empty(), "duplicates: {late:?}");
    }
    assert_eq!(counts.len() as u64, EVENTS, "every job once: {counts:?}");
    assert!(counts.values().all(|n| *n == 1), "a job twice: {counts:?}");
    // Round robin over the three nodes: each node's members got some.
    let node_totals = [per_member[0], per_member[1] + per_member[3], per_member[2]];
    assert!(node_totals.iter().all(|n| *n > 0), "{node_totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_cross_nodes_with_replies_no_responders_and_timeouts() {
    let cluster = Cluster::start("requests").await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    let mut responder = b.client().await;
    responder.subscribe("/rpc", "math.double", None, true).await;
    wait_remote_entries(a, 1).await;
    let mut requester = a.client().await;

    // Reply across nodes.
    requester
        .request(emit("/rpc", "math.double", "21"), 7, Some(5000))
        .await;
    let request = responder.expect_event().await;
    assert_eq!(text(&request), "21");
    let handle = request.ack.expect("a request carries a handle");
    responder.reply(handle, true, "42").await;
    let reply = requester.expect_reply().await;
    assert_eq!(
        (reply.ack, reply.ok, reply.payload.as_ref()),
        (7, true, &b"42"[..])
    );
    // The same handle cannot be answered twice.
    responder.reply(handle, true, "43").await;
    responder.expect_error(ErrorCode::UnknownRequest).await;

    // No responder anywhere in the cluster.
    requester
        .request(emit("/rpc", "math.triple", "1"), 8, Some(5000))
        .await;
    let error = requester.expect_error(ErrorCode::NoResponders).await;
    assert_eq!(error.id, Some(8));

    // The responder never answers: the origin's timeout fires.
    requester
        .request(emit("/rpc", "math.double", "1"), 9, Some(300))
        .await;
    let unanswered = responder.expect_event().await;
    let error = requester.expect_error(ErrorCode::Timeout).await;
    assert_eq!(error.id, Some(9));
    // A late reply is ignored (the requester gets nothing more).
    responder.reply(unanswered.ack.unwrap(), true, "late").await;
    responder.barrier().await;
    requester.assert_no_event().await;

    // The responder disconnects before replying: no_responders at once.
    requester
        .request(emit("/rpc", "math.double", "2"), 10, Some(10_000))
        .await;
    responder.expect_event().await;
    responder.close().await;
    let error = requester.expect_error(ErrorCode::NoResponders).await;
    assert_eq!(error.id, Some(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_publishers_events_keep_their_order_on_every_node() {
    const EVENTS: u64 = 500;
    let cluster = Cluster::start("order").await;
    let mut receivers = Vec::new();
    for node in &cluster.nodes[1..] {
        let mut client = node.client().await;
        client.subscribe("/seq", "tick", None, false).await;
        wait_namespaces(node, 1).await;
        receivers.push(client);
    }
    let mut publisher = cluster.node(0).client().await;
    for seq in 0..EVENTS {
        publisher
            .emit(emit("/seq", "tick", seq_payload(seq, 32)))
            .await;
    }
    for receiver in &mut receivers {
        for expected in 0..EVENTS {
            let event = receiver.expect_event().await;
            assert_eq!(payload_seq(&event.payload), expected, "out of order");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_and_cluster_prefixes_do_not_leak() {
    let redis = RedisServer::start().await;
    let x = Node::start(&bin(), &NodeConfig::new(&redis, "one", "x")).await;
    let y = Node::start(&bin(), &NodeConfig::new(&redis, "one", "y")).await;
    // Same Redis, same namespace, another cluster.
    let z = Node::start(&bin(), &NodeConfig::new(&redis, "two", "z")).await;

    let mut on_y = y.client().await;
    on_y.subscribe("/b", "note", None, false).await;
    let mut other_cluster = z.client().await;
    other_cluster.subscribe("/a", "note", None, false).await;
    other_cluster.subscribe("/a", "job", Some("g"), false).await;
    wait_namespaces(&y, 1).await;
    wait_namespaces(&z, 1).await;
    // x sees no group of cluster "two".
    x.wait_metric("herald_cluster_nodes", |v| v == 1.0).await;
    wait_remote_entries(&x, 0).await;

    let mut publisher = x.client().await;
    assert_eq!(publisher.emit_acked(emit("/a", "note", "a")).await, 0);
    assert_eq!(publisher.emit_acked(emit("/a", "job", "a")).await, 0);
    publisher.emit(emit("/b", "note", "b")).await;
    // /a never reaches y (it only listens on /b), and per-publisher order
    // puts "b" after "a": the first thing y gets is "b".
    assert_eq!(next_text(&mut on_y).await, "b");
    // Cluster "two" gets nothing from cluster "one": a publisher of "two"
    // emits a marker, which z gets first.
    let mut marker = z.client().await;
    marker.emit(emit("/a", "note", "marker")).await;
    assert_eq!(next_text(&mut other_cluster).await, "marker");
    other_cluster.assert_no_event().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_degrades_the_nodes_then_cross_node_delivery_resumes() {
    let mut cluster = Cluster::start("restart").await;
    let mut local_sub = cluster.node(0).client().await;
    local_sub.subscribe("/r", "ping", None, false).await;
    let mut remote_sub = cluster.node(1).client().await;
    remote_sub.subscribe("/r", "ping", None, false).await;
    wait_namespaces(cluster.node(1), 1).await;
    let mut publisher = cluster.node(0).client().await;
    publisher.emit(emit("/r", "ping", "before")).await;
    assert_eq!(next_text(&mut remote_sub).await, "before");
    assert_eq!(next_text(&mut local_sub).await, "before");

    cluster.redis.kill().await;
    let a = cluster.node(0);
    a.wait_metric("herald_cluster_up", |v| v == 0.0).await;
    a.wait_ready(false).await;
    let (status, body) = a.readyz().await;
    assert_eq!(status, 503);
    assert!(body.contains("degraded"), "{body}");
    // Local delivery never stops.
    assert_eq!(publisher.emit_acked(emit("/r", "ping", "local")).await, 1);
    assert_eq!(next_text(&mut local_sub).await, "local");
    a.wait_metric("herald_cluster_dropped_total", |v| v >= 1.0)
        .await;

    cluster.redis.restart().await;
    for node in &cluster.nodes {
        node.wait_ready(true).await;
    }
    // Cross-node delivery resumes once B has re-subscribed: emit probes
    // until one arrives (bounded), then order holds again.
    let deadline = Deadline::start();
    loop {
        publisher.emit(emit("/r", "ping", "probe")).await;
        assert_eq!(next_text(&mut local_sub).await, "probe");
        if !remote_sub.drain_events().await.is_empty() {
            break;
        }
        deadline
            .tick("an event from A to reach B after the restart")
            .await;
    }
    publisher.emit(emit("/r", "ping", "after")).await;
    let deadline = Deadline::start();
    while !remote_sub
        .drain_events()
        .await
        .iter()
        .any(|e| text(e) == "after")
    {
        deadline.tick("the event after the probes").await;
    }
    cluster
        .node(0)
        .wait_metric("herald_cluster_disconnects_total", |v| v >= 1.0)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_leaves_no_ghost_members_and_its_sdk_clients_fail_over() {
    let mut cluster = Cluster::start("failover").await;
    let a = cluster.node(0);
    let mut member_b = cluster.node(1).client().await;
    member_b
        .subscribe("/jobs", "run", Some("workers"), false)
        .await;
    let mut member_c = cluster.node(2).client().await;
    member_c
        .subscribe("/jobs", "run", Some("workers"), false)
        .await;
    wait_remote_entries(a, 2).await;

    // An SDK client on B, with C as its second URL.
    let policy = ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        factor: 2.0,
        max_attempts: None,
    };
    let sdk = bounded(
        "the SDK client to connect",
        Client::builder(cluster.node(1).url())
            .urls([cluster.node(2).url()])
            .name("failover")
            .reconnect(policy)
            .connect(),
    )
    .await
    .unwrap();
    let (tx, mut ticks) = mpsc::channel(64);
    sdk.of("/jobs")
        .on("tick", forward::<u64>(&tx))
        .await
        .unwrap();
    let mut publisher = a.client().await;
    wait_namespaces(cluster.node(1), 1).await;
    publisher
        .emit(emit("/jobs", "tick", Bytes::from_static(b"\x01")))
        .await;
    assert_eq!(recv(&mut ticks).await, 1);

    cluster.nodes[1].kill().await;
    // A drops B's group member within the bounded time (TTL + heartbeat).
    let a = cluster.node(0);
    wait_remote_entries(a, 1).await;
    a.wait_metric("herald_cluster_nodes", |v| v == 1.0).await;
    // Every job now goes to the member on C, none is lost to a ghost.
    for seq in 0..10 {
        publisher
            .emit(emit("/jobs", "run", seq_payload(seq, 8)))
            .await;
    }
    for seq in 0..10 {
        assert_eq!(payload_seq(&member_c.expect_event().await.payload), seq);
    }
    drop(member_b);

    // The SDK client fails over to C and its subscription works there.
    wait_state(&sdk, "the SDK client", ConnectionState::Connected).await;
    let c = cluster.node(2);
    wait_namespaces(c, 1).await;
    let deadline = Deadline::start();
    for n in 2u64.. {
        publisher
            .emit(emit("/jobs", "tick", Bytes::from(vec![n as u8])))
            .await;
        publisher.barrier().await;
        if tokio::time::timeout(Duration::from_millis(100), ticks.recv())
            .await
            .is_ok()
        {
            break;
        }
        deadline
            .tick("a tick to reach the failed-over SDK client")
            .await;
    }
    sdk.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_backplane_is_counted_and_ignored() {
    let redis = RedisServer::start().await;
    let node = Node::start(&bin(), &NodeConfig::new(&redis, "garbage", "g1")).await;
    let mut subscriber = node.client().await;
    subscriber.subscribe("/g", "x", None, false).await;
    wait_namespaces(&node, 1).await;
    for (channel, junk) in [
        ("garbage:ev:/g", &b"\xc1not msgpack"[..]),
        ("garbage:node:g1", b"\x81\xa4from\x01"),
        ("garbage:ctl", b""),
    ] {
        assert_eq!(redis.publish(channel, junk).await, 1, "{channel}");
    }
    node.wait_metric("herald_cluster_undeliverable_total", |v| v >= 3.0)
        .await;
    // The node still works: local delivery and its backplane.
    let mut publisher = node.client().await;
    assert_eq!(publisher.emit_acked(emit("/g", "x", "fine")).await, 1);
    assert_eq!(next_text(&mut subscriber).await, "fine");
    assert_eq!(node.readyz().await.0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_without_redis_serves_locally_and_says_it_is_degraded() {
    // Nothing listens on this port.
    let config = NodeConfig {
        prefix: "alone".into(),
        node_id: "solo".into(),
        redis_url: format!("redis://127.0.0.1:{}", herald_tests::cluster::free_port()),
        config_file: None,
    };
    let node = Node::spawn(&bin(), &config);
    node.wait_listening().await;
    let (status, body) = node.readyz().await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("degraded"), "{body}");
    assert_eq!(node.metric("herald_cluster_up").await, Some(0.0));
    let mut subscriber = node.client().await;
    subscriber.subscribe("/l", "x", None, false).await;
    let mut publisher = node.client().await;
    assert_eq!(publisher.emit_acked(emit("/l", "x", "local")).await, 1);
    assert_eq!(next_text(&mut subscriber).await, "local");
    node.wait_metric("herald_cluster_dropped_total", |v| v >= 1.0)
        .await;
}

#[tokio::test]
async fn an_unusable_redis_url_stops_start_up_naming_the_key() {
    let output = tokio::process::Command::new(bin())
        .env_clear()
        .envs([
            ("HERALD__SERVER__LISTEN", "127.0.0.1:0"),
            ("HERALD__CLUSTER__BACKEND", "redis"),
            ("HERALD__CLUSTER__REDIS_URL", "redis://127.0.0.1:notaport"),
        ])
        .kill_on_drop(true)
        .output();
    let output = bounded("the broker to refuse to start", output)
        .await
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cluster.redis_url"), "{stderr}");
}

/// A raw Socket.IO client over Engine.IO's WebSocket transport, connected
/// to namespace `/` of `node`: the socket and its session id.
async fn socketio_client(
    node: &Node,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    String,
) {
    use futures_util::SinkExt;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", node.addr());
    let (mut ws, _) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::connect_async(url),
    )
    .await
    .expect("the upgrade is answered")
    .expect("the upgrade succeeds");
    let open = socketio_text(&mut ws).await;
    assert!(open.starts_with('0'), "{open}");
    ws.send(tokio_tungstenite::tungstenite::Message::text("40"))
        .await
        .unwrap();
    let connect = socketio_text(&mut ws).await;
    let answer: serde_json::Value =
        serde_json::from_str(connect.strip_prefix("40").unwrap()).unwrap();
    let sid = answer["sid"].as_str().unwrap().to_owned();
    (ws, sid)
}

/// The next text message of a Socket.IO client, answering pings (bounded).
async fn socketio_text(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> String {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s");
        match next {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.unwrap();
            }
            Some(Ok(Message::Text(text))) => return text.as_str().to_owned(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_sockets_and_services_meet_across_nodes() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let cluster = Cluster::start("socketio").await;
    let (a, b) = (cluster.node(0), cluster.node(1));
    // A service on B: lifecycle events, a responder, a plain subscriber.
    let mut service = b.client().await;
    service.subscribe("/", "$connection", None, false).await;
    service.subscribe("/", "$disconnect", None, false).await;
    service.subscribe("/", "chat.line", None, false).await;
    service.subscribe("/", "math.double", None, true).await;
    wait_remote_entries(a, 1).await;

    // The socket connects on A; the service on B is told.
    let (mut socket, sid) = socketio_client(a).await;
    assert!(sid.starts_with("a-"), "session ids name their node: {sid}");
    let connected = service.expect_event().await;
    assert_eq!(connected.event, "$connection");
    assert_eq!(connected.from.as_deref(), Some(sid.as_str()));
    // A listens on `/` once the socket subscribed there.
    wait_namespaces(a, 1).await;

    // The socket's emit reaches the native subscriber on B, with its sender.
    socket
        .send(Message::text(r#"42["chat.line",{"text":"hi"}]"#))
        .await
        .unwrap();
    let line = service.expect_event().await;
    assert_eq!(line.event, "chat.line");
    assert_eq!(line.from.as_deref(), Some(sid.as_str()));
    assert_eq!(line.payload.as_ref(), b"\x81\xa4text\xa2hi");

    // An ack answered by the responder on B.
    socket
        .send(Message::text(r#"425["math.double",21]"#))
        .await
        .unwrap();
    let request = service.expect_event().await;
    assert_eq!(request.payload.as_ref(), &[21u8][..]);
    service.reply(request.ack.unwrap(), true, vec![42u8]).await;
    assert_eq!(socketio_text(&mut socket).await, "435[42]");

    // The service on B reaches the socket on A by its session id, moves
    // it into a room there, and reaches it through the room.
    let mut to_socket = emit("/", "note", vec![0xa3, b'o', b'n', b'e']);
    to_socket.room = Some(sid.clone());
    service.emit(to_socket).await;
    assert_eq!(socketio_text(&mut socket).await, r#"42["note","one"]"#);
    service
        .send(&herald_protocol::Envelope::Join(
            herald_protocol::envelope::RoomChange {
                id: Some(77),
                namespace: "/".into(),
                room: "lobby".into(),
                sid: Some(sid.clone()),
            },
        ))
        .await;
    service.expect_ok(77).await;
    // The move travels on A's node channel, the room emit on the
    // namespace channel: retry until the join has landed on A (bounded).
    let mut in_room = emit("/", "note", vec![0xa4, b'r', b'o', b'o', b'm']);
    in_room.room = Some("lobby".into());
    let mut got = String::new();
    for _ in 0..50 {
        service.emit(in_room.clone()).await;
        let mut marker = emit("/", "note", vec![0xa6, b'm', b'a', b'r', b'k', b'e', b'r']);
        marker.room = Some(sid.clone());
        service.emit(marker).await;
        got = socketio_text(&mut socket).await;
        if got == r#"42["note","room"]"# {
            break;
        }
        assert_eq!(got, r#"42["note","marker"]"#);
    }
    assert_eq!(
        got, r#"42["note","room"]"#,
        "the moved socket gets room events"
    );

    // It leaves: the service hears why.
    socket.send(Message::text("41")).await.unwrap();
    loop {
        let event = service.expect_event().await;
        if event.event == "$disconnect" {
            let payload = String::from_utf8_lossy(&event.payload).into_owned();
            assert!(payload.contains("client namespace disconnect"), "{payload}");
            break;
        }
    }
}

/// `GET /v1/presence/...` on `node`: its JSON body (200 expected).
async fn presence(node: &Node, path: &str) -> serde_json::Value {
    let response = herald_tests::http_get(node.addr(), path).await;
    assert_eq!(
        response.status, 200,
        "{path} on {}: {}",
        node.id, response.body
    );
    serde_json::from_str(&response.body).unwrap()
}

/// The session ids a presence answer lists.
fn listed(body: &serde_json::Value) -> Vec<String> {
    let members = body["members"].as_array().cloned().unwrap_or_default();
    members
        .iter()
        .map(|m| m["sid"].as_str().unwrap().to_owned())
        .collect()
}

/// Polls `path` on `node` until it lists exactly `sids` (sorted).
async fn wait_listed(node: &Node, path: &str, sids: &[String]) -> serde_json::Value {
    let deadline = Deadline::start();
    loop {
        let body = presence(node, path).await;
        if listed(&body) == sids {
            return body;
        }
        deadline
            .tick(&format!(
                "{path} on {} to list {sids:?}, got {body}",
                node.id
            ))
            .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_spans_nodes_and_a_killed_nodes_members_disappear() {
    let mut cluster = Cluster::start("presence").await;
    let mut watcher = cluster.node(0).client().await;
    watcher
        .subscribe("/room", "$presence.join", None, false)
        .await;
    wait_namespaces(cluster.node(0), 1).await;
    let mut members = Vec::new();
    let mut sids = Vec::new();
    for i in 0..3 {
        let mut client = herald_tests::connect_raw(cluster.node(i).addr(), Some(SUBPROTOCOL))
            .await
            .unwrap();
        sids.push(client.hello().await.session);
        client.join("/room", "lobby").await;
        members.push(client);
    }
    // The watcher on A hears every node's join (B's and C's through Redis).
    let mut heard = Vec::new();
    for _ in 0..3 {
        let event = watcher.expect_event().await;
        assert_eq!(event.event, "$presence.join");
        let member: serde_json::Value = rmp_serde::from_slice(&event.payload).unwrap();
        heard.push(member["sid"].as_str().unwrap().to_owned());
    }
    heard.sort();
    sids.sort();
    assert_eq!(heard, sids);

    // Every node lists the members of every node, with the node's id.
    for node in &cluster.nodes {
        let body = wait_listed(node, "/v1/presence/room?room=lobby", &sids).await;
        assert_eq!(body["complete"], true, "{body}");
        let mut nodes: Vec<&str> = body["members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["node"].as_str().unwrap())
            .collect();
        nodes.sort_unstable();
        assert_eq!(nodes, ["a", "b", "c"], "{body}");
        let all = presence(node, "/v1/presence/room").await;
        assert_eq!(all["count"], 4, "the watcher is present too: {all}");
    }

    // C is killed: its member disappears from A's and B's presence within
    // node_ttl (600 ms in these tests) plus a poll.
    let killed_sid = {
        let body = presence(cluster.node(0), "/v1/presence/room?room=lobby").await;
        body["members"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["node"] == "c")
            .map(|m| m["sid"].as_str().unwrap().to_owned())
            .unwrap()
    };
    cluster.nodes[2].kill().await;
    let killed_at = tokio::time::Instant::now();
    let survivors: Vec<String> = sids.iter().filter(|s| **s != killed_sid).cloned().collect();
    wait_listed(cluster.node(0), "/v1/presence/room?room=lobby", &survivors).await;
    let gone_after = killed_at.elapsed();
    wait_listed(cluster.node(1), "/v1/presence/room?room=lobby", &survivors).await;
    assert!(
        gone_after < Duration::from_secs(3),
        "the killed node's member stayed {gone_after:?}"
    );
    eprintln!("a killed node's members disappeared from presence after {gone_after:?}");

    // A clean close on B is seen on A at once (no TTL involved).
    let leaving = members.remove(1);
    leaving.close().await;
    let left: Vec<String> = survivors
        .into_iter()
        .filter(|s| s != &sids_of_node(&sids, "b"))
        .collect();
    wait_listed(cluster.node(0), "/v1/presence/room?room=lobby", &left).await;
}

/// The session id of node `node` among `sids` (`<node>-<n>`).
fn sids_of_node(sids: &[String], node: &str) -> String {
    sids.iter()
        .find(|s| s.starts_with(&format!("{node}-")))
        .cloned()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_without_redis_is_local_and_marked_incomplete_then_recovers() {
    let mut cluster = Cluster::start("presence-redis").await;
    let mut sids = Vec::new();
    let mut members = Vec::new();
    for i in 0..2 {
        let mut client = herald_tests::connect_raw(cluster.node(i).addr(), Some(SUBPROTOCOL))
            .await
            .unwrap();
        sids.push(client.hello().await.session);
        client.subscribe("/p", "x", None, false).await;
        members.push(client);
    }
    sids.sort();
    wait_listed(cluster.node(0), "/v1/presence/p", &sids).await;

    // Redis gone: A lists its own member only, and says so.
    cluster.redis.kill().await;
    let local = vec![sids_of_node(&sids, "a")];
    let deadline = Deadline::start();
    loop {
        let body = presence(cluster.node(0), "/v1/presence/p").await;
        if body["complete"] == false {
            assert_eq!(listed(&body), local, "{body}");
            break;
        }
        deadline.tick("A's presence to be marked incomplete").await;
    }

    // Redis back, empty: B writes its presence again, A lists both.
    cluster.redis.restart().await;
    let body = wait_listed(cluster.node(0), "/v1/presence/p", &sids).await;
    assert_eq!(body["complete"], true, "{body}");
}
