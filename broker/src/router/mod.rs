//! The router: who receives an event, and handing them its frame.
//!
//! It routes `(namespace, event, room, payload)` and knows nothing of
//! sockets: a receiver is an [`Outbox`]. Each emit encodes its outgoing
//! frame once (once more per queue group, whose frame names the group) and
//! offers clones of the same [`Bytes`] to every receiver.

mod index;
mod key;
mod requests;
mod rooms;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::envelope::{Emit, Reply};
use herald_protocol::{Envelope, ErrorCode, EventRef, Pattern, encode, encode_event};
use indexmap::IndexMap;

use self::index::{Group, Subscribers, SubscriptionIndex};
use self::requests::{Pending, Requests};
use self::rooms::Rooms;
use crate::outbox::{ConnId, Offer, Outbox};
use crate::stats::Stats;

/// One subscription as the session remembers it (its reverse index).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SubKey {
    pub(crate) namespace: Box<str>,
    pub(crate) pattern: Pattern,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) responder: bool,
}

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

/// Which connections an emit may reach.
struct Eligible<'a> {
    from: ConnId,
    exclude_self: bool,
    room: Option<&'a HashSet<ConnId>>,
}

impl<'a> Eligible<'a> {
    fn new(from: &Outbox, emit: &Emit, room: Option<&'a HashSet<ConnId>>) -> Eligible<'a> {
        Eligible {
            from: from.id,
            exclude_self: emit.exclude_self,
            room,
        }
    }

    fn allows(&self, id: ConnId) -> bool {
        !(self.exclude_self && id == self.from) && self.room.is_none_or(|r| r.contains(&id))
    }
}

/// The fan-out maps and the requests in flight.
#[derive(Debug)]
pub(crate) struct Router {
    events: SubscriptionIndex,
    responders: SubscriptionIndex,
    rooms: Rooms,
    requests: Arc<Requests>,
    request_cursor: AtomicUsize,
    stats: Arc<Stats>,
}

/// Encodes the `event` frame for an emit, straight from its borrowed parts.
fn event_frame(emit: &Emit, group: Option<&str>, ack: Option<u64>) -> Bytes {
    Bytes::from(encode_event(&EventRef {
        namespace: &emit.namespace,
        event: &emit.event,
        room: emit.room.as_deref(),
        group,
        payload: &emit.payload,
        ack,
    }))
}

/// Offers `frame` to one eligible member, starting at the group's cursor;
/// a member with a full queue is skipped. When every eligible member is
/// full, the first one gets the slow-consumer policy. True when queued.
fn pick_one<'a>(
    members: impl Fn(usize) -> &'a Outbox,
    len: usize,
    cursor: &AtomicUsize,
    eligible: &Eligible<'_>,
    frame: &Bytes,
) -> bool {
    if len == 0 {
        return false;
    }
    let start = cursor.fetch_add(1, Relaxed);
    let mut first_full = None;
    for i in 0..len {
        let member = members((start + i) % len);
        if !eligible.allows(member.id) {
            continue;
        }
        match member.offer(frame) {
            Offer::Queued => return true,
            Offer::Full => {
                first_full.get_or_insert(member);
            }
            Offer::Closed => {}
        }
    }
    if let Some(member) = first_full {
        member.overflowed();
    }
    false
}

impl Router {
    pub(crate) fn new(stats: Arc<Stats>) -> Router {
        Router {
            events: SubscriptionIndex::default(),
            responders: SubscriptionIndex::default(),
            rooms: Rooms::default(),
            requests: Arc::new(Requests::default()),
            request_cursor: AtomicUsize::new(0),
            stats,
        }
    }

    fn index(&self, responder: bool) -> &SubscriptionIndex {
        if responder {
            &self.responders
        } else {
            &self.events
        }
    }

    pub(crate) fn subscribe(&self, conn: &Outbox, key: &SubKey) {
        self.index(key.responder)
            .insert(&key.namespace, &key.pattern, key.group.as_ref(), conn);
        Stats::add(&self.stats.subscriptions, 1);
    }

