//! The `soak` workload: a mixed load held for a long time against one
//! Herald broker, reporting as it goes, judged at the end.
//!
//! The mix ([`plan::SoakPlan`]): a fanout (1 publisher to N subscribers),
//! pairs (each publisher with its own subscriber), requests (requesters to
//! echoing responders) and connection churn (clients that connect,
//! subscribe, receive a few events and leave), all at fixed rates.
//!
//! 1. Every steady connection is opened and subscribed ([`run_soak`]
//!    fails if one cannot be: nothing has run yet).
//! 2. The load runs for the plan's duration; every `report_every` a line
//!    gives the broker's RSS and CPU, its open connections (from
//!    `/metrics`), deliveries, loss, replies, churn and errors.
//! 3. The load stops: publishers confirm the broker handled every emit,
//!    subscribers wait for what is still due, requesters for their
//!    answers, churn clients finish; everything closes politely.
//! 4. Once the broker's connection count is back where it was, its RSS is
//!    watched until it settles (bounded by the settle timeout).
//! 5. The summary judges the run ([`report::SoakSummary::judge`]).
//!
//! Everything runs on the calling task: one core does all the client work.

pub mod churn;
pub mod plan;
pub mod report;
pub mod rpc;
pub mod streams;
pub mod tally;

use std::cell::Cell;
use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::clock::Clock;
use crate::driver::Driver;
use crate::flow::run_id;
use crate::herald::HeraldDriver;
use crate::open::open_many;
use crate::procfs::{CpuTicks, ProcessProbe};
use crate::scrape::{Metrics, scrape};
use crate::ws::BUSY_READ_BUFFER;
use crate::{BenchError, DEFAULT_OPEN_CONCURRENCY};
use plan::SoakPlan;
use report::{BrokerCounts, IntervalReport, Settled, SoakSummary};
use streams::{Pace, Stream};
use tally::Tally;

/// How often the broker is looked at while its memory settles.
const SETTLE_POLL: Duration = Duration::from_millis(250);
/// RSS has settled when it moved less than 1% (or [`SETTLE_SLACK_KIB`])
/// over this long.
const SETTLE_WINDOW: Duration = Duration::from_secs(3);
/// Movement of RSS too small to count, KiB.
const SETTLE_SLACK_KIB: u64 = 256;

/// Where the soak reads the broker's figures from.
#[derive(Debug, Clone, Copy, Default)]
pub struct BrokerView<'a> {
    /// The broker process (RSS and CPU), when it is local.
    pub probe: Option<&'a ProcessProbe>,
    /// Its `/metrics` URL (`http://HOST:PORT/metrics`).
    pub metrics_url: Option<&'a str>,
}

impl BrokerView<'_> {
    async fn metrics(&self) -> Option<Result<Metrics, BenchError>> {
        Some(scrape(self.metrics_url?).await)
    }

    fn connections(metrics: &Metrics) -> Option<u64> {
        metrics.get("herald_connections").map(|v| v as u64)
    }
}

/// The events of one run.
struct Events {
    fanout: String,
    pairs: Vec<String>,
    rpc: String,
    churn: String,
}

impl Events {
    fn new(pairs: usize) -> Events {
        let run = run_id();
        Events {
            fanout: format!("soak.{run}.fanout"),
            pairs: (0..pairs).map(|i| format!("soak.{run}.pair{i}")).collect(),
            rpc: format!("soak.{run}.rpc"),
            churn: format!("soak.{run}.churn"),
        }
    }
}

