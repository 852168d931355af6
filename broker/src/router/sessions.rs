//! Session-id rooms: every connection is in a room named after its session
//! id (`<node>-<n>`), as every Socket.IO socket is in the room of its id,
//! so anything can address one connection by its id.
//!
//! These rooms are not kept in the room maps (that would be one room per
//! connection per namespace): this node's sessions are indexed by id, and
//! an emit to such a room resolves it to the one connection here. A room
//! name of that shape whose node is this one or another live node of the
//! cluster is reserved: nobody joins or leaves it.

use std::sync::Arc;

use dashmap::DashMap;

use super::FastHash;
use crate::outbox::Outbox;

/// This node's connections by session id.
#[derive(Debug, Default)]
pub(crate) struct Sessions {
    by_id: DashMap<Arc<str>, Outbox, FastHash>,
}

impl Sessions {
    pub(crate) fn insert(&self, conn: &Outbox) {
        self.by_id.insert(conn.session.clone(), conn.clone());
    }

    pub(crate) fn remove(&self, conn: &Outbox) {
        self.by_id
            .remove_if(&conn.session, |_, held| held.id == conn.id);
    }

    /// Every connection of this node (cloned out, no guard held).
    pub(crate) fn all(&self) -> Vec<Outbox> {
        self.by_id.iter().map(|e| e.value().clone()).collect()
    }

    /// The connection of this node with session id `id`.
    pub(crate) fn get(&self, id: &str) -> Option<Outbox> {
        self.by_id.get(id).map(|conn| conn.clone())
    }
}

/// The node part of a name shaped like a session id (`<node>-<digits>`).
pub(crate) fn session_node(name: &str) -> Option<&str> {
    let (node, number) = name.rsplit_once('-')?;
    let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    (digits && !node.is_empty()).then_some(node)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_recognised_by_shape() {
        assert_eq!(
            session_node("herald-0a1b2c3d4e5f-17"),
            Some("herald-0a1b2c3d4e5f")
        );
        assert_eq!(session_node("n1-0"), Some("n1"));
        assert_eq!(session_node("lobby"), None);
        assert_eq!(session_node("game-"), None);
        assert_eq!(session_node("-12"), None);
        assert_eq!(session_node("game-12a"), None);
    }
}
