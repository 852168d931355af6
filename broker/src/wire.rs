//! Wire formats: how each kind of session spells what the router hands it.
//!
//! The router routes `(namespace, event, room, payload, sender)` and knows
//! a receiver only as an [`Outbox`](crate::outbox::Outbox); it never builds
//! a frame itself. Each session kind has a [`WireFormat`] that encodes an
//! event, and the answers of the broker to that session (a reply, an
//! error). Per emit the router keeps one [`Frames`]: one slot per format,
//! filled the first time a receiver of that format is offered the event,
//! so an event is encoded at most once per format present among its
//! receivers, never once per receiver.

use bytes::Bytes;
use herald_protocol::envelope::Reply;
use herald_protocol::{Envelope, ErrorCode, EventRef};

use crate::frame;

/// How many wire formats there are (the slots of [`Frames`]).
const FORMATS: usize = 2;

/// The format a session reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum WireFormat {
    /// Herald envelopes: one MessagePack envelope per binary WebSocket
    /// frame (`/v1/ws`).
    Herald,
    /// Socket.IO v5 packets in Engine.IO v4 messages (`/socket.io/`), over
    /// WebSocket or long-polling: queued as WebSocket frames, re-framed by
    /// the polling transport.
    SocketIo,
}

/// What the broker answers one connection.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Answer<'a> {
    /// A responder's reply to this connection's request `ack`, made in
    /// `namespace`.
    Reply {
        namespace: &'a str,
        ack: u64,
        ok: bool,
        payload: &'a Bytes,
        args: bool,
    },
    /// A refusal or a failed request: `id` is the request's ack id or the
    /// envelope id it answers, `namespace` where it was made (if known).
    Error {
        namespace: Option<&'a str>,
        id: Option<u64>,
        code: ErrorCode,
        message: &'a str,
    },
}

impl WireFormat {
    fn slot(self) -> usize {
        match self {
            WireFormat::Herald => 0,
            WireFormat::SocketIo => 1,
        }
    }

    /// The frame of one delivered event.
    pub(crate) fn event(self, event: &EventRef<'_>) -> Bytes {
        match self {
            WireFormat::Herald => frame::event(event),
            WireFormat::SocketIo => crate::socketio::format::event(event),
        }
    }

    /// The frame of one answer to a connection.
    pub(crate) fn answer(self, answer: &Answer<'_>) -> Bytes {
        match self {
            WireFormat::Herald => herald_answer(answer),
            WireFormat::SocketIo => crate::socketio::format::answer(answer),
        }
    }
}

fn herald_answer(answer: &Answer<'_>) -> Bytes {
    let envelope = match *answer {
        Answer::Reply {
            ack,
            ok,
            payload,
            args,
            ..
        } => Envelope::Reply(Reply {
            ack,
            ok,
            payload: payload.clone(),
            args,
        }),
        Answer::Error {
            id, code, message, ..
        } => Envelope::error(id, code, message),
    };
    frame::envelope(&envelope)
}

/// One emit's frames: one slot per wire format, each encoded on first use.
pub(crate) struct Frames<'a> {
    event: EventRef<'a>,
    slots: [Option<Bytes>; FORMATS],
}

impl<'a> Frames<'a> {
    pub(crate) fn new(event: EventRef<'a>) -> Frames<'a> {
        Frames {
            event,
            slots: Default::default(),
        }
    }

    /// The event's frame in `format`, encoded now if no receiver of that
    /// format had it yet.
    pub(crate) fn get(&mut self, format: WireFormat) -> &Bytes {
        let event = &self.event;
        self.slots[format.slot()].get_or_insert_with(|| format.event(event))
    }
}
