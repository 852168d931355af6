//! The typed envelopes of the Herald protocol.
//!
//! Every WebSocket binary frame holds exactly one envelope: a MessagePack map
//! whose key `t` names the envelope type. See PROTOCOL.md for the key of each
//! field; [`crate::codec`] maps these types to and from that shape.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::error::{CloseReason, ErrorCode};

/// Where a reconnecting client wants to resume from (PROTOCOL.md §5.1,
/// "History and resume"): its previous session, the position it reached in
/// each history namespace, and the subscriptions and rooms to restore. The
/// broker keeps nothing of a closed session: the client re-sends what it
/// had, and the broker checks it as it checks `sub` and `join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Resume {
    /// The session id the client had before.
    pub sid: String,
    /// The last sequence number seen, per namespace.
    #[serde(default)]
    pub offsets: BTreeMap<String, u64>,
    /// The epoch of each of those positions (an offset whose epoch is
    /// missing or differs from the namespace's current one is not
    /// recovered).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub epochs: BTreeMap<String, String>,
    /// The subscriptions to restore (plain ones are replayed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subs: Vec<ResumeSub>,
    /// The rooms to rejoin, as `[namespace, room]` pairs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rooms: Vec<(String, String)>,
}

/// One subscription in [`Resume::subs`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub struct ResumeSub {
    /// Namespace.
    pub ns: String,
    /// Event name or pattern.
    pub ev: String,
    /// Queue group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// A responder subscription.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub r: bool,
}

/// What a resume recovered in one namespace (in `welcome`, key
/// `recovery`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Recovery {
    /// True when every missed event that matches the restored
    /// subscriptions was replayed; false when none was (too old, another
    /// epoch, over the replay limit, no history in the namespace).
    pub recovered: bool,
    /// The namespace's current epoch.
    #[serde(default)]
    pub epoch: String,
    /// The namespace's last sequence number: the client's position from
    /// now on.
    #[serde(default)]
    pub seq: u64,
    /// How many events were replayed.
    #[serde(default)]
    pub replayed: u64,
}

/// The limits a broker enforces, announced in `welcome`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Limits {
    /// Largest payload (`d`) accepted, in bytes.
    pub max_payload: u64,
    /// Most subscriptions one connection may hold.
    pub max_subscriptions: u64,
    /// Most rooms one connection may be in.
    pub max_rooms: u64,
    /// Most requests one connection may have in flight.
    pub max_pending_requests: u64,
}

/// `hello`: the first envelope a client sends.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Hello {
    /// Protocol version the client speaks (1).
    pub version: u32,
    /// A name for the client, shown in broker logs.
    pub client: Option<String>,
    /// A credential: a JWT, verified when the broker runs with
    /// `auth.mode = "jwt"` (PROTOCOL.md §22); ignored otherwise.
    pub token: Option<String>,
    /// A resume point: restore the previous session's subscriptions and
    /// rooms and replay what it missed.
    pub resume: Option<Resume>,
}

/// `welcome`: the broker's answer to `hello`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Welcome {
    /// Protocol version the broker speaks.
    pub version: u32,
    /// The session id the broker gave this connection.
    pub session: String,
    /// How often the broker pings, in milliseconds; a client that hears
    /// nothing for three intervals may consider the connection dead.
    pub heartbeat_ms: u64,
    /// The limits the broker enforces.
    pub limits: Limits,
    /// The broker node's name.
    pub node: Option<String>,
    /// The verified user id (the token's `sub`), when the broker checks
    /// tokens and the connection presented one. Key `user`.
    pub user: Option<String>,
    /// When the connection's token expires (Unix seconds), if it does.
    /// Key `exp`.
    pub exp: Option<u64>,
    /// Per namespace of a `hello.resume`'s offsets: what was recovered.
    /// Key `recovery`; empty (absent) without a resume.
    pub recovery: BTreeMap<String, Recovery>,
}

/// `auth`: replace this connection's token in place (refresh without
/// reconnect). Answered `ok` (with `id`) or `err` `unauthorized`; the old
/// token stays in force after a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// Correlation id for the `ok` / `err` answer.
    pub id: Option<u64>,
    /// The new token.
    pub token: String,
}

