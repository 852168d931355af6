//! The side-by-side benchmark: Herald against NATS, Redis pub/sub,
//! socketioxide and a floor forwarder, Herald's Socket.IO front end
//! against socketioxide (same client), and a two-node Herald cluster
//! against one node.
//!
//! - [`compare`]: every workload of `herald-loadgen` against every
//!   [`targets::Target`], each server a child process ([`server`]) pinned to
//!   CPU 0 while the load runs on CPU 1 ([`pinning`]); [`verdict`] turns the
//!   records into ratios and the PASS / FAIL lines.
//! - [`cluster`]: the `herald-cluster` target, publisher and subscribers on
//!   two nodes clustered over Redis.
//! - [`scale`]: 100,000 idle connections on one Herald broker.
//! - [`auth`]: the `herald-auth` target (the broker checking tokens, the
//!   Herald driver presenting one).
//! - [`wss`]: the `herald-wss` target (the broker with TLS, the Herald
//!   driver over `wss://`, certificates made for the run).
//! - [`sdk`]: the `herald-sdk` target (the broker driven through
//!   `herald-client`, as applications use it, against NATS through
//!   `async-nats`); [`rpc`]: the round-trip workloads (`acked`, `request`)
//!   through those two clients.
//! - The peers' clients: [`nats`], [`redis_target`], [`socketio_client`],
//!   [`floor_client`] (Herald's is in `herald-loadgen`).
//! - The relays built into the binary: [`socketio_relay`] (socketioxide
//!   over hyper) and [`floor_server`] (the least a WebSocket relay can do).

pub mod accept;
pub mod auth;
pub mod build;
pub mod cluster;
pub mod compare;
pub mod floor_client;
pub mod floor_server;
pub mod history;
pub mod machine;
pub mod nats;
pub mod pinning;
pub mod redis_target;
pub mod rpc;
pub mod scale;
pub mod sdk;
pub mod server;
pub mod socketio_client;
pub mod socketio_relay;
pub mod targets;
pub mod verdict;
pub mod wss;

/// Herald's name in results.
pub const HERALD: &str = herald_loadgen::herald::TARGET;
