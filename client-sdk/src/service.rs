//! The service side of Socket.IO-style apps: what a Socket.IO server does
//! in `io.on("connection", socket => ...)`, done by a native service.
//!
//! The broker emits lifecycle events in each namespace (PROTOCOL.md,
//! "System events"): `$connection` with `{sid, auth, transport}` when a
//! socket connects, `$disconnect` with `{sid, reason}` when it leaves.
//! [`Namespace::on_connection`] and [`Namespace::on_disconnect`] subscribe
//! to them (the `_queue` forms in a queue group, so that of several service
//! replicas one handles each socket). A [`Socket`] acts on one connection
//! by its session id: emit to it (its session-id room), make it join or
//! leave a room, or emit to a room except it. These are service powers:
//! the broker refuses them with [`ErrorCode::Forbidden`] to connections
//! that do not hold them.
//!
//! [`ErrorCode::Forbidden`]: crate::ErrorCode::Forbidden

use std::future::Future;

use bytes::Bytes;
use herald_protocol::names::{validate_namespace, validate_room};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::client::WeakClient;
use crate::dispatch::Delivery;
use crate::error::Error;
use crate::namespace::{Emitter, Namespace};
use crate::payload::Payload;
use crate::subscription::Subscription;

/// The system event the broker emits when a socket connects.
pub const CONNECTION_EVENT: &str = "$connection";
/// The system event the broker emits when a socket disconnects.
pub const DISCONNECT_EVENT: &str = "$disconnect";

/// One connection (a Socket.IO socket or a native client) of a namespace,
/// addressed by its session id. Made by [`Namespace::socket`], or found in
/// a [`Connection`]. Cheap to clone; holding it keeps the client open.
#[derive(Debug, Clone)]
pub struct Socket {
    namespace: Namespace,
    sid: String,
}

impl Socket {
    /// The connection's session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// The namespace this handle acts in.
    pub fn namespace(&self) -> &Namespace {
        &self.namespace
    }

    /// Emits `event` to this socket only: to the room named after its
    /// session id (Socket.IO's `socket.emit`). A service power.
    pub async fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), Error> {
        self.namespace
            .to(self.sid.as_str())
            .emit(event, payload)
            .await
    }

    /// Like [`Socket::emit`], with a payload as is (bytes and `args` flag).
    pub async fn emit_raw(&self, event: &str, payload: Payload) -> Result<(), Error> {
        self.namespace
            .to(self.sid.as_str())
            .emit_raw(event, payload)
            .await
    }

    /// An emitter to the members of `room` except this socket (Socket.IO's
    /// `socket.to(room).emit`).
    pub fn to(&self, room: impl Into<String>) -> Emitter {
        self.namespace.to(room).except(self.sid.as_str())
    }

    /// Makes this socket join `room` (Socket.IO's server-side
    /// `socket.join`) and waits for the broker's answer. A service power:
    /// [`Error::Broker`] with `forbidden` without it, or for a session-id
    /// room. Unlike [`Namespace::join`] it is not restored after this
    /// client reconnects: the membership is the socket's, and ends with it.
    pub async fn join(&self, room: &str) -> Result<(), Error> {
        self.change(room, true).await
    }

    /// Makes this socket leave `room`; see [`Socket::join`].
    pub async fn leave(&self, room: &str) -> Result<(), Error> {
        self.change(room, false).await
    }

    async fn change(&self, room: &str, join: bool) -> Result<(), Error> {
        let namespace = self.namespace.name();
        validate_namespace(namespace)?;
        validate_room(room)?;
        validate_room(&self.sid)?;
        self.namespace
            .client()
            .shared()
            .change_member(namespace, room, &self.sid, join)
            .await
    }
}

/// A socket that connected to a namespace: the payload of `$connection`.
#[derive(Debug, Clone)]
pub struct Connection {
    socket: Socket,
    transport: String,
    /// The whole `$connection` payload, so that `auth` is decoded only
    /// when asked for, as the type the caller names.
    payload: Bytes,
}

impl Connection {
    /// The socket's session id.
    pub fn sid(&self) -> &str {
        self.socket.sid()
    }

    /// How the socket is connected: `"websocket"` or `"polling"` for
    /// Socket.IO clients (empty when the broker did not say).
    pub fn transport(&self) -> &str {
        &self.transport
    }

    /// The socket's CONNECT auth payload (`{}` when it sent none), decoded
    /// as `T`; `rmpv::Value` takes any shape.
    pub fn auth<T: DeserializeOwned>(&self) -> Result<T, Error> {
        #[derive(Deserialize)]
        struct Auth<T> {
            auth: T,
        }
        rmp_serde::from_slice::<Auth<T>>(&self.payload)
            .map(|a| a.auth)
            .map_err(|e| Error::Decode(e.to_string()))
    }

