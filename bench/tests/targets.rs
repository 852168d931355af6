//! Each target's client against its real server, at a tiny scale: the
//! floor and socketioxide relays (in-process, and as the child processes
//! `compare` starts), Herald (an in-process broker, natively and through
//! its Socket.IO front end), and NATS, Redis and
//! the Herald cluster when redis-server is installed (ignored tests:
//! `cargo test -p herald-bench -- --ignored` after `sudo bash
//! bench/setup.sh`; the cluster through `compare` also needs
//! `cargo build -p herald-broker`). Nothing here asserts on speed.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;

use herald_bench::cluster::{self, measure_cross_node};
use herald_bench::compare::{CompareOptions, compare, measure_on, report};
use herald_bench::floor_client::FloorDriver;
use herald_bench::server::{ServerProcess, free_local_addr};
use herald_bench::socketio_client::SocketIoDriver;
use herald_bench::targets::{Programs, Target};
use herald_bench::{floor_server, socketio_relay};
use herald_loadgen::conns::run_conns;
use herald_loadgen::flow::run_flow;
use herald_loadgen::procfs::ProcessProbe;
use herald_loadgen::progress::Progress;
use herald_loadgen::workload::{FlowPlan, Overrides};
use herald_loadgen::{Driver, Plan, Record, Workload};

fn tiny(workload: Workload) -> Plan {
    workload
        .plan(&Overrides {
            messages: Some(200),
            subscribers: Some(match workload {
                Workload::Pairs => 1,
                _ => 4,
            }),
            publishers: Some(match workload {
                Workload::Pairs => 3,
                _ => 1,
            }),
            rate: (workload == Workload::Latency).then_some(4_000),
            conns: Some(40),
            ..Overrides::default()
        })
        .expect("a valid plan")
}

fn flow(plan: &Plan) -> &FlowPlan {
    match plan {
        Plan::Flow(plan) => plan,
        Plan::Conns(_) => panic!("a flow plan expected"),
    }
}

fn this_process() -> ProcessProbe {
    ProcessProbe::new(std::process::id()).expect("our own /proc entry")
}

/// Runs fanout, pairs, latency and conns through `driver`; every message
/// must arrive.
async fn every_workload_delivers(driver: &impl Driver) {
    for workload in [Workload::Fanout, Workload::Pairs, Workload::Latency] {
        let plan = tiny(workload);
        let plan = flow(&plan);
        let outcome = run_flow(driver, plan, Some(&this_process()), &Progress::hidden())
            .await
            .unwrap_or_else(|e| panic!("{} {workload}: {e}", driver.name()));
        let due = plan.expected_deliveries();
        assert!(
            outcome.errors.is_empty(),
            "{}: {:?}",
            driver.name(),
            outcome.errors
        );
        assert_eq!(outcome.delivered, due, "{} {workload}", driver.name());
        assert_eq!(outcome.loss, 0, "{} {workload}", driver.name());
        assert!(outcome.latency.quantile_us(0.5).is_some());
    }
    let Plan::Conns(plan) = tiny(Workload::Conns) else {
        panic!("a conns plan expected");
    };
    let outcome = run_conns(driver, &plan, Some(&this_process()), &Progress::hidden())
        .await
        .unwrap_or_else(|e| panic!("{} conns: {e}", driver.name()));
    assert_eq!(
        outcome.opened,
        40,
        "{}: {:?}",
        driver.name(),
        outcome.errors
    );
    assert!(outcome.kib_per_conn().is_some());
}

