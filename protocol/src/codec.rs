//! MessagePack encoding of envelopes.
//!
//! An envelope is a MessagePack map with short string keys; `t` names the
//! type. Absent optional fields are left out of the map. **Unknown keys are
//! ignored** by decoders (so a newer peer may add fields), while an unknown
//! `t` is an error the receiver answers with `unknown_type`.
//!
//! Decoding borrows from the input: the payload of an `emit` or `event` is a
//! zero-copy slice of the frame's [`Bytes`].

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::envelope::{
    Auth, Emit, Envelope, ErrorBody, Event, Hello, Limits, Notice, Recovery, Reply, Resume,
    Revoked, RoomChange, Subscription, Welcome,
};
use crate::error::{CloseReason, DecodeError, ErrorCode};

/// The flat wire shape shared by all envelopes: every field but `t` is
/// optional, and which ones an envelope needs is checked after parsing.
#[derive(Serialize, Deserialize, Default)]
struct Wire<'a> {
    #[serde(borrow)]
    t: &'a str,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<u64>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    ns: Option<&'a str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    ev: Option<&'a str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    room: Option<&'a str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    q: Option<&'a str>,
    #[serde(default, skip_serializing_if = "is_false")]
    r: bool,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    d: Option<&'a serde_bytes::Bytes>,
    #[serde(default, skip_serializing_if = "is_false")]
    xs: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ack: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    tmo: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    mid: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ok: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    n: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    code: Option<ErrorCode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<CloseReason>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    msg: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<u32>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    token: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resume: Option<Resume>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    hb: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    limits: Option<Limits>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    node: Option<&'a str>,
    // Keys added after the first release go last: an envelope without them
    // encodes exactly as it always did (old peers compare golden bytes).
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    // An `Option` (written only when true) so that `nil` decodes as absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    args: Option<bool>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    ex: Option<&'a str>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exp: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    revoked: Option<Vec<Revoked>>,
    #[serde(default, borrow, skip_serializing_if = "Option::is_none")]
    epoch: Option<&'a str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recovery: Option<BTreeMap<String, Recovery>>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Encodes an envelope into a new buffer.
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + payload_len(envelope));
    encode_into(envelope, &mut out);
    out
}

/// Appends the encoding of an envelope to `out`.
pub fn encode_into(envelope: &Envelope, out: &mut Vec<u8>) {
    write_wire(&to_wire(envelope), out);
}

fn write_wire(wire: &Wire<'_>, out: &mut Vec<u8>) {
    // Writing a map of strings, integers and byte slices into a Vec cannot
    // fail: the only error sources are I/O and unsupported types.
    if let Err(error) = rmp_serde::encode::write_named(out, wire) {
        unreachable!("encoding into a Vec failed: {error}");
    }
}

/// A borrowed view of an `event` envelope, so a broker can encode the frame
/// it fans out straight from the incoming `emit`, without copying names.
#[derive(Debug, Clone, Copy, Default)]
pub struct EventRef<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Event name.
    pub event: &'a str,
    /// The room the event was emitted to, if any.
    pub room: Option<&'a str>,
    /// The queue group the event was delivered through, if any.
    pub group: Option<&'a str>,
    /// The opaque payload.
    pub payload: &'a [u8],
    /// The reply handle, on requests.
    pub ack: Option<u64>,
    /// The sender's session id, if any.
    pub from: Option<&'a str>,
    /// The payload is an array of several arguments.
    pub args: bool,
    /// The per-namespace sequence number, in a namespace with a history.
    pub seq: Option<u64>,
    /// The message id, in a namespace with a history.
    pub mid: Option<&'a str>,
    /// The history's epoch, with `seq`.
    pub epoch: Option<&'a str>,
}

/// Encodes an `event` envelope; the bytes equal those of [`encode`] on the
/// equivalent [`Envelope::Event`].
pub fn encode_event(event: &EventRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(event_len_hint(event));
    encode_event_into(event, &mut out);
    out
}

