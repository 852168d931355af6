//! The SDK against a scripted broker: a bare WebSocket server in the test
//! that sends exactly the frames a case needs (silence, a refusal, an error
//! without id, a request for a responder it does not have) and checks the
//! frames the client sends.

#![allow(clippy::unwrap_used)]
// tungstenite's handshake callback fixes the (large) error type.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use herald_client::{Client, ClientEvent, ConnectionState, Error, ErrorCode, ReconnectPolicy};
use herald_protocol::envelope::{ErrorBody, Event, Welcome};
use herald_protocol::{Envelope, Limits};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

mod common;

use common::*;

#[tokio::test]
async fn handshake_offers_the_subprotocol_on_the_endpoint_path_and_says_hello() {
    let broker = Scripted::bind().await;
    let url = broker.url();
    let client = tokio::spawn(connect(url, ReconnectPolicy::disabled()));
    let (mut ws, path, offered) = broker.accept().await;
    assert_eq!(path, "/v1/ws");
    assert_eq!(offered.as_deref(), Some("herald.v1"));
    match read(&mut ws).await {
        Envelope::Hello(hello) => {
            assert_eq!(hello.version, 1);
            assert_eq!(hello.client.as_deref(), Some("scripted"));
        }
        other => panic!("expected hello, got {other:?}"),
    }
    send(
        &mut ws,
        Envelope::Welcome(Welcome {
            version: 1,
            session: "abc".into(),
            heartbeat_ms: 0,
            limits: Limits::default(),
            node: None,
            ..Welcome::default()
        }),
    )
    .await;
    let client = client.await.unwrap();
    assert_eq!(client.session_id().as_deref(), Some("abc"));
    assert_eq!(client.state(), ConnectionState::Connected);

    // close(): a close frame with 1000 / client_closed.
    let closing = tokio::spawn(async move { client.close().await });
    loop {
        match timeout(WAIT, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(u16::from(frame.code), 1000);
                assert_eq!(frame.reason.as_str(), "client_closed");
                break;
            }
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    }
    // Reading on lets tungstenite send its answer to the close frame.
    let _ = timeout(WAIT, ws.next()).await.unwrap();
    closing.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_400_refusal_is_returned_not_retried() {
    let broker = Scripted::bind().await;
    let url = broker.url();
    let client = tokio::spawn(async move { Client::connect(url).await });
    let (tcp, _) = broker.listener.accept().await.unwrap();
    let refused = tokio_tungstenite::accept_hdr_async(tcp, |_: &Request, _: Response| {
        let mut refusal = ErrorResponse::new(Some("missing subprotocol herald.v1".into()));
        *refusal.status_mut() = StatusCode::BAD_REQUEST;
        Err(refusal)
    })
    .await;
    assert!(refused.is_err());
    match timeout(WAIT, client).await.unwrap().unwrap() {
        Err(Error::Handshake { status, reason }) => {
            assert_eq!(status, 400);
            assert_eq!(reason, "missing subprotocol herald.v1");
        }
        other => panic!("expected a handshake refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn an_error_answering_hello_is_returned() {
    let broker = Scripted::bind().await;
    let url = broker.url();
    let client = tokio::spawn(async move { Client::connect(url).await });
    let (mut ws, _, _) = broker.accept().await;
    let _hello = read(&mut ws).await;
    send(
        &mut ws,
        Envelope::error(None, ErrorCode::UnsupportedVersion, "speak v2"),
    )
    .await;
    assert_eq!(
        timeout(WAIT, client).await.unwrap().unwrap().err(),
        Some(Error::Broker {
            code: ErrorCode::UnsupportedVersion,
            message: "speak v2".into()
        })
    );
}

#[tokio::test]
async fn a_silent_broker_is_declared_dead_and_the_client_reconnects() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(connect(broker.url(), fast()));
    // 50 ms heartbeat: nothing for 150 ms means dead.
    let (silent, _) = broker.accept_session(50).await;
    let client = client.await.unwrap();
    let (etx, mut events) = mpsc::channel(16);
    client.on_error(move |e| {
        let _ = etx.try_send(e);
    });
    let mut states = client.state_changes();

    // The scripted broker keeps the socket open but never sends anything.
    let (mut ws, hello) = broker.accept_session(0).await;
    assert_eq!(hello.version, 1);
    match timeout(WAIT, events.recv()).await.unwrap().unwrap() {
        ClientEvent::ConnectionLost { reason } => {
            assert!(reason.contains("3 heartbeats"), "{reason}");
        }
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
    timeout(WAIT, states.wait_for(|s| *s == ConnectionState::Connected))
        .await
        .unwrap()
        .unwrap();
    drop(silent);

    // The new connection works.
    client.of("/a").emit("e", &1_u8).await.unwrap();
    match read(&mut ws).await {
        Envelope::Emit(emit) => {
            assert_eq!((emit.namespace.as_str(), emit.event.as_str()), ("/a", "e"))
        }
        other => panic!("expected emit, got {other:?}"),
    }
}

#[tokio::test]
async fn requests_in_flight_fail_with_disconnected_when_the_connection_drops() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(connect(broker.url(), ReconnectPolicy::disabled()));
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap();
    let ns = client.of("/billing");
    let request = tokio::spawn(async move {
        ns.request::<_, u64>("invoice.create", &1_u64, Duration::from_secs(30))
            .await
    });
    match read(&mut ws).await {
        Envelope::Emit(emit) => {
            assert!(emit.ack.is_some());
            assert_eq!(emit.timeout_ms, Some(30_000));
        }
        other => panic!("expected a request, got {other:?}"),
    }
    drop(ws);
    let result = timeout(WAIT, request)
        .await
        .expect("fails promptly, not at its timeout")
        .unwrap();
    assert_eq!(result, Err(Error::Disconnected));
}

#[tokio::test]
async fn broker_errors_without_id_are_reported() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(connect(broker.url(), ReconnectPolicy::disabled()));
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap();
    let (etx, mut events) = mpsc::channel(16);
    client.on_error(move |e| {
        let _ = etx.try_send(e);
    });
    send(
        &mut ws,
        Envelope::Error(ErrorBody {
            id: None,
            code: ErrorCode::Dropped,
            message: "3 events dropped".into(),
        }),
    )
    .await;
    assert_eq!(
        timeout(WAIT, events.recv()).await.unwrap().unwrap(),
        ClientEvent::Broker {
            code: ErrorCode::Dropped,
            message: "3 events dropped".into()
        }
    );
    // The client is still connected.
    assert_eq!(client.state(), ConnectionState::Connected);
}

#[tokio::test]
async fn requests_are_answered_on_their_connection_even_without_a_local_responder() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(connect(broker.url(), ReconnectPolicy::disabled()));
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap();
    let ns = client.of("/math");
    let sub = tokio::spawn(async move {
        ns.on_request("double", |n: u64| async move { Ok::<u64, String>(n * 2) })
            .await
    });
    let sub_envelope = accept_sub(&mut ws).await;
    assert!(sub_envelope.responder);
    assert_eq!(sub_envelope.group, None);
    let _sub = sub.await.unwrap().unwrap();

    let request = |event: &str, ack: u64| {
        Envelope::Event(Event {
            namespace: "/math".into(),
            event: event.into(),
            payload: Bytes::from(rmp_serde::to_vec_named(&21_u64).unwrap()),
            ack: Some(ack),
            ..Event::default()
        })
    };
    send(&mut ws, request("double", 41)).await;
    match read(&mut ws).await {
        Envelope::Reply(reply) => {
            assert_eq!(reply.ack, 41);
            assert!(reply.ok);
            assert_eq!(rmp_serde::from_slice::<u64>(&reply.payload).unwrap(), 42);
        }
        other => panic!("expected a reply, got {other:?}"),
    }
    // A request for an event this client does not answer: an error reply
    // at once, not silence until the requester's timeout.
    send(&mut ws, request("triple", 42)).await;
    match read(&mut ws).await {
        Envelope::Reply(reply) => {
            assert_eq!(reply.ack, 42);
            assert!(!reply.ok);
            let message: String = rmp_serde::from_slice(&reply.payload).unwrap();
            assert!(message.contains("no responder"), "{message}");
        }
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[tokio::test]
async fn payloads_over_the_announced_limit_are_refused_locally() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(connect(broker.url(), ReconnectPolicy::disabled()));
    let (_ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap();
    // The scripted welcome announced max_payload = 1024.
    let big = vec![7_u8; 2048];
    match client.of("/a").emit("e", &big).await {
        Err(Error::Broker { code, .. }) => assert_eq!(code, ErrorCode::PayloadTooLarge),
        other => panic!("expected a local refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn restore_resumes_subscriptions_and_rooms_before_the_offline_buffer() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(connect(broker.url(), fast()));
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap();
    let ns = client.of("/chat");

    let subscribing = {
        let ns = ns.clone();
        tokio::spawn(async move { ns.on_queue("msg.*", "workers", |_: String| async {}).await })
    };
    let sub = accept_sub(&mut ws).await;
    assert_eq!(sub.group.as_deref(), Some("workers"));
    let _sub = subscribing.await.unwrap().unwrap();
    let joining = {
        let ns = ns.clone();
        tokio::spawn(async move { ns.join("lobby").await })
    };
    accept_join(&mut ws).await;
    joining.await.unwrap().unwrap();

    let mut states = client.state_changes();
    drop(ws);
    timeout(WAIT, states.wait_for(|s| *s != ConnectionState::Connected))
        .await
        .unwrap()
        .unwrap();
    // Emitted while the broker is away: buffered. (The state may already
    // be back to Connected if the reconnect was quick; then it is sent
    // directly, after the restore frames all the same.)
    ns.emit("msg.a", "first").await.unwrap();
    ns.emit("msg.b", "second").await.unwrap();

    // The reconnect's hello carries the subscriptions and rooms to restore
    // (`hello.resume`): the broker restores them, no `sub`/`join` follows.
    let (mut ws, hello) = broker.accept_session(0).await;
    let resume = hello.resume.expect("a reconnect resumes");
    assert_eq!(resume.sid, "scripted-1");
    let subs: Vec<_> = resume
        .subs
        .iter()
        .map(|s| (s.ns.as_str(), s.ev.as_str(), s.q.as_deref(), s.r))
        .collect();
    assert_eq!(subs, [("/chat", "msg.*", Some("workers"), false)]);
    assert_eq!(resume.rooms, [("/chat".to_owned(), "lobby".to_owned())]);
    for expected in [("msg.a", "first"), ("msg.b", "second")] {
        match read(&mut ws).await {
            Envelope::Emit(emit) => {
                let text: String = rmp_serde::from_slice(&emit.payload).unwrap();
                assert_eq!((emit.event.as_str(), text.as_str()), expected);
            }
            other => panic!("expected the buffered emit, got {other:?}"),
        }
    }
}

/// The next envelope from the client, which must be a `join`/`leave`
/// (`join == true` for a join); answered with `answer(id)`.
async fn expect_member_change(
    ws: &mut Ws,
    join: bool,
    answer: impl FnOnce(u64) -> Envelope,
) -> herald_protocol::envelope::RoomChange {
    let change = match (read(ws).await, join) {
        (Envelope::Join(change), true) | (Envelope::Leave(change), false) => change,
        (other, _) => panic!("expected a join ({join}) or leave, got {other:?}"),
    };
    send(ws, answer(change.id.unwrap())).await;
    change
}

fn lifecycle(ns: &str, event: &str, payload: &impl serde::Serialize) -> Envelope {
    Envelope::Event(Event {
        namespace: ns.into(),
        event: event.into(),
        payload: Bytes::from(rmp_serde::to_vec_named(payload).unwrap()),
        ..Event::default()
    })
}

/// The broker's `$connection` / `$disconnect` payloads become typed
/// [`Connection`]s and [`Disconnection`]s, and a `Connection`'s calls send
/// the service envelopes: `join`/`leave` with `sid` (awaiting `ok`/`err`),
/// an emit to the socket's session-id room, one to a room `ex`cept it.
#[tokio::test]
async fn services_see_lifecycle_events_and_act_on_sockets() {
    use herald_client::{Connection, Disconnection};
    use std::collections::BTreeMap;

    let broker = Scripted::bind().await;
    let client = tokio::spawn(connect(broker.url(), ReconnectPolicy::disabled()));
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap();
    let ns = client.of("/chat");
    let (tx, mut connections) = mpsc::channel::<Connection>(4);
    let sub = tokio::spawn({
        let ns = ns.clone();
        async move {
            ns.on_connection_queue("svc", move |c| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(c).await;
                }
            })
            .await
        }
    });
    let sub_envelope = accept_sub(&mut ws).await;
    assert_eq!(sub_envelope.event, "$connection");
    assert_eq!(sub_envelope.group.as_deref(), Some("svc"));
    assert!(!sub_envelope.responder);
    let _sub = sub.await.unwrap().unwrap();

    let auth = BTreeMap::from([("token", "abc")]);
    // The broker's shape: a map.
    #[derive(serde::Serialize)]
    struct Payload<'a> {
        sid: &'a str,
        auth: &'a BTreeMap<&'a str, &'a str>,
        transport: &'a str,
    }
    let mut group_event = lifecycle(
        "/chat",
        "$connection",
        &Payload {
            sid: "n-7",
            auth: &auth,
            transport: "polling",
        },
    );
    if let Envelope::Event(e) = &mut group_event {
        e.group = Some("svc".into());
    }
    send(&mut ws, group_event).await;
    let c = timeout(WAIT, connections.recv()).await.unwrap().unwrap();
    assert_eq!(c.sid(), "n-7");
    assert_eq!(c.transport(), "polling");
    assert_eq!(
        c.auth::<BTreeMap<String, String>>().unwrap(),
        BTreeMap::from([("token".to_owned(), "abc".to_owned())])
    );
    let any: rmpv::Value = c.auth().unwrap();
    assert_eq!(any["token"].as_str(), Some("abc"));
    assert!(matches!(c.auth::<u64>(), Err(Error::Decode(_))));

    // join: answered ok.
    let joining = tokio::spawn({
        let c = c.clone();
        async move { c.join("room-1").await }
    });
    let change = expect_member_change(&mut ws, true, |id| Envelope::Ok { id }).await;
    assert_eq!(
        (change.namespace.as_str(), change.room.as_str()),
        ("/chat", "room-1")
    );
    assert_eq!(change.sid.as_deref(), Some("n-7"));
    joining.await.unwrap().unwrap();

    // leave: refused as forbidden, and the caller sees it.
    let leaving = tokio::spawn({
        let c = c.clone();
        async move { c.leave("room-1").await }
    });
    let change = expect_member_change(&mut ws, false, |id| {
        Envelope::error(Some(id), ErrorCode::Forbidden, "no service power")
    })
    .await;
    assert_eq!(change.sid.as_deref(), Some("n-7"));
    match leaving.await.unwrap() {
        Err(Error::Broker { code, .. }) => assert_eq!(code, ErrorCode::Forbidden),
        other => panic!("expected forbidden, got {other:?}"),
    }

    // emit to the socket, to a room except it, raw with several arguments.
    c.emit("auth", &any).await.unwrap();
    let Envelope::Emit(emit) = read(&mut ws).await else {
        panic!("expected an emit");
    };
    assert_eq!(emit.room.as_deref(), Some("n-7"));
    assert_eq!((emit.except, emit.args), (None, false));
    assert_eq!(
        rmp_serde::from_slice::<rmpv::Value>(&emit.payload).unwrap(),
        any
    );
    let args = Bytes::from(rmp_serde::to_vec(&(1_u8, "two")).unwrap());
    c.to("room-1")
        .emit_raw("broadcast", herald_client::Payload::args(args.clone()))
        .await
        .unwrap();
    let Envelope::Emit(emit) = read(&mut ws).await else {
        panic!("expected an emit");
    };
    assert_eq!(emit.room.as_deref(), Some("room-1"));
    assert_eq!(emit.except.as_deref(), Some("n-7"));
    assert!(emit.args);
    assert_eq!(emit.payload, args);

    // $disconnect.
    let (tx, mut gone) = mpsc::channel::<Disconnection>(4);
    let sub = tokio::spawn({
        let ns = ns.clone();
        async move {
            ns.on_disconnect(move |d| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(d).await;
                }
            })
            .await
        }
    });
    assert_eq!(accept_sub(&mut ws).await.event, "$disconnect");
    let _sub = sub.await.unwrap().unwrap();
    send(
        &mut ws,
        lifecycle(
            "/chat",
            "$disconnect",
            &BTreeMap::from([("sid", "n-7"), ("reason", "transport close")]),
        ),
    )
    .await;
    let d = timeout(WAIT, gone.recv()).await.unwrap().unwrap();
    assert_eq!(
        (d.namespace(), d.sid(), d.reason()),
        ("/chat", "n-7", "transport close")
    );
}

