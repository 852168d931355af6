//! What a run measured, and the arithmetic that turns per-connection
//! tallies into figures: deliveries, loss, rates and percentiles.

use std::time::{Duration, Instant};

use crate::latency::LatencyHistogram;

/// At most this many distinct error messages are kept per run.
pub const MAX_ERRORS: usize = 5;

/// What one publisher did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherTally {
    /// Messages it handed to its connection.
    pub sent: u64,
    /// Why it stopped early, if it did.
    pub error: Option<String>,
}

/// What one subscriber received.
#[derive(Debug, Clone, Default)]
pub struct SubscriberTally {
    /// The publisher (index) whose event it subscribed to.
    pub publisher: usize,
    /// Messages received.
    pub received: u64,
    /// Their end-to-end latencies.
    pub latency: LatencyHistogram,
    /// When the last one arrived.
    pub last_receipt: Option<Instant>,
    /// Why it stopped early (connection lost, ...), if it did.
    pub error: Option<String>,
}

/// The result of a message-flow workload.
#[derive(Debug, Clone)]
pub struct FlowOutcome {
    /// Messages published, over all publishers.
    pub sent: u64,
    /// Messages received, over all subscribers.
    pub delivered: u64,
    /// Deliveries that were due (a message sent to an event, times the
    /// event's subscribers) and never happened.
    pub loss: u64,
    /// From the first send to the last receipt.
    pub elapsed: Duration,
    /// Every delivery's end-to-end latency.
    pub latency: LatencyHistogram,
    /// CPU time (user + system) the server used meanwhile, when known.
    pub server_cpu: Option<Duration>,
    /// `server_cpu` per process, when the server is several processes (a
    /// cluster); empty otherwise.
    pub server_cpu_by_process: Vec<(String, Duration)>,
    /// CPU time the load generator (this process) used meanwhile.
    pub client_cpu: Option<Duration>,
    /// Why publishers or subscribers stopped early, if any did.
    pub errors: Vec<String>,
}

impl FlowOutcome {
    /// Sums up the tallies of a run that started sending at `started`.
    pub fn from_tallies(
        publishers: &[PublisherTally],
        subscribers: &[SubscriberTally],
        started: Instant,
        server_cpu: Option<Duration>,
    ) -> FlowOutcome {
        let sent = publishers.iter().map(|p| p.sent).sum();
        let delivered = subscribers.iter().map(|s| s.received).sum();
        let loss = subscribers
            .iter()
            .map(|s| {
                let due = publishers.get(s.publisher).map_or(0, |p| p.sent);
                due.saturating_sub(s.received)
            })
            .sum();
        let elapsed = subscribers
            .iter()
            .filter_map(|s| s.last_receipt)
            .max()
            .map_or(Duration::ZERO, |last| {
                last.saturating_duration_since(started)
            });
        let mut latency = LatencyHistogram::new();
        for subscriber in subscribers {
            latency.merge(&subscriber.latency);
        }
        let errors = distinct_errors(
            publishers
                .iter()
                .filter_map(|p| p.error.as_deref())
                .chain(subscribers.iter().filter_map(|s| s.error.as_deref())),
        );
        FlowOutcome {
            sent,
            delivered,
            loss,
            elapsed,
            latency,
            server_cpu,
            server_cpu_by_process: Vec::new(),
            client_cpu: None,
            errors,
        }
    }

    /// Delivered messages per second, first send to last receipt.
    pub fn msgs_per_sec(&self) -> Option<f64> {
        per_second(self.delivered, self.elapsed)
    }

    /// Delivered messages per second of server CPU time.
    pub fn msgs_per_server_cpu_sec(&self) -> Option<f64> {
        per_second(self.delivered, self.server_cpu?)
    }
}

/// The result of the `conns` workload.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnsOutcome {
    /// Connections asked for.
    pub requested: usize,
    /// Connections opened and subscribed.
    pub opened: usize,
    /// How long opening them took.
    pub open_time: Duration,
    /// The server's resident memory before, in KiB, when known.
    pub rss_before_kib: Option<u64>,
    /// The server's resident memory with every connection open, in KiB.
    pub rss_after_kib: Option<u64>,
    /// CPU time the server used while they opened.
    pub server_cpu: Option<Duration>,
    /// Why opening stopped early, if it did.
    pub errors: Vec<String>,
}

impl ConnsOutcome {
    /// The server's memory growth per open connection, in KiB.
    pub fn kib_per_conn(&self) -> Option<f64> {
        let before = self.rss_before_kib? as f64;
        let after = self.rss_after_kib? as f64;
        (self.opened > 0).then(|| (after - before) / self.opened as f64)
    }
}

