//! Presence on one node (PROTOCOL.md §6.7): `GET /v1/presence/{ns}` lists
//! who is connected, in a namespace or a room, with a limit; subscribers
//! of `$presence.join` / `$presence.leave` hear comings and goings; bad
//! requests and forbidden ones are refused with a named error.

use std::time::Duration;

use herald_protocol::envelope::Event;
use herald_tests::auth::{claims, hs256, mint};
use herald_tests::{TestBroker, start_broker};
use serde_json::{Value, json};

/// Longest a presence change may take to show.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `GET path` (with a bearer token, when given), its status and JSON body.
async fn get_json(broker: &TestBroker, path: &str, token: Option<&str>) -> (u16, Value) {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let addr = broker.addr();
    let response = herald_tests::http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"),
    )
    .await;
    let body = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {}", response.body));
    (response.status, body)
}

/// Polls `path` until its `count` is `expected` (bounded).
async fn wait_count(broker: &TestBroker, path: &str, expected: u64) -> Value {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let (status, body) = get_json(broker, path, None).await;
        assert_eq!(status, 200, "{path}: {body}");
        if body["count"] == expected {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: count stayed {} (expected {expected})",
            body["count"]
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sids(body: &Value) -> Vec<String> {
    body["members"]
        .as_array()
        .map(|members| {
            members
                .iter()
                .filter_map(|m| m["sid"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// The payload of a presence event, as JSON.
fn member_of(event: &Event) -> Value {
    rmp_serde::from_slice(&event.payload).expect("a MessagePack map")
}

#[tokio::test]
async fn presence_lists_a_namespace_and_its_rooms_with_a_limit() {
    let broker = start_broker(|_| {}).await;
    let mut alice = broker.connect().await;
    let alice_sid = alice.hello().await.session;
    let mut bob = broker.connect().await;
    let bob_sid = bob.hello().await.session;
    let (status, empty) = get_json(&broker, "/v1/presence/chat", None).await;
    assert_eq!((status, empty["count"].as_u64()), (200, Some(0)), "{empty}");

    alice.subscribe("/chat", "msg.*", None, false).await;
    bob.join("/chat", "lobby").await;
    let all = wait_count(&broker, "/v1/presence/chat", 2).await;
    let mut expected = vec![alice_sid.clone(), bob_sid.clone()];
    expected.sort();
    assert_eq!(sids(&all), expected);
    let first = &all["members"][0];
    assert_eq!(first["transport"], "native", "{all}");
    assert_eq!(first["client"], "herald-tests", "{all}");
    assert_eq!(all["complete"], true);
    assert_eq!(all["truncated"], false);

    let lobby = wait_count(&broker, "/v1/presence/chat?room=lobby", 1).await;
    assert_eq!(sids(&lobby), std::slice::from_ref(&bob_sid));
    assert_eq!(lobby["members"][0]["rooms"], json!(["lobby"]));

    let (_, limited) = get_json(&broker, "/v1/presence/chat?limit=1", None).await;
    assert_eq!(limited["count"], 2);
    assert_eq!(limited["truncated"], true);
    assert_eq!(sids(&limited).len(), 1);

    // Other namespaces are apart; the root namespace is `/v1/presence`.
    wait_count(&broker, "/v1/presence/other", 0).await;
    wait_count(&broker, "/v1/presence", 0).await;

    // Leaving the last room, or closing, makes a connection absent.
    bob.leave("/chat", "lobby").await;
    let after = wait_count(&broker, "/v1/presence/chat", 1).await;
    assert_eq!(sids(&after), [alice_sid]);
    alice.close().await;
    wait_count(&broker, "/v1/presence/chat", 0).await;
    bob.close().await;
}

#[tokio::test]
async fn subscribers_who_ask_hear_joins_and_leaves() {
    let broker = start_broker(|_| {}).await;
    let mut watcher = broker.client().await;
    watcher
        .subscribe("/chat", "$presence.join", None, false)
        .await;
    watcher
        .subscribe("/chat", "$presence.leave", None, false)
        .await;
    // A catch-all subscription does not receive them (§6.6).
    let mut catch_all = broker.client().await;
    catch_all.subscribe("/chat", ">", None, false).await;
    let joined = watcher.expect_event().await;
    assert_eq!(joined.event, "$presence.join");

    let mut carol = broker.connect().await;
    let carol_sid = carol.hello().await.session;
    carol.subscribe("/chat", "msg.*", None, false).await;
    let joined = watcher.expect_event().await;
    assert_eq!(
        (joined.event.as_str(), joined.room.as_deref()),
        ("$presence.join", None)
    );
    let member = member_of(&joined);
    assert_eq!(member["sid"], carol_sid.as_str());
    assert_eq!(member["transport"], "native");
    assert_eq!(joined.from.as_deref(), Some(carol_sid.as_str()));

    // A room change is told to that room's members.
    watcher.join("/chat", "lobby").await;
    carol.join("/chat", "lobby").await;
    let room_join = watcher.expect_event().await;
    assert_eq!(room_join.room.as_deref(), Some("lobby"));
    assert_eq!(member_of(&room_join)["sid"], carol_sid.as_str());

    carol.close().await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let event = watcher.expect_event().await;
        assert_eq!(event.event, "$presence.leave");
        seen.push(event.room);
    }
    seen.sort();
    assert_eq!(seen, [None, Some("lobby".to_owned())]);
    catch_all.assert_no_event().await;
    watcher.assert_no_event().await;
}

#[tokio::test]
async fn bad_presence_requests_are_refused_with_a_named_error() {
    let broker = start_broker(|_| {}).await;
    for (path, status, code) in [
        ("/v1/presence/bad..ns", 400, "invalid_namespace"),
        ("/v1/presence/chat/", 400, "invalid_namespace"),
        ("/v1/presence/chat?limit=0", 400, "invalid_query"),
        ("/v1/presence/chat?limit=100000", 400, "invalid_query"),
        ("/v1/presence/chat?room=", 400, "invalid_room"),
        ("/v1/presence/chat?who=all", 400, "invalid_query"),
    ] {
        let (got, body) = get_json(&broker, path, None).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
    }
    let long_room = "r".repeat(200);
    let (got, body) = get_json(
        &broker,
        &format!("/v1/presence/chat?room={long_room}"),
        None,
    )
    .await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (400, Some("invalid_room"))
    );
    let post = broker.post("/v1/presence/chat", None, b"").await;
    assert_eq!(post.status, 405, "{}", post.body);
    broker.assert_healthy().await;
}

#[tokio::test]
async fn presence_needs_the_token_and_the_permission() {
    let broker = start_broker(hs256).await;
    let (status, body) = get_json(&broker, "/v1/presence/chat", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let reader = mint(&claims(
        "ops",
        json!({"ns": {"/chat": {"subscribe": {"allow": ["$presence.*"]}, "join": {"allow": ["lobby"]}}}}),
    ));
    let outsider = mint(&claims(
        "eve",
        json!({"ns": {"/chat": {"subscribe": {"allow": ["msg.*"]}}}}),
    ));
    let (status, body) = get_json(&broker, "/v1/presence/chat", Some(&reader)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_json(&broker, "/v1/presence/chat?room=lobby", Some(&reader)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get_json(&broker, "/v1/presence/chat?room=vip", Some(&reader)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = get_json(&broker, "/v1/presence/chat", Some(&outsider)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, body) = get_json(&broker, "/v1/presence/other", Some(&reader)).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
}

#[tokio::test]
async fn the_sdk_lists_presence_and_socketio_sockets_are_listed() {
    let broker = start_broker(|_| {}).await;
    let member = herald_tests::sdk::client(&broker, "presence-member").await;
    member
        .of("/chat")
        .join("lobby")
        .await
        .expect("the SDK joins a room");
    let sid = member.session_id().expect("a session id once connected");
    let mut socket = herald_tests::auth::SioRaw::open(broker.addr(), None).await;
    let answer = socket.connect("/chat", None).await;
    assert!(answer.starts_with("0/chat,"), "{answer}");

    let asker = herald_tests::sdk::client(&broker, "presence-asker").await;
    let chat = asker.of("/chat");
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    let listing = loop {
        let listing = chat.presence(None, None, TIMEOUT).await.expect("a listing");
        if listing.count == 2 {
            break listing;
        }
        assert!(tokio::time::Instant::now() < deadline, "{listing:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(listing.complete && !listing.truncated, "{listing:?}");
    let mut transports: Vec<&str> = listing
        .members
        .iter()
        .map(|m| m.transport.as_str())
        .collect();
    transports.sort_unstable();
    assert_eq!(transports, ["native", "websocket"], "{listing:?}");
    let native = listing
        .members
        .iter()
        .find(|m| m.transport == "native")
        .expect("the native member");
    assert_eq!(native.client.as_deref(), Some("presence-member"));
    assert_eq!(native.rooms, ["lobby"]);
    assert_eq!(native.sid, sid);

    let lobby = chat
        .presence(Some("lobby"), Some(1), TIMEOUT)
        .await
        .expect("a room listing");
    assert_eq!((lobby.count, lobby.members.len()), (1, 1), "{lobby:?}");
    // Bad input is refused by the broker, and the connection lives on.
    assert!(chat.presence(None, Some(0), TIMEOUT).await.is_err());
    assert!(chat.presence(None, Some(5000), TIMEOUT).await.is_err());
    assert!(chat.presence(None, None, TIMEOUT).await.is_ok());
}

#[tokio::test]
async fn bad_presence_list_requests_get_an_error_and_the_connection_lives_on() {
    use bytes::Bytes;
    use herald_protocol::ErrorCode;
    use herald_protocol::envelope::Envelope;
    use herald_tests::emit;

    let broker = start_broker(|_| {}).await;
    let mut client = broker.client().await;
    // Not a map, a bad limit, a bad room, a bad namespace.
    let room = rmp_serde::to_vec_named(&json!({"room": ""})).expect("encodes");
    let limit = rmp_serde::to_vec_named(&json!({"limit": 0})).expect("encodes");
    for (ns, payload, code) in [
        (
            "/chat",
            Bytes::from_static(b"\xc1"),
            ErrorCode::InvalidEnvelope,
        ),
        ("/chat", Bytes::from(limit), ErrorCode::InvalidEnvelope),
        ("/chat", Bytes::from(room), ErrorCode::InvalidRoom),
        ("chat", Bytes::new(), ErrorCode::InvalidNamespace),
    ] {
        client
            .request(emit(ns, "$presence.list", payload), 7, Some(1000))
            .await;
        let error = client.expect_error(code).await;
        assert!(!error.message.is_empty());
    }
    // Without `ack` it is an emit of a system event: refused as any.
    client
        .send(&Envelope::Emit(emit(
            "/chat",
            "$presence.list",
            Bytes::new(),
        )))
        .await;
    let before = client.barrier().await;
    assert!(
        matches!(before.as_slice(), [Envelope::Error(e)] if e.code == ErrorCode::InvalidEvent),
        "{before:?}"
    );
    // A good one is answered with a reply holding the listing.
    client
        .request(emit("/chat", "$presence.list", Bytes::new()), 8, Some(1000))
        .await;
    let reply = client.expect_reply().await;
    assert!(reply.ok);
    let listing: Value = rmp_serde::from_slice(&reply.payload).expect("a map");
    assert_eq!(listing["count"], 0, "{listing}");
    broker.assert_healthy().await;
}
