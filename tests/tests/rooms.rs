//! Rooms: join / leave, emit to a room, exclude-self.

#![allow(clippy::unwrap_used)]

use herald_protocol::envelope::Emit;
use herald_tests::{emit, start_broker};

fn to_room(ns: &str, event: &str, room: &str, payload: &'static [u8]) -> Emit {
    Emit {
        room: Some(room.into()),
        ..emit(ns, event, payload)
    }
}

#[tokio::test]
async fn emit_to_a_room_reaches_only_its_subscribed_members() {
    let broker = start_broker(|_| {}).await;
    let ns = "/chat";
    let mut alice = broker.client().await;
    let mut bob = broker.client().await;
    let mut carol = broker.client().await; // subscribed, not in the room
    let mut dave = broker.client().await; // in the room, not subscribed
    let mut erin = broker.client().await; // same room name, other namespace
    for client in [&mut alice, &mut bob, &mut carol] {
        client.subscribe(ns, "msg", None, false).await;
    }
    erin.subscribe("/elsewhere", "msg", None, false).await;
    alice.join(ns, "eu").await;
    bob.join(ns, "eu").await;
    dave.join(ns, "eu").await;
    erin.join("/elsewhere", "eu").await;
    assert_eq!(broker.handle().rooms(), 2);

    let mut publisher = broker.client().await; // not in the room itself
    assert_eq!(
        publisher
            .emit_acked(to_room(ns, "msg", "eu", b"hello eu"))
            .await,
        2
    );
    for member in [&mut alice, &mut bob] {
        let event = member.expect_event().await;
        assert_eq!(event.room.as_deref(), Some("eu"));
        assert_eq!(event.payload, &b"hello eu"[..]);
    }
    for outsider in [&mut carol, &mut dave, &mut erin] {
        outsider.assert_no_event().await;
    }

    // A room nobody is in reaches nobody.
    assert_eq!(
        publisher
            .emit_acked(to_room(ns, "msg", "empty", b"x"))
            .await,
        0
    );

    // An emit without a room still reaches every subscriber.
    assert_eq!(publisher.emit_acked(emit(ns, "msg", &b"all"[..])).await, 3);
    for client in [&mut alice, &mut bob, &mut carol] {
        let event = client.expect_event().await;
        assert_eq!(event.room, None);
    }

    // Leaving: only alice remains.
    bob.leave(ns, "eu").await;
    dave.leave(ns, "eu").await;
    assert_eq!(
        publisher
            .emit_acked(to_room(ns, "msg", "eu", b"after leave"))
            .await,
        1
    );
    assert_eq!(alice.expect_event().await.payload, &b"after leave"[..]);
    bob.assert_no_event().await;

    // The room disappears with its last member; a disconnect leaves too.
    alice.close().await;
    erin.leave("/elsewhere", "eu").await;
    broker
        .wait_for_stats("alice's connection to close", |s| {
            s.connections_current == 5
        })
        .await;
    assert_eq!(broker.handle().rooms(), 0);
    assert_eq!(
        publisher
            .emit_acked(to_room(ns, "msg", "eu", b"gone"))
            .await,
        0
    );
}

#[tokio::test]
async fn exclude_self_skips_the_sender_only() {
    let broker = start_broker(|_| {}).await;
    let ns = "/xs";
    let mut sender = broker.client().await;
    let mut other = broker.client().await;
    for client in [&mut sender, &mut other] {
        client.subscribe(ns, "note", None, false).await;
        client.join(ns, "team").await;
    }

    // Without exclude_self the sender gets its own event (after the ack,
    // which the broker queues after delivering).
    let id = sender.next_id();
    sender
        .emit(Emit {
            id: Some(id),
            ..emit(ns, "note", &b"mine"[..])
        })
        .await;
    let before = sender.barrier().await;
    assert_eq!(before.len(), 2, "{before:?}");
    assert!(
        before.iter().any(
            |e| matches!(e, herald_protocol::Envelope::Event(ev) if ev.payload == b"mine"[..])
        ),
        "{before:?}"
    );
    assert!(
        before.iter().any(
            |e| matches!(e, herald_protocol::Envelope::Ack { id: got, receivers: 2 } if *got == id)
        ),
        "{before:?}"
    );
    assert_eq!(other.drain_events().await.len(), 1);

    // With exclude_self, plain and to a room.
    for room in [None, Some("team".to_owned())] {
        let receivers = sender
            .emit_acked(Emit {
                exclude_self: true,
                room: room.clone(),
                ..emit(ns, "note", &b"not mine"[..])
            })
            .await;
        assert_eq!(receivers, 1, "room {room:?}");
        sender.assert_no_event().await;
        let event = other.expect_event().await;
        assert_eq!(event.room, room);
    }
}
