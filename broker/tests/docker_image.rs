//! The Docker image, without Docker: no engine runs in CI, so these tests
//! read `docker/Dockerfile` and run the broker binary exactly as a
//! container of its `runtime` stage would, then check `/healthz`,
//! `/readyz`, a WebSocket emit, the image's `HEALTHCHECK` command and its
//! `STOPSIGNAL`.
//!
//! What "exactly" means, and where it has to differ:
//! - the command is the stage's `ENTRYPOINT` + `CMD`, arguments verbatim;
//!   the program must be `herald-broker`, run from `HERALD_BROKER_BIN`
//!   (CI: the release build) or cargo's build of it;
//! - the environment is the stage's `ENV` lines and nothing else;
//! - the image's filesystem is emulated under a temporary root: every file
//!   the stage copies from the build context is placed at its image path
//!   under that root, and the child runs in the image's `WORKDIR` under it.
//!   So the Dockerfile must name the config file relative to `WORKDIR`
//!   (`--config herald.toml`): an absolute path would point outside the
//!   temporary root, into the developer's real /etc, and the tests refuse
//!   it;
//! - one override, the way `docker run -e HERALD__SERVER__LISTEN=…` would
//!   set it: the port of the image's listen address becomes a free one
//!   (the interface, 0.0.0.0, stays), so tests can run side by side.
//!   A "mounted" config file is a file written at the config path.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

#[path = "support/dockerfile.rs"]
mod dockerfile;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dockerfile::{Dockerfile, Image};
use herald_broker::healthcheck;
use herald_config::Settings;
use herald_protocol::SUBPROTOCOL;
use herald_tests::{RawClient, connect_raw, emit, http_get};
use support::{Finished, Process, TIMEOUT, broker_bin};
use tokio::process::Command;

/// The stage that is the broker image.
const RUNTIME_STAGE: &str = "runtime";
/// The variable that sets the listen address, the one the tests override.
const LISTEN_VAR: &str = "HERALD__SERVER__LISTEN";
/// The program the image runs.
const PROGRAM: &str = "herald-broker";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the broker crate is inside the workspace")
        .to_path_buf()
}

fn read_workspace_file(path: &str) -> String {
    let full = workspace().join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("cannot read {}: {e}", full.display()))
}

/// The runtime stage of docker/Dockerfile.
fn runtime_image() -> Image {
    Dockerfile::parse(&read_workspace_file("docker/Dockerfile")).image(RUNTIME_STAGE)
}

/// The image's listen address (its `ENV`).
fn image_listen(image: &Image) -> SocketAddr {
    let Some(listen) = image.env.get(LISTEN_VAR) else {
        panic!("the runtime stage sets no {LISTEN_VAR}; the broker would listen on loopback only");
    };
    listen
        .parse()
        .unwrap_or_else(|e| panic!("{LISTEN_VAR}={listen:?} in the Dockerfile: {e}"))
}

/// A port that was free a moment ago (bind to :0, read, release).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A container of the runtime stage, emulated (see the module docs).
struct Container {
    image: Image,
    root: tempfile::TempDir,
    env: BTreeMap<String, String>,
    port: u16,
}

impl Container {
    /// Lays the image's files out under a fresh root; the listen port is
    /// overridden with a free one.
    fn new() -> Container {
        let image = runtime_image();
        let root = tempfile::tempdir().unwrap();
        let mut container = Container {
            env: image.env.clone(),
            image,
            root,
            port: free_port(),
        };
        for copy in &container.image.context_copies {
            let to = container.host_path(&copy.destination);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::copy(workspace().join(&copy.source), &to)
                .unwrap_or_else(|e| panic!("COPY {} {}: {e}", copy.source.display(), to.display()));
        }
        std::fs::create_dir_all(container.host_path(&container.image.workdir)).unwrap();
        let mut listen = image_listen(&container.image);
        listen.set_port(container.port);
        container.set_env(LISTEN_VAR, &listen.to_string());
        container
    }

