//! The send handle of one connection, as the router sees it: a bounded
//! queue of encoded frames, the slow-consumer policy, and the switch that
//! asks the connection to close.
//!
//! Nothing here awaits: the router offers a frame with `try_send`, so a
//! full receiver never blocks the publisher or the other receivers. The
//! queue is bounded twice: in frames (`delivery.queue_capacity`) and in
//! bytes (`delivery.max_queued_bytes`, answers included); crossing either
//! is a full queue.
//!
//! Back-pressure instead of loss: a receiver whose queue passes its
//! high-water mark (half of either bound) tells the publisher, which stops
//! reading for a moment ([`ConnShared::wait_drained`]) until the
//! receiver's writer has drained it to the low-water mark, as nats-server
//! stalls a fast producer. A receiver that does not drain within the stall
//! limit is marked stalled and exerts no more back-pressure until it
//! drains, so one stuck reader cannot slow a publisher down for long; its
//! queue then fills and the slow-consumer policy handles it.
//!
//! Events may only fill the queue up to a reserve; the last slots are kept
//! for the broker's answers to the connection itself (`ok`, `ack`, `err`,
//! `reply`, `pong`). Under the `drop` policy events can be dropped (and are
//! counted and reported), but an answer is never dropped: when even the
//! reserve is full the client is not reading its answers, and it is
//! disconnected as a slow consumer whatever the policy.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use herald_config::SlowConsumerPolicy;
use herald_protocol::CloseReason;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::stats::Stats;
use crate::wire::{Answer, WireFormat};

use Ordering::{Relaxed, SeqCst};

/// Longest a publisher waits for one receiver to drain before it reads
/// on (and marks the receiver stalled). Generous for a receiver that
/// reads (draining half a queue takes a few writes), short enough that a
/// stuck one costs a publisher one pause.
const STALL_LIMIT: Duration = Duration::from_millis(100);

/// `peer_close_code` before the client sent a close frame.
const NO_CLOSE_FRAME: u32 = u32::MAX;

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

/// Which bound a slow consumer crossed (for its close message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Overflow {
    /// `delivery.queue_capacity` frames.
    Frames = 1,
    /// `delivery.max_queued_bytes` bytes.
    Bytes = 2,
    /// A write made no progress for `delivery.write_timeout`.
    WriteStalled = 3,
}

/// The bounds of one connection's queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    pub(crate) policy: SlowConsumerPolicy,
    /// Bytes the queue may hold (answers included).
    pub(crate) max_bytes: usize,
}

/// A room of a namespace: `(namespace, room)`.
pub(crate) type RoomKey = (Box<str>, Box<str>);

/// Who a connection is to the others: its session id (the name of its
/// own room, and the `from` of what it emits) and the format it reads.
#[derive(Debug, Clone)]
pub(crate) struct Identity {
    pub(crate) session: Arc<str>,
    pub(crate) format: WireFormat,
}

/// What the admin console shows of a connection, beside its queue: set
/// by its session (transport, peer, user, client name) and kept up to date
/// by the router (namespaces with their subscription counts). Behind a
/// short lock of this one connection; read only by the admin API.
#[derive(Debug, Default, Clone)]
pub(crate) struct ConnInfo {
    /// `websocket` (native), `socketio-websocket` or `socketio-polling`.
    pub(crate) transport: &'static str,
    pub(crate) peer: Option<std::net::SocketAddr>,
    /// The token's `sub` under `auth.mode = "jwt"`.
    pub(crate) user: Option<Box<str>>,
    /// The client name of a native hello.
    pub(crate) client: Option<Box<str>>,
    /// Namespaces it subscribed in, with the number of subscriptions
    /// (a few at most, so a vector).
    pub(crate) namespaces: Vec<(Box<str>, u32)>,
    /// When it opened, ms since the Unix epoch.
    pub(crate) since_ms: u64,
}

impl ConnInfo {
    /// One more (`add`) or one fewer subscription in `namespace`.
    pub(crate) fn count_subscription(&mut self, namespace: &str, add: bool) {
        let at = self
            .namespaces
            .iter()
            .position(|(ns, _)| **ns == *namespace);
        match (at, add) {
            (Some(at), true) => self.namespaces[at].1 += 1,
            (None, true) => self.namespaces.push((namespace.into(), 1)),
            (Some(at), false) => {
                self.namespaces[at].1 -= 1;
                if self.namespaces[at].1 == 0 {
                    self.namespaces.swap_remove(at);
                }
            }
            (None, false) => {}
        }
    }
}

