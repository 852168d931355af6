//! Decoding one Socket.IO v5 packet of the default parser from the text of
//! an Engine.IO message (what follows its `4`), validated as the reference
//! server validates it.
//!
//! Format: `<type>[<attachments>-][<namespace>,][<ack id>][<JSON data>]`:
//! - type: one digit, `0`..`6` ([`PacketType`]);
//! - attachments (types 5 and 6 only): decimal digits then `-`;
//! - namespace: present when the next character is `/`, up to the first
//!   `,` (consumed) or the end of the text; `/` otherwise;
//! - ack id: decimal digits, at most `u64::MAX`;
//! - data: the rest, one JSON text.
//!
//! The data must fit the type: CONNECT absent or an object; DISCONNECT
//! absent; EVENT and BINARY_EVENT a non-empty array whose first element is
//! a string that is not one of the reference parser's reserved names;
//! ACK and BINARY_ACK an array. CONNECT_ERROR is only ever sent by a server,
//! so a client's is refused. Every refusal is a [`PacketError`]; the
//! reference server closes the connection on any of them.

use thiserror::Error;

use super::json::Json;
use crate::names::excerpt;

/// The packet types of Socket.IO v5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// `0`: connect to a namespace (client), or its acceptance (server).
    Connect = 0,
    /// `1`: leave a namespace.
    Disconnect = 1,
    /// `2`: an event without binary attachments.
    Event = 2,
    /// `3`: an acknowledgement without binary attachments.
    Ack = 3,
    /// `4`: a refused connect (server only).
    ConnectError = 4,
    /// `5`: an event followed by binary attachments.
    BinaryEvent = 5,
    /// `6`: an acknowledgement followed by binary attachments.
    BinaryAck = 6,
}

impl PacketType {
    /// The type of a type digit.
    pub fn from_digit(c: u8) -> Option<PacketType> {
        Some(match c {
            b'0' => PacketType::Connect,
            b'1' => PacketType::Disconnect,
            b'2' => PacketType::Event,
            b'3' => PacketType::Ack,
            b'4' => PacketType::ConnectError,
            b'5' => PacketType::BinaryEvent,
            b'6' => PacketType::BinaryAck,
            _ => return None,
        })
    }

    /// The digit that starts a packet of this type.
    pub fn digit(self) -> char {
        char::from(b'0' + self as u8)
    }

    /// Whether binary attachments follow packets of this type.
    pub fn is_binary(self) -> bool {
        matches!(self, PacketType::BinaryEvent | PacketType::BinaryAck)
    }

    /// The name the specification uses (`BINARY_EVENT`).
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Event => "EVENT",
            PacketType::Ack => "ACK",
            PacketType::ConnectError => "CONNECT_ERROR",
            PacketType::BinaryEvent => "BINARY_EVENT",
            PacketType::BinaryAck => "BINARY_ACK",
        }
    }
}

impl std::fmt::Display for PacketType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Event names the reference parser refuses: the client and Node.js
/// EventEmitter use them for their own events.
pub const RESERVED_EVENTS: &[&str] = &[
    "connect",
    "connect_error",
    "disconnect",
    "disconnecting",
    "newListener",
    "removeListener",
];

/// Bounds on what a peer may announce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketLimits {
    /// Most binary attachments one packet may announce. Each attachment is
    /// one message, which the transport bounds (`max_payload`), so this
    /// bounds the bytes buffered for one packet.
    pub max_attachments: usize,
}

impl PacketLimits {
    /// The default bound on attachments per packet.
    pub const DEFAULT_MAX_ATTACHMENTS: usize = 10;
}

impl Default for PacketLimits {
    fn default() -> Self {
        PacketLimits {
            max_attachments: Self::DEFAULT_MAX_ATTACHMENTS,
        }
    }
}

