//! The Herald broker: a WebSocket pub/sub daemon that routes namespaced
//! events to the connections subscribed to them.
//!
//! # Layout
//! - `server`: [`Broker::start`], the accept loop (back-off on errors),
//!   graceful shutdown, and the [`BrokerHandle`] a caller keeps.
//! - `http`: the HTTP side of the one port: `/v1/ws` (the WebSocket
//!   upgrade, subprotocol check, connection limit), `/healthz`, `/readyz`.
//! - `session`: one WebSocket connection: the hello/welcome handshake, the
//!   reader that turns envelopes into router calls, limits, clean-up.
//! - `writer`: the one task per connection that drains its bounded queue
//!   into the socket in batches, sends heartbeats and the close frame.
//! - `outbox`: the send handle the router keeps per connection: a bounded
//!   queue plus the slow-consumer policy.
//! - `router`: the fan-out maps (exact names, patterns, queue groups,
//!   responders, rooms) and pending requests.
//! - [`stats`]: counters an operator (and the tests) can read.
//! - [`Error`]: what can stop the broker from starting.

mod http;
mod outbox;
mod router;
mod server;
mod session;
mod state;
pub mod stats;
mod writer;

pub use server::{Broker, BrokerHandle, Error};
pub use stats::StatsSnapshot;