    pub(crate) fn unsubscribe(&self, conn: ConnId, key: &SubKey) {
        self.index(key.responder)
            .remove(&key.namespace, &key.pattern, key.group.as_ref(), conn);
        self.stats.subscriptions.fetch_sub(1, Relaxed);
    }

    pub(crate) fn join(&self, namespace: &str, room: &str, conn: ConnId) {
        self.rooms.join(namespace, room, conn);
    }

    pub(crate) fn leave(&self, namespace: &str, room: &str, conn: ConnId) {
        self.rooms.leave(namespace, room, conn);
    }

    /// Rooms with at least one member.
    pub(crate) fn room_count(&self) -> usize {
        self.rooms.count()
    }

    /// Requests in flight.
    pub(crate) fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// The members of the emit's room, when it names one.
    fn room_of(&self, emit: &Emit) -> Option<Arc<HashSet<ConnId>>> {
        emit.room
            .as_deref()
            .map(|room| self.rooms.members(&emit.namespace, room))
    }

    /// Delivers an emit to every matching subscriber (once per connection)
    /// and to one member of each matching queue group. Returns the number
    /// of deliveries: plain receivers plus queue groups that took it.
    pub(crate) fn emit(&self, from: &Outbox, emit: &Emit) -> u64 {
        Stats::add(&self.stats.events_received, 1);
        let matched = self.events.lookup(&emit.namespace, &emit.event);
        let room = self.room_of(emit);
        let eligible = Eligible::new(from, emit, room.as_deref());
        let hits: Vec<&Subscribers> = matched.pattern_hits(&emit.event).collect();
        let exact = matched.exact.as_deref();
        let mut reached = self.deliver_plain(emit, exact, &hits, &eligible);
        reached += self.deliver_groups(emit, exact, &hits, &eligible);
        Stats::add(&self.stats.events_delivered, reached);
        reached
    }

    fn deliver_plain(
        &self,
        emit: &Emit,
        exact: Option<&Subscribers>,
        hits: &[&Subscribers],
        eligible: &Eligible<'_>,
    ) -> u64 {
        let mut frame = None;
        let mut reached = 0;
        let send = |conn: &Outbox| {
            if eligible.allows(conn.id) {
                let frame = frame.get_or_insert_with(|| event_frame(emit, None, None));
                reached += u64::from(conn.deliver(frame));
            }
        };
        if hits.is_empty() {
            // The common case: exact subscribers only, no de-duplication.
            exact
                .into_iter()
                .flat_map(|s| s.plain.values())
                .for_each(send);
        } else {
            let mut seen = HashSet::new();
            exact
                .into_iter()
                .chain(hits.iter().copied())
                .flat_map(|s| s.plain.values())
                .filter(|conn| seen.insert(conn.id))
                .for_each(send);
        }
        reached
    }

    fn deliver_groups(
        &self,
        emit: &Emit,
        exact: Option<&Subscribers>,
        hits: &[&Subscribers],
        eligible: &Eligible<'_>,
    ) -> u64 {
        let mut reached = 0;
        if hits.iter().all(|h| h.groups.is_empty()) {
            for (name, group) in exact.into_iter().flat_map(|s| s.groups.iter()) {
                let frame = event_frame(emit, Some(name), None);
                reached += u64::from(pick_one(
                    |i| &group.members[i],
                    group.members.len(),
                    &group.cursor,
                    eligible,
                    &frame,
                ));
            }
            return reached;
        }
        // A group may span the exact name and several patterns (NATS
        // semantics: one member per group name): merge the members.
        let mut merged: IndexMap<&str, (IndexMap<ConnId, &Outbox>, &Group)> = IndexMap::new();
        for (name, group) in exact
            .into_iter()
            .chain(hits.iter().copied())
            .flat_map(|s| s.groups.iter())
        {
            let (members, _) = merged
                .entry(&**name)
                .or_insert_with(|| (IndexMap::new(), group));
            members.extend(group.members.iter().map(|(id, o)| (*id, o)));
        }
        for (name, (members, group)) in &merged {
            let frame = event_frame(emit, Some(name), None);
            reached += u64::from(pick_one(
                |i| members[i],
                members.len(),
                &group.cursor,
                eligible,
                &frame,
            ));
        }
        reached
    }

