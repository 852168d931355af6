//! Headless Chromium driven over the DevTools protocol, for the admin
//! console's browser test: Chromium starts with
//! `--remote-debugging-port=0`, its port is read from `DevToolsActivePort`
//! in its user-data dir, and the test talks to the page's target over a
//! WebSocket: `Runtime.evaluate` to read the DOM and click,
//! `Page.captureScreenshot` to save PNGs. Chromium runs in a process
//! group of its own, killed whole by its id when this is dropped.
//!
//! [`DevTools::start`] answers `Err(reason)` when Chromium cannot run
//! here (not installed, does not start), so the test can say why it
//! skips; waits on the page are bounded polls of a DOM condition.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

use crate::Ws;
use crate::sioclient::{ChildGuard, log_path};

/// How long Chromium may take to start and open its debugging port.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one DevTools command may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);
/// How often [`DevTools::wait_for`] looks at the page.
const POLL: Duration = Duration::from_millis(100);

/// One headless Chromium with one page.
pub struct DevTools {
    chromium: ChildGuard,
    ws: Ws,
    next_id: u64,
    /// The page's session (commands without one go to the browser).
    session: Option<String>,
    profile: PathBuf,
    /// Where its stderr goes (named in failures).
    pub log: PathBuf,
}

impl std::fmt::Debug for DevTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevTools").field("log", &self.log).finish()
    }
}

impl Drop for DevTools {
    fn drop(&mut self) {
        self.chromium.signal_kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// The program to run: `HERALD_CHROMIUM`, else Debian's `chromium`.
fn program() -> String {
    std::env::var("HERALD_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned())
}

impl DevTools {
    /// Starts Chromium on `url` with a `width` x `height` window; `Err`
    /// says why Chromium cannot run here.
    pub async fn start(url: &str, width: u32, height: u32) -> Result<DevTools, String> {
        let version = std::process::Command::new(program())
            .arg("--version")
            .output();
        match version {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                return Err(format!(
                    "`{} --version` failed: {}",
                    program(),
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            Err(error) => return Err(format!("`{}` cannot be run: {error}", program())),
        }
        let log = log_path("devtools-chromium");
        let profile = log.with_extension("profile");
        let mut command = Command::new(program());
        command.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            "--remote-debugging-address=127.0.0.1",
        ]);
        command.arg(format!("--window-size={width},{height}"));
        command.arg(format!("--user-data-dir={}", profile.display()));
        command.arg(url);
        let mut chromium = ChildGuard::spawn(&mut command, &log, true, "chromium");
        let port_file = profile.join("DevToolsActivePort");
        let Some((port, browser_path)) = wait_for_port(&port_file).await else {
            chromium.kill().await;
            return Err(format!(
                "chromium did not open its debugging port within {START_TIMEOUT:?} (log: {})",
                log.display()
            ));
        };
        let browser = format!("ws://127.0.0.1:{port}{browser_path}");
        let (ws, _) = tokio_tungstenite::connect_async(browser.as_str())
            .await
            .map_err(|e| format!("cannot connect to chromium at {browser}: {e}"))?;
        let mut devtools = DevTools {
            chromium,
            ws,
            next_id: 0,
            session: None,
            profile,
            log,
        };
        let Some(target) = devtools.page_target().await else {
            return Err(format!(
                "chromium lists no page target (log: {})",
                devtools.log.display()
            ));
        };
        let attached = devtools
            .call(
                "Target.attachToTarget",
                json!({"targetId": target, "flatten": true}),
            )
            .await;
        devtools.session = attached["sessionId"].as_str().map(str::to_owned);
        devtools
            .call(
                "Emulation.setDeviceMetricsOverride",
                json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
            )
            .await;
        Ok(devtools)
    }

    /// Sends one DevTools command and returns its `result` (events that
    /// arrive meanwhile are skipped); panics on an error answer.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut command = json!({"id": id, "method": method, "params": params});
        if let Some(session) = &self.session {
            command["sessionId"] = json!(session);
        }
        if let Err(error) = self.ws.send(Message::text(command.to_string())).await {
            panic!("DevTools {method}: cannot send: {error}");
        }
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(text))) => {
                        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                        if value["id"] == json!(id) {
                            return value;
                        }
                    }
                    Some(Ok(_)) => {}
                    other => panic!("DevTools {method}: the connection ended: {other:?}"),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("DevTools {method}: no answer within {COMMAND_TIMEOUT:?}"));
        if !answer["error"].is_null() {
            panic!("DevTools {method} failed: {}", answer["error"]);
        }
        answer["result"].clone()
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns
    /// its value; panics when it throws.
    pub async fn eval(&mut self, expression: &str) -> Value {
        match self.try_eval(expression).await {
            Ok(value) => value,
            Err(thrown) => panic!("the page threw evaluating {expression:?}: {thrown}"),
        }
    }

