//! The browser client: headless Chromium running `tests/socketio/page.html`.
//!
//! A loopback HTTP server of the test serves the page, its scripts and
//! socket.io-client's browser bundle from the local npm install (so they
//! are same-origin; the Socket.IO server is another origin, which makes the
//! polling transport a CORS client), and carries the driver protocol: the
//! page long-polls `GET /cmd` for commands and posts its outputs to
//! `POST /out`, both as JSON lines. Chromium runs in a process group of its
//! own (it starts helpers), killed whole by its id when the driver drops.
//! The page's console goes to Chromium's stderr log.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::process::Command;
use tokio::sync::{Notify, Semaphore, SemaphorePermit, mpsc};
use tokio::task::JoinHandle;

use super::{
    ChildGuard, Holder, Sink, SioDriver, log_path, parse_output, require_installed, socketio_dir,
};

/// How long Chromium may take to start and load the page (a cold start on
/// a busy machine is slow).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long `GET /cmd` is held when no command is queued.
const POLL_HOLD: Duration = Duration::from_secs(1);

/// Browsers running at once in one test process (each is several
/// processes; the machine has few cores).
static BROWSERS: Semaphore = Semaphore::const_new(2);

/// The commands waiting for the page's next `GET /cmd`.
#[derive(Debug, Default)]
pub struct CommandQueue {
    lines: Mutex<VecDeque<String>>,
    notify: Notify,
}

impl CommandQueue {
    /// Queues one command line.
    pub fn push(&self, line: String) {
        self.locked().push_back(line);
        self.notify.notify_one();
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.lines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every queued line; waits up to `hold` for one when there is none.
    async fn take(&self, hold: Duration) -> Vec<String> {
        let now: Vec<String> = self.locked().drain(..).collect();
        if !now.is_empty() {
            return now;
        }
        let _ = tokio::time::timeout(hold, self.notify.notified()).await;
        self.locked().drain(..).collect()
    }
}

/// Chromium, the page's HTTP server and the user-data dir of one browser
/// driver.
#[derive(Debug)]
pub struct Browser {
    chromium: ChildGuard,
    server: JoinHandle<()>,
    profile: PathBuf,
    _permit: SemaphorePermit<'static>,
}

impl Browser {
    /// Kills Chromium (its whole process group) and waits until it is gone.
    pub(crate) async fn kill(&mut self) {
        self.chromium.kill().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.server.abort();
        self.chromium.signal_kill();
        // Best-effort: a helper process still exiting may write late.
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// What the page's HTTP handlers share.
#[derive(Debug)]
struct Page {
    queue: Arc<CommandQueue>,
    outputs: mpsc::UnboundedSender<Value>,
    dir: PathBuf,
}

/// Starts the page server and Chromium, and waits for the page's `ready`.
pub(crate) async fn start() -> SioDriver {
    let dir = socketio_dir();
    let bundle = dir.join("node_modules/socket.io-client/dist/socket.io.min.js");
    require_installed(&bundle, "socket.io-client's browser bundle");
    let permit = match BROWSERS.acquire().await {
        Ok(permit) => permit,
        Err(error) => panic!("the browser semaphore is closed: {error}"),
    };
    let listener = match TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(error) => panic!("cannot bind the page server: {error}"),
    };
    let port = match listener.local_addr() {
        Ok(addr) => addr.port(),
        Err(error) => panic!("the page server has no address: {error}"),
    };
    let queue = Arc::new(CommandQueue::default());
    let (tx, outputs) = mpsc::unbounded_channel();
    let page = Arc::new(Page {
        queue: queue.clone(),
        outputs: tx,
        dir,
    });
    let server = tokio::spawn(serve(listener, page));

    let log = log_path("chromium");
    let profile = log.with_extension("profile");
    let program = std::env::var("HERALD_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let mut command = Command::new(program);
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--enable-logging=stderr",
        "--v=0",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.arg(format!("http://127.0.0.1:{port}/"));
    let chromium = ChildGuard::spawn(&mut command, &log, true, "chromium");
    let browser = Browser {
        chromium,
        server,
        profile,
        _permit: permit,
    };
    let holder = Holder::Browser(browser);
    SioDriver::launched(
        "browser",
        Sink::Page(queue),
        outputs,
        log,
        holder,
        START_TIMEOUT,
    )
    .await
}

async fn serve(listener: TcpListener, page: Arc<Page>) {
    while let Ok((stream, _)) = listener.accept().await {
        let page = page.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| handle(request, page.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    page: Arc<Page>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let response = match (request.method().clone(), path.as_str()) {
        (Method::GET, "/") => file(page.dir.join("page.html"), "text/html; charset=utf-8"),
        (Method::GET, "/page.js" | "/driver-core.js") => {
            file(page.dir.join(&path[1..]), "text/javascript")
        }
        (Method::GET, "/socket.io.min.js") => file(
            page.dir
                .join("node_modules/socket.io-client/dist/socket.io.min.js"),
            "text/javascript",
        ),
        (Method::GET, "/cmd") => {
            let mut body = page.queue.take(POLL_HOLD).await.join("\n");
            body.push('\n');
            reply(StatusCode::OK, "text/plain", Bytes::from(body))
        }
        (Method::POST, "/out") => {
            let body = match request.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => Bytes::new(),
            };
            for line in String::from_utf8_lossy(&body).lines() {
                if line.trim().is_empty() {
                    continue;
                }
                let _ = page.outputs.send(parse_output(line));
            }
            reply(StatusCode::NO_CONTENT, "text/plain", Bytes::new())
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
    };
    Ok(response)
}

fn file(path: PathBuf, content_type: &str) -> Response<Full<Bytes>> {
    match std::fs::read(&path) {
        Ok(bytes) => reply(StatusCode::OK, content_type, Bytes::from(bytes)),
        Err(error) => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from(format!("{}: {error}\n", path.display())),
        ),
    }
}

fn reply(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-store"),
    );
    response
}
