//! Prometheus metrics for `GET /metrics`.
//!
//! Each broker owns its own [`PrometheusRecorder`]: none is installed
//! globally, so many brokers can share one process (the tests do). The
//! counters and gauges are copied from the broker's atomic [`Stats`] at
//! scrape time, so the delivery path stays plain relaxed atomics; only the
//! request latency histogram is recorded as it happens, once per reply.
//!
//! [`Stats`]: crate::stats::Stats

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use metrics::{Histogram, Key, KeyName, Label, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};

use crate::backplane::BackplaneSample;
use crate::history::HistoryStats;
use crate::stats::StatsSnapshot;

/// The `Content-Type` of the Prometheus text exposition format.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the request latency histogram's buckets.
const REQUEST_DURATION_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Latency samples wait in the recorder until a scrape (or this many more
/// samples) folds them into the buckets, so memory stays bounded even when
/// nobody scrapes.
const UPKEEP_EVERY: u64 = 256;

const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// One metric family: its name and its HELP text.
struct Family {
    name: &'static str,
    help: &'static str,
}

const fn family(name: &'static str, help: &'static str) -> Family {
    Family { name, help }
}

const CONNECTIONS: Family = family("herald_connections", "WebSocket sessions open now.");
const CONNECTION_LIMIT: Family = family(
    "herald_connection_limit",
    "WebSocket sessions admitted at once: server.max_connections, or less when the open-files limit is lower.",
);
const CONNECTIONS_OPENED: Family = family(
    "herald_connections_opened_total",
    "WebSocket sessions opened since the broker started.",
);
const CONNECTIONS_REFUSED: Family = family(
    "herald_connections_refused_total",
    "WebSocket upgrades refused (bad request, subprotocol, connection limit, shutdown).",
);
const CONNECTIONS_CLOSED: Family = family(
    "herald_connections_closed_total",
    "WebSocket sessions closed, by close reason (reason=\"slow_consumer\" counts slow-consumer disconnects).",
);
const AUTH_FAILURES: Family = family(
    "herald_auth_failures_total",
    "Tokens refused (unauthorized), by reason: missing, invalid, expired, issuer, audience, algorithm, subject.",
);
const FORBIDDEN: Family = family(
    "herald_forbidden_total",
    "Actions refused by a connection's permissions (forbidden), by action: publish, subscribe, respond, join, powers.",
);
const TOKEN_REFRESHES: Family = family(
    "herald_token_refreshes_total",
    "Tokens replaced in place (native auth envelope, Socket.IO $auth).",
);
const TOKEN_EXPIRED: Family = family(
    "herald_token_expired_total",
    "Connections closed because their token expired (token_expired).",
);
const SUBSCRIPTIONS: Family = family(
    "herald_subscriptions",
    "Subscriptions held now (plain, queue-group and responder).",
);
const ROOMS: Family = family("herald_rooms", "Rooms with at least one member now.");
const PENDING_REQUESTS: Family = family(
    "herald_pending_requests",
    "Requests routed to a responder and not yet answered or expired.",
);
const EVENTS_RECEIVED: Family = family(
    "herald_events_received_total",
    "Emits accepted for routing, over WebSocket (requests included) or HTTP.",
);
const EVENTS_DELIVERED: Family = family(
    "herald_events_delivered_total",
    "Event frames queued to receiving connections.",
);
const EVENTS_DROPPED: Family = family(
    "herald_events_dropped_total",
    "Event frames dropped because a receiver's queue was full (delivery.slow_consumer = \"drop\").",
);
const BYTES_RECEIVED: Family = family(
    "herald_bytes_received_total",
    "Bytes of WebSocket messages read from clients.",
);
const BYTES_SENT: Family = family(
    "herald_bytes_sent_total",
    "Bytes of frames written to clients' WebSockets.",
);
const DECODE_ERRORS: Family = family(
    "herald_decode_errors_total",
    "Binary frames that could not be decoded as an envelope.",
);
const FRAMES_REFUSED: Family = family(
    "herald_frames_refused_total",
    "Frames refused with an err envelope (undecodable, invalid names, limits, unknown requests...).",
);
const ERRORS_SENT: Family = family("herald_errors_sent_total", "err envelopes sent to clients.");
const HTTP_PUBLISHES: Family = family(
    "herald_http_publishes_total",
    "Events published over HTTP (POST /v1/emit/...).",
);
const HTTP_PUBLISHES_REFUSED: Family = family(
    "herald_http_publishes_refused_total",
    "HTTP publishes refused with an error status (bad name, body, content type, size...).",
);
const PUBLISHER_STALLS: Family = family(
    "herald_publisher_stalls_total",
    "Times a publisher stopped reading until a receiver's queue drained (back-pressure).",
);
const STALLED_RECEIVERS: Family = family(
    "herald_stalled_receivers_total",
    "Receivers whose queue did not drain within a publisher's stall limit.",
);
const TLS_HANDSHAKES_FAILED: Family = family(
    "herald_tls_handshake_failures_total",
    "TLS handshakes that failed or timed out (server.handshake_timeout).",
);
const TLS_RELOADS: Family = family(
    "herald_tls_reloads_total",
    "Certificate reloads (SIGHUP or file change), by result: ok, or error (the old certificate stayed).",
);
const REQUESTS: Family = family("herald_requests_total", "Requests routed to a responder.");
const REQUEST_TIMEOUTS: Family = family(
    "herald_request_timeouts_total",
    "Requests that got no reply within their timeout.",
);
const REQUEST_DURATION: Family = family(
    "herald_request_duration_seconds",
    "Time from routing a request to forwarding its reply, in seconds.",
);
const RATE_LIMITED: Family = family(
    "herald_rate_limited_total",
    "Refusals by the abuse limits ([rate_limits]), by kind: connection_rate (new TCP connections over the per-IP rate, answered 429 or dropped), connections_per_ip (sessions over the per-IP limit), tracked_ips (the per-IP table full of busy addresses), messages (client messages answered rate_limited).",
);
const ORIGIN_REFUSED: Family = family(
    "herald_origin_refused_total",
    "Requests refused with 403 because their Origin is not allowed (server.allowed_origins).",
);
const OPERATOR_UNAUTHORIZED: Family = family(
    "herald_operator_unauthorized_total",
    "Operator endpoint requests refused with 401: no or wrong bearer token (server.operator_token).",
);

const CLUSTER_UP: Family = family(
    "herald_cluster_up",
    "1 while the cluster backplane (Redis) is reachable, 0 while degraded (local delivery only).",
);
const CLUSTER_NODES: Family = family(
    "herald_cluster_nodes",
    "Other live nodes of the cluster, as last read from the registry.",
);
const CLUSTER_REMOTE_ENTRIES: Family = family(
    "herald_cluster_remote_entries",
    "Queue groups and responders of the other live nodes, as last read (targets, not connections).",
);
const CLUSTER_NAMESPACES: Family = family(
    "herald_cluster_namespaces",
    "Namespaces whose Redis channel this node listens on (those with local plain subscribers).",
);
const CLUSTER_SENT: Family = family(
    "herald_cluster_messages_sent_total",
    "Cross-node messages published to Redis.",
);
const CLUSTER_RECEIVED: Family = family(
    "herald_cluster_messages_received_total",
    "Cross-node messages received from other nodes.",
);
const CLUSTER_DROPPED: Family = family(
    "herald_cluster_dropped_total",
    "Cross-node messages not sent: Redis unreachable or the outbound queue (cluster.queue_capacity) full.",
);
const CLUSTER_UNDELIVERABLE: Family = family(
    "herald_cluster_undeliverable_total",
    "Cross-node messages received but unusable: undecodable, or a group delivery or request with no local member left.",
);
const CLUSTER_DISCONNECTS: Family = family(
    "herald_cluster_disconnects_total",
    "Times the connection to Redis was lost.",
);

const HISTORY_EVENTS: Family = family(
    "herald_history_events",
    "Events held in history namespaces' logs now (history.namespaces).",
);
const HISTORY_BYTES: Family = family(
    "herald_history_bytes",
    "Bytes held by the history logs now (payloads, names and bookkeeping).",
);
const HISTORY_LOGS: Family = family("herald_history_logs", "Namespaces with a history log now.");
const HISTORY_EVICTED: Family = family(
    "herald_history_evicted_total",
    "History events evicted by their namespace's size or ttl.",
);
const HISTORY_DUPLICATES: Family = family(
    "herald_history_duplicates_total",
    "Emits dropped as repeats of a message id (mid) seen within history.mid_window.",
);

/// What one scrape reports: the broker's counters and the sizes the
/// router knows.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) stats: StatsSnapshot,
    pub(crate) rooms: usize,
    pub(crate) pending_requests: usize,
    /// Sessions admitted at once (the effective connection limit).
    pub(crate) connection_limit: usize,
    /// The cluster side's numbers, when clustered.
    pub(crate) cluster: Option<BackplaneSample>,
    /// The history logs' numbers, when a namespace keeps a history.
    pub(crate) history: Option<HistoryStats>,
}