/// Like [`encode_event`], appending to `out` (so a caller can put a frame
/// header in front without copying the envelope).
pub fn encode_event_into(event: &EventRef<'_>, out: &mut Vec<u8>) {
    fast::write_event(event, out);
}

/// How many bytes [`encode_event`] produces (exactly: it sizes the
/// broker's frame buffers, which are then never reallocated).
pub fn event_len_hint(event: &EventRef<'_>) -> usize {
    fn str_len(s: &str) -> usize {
        let header = match s.len() {
            0..=31 => 1,
            32..=255 => 2,
            256..=65_535 => 3,
            _ => 5,
        };
        header + s.len()
    }
    fn uint_len(n: u64) -> usize {
        match n {
            0..=127 => 1,
            128..=255 => 2,
            256..=65_535 => 3,
            65_536..=0xFFFF_FFFF => 5,
            _ => 9,
        }
    }
    let bin_len = |len: usize| {
        let header = match len {
            0..=255 => 2,
            256..=65_535 => 3,
            _ => 5,
        };
        header + len
    };
    // The map header, then each key and its value.
    1 + (2 + 6)
        + (3 + str_len(event.namespace))
        + (3 + str_len(event.event))
        + event.room.map_or(0, |room| 5 + str_len(room))
        + event.group.map_or(0, |group| 2 + str_len(group))
        + (2 + bin_len(event.payload.len()))
        + event.ack.map_or(0, |ack| 4 + uint_len(ack))
        + event.seq.map_or(0, |seq| 4 + uint_len(seq))
        + event.mid.map_or(0, |mid| 4 + str_len(mid))
        + event.from.map_or(0, |from| 5 + str_len(from))
        + if event.args { 5 + 1 } else { 0 }
        + event.epoch.map_or(0, |epoch| 6 + str_len(epoch))
}

/// A borrowed view of an `emit` envelope, so a client can encode its emit
/// frame straight from its arguments, without building an [`Emit`].
#[derive(Debug, Clone, Copy, Default)]
pub struct EmitRef<'a> {
    /// The id the broker acknowledges (`ack` with the receivers' count).
    pub id: Option<u64>,
    /// Namespace.
    pub namespace: &'a str,
    /// Event name.
    pub event: &'a str,
    /// Only members of this room receive it.
    pub room: Option<&'a str>,
    /// The opaque payload.
    pub payload: &'a [u8],
    /// Not delivered to the sender.
    pub exclude_self: bool,
    /// The request's ack id (request/reply).
    pub ack: Option<u64>,
    /// The request's timeout in milliseconds.
    pub timeout_ms: Option<u64>,
    /// The payload is an array of several arguments.
    pub args: bool,
    /// Members of this room do not receive it.
    pub except: Option<&'a str>,
    /// The publisher's message id (`mid`), for de-duplication in a
    /// namespace with a history.
    pub message_id: Option<&'a str>,
}

/// Encodes an `emit` envelope; the bytes equal those of [`encode`] on the
/// equivalent [`Envelope::Emit`].
pub fn encode_emit(emit: &EmitRef<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        48 + emit.namespace.len()
            + emit.event.len()
            + emit.room.map_or(0, str::len)
            + emit.except.map_or(0, str::len)
            + emit.message_id.map_or(0, str::len)
            + emit.payload.len(),
    );
    fast::write_emit(emit, &mut out);
    out
}

/// An `event` envelope as [`decode_view`] hands it out: its names borrowed
/// from the frame (no allocation), its payload sharing the frame's memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventView<'a> {
    /// Namespace.
    pub namespace: &'a str,
    /// Event name.
    pub event: &'a str,
    /// The room it was emitted to, if any.
    pub room: Option<&'a str>,
    /// The queue group it was delivered through, if any.
    pub group: Option<&'a str>,
    /// The opaque payload, a slice of the frame.
    pub payload: Bytes,
    /// The reply handle, on requests.
    pub ack: Option<u64>,
    /// The sender's session id, if any.
    pub from: Option<&'a str>,
    /// The payload is an array of several arguments.
    pub args: bool,
    /// The per-namespace sequence number, in a namespace with a history.
    pub seq: Option<u64>,
    /// The message id, in a namespace with a history.
    pub mid: Option<&'a str>,
    /// The history's epoch, with `seq`.
    pub epoch: Option<&'a str>,
}

