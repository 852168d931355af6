//! The Socket.IO v5 front end, on the Engine.IO v4 transports of
//! `crate::engineio`: Socket.IO clients share the router, the namespaces
//! and the rooms with native clients.
//!
//! - `session`: one connection's namespaces and packets, turned into
//!   router calls through `crate::admission`.
//! - `format`: the Socket.IO wire format (`crate::wire`): events and
//!   answers as Engine.IO messages in WebSocket frames.
//! - `lifecycle`: `$connection` / `$disconnect`, what services learn of
//!   sockets (Socket.IO's `io.on("connection")`, from another process).

pub(crate) mod format;
mod lifecycle;
mod session;

pub(crate) use session::serve;
