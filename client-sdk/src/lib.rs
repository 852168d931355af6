//! The Herald client SDK: connect to a Herald broker, subscribe with typed
//! handlers, emit, make requests, join rooms, share work in queue groups,
//! and stay connected across broker restarts.
//!
//! ```no_run
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Serialize, Deserialize)]
//! struct Order { id: u64 }
//!
//! # async fn demo() -> Result<(), herald_client::Error> {
//! let client = herald_client::Client::builder("ws://127.0.0.1:7400")
//!     .name("billing")
//!     .connect()
//!     .await?;
//! let orders = client.of("/orders");
//! orders.on("order.*", |o: Order| async move { println!("got {o:?}") }).await?;
//! orders.on_request("order.lookup", |id: u64| async move {
//!     Ok::<Order, String>(Order { id })
//! }).await?;
//! orders.emit("order.created", &Order { id: 1 }).await?;
//! let found: Order = orders.request("order.lookup", &7_u64, Duration::from_secs(2)).await?;
//! client.close().await?;
//! # Ok(()) }
//! ```
//!
//! `wss://` URLs connect over TLS, trusting the system's root certificates
//! and, with [`ClientBuilder::ca_file`], a private CA; a broker that asks
//! for client certificates (mutual TLS) gets the one given to
//! [`ClientBuilder::client_cert`]. A certificate problem fails `connect()`
//! with [`Error::Tls`].
//!
//! # Layout
//! - [`builder`]: [`ClientBuilder`], the settings, and the first connection.
//! - `tls`: the rustls client configuration for `wss://` (system roots, a
//!   CA file, a client certificate).
//! - `client`: [`Client`], its [`ConnectionState`], and the state shared by
//!   handles, handler tasks and the connection task.
//! - `namespace`: [`Namespace`] (on / emit / request / rooms in one
//!   namespace), [`Emitter`] (an emit to a room, excluding oneself or a
//!   room) and [`Event`] (a payload with its event name, room and sender).
//! - `payload`: [`Payload`], a payload's bytes with its `args` flag, for
//!   relays (raw handlers and raw emits).
//! - `service`: the service side of Socket.IO-style apps:
//!   [`Namespace::on_connection`] / [`Namespace::on_disconnect`] with
//!   [`Connection`] and [`Disconnection`], and [`Socket`] (emit to one
//!   connection, make it join or leave rooms, emit to a room except it).
//! - `subscription`: [`Subscription`], the handle to unsubscribe.
//! - `presence`: [`Presence`] and [`Member`], what
//!   [`Namespace::presence`] answers, and the join/leave event names.
//! - `token`: the token presented in `hello` (fixed, or from the
//!   application's provider before every connection), the in-place refresh
//!   (`auth`) when the broker says it expires soon, and the identity the
//!   broker confirmed ([`Client::user`], [`Client::token_expiry`]).
//! - `revoked`: [`Revoked`], what the broker took away after a token
//!   refresh; forgotten by the client and passed to [`Client::on_revoked`].
//! - `dispatch`: the local handler registry; which handlers a delivered
//!   event runs (plain, queue group, or one responder for a request).
//! - `handler`: the task per handler: decode, run with panics caught, reply.
//! - `connection`: the task that owns the socket: handshake, reader,
//!   batching writer, restore after reconnect, reconnect loop.
//! - `outbox`: the current connection's queue or the bounded offline buffer.
//! - `pending`: calls awaiting the broker's answer, by correlation id.
//! - [`backoff`]: [`ReconnectPolicy`], exponential back-off with full jitter.
//! - `error`: [`Error`] (what a call fails with) and [`ClientEvent`] (what
//!   goes to [`Client::on_error`]).
//! - `url`: broker URL normalisation (a base URL gets `/v1/ws`).
//!
//! # Tokens
//! For a broker that checks tokens (`auth.mode = "jwt"`), give a fixed
//! token with [`ClientBuilder::token`], or better a provider with
//! [`ClientBuilder::token_provider`]: it is called before every
//! (re)connection and when the broker says the token expires soon, and the
//! new token replaces the old one without reconnecting.
//!
//! ```no_run
//! # async fn demo() -> Result<(), herald_client::Error> {
//! let client = herald_client::Client::builder("ws://127.0.0.1:7400")
//!     .token_provider(|| async { Ok::<_, std::io::Error>(std::env::var("HERALD_TOKEN").unwrap_or_default()) })
//!     .connect()
//!     .await?;
//! assert!(client.user().is_some());
//! client.on_revoked(|revoked| {
//!     for r in revoked {
//!         eprintln!("no longer allowed: {r}");
//!     }
//! });
//! # Ok(()) }
//! ```
//!
//! A refused token is [`Error::Unauthorized`]; a refused subscribe or emit
//! is [`Error::Broker`] with [`ErrorCode::Forbidden`].
//!
//! # Delivery guarantees
//! At most once. Emits queued while disconnected (the offline buffer) and
//! emits still queued when a connection fails are sent after reconnecting,
//! in order; an emit already written to a socket that then failed may be
//! lost. Events emitted while this client is disconnected do not reach it.

pub mod backoff;
pub mod builder;
mod client;
mod connection;
mod dispatch;
mod error;
mod handler;
mod history;
mod namespace;
mod outbox;
mod payload;
mod pending;
mod presence;
mod recovery;
mod revoked;
mod service;
mod subscription;
mod tls;
mod token;
mod url;

pub use backoff::ReconnectPolicy;
pub use builder::ClientBuilder;
pub use client::{Client, ConnectionState};
pub use error::{ClientEvent, Error};
pub use herald_protocol::{ErrorCode, Limits, NameError};
pub use history::{HistoryEvent, HistoryPage};
pub use namespace::{Emitter, Event, Namespace};
pub use payload::Payload;
pub use presence::{JOIN_EVENT, LEAVE_EVENT, Member, Presence};
pub use recovery::{ACKED_EMIT_ATTEMPTS, RECENT_MIDS, Recovery};
pub use revoked::Revoked;
pub use service::{CONNECTION_EVENT, Connection, DISCONNECT_EVENT, Disconnection, Socket};
pub use subscription::Subscription;

/// Runs an application callback, logging (not propagating) a panic in it:
/// the callbacks run on the client's own tasks. `what` names it in the log.
pub(crate) fn run_callback(what: &str, callback: impl FnOnce()) {
    if std::panic::catch_unwind(std::panic::AssertUnwindSafe(callback)).is_err() {
        tracing::error!("the herald client {what} callback panicked");
    }
}

/// Locks a std mutex, ignoring poisoning: every critical section in this
/// crate leaves the data consistent, so a panic elsewhere does not make it
/// unusable.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
