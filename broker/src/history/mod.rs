//! Per-namespace event history: the seam between the router and where the
//! recent events of a namespace are kept.
//!
//! With history on for a namespace (`[[history.namespaces]]`), every event
//! emitted there is appended to its log before it fans out, and gets a
//! sequence number (`seq`, per namespace, increasing, no gaps), the log's
//! `epoch` (a string that changes whenever the log is lost) and a message
//! id (`mid`). The [`HistoryLog`] trait is all the router and the sessions
//! know of it; [`memory::MemoryHistory`] keeps the logs in this process. A
//! clustered implementation keeps them in Redis instead, as Centrifugo's
//! `broker_history_add_stream.lua` does in one script: return the cached
//! result when the `mid`'s idempotency key exists (a repeat), take the
//! namespace's epoch from its meta hash (setting a new one when the hash is
//! gone: the history was lost), `HINCRBY` the sequence, `XADD` with
//! `MAXLEN` and the sequence as the entry id, `EXPIRE`, and `PUBLISH` the
//! event with its sequence and epoch, atomically; its `append` then calls
//! `publish` when the event comes back from the subscription, and its
//! `recover` buffers live events while it reads the stream and merges them
//! by `seq` (Centrifugo's `internal/recovery`).
//!
//! Two guarantees every implementation gives:
//! - `append` hands the stamp to its `publish` callback in `seq` order per
//!   namespace, so every receiver sees a namespace's events in `seq` order;
//! - `recover` calls its `attach` callback at a point where, for each
//!   namespace it covers, every event up to the `seq` it reports is in the
//!   replay and every later one is published after `attach` returns (so a
//!   resuming connection registered inside `attach` misses nothing and sees
//!   nothing twice).

mod clock;
pub(crate) mod memory;
mod ring;
mod stored;

pub(crate) use stored::{Parts, Stored};

use std::fmt::Debug;
use std::sync::Arc;

use herald_protocol::EventRef;
use herald_protocol::envelope::Emit;

/// What an event in a history namespace is stamped with, as the router
/// encodes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Stamp<'a> {
    pub(crate) seq: u64,
    pub(crate) epoch: &'a str,
    /// The publisher's message id. Without one the event's id is the
    /// broker's, `{epoch}-{seq}`, which is not sent: a receiver has both
    /// parts already (PROTOCOL.md §25.1).
    pub(crate) mid: Option<&'a str>,
}

/// A stamp that came from elsewhere (the cluster's numbering), owned.
#[derive(Debug, Clone)]
pub(crate) struct OwnedStamp {
    pub(crate) seq: u64,
    pub(crate) epoch: String,
    pub(crate) mid: Option<String>,
}

impl OwnedStamp {
    pub(crate) fn borrow(&self) -> Stamp<'_> {
        Stamp {
            seq: self.seq,
            epoch: &self.epoch,
            mid: self.mid.as_deref(),
        }
    }
}

/// An emit about to be appended: what the log stores of it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub(crate) emit: &'a Emit,
    /// The sender's session id, if a connection sent it.
    pub(crate) sender: Option<&'a str>,
}

/// What `append` did.
#[derive(Debug, Clone)]
pub(crate) enum Appended {
    /// Stored, and published with its stamp.
    New,
    /// The publisher's `mid` was seen within the window: neither stored
    /// nor published again.
    Duplicate,
    /// The namespace has no history here (not configured, or the cap on
    /// logs is reached): published without a stamp.
    Unlogged,
}

/// Why missed events cannot be recovered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Gap {
    #[error("the namespace keeps no history")]
    NoHistory,
    #[error("the history's epoch changed (its events were lost)")]
    Epoch,
    #[error("the position is ahead of the history")]
    Ahead,
    #[error("events after the position were already evicted")]
    TooOld,
    #[error("more events were missed than history.replay_limit")]
    OverLimit,
}

/// A read of a namespace's log.
#[derive(Debug)]
pub(crate) struct Page {
    pub(crate) epoch: Arc<str>,
    /// The last `seq` appended (0 when none ever was).
    pub(crate) last: u64,
    pub(crate) events: Vec<Stored>,
    /// False when events right after the position asked for were already
    /// evicted (the page starts later).
    pub(crate) complete: bool,
}

/// A resume position in one namespace.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub(crate) namespace: String,
    pub(crate) since: u64,
    pub(crate) epoch: Option<String>,
}

/// The result of a recovery in one namespace.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) namespace: String,
    /// The events after the position, or why they cannot be had; the
    /// epoch and last `seq` are the log's current ones either way.
    pub(crate) replay: Result<Vec<Stored>, Gap>,
    pub(crate) epoch: Arc<str>,
    pub(crate) last: u64,
}

/// What the logs hold, for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HistoryStats {
    pub(crate) events: u64,
    pub(crate) bytes: u64,
    pub(crate) evicted: u64,
    pub(crate) duplicates: u64,
    pub(crate) logs: u64,
}

/// Where the events of history namespaces are kept (see the module doc
/// for the ordering guarantees).
pub(crate) trait HistoryLog: Send + Sync + Debug {
    /// Whether `namespace` keeps a history.
    fn covers(&self, namespace: &str) -> bool;

    /// Appends the event (unless its `mid` is a repeat) and calls `publish`
    /// with its stamp, in `seq` order per namespace.
    fn append(
        &self,
        namespace: &str,
        record: Record<'_>,
        publish: &mut dyn FnMut(Stamp<'_>),
    ) -> Appended;

    /// Up to `limit` events after `since` that `filter` keeps, oldest
    /// first.
    fn read(
        &self,
        namespace: &str,
        since: u64,
        limit: usize,
        filter: &dyn Fn(&str) -> bool,
    ) -> Result<Page, Gap>;

    /// The events after each position (all of them, or none when more than
    /// the replay limit were missed), handed to `attach` at a point where
    /// no later event is published yet.
    fn recover(&self, wanted: &[Wanted], attach: &mut dyn FnMut(&[Outcome]));

    /// What the logs hold.
    fn stats(&self) -> HistoryStats;
}

/// Longest message id (`mid`) a publisher may send, in bytes.
pub(crate) const MAX_MID_LEN: usize = 128;

/// Checks a publisher's message id: 1 to [`MAX_MID_LEN`] bytes.
pub(crate) fn check_mid(mid: Option<&str>) -> Result<(), String> {
    match mid {
        Some(mid) if mid.is_empty() || mid.len() > MAX_MID_LEN => Err(format!(
            "mid must be 1 to {MAX_MID_LEN} bytes, got {}",
            mid.len()
        )),
        _ => Ok(()),
    }
}

/// `event` with the stamp's `seq`, `mid` and `epoch`, if any.
pub(crate) fn stamped<'a>(mut event: EventRef<'a>, stamp: Option<Stamp<'a>>) -> EventRef<'a> {
    if let Some(stamp) = stamp {
        event.seq = Some(stamp.seq);
        event.mid = stamp.mid;
        event.epoch = Some(stamp.epoch);
    }
    event
}