/// One decoded client packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The namespace (`/` when the packet names none). Not checked against
    /// Herald's namespace rule here: answering a bad one is the session's
    /// job (CONNECT_ERROR).
    pub namespace: String,
    /// The ack id, when the sender wants an answer (events) or answers one
    /// (acks).
    pub id: Option<u64>,
    /// What the packet says.
    pub body: Body,
}

/// The typed content of a [`Packet`].
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// `CONNECT`, with the auth payload (always a [`Json::Object`]) if any.
    Connect {
        /// The client's auth payload.
        auth: Option<Json>,
    },
    /// `DISCONNECT`.
    Disconnect,
    /// `EVENT` or `BINARY_EVENT`.
    Event {
        /// The event name (first element of the data array).
        name: String,
        /// The arguments after the name, placeholders still in place.
        args: Vec<Json>,
        /// `None` for EVENT; the announced count for BINARY_EVENT.
        attachments: Option<usize>,
    },
    /// `ACK` or `BINARY_ACK`.
    Ack {
        /// The acknowledgement's arguments, placeholders still in place.
        args: Vec<Json>,
        /// `None` for ACK; the announced count for BINARY_ACK.
        attachments: Option<usize>,
    },
}

impl Packet {
    /// The packet's type.
    pub fn kind(&self) -> PacketType {
        match &self.body {
            Body::Connect { .. } => PacketType::Connect,
            Body::Disconnect => PacketType::Disconnect,
            Body::Event {
                attachments: None, ..
            } => PacketType::Event,
            Body::Event { .. } => PacketType::BinaryEvent,
            Body::Ack {
                attachments: None, ..
            } => PacketType::Ack,
            Body::Ack { .. } => PacketType::BinaryAck,
        }
    }

    /// How many binary messages follow this packet (0 for text types).
    pub fn attachments(&self) -> usize {
        match &self.body {
            Body::Event { attachments, .. } | Body::Ack { attachments, .. } => {
                attachments.unwrap_or(0)
            }
            _ => 0,
        }
    }
}

/// Why a client's Socket.IO message was refused. Messages quote at most the
/// start of the peer's text.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    /// The message had no packet type.
    #[error("empty Socket.IO packet")]
    Empty,
    /// The first character is not a packet type digit `0`..`6`.
    #[error("unknown Socket.IO packet type {0:?}")]
    UnknownType(char),
    /// A binary packet without `<digits>-` after its type.
    #[error("illegal attachments in {0:?}: a binary packet needs <count>- after its type")]
    IllegalAttachments(String),
    /// A binary packet announcing more attachments than allowed.
    #[error("too many attachments: {count} announced, at most {max}")]
    TooManyAttachments {
        /// The announced count (saturated at `u64::MAX`).
        count: u64,
        /// The bound ([`PacketLimits::max_attachments`]).
        max: usize,
    },
    /// An ack id past `u64::MAX`.
    #[error("ack id {0:?} does not fit in 64 bits")]
    AckIdOverflow(String),
    /// The data is not one JSON text.
    #[error("invalid JSON data: {0}")]
    Json(String),
    /// The data does not fit the packet type.
    #[error("invalid payload for {kind}: {reason}")]
    InvalidPayload {
        /// The packet's type.
        kind: PacketType,
        /// The rule that was broken.
        reason: &'static str,
    },
    /// An event named with one of [`RESERVED_EVENTS`].
    #[error("reserved event name {0:?}")]
    ReservedEvent(String),
    /// A CONNECT_ERROR packet, which only servers send.
    #[error("CONNECT_ERROR is sent by servers only")]
    ConnectErrorFromClient,
    /// A text message while the attachments of a binary packet were due.
    #[error("got a text message while {0} binary attachment(s) were still due")]
    TextWhileAssembling(usize),
    /// A binary message when no attachment was due.
    #[error("got a binary message when no attachment was due")]
    UnexpectedBinary,
}

/// Decodes a client packet with the default [`PacketLimits`].
pub fn decode(text: &str) -> Result<Packet, PacketError> {
    decode_with(text, &PacketLimits::default())
}

