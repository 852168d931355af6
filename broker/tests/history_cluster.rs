//! History in a cluster (issue 12, PROTOCOL.md "History and resume"): a
//! real `redis-server` and three broker daemon processes on 127.0.0.1.
//! Events of a history namespace are numbered in Redis (one Lua script
//! appends, numbers and publishes), so a client resumes on any node, after
//! its own node is killed with SIGKILL, and a publisher's retried acked
//! emit is stored once wherever it lands.
//!
//! These tests also give the fault figures of the README's delivery table:
//! each asserts the number of events lost and duplicated in its fault.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use herald_client::{Client, ConnectionState};
use herald_protocol::Envelope;
use herald_protocol::envelope::{Emit, Hello, Resume, ResumeSub, Welcome};
use herald_tests::RawClient;
use herald_tests::cluster::{Node, NodeConfig, RedisServer};
use herald_tests::proxy::CutProxy;
use herald_tests::sdk::{FAST_RECONNECT, connect, stream_through_fault, wait_state};
use herald_tests::sioclient::{ClientKind, SioDriver, Transports};

const NS: &str = "/h";

fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herald-broker"))
}

/// A config file giving `/h` a history of `size` events.
fn history_config(size: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "herald-history-cluster-{}-{size}-{}.toml",
        std::process::id(),
        herald_tests::cluster::free_port()
    ));
    let text = format!(
        "[history]\nreplay_limit = 20000\n\n[[history.namespaces]]\nnamespace = \"{NS}\"\nsize = {size}\nttl = \"10m\"\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Nodes `ids` of cluster `prefix` on `redis`, with a history on `/h`.
async fn nodes(redis: &RedisServer, prefix: &str, ids: &[&str], size: usize) -> Vec<Node> {
    let file = history_config(size);
    let mut nodes = Vec::new();
    for id in ids {
        let mut config = NodeConfig::new(redis, prefix, id);
        config.config_file = Some(file.clone());
        nodes.push(Node::start(&bin(), &config).await);
    }
    for node in &nodes {
        node.wait_metric("herald_cluster_up", |v| v == 1.0).await;
    }
    nodes
}

fn tick(n: u64) -> Emit {
    herald_tests::emit(NS, "tick", rmp_serde::to_vec(&n).unwrap())
}

fn number(payload: &[u8]) -> u64 {
    rmp_serde::from_slice(payload).unwrap()
}

/// `hello` with a resume point for `/h` `tick`; returns the welcome.
async fn resume(client: &mut RawClient, sid: &str, seq: u64, epoch: &str) -> Welcome {
    let resume = Resume {
        sid: sid.into(),
        offsets: BTreeMap::from([(NS.to_owned(), seq)]),
        epochs: BTreeMap::from([(NS.to_owned(), epoch.to_owned())]),
        subs: vec![ResumeSub {
            ns: NS.into(),
            ev: "tick".into(),
            q: None,
            r: false,
        }],
        rooms: Vec::new(),
    };
    client
        .send(&Envelope::Hello(Hello {
            version: herald_protocol::PROTOCOL_VERSION,
            client: Some("resumer".into()),
            resume: Some(resume),
            ..Hello::default()
        }))
        .await;
    match client.recv().await {
        Envelope::Welcome(welcome) => welcome,
        other => panic!("expected welcome, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_subscriber_whose_node_is_killed_fails_over_and_resumes_losing_and_repeating_nothing()
 {
    const EVENTS: u64 = 10_000;
    let redis = RedisServer::start().await;
    let mut nodes = nodes(&redis, "hkill", &["a", "b", "c"], 20_000).await;
    let subscriber = connect(
        Client::builder(nodes[0].url())
            .urls([nodes[0].url(), nodes[1].url()])
            .name("failing-over subscriber")
            .reconnect(FAST_RECONNECT)
            .handler_queue(EVENTS as usize + 1),
    )
    .await;
    let publisher = connect(Client::builder(nodes[2].url()).name("publisher")).await;
    let (got, recovery) = stream_through_fault(&subscriber, publisher, NS, EVENTS, || async {
        nodes[0].kill().await;
    })
    .await;
    let expected: Vec<u64> = (0..=EVENTS).collect();
    let lost = expected.iter().filter(|n| !got.contains(n)).count();
    let repeated = got.len() - {
        let mut unique = got.clone();
        unique.dedup();
        unique.len()
    };
    assert!(
        got == expected,
        "node SIGKILL: {lost} lost, {repeated} repeated, or out of order"
    );
    assert!(recovery[NS].recovered, "{recovery:?}");
    wait_state(&subscriber, "subscriber", ConnectionState::Connected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_acked_emit_is_stored_once_whichever_node_it_lands_on() {
    let redis = RedisServer::start().await;
    let nodes = nodes(&redis, "hmid", &["a", "b"], 100).await;
    let mut subscriber = nodes[1].client().await;
    subscriber.subscribe(NS, "tick", None, false).await;
    let with_mid = |n: u64| {
        let mut emit = tick(n);
        emit.message_id = Some("order-42".into());
        emit
    };
    let mut first = nodes[0].client().await;
    first.emit_acked(with_mid(1)).await;
    // The publisher "lost" the answer and retries on the other node.
    let mut retry = nodes[1].client().await;
    retry.emit_acked(with_mid(1)).await;
    retry.emit_acked(tick(2)).await;
    let stored = subscriber.expect_event().await;
    assert_eq!(number(&stored.payload), 1);
    let next = subscriber.expect_event().await;
    assert_eq!(
        number(&next.payload),
        2,
        "the retry was not delivered again"
    );
    // Nor stored: the history of `tick` holds 1 and 2 once each (other
    // events, such as the subscriber's `$presence.join`, may take `seq`s
    // in between, in whatever order the nodes' pipelines reach Redis).
    let read =
        herald_tests::http_get(nodes[0].addr(), &format!("/v1/history/tick?namespace={NS}")).await;
    assert_eq!(read.status, 200, "{}", read.body);
    let page: serde_json::Value = serde_json::from_str(&read.body).unwrap();
    let payloads: Vec<u64> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["d"].as_u64().unwrap())
        .collect();
    assert_eq!(payloads, [1, 2], "the retry was not stored again: {page}");
}

/// Emits `1..=n` acked from a raw client on `node`.
async fn emit_acked(node: &Node, range: std::ops::RangeInclusive<u64>) {
    let mut publisher = node.client().await;
    for n in range {
        publisher.emit_acked(tick(n)).await;
    }
}

/// A subscriber on `node` that received `1..=n`: its session id, the last
/// `seq` and the epoch.
async fn subscribed_through(node: &Node, n: u64) -> (String, u64, String) {
    let mut subscriber = node.connect().await;
    let sid = subscriber.hello().await.session;
    subscriber.subscribe(NS, "tick", None, false).await;
    emit_acked(node, 1..=n).await;
    let mut last = None;
    for expected in 1..=n {
        let event = subscriber.expect_event().await;
        assert_eq!(number(&event.payload), expected);
        last = Some((event.seq.unwrap(), event.epoch.unwrap()));
    }
    let (seq, epoch) = last.unwrap();
    (sid, seq, epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_without_persistence_changes_the_epoch_and_recovers_nothing() {
    let mut redis = RedisServer::start().await;
    let nodes = nodes(&redis, "hvolatile", &["a", "b"], 100).await;
    let (sid, seq, epoch) = subscribed_through(&nodes[0], 5).await;
    redis.restart().await;
    for node in &nodes {
        node.wait_metric("herald_cluster_up", |v| v == 1.0).await;
    }
    emit_acked(&nodes[0], 6..=6).await;
    let mut resumed = nodes[1].connect().await;
    let welcome = resume(&mut resumed, &sid, seq, &epoch).await;
    let recovery = &welcome.recovery[NS];
    assert!(
        !recovery.recovered,
        "Redis lost the history: the client must reload ({recovery:?})"
    );
    assert_ne!(recovery.epoch, epoch);
    resumed.assert_no_event().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_with_persistence_keeps_the_history_and_resume_loses_nothing() {
    let mut redis = RedisServer::start_persistent().await;
    let nodes = nodes(&redis, "hdurable", &["a", "b"], 100).await;
    let (sid, seq, epoch) = subscribed_through(&nodes[0], 5).await;
    emit_acked(&nodes[0], 6..=8).await;
    redis.restart().await;
    for node in &nodes {
        node.wait_metric("herald_cluster_up", |v| v == 1.0).await;
    }
    emit_acked(&nodes[0], 9..=9).await;
    let mut resumed = nodes[1].connect().await;
    let welcome = resume(&mut resumed, &sid, seq, &epoch).await;
    let recovery = &welcome.recovery[NS];
    assert!(recovery.recovered, "{recovery:?}");
    assert_eq!(recovery.epoch, epoch);
    for expected in 6..=9 {
        let event = resumed.expect_event().await;
        assert_eq!(
            number(&event.payload),
            expected,
            "nothing lost, nothing twice"
        );
    }
    resumed.assert_no_event().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socketio_client_behind_a_balancer_recovers_on_another_node_after_a_kill() {
    let redis = RedisServer::start().await;
    let mut nodes = nodes(&redis, "hsio", &["a", "b"], 1_000).await;
    // The balancer: node a first; when a dies, new connections go to b.
    let balancer = CutProxy::start(nodes[0].addr()).await;
    let mut driver = SioDriver::start(ClientKind::Node).await;
    let url = format!("http://{}", balancer.addr());
    let mut cmd = SioDriver::connect_cmd("a", &url, NS, Transports::Websocket);
    cmd["reconnection"] = serde_json::json!(true);
    driver.open(cmd).await.unwrap();
    let publisher_node = nodes[1].addr();
    emit_acked(&nodes[1], 1..=3).await;
    for n in 1..=3 {
        assert_eq!(sio_tick(&mut driver).await, n);
    }

    nodes[0].kill().await;
    balancer.retarget(publisher_node);
    driver
        .expect("the disconnect", |v| {
            v["type"] == "disconnect" && v["id"] == "a"
        })
        .await;
    emit_acked(&nodes[1], 4..=6).await;
    let back = driver
        .expect("the reconnection", |v| {
            v["type"] == "connected" && v["id"] == "a"
        })
        .await;
    assert_eq!(back["recovered"].as_bool(), Some(true), "{back}");
    emit_acked(&nodes[1], 7..=7).await;
    for n in 4..=7 {
        assert_eq!(
            sio_tick(&mut driver).await,
            n,
            "node SIGKILL: replayed once, in order, then live"
        );
    }
    driver.exit().await;
}

/// The next `tick` of socket `a`: its value (the offset follows it).
async fn sio_tick(driver: &mut SioDriver) -> u64 {
    let args = driver.expect_event("a", "tick").await;
    assert_eq!(args.len(), 2, "the value, then the offset: {args:?}");
    args[0].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_node_reads_the_whole_history_from_redis() {
    let redis = RedisServer::start().await;
    let nodes = nodes(&redis, "hread", &["a", "b"], 100).await;
    emit_acked(&nodes[0], 1..=4).await;
    // Node c starts after the events: its mirror catches up from Redis.
    let file = history_config(100);
    let mut config = NodeConfig::new(&redis, "hread", "c");
    config.config_file = Some(file);
    let late = Node::start(&bin(), &config).await;
    let client = connect(Client::builder(late.url()).name("reader")).await;
    let page = client
        .of(NS)
        .history("tick", 1, None, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    let read: Vec<u64> = page.events.iter().map(|e| number(&e.payload)).collect();
    assert_eq!(read, [2, 3, 4]);
    assert_eq!(page.last, 4);
    assert!(page.complete);
}
