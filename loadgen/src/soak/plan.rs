//! The parameters of one soak run, their defaults and their validation.
//!
//! The default rates are half of the peak this mix sustained on the
//! reference machine (a shared 2-CPU box; see BENCHMARKS.md, "Soak"): about
//! 180,000 deliveries per second of the ~360,000 it held. `--load 2` asks
//! for about that peak, `--load 0.1` for a tenth of the default.

use std::time::Duration;

use crate::BenchError;
use crate::workload::MAX_PAYLOAD_BYTES;

/// How long a soak runs unless told otherwise.
pub const DEFAULT_DURATION: Duration = Duration::from_secs(30 * 60);
/// How often a soak reports unless told otherwise.
pub const DEFAULT_REPORT_EVERY: Duration = Duration::from_secs(60);
/// Subscribers of the fanout event.
pub const DEFAULT_FANOUT_SUBSCRIBERS: usize = 50;
/// Emits per second to the fanout event.
pub const DEFAULT_FANOUT_RATE: u64 = 3_000;
/// Publisher → subscriber pairs.
pub const DEFAULT_PAIRS: usize = 10;
/// Messages per second of each pair.
pub const DEFAULT_PAIRS_RATE: u64 = 3_000;
/// Responder connections.
pub const DEFAULT_RESPONDERS: usize = 2;
/// Requester connections.
pub const DEFAULT_REQUESTERS: usize = 4;
/// Requests per second of each requester.
pub const DEFAULT_REQUEST_RATE: u64 = 750;
/// How long the broker may take to answer a request (its `tmo`).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests one requester keeps in flight at most.
pub const MAX_REQUESTS_IN_FLIGHT: usize = 128;
/// Churn clients started per second.
pub const DEFAULT_CHURN_RATE: u64 = 60;
/// Events each churn client receives before it leaves.
pub const DEFAULT_CHURN_EVENTS: u64 = 5;
/// Emits per second to the churn clients' event.
pub const DEFAULT_CHURN_EVENT_RATE: u64 = 600;
/// Churn clients alive at once at most; more means the broker (or the
/// load generator) has fallen far behind, which is reported as an error.
pub const MAX_CHURN_ALIVE: usize = 2_000;
/// How long receipts, replies and a publisher's window are waited for
/// (also at the end) unless told otherwise.
pub const DEFAULT_SOAK_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the broker's memory is watched after the clients left (it is
/// called settled no sooner than the request timeout after the load).
pub const DEFAULT_SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// The smallest soak payload: the send time (8 bytes) and a sequence
/// number (8 bytes).
pub const MIN_SOAK_PAYLOAD_BYTES: usize = 16;

/// What one soak run does. A rate of 0 turns that part of the mix off.
#[derive(Debug, Clone, PartialEq)]
pub struct SoakPlan {
    /// How long the load runs (the drain and the settling come after).
    pub duration: Duration,
    /// How often a report line is printed.
    pub report_every: Duration,
    /// Subscribers of the one fanout event.
    pub fanout_subscribers: usize,
    /// Emits per second to the fanout event.
    pub fanout_rate: u64,
    /// Publisher → subscriber pairs, each on its own event.
    pub pairs: usize,
    /// Messages per second of each pair.
    pub pairs_rate: u64,
    /// Responder connections sharing the request event.
    pub responders: usize,
    /// Requester connections.
    pub requesters: usize,
    /// Requests per second of each requester.
    pub request_rate: u64,
    /// The `tmo` of every request.
    pub request_timeout: Duration,
    /// Churn clients started per second.
    pub churn_rate: u64,
    /// Events each churn client receives before leaving.
    pub churn_events: u64,
    /// Emits per second to the churn event.
    pub churn_event_rate: u64,
    /// Payload bytes of every event and request.
    pub payload_bytes: usize,
    /// Messages a fanout or pairs publisher may have in flight.
    pub window: u64,
    /// How long receipts, replies and the window are waited for.
    pub drain_timeout: Duration,
    /// How long the broker's memory is watched after the clients left.
    pub settle_timeout: Duration,
}