async fn local_listener() -> (tokio::net::TcpListener, SocketAddr) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    let addr = listener.local_addr().expect("its address");
    (listener, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floor_relays_every_workload() {
    let (listener, addr) = local_listener().await;
    let relay = tokio::spawn(floor_server::serve(listener));
    every_workload_delivers(&FloorDriver::new(addr)).await;
    relay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketioxide_relays_every_workload() {
    let (listener, addr) = local_listener().await;
    let relay = tokio::spawn(socketio_relay::serve(listener));
    every_workload_delivers(&SocketIoDriver::new(addr)).await;
    relay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_through_the_compare_dispatch() {
    let broker = herald_tests::start_broker(|_| {}).await;
    for workload in Workload::ALL {
        let record = measure_on(
            Target::Herald,
            broker.addr(),
            workload,
            &tiny(workload),
            &this_process(),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("herald {workload}: {e}"));
        assert!(record.errors.is_empty(), "{workload}: {:?}", record.errors);
        if workload == Workload::Conns {
            assert_eq!(record.conns, Some(40));
            assert!(record.kib_per_conn.is_some());
        } else {
            assert_eq!(record.loss, Some(0), "{workload}");
            assert!(record.server_cpu_secs.is_some(), "{workload}: CPU was read");
        }
    }
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn herald_socketio_delivers_every_workload() {
    // The socketioxide client in Herald's dialect: a namespace per topic,
    // `msg` emitted into it; every message arrives, none comes back.
    let broker = herald_tests::start_broker(|_| {}).await;
    every_workload_delivers(&SocketIoDriver::herald(broker.addr())).await;
    let record = measure_on(
        Target::HeraldSocketio,
        broker.addr(),
        Workload::Fanout,
        &tiny(Workload::Fanout),
        &this_process(),
        false,
    )
    .await
    .expect("fanout through the compare dispatch");
    assert_eq!(record.target, "herald-socketio");
    assert_eq!(record.loss, Some(0), "{:?}", record.errors);
    broker.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_floor_that_is_gone_is_a_clear_error() {
    let (listener, addr) = local_listener().await;
    drop(listener);
    let plan = tiny(Workload::Fanout);
    let error = run_flow(
        &FloorDriver::new(addr),
        flow(&plan),
        None,
        &Progress::hidden(),
    )
    .await
    .expect_err("nothing listens");
    let text = error.to_string();
    assert!(
        text.contains("floor") && text.contains(&addr.to_string()),
        "{text}"
    );
}

fn bench_binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_herald-bench"))
}

fn programs_without_peers() -> Programs {
    Programs {
        herald: Err("herald-broker is not built (test)".to_owned()),
        herald_bench: bench_binary(),
        nats: None,
        redis: None,
    }
}

fn log_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-bench-tests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a log directory");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_runs_child_servers_and_skips_missing_peers() {
    let options = CompareOptions {
        targets: vec![
            Target::Floor,
            Target::Socketioxide,
            Target::Nats,
            Target::Herald,
        ],
        workloads: vec![Workload::Pairs, Workload::Conns],
        round_trips: Vec::new(),
        overrides: Overrides {
            messages: Some(100),
            conns: Some(20),
            ..Overrides::default()
        },
        server_cpu: None,
        progress: false,
    };
    let comparison = compare(&options, &programs_without_peers(), &log_dir()).await;
    let find = |target: &str, workload: &str| -> &Record {
        comparison
            .records
            .iter()
            .find(|r| r.target == target && r.workload == workload)
            .unwrap_or_else(|| panic!("no record for {target} {workload}"))
    };
    for target in ["floor", "socketioxide"] {
        let pairs = find(target, "pairs");
        assert!(pairs.errors.is_empty(), "{target}: {:?}", pairs.errors);
        assert_eq!(pairs.loss, Some(0), "{target}");
        assert_eq!(pairs.delivered, Some(1000), "{target}: 10 publishers x 100");
        assert!(
            pairs.server_cpu_secs.is_some(),
            "{target}: the child was probed"
        );
        let conns = find(target, "conns");
        assert_eq!(conns.conns, Some(20), "{target}: {:?}", conns.errors);
        assert!(conns.kib_per_conn.is_some(), "{target}");
    }
    let nats = find("nats", "pairs");
    let reason = nats.skipped.as_deref().expect("nats is skipped");
    assert!(
        reason.contains("apt-get install -y nats-server"),
        "{reason}"
    );
    assert!(find("herald", "conns").skipped.is_some());
    let text = report(&comparison, &options, "test machine");
    assert!(text.contains("skipped nats pairs"), "{text}");
    assert!(
        text.contains("floor: herald-bench serve-floor --listen 127.0.0.1:"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  no loss: pairs was skipped (herald-broker is not built (test))"),
        "{text}"
    );
    assert!(
        text.contains("FAIL  pairs msgs/s ≥ 1.3× nats: herald was skipped"),
        "a skipped herald fails: {text}"
    );
    assert!(
        text.contains("SKIP  latency p50 ≤ nats: latency was not run"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_dies_is_reported() {
    let addr = free_local_addr().expect("a port");
    let launch = Programs::find(Err("n/a".to_owned()), bench_binary())
        .launch(Target::Floor, addr, &[])
        .expect("the floor is built in");
    let server = ServerProcess::start("floor", &launch, addr, None, &log_dir())
        .await
        .expect("the floor starts");
    let pid = server.probe().pid();
    let mut server = server;
    assert!(server.crashed().is_none());
    // Kill it from outside, as a crash would.
    let killed = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    assert!(killed.expect("kill runs").success());
    herald_tests::wait_until("the floor to exit", || server.crashed().is_some()).await;
    server.stop().await;
}

#[test]
fn the_binary_runs_compare_and_writes_json() {
    let json = log_dir().join("records.json");
    let output = Command::new(bench_binary())
        .args([
            "compare",
            "--targets",
            "floor",
            "--workloads",
            "pairs,latency",
            "--scale",
            "0.002",
            "--no-pin",
            "--no-build",
            "--no-progress",
            "--json",
        ])
        .arg(&json)
        .output()
        .expect("herald-bench runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("floor") && line.contains("pairs")),
        "the table has the floor's pairs row: {stdout}"
    );
    let records: Vec<Record> =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON file"))
            .expect("an array of records");
    assert_eq!(records.len(), 2);
    for record in &records {
        assert_eq!(record.target, "floor");
        assert_eq!(record.loss, Some(0), "{record:?}");
    }
}

#[test]
fn the_binary_refuses_bad_options_clearly() {
    let run = |args: &[&str]| {
        let output = Command::new(bench_binary())
            .args(args)
            .output()
            .expect("herald-bench runs");
        (
            output.status,
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (status, stderr) = run(&["compare", "--workloads", "nope", "--no-build"]);
    assert!(!status.success());
    assert!(stderr.contains("nope"), "{stderr}");
    let (status, stderr) = run(&["compare", "--scale", "0", "--no-pin", "--no-build"]);
    assert!(!status.success());
    assert!(stderr.contains("--scale"), "{stderr}");
    let (status, stderr) = run(&["compare", "--targets", "kafka", "--no-build"]);
    assert!(!status.success());
    assert!(stderr.contains("kafka"), "{stderr}");
    let (status, stderr) = run(&["scale", "--conns", "0"]);
    assert!(!status.success());
    assert!(stderr.contains("--conns"), "{stderr}");
}

/// Starts an installed peer as `compare` does and runs every workload.
async fn installed_peer_delivers(target: Target) {
    let programs = Programs::find(Err("n/a".to_owned()), bench_binary());
    let addr = free_local_addr().expect("a port");
    let launch = programs
        .launch(target, addr, &[])
        .unwrap_or_else(|reason| panic!("{reason}"));
    let server = ServerProcess::start(target.name(), &launch, addr, None, &log_dir())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for workload in Workload::ALL {
        let record = measure_on(
            target,
            addr,
            workload,
            &tiny(workload),
            server.probe(),
            false,
        )
        .await
        .unwrap_or_else(|e| panic!("{target} {workload}: {e}"));
        assert!(
            record.errors.is_empty(),
            "{target} {workload}: {:?}",
            record.errors
        );
        if workload != Workload::Conns {
            assert_eq!(record.loss, Some(0), "{target} {workload}");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs nats-server: sudo bash bench/setup.sh"]
async fn nats_delivers_every_workload() {
    installed_peer_delivers(Target::Nats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: sudo bash bench/setup.sh"]
async fn redis_delivers_every_workload() {
    installed_peer_delivers(Target::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_floor_refuses_bad_input() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (listener, addr) = local_listener().await;
    let relay = tokio::spawn(floor_server::serve(listener));
    let url = format!("ws://{addr}/");
    let timeout = std::time::Duration::from_secs(5);

    // A first message that is neither `sub TOPIC` nor `pub TOPIC`.
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the floor accepts");
    ws.send(Message::Text("subscribe please".into()))
        .await
        .expect("sent");
    let answer = tokio::time::timeout(timeout, ws.next())
        .await
        .expect("an answer in time");
    let Some(Ok(Message::Text(refusal))) = answer else {
        panic!("expected a refusal, got {answer:?}");
    };
    assert!(refusal.contains("expected `sub TOPIC`"), "{refusal}");

    // A message over the size limit closes the publisher's connection.
    let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .expect("the floor accepts");
    ws.send(Message::Text("pub t".into())).await.expect("sent");
    let ok = tokio::time::timeout(timeout, ws.next())
        .await
        .expect("ok in time");
    assert!(
        matches!(ok, Some(Ok(Message::Text(ref t))) if t.as_str() == "ok"),
        "{ok:?}"
    );
    let huge = vec![0u8; floor_server::MAX_MESSAGE_BYTES + 1];
    // The floor may close while the message is still being written.
    let _ = ws.send(Message::Binary(huge.into())).await;
    let end = tokio::time::timeout(timeout, async {
        loop {
            match ws.next().await {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(_)) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the floor should close the connection");
    relay.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_runs_fanout_only_and_says_what_it_lacks() {
    let options = CompareOptions {
        targets: vec![Target::HeraldCluster],
        workloads: vec![Workload::Fanout, Workload::Pairs],
        round_trips: Vec::new(),
        overrides: Overrides::default(),
        server_cpu: None,
        progress: false,
    };
    let comparison = compare(&options, &programs_without_peers(), &log_dir()).await;
    let [fanout, pairs] = comparison.records.as_slice() else {
        panic!("two records expected: {:?}", comparison.records);
    };
    assert_eq!(fanout.target, "herald-cluster");
    let reason = fanout.skipped.as_deref().expect("no redis-server here");
    assert!(
        reason.contains("apt-get install -y redis-server"),
        "{reason}"
    );
    assert_eq!(pairs.skipped.as_deref(), Some("cross-node: fanout only"));
    assert!(comparison.commands.is_empty(), "nothing was started");
    let text = report(&comparison, &options, "test machine");
    assert!(
        text.contains("skipped herald-cluster pairs: cross-node: fanout only"),
        "{text}"
    );
    assert!(
        !text.contains("herald-cluster ÷"),
        "nothing to compare: {text}"
    );
}

/// Two in-process brokers clustered over `redis`.
async fn clustered_brokers(
    redis: &herald_tests::cluster::RedisServer,
) -> [herald_tests::TestBroker; 2] {
    let mut nodes = Vec::new();
    for id in ["a", "b"] {
        nodes.push(
            herald_tests::start_broker(|settings| {
                settings.cluster.backend = "redis".parse().expect("a cluster backend");
                settings.cluster.redis_url = redis.url();
                settings.cluster.prefix = "bench-test".to_owned();
                settings.cluster.node_id = id.to_owned();
            })
            .await,
        );
    }
    let [a, b] = <[_; 2]>::try_from(nodes).expect("two nodes");
    [a, b]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server: sudo bash bench/setup.sh"]
async fn cluster_fanout_crosses_from_node_a_to_node_b() {
    let redis = herald_tests::cluster::RedisServer::start().await;
    let [a, b] = clustered_brokers(&redis).await;
    let plan = tiny(Workload::Fanout);
    let pid = std::process::id();
    let probe = ProcessProbe::group(cluster::PROCESS_NAMES.map(|name| (name.to_owned(), pid)))
        .expect("our own /proc entry");
    let record = measure_cross_node(
        Target::HeraldCluster,
        a.addr(),
        b.addr(),
        Workload::Fanout,
        &plan,
        &probe,
        false,
    )
    .await
    .unwrap_or_else(|e| panic!("cross-node fanout: {e}"));
    assert_eq!(record.target, "herald-cluster");
    assert!(record.errors.is_empty(), "{:?}", record.errors);
    let due = flow(&plan).expected_deliveries();
    assert_eq!(record.delivered, Some(due));
    assert_eq!(record.loss, Some(0));
    assert_eq!(
        record
            .server_cpu_secs_by_process
            .keys()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        ["node-a", "node-b", "redis-server"]
    );
    // The messages crossed: emitted on A (which has no subscriber of the
    // workload's event), delivered on B (where nothing was emitted).
    let sent = flow(&plan).messages;
    let on_b = b
        .wait_for_stats("node B to count the deliveries", |s| {
            s.events_delivered >= due
        })
        .await;
    assert_eq!(on_b.events_received, 0, "nothing was emitted on B");
    let on_a = a.stats();
    assert!(on_a.events_received > sent, "the workload and the probes");
    assert_eq!(on_a.events_delivered, 0, "no subscriber on A");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs redis-server (sudo bash bench/setup.sh) and cargo build -p herald-broker"]
async fn compare_runs_the_cluster_as_three_child_processes() {
    // herald-broker next to the test's target directory (debug or release).
    let test_exe = std::env::current_exe().expect("the test binary");
    let broker = test_exe
        .ancestors()
        .map(|dir| dir.join("herald-broker"))
        .find(|candidate| candidate.is_file())
        .expect("herald-broker is built: cargo build -p herald-broker");
    let programs = Programs::find(Ok(broker), bench_binary());
    let options = CompareOptions {
        targets: vec![Target::HeraldCluster],
        workloads: vec![Workload::Fanout, Workload::Latency],
        round_trips: Vec::new(),
        overrides: Overrides {
            messages: Some(300),
            subscribers: Some(5),
            ..Overrides::default()
        },
        server_cpu: None,
        progress: false,
    };
    let comparison = compare(&options, &programs, &log_dir()).await;
    let [fanout, latency] = comparison.records.as_slice() else {
        panic!("two records expected: {:?}", comparison.records);
    };
    assert!(
        fanout.skipped.is_none() && fanout.errors.is_empty(),
        "{fanout:?}"
    );
    assert_eq!(fanout.delivered, Some(1500), "5 subscribers x 300");
    assert_eq!(fanout.loss, Some(0));
    assert_eq!(fanout.server_cpu_secs_by_process.len(), 3, "{fanout:?}");
    assert_eq!(latency.skipped.as_deref(), Some("cross-node: fanout only"));
    let text = report(&comparison, &options, "test machine");
    assert!(
        text.contains("herald-cluster: redis-server --bind 127.0.0.1"),
        "{text}"
    );
    assert!(text.contains("--set cluster.node_id=b"), "{text}");
    assert!(
        text.contains("herald-cluster ÷ herald (single node), fanout: msgs/s -"),
        "herald was not run: {text}"
    );
}
