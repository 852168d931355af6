//! The NATS target: `nats-server` driven with the `async-nats` client.
//!
//! One client (one TCP connection) per subscriber and per publisher, as for
//! every target. NATS has no per-subscription acknowledgement, so readiness
//! is confirmed by a round trip on the same connection: after `SUB`, the
//! client subscribes to a fresh inbox, publishes to it and waits for that
//! message; the server handles a connection's operations in order, so the
//! subscription is in place by then. Publishing is core NATS `PUB`
//! (fire-and-forget), pipelined by the client; a publisher's `finish` makes
//! the same round trip.

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use herald_loadgen::{BenchError, Driver, Publisher, Subscriber};

/// The target name of NATS in results.
pub const TARGET: &str = "nats";
/// How long connecting or a confirming round trip may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens NATS connections to one server.
#[derive(Debug, Clone)]
pub struct NatsDriver {
    url: String,
}

impl NatsDriver {
    /// A driver for the server at `addr` (`127.0.0.1:PORT`).
    pub fn new(addr: std::net::SocketAddr) -> NatsDriver {
        NatsDriver {
            url: format!("nats://{addr}"),
        }
    }

    /// One connected client.
    pub(crate) async fn connect(&self) -> Result<Client, BenchError> {
        let connecting = ConnectOptions::new()
            .connection_timeout(ANSWER_TIMEOUT)
            .connect(self.url.as_str());
        match tokio::time::timeout(ANSWER_TIMEOUT, connecting).await {
            Ok(Ok(client)) => Ok(client),
            Ok(Err(error)) => Err(connect_error(&self.url, error)),
            Err(_) => Err(connect_error(&self.url, "no answer in time")),
        }
    }
}

fn connect_error(url: &str, reason: impl ToString) -> BenchError {
    BenchError::Connect {
        target: TARGET.to_owned(),
        address: url.to_owned(),
        reason: reason.to_string(),
    }
}

fn nats_error(what: &str, error: impl std::fmt::Display) -> BenchError {
    BenchError::target(TARGET, format!("{what}: {error}"))
}

/// Publishes to a fresh inbox on `client` and waits for the message: a
/// round trip through the server on this connection.
pub(crate) async fn round_trip(client: &Client) -> Result<(), BenchError> {
    let inbox = client.new_inbox();
    let mut probe = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| nats_error("subscribing to the probe inbox", e))?;
    client
        .publish(inbox, Bytes::from_static(b"ready"))
        .await
        .map_err(|e| nats_error("publishing the probe", e))?;
    client
        .flush()
        .await
        .map_err(|e| nats_error("flushing the probe", e))?;
    match tokio::time::timeout(ANSWER_TIMEOUT, probe.next()).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(BenchError::target(
            TARGET,
            "the connection closed during the round trip",
        )),
        Err(_) => Err(BenchError::timeout(ANSWER_TIMEOUT, "a NATS round trip")),
    }
}

impl Driver for NatsDriver {
    type Subscriber = NatsSubscriber;
    type Publisher = NatsPublisher;

    fn name(&self) -> &str {
        TARGET
    }

    async fn subscriber(&self, topic: &str) -> Result<NatsSubscriber, BenchError> {
        let client = self.connect().await?;
        let subscription = client
            .subscribe(topic.to_owned())
            .await
            .map_err(|e| nats_error("subscribing", e))?;
        round_trip(&client).await?;
        Ok(NatsSubscriber {
            _client: client,
            subscription,
        })
    }

    async fn publisher(&self, topic: &str) -> Result<NatsPublisher, BenchError> {
        Ok(NatsPublisher {
            client: self.connect().await?,
            subject: Subject::from(topic),
        })
    }
}

/// A subscribed NATS connection.
#[derive(Debug)]
pub struct NatsSubscriber {
    _client: Client,
    subscription: async_nats::Subscriber,
}

impl Subscriber for NatsSubscriber {
    async fn next_payload(&mut self) -> Result<Option<Bytes>, BenchError> {
        Ok(self
            .subscription
            .next()
            .await
            .map(|message| message.payload))
    }
}

/// A NATS connection publishing to one subject.
#[derive(Debug)]
pub struct NatsPublisher {
    client: Client,
    subject: Subject,
}

impl Publisher for NatsPublisher {
    async fn feed(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        self.client
            .publish(self.subject.clone(), Bytes::copy_from_slice(payload))
            .await
            .map_err(|e| nats_error("publishing", e))
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        // The client writes published messages out on its own; waiting for
        // its flush here would add a round trip to the connection task per
        // batch, which core NATS publishers do not do.
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), BenchError> {
        round_trip(&self.client).await
    }
}