    /// Routes a request to exactly one responder and arms its timeout.
    pub(crate) fn request(
        &self,
        from: &Outbox,
        emit: &Emit,
        ack: u64,
        timeout: Duration,
    ) -> Result<(), RouteError> {
        Stats::add(&self.stats.events_received, 1);
        let matched = self.responders.lookup(&emit.namespace, &emit.event);
        let room = self.room_of(emit);
        let eligible = Eligible::new(from, emit, room.as_deref());
        let mut candidates: IndexMap<ConnId, &Outbox> = IndexMap::new();
        for subs in matched
            .exact
            .as_deref()
            .into_iter()
            .chain(matched.pattern_hits(&emit.event))
        {
            let members = subs
                .plain
                .values()
                .chain(subs.groups.values().flat_map(|g| g.members.values()));
            candidates.extend(members.filter(|o| eligible.allows(o.id)).map(|o| (o.id, o)));
        }
        if candidates.is_empty() {
            return Err(RouteError {
                code: ErrorCode::NoResponders,
                message: format!(
                    "no responders for {:?} in namespace {:?}",
                    emit.event, emit.namespace
                ),
            });
        }
        let start = self.request_cursor.fetch_add(1, Relaxed);
        for i in 0..candidates.len() {
            let responder = candidates[(start + i) % candidates.len()];
            let handle = self.requests.open(Pending {
                requester: from.clone(),
                ack,
                responder: responder.id,
            });
            let frame = event_frame(emit, None, Some(handle));
            match responder.offer(&frame) {
                Offer::Queued => {
                    Stats::add(&self.stats.requests, 1);
                    Stats::add(&self.stats.events_delivered, 1);
                    self.arm_timeout(handle, timeout);
                    return Ok(());
                }
                Offer::Full | Offer::Closed => self.requests.cancel(handle),
            }
        }
        Err(RouteError {
            code: ErrorCode::Dropped,
            message: "every responder's queue is full".into(),
        })
    }

    fn arm_timeout(&self, handle: u64, timeout: Duration) {
        let requests = self.requests.clone();
        tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            if let Some(pending) = requests.expire(handle) {
                let frame = Bytes::from(encode(&Envelope::error(
                    Some(pending.ack),
                    ErrorCode::Timeout,
                    format!("no reply within {} ms", timeout.as_millis()),
                )));
                pending.requester.answer(&frame);
            }
        });
    }

    /// A responder connection went away: its unanswered requests fail now
    /// with `no_responders` rather than at their timeout.
    pub(crate) fn responder_gone(&self, responder: ConnId) {
        for pending in self.requests.abandon(responder) {
            let frame = Bytes::from(encode(&Envelope::error(
                Some(pending.ack),
                ErrorCode::NoResponders,
                "the responder disconnected before replying",
            )));
            pending.requester.answer(&frame);
        }
    }

    /// Forwards a responder's reply to the requester.
    pub(crate) fn reply(&self, from: ConnId, reply: Reply) -> Result<(), RouteError> {
        let Some(pending) = self.requests.answer(reply.ack, from) else {
            return Err(RouteError {
                code: ErrorCode::UnknownRequest,
                message: format!(
                    "request {} is unknown, already answered, expired, or was not sent to this connection",
                    reply.ack
                ),
            });
        };
        let frame = Bytes::from(encode(&Envelope::Reply(Reply {
            ack: pending.ack,
            ..reply
        })));
        pending.requester.answer(&frame);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
