//! One event as a history log keeps it: its parts packed back to back.
//!
//! Appending is on the hot path of every emit in a history namespace, so a
//! stored event is bytes, not a struct of strings: the payload (copied out
//! of the emit's frame, whose read buffer it must not pin), then the event
//! name, room, excepted room, sender and the publisher's message id, with
//! a [`Layout`] saying where each ends. A log keeps them in its ring
//! ([`super::ring`]); a read gets [`Stored`] copies, which share one buffer
//! per page. An event without a publisher's message id stores none: its id
//! is `{epoch}-{seq}` ([`Stored::mid_or_derived`]).

use std::borrow::Cow;

use bytes::Bytes;
use herald_protocol::EventRef;

use super::Record;

/// Where each part of a packed event ends, and which optional ones it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Where each part but the last (the message id) ends.
    ends: [u32; 5],
    flags: u8,
}

const ROOM: u8 = 1;
const EXCEPT: u8 = 2;
const FROM: u8 = 4;
const EXCLUDE_SELF: u8 = 8;
const ARGS: u8 = 16;
const MID: u8 = 32;

/// The parts of an event to store, as borrowed from an emit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Parts<'a> {
    pub(crate) event: &'a str,
    pub(crate) room: Option<&'a str>,
    pub(crate) except: Option<&'a str>,
    pub(crate) from: Option<&'a str>,
    pub(crate) exclude_self: bool,
    pub(crate) args: bool,
    pub(crate) payload: &'a [u8],
    /// The publisher's message id.
    pub(crate) mid: Option<&'a str>,
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
            mid: emit.message_id.as_deref(),
        }
    }

    /// Event `e` with `payload` and nothing else (for tests).
    #[cfg(test)]
    pub(crate) fn plain(payload: &'a [u8], mid: Option<&'a str>) -> Parts<'a> {
        Parts {
            event: "e",
            room: None,
            except: None,
            from: None,
            exclude_self: false,
            args: false,
            payload,
            mid,
        }
    }

    /// The pieces in their packed order.
    fn pieces(&self) -> [&'a [u8]; 6] {
        [
            self.payload,
            self.event.as_bytes(),
            self.room.unwrap_or_default().as_bytes(),
            self.except.unwrap_or_default().as_bytes(),
            self.from.unwrap_or_default().as_bytes(),
            self.mid.unwrap_or_default().as_bytes(),
        ]
    }

    /// How many bytes the packed event takes.
    pub(crate) fn packed_len(&self) -> usize {
        self.pieces().iter().map(|p| p.len()).sum()
    }

    /// Writes the parts, in order, into `out` (exactly
    /// [`packed_len`](Self::packed_len) bytes), and says where they are.
    pub(crate) fn pack_into(&self, out: &mut [u8]) -> Layout {
        let mut at = 0;
        let mut ends = [0; 5];
        for (index, piece) in self.pieces().iter().enumerate() {
            if let Some(slot) = out.get_mut(at..at + piece.len()) {
                slot.copy_from_slice(piece);
            }
            at += piece.len();
            if let Some(end_at) = ends.get_mut(index) {
                *end_at = end(at);
            }
        }
        let flag = |on: bool, bit: u8| if on { bit } else { 0 };
        Layout {
            ends,
            flags: flag(self.room.is_some(), ROOM)
                | flag(self.except.is_some(), EXCEPT)
                | flag(self.from.is_some(), FROM)
                | flag(self.exclude_self, EXCLUDE_SELF)
                | flag(self.args, ARGS)
                | flag(self.mid.is_some(), MID),
        }
    }
}

/// A length as stored (parts are bounded far below 4 GiB by the message
/// size limit; a longer one would be cut, never wrap).
fn end(len: usize) -> u32 {
    u32::try_from(len).unwrap_or(u32::MAX)
}

/// A stored event where it lies (in a log's ring, or in a [`Stored`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredRef<'a> {
    pub(crate) seq: u64,
    pub(crate) layout: Layout,
    /// The packed parts.
    pub(crate) data: &'a [u8],
}

impl<'a> StoredRef<'a> {
    fn part(&self, index: usize) -> &'a [u8] {
        let start = match index.checked_sub(1) {
            Some(before) => self.layout.ends[before] as usize,
            None => 0,
        };
        let stop = self
            .layout
            .ends
            .get(index)
            .map_or(self.data.len(), |e| *e as usize);
        self.data.get(start..stop).unwrap_or_default()
    }

    /// A name part (stored from a `&str`, so always UTF-8).
    fn name(&self, index: usize) -> &'a str {
        std::str::from_utf8(self.part(index)).unwrap_or_default()
    }

    fn has(&self, bit: u8) -> bool {
        self.layout.flags & bit != 0
    }

    pub(crate) fn event(&self) -> &'a str {
        self.name(1)
    }

    /// The parts, to store again elsewhere.
    pub(crate) fn parts(&self) -> Parts<'a> {
        Parts {
            payload: self.part(0),
            event: self.event(),
            room: self.has(ROOM).then(|| self.name(2)),
            except: self.has(EXCEPT).then(|| self.name(3)),
            from: self.has(FROM).then(|| self.name(4)),
            mid: self.has(MID).then(|| self.name(5)),
            exclude_self: self.has(EXCLUDE_SELF),
            args: self.has(ARGS),
        }
    }
}

