//! Presence: which connections of this node are in each namespace, and
//! the join/leave system events (PROTOCOL.md §6.7).
//!
//! A connection is present in a namespace while it has a subscription or
//! a room there (a Socket.IO socket: while it is connected to it, through
//! its `>` subscription). The router counts, per namespace, the
//! subscriptions and rooms of each connection; the first makes it present
//! (`$presence.join`), the last one gone makes it absent
//! (`$presence.leave`), and each room it joins or leaves is announced to
//! that room (the event's `room`); the connection itself does not hear
//! its own. The events are only built when someone
//! can receive them: a local subscriber, or other nodes. In a cluster each
//! change is also shared through the backplane, which answers for the
//! other nodes' members.

use std::collections::HashMap;

use bytes::Bytes;
use dashmap::DashMap;
use herald_protocol::envelope::Emit;

use super::{FastHash, Router};
use crate::backplane::Member;
use crate::outbox::{ConnId, Outbox};

/// Sent to a namespace (or room) when a connection enters it.
pub(crate) const JOIN: &str = "$presence.join";
/// Sent to a namespace (or room) when a connection leaves it.
pub(crate) const LEAVE: &str = "$presence.leave";

/// One connection present in a namespace, and how many of its
/// subscriptions and rooms keep it there.
#[derive(Debug)]
struct Present {
    conn: Outbox,
    refs: u32,
}

/// The connections of this node per namespace (bounded by the
/// connections and their subscription and room limits).
#[derive(Debug, Default)]
pub(crate) struct Presence {
    by_namespace: DashMap<Box<str>, HashMap<ConnId, Present, FastHash>, FastHash>,
}

impl Presence {
    /// Counts one more subscription or room of `conn`; true when it just
    /// became present.
    fn enter(&self, namespace: &str, conn: &Outbox) -> bool {
        let mut members = self.by_namespace.entry(namespace.into()).or_default();
        let present = members.entry(conn.id).or_insert_with(|| Present {
            conn: conn.clone(),
            refs: 0,
        });
        present.refs += 1;
        present.refs == 1
    }

    /// Uncounts one; the connection when it just became absent.
    fn exit(&self, namespace: &str, id: ConnId) -> Option<Outbox> {
        let mut members = self.by_namespace.get_mut(namespace)?;
        let present = members.get_mut(&id)?;
        present.refs = present.refs.saturating_sub(1);
        if present.refs > 0 {
            return None;
        }
        let gone = members.remove(&id).map(|p| p.conn);
        let empty = members.is_empty();
        drop(members);
        if empty {
            self.by_namespace
                .remove_if(namespace, |_, members| members.is_empty());
        }
        gone
    }

    fn members(&self, namespace: &str) -> Vec<Outbox> {
        self.by_namespace
            .get(namespace)
            .map(|members| members.values().map(|p| p.conn.clone()).collect())
            .unwrap_or_default()
    }
}

/// `conn` as presence lists it in `namespace`, on node `node`.
fn member(conn: &Outbox, namespace: &str, node: &str) -> Member {
    let profile = conn.profile().unwrap_or_default();
    let mut rooms: Vec<String> = conn
        .rooms()
        .iter()
        .filter(|(ns, _)| **ns == *namespace)
        .map(|(_, room)| room.to_string())
        .collect();
    rooms.sort_unstable();
    Member {
        sid: conn.session.to_string(),
        user: profile.user.as_deref().map(str::to_owned),
        client: profile.client.as_deref().map(str::to_owned),
        transport: if profile.transport.is_empty() {
            "native"
        } else {
            profile.transport
        }
        .to_owned(),
        rooms,
        node: node.to_owned(),
    }
}

/// The payload of a presence event: `{sid, user?, client?, transport}`.
fn payload(member: &Member) -> Bytes {
    let entries = 2 + usize::from(member.user.is_some()) + usize::from(member.client.is_some());
    let mut out = Vec::with_capacity(64);
    // Writes into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(&mut out, entries as u32);
    let fields = [
        ("sid", Some(member.sid.as_str())),
        ("user", member.user.as_deref()),
        ("client", member.client.as_deref()),
        ("transport", Some(member.transport.as_str())),
    ];
    for (key, value) in fields {
        if let Some(value) = value {
            let _ = rmp::encode::write_str(&mut out, key);
            let _ = rmp::encode::write_str(&mut out, value);
        }
    }
    Bytes::from(out)
}

impl Router {
    /// A subscription or room of `conn` in `namespace` was added.
    pub(super) fn entered(&self, conn: &Outbox, namespace: &str) {
        if self.presence.enter(namespace, conn) {
            self.change(JOIN, conn, namespace, None, true);
        }
    }

    /// A subscription or room of connection `id` in `namespace` was
    /// removed.
    pub(super) fn exited(&self, id: ConnId, namespace: &str) {
        if let Some(conn) = self.presence.exit(namespace, id) {
            self.change(LEAVE, &conn, namespace, None, false);
        }
    }

    /// `conn` joined (or left) `room` of `namespace`: the room hears it,
    /// and the namespace count follows.
    pub(super) fn room_changed(&self, conn: &Outbox, namespace: &str, room: &str, joined: bool) {
        if joined {
            self.entered(conn, namespace);
        }
        let event = if joined { JOIN } else { LEAVE };
        // Still present (its rooms changed); `exited` says when not.
        self.change(event, conn, namespace, Some(room), true);
        if !joined {
            self.exited(conn.id, namespace);
        }
    }

    /// One presence change of `conn` in `namespace`: shared with the
    /// other nodes when clustered (`present`: whether it is still in the
    /// namespace), and announced as `event` (to `room`, when given) when
    /// someone can hear it. On one node with nobody listening it costs
    /// one lookup and no allocation.
    fn change(
        &self,
        event: &str,
        conn: &Outbox,
        namespace: &str,
        room: Option<&str>,
        present: bool,
    ) {
        let backplane = self.backplane.as_ref();
        if backplane.is_none() {
            let matched = self.events.lookup(namespace, event);
            if matched.exact.is_none() && matched.pattern_hits(event).is_empty() {
                return;
            }
        }
        let member = member(conn, namespace, &self.node);
        if let Some(backplane) = backplane {
            backplane.present(namespace, &member.sid, present.then_some(&member));
        }
        let emit = Emit {
            namespace: namespace.to_owned(),
            event: event.to_owned(),
            room: room.map(str::to_owned),
            payload: payload(&member),
            // A connection does not hear its own comings and goings.
            exclude_self: true,
            ..Emit::default()
        };
        self.publish(Some(conn), &emit);
    }

    /// This node's members of `namespace`, or of its `room` only.
    pub(crate) fn presence(&self, namespace: &str, room: Option<&str>) -> Vec<Member> {
        let members = self.presence.members(namespace);
        let in_room = room.map(|room| self.rooms.members(namespace, room));
        members
            .iter()
            .filter(|conn| in_room.as_ref().is_none_or(|set| set.contains(conn.id)))
            .map(|conn| member(conn, namespace, &self.node))
            .collect()
    }
}