/// A subscription the broker removed because the connection's new token
/// no longer allows it (carried by a `revoked` notice).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Revoked {
    /// Namespace.
    pub ns: String,
    /// The event name or pattern of the subscription, or absent for a room.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ev: Option<String>,
    /// Its queue group, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub q: Option<String>,
    /// Whether it was a responder subscription.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub r: bool,
    /// The room the connection was taken out of (for a room, not a
    /// subscription).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// `notice`: something the broker tells the client that answers no
/// request of its own. Key `code` says which; clients ignore codes they do
/// not know.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Notice {
    /// `token_expiring` (the token's `exp` is near: send `auth` with a new
    /// one) or `revoked` (subscriptions or rooms removed after a refresh).
    pub code: String,
    /// Human-readable detail.
    pub message: String,
    /// With `token_expiring`: the token's expiry, Unix seconds.
    pub exp: Option<u64>,
    /// With `revoked`: what was removed.
    pub revoked: Vec<Revoked>,
}

impl Notice {
    /// The code of the notice sent some seconds before a token expires.
    pub const TOKEN_EXPIRING: &'static str = "token_expiring";
    /// The code of the notice that lists subscriptions and rooms a
    /// refreshed token no longer allows.
    pub const REVOKED: &'static str = "revoked";
}

/// `sub` / `unsub`: interest in an event name or pattern.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// Correlation id; when present the broker answers `ok` or `err` with it.
    pub id: Option<u64>,
    /// Namespace.
    pub namespace: String,
    /// Event name or pattern (`*`, `>`).
    pub event: String,
    /// Queue group: each event reaches one member of the group.
    pub group: Option<String>,
    /// A responder subscription receives requests instead of plain events.
    pub responder: bool,
}

/// `join` / `leave`: membership of a room in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoomChange {
    /// Correlation id; when present the broker answers `ok` or `err` with it.
    pub id: Option<u64>,
    /// Namespace.
    pub namespace: String,
    /// Room name.
    pub room: String,
    /// Make ANOTHER connection (this session id) join or leave the room: a
    /// service-side power the broker refuses with `forbidden` unless this
    /// connection holds it. Absent: this connection itself.
    pub sid: Option<String>,
}

/// `emit`: publish an event, or (with `ack`) make a request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Emit {
    /// When present (and `ack` is absent) the broker answers `ack` with the
    /// number of deliveries: one per connection reached through plain
    /// subscriptions, plus one per queue group that took the event.
    pub id: Option<u64>,
    /// Namespace.
    pub namespace: String,
    /// Event name (no wildcards).
    pub event: String,
    /// Only connections in this room receive the event.
    pub room: Option<String>,
    /// The opaque payload (MessagePack of the user's value, by convention).
    pub payload: Bytes,
    /// Do not deliver to the sending connection.
    pub exclude_self: bool,
    /// Request/reply: the requester's ack id. The event goes to exactly one
    /// responder and the answer comes back as `reply` with this ack id.
    pub ack: Option<u64>,
    /// Request timeout in milliseconds (with `ack`).
    pub timeout_ms: Option<u64>,
    /// The payload is a MessagePack array of several arguments (Socket.IO's
    /// `emit(ev, a, b)`), to be spread by receivers that take arguments.
    /// False: the payload is one argument.
    pub args: bool,
    /// Members of this room (or the connection with this session id, since
    /// every connection is in the room named after its session id) do not
    /// receive the event: Socket.IO's `except(room)`. Key `ex`.
    pub except: Option<String>,
    /// The publisher's message id (key `mid`): in a namespace with a
    /// history, a repeat of a recent one is acknowledged and not delivered
    /// again.
    pub message_id: Option<String>,
}

