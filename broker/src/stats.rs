//! Broker counters: connections, events, drops, errors, close reasons.
//!
//! Plain atomics bumped on the hot path with relaxed ordering; a
//! [`StatsSnapshot`] is what callers read.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use herald_protocol::CloseReason;

/// Live counters, shared by every task of one broker.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) connections_current: AtomicU64,
    pub(crate) connections_opened: AtomicU64,
    pub(crate) connections_refused: AtomicU64,
    closed_by_reason: [AtomicU64; CLOSE_REASONS],
    pub(crate) events_received: AtomicU64,
    pub(crate) events_delivered: AtomicU64,
    pub(crate) events_dropped: AtomicU64,
    pub(crate) bad_frames: AtomicU64,
    pub(crate) errors_sent: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) subscriptions: AtomicU64,
}

/// Every known reason, plus one slot for `Unknown`.
const CLOSE_REASONS: usize = CloseReason::ALL.len() + 1;

fn reason_index(reason: CloseReason) -> usize {
    CloseReason::ALL
        .iter()
        .position(|r| *r == reason)
        .unwrap_or(CLOSE_REASONS - 1)
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub(crate) fn closed(&self, reason: CloseReason) {
        self.closed_by_reason[reason_index(reason)].fetch_add(1, Relaxed);
        self.connections_current.fetch_sub(1, Relaxed);
    }

    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        let closed = CloseReason::ALL
            .iter()
            .map(|r| (*r, self.closed_by_reason[reason_index(*r)].load(Relaxed)))
            .collect();
        StatsSnapshot {
            connections_current: self.connections_current.load(Relaxed),
            connections_opened: self.connections_opened.load(Relaxed),
            connections_refused: self.connections_refused.load(Relaxed),
            closed_by_reason: closed,
            events_received: self.events_received.load(Relaxed),
            events_delivered: self.events_delivered.load(Relaxed),
            events_dropped: self.events_dropped.load(Relaxed),
            bad_frames: self.bad_frames.load(Relaxed),
            errors_sent: self.errors_sent.load(Relaxed),
            requests: self.requests.load(Relaxed),
            subscriptions: self.subscriptions.load(Relaxed),
        }
    }
}

/// A point-in-time copy of the broker's counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatsSnapshot {
    /// WebSocket sessions open now.
    pub connections_current: u64,
    /// WebSocket sessions opened since start.
    pub connections_opened: u64,
    /// Upgrades refused (limit reached, bad subprotocol, shutting down).
    pub connections_refused: u64,
    /// Sessions closed, by reason.
    pub closed_by_reason: Vec<(CloseReason, u64)>,
    /// `emit` envelopes accepted (requests included).
    pub events_received: u64,
    /// Event frames queued to connections.
    pub events_delivered: u64,
    /// Event frames dropped because a receiver's queue was full.
    pub events_dropped: u64,
    /// Frames that could not be decoded or were refused as invalid.
    pub bad_frames: u64,
    /// `err` envelopes sent.
    pub errors_sent: u64,
    /// Requests routed to a responder.
    pub requests: u64,
    /// Subscriptions held now.
    pub subscriptions: u64,
}

impl StatsSnapshot {
    /// How many sessions closed for `reason`.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed_by_reason
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}
