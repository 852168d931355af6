//! The admin API (`/admin/api/`, PROTOCOL.md §26) against a real broker
//! and real native clients: listings with their filters, the actions and
//! their effect on the clients, the live stream (rates, the tail and its
//! pattern filter, sampling under load), and every refusal: no or wrong
//! credentials 401, read-only 403, unknown connection 404, bad filters,
//! patterns and bodies 400.

#![allow(clippy::unwrap_used)]

use herald_protocol::envelope::Hello;
use herald_protocol::{Envelope, PROTOCOL_VERSION};
use herald_tests::admin::{
    ADMIN_TOKEN, admin_get, admin_post, assert_refused, bearer, next_of, ok_json, open_stream,
    password_hash, with_admin,
};
use herald_tests::{RawClient, TestBroker, emit, start_broker};
use serde_json::Value;

/// A native client that says hello as `name`; returns it and its session id.
async fn named_client(broker: &TestBroker, name: &str) -> (RawClient, String) {
    let mut client = broker.connect().await;
    client
        .send(&Envelope::Hello(Hello {
            version: PROTOCOL_VERSION,
            client: Some(name.into()),
            ..Hello::default()
        }))
        .await;
    match client.recv().await {
        Envelope::Welcome(welcome) => (client, welcome.session),
        other => panic!("expected welcome, got {other:?}"),
    }
}