/// A stored event as a read hands it out: its own reference to the bytes.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) seq: u64,
    layout: Layout,
    data: Bytes,
}

impl Stored {
    /// Stores `parts` as event `seq` in a buffer of its own.
    pub(crate) fn new(seq: u64, parts: Parts<'_>) -> Stored {
        let mut data = vec![0; parts.packed_len()];
        let layout = parts.pack_into(&mut data);
        Stored {
            seq,
            layout,
            data: Bytes::from(data),
        }
    }

    /// Copies of `events`, sharing one buffer.
    pub(crate) fn copies<'a>(events: impl Iterator<Item = StoredRef<'a>> + Clone) -> Vec<Stored> {
        let total = events.clone().map(|e| e.data.len()).sum();
        let mut buffer = Vec::with_capacity(total);
        let mut spans = Vec::new();
        for event in events {
            let start = buffer.len();
            buffer.extend_from_slice(event.data);
            spans.push((event.seq, event.layout, start..buffer.len()));
        }
        let buffer = Bytes::from(buffer);
        spans
            .into_iter()
            .map(|(seq, layout, span)| Stored {
                seq,
                layout,
                data: buffer.slice(span),
            })
            .collect()
    }

    pub(crate) fn as_ref(&self) -> StoredRef<'_> {
        StoredRef {
            seq: self.seq,
            layout: self.layout,
            data: &self.data,
        }
    }

    pub(crate) fn parts(&self) -> Parts<'_> {
        self.as_ref().parts()
    }

    pub(crate) fn payload(&self) -> &[u8] {
        self.parts().payload
    }

    pub(crate) fn event(&self) -> &str {
        self.as_ref().event()
    }

    pub(crate) fn room(&self) -> Option<&str> {
        self.parts().room
    }

    /// The sender's session id.
    pub(crate) fn from(&self) -> Option<&str> {
        self.parts().from
    }

    /// The publisher's message id.
    pub(crate) fn mid(&self) -> Option<&str> {
        self.parts().mid
    }

    /// Its message id: the publisher's, else `{epoch}-{seq}`.
    pub(crate) fn mid_or_derived(&self, epoch: &str) -> Cow<'_, str> {
        match self.mid() {
            Some(mid) => Cow::Borrowed(mid),
            None => Cow::Owned(format!("{epoch}-{}", self.seq)),
        }
    }

    pub(crate) fn args(&self) -> bool {
        self.parts().args
    }

    /// The event as the receivers' wire formats encode it (stamped as it
    /// was live: the publisher's `mid` only).
    pub(crate) fn event_ref<'a>(&'a self, namespace: &'a str, epoch: &'a str) -> EventRef<'a> {
        let parts = self.parts();
        EventRef {
            namespace,
            event: parts.event,
            room: parts.room,
            group: None,
            payload: parts.payload,
            ack: None,
            from: parts.from,
            args: parts.args,
            seq: Some(self.seq),
            mid: parts.mid,
            epoch: Some(epoch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Parts, Stored};

    fn parts<'a>(room: Option<&'a str>, from: Option<&'a str>, mid: Option<&'a str>) -> Parts<'a> {
        Parts {
            event: "chat.message",
            room,
            except: None,
            from,
            exclude_self: true,
            args: false,
            payload: b"\x01\x02payload",
            mid,
        }
    }

    #[test]
    fn every_part_reads_back_as_it_was_given() {
        let stored = Stored::new(7, parts(Some("lobby"), Some("s1"), Some("m-1")));
        assert_eq!(stored.seq, 7);
        assert_eq!(stored.payload(), b"\x01\x02payload");
        assert_eq!(stored.event(), "chat.message");
        assert_eq!(stored.room(), Some("lobby"));
        assert_eq!(stored.parts().except, None);
        assert_eq!(stored.from(), Some("s1"));
        assert_eq!(stored.mid(), Some("m-1"));
        assert_eq!(stored.mid_or_derived("ep"), "m-1");
        assert!(stored.parts().exclude_self);
        assert!(!stored.args());
    }

    #[test]
    fn an_empty_name_is_not_an_absent_one_and_a_missing_mid_is_epoch_dash_seq() {
        let stored = Stored::new(u64::MAX, parts(Some(""), None, None));
        assert_eq!(stored.room(), Some(""));
        assert_eq!(stored.from(), None);
        assert_eq!(stored.mid(), None);
        assert_eq!(stored.mid_or_derived("ep"), format!("ep-{}", u64::MAX));
    }

    #[test]
    fn copies_share_one_buffer_and_read_back_each_event() {
        let a = Stored::new(1, parts(None, Some("s1"), None));
        let b = Stored::new(2, parts(Some("r"), None, Some("m")));
        let copies = Stored::copies([a.as_ref(), b.as_ref()].into_iter());
        assert_eq!(copies.len(), 2);
        assert_eq!((copies[0].seq, copies[0].from()), (1, Some("s1")));
        assert_eq!((copies[1].seq, copies[1].room()), (2, Some("r")));
        assert_eq!(copies[1].mid(), Some("m"));
        assert_eq!(copies[1].payload(), b"\x01\x02payload");
    }
}
