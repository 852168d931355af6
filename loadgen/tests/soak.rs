//! The soak workload against a real broker (in-process, real sockets), for
//! a few seconds at small rates: every part of the mix runs, the figures
//! agree with the broker's own counters, a clean run passes and a run the
//! broker refuses connections to fails. Nothing here asserts on speed.

use std::time::Duration;

use clap::Parser;
use herald_loadgen::herald::HeraldDriver;
use herald_loadgen::procfs::ProcessProbe;
use herald_loadgen::soak::plan::SoakPlan;
use herald_loadgen::soak::report::header;
use herald_loadgen::soak::{BrokerView, run_soak};
use herald_loadgen::{BenchArgs, BenchError};
use herald_tests::{TestBroker, start_broker};

/// Three seconds of every part of the mix, at rates any machine holds.
fn small_plan() -> SoakPlan {
    SoakPlan {
        duration: Duration::from_secs(3),
        report_every: Duration::from_secs(1),
        fanout_subscribers: 5,
        fanout_rate: 200,
        pairs: 2,
        pairs_rate: 200,
        responders: 2,
        requesters: 2,
        request_rate: 50,
        // Memory settles no sooner than this after the load.
        request_timeout: Duration::from_secs(2),
        churn_rate: 10,
        churn_events: 3,
        churn_event_rate: 100,
        drain_timeout: Duration::from_secs(5),
        settle_timeout: Duration::from_secs(10),
        ..SoakPlan::default()
    }
}