/// Runs a soak against `driver`'s broker, writing the header and report
/// lines to `out` as it goes; returns the judged summary (the caller
/// prints it and decides the exit). Fails only when the load cannot be
/// set up: a connection or subscription refused before the start.
pub async fn run_soak(
    driver: &HeraldDriver,
    plan: &SoakPlan,
    broker: BrokerView<'_>,
    out: &mut dyn Write,
) -> Result<SoakSummary, BenchError> {
    plan.validate()?;
    let events = Events::new(plan.pairs);
    let mut broker = broker;
    let before = match broker.metrics().await {
        Some(Ok(metrics)) => Some(metrics),
        Some(Err(error)) => {
            writeln!(out, "note: no broker counters ({error})")?;
            broker.metrics_url = None;
            None
        }
        None => None,
    };
    let baseline_connections = before.as_ref().and_then(BrokerView::connections);

    // 1. The steady connections.
    let on = |rate: u64, n: usize| if rate > 0 { n } else { 0 };
    let opened = Cell::new(0);
    let fanout_subscribers = open_all(
        on(plan.fanout_rate, plan.fanout_subscribers),
        &opened,
        |_| driver.subscriber(&events.fanout),
    )
    .await?;
    let fanout_publisher = match plan.fanout_rate {
        0 => None,
        _ => Some(driver.publisher(&events.fanout).await?),
    };
    let pairs = on(plan.pairs_rate, plan.pairs);
    // Opened in any order: each keeps its pair's index.
    let mut pair_subscribers = open_all(pairs, &opened, |i| {
        let event = &events.pairs[i];
        async move { Ok((i, driver.subscriber(event).await?)) }
    })
    .await?;
    pair_subscribers.sort_unstable_by_key(|(i, _)| *i);
    let mut pair_publishers = Vec::with_capacity(pairs);
    for event in events.pairs.iter().take(pairs) {
        pair_publishers.push(driver.publisher(event).await?);
    }
    let responders = open_all(on(plan.request_rate, plan.responders), &opened, |_| {
        driver.open_subscribed(&events.rpc, true, BUSY_READ_BUFFER)
    })
    .await?;
    let requesters = open_all(on(plan.request_rate, plan.requesters), &opened, |_| {
        driver.open(driver.url(), BUSY_READ_BUFFER)
    })
    .await?;
    let churn_publisher = match plan.churn_rate {
        0 => None,
        _ => Some(driver.publisher(&events.churn).await?),
    };

    writeln!(
        out,
        "soak: {} for {}, a report every {}",
        driver.url(),
        report::clock_time(plan.duration),
        report::clock_time(plan.report_every)
    )?;
    writeln!(out, "  mix: {}", plan.describe())?;
    writeln!(out, "{}", report::header())?;
    out.flush()?;

    // 2. The load.
    let tally = &Tally::default();
    let clock = Clock::new();
    let started = Instant::now();
    let pace = |rate, window| Pace {
        rate,
        window,
        plan,
        clock,
        started,
    };
    let fanout = Stream::new("fanout".to_owned(), fanout_subscribers.len());
    let pair_streams: Vec<Stream> = (0..pairs)
        .map(|i| Stream::new(format!("pair {i}"), 1))
        .collect();
    let churn_stream = Stream::new("churn".to_owned(), 0);
    let churn_done = Cell::new(false);
    let requesters_done = Cell::new(false);
    let running = || !tally.stopping();
    let fanout_load = async {
        if let Some(publisher) = fanout_publisher {
            let publishing = streams::publish(
                publisher,
                &fanout,
                pace(plan.fanout_rate, Some(plan.window)),
                tally,
                running,
            );
            let receiving = join_all(
                fanout_subscribers
                    .into_iter()
                    .map(|s| streams::receive(s, &fanout, plan, tally, clock)),
            );
            tokio::join!(publishing, receiving);
        }
    };
    let pairs_load = join_all(
        pair_publishers
            .into_iter()
            .zip(
                pair_subscribers
                    .into_iter()
                    .map(|(_, subscriber)| subscriber),
            )
            .zip(&pair_streams)
            .map(|((publisher, subscriber), stream)| async move {
                let publishing = streams::publish(
                    publisher,
                    stream,
                    pace(plan.pairs_rate, Some(plan.window)),
                    tally,
                    running,
                );
                let receiving = streams::receive(subscriber, stream, plan, tally, clock);
                tokio::join!(publishing, receiving);
            }),
    );
    let rpc_load = async {
        let requests = rpc::Requests {
            namespace: driver.namespace(),
            event: &events.rpc,
            plan,
            clock,
            started,
        };
        let requesting = async {
            join_all(
                requesters
                    .into_iter()
                    .map(|ws| rpc::request(ws, requests, tally)),
            )
            .await;
            requesters_done.set(true);
        };
        let responding = join_all(
            responders
                .into_iter()
                .map(|ws| rpc::respond(ws, tally, || requesters_done.get())),
        );
        tokio::join!(requesting, responding);
    };
    let churn_load = async {
        if let Some(publisher) = churn_publisher {
            let clients = async {
                churn::churn(driver, &events.churn, plan, tally, clock).await;
                churn_done.set(true);
            };
            let publishing = streams::publish(
                publisher,
                &churn_stream,
                pace(plan.churn_event_rate, None),
                tally,
                || !churn_done.get(),
            );
            tokio::join!(clients, publishing);
        }
    };
    let reporting = report_until_done(plan, &broker, tally, started, out);
    let ((), _, (), (), reports) =
        tokio::join!(fanout_load, pairs_load, rpc_load, churn_load, reporting);
    let reports = reports?;
    let load_ended = Instant::now();

    // 4. The broker after the clients left.
    // The broker may keep a request's state until its timeout: memory is
    // judged settled no sooner than that after the load.
    let hold = if plan.request_rate > 0 {
        plan.request_timeout
    } else {
        Duration::ZERO
    };
    let watch = SettleWatch {
        baseline: baseline_connections,
        timeout: plan.settle_timeout,
        load_ended,
        earliest: load_ended + hold,
    };
    let settled = settle(&broker, watch).await;
    let after = match broker.metrics().await {
        Some(Ok(metrics)) => Some(metrics),
        Some(Err(error)) => {
            tally.error(format!("metrics at the end: {error}"));
            None
        }
        None => None,
    };
    let counts = before
        .as_ref()
        .zip(after.as_ref())
        .map(|(before, after)| broker_counts(before, after));

    // 5. The verdict.
    let latency = tally.latency.borrow();
    let requests = tally.request_latency.borrow();
    let mut summary = SoakSummary {
        url: driver.url().to_owned(),
        server_pid: broker.probe.map(ProcessProbe::pid),
        mix: plan.describe(),
        duration_secs: plan.duration.as_secs_f64(),
        rss_first_kib: reports.first().and_then(|r| r.rss_kib),
        rss_last_kib: reports.last().and_then(|r| r.rss_kib),
        reports,
        sent: tally.sent.get(),
        delivered: tally.delivered.get(),
        lost: tally.lost.get(),
        requests: tally.requests.get(),
        replies: tally.replies.get(),
        churned: tally.churned.get(),
        errors: tally.errors(),
        error_kinds: tally.error_kinds().into_iter().collect(),
        p50_us: latency.quantile_us(0.5),
        p99_us: latency.quantile_us(0.99),
        p999_us: latency.quantile_us(0.999),
        request_p50_us: requests.quantile_us(0.5),
        request_p99_us: requests.quantile_us(0.99),
        settled,
        broker: counts,
        failures: Vec::new(),
    };
    summary.judge(baseline_connections);
    Ok(summary)
}

