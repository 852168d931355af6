//! A cluster node's mirror of the history its backplane keeps (issue 12).
//!
//! With the Redis backend, the events of history namespaces are numbered in
//! Redis (one Lua script appends, numbers and publishes) and every node
//! hears every one of them, its own included, in `seq` order per
//! namespace. The dispatcher hands each to [`on_stamped`], which appends
//! it to this node's mirror (the same in-memory logs a single node keeps)
//! and delivers it to the local subscribers while the log is locked, so a
//! resume reading the mirror sees a clean cut between replay and live.
//!
//! The mirror can fall behind Redis: a node hears nothing while Redis is
//! unreachable, a node that started late has none of the older events, and
//! a client failing over from a killed node may have seen events this node
//! has not heard yet. So:
//! - an event whose `seq` skips some is preceded by the skipped ones, read
//!   from Redis and delivered first (the gap fill);
//! - before a resume (or an HTTP read) uses the mirror, [`catch_up`] reads
//!   Redis from the resume position: newer events are delivered as live
//!   ones, older ones put in front of the log, and a log this node never
//!   heard of starts as Redis holds it.
//!
//! Both run on the dispatcher, in order with the events, so nothing is
//! delivered twice or skipped.

use std::time::Duration;

use herald_protocol::envelope::Emit;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::backplane::{Backplane, HistoryEntry, HistoryRange};
use crate::history::memory::MemoryHistory;
use crate::history::{OwnedStamp, Parts, Record, Stamp, Stored};
use crate::state::Shared;

/// Longest a resume waits for its catch-up before it reads the mirror as
/// it is (a resume then may be told `recovered: false`).
const CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// Brings the mirror of `namespace` up to date from `since` before a
/// resume or a read uses it; does nothing on one node. Bounded by
/// [`CATCH_UP_WAIT`].
pub(crate) async fn catch_up(shared: &Shared, namespace: &str, since: u64) {
    let (Some(backplane), Some(_)) = (&shared.backplane, &shared.mirror) else {
        return;
    };
    let (done, caught_up) = oneshot::channel();
    if !backplane.catch_up(namespace, since, done) {
        debug!(namespace, "catch-up not queued: the dispatcher is behind");
        return;
    }
    if tokio::time::timeout(CATCH_UP_WAIT, caught_up)
        .await
        .is_err()
    {
        warn!(namespace, "history catch-up took over {CATCH_UP_WAIT:?}");
    }
}

/// One numbered event from the backplane: the events it skipped first (read
/// from Redis), then it, into the mirror and to the local subscribers.
pub(crate) async fn on_stamped(
    shared: &Shared,
    (mirror, backplane): (&MemoryHistory, &dyn Backplane),
    here: bool,
    (emit, sender): (Emit, Option<String>),
    stamp: OwnedStamp,
) {
    if let Some(position) = mirror.position(&emit.namespace)
        && *position.epoch == *stamp.epoch
        && stamp.seq > position.last + 1
    {
        let skipped = usize::try_from(stamp.seq - 1 - position.last).unwrap_or(usize::MAX);
        debug!(
            namespace = emit.namespace,
            after = position.last,
            skipped,
            "filling a gap in the history mirror"
        );
        match backplane
            .read_history(&emit.namespace, position.last, skipped)
            .await
        {
            Ok(range) if range.epoch == *stamp.epoch => {
                for entry in range.entries.iter().filter(|e| e.seq < stamp.seq) {
                    deliver_entry(shared, mirror, entry, &range.epoch);
                }
            }
            Ok(_) => {}
            Err(error) => warn!(%error, "cannot fill a gap in the history mirror"),
        }
    }
    deliver(
        shared,
        mirror,
        here,
        (&emit, sender.as_deref()),
        stamp.borrow(),
    );
}

/// Appends one event to the mirror and, unless it was already there,
/// delivers it while the log is locked.
fn deliver(
    shared: &Shared,
    mirror: &MemoryHistory,
    here: bool,
    (emit, sender): (&Emit, Option<&str>),
    stamp: Stamp<'_>,
) {
    let record = Record { emit, sender };
    mirror.append_numbered(&emit.namespace, record, stamp, &mut |stamp| {
        shared.router.deliver_stamped(here, emit, sender, stamp);
    });
}

fn deliver_entry(shared: &Shared, mirror: &MemoryHistory, entry: &HistoryEntry, epoch: &str) {
    let stamp = Stamp {
        seq: entry.seq,
        epoch,
        mid: entry.mid.as_deref(),
    };
    deliver(
        shared,
        mirror,
        false,
        (&entry.emit, entry.sender.as_deref()),
        stamp,
    );
}

fn stored(entry: &HistoryEntry) -> Stored {
    let record = Record {
        emit: &entry.emit,
        sender: entry.sender.as_deref(),
    };
    let parts = Parts {
        mid: entry.mid.as_deref(),
        ..Parts::of(record)
    };
    Stored::new(entry.seq, parts)
}

/// Runs an [`Inbound::CatchUp`](crate::backplane::Inbound::CatchUp) on the
/// dispatcher.
pub(crate) async fn on_catch_up(
    shared: &Shared,
    (mirror, backplane): (&MemoryHistory, &dyn Backplane),
    namespace: &str,
    since: u64,
) {
    let Some(position) = mirror.position(namespace) else {
        return;
    };
    let warm = !position.epoch.is_empty();
    let from = if warm {
        since.min(position.last)
    } else {
        since
    };
    let limit = shared.settings.history.replay_limit.saturating_add(1);
    let range = match backplane.read_history(namespace, from, limit).await {
        Ok(range) => range,
        Err(error) => {
            warn!(%error, namespace, "cannot catch the history mirror up");
            return;
        }
    };
    if warm && *position.epoch == range.epoch {
        // Newer events: delivered as live ones; older ones: in front.
        let (older, newer): (Vec<HistoryEntry>, Vec<HistoryEntry>) = range
            .entries
            .into_iter()
            .filter(|e| e.seq < position.first || e.seq > position.last)
            .partition(|e| e.seq < position.first);
        for entry in &newer {
            deliver_entry(shared, mirror, entry, &range.epoch);
        }
        let older: Vec<Stored> = older.iter().map(stored).collect();
        mirror.backfill(namespace, &range.epoch, older);
    } else {
        let last = held_up_to(&range);
        let HistoryRange { epoch, entries, .. } = range;
        let events = entries.iter().map(stored).collect();
        mirror.reset(namespace, &epoch, last, events);
    }
}

/// The last `seq` a read holds every event up to: Redis's last, unless
/// the read was cut by its limit.
fn held_up_to(range: &HistoryRange) -> u64 {
    match range.entries.last() {
        Some(entry) if entry.seq < range.last => entry.seq,
        Some(_) => range.last,
        // Nothing after `from` is kept: everything up to the last is gone
        // (or there is nothing after it).
        None => range.last,
    }
}