fn sids(listing: &Value) -> Vec<String> {
    listing["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["sid"].as_str().unwrap().to_owned())
        .collect()
}

async fn get(broker: &TestBroker, path: &str) -> Value {
    ok_json(&admin_get(broker.addr(), path, Some(&bearer())).await)
}

#[tokio::test]
async fn the_console_is_off_by_default() {
    let broker = start_broker(|_| {}).await;
    let page = admin_get(broker.addr(), "/admin", None).await;
    assert_eq!(page.status, 404, "{page:?}");
    let api = admin_get(broker.addr(), "/admin/api/overview", Some(&bearer())).await;
    assert_eq!(api.status, 404, "{api:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn connections_namespaces_and_rooms_are_listed_and_filtered() {
    let broker = start_broker(with_admin).await;
    let (mut alpha, alpha_sid) = named_client(&broker, "alpha-service").await;
    alpha.subscribe("/chat", "msg.*", None, false).await;
    alpha.subscribe("/chat", "typing", None, false).await;
    alpha.join("/chat", "lobby").await;
    let (mut beta, beta_sid) = named_client(&broker, "beta-worker").await;
    beta.subscribe("/orders", "order.created", Some("billing"), false)
        .await;

    let all = get(&broker, "/admin/api/connections").await;
    assert_eq!(all["total"], 2, "{all}");
    let alpha_json = all["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sid"] == alpha_sid.as_str())
        .unwrap();
    assert_eq!(alpha_json["transport"], "websocket");
    assert_eq!(alpha_json["client"], "alpha-service");
    assert_eq!(alpha_json["namespaces"][0]["name"], "/chat");
    assert_eq!(alpha_json["namespaces"][0]["subscriptions"], 2);
    assert_eq!(alpha_json["rooms"][0]["room"], "lobby");
    assert_eq!(alpha_json["queue"]["frames"], 0);
    assert_eq!(alpha_json["dropped"], 0);

    let by_ns = get(&broker, "/admin/api/connections?namespace=/chat").await;
    assert_eq!(sids(&by_ns), [alpha_sid.as_str()]);
    let by_room = get(&broker, "/admin/api/connections?room=lobby").await;
    assert_eq!(sids(&by_room), [alpha_sid.as_str()]);
    let by_client = get(&broker, "/admin/api/connections?client=BETA").await;
    assert_eq!(sids(&by_client), [beta_sid.as_str()]);
    let by_transport = get(&broker, "/admin/api/connections?transport=socketio-polling").await;
    assert_eq!(by_transport["total"], 0);
    let limited = get(&broker, "/admin/api/connections?limit=1").await;
    assert_eq!(
        (limited["total"].as_u64(), sids(&limited).len()),
        (Some(2), 1)
    );
    let one = get(&broker, &format!("/admin/api/connections/{beta_sid}")).await;
    assert_eq!(one["client"], "beta-worker");

    let namespaces = get(&broker, "/admin/api/namespaces").await;
    let list = namespaces["namespaces"].as_array().unwrap();
    let chat = list.iter().find(|n| n["name"] == "/chat").unwrap();
    assert_eq!(
        (chat["connections"].as_u64(), chat["subscriptions"].as_u64()),
        (Some(1), Some(2))
    );
    assert_eq!(chat["rooms"][0]["name"], "lobby");
    assert_eq!(chat["rooms"][0]["members"], 1);
    assert!(list.iter().any(|n| n["name"] == "/orders"), "{namespaces}");

    let overview = get(&broker, "/admin/api/overview").await;
    assert_eq!(overview["connections"], 2);
    assert_eq!(overview["nodes"][0]["health"], "ok");
    assert_eq!(overview["nodes"][0]["self"], true);
    assert!(
        overview["counters"]["slow_consumers"].is_u64(),
        "{overview}"
    );
    let nodes = get(&broker, "/admin/api/nodes").await;
    assert_eq!(nodes["nodes"].as_array().unwrap().len(), 1);

    // Unsubscribing shows at once.
    alpha.unsubscribe("/chat", "typing", None, false).await;
    let after = get(&broker, &format!("/admin/api/connections/{alpha_sid}")).await;
    assert_eq!(after["namespaces"][0]["subscriptions"], 1);
    drop(beta);
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_filters_are_refused_with_400_naming_the_problem() {
    let broker = start_broker(with_admin).await;
    for (query, mentions) in [
        ("transport=carrier-pigeon", "transport"),
        ("namespace=chat", "namespace"),
        ("room=", ""),
        ("limit=0", "limit"),
        ("limit=many", "limit"),
        ("colour=blue", "unknown filter"),
    ] {
        let response = admin_get(
            broker.addr(),
            &format!("/admin/api/connections?{query}"),
            Some(&bearer()),
        )
        .await;
        if mentions.is_empty() {
            assert_eq!(
                response.status, 200,
                "an empty filter is no filter: {response:?}"
            );
            continue;
        }
        assert_refused(&response, 400, "bad_request");
        assert!(response.body.contains(mentions), "{query}: {response:?}");
    }
    let missing = admin_get(broker.addr(), "/admin/api/nothing", Some(&bearer())).await;
    assert_refused(&missing, 404, "not_found");
    let wrong_method =
        admin_post(broker.addr(), "/admin/api/connections", Some(&bearer()), "").await;
    assert_refused(&wrong_method, 405, "method_not_allowed");
    broker.shutdown().await;
}

#[tokio::test]
async fn credentials_are_required_and_checked() {
    let hash = password_hash("correct horse");
    let broker = start_broker(|s| {
        with_admin(s);
        s.admin.password_hash = hash;
    })
    .await;
    let addr = broker.addr();
    // The page holds no data: it is served without credentials.
    let page = admin_get(addr, "/admin", None).await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.head.to_ascii_lowercase().contains("text/html"));
    assert!(page.body.contains("Herald admin"));

    let path = "/admin/api/overview";
    assert_refused(&admin_get(addr, path, None).await, 401, "unauthorized");
    let wrong = admin_get(addr, path, Some("Bearer not-the-admin-token-at-all")).await;
    assert_refused(&wrong, 401, "unauthorized");
    ok_json(&admin_get(addr, path, Some(&bearer())).await);
    let basic = |user: &str, password: &str| {
        use base64::Engine;
        let raw = format!("{user}:{password}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    ok_json(&admin_get(addr, path, Some(&basic("admin", "correct horse"))).await);
    let bad_password = admin_get(addr, path, Some(&basic("admin", "wrong horse"))).await;
    assert_refused(&bad_password, 401, "unauthorized");
    let bad_user = admin_get(addr, path, Some(&basic("root", "correct horse"))).await;
    assert_refused(&bad_user, 401, "unauthorized");
    let garbled = admin_get(addr, path, Some("Basic !!!")).await;
    assert_refused(&garbled, 401, "unauthorized");
    // The stream too: a wrong header is refused before the upgrade, a
    // wrong first message closes it with 1008.
    assert!(
        open_stream(addr, "", Some("Bearer nope-nope-nope-nope"))
            .await
            .is_err()
    );
    let mut ws = open_stream(addr, "", None).await.unwrap();
    use futures_util::{SinkExt, StreamExt};
    ws.send(tokio_tungstenite::tungstenite::Message::text(
        r#"{"authorization":"Bearer wrong-wrong-wrong-wrong"}"#,
    ))
    .await
    .unwrap();
    let closed = tokio::time::timeout(herald_tests::TIMEOUT, ws.next())
        .await
        .unwrap();
    match closed {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 1008);
        }
        other => panic!("expected a 1008 close, got {other:?}"),
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn the_actions_reach_the_clients() {
    let broker = start_broker(with_admin).await;
    let addr = broker.addr();
    let auth = Some(bearer());
    let auth = auth.as_deref();
    let (mut alpha, alpha_sid) = named_client(&broker, "alpha").await;
    alpha.subscribe("/chat", ">", None, false).await;
    alpha.join("/chat", "lobby").await;
    let (mut beta, beta_sid) = named_client(&broker, "beta").await;
    beta.subscribe("/chat", ">", None, false).await;

    // Emit: to the namespace, then to a room.
    let sent = admin_post(
        addr,
        "/admin/api/emit",
        auth,
        r#"{"namespace":"/chat","event":"notice","payload":{"text":"maintenance at noon"}}"#,
    )
    .await;
    assert_eq!(ok_json(&sent)["receivers"], 2);
    for client in [&mut alpha, &mut beta] {
        let event = client.expect_event().await;
        assert_eq!(event.event, "notice");
        let payload: Value = rmp_serde::from_slice(&event.payload).unwrap();
        assert_eq!(payload["text"], "maintenance at noon");
    }
    let to_room = admin_post(
        addr,
        "/admin/api/emit",
        auth,
        r#"{"namespace":"/chat","event":"notice","room":"lobby","payload":1}"#,
    )
    .await;
    assert_eq!(ok_json(&to_room)["receivers"], 1);
    assert_eq!(alpha.expect_event().await.room.as_deref(), Some("lobby"));
    beta.assert_no_event().await;

    // Leave: alpha is taken out of the lobby; the next room emit misses it.
    let left = admin_post(
        addr,
        &format!("/admin/api/connections/{alpha_sid}/leave"),
        auth,
        r#"{"namespace":"/chat","room":"lobby"}"#,
    )
    .await;
    ok_json(&left);
    let listed = get(&broker, &format!("/admin/api/connections/{alpha_sid}")).await;
    assert_eq!(listed["rooms"].as_array().unwrap().len(), 0, "{listed}");
    let nobody = admin_post(
        addr,
        "/admin/api/emit",
        auth,
        r#"{"namespace":"/chat","event":"notice","room":"lobby"}"#,
    )
    .await;
    assert_eq!(ok_json(&nobody)["receivers"], 0);
    alpha.assert_no_event().await;

    // Disconnect: beta is closed with `kicked`.
    let kicked = admin_post(
        addr,
        &format!("/admin/api/connections/{beta_sid}/disconnect"),
        auth,
        "",
    )
    .await;
    ok_json(&kicked);
    let (code, reason) = beta.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "kicked"));
    broker
        .wait_for_stats("beta closed as kicked", |s| {
            s.closed(herald_protocol::CloseReason::Kicked) == 1
        })
        .await;

    // Unknown connections and bad bodies.
    let unknown = "/admin/api/connections/herald-000000000000-1/disconnect";
    assert_refused(
        &admin_post(addr, unknown, auth, "").await,
        404,
        "unknown_session",
    );
    let unknown_leave = admin_post(
        addr,
        "/admin/api/connections/nobody-7/leave",
        auth,
        r#"{"namespace":"/chat","room":"lobby"}"#,
    )
    .await;
    assert_refused(&unknown_leave, 404, "unknown_session");
    let path = format!("/admin/api/connections/{alpha_sid}/leave");
    assert_refused(
        &admin_post(addr, &path, auth, "{").await,
        400,
        "bad_request",
    );
    let bad_room = admin_post(addr, &path, auth, r#"{"namespace":"/chat","room":""}"#).await;
    assert_refused(&bad_room, 400, "bad_request");
    let bad_event = admin_post(
        addr,
        "/admin/api/emit",
        auth,
        r#"{"namespace":"/chat","event":"a..b"}"#,
    )
    .await;
    assert_refused(&bad_event, 400, "invalid_event");
    let extra = admin_post(
        addr,
        "/admin/api/emit",
        auth,
        r#"{"namespace":"/","event":"x","colour":1}"#,
    )
    .await;
    assert_refused(&extra, 400, "bad_request");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_read_only_console_refuses_the_actions() {
    let broker = start_broker(|s| {
        with_admin(s);
        s.admin.read_only = true;
    })
    .await;
    let (_client, sid) = named_client(&broker, "c").await;
    let auth = bearer();
    for (path, body) in [
        (format!("/admin/api/connections/{sid}/disconnect"), ""),
        (
            format!("/admin/api/connections/{sid}/leave"),
            r#"{"namespace":"/","room":"r"}"#,
        ),
        (
            "/admin/api/emit".to_owned(),
            r#"{"namespace":"/","event":"e"}"#,
        ),
    ] {
        let response = admin_post(broker.addr(), &path, Some(&auth), body).await;
        assert_refused(&response, 403, "read_only");
        assert!(response.body.contains("admin.read_only"), "{response:?}");
    }
    assert_eq!(get(&broker, "/admin/api/overview").await["read_only"], true);
    assert_eq!(
        broker.stats().closed(herald_protocol::CloseReason::Kicked),
        0
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn the_stream_carries_rates_and_a_filtered_tail() {
    let broker = start_broker(with_admin).await;
    let addr = broker.addr();
    // A bad filter is refused before the upgrade.
    let bad = admin_get(addr, "/admin/api/stream?pattern=order..x", Some(&bearer())).await;
    assert_refused(&bad, 400, "bad_request");
    assert!(bad.body.contains("pattern"), "{bad:?}");
    let bad_ns = admin_get(addr, "/admin/api/stream?namespace=orders", Some(&bearer())).await;
    assert_refused(&bad_ns, 400, "bad_request");

    let mut ws = open_stream(addr, "pattern=order.*", Some(&bearer()))
        .await
        .unwrap();
    // The tail is open once the stream says so.
    next_of(&mut ws, "open").await.unwrap();
    let mut publisher = broker.client().await;
    let payload = rmp_serde::to_vec_named(&serde_json::json!({"id": 7, "item": "tea"})).unwrap();
    publisher
        .emit_acked(emit("/shop", "cart.updated", vec![0xc0]))
        .await;
    publisher
        .emit_acked(emit("/shop", "order.created", payload))
        .await;
    let event = next_of(&mut ws, "event").await.unwrap();
    assert_eq!(event["ns"], "/shop");
    assert_eq!(
        event["event"], "order.created",
        "the pattern filter lets only order.* through"
    );
    assert_eq!(event["payload"]["item"], "tea");
    assert!(event["from"].as_str().is_some(), "{event}");
    // Within a few seconds the rates show the namespace's emits.
    let mut seen = false;
    for _ in 0..5 {
        let rates = next_of(&mut ws, "rates").await.unwrap();
        if rates["namespaces"]["/shop"].as_f64().unwrap_or(0.0) > 0.0 {
            assert!(rates["counters"]["events_received"].as_u64().unwrap() >= 2);
            seen = true;
            break;
        }
    }
    assert!(seen, "a rates message counted /shop");
    broker.shutdown().await;
}

#[tokio::test]
async fn the_tail_is_sampled_under_load_and_drops_are_counted() {
    let broker = start_broker(|s| {
        with_admin(s);
        s.admin.tail_rate = 5;
    })
    .await;
    let mut ws = open_stream(broker.addr(), "", Some(&format!("Bearer {ADMIN_TOKEN}")))
        .await
        .unwrap();
    next_of(&mut ws, "open").await.unwrap();
    let mut publisher = broker.client().await;
    for i in 0..300u32 {
        publisher
            .emit(emit("/load", "tick", vec![0xcd, (i >> 8) as u8, i as u8]))
            .await;
    }
    publisher.barrier().await;
    // Every emit was either sampled or counted as dropped; the samples are
    // at most the budget (5) per second the stream was open.
    let mut events = 0u64;
    let mut seconds = 1u64;
    let dropped = loop {
        let message = tokio::time::timeout(
            herald_tests::TIMEOUT,
            futures_util::StreamExt::next(&mut ws),
        )
        .await
        .unwrap()
        .unwrap()
        .unwrap();
        let value: Value = serde_json::from_str(message.to_text().unwrap()).unwrap();
        match value["type"].as_str() {
            Some("event") => events += 1,
            Some("rates") => {
                let dropped = value["dropped_samples"].as_u64().unwrap();
                if dropped + events == 300 {
                    break dropped;
                }
                seconds += 1;
                assert!(
                    seconds < 30,
                    "the samples and drops never added up: {value}"
                );
            }
            _ => {}
        }
    };
    assert!(
        events <= 5 * seconds,
        "{events} samples in {seconds} s with tail_rate = 5"
    );
    assert!(dropped >= 300 - 5 * seconds, "{dropped} dropped");
    // The broker delivered nothing less for it.
    assert_eq!(broker.stats().events_received, 300);
    broker.shutdown().await;
}

/// A node of a cluster over `redis`, with the admin console on.
async fn cluster_node(redis: &herald_tests::cluster::RedisServer, id: &str) -> TestBroker {
    let url = redis.url();
    start_broker(|s| {
        with_admin(s);
        s.cluster.backend = herald_config::ClusterBackend::Redis;
        s.cluster.redis_url = url;
        s.cluster.prefix = "admin".to_owned();
        s.cluster.node_id = id.to_owned();
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_cluster_the_nodes_are_listed_and_a_room_leave_reaches_another_node() {
    let redis = herald_tests::cluster::RedisServer::start().await;
    let a = cluster_node(&redis, "node-a").await;
    let b = cluster_node(&redis, "node-b").await;
    herald_tests::cluster::poll_until("node A's console to list node B as live", || async {
        let nodes = get(&a, "/admin/api/nodes").await;
        nodes["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["id"] == "node-b" && n["self"] == false && n["health"] == "live")
    })
    .await;
    let nodes = get(&a, "/admin/api/nodes").await;
    assert_eq!(nodes["nodes"][0]["id"], "node-a");
    assert_eq!(nodes["nodes"][0]["health"], "ok");

    // A connection of node B leaves a room at node A's console's request.
    let (mut member, sid) = named_client(&b, "member").await;
    member.join("/chat", "lobby").await;
    let left = admin_post(
        a.addr(),
        &format!("/admin/api/connections/{sid}/leave"),
        Some(&bearer()),
        r#"{"namespace":"/chat","room":"lobby"}"#,
    )
    .await;
    ok_json(&left);
    herald_tests::cluster::poll_until("node B to move its connection out of the lobby", || async {
        get(&b, &format!("/admin/api/connections/{sid}")).await["rooms"] == serde_json::json!([])
    })
    .await;
    // Node A lists its own connections only; B's is not its to disconnect.
    let elsewhere = admin_post(
        a.addr(),
        &format!("/admin/api/connections/{sid}/disconnect"),
        Some(&bearer()),
        "",
    )
    .await;
    assert_refused(&elsewhere, 404, "unknown_session");
    drop(member);
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn with_an_operator_listener_the_console_is_served_there_only() {
    let broker = start_broker(|s| {
        with_admin(s);
        s.server.operator_listen = "127.0.0.1:0".into();
    })
    .await;
    let operator = broker
        .handle()
        .operator_addr()
        .expect("the operator listener is bound");
    let on_main = admin_get(broker.addr(), "/admin/api/overview", Some(&bearer())).await;
    assert_refused(&on_main, 404, "not_found");
    assert_eq!(admin_get(broker.addr(), "/admin", None).await.status, 404);
    let on_operator = ok_json(&admin_get(operator, "/admin/api/overview", Some(&bearer())).await);
    assert_eq!(on_operator["connections"], 0);
    assert_eq!(admin_get(operator, "/admin", None).await.status, 200);
    assert_refused(
        &admin_get(operator, "/admin/api/overview", None).await,
        401,
        "unauthorized",
    );
    broker.shutdown().await;
}
