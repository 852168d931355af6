//! The `herald-sdk` target: the Herald broker driven through its own SDK,
//! `herald-client`, the way applications use it, to compare with NATS
//! driven through `async-nats`.
//!
//! Every subscriber and publisher is a [`Client`] of its own (one
//! connection each, as for every target). A subscriber registers a typed
//! handler, `on(topic, |payload: ByteBuf| ...)`: the SDK decodes each
//! event's MessagePack payload into a [`ByteBuf`] and the handler hands it
//! to the load generator's receive loop through an inbox. A publisher
//! emits `serde_bytes::Bytes` (fire-and-forget `emit`); its `finish` joins
//! a room, a round trip through the broker behind every emit.
//!
//! The inbox stands where the application's own code would be: a mutex
//! push per event, and a wake-up only when the receive loop waits (it takes
//! everything queued at once), so it costs the SDK's side about what
//! polling an `async_nats::Subscriber` costs NATS's.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use herald_client::{Client, Namespace, ReconnectPolicy};
use herald_loadgen::herald::{DEFAULT_NAMESPACE, endpoint_url};
use herald_loadgen::{BenchError, Driver, Publisher, Subscriber};
use serde_bytes::ByteBuf;
use tokio::sync::Notify;

/// The target name of Herald through its SDK in results.
pub const TARGET: &str = "herald-sdk";
/// The room a publisher joins to confirm the broker handled its emits.
const FINISH_ROOM: &str = "bench-finish";

/// Opens `herald-client` connections to one broker.
#[derive(Debug, Clone)]
pub struct SdkDriver {
    url: String,
}

impl SdkDriver {
    /// A driver for the broker at `addr` (`127.0.0.1:PORT`).
    pub fn new(addr: std::net::SocketAddr) -> Result<SdkDriver, BenchError> {
        Ok(SdkDriver {
            url: endpoint_url(&format!("ws://{addr}"))?,
        })
    }

    /// One connected client, not reconnecting (a lost connection is an
    /// error of the run, not something to hide).
    pub async fn connect(&self) -> Result<Client, BenchError> {
        Client::builder(self.url.as_str())
            .name("herald-bench")
            .reconnect(ReconnectPolicy::disabled())
            .connect()
            .await
            .map_err(|e| BenchError::Connect {
                target: TARGET.to_owned(),
                address: self.url.clone(),
                reason: e.to_string(),
            })
    }

    /// The benchmark's namespace on `client`.
    pub fn namespace(client: &Client) -> Namespace {
        client.of(DEFAULT_NAMESPACE)
    }
}

/// A `herald-client` failure as a benchmark error.
pub fn sdk_error(what: &str, error: impl std::fmt::Display) -> BenchError {
    BenchError::target(TARGET, format!("{what}: {error}"))
}

impl Driver for SdkDriver {
    type Subscriber = SdkSubscriber;
    type Publisher = SdkPublisher;

    fn name(&self) -> &str {
        TARGET
    }

    async fn subscriber(&self, topic: &str) -> Result<SdkSubscriber, BenchError> {
        let client = self.connect().await?;
        let inbox = Arc::new(Inbox::default());
        let sink = Arc::clone(&inbox);
        SdkDriver::namespace(&client)
            .on(topic, move |payload: ByteBuf| {
                sink.push(Bytes::from(payload.into_vec()));
                std::future::ready(())
            })
            .await
            .map_err(|e| sdk_error("subscribing", e))?;
        Ok(SdkSubscriber {
            _client: client,
            inbox,
            taken: VecDeque::new(),
        })
    }

    async fn publisher(&self, topic: &str) -> Result<SdkPublisher, BenchError> {
        let client = self.connect().await?;
        Ok(SdkPublisher {
            namespace: SdkDriver::namespace(&client),
            topic: topic.to_owned(),
        })
    }
}

/// Payloads a handler received and the receive loop has not taken yet.
#[derive(Debug, Default)]
struct Inbox {
    queue: Mutex<VecDeque<Bytes>>,
    arrived: Notify,
}

impl Inbox {
    fn push(&self, payload: Bytes) {
        let was_empty = {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.push_back(payload);
            queue.len() == 1
        };
        if was_empty {
            self.arrived.notify_one();
        }
    }

    /// Everything queued, into `into` (empty).
    fn take_all(&self, into: &mut VecDeque<Bytes>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::swap(&mut *queue, into);
    }
}

/// A client with one typed handler feeding an inbox.
#[derive(Debug)]
pub struct SdkSubscriber {
    _client: Client,
    inbox: Arc<Inbox>,
    /// Taken from the inbox, not yet returned.
    taken: VecDeque<Bytes>,
}

impl Subscriber for SdkSubscriber {
    async fn next_payload(&mut self) -> Result<Option<Bytes>, BenchError> {
        loop {
            if let Some(payload) = self.taken.pop_front() {
                return Ok(Some(payload));
            }
            self.inbox.take_all(&mut self.taken);
            if self.taken.is_empty() {
                // A push into the empty inbox stores a permit if nobody
                // waits yet, so none is missed between the take and here.
                self.inbox.arrived.notified().await;
            }
        }
    }
}

/// A client emitting to one event.
#[derive(Debug)]
pub struct SdkPublisher {
    namespace: Namespace,
    topic: String,
}

impl Publisher for SdkPublisher {
    async fn feed(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        self.namespace
            .emit(&self.topic, serde_bytes::Bytes::new(payload))
            .await
            .map_err(|e| sdk_error("emitting", e))
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        // The SDK's writer flushes on its own, once per batch it drains.
        Ok(())
    }

    async fn finish(&mut self) -> Result<(), BenchError> {
        // Answered after every emit before it (one connection, in order).
        self.namespace
            .join(FINISH_ROOM)
            .await
            .map_err(|e| sdk_error("confirming the emits", e))
    }
}
