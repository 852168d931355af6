//! The Docker image, for real: containers of the image that
//! `scripts/docker-test.sh` built from `docker/Dockerfile`, run by a real
//! engine with `--network host` on free loopback ports.
//!
//! These tests are `#[ignore]`d: they need the engine and the image, which
//! the script provides (it runs them with `--ignored`, passing the image
//! names in `HERALD_DOCKER_IMAGE` and `HERALD_DOCKER_EXAMPLES_IMAGE`, the
//! docker client in `HERALD_DOCKER`, and a label for every container in
//! `HERALD_DOCKER_LABEL`). Run them with `bash scripts/docker-test.sh`.
//!
//! - one broker container: `/healthz`, `/readyz`; a mounted config file and
//!   a `HERALD__*` variable both taking effect (the limits in `welcome`); a
//!   native SDK client and a Socket.IO client (Node's `socket.io-client`)
//!   exchanging events through it; the non-root user; the `HEALTHCHECK`
//!   reported `healthy`; `docker stop` closing a connection with 1001 and
//!   the container exiting with 0;
//! - a broken mounted config stops the container naming the key, and
//!   `--print-config` shows the environment's value;
//! - `docker/compose.yml` as the equivalent `docker run` commands (Debian
//!   has no Compose v2): the broker, two billing copies, the notifier and
//!   orders; every order is billed once and notified;
//! - `docker/compose.cluster.yml` likewise: three node containers over one
//!   Redis (the host's `redis-server` on a free loopback port, since no
//!   Redis image can be pulled here), an event emitted on node 3 reaching
//!   subscribers on nodes 1 and 2.
//!
//! Every wait is bounded; states (serving, healthy, exited, a log line)
//! are polled, never slept for.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use bytes::Bytes;
use herald_client::{Client, Event};
use herald_config::Settings;
use herald_protocol::SUBPROTOCOL;
use herald_tests::cluster::{RedisServer, free_port};
use herald_tests::sdk::recv;
use herald_tests::sioclient::{ClientKind, SioDriver, Transports};
use herald_tests::{RawClient, connect_raw, emit, http_get};
use serde_json::json;
use tokio::process::Command;
use tokio::sync::mpsc;

/// Longest one `docker` command may take.
const DOCKER_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest a container may take to serve, become healthy, print a line.
const STATE_TIMEOUT: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(100);

/// What the script passes in.
struct Setup {
    docker: String,
    image: String,
    examples_image: String,
    label: String,
}

fn setup() -> Setup {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is unset: run these tests with `bash scripts/docker-test.sh`")
        })
    };
    Setup {
        docker: std::env::var("HERALD_DOCKER").unwrap_or_else(|_| "docker".to_owned()),
        image: var("HERALD_DOCKER_IMAGE"),
        examples_image: var("HERALD_DOCKER_EXAMPLES_IMAGE"),
        label: var("HERALD_DOCKER_LABEL"),
    }
}

/// Runs `docker args`, bounded by [`DOCKER_TIMEOUT`].
async fn docker(args: &[&str]) -> Output {
    let setup = setup();
    let mut command = Command::new(&setup.docker);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    match tokio::time::timeout(DOCKER_TIMEOUT, command.output()).await {
        Ok(Ok(output)) => output,
        Ok(Err(error)) => panic!("cannot run {} {args:?}: {error}", setup.docker),
        Err(_) => panic!("docker {args:?} did not finish within {DOCKER_TIMEOUT:?}"),
    }
}