    /// The handle acting on this socket.
    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Emits `event` to this socket only (see [`Socket::emit`]).
    pub async fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), Error> {
        self.socket.emit(event, payload).await
    }

    /// Makes this socket join `room` (see [`Socket::join`]).
    pub async fn join(&self, room: &str) -> Result<(), Error> {
        self.socket.join(room).await
    }

    /// Makes this socket leave `room` (see [`Socket::leave`]).
    pub async fn leave(&self, room: &str) -> Result<(), Error> {
        self.socket.leave(room).await
    }

    /// An emitter to `room` except this socket (see [`Socket::to`]).
    pub fn to(&self, room: impl Into<String>) -> Emitter {
        self.socket.to(room)
    }
}

/// A socket that left a namespace: the payload of `$disconnect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnection {
    namespace: String,
    sid: String,
    reason: String,
}

impl Disconnection {
    /// The namespace it left.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The socket's session id.
    pub fn sid(&self) -> &str {
        &self.sid
    }

    /// Why, as Socket.IO says it: `client namespace disconnect`,
    /// `transport close`, `ping timeout`, `transport error`,
    /// `server shutting down`, `parse error` or `forced close`.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl Namespace {
    /// A handle on the connection with session id `sid` in this namespace
    /// (e.g. [`Event::from`](crate::Event::from) of an event it sent).
    pub fn socket(&self, sid: impl Into<String>) -> Socket {
        Socket {
            namespace: self.clone(),
            sid: sid.into(),
        }
    }

    /// Runs `handler` for every socket that connects to this namespace
    /// (Socket.IO's `io.of(ns).on("connection", ...)`), one at a time, in
    /// the order the broker saw them. Returns once subscribed; sockets that
    /// connected before are not replayed.
    pub async fn on_connection<F, Fut>(&self, handler: F) -> Result<Subscription, Error>
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.lifecycle(CONNECTION_EVENT, None, self.connection_decoder(), handler)
            .await
    }

    /// Like [`Namespace::on_connection`], as a member of queue group
    /// `group`: each connection reaches one member of the group, so several
    /// replicas of a service share the sockets.
    pub async fn on_connection_queue<F, Fut>(
        &self,
        group: &str,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        F: Fn(Connection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let decode = self.connection_decoder();
        self.lifecycle(CONNECTION_EVENT, Some(group), decode, handler)
            .await
    }

    /// Runs `handler` for every socket that leaves this namespace.
    pub async fn on_disconnect<F, Fut>(&self, handler: F) -> Result<Subscription, Error>
    where
        F: Fn(Disconnection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let decode = disconnection(self.name());
        self.lifecycle(DISCONNECT_EVENT, None, decode, handler)
            .await
    }

    /// Like [`Namespace::on_disconnect`], as a member of queue group
    /// `group`.
    pub async fn on_disconnect_queue<F, Fut>(
        &self,
        group: &str,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        F: Fn(Disconnection) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let decode = disconnection(self.name());
        self.lifecycle(DISCONNECT_EVENT, Some(group), decode, handler)
            .await
    }

    async fn lifecycle<T, D, F, Fut>(
        &self,
        event: &str,
        group: Option<&str>,
        decode: D,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        T: Send + 'static,
        D: Fn(&Delivery) -> Result<T, String> + Send + Sync + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.events(event, group, decode, crate::handler::data, handler)
            .await
    }

    /// Decodes `$connection` payloads into [`Connection`]s. Holds the
    /// client weakly: the handler task belongs to the client.
    fn connection_decoder(&self) -> impl Fn(&Delivery) -> Result<Connection, String> + use<> {
        let client: WeakClient = self.client().downgrade();
        let namespace = self.name().to_owned();
        move |delivery| {
            let client = client
                .upgrade()
                .ok_or_else(|| "the client was dropped".to_owned())?;
            connection(client.of(namespace.as_str()), &delivery.payload_bytes())
        }
    }
}

/// The `$connection` payload's plain fields.
#[derive(Deserialize)]
struct ConnectionFields {
    sid: String,
    #[serde(default)]
    transport: String,
}

fn connection(namespace: Namespace, payload: &Bytes) -> Result<Connection, String> {
    let fields: ConnectionFields = rmp_serde::from_slice(payload).map_err(|e| e.to_string())?;
    Ok(Connection {
        socket: namespace.socket(fields.sid),
        transport: fields.transport,
        payload: payload.clone(),
    })
}

/// The `$disconnect` payload.
#[derive(Deserialize)]
struct DisconnectFields {
    sid: String,
    #[serde(default)]
    reason: String,
}

/// Decodes `$disconnect` payloads of `namespace`.
fn disconnection(namespace: &str) -> impl Fn(&Delivery) -> Result<Disconnection, String> + use<> {
    let namespace = namespace.to_owned();
    move |delivery| {
        let fields: DisconnectFields =
            rmp_serde::from_slice(delivery.payload()).map_err(|e| e.to_string())?;
        Ok(Disconnection {
            namespace: namespace.clone(),
            sid: fields.sid,
            reason: fields.reason,
        })
    }
}
