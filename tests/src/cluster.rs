//! Helpers for the cluster tests (`broker/tests/cluster.rs`): a real
//! `redis-server` on a free loopback port, broker daemon processes
//! clustered over it, and bounded polling of their HTTP endpoints.
//!
//! The daemons are separate processes (the binary path comes from the
//! caller, which is the only one cargo tells where it is). Every wait is
//! bounded; conditions no message announces (a metric, `/readyz`) are
//! polled with [`poll_until`].

use std::future::Future;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::{RawClient, connect_raw, http_get};

/// Longest a cluster condition (a node starting, a view converging, a
/// dead node expiring, Redis coming back) may take in a test.
pub const CLUSTER_TIMEOUT: Duration = Duration::from_secs(15);
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Polls `condition` every 20 ms until it holds, failing the test after
/// [`CLUSTER_TIMEOUT`] with a message naming `what`.
pub async fn poll_until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + CLUSTER_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if condition().await {
            return;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    panic!("timed out after {CLUSTER_TIMEOUT:?} waiting for {what}");
}

/// A loopback port free now (the OS picks it; it is released at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A file in the temp dir for a child's log, unique per process and name.
fn log_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("herald-cluster-{}-{name}.log", std::process::id()))
}

fn spawn_logged(command: &mut Command, log: &Path) -> std::io::Result<Child> {
    let file = std::fs::File::create(log)?;
    let err = file.try_clone()?;
    command
        .stdin(Stdio::null())
        .stdout(file)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
}

/// A `redis-server` started for one test, killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    /// With persistence: the directory of its append-only file.
    persist: Option<PathBuf>,
}

impl RedisServer {
    /// Starts `redis-server` on a free loopback port (no persistence) and
    /// waits for it to answer `PING`. Fails with a clear message when
    /// `redis-server` is not installed: the cluster tests never skip.
    pub async fn start() -> RedisServer {
        let mut server = RedisServer {
            port: free_port(),
            child: None,
            persist: None,
        };
        server.spawn().await;
        server
    }

    /// Like [`RedisServer::start`], with persistence: an append-only file
    /// fsynced on every write (`appendfsync always`) in a fresh directory,
    /// so a restart keeps everything that was acknowledged.
    pub async fn start_persistent() -> RedisServer {
        let port = free_port();
        let dir =
            std::env::temp_dir().join(format!("herald-redis-aof-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the append-only file");
        let mut server = RedisServer {
            port,
            child: None,
            persist: Some(dir),
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let log = log_file(&format!("redis-{}", self.port));
        let mut command = Command::new("redis-server");
        command.args([
            "--port",
            &self.port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
        ]);
        match &self.persist {
            None => {
                command.args(["--appendonly", "no"]);
            }
            Some(dir) => {
                command.args(["--appendonly", "yes", "--appendfsync", "always", "--dir"]);
                command.arg(dir);
            }
        }
        let child = match spawn_logged(&mut command, &log) {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed, and the cluster tests need it: \
                 apt-get install -y redis-server (.ci/run installs it)"
            ),
            Err(error) => panic!("cannot start redis-server: {error}"),
        };
        self.child = Some(child);
        let addr = self.addr();
        poll_until(
            &format!(
                "redis-server on {addr} to answer PING (log: {})",
                log.display()
            ),
            || ping(addr),
        )
        .await;
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `PUBLISH channel payload` from a plain client (e.g. to put garbage on
    /// the backplane); returns how many subscribers got it.
    pub async fn publish(&self, channel: &str, payload: &[u8]) -> u64 {
        let mut command = format!(
            "*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n",
            channel.len(),
            payload.len()
        )
        .into_bytes();
        command.extend_from_slice(payload);
        command.extend_from_slice(b"\r\n");
        let exchange = async {
            let mut stream = TcpStream::connect(self.addr()).await?;
            stream.write_all(&command).await?;
            let mut answer = Vec::new();
            let mut byte = [0u8; 1];
            while !answer.ends_with(b"\r\n") {
                stream.read_exact(&mut byte).await?;
                answer.push(byte[0]);
            }
            Ok::<_, std::io::Error>(answer)
        };
        let answer = tokio::time::timeout(CLUSTER_TIMEOUT, exchange)
            .await
            .expect("redis answers PUBLISH in time")
            .expect("PUBLISH works");
        let text = String::from_utf8_lossy(&answer);
        text.trim()
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected PUBLISH answer {text:?}"))
    }

    /// Kills it with SIGKILL and waits for it to be gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("redis-server can be killed");
            let waited = tokio::time::timeout(CLUSTER_TIMEOUT, child.wait()).await;
            assert!(waited.is_ok(), "redis-server did not die");
        }
    }

    /// Starts it again, empty, on the same port.
    pub async fn restart(&mut self) {
        self.kill().await;
        self.spawn().await;
    }
}

/// True when a Redis server on `addr` answers `PING` with `+PONG`.
async fn ping(addr: SocketAddr) -> bool {
    let exchange = async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(b"PING\r\n").await?;
        let mut answer = [0u8; 7];
        stream.read_exact(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), exchange).await,
        Ok(Ok(answer)) if &answer == b"+PONG\r\n"
    )
}

