//! Room membership: `(namespace, room)` → the connections in it.
//!
//! Like the subscription index, each entry is an `Arc` snapshot so an emit
//! to a room can test membership without holding a map guard, and the
//! members are in copy-on-write shards ([`RoomSet`]), so a join or leave
//! while an emit holds the snapshot copies one shard, not the room.

use std::sync::Arc;

use dashmap::DashMap;

use super::FastHash;
use super::key::{ChannelKey, KeyPair};
use super::shards::RoomSet;
use crate::outbox::ConnId;

/// Members of every room of every namespace.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    members: DashMap<ChannelKey, Arc<RoomSet>, FastHash>,
}

impl Rooms {
    pub(crate) fn join(&self, namespace: &str, room: &str, conn: ConnId) {
        let mut entry = self
            .members
            .entry(ChannelKey::new(namespace, room))
            .or_default();
        Arc::make_mut(entry.value_mut()).insert(conn, ());
    }

    pub(crate) fn leave(&self, namespace: &str, room: &str, conn: ConnId) {
        let key: &dyn KeyPair = &(namespace, room);
        self.members.remove_if_mut(key, |_, set| {
            let set = Arc::make_mut(set);
            set.remove(conn);
            set.is_empty()
        });
    }

    /// The members of a room now (empty when nobody is in it).
    pub(crate) fn members(&self, namespace: &str, room: &str) -> Arc<RoomSet> {
        let key: &dyn KeyPair = &(namespace, room);
        self.members
            .get(key)
            .map(|m| m.value().clone())
            .unwrap_or_default()
    }

    /// Number of non-empty rooms.
    pub(crate) fn count(&self) -> usize {
        self.members.len()
    }
}
