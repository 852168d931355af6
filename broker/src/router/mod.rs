//! The router: who receives an event, and handing them its frame.
//!
//! It routes `(namespace, event, room, payload)` and knows nothing of
//! sockets or wire formats: a receiver is an [`Outbox`], and its
//! [`WireFormat`](crate::wire::WireFormat) encodes the event. Each emit
//! encodes its outgoing frame once per format among its receivers (once
//! more per queue group, whose frame names the group) and offers clones of
//! the same [`Bytes`] to every receiver of that format.
//!
//! In a cluster the router has a remote side, a [`Backplane`] it does not
//! know the backend of: plain emits are also forwarded to the other nodes,
//! queue groups and requests may pick a member on another node, and
//! messages from other nodes come back through [`Router::dispatch`]
//! (`remote.rs`) into the `*_remote` / `*_from_node` entry points and the
//! same local fan-out. Sessions never know which node an event came from.

mod deadlines;
mod index;
mod key;
mod presence;
mod remote;
mod requests;
mod rooms;
mod sessions;
mod shards;
mod timeouts;
mod trie;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use herald_protocol::envelope::{Emit, Reply};
use herald_protocol::{ErrorCode, EventRef, Pattern};
use indexmap::IndexMap;

use self::index::{Group, Subscribers, SubscriptionIndex};
pub(crate) use self::presence::JOIN as PRESENCE_JOIN;
use self::presence::Presence;
use self::requests::{Pending, Requester, Requests, Responder};
use self::rooms::Rooms;
use self::sessions::{Sessions, session_node};
use self::shards::RoomSet;
use self::timeouts::TimeoutWatcher;
use crate::admin::observe::{Change, Observer};
pub(crate) use crate::backplane::RoomMove;
use crate::backplane::{Backplane, Interest, Numbered, RemoteView, ToNode};
use crate::history::{Appended, HistoryLog, Record, Stamp, stamped};
use crate::outbox::{ConnId, Offer, Outbox, RoomKey};
use crate::stats::Stats;
use crate::wire::{Answer, Frames};
use tokio::sync::oneshot;

/// The hasher of the router's maps: seeded per process, and several times
/// faster than the standard SipHash on the short keys an emit looks up.
pub(crate) type FastHash = foldhash::quality::RandomState;

/// One subscription as the session remembers it (its reverse index).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct SubKey {
    pub(crate) namespace: Box<str>,
    pub(crate) pattern: Pattern,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) responder: bool,
}

impl SubKey {
    /// The subscription as the backplane needs to know it.
    fn interest(&self) -> Interest<'_> {
        if self.group.is_none() && !self.responder {
            return Interest::Plain {
                namespace: &self.namespace,
            };
        }
        Interest::Target {
            namespace: &self.namespace,
            pattern: &self.pattern,
            group: if self.responder {
                None
            } else {
                self.group.as_deref()
            },
        }
    }
}

/// What an emit holds while it fans out (see [`Router::snapshot`]).
#[derive(Debug)]
pub(crate) struct Snapshot {
    _held: index::Matched,
}

/// Why a request could not be routed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteError {
    pub(crate) code: ErrorCode,
    pub(crate) message: String,
}

/// What an emit did: how many it reached, and a receiver whose queue is
/// past its high-water mark, which the publisher should wait for before
/// it reads more (back-pressure, see `outbox`).
#[derive(Debug, Default)]
pub(crate) struct Published {
    pub(crate) receivers: u64,
    pub(crate) back_pressure: Option<Outbox>,
    /// In a history namespace: the stamp, or that the `mid` was a repeat.
    pub(crate) history: Option<Appended>,
    /// In a history namespace of a cluster: the backplane's numbering, which
    /// a broker ack waits for (the event is delivered when it comes back).
    pub(crate) pending: Option<PendingNumber>,
}

/// The backplane's numbering of a clustered history emit, to come.
pub(crate) type PendingNumber = oneshot::Receiver<Result<Numbered, String>>;

/// Notes the first receiver of an emit that asks for back-pressure.
fn note_pressure(pressure: &mut Option<Outbox>, conn: &Outbox) {
    if pressure.is_none() && conn.wants_back_pressure() {
        *pressure = Some(conn.clone());
    }
}

/// Who an emit to a room reaches (or, as `except`, who it skips).
#[derive(Debug)]
enum Audience {
    /// The members of a room.
    Members(Arc<RoomSet>),
    /// A session-id room: its one connection, on this node.
    One(ConnId),
    /// A session-id room whose connection is not on this node.
    Nobody,
}

