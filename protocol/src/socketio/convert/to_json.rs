//! A Herald payload (MessagePack) to Socket.IO arguments: JSON text with
//! placeholders, and the binary attachments they name (the rules are in the
//! parent module's documentation).
//!
//! The MessagePack is read straight into the JSON text, without a tree: one
//! pass over the payload, nothing allocated by a length the payload claims
//! (every element takes at least one byte, so a lying count runs out of
//! input). If the payload turns out not to be one valid value, what was
//! written is rolled back and the payload becomes one binary argument.

use std::fmt::Write as _;

use bytes::Bytes;

use crate::socketio::json::{write_f64, write_int, write_str, write_uint};

/// Deepest nesting of arrays and maps converted; a deeper payload is sent
/// as one binary argument. 100 keeps the JSON within what `serde_json`
/// (and so Herald itself) reads back: 128 levels, the packet's own array
/// and a placeholder included.
pub const MAX_DEPTH: usize = 100;

/// Appends the payload's arguments to `out` as JSON separated by commas
/// (`1,"a"`; nothing for no arguments), and their attachments to
/// `attachments`. Placeholder `num`s count from 0 in each call: entries
/// already in `attachments` (another packet's) are not counted.
pub fn write_args(out: &mut String, payload: &Bytes, spread: bool, attachments: &mut Vec<Bytes>) {
    write_args_after(out, payload, spread, attachments, false);
}

/// Appends a packet's data array: `["event",…args]` with `Some(event)`,
/// `[…args]` with `None` (acks).
pub fn write_data(
    out: &mut String,
    event: Option<&str>,
    payload: &Bytes,
    spread: bool,
    attachments: &mut Vec<Bytes>,
) {
    out.push('[');
    if let Some(event) = event {
        write_str(out, event);
    }
    write_args_after(out, payload, spread, attachments, event.is_some());
    out.push(']');
}

/// [`write_args`]; `lead`: put a comma before the first argument too.
fn write_args_after(
    out: &mut String,
    payload: &Bytes,
    spread: bool,
    attachments: &mut Vec<Bytes>,
    lead: bool,
) {
    let out_start = out.len();
    let att_start = attachments.len();
    let mut writer = Writer {
        payload,
        pos: 0,
        out,
        attachments,
        first_num: att_start,
    };
    if writer.args(spread, lead).is_none() {
        // Not one valid MessagePack value: the raw bytes are the argument.
        out.truncate(out_start);
        attachments.truncate(att_start);
        if lead {
            out.push(',');
        }
        write_placeholder(out, 0);
        attachments.push(payload.clone());
    }
}

fn write_placeholder(out: &mut String, num: usize) {
    let _ = write!(out, "{{\"_placeholder\":true,\"num\":{num}}}");
}

/// One MessagePack value's head.
enum Token {
    UInt(u64),
    Int(i64),
    Float(f64),
    /// `null`, `true` or `false`.
    Text(&'static str),
    /// A string of that many bytes follows.
    Str(usize),
    /// Binary data of that many bytes follows.
    Bin(usize),
    /// That many elements follow.
    Array(usize),
    /// That many key-value pairs follow.
    Map(usize),
    /// A type byte and that many data bytes follow.
    Ext(usize),
}

/// Reads MessagePack from `payload[pos..]` and writes JSON to `out`. Every
/// method returns `None` on invalid input.
struct Writer<'a> {
    payload: &'a Bytes,
    pos: usize,
    out: &'a mut String,
    attachments: &'a mut Vec<Bytes>,
    /// Placeholder `num`s count from here: attachments already in the
    /// caller's vector belong to someone else.
    first_num: usize,
}

