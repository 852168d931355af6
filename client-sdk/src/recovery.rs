//! Resuming after a reconnect: the position reached in each history
//! namespace, the `hello.resume` built from it, and de-duplication.
//!
//! Every event of a namespace with a history carries `seq` and `epoch`,
//! and `mid` when its publisher gave one (PROTOCOL.md "History and
//! resume"). The client remembers, per
//! namespace, the epoch and the last `seq` it received and the last
//! [`RECENT_MIDS`] message ids. On every reconnect (to the same URL or to
//! another of its list) it sends them in `hello.resume` with its
//! subscriptions and rooms; the broker restores those and replays what was
//! missed, and `welcome` says per namespace whether that was complete
//! ([`Client::on_recovery`](crate::Client::on_recovery)). An event at or
//! below the remembered `seq` of the same epoch, or with a message id seen
//! lately, is a duplicate and is not delivered again.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

use herald_protocol::EventView;
pub use herald_protocol::Recovery;
use herald_protocol::envelope::{Resume, ResumeSub};

use crate::client::{ConnectionState, Shared};
use crate::dispatch::SubKey;
use crate::error::Error;
use crate::lock;

/// Message ids remembered per namespace for de-duplication.
pub const RECENT_MIDS: usize = 4096;

/// How many times an acked emit is sent, at most, before its error is
/// returned (the first attempt and the retries after a lost connection or
/// a missing answer), all with the same message id.
pub const ACKED_EMIT_ATTEMPTS: u32 = 5;

/// Most namespaces whose position is remembered (the broker bounds what
/// one resume may ask for by the subscription limit anyway).
const MAX_NAMESPACES: usize = 4096;

/// The callback that receives what a resume recovered.
pub(crate) type RecoveryCallback = Arc<dyn Fn(&BTreeMap<String, Recovery>) + Send + Sync>;

/// One namespace's position.
#[derive(Debug, Default)]
struct Position {
    epoch: String,
    seq: u64,
    mids: HashSet<String>,
    order: VecDeque<String>,
}

impl Position {
    fn remember(&mut self, mid: &str) {
        if self.mids.insert(mid.to_owned()) {
            self.order.push_back(mid.to_owned());
            if self.order.len() > RECENT_MIDS {
                if let Some(old) = self.order.pop_front() {
                    self.mids.remove(&old);
                }
            }
        }
    }
}

/// The positions of every history namespace this client received from.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    by_namespace: Mutex<HashMap<String, Position>>,
}

impl Positions {
    /// Records a delivered event; false when it is a duplicate (not to be
    /// delivered again). Events without a `seq` are always new.
    pub(crate) fn accept(&self, event: &EventView<'_>) -> bool {
        let (Some(seq), Some(epoch)) = (event.seq, event.epoch) else {
            return true;
        };
        let mut all = lock(&self.by_namespace);
        if !all.contains_key(event.namespace) && all.len() >= MAX_NAMESPACES {
            return true;
        }
        let position = all.entry(event.namespace.to_owned()).or_default();
        if position.epoch != epoch {
            *position = Position {
                epoch: epoch.to_owned(),
                ..Position::default()
            };
        }
        let seen_mid = event.mid.is_some_and(|mid| position.mids.contains(mid));
        if seq <= position.seq || seen_mid {
            return false;
        }
        position.seq = seq;
        if let Some(mid) = event.mid {
            position.remember(mid);
        }
        true
    }

    /// The resume point of a reconnect: the previous session, the
    /// positions, and what to restore.
    pub(crate) fn resume(
        &self,
        sid: String,
        subs: &[SubKey],
        rooms: &[(String, String)],
    ) -> Resume {
        let all = lock(&self.by_namespace);
        Resume {
            sid,
            offsets: all.iter().map(|(ns, p)| (ns.clone(), p.seq)).collect(),
            epochs: all
                .iter()
                .map(|(ns, p)| (ns.clone(), p.epoch.clone()))
                .collect(),
            subs: subs
                .iter()
                .map(|key| ResumeSub {
                    ns: key.namespace.clone(),
                    ev: key.event.clone(),
                    q: key.group.clone(),
                    r: key.responder,
                })
                .collect(),
            rooms: rooms.to_vec(),
        }
    }

