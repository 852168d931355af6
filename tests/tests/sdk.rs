//! Smoke tests of the SDK (`herald-client`) against a real broker on a
//! real socket (`127.0.0.1:0`). Nothing sleeps to synchronise: events are
//! awaited through channels, each wait bounded by a timeout (helpers in
//! [`herald_tests::sdk`]).

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use herald_client::{Client, ClientEvent, ConnectionState, Error, Event, ReconnectPolicy};
use herald_tests::sdk::{bounded, client, forward, reconnecting_client, recv, wait_state};
use herald_tests::{TIMEOUT, short_grace, start_broker, start_broker_on};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The `hello` client name of the clients these tests connect.
const NAME: &str = "sdk-test";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    item: String,
}

fn order(id: u64) -> Order {
    Order {
        id,
        item: format!("item-{id}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_round_trip_between_two_clients() {
    let broker = start_broker(short_grace).await;
    let subscriber = client(&broker, NAME).await;
    let publisher = client(&broker, NAME).await;
    assert_eq!(subscriber.state(), ConnectionState::Connected);
    assert!(subscriber.session_id().is_some());
    assert_ne!(subscriber.session_id(), publisher.session_id());

    let (tx, mut rx) = mpsc::channel(16);
    subscriber
        .of("/orders")
        .on("order.created", forward::<Order>(&tx))
        .await
        .expect("subscribed");
    let orders = publisher.of("/orders");
    orders.emit("order.created", &order(1)).await.expect("emit");
    assert_eq!(
        orders
            .emit_acked("order.created", &order(2))
            .await
            .expect("acked"),
        1
    );
    assert_eq!(recv(&mut rx).await, order(1));
    assert_eq!(recv(&mut rx).await, order(2));

    // Another namespace or event does not reach the handler; order holds.
    publisher
        .of("/other")
        .emit("order.created", &order(3))
        .await
        .expect("emit");
    orders.emit("order.updated", &order(4)).await.expect("emit");
    orders.emit("order.created", &order(5)).await.expect("emit");
    assert_eq!(recv(&mut rx).await, order(5));

    publisher.close().await.expect("close");
    subscriber.close().await.expect("close");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_fan_out_to_local_handlers() {
    let broker = start_broker(short_grace).await;
    let c = client(&broker, NAME).await;
    let ns = c.of("/orders");
    let (tx, mut rx) = mpsc::channel(16);
    let tagged = |tag: &'static str| {
        let tx = tx.clone();
        move |o: Order| {
            let tx = tx.clone();
            async move {
                let _ = tx.send((tag, o.id)).await;
            }
        }
    };
    ns.on("order.*", tagged("star")).await.expect("sub");
    ns.on("order.>", tagged("rest")).await.expect("sub");
    ns.on("order.created", tagged("exact")).await.expect("sub");

    // One emit reaches all three matching handlers (the broker sends one
    // frame; the SDK fans out), a deeper name only `order.>`.
    let publisher = client(&broker, NAME).await;
    let pns = publisher.of("/orders");
    assert_eq!(pns.emit_acked("order.created", &order(1)).await.unwrap(), 1);
    pns.emit("order.eu.created", &order(2)).await.unwrap();
    pns.emit("invoice.created", &order(3)).await.unwrap();
    pns.emit("order.x", &order(4)).await.unwrap();

    let mut got = BTreeMap::new();
    for _ in 0..6 {
        let (tag, id) = recv(&mut rx).await;
        got.entry(id).or_insert_with(Vec::new).push(tag);
    }
    for tags in got.values_mut() {
        tags.sort_unstable();
    }
    assert_eq!(got[&1], ["exact", "rest", "star"]);
    assert_eq!(got[&2], ["rest"]);
    assert_eq!(got[&4], ["rest", "star"]);
    assert!(!got.contains_key(&3));

    publisher.close().await.unwrap();
    c.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_event_sees_the_event_name_and_room() {
    let broker = start_broker(short_grace).await;
    let c = client(&broker, NAME).await;
    let ns = c.of("/orders");
    ns.join("eu").await.unwrap();
    let (tx, mut rx) = mpsc::channel(16);
    ns.on_event("order.>", forward::<Event<Order>>(&tx))
        .await
        .unwrap();
    let publisher = client(&broker, NAME).await;
    let pns = publisher.of("/orders");
    pns.emit("order.eu.created", &order(1)).await.unwrap();
    pns.to("eu").emit("order.shipped", &order(2)).await.unwrap();
    let first = recv(&mut rx).await;
    assert_eq!(
        (
            first.namespace.as_str(),
            first.event.as_str(),
            first.room.as_deref()
        ),
        ("/orders", "order.eu.created", None)
    );
    assert_eq!(first.data, order(1));
    let second = recv(&mut rx).await;
    assert_eq!(
        (second.event.as_str(), second.room.as_deref()),
        ("order.shipped", Some("eu"))
    );
    assert_eq!(second.data, order(2));
    publisher.close().await.unwrap();
    c.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_group_delivers_each_event_exactly_once() {
    let broker = start_broker(short_grace).await;
    let (tx, mut rx) = mpsc::channel(64);
    let mut members = Vec::new();
    for member in 0..3_u8 {
        let c = client(&broker, NAME).await;
        let tx = tx.clone();
        c.of("/jobs")
            .on_queue("job.run", "workers", move |id: u64| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((member, id)).await;
                }
            })
            .await
            .expect("joined the group");
        members.push(c);
    }
    // A plain subscriber beside the group gets every event too.
    let watcher = client(&broker, NAME).await;
    let (wtx, mut wrx) = mpsc::channel(64);
    watcher
        .of("/jobs")
        .on("job.run", forward::<u64>(&wtx))
        .await
        .unwrap();

    let publisher = client(&broker, NAME).await;
    let jobs = publisher.of("/jobs");
    const N: u64 = 30;
    for id in 0..N {
        // One group member plus the watcher.
        assert_eq!(jobs.emit_acked("job.run", &id).await.unwrap(), 2);
    }
    let mut seen = BTreeMap::new();
    for _ in 0..N {
        let (member, id) = recv(&mut rx).await;
        assert!(
            seen.insert(id, member).is_none(),
            "job {id} delivered twice"
        );
    }
    for id in 0..N {
        assert_eq!(recv(&mut wrx).await, id, "the watcher sees publisher order");
    }
    assert_eq!(
        seen.keys().copied().collect::<Vec<_>>(),
        (0..N).collect::<Vec<_>>()
    );
    // Nothing more is on its way: a sentinel emitted last arrives next.
    jobs.emit("job.run", &N).await.unwrap();
    let (_, id) = recv(&mut rx).await;
    assert_eq!(id, N, "no duplicate arrived before the sentinel");

    for c in members {
        c.close().await.unwrap();
    }
    watcher.close().await.unwrap();
    publisher.close().await.unwrap();
    broker.shutdown().await;
}

#[derive(Debug, Serialize, Deserialize)]
struct InvoiceReq {
    order: u64,
    amount: u64,
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Invoice {
    number: String,
    total: u64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_and_its_failures() {
    let broker = start_broker(short_grace).await;
    let responder = client(&broker, NAME).await;
    let billing = responder.of("/billing");
    billing
        .on_request("invoice.create", |r: InvoiceReq| async move {
            if r.amount == 0 {
                Err(format!("order {} has nothing to bill", r.order))
            } else {
                Ok(Invoice {
                    number: format!("INV-{}", r.order),
                    total: r.amount * 2,
                })
            }
        })
        .await
        .expect("responder registered");
    billing
        .on_request("invoice.slow", |_: InvoiceReq| async move {
            std::future::pending::<()>().await;
            Ok::<u64, String>(0)
        })
        .await
        .expect("responder registered");

    let requester = client(&broker, NAME).await;
    let ns = requester.of("/billing");
    let invoice: Invoice = ns
        .request(
            "invoice.create",
            &InvoiceReq {
                order: 7,
                amount: 21,
            },
            TIMEOUT,
        )
        .await
        .expect("reply");
    assert_eq!(
        invoice,
        Invoice {
            number: "INV-7".into(),
            total: 42
        }
    );

    let failed = ns
        .request::<_, Invoice>(
            "invoice.create",
            &InvoiceReq {
                order: 8,
                amount: 0,
            },
            TIMEOUT,
        )
        .await;
    assert_eq!(
        failed,
        Err(Error::Remote("order 8 has nothing to bill".into()))
    );

    let nobody = ns
        .request::<_, Invoice>(
            "invoice.void",
            &InvoiceReq {
                order: 9,
                amount: 1,
            },
            TIMEOUT,
        )
        .await;
    assert_eq!(nobody, Err(Error::NoResponders));

    let slow = ns
        .request::<_, u64>(
            "invoice.slow",
            &InvoiceReq {
                order: 1,
                amount: 1,
            },
            Duration::from_millis(300),
        )
        .await;
    assert_eq!(slow, Err(Error::Timeout));

    // A reply that does not decode as the requested type.
    let wrong = ns
        .request::<_, String>(
            "invoice.create",
            &InvoiceReq {
                order: 1,
                amount: 1,
            },
            TIMEOUT,
        )
        .await;
    assert!(matches!(wrong, Err(Error::Decode(_))), "{wrong:?}");

    requester.close().await.unwrap();
    responder.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_and_exclude_self() {
    let broker = start_broker(short_grace).await;
    let (tx, mut inside_rx) = mpsc::channel(16);
    let inside = client(&broker, NAME).await;
    inside
        .of("/chat")
        .on("msg", forward::<String>(&tx))
        .await
        .unwrap();
    inside.of("/chat").join("eu").await.expect("joined");

    let (tx, mut outside_rx) = mpsc::channel(16);
    let outside = client(&broker, NAME).await;
    outside
        .of("/chat")
        .on("msg", forward::<String>(&tx))
        .await
        .unwrap();

    let publisher = client(&broker, NAME).await;
    let chat = publisher.of("/chat");
    assert_eq!(chat.to("eu").emit_acked("msg", "to eu").await.unwrap(), 1);
    chat.emit("msg", "to all").await.unwrap();
    assert_eq!(recv(&mut inside_rx).await, "to eu");
    assert_eq!(recv(&mut inside_rx).await, "to all");
    // The room event never reached the outsider: the next thing it sees
    // is the broadcast emitted after it.
    assert_eq!(recv(&mut outside_rx).await, "to all");

    // Excluding oneself: the sender is subscribed but not counted.
    let ns = inside.of("/chat");
    assert_eq!(
        ns.except_self().emit_acked("msg", "not me").await.unwrap(),
        1
    );
    assert_eq!(
        ns.to("eu")
            .exclude_self()
            .emit_acked("msg", "eu, not me")
            .await
            .unwrap(),
        0
    );
    assert_eq!(recv(&mut outside_rx).await, "not me");

    ns.leave("eu").await.expect("left");
    assert_eq!(chat.to("eu").emit_acked("msg", "empty").await.unwrap(), 0);

    for c in [inside, outside, publisher] {
        c.close().await.unwrap();
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_and_panics_are_reported_and_the_handler_goes_on() {
    let broker = start_broker(short_grace).await;
    let c = client(&broker, NAME).await;
    let (etx, mut errors) = mpsc::channel(16);
    c.on_error(move |event| {
        let _ = etx.try_send(event);
    });
    let (tx, mut rx) = mpsc::channel(16);
    c.of("/orders")
        .on("order.created", move |o: Order| {
            let tx = tx.clone();
            async move {
                if o.id == 13 {
                    panic!("unlucky order");
                }
                let _ = tx.send(o).await;
            }
        })
        .await
        .unwrap();

    let publisher = client(&broker, NAME).await;
    let ns = publisher.of("/orders");
    ns.emit("order.created", "not an order").await.unwrap();
    ns.emit("order.created", &order(13)).await.unwrap();
    ns.emit("order.created", &order(14)).await.unwrap();

    match recv(&mut errors).await {
        ClientEvent::Decode {
            namespace, event, ..
        } => {
            assert_eq!(
                (namespace.as_str(), event.as_str()),
                ("/orders", "order.created")
            );
        }
        other => panic!("expected a decode report, got {other:?}"),
    }
    match recv(&mut errors).await {
        ClientEvent::HandlerPanic { message, .. } => assert_eq!(message, "unlucky order"),
        other => panic!("expected a panic report, got {other:?}"),
    }
    assert_eq!(recv(&mut rx).await, order(14));

    publisher.close().await.unwrap();
    c.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_delivery() {
    let broker = start_broker(short_grace).await;
    let c = client(&broker, NAME).await;
    let ns = c.of("/orders");
    let (tx, mut rx) = mpsc::channel(16);
    let first = ns.on("order.created", forward::<Order>(&tx)).await.unwrap();
    drop(tx); // only the handler holds a sender now
    let (tx2, mut rx2) = mpsc::channel(16);
    let _second = ns.on("order.>", forward::<Order>(&tx2)).await.unwrap();

    let publisher = client(&broker, NAME).await;
    let pns = publisher.of("/orders");
    pns.emit("order.created", &order(1)).await.unwrap();
    assert_eq!(recv(&mut rx).await, order(1));
    assert_eq!(recv(&mut rx2).await, order(1));

    first.unsubscribe().await.expect("unsubscribed");
    pns.emit("order.created", &order(2)).await.unwrap();
    assert_eq!(recv(&mut rx2).await, order(2));
    // The unsubscribed handler's channel closes (its task ended) without
    // receiving order 2.
    assert_eq!(bounded("the handler task to end", rx.recv()).await, None);

    publisher.close().await.unwrap();
    c.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_gets_backpressure_not_losses() {
    let broker = start_broker(short_grace).await;
    let c = Client::builder(broker.url())
        .handler_queue(1)
        .connect()
        .await
        .unwrap();
    let (gate_tx, gate_rx) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = mpsc::channel(256);
    c.of("/slow")
        .on("tick", move |n: u64| {
            let tx = tx.clone();
            let mut gate = gate_rx.clone();
            async move {
                // Hold every event until the gate opens.
                let _ = gate.wait_for(|open| *open).await;
                let _ = tx.send(n).await;
            }
        })
        .await
        .unwrap();
    let publisher = client(&broker, NAME).await;
    let ns = publisher.of("/slow");
    const N: u64 = 100;
    for n in 0..N {
        ns.emit("tick", &n).await.unwrap();
    }
    // Everything was handed to the broker; the subscriber holds one event
    // in its handler, one in its queue, and the rest unread.
    assert_eq!(ns.emit_acked("tick", &N).await.unwrap(), 1);
    gate_tx.send(true).unwrap();
    for n in 0..=N {
        assert_eq!(recv(&mut rx).await, n);
    }
    publisher.close().await.unwrap();
    c.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_queued_emits_and_is_final() {
    let broker = start_broker(short_grace).await;
    let receiver = client(&broker, NAME).await;
    let (tx, mut rx) = mpsc::channel(256);
    receiver
        .of("/bulk")
        .on("item", forward::<u64>(&tx))
        .await
        .unwrap();

    let sender = client(&broker, NAME).await;
    let ns = sender.of("/bulk");
    for i in 0..200_u64 {
        ns.emit("item", &i).await.unwrap();
    }
    sender.close().await.expect("first close");
    for i in 0..200_u64 {
        assert_eq!(recv(&mut rx).await, i);
    }
    assert_eq!(sender.state(), ConnectionState::Closed);
    assert_eq!(sender.close().await, Err(Error::Closed));
    assert_eq!(ns.emit("item", &0_u64).await, Err(Error::Closed));
    assert_eq!(ns.join("r").await, Err(Error::Closed));
    assert!(matches!(
        ns.on("x", forward::<u64>(&tx)).await,
        Err(Error::Closed)
    ));

    receiver.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_names_fail_locally() {
    let broker = start_broker(short_grace).await;
    let c = client(&broker, NAME).await;
    assert!(matches!(
        c.of("orders").emit("x", &1).await,
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        c.of("/orders").emit("order.*", &1).await,
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        c.of("/orders").on("a..b", |_: u64| async {}).await,
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        c.of("/orders")
            .on_queue("a", "bad group", |_: u64| async {})
            .await,
        Err(Error::InvalidName(_))
    ));
    assert!(matches!(
        c.of("/orders").join("").await,
        Err(Error::InvalidName(_))
    ));
    c.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_fails_fast_without_a_broker_and_on_a_refusal() {
    // A port nobody listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let result = bounded(
        "connect() to return instead of hanging",
        Client::builder(format!("ws://{addr}"))
            .connect_timeout(Duration::from_secs(1))
            .connect(),
    )
    .await;
    assert!(matches!(result, Err(Error::Connect(_))), "{result:?}");

    // A path the broker does not serve: refused with a 4xx, not retried.
    let broker = start_broker(short_grace).await;
    let result = Client::connect(format!("ws://{}/not/herald", broker.addr())).await;
    match result {
        Err(Error::Handshake { status, reason }) => {
            assert_eq!(status, 404, "{reason}");
        }
        other => panic!("expected a handshake refusal, got {other:?}"),
    }

    // Failing over: the first URL is dead, the second is the broker.
    let c = Client::builder(format!("ws://{addr}"))
        .urls([broker.url()])
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect("second url works");
    c.close().await.unwrap();

    assert!(matches!(
        Client::connect("http://127.0.0.1:1").await,
        Err(Error::InvalidUrl(_))
    ));
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_broker_restart_and_restores_everything() {
    let broker = start_broker(short_grace).await;
    let addr = broker.addr();
    let c = reconnecting_client(&broker, NAME).await;
    let (etx, mut events) = mpsc::channel(64);
    c.on_error(move |event| {
        let _ = etx.try_send(event);
    });
    let ns = c.of("/chat");
    let (tx, mut rx) = mpsc::channel(16);
    ns.on("msg", forward::<String>(&tx)).await.unwrap();
    let (qtx, mut qrx) = mpsc::channel(16);
    ns.on_queue("job", "workers", forward::<u64>(&qtx))
        .await
        .unwrap();
    ns.on_request("echo", |s: String| async move { Ok::<String, String>(s) })
        .await
        .unwrap();
    ns.join("lobby").await.unwrap();
    assert!(c.session_id().is_some());

    broker.shutdown().await;
    // The client noticed the broker went away.
    wait_state(&c, "the client", ConnectionState::Reconnecting).await;
    loop {
        match recv(&mut events).await {
            ClientEvent::ConnectionLost { .. } => break,
            _ => continue,
        }
    }

    // While disconnected: emits are buffered, calls that need an answer fail.
    ns.emit("msg", "sent while offline")
        .await
        .expect("buffered");
    assert_eq!(ns.emit_acked("msg", "x").await, Err(Error::Disconnected));
    assert_eq!(ns.join("other").await, Err(Error::Disconnected));

    let broker = start_broker_on(addr, short_grace).await;
    wait_state(&c, "the client", ConnectionState::Connected).await;
    // A new session (the broker's ids restart with the broker, so they are
    // not compared here).
    assert!(c.session_id().is_some());

    // The buffered emit went out after the subscription was restored, so
    // it came back to this very client.
    assert_eq!(recv(&mut rx).await, "sent while offline");

    // Room membership, queue group and responder were restored.
    let other = client(&broker, NAME).await;
    let ons = other.of("/chat");
    assert_eq!(
        ons.to("lobby").emit_acked("msg", "to lobby").await.unwrap(),
        1
    );
    assert_eq!(recv(&mut rx).await, "to lobby");
    ons.emit("job", &5_u64).await.unwrap();
    assert_eq!(recv(&mut qrx).await, 5);
    let echoed: String = ons.request("echo", "hi", TIMEOUT).await.unwrap();
    assert_eq!(echoed, "hi");

    other.close().await.unwrap();
    c.close().await.unwrap();
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnect_disabled_closes_and_offline_buffer_is_bounded() {
    // Disabled: losing the broker closes the client.
    let broker = start_broker(short_grace).await;
    let c = Client::builder(broker.url())
        .reconnect(ReconnectPolicy::disabled())
        .connect()
        .await
        .unwrap();
    broker.shutdown().await;
    wait_state(&c, "the client", ConnectionState::Closed).await;
    assert_eq!(c.of("/a").emit("e", &1).await, Err(Error::Closed));

    // Enabled with a tiny buffer: the third offline emit is refused.
    let broker = start_broker(short_grace).await;
    let c = Client::builder(broker.url())
        .offline_buffer(2)
        .reconnect(ReconnectPolicy {
            initial: Duration::from_secs(30),
            max: Duration::from_secs(30),
            factor: 1.0,
            max_attempts: None,
        })
        .connect()
        .await
        .unwrap();
    broker.shutdown().await;
    wait_state(&c, "the client", ConnectionState::Reconnecting).await;
    let ns = c.of("/a");
    ns.emit("e", &1).await.unwrap();
    ns.emit("e", &2).await.unwrap();
    assert_eq!(ns.emit("e", &3).await, Err(Error::BufferFull));
    c.close().await.unwrap();
    assert_eq!(c.state(), ConnectionState::Closed);
}
