//! `hello.resume`: restoring a reconnecting client's subscriptions and
//! rooms, and replaying what it missed in history namespaces.
//!
//! The broker keeps nothing of a closed session (a session id is no
//! secret: it is the `from` of every event the session emitted, so a
//! record keyed by it could be claimed by anyone). The client re-sends its
//! subscriptions and rooms in `hello.resume`, and each is checked as a
//! `sub` or `join` would be. Per namespace with an offset, the
//! [`HistoryLog`](crate::history::HistoryLog) is asked to recover: inside
//! its `attach` step (where no later event of those namespaces is
//! published yet) the namespace's subscriptions and rooms are registered,
//! the client is told what is recovered (`welcome.recovery`) and the
//! replay is queued as one item, so live events follow it with no gap and
//! no duplicate. A namespace whose gap cannot be filled entirely (too old,
//! another epoch, over `history.replay_limit` or over half of
//! `delivery.max_queued_bytes`) gets `recovered: false` and no event of the
//! gap.

use std::collections::{BTreeMap, HashSet};

use bytes::{Bytes, BytesMut};
use herald_protocol::envelope::Resume;
use herald_protocol::{ErrorCode, Recovery};

use crate::admission::{self, Denied, RoomChangeNames};
use crate::auth::Grant;
use crate::history::{Gap, Outcome, Stored, Wanted};
use crate::outbox::Outbox;
use crate::router::SubKey;
use crate::state::Shared;

/// The resuming connection, as the session holds it.
pub(crate) struct Restorer<'a> {
    pub(crate) shared: &'a Shared,
    pub(crate) outbox: &'a Outbox,
    pub(crate) grant: Option<&'a Grant>,
    /// The session's reverse index of subscriptions.
    pub(crate) subscriptions: &'a mut HashSet<SubKey>,
}

/// What the client asked to restore, checked.
struct Restore {
    subs: Vec<SubKey>,
    rooms: Vec<(String, String)>,
}

/// Restores and replays; `announce` is called with the recovery of each
/// namespace with an offset (the session sends its `welcome` there),
/// before the replays are queued. Returns what was refused, to be
/// answered with `err` after the welcome.
pub(crate) fn resume(
    mut restorer: Restorer<'_>,
    resume: &Resume,
    announce: &mut dyn FnMut(BTreeMap<String, Recovery>),
) -> Vec<Denied> {
    let shared = restorer.shared;
    let mut refused = Vec::new();
    let restore = check(&restorer, resume, &mut refused);
    let wanted: Vec<Wanted> = resume
        .offsets
        .iter()
        .take(shared.settings.limits.max_subscriptions_per_connection)
        .map(|(namespace, since)| Wanted {
            namespace: namespace.clone(),
            since: *since,
            epoch: resume.epochs.get(namespace).cloned(),
        })
        .collect();
    let resumed: HashSet<&str> = wanted.iter().map(|w| w.namespace.as_str()).collect();
    {
        let mut attach = |outcomes: &[Outcome]| {
            register(
                &mut restorer,
                &restore,
                |ns| resumed.contains(ns),
                &mut refused,
            );
            let mut recovery = BTreeMap::new();
            let mut replays = Vec::new();
            for outcome in outcomes {
                let filter = Filter {
                    subs: &restore.subs,
                    rooms: &restore.rooms,
                    sid: &resume.sid,
                };
                let replay = outcome
                    .replay
                    .as_ref()
                    .map_err(|gap| *gap)
                    .and_then(|events| {
                        replay_item(restorer.shared, restorer.outbox, &filter, outcome, events)
                    });
                let (recovered, replayed) = match replay {
                    Ok((frames, count)) => {
                        replays.push(frames);
                        (true, count)
                    }
                    Err(gap) => {
                        tracing::debug!(ns = outcome.namespace, %gap, "not recovered");
                        (false, 0)
                    }
                };
                let entry = Recovery {
                    recovered,
                    epoch: outcome.epoch.to_string(),
                    seq: outcome.last,
                    replayed,
                };
                recovery.insert(outcome.namespace.clone(), entry);
            }
            announce(recovery);
            for frames in replays.iter().filter(|f| !f.is_empty()) {
                restorer.outbox.answer(frames);
            }
        };
        match shared.router.history() {
            Some(history) => history.recover(&wanted, &mut attach),
            None => attach(&without_history(&wanted)),
        }
    }
    register(
        &mut restorer,
        &restore,
        |ns| !resumed.contains(ns),
        &mut refused,
    );
    refused
}

