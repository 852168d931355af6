//! What a soak prints: one line per report interval (broker RSS and CPU,
//! open connections, deliveries, loss, requests, churn, errors, latency),
//! and the summary with its verdict; both also as JSON.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::report::grouped;

/// One report line's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IntervalReport {
    /// Seconds since the load started.
    pub elapsed_secs: f64,
    /// The broker's resident memory (`VmRSS`), KiB.
    pub rss_kib: Option<u64>,
    /// Its anonymous part (`RssAnon`: heap and stacks), KiB; the rest is
    /// mapped files, mostly the broker's own code.
    pub anon_kib: Option<u64>,
    /// The broker's CPU use over the interval, % of one core.
    pub server_cpu_percent: Option<f64>,
    /// The load generator's (this process's) CPU use over the interval, %
    /// of one core: near 100, the generator, not the broker, is the limit.
    pub client_cpu_percent: Option<f64>,
    /// Connections open on the broker (`herald_connections`).
    pub connections: Option<u64>,
    /// Events published so far.
    pub sent: u64,
    /// Events received so far.
    pub delivered: u64,
    /// Events received per second over the interval.
    pub delivered_per_sec: f64,
    /// Deliveries lost so far.
    pub lost: u64,
    /// Requests sent so far.
    pub requests: u64,
    /// Requests answered so far.
    pub replies: u64,
    /// Churn clients that came and went so far.
    pub churned: u64,
    /// Errors so far.
    pub errors: u64,
    /// The interval's 99th percentile event latency, µs.
    pub p99_us: Option<u64>,
}

/// The header of the report lines.
pub fn header() -> String {
    format!(
        "{:>7}  {:>7}  {:>8}  {:>4}  {:>4}  {:>5}  {:>13}  {:>9}  {:>5}  {:>11}  {:>8}  {:>6}  {:>7}",
        "time",
        "rss MiB",
        "anon MiB",
        "cpu%",
        "gen%",
        "conns",
        "deliveries",
        "deliv/s",
        "loss",
        "replies",
        "churned",
        "errors",
        "p99 ms"
    )
}

/// One report line, aligned with [`header`].
pub fn line(report: &IntervalReport) -> String {
    format!(
        "{:>7}  {:>7}  {:>8}  {:>4}  {:>4}  {:>5}  {:>13}  {:>9}  {:>5}  {:>11}  {:>8}  {:>6}  {:>7}",
        clock_time(Duration::from_secs_f64(report.elapsed_secs)),
        opt(report.rss_kib.map(mib)),
        opt(report.anon_kib.map(mib)),
        opt(report.server_cpu_percent.map(|p| format!("{p:.0}"))),
        opt(report.client_cpu_percent.map(|p| format!("{p:.0}"))),
        opt(report.connections.map(|c| grouped(c as f64))),
        grouped(report.delivered as f64),
        grouped(report.delivered_per_sec),
        grouped(report.lost as f64),
        grouped(report.replies as f64),
        grouped(report.churned as f64),
        grouped(report.errors as f64),
        opt(report.p99_us.map(|us| format!("{:.2}", us as f64 / 1000.0))),
    )
}

fn opt(cell: Option<String>) -> String {
    cell.unwrap_or_else(|| "-".to_owned())
}

/// KiB as MiB with one decimal.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// A duration as `12m05s` (or `4.2s` under a minute).
pub fn clock_time(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        return format!("{secs:.1}s");
    }
    let whole = secs.round() as u64;
    format!("{}m{:02}s", whole / 60, whole % 60)
}

/// How the broker's memory settled once the clients left.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Settled {
    /// Connections open on the broker when the wait ended.
    pub connections: Option<u64>,
    /// The last RSS sample, KiB.
    pub rss_kib: Option<u64>,
    /// Its anonymous part (`RssAnon`), KiB.
    pub anon_kib: Option<u64>,
    /// Seconds from the end of the load to that sample.
    pub after_secs: f64,
    /// True when RSS stopped moving (within 1% for 3 s) before the
    /// settle timeout.
    pub stable: bool,
}

/// What the broker's own counters say happened during the soak (the
/// difference between the first and last scrape of `/metrics`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BrokerCounts {
    /// Sessions closed, by close reason.
    pub closed_by_reason: BTreeMap<String, u64>,
    /// Events dropped for slow consumers (`drop` policy).
    pub events_dropped: u64,
    /// Requests that timed out.
    pub request_timeouts: u64,
    /// Frames the broker refused with an `err`.
    pub frames_refused: u64,
}

