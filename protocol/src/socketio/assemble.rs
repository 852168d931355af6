//! Joining a binary packet with its attachments: after a BINARY_EVENT or
//! BINARY_ACK announcing N attachments, the next N binary messages of the
//! connection are its attachments, in order; then the packet is complete.
//!
//! As in the reference decoder, a text message while attachments are due,
//! and a binary message when none is due, are errors. Memory: at most
//! [`PacketLimits::max_attachments`] messages are held, each bounded by the
//! transport's message size.

use bytes::Bytes;

use super::packet::{Packet, PacketError, PacketLimits, decode_with};

/// A packet with all its attachments.
#[derive(Debug, Clone, PartialEq)]
pub struct Assembled {
    /// The packet (placeholders still in its arguments).
    pub packet: Packet,
    /// Its attachments in order: what placeholder `num` n refers to. Empty
    /// for text packets.
    pub attachments: Vec<Bytes>,
}

/// The per-connection state that joins binary packets with their
/// attachments.
#[derive(Debug, Default)]
pub struct Assembler {
    limits: PacketLimits,
    /// The binary packet waiting for attachments, and those received.
    /// Boxed: a connection holds an assembler for its whole life, and is
    /// nearly always between packets.
    pending: Option<Box<(Packet, Vec<Bytes>)>>,
}

impl Assembler {
    /// An assembler enforcing `limits`.
    pub fn new(limits: PacketLimits) -> Assembler {
        Assembler {
            limits,
            pending: None,
        }
    }

    /// Takes a text message (after the Engine.IO `4`). Returns the packet
    /// when it is complete: at once for text types and for binary ones
    /// announcing 0 attachments, otherwise `None` until the attachments
    /// have come through [`Assembler::binary`].
    pub fn text(&mut self, text: &str) -> Result<Option<Assembled>, PacketError> {
        if let Some((packet, got)) = self.pending.as_deref() {
            return Err(PacketError::TextWhileAssembling(
                packet.attachments() - got.len(),
            ));
        }
        let packet = decode_with(text, &self.limits)?;
        let due = packet.attachments();
        if due == 0 {
            return Ok(Some(Assembled {
                packet,
                attachments: Vec::new(),
            }));
        }
        self.pending = Some(Box::new((packet, Vec::with_capacity(due))));
        Ok(None)
    }

    /// Takes a binary message: the next attachment of the pending packet.
    /// Returns the packet once its last attachment has come.
    pub fn binary(&mut self, data: Bytes) -> Result<Option<Assembled>, PacketError> {
        let Some((packet, got)) = self.pending.as_deref_mut() else {
            return Err(PacketError::UnexpectedBinary);
        };
        got.push(data);
        if got.len() < packet.attachments() {
            return Ok(None);
        }
        Ok(self.pending.take().map(|pending| {
            let (packet, attachments) = *pending;
            Assembled {
                packet,
                attachments,
            }
        }))
    }

    /// How many attachments the pending packet still waits for.
    pub fn due(&self) -> usize {
        self.pending
            .as_deref()
            .map_or(0, |(packet, got)| packet.attachments() - got.len())
    }

    /// Drops a pending packet and its attachments.
    pub fn reset(&mut self) {
        self.pending = None;
    }
}