/// How a test node is configured.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// `cluster.prefix`.
    pub prefix: String,
    /// `cluster.node_id`.
    pub node_id: String,
    /// `cluster.redis_url`.
    pub redis_url: String,
    /// A TOML file passed as `--config` (for settings that environment
    /// variables cannot express, such as `[[history.namespaces]]`).
    pub config_file: Option<PathBuf>,
}

impl NodeConfig {
    /// Node `node_id` of cluster `prefix` on `redis`.
    pub fn new(redis: &RedisServer, prefix: &str, node_id: &str) -> NodeConfig {
        NodeConfig {
            prefix: prefix.to_owned(),
            node_id: node_id.to_owned(),
            redis_url: redis.url(),
            config_file: None,
        }
    }
}

/// A broker daemon process clustered over Redis, killed when dropped.
#[derive(Debug)]
pub struct Node {
    addr: SocketAddr,
    /// The node's id (`cluster.node_id`).
    pub id: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Node {
    /// Starts the broker binary `bin` as a cluster node (short heartbeat
    /// and TTL, so failures show quickly) and waits until `/readyz`
    /// answers 200 (it is connected to Redis).
    pub async fn start(bin: &Path, config: &NodeConfig) -> Node {
        let node = Node::spawn(bin, config);
        node.wait_ready(true).await;
        node
    }

    /// Starts the node without waiting for it to be ready; it is
    /// listening once [`Node::wait_listening`] returns.
    pub fn spawn(bin: &Path, config: &NodeConfig) -> Node {
        let port = free_port();
        let log = log_file(&format!("node-{}-{port}", config.node_id));
        let mut command = Command::new(bin);
        if let Some(file) = &config.config_file {
            command.arg("--config").arg(file);
        }
        command.env_clear().envs([
            ("HERALD__SERVER__LISTEN", format!("127.0.0.1:{port}")),
            ("HERALD__SERVER__SHUTDOWN_GRACE", "1s".to_owned()),
            ("HERALD__CLUSTER__BACKEND", "redis".to_owned()),
            ("HERALD__CLUSTER__REDIS_URL", config.redis_url.clone()),
            ("HERALD__CLUSTER__PREFIX", config.prefix.clone()),
            ("HERALD__CLUSTER__NODE_ID", config.node_id.clone()),
            ("HERALD__CLUSTER__HEARTBEAT_INTERVAL", "100ms".to_owned()),
            ("HERALD__CLUSTER__NODE_TTL", "600ms".to_owned()),
            ("HERALD__CLUSTER__COMMAND_TIMEOUT", "500ms".to_owned()),
            ("HERALD__LOG__LEVEL", "info".to_owned()),
        ]);
        let child = spawn_logged(&mut command, &log).expect("the broker binary starts");
        Node {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            id: config.node_id.clone(),
            child: Some(child),
            log,
        }
    }

    /// Waits until the node accepts TCP connections.
    pub async fn wait_listening(&self) {
        let what = format!(
            "node {} to listen on {} (log: {})",
            self.id,
            self.addr,
            self.log.display()
        );
        poll_until(&what, || self.alive_on_port()).await;
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its WebSocket URL.
    pub fn url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A raw client that has not said hello yet.
    pub async fn connect(&self) -> RawClient {
        connect_raw(self.addr, Some(herald_protocol::SUBPROTOCOL))
            .await
            .unwrap_or_else(|e| panic!("connecting to node {}: {e}", self.id))
    }

    /// A raw client that said hello.
    pub async fn client(&self) -> RawClient {
        let mut client = self.connect().await;
        client.hello().await;
        client
    }

    /// `GET /readyz`: status and body.
    pub async fn readyz(&self) -> (u16, String) {
        let response = http_get(self.addr, "/readyz").await;
        (response.status, response.body)
    }

    /// Waits until `/readyz` answers 200 (`ready`) or 503 (not).
    pub async fn wait_ready(&self, ready: bool) {
        let what = format!(
            "node {} to be ready: {ready} (log: {})",
            self.id,
            self.log.display()
        );
        // A starting node under load may drop an early request: that is
        // "not ready yet", not a failure.
        let request = format!(
            "GET /readyz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        poll_until(&what, || async {
            match crate::try_http_request_bytes(self.addr, request.as_bytes()).await {
                Ok(response) => (response.status == 200) == ready,
                Err(_) => false,
            }
        })
        .await;
    }

    async fn alive_on_port(&self) -> bool {
        TcpStream::connect(self.addr).await.is_ok()
    }

    /// The value of metric `name` (without labels) in `/metrics`.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let body = http_get(self.addr, "/metrics").await.body;
        body.lines().find_map(|line| {
            let (key, value) = line.split_once(' ')?;
            (key == name).then(|| value.trim().parse().ok()).flatten()
        })
    }