/// One broker's Prometheus registry.
pub(crate) struct Metrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    request_duration: Histogram,
    samples: AtomicU64,
}

impl fmt::Debug for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metrics")
            .field("samples", &self.samples)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    pub(crate) fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(REQUEST_DURATION.name.into()),
                &REQUEST_DURATION_BUCKETS,
            )
            .expect("the bucket list is a non-empty constant")
            .build_recorder();
        recorder.describe_histogram(
            KeyName::from_const_str(REQUEST_DURATION.name),
            Some(Unit::Seconds),
            SharedString::const_str(REQUEST_DURATION.help),
        );
        let request_duration =
            recorder.register_histogram(&Key::from_static_name(REQUEST_DURATION.name), &METADATA);
        Metrics {
            handle: recorder.handle(),
            recorder,
            request_duration,
            samples: AtomicU64::new(0),
        }
    }

    /// Records one request/reply round trip through the broker.
    pub(crate) fn record_request_duration(&self, elapsed: Duration) {
        self.request_duration.record(elapsed);
        if self.samples.fetch_add(1, Relaxed) % UPKEEP_EVERY == UPKEEP_EVERY - 1 {
            self.handle.run_upkeep();
        }
    }

    /// Renders every metric as Prometheus text, with `sample`'s values.
    pub(crate) fn render(&self, sample: &Sample) -> String {
        let s = &sample.stats;
        let gauges = [
            (&CONNECTIONS, s.connections_current),
            (&CONNECTION_LIMIT, sample.connection_limit as u64),
            (&SUBSCRIPTIONS, s.subscriptions),
            (&ROOMS, sample.rooms as u64),
            (&PENDING_REQUESTS, sample.pending_requests as u64),
        ];
        let cluster_gauges = sample.cluster.iter().flat_map(|c| {
            [
                (&CLUSTER_UP, u64::from(c.up)),
                (&CLUSTER_NODES, c.nodes),
                (&CLUSTER_REMOTE_ENTRIES, c.remote_entries),
                (&CLUSTER_NAMESPACES, c.namespaces),
            ]
        });
        let history_gauges = sample.history.iter().flat_map(|h| {
            [
                (&HISTORY_EVENTS, h.events),
                (&HISTORY_BYTES, h.bytes),
                (&HISTORY_LOGS, h.logs),
            ]
        });
        for (family, value) in gauges
            .into_iter()
            .chain(cluster_gauges)
            .chain(history_gauges)
        {
            self.recorder.describe_gauge(
                KeyName::from_const_str(family.name),
                None,
                SharedString::const_str(family.help),
            );
            self.recorder
                .register_gauge(&Key::from_static_name(family.name), &METADATA)
                .set(value as f64);
        }
        let counters = [
            (&CONNECTIONS_OPENED, s.connections_opened),
            (&CONNECTIONS_REFUSED, s.connections_refused),
            (&EVENTS_RECEIVED, s.events_received),
            (&EVENTS_DELIVERED, s.events_delivered),
            (&EVENTS_DROPPED, s.events_dropped),
            (&BYTES_RECEIVED, s.bytes_received),
            (&BYTES_SENT, s.bytes_sent),
            (&DECODE_ERRORS, s.decode_errors),
            (&FRAMES_REFUSED, s.bad_frames),
            (&ERRORS_SENT, s.errors_sent),
            (&HTTP_PUBLISHES, s.http_publishes),
            (&HTTP_PUBLISHES_REFUSED, s.http_publishes_refused),
            (&REQUESTS, s.requests),
            (&REQUEST_TIMEOUTS, s.request_timeouts),
            (&PUBLISHER_STALLS, s.publisher_stalls),
            (&STALLED_RECEIVERS, s.stalled_receivers),
            (&ORIGIN_REFUSED, s.origin_refused),
            (&OPERATOR_UNAUTHORIZED, s.operator_unauthorized),
            (&TOKEN_REFRESHES, s.token_refreshes),
            (&TOKEN_EXPIRED, s.token_expired),
            (&TLS_HANDSHAKES_FAILED, s.tls_handshakes_failed),
        ];
        let cluster_counters = sample.cluster.iter().flat_map(|c| {
            [
                (&CLUSTER_SENT, c.sent),
                (&CLUSTER_RECEIVED, c.received),
                (&CLUSTER_DROPPED, c.dropped),
                (&CLUSTER_UNDELIVERABLE, c.undeliverable),
                (&CLUSTER_DISCONNECTS, c.disconnects),
            ]
        });
        let history_counters = sample.history.iter().flat_map(|h| {
            [
                (&HISTORY_EVICTED, h.evicted),
                (&HISTORY_DUPLICATES, h.duplicates),
            ]
        });
        for (family, value) in counters
            .into_iter()
            .chain(cluster_counters)
            .chain(history_counters)
        {
            self.set_counter(family, Key::from_static_name(family.name), value);
        }
        for (kind, value) in [
            ("connection_rate", s.rate_limited_connection_rate),
            ("connections_per_ip", s.rate_limited_connections_per_ip),
            ("tracked_ips", s.rate_limited_tracked_ips),
            ("messages", s.rate_limited_messages),
        ] {
            let label = Label::from_static_parts("kind", kind);
            let key = Key::from_parts(RATE_LIMITED.name, vec![label]);
            self.set_counter(&RATE_LIMITED, key, value);
        }
        for (result, value) in [("ok", s.tls_reloads_ok), ("error", s.tls_reloads_failed)] {
            let label = Label::from_static_parts("result", result);
            let key = Key::from_parts(TLS_RELOADS.name, vec![label]);
            self.set_counter(&TLS_RELOADS, key, value);
        }
        for (reason, value) in &s.closed_by_reason {
            let label = Label::from_static_parts("reason", reason.as_str());
            let key = Key::from_parts(CONNECTIONS_CLOSED.name, vec![label]);
            self.set_counter(&CONNECTIONS_CLOSED, key, *value);
        }
        let labelled = [
            (&AUTH_FAILURES, "reason", &s.auth_failures),
            (&FORBIDDEN, "action", &s.forbidden),
        ];
        for (family, label, values) in labelled {
            for (value_label, value) in values {
                let label = Label::from_static_parts(label, value_label);
                let key = Key::from_parts(family.name, vec![label]);
                self.set_counter(family, key, *value);
            }
        }
        self.handle.render()
    }

    fn set_counter(&self, family: &Family, key: Key, value: u64) {
        self.recorder.describe_counter(
            KeyName::from_const_str(family.name),
            None,
            SharedString::const_str(family.help),
        );
        self.recorder
            .register_counter(&key, &METADATA)
            .absolute(value);
    }
}

