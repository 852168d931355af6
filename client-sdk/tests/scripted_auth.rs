//! The SDK's token handling against a scripted broker (see `common`): the
//! token in `hello`, the provider called before every connection and on a
//! `token_expiring` notice (the `auth` envelope it sends), manual refresh,
//! `revoked` notices, and the `unauthorized` / `token_expired` refusals
//! and closes.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use futures_util::StreamExt;
use herald_client::{
    Client, ClientBuilder, ClientEvent, ConnectionState, Error, ErrorCode, ReconnectPolicy, Revoked,
};
use herald_protocol::envelope::{Auth, Notice, Revoked as WireRevoked, Welcome};
use herald_protocol::{CloseReason, Envelope};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

mod common;

use common::*;

/// A JWT-shaped token (unsigned: the scripted broker does not verify)
/// whose payload says `sub` and `exp`.
fn jwt(sub: &str, exp: u64) -> String {
    let encode = |s: String| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.c2ln",
        encode(r#"{"alg":"HS256","typ":"JWT"}"#.to_owned()),
        encode(format!(r#"{{"sub":"{sub}","exp":{exp}}}"#))
    )
}

/// A `welcome` naming user `user-42` and the token's `exp`.
fn welcomed_as_user_42(exp: u64) -> Welcome {
    Welcome {
        user: Some("user-42".into()),
        exp: Some(exp),
        ..welcome(0)
    }
}

/// Unix seconds as what `token_expiry` returns.
fn at(seconds: u64) -> Option<SystemTime> {
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// A provider answering `tok-1`, `tok-2`, ... and the count of its calls.
fn counting_provider(builder: ClientBuilder) -> (ClientBuilder, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let builder = builder.token_provider(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move { Ok::<_, String>(format!("tok-{n}")) }
    });
    (builder, calls)
}

fn builder(url: String, policy: ReconnectPolicy) -> ClientBuilder {
    Client::builder(url)
        .name("scripted")
        .reconnect(policy)
        .connect_timeout(Duration::from_secs(2))
}

/// Collects what the client reports.
fn events(client: &Client) -> mpsc::UnboundedReceiver<ClientEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    client.on_error(move |e| {
        let _ = tx.send(e);
    });
    rx
}

async fn next_event(events: &mut mpsc::UnboundedReceiver<ClientEvent>) -> ClientEvent {
    timeout(WAIT, events.recv()).await.unwrap().unwrap()
}

/// The next envelope, which must be `auth`.
async fn expect_auth(ws: &mut Ws) -> Auth {
    match read(ws).await {
        Envelope::Auth(auth) => auth,
        other => panic!("expected auth, got {other:?}"),
    }
}

/// `client.refresh_token(token)`, with the scripted broker checking the
/// `auth` it sends and answering `answer(id)`.
async fn refresh_answered(
    client: &Client,
    ws: &mut Ws,
    token: &str,
    answer: impl FnOnce(Option<u64>) -> Envelope,
) -> Result<(), Error> {
    let refreshing = tokio::spawn({
        let (client, token) = (client.clone(), token.to_owned());
        async move { client.refresh_token(token).await }
    });
    let auth = expect_auth(ws).await;
    assert_eq!(auth.token, token);
    send(ws, answer(auth.id)).await;
    refreshing.await.unwrap()
}

fn expiring(exp: u64) -> Envelope {
    Envelope::Notice(Notice {
        code: Notice::TOKEN_EXPIRING.into(),
        message: "token expires soon".into(),
        exp: Some(exp),
        revoked: Vec::new(),
    })
}

/// What a broker sends to close for `reason`: the `close` envelope, then
/// a close frame 1008 with the reason's text.
async fn close_for(ws: &mut Ws, reason: CloseReason, message: &str) {
    send(
        ws,
        Envelope::Close {
            reason,
            message: message.into(),
        },
    )
    .await;
    ws.close(Some(CloseFrame {
        code: CloseCode::Policy,
        reason: reason.as_str().into(),
    }))
    .await
    .unwrap();
}

/// Proves no further connection attempt comes within `within`.
async fn assert_no_connection(broker: &Scripted, within: Duration) {
    assert!(
        timeout(within, broker.listener.accept()).await.is_err(),
        "the client connected again"
    );
}

#[tokio::test]
async fn hello_carries_the_fixed_token_and_the_identity_is_visible() {
    let broker = Scripted::bind().await;
    let builder = builder(broker.url(), ReconnectPolicy::disabled()).token("s3cret-fixed");
    assert!(
        !format!("{builder:?}").contains("s3cret"),
        "the builder's Debug shows the token"
    );
    let client = tokio::spawn(builder.connect());
    let (_ws, hello) = broker
        .accept_session_with(welcomed_as_user_42(1_893_456_000))
        .await;
    assert_eq!(hello.token.as_deref(), Some("s3cret-fixed"));
    let client = client.await.unwrap().unwrap();
    assert_eq!(client.user().as_deref(), Some("user-42"));
    assert_eq!(client.token_expiry(), at(1_893_456_000));
}

#[tokio::test]
async fn no_token_means_none_in_hello_and_no_identity() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(builder(broker.url(), ReconnectPolicy::disabled()).connect());
    let (_ws, hello) = broker.accept_session(0).await;
    assert_eq!(hello.token, None);
    let client = client.await.unwrap().unwrap();
    assert_eq!((client.user(), client.token_expiry()), (None, None));
}