impl Audience {
    fn contains(&self, id: ConnId) -> bool {
        match self {
            Audience::Members(members) => members.contains(id),
            Audience::One(one) => *one == id,
            Audience::Nobody => false,
        }
    }
}

/// The rooms an emit names, resolved once per emit.
#[derive(Debug, Default)]
struct Audiences {
    room: Option<Audience>,
    except: Option<Audience>,
}

/// Which connections an emit may reach, and who sent it.
struct Eligible<'a> {
    /// The sending connection; none for an HTTP publish or another node.
    from: Option<ConnId>,
    /// The sender's session id, stamped on the event as `from`.
    sender: Option<&'a str>,
    exclude_self: bool,
    room: Option<&'a Audience>,
    except: Option<&'a Audience>,
    /// The history stamp (`seq`, `mid`, `epoch`) the event carries.
    stamp: Option<Stamp<'a>>,
}

impl<'a> Eligible<'a> {
    fn new(from: Option<&'a Outbox>, emit: &Emit, audiences: &'a Audiences) -> Eligible<'a> {
        Eligible {
            from: from.map(|o| o.id),
            sender: from.map(|o| &*o.session),
            exclude_self: emit.exclude_self,
            room: audiences.room.as_ref(),
            except: audiences.except.as_ref(),
            stamp: None,
        }
    }

    /// For an emit from another node: the rooms filter; exclude-self only
    /// concerns the origin.
    fn remote(audiences: &'a Audiences, sender: Option<&'a str>) -> Eligible<'a> {
        Eligible {
            from: None,
            sender,
            exclude_self: false,
            room: audiences.room.as_ref(),
            except: audiences.except.as_ref(),
            stamp: None,
        }
    }

    fn allows(&self, id: ConnId) -> bool {
        !(self.exclude_self && Some(id) == self.from)
            && self.room.is_none_or(|r| r.contains(id))
            && !self.except.is_some_and(|e| e.contains(id))
    }
}

/// The fan-out maps and the requests in flight.
#[derive(Debug)]
pub(crate) struct Router {
    events: SubscriptionIndex,
    responders: SubscriptionIndex,
    rooms: Rooms,
    requests: Arc<Requests>,
    /// Answers expired requests (one task; dropping the router stops it).
    timeouts: TimeoutWatcher,
    request_cursor: AtomicUsize,
    stats: Arc<Stats>,
    /// The remote side, when clustered; `None` on one node (no call, no
    /// allocation on the emit path).
    backplane: Option<Arc<dyn Backplane>>,
    /// Round-robin position for picking a node of a cross-node queue group.
    node_cursor: AtomicUsize,
    /// This node's id (the first part of its session ids).
    node: Arc<str>,
    sessions: Sessions,
    /// Where history namespaces keep their events, when any is configured.
    history: Option<Arc<dyn HistoryLog>>,
    /// The admin console's taps (one relaxed load per emit while no
    /// console watches).
    observer: Observer,
    /// Who is in each namespace on this node (`presence.rs`).
    presence: Presence,
}

/// A queue group's members on this node, merged over the exact name and
/// the matching patterns.
type LocalGroups<'a> = IndexMap<&'a str, (IndexMap<ConnId, &'a Outbox>, &'a Group)>;

/// Merges the queue groups of the exact entry and the pattern hits by name
/// (NATS semantics: one member per group name).
fn merge_groups<'a>(exact: Option<&'a Subscribers>, hits: &[&'a Subscribers]) -> LocalGroups<'a> {
    let mut merged: LocalGroups<'a> = IndexMap::new();
    for (name, group) in exact
        .into_iter()
        .chain(hits.iter().copied())
        .flat_map(|s| s.groups.iter())
    {
        let (members, _) = merged
            .entry(&**name)
            .or_insert_with(|| (IndexMap::new(), group));
        members.extend(group.members.iter().map(|o| (o.id, o)));
    }
    merged
}

/// The `event` an emit delivers, borrowed from it (each receiver's wire
/// format encodes it, once per emit per format: [`Frames`]).
fn event_ref<'a>(
    emit: &'a Emit,
    sender: Option<&'a str>,
    group: Option<&'a str>,
    ack: Option<u64>,
) -> EventRef<'a> {
    EventRef {
        namespace: &emit.namespace,
        event: &emit.event,
        room: emit.room.as_deref(),
        group,
        payload: &emit.payload,
        ack,
        from: sender,
        args: emit.args,
        ..EventRef::default()
    }
}