impl Writer<'_> {
    fn args(&mut self, spread: bool, lead: bool) -> Option<()> {
        if self.payload.is_empty() {
            return Some(());
        }
        let spread_len = if spread { self.array_header() } else { None };
        match spread_len {
            Some(len) => {
                for i in 0..len {
                    if i > 0 || lead {
                        self.out.push(',');
                    }
                    self.value(1, false)?;
                }
            }
            None => {
                if lead {
                    self.out.push(',');
                }
                self.value(0, false)?;
            }
        }
        // One value, nothing after it.
        (self.pos == self.payload.len()).then_some(())
    }

    /// Consumes an array header at the read position and returns its
    /// length; consumes nothing when the value there is not an array.
    fn array_header(&mut self) -> Option<usize> {
        let saved = self.pos;
        let len = match self.byte()? {
            m @ 0x90..=0x9f => Some(usize::from(m & 0x0f)),
            0xdc => self.be16(),
            0xdd => self.be32(),
            _ => None,
        };
        if len.is_none() {
            self.pos = saved;
        }
        len
    }

    fn byte(&mut self) -> Option<u8> {
        let b = *self.payload.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    fn take(&mut self, n: usize) -> Option<(usize, usize)> {
        let end = self.pos.checked_add(n)?;
        if end > self.payload.len() {
            return None;
        }
        let start = self.pos;
        self.pos = end;
        Some((start, end))
    }

    fn be<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (start, end) = self.take(N)?;
        self.payload.get(start..end)?.try_into().ok()
    }

    fn be16(&mut self) -> Option<usize> {
        self.be().map(|b| usize::from(u16::from_be_bytes(b)))
    }

    fn be32(&mut self) -> Option<usize> {
        self.be()
            .and_then(|b| usize::try_from(u32::from_be_bytes(b)).ok())
    }

    fn len8(&mut self) -> Option<usize> {
        self.byte().map(usize::from)
    }

    /// Reads one marker and what follows it up to the value's content.
    fn token(&mut self) -> Option<Token> {
        let marker = self.byte()?;
        Some(match marker {
            0x00..=0x7f => Token::UInt(u64::from(marker)),
            0xe0..=0xff => Token::Int(i64::from(i8::from_be_bytes([marker]))),
            0xc0 => Token::Text("null"),
            0xc2 => Token::Text("false"),
            0xc3 => Token::Text("true"),
            0xcc => Token::UInt(u64::from(self.byte()?)),
            0xcd => Token::UInt(u64::from(u16::from_be_bytes(self.be()?))),
            0xce => Token::UInt(u64::from(u32::from_be_bytes(self.be()?))),
            0xcf => Token::UInt(u64::from_be_bytes(self.be()?)),
            0xd0 => Token::Int(i64::from(i8::from_be_bytes(self.be()?))),
            0xd1 => Token::Int(i64::from(i16::from_be_bytes(self.be()?))),
            0xd2 => Token::Int(i64::from(i32::from_be_bytes(self.be()?))),
            0xd3 => Token::Int(i64::from_be_bytes(self.be()?)),
            0xca => Token::Float(f64::from(f32::from_be_bytes(self.be()?))),
            0xcb => Token::Float(f64::from_be_bytes(self.be()?)),
            0xa0..=0xbf => Token::Str(usize::from(marker & 0x1f)),
            0xd9 => Token::Str(self.len8()?),
            0xda => Token::Str(self.be16()?),
            0xdb => Token::Str(self.be32()?),
            0xc4 => Token::Bin(self.len8()?),
            0xc5 => Token::Bin(self.be16()?),
            0xc6 => Token::Bin(self.be32()?),
            0x90..=0x9f => Token::Array(usize::from(marker & 0x0f)),
            0xdc => Token::Array(self.be16()?),
            0xdd => Token::Array(self.be32()?),
            0x80..=0x8f => Token::Map(usize::from(marker & 0x0f)),
            0xde => Token::Map(self.be16()?),
            0xdf => Token::Map(self.be32()?),
            0xd4 => Token::Ext(1),
            0xd5 => Token::Ext(2),
            0xd6 => Token::Ext(4),
            0xd7 => Token::Ext(8),
            0xd8 => Token::Ext(16),
            0xc7 => Token::Ext(self.len8()?),
            0xc8 => Token::Ext(self.be16()?),
            0xc9 => Token::Ext(self.be32()?),
            // 0xc1 is never used by MessagePack.
            0xc1 => return None,
        })
    }

    /// Converts one value. `depth` counts the arrays and maps around it;
    /// `in_key`: it is (part of) a map key, where no placeholder can go.
    fn value(&mut self, depth: usize, in_key: bool) -> Option<()> {
        match self.token()? {
            Token::UInt(n) => write_uint(self.out, n),
            Token::Int(n) => write_int(self.out, n),
            Token::Float(f) => write_f64(self.out, f),
            Token::Text(text) => self.out.push_str(text),
            Token::Str(len) => self.str(len)?,
            Token::Bin(len) => self.bin(len, in_key)?,
            Token::Array(len) => self.array(len, depth, in_key)?,
            Token::Map(len) => self.map(len, depth, in_key)?,
            Token::Ext(len) => self.ext(len, in_key)?,
        }
        Some(())
    }

    fn str(&mut self, len: usize) -> Option<()> {
        let (start, end) = self.take(len)?;
        let bytes = self.payload.get(start..end)?;
        write_str(self.out, &String::from_utf8_lossy(bytes));
        Some(())
    }

    fn bin(&mut self, len: usize, in_key: bool) -> Option<()> {
        let (start, end) = self.take(len)?;
        if in_key {
            self.byte_array(start, end);
        } else {
            write_placeholder(self.out, self.attachments.len() - self.first_num);
            self.attachments.push(self.payload.slice(start..end));
        }
        Some(())
    }

    fn ext(&mut self, len: usize, in_key: bool) -> Option<()> {
        let [kind] = self.be::<1>()?;
        let _ = write!(
            self.out,
            "{{\"_ext\":{},\"data\":",
            i8::from_be_bytes([kind])
        );
        self.bin(len, in_key)?;
        self.out.push('}');
        Some(())
    }

    /// `bin` bytes inside a key, where placeholders cannot go: `[1,2,3]`.
    fn byte_array(&mut self, start: usize, end: usize) {
        self.out.push('[');
        for (i, b) in self.payload[start..end].iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            write_uint(self.out, u64::from(*b));
        }
        self.out.push(']');
    }

    fn array(&mut self, len: usize, depth: usize, in_key: bool) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.out.push('[');
        for i in 0..len {
            if i > 0 {
                self.out.push(',');
            }
            self.value(depth + 1, in_key)?;
        }
        self.out.push(']');
        Some(())
    }

    fn map(&mut self, len: usize, depth: usize, in_key: bool) -> Option<()> {
        if depth >= MAX_DEPTH {
            return None;
        }
        self.out.push('{');
        for i in 0..len {
            if i > 0 {
                self.out.push(',');
            }
            self.key(depth + 1)?;
            self.out.push(':');
            self.value(depth + 1, in_key)?;
        }
        self.out.push('}');
        Some(())
    }

    /// A map key: a string as itself, any other value as its JSON text.
    fn key(&mut self, depth: usize) -> Option<()> {
        let marker = *self.payload.get(self.pos)?;
        if matches!(marker, 0xa0..=0xbf | 0xd9..=0xdb) {
            return self.value(depth, true);
        }
        let mut text = String::new();
        let mut key = Writer {
            payload: self.payload,
            pos: self.pos,
            out: &mut text,
            attachments: &mut Vec::new(),
            first_num: 0,
        };
        key.value(depth, true)?;
        self.pos = key.pos;
        write_str(self.out, &text);
        Some(())
    }
}
