//! History, resume and publisher de-duplication on one node
//! (PROTOCOL.md "History and resume"): real brokers, real sockets, and a
//! loopback proxy that cuts connections mid-stream.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use herald_client::{Client, ConnectionState};
use herald_config::{HistoryNamespace, Settings};
use herald_protocol::envelope::{Event, Hello, Resume, ResumeSub, Welcome};
use herald_protocol::{Envelope, PROTOCOL_VERSION};
use herald_tests::proxy::CutProxy;
use herald_tests::sdk::{FAST_RECONNECT, bounded, connect, stream_through_fault, wait_state};
use herald_tests::sioclient::{ClientKind, SioDriver, Transports};
use herald_tests::{RawClient, TestBroker, emit, start_broker, start_broker_on};

const NS: &str = "/h";

/// History on `/h` (and `/feeds/...`), `size` events kept.
fn with_history(size: usize) -> impl FnOnce(&mut Settings) {
    move |settings: &mut Settings| {
        settings.history.namespaces = vec![
            HistoryNamespace {
                namespace: NS.into(),
                size,
                ttl: Duration::from_secs(600),
            },
            HistoryNamespace {
                namespace: "/feeds/>".into(),
                size,
                ttl: Duration::from_secs(600),
            },
        ];
        settings.history.replay_limit = 20_000;
        settings.server.shutdown_grace = Duration::from_millis(300);
    }
}

