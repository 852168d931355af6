//! The way out: the current connection's outgoing queue, or the offline
//! buffer while there is no connection.
//!
//! Every frame a caller sends goes through [`Outbox`]. While a connection is
//! up, it hands out a clone of that connection's bounded sender; while the
//! connection is down, fire-and-forget emits wait in the offline buffer
//! (bounded: a full buffer refuses with [`Error::BufferFull`]) and every
//! other call fails with [`Error::Disconnected`]. The connection task flips
//! the state: [`Outbox::go_up`] hands it the buffered emits to write first,
//! [`Outbox::go_down`] starts buffering again.

use std::collections::VecDeque;
use std::sync::Mutex;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::error::Error;
use crate::lock;

/// One encoded frame on its way to the socket.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    /// The encoded envelope: one binary WebSocket frame.
    pub(crate) frame: Bytes,
    /// A fire-and-forget emit: if the connection fails before the frame
    /// reaches the socket, it moves to the offline buffer and is sent on the
    /// next connection. Everything else (subscriptions, replies, emits a
    /// caller waits on) belongs to the connection it was sent on: its caller
    /// is told `Disconnected`, and restoring subscriptions is the
    /// connection task's job.
    pub(crate) replay: bool,
}

impl Outgoing {
    /// A frame that is replayed on the next connection if it was not written.
    pub(crate) fn replayable(frame: Bytes) -> Outgoing {
        Outgoing {
            frame,
            replay: true,
        }
    }

    /// A frame bound to the connection it is sent on.
    pub(crate) fn once(frame: Bytes) -> Outgoing {
        Outgoing {
            frame,
            replay: false,
        }
    }
}

/// A connection's sender and its generation (which connection it is).
pub(crate) type Sender = (mpsc::Sender<Outgoing>, u64);

#[derive(Debug)]
enum Link {
    /// A connection is up; frames go to its writer.
    Up {
        tx: mpsc::Sender<Outgoing>,
        generation: u64,
    },
    /// No connection; emits wait here in order.
    Down { buffer: VecDeque<Bytes> },
    /// The client is closed for good.
    Closed,
}

/// Where frames go (see the module documentation).
#[derive(Debug)]
pub(crate) struct Outbox {
    /// A std mutex: it is held for a few instructions, never across an
    /// `.await` (senders are cloned out before sending).
    link: Mutex<Link>,
    /// The most emits the offline buffer holds.
    capacity: usize,
}

impl Outbox {
    /// An outbox without a connection yet.
    pub(crate) fn new(capacity: usize) -> Outbox {
        Outbox {
            link: Mutex::new(Link::Down {
                buffer: VecDeque::new(),
            }),
            capacity,
        }
    }

    /// Where a fire-and-forget emit goes: `Some(sender)` while connected,
    /// `None` when it was queued in the offline buffer.
    pub(crate) fn route_emit(&self, frame: &Bytes) -> Result<Option<Sender>, Error> {
        match &mut *lock(&self.link) {
            Link::Up { tx, generation } => Ok(Some((tx.clone(), *generation))),
            Link::Down { buffer } => {
                if buffer.len() >= self.capacity {
                    Err(Error::BufferFull)
                } else {
                    buffer.push_back(frame.clone());
                    Ok(None)
                }
            }
            Link::Closed => Err(Error::Closed),
        }
    }

    /// The current connection's sender, for calls that need a connection.
    pub(crate) fn sender(&self) -> Result<Sender, Error> {
        match &*lock(&self.link) {
            Link::Up { tx, generation } => Ok((tx.clone(), *generation)),
            Link::Down { .. } => Err(Error::Disconnected),
            Link::Closed => Err(Error::Closed),
        }
    }

    /// The sender of connection `generation`, if it is still the current
    /// one (a reply must go back on the connection its request came from).
    pub(crate) fn sender_for(&self, generation: u64) -> Option<mpsc::Sender<Outgoing>> {
        match &*lock(&self.link) {
            Link::Up {
                tx,
                generation: current,
            } if *current == generation => Some(tx.clone()),
            _ => None,
        }
    }