/// `event`: a delivered event (broker to client).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// Namespace.
    pub namespace: String,
    /// Event name.
    pub event: String,
    /// The room the event was emitted to, if any.
    pub room: Option<String>,
    /// Set when the event was delivered through this queue group.
    pub group: Option<String>,
    /// The opaque payload.
    pub payload: Bytes,
    /// Set on requests: the handle to answer with a `reply`.
    pub ack: Option<u64>,
    /// Per-namespace sequence number, in a namespace with a history.
    pub seq: Option<u64>,
    /// Message id (the publisher's, or one the broker made), in a namespace
    /// with a history.
    pub message_id: Option<String>,
    /// The history's epoch, with `seq`. Key `epoch`.
    pub epoch: Option<String>,
    /// The session id of the connection that emitted it; absent for HTTP
    /// publishes and events the broker makes itself.
    pub from: Option<String>,
    /// The payload is a MessagePack array of several arguments (see
    /// [`Emit::args`]).
    pub args: bool,
}

/// `reply`: the answer to a request (responder to broker, broker to
/// requester).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reply {
    /// Responder to broker: the handle from the request's `event`.
    /// Broker to requester: the requester's own ack id.
    pub ack: u64,
    /// True for a success value, false for an error value.
    pub ok: bool,
    /// The answer's payload (for `ok == false`, by convention a string).
    pub payload: Bytes,
    /// The payload is a MessagePack array of several arguments (see
    /// [`Emit::args`]): a Socket.IO ack with several values.
    pub args: bool,
}

/// `err`: something the peer sent was refused, or a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorBody {
    /// The `id` (or request `ack`) of the envelope this answers, if known.
    pub id: Option<u64>,
    /// Stable machine-readable code.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
}

/// Every envelope of protocol version 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Envelope {
    /// `hello` (client to broker).
    Hello(Hello),
    /// `welcome` (broker to client).
    Welcome(Welcome),
    /// `sub` (client to broker).
    Subscribe(Subscription),
    /// `unsub` (client to broker).
    Unsubscribe(Subscription),
    /// `join` (client to broker).
    Join(RoomChange),
    /// `leave` (client to broker).
    Leave(RoomChange),
    /// `emit` (client to broker).
    Emit(Emit),
    /// `event` (broker to client).
    Event(Event),
    /// `reply` (both ways).
    Reply(Reply),
    /// `ack`: the broker acknowledges an emit with an `id`.
    Ack {
        /// The emit's `id`.
        id: u64,
        /// Deliveries: connections reached through plain subscriptions plus
        /// queue groups that took the event.
        receivers: u64,
    },
    /// `ok`: the broker accepted a `sub`, `unsub`, `join` or `leave`.
    Ok {
        /// The request's `id`.
        id: u64,
    },
    /// `err` (broker to client).
    Error(ErrorBody),
    /// `ping` (both ways): the other side answers `pong` with the same `ts`.
    Ping {
        /// Opaque timestamp echoed back.
        ts: Option<u64>,
    },
    /// `pong` (both ways).
    Pong {
        /// The `ts` of the `ping`.
        ts: Option<u64>,
    },
    /// `auth` (client to broker): a new token for this connection.
    Auth(Auth),
    /// `notice` (broker to client).
    Notice(Notice),
    /// `close`: why the sender is about to close the connection.
    Close {
        /// The reason.
        reason: CloseReason,
        /// Human-readable detail.
        message: String,
    },
}

impl Envelope {
    /// The wire name (`t`) of this envelope.
    pub fn kind(&self) -> &'static str {
        match self {
            Envelope::Hello(_) => "hello",
            Envelope::Welcome(_) => "welcome",
            Envelope::Subscribe(_) => "sub",
            Envelope::Unsubscribe(_) => "unsub",
            Envelope::Join(_) => "join",
            Envelope::Leave(_) => "leave",
            Envelope::Emit(_) => "emit",
            Envelope::Event(_) => "event",
            Envelope::Reply(_) => "reply",
            Envelope::Ack { .. } => "ack",
            Envelope::Ok { .. } => "ok",
            Envelope::Error(_) => "err",
            Envelope::Ping { .. } => "ping",
            Envelope::Pong { .. } => "pong",
            Envelope::Close { .. } => "close",
            Envelope::Auth(_) => "auth",
            Envelope::Notice(_) => "notice",
        }
    }

    /// Shorthand for an `err` envelope.
    pub fn error(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Envelope {
        Envelope::Error(ErrorBody {
            id,
            code,
            message: message.into(),
        })
    }
}
