//! The SDK's error type, and the events reported to the error callback.
//!
//! [`Error`] is what a call returns. [`ClientEvent`] is what the client
//! reports on its own, outside any call: a payload that did not decode as a
//! handler's type, a handler that panicked, a broker error that answers no
//! request, a lost connection, a token refresh that failed. Those go to
//! the callback set with [`Client::on_error`](crate::Client::on_error) and
//! to `tracing`.

use herald_protocol::{ErrorCode, NameError};
use thiserror::Error;

/// Everything a client call can fail with.
#[derive(Debug, Clone, PartialEq, Error)]
#[non_exhaustive]
pub enum Error {
    /// A broker URL is malformed or uses a scheme the SDK does not speak.
    #[error("invalid broker url: {0}")]
    InvalidUrl(String),
    /// No broker could be reached (refused, unreachable, timed out).
    #[error("could not connect: {0}")]
    Connect(String),
    /// The broker refused the WebSocket handshake (e.g. HTTP 400 for a
    /// missing or wrong subprotocol). `status` is the HTTP status.
    #[error("broker refused the handshake: HTTP {status}: {reason}")]
    Handshake {
        /// The HTTP status of the refusal (101 when the upgrade itself
        /// succeeded but the broker did not accept `herald.v1`).
        status: u16,
        /// The broker's explanation (the response body), or the status text.
        reason: String,
    },
    /// The client was closed with [`Client::close`](crate::Client::close),
    /// or gave up reconnecting.
    #[error("client is closed")]
    Closed,
    /// The connection is down (or went down while the call waited for the
    /// broker's answer); the client is reconnecting.
    #[error("not connected to a broker")]
    Disconnected,
    /// The offline buffer is full: the emit was not queued.
    #[error("offline buffer is full")]
    BufferFull,
    /// No answer within the time allowed.
    #[error("timed out")]
    Timeout,
    /// A request found no responder subscribed to its event.
    #[error("no responders for the request")]
    NoResponders,
    /// The responder answered a request with an error (its message).
    #[error("responder failed: {0}")]
    Remote(String),
    /// The broker refused what was sent.
    #[error("broker error {code}: {message}")]
    Broker {
        /// The broker's error code.
        code: ErrorCode,
        /// The broker's explanation.
        message: String,
    },
    /// A value could not be encoded as MessagePack.
    #[error("could not encode payload: {0}")]
    Encode(String),
    /// A payload could not be decoded as the expected type.
    #[error("could not decode payload: {0}")]
    Decode(String),
    /// A namespace, event, pattern, room or group name breaks the naming
    /// rules; checked before anything is sent.
    #[error(transparent)]
    InvalidName(#[from] NameError),
    /// The broker refused the token: at `hello` (missing where one is
    /// required, invalid, expired, not for this broker) or an `auth`
    /// refresh. The message never contains the token. A connection refused
    /// this way is not retried with the same fixed token; with a token
    /// provider the client asks it again a few times (see
    /// [`ClientBuilder::token_provider`](crate::ClientBuilder::token_provider)).
    #[error("unauthorized: {message}")]
    Unauthorized {
        /// The broker's explanation.
        message: String,
    },
    /// The broker closed the connection because its token expired and no
    /// refresh arrived in time (close reason `token_expired`). Final when
    /// the client has no token provider to get a new token from.
    #[error("token expired: {message}")]
    TokenExpired {
        /// The broker's explanation.
        message: String,
    },
    /// The token provider failed (its error's text) or did not answer
    /// within the connect timeout.
    #[error("the token provider failed: {0}")]
    TokenProvider(String),
    /// A `wss://` connection failed in TLS: the broker's certificate is not
    /// trusted (or not for this host), the broker refused this client's
    /// certificate, or a CA / client certificate file is unusable. Not
    /// retried by `connect()`.
    #[error("tls: {0}")]
    Tls(String),
}

impl Error {
    /// Maps an `err` envelope answering one of our calls to an [`Error`]:
    /// the request outcomes callers branch on get their own variants.
    pub(crate) fn from_broker(code: ErrorCode, message: String) -> Error {
        match code {
            ErrorCode::NoResponders => Error::NoResponders,
            ErrorCode::Timeout => Error::Timeout,
            ErrorCode::Unauthorized => Error::Unauthorized { message },
            code => Error::Broker { code, message },
        }
    }

    /// Is a connection attempt that failed with this error worth repeating
    /// against the same broker? A refusal that will not change by itself
    /// (a 4xx handshake status, a protocol version the broker does not
    /// speak) is not: `connect()` returns it at once.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            Error::Handshake { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            Error::Broker { code, .. } => !matches!(
                code,
                ErrorCode::UnsupportedVersion
                    | ErrorCode::HelloRequired
                    | ErrorCode::InvalidEnvelope
                    | ErrorCode::BadFrame
                    | ErrorCode::UnknownType
            ),
            Error::InvalidUrl(_)
            | Error::InvalidName(_)
            | Error::Closed
            | Error::Unauthorized { .. }
            | Error::TokenExpired { .. }
            | Error::TokenProvider(_)
            | Error::Tls(_) => false,
            _ => true,
        }
    }
}

