//! The seam between the router and whatever connects nodes (today Redis,
//! `crate::cluster`; NATS would be one more module).
//!
//! The router talks to a [`Backplane`] it does not know: it forwards its
//! local emits, sends group deliveries, requests, replies and "responder
//! gone" to one node, reports its interest changes, and reads the backend's
//! [`RemoteView`] of the other nodes' queue groups and responders. What
//! arrives from other nodes comes back the other way as [`Inbound`]
//! messages on a channel: the backend pushes, a dispatcher that owns the
//! router reads (`crate::dispatch`), so the backend never names the router
//! and the router never names the backend. Model: socketioxide's
//! `CoreAdapter`.
//!
//! On one node there is no backplane at all (`None` in the router): the
//! emit path pays one `Option` test, no call and no allocation.

mod view;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use herald_protocol::Pattern;
use herald_protocol::envelope::{Emit, Reply};
use tokio::sync::oneshot;

use crate::history::OwnedStamp;
use serde::{Deserialize, Serialize};
use thiserror::Error;

pub(crate) use self::view::{RemoteView, Target};

/// A service moving a session into or out of a room.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RoomMove<'a> {
    pub(crate) namespace: &'a str,
    pub(crate) room: &'a str,
    pub(crate) session: &'a str,
    pub(crate) join: bool,
}

/// One subscription the router added or removed, as the backplane needs
/// to know it: plain ones only by namespace (where this node wants the
/// namespace's events), queue groups and responders by target (other
/// nodes pick this node for them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Interest<'a> {
    /// A plain subscription in a namespace.
    Plain { namespace: &'a str },
    /// A queue-group member (`group` set) or a responder (`group` none)
    /// for `pattern` in `namespace`.
    Target {
        namespace: &'a str,
        pattern: &'a Pattern,
        group: Option<&'a str>,
    },
}

impl<'a> Interest<'a> {
    /// The namespace the subscription is in.
    pub(crate) fn namespace(self) -> &'a str {
        match self {
            Interest::Plain { namespace } | Interest::Target { namespace, .. } => namespace,
        }
    }
}

/// What the router sends to one other node.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ToNode<'a> {
    /// For one member of queue group `group` there.
    Group {
        group: &'a str,
        emit: &'a Emit,
        sender: Option<&'a str>,
    },
    /// A request for one responder there; `handle` is this node's.
    Request {
        handle: u64,
        timeout: Duration,
        emit: &'a Emit,
        sender: Option<&'a str>,
    },
    /// The answer to that node's request `reply.ack`.
    Reply(&'a Reply),
    /// That node's request `handle` has no responder any more.
    Gone { handle: u64 },
    /// A service moves a session of that node into or out of a room.
    Move(RoomMove<'a>),
}

/// What arrives from other nodes, for the dispatcher to hand to the
/// router (owned: it crossed a channel).
#[derive(Debug)]
pub(crate) enum Inbound {
    /// An emit for this node's plain subscribers.
    Event { emit: Emit, sender: Option<String> },
    /// An emit for one local member of queue group `group`.
    Group {
        group: String,
        emit: Emit,
        sender: Option<String>,
    },
    /// A request from node `from` (its handle `handle`) for one local
    /// responder.
    Request {
        from: String,
        handle: u64,
        timeout: Duration,
        emit: Emit,
        sender: Option<String>,
    },
    /// Node `from` answers this node's request `reply.ack`.
    Reply { from: String, reply: Reply },
    /// Node `from` has no responder any more for this node's request.
    Gone { from: String, handle: u64 },
    /// A service on another node moves a session of this node.
    Move {
        namespace: String,
        room: String,
        session: String,
        join: bool,
    },
    /// Node `node` left or expired: requests waiting on it fail now.
    NodeGone { node: String },
    /// An event of a history namespace, numbered by the backend (every
    /// node gets every one, this node's own included, in `seq` order per
    /// namespace). `here` when this node appended it: it also picks the
    /// queue-group members and honours exclude-self.
    Stamped {
        here: bool,
        emit: Emit,
        sender: Option<String>,
        stamp: OwnedStamp,
    },
    /// A resume on this node is about to read the mirror of `namespace`
    /// from `since`: bring it up to date with the backend first (in order
    /// with the `Stamped` events), then answer `done`.
    CatchUp {
        namespace: String,
        since: u64,
        done: oneshot::Sender<()>,
    },
}

/// What a clustered history append became (the publisher's broker ack
/// waits for it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Numbered {
    pub(crate) seq: u64,
    pub(crate) epoch: String,
    /// The publisher's message id was seen within the window: nothing
    /// was stored or published again.
    pub(crate) duplicate: bool,
}

/// Where a clustered history append's outcome goes.
pub(crate) type AppendDone = oneshot::Sender<Result<Numbered, String>>;