/// A frame decoded by [`decode_view`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded<'a> {
    /// An `event`, borrowed from the frame.
    Event(EventView<'a>),
    /// Any other envelope.
    Envelope(Envelope),
}

/// Decodes one frame like [`decode`], but hands an `event` out borrowed
/// ([`EventView`]): a receiver on the hot path allocates nothing for it.
/// Accepts and refuses exactly the frames [`decode`] does.
pub fn decode_view(frame: &Bytes) -> Result<Decoded<'_>, DecodeError> {
    if let Some(parts) = fast::read_event(frame) {
        if let (Some(namespace), Some(event)) = (parts.ns, parts.ev) {
            return Ok(Decoded::Event(EventView {
                namespace,
                event,
                room: parts.room,
                group: parts.q,
                payload: parts.d.map(|d| frame.slice_ref(d)).unwrap_or_default(),
                ack: parts.ack,
                from: parts.from,
                args: parts.args.unwrap_or(false),
                seq: parts.seq,
                mid: parts.mid,
                epoch: parts.epoch,
            }));
        }
    }
    let wire = read(frame)?;
    if wire.t != "event" {
        return from_wire(wire, frame).map(Decoded::Envelope);
    }
    Ok(Decoded::Event(EventView {
        namespace: need(wire.ns, "event", "ns")?,
        event: need(wire.ev, "event", "ev")?,
        room: wire.room,
        group: wire.q,
        payload: wire.d.map(|d| frame.slice_ref(d)).unwrap_or_default(),
        ack: wire.ack,
        from: wire.from,
        args: wire.args.unwrap_or(false),
        seq: wire.seq,
        mid: wire.mid,
        epoch: wire.epoch,
    }))
}

fn payload_len(envelope: &Envelope) -> usize {
    match envelope {
        Envelope::Emit(e) => e.payload.len(),
        Envelope::Event(e) => e.payload.len(),
        Envelope::Reply(r) => r.payload.len(),
        _ => 0,
    }
}

fn bin(payload: &Bytes) -> Option<&serde_bytes::Bytes> {
    Some(serde_bytes::Bytes::new(payload))
}

/// `args` on the wire: written only when true.
fn flag(args: bool) -> Option<bool> {
    args.then_some(true)
}

