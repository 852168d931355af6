//! The Socket.IO server the real-client tests talk to.
//!
//! `HERALD_SIO_TARGET` chooses it (unset: [`DEFAULT_TARGET`]):
//! - `herald`: [`HeraldServer`], a broker started in the test's process
//!   with the upstream suites' `[socketio]` settings (but the heartbeat
//!   below), and the conformance service
//!   (`examples/services/socketio-conformance.rs`, the example binary cargo
//!   built) connected to it as a native SDK client. What CI runs.
//! - `reference`: [`ReferenceServer`], the Node `socket.io` 4
//!   server `tests/socketio/reference-server.js` with the conformance
//!   handlers of issue #10, started per test on a free loopback port. It is
//!   how the client rig itself is checked, and the behaviour Herald must
//!   match (`HERALD_SIO_TARGET=reference`, for comparison).
//! - `http://127.0.0.1:PORT`: a server already running there (for example
//!   `herald-broker` with the conformance service, started by hand). Tests
//!   that need to restart the server fail on it.
//!
//! # Heartbeat
//! The upstream suites' 300 ms / 200 ms heartbeat makes a server drop a
//! client that answers a ping 200 ms late, which a loaded CI machine does
//! (1,000 events through a Node client on a busy 2-core machine did, seen
//! as `ping timeout` and `transport close`). The real-client tests keep the
//! 300 ms interval, so every test runs many heartbeats, with a 5 s
//! timeout; the heartbeat's own timing is the protocol tests' business.

use std::time::Duration;

use herald_config::Settings;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{ChildStdin, ChildStdout, Command};

use super::relay::Relay;
use super::{
    ChildGuard, SIO_TIMEOUT, SioDriver, Transports, log_path, require_installed, socketio_dir,
};
use crate::examples::example_binary;
use crate::{TestBroker, short_grace, start_broker};

/// The most packets python-engineio accepts in one polling response when
/// talking to the reference server (see [`Target::connect_cmd`]).
const REFERENCE_POLL_PACKETS: u64 = 100_000;

/// The servers' ping interval in the real-client tests.
pub const PING_INTERVAL: Duration = Duration::from_millis(300);

/// The servers' ping timeout in the real-client tests (see the module
/// docs for why it is not the upstream suites' 200 ms).
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// The target when `HERALD_SIO_TARGET` is unset or empty.
pub const DEFAULT_TARGET: &str = "herald";

/// The server of one test.
#[derive(Debug)]
pub enum Target {
    /// Herald: a broker and the conformance service.
    Herald(Box<HeraldServer>),
    /// The Node reference server.
    Reference(Box<ReferenceServer>),
    /// A server started outside the test, at this URL.
    External(String),
}

impl Target {
    /// The server `HERALD_SIO_TARGET` names (see the module docs), started
    /// for this test when the harness starts it.
    pub async fn start() -> Target {
        let chosen = std::env::var("HERALD_SIO_TARGET").unwrap_or_default();
        let name = if chosen.is_empty() {
            DEFAULT_TARGET
        } else {
            chosen.as_str()
        };
        match name {
            "herald" => Target::Herald(Box::new(HeraldServer::start().await)),
            "reference" => Target::Reference(Box::new(ReferenceServer::start().await)),
            url if url.starts_with("http://127.0.0.1:") || url.starts_with("http://[::1]:") => {
                Target::External(url.trim_end_matches('/').to_owned())
            }
            other => panic!(
                "HERALD_SIO_TARGET={other:?}: expected `herald`, `reference` or a loopback URL \
                 like http://127.0.0.1:7400"
            ),
        }
    }

    /// The server's base URL (`http://127.0.0.1:PORT`), to which a client
    /// appends the namespace.
    pub fn url(&self) -> String {
        match self {
            Target::Herald(server) => server.url(),
            Target::Reference(server) => server.url(),
            Target::External(url) => url.clone(),
        }
    }

    /// Whether this server is this test's alone: a server shared with
    /// other tests (an external one) also counts their sockets in
    /// namespace-wide results, and sends their namespace-wide events.
    pub fn is_private(&self) -> bool {
        matches!(self, Target::Herald(_) | Target::Reference(_))
    }