/// Opens `count` connections with `open(i)`, all or an error.
async fn open_all<T, F, Fut>(
    count: usize,
    opened: &Cell<u64>,
    open: F,
) -> Result<Vec<T>, BenchError>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = Result<T, BenchError>>,
{
    let (connections, failure) = open_many(count, DEFAULT_OPEN_CONCURRENCY, opened, open).await;
    match failure {
        Some(error) => Err(error),
        None => Ok(connections),
    }
}

/// Prints a report every `report_every` until the duration is over, then
/// tells the load to stop; returns every report.
async fn report_until_done(
    plan: &SoakPlan,
    broker: &BrokerView<'_>,
    tally: &Tally,
    started: Instant,
    out: &mut dyn Write,
) -> Result<Vec<IntervalReport>, BenchError> {
    let mut reports = Vec::new();
    let this_process = ProcessProbe::new(std::process::id()).ok();
    let mut cpu_before = broker.probe.and_then(|p| p.cpu().ok());
    let mut client_cpu_before = this_process.as_ref().and_then(|p| p.cpu().ok());
    let mut last_at = started;
    let mut last_delivered = 0;
    let end = started + plan.duration;
    loop {
        let next = (last_at + plan.report_every).min(end);
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        let interval = now.duration_since(last_at).as_secs_f64().max(1e-9);
        let cpu_now = broker.probe.and_then(|p| p.cpu().ok());
        let client_cpu_now = this_process.as_ref().and_then(|p| p.cpu().ok());
        let percent = |before: Option<CpuTicks>, now: Option<CpuTicks>| {
            before
                .zip(now)
                .map(|(before, now)| now.since(before).as_secs_f64() * 100.0 / interval)
        };
        let connections = match broker.metrics().await {
            Some(Ok(metrics)) => BrokerView::connections(&metrics),
            Some(Err(error)) => {
                tally.error(format!("metrics: {error}"));
                None
            }
            None => None,
        };
        let delivered = tally.delivered.get();
        let report = IntervalReport {
            elapsed_secs: now.duration_since(started).as_secs_f64(),
            rss_kib: broker.probe.and_then(|p| p.rss_kib().ok()),
            anon_kib: broker.probe.and_then(|p| p.anon_kib().ok()),
            server_cpu_percent: percent(cpu_before, cpu_now),
            client_cpu_percent: percent(client_cpu_before, client_cpu_now),
            connections,
            sent: tally.sent.get(),
            delivered,
            delivered_per_sec: delivered.saturating_sub(last_delivered) as f64 / interval,
            lost: tally.lost.get(),
            requests: tally.requests.get(),
            replies: tally.replies.get(),
            churned: tally.churned.get(),
            errors: tally.errors(),
            p99_us: tally.take_interval_p99_us(),
        };
        writeln!(out, "{}", report::line(&report))?;
        out.flush()?;
        reports.push(report);
        (cpu_before, client_cpu_before) = (cpu_now, client_cpu_now);
        (last_at, last_delivered) = (now, delivered);
        if now >= end {
            tally.stop();
            return Ok(reports);
        }
    }
}