fn driver(broker: &TestBroker) -> HeraldDriver {
    HeraldDriver::new(&format!("ws://{}", broker.addr()), "/bench").expect("a valid driver")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_runs_every_part_and_passes() {
    let broker = start_broker(|_| {}).await;
    let before = broker.stats();
    // The broker runs in this process: its memory is ours.
    let probe = ProcessProbe::new(std::process::id()).expect("our own /proc entry");
    let metrics_url = format!("http://{}/metrics", broker.addr());
    let view = BrokerView {
        probe: Some(&probe),
        metrics_url: Some(&metrics_url),
    };
    let plan = small_plan();
    let mut out = Vec::new();
    let summary = run_soak(&driver(&broker), &plan, view, &mut out)
        .await
        .expect("the soak runs");
    let text = String::from_utf8(out).expect("UTF-8 report lines");

    assert!(summary.passed(), "{}", summary.render());
    assert_eq!((summary.lost, summary.errors), (0, 0));
    assert!(summary.error_kinds.is_empty(), "{:?}", summary.error_kinds);
    // One report a second, each a line under the header.
    assert_eq!(summary.reports.len(), 3, "{text}");
    let header_at = text.find(&header()).expect("the header is printed");
    assert_eq!(text[header_at..].lines().count(), 1 + 3, "{text}");
    for report in &summary.reports {
        assert!(report.rss_kib.is_some() && report.server_cpu_percent.is_some());
        assert!(
            report.anon_kib <= report.rss_kib,
            "RssAnon is part of VmRSS"
        );
        let connections = report.connections.expect("read from /metrics");
        assert!(
            connections >= plan.steady_connections() as u64,
            "{connections} open, fewer than the steady ones"
        );
    }
    let (first, last) = (&summary.reports[0], &summary.reports[2]);
    assert!(last.delivered > first.delivered, "deliveries go on");
    // Every part of the mix did its work.
    assert!(summary.sent > 0 && summary.delivered > summary.sent);
    assert!(summary.requests > 0);
    assert_eq!(summary.replies, summary.requests, "every request answered");
    assert!(summary.churned > 0, "churn clients came and went");
    assert!(summary.request_p99_us.is_some() && summary.p99_us.is_some());
    // Memory before and after the clients left, and nobody left behind.
    assert!(summary.rss_first_kib.is_some() && summary.rss_last_kib.is_some());
    assert!(summary.settled.rss_kib.is_some());
    assert_eq!(summary.settled.connections, Some(0));
    let counts = summary.broker.as_ref().expect("counters from /metrics");
    assert_eq!(
        counts.closed_by_reason.keys().collect::<Vec<_>>(),
        ["client_closed"],
        "only polite closes"
    );
    let closed = counts.closed_by_reason["client_closed"];
    assert_eq!(
        closed,
        plan.steady_connections() as u64 + summary.churned,
        "every steady connection and churn client closed once"
    );
    // The broker counted the same traffic: every emit and request.
    let after = broker.stats();
    assert_eq!(
        after.events_received - before.events_received,
        summary.sent + summary.requests
    );
    assert_eq!(after.requests - before.requests, summary.requests);
    assert!(after.events_delivered - before.events_delivered >= summary.delivered);
    assert_eq!(after.connections_current, 0);
    broker.shutdown().await;
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

fn soak_args(extra: &[&str]) -> BenchArgs {
    let base = [
        "bench",
        "soak",
        "--duration",
        "2s",
        "--report-every",
        "1s",
        "--fanout-subscribers",
        "3",
        "--fanout-rate",
        "100",
        "--pairs",
        "1",
        "--pairs-rate",
        "100",
        "--requesters",
        "1",
        "--responders",
        "1",
        "--request-rate",
        "20",
        "--churn-rate",
        "5",
        "--churn-events",
        "2",
        "--churn-event-rate",
        "50",
        "--settle-timeout",
        "5s",
        "--request-timeout",
        "2s",
        "--no-progress",
    ];
    Cli::try_parse_from(base.iter().chain(extra))
        .expect("valid options")
        .bench
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_bench_soak_passes_and_finds_the_broker_by_its_port() {
    let broker = start_broker(|_| {}).await;
    // No --server-pid: the broker listening on the URL's loopback port is
    // this process.
    let port = herald_loadgen::command::loopback_port(&broker.url()).expect("a loopback URL");
    assert_eq!(
        herald_loadgen::procfs::find_listener_pid(port),
        Some(std::process::id())
    );
    herald_loadgen::run_bench(&broker.url(), soak_args(&["--json"]))
        .await
        .expect("a clean soak passes");
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soak_whose_clients_are_refused_fails() {
    // Room for the steady connections only: every churn client is refused.
    let steady = soak_args(&[])
        .soak_plan()
        .expect("valid")
        .steady_connections();
    let broker = start_broker(|settings| settings.server.max_connections = steady).await;
    let error = herald_loadgen::run_bench(&broker.url(), soak_args(&[]))
        .await
        .expect_err("refused churn clients fail the soak");
    let text = error.to_string();
    assert!(matches!(error, BenchError::SoakFailed(_)), "{text}");
    assert!(text.contains("errors"), "{text}");
    assert!(!error.is_usage() && !error.is_unreachable());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_an_error_before_any_load() {
    let port = herald_tests::cluster::free_port();
    let error = herald_loadgen::run_bench(&format!("ws://127.0.0.1:{port}"), soak_args(&[]))
        .await
        .expect_err("nothing listens");
    assert!(error.is_unreachable(), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_opened_while_their_event_flows_are_confirmed() {
    use herald_loadgen::{Driver, Publisher};
    // Queues deep enough that a test thread held up for a moment (a busy
    // machine, a debug build) is not closed as a slow consumer: this test
    // is about the order of events and `ok`, not about slow readers.
    let broker = start_broker(|settings| {
        settings.delivery.queue_capacity = 1 << 18;
        settings.delivery.max_queued_bytes = 256 << 20;
    })
    .await;
    let driver = driver(&broker);
    let event = "soak.test.busy";
    let mut publisher = driver.publisher(event).await.expect("a publisher");
    let stop = std::sync::atomic::AtomicBool::new(false);
    let payload = [0u8; 16];
    // Events flow all the time the subscribers open (32 every millisecond,
    // a pace the broker keeps up with), as for churn clients: now and then
    // one arrives between a subscription and its `ok` (in a soak, about one
    // churn client in a few thousand saw that; a client that does not skip
    // such events fails this test in most runs).
    let publishing = async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            for _ in 0..32 {
                publisher.feed(&payload).await.expect("accepted");
            }
            publisher.flush().await.expect("accepted");
        }
    };
    let subscribing = async {
        for _ in 0..3000 {
            let subscriber = driver.subscriber(event).await.expect("confirmed");
            // Dropped, not closed politely: a polite close would first read
            // the flow of events to the end.
            drop(subscriber);
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    };
    tokio::join!(publishing, subscribing);
    broker.shutdown().await;
}
