//! `auth.mode = "jwt"` end to end (PROTOCOL.md §22): tokens minted in the
//! test (HS256, and EdDSA with a key generated here), real brokers on real
//! sockets. Every permission kind allowed and refused for native clients;
//! token refusals (missing, bad signature, expired, issuer, audience,
//! algorithm, `alg: none`) with `unauthorized` and its close; tokens in
//! `hello` and in `Authorization: Bearer`; anonymous permissions; refresh
//! that widens and narrows (the `revoked` notice); expiry with and without
//! refresh; the HTTP publish API's 401/403; the metrics.

use std::time::Duration;

use bytes::Bytes;
use herald_config::ServicePowers;
use herald_protocol::envelope::{Notice, RoomChange, Subscription};
use herald_protocol::{CloseReason, Envelope, ErrorCode};
use herald_tests::auth::{
    EdKey, SECRET, alg_none, claims, connect_bearer, hs256, mint, mint_with, now, publish,
};
use herald_tests::{RawClient, TestBroker, emit, start_broker};
use serde_json::{Value, json};

/// Permissions used by most tests: namespace `/chat`.
fn chat() -> Value {
    json!({"ns": {"/chat": {
        "publish": {"allow": ["msg.*"], "deny": ["msg.admin"]},
        "subscribe": {"allow": ["msg.>", "$connection"], "deny": ["msg.secret.>"]},
        "respond": {"allow": ["rpc.*"]},
        "join": {"allow": ["room.*"]}
    }}})
}

/// A client greeted with `token`; panics unless welcomed.
async fn client_with(broker: &TestBroker, token: &str) -> RawClient {
    let mut client = broker.connect().await;
    match client.hello_token(Some(token)).await {
        Envelope::Welcome(_) => client,
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// Expects `err unauthorized` then the close `unauthorized`.
async fn expect_unauthorized(client: &mut RawClient, answer: Envelope) {
    match answer {
        Envelope::Error(error) => {
            assert_eq!(error.code, ErrorCode::Unauthorized, "{error:?}");
            assert!(
                !error.message.contains("chat") && !error.message.contains("msg"),
                "the refusal reveals nothing: {}",
                error.message
            );
        }
        other => panic!("expected err unauthorized, got {other:?}"),
    }
    let (code, reason) = client.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "unauthorized"));
}

async fn subscribe_answer(
    client: &mut RawClient,
    ns: &str,
    ev: &str,
    group: Option<&str>,
    responder: bool,
) -> Envelope {
    let id = client.next_id();
    client
        .send(&Envelope::Subscribe(Subscription {
            id: Some(id),
            namespace: ns.into(),
            event: ev.into(),
            group: group.map(str::to_owned),
            responder,
        }))
        .await;
    client.recv().await
}

async fn expect_forbidden(client: &mut RawClient, answer: Envelope, action: &str, name: &str) {
    let _ = client;
    match answer {
        Envelope::Error(error) if error.code == ErrorCode::Forbidden => {
            assert!(error.message.starts_with(action), "{}", error.message);
            assert!(error.message.contains(name), "{}", error.message);
        }
        other => panic!("expected err forbidden for {action} {name}, got {other:?}"),
    }
}

#[tokio::test]
async fn the_welcome_names_the_user_and_the_expiry() {
    let broker = start_broker(hs256).await;
    let token_claims = claims("user-42", chat());
    let mut client = broker.connect().await;
    let Envelope::Welcome(welcome) = client.hello_token(Some(&mint(&token_claims))).await else {
        panic!("expected welcome");
    };
    assert_eq!(welcome.user.as_deref(), Some("user-42"));
    assert_eq!(welcome.exp, token_claims["exp"].as_u64());
}

