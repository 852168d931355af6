//! The scripted broker the SDK's protocol-level tests share: a bare
//! WebSocket server in the test that sends exactly the frames a case needs
//! and checks the frames the client sends.

#![allow(clippy::unwrap_used, dead_code, unreachable_pub)]
// tungstenite's handshake callback fixes the (large) error type.
#![allow(clippy::result_large_err)]

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald_client::{Client, ReconnectPolicy};
use herald_protocol::envelope::{Hello, Welcome};
use herald_protocol::{Envelope, Limits, SUBPROTOCOL};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};

pub const WAIT: Duration = Duration::from_secs(5);

pub type Ws = WebSocketStream<TcpStream>;

pub struct Scripted {
    pub listener: TcpListener,
}

impl Scripted {
    pub async fn bind() -> Scripted {
        Scripted {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.listener.local_addr().unwrap())
    }

    /// Accepts one upgrade, returning the socket, the request path and the
    /// subprotocol the client offered.
    pub async fn accept(&self) -> (Ws, String, Option<String>) {
        let (tcp, _) = timeout(WAIT, self.listener.accept())
            .await
            .expect("client connected")
            .unwrap();
        let mut path = String::new();
        let mut offered = None;
        let ws = tokio_tungstenite::accept_hdr_async(tcp, |req: &Request, mut resp: Response| {
            path = req.uri().path().to_owned();
            offered = req
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            resp.headers_mut().insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(SUBPROTOCOL),
            );
            Ok::<Response, ErrorResponse>(resp)
        })
        .await
        .unwrap();
        (ws, path, offered)
    }

    /// Accepts one upgrade and completes hello/welcome.
    pub async fn accept_session(&self, heartbeat_ms: u64) -> (Ws, Hello) {
        self.accept_session_with(welcome(heartbeat_ms)).await
    }

    /// Accepts one upgrade and answers its hello with `welcome`.
    pub async fn accept_session_with(&self, welcome: Welcome) -> (Ws, Hello) {
        let (mut ws, hello) = self.accept_hello().await;
        send(&mut ws, Envelope::Welcome(welcome)).await;
        (ws, hello)
    }

    /// Accepts one upgrade and reads its hello, leaving it unanswered.
    pub async fn accept_hello(&self) -> (Ws, Hello) {
        let (mut ws, _, _) = self.accept().await;
        let Envelope::Hello(hello) = read(&mut ws).await else {
            panic!("the first envelope was not hello");
        };
        (ws, hello)
    }
}

/// The scripted broker's `welcome`: session `scripted-1`, a 1024-byte
/// payload limit, node `scripted`.
pub fn welcome(heartbeat_ms: u64) -> Welcome {
    Welcome {
        version: 1,
        session: "scripted-1".into(),
        heartbeat_ms,
        limits: Limits {
            max_payload: 1024,
            ..Limits::default()
        },
        node: Some("scripted".into()),
        ..Welcome::default()
    }
}

/// The next envelope from the client.
pub async fn read(ws: &mut Ws) -> Envelope {
    loop {
        let message = timeout(WAIT, ws.next())
            .await
            .expect("the client sent something")
            .expect("stream open")
            .unwrap();
        match message {
            Message::Binary(frame) => return herald_protocol::decode(&frame).unwrap(),
            Message::Text(_) => panic!("the client sent a text frame"),
            _ => continue,
        }
    }
}

pub async fn send(ws: &mut Ws, envelope: Envelope) {
    ws.send(Message::Binary(Bytes::from(herald_protocol::encode(
        &envelope,
    ))))
    .await
    .unwrap();
}

/// Answers the next `sub` with `ok`.
pub async fn accept_sub(ws: &mut Ws) -> herald_protocol::envelope::Subscription {
    let Envelope::Subscribe(sub) = read(ws).await else {
        panic!("expected sub");
    };
    send(
        ws,
        Envelope::Ok {
            id: sub.id.unwrap(),
        },
    )
    .await;
    sub
}

/// Answers the next `join` with `ok`.
pub async fn accept_join(ws: &mut Ws) -> herald_protocol::envelope::RoomChange {
    let Envelope::Join(join) = read(ws).await else {
        panic!("expected join");
    };
    send(
        ws,
        Envelope::Ok {
            id: join.id.unwrap(),
        },
    )
    .await;
    join
}

pub async fn connect(url: String, policy: ReconnectPolicy) -> Client {
    Client::builder(url)
        .name("scripted")
        .reconnect(policy)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .unwrap()
}

pub fn fast() -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        factor: 2.0,
        max_attempts: None,
    }
}
