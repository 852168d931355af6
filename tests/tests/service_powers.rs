//! The service-side powers and session-id rooms against a real broker:
//! who may emit to one connection's session-id room and move another
//! connection between rooms (`socketio.service_powers`), and the refusals
//! (`forbidden`, `unknown_session`) for everyone else.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use bytes::Bytes;
use herald_config::ServicePowers;
use herald_protocol::envelope::{Emit, RoomChange};
use herald_protocol::{Envelope, ErrorCode};
use herald_tests::{RawClient, start_broker};

fn join(id: u64, room: &str, sid: Option<&str>) -> Envelope {
    Envelope::Join(RoomChange {
        id: Some(id),
        namespace: "/".into(),
        room: room.into(),
        sid: sid.map(str::to_owned),
    })
}

fn emit_to(room: &str) -> Envelope {
    Envelope::Emit(Emit {
        id: Some(9),
        namespace: "/".into(),
        event: "note".into(),
        room: Some(room.into()),
        payload: Bytes::from_static(b"\xa2hi"),
        ..Emit::default()
    })
}

async fn greeted(client: &mut RawClient) -> String {
    client.hello().await.session
}

#[tokio::test]
async fn nobody_joins_a_session_id_room_and_unknown_sessions_are_named() {
    let broker = start_broker(|_| {}).await;
    let mut a = broker.connect().await;
    let mut b = broker.connect().await;
    let _ = greeted(&mut a).await;
    let b_sid = greeted(&mut b).await;

    a.send(&join(1, &b_sid, None)).await;
    let error = a.expect_error(ErrorCode::Forbidden).await;
    assert!(error.message.contains("session id"), "{}", error.message);

    // Moving a connection that does not exist names the problem.
    let missing = format!("{}-999999", b_sid.rsplit_once('-').unwrap().0);
    a.send(&join(2, "lobby", Some(&missing))).await;
    a.expect_error(ErrorCode::UnknownSession).await;

    // A service (native, the default powers) moves b and reaches it alone.
    a.send(&join(3, "lobby", Some(&b_sid))).await;
    a.expect_ok(3).await;
    b.subscribe("/", "note", None, false).await;
    a.send(&emit_to(&b_sid)).await;
    assert_eq!(b.expect_event().await.room.as_deref(), Some(b_sid.as_str()));
}

#[tokio::test]
async fn without_service_powers_session_rooms_and_moves_are_forbidden() {
    let broker = start_broker(|s| s.socketio.service_powers = ServicePowers::None).await;
    let mut a = broker.connect().await;
    let mut b = broker.connect().await;
    let _ = greeted(&mut a).await;
    let b_sid = greeted(&mut b).await;

    a.send(&emit_to(&b_sid)).await;
    let error = a.expect_error(ErrorCode::Forbidden).await;
    assert!(
        error.message.contains("socketio.service_powers"),
        "{}",
        error.message
    );

    a.send(&join(4, "lobby", Some(&b_sid))).await;
    a.expect_error(ErrorCode::Forbidden).await;

    // The connection itself may still join ordinary rooms.
    a.send(&join(5, "lobby", None)).await;
    a.expect_ok(5).await;

    // And HTTP publishers hold no power either.
    let path = format!("/v1/emit/note?room={b_sid}");
    let response = broker.post(&path, Some("application/json"), b"1").await;
    assert_eq!(response.status, 403, "{response:?}");
    assert!(response.body.contains("forbidden"), "{response:?}");
}
