//! Real Socket.IO clients scripted by the end-to-end tests.
//!
//! A [`SioDriver`] runs one stock Socket.IO client program and talks to it
//! in JSON, one object per line: `socket.io-client` on Node
//! (`tests/socketio/driver.js`), python-socketio's asyncio client
//! (`tests/socketio/driver.py`), or `socket.io-client`'s browser bundle in
//! headless Chromium (`tests/socketio/page.html`, see [`browser`]). One
//! driver holds any number of sockets, each named by the test (`id`).
//! [`Target`] is the Socket.IO server they talk to (Herald with the
//! conformance service; the Node reference server for comparison).
//!
//! What they need is installed by `scripts/socketio-deps.sh` (run by
//! `scripts/test.sh`); a test whose client is missing fails and says so.
//!
//! # The protocol
//! Every command carries `req` (the harness numbers them) and is answered
//! `{"type":"done","req":N,"cmd":..}` once handled (with results for
//! `transport`), or `{"type":"error","req":N,"message":..}`.
//!
//! | command | fields | effect |
//! |---|---|---|
//! | `connect` | `id`, `url`, `namespace` (`/`), `transports` (`["websocket"]`, `["polling"]`, `["polling","websocket"]`), `auth`, `path` (`/socket.io/`), `reconnection` (false), `listen` (`["*"]`), `timeout_ms` | opens socket `id` (replacing an older one of that id) |
//! | `emit` | `id`, `event`, `args` (array), `ack` (bool), `seq`, `timeout_ms` | `socket.emit(event, ...args[, ack])` |
//! | `emit_seq` | `id`, `event`, `count`, `from` (0) | emits `event(i)` for `i` in `from..from+count` |
//! | `on` / `off` | `id`, `event` (`*` = all), `reply` (array) | report (or stop reporting) that event; `reply`: the args answering the server's ack |
//! | `transport` | `id` | done carries `transport`, `connected`, `sid` |
//! | `disconnect` / `close` | `id` | `socket.disconnect()` (`close` also forgets the id) |
//! | `exit` | | closes every socket and ends the driver |
//!
//! Outputs: `{"type":"ready","client":..}` once at start;
//! `{"type":"connected","id","sid","transport"}`;
//! `{"type":"connect_error","id","message","data"}`;
//! `{"type":"event","id","event","args"}`; `{"type":"ack","id","seq","args"}`;
//! `{"type":"ack_timeout","id","seq"}`; `{"type":"disconnect","id","reason"}`
//! (the client library's own reason string);
//! `{"type":"upgrade","id","transport"}` (Node and browser; python-socketio
//! upgrades inside `connect`); `{"type":"reconnect_attempt","id","attempt"}`
//! (Node and browser); `{"type":"reconnect","id","attempt"}`, before the
//! `connected` of a socket that came back.
//!
//! Binary values are `{"$bin":"<base64>"}` in both directions, at any depth.
//!
//! # Waiting
//! [`SioDriver::expect`] keeps outputs that did not match in a backlog, so
//! a test can await outputs in any order; every wait gives up after
//! [`SIO_TIMEOUT`] and says what it awaited and what came instead.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

pub mod browser;
mod relay;
mod target;

pub use target::{
    DEFAULT_TARGET, HeraldServer, PING_INTERVAL, PING_TIMEOUT, ReferenceServer, Target,
    conformance_settings,
};

/// Longest a single wait on a client may take (a connect, an event, an
/// ack, a reconnection).
pub const SIO_TIMEOUT: Duration = Duration::from_secs(10);

/// `tests/socketio`: the drivers, the page, the reference server and
/// their installs.
pub fn socketio_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("socketio")
}

/// Panics with the install command when `path` (part of what
/// `scripts/socketio-deps.sh` installs) is missing.
pub(crate) fn require_installed(path: &Path, what: &str) {
    if !path.exists() {
        panic!(
            "{what} is not installed ({} is missing): run `bash scripts/socketio-deps.sh` \
             (scripts/test.sh, the test command, runs it)",
            path.display()
        );
    }
}

/// A log file in the temp dir, unique per test process and name.
pub(crate) fn log_path(name: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("herald-sio-{}-{n}-{name}.log", std::process::id()))
}

/// Which client program a [`SioDriver`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientKind {
    /// `socket.io-client` on Node.
    Node,
    /// python-socketio's asyncio client.
    Python,
    /// `socket.io-client`'s browser bundle in headless Chromium.
    Browser,
}

