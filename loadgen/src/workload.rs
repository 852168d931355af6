//! The four workloads and the resolved, validated parameters of one run.
//!
//! The defaults are those of the shared benchmark definition: 128-byte
//! payloads; `fanout` 1 publisher to 100 subscribers, 100,000 messages;
//! `pairs` 10 publishers each to its own event with one subscriber, 100,000
//! messages each; `latency` 1 publisher at 10,000 msgs/s for 10 s to 10
//! subscribers; `conns` 10,000 idle subscribed connections.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// One of the benchmark workloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// 1 publisher, many subscribers on one event, as fast as accepted.
    Fanout,
    /// Several publishers, each to its own event with one subscriber.
    Pairs,
    /// 1 publisher at a fixed rate to a few subscribers: latency percentiles.
    Latency,
    /// Many idle subscribed connections: memory per connection, time to open.
    Conns,
    /// A mixed load held for a long time (Herald only): broker memory,
    /// connections, loss and errors over time.
    Soak,
}

impl Workload {
    /// Every workload compared with Herald's peers, in the order results
    /// are shown ([`Workload::Soak`] is Herald's alone).
    pub const ALL: [Workload; 4] = [
        Workload::Fanout,
        Workload::Pairs,
        Workload::Latency,
        Workload::Conns,
    ];

    /// The workload's name, as on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Fanout => "fanout",
            Workload::Pairs => "pairs",
            Workload::Latency => "latency",
            Workload::Conns => "conns",
            Workload::Soak => "soak",
        }
    }

    /// Parses a workload name (as [`Workload::name`] writes it).
    pub fn from_name(name: &str) -> Option<Workload> {
        Workload::ALL
            .into_iter()
            .chain([Workload::Soak])
            .find(|w| w.name() == name)
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The payload size of every workload unless told otherwise, in bytes.
pub const DEFAULT_PAYLOAD_BYTES: usize = 128;
/// The smallest payload: its first 8 bytes carry the send time.
pub const MIN_PAYLOAD_BYTES: usize = 8;
/// The largest payload the load generator will build.
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;
/// Receipts stop being awaited this long after the last one arrived.
pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Messages a publisher may have in flight (sent, not yet received by its
/// subscribers) unless told otherwise.
pub const DEFAULT_WINDOW: u64 = 1000;
/// Messages a publisher feeds before it flushes, unless told otherwise.
pub const DEFAULT_BATCH: usize = 64;
/// Connections opened at the same time by the `conns` workload.
pub const DEFAULT_OPEN_CONCURRENCY: usize = 128;
/// The scale factor `--quick` stands for.
pub const QUICK_SCALE: f64 = 0.05;

/// Parameters of a message-flow workload (`fanout`, `pairs`, `latency`).
///
/// Each publisher publishes to its own event, which `subscribers` connections
/// subscribe to.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowPlan {
    /// Publishers, each with its own event.
    pub publishers: usize,
    /// Subscribers of each publisher's event.
    pub subscribers: usize,
    /// Messages each publisher sends.
    pub messages: u64,
    /// Payload size in bytes (at least 8).
    pub payload_bytes: usize,
    /// Each publisher's fixed rate in messages per second; `None` sends as
    /// fast as the target accepts.
    pub rate: Option<u64>,
    /// Publishers stop after this long even if they have messages left.
    pub max_duration: Option<Duration>,
    /// Messages a publisher may have in flight; `None` is unlimited.
    pub window: Option<u64>,
    /// Messages fed before each flush.
    pub batch: usize,
    /// Receipts stop being awaited this long after the last one.
    pub drain_timeout: Duration,
}

impl FlowPlan {
    /// The deliveries a run expects if every message is sent and received.
    pub fn expected_deliveries(&self) -> u64 {
        self.messages
            .saturating_mul(self.publishers as u64)
            .saturating_mul(self.subscribers as u64)
    }
}

/// Parameters of the `conns` workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnsPlan {
    /// Idle subscribed connections to open, each subscribed to its own event.
    pub conns: usize,
    /// Connections opened at the same time.
    pub concurrency: usize,
}

/// What one run does.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    /// A message-flow workload.
    Flow(FlowPlan),
    /// The idle-connections workload.
    Conns(ConnsPlan),
}

/// Options that override a workload's defaults; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    /// Subscribers per publisher.
    pub subscribers: Option<usize>,
    /// Publishers.
    pub publishers: Option<usize>,
    /// Messages per publisher.
    pub messages: Option<u64>,
    /// Payload size in bytes.
    pub payload_bytes: Option<usize>,
    /// Rate per publisher, messages per second.
    pub rate: Option<u64>,
    /// How long publishers publish at most (with a rate and no message
    /// count, also how many messages they send).
    pub duration: Option<Duration>,
    /// Connections for `conns`.
    pub conns: Option<usize>,
    /// In-flight window; `Some(0)` means unlimited.
    pub window: Option<u64>,
    /// Messages per flush.
    pub batch: Option<usize>,
    /// Multiplies message counts, durations and connection counts.
    pub scale: Option<f64>,
    /// Drain timeout.
    pub drain_timeout: Option<Duration>,
}

