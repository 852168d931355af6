//! Hand-written MessagePack for the hot path: reading the common envelopes
//! (the keys `t id ns ev room q r d xs ack tmo`, and the later optional
//! `from args ex sid mid`) and writing `event` and `emit`.
//!
//! Both are exact stand-ins for the serde path, several times faster
//! (measured by `benches/codec.rs`):
//! - [`read_wire`] accepts only maps whose every key is one of those, once,
//!   with the plain type serde expects; on anything else (another key, a
//!   `nil`, a duplicate, invalid UTF-8, a signed or wider encoding it does
//!   not take) it returns `None` and the caller decodes with serde, which
//!   then gives the same result or the same error it always did;
//! - [`write_event`] and [`write_emit`] write the same keys in the same order with the same
//!   (shortest) encodings as serde, byte for byte.
//!
//! Tests compare each with the serde path on random envelopes.

use super::{EmitRef, EventRef, Wire};

/// Reads the common envelope shapes; `None` means "use serde".
pub(super) fn read_wire(frame: &[u8]) -> Option<Wire<'_>> {
    let mut input = Input { buf: frame, pos: 0 };
    let entries = input.map_len()?;
    let mut wire = Wire::default();
    let mut seen = 0u16;
    for _ in 0..entries {
        // Keys are compared as bytes: only ASCII keys match, so checking
        // UTF-8 first would change nothing but the cost.
        let key = input.raw_str()?;
        let bit = match key {
            b"t" => {
                wire.t = input.str()?;
                1
            }
            b"id" => {
                wire.id = Some(input.uint()?);
                1 << 1
            }
            b"ns" => {
                wire.ns = Some(input.str()?);
                1 << 2
            }
            b"ev" => {
                wire.ev = Some(input.str()?);
                1 << 3
            }
            b"room" => {
                wire.room = Some(input.str()?);
                1 << 4
            }
            b"q" => {
                wire.q = Some(input.str()?);
                1 << 5
            }
            b"r" => {
                wire.r = input.bool()?;
                1 << 6
            }
            b"d" => {
                wire.d = Some(serde_bytes::Bytes::new(input.bin()?));
                1 << 7
            }
            b"xs" => {
                wire.xs = input.bool()?;
                1 << 8
            }
            b"ack" => {
                wire.ack = Some(input.uint()?);
                1 << 9
            }
            b"tmo" => {
                wire.tmo = Some(input.uint()?);
                1 << 10
            }
            b"from" => {
                wire.from = Some(input.str()?);
                1 << 11
            }
            b"args" => {
                wire.args = Some(input.bool()?);
                1 << 12
            }
            b"ex" => {
                wire.ex = Some(input.str()?);
                1 << 13
            }
            b"sid" => {
                wire.sid = Some(input.str()?);
                1 << 14
            }
            b"mid" => {
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

/// An `event` as [`read_event`] finds it: names borrowed, the payload a
/// slice of the frame.
#[derive(Debug, Default)]
pub(super) struct EventParts<'a> {
    pub(super) ns: Option<&'a str>,
    pub(super) ev: Option<&'a str>,
    pub(super) room: Option<&'a str>,
    pub(super) q: Option<&'a str>,
    pub(super) d: Option<&'a [u8]>,
    pub(super) ack: Option<u64>,
    pub(super) from: Option<&'a str>,
    pub(super) args: Option<bool>,
    pub(super) seq: Option<u64>,
    pub(super) mid: Option<&'a str>,
    pub(super) epoch: Option<&'a str>,
}

/// Reads an `event` envelope whose `t` comes first and whose every other
/// key is one an event carries (`ns ev room q d ack from args seq mid
/// epoch`), each
/// once, as [`read_wire`] reads them; `None` for anything else (the caller
/// takes the general path, which decides). Skips building a whole `Wire`
/// for the most frequent frame a client receives.
pub(super) fn read_event(frame: &[u8]) -> Option<EventParts<'_>> {
    let mut input = Input { buf: frame, pos: 0 };
    let entries = input.map_len()?;
    if entries == 0 || input.raw_str()? != b"t" || input.raw_str()? != b"event" {
        return None;
    }
    let mut parts = EventParts::default();
    let mut seen = 0u16;
    for _ in 1..entries {
        let bit = match input.raw_str()? {
            b"ns" => {
                parts.ns = Some(input.str()?);
                1
            }
            b"seq" => {
                parts.seq = Some(input.uint()?);
                1 << 8
            }
            b"mid" => {
                parts.mid = Some(input.str()?);
                1 << 9
            }
            b"epoch" => {
                parts.epoch = Some(input.str()?);
                1 << 10
            }
            b"ev" => {
                parts.ev = Some(input.str()?);
                1 << 1
            }
            b"room" => {
                parts.room = Some(input.str()?);
                1 << 2
            }
            b"q" => {
                parts.q = Some(input.str()?);
                1 << 3
            }
            b"d" => {
                parts.d = Some(input.bin()?);
                1 << 4
            }
            b"ack" => {
                parts.ack = Some(input.uint()?);
                1 << 5
            }
            b"from" => {
                parts.from = Some(input.str()?);
                1 << 6
            }
            b"args" => {
                parts.args = Some(input.bool()?);
                1 << 7
            }
            _ => return None,
        };
        if seen & bit != 0 {
            return None;
        }
        seen |= bit;
    }
    Some(parts)
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

/// Writes an `emit` envelope exactly as serde writes the equivalent
/// `Wire` (the keys in `Wire`'s order, `false` flags left out).
pub(super) fn write_emit(emit: &EmitRef<'_>, out: &mut Vec<u8>) {
    let entries = 4
        + u32::from(emit.id.is_some())
        + u32::from(emit.room.is_some())
        + u32::from(emit.exclude_self)
        + u32::from(emit.ack.is_some())
        + u32::from(emit.timeout_ms.is_some())
        + u32::from(emit.args)
        + u32::from(emit.except.is_some())
        + u32::from(emit.message_id.is_some());
    // Writes into a Vec cannot fail.
    let _ = rmp::encode::write_map_len(out, entries);
    let str_field = |out: &mut Vec<u8>, key: &str, value: &str| {
        let _ = rmp::encode::write_str(out, key);
        let _ = rmp::encode::write_str(out, value);
    };
    let uint_field = |out: &mut Vec<u8>, key: &str, value: u64| {
        let _ = rmp::encode::write_str(out, key);
        let _ = rmp::encode::write_uint(out, value);
    };
    let true_field = |out: &mut Vec<u8>, key: &str| {
        let _ = rmp::encode::write_str(out, key);
        let _ = rmp::encode::write_bool(out, true);
    };
    str_field(out, "t", "emit");
    if let Some(id) = emit.id {
        uint_field(out, "id", id);
    }
    str_field(out, "ns", emit.namespace);
    str_field(out, "ev", emit.event);
    if let Some(room) = emit.room {
        str_field(out, "room", room);
    }
    let _ = rmp::encode::write_str(out, "d");
    let _ = rmp::encode::write_bin(out, emit.payload);
    if emit.exclude_self {
        true_field(out, "xs");
    }
    if let Some(ack) = emit.ack {
        uint_field(out, "ack", ack);
    }
    if let Some(timeout) = emit.timeout_ms {
        uint_field(out, "tmo", timeout);
    }
    if let Some(mid) = emit.message_id {
        str_field(out, "mid", mid);
    }
    if emit.args {
        true_field(out, "args");
    }
    if let Some(except) = emit.except {
        str_field(out, "ex", except);
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

    /// A string's bytes, not checked for UTF-8.
    fn raw_str(&mut self) -> Option<&'a [u8]> {
        let len = match self.byte()? {
            m @ 0xa0..=0xbf => usize::from(m & 0x1f),
            0xd9 => self.len8()?,
            0xda => self.len16()?,
            0xdb => self.len32()?,
            _ => return None,
        };
        self.take(len)
    }

    fn str(&mut self) -> Option<&'a str> {
        std::str::from_utf8(self.raw_str()?).ok()
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