/// Outcomes on a broker with no history at all.
fn without_history(wanted: &[Wanted]) -> Vec<Outcome> {
    wanted
        .iter()
        .map(|w| Outcome {
            namespace: w.namespace.clone(),
            replay: Err(Gap::NoHistory),
            epoch: "".into(),
            last: 0,
        })
        .collect()
}

/// The subscriptions and rooms to restore that pass the checks of `sub`
/// and `join` (names, permissions, and the per-connection limits).
fn check(restorer: &Restorer<'_>, resume: &Resume, refused: &mut Vec<Denied>) -> Restore {
    let limits = &restorer.shared.settings.limits;
    let mut subs: Vec<SubKey> = Vec::new();
    for sub in &resume.subs {
        let key =
            admission::subscription(&sub.ns, &sub.ev, sub.q.as_deref(), sub.r).and_then(|key| {
                admission::subscribe(restorer.shared, restorer.grant, &key)?;
                Ok(key)
            });
        match key {
            Ok(key) if subs.contains(&key) => {}
            Ok(_) if subs.len() >= limits.max_subscriptions_per_connection => {
                refused.push(Denied {
                    code: ErrorCode::TooManySubscriptions,
                    message: "the resumed subscriptions are more than \
                              limits.max_subscriptions_per_connection"
                        .into(),
                });
                break;
            }
            Ok(key) => subs.push(key),
            Err(denied) => refused.push(denied),
        }
    }
    let mut rooms = Vec::new();
    for (namespace, room) in resume.rooms.iter().take(limits.max_rooms_per_connection) {
        let names = RoomChangeNames {
            namespace,
            room,
            session: None,
            join: true,
        };
        match admission::room_change(restorer.shared, restorer.outbox, restorer.grant, &names) {
            Ok(()) => rooms.push((namespace.clone(), room.clone())),
            Err(denied) => refused.push(denied),
        }
    }
    Restore { subs, rooms }
}

/// Registers the restored subscriptions and rooms of the namespaces
/// `which` selects.
fn register(
    restorer: &mut Restorer<'_>,
    restore: &Restore,
    which: impl Fn(&str) -> bool,
    refused: &mut Vec<Denied>,
) {
    let router = &restorer.shared.router;
    for key in restore.subs.iter().filter(|k| which(&k.namespace)) {
        if restorer.subscriptions.insert(key.clone()) {
            router.subscribe(restorer.outbox, key);
        }
    }
    let max_rooms = restorer.shared.settings.limits.max_rooms_per_connection;
    for (namespace, room) in restore.rooms.iter().filter(|(ns, _)| which(ns)) {
        if let Err(e) = router.join(restorer.outbox, namespace, room, max_rooms) {
            refused.push(Denied {
                code: e.code,
                message: e.message,
            });
        }
    }
}

/// Which stored events a resumed connection would have received live.
pub(crate) struct Filter<'a> {
    /// Its subscriptions (only the plain ones replay).
    pub(crate) subs: &'a [SubKey],
    /// Its rooms, as `(namespace, room)`.
    pub(crate) rooms: &'a [(String, String)],
    /// Its previous session id: its own room, and its own emits.
    pub(crate) sid: &'a str,
}

impl Filter<'_> {
    /// Whether the connection would have received `event` live: a plain
    /// subscription matches it, and its room filters let it through.
    fn wants(&self, ns: &str, event: &Stored) -> bool {
        let in_room =
            |room: &str| room == self.sid || self.rooms.iter().any(|(n, r)| n == ns && r == room);
        let event = event.parts();
        self.subs.iter().any(|key| {
            &*key.namespace == ns
                && key.group.is_none()
                && !key.responder
                && key.pattern.matches(event.event)
        }) && event.room.is_none_or(in_room)
            && !event.except.is_some_and(in_room)
            && !(event.exclude_self && event.from == Some(self.sid))
    }
}

/// The replay of one namespace as one queued item (the frames back to
/// back, in the connection's wire format), with the number of events in
/// it; over half of `delivery.max_queued_bytes` it is not recoverable.
pub(crate) fn replay_item(
    shared: &Shared,
    outbox: &Outbox,
    filter: &Filter<'_>,
    outcome: &Outcome,
    events: &[Stored],
) -> Result<(Bytes, u64), Gap> {
    let ns = outcome.namespace.as_str();
    let max_bytes = shared.settings.delivery.max_queued_bytes / 2;
    let mut out = BytesMut::new();
    let mut count = 0;
    for event in events.iter().filter(|e| filter.wants(ns, e)) {
        let frame = outbox.format.event(&event.event_ref(ns, &outcome.epoch));
        if out.len() + frame.len() > max_bytes {
            return Err(Gap::OverLimit);
        }
        out.extend_from_slice(&frame);
        count += 1;
    }
    Ok((out.freeze(), count))
}
