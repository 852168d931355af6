//! The Herald broker: a WebSocket pub/sub daemon that routes namespaced
//! events to the connections subscribed to them.
//!
//! # Layout
//! - `server`: [`Broker::start`], the accept loop (back-off on errors),
//!   graceful shutdown, and the [`BrokerHandle`] a caller keeps.
//! - `http`: the HTTP side of the one port: `/v1/ws` (the WebSocket
//!   upgrade, subprotocol check, connection limit), `/healthz`, `/readyz`,
//!   and the routes of the two modules below.
//! - `publish`: `POST /v1/emit/{event}`, publishing over HTTP through the
//!   same router path as a WebSocket emit.
//! - `presence_api`: `GET /v1/presence/{namespace}`, who is connected
//!   (this node's members from the router, the others' from the
//!   backplane).
//! - `metrics`: `GET /metrics`, Prometheus text from the broker's own
//!   recorder (never a global one), filled from [`stats`] at scrape time.
//! - `echo`: the echo endpoint (`testing.echo_endpoint`, off by default)
//!   that sends every message back through the same reader and writer, for
//!   the Autobahn TestSuite.
//! - `engineio`: Engine.IO v4 (long-polling, WebSocket, the upgrade,
//!   heartbeat, CORS) at `socketio.path` and, for tests,
//!   `testing.engineio_echo_endpoint`; what the Socket.IO layer runs on.
//! - `conn`: a connection's frame reader and writer task, opened and
//!   finished together (shared by `session` and `echo`).
//! - `fdlimit`: the connection limit that fits under the open-files limit
//!   (raised to the hard limit at start).
//! - `framing`: finds HTTP requests that carry both `Content-Length` and
//!   `Transfer-Encoding` (refused with 400), in the bytes hyper reads.
//! - `limits`: abuse limits (per-IP connection rate and sessions, the
//!   per-connection message rate), `server.allowed_origins`, and the
//!   operator endpoints' token (PROTOCOL.md §24).
//! - `admin`: the admin console (`[admin]`, off by default): the page
//!   `/admin`, the JSON admin API and its live stream, the router's taps,
//!   and the Socket.IO Admin UI protocol.
//! - `admission`: one check per action (emit, subscribe, room change),
//!   shared by every front end: names, limits, permissions, service-side
//!   powers.
//! - `auth`: `[auth]`: JWT verification, permissions compiled from the
//!   claims, each connection's grant, token expiry (PROTOCOL.md §22).
//! - `session`: one WebSocket connection: the hello/welcome handshake, the
//!   reader that turns envelopes into router calls, limits, clean-up.
//! - `frame`: server-to-client WebSocket frames, built once (an event's
//!   frame is the same bytes for every receiver).
//! - `socket`: an upgraded connection taken back from hyper as TCP or
//!   TLS and split into halves.
//! - `tls`: `[tls]`, the rustls configuration from the PEM files, its
//!   reload (SIGHUP, file change), and the split TLS stream of upgraded
//!   connections.
//! - `inbound`: the client's WebSocket frames read straight off the socket
//!   (no read buffer while idle).
//! - `writer`: the one task per connection that drains its bounded queue
//!   into the socket in batches (one write each), sends heartbeats and the
//!   close frame.
//! - `outbox`: the send handle the router keeps per connection: a bounded
//!   queue plus the slow-consumer policy.
//! - `backplane`: the seam between the router and whatever connects nodes:
//!   the `Backplane` trait the router calls, the messages that come back.
//! - `cluster`: the Redis backend of that seam (`cluster.backend =
//!   "redis"`); it names neither the router nor the shared state.
//! - `dispatch`: the task that hands messages from other nodes to the
//!   router, in arrival order.
//! - `socketio`: the Socket.IO v5 front end on `engineio`: namespaces,
//!   packets to router calls, lifecycle events for services.
//! - `wire`: the wire formats (Herald, Socket.IO) that encode what the
//!   router hands a receiver, once per emit per format.
//! - `router`: the fan-out maps (exact names, patterns, queue groups,
//!   responders, rooms) and pending requests.
//! - [`healthcheck`]: the probe behind `herald-broker healthcheck`, one
//!   bounded `GET /healthz` (the Docker image's `HEALTHCHECK`).
//! - [`stats`]: counters an operator (and the tests) can read.
//! - [`Error`]: what can stop the broker from starting.
//! - `bench_api` (hidden): router access for the criterion benchmarks only;
//!   not a stable API.

#[doc(hidden)]
pub mod bench_api;
/// The WebSocket frame parser, for the fuzz target only; not a stable API.
#[doc(hidden)]
pub mod fuzz_api {
    pub use crate::inbound::{FrameParser, Incoming, ReadError};
}
mod admin;
mod admission;
mod auth;
mod backplane;
mod cluster;
mod conn;
mod dispatch;
mod echo;
mod engineio;
mod fdlimit;
mod frame;
mod framing;
pub mod healthcheck;
mod history;
mod history_http;
mod http;
mod inbound;
mod limits;
mod metrics;
mod mirror;
mod outbox;
mod presence_api;
mod publish;
mod resume;
mod router;
mod server;
mod session;
mod socket;
mod socketio;
mod state;
pub mod stats;
mod tls;
mod wire;
mod writer;

pub use server::{Broker, BrokerHandle, Error};
pub use stats::StatsSnapshot;
pub use tls::TlsError;