/// Something the client reports on its own, outside any call: passed to the
/// callback set with [`Client::on_error`](crate::Client::on_error), and
/// logged with `tracing`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A delivered payload did not decode as the handler's type; the event
    /// was skipped and the subscription goes on.
    Decode {
        /// Namespace of the event.
        namespace: String,
        /// Name of the event.
        event: String,
        /// The decoder's message.
        error: String,
    },
    /// A handler panicked; later events still run.
    HandlerPanic {
        /// Namespace of the event.
        namespace: String,
        /// Name of the event.
        event: String,
        /// The panic message, when it was a string.
        message: String,
    },
    /// The broker reported an error that answers no call of ours, e.g.
    /// [`ErrorCode::Dropped`]: it dropped events to this connection because
    /// it read too slowly.
    Broker {
        /// The broker's error code.
        code: ErrorCode,
        /// The broker's explanation.
        message: String,
    },
    /// Restoring a subscription or room membership after a reconnect failed.
    RestoreFailed {
        /// What was being restored, e.g. `sub /orders order.*`.
        what: String,
        /// Why it failed.
        error: Error,
    },
    /// The connection was lost; the client reconnects unless reconnection
    /// is disabled.
    ConnectionLost {
        /// Why it was lost.
        reason: String,
    },
    /// Reconnection gave up after `max_attempts`, or at once when retrying
    /// cannot help: the broker closed the connection for its token (or
    /// refused it when reconnecting) and no token provider can give another
    /// (or reconnection is disabled); `error` is then
    /// [`Error::TokenExpired`] or [`Error::Unauthorized`] and `attempts`
    /// may be 0. The client is closed.
    GaveUp {
        /// How many attempts were made.
        attempts: u32,
        /// The last attempt's error.
        error: Error,
    },
    /// Emits were discarded: queued while offline when the client closed,
    /// or in excess of the offline buffer when a connection failed.
    EmitsDropped {
        /// How many emits were discarded.
        count: usize,
    },
    /// The broker says the token expires soon (the `token_expiring`
    /// notice) and the client has no token provider: call
    /// [`Client::refresh_token`](crate::Client::refresh_token) with a new
    /// token, or the broker closes the connection at expiry.
    TokenExpiring {
        /// When the token expires, Unix seconds (if the broker said).
        exp: Option<u64>,
    },
    /// Refreshing the token when it was about to expire failed: the
    /// provider failed, or the broker refused its token. The connection
    /// goes on with the old token until the broker closes it at expiry;
    /// the client then reconnects with a fresh token from the provider.
    RefreshFailed {
        /// Why.
        error: Error,
    },
}

impl std::fmt::Display for ClientEvent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClientEvent::Decode {
                namespace,
                event,
                error,
            } => write!(
                f,
                "payload of {namespace} {event} did not decode as the handler's type: {error}"
            ),
            ClientEvent::HandlerPanic {
                namespace,
                event,
                message,
            } => write!(f, "handler for {namespace} {event} panicked: {message}"),
            ClientEvent::Broker { code, message } => write!(f, "broker error {code}: {message}"),
            ClientEvent::RestoreFailed { what, error } => {
                write!(f, "could not restore {what} after reconnecting: {error}")
            }
            ClientEvent::ConnectionLost { reason } => write!(f, "connection lost: {reason}"),
            ClientEvent::GaveUp { attempts, error } => {
                write!(f, "gave up reconnecting after {attempts} attempts: {error}")
            }
            ClientEvent::EmitsDropped { count } => write!(f, "{count} queued emits were dropped"),
            ClientEvent::TokenExpiring { exp: Some(exp) } => write!(
                f,
                "the token expires at {exp} (Unix seconds) and there is no token provider to refresh it"
            ),
            ClientEvent::TokenExpiring { exp: None } => {
                f.write_str("the token expires soon and there is no token provider to refresh it")
            }
            ClientEvent::RefreshFailed { error } => {
                write!(f, "refreshing the token failed: {error}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_outcomes_have_their_own_variants() {
        assert_eq!(
            Error::from_broker(ErrorCode::NoResponders, "x".into()),
            Error::NoResponders
        );
        assert_eq!(
            Error::from_broker(ErrorCode::Timeout, "x".into()),
            Error::Timeout
        );
        assert_eq!(
            Error::from_broker(ErrorCode::Unauthorized, "expired".into()),
            Error::Unauthorized {
                message: "expired".into()
            }
        );
        assert_eq!(
            Error::from_broker(ErrorCode::InvalidRoom, "bad".into()),
            Error::Broker {
                code: ErrorCode::InvalidRoom,
                message: "bad".into()
            }
        );
    }

    #[test]
    fn retryable_classification() {
        let refused = |status| Error::Handshake {
            status,
            reason: String::new(),
        };
        assert!(!refused(400).is_retryable());
        assert!(!refused(404).is_retryable());
        assert!(!refused(101).is_retryable());
        assert!(refused(503).is_retryable());
        assert!(refused(429).is_retryable());
        assert!(Error::Connect("refused".into()).is_retryable());
        let broker = |code| Error::Broker {
            code,
            message: String::new(),
        };
        assert!(!broker(ErrorCode::UnsupportedVersion).is_retryable());
        assert!(broker(ErrorCode::ShuttingDown).is_retryable());
        let unauthorized = Error::from_broker(ErrorCode::Unauthorized, String::new());
        assert!(!unauthorized.is_retryable());
        assert!(!Error::TokenProvider("down".into()).is_retryable());
    }
}
