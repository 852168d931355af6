//! The SDK against a real broker checking real HS256 tokens
//! (`auth.mode = "jwt"`, PROTOCOL.md §22): the identity from `welcome`,
//! refused tokens, permissions refused as `forbidden`, the token provider
//! refreshing in place before `exp` (the connection outlives its first
//! token), the `token_expired` close without a provider, and a refresh
//! that narrows permissions (`revoked`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use herald_client::{Client, ClientEvent, ConnectionState, Error, ErrorCode, Revoked};
use herald_tests::auth::{mint, mint_with, now};
use herald_tests::sdk::{FAST_RECONNECT, bounded, connect, forward, recv, wait_state};
use herald_tests::tokens::{expiring, expiry, jwt_broker, pubsub};
use serde_json::json;
use tokio::sync::mpsc;

/// What the client reports, in a channel.
fn reported(client: &Client) -> mpsc::UnboundedReceiver<ClientEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    client.on_error(move |event| {
        let _ = tx.send(event);
    });
    rx
}

async fn next_report(rx: &mut mpsc::UnboundedReceiver<ClientEvent>) -> ClientEvent {
    match bounded("a client event", rx.recv()).await {
        Some(event) => event,
        None => panic!("the client's event channel closed"),
    }
}

#[tokio::test]
async fn a_valid_token_connects_with_its_user_and_permissions_apply() {
    let broker = jwt_broker(|_| {}).await;
    let token_claims = expiring("user-42", 600, pubsub("/chat", &["msg.>"]));
    let exp = token_claims["exp"].as_u64().unwrap_or_default();
    let client = connect(Client::builder(broker.url()).token(mint(&token_claims))).await;
    assert_eq!(client.user().as_deref(), Some("user-42"));
    assert_eq!(
        client.token_expiry(),
        Some(SystemTime::UNIX_EPOCH + Duration::from_secs(exp))
    );

    let chat = client.of("/chat");
    let (tx, mut rx) = mpsc::channel::<String>(4);
    chat.on("msg.>", forward(&tx)).await.expect("allowed");
    chat.emit("msg.hello", &"hi".to_owned())
        .await
        .expect("queued");
    assert_eq!(recv(&mut rx).await, "hi");

    // Outside the token's permissions: `forbidden`, the connection stays.
    match chat.on("admin.>", |_: String| async {}).await {
        Err(Error::Broker { code, message }) => {
            assert_eq!(code, ErrorCode::Forbidden);
            assert!(message.contains("admin.>"), "{message}");
        }
        other => panic!("expected forbidden, got {other:?}"),
    }
    match client.of("/other").emit_acked("msg.hello", &1_u8).await {
        Err(Error::Broker { code, .. }) => assert_eq!(code, ErrorCode::Forbidden),
        other => panic!("expected forbidden, got {other:?}"),
    }
    assert_eq!(client.state(), ConnectionState::Connected);
    client.close().await.expect("closed");
}

