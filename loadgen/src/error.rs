//! The error type of the load generator.

use std::path::PathBuf;
use std::time::Duration;

/// Why a benchmark could not run, or a target misbehaved while it ran.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An option has a value the benchmark cannot use.
    #[error("invalid option {option}: {reason}")]
    InvalidOption {
        /// The option, e.g. `--payload`.
        option: &'static str,
        /// What is wrong with its value.
        reason: String,
    },
    /// The target could not be reached.
    #[error("cannot connect to {target} at {address}: {reason}")]
    Connect {
        /// The target's name (`herald`, `nats`, ...).
        target: String,
        /// The address or URL tried.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// The target answered the WebSocket upgrade with an HTTP error.
    #[error("{target} at {address} refused the WebSocket upgrade with HTTP {status}: {body}")]
    Refused {
        /// The target's name.
        target: String,
        /// The URL tried.
        address: String,
        /// The HTTP status.
        status: u16,
        /// The response body (the broker's JSON error), bounded.
        body: String,
    },
    /// The target broke the protocol or refused an operation.
    #[error("{target}: {message}")]
    Target {
        /// The target's name.
        target: String,
        /// What happened.
        message: String,
    },
    /// Something the benchmark waits for did not happen in time.
    #[error("timed out after {after:?} waiting for {what}")]
    Timeout {
        /// How long it waited.
        after: Duration,
        /// What it waited for.
        what: String,
    },
    /// A file under /proc could not be read.
    #[error("cannot read {path}: {source}")]
    Proc {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file under /proc did not have the expected shape.
    #[error("unexpected contents in {path}: {detail}")]
    ProcFormat {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The benchmark's own runtime could not start or stopped abnormally.
    #[error("the load generator failed: {0}")]
    Runtime(String),
    /// A soak ran and found loss or errors (its summary says which).
    #[error("the soak failed: {0}")]
    SoakFailed(String),
    /// Writing the results failed.
    #[error("cannot write the results: {0}")]
    Output(#[from] std::io::Error),
}

impl BenchError {
    /// True when the options were at fault (a usage error).
    pub fn is_usage(&self) -> bool {
        matches!(self, BenchError::InvalidOption { .. })
    }

    /// True when the target could not be reached or refused the connection.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            BenchError::Connect { .. } | BenchError::Refused { .. }
        )
    }

    /// A [`BenchError::Target`] for `target`.
    pub fn target(target: &str, message: impl Into<String>) -> BenchError {
        BenchError::Target {
            target: target.to_owned(),
            message: message.into(),
        }
    }

    /// A [`BenchError::InvalidOption`].
    pub fn invalid(option: &'static str, reason: impl Into<String>) -> BenchError {
        BenchError::InvalidOption {
            option,
            reason: reason.into(),
        }
    }

    /// A [`BenchError::Timeout`].
    pub fn timeout(after: Duration, what: impl Into<String>) -> BenchError {
        BenchError::Timeout {
            after,
            what: what.into(),
        }
    }
}
