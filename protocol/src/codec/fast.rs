//! Hand-written MessagePack for the hot path: reading the common envelopes
//! (the keys `t id ns ev room q r d xs ack tmo`, and the later optional
//! `from args ex sid mid`) and writing `event`.
//!
//! Both are exact stand-ins for the serde path, several times faster
//! (measured by `benches/codec.rs`):
//! - [`read_wire`] accepts only maps whose every key is one of those, once,
//!   with the plain type serde expects; on anything else (another key, a
//!   `nil`, a duplicate, invalid UTF-8, a signed or wider encoding it does
//!   not take) it returns `None` and the caller decodes with serde, which
//!   then gives the same result or the same error it always did;
//! - [`write_event`] writes the same keys in the same order with the same
//!   (shortest) encodings as serde, byte for byte.
//!
//! Tests compare each with the serde path on random envelopes.

use super::{EventRef, Wire};

/// Reads the common envelope shapes; `None` means "use serde".
pub(super) fn read_wire(frame: &[u8]) -> Option<Wire<'_>> {
    let mut input = Input { buf: frame, pos: 0 };
    let entries = input.map_len()?;
    let mut wire = Wire::default();
    let mut seen = 0u16;
    for _ in 0..entries {
        let key = input.str()?;
        let bit = match key {
            "t" => {
                wire.t = input.str()?;
                1
            }
            "id" => {
                wire.id = Some(input.uint()?);
                1 << 1
            }
            "ns" => {
                wire.ns = Some(input.str()?);
                1 << 2
            }
            "ev" => {
                wire.ev = Some(input.str()?);
                1 << 3
            }
            "room" => {
                wire.room = Some(input.str()?);
                1 << 4
            }
            "q" => {
                wire.q = Some(input.str()?);
                1 << 5
            }
            "r" => {
                wire.r = input.bool()?;
                1 << 6
            }
            "d" => {
                wire.d = Some(serde_bytes::Bytes::new(input.bin()?));
                1 << 7
            }
            "xs" => {
                wire.xs = input.bool()?;
                1 << 8
            }
            "ack" => {
                wire.ack = Some(input.uint()?);
                1 << 9
            }
            "tmo" => {
                wire.tmo = Some(input.uint()?);
                1 << 10
            }
            "from" => {
                wire.from = Some(input.str()?);
                1 << 11
            }
            "args" => {
                wire.args = Some(input.bool()?);
                1 << 12
            }
            "ex" => {
                wire.ex = Some(input.str()?);
                1 << 13
            }
            "sid" => {
                wire.sid = Some(input.str()?);
                1 << 14
            }
            "mid" => {
                wire.mid = Some(input.str()?);
                1 << 15
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    // `t` is required: without it serde names the missing field.
    (seen & 1 != 0).then_some(wire)
}

/// Writes an `event` envelope exactly as serde writes the equivalent
/// `Wire`.
pub(super) fn write_event(event: &EventRef<'_>, out: &mut Vec<u8>) {
    let entries = 4
        + u32::from(event.room.is_some())
        + u32::from(event.group.is_some())
        + u32::from(event.ack.is_some())
        + u32::from(event.from.is_some())
        + u32::from(event.args)
        + u32::from(event.seq.is_some())
        + u32::from(event.mid.is_some())
        + u32::from(event.epoch.is_some());
    // Writes into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(out, entries);
    let field = |out: &mut Vec<u8>, key: &str| {
        let _ = rmp::encode::write_str(out, key);
    };
    field(out, "t");
    let _ = rmp::encode::write_str(out, "event");
    field(out, "ns");
    let _ = rmp::encode::write_str(out, event.namespace);
    field(out, "ev");
    let _ = rmp::encode::write_str(out, event.event);
    if let Some(room) = event.room {
        field(out, "room");
        let _ = rmp::encode::write_str(out, room);
    }
    if let Some(group) = event.group {
        field(out, "q");
        let _ = rmp::encode::write_str(out, group);
    }
    field(out, "d");
    let _ = rmp::encode::write_bin(out, event.payload);
    if let Some(ack) = event.ack {
        field(out, "ack");
        let _ = rmp::encode::write_uint(out, ack);
    }
    if let Some(seq) = event.seq {
        field(out, "seq");
        let _ = rmp::encode::write_uint(out, seq);
    }
    if let Some(mid) = event.mid {
        field(out, "mid");
        let _ = rmp::encode::write_str(out, mid);
    }
    if let Some(from) = event.from {
        field(out, "from");
        let _ = rmp::encode::write_str(out, from);
    }
    if event.args {
        field(out, "args");
        let _ = rmp::encode::write_bool(out, true);
    }
    if let Some(epoch) = event.epoch {
        field(out, "epoch");
        let _ = rmp::encode::write_str(out, epoch);
    }
}

/// A read position in a frame; every read is bounds-checked.
struct Input<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let bytes = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(bytes)
    }

    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn len8(&mut self) -> Option<usize> {
        self.byte().map(usize::from)
    }

    fn len16(&mut self) -> Option<usize> {
        self.be().map(|b| usize::from(u16::from_be_bytes(b)))
    }

    fn len32(&mut self) -> Option<usize> {
        self.be()
            .and_then(|b| usize::try_from(u32::from_be_bytes(b)).ok())
    }

    fn map_len(&mut self) -> Option<usize> {
        match self.byte()? {
            m @ 0x80..=0x8f => Some(usize::from(m & 0x0f)),
            0xde => self.len16(),
            0xdf => self.len32(),
            _ => None,
        }
    }

    fn str(&mut self) -> Option<&'a str> {
        let len = match self.byte()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.len8()?,
            0xda => self.len16()?,
            0xdb => self.len32()?,
            _ => return None,
        };
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn bin(&mut self) -> Option<&'a [u8]> {
        let len = match self.byte()? {
            0xc4 => self.len8()?,
            0xc5 => self.len16()?,
            0xc6 => self.len32()?,
            _ => return None,
        };
        self.take(len)
    }

    fn uint(&mut self) -> Option<u64> {
        match self.byte()? {
            m @ 0x00..=0x7f => Some(u64::from(m)),
            0xcc => self.byte().map(u64::from),
            0xcd => self.be().map(|b| u64::from(u16::from_be_bytes(b))),
            0xce => self.be().map(|b| u64::from(u32::from_be_bytes(b))),
            0xcf => self.be().map(u64::from_be_bytes),
            _ => None,
        }
    }

    fn bool(&mut self) -> Option<bool> {
        match self.byte()? {
            0xc2 => Some(false),
            0xc3 => Some(true),
            _ => None,
        }
    }
}