fn to_wire(envelope: &Envelope) -> Wire<'_> {
    let t = envelope.kind();
    match envelope {
        Envelope::Hello(h) => Wire {
            t,
            v: Some(h.version),
            name: h.client.as_deref(),
            token: h.token.as_deref(),
            resume: h.resume.clone(),
            ..Wire::default()
        },
        Envelope::Welcome(w) => Wire {
            t,
            v: Some(w.version),
            sid: Some(&w.session),
            hb: Some(w.heartbeat_ms),
            limits: Some(w.limits),
            node: w.node.as_deref(),
            user: w.user.as_deref(),
            exp: w.exp,
            recovery: (!w.recovery.is_empty()).then(|| w.recovery.clone()),
            ..Wire::default()
        },
        Envelope::Subscribe(s) | Envelope::Unsubscribe(s) => Wire {
            t,
            id: s.id,
            ns: Some(&s.namespace),
            ev: Some(&s.event),
            q: s.group.as_deref(),
            r: s.responder,
            ..Wire::default()
        },
        Envelope::Join(j) | Envelope::Leave(j) => Wire {
            t,
            id: j.id,
            ns: Some(&j.namespace),
            room: Some(&j.room),
            sid: j.sid.as_deref(),
            ..Wire::default()
        },
        Envelope::Emit(e) => Wire {
            t,
            id: e.id,
            ns: Some(&e.namespace),
            ev: Some(&e.event),
            room: e.room.as_deref(),
            d: bin(&e.payload),
            xs: e.exclude_self,
            ack: e.ack,
            tmo: e.timeout_ms,
            args: flag(e.args),
            ex: e.except.as_deref(),
            mid: e.message_id.as_deref(),
            ..Wire::default()
        },
        Envelope::Event(e) => Wire {
            t,
            ns: Some(&e.namespace),
            ev: Some(&e.event),
            room: e.room.as_deref(),
            q: e.group.as_deref(),
            d: bin(&e.payload),
            ack: e.ack,
            seq: e.seq,
            mid: e.message_id.as_deref(),
            from: e.from.as_deref(),
            args: flag(e.args),
            epoch: e.epoch.as_deref(),
            ..Wire::default()
        },
        Envelope::Reply(r) => Wire {
            t,
            ack: Some(r.ack),
            ok: Some(r.ok),
            d: bin(&r.payload),
            args: flag(r.args),
            ..Wire::default()
        },
        Envelope::Ack { id, receivers } => Wire {
            t,
            id: Some(*id),
            n: Some(*receivers),
            ..Wire::default()
        },
        Envelope::Ok { id } => Wire {
            t,
            id: Some(*id),
            ..Wire::default()
        },
        Envelope::Error(e) => Wire {
            t,
            id: e.id,
            code: Some(e.code),
            msg: Some(&e.message),
            ..Wire::default()
        },
        Envelope::Ping { ts } | Envelope::Pong { ts } => Wire {
            t,
            ts: *ts,
            ..Wire::default()
        },
        Envelope::Close { reason, message } => Wire {
            t,
            reason: Some(*reason),
            msg: Some(message),
            ..Wire::default()
        },
        Envelope::Auth(a) => Wire {
            t,
            id: a.id,
            token: Some(&a.token),
            ..Wire::default()
        },
        Envelope::Notice(n) => Wire {
            t,
            // A notice's code is open-ended (clients ignore codes they do
            // not know), so it travels as `name`, not as an error `code`.
            name: Some(&n.code),
            msg: Some(&n.message),
            exp: n.exp,
            revoked: (!n.revoked.is_empty()).then(|| n.revoked.clone()),
            ..Wire::default()
        },
    }
}

/// Decodes one frame. The payload of the result shares `frame`'s memory.
///
/// Never panics, whatever the input; a frame that is not a MessagePack map
/// is [`DecodeError::Malformed`].
pub fn decode(frame: &Bytes) -> Result<Envelope, DecodeError> {
    from_wire(read(frame)?, frame)
}

/// The flat wire shape of a frame: the fast path, else serde.
fn read(frame: &Bytes) -> Result<Wire<'_>, DecodeError> {
    match frame.first() {
        Some(0x80..=0x8f | 0xde | 0xdf) => {}
        Some(_) => return Err(DecodeError::Malformed("not a MessagePack map".into())),
        None => return Err(DecodeError::Malformed("empty frame".into())),
    }
    match fast::read_wire(frame) {
        Some(wire) => Ok(wire),
        None => rmp_serde::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string())),
    }
}

/// [`decode`] without the hand-written fast path (tests compare the two).
#[cfg(test)]
fn decode_with_serde(frame: &Bytes) -> Result<Envelope, DecodeError> {
    let wire: Wire<'_> =
        rmp_serde::from_slice(frame).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    from_wire(wire, frame)
}

fn need<T>(value: Option<T>, kind: &'static str, field: &'static str) -> Result<T, DecodeError> {
    value.ok_or(DecodeError::MissingField { kind, field })
}

