//! Stock Socket.IO clients and native SDK clients on the same Herald:
//! the checks of issue #10 that only Herald can pass (the reference server
//! has no native clients). Each uses a different client and transport, so
//! together they cover Node, Python and Chromium on each transport
//! family; the per-client matrix is `socketio_clients.rs`.
//!
//! - a Socket.IO socket and a native client in one room, events both ways;
//! - a Socket.IO ack answered by a Rust responder (`on_request`), and the
//!   error value when nobody answers;
//! - binary both ways between a Socket.IO socket and a native client;
//! - a Socket.IO socket on node A and a native client on node B of a
//!   cluster over a real `redis-server`.

use herald_client::{Client, Event};
use herald_config::ClusterBackend;
use herald_tests::cluster::RedisServer;
use herald_tests::sdk::{client, recv};
use herald_tests::sioclient::{
    ClientKind, HeraldServer, SioDriver, Transports, bin, conformance_settings,
};
use herald_tests::{TestBroker, start_broker};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::mpsc;

/// Connects socket `id` to `url` + `namespace` and waits until it is on
/// its final transport; returns its session id.
async fn open(
    driver: &mut SioDriver,
    url: &str,
    id: &str,
    namespace: &str,
    transports: Transports,
) -> String {
    let connected = driver.connect(id, url, namespace, transports).await;
    driver.wait_transport(id, transports.settled()).await;
    connected.sid
}

/// A native subscriber of `event` in `namespace`: its events, payload as
/// JSON-compatible MessagePack values, come out of the channel.
async fn subscribe(
    native: &Client,
    namespace: &str,
    event: &str,
) -> mpsc::Receiver<Event<rmpv::Value>> {
    let (tx, rx) = mpsc::channel(16);
    native
        .of(namespace)
        .on_event(event, move |event: Event<rmpv::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event).await;
            }
        })
        .await
        .expect("the native subscription");
    rx
}

/// The payload `{"from": from}` as a MessagePack map.
fn from_map(from: &str) -> rmpv::Value {
    rmpv::Value::Map(vec![("from".into(), from.into())])
}

#[tokio::test]
async fn a_socketio_socket_and_a_native_client_share_a_room() {
    let server = HeraldServer::start().await;
    let mut driver = SioDriver::start(ClientKind::Node).await;
    let url = server.url();
    let member = open(&mut driver, &url, "in", "/chat", Transports::Websocket).await;
    open(&mut driver, &url, "out", "/chat", Transports::Websocket).await;
    assert_eq!(
        driver.call("in", "$join", json!(["lobby"])).await,
        vec![json!({"ok": true})],
        "the reserved `$join` joins a room"
    );
    let native = client(server.broker(), "native").await;
    let chat = native.of("/chat");
    chat.join("lobby").await.expect("the native join");
    let mut notes = subscribe(&native, "/chat", "note").await;

    // Native -> the room: its Socket.IO member gets it, the other socket not
    // (the namespace-wide marker after it shows it would have by now).
    chat.to("lobby")
        .emit("news", &from_map("native"))
        .await
        .expect("the room emit");
    chat.emit("marker", &1).await.expect("the marker");
    driver
        .expect_event_args("in", "news", &json!([{"from": "native"}]))
        .await;
    driver.expect_event_args("out", "marker", &json!([1])).await;
    driver.assert_not_received("out", "news", &json!([{"from": "native"}]));

    // Socket.IO -> native: one argument is the payload; the sender is named.
    driver.emit("in", "note", json!([{"from": "socket"}])).await;
    let note = recv(&mut notes).await;
    assert_eq!(note.data, from_map("socket"));
    assert_eq!(
        note.from(),
        Some(member.as_str()),
        "the event names its sender"
    );
    driver.exit().await;
}

#[derive(Debug, Deserialize)]
struct Quote {
    sku: String,
    qty: u64,
}

#[derive(Debug, Serialize)]
struct Price {
    sku: String,
    cents: u64,
}

