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
/// A batch stops growing past this many bytes, so its buffer stays a
/// plain heap allocation (no mmap and page faults per batch).
const MAX_BATCH_BYTES: usize = 64 * 1024;
/// How long a non-shutdown close may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How a closing connection is told why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goodbye {
    /// A Herald `close` envelope naming the reason, then the close frame.
    Envelope,
    /// The close frame alone: the peer speaks plain WebSocket (the echo
    /// endpoint), and an envelope would be a message it never sent.
    FrameOnly,
}

/// Runs until the connection closes; returns when the socket is done.
pub(crate) async fn run<W>(
    mut socket: W,
    mut queue: mpsc::Receiver<Bytes>,
    conn: Outbox,
    last_seen: Arc<AtomicU64>,
    shared: Arc<Shared>,
    goodbye: Goodbye,
) where
    W: AsyncWrite + Unpin,
{
    let interval = shared.settings.server.heartbeat_interval;
    let timeout_ms =
        u64::try_from(shared.settings.server.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut unwritten = Unwritten::default();
    // Made once, not per batch: each one registers a waiter.
    let cancelled = conn.close.cancelled();
    tokio::pin!(cancelled);
    loop {
        let step = tokio::select! {
            biased;
            () = &mut cancelled => break,
            frame = queue.recv() => match frame {
                Some(frame) => {
                    unwritten.take(&mut queue, frame, &conn, &shared.stats);
                    // A close request interrupts a write stuck on a peer
                    // that stopped reading; what is left stays in
                    // `unwritten` for the close to finish.
                    tokio::select! {
                        result = unwritten.write_to(&mut socket) => result,
                        () = &mut cancelled => Ok(()),
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
    Box::pin(close(socket, queue, unwritten, &conn, &shared, goodbye)).await;
}

/// Bytes taken from the queue and not yet all written: one frame as it
/// is, or several copied into one buffer for one write (measured: one
/// contiguous write costs the kernel far less than a vectored write of
/// many small frames). A write that is interrupted leaves its progress
/// here, so no frame is ever cut short by the frames after it.
#[derive(Default)]
struct Unwritten {
    bytes: Bytes,
    written: usize,
}

impl Unwritten {
    /// Takes `first` and everything else already queued, up to the batch
    /// limits, plus a drops notice when one is due; counts the bytes.
    fn take(
        &mut self,
        queue: &mut mpsc::Receiver<Bytes>,
        first: Bytes,
        conn: &Outbox,
        stats: &Stats,
    ) {
        let notice = drops_notice(conn);
        let second = queue.try_recv().ok();
        self.written = 0;
        self.bytes = if second.is_none() && notice.is_none() {
            first
        } else {
            // Sized for what is queued now (frames of one connection are
            // usually alike), so a small batch does not take a large block.
            let guess = (queue.len() + 2).saturating_mul(first.len());
            let mut batch = Vec::with_capacity(guess.min(MAX_BATCH_BYTES).max(first.len()));
            batch.extend_from_slice(&first);
            let mut taken = 1;
            let mut next = second;
            while let Some(frame) = next.take() {
                batch.extend_from_slice(&frame);
                taken += 1;
                if taken < MAX_BATCH && batch.len() < MAX_BATCH_BYTES {
                    next = queue.try_recv().ok();
                }
            }
            if let Some(notice) = notice {
                batch.extend_from_slice(&notice);
            }
            Bytes::from(batch)
        };
        Stats::add(&stats.bytes_sent, self.bytes.len() as u64);
    }

    /// Writes until every byte is out, then lets go of the buffer.
    async fn write_to<W: AsyncWrite + Unpin>(&mut self, socket: &mut W) -> std::io::Result<()> {
        while self.written < self.bytes.len() {
            let n = socket.write(&self.bytes[self.written..]).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        self.bytes = Bytes::new();
        self.written = 0;
        Ok(())
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
/// envelope that explains it (queued just before the close was asked for);
/// on the client's close it is what answered the frames it sent before its
/// close frame (RFC 6455 lets data precede the answering close; Autobahn
/// case 7.1.1 expects the echo of a message sent just before the close).
/// Not for a slow consumer (its queue is what overflowed), a peer that
/// stopped answering, or one that is gone.
fn drains_queue(reason: CloseReason) -> bool {
    matches!(
        reason,
        CloseReason::ShuttingDown
            | CloseReason::ClientClosed
            | CloseReason::ProtocolError
            | CloseReason::MessageTooBig
            | CloseReason::HandshakeTimeout
    )
}

/// Sends what a close owes the client: the queued frames first when
/// [`drains_queue`] says so (on shutdown within the grace period), then a
/// `close` envelope (unless [`Goodbye::FrameOnly`]) and a close frame;
/// then ends the write side. An interrupted batch is finished first.
async fn close<W>(
    mut socket: W,
    mut queue: mpsc::Receiver<Bytes>,
    mut unwritten: Unwritten,
    conn: &Outbox,
    shared: &Shared,
    goodbye: Goodbye,
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
            while let Some(frame) = queue.recv().await {
                unwritten.take(&mut queue, frame, conn, &shared.stats);
                unwritten.write_to(&mut socket).await?;
            }
        }
        if goodbye == Goodbye::Envelope
            && !matches!(
                reason,
                CloseReason::ClientClosed | CloseReason::TransportError
            )
        {
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
