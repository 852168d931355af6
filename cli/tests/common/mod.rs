//! What the CLI's end-to-end tests share: running the real `herald` binary
//! as a child process against a broker started in-process by the
//! `herald-tests` harness.
//!
//! Every wait is bounded by [`TIMEOUT`]: reading a line, waiting for a
//! note on stderr, waiting for the process to exit. Tests synchronise on
//! what the process prints (`herald: subscribed ...`, `herald: ready ...`),
//! never on sleeps. Children are killed when dropped.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStderr, ChildStdout, Command};

/// The `herald` binary built for these tests.
pub const HERALD: &str = env!("CARGO_BIN_EXE_herald");

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Awaits `future`, failing the test after [`TIMEOUT`] with a message
/// naming `what` was awaited.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// A `herald` command with `args`, talking to `url` (via `--url`), in a
/// clean environment (no `HERALD_URL`, `HERALD_TOKEN` or `RUST_LOG`).
pub fn herald(url: &str, args: &[&str]) -> Command {
    let mut command = bare_herald(args);
    command.arg("--url").arg(url);
    command
}

/// A `herald` command with exactly `args` and a clean environment.
pub fn bare_herald(args: &[&str]) -> Command {
    let mut command = Command::new(HERALD);
    command
        .args(args)
        .env_remove("HERALD_URL")
        .env_remove("HERALD_TOKEN")
        .env_remove("HERALD_CA_FILE")
        .env_remove("HERALD_CLIENT_CERT")
        .env_remove("HERALD_CLIENT_KEY")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    command
}

/// How a finished `herald` process ended.
#[derive(Debug)]
pub struct Finished {
    /// Its exit code (`None` if a signal ended it).
    pub code: Option<i32>,
    /// Everything it printed on stdout.
    pub stdout: String,
    /// Everything it printed on stderr.
    pub stderr: String,
}

impl Finished {
    /// The stdout lines.
    pub fn lines(&self) -> Vec<&str> {
        self.stdout.lines().collect()
    }

    /// The stdout lines parsed as JSON.
    pub fn json_lines(&self) -> Vec<serde_json::Value> {
        self.lines()
            .into_iter()
            .map(|line| match serde_json::from_str(line) {
                Ok(value) => value,
                Err(error) => panic!("stdout line {line:?} is not JSON: {error}"),
            })
            .collect()
    }

    /// Asserts the exit code, showing the output if it differs.
    pub fn assert_code(&self, code: i32) -> &Finished {
        assert_eq!(self.code, Some(code), "unexpected exit code; {self:#?}");
        self
    }

    /// Asserts a failure: `code`, nothing on stdout, and one error line on
    /// stderr, `herald: error: ...` containing `fragment`, as its last line
    /// (notes such as `herald: subscribed ...` may come before it).
    pub fn assert_error(&self, code: i32, fragment: &str) -> &Finished {
        self.assert_code(code);
        assert_eq!(self.stdout, "", "a failure prints nothing on stdout");
        let errors: Vec<&str> = self
            .stderr
            .lines()
            .filter(|line| line.contains("error"))
            .collect();
        assert_eq!(
            errors.len(),
            1,
            "one error line on stderr: {:?}",
            self.stderr
        );
        assert_eq!(
            self.stderr.lines().last(),
            Some(errors[0]),
            "the error comes last: {:?}",
            self.stderr
        );
        assert!(
            errors[0].starts_with("herald: error: "),
            "stderr: {:?}",
            self.stderr
        );
        assert!(
            errors[0].contains(fragment),
            "stderr should mention {fragment:?}: {:?}",
            self.stderr
        );
        assert!(!self.stderr.contains("panicked"), "{:?}", self.stderr);
        self
    }
}

