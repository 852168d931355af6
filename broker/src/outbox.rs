//! The send handle of one connection, as the router sees it: a bounded
//! queue of encoded frames, the slow-consumer policy, and the switch that
//! asks the connection to close.
//!
//! Nothing here awaits: the router offers a frame with `try_send`, so a
//! full receiver never blocks the publisher or the other receivers.
//!
//! Events may only fill the queue up to a reserve; the last slots are kept
//! for the broker's answers to the connection itself (`ok`, `ack`, `err`,
//! `reply`, `pong`). Under the `drop` policy events can be dropped (and are
//! counted and reported), but an answer is never dropped: when even the
//! reserve is full the client is not reading its answers, and it is
//! disconnected as a slow consumer whatever the policy.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use herald_config::SlowConsumerPolicy;
use herald_protocol::CloseReason;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::stats::Stats;

/// Most queue slots kept back for answers (an eighth of the queue, up to
/// this many).
const MAX_RESERVE: usize = 256;

/// A broker-wide unique connection number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ConnId(pub(crate) u64);

/// What became of one frame offered to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Offer {
    Queued,
    /// The queue is full: the receiver reads too slowly.
    Full,
    /// The connection is gone.
    Closed,
}

/// State shared by the connection's tasks and every map that routes to it.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) id: ConnId,
    tx: mpsc::Sender<Bytes>,
    /// Queue slots events may not use (kept for answers).
    reserve: usize,
    policy: SlowConsumerPolicy,
    /// Cancelled to close the connection; a child of the broker's shutdown
    /// token, so a shutdown reaches every connection at once.
    pub(crate) close: CancellationToken,
    /// The first reason given for closing wins; none means shutdown.
    reason: OnceLock<CloseReason>,
    /// Frames dropped under the `drop` policy and not yet reported to the
    /// client (the writer reports them with an `err` of code `dropped`).
    pub(crate) unreported_drops: AtomicU64,
    /// Requests this connection has in flight (bounded by config).
    pub(crate) pending_requests: AtomicUsize,
    stats: Arc<Stats>,
}

/// A cheap, clonable handle to a connection.
pub(crate) type Outbox = Arc<ConnShared>;

impl ConnShared {
    pub(crate) fn new(
        id: ConnId,
        tx: mpsc::Sender<Bytes>,
        policy: SlowConsumerPolicy,
        close: CancellationToken,
        stats: Arc<Stats>,
    ) -> Outbox {
        let reserve = (tx.max_capacity() / 8).min(MAX_RESERVE);
        Arc::new(ConnShared {
            id,
            reserve,
            tx,
            policy,
            close,
            reason: OnceLock::new(),
            unreported_drops: AtomicU64::new(0),
            pending_requests: AtomicUsize::new(0),
            stats,
        })
    }

    /// Queues an event frame if there is room above the reserve; no side
    /// effects otherwise.
    pub(crate) fn offer(&self, frame: &Bytes) -> Offer {
        if self.tx.capacity() <= self.reserve && !self.tx.is_closed() {
            return Offer::Full;
        }
        self.try_send(frame)
    }

    fn try_send(&self, frame: &Bytes) -> Offer {
        match self.tx.try_send(frame.clone()) {
            Ok(()) => Offer::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => Offer::Full,
            Err(mpsc::error::TrySendError::Closed(_)) => Offer::Closed,
        }
    }

    /// Queues a frame, applying the slow-consumer policy when the queue is
    /// full. Returns true when the frame was queued.
    pub(crate) fn deliver(&self, frame: &Bytes) -> bool {
        match self.offer(frame) {
            Offer::Queued => true,
            Offer::Closed => false,
            Offer::Full => {
                self.overflowed();
                false
            }
        }
    }

    /// Queues an answer to this connection (may use the reserve). When even
    /// that is full the client is not reading: it is closed as a slow
    /// consumer, whatever the policy. Returns true when queued.
    pub(crate) fn answer(&self, frame: &Bytes) -> bool {
        match self.try_send(frame) {
            Offer::Queued => true,
            Offer::Closed => false,
            Offer::Full => {
                self.close_with(CloseReason::SlowConsumer);
                false
            }
        }
    }

    /// Applies the slow-consumer policy after a frame did not fit.
    pub(crate) fn overflowed(&self) {
        match self.policy {
            SlowConsumerPolicy::Disconnect => self.close_with(CloseReason::SlowConsumer),
            SlowConsumerPolicy::Drop => {
                self.unreported_drops.fetch_add(1, Relaxed);
                Stats::add(&self.stats.events_dropped, 1);
            }
        }
    }

    /// Asks the connection to close for `reason` (the first reason wins).
    pub(crate) fn close_with(&self, reason: CloseReason) {
        let _ = self.reason.set(reason);
        self.close.cancel();
    }

    /// Why the connection is closing: the reason given, else shutdown.
    pub(crate) fn close_reason(&self) -> CloseReason {
        self.reason
            .get()
            .copied()
            .unwrap_or(CloseReason::ShuttingDown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outbox(capacity: usize, policy: SlowConsumerPolicy) -> (Outbox, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(capacity);
        let outbox = ConnShared::new(
            ConnId(1),
            tx,
            policy,
            CancellationToken::new(),
            Arc::new(Stats::default()),
        );
        (outbox, rx)
    }

    #[test]
    fn events_leave_the_reserve_for_answers() {
        let (outbox, mut rx) = outbox(16, SlowConsumerPolicy::Drop);
        let frame = Bytes::from_static(b"e");
        let queued = (0..20).filter(|_| outbox.deliver(&frame)).count();
        assert_eq!(queued, 14, "16 slots minus a reserve of 2");
        assert_eq!(outbox.unreported_drops.load(Relaxed), 6);
        assert!(outbox.answer(&frame));
        assert!(outbox.answer(&frame));
        assert!(!outbox.close.is_cancelled());
        // A client that does not even read its answers is disconnected,
        // whatever the policy.
        assert!(!outbox.answer(&frame));
        assert_eq!(outbox.close_reason(), CloseReason::SlowConsumer);
        assert_eq!(std::iter::from_fn(|| rx.try_recv().ok()).count(), 16);
    }

    #[test]
    fn tiny_queues_have_no_reserve() {
        let (outbox, _rx) = outbox(4, SlowConsumerPolicy::Disconnect);
        let frame = Bytes::from_static(b"e");
        assert_eq!((0..4).filter(|_| outbox.deliver(&frame)).count(), 4);
        assert!(!outbox.deliver(&frame));
        assert_eq!(outbox.close_reason(), CloseReason::SlowConsumer);
    }
}
