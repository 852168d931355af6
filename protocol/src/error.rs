//! Error codes carried in `err` envelopes, the reasons a connection is
//! closed, and the error type of the decoder.

use serde::{Deserialize, Serialize};
use thiserror::Error;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A code this version does not know (sent by a newer peer).
            Unknown,
        }

        impl $name {
            /// Every known value, for documentation and tests.
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];

            /// The wire text of this value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Unknown => "unknown",
                }
            }

            /// Parses the wire text; an unrecognised text is `Unknown`.
            pub fn parse(text: &str) -> $name {
                match text {
                    $($text => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Ok($name::parse(&text))
            }
        }
    };
}

string_enum! {
    /// The `code` of an `err` envelope. Codes are stable strings; a peer
    /// must treat a code it does not know as a generic error.
    ErrorCode {
        /// The frame is not a MessagePack map with a string `t`.
        BadFrame = "bad_frame",
        /// A text WebSocket frame was sent; Herald uses binary frames only.
        TextFrame = "text_frame",
        /// The `t` of the envelope is not one this broker knows.
        UnknownType = "unknown_type",
        /// A field the envelope needs is absent or has the wrong type.
        InvalidEnvelope = "invalid_envelope",
        /// The first envelope was not `hello`, or `hello` was sent twice.
        HelloRequired = "hello_required",
        /// `hello` asked for a protocol version this broker does not speak.
        UnsupportedVersion = "unsupported_version",
        /// The namespace breaks the namespace rule.
        InvalidNamespace = "invalid_namespace",
        /// The event name breaks the event rule.
        InvalidEvent = "invalid_event",
        /// The subscription pattern breaks the pattern rule.
        InvalidPattern = "invalid_pattern",
        /// The room name breaks the room rule.
        InvalidRoom = "invalid_room",
        /// The queue group name breaks the group rule.
        InvalidGroup = "invalid_group",
        /// The payload is larger than the broker's `max_payload` limit.
        PayloadTooLarge = "payload_too_large",
        /// The connection already has the most subscriptions allowed.
        TooManySubscriptions = "too_many_subscriptions",
        /// The connection is already in the most rooms allowed.
        TooManyRooms = "too_many_rooms",
        /// The connection already has the most requests in flight allowed.
        TooManyRequests = "too_many_requests",
        /// A request found no responder subscribed to its event.
        NoResponders = "no_responders",
        /// A request got no reply within its timeout.
        Timeout = "timeout",
        /// A reply named a request that is unknown or already answered.
        UnknownRequest = "unknown_request",
        /// The broker is shutting down and refuses new work.
        ShuttingDown = "shutting_down",
        /// Events to this connection were dropped because it read too slowly.
        Dropped = "dropped",
        /// The broker failed for a reason that is not the client's fault.
        Internal = "internal",
        /// The connection may not do this: a service power it does not
        /// hold (another connection's `join`/`leave`, an emit to a session
        /// id room), or a room it may not join (a session id room).
        Forbidden = "forbidden",
        /// A service named a session id that is not connected (anywhere
        /// in the cluster).
        UnknownSession = "unknown_session",
        /// The token was missing where one is required, or is invalid,
        /// expired, or not for this broker (`hello`, `auth`, the HTTP
        /// API); the message never says what exists on the broker.
        Unauthorized = "unauthorized",
        /// The connection sent messages faster than its configured rate
        /// (`[rate_limits]`); the message was not handled.
        RateLimited = "rate_limited",
    }
}

string_enum! {
    /// Why a connection was closed. Sent in the `close` envelope and as the
    /// reason text of the WebSocket close frame; logged and counted.
    CloseReason {
        /// The client closed the connection.
        ClientClosed = "client_closed",
        /// The broker is shutting down (close code 1001).
        ShuttingDown = "shutting_down",
        /// The outbound queue of the connection was full (slow consumer).
        SlowConsumer = "slow_consumer",
        /// No frame arrived within the heartbeat timeout.
        HeartbeatTimeout = "heartbeat_timeout",
        /// No valid `hello` within the handshake timeout.
        HandshakeTimeout = "handshake_timeout",
        /// The client broke the protocol (e.g. first envelope not `hello`,
        /// unsupported version, too many invalid frames in a row).
        ProtocolError = "protocol_error",
        /// A frame exceeded the broker's frame size limit (close code 1009).
        MessageTooBig = "message_too_big",
        /// The transport failed (reset, I/O error).
        TransportError = "transport_error",
        /// A text message or a close reason was not valid UTF-8 (close code
        /// 1007).
        InvalidUtf8 = "invalid_utf8",
        /// A message started but did not arrive in full within the
        /// broker's message timeout (close code 1008).
        MessageTimeout = "message_timeout",
        /// A Socket.IO client connected to no namespace within
        /// `socketio.connect_timeout`.
        ConnectTimeout = "connect_timeout",
        /// The connection's token was refused (invalid, expired, wrong
        /// issuer or audience) or missing where one is required.
        Unauthorized = "unauthorized",
        /// The connection's token expired and no valid refresh arrived
        /// within `auth.expiry_grace`.
        TokenExpired = "token_expired",
        /// The connection went on sending faster than its rate limit after
        /// being answered `rate_limited`.
        RateLimited = "rate_limited",
        /// An operator disconnected it (the admin console's disconnect).
        Kicked = "kicked",
    }
}