impl Workload {
    /// The plan of this workload with `overrides` applied, validated.
    pub fn plan(self, overrides: &Overrides) -> Result<Plan, crate::BenchError> {
        use crate::BenchError;
        if self == Workload::Soak {
            return Err(BenchError::invalid(
                "workload",
                "soak is Herald's own long-running workload, not one of the compared ones: run \
                 it with `herald bench soak`",
            ));
        }
        let scale = overrides.scale.unwrap_or(1.0);
        if !scale.is_finite() || scale <= 0.0 || scale > 1000.0 {
            return Err(BenchError::invalid(
                "--scale",
                format!("must be a number above 0 and at most 1000, got {scale}"),
            ));
        }
        if self == Workload::Conns {
            let conns = scaled(overrides.conns.unwrap_or(10_000) as u64, scale);
            let conns = at_least_one("--conns", conns)?;
            if conns > 1_000_000 {
                return Err(BenchError::invalid(
                    "--conns",
                    format!("at most 1,000,000 connections, got {conns}"),
                ));
            }
            return Ok(Plan::Conns(ConnsPlan {
                conns: conns as usize,
                concurrency: DEFAULT_OPEN_CONCURRENCY,
            }));
        }
        let (publishers, subscribers, rate, duration) = match self {
            Workload::Fanout => (1, 100, None, None),
            Workload::Pairs => (10, 1, None, None),
            _ => (1, 10, Some(10_000), Some(Duration::from_secs(10))),
        };
        let publishers = overrides.publishers.unwrap_or(publishers);
        let subscribers = overrides.subscribers.unwrap_or(subscribers);
        at_least_one("--publishers", publishers as u64)?;
        at_least_one("--subscribers", subscribers as u64)?;
        if publishers.saturating_mul(subscribers) > 100_000 {
            return Err(BenchError::invalid(
                "--subscribers",
                format!(
                    "publishers x subscribers must be at most 100,000 connections, got \
                     {publishers} x {subscribers}"
                ),
            ));
        }
        let rate = match overrides.rate {
            Some(0) => {
                return Err(BenchError::invalid(
                    "--rate",
                    "must be at least 1 message per second (leave it out to send as fast as \
                     the target accepts)",
                ));
            }
            Some(rate) => Some(rate),
            None => rate,
        };
        let duration = overrides
            .duration
            .or(duration)
            .map(|d| d.mul_f64(scale))
            .filter(|d| !d.is_zero());
        if overrides.duration.is_some_and(|d| d.is_zero()) {
            return Err(BenchError::invalid("--duration", "must be longer than 0"));
        }
        let (messages, max_duration) = match (overrides.messages, rate, duration) {
            (Some(messages), _, _) => (scaled(messages, scale), duration),
            // A fixed rate for a duration sends rate x duration messages;
            // the count alone bounds the run (the last one is due just
            // before the duration ends, so a time limit would race it).
            (None, Some(rate), Some(duration)) => {
                ((rate as f64 * duration.as_secs_f64()) as u64, None)
            }
            (None, _, _) => (scaled(100_000, scale), duration),
        };
        at_least_one("--messages", messages)?;
        let payload_bytes = overrides.payload_bytes.unwrap_or(DEFAULT_PAYLOAD_BYTES);
        if !(MIN_PAYLOAD_BYTES..=MAX_PAYLOAD_BYTES).contains(&payload_bytes) {
            return Err(BenchError::invalid(
                "--payload",
                format!(
                    "must be between {MIN_PAYLOAD_BYTES} (the send time takes 8 bytes) and \
                     {MAX_PAYLOAD_BYTES} bytes, got {payload_bytes}"
                ),
            ));
        }
        let batch = overrides.batch.unwrap_or(DEFAULT_BATCH);
        at_least_one("--batch", batch as u64)?;
        let window = match overrides.window.unwrap_or(DEFAULT_WINDOW) {
            0 => None,
            window => Some(window),
        };
        let drain_timeout = overrides.drain_timeout.unwrap_or(DEFAULT_DRAIN_TIMEOUT);
        if drain_timeout.is_zero() {
            return Err(BenchError::invalid(
                "--drain-timeout",
                "must be longer than 0",
            ));
        }
        Ok(Plan::Flow(FlowPlan {
            publishers,
            subscribers,
            messages,
            payload_bytes,
            rate,
            max_duration,
            window,
            batch,
            drain_timeout,
        }))
    }
}

fn scaled(count: u64, scale: f64) -> u64 {
    (count as f64 * scale).round() as u64
}