    /// `docker run -e key=value`.
    fn set_env(&mut self, key: &str, value: &str) {
        self.env.insert(key.to_owned(), value.to_owned());
    }

    /// Where `image_path` lives under the emulated root.
    fn host_path(&self, image_path: &Path) -> PathBuf {
        let relative = image_path
            .strip_prefix("/")
            .expect("image paths are absolute");
        self.root.path().join(relative)
    }

    /// The config file the image's command reads (the argument after
    /// `--config`), as a host path; checks that the Dockerfile copies a
    /// file there.
    fn config_file(&self) -> PathBuf {
        let command = self.image.command();
        let Some(position) = command.iter().position(|word| word == "--config") else {
            panic!("the image command {command:?} passes no --config");
        };
        let path = command
            .get(position + 1)
            .unwrap_or_else(|| panic!("--config without a path in {command:?}"));
        let in_image = self.image.resolve(path);
        assert!(
            self.image
                .context_copies
                .iter()
                .any(|copy| copy.destination == in_image),
            "the image command reads {}, but no COPY puts a file there: {:?}",
            in_image.display(),
            self.image.context_copies
        );
        self.host_path(&in_image)
    }

    /// A process running `words` (an argv in the image) as the container
    /// would: the image's environment, in its WORKDIR.
    fn command(&self, words: &[String]) -> Command {
        let Some((program, arguments)) = words.split_first() else {
            panic!("an empty command in the Dockerfile");
        };
        assert_eq!(
            Path::new(program).file_name().and_then(|n| n.to_str()),
            Some(PROGRAM),
            "the image runs {program:?}; these tests run {PROGRAM}"
        );
        if let Some(absolute) = arguments.iter().find(|word| word.starts_with('/')) {
            panic!(
                "{absolute:?} in {words:?}: write paths relative to WORKDIR, so the test \
                 can run the command under a temporary root"
            );
        }
        let mut command = Command::new(broker_bin());
        command
            .env_clear()
            .envs(&self.env)
            .current_dir(self.host_path(&self.image.workdir))
            .args(arguments);
        command
    }