impl CloseReason {
    /// The WebSocket close code (RFC 6455 section 7.4.1) for this reason.
    pub fn ws_code(self) -> u16 {
        match self {
            CloseReason::ClientClosed => 1000,
            CloseReason::ShuttingDown => 1001,
            CloseReason::ProtocolError
            | CloseReason::HandshakeTimeout
            | CloseReason::ConnectTimeout => 1002,
            CloseReason::MessageTooBig => 1009,
            CloseReason::InvalidUtf8 => 1007,
            CloseReason::SlowConsumer
            | CloseReason::HeartbeatTimeout
            | CloseReason::MessageTimeout
            | CloseReason::Unauthorized
            | CloseReason::TokenExpired
            | CloseReason::RateLimited
            | CloseReason::Kicked => 1008,
            CloseReason::TransportError | CloseReason::Unknown => 1011,
        }
    }
}

impl ErrorCode {
    /// Whether an `err` of this code answers a malformed or invalid frame
    /// (the client's bug), as opposed to a refusal of a valid request
    /// (`no_responders`, `timeout`, a limit, ...). Only the former count
    /// towards the run of invalid frames that closes a connection
    /// (PROTOCOL.md §4.5).
    pub fn is_invalid_frame(self) -> bool {
        matches!(
            self,
            ErrorCode::BadFrame
                | ErrorCode::TextFrame
                | ErrorCode::UnknownType
                | ErrorCode::InvalidEnvelope
                | ErrorCode::HelloRequired
                | ErrorCode::InvalidNamespace
                | ErrorCode::InvalidEvent
                | ErrorCode::InvalidPattern
                | ErrorCode::InvalidRoom
                | ErrorCode::InvalidGroup
        )
    }
}

/// Why a frame could not be decoded into an envelope.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// Not a MessagePack map with a string `t`, or a field of the wrong type.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A well-formed envelope whose `t` is not known.
    #[error("unknown envelope type {0:?}")]
    UnknownType(String),
    /// A known envelope without a field it requires.
    #[error("envelope {kind:?} is missing field {field:?}")]
    MissingField {
        /// The envelope's `t`.
        kind: &'static str,
        /// The missing field's key.
        field: &'static str,
    },
}

impl DecodeError {
    /// The error code to answer this decode error with.
    pub fn code(&self) -> ErrorCode {
        match self {
            DecodeError::Malformed(_) => ErrorCode::BadFrame,
            DecodeError::UnknownType(_) => ErrorCode::UnknownType,
            DecodeError::MissingField { .. } => ErrorCode::InvalidEnvelope,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_is_tolerated() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), *code);
        }
        for reason in CloseReason::ALL {
            assert_eq!(CloseReason::parse(reason.as_str()), *reason);
        }
        assert_eq!(ErrorCode::parse("from_the_future"), ErrorCode::Unknown);
        assert_eq!(ErrorCode::parse("forbidden"), ErrorCode::Forbidden);
    }

    #[test]
    fn close_codes() {
        assert_eq!(CloseReason::ShuttingDown.ws_code(), 1001);
        assert_eq!(CloseReason::MessageTooBig.ws_code(), 1009);
        assert_eq!(CloseReason::InvalidUtf8.ws_code(), 1007);
        assert_eq!(CloseReason::MessageTimeout.ws_code(), 1008);
    }

    #[test]
    fn only_malformed_frames_count_as_invalid() {
        assert!(ErrorCode::BadFrame.is_invalid_frame());
        assert!(ErrorCode::InvalidRoom.is_invalid_frame());
        for answer in [
            ErrorCode::NoResponders,
            ErrorCode::Timeout,
            ErrorCode::TooManyRequests,
            ErrorCode::Dropped,
            ErrorCode::PayloadTooLarge,
            ErrorCode::UnknownRequest,
            ErrorCode::TooManySubscriptions,
            ErrorCode::Forbidden,
            ErrorCode::Unauthorized,
            ErrorCode::RateLimited,
        ] {
            assert!(!answer.is_invalid_frame(), "{answer}");
        }
    }
}