fn at_least_one(option: &'static str, value: u64) -> Result<u64, crate::BenchError> {
    if value == 0 {
        return Err(crate::BenchError::invalid(
            option,
            "must be at least 1 (after --scale / --quick)",
        ));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(workload: Workload, overrides: &Overrides) -> FlowPlan {
        match workload.plan(overrides).expect("the plan should be valid") {
            Plan::Flow(plan) => plan,
            Plan::Conns(plan) => panic!("expected a flow plan, got {plan:?}"),
        }
    }

    #[test]
    fn defaults_follow_the_shared_benchmark_definition() {
        let fanout = flow(Workload::Fanout, &Overrides::default());
        assert_eq!((fanout.publishers, fanout.subscribers), (1, 100));
        assert_eq!(fanout.messages, 100_000);
        assert_eq!(fanout.payload_bytes, 128);
        assert_eq!(fanout.rate, None);
        assert_eq!(fanout.expected_deliveries(), 10_000_000);

        let pairs = flow(Workload::Pairs, &Overrides::default());
        assert_eq!((pairs.publishers, pairs.subscribers), (10, 1));
        assert_eq!(pairs.expected_deliveries(), 1_000_000);

        let latency = flow(Workload::Latency, &Overrides::default());
        assert_eq!((latency.publishers, latency.subscribers), (1, 10));
        assert_eq!(latency.rate, Some(10_000));
        assert_eq!(latency.messages, 100_000);
        assert_eq!(
            latency.max_duration, None,
            "rate x duration messages bound it"
        );

        assert_eq!(
            Workload::Conns.plan(&Overrides::default()).expect("valid"),
            Plan::Conns(ConnsPlan {
                conns: 10_000,
                concurrency: DEFAULT_OPEN_CONCURRENCY
            })
        );
    }

    #[test]
    fn scale_shrinks_counts_and_durations() {
        let quick = Overrides {
            scale: Some(QUICK_SCALE),
            ..Overrides::default()
        };
        assert_eq!(flow(Workload::Fanout, &quick).messages, 5_000);
        let latency = flow(Workload::Latency, &quick);
        assert_eq!(latency.messages, 5_000, "10,000/s for 500 ms");
        let capped = flow(
            Workload::Fanout,
            &Overrides {
                duration: Some(Duration::from_secs(4)),
                ..quick.clone()
            },
        );
        assert_eq!(capped.max_duration, Some(Duration::from_millis(200)));
        assert_eq!(
            Workload::Conns.plan(&quick).expect("valid"),
            Plan::Conns(ConnsPlan {
                conns: 500,
                concurrency: DEFAULT_OPEN_CONCURRENCY
            })
        );
    }

    #[test]
    fn overrides_replace_defaults() {
        let plan = flow(
            Workload::Pairs,
            &Overrides {
                publishers: Some(3),
                messages: Some(7),
                payload_bytes: Some(64),
                window: Some(0),
                rate: Some(50),
                ..Overrides::default()
            },
        );
        assert_eq!(plan.publishers, 3);
        assert_eq!(plan.messages, 7);
        assert_eq!(plan.payload_bytes, 64);
        assert_eq!(plan.window, None, "window 0 means unlimited");
        assert_eq!(plan.rate, Some(50));
    }

    #[test]
    fn bad_values_are_refused_with_the_option_named() {
        let cases = [
            (
                Workload::Fanout,
                Overrides {
                    payload_bytes: Some(4),
                    ..Overrides::default()
                },
                "--payload",
            ),
            (
                Workload::Fanout,
                Overrides {
                    subscribers: Some(0),
                    ..Overrides::default()
                },
                "--subscribers",
            ),
            (
                Workload::Latency,
                Overrides {
                    rate: Some(0),
                    ..Overrides::default()
                },
                "--rate",
            ),
            (
                Workload::Pairs,
                Overrides {
                    scale: Some(f64::NAN),
                    ..Overrides::default()
                },
                "--scale",
            ),
            (
                Workload::Pairs,
                Overrides {
                    messages: Some(1),
                    scale: Some(0.1),
                    ..Overrides::default()
                },
                "--messages",
            ),
            (
                Workload::Fanout,
                Overrides {
                    subscribers: Some(1000),
                    publishers: Some(1000),
                    ..Overrides::default()
                },
                "--subscribers",
            ),
            (
                Workload::Conns,
                Overrides {
                    conns: Some(0),
                    ..Overrides::default()
                },
                "--conns",
            ),
            (
                Workload::Latency,
                Overrides {
                    duration: Some(Duration::ZERO),
                    ..Overrides::default()
                },
                "--duration",
            ),
        ];
        for (workload, overrides, option) in cases {
            let error = workload
                .plan(&overrides)
                .expect_err("the plan should be refused");
            let text = error.to_string();
            assert!(
                text.contains(option),
                "{overrides:?}: the error should name {option}: {text}"
            );
        }
    }

    #[test]
    fn names_round_trip() {
        for workload in Workload::ALL {
            assert_eq!(Workload::from_name(workload.name()), Some(workload));
        }
        assert_eq!(Workload::from_name("soak"), Some(Workload::Soak));
        let error = Workload::Soak
            .plan(&Overrides::default())
            .expect_err("soak has a plan of its own");
        assert!(error.to_string().contains("herald bench soak"), "{error}");
        assert_eq!(Workload::from_name("nope"), None);
    }
}
