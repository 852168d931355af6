//! Process-level tests of the `herald-broker` daemon: layered
//! configuration (checked through `--print-config`), exit code 2 with a
//! message naming the key (or path) for bad configuration, serving
//! `/healthz`, and a graceful exit on SIGTERM / SIGINT that closes
//! connected clients with 1001.
//!
//! Every child process is owned by a [`Daemon`] guard that kills it (by
//! PID) and reaps it when dropped; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use herald_config::Settings;
use herald_protocol::envelope::Hello;
use herald_protocol::{CloseReason, Envelope, SUBPROTOCOL, WS_PATH, decode, encode};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

mod support;

use support::http_status;

const BIN: &str = env!("CARGO_BIN_EXE_herald-broker");
/// Longest any one wait may take.
const TIMEOUT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(10);

/// A child process that is killed and reaped when dropped.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn spawn(command: &mut Command) -> Daemon {
        let child = command.spawn().expect("the broker binary starts");
        Daemon { child }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by PID with the `kill` command.
    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("the kill command runs");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Polls until the process exits (bounded by [`TIMEOUT`]).
    fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait works") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the broker did not exit within {TIMEOUT:?}"
            );
            std::thread::sleep(POLL);
        }
    }

    /// Waits for the exit and returns the status and everything written
    /// to stdout and stderr (both must be piped).
    fn finish(mut self) -> (ExitStatus, String, String) {
        let status = self.wait_exit();
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_string(&mut stdout).unwrap();
        }
        if let Some(mut err) = self.child.stderr.take() {
            err.read_to_string(&mut stderr).unwrap();
        }
        (status, stdout, stderr)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The broker binary with an empty environment plus `env`, and `args`.
fn broker(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(BIN);
    command
        .env_clear()
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs the broker to its exit: (status, stdout, stderr).
fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    Daemon::spawn(&mut broker(args, env)).finish()
}

/// The effective configuration printed by `--print-config`.
fn printed_config(args: &[&str], env: &[(&str, &str)]) -> toml::Table {
    let mut all = vec!["--print-config"];
    all.extend_from_slice(args);
    let (status, stdout, stderr) = run(&all, env);
    assert!(
        status.success(),
        "--print-config failed: {status}\n{stderr}"
    );
    stdout.parse().expect("--print-config prints TOML")
}

fn value<'a>(config: &'a toml::Table, key: &str) -> &'a toml::Value {
    let (section, name) = key.split_once('.').unwrap();
    config
        .get(section)
        .and_then(|s| s.get(name))
        .unwrap_or_else(|| panic!("{key} missing from {config}"))
}

/// A temporary config file, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(contents: &str) -> TempFile {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "herald-daemon-test-{}-{}.toml",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A port that was free a moment ago (bind to :0, read, release).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Asserts exit status 2 and that stderr mentions every one of `needles`.
fn assert_config_error(args: &[&str], env: &[(&str, &str)], needles: &[&str]) {
    let (status, stdout, stderr) = run(args, env);
    assert_eq!(
        status.code(),
        Some(2),
        "{args:?} {env:?}: expected exit 2, got {status}\nstderr: {stderr}"
    );
    assert!(stdout.is_empty(), "nothing on stdout: {stdout}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?} {env:?}: stderr should name {needle:?}: {stderr}"
        );
    }
}

#[test]
fn print_config_without_layers_is_the_built_in_default() {
    let (status, stdout, stderr) = run(&["--print-config"], &[]);
    assert!(status.success(), "{stderr}");
    assert_eq!(stdout, Settings::defaults().to_toml());
    let config: toml::Table = stdout.parse().unwrap();
    assert_eq!(
        value(&config, "server.listen").as_str(),
        Some("127.0.0.1:7400")
    );
}

