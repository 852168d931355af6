//! The echo endpoint (`testing.echo_endpoint`) that the Autobahn
//! TestSuite drives: absent by default, and when enabled it sends every
//! text and binary message back as it came, answers pings, and closes with
//! plain WebSocket close frames (no Herald envelope) through the broker's
//! own reader and writer.

#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald_protocol::CloseReason;
use herald_tests::{MuteSocket, RawFrame, TIMEOUT, TestBroker, Ws, start_broker};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

const ECHO: &str = "/v1/echo";

async fn echo_broker(max_payload_bytes: usize) -> TestBroker {
    start_broker(|s| {
        s.testing.echo_endpoint = ECHO.into();
        s.limits.max_payload_bytes = max_payload_bytes;
    })
    .await
}

/// A plain WebSocket client of the echo endpoint (no subprotocol offered).
async fn connect_echo(broker: &TestBroker) -> Result<Ws, WsError> {
    let url = format!("ws://{}{ECHO}", broker.addr());
    let connect = tokio_tungstenite::connect_async_with_config(url, None, true);
    let (ws, response) = tokio::time::timeout(TIMEOUT, connect)
        .await
        .expect("the upgrade should be answered")?;
    assert!(
        response.headers().get("sec-websocket-protocol").is_none(),
        "no subprotocol was offered, so none may be named: {response:?}"
    );
    Ok(ws)
}

async fn next(ws: &mut Ws) -> Message {
    match tokio::time::timeout(TIMEOUT, ws.next()).await {
        Ok(Some(Ok(message))) => message,
        Ok(other) => panic!("expected a message from the echo endpoint, got {other:?}"),
        Err(_) => panic!("no message from the echo endpoint within {TIMEOUT:?}"),
    }
}

#[tokio::test]
async fn the_echo_endpoint_is_off_by_default() {
    let broker = start_broker(|_| {}).await;
    let response = broker.get(ECHO).await;
    assert_eq!(response.status, 404, "{response:?}");
    match connect_echo(&broker).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 404),
        Err(other) => panic!("expected a 404 refusal, got {other}"),
        Ok(_) => panic!("the echo endpoint must not exist unless configured"),
    }
}

#[tokio::test]
async fn the_echo_endpoint_sends_text_and_binary_back() {
    let broker = echo_broker(1 << 20).await;
    let mut ws = connect_echo(&broker).await.expect("the echo upgrade");
    // 70,000 bytes takes the 64-bit length form both ways.
    let large: Bytes = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let messages = [
        Message::text("héllo, wörld"),
        Message::binary(Bytes::from_static(&[0, 1, 2, 0xfe, 0xff])),
        Message::text(""),
        Message::binary(Bytes::new()),
        Message::binary(large),
    ];
    for message in messages {
        ws.send(message.clone()).await.unwrap();
        assert_eq!(next(&mut ws).await, message);
    }
    ws.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    assert_eq!(
        next(&mut ws).await,
        Message::Pong(Bytes::from_static(b"are you there"))
    );
    ws.send(Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "done".into(),
    })))
    .await
    .unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Normal),
        other => panic!("expected the close answer, got {other:?}"),
    }
    broker
        .wait_for_stats("the echo connection's close counted", |s| {
            s.closed(CloseReason::ClientClosed) == 1 && s.connections_current == 0
        })
        .await;
    // The Herald endpoint beside it is untouched.
    broker.assert_healthy().await;
}

/// An echo connection is closed the way the Herald endpoint's are (here
/// 1009 for a message over `limits.max_payload_bytes`), but with the close
/// frame alone: no Herald `close` envelope comes first.
#[tokio::test]
async fn echo_closes_are_plain_close_frames() {
    let broker = echo_broker(1024).await;
    let mut ws = connect_echo(&broker).await.expect("the echo upgrade");
    ws.send(Message::binary(vec![7u8; 1024])).await.unwrap();
    assert_eq!(next(&mut ws).await, Message::binary(vec![7u8; 1024]));
    ws.send(Message::binary(vec![7u8; 1025])).await.unwrap();
    match next(&mut ws).await {
        Message::Close(Some(frame)) => assert_eq!(frame.code, CloseCode::Size, "{frame:?}"),
        other => panic!("expected a 1009 close frame first, got {other:?}"),
    }
    broker
        .wait_for_stats("the close counted as message_too_big", |s| {
            s.closed(CloseReason::MessageTooBig) == 1
        })
        .await;
}

/// A masked client frame (mask key zero) with FIN set.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    assert!(payload.len() < 126, "short frames only");
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8, 0, 0, 0, 0];
    frame.extend_from_slice(payload);
    frame
}

/// A message and a close arriving in one read (Autobahn case 7.1.1): the
/// echo queued before the close was read is written before the close
/// answer, not dropped with the queue.
#[tokio::test]
async fn a_message_just_before_the_close_is_still_echoed() {
    let broker = echo_broker(1 << 20).await;
    let mut socket = MuteSocket::connect_to(broker.addr(), ECHO).await;
    let mut bytes = client_frame(0x1, b"Hello World!");
    bytes.extend(client_frame(0x8, &1000u16.to_be_bytes()));
    socket.send_bytes(&bytes).await;
    let frames = socket.read_to_close().await;
    assert_eq!(
        frames.first(),
        Some(&RawFrame {
            opcode: 0x1,
            payload: b"Hello World!".to_vec()
        }),
        "{frames:?}"
    );
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[1].close().0, 1000);
}