/// The transports a socket may use, as the client's `transports` option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transports {
    /// WebSocket only.
    Websocket,
    /// HTTP long-polling only.
    Polling,
    /// Long-polling first, then the upgrade to WebSocket (the default).
    Upgrade,
}

impl Transports {
    /// The `transports` option.
    pub fn json(self) -> Value {
        match self {
            Transports::Websocket => json!(["websocket"]),
            Transports::Polling => json!(["polling"]),
            Transports::Upgrade => json!(["polling", "websocket"]),
        }
    }

    /// The transport a socket ends up on.
    pub fn settled(self) -> &'static str {
        match self {
            Transports::Polling => "polling",
            Transports::Websocket | Transports::Upgrade => "websocket",
        }
    }
}

/// A connected socket, as the `connected` output told it.
#[derive(Debug, Clone)]
pub struct Connected {
    /// The socket's id (`socket.id`).
    pub sid: String,
    /// The transport at the moment of connection.
    pub transport: String,
}

/// A child process killed (by its PID, or its process group's id) when
/// dropped.
#[derive(Debug)]
pub(crate) struct ChildGuard {
    child: Child,
    group: bool,
}

impl ChildGuard {
    /// Spawns `command` with `stdin`/`stdout` piped and stderr to `log`;
    /// with `group`, in a process group of its own (for programs that start
    /// children of their own, like Chromium), which is killed whole.
    pub(crate) fn spawn(command: &mut Command, log: &Path, group: bool, what: &str) -> ChildGuard {
        let stderr = match std::fs::File::create(log) {
            Ok(file) => file,
            Err(error) => panic!("cannot create the log {}: {error}", log.display()),
        };
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true);
        if group {
            command.process_group(0);
        }
        match command.spawn() {
            Ok(child) => ChildGuard { child, group },
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "{what} cannot start: its program is not installed ({error}); \
                 run `bash scripts/socketio-deps.sh`"
            ),
            Err(error) => panic!("{what} cannot start: {error}"),
        }
    }

    pub(crate) fn stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub(crate) fn stdout(&mut self) -> Option<ChildStdout> {
        self.child.stdout.take()
    }

    /// Kills the child now and waits (bounded) until it is gone.
    pub(crate) async fn kill(&mut self) {
        self.signal_kill();
        if tokio::time::timeout(SIO_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            panic!("a killed child process did not exit within {SIO_TIMEOUT:?}");
        }
    }

    /// Waits (bounded) for the child to exit by itself; kills it if it
    /// does not.
    pub(crate) async fn wait_exit(&mut self) {
        if tokio::time::timeout(SIO_TIMEOUT, self.child.wait())
            .await
            .is_err()
        {
            self.kill().await;
            panic!("a client program did not exit within {SIO_TIMEOUT:?} of `exit`");
        }
    }

    /// Sends SIGKILL (to the process group, for a group leader).
    pub(crate) fn signal_kill(&mut self) {
        let pid = self
            .child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(rustix::process::Pid::from_raw);
        match pid {
            Some(pid) if self.group => {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            _ => {
                let _ = self.child.start_kill();
            }
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.signal_kill();
        // Reap it if it is already gone; tokio reaps it later otherwise.
        let _ = self.child.try_wait();
    }
}

/// Where a driver's commands go.
#[derive(Debug)]
pub(crate) enum Sink {
    Stdin(ChildStdin),
    Page(std::sync::Arc<browser::CommandQueue>),
}

/// What keeps a driver's program alive; dropped (killed) with the driver.
#[derive(Debug)]
pub(crate) enum Holder {
    /// A driver process.
    Process(ChildGuard),
    /// Chromium and the page's HTTP server.
    Browser(browser::Browser),
}

/// One running client program and its outputs (see the module docs).
#[derive(Debug)]
pub struct SioDriver {
    label: String,
    sink: Sink,
    outputs: mpsc::UnboundedReceiver<Value>,
    backlog: VecDeque<Value>,
    recent: VecDeque<String>,
    next_req: u64,
    next_seq: u64,
    log: PathBuf,
    holder: Holder,
}

/// An output the reader adds when the program's stdout ends.
const EXITED: &str = "$exited";

impl SioDriver {
    /// Starts a client program of `kind` and waits for its `ready`.
    pub async fn start(kind: ClientKind) -> SioDriver {
        SioDriver::start_with_env(kind, &[]).await
    }

    /// [`SioDriver::start`] for a Node or Python client that trusts the
    /// CA certificate(s) of the PEM file `ca` for `https://` servers (Node:
    /// `NODE_EXTRA_CA_CERTS`; Python: `SSL_CERT_FILE`, read by the
    /// default SSL context aiohttp uses).
    pub async fn start_trusting(kind: ClientKind, ca: &Path) -> SioDriver {
        let ca = ca.as_os_str();
        let env = [("NODE_EXTRA_CA_CERTS", ca), ("SSL_CERT_FILE", ca)];
        SioDriver::start_with_env(kind, &env).await
    }

    async fn start_with_env(kind: ClientKind, env: &[(&str, &std::ffi::OsStr)]) -> SioDriver {
        match kind {
            ClientKind::Node => {
                let dir = socketio_dir();
                require_installed(
                    &dir.join("node_modules/socket.io-client"),
                    "socket.io-client",
                );
                let mut command = Command::new("node");
                command.arg(dir.join("driver.js")).envs(env.iter().copied());
                SioDriver::start_process("node", command).await
            }
            ClientKind::Python => {
                let dir = socketio_dir();
                let python = dir.join(".cache/venv/bin/python");
                require_installed(&python, "python-socketio");
                let mut command = Command::new(python);
                command.arg(dir.join("driver.py")).envs(env.iter().copied());
                SioDriver::start_process("python", command).await
            }
            ClientKind::Browser => browser::start().await,
        }
    }

    async fn start_process(label: &str, mut command: Command) -> SioDriver {
        let log = log_path(&format!("{label}-driver"));
        let mut child =
            ChildGuard::spawn(&mut command, &log, false, &format!("the {label} driver"));
        let (Some(stdin), Some(stdout)) = (child.stdin(), child.stdout()) else {
            panic!("the {label} driver's pipes are missing");
        };
        let (tx, outputs) = mpsc::unbounded_channel();
        tokio::spawn(read_lines(stdout, tx));
        let holder = Holder::Process(child);
        SioDriver::launched(label, Sink::Stdin(stdin), outputs, log, holder, SIO_TIMEOUT).await
    }

    /// A driver for a program just started: waits (up to `within`) for its
    /// `ready`.
    pub(crate) async fn launched(
        label: &str,
        sink: Sink,
        outputs: mpsc::UnboundedReceiver<Value>,
        log: PathBuf,
        holder: Holder,
        within: Duration,
    ) -> SioDriver {
        let mut driver = SioDriver {
            label: label.to_owned(),
            sink,
            outputs,
            backlog: VecDeque::new(),
            recent: VecDeque::new(),
            next_req: 0,
            next_seq: 0,
            log,
            holder,
        };
        driver
            .expect_within("the client to start (`ready`)", within, |v| {
                v["type"] == "ready"
            })
            .await;
        driver
    }

    /// Which program this is (`node`, `python`, `browser`).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The file holding the program's stderr (console output for the
    /// browser).
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Sends one command (numbered here) and waits for its `done`; panics
    /// on its `error`. Returns the `done` output.
    pub async fn send(&mut self, mut cmd: Value) -> Value {
        self.next_req += 1;
        let req = self.next_req;
        cmd["req"] = json!(req);
        self.send_line(req, cmd.to_string()).await
    }

    /// [`SioDriver::send`] for a command written as JSON text, `{req}`
    /// standing for its number: for key orders a `Value` cannot keep
    /// (it sorts object keys).
    pub async fn send_text(&mut self, template: &str) -> Value {
        self.next_req += 1;
        let req = self.next_req;
        let line = template.replace("{req}", &req.to_string());
        self.send_line(req, line).await
    }

    async fn send_line(&mut self, req: u64, line: String) -> Value {
        match &mut self.sink {
            Sink::Stdin(stdin) => {
                let mut bytes = line.clone().into_bytes();
                bytes.push(b'\n');
                if let Err(error) = stdin.write_all(&bytes).await {
                    panic!(
                        "{}: cannot send {line}: {error} (log: {})",
                        self.label,
                        self.log.display()
                    );
                }
            }
            Sink::Page(queue) => queue.push(line.clone()),
        }
        let answer = self
            .expect(&format!("the answer to {line}"), |v| {
                v["req"] == json!(req) && (v["type"] == "done" || v["type"] == "error")
            })
            .await;
        if answer["type"] == "error" {
            panic!(
                "{}: the command {line} failed: {}",
                self.label, answer["message"]
            );
        }
        answer
    }

    /// The next output satisfying `matches` (from the backlog first),
    /// within [`SIO_TIMEOUT`]; `what` names it in the failure message.
    pub async fn expect(&mut self, what: &str, matches: impl Fn(&Value) -> bool) -> Value {
        self.expect_within(what, SIO_TIMEOUT, matches).await
    }

    /// [`SioDriver::expect`] with another bound.
    pub async fn expect_within(
        &mut self,
        what: &str,
        within: Duration,
        matches: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(found) = self.backlog.iter().position(&matches) {
            if let Some(value) = self.backlog.remove(found) {
                return value;
            }
        }
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let next = tokio::time::timeout_at(deadline, self.outputs.recv()).await;
            let value = match next {
                Ok(Some(value)) => value,
                Ok(None) => self.fail(what, "the client's output ended"),
                Err(_) => self.fail(what, &format!("timed out after {within:?}")),
            };
            if value["type"] == EXITED {
                self.fail(what, "the client program exited");
            }
            if value["type"] == "error" && value["req"].is_null() {
                self.fail(what, &format!("the client reported an error: {value}"));
            }
            self.recent.push_back(raw(&value).to_owned());
            if self.recent.len() > 20 {
                self.recent.pop_front();
            }
            if matches(&value) {
                return value;
            }
            self.backlog.push_back(value);
        }
    }

    fn fail(&self, what: &str, why: &str) -> ! {
        let recent: Vec<&str> = self.recent.iter().map(String::as_str).collect();
        panic!(
            "{}: waiting for {what}: {why}; the last outputs were:\n  {}\n(log: {})",
            self.label,
            recent.join("\n  "),
            self.log.display()
        );
    }

    /// Outputs received but not consumed yet.
    pub fn backlog(&self) -> impl Iterator<Item = &Value> {
        self.backlog.iter()
    }

    /// A `connect` command for socket `id` (add `auth`, `reconnection`, ...
    /// before [`SioDriver::open`]).
    pub fn connect_cmd(id: &str, url: &str, namespace: &str, transports: Transports) -> Value {
        json!({
            "cmd": "connect",
            "id": id,
            "url": url,
            "namespace": namespace,
            "transports": transports.json(),
        })
    }

    /// Sends a `connect` command and waits for its socket's `connected`
    /// (`Ok`) or `connect_error` (`Err`, the output).
    pub async fn open(&mut self, cmd: Value) -> Result<Connected, Value> {
        let id = cmd["id"].clone();
        self.send(cmd).await;
        let output = self
            .expect(&format!("socket {id} to connect"), |v| {
                v["id"] == id && (v["type"] == "connected" || v["type"] == "connect_error")
            })
            .await;
        if output["type"] == "connect_error" {
            return Err(output);
        }
        Ok(Connected {
            sid: output["sid"].as_str().unwrap_or_default().to_owned(),
            transport: output["transport"].as_str().unwrap_or_default().to_owned(),
        })
    }

    /// Connects socket `id` and panics unless it connects.
    pub async fn connect(
        &mut self,
        id: &str,
        url: &str,
        namespace: &str,
        transports: Transports,
    ) -> Connected {
        let cmd = SioDriver::connect_cmd(id, url, namespace, transports);
        match self.open(cmd).await {
            Ok(connected) => connected,
            Err(error) => panic!(
                "{}: socket {id} did not connect to {url}{namespace}: {error}",
                self.label
            ),
        }
    }

    /// `socket.emit(event, ...args)` without an ack.
    pub async fn emit(&mut self, id: &str, event: &str, args: Value) {
        self.send(json!({"cmd": "emit", "id": id, "event": event, "args": args}))
            .await;
    }

    /// Emits with an ack callback; returns its sequence number (await the
    /// ack with [`SioDriver::expect_ack`]).
    pub async fn emit_with_ack(&mut self, id: &str, event: &str, args: Value) -> u64 {
        self.next_seq += 1;
        let seq = self.next_seq;
        self.send(json!({
            "cmd": "emit", "id": id, "event": event, "args": args, "ack": true, "seq": seq,
        }))
        .await;
        seq
    }

    /// The arguments of ack `seq`.
    pub async fn expect_ack(&mut self, seq: u64) -> Vec<Value> {
        let output = self
            .expect(&format!("ack {seq}"), |v| {
                v["type"] == "ack" && v["seq"] == json!(seq)
            })
            .await;
        args_of(&output)
    }

    /// Emits with an ack and returns the ack's arguments.
    pub async fn call(&mut self, id: &str, event: &str, args: Value) -> Vec<Value> {
        let seq = self.emit_with_ack(id, event, args).await;
        self.expect_ack(seq).await
    }

    /// The arguments of the next `event` received by socket `id`.
    pub async fn expect_event(&mut self, id: &str, event: &str) -> Vec<Value> {
        args_of(&self.expect_event_output(id, event).await)
    }

    /// The whole output of the next `event` received by socket `id` (see
    /// [`raw`]).
    pub async fn expect_event_output(&mut self, id: &str, event: &str) -> Value {
        self.expect(&format!("event {event:?} on socket {id}"), |v| {
            v["type"] == "event" && v["id"] == id && v["event"] == event
        })
        .await
    }

    /// The next `event` with exactly `args` received by socket `id`
    /// (others stay in the backlog: on a server shared with other tests,
    /// their events may arrive too).
    pub async fn expect_event_args(&mut self, id: &str, event: &str, args: &Value) {
        self.expect(&format!("event {event:?} {args} on socket {id}"), |v| {
            v["type"] == "event" && v["id"] == id && v["event"] == event && v["args"] == *args
        })
        .await;
    }

    /// Panics if socket `id` has received `event` with `args` and it was not
    /// consumed. Await something that was sent after it first (an ack on
    /// the same connection), so that anything sent before has arrived.
    pub fn assert_not_received(&self, id: &str, event: &str, args: &Value) {
        if let Some(found) = self.backlog.iter().find(|v| {
            v["type"] == "event" && v["id"] == id && v["event"] == event && v["args"] == *args
        }) {
            panic!(
                "{}: socket {id} should not have received {event:?}, got {found}",
                self.label
            );
        }
    }

    /// The transport socket `id` uses now (`None` when disconnected).
    pub async fn transport(&mut self, id: &str) -> Option<String> {
        let done = self.send(json!({"cmd": "transport", "id": id})).await;
        done["transport"].as_str().map(str::to_owned)
    }

    /// Waits (bounded) until socket `id` uses `transport`: at once, or
    /// after its `upgrade` output.
    pub async fn wait_transport(&mut self, id: &str, transport: &str) {
        for _ in 0..3 {
            if self.transport(id).await.as_deref() == Some(transport) {
                return;
            }
            self.expect(&format!("socket {id} to upgrade to {transport}"), |v| {
                v["type"] == "upgrade" && v["id"] == id
            })
            .await;
        }
        let now = self.transport(id).await;
        panic!("{}: socket {id} uses {now:?}, not {transport}", self.label);
    }

    /// `socket.disconnect()`, then its `disconnect` output.
    pub async fn disconnect(&mut self, id: &str) -> Value {
        self.send(json!({"cmd": "disconnect", "id": id})).await;
        self.expect(&format!("socket {id} to disconnect"), |v| {
            v["type"] == "disconnect" && v["id"] == id
        })
        .await
    }

    /// Ends the program gracefully (its sockets close first), then kills
    /// what is left of it.
    pub async fn exit(mut self) {
        self.send(json!({"cmd": "exit"})).await;
        match &mut self.holder {
            Holder::Process(child) => child.wait_exit().await,
            Holder::Browser(browser) => browser.kill().await,
        }
    }
}

