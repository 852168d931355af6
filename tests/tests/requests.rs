//! Request/reply: a request reaches one responder, its reply returns to
//! the requester; `no_responders`, `timeout`, `unknown_request` and
//! `too_many_requests` are distinct errors.

#![allow(clippy::unwrap_used)]

use herald_protocol::envelope::{Emit, Event};
use herald_protocol::{Envelope, ErrorCode};
use herald_tests::{RawClient, emit, start_broker};

const NS: &str = "/rpc";

/// Waits for a request on a responder; returns its handle and the event.
async fn expect_request(responder: &mut RawClient) -> (u64, Event) {
    let event = responder.expect_event().await;
    let handle = event
        .ack
        .unwrap_or_else(|| panic!("a request must carry an ack handle: {event:?}"));
    (handle, event)
}

#[tokio::test]
async fn reply_is_routed_back_to_the_requester() {
    let broker = start_broker(|_| {}).await;
    let mut responder = broker.client().await;
    responder.subscribe(NS, "math.double", None, true).await;
    // A plain subscriber of the same event is not a responder.
    let mut listener = broker.client().await;
    listener.subscribe(NS, "math.double", None, false).await;
    let mut requester = broker.client().await;

    requester
        .request(emit(NS, "math.double", &b"21"[..]), 7, Some(2_000))
        .await;
    let (handle, event) = expect_request(&mut responder).await;
    assert_eq!(event.event, "math.double");
    assert_eq!(event.payload, &b"21"[..]);
    assert_eq!(broker.handle().pending_requests(), 1);
    responder.reply(handle, true, &b"42"[..]).await;

    let reply = requester.expect_reply().await;
    assert_eq!(reply.ack, 7, "the reply carries the requester's own ack id");
    assert!(reply.ok);
    assert_eq!(reply.payload, &b"42"[..]);
    assert_eq!(broker.handle().pending_requests(), 0);
    listener.assert_no_event().await;

    // An error reply (ok = false) passes through the same way.
    requester
        .request(emit(NS, "math.double", &b"NaN"[..]), 8, None)
        .await;
    let (handle, _) = expect_request(&mut responder).await;
    responder.reply(handle, false, &b"not a number"[..]).await;
    let reply = requester.expect_reply().await;
    assert_eq!((reply.ack, reply.ok), (8, false));
    assert_eq!(reply.payload, &b"not a number"[..]);

    // A reply is only accepted once.
    responder.reply(handle, true, &b"again"[..]).await;
    let error = responder.expect_error(ErrorCode::UnknownRequest).await;
    assert_eq!(error.id, Some(handle));
    requester.assert_no_event().await;
    assert_eq!(broker.stats().requests, 2);
}

#[tokio::test]
async fn pattern_and_group_responders_answer_and_one_is_picked() {
    let broker = start_broker(|_| {}).await;
    let mut by_pattern = broker.client().await;
    by_pattern.subscribe(NS, "svc.*", None, true).await;
    let mut in_group = broker.clients(2).await;
    for member in &mut in_group {
        member.subscribe(NS, "svc.ping", Some("svc"), true).await;
    }
    let mut requester = broker.client().await;

    let mut answered_by = [0u32; 3];
    for ack in 0..30 {
        requester
            .request(emit(NS, "svc.ping", &b""[..]), ack, None)
            .await;
        // Make sure the request was routed before looking for it.
        requester.assert_no_event().await;
        let mut got = Vec::new();
        for (i, responder) in std::iter::once(&mut by_pattern)
            .chain(in_group.iter_mut())
            .enumerate()
        {
            for event in responder.drain_events().await {
                got.push((i, event.ack.unwrap()));
            }
        }
        assert_eq!(got.len(), 1, "request {ack} reached {got:?}");
        let (i, handle) = got[0];
        answered_by[i] += 1;
        let responder = match i {
            0 => &mut by_pattern,
            n => &mut in_group[n - 1],
        };
        responder
            .reply(handle, true, ack.to_be_bytes().to_vec())
            .await;
        let reply = requester.expect_reply().await;
        assert_eq!(reply.ack, ack);
        assert_eq!(reply.payload, ack.to_be_bytes().to_vec());
    }
    assert!(
        answered_by.iter().all(|&n| n > 0),
        "requests should spread over responders: {answered_by:?}"
    );
}

#[tokio::test]
async fn no_responders_is_an_error_naming_the_request() {
    let broker = start_broker(|_| {}).await;
    let mut requester = broker.client().await;
    // A plain subscriber does not answer requests.
    let mut listener = broker.client().await;
    listener.subscribe(NS, "nobody.home", None, false).await;

    requester
        .request(emit(NS, "nobody.home", &b"?"[..]), 11, Some(1_000))
        .await;
    let error = requester.expect_error(ErrorCode::NoResponders).await;
    assert_eq!(error.id, Some(11));
    assert!(error.message.contains("nobody.home"), "{}", error.message);
    listener.assert_no_event().await;
    assert_eq!(broker.handle().pending_requests(), 0);
}

