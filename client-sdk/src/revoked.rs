//! [`Revoked`]: a subscription or room the broker took away after a token
//! refresh (the `revoked` notice, PROTOCOL.md §22), and what the client
//! does about it: forget it (so it is not restored after a reconnect, and
//! its handlers end) and tell the application
//! ([`Client::on_revoked`](crate::Client::on_revoked)).

use std::sync::Arc;

use herald_protocol::envelope::Revoked as WireRevoked;

use crate::client::Shared;
use crate::dispatch::SubKey;
use crate::lock;

/// The callback that receives revocations.
pub(crate) type RevokedCallback = Arc<dyn Fn(Vec<Revoked>) + Send + Sync>;

/// Something the broker removed because the connection's new token no
/// longer allows it. The client has forgotten it too: it is not restored
/// after a reconnect, and a subscription's handlers stop once they have
/// run the events already queued for them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Revoked {
    /// A subscription (made with `on`, `on_queue`, `on_request`, ...).
    Subscription {
        /// Its namespace.
        namespace: String,
        /// The event name or pattern.
        event: String,
        /// Its queue group, if any.
        group: Option<String>,
        /// True for a responder (`on_request`).
        responder: bool,
    },
    /// A room this connection was taken out of.
    Room {
        /// Its namespace.
        namespace: String,
        /// The room.
        room: String,
    },
}

impl std::fmt::Display for Revoked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Revoked::Subscription {
                namespace,
                event,
                group,
                responder,
            } => SubKey {
                namespace: namespace.clone(),
                event: event.clone(),
                group: group.clone(),
                responder: *responder,
            }
            .fmt(f),
            Revoked::Room { namespace, room } => write!(f, "room {room} in {namespace}"),
        }
    }
}

impl Revoked {
    /// The SDK's view of one wire entry; `None` for an entry naming
    /// neither an event nor a room (nothing to act on).
    fn from_wire(wire: WireRevoked) -> Option<Revoked> {
        match (wire.ev, wire.room) {
            (Some(event), _) => Some(Revoked::Subscription {
                namespace: wire.ns,
                event,
                group: wire.q,
                responder: wire.r,
            }),
            (None, Some(room)) => Some(Revoked::Room {
                namespace: wire.ns,
                room,
            }),
            (None, None) => None,
        }
    }
}

/// Acts on a `revoked` notice: forgets every entry (subscriptions leave
/// the registry, so their handler queues close; rooms leave the restore
/// set), then tells the application. Runs on the reader, so it takes no
/// async lock: a membership change racing it sees the entry gone, which is
/// the broker's view too.
pub(crate) fn on_revoked(shared: &Shared, entries: Vec<WireRevoked>) {
    let revoked: Vec<Revoked> = entries.into_iter().filter_map(Revoked::from_wire).collect();
    if revoked.is_empty() {
        return;
    }
    for entry in &revoked {
        match entry {
            Revoked::Subscription {
                namespace,
                event,
                group,
                responder,
            } => {
                shared.registry.remove_key(&SubKey {
                    namespace: namespace.clone(),
                    event: event.clone(),
                    group: group.clone(),
                    responder: *responder,
                });
            }
            Revoked::Room { namespace, room } => {
                lock(&shared.rooms).remove(&(namespace.clone(), room.clone()));
            }
        }
        tracing::warn!(revoked = %entry, "the broker revoked a subscription or room (token refresh)");
    }
    let callback = shared
        .on_revoked
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(callback) = callback {
        crate::run_callback("revoked", || callback(revoked));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_entries_map_to_subscriptions_and_rooms() {
        let sub = WireRevoked {
            ns: "/o".into(),
            ev: Some("order.>".into()),
            q: Some("billing".into()),
            r: false,
            room: None,
        };
        let revoked = Revoked::from_wire(sub).expect("a subscription");
        assert_eq!(
            revoked,
            Revoked::Subscription {
                namespace: "/o".into(),
                event: "order.>".into(),
                group: Some("billing".into()),
                responder: false,
            }
        );
        assert_eq!(revoked.to_string(), "/o order.> (queue group billing)");
        let room = WireRevoked {
            ns: "/o".into(),
            room: Some("eu".into()),
            ..WireRevoked::default()
        };
        let revoked = Revoked::from_wire(room).expect("a room");
        assert_eq!(revoked.to_string(), "room eu in /o");
        assert_eq!(Revoked::from_wire(WireRevoked::default()), None);
    }
}