/// Decodes a client packet: the text after the Engine.IO `4`.
pub fn decode_with(text: &str, limits: &PacketLimits) -> Result<Packet, PacketError> {
    let bytes = text.as_bytes();
    let first = *bytes.first().ok_or(PacketError::Empty)?;
    let kind = PacketType::from_digit(first)
        .ok_or_else(|| PacketError::UnknownType(text.chars().next().unwrap_or('?')))?;
    if kind == PacketType::ConnectError {
        return Err(PacketError::ConnectErrorFromClient);
    }
    let mut pos = 1;

    let attachments = if kind.is_binary() {
        let digits = count_digits(&bytes[pos..]);
        if digits == 0 || bytes.get(pos + digits) != Some(&b'-') {
            return Err(PacketError::IllegalAttachments(excerpt(text)));
        }
        let count = parse_u64(&text[pos..pos + digits]).unwrap_or(u64::MAX);
        let within = usize::try_from(count)
            .ok()
            .filter(|&n| n <= limits.max_attachments);
        let Some(count_usize) = within else {
            return Err(PacketError::TooManyAttachments {
                count,
                max: limits.max_attachments,
            });
        };
        pos += digits + 1;
        Some(count_usize)
    } else {
        None
    };

    let namespace = if bytes.get(pos) == Some(&b'/') {
        let end = bytes[pos..]
            .iter()
            .position(|&b| b == b',')
            .map_or(bytes.len(), |i| pos + i);
        let ns = &text[pos..end];
        // Skip the comma when there is one.
        pos = (end + 1).min(bytes.len());
        ns
    } else {
        "/"
    };

    let digits = count_digits(&bytes[pos..]);
    let id = if digits > 0 {
        let id_text = &text[pos..pos + digits];
        pos += digits;
        Some(parse_u64(id_text).ok_or_else(|| PacketError::AckIdOverflow(excerpt(id_text)))?)
    } else {
        None
    };

    let data = &text[pos..];
    let data = if data.is_empty() {
        None
    } else {
        Some(Json::parse(data).map_err(|e| PacketError::Json(e.to_string()))?)
    };

    let invalid = |reason| PacketError::InvalidPayload { kind, reason };
    let body = match kind {
        PacketType::Connect => match data {
            None => Body::Connect { auth: None },
            Some(auth @ Json::Object(_)) => Body::Connect { auth: Some(auth) },
            Some(_) => return Err(invalid("the auth payload must be an object")),
        },
        PacketType::Disconnect => match data {
            None => Body::Disconnect,
            Some(_) => return Err(invalid("a DISCONNECT carries no data")),
        },
        PacketType::Event | PacketType::BinaryEvent => {
            let Some(Json::Array(mut items)) = data else {
                return Err(invalid("the data must be an array [name, ...args]"));
            };
            if items.is_empty() {
                return Err(invalid("the data must start with the event name"));
            }
            let Json::Str(name) = items.remove(0) else {
                return Err(invalid("the event name must be a string"));
            };
            if RESERVED_EVENTS.contains(&name.as_str()) {
                return Err(PacketError::ReservedEvent(name));
            }
            Body::Event {
                name,
                args: items,
                attachments,
            }
        }
        PacketType::Ack | PacketType::BinaryAck => {
            let Some(Json::Array(args)) = data else {
                return Err(invalid("the data must be an array of arguments"));
            };
            Body::Ack { args, attachments }
        }
        PacketType::ConnectError => return Err(PacketError::ConnectErrorFromClient),
    };
    Ok(Packet {
        namespace: namespace.to_owned(),
        id,
        body,
    })
}

/// How many ASCII digits `bytes` starts with.
fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Parses ASCII digits; `None` past `u64::MAX`.
fn parse_u64(digits: &str) -> Option<u64> {
    digits.bytes().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests;
