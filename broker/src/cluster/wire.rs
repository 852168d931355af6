//! The wire format of cross-node messages: one MessagePack map per Redis
//! pub/sub message (`rmp_serde`, fields by name, so a newer node may add
//! optional fields). Every message names the node that sent it, so a node
//! skips its own copies of namespace-channel messages.

use std::time::Duration;

use bytes::Bytes;
use herald_protocol::envelope::{Emit, Reply};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::backplane::{Inbound, ToNode};

/// An emit as it travels between nodes (no sender connection: exclude-self
/// only concerns the origin node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct WireEmit {
    pub(crate) ns: String,
    pub(crate) ev: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) room: Option<String>,
    pub(crate) d: Bytes,
    /// The room whose members do not receive it (`emit.ex`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ex: Option<String>,
    /// The payload holds several arguments (`emit.args`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) args: bool,
    /// The sender's session id (`event.from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sid: Option<String>,
    /// In a clustered history: the message id (the publisher's, or one
    /// the origin made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) mid: Option<String>,
    /// In a clustered history: the sender does not get its own event
    /// (`emit.xs`; honoured by the origin node, which gets its events back).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) xs: bool,
}

impl WireEmit {
    pub(crate) fn from_emit(emit: &Emit, sender: Option<&str>) -> WireEmit {
        WireEmit {
            ns: emit.namespace.clone(),
            ev: emit.event.clone(),
            room: emit.room.clone(),
            d: emit.payload.clone(),
            ex: emit.except.clone(),
            args: emit.args,
            sid: sender.map(str::to_owned),
            mid: None,
            xs: false,
        }
    }

    /// The emit, and the session id of its sender.
    pub(crate) fn into_emit(self) -> (Emit, Option<String>) {
        let emit = Emit {
            namespace: self.ns,
            event: self.ev,
            room: self.room,
            payload: self.d,
            except: self.ex,
            args: self.args,
            exclude_self: self.xs,
            ..Emit::default()
        };
        (emit, self.sid)
    }
}

/// What one node tells another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Body {
    /// For the plain subscribers of every node (sent on the namespace's
    /// channel).
    Event(WireEmit),
    /// For one member of queue group `q` on the receiving node.
    Group { q: String, emit: WireEmit },
    /// A request for one responder on the receiving node; `h` is the
    /// origin's handle, `tmo` the timeout in milliseconds.
    Request { h: u64, tmo: u64, emit: WireEmit },
    /// The answer to request `h` of the receiving node.
    Reply {
        h: u64,
        ok: bool,
        d: Bytes,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        args: bool,
    },
    /// Request `h` of the receiving node has no responder any more.
    Gone { h: u64 },
    /// A service makes session `sid` (of the receiving node) join (or
    /// leave) room `room` of namespace `ns`.
    Move {
        ns: String,
        room: String,
        sid: String,
        join: bool,
    },
    /// The sender's queue groups or responders changed: re-read them.
    Changed,
    /// The sender shut down cleanly: forget it now.
    Left,
}

impl From<ToNode<'_>> for Body {
    fn from(message: ToNode<'_>) -> Body {
        match message {
            ToNode::Group {
                group,
                emit,
                sender,
            } => Body::Group {
                q: group.to_owned(),
                emit: WireEmit::from_emit(emit, sender),
            },
            ToNode::Request {
                handle,
                timeout,
                emit,
                sender,
            } => Body::Request {
                h: handle,
                tmo: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
                emit: WireEmit::from_emit(emit, sender),
            },
            ToNode::Reply(reply) => Body::Reply {
                h: reply.ack,
                ok: reply.ok,
                d: reply.payload.clone(),
                args: reply.args,
            },
            ToNode::Gone { handle } => Body::Gone { h: handle },
            ToNode::Move(change) => Body::Move {
                ns: change.namespace.to_owned(),
                room: change.room.to_owned(),
                sid: change.session.to_owned(),
                join: change.join,
            },
        }
    }
}

impl Body {
    /// What the router must hear of a message from node `from`; `None`
    /// for the backend's own bookkeeping (`changed`, `left`).
    pub(crate) fn into_inbound(self, from: String) -> Option<Inbound> {
        Some(match self {
            Body::Event(emit) => {
                let (emit, sender) = emit.into_emit();
                Inbound::Event { emit, sender }
            }
            Body::Group { q, emit } => {
                let (emit, sender) = emit.into_emit();
                Inbound::Group {
                    group: q,
                    emit,
                    sender,
                }
            }
            Body::Request { h, tmo, emit } => {
                let (emit, sender) = emit.into_emit();
                Inbound::Request {
                    from,
                    handle: h,
                    timeout: Duration::from_millis(tmo),
                    emit,
                    sender,
                }
            }
            Body::Reply { h, ok, d, args } => Inbound::Reply {
                from,
                reply: Reply {
                    ack: h,
                    ok,
                    payload: d,
                    args,
                },
            },
            Body::Gone { h } => Inbound::Gone { from, handle: h },
            Body::Move {
                ns,
                room,
                sid,
                join,
            } => Inbound::Move {
                namespace: ns,
                room,
                session: sid,
                join,
            },
            Body::Changed | Body::Left => return None,
        })
    }
}

/// One cross-node message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Message {
    /// The sending node's id.
    pub(crate) from: String,
    pub(crate) body: Body,
}

/// A message from the backplane that could not be decoded.
#[derive(Debug, Error)]
#[error("undecodable cluster message: {0}")]
pub(crate) struct DecodeError(#[from] rmp_serde::decode::Error);

impl Message {
    pub(crate) fn encode(&self) -> Vec<u8> {
        // Plain structs of strings, integers and bytes always serialize.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Message, DecodeError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_round_trips() {
        let emit = WireEmit {
            ns: "/o".into(),
            ev: "a.b".into(),
            room: Some("r".into()),
            d: Bytes::from_static(b"\x01\x02"),
            ex: Some("n1-4".into()),
            args: true,
            sid: Some("n1-3".into()),
            mid: Some("n1-9".into()),
            xs: true,
        };
        let bodies = [
            Body::Event(emit.clone()),
            Body::Group {
                q: "g".into(),
                emit: emit.clone(),
            },
            Body::Request {
                h: 7,
                tmo: 100,
                emit,
            },
            Body::Reply {
                h: 7,
                ok: false,
                d: Bytes::from_static(b"x"),
                args: true,
            },
            Body::Gone { h: 9 },
            Body::Move {
                ns: "/chat".into(),
                room: "lobby".into(),
                sid: "n2-8".into(),
                join: true,
            },
            Body::Changed,
            Body::Left,
        ];
        for body in bodies {
            let message = Message {
                from: "n1".into(),
                body,
            };
            let decoded = Message::decode(&message.encode()).expect("decodes");
            assert_eq!(decoded, message);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bad in [&b""[..], b"\xc1", b"\x81\xa1x\x01", b"\x92\x01"] {
            assert!(Message::decode(bad).is_err(), "{bad:?}");
        }
    }
}