impl Default for SoakPlan {
    fn default() -> SoakPlan {
        SoakPlan {
            duration: DEFAULT_DURATION,
            report_every: DEFAULT_REPORT_EVERY,
            fanout_subscribers: DEFAULT_FANOUT_SUBSCRIBERS,
            fanout_rate: DEFAULT_FANOUT_RATE,
            pairs: DEFAULT_PAIRS,
            pairs_rate: DEFAULT_PAIRS_RATE,
            responders: DEFAULT_RESPONDERS,
            requesters: DEFAULT_REQUESTERS,
            request_rate: DEFAULT_REQUEST_RATE,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            churn_rate: DEFAULT_CHURN_RATE,
            churn_events: DEFAULT_CHURN_EVENTS,
            churn_event_rate: DEFAULT_CHURN_EVENT_RATE,
            payload_bytes: crate::workload::DEFAULT_PAYLOAD_BYTES,
            window: crate::workload::DEFAULT_WINDOW,
            drain_timeout: DEFAULT_SOAK_DRAIN_TIMEOUT,
            settle_timeout: DEFAULT_SETTLE_TIMEOUT,
        }
    }
}

impl SoakPlan {
    /// Multiplies every rate by `load` (a rate that is on stays at least
    /// 1 per second).
    pub fn with_load(mut self, load: f64) -> Result<SoakPlan, BenchError> {
        if !load.is_finite() || load <= 0.0 || load > 1000.0 {
            return Err(BenchError::invalid(
                "--load",
                format!("must be a number above 0 and at most 1000, got {load}"),
            ));
        }
        let scale = |rate: u64| match rate {
            0 => 0,
            rate => ((rate as f64 * load).round() as u64).max(1),
        };
        self.fanout_rate = scale(self.fanout_rate);
        self.pairs_rate = scale(self.pairs_rate);
        self.request_rate = scale(self.request_rate);
        self.churn_rate = scale(self.churn_rate);
        self.churn_event_rate = scale(self.churn_event_rate);
        Ok(self)
    }

    /// Checks that the plan can run; errors name the option at fault.
    pub fn validate(&self) -> Result<(), BenchError> {
        if self.duration.is_zero() {
            return Err(BenchError::invalid("--duration", "must be longer than 0"));
        }
        if self.report_every.is_zero() {
            return Err(BenchError::invalid(
                "--report-every",
                "must be longer than 0",
            ));
        }
        for (option, value) in [
            ("--drain-timeout", self.drain_timeout),
            ("--request-timeout", self.request_timeout),
            ("--settle-timeout", self.settle_timeout),
        ] {
            if value.is_zero() {
                return Err(BenchError::invalid(option, "must be longer than 0"));
            }
        }
        if !(MIN_SOAK_PAYLOAD_BYTES..=MAX_PAYLOAD_BYTES).contains(&self.payload_bytes) {
            return Err(BenchError::invalid(
                "--payload",
                format!(
                    "a soak needs between {MIN_SOAK_PAYLOAD_BYTES} (send time and sequence \
                     number) and {MAX_PAYLOAD_BYTES} bytes, got {}",
                    self.payload_bytes
                ),
            ));
        }
        if self.window == 0 {
            return Err(BenchError::invalid(
                "--window",
                "a soak needs a window of at least 1 (it bounds what the broker queues)",
            ));
        }
        let counts = [
            (
                "--fanout-subscribers",
                self.fanout_subscribers,
                self.fanout_rate,
            ),
            ("--pairs", self.pairs, self.pairs_rate),
            ("--requesters", self.requesters, self.request_rate),
        ];
        for (option, count, rate) in counts {
            if rate > 0 && count == 0 {
                return Err(BenchError::invalid(
                    option,
                    "must be at least 1 while its rate is above 0 (set the rate to 0 to turn \
                     this part off)",
                ));
            }
            if count > 10_000 {
                return Err(BenchError::invalid(
                    option,
                    format!("at most 10,000, got {count}"),
                ));
            }
        }
        if self.request_rate > 0 && self.responders == 0 {
            return Err(BenchError::invalid(
                "--responders",
                "must be at least 1 while requests are made (--request-rate 0 turns them off)",
            ));
        }
        if self.responders > 10_000 {
            return Err(BenchError::invalid(
                "--responders",
                format!("at most 10,000, got {}", self.responders),
            ));
        }
        if self.churn_rate > 0 && (self.churn_events == 0 || self.churn_event_rate == 0) {
            return Err(BenchError::invalid(
                "--churn-events",
                "churn clients need at least 1 event each, and --churn-event-rate above 0",
            ));
        }
        if self.request_timeout > Duration::from_secs(3600) {
            return Err(BenchError::invalid("--request-timeout", "at most 1 hour"));
        }
        let rates = [
            self.fanout_rate,
            self.pairs_rate,
            self.request_rate,
            self.churn_rate,
        ];
        if rates.iter().all(|rate| *rate == 0) {
            return Err(BenchError::invalid(
                "--fanout-rate",
                "every part of the mix is turned off (all rates are 0)",
            ));
        }
        Ok(())
    }