/// A raw responder gets the request's bytes, sender and `args` flag, and
/// its raw answer keeps its `args` flag on the reply (Socket.IO acks with
/// several values); raw and typed handlers see `from` and `args` on events.
#[tokio::test]
async fn raw_handlers_relay_payloads_with_their_args_flag() {
    let broker = Scripted::bind().await;
    let client = tokio::spawn(connect(broker.url(), ReconnectPolicy::disabled()));
    let (mut ws, _) = broker.accept_session(0).await;
    let client = client.await.unwrap();
    let ns = client.of("/");
    let sub = tokio::spawn({
        let ns = ns.clone();
        async move {
            ns.on_request_raw(
                "message-with-ack",
                |e: herald_client::Event<_>| async move {
                    assert_eq!(e.from(), Some("n-9"));
                    Ok::<_, String>(e.data)
                },
            )
            .await
        }
    });
    assert!(accept_sub(&mut ws).await.responder);
    let _sub = sub.await.unwrap().unwrap();
    let args = Bytes::from(rmp_serde::to_vec(&(1_u8, [2_u8, 3])).unwrap());
    send(
        &mut ws,
        Envelope::Event(Event {
            namespace: "/".into(),
            event: "message-with-ack".into(),
            payload: args.clone(),
            ack: Some(5),
            from: Some("n-9".into()),
            args: true,
            ..Event::default()
        }),
    )
    .await;
    match read(&mut ws).await {
        Envelope::Reply(reply) => {
            assert_eq!((reply.ack, reply.ok, reply.args), (5, true, true));
            assert_eq!(reply.payload, args);
        }
        other => panic!("expected a reply, got {other:?}"),
    }

    let (tx, mut rx) = mpsc::channel(4);
    let sub = tokio::spawn({
        let ns = ns.clone();
        async move {
            ns.on_event("message", move |e: herald_client::Event<(u8, [u8; 2])>| {
                let tx = tx.clone();
                async move {
                    let _ = tx
                        .send((e.from().map(str::to_owned), e.args(), e.data))
                        .await;
                }
            })
            .await
        }
    });
    accept_sub(&mut ws).await;
    let _sub = sub.await.unwrap().unwrap();
    send(
        &mut ws,
        Envelope::Event(Event {
            namespace: "/".into(),
            event: "message".into(),
            payload: args,
            from: Some("n-9".into()),
            args: true,
            ..Event::default()
        }),
    )
    .await;
    assert_eq!(
        timeout(WAIT, rx.recv()).await.unwrap().unwrap(),
        (Some("n-9".to_owned()), true, (1, [2, 3]))
    );
}