/// `docker args`, which must succeed; its stdout, trimmed.
async fn docker_ok(args: &[&str]) -> String {
    let output = docker(args).await;
    assert!(
        output.status.success(),
        "docker {args:?} failed: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Polls `condition` every [`POLL`] until it holds; fails after
/// [`STATE_TIMEOUT`] naming `what`, with `context()` (e.g. a log).
async fn await_state<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + STATE_TIMEOUT;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {STATE_TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// A file in the temp dir, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path =
            std::env::temp_dir().join(format!("herald-docker-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    /// `-v PATH:/etc/herald/herald.toml:ro`: mounted over the image's file.
    fn mount(&self) -> String {
        format!("{}:/etc/herald/herald.toml:ro", self.0.display())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// One container, removed (`docker rm -f`) when dropped.
struct Container {
    name: String,
}

impl Container {
    /// `docker run -d --network host --name … --label … ARGS IMAGE COMMAND`.
    async fn run(name: &str, args: &[&str], image: &str, command: &[&str]) -> Container {
        let setup = setup();
        let name = format!("herald-test-{}-{name}", std::process::id());
        // An earlier, interrupted run of this process id.
        let _ = docker(&["rm", "-f", &name]).await;
        let mut all = vec![
            "run",
            "-d",
            "--network",
            "host",
            "--name",
            &name,
            "--label",
            &setup.label,
        ];
        all.extend_from_slice(args);
        all.push(image);
        all.extend_from_slice(command);
        docker_ok(&all).await;
        Container { name }
    }

    /// A broker container of the image listening on `127.0.0.1:port`, with
    /// `env` and `args` (more `docker run` arguments); returns once it
    /// serves `/healthz`.
    async fn broker(name: &str, port: u16, env: &[(&str, &str)], args: &[&str]) -> Container {
        let image = setup().image;
        let mut all = vec![format!("HERALD__SERVER__LISTEN=127.0.0.1:{port}")];
        all.extend(env.iter().map(|(key, value)| format!("{key}={value}")));
        let mut run: Vec<&str> = all.iter().flat_map(|e| ["-e", e.as_str()]).collect();
        run.extend_from_slice(args);
        let container = Container::run(name, &run, &image, &[]).await;
        container.await_serving(port).await;
        container
    }

    async fn inspect(&self, format: &str) -> String {
        docker_ok(&["inspect", "--format", format, &self.name]).await
    }

    /// The container's stdout and stderr so far.
    async fn logs(&self) -> (String, String) {
        let output = docker(&["logs", &self.name]).await;
        (
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    async fn running(&self) -> bool {
        self.inspect("{{.State.Running}}").await == "true"
    }

    async fn await_serving(&self, port: u16) {
        let url = format!("http://127.0.0.1:{port}/healthz");
        let deadline = tokio::time::Instant::now() + STATE_TIMEOUT;
        while herald_broker::healthcheck::probe(&url, Duration::from_secs(1))
            .await
            .is_err()
        {
            if !self.running().await {
                let (out, err) = self.logs().await;
                panic!("{} exited before serving:\n{out}{err}", self.name);
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{url} did not answer within {STATE_TIMEOUT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until the container's stdout holds `line` (a whole line).
    async fn await_line(&self, line: &str) {
        await_state(&format!("{} to print {line:?}", self.name), || async {
            self.logs().await.0.lines().any(|l| l == line)
        })
        .await;
    }

    /// Waits for the container to exit; its exit code.
    async fn wait(&self) -> i64 {
        let code = docker_ok(&["wait", &self.name]).await;
        code.parse()
            .unwrap_or_else(|_| panic!("docker wait said {code:?}"))
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = std::process::Command::new(setup().docker)
            .args(["rm", "-f", &self.name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn raw_client(port: u16) -> RawClient {
    let mut client = connect_raw(local(port), Some(SUBPROTOCOL))
        .await
        .expect("the WebSocket upgrade is accepted");
    client.hello().await;
    client
}

/// The payload `{"from": from}` as a MessagePack map.
fn from_map(from: &str) -> rmpv::Value {
    rmpv::Value::Map(vec![("from".into(), from.into())])
}

#[tokio::test]
#[ignore = "needs a Docker engine and the image: bash scripts/docker-test.sh"]
async fn the_image_serves_native_and_socketio_clients_and_stops_cleanly() {
    let port = free_port();
    // The mounted file sets two limits; the environment overrides one.
    let config = TempFile::new(
        "herald.toml",
        "[limits]\nmax_payload_bytes = 4096\nmax_rooms_per_connection = 9\n",
    );
    let broker = Container::broker(
        "broker",
        port,
        &[("HERALD__LIMITS__MAX_ROOMS_PER_CONNECTION", "3")],
        &["-v", &config.mount()],
    )
    .await;

    let health = http_get(local(port), "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = http_get(local(port), "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    // The configuration, as a client sees it.
    let mut connection = connect_raw(local(port), Some(SUBPROTOCOL))
        .await
        .expect("the WebSocket upgrade is accepted");
    let limits = connection.hello().await.limits;
    let defaults = Settings::defaults().limits;
    assert_eq!(limits.max_payload, 4096, "from the mounted file");
    assert_eq!(limits.max_rooms, 3, "the environment beats the file");
    assert_eq!(
        limits.max_subscriptions, defaults.max_subscriptions_per_connection as u64,
        "everything else keeps its default"
    );
    connection.close().await;

    // Not root, inside and in the image's metadata.
    assert_eq!(
        docker_ok(&["exec", &broker.name, "id", "-u"]).await,
        "10001"
    );
    assert_eq!(broker.inspect("{{.Config.User}}").await, "10001:10001");

    // A native SDK client and a Socket.IO client, events both ways.
    let url = format!("ws://127.0.0.1:{port}");
    let native = tokio::time::timeout(
        STATE_TIMEOUT,
        Client::builder(url.as_str()).name("native").connect(),
    )
    .await
    .expect("the SDK client connects in time")
    .expect("the SDK client connects");
    let (tx, mut notes) = mpsc::channel(16);
    native
        .of("/chat")
        .on_event("note", move |event: Event<rmpv::Value>| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event).await;
            }
        })
        .await
        .expect("the native subscription");
    let mut driver = SioDriver::start(ClientKind::Node).await;
    let sio_url = format!("http://127.0.0.1:{port}");
    let connected = driver
        .connect("sio", &sio_url, "/chat", Transports::Upgrade)
        .await;
    driver
        .wait_transport("sio", Transports::Upgrade.settled())
        .await;
    driver
        .emit("sio", "note", json!([{"from": "socket"}]))
        .await;
    let note = recv(&mut notes).await;
    assert_eq!(note.data, from_map("socket"));
    assert_eq!(note.from(), Some(connected.sid.as_str()));
    native
        .of("/chat")
        .emit("news", &from_map("native"))
        .await
        .expect("the native emit");
    driver
        .expect_event_args("sio", "news", &json!([{"from": "native"}]))
        .await;
    driver.exit().await;
    drop(native);

    // The image's HEALTHCHECK, as the engine reports it.
    await_state("the HEALTHCHECK to report healthy", || async {
        let status = broker.inspect("{{.State.Health.Status}}").await;
        assert_ne!(status, "unhealthy", "the HEALTHCHECK failed");
        status == "healthy"
    })
    .await;

    // `docker stop`: connections are drained with 1001, the exit code is 0.
    let mut subscriber = raw_client(port).await;
    subscriber.subscribe("/chat", "note", None, false).await;
    let stop = tokio::spawn({
        let name = broker.name.clone();
        async move { docker_ok(&["stop", "--time", "30", &name]).await }
    });
    let closing = subscriber.read_until_close().await;
    let (code, reason) = RawClient::check_closing(&closing);
    assert_eq!(code, 1001, "closed with {code} {reason:?}");
    stop.await.expect("docker stop");
    assert_eq!(broker.inspect("{{.State.ExitCode}}").await, "0");
    assert_eq!(broker.inspect("{{.State.Running}}").await, "false");
}

#[tokio::test]
#[ignore = "needs a Docker engine and the image: bash scripts/docker-test.sh"]
async fn the_configuration_reaches_the_container_and_a_broken_file_stops_it() {
    let image = setup().image;
    // `--print-config`: the file's and the environment's values, merged.
    let config = TempFile::new("print.toml", "[limits]\nmax_payload_bytes = 4096\n");
    let printed = docker_ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        &config.mount(),
        "-e",
        "HERALD__LIMITS__MAX_ROOMS_PER_CONNECTION=3",
        &image,
        "--config",
        "herald.toml",
        "--print-config",
    ])
    .await;
    let lines: Vec<&str> = printed.lines().map(str::trim).collect();
    assert!(lines.contains(&"max_payload_bytes = 4096"), "{printed}");
    assert!(lines.contains(&"max_rooms_per_connection = 3"), "{printed}");

    // A broken file: exit code 2, naming the key.
    let broken = TempFile::new("broken.toml", "[limits]\nmax_payload_bytes = 0\n");
    let output = docker(&[
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        &broken.mount(),
        &image,
    ])
    .await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("limits.max_payload_bytes"), "{stderr}");
}

#[tokio::test]
#[ignore = "needs a Docker engine and the image: bash scripts/docker-test.sh"]
async fn the_compose_services_run_as_containers() {
    // docker/compose.yml, as `docker run --network host` commands.
    let examples = setup().examples_image;
    let port = free_port();
    let _broker = Container::broker(
        "compose-broker",
        port,
        &[("HERALD__LOG__LEVEL", "info")],
        &[],
    )
    .await;
    let herald_url = format!("HERALD_URL=ws://127.0.0.1:{port}");
    let service = |name: &'static str, entrypoint: &'static str| {
        let herald_url = herald_url.clone();
        let examples = examples.clone();
        async move {
            Container::run(
                name,
                &[
                    "-e",
                    &herald_url,
                    "-e",
                    "RUST_LOG=info",
                    "--entrypoint",
                    entrypoint,
                ],
                &examples,
                &[],
            )
            .await
        }
    };
    let billing = [
        service("billing-1", "billing").await,
        service("billing-2", "billing").await,
    ];
    let notifier = service("notifier", "notifier").await;
    for container in billing.iter().chain([&notifier]) {
        container.await_line("ready").await;
    }
    let orders = Container::run(
        "orders",
        &[
            "-e",
            &herald_url,
            "-e",
            "RUST_LOG=info",
            "--entrypoint",
            "orders",
        ],
        &examples,
        &[
            "--count",
            "5",
            "--interval",
            "50ms",
            "--wait-for-billing",
            "60s",
        ],
    )
    .await;
    let code = tokio::time::timeout(STATE_TIMEOUT, orders.wait())
        .await
        .expect("orders exits in time");
    let (out, err) = orders.logs().await;
    assert_eq!(code, 0, "orders failed:\n{out}{err}");
    for order in 1..=5 {
        assert!(
            out.lines().any(|l| l == format!("created order {order}")),
            "{out}"
        );
    }
    assert!(
        out.lines()
            .any(|l| l.starts_with("invoice ") && l.ends_with(" for order 1")),
        "a billing copy answered the invoice request:\n{out}"
    );

    notifier.await_line("notified order.created 5").await;
    // Each order billed once, by one of the two copies.
    let deadline = tokio::time::Instant::now() + STATE_TIMEOUT;
    let billed = loop {
        let mut billed = BTreeMap::<String, usize>::new();
        for copy in &billing {
            for line in copy.logs().await.0.lines() {
                if line.starts_with("billed order ") {
                    *billed.entry(line.to_owned()).or_default() += 1;
                }
            }
        }
        if billed.len() == 5 {
            break billed;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every order was billed within {STATE_TIMEOUT:?}: {billed:?}"
        );
        tokio::time::sleep(POLL).await;
    };
    assert!(billed.values().all(|&n| n == 1), "billed twice: {billed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine and the image: bash scripts/docker-test.sh"]
async fn the_cluster_compose_fans_out_across_node_containers() {
    // docker/compose.cluster.yml, as `docker run --network host` commands;
    // Redis is the host's redis-server on a free loopback port.
    let redis = RedisServer::start().await;
    let redis_url = redis.url();
    let prefix = format!("herald-docker-{}", std::process::id());
    let ports = [free_port(), free_port(), free_port()];
    let mut nodes = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        nodes.push(
            Container::broker(
                &format!("node{}", i + 1),
                *port,
                &[
                    ("HERALD__LOG__LEVEL", "info"),
                    ("HERALD__CLUSTER__BACKEND", "redis"),
                    ("HERALD__CLUSTER__REDIS_URL", &redis_url),
                    ("HERALD__CLUSTER__PREFIX", &prefix),
                ],
                &[],
            )
            .await,
        );
    }
    for port in ports {
        await_state(&format!("node :{port} to be ready"), || async move {
            http_get(local(port), "/readyz").await.status == 200
        })
        .await;
    }

    let mut subscribers = Vec::new();
    for port in &ports[..2] {
        let mut subscriber = raw_client(*port).await;
        subscriber
            .subscribe("/shop", "order.created", None, false)
            .await;
        subscribers.push(subscriber);
    }
    // Each node listens on the namespace's channel once it has a subscriber.
    for port in &ports[..2] {
        await_state("the node to listen on the namespace's channel", || async {
            metric(*port, "herald_cluster_namespaces").await >= 1.0
        })
        .await;
    }
    let mut publisher = raw_client(ports[2]).await;
    let payload = Bytes::from_static(b"from node 3");
    publisher
        .emit_acked(emit("/shop", "order.created", payload.clone()))
        .await;
    for subscriber in &mut subscribers {
        let event = subscriber.expect_event().await;
        assert_eq!(
            (event.event.as_str(), event.payload),
            ("order.created", payload.clone())
        );
    }
    drop(nodes);
}

/// The value of `name` on the node's `/metrics` (0 when absent).
async fn metric(port: u16, name: &str) -> f64 {
    http_get(local(port), "/metrics")
        .await
        .body
        .lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(key, _)| *key == name)
        .and_then(|(_, value)| value.trim().parse().ok())
        .unwrap_or(0.0)
}
