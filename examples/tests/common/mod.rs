//! Example services as child processes of a test: the example binary
//! cargo built next to the test (checked to be newer than its sources),
//! started against a test broker, its stdout lines parsed as [`Line`]s on
//! a channel, its stderr kept for failure messages, killed when dropped.
//! Shared by the tests of this crate (each uses a part of it).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use herald_examples::Line;
use herald_tests::TestBroker;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// Longest the whole exchange of one phase may take.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(20);

/// A stdout line of one running service: (which copy, the line).
pub(crate) type Tagged = (usize, Line);
/// A stdout line as read: (which copy, the text).
pub(crate) type Raw = (usize, String);

pub(crate) use herald_tests::examples::example_binary;

/// One running example service. Its stdout lines go, parsed, to the
/// channel it was started with; its stderr (logs) is kept for failure
/// messages. Killed when dropped.
pub(crate) struct Service {
    name: String,
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Service {
    /// Starts example `name` as copy `copy` with `args`, against `broker`,
    /// sending its stdout lines to `lines`.
    pub(crate) fn start(
        name: &str,
        copy: usize,
        broker: &TestBroker,
        args: &[&str],
        lines: &mpsc::Sender<Raw>,
    ) -> Service {
        let mut child = Command::new(example_binary(name))
            .args(args)
            .env_clear()
            .env("HERALD_URL", broker.url())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} example: {e}"));
        let label = format!("{name}#{copy}");
        let stdout = child.stdout.take().expect("stdout is piped");
        let tx = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(text)) = reader.next_line().await {
                if tx.send((copy, text)).await.is_err() {
                    break;
                }
            }
        });
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = logs.clone();
        let mut stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buffer).await {
                let text = String::from_utf8_lossy(&buffer[..n]);
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&text);
            }
        });
        Service {
            name: label,
            child,
            logs,
        }
    }

    pub(crate) fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends SIGTERM (as Ctrl-C or `docker stop` would).
    pub(crate) async fn terminate(&self) {
        let pid = self.child.id().expect("the service is running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("the kill command runs");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the exit (bounded).
    pub(crate) async fn exit_status(&mut self) -> ExitStatus {
        match tokio::time::timeout(TIMEOUT, self.child.wait()).await {
            Ok(status) => status.expect("waiting works"),
            Err(_) => panic!(
                "{} did not exit within {TIMEOUT:?}; its logs:\n{}",
                self.name,
                self.logs()
            ),
        }
    }

    /// Waits for a clean exit (status 0).
    pub(crate) async fn assert_exits_cleanly(&mut self) {
        let status = self.exit_status().await;
        assert!(
            status.success(),
            "{} exited with {status}; its logs:\n{}",
            self.name,
            self.logs()
        );
    }
}

/// The next line on `lines` before `deadline`, parsed; `None` once every
/// sender is gone (the services' stdout ended).
pub(crate) async fn next_line(
    lines: &mut mpsc::Receiver<Raw>,
    deadline: Instant,
    waiting_for: &str,
    services: &[&Service],
) -> Option<Tagged> {
    match timeout_at(deadline, lines.recv()).await {
        Ok(None) => None,
        Ok(Some((copy, text))) => match text.parse::<Line>() {
            Ok(line) => Some((copy, line)),
            Err(error) => {
                panic!("copy {copy} printed a stray line while waiting for {waiting_for}: {error}")
            }
        },
        Err(_) => {
            let logs: Vec<String> = services
                .iter()
                .map(|s| format!("--- {}:\n{}", s.name, s.logs()))
                .collect();
            panic!(
                "timed out after {TIMEOUT:?} waiting for {waiting_for}\n{}",
                logs.join("\n")
            )
        }
    }
}

/// Reads `lines` until every service started on it printed `ready`.
pub(crate) async fn wait_ready(lines: &mut mpsc::Receiver<Raw>, services: &[&Service]) {
    let deadline = Instant::now() + TIMEOUT;
    let mut ready = vec![false; services.len()];
    while ready.contains(&false) {
        match next_line(lines, deadline, "ready lines", services).await {
            Some((copy, Line::Ready)) => ready[copy] = true,
            Some(other) => panic!("{other:?} before every service was ready"),
            None => panic!("a service ended before it was ready"),
        }
    }
}