/// `count / elapsed`, when both are non-zero.
pub fn per_second(count: u64, elapsed: Duration) -> Option<f64> {
    let seconds = elapsed.as_secs_f64();
    (count > 0 && seconds > 0.0).then(|| count as f64 / seconds)
}

/// Up to [`MAX_ERRORS`] distinct messages, plus how many more there were.
pub fn distinct_errors<'a>(errors: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    let mut dropped = 0usize;
    for error in errors {
        if kept.iter().any(|k| k == error) {
            continue;
        }
        if kept.len() < MAX_ERRORS {
            kept.push(error.to_owned());
        } else {
            dropped += 1;
        }
    }
    if dropped > 0 {
        kept.push(format!("... and {dropped} other errors"));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscriber(publisher: usize, received: u64, last: Option<Instant>) -> SubscriberTally {
        SubscriberTally {
            publisher,
            received,
            last_receipt: last,
            ..SubscriberTally::default()
        }
    }

    #[test]
    fn loss_is_counted_per_subscriber_against_its_publisher() {
        let start = Instant::now();
        let publishers = [
            PublisherTally {
                sent: 100,
                error: None,
            },
            PublisherTally {
                sent: 40,
                error: Some("stalled".into()),
            },
        ];
        let subscribers = [
            subscriber(0, 100, Some(start + Duration::from_secs(2))),
            subscriber(0, 90, Some(start + Duration::from_secs(1))),
            subscriber(1, 40, Some(start + Duration::from_millis(500))),
        ];
        let outcome = FlowOutcome::from_tallies(
            &publishers,
            &subscribers,
            start,
            Some(Duration::from_millis(500)),
        );
        assert_eq!(outcome.sent, 140);
        assert_eq!(outcome.delivered, 230);
        assert_eq!(outcome.loss, 10, "only the second subscriber missed any");
        assert_eq!(
            outcome.elapsed,
            Duration::from_secs(2),
            "to the last receipt"
        );
        assert_eq!(outcome.msgs_per_sec(), Some(115.0));
        assert_eq!(outcome.msgs_per_server_cpu_sec(), Some(460.0));
        assert_eq!(outcome.errors, vec!["stalled".to_owned()]);
    }

    #[test]
    fn nothing_received_has_no_rates() {
        let start = Instant::now();
        let publishers = [PublisherTally {
            sent: 5,
            error: None,
        }];
        let subscribers = [subscriber(0, 0, None)];
        let outcome = FlowOutcome::from_tallies(&publishers, &subscribers, start, None);
        assert_eq!(outcome.loss, 5);
        assert_eq!(outcome.elapsed, Duration::ZERO);
        assert_eq!(outcome.msgs_per_sec(), None);
        assert_eq!(outcome.msgs_per_server_cpu_sec(), None);
        assert_eq!(outcome.latency.quantile_us(0.5), None);
    }

    #[test]
    fn latencies_of_all_subscribers_are_merged() {
        let start = Instant::now();
        let mut a = subscriber(0, 1, Some(start));
        a.latency.record(Duration::from_micros(10));
        let mut b = subscriber(0, 1, Some(start));
        b.latency.record(Duration::from_micros(30));
        let publishers = [PublisherTally {
            sent: 1,
            error: None,
        }];
        let outcome = FlowOutcome::from_tallies(&publishers, &[a, b], start, None);
        assert_eq!(outcome.latency.count(), 2);
        assert_eq!(outcome.latency.quantile_us(1.0), Some(30));
    }

    #[test]
    fn memory_per_connection() {
        let outcome = ConnsOutcome {
            requested: 1000,
            opened: 1000,
            open_time: Duration::from_secs(1),
            rss_before_kib: Some(10_000),
            rss_after_kib: Some(15_120),
            server_cpu: None,
            errors: vec![],
        };
        assert_eq!(outcome.kib_per_conn(), Some(5.12));
        let unknown = ConnsOutcome {
            rss_before_kib: None,
            ..outcome.clone()
        };
        assert_eq!(unknown.kib_per_conn(), None);
        let none_open = ConnsOutcome {
            opened: 0,
            ..outcome
        };
        assert_eq!(none_open.kib_per_conn(), None);
    }

    #[test]
    fn errors_are_deduplicated_and_bounded() {
        let many: Vec<String> = (0..9).map(|i| format!("e{i}")).collect();
        let input = ["e0", "e0"]
            .into_iter()
            .chain(many.iter().map(String::as_str));
        let errors = distinct_errors(input);
        assert_eq!(errors.len(), MAX_ERRORS + 1);
        assert_eq!(errors[0], "e0");
        assert_eq!(errors[MAX_ERRORS], "... and 4 other errors");
    }
}