fn from_wire(w: Wire<'_>, frame: &Bytes) -> Result<Envelope, DecodeError> {
    let owned = |s: Option<&str>| s.map(str::to_owned);
    // `d` borrows from `frame`: share the frame's buffer instead of copying.
    let payload =
        |d: Option<&serde_bytes::Bytes>| d.map(|d| frame.slice_ref(d)).unwrap_or_default();
    let envelope = match w.t {
        "hello" => Envelope::Hello(Hello {
            version: need(w.v, "hello", "v")?,
            client: owned(w.name),
            token: owned(w.token),
            resume: w.resume,
        }),
        "welcome" => Envelope::Welcome(Welcome {
            version: need(w.v, "welcome", "v")?,
            session: need(w.sid, "welcome", "sid")?.to_owned(),
            heartbeat_ms: need(w.hb, "welcome", "hb")?,
            limits: w.limits.unwrap_or_default(),
            node: owned(w.node),
            user: owned(w.user),
            exp: w.exp,
            recovery: w.recovery.unwrap_or_default(),
        }),
        kind @ ("sub" | "unsub") => {
            let kind = if kind == "sub" { "sub" } else { "unsub" };
            let s = Subscription {
                id: w.id,
                namespace: need(w.ns, kind, "ns")?.to_owned(),
                event: need(w.ev, kind, "ev")?.to_owned(),
                group: owned(w.q),
                responder: w.r,
            };
            if kind == "sub" {
                Envelope::Subscribe(s)
            } else {
                Envelope::Unsubscribe(s)
            }
        }
        kind @ ("join" | "leave") => {
            let kind = if kind == "join" { "join" } else { "leave" };
            let j = RoomChange {
                id: w.id,
                namespace: need(w.ns, kind, "ns")?.to_owned(),
                room: need(w.room, kind, "room")?.to_owned(),
                sid: owned(w.sid),
            };
            if kind == "join" {
                Envelope::Join(j)
            } else {
                Envelope::Leave(j)
            }
        }
        "emit" => Envelope::Emit(Emit {
            id: w.id,
            namespace: need(w.ns, "emit", "ns")?.to_owned(),
            event: need(w.ev, "emit", "ev")?.to_owned(),
            room: owned(w.room),
            payload: payload(w.d),
            exclude_self: w.xs,
            ack: w.ack,
            timeout_ms: w.tmo,
            args: w.args.unwrap_or(false),
            except: owned(w.ex),
            message_id: owned(w.mid),
        }),
        "event" => Envelope::Event(Event {
            namespace: need(w.ns, "event", "ns")?.to_owned(),
            event: need(w.ev, "event", "ev")?.to_owned(),
            room: owned(w.room),
            group: owned(w.q),
            payload: payload(w.d),
            ack: w.ack,
            seq: w.seq,
            message_id: owned(w.mid),
            from: owned(w.from),
            args: w.args.unwrap_or(false),
            epoch: owned(w.epoch),
        }),
        "reply" => Envelope::Reply(Reply {
            ack: need(w.ack, "reply", "ack")?,
            ok: need(w.ok, "reply", "ok")?,
            payload: payload(w.d),
            args: w.args.unwrap_or(false),
        }),
        "ack" => Envelope::Ack {
            id: need(w.id, "ack", "id")?,
            receivers: need(w.n, "ack", "n")?,
        },
        "ok" => Envelope::Ok {
            id: need(w.id, "ok", "id")?,
        },
        "err" => Envelope::Error(ErrorBody {
            id: w.id,
            code: need(w.code, "err", "code")?,
            message: w.msg.unwrap_or_default().to_owned(),
        }),
        "ping" => Envelope::Ping { ts: w.ts },
        "pong" => Envelope::Pong { ts: w.ts },
        "close" => Envelope::Close {
            reason: w.reason.unwrap_or(CloseReason::Unknown),
            message: w.msg.unwrap_or_default().to_owned(),
        },
        "auth" => Envelope::Auth(Auth {
            id: w.id,
            token: need(w.token, "auth", "token")?.to_owned(),
        }),
        "notice" => Envelope::Notice(Notice {
            code: need(w.name, "notice", "name")?.to_owned(),
            message: w.msg.unwrap_or_default().to_owned(),
            exp: w.exp,
            revoked: w.revoked.unwrap_or_default(),
        }),
        other => return Err(DecodeError::UnknownType(crate::names::excerpt(other))),
    };
    Ok(envelope)
}

mod fast;
#[cfg(test)]
mod tests;