/// How [`settle`] watches the broker after the load.
#[derive(Debug, Clone, Copy)]
struct SettleWatch {
    /// Connections open before the soak, when known.
    baseline: Option<u64>,
    /// How long the whole watch may take.
    timeout: Duration,
    load_ended: Instant,
    /// RSS is not called settled before this.
    earliest: Instant,
}

/// Waits for the broker's connections to fall back to the baseline, then
/// for its RSS to stop moving (not before `watch.earliest`); both bounded
/// by `watch.timeout` from now.
async fn settle(broker: &BrokerView<'_>, watch: SettleWatch) -> Settled {
    let SettleWatch {
        baseline,
        timeout,
        load_ended,
        earliest,
    } = watch;
    let deadline = Instant::now() + timeout;
    let mut connections = None;
    if let Some(baseline) = baseline {
        loop {
            connections = match broker.metrics().await {
                Some(Ok(metrics)) => BrokerView::connections(&metrics),
                _ => None,
            };
            if connections.is_none_or(|c| c <= baseline) || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(SETTLE_POLL).await;
        }
    }
    let Some(probe) = broker.probe else {
        return Settled {
            connections,
            rss_kib: None,
            anon_kib: None,
            after_secs: load_ended.elapsed().as_secs_f64(),
            stable: false,
        };
    };
    let mut samples: VecDeque<(Instant, u64)> = VecDeque::new();
    while let Ok(rss) = probe.rss_kib() {
        let now = Instant::now();
        samples.push_back((now, rss));
        while samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > SETTLE_WINDOW)
        {
            samples.pop_front();
        }
        let span = samples
            .front()
            .map_or(Duration::ZERO, |(at, _)| now.duration_since(*at));
        let low = samples.iter().map(|(_, kib)| *kib).min().unwrap_or(rss);
        let high = samples.iter().map(|(_, kib)| *kib).max().unwrap_or(rss);
        let still = high - low <= (high / 100).max(SETTLE_SLACK_KIB);
        if span + SETTLE_POLL > SETTLE_WINDOW && still && now >= earliest {
            return Settled {
                connections,
                rss_kib: Some(rss),
                anon_kib: probe.anon_kib().ok(),
                after_secs: load_ended.elapsed().as_secs_f64(),
                stable: true,
            };
        }
        if now >= deadline {
            break;
        }
        tokio::time::sleep(SETTLE_POLL).await;
    }
    Settled {
        connections,
        rss_kib: samples.back().map(|(_, kib)| *kib),
        anon_kib: probe.anon_kib().ok(),
        after_secs: load_ended.elapsed().as_secs_f64(),
        stable: false,
    }
}

/// The broker's counters that judge a soak, as differences between two
/// scrapes.
fn broker_counts(before: &Metrics, after: &Metrics) -> BrokerCounts {
    let delta = |name: &str| {
        let was = before.get(name).unwrap_or(0.0);
        (after.get(name).unwrap_or(0.0) - was).max(0.0) as u64
    };
    let closed_before: BTreeMap<String, f64> = before
        .by_label("herald_connections_closed_total", "reason")
        .into_iter()
        .collect();
    let closed_by_reason = after
        .by_label("herald_connections_closed_total", "reason")
        .into_iter()
        .map(|(reason, n)| {
            let was = closed_before.get(&reason).copied().unwrap_or(0.0);
            (reason, (n - was).max(0.0) as u64)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    BrokerCounts {
        closed_by_reason,
        events_dropped: delta("herald_events_dropped_total"),
        request_timeouts: delta("herald_request_timeouts_total"),
        frames_refused: delta("herald_frames_refused_total"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_counts_are_differences() {
        let before = Metrics::parse(
            "herald_connections_closed_total{reason=\"client_closed\"} 5\n\
             herald_events_dropped_total 2\n",
        );
        let after = Metrics::parse(
            "herald_connections_closed_total{reason=\"client_closed\"} 50\n\
             herald_connections_closed_total{reason=\"slow_consumer\"} 1\n\
             herald_events_dropped_total 2\n\
             herald_request_timeouts_total 3\n",
        );
        let counts = broker_counts(&before, &after);
        assert_eq!(
            counts.closed_by_reason,
            BTreeMap::from([
                ("client_closed".to_owned(), 45),
                ("slow_consumer".to_owned(), 1)
            ])
        );
        assert_eq!(counts.events_dropped, 0);
        assert_eq!(counts.request_timeouts, 3);
        assert_eq!(counts.frames_refused, 0);
    }

    #[test]
    fn event_names_are_valid() {
        let events = Events::new(2);
        for name in [&events.fanout, &events.pairs[1], &events.rpc, &events.churn] {
            herald_protocol::names::validate_event(name).expect("a valid event name");
        }
    }
}