/// State shared by the connection's tasks and every map that routes to it.
#[derive(Debug)]
pub(crate) struct ConnShared {
    pub(crate) id: ConnId,
    /// The session id, `<node>-<id>`.
    pub(crate) session: Arc<str>,
    /// What the router encodes for this connection.
    pub(crate) format: WireFormat,
    /// The rooms it is in, joined itself or moved there by a service:
    /// what the router removes it from when it closes.
    rooms: Mutex<HashSet<RoomKey>>,
    tx: mpsc::Sender<Bytes>,
    /// Queue slots events may not use (kept for answers).
    reserve: usize,
    policy: SlowConsumerPolicy,
    /// Bytes queued and not yet taken by the writer.
    queued_bytes: AtomicUsize,
    /// Bytes the queue may hold; events may use all but an eighth, kept
    /// for answers like the reserved slots.
    max_bytes: usize,
    event_bytes: usize,
    /// Cancelled to close the connection; a child of the broker's shutdown
    /// token, so a shutdown reaches every connection at once.
    pub(crate) close: CancellationToken,
    /// The first reason given for closing wins; none means shutdown.
    reason: OnceLock<CloseReason>,
    /// For a slow consumer: the bound it crossed ([`Overflow`] as u8).
    overflow: AtomicU8,
    /// The status code of the client's close frame, to echo in the
    /// broker's answering close frame: [`NO_CLOSE_FRAME`] until one
    /// arrives, 0 for a close frame without a code.
    peer_close_code: AtomicU32,
    /// Frames dropped under the `drop` policy and not yet reported to the
    /// client (the writer reports them with an `err` of code `dropped`).
    pub(crate) unreported_drops: AtomicU64,
    /// Frames dropped under the `drop` policy since it opened (the admin
    /// console's per-connection drops).
    pub(crate) dropped: AtomicU64,
    /// What the admin console shows of it.
    info: Mutex<ConnInfo>,
    /// Requests this connection has in flight (bounded by config).
    pub(crate) pending_requests: AtomicUsize,
    /// Who it is, for presence; none until `hello` / CONNECT (then listed
    /// as an anonymous native connection).
    profile: Mutex<Option<Arc<Profile>>>,
    /// Back-pressure: set when this queue did not drain within a
    /// publisher's stall limit; cleared when it drains.
    stalled: AtomicBool,
    /// A publisher waits for [`ConnShared::drained`].
    drain_wanted: AtomicBool,
    /// Notified by the writer when the queue falls to the low-water mark
    /// and a publisher is waiting.
    drained: Notify,
    stats: Arc<Stats>,
}

/// A cheap, clonable handle to a connection.
pub(crate) type Outbox = Arc<ConnShared>;

/// Who a connection is, as presence lists it: set at `hello` (native) or
/// at a Socket.IO CONNECT, replaced when the token or the transport
/// changes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Profile {
    /// The token's `sub`.
    pub(crate) user: Option<Arc<str>>,
    /// `hello.client`, at most [`MAX_CLIENT_NAME`] bytes.
    pub(crate) client: Option<Box<str>>,
    /// `native`, `websocket` or `polling`.
    pub(crate) transport: &'static str,
}

/// Longest client name presence keeps (a longer one is cut at a character
/// boundary).
pub(crate) const MAX_CLIENT_NAME: usize = 64;

impl Profile {
    /// A profile with `client` cut to [`MAX_CLIENT_NAME`] bytes.
    pub(crate) fn new(
        user: Option<Arc<str>>,
        client: Option<&str>,
        transport: &'static str,
    ) -> Profile {
        let client = client.map(|name| {
            let mut end = name.len().min(MAX_CLIENT_NAME);
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            Box::from(&name[..end])
        });
        Profile {
            user,
            client,
            transport,
        }
    }
}

impl ConnShared {
    /// A connection with no byte bound (only the frame bound of `tx`).
    pub(crate) fn new(
        id: ConnId,
        tx: mpsc::Sender<Bytes>,
        policy: SlowConsumerPolicy,
        close: CancellationToken,
        stats: Arc<Stats>,
    ) -> Outbox {
        let limits = QueueLimits {
            policy,
            max_bytes: usize::MAX,
        };
        let identity = Identity {
            session: Arc::from(format!("test-{}", id.0)),
            format: WireFormat::Herald,
        };
        ConnShared::with_limits(id, identity, tx, limits, close, stats)
    }

