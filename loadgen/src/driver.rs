//! The client side of one benchmark target.
//!
//! The workloads are written once against these traits; each target
//! (Herald here, NATS, Redis, socket.io and the floor forwarder in
//! `herald-bench`) implements them with its own client. A subscriber is
//! returned only once the target has **confirmed** its subscription, so a
//! workload never publishes before every subscriber is ready.
//!
//! The futures need not be `Send`: a workload drives all its connections
//! from one task (the load generator is meant to use one core).

#![allow(
    async_fn_in_trait,
    reason = "the workloads poll these futures on one task; they need no Send bound"
)]

use bytes::Bytes;

use crate::BenchError;

/// Connects publishers and subscribers to one target.
pub trait Driver {
    /// A subscribed connection.
    type Subscriber: Subscriber;
    /// A publishing connection.
    type Publisher: Publisher;

    /// The target's name (`herald`, `nats`, ...), for messages.
    fn name(&self) -> &str;

    /// Opens a connection subscribed to `topic`, once the target has
    /// confirmed the subscription.
    async fn subscriber(&self, topic: &str) -> Result<Self::Subscriber, BenchError>;

    /// Like [`Driver::subscriber`], for a connection that will stay idle
    /// (the `conns` workload): drivers may use smaller buffers.
    async fn idle_subscriber(&self, topic: &str) -> Result<Self::Subscriber, BenchError> {
        self.subscriber(topic).await
    }

    /// Opens a connection that publishes to `topic`.
    async fn publisher(&self, topic: &str) -> Result<Self::Publisher, BenchError>;
}

/// A connection that receives the messages of one topic.
pub trait Subscriber {
    /// The next message's payload; `Ok(None)` once the connection ended.
    async fn next_payload(&mut self) -> Result<Option<Bytes>, BenchError>;
}

/// A connection that publishes to one topic, fire-and-forget: the target
/// acknowledges nothing, as with NATS core publish and Redis `PUBLISH`.
pub trait Publisher {
    /// Queues one message; may wait while the connection applies
    /// backpressure, and need not send it before [`Publisher::flush`].
    async fn feed(&mut self, payload: &[u8]) -> Result<(), BenchError>;

    /// Sends everything queued; reports an error the target sent since.
    async fn flush(&mut self) -> Result<(), BenchError>;

    /// Sends everything queued and waits until the target has taken it
    /// (where the client can tell).
    async fn finish(&mut self) -> Result<(), BenchError> {
        self.flush().await
    }
}
