//! `auth.mode = "jwt"` for Socket.IO clients (PROTOCOL.md §22): the token
//! in the CONNECT payload or in `Authorization: Bearer` on the Engine.IO
//! handshake, the CONNECT_ERROR `unauthorized`, the default subscriptions
//! (the namespace's allowed `subscribe.allow` patterns), refusals as acks,
//! `$auth` refresh with the `$notice` `revoked`, the `token_expiring`
//! notice and the close, and `$connection` carrying the user without the
//! token. A raw Socket.IO client over the Engine.IO WebSocket transport.

use std::time::Duration;

use bytes::Bytes;
use herald_protocol::Envelope;
use herald_tests::auth::{SioRaw, claims, hs256, mint, now};
use herald_tests::{RawClient, TestBroker, emit, start_broker};
use serde_json::{Value, json};

fn chat() -> Value {
    json!({"ns": {"/chat": {
        "publish": {"allow": ["msg.*"]},
        "subscribe": {"allow": ["msg.>", "alerts.*"]},
        "join": {"allow": ["room.*"]}
    }}})
}

const UNAUTHORIZED: &str = r#"4/chat,{"message":"unauthorized","data":{"code":"unauthorized"}}"#;

/// A native client allowed to do everything in `/chat`.
async fn native(broker: &TestBroker) -> RawClient {
    let everything = json!({"ns": {"/chat": {
        "publish": {"allow": [">"]},
        "subscribe": {"allow": [">", "$connection"]}
    }}});
    let mut client = broker.connect().await;
    match client
        .hello_token(Some(&mint(&claims("svc", everything))))
        .await
    {
        Envelope::Welcome(_) => client,
        other => panic!("expected welcome, got {other:?}"),
    }
}

async fn connected(broker: &TestBroker, token: &str) -> SioRaw {
    let mut sio = SioRaw::open(broker.addr(), None).await;
    let answer = sio.connect("/chat", Some(&json!({"token": token}))).await;
    assert!(answer.starts_with("0/chat,{\"sid\""), "{answer}");
    sio
}

#[tokio::test]
async fn a_token_in_connect_or_on_the_handshake_is_required() {
    let broker = start_broker(hs256).await;
    let token = mint(&claims("sio-user", chat()));
    connected(&broker, &token).await;

    let mut bearer = SioRaw::open(broker.addr(), Some(&token)).await;
    let answer = bearer.connect("/chat", None).await;
    assert!(answer.starts_with("0/chat,{\"sid\""), "{answer}");

    for auth in [
        None,
        Some(json!({"token": "garbage"})),
        Some(json!({"other": 1})),
    ] {
        let mut refused = SioRaw::open(broker.addr(), None).await;
        assert_eq!(refused.connect("/chat", auth.as_ref()).await, UNAUTHORIZED);
    }
    let mut bad_bearer = SioRaw::open(broker.addr(), Some("garbage")).await;
    assert_eq!(bad_bearer.connect("/chat", None).await, UNAUTHORIZED);
    let stats = broker.stats();
    assert_eq!(stats.auth_failed("missing"), 2);
    assert_eq!(stats.auth_failed("invalid"), 2);
}