#[tokio::test]
async fn every_permission_kind_is_allowed_and_refused_for_native_clients() {
    let broker = start_broker(hs256).await;
    let mut alice = client_with(&broker, &mint(&claims("alice", chat()))).await;
    let mut bob = client_with(&broker, &mint(&claims("bob", chat()))).await;

    // subscribe: contained in an allow pattern, overlapping no deny.
    alice.subscribe("/chat", "msg.*", None, false).await;
    let answer = subscribe_answer(&mut alice, "/chat", ">", None, false).await;
    expect_forbidden(&mut alice, answer, "subscribe", ">").await;
    // msg.> could match the denied msg.secret.x.
    let answer = subscribe_answer(&mut alice, "/chat", "msg.>", None, false).await;
    expect_forbidden(&mut alice, answer, "subscribe", "msg.>").await;
    let answer = subscribe_answer(&mut alice, "/other", "msg.hello", None, false).await;
    expect_forbidden(&mut alice, answer, "subscribe", "/other").await;

    // publish: allowed, denied, not allowed.
    let receivers = bob
        .emit_acked(emit("/chat", "msg.hello", Bytes::from_static(b"\xa2hi")))
        .await;
    assert_eq!(receivers, 1);
    assert_eq!(alice.expect_event().await.event, "msg.hello");
    let mut denied = emit("/chat", "msg.admin", Bytes::from_static(b"\xc0"));
    denied.id = Some(bob.next_id());
    bob.emit(denied).await;
    let answer = bob.recv().await;
    expect_forbidden(&mut bob, answer, "publish", "msg.admin").await;
    let mut other = emit("/chat", "other.event", Bytes::from_static(b"\xc0"));
    other.id = Some(bob.next_id());
    bob.emit(other).await;
    let answer = bob.recv().await;
    expect_forbidden(&mut bob, answer, "publish", "other.event").await;

    // respond: a responder subscription is checked against respond.
    alice.subscribe("/chat", "rpc.add", None, true).await;
    let answer = subscribe_answer(&mut alice, "/chat", "msg.hello", None, true).await;
    expect_forbidden(&mut alice, answer, "respond", "msg.hello").await;

    // join: allowed rooms only; leaving is always allowed.
    alice.join("/chat", "room.1").await;
    let id = alice.next_id();
    alice
        .send(&Envelope::Join(RoomChange {
            id: Some(id),
            namespace: "/chat".into(),
            room: "lobby".into(),
            sid: None,
        }))
        .await;
    let answer = alice.recv().await;
    expect_forbidden(&mut alice, answer, "join", "lobby").await;
    alice.leave("/chat", "lobby").await;

    // powers: not in the claims, so no moving of others, no session rooms.
    let id = alice.next_id();
    alice
        .send(&Envelope::Join(RoomChange {
            id: Some(id),
            namespace: "/chat".into(),
            room: "room.1".into(),
            sid: Some(format!("{}-999999", "other")),
        }))
        .await;
    alice.expect_error(ErrorCode::Forbidden).await;

    // The connection stayed open through every refusal.
    alice.assert_no_event().await;
    let stats = broker.stats();
    assert_eq!(stats.forbidden("subscribe"), 3);
    assert_eq!(stats.forbidden("publish"), 2);
    assert_eq!(stats.forbidden("respond"), 1);
    assert_eq!(stats.forbidden("join"), 1);
    assert_eq!(stats.forbidden("powers"), 1);
    let metrics = broker.get("/metrics").await.body;
    assert!(
        metrics.contains("herald_forbidden_total{action=\"subscribe\"} 3"),
        "{metrics}"
    );
}

#[tokio::test]
async fn powers_come_from_the_claims_and_the_connection_kind() {
    let broker = start_broker(hs256).await;
    let mut service = client_with(
        &broker,
        &mint(&claims(
            "svc",
            json!({"ns": {"/chat": {"powers": true, "publish": {"allow": [">"]}}}}),
        )),
    )
    .await;
    // The service moves the user into a room the user may not join.
    let mut user = broker.connect().await;
    let Envelope::Welcome(welcome) = user.hello_token(Some(&mint(&claims("u", chat())))).await
    else {
        panic!("welcome");
    };
    let user_sid = welcome.session;
    user.subscribe("/chat", "msg.note", None, false).await;
    let id = service.next_id();
    service
        .send(&Envelope::Join(RoomChange {
            id: Some(id),
            namespace: "/chat".into(),
            room: "vip".into(),
            sid: Some(user_sid.clone()),
        }))
        .await;
    service.expect_ok(id).await;
    let mut to_sid = emit("/chat", "msg.note", Bytes::from_static(b"\xc0"));
    to_sid.room = Some(user_sid);
    let receivers = service.emit_acked(to_sid).await;
    assert_eq!(receivers, 1);
    assert_eq!(user.expect_event().await.event, "msg.note");
    // The user's own join of that room is refused.
    let id = user.next_id();
    user.send(&Envelope::Join(RoomChange {
        id: Some(id),
        namespace: "/chat".into(),
        room: "vip".into(),
        sid: None,
    }))
    .await;
    user.expect_error(ErrorCode::Forbidden).await;

    // With socketio.service_powers = "none", the claim alone is not enough.
    let none = start_broker(|s| {
        hs256(s);
        s.socketio.service_powers = ServicePowers::None;
    })
    .await;
    let mut service = client_with(
        &none,
        &mint(&claims("svc", json!({"ns": {"/chat": {"powers": true}}}))),
    )
    .await;
    let id = service.next_id();
    service
        .send(&Envelope::Join(RoomChange {
            id: Some(id),
            namespace: "/chat".into(),
            room: "vip".into(),
            sid: Some("someone-1".into()),
        }))
        .await;
    service.expect_error(ErrorCode::Forbidden).await;
}