    /// Takes the positions `welcome.recovery` reports: where the client
    /// stands now (after the replay, or after a gap it could not fill).
    pub(crate) fn recovered(&self, recovery: &BTreeMap<String, Recovery>) {
        let mut all = lock(&self.by_namespace);
        for (namespace, r) in recovery {
            let Some(position) = all.get_mut(namespace) else {
                continue;
            };
            if position.epoch != r.epoch || !r.recovered {
                // Not recovered: start again from the namespace's present.
                *position = Position {
                    epoch: r.epoch.clone(),
                    seq: r.seq,
                    ..Position::default()
                };
            }
            // Recovered: the replayed events advance the position as they
            // are delivered.
        }
    }
}

/// The resume point of the next connection attempt: none before the
/// first connection.
pub(crate) fn resume_point(shared: &Shared) -> Option<Resume> {
    let sid = lock(&shared.last_session).clone()?;
    let subs = shared.registry.keys();
    let rooms: Vec<(String, String)> = lock(&shared.rooms).iter().cloned().collect();
    Some(shared.positions.resume(sid, &subs, &rooms))
}

/// Takes a resumed `welcome`'s recovery: the positions, and the callback.
pub(crate) fn on_welcome(shared: &Shared, recovery: &BTreeMap<String, Recovery>) {
    shared.positions.recovered(recovery);
    for (namespace, r) in recovery {
        tracing::info!(
            namespace,
            recovered = r.recovered,
            replayed = r.replayed,
            "resumed"
        );
    }
    let callback = shared
        .on_recovery
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(callback) = callback {
        crate::run_callback("recovery", || callback(recovery));
    }
}

/// A new message id: random, unique in practice across clients.
pub(crate) fn new_mid() -> String {
    format!(
        "{:016x}{:016x}",
        rand::random::<u64>(),
        rand::random::<u64>()
    )
}

/// Waits until a connection newer than `generation` is up; fails with
/// [`Error::Closed`] when the client closes or gives up first.
pub(crate) async fn await_connection(shared: &Shared, generation: u64) -> Result<(), Error> {
    let mut state = shared.state.subscribe();
    loop {
        let now = *state.borrow_and_update();
        match now {
            ConnectionState::Closed => return Err(Error::Closed),
            ConnectionState::Connected
                if shared.generation.load(std::sync::atomic::Ordering::Relaxed) > generation =>
            {
                return Ok(());
            }
            _ => {}
        }
        if state.changed().await.is_err() {
            return Err(Error::Closed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event<'a>(seq: u64, epoch: &'a str, mid: &'a str) -> EventView<'a> {
        EventView {
            seq: Some(seq),
            epoch: Some(epoch),
            mid: Some(mid),
            ..plain()
        }
    }

    fn plain() -> EventView<'static> {
        EventView {
            namespace: "/h",
            event: "e",
            room: None,
            group: None,
            payload: bytes::Bytes::new(),
            ack: None,
            from: None,
            args: false,
            seq: None,
            mid: None,
            epoch: None,
        }
    }

    #[test]
    fn duplicates_are_refused_by_seq_and_by_mid() {
        let p = Positions::default();
        assert!(p.accept(&plain()), "no seq: always new");
        assert!(p.accept(&event(1, "a", "m1")));
        assert!(!p.accept(&event(1, "a", "m1")));
        assert!(p.accept(&event(2, "a", "m2")));
        assert!(!p.accept(&event(3, "a", "m2")), "a repeated mid");
        assert!(p.accept(&event(1, "b", "m1")), "a new epoch starts again");
        let resume = p.resume("s".into(), &[], &[]);
        assert_eq!(resume.offsets["/h"], 1);
        assert_eq!(resume.epochs["/h"], "b");
        let lost = Recovery {
            recovered: false,
            epoch: "c".into(),
            seq: 9,
            replayed: 0,
        };
        p.recovered(&BTreeMap::from([("/h".to_owned(), lost)]));
        assert!(!p.accept(&event(9, "c", "x")));
        assert!(p.accept(&event(10, "c", "y")));
    }
}
