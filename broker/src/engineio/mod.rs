//! Engine.IO v4, the transport layer under Socket.IO: HTTP long-polling,
//! WebSocket, the upgrade from one to the other, the heartbeat and CORS,
//! on the broker's one port. What runs on top of a session is an [`App`]:
//! the Socket.IO layer (`crate::socketio`, the lead's) or the raw echo
//! endpoint of the test settings ([`echo`]).
//!
//! - [`packet`]: the packet codec (text packets, `\x1e`-joined payloads,
//!   `b` + base64 binary), and re-framing queued WebSocket frames for a
//!   long-polling answer.
//! - [`query`]: the request's `EIO`, `transport` and `sid`, and the
//!   reference server's JSON errors (`{"code","message"}`).
//! - [`cors`]: the `Origin` check and the CORS headers.
//! - [`sid`]: random, unguessable session ids.
//! - [`registry`]: long-polling sessions by sid.
//! - [`polling`]: a long-polling session's shared state, GET and POST.
//! - [`websocket`]: WebSocket sessions and the upgrade probe.
//! - [`endpoint`]: one HTTP request at an Engine.IO path, dispatched.
//! - [`conn`]: [`EngineConn`], what an app holds: the messages in, the
//!   outbox out, the heartbeat, the transport switch.
//! - [`echo`]: the echo app.

mod conn;
mod cors;
mod echo;
mod endpoint;
pub(crate) mod packet;
mod polling;
mod query;
mod registry;
mod sid;
mod websocket;

use std::sync::Arc;

use bytes::Bytes;

pub(crate) use conn::EngineConn;
pub(crate) use endpoint::handle;
pub(crate) use registry::Registry;

use crate::state::Shared;

/// What runs on top of an Engine.IO session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum App {
    /// Socket.IO v5 (`socketio.path`).
    SocketIo,
    /// Every message packet sent back unchanged
    /// (`testing.engineio_echo_endpoint`).
    Echo,
}

/// The transport a session is on now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    /// HTTP long-polling (GET to receive, POST to send).
    Polling,
    /// One WebSocket (from the start, or after the upgrade).
    WebSocket,
}

impl Transport {
    /// The Engine.IO name (`transport` query parameter).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Transport::Polling => "polling",
            Transport::WebSocket => "websocket",
        }
    }
}

/// A message packet from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// A text message: the packet's data after the `4` (valid UTF-8).
    Text(Bytes),
    /// A binary message (a WebSocket binary frame, or `b` + base64 over
    /// long-polling, decoded).
    Binary(Bytes),
}

/// Whether `app` can serve sessions yet. The one place that says the
/// Socket.IO layer is missing: the endpoint answers 501 while this is
/// false (see [`run_app`]).
fn wired(app: App) -> bool {
    match app {
        App::Echo => true,
        App::SocketIo => true,
    }
}

/// Runs the app of a new session until the session ends.
async fn run_app(app: App, conn: EngineConn, shared: Arc<Shared>) {
    match app {
        App::Echo => echo::serve(conn, shared).await,
        App::SocketIo => crate::socketio::serve(conn, shared).await,
    }
}