#[tokio::test]
async fn bad_tokens_are_unauthorized_and_counted_by_reason() {
    let issuer_audience = |s: &mut herald_config::Settings| {
        hs256(s);
        s.auth.issuer = "https://issuer.example".into();
        s.auth.audience = "herald".into();
    };
    let broker = start_broker(issuer_audience).await;
    let good =
        json!({"sub": "u", "exp": now() + 60, "iss": "https://issuer.example", "aud": "herald"});
    // The good token is welcomed.
    client_with(&broker, &mint(&good)).await;
    let mut cases: Vec<(&str, String)> = vec![
        ("missing", String::new()),
        ("invalid", "not.a.token".into()),
        (
            "invalid",
            mint_with("another-secret-of-enough-length!!", &good),
        ),
        ("algorithm", alg_none(&good)),
    ];
    let mut expired = good.clone();
    expired["exp"] = json!(now() - 3600);
    cases.push(("expired", mint(&expired)));
    let mut wrong_issuer = good.clone();
    wrong_issuer["iss"] = json!("https://evil.example");
    cases.push(("issuer", mint(&wrong_issuer)));
    let mut no_issuer = good.clone();
    no_issuer.as_object_mut().map(|o| o.remove("iss"));
    cases.push(("issuer", mint(&no_issuer)));
    let mut wrong_audience = good.clone();
    wrong_audience["aud"] = json!("other");
    cases.push(("audience", mint(&wrong_audience)));
    let ed = EdKey::generate();
    cases.push(("algorithm", ed.mint(&good)));
    let mut bad_claim = good.clone();
    bad_claim["herald"] = json!({"ns": {"/x": {"publish": {"allow": ["a..b"]}}}});
    cases.push(("invalid", mint(&bad_claim)));
    for (reason, token) in &cases {
        let mut client = broker.connect().await;
        let token = (!token.is_empty()).then_some(token.as_str());
        let answer = client.hello_token(token).await;
        expect_unauthorized(&mut client, answer).await;
        let _ = reason;
    }
    let stats = broker.stats();
    for reason in [
        "missing",
        "invalid",
        "algorithm",
        "expired",
        "issuer",
        "audience",
    ] {
        let expected = cases.iter().filter(|(r, _)| *r == reason).count() as u64;
        assert_eq!(
            stats.auth_failed(reason),
            expected,
            "{reason}: {:?}",
            stats.auth_failures
        );
    }
    assert_eq!(stats.closed(CloseReason::Unauthorized), cases.len() as u64);
    let metrics = broker.get("/metrics").await.body;
    assert!(
        metrics.contains("herald_auth_failures_total{reason=\"expired\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn eddsa_tokens_are_verified_with_the_public_key_file() {
    let key = EdKey::generate();
    let broker = start_broker(|s| key.settings(s)).await;
    let mut client = client_with(&broker, &key.mint(&claims("ed-user", chat()))).await;
    client.subscribe("/chat", "msg.x", None, false).await;
    // Signed by another key, or with HS256 under the EdDSA broker: refused.
    for token in [
        EdKey::generate().mint(&claims("ed-user", chat())),
        mint(&claims("ed-user", chat())),
        alg_none(&claims("ed-user", chat())),
    ] {
        let mut refused = broker.connect().await;
        let answer = refused.hello_token(Some(&token)).await;
        expect_unauthorized(&mut refused, answer).await;
    }
    assert_eq!(broker.stats().auth_failed("algorithm"), 2);
}

#[tokio::test]
async fn a_bearer_token_on_the_upgrade_authenticates_the_hello() {
    let broker = start_broker(hs256).await;
    let mut client = connect_bearer(broker.addr(), &mint(&claims("bearer-user", chat()))).await;
    let Envelope::Welcome(welcome) = client.hello_token(None).await else {
        panic!("expected welcome");
    };
    assert_eq!(welcome.user.as_deref(), Some("bearer-user"));
    client.subscribe("/chat", "msg.*", None, false).await;
    // A bad header token is refused at hello, like a bad hello token.
    let mut bad = connect_bearer(broker.addr(), "garbage").await;
    let answer = bad.hello_token(None).await;
    expect_unauthorized(&mut bad, answer).await;
}

#[tokio::test]
async fn anonymous_connections_get_the_configured_permissions() {
    let broker = start_broker(|s| {
        hs256(s);
        s.auth.allow_anonymous = true;
        s.auth.anonymous = serde_json::from_value(json!({"ns": {
            "/public": {"subscribe": {"allow": ["news.>"]}}
        }}))
        .expect("rules");
    })
    .await;
    let mut anon = broker.connect().await;
    let Envelope::Welcome(welcome) = anon.hello_token(None).await else {
        panic!("welcome");
    };
    assert_eq!(welcome.user, None);
    anon.subscribe("/public", "news.>", None, false).await;
    let mut e = emit("/public", "news.today", Bytes::from_static(b"\xc0"));
    e.id = Some(anon.next_id());
    anon.emit(e).await;
    let answer = anon.recv().await;
    expect_forbidden(&mut anon, answer, "publish", "news.today").await;
    // Without allow_anonymous (the default) a token is required.
    let strict = start_broker(hs256).await;
    let mut refused = strict.connect().await;
    let answer = refused.hello_token(None).await;
    expect_unauthorized(&mut refused, answer).await;
}

#[tokio::test]
async fn refresh_widens_and_narrows_with_a_revoked_notice() {
    let broker = start_broker(hs256).await;
    let narrow = json!({"ns": {"/chat": {
        "subscribe": {"allow": ["msg.*"]}, "join": {"allow": ["room.1"]}
    }}});
    let mut client = client_with(&broker, &mint(&claims("u", narrow.clone()))).await;
    client.subscribe("/chat", "msg.a", None, false).await;
    let answer = subscribe_answer(&mut client, "/chat", "alerts.>", None, false).await;
    expect_forbidden(&mut client, answer, "subscribe", "alerts.>").await;

    // Widen: the new token allows alerts.> too.
    let wide = json!({"ns": {"/chat": {
        "subscribe": {"allow": ["msg.*", "alerts.>"]}, "join": {"allow": ["room.*"]}
    }}});
    let id = client.send_auth(&mint(&claims("u", wide))).await;
    client.expect_ok(id).await;
    client.subscribe("/chat", "alerts.>", None, false).await;
    client.join("/chat", "room.2").await;

    // Narrow: alerts.> and room.2 are revoked, msg.a stays.
    let id = client.send_auth(&mint(&claims("u", narrow))).await;
    client.expect_ok(id).await;
    let Envelope::Notice(notice) = client.recv().await else {
        panic!("expected the revoked notice");
    };
    assert_eq!(notice.code, Notice::REVOKED);
    let mut revoked: Vec<(Option<String>, Option<String>)> = notice
        .revoked
        .iter()
        .map(|r| (r.ev.clone(), r.room.clone()))
        .collect();
    revoked.sort();
    assert_eq!(
        revoked,
        [
            (None, Some("room.2".into())),
            (Some("alerts.>".into()), None)
        ]
    );
    assert!(notice.revoked.iter().all(|r| r.ns == "/chat"));
    // The revoked subscription no longer delivers; the kept one does.
    let mut publisher = client_with(
        &broker,
        &mint(&claims(
            "p",
            json!({"ns": {"/chat": {"publish": {"allow": [">"]}}}}),
        )),
    )
    .await;
    assert_eq!(
        publisher
            .emit_acked(emit("/chat", "alerts.fire", Bytes::from_static(b"\xc0")))
            .await,
        0
    );
    assert_eq!(
        publisher
            .emit_acked(emit("/chat", "msg.a", Bytes::from_static(b"\xc0")))
            .await,
        1
    );
    assert_eq!(client.expect_event().await.event, "msg.a");

    // Invalid refresh: unauthorized, the connection and old token stay.
    let id = client.send_auth("garbage").await;
    let error = client.expect_error(ErrorCode::Unauthorized).await;
    assert_eq!(error.id, Some(id));
    // Another user's token: refused too.
    let id = client.send_auth(&mint(&claims("mallory", chat()))).await;
    let error = client.expect_error(ErrorCode::Unauthorized).await;
    assert_eq!(error.id, Some(id));
    client.subscribe("/chat", "msg.b", None, false).await;
    let stats = broker.stats();
    assert_eq!(stats.token_refreshes, 2);
    assert_eq!(stats.auth_failed("subject"), 1);
}

/// Settings for the expiry tests: notice 1 s before exp, no grace.
fn short_expiry(s: &mut herald_config::Settings) {
    hs256(s);
    s.auth.expiry_notice = Duration::from_secs(1);
    s.auth.expiry_grace = Duration::ZERO;
    s.auth.leeway = Duration::ZERO;
}

#[tokio::test]
async fn an_expiring_token_gets_a_notice_then_the_close() {
    let broker = start_broker(short_expiry).await;
    let exp = now() + 2;
    let mut client = client_with(
        &broker,
        &mint(&json!({"sub": "u", "exp": exp, "herald": chat()})),
    )
    .await;
    let Envelope::Notice(notice) = client.recv().await else {
        panic!("expected token_expiring");
    };
    assert_eq!(
        (notice.code.as_str(), notice.exp),
        (Notice::TOKEN_EXPIRING, Some(exp))
    );
    let (code, reason) = client.expect_close().await;
    assert_eq!((code, reason.as_str()), (1008, "token_expired"));
    assert!(now() >= exp, "closed at {} before exp {exp}", now());
    broker
        .wait_for_stats("the expiry counted", |s| s.token_expired == 1)
        .await;
}

#[tokio::test]
async fn a_refresh_before_expiry_keeps_the_connection() {
    let broker = start_broker(short_expiry).await;
    let first_exp = now() + 2;
    let mut client = client_with(
        &broker,
        &mint(&json!({"sub": "u", "exp": first_exp, "herald": chat()})),
    )
    .await;
    let Envelope::Notice(notice) = client.recv().await else {
        panic!("expected token_expiring");
    };
    assert_eq!(notice.exp, Some(first_exp));
    let later = first_exp + 2;
    let id = client
        .send_auth(&mint(&json!({"sub": "u", "exp": later, "herald": chat()})))
        .await;
    client.expect_ok(id).await;
    // The next notice is the new token's, after the first one's exp: the
    // connection outlived it.
    let Envelope::Notice(notice) = client.recv().await else {
        panic!("expected the new token's token_expiring");
    };
    assert_eq!(notice.exp, Some(later));
    assert!(now() >= first_exp);
    client.subscribe("/chat", "msg.still", None, false).await;
    assert_eq!(broker.stats().token_expired, 0);
}

#[tokio::test]
async fn http_publish_needs_a_token_with_publish_rights() {
    let broker = start_broker(hs256).await;
    let mut subscriber = client_with(&broker, &mint(&claims("s", chat()))).await;
    subscriber.subscribe("/chat", "msg.*", None, false).await;
    let addr = broker.addr();
    let none = publish(addr, "msg.hi?namespace=/chat", None, "{}").await;
    assert_eq!(none.status, 401, "{}", none.body);
    assert!(none.body.contains("\"unauthorized\""), "{}", none.body);
    let bad = publish(addr, "msg.hi?namespace=/chat", Some("bad"), "{}").await;
    assert_eq!(bad.status, 401, "{}", bad.body);
    let token = mint(&claims("svc", chat()));
    let refused = publish(addr, "msg.admin?namespace=/chat", Some(&token), "{}").await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("\"forbidden\""), "{}", refused.body);
    let ok = publish(addr, "msg.hi?namespace=/chat", Some(&token), "{\"a\":1}").await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert!(ok.body.contains("\"receivers\":1"), "{}", ok.body);
    assert_eq!(subscriber.expect_event().await.event, "msg.hi");
    // Names are still checked first (400), by the same admission.
    let invalid = publish(addr, "msg..hi?namespace=/chat", Some(&token), "{}").await;
    assert_eq!(invalid.status, 400, "{}", invalid.body);
}

#[tokio::test]
async fn key_files_that_do_not_load_stop_the_start_naming_the_key() {
    let mut settings = herald_config::Settings::defaults();
    settings.server.listen = herald_tests::local(0);
    settings.auth.mode = herald_config::AuthMode::Jwt;
    settings.auth.algorithms = vec!["EdDSA".into()];
    settings.auth.public_key_file = "/nonexistent/key.pem".into();
    let error = herald_broker::Broker::start(settings.clone())
        .await
        .expect_err("a missing key file");
    assert!(
        error.to_string().contains("auth.public_key_file"),
        "{error}"
    );
    let garbage = tempfile::NamedTempFile::new().expect("temp file");
    std::fs::write(garbage.path(), "not a pem").expect("written");
    settings.auth.public_key_file = garbage.path().display().to_string();
    let error = herald_broker::Broker::start(settings.clone())
        .await
        .expect_err("a bad PEM");
    assert!(
        error.to_string().contains("auth.public_key_file"),
        "{error}"
    );
    settings.auth.public_key_file = String::new();
    settings.auth.algorithms = vec!["HS256".into()];
    settings.auth.secret_file = "/nonexistent/secret".into();
    let error = herald_broker::Broker::start(settings)
        .await
        .expect_err("a missing secret file");
    assert!(error.to_string().contains("auth.secret_file"), "{error}");
    let _ = SECRET;
}
