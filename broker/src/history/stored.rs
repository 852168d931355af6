//! One event as a history log keeps it, in a single allocation.
//!
//! Appending is on the hot path of every emit in a history namespace, so a
//! stored event is one buffer: the payload (copied out of the emit's frame,
//! whose read buffer it must not pin), then the event name, room, excepted
//! room, sender and message id back to back, with their ends beside it. A
//! broker-made message id (`{epoch}-{seq}`) is written straight into that
//! buffer. Cloning one (a read, a replay) takes a reference, never a copy.

use bytes::Bytes;
use herald_protocol::EventRef;

use super::Record;

/// Where an event's message id comes from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MidSource<'a> {
    /// The publisher's (or the cluster's) message id.
    Given(&'a str),
    /// None was given: the broker's own, `{epoch}-{seq}`.
    Derived { epoch: &'a str },
}

/// One stored event; the names are read back out of its buffer.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    /// Payload, event, room, except, sender, mid.
    data: Bytes,
    /// Where each part but the last ends in `data`.
    ends: [u32; 5],
    flags: u8,
}

const ROOM: u8 = 1;
const EXCEPT: u8 = 2;
const FROM: u8 = 4;
const EXCLUDE_SELF: u8 = 8;
const ARGS: u8 = 16;

/// The names of a stored event, as borrowed from an emit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub(crate) event: &'a str,
    pub(crate) room: Option<&'a str>,
    pub(crate) except: Option<&'a str>,
    pub(crate) from: Option<&'a str>,
    pub(crate) exclude_self: bool,
    pub(crate) args: bool,
    pub(crate) payload: &'a [u8],
}

impl<'a> Parts<'a> {
    /// What a log keeps of an emit.
    pub(crate) fn of(record: Record<'a>) -> Parts<'a> {
        let emit = record.emit;
        Parts {
            event: &emit.event,
            room: emit.room.as_deref(),
            except: emit.except.as_deref(),
            from: record.sender,
            exclude_self: emit.exclude_self,
            args: emit.args,
            payload: &emit.payload,
        }
    }
}

/// A length as stored (parts are bounded far below 4 GiB by the message
/// size limit; a longer one would be cut, never wrap).
fn end(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

impl Stored {
    /// Stores `parts` as event `seq`, with its message id.
    pub(crate) fn new(seq: u64, parts: Parts<'_>, mid: MidSource<'_>) -> Stored {
        let names = [
            parts.event,
            parts.room.unwrap_or_default(),
            parts.except.unwrap_or_default(),
            parts.from.unwrap_or_default(),
        ];
        let digits = &mut itoa::Buffer::new();
        let mid: [&[u8]; 3] = match mid {
            MidSource::Given(mid) => [mid.as_bytes(), b"", b""],
            MidSource::Derived { epoch } => [epoch.as_bytes(), b"-", digits.format(seq).as_bytes()],
        };
        let len = parts.payload.len()
            + names.iter().map(|n| n.len()).sum::<usize>()
            + mid.iter().map(|m| m.len()).sum::<usize>();
        // Exactly `len`, so the buffer becomes `Bytes` without a second
        // allocation.
        let mut data = Vec::with_capacity(len);
        data.extend_from_slice(parts.payload);
        let mut ends = [end(data.len()); 5];
        for (name, end_at) in names.iter().zip(ends.iter_mut().skip(1)) {
            data.extend_from_slice(name.as_bytes());
            *end_at = end(data.len());
        }
        for piece in mid {
            data.extend_from_slice(piece);
        }
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        Stored {
            seq,
            data: Bytes::from(data),
            ends,
            flags: flag(parts.room.is_some(), ROOM)
                | flag(parts.except.is_some(), EXCEPT)
                | flag(parts.from.is_some(), FROM)
                | flag(parts.exclude_self, EXCLUDE_SELF)
                | flag(parts.args, ARGS),
        }
    }

    fn part(&self, index: usize) -> &[u8] {
        let start = if index == 0 {
            0
        } else {
            self.ends[index - 1] as usize
        };
        let stop = self
            .ends
            .get(index)
            .map_or(self.data.len(), |e| *e as usize);
        self.data.get(start..stop).unwrap_or_default()
    }

    /// A name part (stored from a `&str`, so always UTF-8).
    fn name(&self, index: usize) -> &str {
        std::str::from_utf8(self.part(index)).unwrap_or_default()
    }

    fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    pub(crate) fn payload(&self) -> &[u8] {
        self.part(0)
    }

    pub(crate) fn event(&self) -> &str {
        self.name(1)
    }

    pub(crate) fn room(&self) -> Option<&str> {
        self.has(ROOM).then(|| self.name(2))
    }

    pub(crate) fn except(&self) -> Option<&str> {
        self.has(EXCEPT).then(|| self.name(3))
    }

    /// The sender's session id.
    pub(crate) fn from(&self) -> Option<&str> {
        self.has(FROM).then(|| self.name(4))
    }

    pub(crate) fn mid(&self) -> &str {
        self.name(5)
    }

    pub(crate) fn exclude_self(&self) -> bool {
        self.has(EXCLUDE_SELF)
    }

    pub(crate) fn args(&self) -> bool {
        self.has(ARGS)
    }

    /// The event as the receivers' wire formats encode it.
    pub(crate) fn event_ref<'a>(&'a self, namespace: &'a str, epoch: &'a str) -> EventRef<'a> {
        EventRef {
            namespace,
            event: self.event(),
            room: self.room(),
            group: None,
            payload: self.payload(),
            ack: None,
            from: self.from(),
            args: self.args(),
            seq: Some(self.seq),
            mid: Some(self.mid()),
            epoch: Some(epoch),
        }
    }

    /// About how many bytes it holds (for the memory bound and metrics).
    pub(crate) fn weight(&self) -> usize {
        std::mem::size_of::<Stored>() + self.data.len()
    }
}

#[cfg(test)]
mod tests {
    use super::{MidSource, Parts, Stored};

    fn parts<'a>(room: Option<&'a str>, from: Option<&'a str>) -> Parts<'a> {
        Parts {
            event: "chat.message",
            room,
            except: None,
            from,
            exclude_self: true,
            args: false,
            payload: b"\x01\x02payload",
        }
    }

    #[test]
    fn every_part_reads_back_as_it_was_given() {
        let stored = Stored::new(7, parts(Some("lobby"), Some("s1")), MidSource::Given("m-1"));
        assert_eq!(stored.seq, 7);
        assert_eq!(stored.payload(), b"\x01\x02payload");
        assert_eq!(stored.event(), "chat.message");
        assert_eq!(stored.room(), Some("lobby"));
        assert_eq!(stored.except(), None);
        assert_eq!(stored.from(), Some("s1"));
        assert_eq!(stored.mid(), "m-1");
        assert!(stored.exclude_self());
        assert!(!stored.args());
    }

    #[test]
    fn an_empty_name_is_not_an_absent_one_and_a_derived_mid_is_epoch_dash_seq() {
        let stored = Stored::new(
            u64::MAX,
            parts(Some(""), None),
            MidSource::Derived { epoch: "ep" },
        );
        assert_eq!(stored.room(), Some(""));
        assert_eq!(stored.from(), None);
        assert_eq!(stored.mid(), format!("ep-{}", u64::MAX));
        assert_eq!(stored.clone().mid(), stored.mid());
    }
}
