//! The two halves every upgraded connection starts with, whatever it
//! speaks (the Herald session or the echo endpoint): a [`FrameReader`] on
//! the read half, and the writer task on the write half, fed through the
//! connection's [`Outbox`]; and how the pair is finished.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use herald_protocol::CloseReason;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::inbound::FrameReader;
use crate::outbox::{ConnShared, Identity, Outbox, QueueLimits};
use crate::socket::Halves;
use crate::state::Shared;
use crate::stats::Stats;
use crate::wire::WireFormat;
use crate::writer::{self, Goodbye};

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
        let Halves { read, early, write } = halves;
        let settings = &shared.settings;
        let reader = FrameReader::new(read, &early, max_message, settings.server.message_timeout);
        drop(early);
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
        Stats::add(&shared.stats.connections_opened, 1);
        Stats::add(&shared.stats.connections_current, 1);
        let last_seen = Arc::new(AtomicU64::new(shared.now_ms()));
        let writer = shared.tasks.spawn(writer::run(
            write,
            rx,
            outbox.clone(),
            last_seen.clone(),
            shared.clone(),
            goodbye,
        ));
        let conn = Conn {
            outbox,
            last_seen,
            writer,
        };
        (reader, conn)
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