    /// [`DevTools::eval`], with what it threw as the error.
    async fn try_eval(&mut self, expression: &str) -> Result<Value, Value> {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "returnByValue": true, "awaitPromise": true}),
            )
            .await;
        if !result["exceptionDetails"].is_null() {
            return Err(result["exceptionDetails"]["exception"]["description"].clone());
        }
        Ok(result["result"]["value"].clone())
    }

    /// Polls `expression` until it is truthy (at most `within`); returns
    /// its value. `what` names it in the failure, with the last value.
    /// An expression that throws (say, while the page reloads) counts as
    /// not yet.
    pub async fn wait_for(&mut self, what: &str, expression: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        let mut last = Value::Null;
        while tokio::time::Instant::now() < deadline {
            let (answered, value) = match self.try_eval(expression).await {
                Ok(value) => (true, value),
                Err(thrown) => (false, thrown),
            };
            last = value;
            let truthy = answered
                && match &last {
                    Value::Null => false,
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64() != Some(0.0),
                    Value::String(s) => !s.is_empty(),
                    _ => true,
                };
            if truthy {
                return last;
            }
            tokio::time::sleep(POLL).await;
        }
        panic!("the page: waiting for {what}: still {last} after {within:?}");
    }

    /// Saves a PNG of the whole page to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": true}),
            )
            .await;
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .unwrap_or_else(|e| panic!("the screenshot is not base64: {e}"));
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        if let Err(error) = std::fs::write(path, bytes) {
            panic!("cannot write {}: {error}", path.display());
        }
    }

    /// Kills Chromium now and waits until it is gone.
    pub async fn close(mut self) {
        self.chromium.kill().await;
    }
}

/// Reads the port and the browser target's path from
/// `DevToolsActivePort` once Chromium wrote both.
async fn wait_for_port(file: &Path) -> Option<(u16, String)> {
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    while tokio::time::Instant::now() < deadline {
        if let Ok(text) = std::fs::read_to_string(file) {
            let mut lines = text.lines();
            let port = lines.next().and_then(|l| l.trim().parse().ok());
            let path = lines.next().map(|l| l.trim().to_owned());
            if let (Some(port), Some(path)) = (port, path)
                && path.starts_with("/devtools/browser/")
            {
                return Some((port, path));
            }
        }
        tokio::time::sleep(POLL).await;
    }
    None
}

impl DevTools {
    /// The id of the first page target (bounded wait for it to exist).
    async fn page_target(&mut self) -> Option<String> {
        for _ in 0..50 {
            let targets = self.call("Target.getTargets", json!({})).await;
            let found = targets["targetInfos"].as_array().and_then(|list| {
                list.iter()
                    .find(|t| t["type"] == "page")
                    .and_then(|t| t["targetId"].as_str())
                    .map(str::to_owned)
            });
            if found.is_some() {
                return found;
            }
            tokio::time::sleep(POLL).await;
        }
        None
    }
}