/// One event read back from a clustered history.
#[derive(Debug)]
pub(crate) struct HistoryEntry {
    pub(crate) seq: u64,
    /// The publisher's message id (else the event's is `{epoch}-{seq}`).
    pub(crate) mid: Option<String>,
    pub(crate) emit: Emit,
    pub(crate) sender: Option<String>,
}

/// A read of a clustered history.
#[derive(Debug)]
pub(crate) struct HistoryRange {
    /// The last `seq` given in the namespace (0: none yet).
    pub(crate) last: u64,
    pub(crate) epoch: String,
    /// Events after the position read, oldest first.
    pub(crate) entries: Vec<HistoryEntry>,
}

/// What `/metrics` and `/readyz` report about the backplane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct BackplaneSample {
    pub(crate) up: bool,
    pub(crate) nodes: u64,
    pub(crate) remote_entries: u64,
    pub(crate) namespaces: u64,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) dropped: u64,
    pub(crate) undeliverable: u64,
    pub(crate) disconnects: u64,
}

/// One connection present in a namespace, as presence lists it
/// (`GET /v1/presence`, PROTOCOL.md §6.7) and as nodes share it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Member {
    /// Its session id.
    pub(crate) sid: String,
    /// The token's `sub`; none when anonymous or auth is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) user: Option<String>,
    /// `hello.client` (native connections only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) client: Option<String>,
    /// `native`, `websocket` (Socket.IO) or `polling` (Socket.IO).
    pub(crate) transport: String,
    /// Its rooms in the namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) rooms: Vec<String>,
    /// The node it is connected to.
    pub(crate) node: String,
}

/// Why the other nodes' presence could not be read.
#[derive(Debug, Error)]
#[error("the cluster backplane could not be read: {0}")]
pub(crate) struct Unreachable(pub(crate) String);

/// A future a backplane returns from an object-safe method.
pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The router's remote side. Every method but [`Backplane::leave`] is
/// called on the emit path or from a session's reader and must not block:
/// a backend queues (bounded) and returns.
pub(crate) trait Backplane: Send + Sync + std::fmt::Debug {
    /// Whether the backend reaches the other nodes now (`/readyz`).
    fn is_up(&self) -> bool;

    /// Publishes a local emit for the plain subscribers of the other nodes
    /// (after the local fan-out). Emits of history namespaces go to
    /// [`Backplane::append`] instead, when the backend keeps history.
    fn forward_event(&self, emit: &Emit, sender: Option<&str>);

    /// Sends `message` to node `node`. False when it was dropped (the
    /// backend unreachable or its queue full); the router then tries
    /// another choice or answers an error.
    fn send_to(&self, node: &str, message: ToNode<'_>) -> bool;

    /// A subscription was added on this node.
    fn subscribed(&self, interest: Interest<'_>);

    /// A subscription was removed on this node.
    fn unsubscribed(&self, interest: Interest<'_>);

    /// The other live nodes and their queue groups and responders, as last
    /// read (an `Arc` snapshot, cheap to take per emit).
    fn view(&self) -> Arc<RemoteView>;

    /// Whether the backend keeps the history of history namespaces itself
    /// (numbering every event in one order for all nodes). When it does,
    /// the router hands such emits to [`Backplane::append`] instead of
    /// delivering them, and delivers what comes back as
    /// [`Inbound::Stamped`].
    fn keeps_history(&self) -> bool {
        false
    }

    /// Appends an emit of a history namespace, numbers it and publishes it
    /// to every node in one atomic step; `done` hears the outcome. False
    /// when it was dropped (backend unreachable or its queue full).
    fn append(&self, emit: &Emit, sender: Option<&str>, done: Option<AppendDone>) -> bool {
        let _ = (emit, sender, done);
        false
    }

    /// Reads up to `limit` events of `namespace`'s history after `since`.
    fn read_history(
        &self,
        namespace: &str,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryRange, String>> {
        let _ = (namespace, since, limit);
        Box::pin(async { Err("this backplane keeps no history".to_owned()) })
    }

    /// Queues an [`Inbound::CatchUp`] behind the events received so far.
    fn catch_up(&self, namespace: &str, since: u64, done: oneshot::Sender<()>) -> bool {
        let _ = (namespace, since, done);
        false
    }

    /// A message from another node could not be used (its target left
    /// meanwhile): counted, never retried.
    fn undeliverable(&self);

    /// Presence: `member` is now in `namespace` on this node (with its
    /// current rooms), or, with `None`, session `sid` left it. Queued in
    /// order with the events, so a join is shared before what follows it.
    fn present(&self, namespace: &str, sid: &str, member: Option<&Member>);

    /// Presence: the members of `namespace` on the other live nodes (a
    /// node whose liveness expired is left out), bounded by
    /// `cluster.command_timeout`.
    fn presence<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Member>, Unreachable>>;

    /// The numbers `/metrics` shows.
    fn sample(&self) -> BackplaneSample;

    /// Leaves the cluster cleanly (bounded), so the others forget this
    /// node now rather than at its expiry.
    fn leave(&self) -> BoxFuture<'_, ()>;
}