    /// A `connect` command for socket `id` to `namespace` on this server
    /// (see [`SioDriver::connect_cmd`]), with what a stock client needs to
    /// talk to it.
    ///
    /// The reference server answers a poll with every packet it has queued;
    /// python-engineio drops the connection on a polling response of more
    /// than 16 packets (`Payload.max_decode_packets`), so a burst (the
    /// 1,000-event test) over polling needs that limit raised for it.
    /// Herald answers a poll with at most 16 packets: stock settings.
    pub fn connect_cmd(&self, id: &str, namespace: &str, transports: Transports) -> Value {
        let mut cmd = SioDriver::connect_cmd(id, &self.url(), namespace, transports);
        if let Target::Reference(_) = self {
            cmd["max_decode_packets"] = json!(REFERENCE_POLL_PACKETS);
        }
        cmd
    }

    /// Drops every connection abruptly (the server process dies) and brings
    /// the server back on the same port, as a crash and restart would.
    pub async fn restart(&mut self) {
        match self {
            Target::Herald(server) => server.restart().await,
            Target::Reference(server) => server.restart().await,
            Target::External(url) => {
                panic!("this test restarts its server, which it cannot do to the external {url}")
            }
        }
    }
}

/// `node tests/socketio/reference-server.js` on a loopback port.
#[derive(Debug)]
pub struct ReferenceServer {
    port: u16,
    child: ChildGuard,
    // Held so the server's stdin stays open (it exits when it closes) and
    // its stdout has a reader.
    _stdin: Option<ChildStdin>,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl ReferenceServer {
    /// Starts it on a free port and waits until it listens.
    pub async fn start() -> ReferenceServer {
        ReferenceServer::start_on(0).await
    }

    /// Starts it on `port` (0: any free port) and waits until it listens.
    pub async fn start_on(port: u16) -> ReferenceServer {
        let dir = socketio_dir();
        require_installed(
            &dir.join("node_modules/socket.io"),
            "socket.io (the reference server)",
        );
        let log = log_path("reference-server");
        let mut command = Command::new("node");
        command
            .arg(dir.join("reference-server.js"))
            .arg(port.to_string())
            .arg(PING_INTERVAL.as_millis().to_string())
            .arg(PING_TIMEOUT.as_millis().to_string());
        let (child, stdin, lines, first) =
            spawn_reporting(command, &log, "the reference server").await;
        let listening: Option<Value> = first.and_then(|line| serde_json::from_str(&line).ok());
        let port = listening
            .as_ref()
            .filter(|v| v["type"] == "listening")
            .and_then(|v| v["port"].as_u64())
            .and_then(|p| u16::try_from(p).ok());
        let Some(port) = port else {
            panic!(
                "the reference server did not report listening within {SIO_TIMEOUT:?} \
                 (got {listening:?}; log: {})",
                log.display()
            );
        };
        ReferenceServer {
            port,
            child,
            _stdin: stdin,
            _stdout: lines,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server (SIGKILL: connections are cut, not closed) and
    /// starts a new one on the same port.
    pub async fn restart(&mut self) {
        self.child.kill().await;
        // The port may be held a moment by the dying process's sockets:
        // retry the start a bounded number of times.
        let port = self.port;
        for _ in 0..3 {
            let attempt =
                tokio::time::timeout(SIO_TIMEOUT, tokio::spawn(ReferenceServer::start_on(port)))
                    .await;
            if let Ok(Ok(server)) = attempt {
                *self = server;
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the reference server did not come back on port {port}");
    }
}

/// Spawns `command` (stderr to `log`) and reads its first stdout line,
/// within [`SIO_TIMEOUT`] (`None`: none came). Returns the child, its
/// stdin (kept open by the caller: the programs exit when it closes) and
/// the rest of its stdout.
async fn spawn_reporting(
    mut command: Command,
    log: &std::path::Path,
    what: &str,
) -> (
    ChildGuard,
    Option<ChildStdin>,
    Lines<BufReader<ChildStdout>>,
    Option<String>,
) {
    let mut child = ChildGuard::spawn(&mut command, log, false, what);
    let stdin = child.stdin();
    let Some(stdout) = child.stdout() else {
        panic!("{what}: its stdout is missing");
    };
    let mut lines = BufReader::new(stdout).lines();
    let first = match tokio::time::timeout(SIO_TIMEOUT, lines.next_line()).await {
        Ok(Ok(line)) => line,
        _ => None,
    };
    (child, stdin, lines, first)
}

/// The `[socketio]` settings of the upstream suites (with the real-client
/// tests' heartbeat, see the module docs), for Herald as a target.
pub fn conformance_settings(settings: &mut Settings) {
    let socketio = &mut settings.socketio;
    socketio.ping_interval = PING_INTERVAL;
    socketio.ping_timeout = PING_TIMEOUT;
    socketio.max_payload = 1_000_000;
    socketio.connect_timeout = Duration::from_secs(1);
    socketio.namespaces = ["/", "/custom", "/chat"].map(str::to_owned).to_vec();
    // The browser's long-polling comes from the page's own origin.
    settings.server.allowed_origins = vec!["*".to_owned()];
    short_grace(settings);
}

/// Herald as a Socket.IO server: a broker in the test's process
/// ([`conformance_settings`]) and the conformance service beside it;
/// clients reach the broker through a `Relay` (`relay.rs`), so that
/// [`HeraldServer::restart`] can cut them off as a crash would.
#[derive(Debug)]
pub struct HeraldServer {
    relay: Relay,
    broker: Option<TestBroker>,
    service: Option<ConformanceService>,
}

impl HeraldServer {
    /// Starts the broker and the service and waits until the service has
    /// registered every handler (`ready`).
    pub async fn start() -> HeraldServer {
        let relay = Relay::start().await;
        let (broker, service) = HeraldServer::launch().await;
        relay.point(broker.addr());
        HeraldServer {
            relay,
            broker: Some(broker),
            service: Some(service),
        }
    }

    async fn launch() -> (TestBroker, ConformanceService) {
        let broker = start_broker(conformance_settings).await;
        let service = ConformanceService::start(&broker.url()).await;
        (broker, service)
    }

    /// `http://127.0.0.1:PORT` (the relay's port).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.relay.port())
    }

    /// The broker running now, for native clients (which connect to it
    /// directly, not through the relay).
    pub fn broker(&self) -> &TestBroker {
        match &self.broker {
            Some(broker) => broker,
            None => panic!("the broker is restarting"),
        }
    }

    /// Cuts every client's connection at once (as a dead server does),
    /// stops the service and the broker, starts both again and lets
    /// clients back in at the same address once the service is ready (so
    /// a reconnecting socket gets its `auth` event).
    pub async fn restart(&mut self) {
        self.relay.cut();
        if let Some(mut service) = self.service.take() {
            service.child.kill().await;
        }
        if let Some(broker) = self.broker.take() {
            broker.shutdown().await;
        }
        let (broker, service) = HeraldServer::launch().await;
        self.relay.point(broker.addr());
        self.broker = Some(broker);
        self.service = Some(service);
    }
}

/// The conformance service, running as a child process.
#[derive(Debug)]
struct ConformanceService {
    child: ChildGuard,
    _stdin: Option<ChildStdin>,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl ConformanceService {
    /// Starts the example binary against the broker at `url` and waits
    /// for its `ready`.
    async fn start(url: &str) -> ConformanceService {
        let log = log_path("socketio-conformance");
        let mut command = Command::new(example_binary("socketio-conformance"));
        command.arg("--url").arg(url).env("RUST_LOG", "info");
        let what = "the conformance service";
        let (child, stdin, lines, first) = spawn_reporting(command, &log, what).await;
        if first.as_deref() != Some("ready") {
            panic!(
                "{what} did not report `ready` within {SIO_TIMEOUT:?} (got {first:?}; log: {})",
                log.display()
            );
        }
        ConformanceService {
            child,
            _stdin: stdin,
            _stdout: lines,
        }
    }
}
