//! The two halves every upgraded connection starts with, whatever it
//! speaks (the Herald session, the echo endpoint, Engine.IO): a
//! [`FrameReader`] on the read half, and the writer task on the write
//! half, fed through the connection's [`Outbox`]; and how the pair is
//! finished.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use bytes::Bytes;
use herald_protocol::CloseReason;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::inbound::FrameReader;
use crate::outbox::{ConnShared, Identity, Outbox, QueueLimits};
use crate::socket::{Halves, WriteHalf};
use crate::state::Shared;
use crate::stats::Stats;
use crate::wire::WireFormat;
use crate::writer::{self, Goodbye, Pings};

/// A new connection's send handle and the queue its writer drains, with
/// the configured bounds (`delivery.*`) and a close token under the
/// broker's shutdown token.
/// Its session id (`<node>-<n>`) is registered with the router, so its
/// session-id room reaches it, until [`Conn::finish`] (or
/// [`forget_outbox`]).
pub(crate) fn new_outbox(shared: &Shared, format: WireFormat) -> (Outbox, mpsc::Receiver<Bytes>) {
    let settings = &shared.settings;
    let (tx, rx) = mpsc::channel(settings.delivery.queue_capacity);
    let limits = QueueLimits {
        policy: settings.delivery.slow_consumer,
        max_bytes: settings.delivery.max_queued_bytes,
    };
    let id = shared.next_conn_id();
    let identity = Identity {
        session: Arc::from(format!("{}-{}", shared.node, id.0)),
        format,
    };
    let outbox = ConnShared::with_limits(
        id,
        identity,
        tx,
        limits,
        shared.shutdown.child_token(),
        shared.stats.clone(),
    );
    shared.router.sessions().insert(&outbox);
    (outbox, rx)
}

/// Takes a closed connection's session id out of the router's index.
pub(crate) fn forget_outbox(shared: &Shared, outbox: &Outbox) {
    shared.router.sessions().remove(outbox);
}

/// A connection's send side, while its reader is read by the caller.
pub(crate) struct Conn {
    pub(crate) outbox: Outbox,
    /// When the peer was last heard from (ms of [`Shared::now_ms`]); the
    /// reader side stores it, the writer's heartbeat reads it.
    pub(crate) last_seen: Arc<AtomicU64>,
    writer: JoinHandle<()>,
}

impl Conn {
    /// Frames the read half (messages over `max_message` bytes refused,
    /// each due within `server.message_timeout`) and starts the writer on the write half; counts the connection as
    /// open.
    pub(crate) fn open(
        halves: Halves,
        shared: &Arc<Shared>,
        max_message: usize,
        goodbye: Goodbye,
        format: WireFormat,
    ) -> (FrameReader, Conn) {
        Conn::open_with(halves, shared, max_message, goodbye, format, Pings::On)
    }

    /// [`Conn::open`], with or without the writer's WebSocket pings
    /// (Engine.IO connections keep their own heartbeat).
    pub(crate) fn open_with(
        halves: Halves,
        shared: &Arc<Shared>,
        max_message: usize,
        goodbye: Goodbye,
        format: WireFormat,
        pings: Pings,
    ) -> (FrameReader, Conn) {
        let Halves { read, early, write } = halves;
        let settings = &shared.settings;
        let reader = FrameReader::new(read, &early, max_message, settings.server.message_timeout);
        drop(early);
        let (outbox, rx) = new_outbox(shared, format);
        Stats::add(&shared.stats.connections_opened, 1);
        Stats::add(&shared.stats.connections_current, 1);
        let conn = Conn::resume(write, rx, outbox, shared, goodbye, pings);
        (reader, conn)
    }

    /// Starts the writer on `write` for a connection whose outbox and
    /// queue already exist (an Engine.IO session moving from long-polling
    /// to a WebSocket). Counts nothing: the connection was counted when it
    /// opened.
    pub(crate) fn resume(
        write: WriteHalf,
        queue: mpsc::Receiver<Bytes>,
        outbox: Outbox,
        shared: &Arc<Shared>,
        goodbye: Goodbye,
        pings: Pings,
    ) -> Conn {
        let last_seen = Arc::new(AtomicU64::new(shared.now_ms()));
        let writer = shared.tasks.spawn(writer::run(
            write,
            queue,
            outbox.clone(),
            last_seen.clone(),
            shared.clone(),
            goodbye,
            pings,
        ));
        Conn {
            outbox,
            last_seen,
            writer,
        }
    }

    /// Closes for `reason` (unless a reason was already given) and waits
    /// for the writer to say goodbye; returns the reason that won. The
    /// caller counts the close once its own clean-up is done.
    pub(crate) async fn finish(self, shared: &Shared, reason: CloseReason) -> CloseReason {
        shared.router.sessions().remove(&self.outbox);
        self.outbox.close_with(reason);
        let _ = self.writer.await;
        self.outbox.close_reason()
    }
}