#[cfg(test)]
mod tests {
    use herald_protocol::CloseReason;

    use super::*;

    fn sample() -> Sample {
        Sample {
            stats: StatsSnapshot {
                connections_current: 3,
                events_delivered: 7,
                closed_by_reason: vec![
                    (CloseReason::SlowConsumer, 2),
                    (CloseReason::RateLimited, 5),
                ],
                rate_limited_messages: 6,
                origin_refused: 8,
                ..StatsSnapshot::default()
            },
            rooms: 4,
            pending_requests: 1,
            history: None,
            connection_limit: 100,
            cluster: None,
        }
    }

    #[test]
    fn values_and_help_are_rendered() {
        let text = Metrics::new().render(&sample());
        for line in [
            "herald_connections 3",
            "herald_events_delivered_total 7",
            "herald_rooms 4",
            "herald_pending_requests 1",
            "herald_connection_limit 100",
            "herald_connections_closed_total{reason=\"slow_consumer\"} 2",
            "herald_connections_closed_total{reason=\"rate_limited\"} 5",
            "herald_rate_limited_total{kind=\"messages\"} 6",
            "herald_rate_limited_total{kind=\"connection_rate\"} 0",
            "herald_origin_refused_total 8",
            "# TYPE herald_events_delivered_total counter",
            "# TYPE herald_connections gauge",
            "# TYPE herald_request_duration_seconds histogram",
            "herald_request_duration_seconds_count 0",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in:\n{text}"
            );
        }
        assert!(
            text.contains("# HELP herald_events_dropped_total "),
            "{text}"
        );
    }

    #[test]
    fn cluster_metrics_only_when_clustered() {
        let text = Metrics::new().render(&sample());
        assert!(!text.contains("herald_cluster_"), "{text}");
        let clustered = Sample {
            cluster: Some(BackplaneSample {
                up: true,
                nodes: 2,
                dropped: 5,
                ..BackplaneSample::default()
            }),
            ..sample()
        };
        let text = Metrics::new().render(&clustered);
        for line in [
            "herald_cluster_up 1",
            "herald_cluster_nodes 2",
            "herald_cluster_dropped_total 5",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line:?} missing in:\n{text}"
            );
        }
    }

    #[test]
    fn request_durations_fill_the_buckets() {
        let metrics = Metrics::new();
        for _ in 0..(UPKEEP_EVERY + 3) {
            metrics.record_request_duration(Duration::from_millis(3));
        }
        let text = metrics.render(&sample());
        let count = format!("herald_request_duration_seconds_count {}", UPKEEP_EVERY + 3);
        assert!(text.lines().any(|l| l == count), "{text}");
        assert!(
            text.lines()
                .any(|l| l == "herald_request_duration_seconds_bucket{le=\"0.0025\"} 0"),
            "{text}"
        );
        let five_ms = format!(
            "herald_request_duration_seconds_bucket{{le=\"0.005\"}} {}",
            UPKEEP_EVERY + 3
        );
        assert!(text.lines().any(|l| l == five_ms), "{text}");
    }

    #[test]
    fn counters_never_go_backwards() {
        let metrics = Metrics::new();
        let mut later = sample();
        later.stats.events_delivered = 9;
        metrics.render(&later);
        let text = metrics.render(&sample());
        assert!(
            text.lines().any(|l| l == "herald_events_delivered_total 9"),
            "{text}"
        );
    }
}
