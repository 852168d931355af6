//! The one writer task of a connection: drains its bounded queue into the
//! socket in batches (everything queued, copied into one buffer, one
//! write), pings on the heartbeat interval, and writes the close envelope
//! and close frame. Queued items are complete WebSocket frames
//! ([`crate::frame`]); the writer never encodes anything per receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{CloseReason, Envelope, ErrorCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::frame;
use crate::outbox::Outbox;
use crate::state::Shared;
use crate::stats::Stats;

/// Most frames taken into one batch, so one busy connection still writes
/// (and yields) regularly.
const MAX_BATCH: usize = 1024;
/// A batch stops growing past this many bytes: one write stays bounded
/// whatever the payload sizes.
const MAX_BATCH_BYTES: usize = 256 * 1024;
/// How long a non-shutdown close may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs until the connection closes; returns when the socket is done.
pub(crate) async fn run<W>(
    mut socket: W,
    mut queue: mpsc::Receiver<Bytes>,
    conn: Outbox,
    last_seen: Arc<AtomicU64>,
    shared: Arc<Shared>,
) where
    W: AsyncWrite + Unpin,
{
    let interval = shared.settings.server.heartbeat_interval;
    let timeout_ms =
        u64::try_from(shared.settings.server.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unwritten = Unwritten::default();
    loop {
        let step = tokio::select! {
            biased;
            () = conn.close.cancelled() => break,
            frame = queue.recv() => match frame {
                Some(frame) => {
                    let batch = take_batch(&mut queue, frame, &conn, &shared.stats);
                    unwritten = Unwritten { bytes: batch, written: 0 };
                    // A close request interrupts a write stuck on a peer
                    // that stopped reading; what is left stays in
                    // `unwritten` for the close to finish.
                    tokio::select! {
                        result = unwritten.write_to(&mut socket) => result,
                        () = conn.close.cancelled() => Ok(()),
                    }
                }
                None => break,
            },
            _ = heartbeat.tick() => {
                if shared.now_ms().saturating_sub(last_seen.load(Relaxed)) > timeout_ms {
                    conn.close_with(CloseReason::HeartbeatTimeout);
                    break;
                }
                socket.write_all(&frame::ping()).await
            }
        };
        if step.is_err() {
            conn.close_with(CloseReason::TransportError);
            break;
        }
    }
    // Boxed: the close runs once, so its state need not make every idle
    // connection's writer task bigger.
    Box::pin(close(socket, queue, unwritten, &conn, &shared)).await;
}

/// Bytes taken from the queue and not yet all written. A write that is
/// interrupted leaves its progress here, so no frame is ever cut short by
/// the frames that follow it.
#[derive(Default)]
struct Unwritten {
    bytes: Bytes,
    written: usize,
}

impl Unwritten {
    async fn write_to<W: AsyncWrite + Unpin>(&mut self, socket: &mut W) -> std::io::Result<()> {
        while self.written < self.bytes.len() {
            let n = socket.write(&self.bytes[self.written..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        Ok(())
    }
}

/// `first` and everything else already queued (up to the batch limits),
/// plus a drops notice when one is due, as one buffer for one write; a
/// lone frame is passed on without a copy. The bytes are counted here.
fn take_batch(
    queue: &mut mpsc::Receiver<Bytes>,
    first: Bytes,
    conn: &Outbox,
    stats: &Stats,
) -> Bytes {
    let drops = drops_notice(conn);
    let batch = match (queue.try_recv(), drops) {
        (Err(_), None) => first,
        (second, drops) => {
            let second = second.unwrap_or_default();
            let mut batch = Vec::with_capacity((first.len() + second.len()) * 4);
            batch.extend_from_slice(&first);
            batch.extend_from_slice(&second);
            take_queued(queue, &mut batch, 2);
            if let Some(notice) = drops {
                batch.extend_from_slice(&notice);
            }
            Bytes::from(batch)
        }
    };
    Stats::add(&stats.bytes_sent, batch.len() as u64);
    batch
}

/// Appends queued frames to `batch` until the queue is empty or a batch
/// limit is reached (`taken` frames are in it already).
fn take_queued(queue: &mut mpsc::Receiver<Bytes>, batch: &mut Vec<u8>, mut taken: usize) {
    while taken < MAX_BATCH && batch.len() < MAX_BATCH_BYTES {
        let Ok(frame) = queue.try_recv() else { break };
        batch.extend_from_slice(&frame);
        taken += 1;
    }
}

/// The `err` frame telling the client how many events the `drop` policy
/// discarded since the last one, if any were.
fn drops_notice(conn: &Outbox) -> Option<Bytes> {
    let dropped = conn.unreported_drops.swap(0, Relaxed);
    (dropped > 0).then(|| {
        frame::envelope(&Envelope::error(
            None,
            ErrorCode::Dropped,
            format!(
                "{dropped} events were dropped because this connection reads too slowly \
                 (delivery.slow_consumer = \"drop\")"
            ),
        ))
    })
}

/// Whether a close for `reason` first writes what is still queued. On
/// shutdown that is the queued events; on a protocol error it is the `err`
/// envelope that explains it (queued just before the close was asked for).
/// Not for a slow consumer (its queue is what overflowed), a peer that
/// stopped answering, or one that is gone.
fn drains_queue(reason: CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::ShuttingDown
            | CloseReason::ProtocolError
            | CloseReason::MessageTooBig
            | CloseReason::HandshakeTimeout
    )
}

/// Sends what a close owes the client: the queued frames first when
/// [`drains_queue`] says so (on shutdown within the grace period), then a
/// `close` envelope and a close frame; then ends the write side. An
/// interrupted batch is finished first.
async fn close<W>(
    mut socket: W,
    mut queue: mpsc::Receiver<Bytes>,
    mut unwritten: Unwritten,
    conn: &Outbox,
    shared: &Shared,
) where
    W: AsyncWrite + Unpin,
{
    let reason = conn.close_reason();
    let limit = match reason {
        CloseReason::ShuttingDown => shared.settings.server.shutdown_grace.max(CLOSE_TIMEOUT),
        _ => CLOSE_TIMEOUT,
    };
    let goodbye = async {
        // A frame cut short would garble everything after it.
        unwritten.write_to(&mut socket).await?;
        if drains_queue(reason) {
            queue.close();
            let mut batch = Vec::new();
            loop {
                take_queued(&mut queue, &mut batch, 0);
                if batch.is_empty() {
                    break;
                }
                socket.write_all(&batch).await?;
                batch.clear();
            }
        }
        if !matches!(
            reason,
            CloseReason::ClientClosed | CloseReason::TransportError
        ) {
            let envelope = Envelope::Close {
                reason,
                message: close_message(reason, shared),
            };
            socket.write_all(&frame::envelope(&envelope)).await?;
        }
        socket
            .write_all(&frame::close(reason.ws_code(), reason.as_str()))
            .await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(limit, goodbye).await;
}

fn close_message(reason: CloseReason, shared: &Shared) -> String {
    let s = &shared.settings;
    match reason {
        CloseReason::ShuttingDown => "the broker is shutting down; reconnect".into(),
        CloseReason::SlowConsumer => format!(
            "outbound queue full ({} frames, delivery.queue_capacity): the connection read too slowly",
            s.delivery.queue_capacity
        ),
        CloseReason::HeartbeatTimeout => format!(
            "nothing received for {:?} (server.heartbeat_timeout)",
            s.server.heartbeat_timeout
        ),
        CloseReason::HandshakeTimeout => format!(
            "no hello within {:?} (server.handshake_timeout)",
            s.server.handshake_timeout
        ),
        CloseReason::MessageTooBig => format!(
            "a frame exceeded the limit (limits.max_payload_bytes = {} plus envelope overhead)",
            s.limits.max_payload_bytes
        ),
        other => other.as_str().into(),
    }
}