#[test]
fn config_layers_apply_in_order_default_file_env_flags() {
    let file = TempFile::new(
        r#"
[server]
listen = "127.0.0.1:8001"
max_connections = 10
heartbeat_interval = "5s"

[delivery]
queue_capacity = 50

[limits]
max_rooms_per_connection = 5
"#,
    );
    let env = [
        ("HERALD__SERVER__LISTEN", "127.0.0.1:8002"),
        ("HERALD__DELIVERY__QUEUE_CAPACITY", "60"),
        ("HERALD__LIMITS__MAX_ROOMS_PER_CONNECTION", "7"),
        // Not ours (single underscore): ignored.
        ("HERALD_URL", "ws://example.invalid"),
    ];
    let config = printed_config(
        &[
            "--config",
            file.path(),
            "--listen",
            "127.0.0.1:8003",
            "--set",
            "delivery.queue_capacity=70",
            "--log-format",
            "json",
        ],
        &env,
    );
    // Flags beat the environment, which beats the file.
    assert_eq!(
        value(&config, "server.listen").as_str(),
        Some("127.0.0.1:8003")
    );
    assert_eq!(
        value(&config, "delivery.queue_capacity").as_integer(),
        Some(70)
    );
    assert_eq!(value(&config, "log.format").as_str(), Some("json"));
    // The environment beats the file.
    assert_eq!(
        value(&config, "limits.max_rooms_per_connection").as_integer(),
        Some(7)
    );
    // The file beats the defaults.
    assert_eq!(
        value(&config, "server.max_connections").as_integer(),
        Some(10)
    );
    assert_eq!(
        value(&config, "server.heartbeat_interval").as_str(),
        Some("5s")
    );
    // Untouched keys keep their defaults.
    assert_eq!(
        value(&config, "limits.max_payload_bytes").as_integer(),
        Some(1_048_576)
    );
    assert_eq!(
        value(&config, "server.heartbeat_timeout").as_str(),
        Some("45s")
    );

    // Without the flags, the environment wins over the file.
    let config = printed_config(&["--config", file.path()], &env);
    assert_eq!(
        value(&config, "server.listen").as_str(),
        Some("127.0.0.1:8002")
    );
    assert_eq!(
        value(&config, "delivery.queue_capacity").as_integer(),
        Some(60)
    );
    // Without the environment, the file wins over the defaults.
    let config = printed_config(&["--config", file.path()], &[]);
    assert_eq!(
        value(&config, "server.listen").as_str(),
        Some("127.0.0.1:8001")
    );
    assert_eq!(
        value(&config, "delivery.queue_capacity").as_integer(),
        Some(50)
    );

    // The printed configuration loads back unchanged.
    let printed = TempFile::new(&toml::to_string(&config).unwrap());
    let reloaded = printed_config(&["--config", printed.path()], &[]);
    assert_eq!(reloaded, config);
}

#[test]
fn a_bad_value_in_a_lower_layer_is_overridden_by_a_good_one_above() {
    let config = printed_config(
        &["--listen", "127.0.0.1:8004"],
        &[("HERALD__SERVER__LISTEN", "not an address")],
    );
    assert_eq!(
        value(&config, "server.listen").as_str(),
        Some("127.0.0.1:8004")
    );
}

#[test]
fn invalid_values_exit_2_naming_the_key() {
    // In the file.
    let file = TempFile::new("[limits]\nmax_payload_bytes = 0\n");
    assert_config_error(
        &["--config", file.path()],
        &[],
        &["limits.max_payload_bytes"],
    );
    let file = TempFile::new("[server]\nheartbeat_interval = \"1m\"\n");
    assert_config_error(
        &["--config", file.path()],
        &[],
        &["server.heartbeat_timeout", "server.heartbeat_interval"],
    );
    let file = TempFile::new("[server]\nlisen = \"127.0.0.1:1\"\n");
    assert_config_error(&["--config", file.path()], &[], &["server.lisen"]);
    // In the environment.
    assert_config_error(
        &[],
        &[("HERALD__SERVER__MAX_CONNECTIONS", "lots")],
        &["server.max_connections"],
    );
    assert_config_error(
        &[],
        &[("HERALD__DELIVERY__QUEUE_CAPACITY", "0")],
        &["delivery.queue_capacity"],
    );
    assert_config_error(
        &[],
        &[("HERALD__SERVER__LISEN", "127.0.0.1:1")],
        &["server.lisen", "HERALD__SERVER__LISEN"],
    );
    // In flags.
    assert_config_error(
        &["--set", "delivery.slow_consumer=sometimes"],
        &[],
        &["delivery.slow_consumer", "sometimes"],
    );
    assert_config_error(&["--listen", "localhost"], &[], &["server.listen"]);
    assert_config_error(&["--log-level", "loud"], &[], &["log.level"]);
    assert_config_error(&["--set", "server.lisen=x"], &[], &["server.lisen"]);
    assert_config_error(&["--set", "no-equals-sign"], &[], &["no-equals-sign"]);
    // `--print-config` does not hide an invalid configuration.
    assert_config_error(
        &[
            "--print-config",
            "--set",
            "limits.max_rooms_per_connection=0",
        ],
        &[],
        &["limits.max_rooms_per_connection"],
    );
}