    pub(crate) fn with_limits(
        id: ConnId,
        identity: Identity,
        tx: mpsc::Sender<Bytes>,
        limits: QueueLimits,
        close: CancellationToken,
        stats: Arc<Stats>,
    ) -> Outbox {
        let reserve = (tx.max_capacity() / 8).min(MAX_RESERVE);
        Arc::new(ConnShared {
            id,
            session: identity.session,
            format: identity.format,
            rooms: Mutex::new(HashSet::new()),
            reserve,
            tx,
            policy: limits.policy,
            queued_bytes: AtomicUsize::new(0),
            max_bytes: limits.max_bytes,
            event_bytes: limits.max_bytes - limits.max_bytes / 8,
            close,
            reason: OnceLock::new(),
            overflow: AtomicU8::new(0),
            peer_close_code: AtomicU32::new(NO_CLOSE_FRAME),
            unreported_drops: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            info: Mutex::new(ConnInfo {
                since_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
                ..ConnInfo::default()
            }),
            pending_requests: AtomicUsize::new(0),
            profile: Mutex::new(None),
            stalled: AtomicBool::new(false),
            drain_wanted: AtomicBool::new(false),
            drained: Notify::new(),
            stats,
        })
    }

    /// Who it is, for presence.
    pub(crate) fn profile(&self) -> Option<Arc<Profile>> {
        self.profile
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sets who it is, for presence.
    pub(crate) fn set_profile(&self, profile: Profile) {
        *self.profile.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(profile));
    }

    /// Queues an event frame if there is room above the reserves; no side
    /// effects otherwise.
    pub(crate) fn offer(&self, frame: &Bytes) -> Offer {
        if self.tx.capacity() <= self.reserve && !self.tx.is_closed() {
            return Offer::Full;
        }
        if !self.fits(frame.len(), self.event_bytes) {
            return Offer::Full;
        }
        self.try_send(frame)
    }

    /// Whether `len` more bytes stay within `limit` (a frame always fits an
    /// empty queue, so one frame larger than the bound still goes out).
    fn fits(&self, len: usize, limit: usize) -> bool {
        let queued = self.queued_bytes.load(Relaxed);
        queued == 0 || queued.saturating_add(len) <= limit
    }

