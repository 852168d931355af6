//! Presence: who is connected to a namespace or one of its rooms, on every
//! node of the cluster ([`Namespace::presence`](crate::Namespace::presence),
//! the broker's `$presence.list`, PROTOCOL.md §6.7). Joins and leaves as
//! they happen are the system events [`JOIN_EVENT`] and [`LEAVE_EVENT`],
//! subscribed like any event (`ns.on(JOIN_EVENT, …)`).

use serde::Deserialize;

/// Emitted by the broker when a connection enters a namespace (or, with
/// the event's `room`, a room).
pub const JOIN_EVENT: &str = "$presence.join";
/// Emitted by the broker when a connection leaves a namespace (or room).
pub const LEAVE_EVENT: &str = "$presence.leave";
/// The request the broker answers with a [`Presence`] listing.
pub(crate) const LIST_EVENT: &str = "$presence.list";

/// One connection present in a namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Member {
    /// Its session id.
    pub sid: String,
    /// The `sub` of its token; none when anonymous or auth is off.
    #[serde(default)]
    pub user: Option<String>,
    /// The client name it gave in `hello` (native connections).
    #[serde(default)]
    pub client: Option<String>,
    /// `native`, `websocket` (Socket.IO) or `polling` (Socket.IO).
    pub transport: String,
    /// Its rooms in the namespace.
    #[serde(default)]
    pub rooms: Vec<String>,
    /// The node it is connected to.
    pub node: String,
}

/// Who is in a namespace or room.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Presence {
    /// The namespace asked about.
    pub namespace: String,
    /// The room asked about, if any.
    #[serde(default)]
    pub room: Option<String>,
    /// How many members there are in all.
    pub count: u64,
    /// The members, sorted by session id, at most the limit asked for.
    pub members: Vec<Member>,
    /// More members exist than were listed.
    pub truncated: bool,
    /// False when the other nodes could not be read (only the answering
    /// node's members are listed).
    pub complete: bool,
}
