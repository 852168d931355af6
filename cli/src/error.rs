//! [`CliError`], everything a `herald` command can fail with, and the exit
//! code each failure maps to ([`exit`]).

use std::time::Duration;

use herald_client::{Error as ClientError, NameError};
use thiserror::Error;

/// The process exit codes, as documented in `herald --help`.
pub mod exit {
    /// Success.
    pub const OK: u8 = 0;
    /// Any other failure (e.g. the broker refused an operation).
    pub const ERROR: u8 = 1;
    /// Bad command line: unknown flag, missing argument, invalid JSON,
    /// invalid name or URL.
    pub const USAGE: u8 = 2;
    /// The broker could not be reached, or the connection was lost.
    pub const UNREACHABLE: u8 = 3;
    /// A request found no responder.
    pub const NO_RESPONDERS: u8 = 4;
    /// A request got no reply in time.
    pub const TIMEOUT: u8 = 5;
    /// The responder answered a request with an error.
    pub const ERROR_REPLY: u8 = 6;
    /// The broker refused the token (`unauthorized`), or it expired.
    pub const UNAUTHORIZED: u8 = 7;
}

/// Everything a command can fail with. The message is one line, meant to
/// follow `herald: error: `.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CliError {
    /// `herald admin`: the admin API could not be reached or refused the
    /// request (`status` is its HTTP status, if it answered).
    #[error("admin API: {message}")]
    Admin {
        /// The HTTP status, when the API answered.
        status: Option<u16>,
        /// What went wrong (the API's own message when it gave one).
        message: String,
    },
    /// `herald bench` failed (bad options, unreachable broker, ...).
    #[error(transparent)]
    Bench(herald_loadgen::BenchError),
    /// The payload argument is not JSON.
    #[error("invalid JSON payload {text:?}: {source}")]
    InvalidJson {
        /// The text given (shortened).
        text: String,
        /// The parser's explanation.
        source: serde_json::Error,
    },
    /// A namespace, event, pattern, room or group breaks the naming rules.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// Connecting to the broker failed.
    #[error("{0}")]
    Connect(ClientError),
    /// The connection to the broker was lost while the command ran.
    #[error("lost the connection to the broker: {reason}")]
    ConnectionLost {
        /// Why, as the client saw it.
        reason: String,
    },
    /// A request matched no responder.
    #[error("no responders for {event:?} in {namespace}")]
    NoResponders {
        /// The namespace of the request.
        namespace: String,
        /// The event requested.
        event: String,
    },
    /// A request got no reply in time.
    #[error("no reply to {event:?} in {namespace} within {}", humantime::format_duration(*.timeout))]
    Timeout {
        /// The namespace of the request.
        namespace: String,
        /// The event requested.
        event: String,
        /// How long the request waited.
        timeout: Duration,
    },
    /// The responder answered with an error.
    #[error("the responder answered with an error: {0}")]
    ErrorReply(String),
    /// Another failure of a client call, with what was being done.
    #[error("{doing}: {source}")]
    Client {
        /// What the command was doing, e.g. `subscribing to "a.*" in /x`.
        doing: String,
        /// The SDK's error.
        source: ClientError,
    },
    /// Writing to stdout failed.
    #[error("could not write to stdout: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    /// Wraps a failed client call with what the command was doing.
    pub fn client(doing: impl Into<String>, source: ClientError) -> CliError {
        CliError::Client {
            doing: doing.into(),
            source,
        }
    }

    /// The process exit code for this failure (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidJson { .. } | CliError::InvalidName(_) => exit::USAGE,
            CliError::Connect(source) | CliError::Client { source, .. } => client_code(source),
            CliError::ConnectionLost { .. } => exit::UNREACHABLE,
            CliError::NoResponders { .. } => exit::NO_RESPONDERS,
            CliError::Timeout { .. } => exit::TIMEOUT,
            CliError::ErrorReply(_) => exit::ERROR_REPLY,
            CliError::Output(_) => exit::ERROR,
            CliError::Bench(e) if e.is_usage() => exit::USAGE,
            CliError::Bench(e) if e.is_unreachable() => exit::UNREACHABLE,
            CliError::Bench(_) => exit::ERROR,
            CliError::Admin { status: None, .. } => exit::UNREACHABLE,
            CliError::Admin {
                status: Some(401), ..
            } => exit::UNAUTHORIZED,
            CliError::Admin {
                status: Some(400), ..
            } => exit::USAGE,
            CliError::Admin { .. } => exit::ERROR,
        }
    }

    /// True when stdout was closed by its reader (e.g. `herald sub ... |
    /// head -1`): the command just stops, successfully.
    pub fn is_stdout_closed(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The exit code for an SDK error.
fn client_code(error: &ClientError) -> u8 {
    match error {
        ClientError::InvalidUrl(_) | ClientError::InvalidName(_) => exit::USAGE,
        ClientError::Connect(_)
        | ClientError::Handshake { .. }
        | ClientError::Disconnected
        | ClientError::Tls(_)
        | ClientError::Closed => exit::UNREACHABLE,
        ClientError::NoResponders => exit::NO_RESPONDERS,
        ClientError::Timeout => exit::TIMEOUT,
        ClientError::Remote(_) => exit::ERROR_REPLY,
        ClientError::Unauthorized { .. } | ClientError::TokenExpired { .. } => exit::UNAUTHORIZED,
        _ => exit::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_client::ErrorCode;

    #[test]
    fn client_errors_map_to_their_exit_codes() {
        let cases = [
            (ClientError::InvalidUrl("x".into()), exit::USAGE),
            (ClientError::Connect("refused".into()), exit::UNREACHABLE),
            (
                ClientError::Handshake {
                    status: 404,
                    reason: "not found".into(),
                },
                exit::UNREACHABLE,
            ),
            (ClientError::Disconnected, exit::UNREACHABLE),
            (ClientError::NoResponders, exit::NO_RESPONDERS),
            (ClientError::Timeout, exit::TIMEOUT),
            (ClientError::Remote("no".into()), exit::ERROR_REPLY),
            (
                ClientError::Unauthorized {
                    message: "token expired".into(),
                },
                exit::UNAUTHORIZED,
            ),
            (
                ClientError::Broker {
                    code: ErrorCode::Forbidden,
                    message: "not allowed".into(),
                },
                exit::ERROR,
            ),
            (
                ClientError::Broker {
                    code: ErrorCode::PayloadTooLarge,
                    message: "too big".into(),
                },
                exit::ERROR,
            ),
        ];
        for (error, code) in cases {
            let shown = error.to_string();
            assert_eq!(CliError::Connect(error).exit_code(), code, "{shown}");
        }
    }

    #[test]
    fn request_outcomes_have_distinct_codes_and_clear_messages() {
        let no_responders = CliError::NoResponders {
            namespace: "/svc".into(),
            event: "echo".into(),
        };
        let timeout = CliError::Timeout {
            namespace: "/svc".into(),
            event: "echo".into(),
            timeout: Duration::from_millis(1500),
        };
        let error_reply = CliError::ErrorReply("boom".into());
        assert_eq!(
            no_responders.to_string(),
            "no responders for \"echo\" in /svc"
        );
        assert_eq!(
            timeout.to_string(),
            "no reply to \"echo\" in /svc within 1s 500ms"
        );
        assert_eq!(
            error_reply.to_string(),
            "the responder answered with an error: boom"
        );
        let codes = [
            no_responders.exit_code(),
            timeout.exit_code(),
            error_reply.exit_code(),
        ];
        assert_eq!(
            codes,
            [exit::NO_RESPONDERS, exit::TIMEOUT, exit::ERROR_REPLY]
        );
    }

    #[test]
    fn a_closed_stdout_is_recognised() {
        let closed = CliError::Output(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(closed.is_stdout_closed());
        let full = CliError::Output(std::io::Error::from(std::io::ErrorKind::StorageFull));
        assert!(!full.is_stdout_closed());
    }
}