#[tokio::test]
async fn refused_tokens_are_unauthorized_at_connect() {
    let broker = jwt_broker(|_| {}).await;
    let wrong_key = mint_with(
        "another-secret-entirely-0123456789",
        &expiring("u", 600, json!({})),
    );
    // Expired a minute ago: beyond the default 5 s leeway.
    let expired = mint(&json!({ "sub": "u", "exp": now() - 60 }));
    for (what, builder) in [
        (
            "a token signed with another key",
            Client::builder(broker.url()).token(wrong_key.clone()),
        ),
        ("no token", Client::builder(broker.url())),
        (
            "a garbage token",
            Client::builder(broker.url()).token("not-a-jwt"),
        ),
        (
            "an expired token",
            Client::builder(broker.url())
                .token(expired.clone())
                .reconnect(FAST_RECONNECT),
        ),
    ] {
        match bounded(what, builder.connect()).await {
            Err(error @ Error::Unauthorized { .. }) => {
                let shown = error.to_string();
                assert!(
                    !shown.contains(&wrong_key) && !shown.contains(&expired),
                    "{shown}"
                );
            }
            other => panic!("{what}: expected Unauthorized, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_provider_refreshes_before_exp_and_the_connection_outlives_its_first_token() {
    // Tokens live 3 s; the notice comes 2 s before exp; no grace.
    outlives_its_first_token(Duration::from_secs(2), 3).await;
}

/// Tokens living 2 s with the default notice period (30 s): the broker
/// notices each token at once, and the client refreshes once a second
/// (not at every round trip) and stays connected.
#[tokio::test]
async fn tokens_shorter_than_the_notice_period_are_refreshed_once_a_second() {
    let calls = outlives_its_first_token(Duration::from_secs(30), 2).await;
    // About 3 s (first exp + 1 s) at one refresh a second, plus the hello.
    assert!(calls <= 6, "the provider was asked {calls} times");
}

/// A client whose provider mints tokens living `ttl` seconds, against a
/// broker noticing them `notice` before `exp` (no grace): events keep
/// flowing on the same connection until a second past the first token's
/// `exp`, with nothing reported. Returns how often the provider was asked.
async fn outlives_its_first_token(notice: Duration, ttl: u64) -> u32 {
    let broker = jwt_broker(|s| expiry(s, notice, Duration::ZERO)).await;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let client = connect(
        Client::builder(broker.url())
            .reconnect(FAST_RECONNECT)
            .token_provider(move || {
                counter.fetch_add(1, Ordering::SeqCst);
                let token = mint(&expiring("refresher", ttl, pubsub("/feed", &["tick"])));
                async move { Ok::<_, String>(token) }
            }),
    )
    .await;
    let mut reports = reported(&client);
    let first_exp = client.token_expiry().expect("the token's exp");
    let session = client.session_id();
    let mut states = client.state_changes();
    states.mark_unchanged();

    let feed = client.of("/feed");
    let (tx, mut rx) = mpsc::channel::<u64>(16);
    feed.on("tick", forward(&tx)).await.expect("allowed");
    let mut n: u64 = 0;
    while SystemTime::now() < first_exp + Duration::from_secs(1) {
        n += 1;
        feed.emit("tick", &n).await.expect("queued");
        assert_eq!(recv(&mut rx).await, n);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        !states.has_changed().unwrap_or(true),
        "the connection state changed: {:?}",
        *states.borrow()
    );
    assert_eq!(client.session_id(), session, "the client reconnected");
    let calls = calls.load(Ordering::SeqCst);
    assert!(calls >= 2, "the provider was not asked again");
    assert!(client.token_expiry() > Some(first_exp));
    assert!(reports.try_recv().is_err(), "{:?}", reports.try_recv());
    client.close().await.expect("closed");
    calls
}

#[tokio::test]
async fn without_a_provider_the_broker_closes_token_expired_and_the_sdk_says_so() {
    let broker = jwt_broker(|s| expiry(s, Duration::from_secs(1), Duration::ZERO)).await;
    let token = mint(&expiring("shortlived", 2, pubsub("/feed", &["tick"])));
    let client = connect(
        Client::builder(broker.url())
            .token(token)
            .reconnect(FAST_RECONNECT),
    )
    .await;
    let mut reports = reported(&client);
    match next_report(&mut reports).await {
        ClientEvent::TokenExpiring { exp } => assert!(exp.is_some()),
        other => panic!("expected TokenExpiring, got {other:?}"),
    }
    match next_report(&mut reports).await {
        ClientEvent::ConnectionLost { reason } => {
            assert!(reason.contains("token_expired"), "{reason}");
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    match next_report(&mut reports).await {
        ClientEvent::GaveUp { error, .. } => {
            assert!(matches!(error, Error::TokenExpired { .. }), "{error:?}");
        }
        other => panic!("expected GaveUp, got {other:?}"),
    }
    wait_state(&client, "the client", ConnectionState::Closed).await;
}

#[tokio::test]
async fn a_refresh_that_narrows_permissions_revokes_and_the_app_is_told() {
    let broker = jwt_broker(|_| {}).await;
    let wide = json!({
        "/chat": {
            "publish": { "allow": ["msg.>", "news.>"] },
            "subscribe": { "allow": ["msg.>", "news.>"] },
            "join": { "allow": ["room.*"] },
        }
    });
    let narrow = json!({
        "/chat": {
            "publish": { "allow": ["msg.>", "news.>"] },
            "subscribe": { "allow": ["news.>"] },
        }
    });
    let client =
        connect(Client::builder(broker.url()).token(mint(&expiring("u", 600, wide)))).await;
    let (rtx, mut revocations) = mpsc::channel(4);
    client.on_revoked(move |revoked| {
        let _ = rtx.try_send(revoked);
    });
    let chat = client.of("/chat");
    let (msg_tx, mut msgs) = mpsc::channel::<String>(4);
    let (news_tx, mut news) = mpsc::channel::<String>(4);
    chat.on("msg.>", forward(&msg_tx)).await.expect("allowed");
    chat.on("news.>", forward(&news_tx)).await.expect("allowed");
    chat.join("room.a").await.expect("allowed");

    // A refused refresh changes nothing.
    assert!(matches!(
        client.refresh_token("not-a-jwt").await,
        Err(Error::Unauthorized { .. })
    ));
    client
        .refresh_token(mint(&expiring("u", 600, narrow)))
        .await
        .expect("refreshed");
    let mut revoked = recv(&mut revocations).await;
    revoked.sort_by_key(ToString::to_string);
    assert_eq!(
        revoked,
        [
            Revoked::Subscription {
                namespace: "/chat".into(),
                event: "msg.>".into(),
                group: None,
                responder: false,
            },
            Revoked::Room {
                namespace: "/chat".into(),
                room: "room.a".into(),
            },
        ]
    );
    // What remains still flows; what was revoked does not.
    chat.emit("msg.lost", &"lost".to_owned())
        .await
        .expect("queued");
    chat.emit("news.kept", &"kept".to_owned())
        .await
        .expect("queued");
    assert_eq!(recv(&mut news).await, "kept");
    assert!(msgs.try_recv().is_err());
    client.close().await.expect("closed");
}