    fn try_send(&self, frame: &Bytes) -> Offer {
        // Counted before the send, so the writer never takes more than was
        // counted.
        self.queued_bytes.fetch_add(frame.len(), Relaxed);
        match self.tx.try_send(frame.clone()) {
            Ok(()) => Offer::Queued,
            Err(error) => {
                self.queued_bytes.fetch_sub(frame.len(), Relaxed);
                match error {
                    mpsc::error::TrySendError::Full(_) => Offer::Full,
                    mpsc::error::TrySendError::Closed(_) => Offer::Closed,
                }
            }
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

    /// Queues an answer to this connection (may use the reserves). When even
    /// they are full the client is not reading: it is closed as a slow
    /// consumer, whatever the policy. Returns true when queued.
    pub(crate) fn answer(&self, frame: &Bytes) -> bool {
        if !self.fits(frame.len(), self.max_bytes) {
            self.close_slow(Overflow::Bytes);
            return false;
        }
        match self.try_send(frame) {
            Offer::Queued => true,
            Offer::Closed => false,
            Offer::Full => {
                self.close_slow(Overflow::Frames);
                false
            }
        }
    }

    /// The rooms this connection is in (a short lock: joins and leaves of
    /// this one connection only).
    pub(crate) fn rooms(&self) -> MutexGuard<'_, HashSet<RoomKey>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What the admin console shows of it (a short lock).
    pub(crate) fn info(&self) -> MutexGuard<'_, ConnInfo> {
        self.info.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Frames and bytes queued now.
    pub(crate) fn queue_depth(&self) -> (usize, usize) {
        (self.queued_frames(), self.queued_bytes.load(Relaxed))
    }

    /// Queues an answer encoded in this connection's format.
    pub(crate) fn answer_with(&self, answer: &Answer<'_>) -> bool {
        self.answer(&self.format.answer(answer))
    }

    /// Applies the slow-consumer policy after a frame did not fit.
    pub(crate) fn overflowed(&self) {
        match self.policy {
            SlowConsumerPolicy::Disconnect => self.close_slow(self.full_bound()),
            SlowConsumerPolicy::Drop => {
                self.unreported_drops.fetch_add(1, Relaxed);
                self.dropped.fetch_add(1, Relaxed);
                Stats::add(&self.stats.events_dropped, 1);
            }
        }
    }

    /// Which bound a full queue crossed.
    fn full_bound(&self) -> Overflow {
        if self.tx.capacity() <= self.reserve {
            Overflow::Frames
        } else {
            Overflow::Bytes
        }
    }

    /// Closes the connection as a slow consumer that crossed `bound`.
    pub(crate) fn close_slow(&self, bound: Overflow) {
        let _ = self
            .overflow
            .compare_exchange(0, bound as u8, Relaxed, Relaxed);
        self.close_with(CloseReason::SlowConsumer);
    }

    /// The bound a slow consumer crossed, if it was closed as one.
    pub(crate) fn overflow(&self) -> Option<Overflow> {
        match self.overflow.load(Relaxed) {
            1 => Some(Overflow::Frames),
            2 => Some(Overflow::Bytes),
            3 => Some(Overflow::WriteStalled),
            _ => None,
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

    /// The client sent a close frame (with `code`, if it gave one): the
    /// connection closes, and the broker's close frame echoes the code.
    pub(crate) fn peer_closed(&self, code: Option<u16>) {
        self.peer_close_code
            .store(code.map_or(0, u32::from), Relaxed);
        self.close_with(CloseReason::ClientClosed);
    }

    /// The status code of the client's close frame, if it gave one.
    pub(crate) fn peer_close_code(&self) -> Option<u16> {
        u16::try_from(self.peer_close_code.load(Relaxed))
            .ok()
            .filter(|c| *c != 0)
    }

    /// Whether the client sent a close frame (with or without a code).
    pub(crate) fn peer_sent_close(&self) -> bool {
        self.peer_close_code.load(Relaxed) != NO_CLOSE_FRAME
    }

    /// The writer took `bytes` from the queue: releases them, and wakes a
    /// publisher waiting for this queue to drain once it is low enough.
    pub(crate) fn taken(&self, bytes: usize) {
        self.queued_bytes.fetch_sub(bytes, SeqCst);
        if (self.drain_wanted.load(SeqCst) || self.stalled.load(Relaxed)) && !self.above_low_water()
        {
            self.stalled.store(false, Relaxed);
            if self.drain_wanted.swap(false, SeqCst) {
                self.drained.notify_waiters();
            }
        }
    }

    fn queued_frames(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }

    /// Past half of either bound: a publisher should wait for this queue.
    /// False for a queue marked stalled (it no longer holds publishers up).
    pub(crate) fn wants_back_pressure(&self) -> bool {
        !self.stalled.load(Relaxed)
            && (self.queued_frames() > self.tx.max_capacity() / 2
                || self.queued_bytes.load(Relaxed) > self.max_bytes / 2)
    }

    /// Above a quarter of either bound.
    fn above_low_water(&self) -> bool {
        self.queued_frames() > self.tx.max_capacity() / 4
            || self.queued_bytes.load(SeqCst) > self.max_bytes / 4
    }

    /// Waits, at most [`STALL_LIMIT`], for this queue to drain to its
    /// low-water mark (a publisher's back-pressure). A queue that does not
    /// drain in time is marked stalled; true when it drained.
    pub(crate) async fn wait_drained(&self) -> bool {
        let drained = self.drained.notified();
        tokio::pin!(drained);
        // Registered before the flag and the check, so a writer that drains
        // in between cannot be missed.
        drained.as_mut().enable();
        self.drain_wanted.store(true, SeqCst);
        if !self.above_low_water() || self.close.is_cancelled() {
            return true;
        }
        Stats::add(&self.stats.publisher_stalls, 1);
        tokio::select! {
            () = drained => true,
            () = self.close.cancelled() => true,
            () = tokio::time::sleep(STALL_LIMIT) => {
                Stats::add(&self.stats.stalled_receivers, 1);
                self.stalled.store(true, Relaxed);
                false
            }
        }
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