#[tokio::test]
async fn a_socketio_ack_is_answered_by_a_rust_responder() {
    let server = HeraldServer::start().await;
    let native = client(server.broker(), "pricing").await;
    native
        .of("/chat")
        .on_request("price", |quote: Quote| async move {
            Ok::<_, std::convert::Infallible>(Price {
                sku: quote.sku,
                cents: quote.qty * 250,
            })
        })
        .await
        .expect("the responder");
    let mut driver = SioDriver::start(ClientKind::Browser).await;
    open(
        &mut driver,
        &server.url(),
        "a",
        "/chat",
        Transports::Upgrade,
    )
    .await;
    assert_eq!(
        driver
            .call("a", "price", json!([{"sku": "tea", "qty": 3}]))
            .await,
        vec![json!({"sku": "tea", "cents": 750})],
        "the reply is the ack's one argument"
    );
    let missing = driver.call("a", "nobody-answers", json!([1])).await;
    assert_eq!(
        missing[0]["$error"]["code"], "no_responders",
        "no responder: the documented error value, {missing:?}"
    );
    driver.exit().await;
}

#[tokio::test]
async fn binary_travels_both_ways_between_socketio_and_native() {
    let server = HeraldServer::start().await;
    let native = client(server.broker(), "blobs").await;
    let mut blobs = subscribe(&native, "/chat", "blob").await;
    let mut driver = SioDriver::start(ClientKind::Python).await;
    let sid = open(
        &mut driver,
        &server.url(),
        "a",
        "/chat",
        Transports::Polling,
    )
    .await;
    let bytes: Vec<u8> = (0..=255).collect();

    driver.emit("a", "blob", json!([bin(&bytes)])).await;
    let blob = recv(&mut blobs).await;
    assert_eq!(
        blob.data,
        rmpv::Value::Binary(bytes.clone()),
        "a Socket.IO attachment is MessagePack bin"
    );

    let back: Vec<u8> = bytes.iter().rev().copied().collect();
    let nested = rmpv::Value::Map(vec![
        ("data".into(), rmpv::Value::Binary(back.clone())),
        ("n".into(), 2.into()),
    ]);
    native
        .of("/chat")
        .to(sid)
        .emit("blob-back", &nested)
        .await
        .expect("the emit to the socket's session-id room");
    driver
        .expect_event_args("a", "blob-back", &json!([{"data": bin(&back), "n": 2}]))
        .await;
    driver.exit().await;
}

/// A broker of the cluster `prefix` on `redis`, with the conformance
/// `[socketio]` settings.
async fn cluster_node(redis: &RedisServer, prefix: &str, id: &str) -> TestBroker {
    let url = redis.url();
    start_broker(|settings| {
        conformance_settings(settings);
        let cluster = &mut settings.cluster;
        cluster.backend = ClusterBackend::Redis;
        cluster.redis_url = url;
        cluster.prefix = prefix.to_owned();
        cluster.node_id = id.to_owned();
    })
    .await
}

/// Polls `/metrics` of `broker` until `name` is at least `min`.
async fn wait_metric(broker: &TestBroker, name: &str, min: f64) {
    herald_tests::cluster::poll_until(&format!("{name} >= {min}"), || async {
        broker.get("/metrics").await.body.lines().any(|line| {
            line.split_once(' ').is_some_and(|(key, value)| {
                key == name && value.trim().parse::<f64>().is_ok_and(|v| v >= min)
            })
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socketio_socket_on_node_a_meets_a_native_client_on_node_b() {
    let redis = RedisServer::start().await;
    let a = cluster_node(&redis, "sio", "a").await;
    let b = cluster_node(&redis, "sio", "b").await;
    for node in [&a, &b] {
        wait_metric(node, "herald_cluster_up", 1.0).await;
    }
    let native = client(&b, "native-b").await;
    let mut notes = subscribe(&native, "/chat", "note").await;
    let mut driver = SioDriver::start(ClientKind::Node).await;
    let url = format!("http://{}", a.addr());
    let sid = open(&mut driver, &url, "a", "/chat", Transports::Upgrade).await;
    // Each node listens on the namespace's channel once it has a subscriber.
    wait_metric(&a, "herald_cluster_namespaces", 1.0).await;
    wait_metric(&b, "herald_cluster_namespaces", 1.0).await;

    driver.emit("a", "note", json!([{"from": "node a"}])).await;
    let note = recv(&mut notes).await;
    assert_eq!(note.data, from_map("node a"));
    assert_eq!(
        note.from(),
        Some(sid.as_str()),
        "the sender's id crosses nodes"
    );

    native
        .of("/chat")
        .to(sid)
        .emit("note", &from_map("node b"))
        .await
        .expect("the emit to a session-id room on another node");
    driver
        .expect_event_args("a", "note", &json!([{"from": "node b"}]))
        .await;
    driver.exit().await;
}
