//! A server under test as a child process: started on a free loopback port
//! (pinned to one CPU with `taskset`), awaited until it accepts
//! connections, probed through /proc, and killed afterwards.
//!
//! `taskset` execs the server, so the child's pid is the server's own and
//! its /proc figures are the server's alone.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use herald_loadgen::procfs::ProcessProbe;
use tokio::process::{Child, Command};

use crate::targets::Launch;

/// How long a server may take to accept connections.
pub const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// How often readiness is tried.
const READY_POLL: Duration = Duration::from_millis(20);
/// How long a killed server may take to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The process could not be spawned.
    #[error("cannot start {target} ({program}): {source}")]
    Spawn {
        /// The target's name.
        target: String,
        /// The program.
        program: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// It exited before accepting connections.
    #[error("{target} exited during start-up ({status}); the end of its log {log}:\n{tail}")]
    Exited {
        /// The target's name.
        target: String,
        /// How it exited.
        status: ExitStatus,
        /// Its log file.
        log: PathBuf,
        /// The end of that log.
        tail: String,
    },
    /// It did not accept connections in time.
    #[error(
        "{target} did not accept connections on {addr} within {after:?}; the end of its log \
         {log}:\n{tail}"
    )]
    NotReady {
        /// The target's name.
        target: String,
        /// Where it should listen.
        addr: SocketAddr,
        /// How long it was given.
        after: Duration,
        /// Its log file.
        log: PathBuf,
        /// The end of that log.
        tail: String,
    },
    /// Its log file or a free port could not be had.
    #[error("cannot prepare {what}: {source}")]
    Io {
        /// What was being prepared.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Its /proc entry could not be read.
    #[error(transparent)]
    Probe(#[from] herald_loadgen::BenchError),
}

/// A free port on 127.0.0.1 (the OS picks it; it is released for the
/// server to bind right away).
pub fn free_local_addr() -> Result<SocketAddr, ServerError> {
    let io = |source| ServerError::Io {
        what: "a free port".to_owned(),
        source,
    };
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io)?;
    listener.local_addr().map_err(io)
}

/// A running server.
#[derive(Debug)]
pub struct ServerProcess {
    target: String,
    child: Child,
    probe: ProcessProbe,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `launch` for `target`, pinned to `cpu` when given, with its
    /// output in `log_dir/<target>.log`; returns once it accepts TCP
    /// connections on `addr`.
    pub async fn start(
        target: &str,
        launch: &Launch,
        addr: SocketAddr,
        cpu: Option<usize>,
        log_dir: &Path,
    ) -> Result<ServerProcess, ServerError> {
        let log = log_dir.join(format!("{target}.log"));
        let io = |what: String| move |source| ServerError::Io { what, source };
        let log_file = std::fs::File::create(&log).map_err(io(log.display().to_string()))?;
        let log_err = log_file
            .try_clone()
            .map_err(io(log.display().to_string()))?;
        let mut command = match cpu {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu.to_string()).arg(&launch.program);
                command
            }
            None => Command::new(&launch.program),
        };
        command
            .args(&launch.args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(log_err)
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|source| ServerError::Spawn {
            target: target.to_owned(),
            program: launch.program.clone(),
            source,
        })?;
        let pid = child.id().ok_or_else(|| ServerError::Io {
            what: format!("the pid of {target}"),
            source: std::io::Error::other("the process has already exited"),
        })?;
        for _ in 0..(READY_TIMEOUT.as_millis() / READY_POLL.as_millis()) {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ServerError::Exited {
                    target: target.to_owned(),
                    status,
                    tail: log_tail(&log),
                    log,
                });
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                let probe = ProcessProbe::new(pid)?;
                return Ok(ServerProcess {
                    target: target.to_owned(),
                    child,
                    probe,
                    log,
                });
            }
            tokio::time::sleep(READY_POLL).await;
        }
        let _ = child.start_kill();
        Err(ServerError::NotReady {
            target: target.to_owned(),
            addr,
            after: READY_TIMEOUT,
            tail: log_tail(&log),
            log,
        })
    }

    /// Reads the server's CPU time and memory.
    pub fn probe(&self) -> &ProcessProbe {
        &self.probe
    }

    /// A problem the server ran into, if it is no longer running.
    pub fn crashed(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "{} exited ({status}); the end of its log {}:\n{}",
                self.target,
                self.log.display(),
                log_tail(&self.log)
            )),
            _ => None,
        }
    }

    /// Kills the server and waits for it to exit (bounded).
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await;
    }
}

/// The last lines of a log file (at most about 2 KiB).
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let start = text.len().saturating_sub(2048);
    let start = (start..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len());
    let tail = text[start..].trim();
    if tail.is_empty() {
        "(empty)".to_owned()
    } else {
        tail.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Launch {
        Launch {
            program: PathBuf::from("sh"),
            args: vec!["-c".to_owned(), script.to_owned()],
        }
    }

    fn log_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!("herald-bench-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        dir
    }

    #[tokio::test]
    async fn a_server_that_exits_at_once_is_reported_with_its_log() {
        let addr = free_local_addr().expect("a port");
        let error = ServerProcess::start(
            "quitter",
            &sh("echo 'bad flag' >&2; exit 3"),
            addr,
            None,
            &log_dir(),
        )
        .await
        .expect_err("it exits");
        let text = error.to_string();
        assert!(matches!(error, ServerError::Exited { .. }), "{text}");
        assert!(text.contains("bad flag"), "{text}");
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let launch = Launch {
            program: PathBuf::from("/nonexistent/server"),
            args: vec![],
        };
        let addr = free_local_addr().expect("a port");
        let error = ServerProcess::start("ghost", &launch, addr, None, &log_dir())
            .await
            .expect_err("no such program");
        assert!(error.to_string().contains("/nonexistent/server"), "{error}");
    }

    #[test]
    fn log_tails_are_bounded() {
        let path = log_dir().join("long.log");
        std::fs::write(&path, "é".repeat(5000)).expect("written");
        let tail = log_tail(&path);
        assert!(tail.len() <= 2048 && !tail.is_empty());
        assert_eq!(log_tail(&log_dir().join("missing.log")), "(empty)");
    }
}