    /// Connections the load keeps open (churn clients not counted).
    pub fn steady_connections(&self) -> usize {
        let on = |rate: u64, n: usize| if rate > 0 { n } else { 0 };
        on(self.fanout_rate, 1 + self.fanout_subscribers)
            + on(self.pairs_rate, 2 * self.pairs)
            + on(self.request_rate, self.requesters + self.responders)
            + on(self.churn_rate, 1)
    }

    /// One line describing the mix.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.fanout_rate > 0 {
            parts.push(format!(
                "fanout 1 -> {} at {}/s",
                self.fanout_subscribers, self.fanout_rate
            ));
        }
        if self.pairs_rate > 0 {
            parts.push(format!(
                "{} pairs at {}/s each",
                self.pairs, self.pairs_rate
            ));
        }
        if self.request_rate > 0 {
            parts.push(format!(
                "{} requesters at {}/s each to {} responders",
                self.requesters, self.request_rate, self.responders
            ));
        }
        if self.churn_rate > 0 {
            parts.push(format!(
                "churn {} clients/s, {} events each (event at {}/s)",
                self.churn_rate, self.churn_events, self.churn_event_rate
            ));
        }
        format!("{}; {}-byte payloads", parts.join("; "), self.payload_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan_is_valid() {
        let plan = SoakPlan::default();
        plan.validate().expect("valid");
        assert_eq!(plan.steady_connections(), 51 + 20 + 6 + 1);
        assert!(plan.describe().contains("fanout 1 -> 50"));
    }

    #[test]
    fn load_scales_every_rate_and_keeps_zero_off() {
        let plan = SoakPlan {
            churn_rate: 0,
            ..SoakPlan::default()
        }
        .with_load(0.5)
        .expect("valid load");
        assert_eq!(plan.fanout_rate, DEFAULT_FANOUT_RATE / 2);
        assert_eq!(plan.request_rate, DEFAULT_REQUEST_RATE / 2);
        assert_eq!(plan.churn_rate, 0, "off stays off");
        let tiny = SoakPlan::default().with_load(0.0001).expect("valid load");
        assert_eq!(tiny.churn_rate, 1, "on stays on");
        for bad in [0.0, -1.0, f64::NAN, 5000.0] {
            let error = SoakPlan::default().with_load(bad).expect_err("refused");
            assert!(error.to_string().contains("--load"), "{error}");
        }
    }

    #[test]
    fn bad_plans_name_the_option() {
        let cases = [
            (
                SoakPlan {
                    payload_bytes: 8,
                    ..SoakPlan::default()
                },
                "--payload",
            ),
            (
                SoakPlan {
                    report_every: Duration::ZERO,
                    ..SoakPlan::default()
                },
                "--report-every",
            ),
            (
                SoakPlan {
                    pairs: 0,
                    ..SoakPlan::default()
                },
                "--pairs",
            ),
            (
                SoakPlan {
                    responders: 0,
                    ..SoakPlan::default()
                },
                "--responders",
            ),
            (
                SoakPlan {
                    window: 0,
                    ..SoakPlan::default()
                },
                "--window",
            ),
            (
                SoakPlan {
                    churn_events: 0,
                    ..SoakPlan::default()
                },
                "--churn-events",
            ),
            (
                SoakPlan {
                    fanout_rate: 0,
                    pairs_rate: 0,
                    request_rate: 0,
                    churn_rate: 0,
                    ..SoakPlan::default()
                },
                "all rates are 0",
            ),
        ];
        for (plan, text) in cases {
            let error = plan.validate().expect_err("refused");
            assert!(error.to_string().contains(text), "{text}: {error}");
        }
        // A part that is off needs no connections.
        SoakPlan {
            pairs: 0,
            pairs_rate: 0,
            responders: 0,
            request_rate: 0,
            ..SoakPlan::default()
        }
        .validate()
        .expect("valid");
    }
}