/// The whole soak: totals, memory, the broker's counters and the verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SoakSummary {
    /// The endpoint measured.
    pub url: String,
    /// The broker's process, when local.
    pub server_pid: Option<u32>,
    /// The mix, in words.
    pub mix: String,
    /// Seconds the load ran.
    pub duration_secs: f64,
    /// Every report line.
    pub reports: Vec<IntervalReport>,
    /// Events published.
    pub sent: u64,
    /// Events received.
    pub delivered: u64,
    /// Deliveries lost.
    pub lost: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests answered as expected.
    pub replies: u64,
    /// Churn clients that came and went.
    pub churned: u64,
    /// Errors.
    pub errors: u64,
    /// Each distinct error and how often it happened.
    pub error_kinds: BTreeMap<String, u64>,
    /// Event latency percentiles over the whole run, µs.
    pub p50_us: Option<u64>,
    /// 99th percentile.
    pub p99_us: Option<u64>,
    /// 99.9th percentile.
    pub p999_us: Option<u64>,
    /// Request round trip percentiles, µs.
    pub request_p50_us: Option<u64>,
    /// 99th percentile.
    pub request_p99_us: Option<u64>,
    /// Broker RSS at the first report, KiB.
    pub rss_first_kib: Option<u64>,
    /// Broker RSS at the last report (the end of the load), KiB.
    pub rss_last_kib: Option<u64>,
    /// After the clients left.
    pub settled: Settled,
    /// From `/metrics`, when it was readable.
    pub broker: Option<BrokerCounts>,
    /// Why the soak failed; empty when it passed.
    pub failures: Vec<String>,
}

impl SoakSummary {
    /// True when nothing was lost and nothing went wrong.
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// The change of RSS from the first report to the last, in percent.
    pub fn rss_change_percent(&self) -> Option<f64> {
        let first = self.rss_first_kib.filter(|f| *f > 0)? as f64;
        let last = self.rss_last_kib? as f64;
        Some((last - first) * 100.0 / first)
    }

    /// Works out [`SoakSummary::failures`] from the figures: any loss, any
    /// error, any close the broker made itself, any dropped event, request
    /// timeout or refused frame, connections left open.
    pub fn judge(&mut self, steady_baseline: Option<u64>) {
        let mut failures = Vec::new();
        if self.lost > 0 {
            failures.push(format!("{} deliveries lost", grouped(self.lost as f64)));
        }
        if self.errors > 0 {
            failures.push(format!("{} errors", grouped(self.errors as f64)));
        }
        if let Some(broker) = &self.broker {
            for (reason, n) in &broker.closed_by_reason {
                if reason != "client_closed" && *n > 0 {
                    failures.push(format!("the broker closed {n} connections as {reason}"));
                }
            }
            for (what, n) in [
                (
                    "events dropped (herald_events_dropped_total)",
                    broker.events_dropped,
                ),
                (
                    "request timeouts (herald_request_timeouts_total)",
                    broker.request_timeouts,
                ),
                (
                    "frames refused (herald_frames_refused_total)",
                    broker.frames_refused,
                ),
            ] {
                if n > 0 {
                    failures.push(format!("{n} {what}"));
                }
            }
        }
        if let (Some(baseline), Some(now)) = (steady_baseline, self.settled.connections)
            && now > baseline
        {
            failures.push(format!(
                "{} connections still open after the clients left (there were {baseline} \
                 before the soak)",
                now
            ));
        }
        self.failures = failures;
    }