#[tokio::test]
async fn the_provider_is_asked_before_every_connection() {
    let broker = Scripted::bind().await;
    let (builder, calls) = counting_provider(builder(broker.url(), fast()));
    let client = tokio::spawn(builder.connect());
    let (ws, hello) = broker.accept_session(0).await;
    assert_eq!(hello.token.as_deref(), Some("tok-1"));
    let client = client.await.unwrap().unwrap();
    let mut states = client.state_changes();
    drop(ws);
    timeout(
        WAIT,
        states.wait_for(|s| *s == ConnectionState::Reconnecting),
    )
    .await
    .unwrap()
    .unwrap();
    let (_ws, hello) = broker.accept_session(0).await;
    assert_eq!(hello.token.as_deref(), Some("tok-2"));
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failing_provider_fails_connect_with_its_error() {
    let broker = Scripted::bind().await;
    let result = builder(broker.url(), ReconnectPolicy::disabled())
        .token_provider(|| async { Err::<String, _>("identity service unavailable") })
        .connect()
        .await;
    assert_eq!(
        result.err(),
        Some(Error::TokenProvider("identity service unavailable".into()))
    );
    assert_no_connection(&broker, Duration::from_millis(100)).await;
}

/// A client whose provider answers JWTs for `user-42` expiring at
/// 2_000_000_000 + n on its n-th call, and the scripted socket (welcomed
/// with the first token's expiry).
async fn jwt_client(broker: &Scripted) -> (Client, Ws, Arc<AtomicU32>) {
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let client = tokio::spawn(
        builder(broker.url(), ReconnectPolicy::disabled())
            .token_provider(move || {
                let n = u64::from(counter.fetch_add(1, Ordering::SeqCst)) + 1;
                async move { Ok::<_, String>(jwt("user-42", 2_000_000_000 + n)) }
            })
            .connect(),
    );
    let (ws, hello) = broker
        .accept_session_with(welcomed_as_user_42(2_000_000_001))
        .await;
    assert_eq!(hello.token, Some(jwt("user-42", 2_000_000_001)));
    (client.await.unwrap().unwrap(), ws, calls)
}

#[tokio::test]
async fn token_expiring_refreshes_in_place_with_the_providers_token() {
    let broker = Scripted::bind().await;
    let (client, mut ws, calls) = jwt_client(&broker).await;
    send(&mut ws, expiring(2_000_000_001)).await;
    let auth = expect_auth(&mut ws).await;
    assert_eq!(auth.token, jwt("user-42", 2_000_000_002));
    send(
        &mut ws,
        Envelope::Ok {
            id: auth.id.unwrap(),
        },
    )
    .await;
    // Once `ok` is read, the new token's exp is the client's view (there
    // is no event for it: poll, bounded).
    let refreshed = at(2_000_000_002);
    timeout(WAIT, async {
        while client.token_expiry() != refreshed {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("the refreshed token's expiry");
    assert_eq!(client.state(), ConnectionState::Connected);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// A broker that notices a token at once (its `exp` is nearer than the
/// notice period) would have the client refresh at every round trip: the
/// client waits a second between refreshes instead.
#[tokio::test]
async fn refreshes_started_by_notices_are_at_least_a_second_apart() {
    let broker = Scripted::bind().await;
    let (_client, mut ws, calls) = jwt_client(&broker).await;
    send(&mut ws, expiring(2_000_000_001)).await;
    let first = expect_auth(&mut ws).await;
    let answered = tokio::time::Instant::now();
    send(
        &mut ws,
        Envelope::Ok {
            id: first.id.unwrap(),
        },
    )
    .await;
    send(&mut ws, expiring(2_000_000_002)).await;
    let second = expect_auth(&mut ws).await;
    assert!(
        answered.elapsed() >= Duration::from_millis(900),
        "the second refresh came after {:?}",
        answered.elapsed()
    );
    assert_eq!(second.token, jwt("user-42", 2_000_000_003));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refused_refresh_is_reported_and_the_connection_goes_on() {
    let broker = Scripted::bind().await;
    let (client, mut ws, _) = jwt_client(&broker).await;
    let mut events = events(&client);
    send(&mut ws, expiring(2_000_000_001)).await;
    let auth = expect_auth(&mut ws).await;
    send(
        &mut ws,
        Envelope::error(auth.id, ErrorCode::Unauthorized, "token refused"),
    )
    .await;
    assert_eq!(
        next_event(&mut events).await,
        ClientEvent::RefreshFailed {
            error: Error::Unauthorized {
                message: "token refused".into()
            }
        }
    );
    assert_eq!(client.state(), ConnectionState::Connected);
    assert_eq!(client.token_expiry(), at(2_000_000_001));
}

#[tokio::test]
async fn a_failing_provider_on_token_expiring_is_reported_and_nothing_is_sent() {
    let broker = Scripted::bind().await;
    let calls = Arc::new(AtomicU32::new(0));
    let counter = Arc::clone(&calls);
    let client = tokio::spawn(
        builder(broker.url(), ReconnectPolicy::disabled())
            .token_provider(move || {
                let first = counter.fetch_add(1, Ordering::SeqCst) == 0;
                async move {
                    if first {
                        Ok("tok-1".to_owned())
                    } else {
                        Err("vault sealed")
                    }
                }
            })
            .connect(),
    );
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap().unwrap();
    let mut events = events(&client);
    send(&mut ws, expiring(2_000_000_000)).await;
    assert_eq!(
        next_event(&mut events).await,
        ClientEvent::RefreshFailed {
            error: Error::TokenProvider("vault sealed".into())
        }
    );
    // No auth went out: the next frame is the emit made now.
    client.of("/a").emit("e", &1_u8).await.unwrap();
    assert!(matches!(read(&mut ws).await, Envelope::Emit(_)));
}

#[tokio::test]
async fn without_a_provider_token_expiring_is_reported_and_refresh_token_works() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(builder(broker.url(), fast()).token("old-token").connect());
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap().unwrap();
    let mut events = events(&client);
    send(&mut ws, expiring(2_000_000_000)).await;
    assert_eq!(
        next_event(&mut events).await,
        ClientEvent::TokenExpiring {
            exp: Some(2_000_000_000)
        }
    );
    assert_eq!(client.token_expiry(), at(2_000_000_000));
    assert!(matches!(
        client.reauthenticate().await,
        Err(Error::TokenProvider(_))
    ));

    // A refused refresh: the typed error, the old token stays.
    let refused = refresh_answered(&client, &mut ws, "bad-token", |id| {
        Envelope::error(id, ErrorCode::Unauthorized, "invalid token")
    });
    assert_eq!(
        refused.await,
        Err(Error::Unauthorized {
            message: "invalid token".into()
        })
    );
    // An accepted refresh: the new token is also what reconnects present.
    let accepted = refresh_answered(&client, &mut ws, "new-token", |id| Envelope::Ok {
        id: id.unwrap(),
    });
    accepted.await.unwrap();
    drop(ws);
    let (_ws, hello) = broker.accept_session(0).await;
    assert_eq!(hello.token.as_deref(), Some("new-token"));
}

#[tokio::test]
async fn revoked_subscriptions_and_rooms_are_reported_and_not_restored() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(builder(broker.url(), fast()).token("t").connect());
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap().unwrap();
    let (rtx, mut revocations) = mpsc::unbounded_channel();
    client.on_revoked(move |revoked| {
        let _ = rtx.send(revoked);
    });
    let ns = client.of("/orders");
    let mut subs = Vec::new();
    for pattern in ["order.>", "order.created"] {
        let subscribing = tokio::spawn({
            let ns = ns.clone();
            async move { ns.on(pattern, |_: u8| async {}).await }
        });
        accept_sub(&mut ws).await;
        subs.push(subscribing.await.unwrap().unwrap());
    }
    for room in ["eu", "us"] {
        let joining = tokio::spawn({
            let ns = ns.clone();
            async move { ns.join(room).await }
        });
        accept_join(&mut ws).await;
        joining.await.unwrap().unwrap();
    }

    send(
        &mut ws,
        Envelope::Notice(Notice {
            code: Notice::REVOKED.into(),
            message: "no longer allowed by the new token".into(),
            exp: None,
            revoked: vec![
                WireRevoked {
                    ns: "/orders".into(),
                    ev: Some("order.>".into()),
                    ..WireRevoked::default()
                },
                WireRevoked {
                    ns: "/orders".into(),
                    room: Some("us".into()),
                    ..WireRevoked::default()
                },
                // An entry naming nothing is skipped.
                WireRevoked {
                    ns: "/orders".into(),
                    ..WireRevoked::default()
                },
            ],
        }),
    )
    .await;
    let revoked = timeout(WAIT, revocations.recv()).await.unwrap().unwrap();
    assert_eq!(
        revoked,
        [
            Revoked::Subscription {
                namespace: "/orders".into(),
                event: "order.>".into(),
                group: None,
                responder: false,
            },
            Revoked::Room {
                namespace: "/orders".into(),
                room: "us".into(),
            },
        ]
    );
    // Unsubscribing what was revoked sends nothing (the broker dropped it).
    let revoked_sub = subs.remove(0);
    assert_eq!(revoked_sub.event(), "order.>");
    revoked_sub.unsubscribe().await.unwrap();
    client.of("/x").emit("marker", &1_u8).await.unwrap();
    match read(&mut ws).await {
        Envelope::Emit(emit) => assert_eq!(emit.event, "marker"),
        other => panic!("expected the marker emit (no unsub), got {other:?}"),
    }

    // After a reconnect only what remains is restored.
    drop(ws);
    let (mut ws, hello) = broker.accept_session(0).await;
    let resume = hello.resume.expect("a reconnect resumes");
    let subs: Vec<&str> = resume.subs.iter().map(|s| s.ev.as_str()).collect();
    assert_eq!(subs, ["order.created"]);
    assert_eq!(resume.rooms, [("/orders".to_owned(), "eu".to_owned())]);
    client.of("/x").emit("after.restore", &1_u8).await.unwrap();
    match read(&mut ws).await {
        Envelope::Emit(emit) => assert_eq!(emit.event, "after.restore"),
        other => panic!("expected the emit after the restore, got {other:?}"),
    }
}

#[tokio::test]
async fn unauthorized_at_hello_is_a_typed_error_and_a_fixed_token_is_not_retried() {
    let broker = Scripted::bind().await;
    let connecting = tokio::spawn(
        builder(broker.url(), fast())
            .token("expired-token")
            .connect(),
    );
    let (mut ws, _) = broker.accept_hello().await;
    send(
        &mut ws,
        Envelope::error(None, ErrorCode::Unauthorized, "token is not valid"),
    )
    .await;
    close_for(&mut ws, CloseReason::Unauthorized, "token is not valid").await;
    let error = timeout(WAIT, connecting)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        error,
        Error::Unauthorized {
            message: "token is not valid".into()
        }
    );
    assert!(!error.to_string().contains("expired-token"), "{error}");
    assert_no_connection(&broker, Duration::from_millis(200)).await;

    // A close without an `err` first says the same.
    let connecting = tokio::spawn(builder(broker.url(), fast()).connect());
    let (mut ws, _) = broker.accept_hello().await;
    close_for(&mut ws, CloseReason::Unauthorized, "a token is required").await;
    assert_eq!(
        timeout(WAIT, connecting).await.unwrap().unwrap().err(),
        Some(Error::Unauthorized {
            message: "a token is required".into()
        })
    );
}

#[tokio::test]
async fn with_a_provider_unauthorized_at_hello_asks_again_a_bounded_number_of_times() {
    let broker = Scripted::bind().await;
    // Refused once, then accepted.
    let (builder_a, calls) = counting_provider(builder(broker.url(), fast()));
    let connecting = tokio::spawn(builder_a.connect());
    let (mut ws, hello) = broker.accept_hello().await;
    assert_eq!(hello.token.as_deref(), Some("tok-1"));
    send(
        &mut ws,
        Envelope::error(None, ErrorCode::Unauthorized, "stale"),
    )
    .await;
    let (_ws, hello) = broker.accept_session(0).await;
    assert_eq!(hello.token.as_deref(), Some("tok-2"));
    let client = timeout(WAIT, connecting).await.unwrap().unwrap().unwrap();
    assert_eq!(client.state(), ConnectionState::Connected);
    assert_eq!(calls.load(Ordering::SeqCst), 2);

    // Refused every time: three attempts, then the refusal is final.
    let broker = Scripted::bind().await;
    let (builder_b, calls) = counting_provider(builder(broker.url(), fast()));
    let connecting = tokio::spawn(builder_b.connect());
    for n in 1..=3 {
        let (mut ws, hello) = broker.accept_hello().await;
        assert_eq!(hello.token, Some(format!("tok-{n}")));
        send(
            &mut ws,
            Envelope::error(None, ErrorCode::Unauthorized, "no"),
        )
        .await;
    }
    assert_eq!(
        timeout(WAIT, connecting).await.unwrap().unwrap().err(),
        Some(Error::Unauthorized {
            message: "no".into()
        })
    );
    assert_no_connection(&broker, Duration::from_millis(200)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_token_expired_close_reconnects_with_a_new_token_from_the_provider() {
    let broker = Scripted::bind().await;
    let (builder, _calls) = counting_provider(builder(broker.url(), fast()));
    let client = tokio::spawn(builder.connect());
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap().unwrap();
    let mut events = events(&client);
    close_for(&mut ws, CloseReason::TokenExpired, "token expired").await;
    match next_event(&mut events).await {
        ClientEvent::ConnectionLost { reason } => {
            assert!(reason.contains("token_expired"), "{reason}");
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    let (_ws, hello) = broker.accept_session(0).await;
    assert_eq!(hello.token.as_deref(), Some("tok-2"));
    let mut states = client.state_changes();
    timeout(WAIT, states.wait_for(|s| *s == ConnectionState::Connected))
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn without_a_provider_a_token_expired_close_is_final_and_reported() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(builder(broker.url(), fast()).token("t").connect());
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap().unwrap();
    let mut events = events(&client);
    close_for(&mut ws, CloseReason::TokenExpired, "token expired").await;
    assert!(matches!(
        next_event(&mut events).await,
        ClientEvent::ConnectionLost { .. }
    ));
    assert_eq!(
        next_event(&mut events).await,
        ClientEvent::GaveUp {
            attempts: 0,
            error: Error::TokenExpired {
                message: "token expired".into()
            }
        }
    );
    let mut states = client.state_changes();
    timeout(WAIT, states.wait_for(|s| *s == ConnectionState::Closed))
        .await
        .unwrap()
        .unwrap();
    assert_no_connection(&broker, Duration::from_millis(200)).await;
    assert_eq!(client.of("/a").emit("e", &1_u8).await, Err(Error::Closed));
    // The answer to the broker's close frame went out.
    assert!(matches!(
        timeout(WAIT, ws.next()).await.unwrap(),
        Some(Ok(Message::Close(_))) | None
    ));
}

#[tokio::test]
async fn a_fixed_token_refused_on_reconnect_stops_reconnecting() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(builder(broker.url(), fast()).token("t").connect());
    let (ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap().unwrap();
    let mut events = events(&client);
    drop(ws);
    assert!(matches!(
        next_event(&mut events).await,
        ClientEvent::ConnectionLost { .. }
    ));
    let (mut ws, _) = broker.accept_hello().await;
    send(
        &mut ws,
        Envelope::error(None, ErrorCode::Unauthorized, "revoked"),
    )
    .await;
    match next_event(&mut events).await {
        ClientEvent::GaveUp { error, .. } => assert_eq!(
            error,
            Error::Unauthorized {
                message: "revoked".into()
            }
        ),
        other => panic!("expected GaveUp, got {other:?}"),
    }
    assert_no_connection(&broker, Duration::from_millis(200)).await;
    assert_eq!(client.state(), ConnectionState::Closed);
}

#[tokio::test]
async fn forbidden_subscribes_are_typed_broker_errors() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(builder(broker.url(), ReconnectPolicy::disabled()).connect());
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap().unwrap();
    let subscribing = tokio::spawn({
        let ns = client.of("/orders");
        async move { ns.on("order.>", |_: u8| async {}).await }
    });
    let Envelope::Subscribe(sub) = read(&mut ws).await else {
        panic!("expected sub");
    };
    let message = r#"subscribe "order.>" in "/orders" is not allowed by this connection's token"#;
    send(
        &mut ws,
        Envelope::error(sub.id, ErrorCode::Forbidden, message),
    )
    .await;
    assert_eq!(
        subscribing.await.unwrap().err(),
        Some(Error::Broker {
            code: ErrorCode::Forbidden,
            message: message.into()
        })
    );
    // Not restored later: it never was a subscription.
    assert_eq!(client.state(), ConnectionState::Connected);
}
