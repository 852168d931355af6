//! The load generator against a real broker (in-process, real sockets), at
//! a tiny scale: every workload runs end to end, counts agree with the
//! broker's own counters, nothing is lost, and bad input gets clear errors.
//! Nothing here asserts on speed.

use std::time::Duration;

use clap::Parser;
use herald_loadgen::conns::run_conns;
use herald_loadgen::flow::run_flow;
use herald_loadgen::herald::HeraldDriver;
use herald_loadgen::procfs::ProcessProbe;
use herald_loadgen::progress::Progress;
use herald_loadgen::workload::{FlowPlan, Overrides};
use herald_loadgen::{BenchArgs, BenchError, Plan, Record, Workload};
use herald_tests::{TestBroker, start_broker};

fn flow_plan(workload: Workload, overrides: Overrides) -> FlowPlan {
    match workload.plan(&overrides).expect("a valid plan") {
        Plan::Flow(plan) => plan,
        Plan::Conns(_) => panic!("{workload} is a flow workload"),
    }
}

fn driver(broker: &TestBroker) -> HeraldDriver {
    HeraldDriver::new(&format!("ws://{}", broker.addr()), "/bench").expect("a valid driver")
}

fn this_process() -> ProcessProbe {
    ProcessProbe::new(std::process::id()).expect("our own /proc entry")
}

