//! The router's inbound side in a cluster: one message from another node
//! (as the backplane decoded it) to the matching entry point. The
//! dispatcher task (`crate::dispatch`) calls this in arrival order.

use crate::backplane::{Inbound, RoomMove};

use super::Router;

impl Router {
    /// Hands one message from another node to the router. False when it
    /// could not be used (its target left meanwhile): the backplane counts
    /// it as undeliverable. `max_rooms` bounds a session that a remote
    /// service moves into a room (`limits.max_rooms_per_connection`).
    pub(crate) fn dispatch(&self, message: Inbound, max_rooms: usize) -> bool {
        match message {
            // The dispatcher keeps these (they need the history mirror).
            Inbound::Stamped { .. } | Inbound::CatchUp { .. } => false,
            Inbound::Event { emit, sender } => {
                self.deliver_remote(&emit, sender.as_deref());
                true
            }
            Inbound::Group {
                group,
                emit,
                sender,
            } => self.deliver_remote_group(&emit, sender.as_deref(), &group),
            Inbound::Request {
                from,
                handle,
                timeout,
                emit,
                sender,
            } => self.request_from_node(&from, handle, (&emit, sender.as_deref()), timeout),
            Inbound::Reply { from, reply } => self.reply_from_node(&from, reply.ack, reply),
            Inbound::Gone { from, handle } => self.gone_from_node(&from, handle),
            Inbound::Move {
                namespace,
                room,
                session,
                join,
            } => {
                let change = RoomMove {
                    namespace: &namespace,
                    room: &room,
                    session: &session,
                    join,
                };
                self.move_session(&change, max_rooms).is_ok()
            }
            Inbound::NodeGone { node } => {
                self.node_gone(&node);
                true
            }
        }
    }
}
