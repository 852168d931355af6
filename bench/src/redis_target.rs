//! The Redis pub/sub target: `redis-server` driven with the `redis` crate.
//!
//! A subscriber is a pub/sub connection whose `SUBSCRIBE` has been
//! confirmed by the server (the client awaits the confirmation). A
//! publisher pipelines `PUBLISH` commands: each flush sends the batch as one
//! pipeline on a multiplexed connection, with up to [`PIPELINES_IN_FLIGHT`]
//! pipelines awaiting their replies at once (Redis answers every `PUBLISH`
//! with the number of receivers; the replies are discarded).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use herald_loadgen::{BenchError, Driver, Publisher, Subscriber};
use redis::AsyncConnectionConfig;
use redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The target name of Redis in results.
pub const TARGET: &str = "redis";
/// How long connecting or one reply may take.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Pipelines a publisher may have awaiting replies at once.
pub const PIPELINES_IN_FLIGHT: usize = 4;

/// Opens Redis connections to one server.
#[derive(Debug, Clone)]
pub struct RedisDriver {
    url: String,
    client: redis::Client,
}

impl RedisDriver {
    /// A driver for the server at `addr` (`127.0.0.1:PORT`).
    pub fn new(addr: std::net::SocketAddr) -> Result<RedisDriver, BenchError> {
        let url = format!("redis://{addr}/");
        let client = redis::Client::open(url.as_str()).map_err(|e| connect_error(&url, e))?;
        Ok(RedisDriver { url, client })
    }
}

fn connect_error(url: &str, reason: impl ToString) -> BenchError {
    BenchError::Connect {
        target: TARGET.to_owned(),
        address: url.to_owned(),
        reason: reason.to_string(),
    }
}

fn redis_error(what: &str, error: impl std::fmt::Display) -> BenchError {
    BenchError::target(TARGET, format!("{what}: {error}"))
}

impl Driver for RedisDriver {
    type Subscriber = RedisSubscriber;
    type Publisher = RedisPublisher;

    fn name(&self) -> &str {
        TARGET
    }

    async fn subscriber(&self, topic: &str) -> Result<RedisSubscriber, BenchError> {
        let opening = async {
            let mut pubsub = self
                .client
                .get_async_pubsub()
                .await
                .map_err(|e| connect_error(&self.url, e))?;
            pubsub
                .subscribe(topic)
                .await
                .map_err(|e| redis_error("subscribing", e))?;
            Ok::<_, BenchError>(pubsub.split())
        };
        let (sink, stream) = tokio::time::timeout(ANSWER_TIMEOUT, opening)
            .await
            .map_err(|_| BenchError::timeout(ANSWER_TIMEOUT, "a confirmed Redis SUBSCRIBE"))??;
        Ok(RedisSubscriber {
            _sink: sink,
            stream,
        })
    }

    async fn publisher(&self, topic: &str) -> Result<RedisPublisher, BenchError> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(ANSWER_TIMEOUT))
            .set_response_timeout(Some(ANSWER_TIMEOUT));
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| connect_error(&self.url, e))?;
        let (pipelines, queue) = mpsc::channel(PIPELINES_IN_FLIGHT);
        let failure = Arc::new(Mutex::new(None));
        let writer = tokio::spawn(send_pipelines(connection, queue, Arc::clone(&failure)));
        Ok(RedisPublisher {
            channel: topic.to_owned(),
            batch: redis::pipe(),
            queued: 0,
            pipelines: Some(pipelines),
            writer: Some(writer),
            failure,
        })
    }
}

/// A subscribed Redis pub/sub connection.
pub struct RedisSubscriber {
    _sink: PubSubSink,
    stream: PubSubStream,
}

impl std::fmt::Debug for RedisSubscriber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisSubscriber")
    }
}

impl Subscriber for RedisSubscriber {
    async fn next_payload(&mut self) -> Result<Option<Bytes>, BenchError> {
        Ok(self
            .stream
            .next()
            .await
            .map(|message| Bytes::copy_from_slice(message.get_payload_bytes())))
    }
}

/// Sends the pipelines it is given, keeping up to [`PIPELINES_IN_FLIGHT`]
/// awaiting replies; keeps the first error.
async fn send_pipelines(
    connection: MultiplexedConnection,
    mut queue: mpsc::Receiver<redis::Pipeline>,
    failure: Arc<Mutex<Option<String>>>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    while open || !in_flight.is_empty() {
        tokio::select! {
            Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                if let Err(error) = result {
                    if let Ok(mut slot) = failure.lock() {
                        slot.get_or_insert(format!("PUBLISH failed: {error}"));
                    }
                }
            }
            next = queue.recv(), if open && in_flight.len() < PIPELINES_IN_FLIGHT => match next {
                Some(pipeline) => {
                    let mut connection = connection.clone();
                    in_flight.push(async move {
                        pipeline.exec_async(&mut connection).await
                    });
                }
                None => open = false,
            },
        }
    }
}

/// A Redis connection publishing to one channel.
#[derive(Debug)]
pub struct RedisPublisher {
    channel: String,
    batch: redis::Pipeline,
    queued: usize,
    pipelines: Option<mpsc::Sender<redis::Pipeline>>,
    writer: Option<JoinHandle<()>>,
    failure: Arc<Mutex<Option<String>>>,
}

impl RedisPublisher {
    fn check_failure(&self) -> Result<(), BenchError> {
        let failure = self.failure.lock().ok().and_then(|slot| slot.clone());
        match failure {
            Some(failure) => Err(BenchError::target(TARGET, failure)),
            None => Ok(()),
        }
    }
}

impl Publisher for RedisPublisher {
    async fn feed(&mut self, payload: &[u8]) -> Result<(), BenchError> {
        self.batch.publish(&self.channel, payload);
        self.queued += 1;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), BenchError> {
        self.check_failure()?;
        if self.queued == 0 {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, redis::pipe());
        self.queued = 0;
        let Some(pipelines) = &self.pipelines else {
            return Err(BenchError::target(TARGET, "publishing after finish"));
        };
        // Waits while the in-flight pipelines and the queue are full.
        pipelines
            .send(batch)
            .await
            .map_err(|_| BenchError::target(TARGET, "the pipeline writer stopped"))
    }

    async fn finish(&mut self) -> Result<(), BenchError> {
        self.flush().await?;
        self.pipelines = None;
        if let Some(writer) = self.writer.take() {
            tokio::time::timeout(ANSWER_TIMEOUT, writer)
                .await
                .map_err(|_| BenchError::timeout(ANSWER_TIMEOUT, "the last PUBLISH replies"))?
                .map_err(|e| BenchError::target(TARGET, format!("pipeline writer: {e}")))?;
        }
        self.check_failure()
    }
}