#[tokio::test]
async fn the_default_subscriptions_are_the_allowed_patterns_and_refusals_are_acks() {
    let broker = start_broker(hs256).await;
    let mut sio = connected(&broker, &mint(&claims("u", chat()))).await;
    let mut service = native(&broker).await;
    // other.x is not in the socket's subscriptions: it reaches nobody.
    for (event, receivers) in [("other.x", 0), ("msg.hello", 1), ("alerts.fire", 1)] {
        let sent = service
            .emit_acked(emit("/chat", event, Bytes::from_static(b"\xa2hi")))
            .await;
        assert_eq!(sent, receivers, "{event}");
    }
    assert_eq!(sio.expect_event("/chat").await, json!(["msg.hello", "hi"]));
    assert_eq!(
        sio.expect_event("/chat").await,
        json!(["alerts.fire", "hi"])
    );

    // Emits: allowed with an ack (no responder), refused as forbidden.
    let ack = sio.call("/chat", 1, "other.x", &json!({})).await;
    assert_eq!(ack[0]["$error"]["code"], "forbidden", "{ack}");
    assert!(
        ack[0]["$error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("publish")),
        "{ack}"
    );
    let ack = sio.call("/chat", 2, "$subscribe", &json!(">")).await;
    assert_eq!(
        ack,
        json!([{"ok": false, "error": {"code": "forbidden",
        "message": "subscribe \">\" in \"/chat\" is not allowed by this connection's token"}}])
    );
    let ack = sio.call("/chat", 3, "$join", &json!("lobby")).await;
    assert_eq!(ack[0]["error"]["code"], "forbidden", "{ack}");
    let ack = sio.call("/chat", 4, "$join", &json!("room.1")).await;
    assert_eq!(ack, json!([{"ok": true}]));
    assert_eq!(broker.stats().forbidden("publish"), 1);
}

#[tokio::test]
async fn auth_refresh_narrows_with_a_revoked_notice() {
    let broker = start_broker(hs256).await;
    let mut sio = connected(&broker, &mint(&claims("u", chat()))).await;
    assert_eq!(
        sio.call("/chat", 1, "$join", &json!("room.1")).await,
        json!([{"ok": true}])
    );
    let narrow = json!({"ns": {"/chat": {"subscribe": {"allow": ["msg.>"]}}}});
    sio.send(&format!(
        "2/chat,2{}",
        json!(["$auth", {"token": mint(&claims("u", narrow))}])
    ))
    .await;
    let notice = sio.expect_event("/chat").await;
    assert_eq!(notice[0], "$notice");
    assert_eq!(notice[1]["code"], "revoked");
    let mut revoked: Vec<String> = notice[1]["revoked"]
        .as_array()
        .expect("a list")
        .iter()
        .map(|r| {
            format!(
                "{}|{}",
                r["ev"].as_str().unwrap_or("-"),
                r["room"].as_str().unwrap_or("-")
            )
        })
        .collect();
    revoked.sort();
    assert_eq!(revoked, ["-|room.1", "alerts.*|-"]);
    assert_eq!(sio.recv().await, r#"3/chat,2[{"ok":true}]"#);
    // A bad token is refused; another user's too.
    let ack = sio
        .call("/chat", 3, "$auth", &json!({"token": "garbage"}))
        .await;
    assert_eq!(ack[0]["error"]["code"], "unauthorized", "{ack}");
    let ack = sio
        .call(
            "/chat",
            4,
            "$auth",
            &json!({"token": mint(&claims("other", chat()))}),
        )
        .await;
    assert_eq!(ack[0]["error"]["code"], "unauthorized", "{ack}");
    let mut service = native(&broker).await;
    assert_eq!(
        service
            .emit_acked(emit("/chat", "alerts.fire", Bytes::from_static(b"\xc0")))
            .await,
        0
    );
    assert_eq!(broker.stats().token_refreshes, 1);
}

#[tokio::test]
async fn an_expiring_socket_gets_a_notice_then_is_closed() {
    let broker = start_broker(|s| {
        hs256(s);
        s.auth.expiry_notice = Duration::from_secs(1);
        s.auth.expiry_grace = Duration::ZERO;
        s.auth.leeway = Duration::ZERO;
    })
    .await;
    let exp = now() + 2;
    let mut sio = connected(
        &broker,
        &mint(&json!({"sub": "u", "exp": exp, "herald": chat()})),
    )
    .await;
    let notice = sio.expect_event("/chat").await;
    assert_eq!(notice[0], "$notice");
    assert_eq!(notice[1]["code"], "token_expiring");
    assert_eq!(notice[1]["exp"], exp);
    sio.expect_end().await;
    assert!(now() >= exp);
    broker
        .wait_for_stats("the expiry counted", |s| s.token_expired == 1)
        .await;
}

#[tokio::test]
async fn connection_events_carry_the_user_and_not_the_token() {
    let broker = start_broker(hs256).await;
    let mut service = native(&broker).await;
    service.subscribe("/chat", "$connection", None, false).await;
    let token = mint(&claims("alice", chat()));
    let mut sio = SioRaw::open(broker.addr(), None).await;
    let answer = sio
        .connect("/chat", Some(&json!({"token": token, "room": "eu"})))
        .await;
    assert!(answer.starts_with("0/chat,"), "{answer}");
    let event = service.expect_event().await;
    assert_eq!(event.event, "$connection");
    let payload: Value = rmp_serde::from_slice(&event.payload).expect("MessagePack");
    assert_eq!(payload["user"], "alice");
    assert_eq!(payload["auth"], json!({"room": "eu"}));
    assert_eq!(payload["transport"], "websocket");
    assert!(!String::from_utf8_lossy(&event.payload).contains(&token));
}
