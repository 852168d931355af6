//! A fast path for the one frame the load generator receives by the
//! million: finding the payload of an `event` without building the envelope
//! (no name strings allocated, no serde visitor).
//!
//! It walks the top-level MessagePack map, skipping scalar values, and
//! returns the `d` of a map whose `t` is `"event"`. Anything it does not
//! expect (another envelope, a nested map, a malformed frame) returns
//! `None`, and the caller falls back to [`herald_protocol::decode`], the
//! reference. Tests check it against that reference.

use bytes::Bytes;

/// The payload of `frame` if it is an `event` envelope of the usual shape.
pub fn event_payload(frame: &Bytes) -> Option<Bytes> {
    let mut reader = Reader {
        bytes: frame,
        at: 0,
    };
    let entries = reader.map_len()?;
    let mut is_event = false;
    let mut names = 0;
    let mut payload = None;
    for _ in 0..entries {
        let key = reader.str()?;
        match key {
            b"t" => is_event = reader.str()? == b"event",
            b"ns" | b"ev" => {
                reader.str()?;
                names += 1;
            }
            b"d" => payload = Some(reader.bin()?),
            _ => reader.skip_scalar()?,
        }
    }
    let (start, end) = payload?;
    (is_event && names == 2).then(|| frame.slice(start..end))
}

/// A cursor over a MessagePack buffer; every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Option<u8> {
        let byte = *self.bytes.get(self.at)?;
        self.at += 1;
        Some(byte)
    }

    /// A big-endian unsigned integer of `width` bytes.
    fn uint(&mut self, width: usize) -> Option<usize> {
        let raw = self.take(width)?;
        let mut value = 0u64;
        for &byte in raw {
            value = (value << 8) | u64::from(byte);
        }
        usize::try_from(value).ok()
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(len)?;
        let slice = self.bytes.get(self.at..end)?;
        self.at = end;
        Some(slice)
    }

    fn map_len(&mut self) -> Option<usize> {
        match self.byte()? {
            marker @ 0x80..=0x8f => Some(usize::from(marker & 0x0f)),
            0xde => self.uint(2),
            0xdf => self.uint(4),
            _ => None,
        }
    }

    fn str(&mut self) -> Option<&'a [u8]> {
        let len = match self.byte()? {
            marker @ 0xa0..=0xbf => usize::from(marker & 0x1f),
            0xd9 => self.uint(1)?,
            0xda => self.uint(2)?,
            0xdb => self.uint(4)?,
            _ => return None,
        };
        self.take(len)
    }

    /// The range of a `bin` value's bytes.
    fn bin(&mut self) -> Option<(usize, usize)> {
        let len = match self.byte()? {
            0xc4 => self.uint(1)?,
            0xc5 => self.uint(2)?,
            0xc6 => self.uint(4)?,
            _ => return None,
        };
        let start = self.at;
        self.take(len)?;
        Some((start, self.at))
    }

    /// Skips a value that is not a container or an extension.
    fn skip_scalar(&mut self) -> Option<()> {
        let skip = match self.byte()? {
            0x00..=0x7f | 0xe0..=0xff | 0xc0 | 0xc2 | 0xc3 => 0,
            marker @ 0xa0..=0xbf => usize::from(marker & 0x1f),
            0xcc | 0xd0 => 1,
            0xcd | 0xd1 => 2,
            0xca | 0xce | 0xd2 => 4,
            0xcb | 0xcf | 0xd3 => 8,
            0xc4 | 0xd9 => self.uint(1)?,
            0xc5 | 0xda => self.uint(2)?,
            0xc6 | 0xdb => self.uint(4)?,
            _ => return None,
        };
        self.take(skip).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use herald_protocol::Envelope;
    use herald_protocol::envelope::{Event, Reply};
    use proptest::prelude::*;

    use super::*;

    fn event(payload_len: usize) -> Event {
        Event {
            namespace: "/bench".to_owned(),
            event: "bench.r1.e0".to_owned(),
            payload: Bytes::from(vec![7u8; payload_len]),
            ..Event::default()
        }
    }

    fn frame(envelope: &Envelope) -> Bytes {
        Bytes::from(herald_protocol::encode(envelope))
    }

    #[test]
    fn finds_the_payload_of_events_of_every_size() {
        for len in [0, 1, 31, 128, 255, 256, 65_535, 65_536, 100_000] {
            let event = event(len);
            let found = event_payload(&frame(&Envelope::Event(event.clone())));
            assert_eq!(found, Some(event.payload), "payload of {len} bytes");
        }
    }

    #[test]
    fn other_envelopes_and_broken_frames_fall_back() {
        let reply = Envelope::Reply(Reply {
            ack: 1,
            ok: true,
            payload: Bytes::from_static(b"x"),
            args: false,
        });
        assert_eq!(event_payload(&frame(&reply)), None, "a reply has d too");
        assert_eq!(event_payload(&frame(&Envelope::Pong { ts: Some(3) })), None);
        let whole = frame(&Envelope::Event(event(128)));
        for cut in 0..whole.len() {
            assert_eq!(event_payload(&whole.slice(..cut)), None, "cut at {cut}");
        }
        assert_eq!(event_payload(&Bytes::new()), None);
    }

    proptest! {
        #[test]
        fn agrees_with_the_reference_decoder(
            namespace in "/[a-z]{1,10}",
            name in "[a-z]{1,8}(\\.[a-z0-9]{1,8}){0,3}",
            room in proptest::option::of("[a-z ]{1,40}"),
            group in proptest::option::of("[a-z]{1,20}"),
            payload in proptest::collection::vec(any::<u8>(), 0..300),
            ack in proptest::option::of(any::<u64>()),
            seq in proptest::option::of(any::<u64>()),
            message_id in proptest::option::of("[a-z0-9]{0,40}"),
            from in proptest::option::of("[a-z0-9-]{1,20}"),
            args in any::<bool>(),
            epoch in proptest::option::of("[a-z0-9]{1,12}"),
        ) {
            let event = Event {
                namespace,
                event: name,
                room,
                group,
                payload: Bytes::from(payload),
                ack,
                seq,
                message_id,
                from,
                args,
                epoch,
            };
            let frame = frame(&Envelope::Event(event.clone()));
            prop_assert_eq!(event_payload(&frame), Some(event.payload));
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let frame = Bytes::from(bytes);
            if let Some(payload) = event_payload(&frame) {
                prop_assert!(payload.len() <= frame.len());
            }
        }
    }
}