    /// Waits until metric `name` satisfies `check`.
    pub async fn wait_metric(&self, name: &str, check: impl Fn(f64) -> bool) {
        let what = format!(
            "metric {name} on node {} (log: {})",
            self.id,
            self.log.display()
        );
        poll_until(&what, || async {
            self.metric(name).await.is_some_and(&check)
        })
        .await;
    }

    /// Kills the process with SIGKILL (no clean-up at all).
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.start_kill().expect("the node can be killed");
            let waited = tokio::time::timeout(CLUSTER_TIMEOUT, child.wait()).await;
            assert!(waited.is_ok(), "node {} did not die", self.id);
        }
    }
}

impl Drop for Node {
    /// The log is kept when the test fails (its path is in the failure
    /// message), removed otherwise.
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(dir) = &self.persist {
            let _ = std::fs::remove_dir_all(dir);
        }
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(log_file(&format!("redis-{}", self.port)));
        }
    }
}

/// A bound for a hand-written polling loop (one that needs `&mut` access
/// [`poll_until`]'s closure cannot give): [`Deadline::tick`] fails the
/// test once [`CLUSTER_TIMEOUT`] has passed, else pauses one poll interval.
#[derive(Debug)]
pub struct Deadline {
    at: tokio::time::Instant,
}

impl Deadline {
    /// [`CLUSTER_TIMEOUT`] from now.
    pub fn start() -> Deadline {
        Deadline {
            at: tokio::time::Instant::now() + CLUSTER_TIMEOUT,
        }
    }

    /// Fails the test naming `what` if the deadline passed; otherwise
    /// waits one poll interval.
    pub async fn tick(&self, what: &str) {
        assert!(
            tokio::time::Instant::now() < self.at,
            "timed out after {CLUSTER_TIMEOUT:?} waiting for {what}"
        );
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
