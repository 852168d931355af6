//! Reading a namespace's history ([`Namespace::history`](crate::Namespace::history),
//! the broker's `$history.read`, PROTOCOL.md §25.4): what a service loads
//! before it goes live, in a namespace with a history.

use bytes::Bytes;
use serde::Deserialize;

/// The request the broker answers with a [`HistoryPage`].
pub(crate) const READ_EVENT: &str = "$history.read";

/// One stored event.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct HistoryEvent {
    /// Its sequence number in the namespace.
    pub seq: u64,
    /// Its message id.
    pub mid: String,
    /// Its event name.
    #[serde(rename = "ev")]
    pub event: String,
    /// The room it was emitted to, if any.
    #[serde(default)]
    pub room: Option<String>,
    /// The session id of its sender, if a connection sent it.
    #[serde(default)]
    pub from: Option<String>,
    /// The payload holds several arguments (a Socket.IO emit).
    #[serde(default)]
    pub args: bool,
    /// The payload as it was emitted (MessagePack): decode it with
    /// `rmp_serde::from_slice`.
    #[serde(rename = "d", with = "serde_bytes_as_bytes")]
    pub payload: Bytes,
}

/// A page of a namespace's history.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct HistoryPage {
    /// The namespace read.
    pub namespace: String,
    /// The history's epoch: resume positions are only valid within it.
    pub epoch: String,
    /// The last `seq` given in the namespace.
    pub last: u64,
    /// False when events right after the position asked for were already
    /// evicted (the page starts at the oldest kept).
    pub complete: bool,
    /// The events after the position, oldest first, at most the limit.
    pub events: Vec<HistoryEvent>,
}

/// `Bytes` from a MessagePack bin.
mod serde_bytes_as_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        serde_bytes::ByteBuf::deserialize(d).map(|b| Bytes::from(b.into_vec()))
    }
}