#[tokio::test]
async fn a_request_nobody_answers_times_out_and_a_late_reply_is_refused() {
    let broker = start_broker(|_| {}).await;
    let mut silent = broker.client().await;
    silent.subscribe(NS, "slow.op", None, true).await;
    let mut requester = broker.client().await;

    requester
        .request(emit(NS, "slow.op", &b"..."[..]), 21, Some(100))
        .await;
    let (handle, _) = expect_request(&mut silent).await;
    let error = requester.expect_error(ErrorCode::Timeout).await;
    assert_eq!(error.id, Some(21));
    assert_eq!(broker.handle().pending_requests(), 0);

    silent.reply(handle, true, &b"too late"[..]).await;
    let error = silent.expect_error(ErrorCode::UnknownRequest).await;
    assert_eq!(error.id, Some(handle));
    requester.assert_no_event().await;
}

#[tokio::test]
async fn only_the_chosen_responder_may_reply() {
    let broker = start_broker(|_| {}).await;
    let mut responders = broker.clients(2).await;
    for responder in &mut responders {
        responder.subscribe(NS, "pick.one", None, true).await;
    }
    let mut requester = broker.client().await;

    requester
        .request(emit(NS, "pick.one", &b""[..]), 31, Some(5_000))
        .await;
    requester.assert_no_event().await;
    let first = responders[0].drain_events().await;
    let second = responders[1].drain_events().await;
    let (chosen, other, handle) = match (first.as_slice(), second.as_slice()) {
        ([event], []) => (0, 1, event.ack.unwrap()),
        ([], [event]) => (1, 0, event.ack.unwrap()),
        _ => panic!("the request should reach exactly one responder: {first:?} {second:?}"),
    };

    responders[other]
        .reply(handle, true, &b"impostor"[..])
        .await;
    let error = responders[other]
        .expect_error(ErrorCode::UnknownRequest)
        .await;
    assert_eq!(error.id, Some(handle));
    requester.assert_no_event().await;

    responders[chosen]
        .reply(handle, true, &b"genuine"[..])
        .await;
    let reply = requester.expect_reply().await;
    assert_eq!((reply.ack, reply.payload.as_ref()), (31, &b"genuine"[..]));
}

#[tokio::test]
async fn requests_in_flight_are_limited_per_connection() {
    let broker = start_broker(|s| s.limits.max_pending_requests_per_connection = 2).await;
    let mut silent = broker.client().await;
    silent.subscribe(NS, "hold", None, true).await;
    let mut requester = broker.client().await;

    for ack in [1, 2] {
        requester
            .request(emit(NS, "hold", &b""[..]), ack, None)
            .await;
    }
    requester.request(emit(NS, "hold", &b""[..]), 3, None).await;
    let error = requester.expect_error(ErrorCode::TooManyRequests).await;
    assert_eq!(error.id, Some(3));
    let handles: Vec<u64> = silent
        .drain_events()
        .await
        .iter()
        .map(|e| e.ack.unwrap())
        .collect();
    assert_eq!(handles.len(), 2);

    // Answering one frees a slot.
    silent.reply(handles[0], true, &b""[..]).await;
    assert_eq!(requester.expect_reply().await.ack, 1);
    requester.request(emit(NS, "hold", &b""[..]), 4, None).await;
    assert_eq!(silent.drain_events().await.len(), 1);
    requester.assert_no_event().await;
}

#[tokio::test]
async fn an_emit_with_both_id_and_ack_is_refused() {
    let broker = start_broker(|_| {}).await;
    let mut responder = broker.client().await;
    responder.subscribe(NS, "both", None, true).await;
    let mut requester = broker.client().await;
    requester
        .send(&Envelope::Emit(Emit {
            id: Some(1),
            ack: Some(2),
            ..emit(NS, "both", &b""[..])
        }))
        .await;
    let error = requester.expect_error(ErrorCode::InvalidEnvelope).await;
    assert_eq!(error.id, Some(2));
    responder.assert_no_event().await;
}

#[tokio::test]
async fn a_responder_that_disconnects_leads_to_no_responders() {
    let broker = start_broker(|_| {}).await;
    let responder = {
        let mut responder = broker.client().await;
        responder.subscribe(NS, "gone", None, true).await;
        responder
    };
    responder.close().await;
    broker
        .wait_for_stats("the responder to disconnect", |s| s.subscriptions == 0)
        .await;
    let mut requester = broker.client().await;
    requester.request(emit(NS, "gone", &b""[..]), 5, None).await;
    assert_eq!(
        requester.expect_error(ErrorCode::NoResponders).await.id,
        Some(5)
    );
}

/// A responder that disconnects holding a request fails it at once with
/// `no_responders`, instead of leaving the requester to its timeout (60 s
/// here, far beyond the harness's wait bound).
#[tokio::test]
async fn a_request_held_by_a_disconnecting_responder_fails_at_once() {
    let broker = start_broker(|_| {}).await;
    let mut responder = broker.client().await;
    responder.subscribe(NS, "held", None, true).await;
    let mut requester = broker.client().await;
    requester
        .request(emit(NS, "held", &b""[..]), 8, Some(60_000))
        .await;
    let _ = expect_request(&mut responder).await;
    assert_eq!(broker.handle().pending_requests(), 1);
    responder.close().await;
    let error = requester.expect_error(ErrorCode::NoResponders).await;
    assert_eq!(error.id, Some(8));
    assert!(error.message.contains("disconnected"), "{}", error.message);
    assert_eq!(broker.handle().pending_requests(), 0);
}