/// Runs `command` to completion (bounded) and collects its output.
pub async fn run(mut command: Command) -> Finished {
    let child = match command.spawn() {
        Ok(child) => child,
        Err(error) => panic!("could not start {HERALD}: {error}"),
    };
    let output = bounded("herald to exit", child.wait_with_output()).await;
    let output = output.expect("collecting the output of herald");
    Finished {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A `herald` process still running, read line by line.
#[derive(Debug)]
pub struct Running {
    child: Child,
    stdout: Option<Lines<BufReader<ChildStdout>>>,
    stderr: Lines<BufReader<ChildStderr>>,
    /// The stderr lines read so far.
    stderr_seen: Vec<String>,
    /// The stdout lines read so far.
    stdout_seen: Vec<String>,
}

impl Running {
    /// Starts `command`.
    pub fn spawn(mut command: Command) -> Running {
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => panic!("could not start {HERALD}: {error}"),
        };
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        Running {
            child,
            stdout: Some(BufReader::new(stdout).lines()),
            stderr: BufReader::new(stderr).lines(),
            stderr_seen: Vec::new(),
            stdout_seen: Vec::new(),
        }
    }

    /// Starts `command` and waits until it prints a stderr line containing
    /// `note` (e.g. "subscribed" or "ready").
    pub async fn started(command: Command, note: &str) -> Running {
        let mut running = Running::spawn(command);
        running.wait_for_stderr(note).await;
        running
    }

    /// Reads stderr until a line contains `needle`; returns that line.
    pub async fn wait_for_stderr(&mut self, needle: &str) -> String {
        let what = format!("a stderr line containing {needle:?}");
        loop {
            let line = bounded(&what, self.stderr.next_line()).await;
            match line.expect("reading herald's stderr") {
                Some(line) => {
                    self.stderr_seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                None => panic!(
                    "herald's stderr ended before {needle:?}; it printed {:?}",
                    self.stderr_seen
                ),
            }
        }
    }

    /// Reads the next stdout line.
    pub async fn next_line(&mut self) -> String {
        let stdout = self.stdout.as_mut().expect("stdout is still open");
        let line = bounded("a stdout line", stdout.next_line()).await;
        match line.expect("reading herald's stdout") {
            Some(line) => {
                self.stdout_seen.push(line.clone());
                line
            }
            None => panic!(
                "herald's stdout ended; stderr so far: {:?}",
                self.stderr_seen
            ),
        }
    }

    /// Sends the process SIGINT, as Ctrl-C in a terminal does.
    pub async fn interrupt(&self) {
        let pid = self.child.id().expect("the process is still running");
        let mut kill = Command::new("kill");
        kill.args(["-INT", &pid.to_string()]).kill_on_drop(true);
        let status = bounded("kill -INT", kill.status()).await;
        assert!(
            status.expect("running kill").success(),
            "kill -INT {pid} failed"
        );
    }

    /// Closes our end of the process's stdout, as `| head -1` does.
    pub fn close_stdout(&mut self) {
        self.stdout = None;
    }

    /// Waits (bounded) for the process to exit and collects the rest of its
    /// output, together with the lines already read.
    pub async fn finish(mut self) -> Finished {
        let stdout = self.stdout.take();
        let collect = async {
            let mut out = self.stdout_seen.clone();
            if let Some(mut stdout) = stdout {
                while let Some(line) = stdout.next_line().await.expect("reading stdout") {
                    out.push(line);
                }
            }
            let mut err = self.stderr_seen.clone();
            while let Some(line) = self.stderr.next_line().await.expect("reading stderr") {
                err.push(line);
            }
            let status = self.child.wait().await.expect("waiting for herald");
            (status, out, err)
        };
        let (status, out, err) = bounded("herald to exit", collect).await;
        Finished {
            code: status.code(),
            stdout: out.iter().map(|l| format!("{l}\n")).collect(),
            stderr: err.iter().map(|l| format!("{l}\n")).collect(),
        }
    }
}

/// A port on 127.0.0.1 that nothing listens on (bound, then released).
pub fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    let port = listener.local_addr().expect("its address").port();
    drop(listener);
    port
}
