//! What the broker's process tests share: the binary under test and a
//! child-process guard whose every wait is bounded.
//!
//! Children are tokio processes, so a test can wait for one while a broker
//! runs in the same runtime. A [`Process`] collects the child's stdout and
//! stderr as they come (a full pipe never blocks it) and kills it when
//! dropped.

// Each test file uses a different part of this module.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

/// Longest any one wait may take.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The broker binary: `HERALD_BROKER_BIN` when set (CI points it at the
/// release build, the one the Docker image ships; a relative path is taken
/// from the workspace root), else the one cargo built for these tests.
pub fn broker_bin() -> PathBuf {
    let Some(path) = std::env::var_os("HERALD_BROKER_BIN") else {
        return PathBuf::from(env!("CARGO_BIN_EXE_herald-broker"));
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let path = workspace.join(path);
    assert!(
        path.is_file(),
        "HERALD_BROKER_BIN: {} is not a file; build it first \
         (cargo build --release -p herald-broker)",
        path.display()
    );
    path.canonicalize().expect("the binary's path resolves")
}

/// The broker binary with an empty environment plus `env`, and `args`.
pub fn broker(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(broker_bin());
    command.env_clear().envs(env.iter().copied()).args(args);
    command
}

/// `GET path` over a plain TCP connection: the status code, or `None` when
/// the connection failed or got no full answer within [`TIMEOUT`] (not
/// listening yet, or not answering).
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        Some(response)
    };
    let response = tokio::time::timeout(TIMEOUT, exchange).await.ok()??;
    let text = String::from_utf8_lossy(&response);
    text.split_whitespace().nth(1)?.parse().ok()
}

/// Polls until the daemon `process` answers `GET /healthz` on `addr` with
/// 200 (bounded by [`TIMEOUT`]); fails if it exits first.
pub async fn wait_serving(process: &mut Process, addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        if http_status(addr, "/healthz").await == Some(200) {
            return;
        }
        if let Some(status) = process.exited() {
            panic!(
                "the daemon exited before serving: {status}\n{}",
                process.stderr_so_far()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the daemon did not serve /healthz within {TIMEOUT:?}\n{}",
            process.stderr_so_far()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A running child process, killed when dropped.
pub struct Process {
    child: Child,
    stdout: Output,
    stderr: Output,
}

/// Text a child wrote to one stream, filled by a reader task.
struct Output {
    text: Arc<Mutex<String>>,
    reader: JoinHandle<()>,
}

impl Output {
    fn collect(stream: Option<impl AsyncRead + Unpin + Send + 'static>) -> Output {
        let text = Arc::new(Mutex::new(String::new()));
        let sink = text.clone();
        let reader = tokio::spawn(async move {
            let Some(mut stream) = stream else { return };
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                lock(&sink).push_str(&String::from_utf8_lossy(&buffer[..n]));
            }
        });
        Output { text, reader }
    }

    fn now(&self) -> String {
        lock(&self.text).clone()
    }

    /// Everything, once the stream ended (bounded by [`TIMEOUT`]).
    async fn all(self) -> String {
        let ended = tokio::time::timeout(TIMEOUT, self.reader).await;
        assert!(ended.is_ok(), "the output did not end within {TIMEOUT:?}");
        lock(&self.text).clone()
    }
}

fn lock(text: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    text.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a process ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

impl Process {
    /// Spawns `command` with stdin closed and stdout and stderr collected.
    pub fn spawn(command: &mut Command) -> Process {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the process starts");
        let stdout = Output::collect(child.stdout.take());
        let stderr = Output::collect(child.stderr.take());
        Process {
            child,
            stdout,
            stderr,
        }
    }

    /// Runs `command` to its end (bounded by [`TIMEOUT`]).
    pub async fn run(command: &mut Command) -> Finished {
        Process::spawn(command).finish().await
    }

    /// Sends a signal (`TERM`, `INT`, ...) by PID with the `kill` command.
    pub async fn signal(&self, name: &str) {
        let pid = self.pid();
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .await
            .expect("the kill command runs");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    /// Its process id (while it runs).
    pub fn pid(&self) -> u32 {
        self.child.id().expect("the process is still running")
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait works")
    }

    /// What it wrote to stderr so far (for failure messages).
    pub fn stderr_so_far(&self) -> String {
        self.stderr.now()
    }

    /// Waits for the exit (bounded by [`TIMEOUT`]) and returns the status
    /// and all output.
    pub async fn finish(mut self) -> Finished {
        let status = match tokio::time::timeout(TIMEOUT, self.child.wait()).await {
            Ok(status) => status.expect("waiting for the process works"),
            Err(_) => panic!(
                "the process did not exit within {TIMEOUT:?}; stderr so far:\n{}",
                self.stderr.now()
            ),
        };
        Finished {
            status,
            stdout: self.stdout.all().await,
            stderr: self.stderr.all().await,
        }
    }
}

/// A broker daemon serving on a free loopback port, started from the
/// built-in defaults plus `env` (`HERALD__…` variables) and killed when
/// dropped.
pub struct Served {
    pub process: Process,
    pub addr: std::net::SocketAddr,
}

impl Served {
    /// Starts the daemon and waits (bounded) until `/healthz` answers.
    pub async fn start(env: &[(&str, &str)]) -> Served {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec![("HERALD__SERVER__LISTEN", listen.as_str())];
        all.extend_from_slice(env);
        let process = Process::spawn(&mut broker(&[], &all));
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let served = Served { process, addr };
        for _ in 0..1000 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return served;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the broker did not listen on {addr}; stderr:\n{}",
            served.process.stderr_so_far()
        );
    }

    /// The daemon's resident set size now, in bytes (`VmRSS`).
    pub fn rss(&self) -> u64 {
        let pid = self.process.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .expect("/proc/PID/status is readable");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .map(|kib| kib * 1024)
            .expect("VmRSS in /proc/PID/status")
    }

    /// The value of one sample in `/metrics` (a line starting with
    /// `series`, e.g. `herald_connections_current` or
    /// `herald_connections_closed_total{reason="slow_consumer"}`).
    pub async fn metric(&self, series: &str) -> Option<f64> {
        let body = herald_tests::http_get(self.addr, "/metrics").await.body;
        body.lines()
            .filter(|line| !line.starts_with('#'))
            .find_map(|line| line.strip_prefix(series))
            .and_then(|rest| rest.trim().parse().ok())
    }

    /// Polls `/metrics` until `series` satisfies `check` (bounded by
    /// [`TIMEOUT`] plus `extra`); returns the last value.
    pub async fn wait_metric(
        &self,
        series: &str,
        extra: Duration,
        check: impl Fn(f64) -> bool,
    ) -> f64 {
        let deadline = tokio::time::Instant::now() + TIMEOUT + extra;
        loop {
            let value = self.metric(series).await.unwrap_or(0.0);
            if check(value) {
                return value;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} stayed at {value}; stderr:\n{}",
                self.process.stderr_so_far()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