    /// The image's command, started; returns once `/healthz` answers.
    async fn start(&self) -> Process {
        let mut process = Process::spawn(&mut self.command(&self.image.command()));
        let url = format!("http://127.0.0.1:{}/healthz", self.port);
        let deadline = Instant::now() + TIMEOUT;
        while healthcheck::probe(&url, Duration::from_secs(1))
            .await
            .is_err()
        {
            if let Some(status) = process.exited() {
                panic!(
                    "the container exited before serving: {status}\n{}",
                    process.stderr_so_far()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{url} did not answer within {TIMEOUT:?}\n{}",
                process.stderr_so_far()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        process
    }

    /// Runs the image's `HEALTHCHECK` command to its end.
    async fn healthcheck(&self) -> Finished {
        let Some(words) = &self.image.healthcheck else {
            panic!("the runtime stage has no HEALTHCHECK");
        };
        Process::run(&mut self.command(words)).await
    }

    /// Sends the image's `STOPSIGNAL` (SIGTERM when unset, as Docker does).
    async fn stop(&self, process: &Process) {
        let signal = self.image.stop_signal.as_deref().unwrap_or("SIGTERM");
        process.signal(signal.trim_start_matches("SIG")).await;
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    async fn client(&self) -> RawClient {
        let mut client = connect_raw(self.addr(), Some(SUBPROTOCOL))
            .await
            .expect("the WebSocket upgrade is accepted");
        client.hello().await;
        client
    }
}

#[tokio::test]
async fn the_image_serves_health_readiness_and_events_and_stops_cleanly() {
    let container = Container::new();
    let process = container.start().await;

    let health = http_get(container.addr(), "/healthz").await;
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let ready = http_get(container.addr(), "/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));

    let mut subscriber = container.client().await;
    subscriber
        .subscribe("/docker", "image.check", None, false)
        .await;
    let mut publisher = container.client().await;
    let payload = Bytes::from_static(b"from the image");
    let receivers = publisher
        .emit_acked(emit("/docker", "image.check", payload.clone()))
        .await;
    assert_eq!(receivers, 1);
    let event = subscriber.expect_event().await;
    assert_eq!(
        (event.event.as_str(), event.payload),
        ("image.check", payload)
    );

    let check = container.healthcheck().await;
    assert_eq!(
        check.status.code(),
        Some(0),
        "HEALTHCHECK failed: {check:?}"
    );
    let url = format!("http://127.0.0.1:{}/healthz", container.port);
    assert_eq!(check.stdout, format!("healthy: {url} answered 200 OK\n"));

    container.stop(&process).await;
    let finished = process.finish().await;
    assert_eq!(
        finished.status.code(),
        Some(0),
        "the stop signal should end the broker cleanly: {finished:?}"
    );

    let check = container.healthcheck().await;
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    assert!(
        check.stderr.starts_with("unhealthy: cannot connect to"),
        "{check:?}"
    );
}

#[tokio::test]
async fn a_mounted_config_file_and_environment_variables_configure_the_image() {
    let mut container = Container::new();
    std::fs::write(
        container.config_file(),
        "[limits]\nmax_payload_bytes = 4096\nmax_rooms_per_connection = 9\n",
    )
    .unwrap();
    container.set_env("HERALD__LIMITS__MAX_ROOMS_PER_CONNECTION", "3");
    let process = container.start().await;

    let mut connection = connect_raw(container.addr(), Some(SUBPROTOCOL))
        .await
        .expect("the WebSocket upgrade is accepted");
    let limits = connection.hello().await.limits;
    let defaults = Settings::defaults().limits;
    // From the file.
    assert_eq!(limits.max_payload, 4096);
    // The environment beats the file.
    assert_eq!(limits.max_rooms, 3);
    // Everything else keeps its default.
    assert_eq!(
        limits.max_subscriptions,
        defaults.max_subscriptions_per_connection as u64
    );

    let check = container.healthcheck().await;
    assert_eq!(
        check.status.code(),
        Some(0),
        "HEALTHCHECK failed: {check:?}"
    );
    container.stop(&process).await;
    assert_eq!(process.finish().await.status.code(), Some(0));
}

#[tokio::test]
async fn a_broken_mounted_config_file_stops_the_image_naming_the_key() {
    let container = Container::new();
    std::fs::write(container.config_file(), "[limits]\nmax_payload_bytes = 0\n").unwrap();
    let finished = Process::run(&mut container.command(&container.image.command())).await;
    assert_eq!(finished.status.code(), Some(2), "{finished:?}");
    assert!(
        finished.stderr.contains("limits.max_payload_bytes"),
        "{finished:?}"
    );
    let check = container.healthcheck().await;
    assert_eq!(check.status.code(), Some(1), "{check:?}");
    assert!(
        check.stderr.contains("limits.max_payload_bytes"),
        "{check:?}"
    );
}

#[test]
fn the_runtime_stage_runs_unprivileged_and_exposes_its_listen_port() {
    let image = runtime_image();
    let user = image.user.as_deref().unwrap_or("root");
    assert!(
        !matches!(user, "root" | "0" | "0:0"),
        "the runtime stage runs as {user:?}; add a non-root USER"
    );
    let port = image_listen(&image).port().to_string();
    assert!(
        image
            .exposed
            .iter()
            .any(|exposed| exposed.trim_end_matches("/tcp") == port),
        "the broker listens on {port} but the image exposes {:?}",
        image.exposed
    );
    assert!(
        image.healthcheck.is_some(),
        "the runtime stage has no HEALTHCHECK"
    );
}

#[test]
fn the_build_context_leaves_out_build_output_and_history() {
    let ignored = read_workspace_file(".dockerignore");
    let patterns: Vec<&str> = ignored
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    for needed in ["**/target", ".git"] {
        assert!(
            patterns.contains(&needed),
            ".dockerignore should list {needed}: {patterns:?}"
        );
    }
}