    /// The summary as text, ending with `PASS` or `FAIL` and the reasons.
    pub fn render(&self) -> String {
        let secs = self.duration_secs.max(f64::MIN_POSITIVE);
        let n = |value: u64| grouped(value as f64);
        let ms = |us: Option<u64>| opt(us.map(|us| format!("{:.2}", us as f64 / 1000.0)));
        let rss = |kib: Option<u64>| opt(kib.map(|k| format!("{} MiB", mib(k))));
        let change = opt(self.rss_change_percent().map(|p| format!("{p:+.1}%")));
        let settled = if self.settled.stable {
            "settled"
        } else {
            "still moving"
        };
        let mut lines = vec![
            format!(
                "soak summary: {} for {} ({})",
                self.url,
                clock_time(Duration::from_secs_f64(self.duration_secs)),
                self.mix
            ),
            format!(
                "  events: {} sent, {} delivered ({}/s), {} lost",
                n(self.sent),
                n(self.delivered),
                grouped(self.delivered as f64 / secs),
                n(self.lost)
            ),
            format!(
                "  requests: {} sent, {} answered; churn: {} clients came and went",
                n(self.requests),
                n(self.replies),
                n(self.churned)
            ),
            format!(
                "  latency ms: events p50 {} p99 {} p99.9 {}; requests p50 {} p99 {}",
                ms(self.p50_us),
                ms(self.p99_us),
                ms(self.p999_us),
                ms(self.request_p50_us),
                ms(self.request_p99_us)
            ),
            format!(
                "  broker RSS: {} at the first report, {} at the end ({change}), {} after the \
                 clients left ({} of it anonymous; {} later, {settled})",
                rss(self.rss_first_kib),
                rss(self.rss_last_kib),
                rss(self.settled.rss_kib),
                rss(self.settled.anon_kib),
                clock_time(Duration::from_secs_f64(self.settled.after_secs)),
            ),
        ];
        lines.push(match &self.broker {
            Some(broker) => {
                let closes: Vec<String> = broker
                    .closed_by_reason
                    .iter()
                    .map(|(reason, count)| format!("{reason} {}", n(*count)))
                    .collect();
                format!(
                    "  broker counters: closes [{}], events dropped {}, request timeouts {}, \
                     frames refused {}",
                    closes.join(", "),
                    broker.events_dropped,
                    broker.request_timeouts,
                    broker.frames_refused
                )
            }
            None => "  broker counters: /metrics not read".to_owned(),
        });
        if self.server_pid.is_none() {
            lines.push(
                "  (memory and CPU need the broker's --server-pid, or a broker listening on \
                 this machine)"
                    .to_owned(),
            );
        }
        for (error, count) in &self.error_kinds {
            lines.push(format!("  error x{count}: {error}"));
        }
        lines.push(if self.passed() {
            "PASS: no loss, no errors".to_owned()
        } else {
            format!("FAIL: {}", self.failures.join("; "))
        });
        lines.push(String::new());
        lines.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> IntervalReport {
        IntervalReport {
            elapsed_secs: 605.0,
            rss_kib: Some(15_360),
            anon_kib: Some(9_216),
            server_cpu_percent: Some(42.4),
            client_cpu_percent: Some(57.0),
            connections: Some(78),
            sent: 1_000,
            delivered: 12_345_678,
            delivered_per_sec: 20_576.1,
            lost: 0,
            requests: 10,
            replies: 10,
            churned: 300,
            errors: 0,
            p99_us: Some(1_234),
        }
    }

    fn summary() -> SoakSummary {
        SoakSummary {
            url: "ws://127.0.0.1:1/v1/ws".to_owned(),
            server_pid: Some(7),
            mix: "fanout".to_owned(),
            duration_secs: 60.0,
            reports: vec![report()],
            sent: 1_000,
            delivered: 50_000,
            lost: 0,
            requests: 10,
            replies: 10,
            churned: 3,
            errors: 0,
            error_kinds: BTreeMap::new(),
            p50_us: Some(100),
            p99_us: Some(900),
            p999_us: Some(2_000),
            request_p50_us: Some(200),
            request_p99_us: Some(800),
            rss_first_kib: Some(10_000),
            rss_last_kib: Some(10_400),
            settled: Settled {
                connections: Some(0),
                rss_kib: Some(9_000),
                anon_kib: Some(4_000),
                after_secs: 3.5,
                stable: true,
            },
            broker: Some(BrokerCounts {
                closed_by_reason: BTreeMap::from([("client_closed".to_owned(), 90)]),
                ..BrokerCounts::default()
            }),
            failures: Vec::new(),
        }
    }

    #[test]
    fn lines_line_up_with_the_header() {
        let line = line(&report());
        assert_eq!(line.chars().count(), header().chars().count(), "{line}");
        for cell in [
            "10m05s",
            "15.0",
            "42",
            "57",
            "78",
            "12,345,678",
            "20,576",
            "1.23",
        ] {
            assert!(line.contains(cell), "{cell} missing in {line}");
        }
        assert_eq!(clock_time(Duration::from_millis(4_200)), "4.2s");
        assert_eq!(clock_time(Duration::from_secs(1800)), "30m00s");
    }

    #[test]
    fn a_clean_run_passes() {
        let mut summary = summary();
        summary.judge(Some(0));
        assert!(summary.passed(), "{:?}", summary.failures);
        let text = summary.render();
        assert!(text.contains("PASS"), "{text}");
        assert!(text.contains("(+4.0%)"), "{text}");
        assert!(text.contains("8.8 MiB after the clients left"), "{text}");
        let json = serde_json::to_value(&summary).expect("serialisable");
        assert_eq!(json["settled"]["rss_kib"], 9_000);
        assert_eq!(json["reports"][0]["connections"], 78);
    }

    #[test]
    fn loss_errors_and_broker_closes_fail() {
        let mut summary = summary();
        summary.lost = 3;
        summary.errors = 2;
        summary
            .error_kinds
            .insert("requester: request failed with timeout: t".to_owned(), 2);
        if let Some(broker) = summary.broker.as_mut() {
            broker
                .closed_by_reason
                .insert("slow_consumer".to_owned(), 1);
            broker.events_dropped = 4;
        }
        summary.settled.connections = Some(5);
        summary.judge(Some(0));
        let text = summary.render();
        for expected in [
            "3 deliveries lost",
            "2 errors",
            "closed 1 connections as slow_consumer",
            "4 events dropped",
            "5 connections still open",
            "error x2: requester: request failed with timeout",
        ] {
            assert!(text.contains(expected), "{expected} missing in:\n{text}");
        }
        assert!(text.lines().last().is_some_and(|l| l.starts_with("FAIL")));
    }
}