#[test]
fn a_missing_or_malformed_config_file_exits_2_naming_the_path() {
    let missing = std::env::temp_dir().join("herald-daemon-test-does-not-exist.toml");
    let missing = missing.to_str().unwrap();
    assert_config_error(&["--config", missing], &[], &[missing]);
    let malformed = TempFile::new("[server\nlisten = ");
    assert_config_error(&["--config", malformed.path()], &[], &[malformed.path()]);
}

#[test]
fn a_listen_address_in_use_fails_to_start_naming_the_key() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, _stdout, stderr) = run(&["--listen", &addr, "--log-level", "off"], &[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("server.listen"), "{stderr}");
    assert!(stderr.contains(&addr), "{stderr}");
}

/// Starts the daemon on a free port and waits until `/healthz` answers.
async fn serving_daemon() -> (Daemon, SocketAddr) {
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let listen = addr.to_string();
    let mut command = broker(
        &[
            "--listen",
            &listen,
            "--log-level",
            "warn",
            "--set",
            "server.shutdown_grace=2s",
        ],
        &[],
    );
    command.stdout(Stdio::null());
    let mut daemon = Daemon::spawn(&mut command);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if http_status(addr, "/healthz").await == Some(200) {
            return (daemon, addr);
        }
        if let Some(status) = daemon.child.try_wait().unwrap() {
            panic!("the daemon exited before serving: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the daemon did not serve /healthz within {TIMEOUT:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::test]
async fn the_daemon_serves_and_exits_0_on_sigterm_closing_clients_with_1001() {
    let (daemon, addr) = serving_daemon().await;
    assert_eq!(http_status(addr, "/readyz").await, Some(200));

    let mut request = format!("ws://{addr}{WS_PATH}")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let (mut ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .expect("upgrade in time")
        .expect("upgrade accepted");
    let hello = Envelope::Hello(Hello {
        version: 1,
        ..Hello::default()
    });
    ws.send(Message::Binary(encode(&hello).into()))
        .await
        .unwrap();
    let mut next = async || match tokio::time::timeout(TIMEOUT, ws.next()).await {
        Ok(Some(Ok(message))) => message,
        other => panic!("expected a frame, got {other:?}"),
    };
    let Message::Binary(frame) = next().await else {
        panic!("expected welcome");
    };
    assert!(matches!(decode(&frame), Ok(Envelope::Welcome(_))));

    daemon.signal("TERM");
    let Message::Binary(frame) = next().await else {
        panic!("expected the close envelope");
    };
    match decode(&frame) {
        Ok(Envelope::Close { reason, .. }) => assert_eq!(reason, CloseReason::ShuttingDown),
        other => panic!("expected the close envelope, got {other:?}"),
    }
    match next().await {
        Message::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 1001);
            assert_eq!(frame.reason.as_str(), "shutting_down");
        }
        other => panic!("expected close frame 1001, got {other:?}"),
    }

    let (status, _stdout, stderr) = daemon.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert_eq!(
        http_status(addr, "/healthz").await,
        None,
        "no longer listening"
    );
}

#[tokio::test]
async fn the_daemon_exits_0_on_sigint() {
    let (daemon, _addr) = serving_daemon().await;
    daemon.signal("INT");
    let (status, _stdout, stderr) = daemon.finish();
    assert_eq!(status.code(), Some(0), "{stderr}");
}