/// The merged members of a queue group, each once, starting at the
/// group's next round-robin position.
fn rotated<'a, 'm>(
    members: &'m IndexMap<ConnId, &'a Outbox>,
    cursor: &AtomicUsize,
) -> impl Iterator<Item = &'a Outbox> + 'm {
    let len = members.len();
    let start = cursor.fetch_add(1, Relaxed);
    (0..len).map(move |i| members[start.wrapping_add(i) % len])
}

/// Offers `frame` to one eligible member, in the order given (a rotation
/// of the group); a member with a full queue is skipped. When every
/// eligible member is full, the first one gets the slow-consumer policy.
/// True when queued.
fn pick_one<'a>(
    members: impl Iterator<Item = &'a Outbox>,
    eligible: &Eligible<'_>,
    frames: &mut Frames<'_>,
    pressure: &mut Option<Outbox>,
) -> bool {
    let mut first_full = None;
    for member in members {
        if !eligible.allows(member.id) {
            continue;
        }
        match member.offer(frames.get(member.format)) {
            Offer::Queued => {
                note_pressure(pressure, member);
                return true;
            }
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
        Router::clustered(stats, "test", None)
    }

    /// The router of node `node`, with a remote side when `backplane` is
    /// given.
    pub(crate) fn clustered(
        stats: Arc<Stats>,
        node: &str,
        backplane: Option<Arc<dyn Backplane>>,
    ) -> Router {
        Router {
            events: SubscriptionIndex::default(),
            responders: SubscriptionIndex::default(),
            rooms: Rooms::default(),
            requests: Arc::new(Requests::default()),
            timeouts: TimeoutWatcher::default(),
            request_cursor: AtomicUsize::new(0),
            stats,
            backplane,
            node_cursor: AtomicUsize::new(0),
            node: Arc::from(node),
            sessions: Sessions::default(),
            history: None,
            observer: Observer::default(),
            presence: Presence::default(),
        }
    }

    /// The router with history namespaces kept in `history`.
    pub(crate) fn with_history(mut self, history: Option<Arc<dyn HistoryLog>>) -> Router {
        self.history = history;
        self
    }

    /// The history, when any namespace keeps one.
    pub(crate) fn history(&self) -> Option<&Arc<dyn HistoryLog>> {
        self.history.as_ref()
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
        conn.info().count_subscription(&key.namespace, true);
        if let Some(backplane) = &self.backplane {
            backplane.subscribed(key.interest());
        }
        self.entered(conn, &key.namespace);
    }

    pub(crate) fn unsubscribe(&self, conn: &Outbox, key: &SubKey) {
        self.index(key.responder)
            .remove(&key.namespace, &key.pattern, key.group.as_ref(), conn.id);
        conn.info().count_subscription(&key.namespace, false);
        self.stats.subscriptions.fetch_sub(1, Relaxed);
        if let Some(backplane) = &self.backplane {
            backplane.unsubscribed(key.interest());
        }
        self.exited(conn.id, &key.namespace);
    }

    /// Puts `conn` in `room` of `namespace` (recorded on the connection,
    /// so its close leaves it), unless it is already in `max_rooms`
    /// rooms. Session-id rooms are refused: each has one member for good.
    pub(crate) fn join(
        &self,
        conn: &Outbox,
        namespace: &str,
        room: &str,
        max_rooms: usize,
    ) -> Result<(), RouteError> {
        if self.is_session_room(room) {
            return Err(RouteError {
                code: ErrorCode::Forbidden,
                message: format!(
                    "room {:?} is a session id: every connection is alone in its own",
                    herald_protocol::names::excerpt(room)
                ),
            });
        }
        let mut rooms = conn.rooms();
        let key: RoomKey = (namespace.into(), room.into());
        if rooms.contains(&key) {
            return Ok(());
        }
        if rooms.len() >= max_rooms {
            return Err(RouteError {
                code: ErrorCode::TooManyRooms,
                message: format!(
                    "the connection is already in {max_rooms} rooms (limits.max_rooms_per_connection)"
                ),
            });
        }
        self.rooms.join(namespace, room, conn.id);
        rooms.insert(key);
        drop(rooms);
        self.room_moved(conn, namespace, room, true);
        Ok(())
    }

    /// `conn` joined or left a room: presence and the admin console's tap
    /// hear it.
    fn room_moved(&self, conn: &Outbox, namespace: &str, room: &str, joined: bool) {
        self.room_changed(conn, namespace, room, joined);
        self.observer.change(&Change::Room {
            namespace,
            room,
            session: &conn.session,
            joined,
        });
    }

    /// Takes `conn` out of `room` of `namespace`, if it is in it.
    pub(crate) fn leave(&self, conn: &Outbox, namespace: &str, room: &str) {
        let key: RoomKey = (namespace.into(), room.into());
        if conn.rooms().remove(&key) {
            self.rooms.leave(namespace, room, conn.id);
            self.room_moved(conn, namespace, room, false);
        }
    }

    /// Takes `conn` out of every room it is in, or only those of
    /// `namespace` when given.
    pub(crate) fn leave_rooms(&self, conn: &Outbox, namespace: Option<&str>) {
        let left: Vec<RoomKey> = {
            let mut rooms = conn.rooms();
            let leaving: Vec<RoomKey> = rooms
                .iter()
                .filter(|(ns, _)| namespace.is_none_or(|n| **ns == *n))
                .cloned()
                .collect();
            for key in &leaving {
                rooms.remove(key);
            }
            leaving
        };
        for (namespace, room) in left {
            self.rooms.leave(&namespace, &room, conn.id);
            self.room_moved(conn, &namespace, &room, false);
        }
    }

    /// A service moves a session, on this node or another, into or out of
    /// a room (Socket.IO's server-side `socket.join`). For a session of
    /// another node the move is sent there; it is done when that node
    /// reads it.
    pub(crate) fn move_session(
        &self,
        change: &RoomMove<'_>,
        max_rooms: usize,
    ) -> Result<(), RouteError> {
        if let Some(conn) = self.sessions.get(change.session) {
            if change.join {
                return self.join(&conn, change.namespace, change.room, max_rooms);
            }
            self.leave(&conn, change.namespace, change.room);
            return Ok(());
        }
        let remote = session_node(change.session)
            .filter(|node| **node != *self.node)
            .zip(self.backplane.as_ref())
            .filter(|(node, backplane)| backplane.view().has_node(node));
        let Some((node, backplane)) = remote else {
            return Err(RouteError {
                code: ErrorCode::UnknownSession,
                message: format!(
                    "no connection has session id {:?}",
                    herald_protocol::names::excerpt(change.session)
                ),
            });
        };
        if backplane.send_to(node, ToNode::Move(*change)) {
            Ok(())
        } else {
            Err(RouteError {
                code: ErrorCode::Internal,
                message: "the cluster backplane is unavailable: the session's node cannot be told"
                    .into(),
            })
        }
    }

    /// Rooms with at least one member.
    pub(crate) fn room_count(&self) -> usize {
        self.rooms.count()
    }

    /// How many subscription entries (the exact one, matching patterns)
    /// an emit of `event` would consult; for benchmarks.
    pub(crate) fn match_count(&self, namespace: &str, event: &str) -> usize {
        let matched = self.events.lookup(namespace, event);
        usize::from(matched.exact.is_some()) + matched.pattern_hits(event).len()
    }

    /// Holds the subscriber snapshots an emit of `event` would hold while
    /// it fans out; for benchmarks of changes made meanwhile.
    pub(crate) fn snapshot(&self, namespace: &str, event: &str) -> Snapshot {
        Snapshot {
            _held: self.events.lookup(namespace, event),
        }
    }

    /// Requests in flight.
    pub(crate) fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// This node's connections by session id.
    pub(crate) fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// The admin console's taps.
    pub(crate) fn observer(&self) -> &Observer {
        &self.observer
    }

    /// Whether `room` is a session-id room (`<node>-<n>` of this node or
    /// another live node), which nobody may join or leave.
    pub(crate) fn is_session_room(&self, room: &str) -> bool {
        session_node(room).is_some_and(|node| {
            *node == *self.node
                || self
                    .backplane
                    .as_ref()
                    .is_some_and(|backplane| backplane.view().has_node(node))
        })
    }

    /// Resolves a room name: a session-id room is its one connection here
    /// (or nobody), any other room its members in `namespace`.
    fn audience(&self, namespace: &str, room: &str) -> Audience {
        if let Some(conn) = self.sessions.get(room) {
            return Audience::One(conn.id);
        }
        if self.is_session_room(room) {
            return Audience::Nobody;
        }
        Audience::Members(self.rooms.members(namespace, room))
    }

    /// The rooms the emit names: the one it goes to, the one it skips.
    fn audiences(&self, emit: &Emit) -> Audiences {
        let resolve = |room: &Option<String>| {
            room.as_deref()
                .map(|room| self.audience(&emit.namespace, room))
        };
        Audiences {
            room: resolve(&emit.room),
            except: resolve(&emit.except),
        }
    }

    /// Delivers an emit to every matching subscriber (once per connection)
    /// and to one member of each matching queue group. Returns the number
    /// of deliveries: plain receivers plus queue groups that took it.
    pub(crate) fn emit(&self, from: &Outbox, emit: &Emit) -> u64 {
        self.publish(Some(from), emit).receivers
    }

    /// [`Router::emit`] from any sender: a connection, or none at all (an
    /// HTTP publish, which has nothing to exclude).
    ///
    /// In a history namespace the event is appended first and fans out
    /// inside the append, stamped with its `seq`, `mid` and `epoch` (so
    /// the one shared frame carries them); a repeated `mid` is neither
    /// stored nor delivered again.
    pub(crate) fn publish(&self, from: Option<&Outbox>, emit: &Emit) -> Published {
        Stats::add(&self.stats.events_received, 1);
        self.observer.emit(emit, from);
        let Some(history) = self.history.as_ref() else {
            return self.fan_out(from, emit, None);
        };
        if let Some(backplane) = self
            .backplane
            .as_ref()
            .filter(|b| b.keeps_history() && history.covers(&emit.namespace))
        {
            // Numbered by the backplane, in one order for every node; this
            // node delivers it when it comes back (`deliver_stamped`).
            let (done, pending) = oneshot::channel();
            backplane.append(emit, from.map(|o| &*o.session), Some(done));
            return Published {
                pending: Some(pending),
                ..Published::default()
            };
        }
        let record = Record {
            emit,
            sender: from.map(|o| &*o.session),
        };
        let mut published = Published::default();
        let appended = history.append(&emit.namespace, record, &mut |stamp| {
            published = self.fan_out(from, emit, Some(stamp));
        });
        if matches!(appended, Appended::Unlogged) {
            // Not a history namespace (or past the cap on logs).
            return self.fan_out(from, emit, None);
        }
        published.history = Some(appended);
        published
    }

    fn fan_out(&self, from: Option<&Outbox>, emit: &Emit, stamp: Option<Stamp<'_>>) -> Published {
        let matched = self.events.lookup(&emit.namespace, &emit.event);
        let audiences = self.audiences(emit);
        let mut eligible = Eligible::new(from, emit, &audiences);
        eligible.stamp = stamp;
        let hits = matched.pattern_hits(&emit.event);
        let exact = matched.exact.as_deref();
        let mut pressure = None;
        let mut reached = self.deliver_plain(emit, exact, &hits, &eligible, &mut pressure);
        reached += self.deliver_groups(emit, exact, &hits, &eligible, &mut pressure);
        Stats::add(&self.stats.events_delivered, reached);
        if let Some(backplane) = &self.backplane {
            backplane.forward_event(emit, eligible.sender);
        }
        Published {
            receivers: reached,
            back_pressure: pressure,
            ..Published::default()
        }
    }

    /// An event of a history namespace as the backplane numbered it (see
    /// [`Backplane::keeps_history`]), delivered with its stamp: to the
    /// local plain subscribers, and when this node appended it (`here`) to
    /// the queue groups too, without the sender if it asked so.
    pub(crate) fn deliver_stamped(
        &self,
        here: bool,
        emit: &Emit,
        sender: Option<&str>,
        stamp: Stamp<'_>,
    ) -> u64 {
        let matched = self.events.lookup(&emit.namespace, &emit.event);
        let audiences = self.audiences(emit);
        let from = (here && emit.exclude_self)
            .then(|| sender.and_then(|sid| self.sessions.get(sid)))
            .flatten();
        let mut eligible = Eligible::remote(&audiences, sender);
        eligible.from = from.as_ref().map(|o| o.id);
        eligible.exclude_self = eligible.from.is_some();
        eligible.stamp = Some(stamp);
        let hits = matched.pattern_hits(&emit.event);
        let exact = matched.exact.as_deref();
        let mut reached = self.deliver_plain(emit, exact, &hits, &eligible, &mut None);
        if here {
            reached += self.deliver_groups(emit, exact, &hits, &eligible, &mut None);
        }
        Stats::add(&self.stats.events_delivered, reached);
        reached
    }

    /// An emit from another node: to this node's plain subscribers only
    /// (its queue groups get group deliveries of their own).
    pub(crate) fn deliver_remote(&self, emit: &Emit, sender: Option<&str>) -> u64 {
        let matched = self.events.lookup(&emit.namespace, &emit.event);
        let audiences = self.audiences(emit);
        let hits = matched.pattern_hits(&emit.event);
        // Events from other nodes are not held back here (the backplane's
        // own queue bounds them).
        let reached = self.deliver_plain(
            emit,
            matched.exact.as_deref(),
            &hits,
            &Eligible::remote(&audiences, sender),
            &mut None,
        );
        Stats::add(&self.stats.events_delivered, reached);
        reached
    }

    /// A group delivery from another node: to one local member of `group`.
    /// False when this node has no eligible member any more (the origin's
    /// view was stale): the event is counted as undeliverable, never
    /// duplicated.
    pub(crate) fn deliver_remote_group(
        &self,
        emit: &Emit,
        sender: Option<&str>,
        group: &str,
    ) -> bool {
        let matched = self.events.lookup(&emit.namespace, &emit.event);
        let audiences = self.audiences(emit);
        let hits = matched.pattern_hits(&emit.event);
        let merged = merge_groups(matched.exact.as_deref(), &hits);
        let Some((members, group_state)) = merged.get(group) else {
            return false;
        };
        let eligible = Eligible::remote(&audiences, sender);
        let taken = pick_one(
            rotated(members, &group_state.cursor),
            &eligible,
            &mut Frames::new(event_ref(emit, eligible.sender, Some(group), None)),
            &mut None,
        );
        Stats::add(&self.stats.events_delivered, u64::from(taken));
        taken
    }

    fn deliver_plain(
        &self,
        emit: &Emit,
        exact: Option<&Subscribers>,
        hits: &[&Subscribers],
        eligible: &Eligible<'_>,
        pressure: &mut Option<Outbox>,
    ) -> u64 {
        let mut frames = Frames::new(stamped(
            event_ref(emit, eligible.sender, None, None),
            eligible.stamp,
        ));
        let mut reached = 0;
        let send = |conn: &Outbox| {
            if eligible.allows(conn.id) && conn.deliver(frames.get(conn.format)) {
                reached += 1;
                note_pressure(pressure, conn);
            }
        };
        let lists = exact.into_iter().chain(hits.iter().copied());
        if usize::from(exact.is_some()) + hits.len() <= 1 {
            // The common cases: exact subscribers only, or one pattern's
            // (a Socket.IO socket's `>`): one list, no de-duplication.
            lists.flat_map(|s| s.plain.iter()).for_each(send);
        } else {
            // Sized up front: growing it per emit was ~6% of a fanout.
            let capacity = lists.clone().map(|s| s.plain.len()).sum();
            let mut seen = HashSet::with_capacity_and_hasher(capacity, FastHash::default());
            lists
                .flat_map(|s| s.plain.iter())
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
        pressure: &mut Option<Outbox>,
    ) -> u64 {
        let mut reached = 0;
        let clustered = self
            .backplane
            .as_ref()
            .map(|backplane| (backplane, backplane.view()))
            .filter(|(_, view)| view.has_groups(&emit.namespace));
        if clustered.is_none() && hits.iter().all(|h| h.groups.is_empty()) {
            for (name, group) in exact.into_iter().flat_map(|s| s.groups.iter()) {
                let start = group.cursor.fetch_add(1, Relaxed);
                reached += u64::from(pick_one(
                    group.members.rotation(start),
                    eligible,
                    &mut Frames::new(stamped(
                        event_ref(emit, eligible.sender, Some(name), None),
                        eligible.stamp,
                    )),
                    pressure,
                ));
            }
            return reached;
        }
        let merged = merge_groups(exact, hits);
        if let Some((backplane, view)) = clustered {
            return self.deliver_groups_clustered(
                &**backplane,
                &view,
                emit,
                &merged,
                eligible,
                pressure,
            );
        }
        for (name, (members, group)) in &merged {
            reached += u64::from(pick_one(
                rotated(members, &group.cursor),
                eligible,
                &mut Frames::new(stamped(
                    event_ref(emit, eligible.sender, Some(name), None),
                    eligible.stamp,
                )),
                pressure,
            ));
        }
        reached
    }

    /// Queue groups that span nodes: per group name, ONE node is picked
    /// round robin among those with a member (this one included); a node
    /// that cannot take it (local members all full, backplane down) passes
    /// it to the next, so no event is delivered twice.
    fn deliver_groups_clustered(
        &self,
        backplane: &dyn Backplane,
        view: &RemoteView,
        emit: &Emit,
        local: &LocalGroups<'_>,
        eligible: &Eligible<'_>,
        pressure: &mut Option<Outbox>,
    ) -> u64 {
        let remote = view.groups(&emit.namespace, &emit.event);
        let mut names: Vec<&str> = local.keys().copied().collect();
        names.extend(
            remote
                .keys()
                .map(|n| &**n)
                .filter(|n| !local.contains_key(n)),
        );
        let mut reached = 0;
        for name in names {
            let here = local.get(name);
            let nodes = remote.get(name).map_or(&[][..], Vec::as_slice);
            let choices = usize::from(here.is_some()) + nodes.len();
            let start = self.node_cursor.fetch_add(1, Relaxed);
            for i in 0..choices {
                let choice = (start + i) % choices;
                let taken = match (here, choice) {
                    (Some((members, group)), 0) => pick_one(
                        rotated(members, &group.cursor),
                        eligible,
                        &mut Frames::new(stamped(
                            event_ref(emit, eligible.sender, Some(name), None),
                            eligible.stamp,
                        )),
                        pressure,
                    ),
                    _ => backplane.send_to(
                        &nodes[choice - usize::from(here.is_some())],
                        ToNode::Group {
                            group: name,
                            emit,
                            sender: eligible.sender,
                        },
                    ),
                };
                if taken {
                    reached += 1;
                    break;
                }
            }
        }
        reached
    }

    /// This node's responders for the emit that `eligible` allows, one
    /// entry per connection.
    fn local_responders(&self, emit: &Emit, eligible: &Eligible<'_>) -> Vec<Outbox> {
        let matched = self.responders.lookup(&emit.namespace, &emit.event);
        let mut candidates: IndexMap<ConnId, &Outbox> = IndexMap::new();
        for subs in matched
            .exact
            .as_deref()
            .into_iter()
            .chain(matched.pattern_hits(&emit.event))
        {
            let members = subs
                .plain
                .iter()
                .chain(subs.groups.values().flat_map(|g| g.members.iter()));
            candidates.extend(members.filter(|o| eligible.allows(o.id)).map(|o| (o.id, o)));
        }
        candidates.into_values().cloned().collect()
    }

    /// Offers a request to one local responder, recording who asked.
    /// True when a responder's queue took it.
    fn offer_request(
        &self,
        responder: &Outbox,
        requester: Requester,
        ack: u64,
        (emit, sender): (&Emit, Option<&str>),
        timeout: Duration,
    ) -> bool {
        let handle = self.requests.open(
            requester,
            ack,
            Responder::Local(responder.id),
            &emit.namespace,
            timeout,
        );
        let frame = responder
            .format
            .event(&event_ref(emit, sender, None, Some(handle)));
        let sent = responder.offer(&frame) == Offer::Queued;
        if sent {
            Stats::add(&self.stats.events_delivered, 1);
        }
        self.settle_request(handle, sent)
    }

    /// After a request was handed on (`sent`) or not: makes sure its
    /// deadline is watched (it was armed when the request was opened), or
    /// forgets it. Returns `sent`.
    fn settle_request(&self, handle: u64, sent: bool) -> bool {
        if sent {
            self.timeouts.ensure(&self.requests, &self.stats);
        } else {
            self.requests.cancel(handle);
        }
        sent
    }

    /// Routes a request to exactly one responder, on this node or another
    /// (round robin over the local responders and the remote nodes that
    /// have one), and arms its timeout.
    pub(crate) fn request(
        &self,
        from: &Outbox,
        emit: &Emit,
        ack: u64,
        timeout: Duration,
    ) -> Result<(), RouteError> {
        Stats::add(&self.stats.events_received, 1);
        self.observer.emit(emit, Some(from));
        let audiences = self.audiences(emit);
        let eligible = Eligible::new(Some(from), emit, &audiences);
        let local = self.local_responders(emit, &eligible);
        let remote = self.backplane.as_ref().map_or_else(Vec::new, |backplane| {
            backplane.view().responders(&emit.namespace, &emit.event)
        });
        let choices = local.len() + remote.len();
        if choices == 0 {
            return Err(RouteError {
                code: ErrorCode::NoResponders,
                message: format!(
                    "no responders for {:?} in namespace {:?}",
                    emit.event, emit.namespace
                ),
            });
        }
        let start = self.request_cursor.fetch_add(1, Relaxed);
        for i in 0..choices {
            let choice = (start + i) % choices;
            let routed = match local.get(choice) {
                Some(responder) => self.offer_request(
                    responder,
                    Requester::Local(from.clone()),
                    ack,
                    (emit, Some(&from.session)),
                    timeout,
                ),
                None => {
                    self.request_remote(&remote[choice - local.len()], from, emit, ack, timeout)
                }
            };
            if routed {
                Stats::add(&self.stats.requests, 1);
                return Ok(());
            }
        }
        Err(RouteError {
            code: ErrorCode::Dropped,
            message: "no responder could take the request: every responder's queue is full \
                      (or the cluster backplane is unavailable)"
                .into(),
        })
    }

    /// Sends a request to another node, which picks the responder.
    fn request_remote(
        &self,
        node: &Arc<str>,
        from: &Outbox,
        emit: &Emit,
        ack: u64,
        timeout: Duration,
    ) -> bool {
        let Some(backplane) = &self.backplane else {
            return false;
        };
        let handle = self.requests.open(
            Requester::Local(from.clone()),
            ack,
            Responder::Node(node.clone()),
            &emit.namespace,
            timeout,
        );
        let request = ToNode::Request {
            handle,
            timeout,
            emit,
            sender: Some(&from.session),
        };
        let sent = backplane.send_to(node, request);
        self.settle_request(handle, sent)
    }

    /// A request from another node (`h` is its handle): to one local
    /// responder. When there is none any more, the origin is told at once
    /// (its requester gets `no_responders`). The origin keeps its own
    /// timeout; the one armed here only forgets the entry.
    pub(crate) fn request_from_node(
        &self,
        origin: &str,
        h: u64,
        (emit, sender): (&Emit, Option<&str>),
        timeout: Duration,
    ) -> bool {
        let audiences = self.audiences(emit);
        let local = self.local_responders(emit, &Eligible::remote(&audiences, sender));
        let start = self.request_cursor.fetch_add(1, Relaxed);
        let origin: Arc<str> = Arc::from(origin);
        for i in 0..local.len() {
            let responder = &local[(start + i) % local.len()];
            let requester = Requester::Node(origin.clone());
            if self.offer_request(responder, requester, h, (emit, sender), timeout) {
                return true;
            }
        }
        if let Some(backplane) = &self.backplane {
            backplane.send_to(&origin, ToNode::Gone { handle: h });
        }
        false
    }

    /// Tells a requester (here or on another node) that its responder is
    /// gone.
    fn no_responder(&self, pending: Pending, message: &str) {
        match pending.requester {
            Requester::Local(requester) => {
                requester.answer_with(&Answer::Error {
                    namespace: Some(&pending.namespace),
                    id: Some(pending.ack),
                    code: ErrorCode::NoResponders,
                    message,
                });
            }
            Requester::Node(node) => {
                if let Some(backplane) = &self.backplane {
                    backplane.send_to(
                        &node,
                        ToNode::Gone {
                            handle: pending.ack,
                        },
                    );
                }
            }
        }
    }

    /// A responder connection went away: its unanswered requests fail now
    /// with `no_responders` rather than at their timeout.
    pub(crate) fn responder_gone(&self, responder: ConnId) {
        for pending in self.requests.abandon(&Responder::Local(responder)) {
            self.no_responder(pending, "the responder disconnected before replying");
        }
    }

    /// Another node left or expired: requests waiting on it fail now.
    pub(crate) fn node_gone(&self, node: &str) {
        for pending in self.requests.abandon(&Responder::Node(Arc::from(node))) {
            self.no_responder(
                pending,
                "the responder's node left the cluster before replying",
            );
        }
    }

    /// Another node's responder for request `h` disconnected.
    pub(crate) fn gone_from_node(&self, node: &str, h: u64) -> bool {
        let Some(pending) = self.requests.answer(h, &Responder::Node(Arc::from(node))) else {
            return false;
        };
        self.no_responder(pending, "the responder disconnected before replying");
        true
    }

    /// Another node's responder answered request `h`. False when it is no
    /// longer waiting (expired: a late reply is ignored).
    pub(crate) fn reply_from_node(&self, node: &str, h: u64, reply: Reply) -> bool {
        let Some(pending) = self.requests.answer(h, &Responder::Node(Arc::from(node))) else {
            return false;
        };
        self.forward_reply(pending, reply);
        true
    }

    /// Forwards a responder's reply to the requester.
    pub(crate) fn reply(&self, from: ConnId, reply: Reply) -> Result<(), RouteError> {
        let Some(pending) = self.requests.answer(reply.ack, &Responder::Local(from)) else {
            return Err(RouteError {
                code: ErrorCode::UnknownRequest,
                message: format!(
                    "request {} is unknown, already answered, expired, or was not sent to this connection",
                    reply.ack
                ),
            });
        };
        self.forward_reply(pending, reply);
        Ok(())
    }

    fn forward_reply(&self, pending: Pending, reply: Reply) {
        match pending.requester {
            Requester::Local(requester) => {
                self.stats.request_answered(pending.started.elapsed());
                requester.answer_with(&Answer::Reply {
                    namespace: &pending.namespace,
                    ack: pending.ack,
                    ok: reply.ok,
                    payload: &reply.payload,
                    args: reply.args,
                });
            }
            Requester::Node(node) => {
                if let Some(backplane) = &self.backplane {
                    let reply = Reply {
                        ack: pending.ack,
                        ..reply
                    };
                    backplane.send_to(&node, ToNode::Reply(&reply));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
