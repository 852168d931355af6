//! Broker counters: connections, events, drops, errors, close reasons,
//! bytes, and the request latency histogram.
//!
//! Plain atomics bumped on the hot path with relaxed ordering; a
//! [`StatsSnapshot`] is what callers read. `GET /metrics` renders the same
//! counters as Prometheus text (see `metrics`), read at scrape time, so
//! nothing on the delivery path touches the metrics registry.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use herald_protocol::CloseReason;

use crate::auth::AuthStats;
use crate::metrics::Metrics;

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
    pub(crate) request_timeouts: AtomicU64,
    pub(crate) subscriptions: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) http_publishes: AtomicU64,
    pub(crate) http_publishes_refused: AtomicU64,
    pub(crate) publisher_stalls: AtomicU64,
    pub(crate) stalled_receivers: AtomicU64,
    pub(crate) rate_limited_connection_rate: AtomicU64,
    pub(crate) rate_limited_connections_per_ip: AtomicU64,
    pub(crate) rate_limited_tracked_ips: AtomicU64,
    pub(crate) rate_limited_messages: AtomicU64,
    pub(crate) origin_refused: AtomicU64,
    pub(crate) operator_unauthorized: AtomicU64,
    pub(crate) tls_handshakes_failed: AtomicU64,
    pub(crate) tls_reloads_ok: AtomicU64,
    pub(crate) tls_reloads_failed: AtomicU64,
    /// This broker's own Prometheus registry (never a global one).
    pub(crate) metrics: Metrics,
    /// Authentication failures, refusals, refreshes and expiries.
    pub(crate) auth: AuthStats,
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

    /// A request was answered `elapsed` after it was routed.
    pub(crate) fn request_answered(&self, elapsed: Duration) {
        self.metrics.record_request_duration(elapsed);
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
            request_timeouts: self.request_timeouts.load(Relaxed),
            subscriptions: self.subscriptions.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            http_publishes: self.http_publishes.load(Relaxed),
            http_publishes_refused: self.http_publishes_refused.load(Relaxed),
            publisher_stalls: self.publisher_stalls.load(Relaxed),
            stalled_receivers: self.stalled_receivers.load(Relaxed),
            rate_limited_connection_rate: self.rate_limited_connection_rate.load(Relaxed),
            rate_limited_connections_per_ip: self.rate_limited_connections_per_ip.load(Relaxed),
            rate_limited_tracked_ips: self.rate_limited_tracked_ips.load(Relaxed),
            rate_limited_messages: self.rate_limited_messages.load(Relaxed),
            origin_refused: self.origin_refused.load(Relaxed),
            operator_unauthorized: self.operator_unauthorized.load(Relaxed),
            auth_failures: self.auth.failures(),
            forbidden: self.auth.forbiddens(),
            token_refreshes: self.auth.refreshes.load(Relaxed),
            token_expired: self.auth.expired.load(Relaxed),
            tls_handshakes_failed: self.tls_handshakes_failed.load(Relaxed),
            tls_reloads_ok: self.tls_reloads_ok.load(Relaxed),
            tls_reloads_failed: self.tls_reloads_failed.load(Relaxed),
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
    /// Emits accepted, over WebSocket (requests included) or HTTP.
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
    /// Requests that got no reply in time.
    pub request_timeouts: u64,
    /// Subscriptions held now.
    pub subscriptions: u64,
    /// Binary frames that could not be decoded as an envelope.
    pub decode_errors: u64,
    /// Bytes of WebSocket messages read from clients.
    pub bytes_received: u64,
    /// Bytes of frames written to clients' WebSockets.
    pub bytes_sent: u64,
    /// Events published over HTTP (`POST /v1/emit/...`).
    pub http_publishes: u64,
    /// HTTP publishes refused with an error status.
    pub http_publishes_refused: u64,
    /// Times a publisher stopped reading until a receiver's queue drained
    /// (back-pressure).
    pub publisher_stalls: u64,
    /// Receivers whose queue did not drain within a publisher's stall
    /// limit (marked stalled: no more back-pressure until they drain).
    pub stalled_receivers: u64,
    /// New TCP connections refused or dropped over
    /// `rate_limits.connections_per_ip_per_second`.
    pub rate_limited_connection_rate: u64,
    /// Sessions refused at `rate_limits.max_connections_per_ip`.
    pub rate_limited_connections_per_ip: u64,
    /// Connections refused because `rate_limits.max_tracked_ips` addresses,
    /// all with open sessions, were tracked.
    pub rate_limited_tracked_ips: u64,
    /// Client messages answered `rate_limited` (over
    /// `rate_limits.messages_per_second`).
    pub rate_limited_messages: u64,
    /// Requests refused 403 for their `Origin` (`server.allowed_origins`).
    pub origin_refused: u64,
    /// Operator endpoint requests refused 401 (`server.operator_token`).
    pub operator_unauthorized: u64,
    /// Tokens refused, by reason (`missing`, `invalid`, `expired`,
    /// `issuer`, `audience`, `algorithm`, `subject`).
    pub auth_failures: Vec<(&'static str, u64)>,
    /// Actions refused by permissions, by action (`publish`, `subscribe`,
    /// `respond`, `join`, `powers`).
    pub forbidden: Vec<(&'static str, u64)>,
    /// Tokens replaced in place (native `auth`, Socket.IO `$auth`).
    pub token_refreshes: u64,
    /// Connections closed because their token expired.
    pub token_expired: u64,
    /// TLS handshakes that failed or timed out (`[tls]`).
    pub tls_handshakes_failed: u64,
    /// Certificate reloads that took effect.
    pub tls_reloads_ok: u64,
    /// Certificate reloads that failed (the old certificate stayed).
    pub tls_reloads_failed: u64,
}

impl StatsSnapshot {
    /// Tokens refused for `reason` (see [`StatsSnapshot::auth_failures`]).
    pub fn auth_failed(&self, reason: &str) -> u64 {
        self.auth_failures
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }

    /// Refusals of `action` (see [`StatsSnapshot::forbidden`]).
    pub fn forbidden(&self, action: &str) -> u64 {
        self.forbidden
            .iter()
            .find(|(a, _)| *a == action)
            .map_or(0, |(_, n)| *n)
    }

    /// How many sessions closed for `reason`.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed_by_reason
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(0, |(_, n)| *n)
    }
}