    /// A new connection is up: later frames go to `tx`. Returns the
    /// buffered emits, to be written before anything sent through `tx`, or
    /// `Err(Closed)` when the client was closed meanwhile.
    pub(crate) fn go_up(
        &self,
        tx: mpsc::Sender<Outgoing>,
        generation: u64,
    ) -> Result<VecDeque<Bytes>, Error> {
        let mut link = lock(&self.link);
        match std::mem::replace(&mut *link, Link::Up { tx, generation }) {
            Link::Down { buffer } => Ok(buffer),
            Link::Up { .. } => Ok(VecDeque::new()),
            Link::Closed => {
                *link = Link::Closed;
                Err(Error::Closed)
            }
        }
    }

    /// The connection is lost: emits are buffered from now on. Does nothing
    /// once closed.
    pub(crate) fn go_down(&self) {
        let mut link = lock(&self.link);
        if let Link::Up { .. } = &*link {
            *link = Link::Down {
                buffer: VecDeque::new(),
            };
        }
    }

    /// Puts emits that the lost connection never wrote back in front of the
    /// buffer, keeping their order. Returns how many did not fit (the
    /// newest of `frames` are dropped first) and were discarded.
    pub(crate) fn requeue_front(&self, frames: Vec<Bytes>) -> usize {
        match &mut *lock(&self.link) {
            Link::Down { buffer } => {
                let room = self.capacity.saturating_sub(buffer.len());
                let dropped = frames.len().saturating_sub(room);
                for frame in frames.into_iter().take(room).rev() {
                    buffer.push_front(frame);
                }
                dropped
            }
            // Closed (or, unexpectedly, up again): nowhere to put them.
            _ => frames.len(),
        }
    }

    /// Closes for good; returns how many buffered emits were discarded.
    pub(crate) fn close(&self) -> usize {
        match std::mem::replace(&mut *lock(&self.link), Link::Closed) {
            Link::Down { buffer } => buffer.len(),
            _ => 0,
        }
    }

    /// True once closed.
    pub(crate) fn is_closed(&self) -> bool {
        matches!(&*lock(&self.link), Link::Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Bytes {
        Bytes::from(vec![n])
    }

    #[test]
    fn offline_buffer_is_bounded() {
        let outbox = Outbox::new(2);
        assert!(matches!(outbox.route_emit(&frame(1)), Ok(None)));
        assert!(matches!(outbox.route_emit(&frame(2)), Ok(None)));
        assert_eq!(outbox.route_emit(&frame(3)).err(), Some(Error::BufferFull));
        assert_eq!(outbox.sender().err(), Some(Error::Disconnected));

        let (tx, _rx) = mpsc::channel(4);
        let buffered = outbox.go_up(tx, 1).expect("not closed");
        assert_eq!(buffered, [frame(1), frame(2)]);
        assert!(matches!(outbox.route_emit(&frame(4)), Ok(Some((_, 1)))));
        assert!(outbox.sender_for(1).is_some());
        assert!(outbox.sender_for(0).is_none());
    }

    #[test]
    fn zero_capacity_refuses_every_offline_emit() {
        let outbox = Outbox::new(0);
        assert_eq!(outbox.route_emit(&frame(1)).err(), Some(Error::BufferFull));
    }

    #[test]
    fn unwritten_emits_go_back_in_front_in_order() {
        let outbox = Outbox::new(3);
        let (tx, _rx) = mpsc::channel(4);
        outbox.go_up(tx, 1).expect("not closed");
        outbox.go_down();
        // An emit made after the loss is already buffered...
        assert!(matches!(outbox.route_emit(&frame(9)), Ok(None)));
        // ...and the frames the connection never wrote go before it.
        assert_eq!(outbox.requeue_front(vec![frame(1), frame(2), frame(3)]), 1);
        let (tx, _rx) = mpsc::channel(4);
        assert_eq!(
            outbox.go_up(tx, 2).expect("not closed"),
            [frame(1), frame(2), frame(9)]
        );
    }

    #[test]
    fn closed_is_final() {
        let outbox = Outbox::new(4);
        assert!(matches!(outbox.route_emit(&frame(1)), Ok(None)));
        assert_eq!(outbox.close(), 1);
        assert!(outbox.is_closed());
        assert_eq!(outbox.route_emit(&frame(1)).err(), Some(Error::Closed));
        assert_eq!(outbox.sender().err(), Some(Error::Closed));
        let (tx, _rx) = mpsc::channel(4);
        assert_eq!(outbox.go_up(tx, 3).err(), Some(Error::Closed));
        assert!(outbox.is_closed());
        outbox.go_down();
        assert!(outbox.is_closed());
    }
}