/// The `args` array of an output.
pub fn args_of(output: &Value) -> Vec<Value> {
    output["args"].as_array().cloned().unwrap_or_default()
}

/// `{"$bin": base64(bytes)}`: a binary argument in the drivers' JSON.
pub fn bin(bytes: &[u8]) -> Value {
    json!({ "$bin": base64(bytes) })
}

/// Standard base64 with padding (what Node's `Buffer`, `btoa` and Python
/// produce).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (i, shift) in [18u32, 12, 6, 0].into_iter().enumerate() {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> shift) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// One output line as JSON, with the line itself under `$raw` (what
/// [`raw`] reads); a line that is not JSON becomes an `error` output.
pub(crate) fn parse_output(line: &str) -> Value {
    let mut value = serde_json::from_str(line).unwrap_or_else(
        |_| json!({"type": "error", "req": null, "message": format!("not JSON: {line}")}),
    );
    if value.is_object() {
        value[RAW] = json!(line);
    }
    value
}

/// The key of an output's line as the client wrote it.
const RAW: &str = "$raw";

/// The line an output came in as the client wrote it: its objects' keys
/// in the client's order (`serde_json::Value` sorts them).
pub fn raw(output: &Value) -> &str {
    output[RAW].as_str().unwrap_or_default()
}

/// Reads a program's stdout lines into `tx` as JSON (a line that is not
/// JSON becomes an `error` output); adds [`EXITED`] at the end.
async fn read_lines(stdout: ChildStdout, tx: mpsc::UnboundedSender<Value>) {
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        if tx.send(parse_output(&line)).is_err() {
            return;
        }
    }
    let _ = tx.send(json!({ "type": EXITED }));
}