/// `hello` with a resume point; returns the welcome.
async fn resume(client: &mut RawClient, resume: Resume) -> Welcome {
    client
        .send(&Envelope::Hello(Hello {
            version: PROTOCOL_VERSION,
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

fn resume_point(sid: &str, seq: u64, epoch: &str) -> Resume {
    Resume {
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
    }
}

fn payload(n: u64) -> Vec<u8> {
    rmp_serde::to_vec(&n).unwrap()
}

/// A subscriber to `/h` `tick` that receives event 1 and goes away:
/// its session id, the first event, and the publisher.
async fn subscriber_that_left(broker: &TestBroker) -> (String, Event, RawClient) {
    let mut subscriber = broker.connect().await;
    let sid = subscriber.hello().await.session;
    subscriber.subscribe(NS, "tick", None, false).await;
    let mut publisher = broker.client().await;
    publisher.emit_acked(emit(NS, "tick", payload(1))).await;
    let first = subscriber.expect_event().await;
    subscriber.close().await;
    (sid, first, publisher)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_carry_seq_mid_and_epoch_and_resume_replays_exactly_the_gap() {
    let broker = start_broker(with_history(100)).await;
    let (sid, first, mut publisher) = subscriber_that_left(&broker).await;
    assert_eq!(first.seq, Some(1));
    let epoch = first.epoch.clone().expect("an epoch");
    assert_eq!(
        first.message_id, None,
        "a live event carries only the publisher's mid; the broker's own is in the history"
    );

    for n in 2..=6 {
        publisher.emit_acked(emit(NS, "tick", payload(n))).await;
    }
    // An event the restored subscription does not match is not replayed.
    publisher.emit_acked(emit(NS, "other", payload(0))).await;

    let mut resumed = broker.connect().await;
    let welcome = resume(&mut resumed, resume_point(&sid, 1, &epoch)).await;
    let recovery = &welcome.recovery[NS];
    assert!(recovery.recovered, "{recovery:?}");
    assert_eq!((recovery.seq, recovery.replayed), (7, 5));
    publisher.emit_acked(emit(NS, "tick", payload(8))).await;
    let seqs: Vec<u64> = resumed
        .drain_events()
        .await
        .iter()
        .map(|e| e.seq.unwrap())
        .collect();
    assert_eq!(seqs, [2, 3, 4, 5, 6, 8], "the gap, then live, in order");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_beyond_the_history_bound_recovers_nothing() {
    let broker = start_broker(with_history(5)).await;
    let (sid, first, mut publisher) = subscriber_that_left(&broker).await;
    let epoch = first.epoch.unwrap();
    for n in 2..=11 {
        publisher.emit_acked(emit(NS, "tick", payload(n))).await;
    }
    let mut resumed = broker.connect().await;
    let welcome = resume(&mut resumed, resume_point(&sid, 1, &epoch)).await;
    let recovery = &welcome.recovery[NS];
    assert!(!recovery.recovered);
    assert_eq!((recovery.seq, recovery.replayed), (11, 0));
    resumed.assert_no_event().await;
    // The subscription was restored all the same: live events flow.
    publisher.emit_acked(emit(NS, "tick", payload(12))).await;
    assert_eq!(resumed.expect_event().await.seq, Some(12));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_over_the_replay_limit_or_with_a_bad_position_recovers_nothing() {
    let broker = start_broker(|s| {
        with_history(100)(s);
        s.history.replay_limit = 3;
    })
    .await;
    let mut publisher = broker.client().await;
    for n in 1..=5 {
        publisher.emit_acked(emit(NS, "tick", payload(n))).await;
    }
    let page = broker.get("/v1/history/tick?namespace=%2Fh&limit=1").await;
    let body: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    let epoch = body["epoch"].as_str().unwrap().to_owned();
    for (since, epoch) in [(1, epoch.as_str()), (9, epoch.as_str()), (4, "nope")] {
        let mut resumed = broker.connect().await;
        let welcome = resume(&mut resumed, resume_point("x-1", since, epoch)).await;
        assert!(!welcome.recovery[NS].recovered, "since {since}");
        resumed.assert_no_event().await;
    }
    let mut resumed = broker.connect().await;
    let welcome = resume(&mut resumed, resume_point("x-1", 2, &epoch)).await;
    assert_eq!(welcome.recovery[NS].replayed, 3, "exactly at the limit");
    assert_eq!(resumed.drain_events().await.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_changes_the_epoch_and_recovers_nothing() {
    let broker = start_broker(with_history(100)).await;
    let addr = broker.addr();
    let (sid, first, publisher) = subscriber_that_left(&broker).await;
    let epoch = first.epoch.unwrap();
    drop(publisher);
    broker.shutdown().await;

    let restarted = start_broker_on(addr, with_history(100)).await;
    let mut publisher = restarted.client().await;
    publisher.emit_acked(emit(NS, "tick", payload(2))).await;
    let mut resumed = restarted.connect().await;
    let welcome = resume(&mut resumed, resume_point(&sid, 1, &epoch)).await;
    let recovery = &welcome.recovery[NS];
    assert!(!recovery.recovered);
    assert_ne!(recovery.epoch, epoch);
    assert_eq!(recovery.seq, 1, "the new history's own count");
    resumed.assert_no_event().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_mid_is_acknowledged_and_not_delivered_again() {
    let broker = start_broker(with_history(100)).await;
    let mut subscriber = broker.client().await;
    subscriber.subscribe(NS, "tick", None, false).await;
    let mut publisher = broker.client().await;
    let with_mid = |n: u64, mid: &str| {
        let mut e = emit(NS, "tick", payload(n));
        e.message_id = Some(mid.into());
        e
    };
    assert_eq!(publisher.emit_acked(with_mid(1, "m-1")).await, 1);
    assert_eq!(publisher.emit_acked(with_mid(1, "m-1")).await, 0);
    assert_eq!(publisher.emit_acked(with_mid(2, "m-2")).await, 1);
    let events = subscriber.drain_events().await;
    let mids: Vec<_> = events
        .iter()
        .map(|e| e.message_id.clone().unwrap())
        .collect();
    assert_eq!(mids, ["m-1", "m-2"]);
    let seqs: Vec<_> = events.iter().map(|e| e.seq.unwrap()).collect();
    assert_eq!(seqs, [1, 2], "a dropped repeat takes no seq");
    // A mid that is too long is refused, naming the bound.
    let mut long = emit(NS, "tick", payload(3));
    long.message_id = Some("x".repeat(129));
    long.id = Some(99);
    publisher.send(&Envelope::Emit(long)).await;
    let error = publisher
        .expect_error(herald_protocol::ErrorCode::InvalidEnvelope)
        .await;
    assert!(error.message.contains("128"), "{}", error.message);
    let text = broker.get("/metrics").await.body;
    assert!(text.contains("herald_history_duplicates_total 1"), "{text}");
    assert!(text.contains("herald_history_events 2"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_resume_items_are_answered_and_the_rest_restored() {
    let broker = start_broker(with_history(100)).await;
    let mut resumed = broker.connect().await;
    let mut point = resume_point("x-1", 0, "e");
    point.subs.push(ResumeSub {
        ns: "bad".into(),
        ev: "tick".into(),
        q: None,
        r: false,
    });
    point.rooms.push((NS.into(), "lobby".into()));
    let welcome = resume(&mut resumed, point).await;
    assert!(!welcome.recovery[NS].recovered);
    resumed
        .expect_error(herald_protocol::ErrorCode::InvalidNamespace)
        .await;
    let mut publisher = broker.client().await;
    let mut to_room = emit(NS, "tick", payload(1));
    to_room.room = Some("lobby".into());
    assert_eq!(
        publisher.emit_acked(to_room).await,
        1,
        "sub and room restored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sdk_subscriber_cut_mid_stream_gets_every_event_once_in_order() {
    const EVENTS: u64 = 10_000;
    let broker = start_broker(with_history(20_000)).await;
    let proxy = CutProxy::start(broker.addr()).await;
    let subscriber = connect(
        Client::builder(proxy.url())
            .name("cut subscriber")
            .reconnect(FAST_RECONNECT)
            .handler_queue(EVENTS as usize),
    )
    .await;
    let publisher = connect(Client::builder(broker.url()).name("publisher")).await;
    let (got, recovery) = stream_through_fault(&subscriber, publisher, NS, EVENTS, || async {
        proxy.cut();
    })
    .await;
    let expected: Vec<u64> = (0..=EVENTS).collect();
    assert!(got == expected, "events lost, repeated or out of order");
    assert!(recovery[NS].recovered, "{recovery:?}");
    wait_state(&subscriber, "subscriber", ConnectionState::Connected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_loses_its_connection_retries_acked_emits_without_duplicates() {
    let broker = start_broker(with_history(100)).await;
    let proxy = CutProxy::start(broker.addr()).await;
    let mut subscriber = broker.client().await;
    subscriber.subscribe(NS, "tick", None, false).await;
    let publisher = connect(
        Client::builder(proxy.url())
            .name("publisher")
            .reconnect(FAST_RECONNECT),
    )
    .await;
    // The broker gets the emit, but its ack never reaches the publisher.
    proxy.hold_replies();
    let ns = publisher.of(NS);
    let sending = tokio::spawn(async move { ns.emit_acked("tick", &1u64).await });
    let first = subscriber.expect_event().await;
    proxy.cut();
    let receivers = bounded("the retried emit", sending).await.unwrap().unwrap();
    assert_eq!(receivers, 0, "the retry was recognised as a repeat");
    publisher.of(NS).emit_acked("tick", &2u64).await.unwrap();
    let next = subscriber.expect_event().await;
    assert_eq!(
        (first.seq, next.seq),
        (Some(1), Some(2)),
        "the retry was not delivered again"
    );
    subscriber.assert_no_event().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_history_api_reads_filters_and_refuses_bad_input() {
    let broker = start_broker(with_history(3)).await;
    let mut publisher = broker.client().await;
    for (n, event) in [(1, "a.x"), (2, "b.x"), (3, "a.y"), (4, "a.z")] {
        publisher.emit_acked(emit(NS, event, payload(n))).await;
    }
    let page = broker
        .get("/v1/history/a.*?namespace=%2Fh&since=0&limit=10")
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    let body: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(body["last"], 4);
    assert_eq!(body["complete"], false, "seq 1 was evicted");
    let seqs: Vec<u64> = body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4], "the pattern filters, the size bounds");
    assert_eq!(body["events"][0]["d"], 3);
    let epoch = body["epoch"].as_str().expect("the page names its epoch");
    assert_eq!(
        body["events"][0]["mid"],
        format!("{epoch}-3"),
        "without a publisher's mid the history names the event by epoch and seq"
    );
    let page = broker.get("/v1/history/a.*?namespace=%2Fh&since=3").await;
    let body: serde_json::Value = serde_json::from_str(&page.body).unwrap();
    assert_eq!(body["complete"], true);
    assert_eq!(body["events"].as_array().unwrap().len(), 1);

    for (path, status, says) in [
        (
            "/v1/history/a?namespace=%2Fh&since=x",
            400,
            "since must be an integer",
        ),
        ("/v1/history/a?namespace=%2Fh&limit=0", 400, "limit must be"),
        ("/v1/history/a?namespace=%2Fh&since=99", 400, "ahead"),
        (
            "/v1/history/a?namespace=%2Fother",
            404,
            "[[history.namespaces]]",
        ),
        ("/v1/history/a?namespace=bad", 400, "namespace"),
        ("/v1/history/a?ns=%2Fh", 400, "unknown query parameter"),
    ] {
        let response = broker.get(path).await;
        assert_eq!(response.status, status, "{path}: {}", response.body);
        assert!(response.body.contains(says), "{path}: {}", response.body);
    }
    let response = broker.post("/v1/history/a", None, b"").await;
    assert_eq!(response.status, 405);

    let plain = start_broker(|_| {}).await;
    let response = plain.get("/v1/history/a?namespace=%2Fh").await;
    assert_eq!(response.status, 404);
    assert!(response.body.contains("no_history"), "{}", response.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_history_api_answers_messagepack_when_asked() {
    let broker = start_broker(with_history(10)).await;
    let mut publisher = broker.client().await;
    publisher.emit_acked(emit(NS, "tick", payload(7))).await;
    let response = herald_tests::http_request_bytes(
        broker.addr(),
        b"GET /v1/history/tick?namespace=%2Fh HTTP/1.1\r\nHost: x\r\n\
          Accept: application/msgpack\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(response.status, 200);
    assert!(
        response.head.contains("application/msgpack"),
        "{}",
        response.head
    );
}

/// The next `tick` of socket `a`: its value, and that it carried an offset.
async fn sio_tick(driver: &mut SioDriver) -> u64 {
    let args = driver.expect_event("a", "tick").await;
    assert_eq!(args.len(), 2, "the value, then the offset: {args:?}");
    assert!(args[1].is_string(), "the offset is a string: {args:?}");
    args[0].as_u64().unwrap()
}

/// Cuts the proxy and waits until socket `a` is back, returning whether
/// it says it recovered.
async fn sio_cut(
    driver: &mut SioDriver,
    proxy: &CutProxy,
    during: impl std::future::Future,
) -> bool {
    // Down until `during` is done, so all of it falls in the gap.
    proxy.block(true);
    proxy.cut();
    driver
        .expect("the disconnect", |v| {
            v["type"] == "disconnect" && v["id"] == "a"
        })
        .await;
    during.await;
    proxy.block(false);
    let back = driver
        .expect("the reconnection", |v| {
            v["type"] == "connected" && v["id"] == "a"
        })
        .await;
    back["recovered"].as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socketio_client_recovers_its_connection_state() {
    let broker = start_broker(with_history(100)).await;
    let proxy = CutProxy::start(broker.addr()).await;
    let mut driver = SioDriver::start(ClientKind::Node).await;
    let url = format!("http://{}", proxy.addr());
    let mut cmd = SioDriver::connect_cmd("a", &url, NS, Transports::Websocket);
    cmd["reconnection"] = serde_json::json!(true);
    driver.open(cmd).await.unwrap();
    let publisher = std::sync::Arc::new(tokio::sync::Mutex::new(broker.client().await));
    let emit_range = |range: std::ops::RangeInclusive<u64>| {
        let publisher = publisher.clone();
        async move {
            let mut publisher = publisher.lock().await;
            for n in range {
                publisher.emit_acked(emit(NS, "tick", payload(n))).await;
            }
        }
    };
    emit_range(1..=3).await;
    for n in 1..=3 {
        assert_eq!(sio_tick(&mut driver).await, n);
    }

    // Cut off while 4..=6 are emitted: recovered, and they come in order.
    assert!(
        sio_cut(&mut driver, &proxy, emit_range(4..=6)).await,
        "recovered"
    );
    emit_range(7..=7).await;
    for n in 4..=7 {
        assert_eq!(
            sio_tick(&mut driver).await,
            n,
            "replayed once, in order, then live"
        );
    }

    // Cut off for longer than the history holds: not recovered, no part
    // of the gap, live events again.
    assert!(!sio_cut(&mut driver, &proxy, emit_range(8..=200)).await);
    emit_range(201..=201).await;
    assert_eq!(sio_tick(&mut driver).await, 201, "nothing of the gap");
    driver.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_reads_the_history_before_going_live_and_bad_reads_are_refused() {
    let broker = start_broker(with_history(3)).await;
    let mut publisher = broker.client().await;
    for n in 1..=5 {
        publisher.emit_acked(emit(NS, "tick", payload(n))).await;
    }
    publisher.emit_acked(emit(NS, "other", payload(9))).await;
    let client = connect(Client::builder(broker.url()).name("reader")).await;
    let ns = client.of(NS);
    let wait = Duration::from_secs(5);

    let page = ns.history("tick", 3, None, wait).await.unwrap();
    let read: Vec<(u64, u64)> = page
        .events
        .iter()
        .map(|e| (e.seq, rmp_serde::from_slice(&e.payload).unwrap()))
        .collect();
    assert_eq!(read, [(4, 4), (5, 5)], "after seq 3, `tick` only");
    assert_eq!(page.last, 6);
    assert!(page.complete);

    // Seq 1..3 are evicted (size 3): the page starts at the oldest kept.
    let page = ns.history(">", 0, Some(10), wait).await.unwrap();
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [4, 5, 6]);
    assert!(!page.complete, "events right after 0 were evicted");
    assert_eq!(page.events[2].event, "other");

    for (namespace, limit, says) in [
        ("/nohistory", None, "keeps no history"),
        (NS, Some(0), "limit must be from 1"),
        (NS, Some(20_001), "history.replay_limit"),
    ] {
        let error = client
            .of(namespace)
            .history(">", 0, limit, wait)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, herald_client::Error::Broker { message, .. } if message.contains(says)),
            "{namespace} {limit:?}: {error}"
        );
    }
    let ahead = ns.history(">", 99, None, wait).await.unwrap_err();
    assert!(
        matches!(&ahead, herald_client::Error::Remote(message) if message.contains("ahead")),
        "{ahead}"
    );
}