/// Runs a flow plan and checks the figures every successful run must have.
async fn run_checked(broker: &TestBroker, workload: Workload, plan: &FlowPlan) -> Record {
    let before = broker.stats();
    let probe = this_process();
    let outcome = run_flow(&driver(broker), plan, Some(&probe), &Progress::hidden())
        .await
        .unwrap_or_else(|e| panic!("{workload} failed: {e}"));
    let record = Record::flow("herald", workload.name(), &outcome);
    let sent = plan.messages * plan.publishers as u64;
    let due = sent * plan.subscribers as u64;
    assert!(record.errors.is_empty(), "{workload}: {:?}", record.errors);
    assert_eq!(record.sent, Some(sent), "{workload}: messages sent");
    assert_eq!(record.delivered, Some(due), "{workload}: deliveries");
    assert_eq!(record.loss, Some(0), "{workload}: loss");
    assert!(record.msgs_per_sec.is_some(), "{workload}: a rate");
    assert!(record.p50_us.is_some() && record.p999_us.is_some());
    assert!(
        record.server_cpu_secs.is_some(),
        "{workload}: the probe measured CPU"
    );
    // The broker counted the same traffic.
    let after = broker
        .wait_for_stats("the broker to count the run's deliveries", |s| {
            s.events_delivered >= before.events_delivered + due
        })
        .await;
    assert_eq!(after.events_received - before.events_received, sent);
    assert_eq!(after.events_delivered - before.events_delivered, due);
    assert_eq!(after.events_dropped, before.events_dropped);
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flow_workloads_deliver_everything() {
    let broker = start_broker(|_| {}).await;
    let small = |messages, subscribers| Overrides {
        messages: Some(messages),
        subscribers: Some(subscribers),
        ..Overrides::default()
    };
    run_checked(
        &broker,
        Workload::Fanout,
        &flow_plan(Workload::Fanout, small(300, 8)),
    )
    .await;
    let pairs = Overrides {
        publishers: Some(3),
        ..small(400, 1)
    };
    run_checked(&broker, Workload::Pairs, &flow_plan(Workload::Pairs, pairs)).await;
    // 2,000 msgs/s for 100 ms: 200 messages at a fixed rate.
    let latency = Overrides {
        rate: Some(2_000),
        duration: Some(Duration::from_millis(100)),
        subscribers: Some(3),
        ..Overrides::default()
    };
    let plan = flow_plan(Workload::Latency, latency);
    assert_eq!(plan.messages, 200);
    run_checked(&broker, Workload::Latency, &plan).await;
    // A window smaller than a batch, and no window at all, both deliver.
    let tight = Overrides {
        window: Some(3),
        batch: Some(10),
        ..small(200, 4)
    };
    run_checked(
        &broker,
        Workload::Fanout,
        &flow_plan(Workload::Fanout, tight),
    )
    .await;
    let unlimited = Overrides {
        window: Some(0),
        ..small(200, 4)
    };
    run_checked(
        &broker,
        Workload::Fanout,
        &flow_plan(Workload::Fanout, unlimited),
    )
    .await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conns_opens_every_connection_and_measures_memory() {
    let broker = start_broker(|_| {}).await;
    let before = broker.stats();
    let Plan::Conns(plan) = Workload::Conns
        .plan(&Overrides {
            conns: Some(60),
            ..Overrides::default()
        })
        .expect("a valid plan")
    else {
        panic!("conns plan expected");
    };
    let driver = driver(&broker).with_sources(vec![
        "127.0.0.1".parse().expect("an address"),
        "127.0.0.2".parse().expect("an address"),
    ]);
    let probe = this_process();
    let outcome = run_conns(&driver, &plan, Some(&probe), &Progress::hidden())
        .await
        .expect("the conns workload runs");
    assert_eq!(outcome.opened, 60);
    assert!(outcome.errors.is_empty(), "{:?}", outcome.errors);
    assert!(outcome.kib_per_conn().is_some(), "memory was measured");
    let record = Record::conns("herald", "conns", &outcome);
    assert_eq!(record.conns, Some(60));
    assert!(record.open_secs.is_some());
    let after = broker.stats();
    assert_eq!(after.connections_opened - before.connections_opened, 60);
    broker
        .wait_for_stats("the idle connections to close", |s| {
            s.connections_current == 0
        })
        .await;
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_payload_is_reported_as_an_error_and_as_loss() {
    let broker = start_broker(|settings| settings.limits.max_payload_bytes = 64).await;
    let plan = flow_plan(
        Workload::Pairs,
        Overrides {
            publishers: Some(1),
            messages: Some(20),
            payload_bytes: Some(128),
            drain_timeout: Some(Duration::from_millis(500)),
            ..Overrides::default()
        },
    );
    let outcome = run_flow(&driver(&broker), &plan, None, &Progress::hidden())
        .await
        .expect("the run completes");
    assert_eq!(outcome.delivered, 0);
    assert_eq!(outcome.loss, outcome.sent, "every sent message is lost");
    assert!(
        outcome
            .errors
            .iter()
            .any(|e| e.contains("payload_too_large")),
        "the broker's refusal is reported: {:?}",
        outcome.errors
    );
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishers_go_to_the_publish_url() {
    // Two brokers that are not clustered: subscribers on the first,
    // publishers on the second, so nothing can arrive.
    let subscribed = start_broker(|_| {}).await;
    let published = start_broker(|_| {}).await;
    let driver = driver(&subscribed)
        .with_publish_url(&format!("ws://{}", published.addr()))
        .expect("a valid URL");
    let plan = flow_plan(
        Workload::Fanout,
        Overrides {
            subscribers: Some(3),
            messages: Some(20),
            drain_timeout: Some(Duration::from_millis(300)),
            ..Overrides::default()
        },
    );
    let probe = ProcessProbe::group([
        ("first".to_owned(), std::process::id()),
        ("second".to_owned(), std::process::id()),
    ])
    .expect("our own /proc entry, twice");
    let outcome = run_flow(&driver, &plan, Some(&probe), &Progress::hidden())
        .await
        .expect("the run completes");
    assert_eq!(outcome.sent, 20);
    assert_eq!(outcome.delivered, 0);
    assert_eq!(outcome.loss, 60, "3 subscribers x 20 messages lost");
    let stats = published
        .wait_for_stats("the publishers' broker to count the emits", |s| {
            s.events_received >= 20
        })
        .await;
    assert_eq!(stats.events_received, 20);
    assert_eq!(subscribed.stats().events_received, 0);
    // The CPU of a group is reported in total and per process.
    let record = Record::flow("herald", "fanout", &outcome);
    let parts = &record.server_cpu_secs_by_process;
    assert_eq!(
        parts.keys().map(String::as_str).collect::<Vec<_>>(),
        ["first", "second"]
    );
    let total = record.server_cpu_secs.expect("CPU was read");
    assert!((parts.values().sum::<f64>() - total).abs() < 1e-9);
    subscribed.shutdown().await;
    published.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_broker_is_a_clear_error() {
    let broker = start_broker(|settings| settings.server.max_connections = 2).await;
    let plan = flow_plan(
        Workload::Fanout,
        Overrides {
            subscribers: Some(5),
            messages: Some(10),
            ..Overrides::default()
        },
    );
    let error = run_flow(&driver(&broker), &plan, None, &Progress::hidden())
        .await
        .expect_err("the third connection is refused");
    let text = error.to_string();
    assert!(
        matches!(error, BenchError::Refused { status: 503, .. }),
        "{text}"
    );
    assert!(text.contains("connection_limit"), "{text}");
    assert!(error.is_unreachable() && !error.is_usage());
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_is_a_clear_error() {
    // Take a free port, then close it again: nothing listens there.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    let addr = listener.local_addr().expect("its address");
    drop(listener);
    let driver = HeraldDriver::new(&format!("ws://{addr}"), "/bench").expect("a valid driver");
    let plan = flow_plan(Workload::Fanout, Overrides::default());
    let error = run_flow(&driver, &plan, None, &Progress::hidden())
        .await
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(matches!(error, BenchError::Connect { .. }), "{text}");
    assert!(error.is_unreachable());
    assert!(text.contains(&addr.to_string()), "{text}");
}

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    bench: BenchArgs,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_bench_command_runs_end_to_end() {
    let broker = start_broker(|_| {}).await;
    let before = broker.stats();
    let pid = std::process::id().to_string();
    let args = Cli::try_parse_from([
        "bench",
        "pairs",
        "--publishers",
        "2",
        "--messages",
        "50",
        "--no-progress",
        "--json",
        "--server-pid",
        &pid,
    ])
    .expect("valid options")
    .bench;
    herald_loadgen::run_bench(&format!("ws://{}", broker.addr()), args)
        .await
        .expect("herald bench runs");
    let after = broker
        .wait_for_stats("the bench's deliveries", |s| {
            s.events_delivered >= before.events_delivered + 100
        })
        .await;
    assert_eq!(after.events_received - before.events_received, 100);

    let bad = Cli::try_parse_from(["bench", "fanout", "--namespace", "nope"])
        .expect("parses")
        .bench;
    let error = herald_loadgen::run_bench("ws://127.0.0.1:1", bad)
        .await
        .expect_err("an invalid namespace");
    assert!(error.to_string().contains("--namespace"), "{error}");
    assert!(error.is_usage());
    let error = herald_loadgen::run_bench(
        "http://127.0.0.1:1",
        Cli::try_parse_from(["bench", "fanout"])
            .expect("parses")
            .bench,
    )
    .await
    .expect_err("not a ws:// URL");
    assert!(error.to_string().contains("--url"), "{error}");
    broker.shutdown().await;
}

/// The `herald-wss` benchmark path: the same driver over `wss://` to a
/// broker with `[tls]`, trusting a CA made here; everything delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_runs_over_wss() {
    use herald_tests::tls::{self, Ca, Files};
    let (ca, files) = (Ca::new("bench CA"), Files::new());
    let broker = start_broker(|s| tls::serve(s, &files, &ca.server())).await;
    let driver = HeraldDriver::new(&format!("wss://{}", broker.addr()), "/bench")
        .expect("a valid driver")
        .with_tls(tls::client_config(&ca.pem(), None))
        .named("herald-wss");
    let overrides = Overrides {
        messages: Some(300),
        subscribers: Some(8),
        ..Overrides::default()
    };
    let plan = flow_plan(Workload::Fanout, overrides);
    let outcome = run_flow(&driver, &plan, None, &Progress::hidden())
        .await
        .expect("fanout over wss");
    let record = Record::flow("herald-wss", "fanout", &outcome);
    assert!(record.errors.is_empty(), "{:?}", record.errors);
    assert_eq!(record.delivered, Some(300 * 8));
    assert_eq!(record.loss, Some(0));
    // Without the CA, the driver cannot connect, and says why.
    let untrusted = HeraldDriver::new(&format!("wss://{}", broker.addr()), "/bench")
        .expect("a valid driver")
        .with_tls(tls::client_config(&Ca::new("other").pem(), None));
    let error = run_flow(&untrusted, &plan, None, &Progress::hidden())
        .await
        .expect_err("an untrusted certificate");
    assert!(error.to_string().contains("certificate"), "{error}");
}
