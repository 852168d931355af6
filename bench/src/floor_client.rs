//! The floor's client: a WebSocket that says `sub TOPIC` or `pub TOPIC`,
//! waits for `ok`, then receives or sends raw binary payloads.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald_loadgen::ws::{self, IDLE_READ_BUFFER, WsOptions, WsStream};
use herald_loadgen::{BenchError, Driver, Publisher, Subscriber};
use tokio_tungstenite::tungstenite::Message;

/// The target name of the floor in results.
pub const TARGET: &str = "floor";
/// How long the floor may take to answer `sub` / `pub`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens connections to one floor relay.
#[derive(Debug, Clone)]
pub struct FloorDriver {
    url: String,
}

impl FloorDriver {
    /// A driver for the floor at `addr` (`127.0.0.1:PORT`).
    pub fn new(addr: std::net::SocketAddr) -> FloorDriver {
        FloorDriver {
            url: format!("ws://{addr}/"),
        }
    }

    async fn open(
        &self,
        role: &str,
        topic: &str,
        read_buffer: usize,
    ) -> Result<WsStream, BenchError> {
        let options = WsOptions {
            read_buffer,
            ..WsOptions::new(TARGET)
        };
        let mut ws = ws::connect(&self.url, options).await?;
        ws.send(Message::Text(format!("{role} {topic}").into()))
            .await
            .map_err(|e| BenchError::target(TARGET, format!("sending {role}: {e}")))?;
        match tokio::time::timeout(ANSWER_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Message::Text(text)))) if text.as_str() == "ok" => Ok(ws),
            Ok(Some(Ok(other))) => Err(BenchError::target(
                TARGET,
                format!("expected ok to {role}, got {other:?}"),
            )),
            Ok(Some(Err(error))) => Err(BenchError::target(TARGET, error.to_string())),
            Ok(None) => Err(BenchError::target(TARGET, format!("closed after {role}"))),
            Err(_) => Err(BenchError::timeout(ANSWER_TIMEOUT, format!("ok to {role}"))),
        }
    }
}

impl Driver for FloorDriver {
    type Subscriber = FloorSubscriber;
    type Publisher = FloorPublisher;

    fn name(&self) -> &str {
        TARGET
    }

    async fn subscriber(&self, topic: &str) -> Result<FloorSubscriber, BenchError> {
        Ok(FloorSubscriber {
            ws: self.open("sub", topic, ws::BUSY_READ_BUFFER).await?,
        })
    }

    async fn idle_subscriber(&self, topic: &str) -> Result<FloorSubscriber, BenchError> {
        Ok(FloorSubscriber {
            ws: self.open("sub", topic, IDLE_READ_BUFFER).await?,
        })
    }

    async fn publisher(&self, topic: &str) -> Result<FloorPublisher, BenchError> {
        Ok(FloorPublisher {
            ws: self.open("pub", topic, ws::BUSY_READ_BUFFER).await?,
        })
    }
}

/// A connection subscribed to one floor topic.
#[derive(Debug)]
pub struct FloorSubscriber {
    ws: WsStream,
}

impl Subscriber for FloorSubscriber {
    async fn next_payload(&mut self) -> Result<Option<Bytes>, BenchError> {
        loop {
            match self.ws.next().await {
                None | Some(Ok(Message::Close(_))) => return Ok(None),
                Some(Ok(Message::Binary(payload))) => return Ok(Some(payload)),
                Some(Ok(_)) => {}
                Some(Err(error)) => {
                    return Err(BenchError::target(
                        TARGET,
                        format!("connection lost: {error}"),
                    ));
                }
            }
        }
    }
}

/// A connection publishing to one floor topic.
#[derive(Debug)]
pub struct FloorPublisher {
    ws: WsStream,
}

impl Publisher for FloorPublisher {
    async fn feed(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        self.ws
            .feed(Message::Binary(Bytes::copy_from_slice(payload)))
            .await
            .map_err(|e| BenchError::target(TARGET, format!("publishing: {e}")))
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        self.ws
            .flush()
            .await
            .map_err(|e| BenchError::target(TARGET, format!("publishing: {e}")))
    }
}
