//! The one writer task of a connection: drains its bounded queue into the
//! socket in batches (everything queued, copied into one buffer, one
//! write), pings on the heartbeat interval, and writes the close envelope
//! and close frame. Queued items are complete WebSocket frames
//! ([`crate::frame`]); the writer never encodes anything per receiver.
//!
//! Every write is bounded by `delivery.write_timeout`: a write that makes
//! no progress for that long (the peer stopped reading and the socket is
//! full) closes the connection as a slow consumer, whatever the policy, so
//! no stuck peer keeps its task, subscriptions and permit.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::{CloseReason, Envelope, ErrorCode};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::frame;
use crate::outbox::{Outbox, Overflow};
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

/// Whether the writer keeps the WebSocket heartbeat (pings every
/// `server.heartbeat_interval`, closing peers silent past
/// `server.heartbeat_timeout`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pings {
    /// Herald sessions and the echo endpoint.
    On,
    /// Engine.IO connections: their heartbeat is Engine.IO's own ping and
    /// pong packets, kept by the session (`engineio`).
    Off,
}

/// Runs until the connection closes; returns when the socket is done.
pub(crate) async fn run<W>(
    mut socket: W,
    mut queue: mpsc::Receiver<Bytes>,
    conn: Outbox,
    last_seen: Arc<AtomicU64>,
    shared: Arc<Shared>,
    goodbye: Goodbye,
    pings: Pings,
) where
    W: AsyncWrite + Unpin,
{
    let interval = shared.settings.server.heartbeat_interval;
    let timeout_ms =
        u64::try_from(shared.settings.server.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let write_timeout = shared.settings.delivery.write_timeout;
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
                        result = unwritten.write_to(&mut socket, write_timeout) => result,
                        () = &mut cancelled => Ok(()),
                    }
                }
                None => break,
            },
            _ = heartbeat.tick(), if pings == Pings::On => {
                if shared.now_ms().saturating_sub(last_seen.load(Relaxed)) > timeout_ms {
                    conn.close_with(CloseReason::HeartbeatTimeout);
                    break;
                }
                write_within(&mut socket, &frame::ping(), write_timeout).await
            }
        };
        match step {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                conn.close_slow(Overflow::WriteStalled);
                break;
            }
            Err(_) => {
                conn.close_with(CloseReason::TransportError);
                break;
            }
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
        let notice_len = notice.as_ref().map_or(0, Bytes::len);
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
        // The notice was never counted as queued.
        conn.taken(self.bytes.len() - notice_len);
        Stats::add(&stats.bytes_sent, self.bytes.len() as u64);
    }

    /// Writes until every byte is out, then lets go of the buffer; a write
    /// that makes no progress for `timeout` fails with `TimedOut`.
    async fn write_to<W: AsyncWrite + Unpin>(
        &mut self,
        socket: &mut W,
        timeout: Duration,
    ) -> io::Result<()> {
        while self.written < self.bytes.len() {
            let n = tokio::time::timeout(timeout, socket.write(&self.bytes[self.written..]))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            self.written += n;
        }
        // Plain TCP: nothing to do. TLS: the records not yet out.
        tokio::time::timeout(timeout, socket.flush())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        self.bytes = Bytes::new();
        self.written = 0;
        Ok(())
    }
}

/// Writes all of `bytes`, each write bounded by `timeout` (see
/// [`Unwritten::write_to`]).
async fn write_within<W: AsyncWrite + Unpin>(
    socket: &mut W,
    bytes: &Bytes,
    timeout: Duration,
) -> io::Result<()> {
    let mut once = Unwritten {
        bytes: bytes.clone(),
        written: 0,
    };
    once.write_to(socket, timeout).await
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
/// shutdown that is the queued events; on a protocol error (or a message
/// over the rate) it is the `err` envelope that explains it (queued just before the close was asked for);
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
            | CloseReason::InvalidUtf8
            | CloseReason::MessageTooBig
            | CloseReason::MessageTimeout
            | CloseReason::HandshakeTimeout
            | CloseReason::ConnectTimeout
            | CloseReason::RateLimited
            | CloseReason::Unauthorized
            | CloseReason::TokenExpired
            | CloseReason::Kicked
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
    let timeout = shared.settings.delivery.write_timeout;
    let goodbye = async {
        // A frame cut short would garble everything after it.
        unwritten.write_to(&mut socket, timeout).await?;
        if drains_queue(reason) {
            queue.close();
            while let Some(frame) = queue.recv().await {
                unwritten.take(&mut queue, frame, conn, &shared.stats);
                unwritten.write_to(&mut socket, timeout).await?;
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
                message: close_message(reason, conn, shared),
            };
            write_within(&mut socket, &frame::envelope(&envelope), timeout).await?;
        }
        write_within(&mut socket, &close_frame(reason, conn), timeout).await?;
        socket.shutdown().await
    };
    let _ = tokio::time::timeout(limit, goodbye).await;
}

/// The broker's close frame: for a close the client began, its own status
/// code echoed back (none if it gave none, RFC 6455 §5.5.1); otherwise the
/// reason's code and name.
fn close_frame(reason: CloseReason, conn: &Outbox) -> Bytes {
    match (reason, conn.peer_close_code()) {
        (CloseReason::ClientClosed, Some(code)) => frame::close(code, ""),
        (CloseReason::ClientClosed, None) if conn.peer_sent_close() => frame::close_empty(),
        _ => frame::close(reason.ws_code(), reason.as_str()),
    }
}

fn close_message(reason: CloseReason, conn: &Outbox, shared: &Shared) -> String {
    let s = &shared.settings;
    match reason {
        CloseReason::ShuttingDown => "the broker is shutting down; reconnect".into(),
        CloseReason::SlowConsumer => slow_consumer_message(conn, shared),
        CloseReason::HeartbeatTimeout => format!(
            "nothing received for {:?} (server.heartbeat_timeout)",
            s.server.heartbeat_timeout
        ),
        CloseReason::HandshakeTimeout => format!(
            "no hello within {:?} (server.handshake_timeout)",
            s.server.handshake_timeout
        ),
        CloseReason::ConnectTimeout => format!(
            "no Socket.IO CONNECT within {:?} (socketio.connect_timeout)",
            s.socketio.connect_timeout
        ),
        CloseReason::MessageTimeout => format!(
            "a message did not arrive in full within {:?} of its first byte (server.message_timeout)",
            s.server.message_timeout
        ),
        CloseReason::MessageTooBig => format!(
            "a frame exceeded the limit (limits.max_payload_bytes = {} plus envelope overhead)",
            s.limits.max_payload_bytes
        ),
        CloseReason::RateLimited => format!(
            "{} messages over the rate (rate_limits.max_rate_limited_messages): \
             send at most {} messages per second (rate_limits.messages_per_second)",
            s.rate_limits.max_rate_limited_messages, s.rate_limits.messages_per_second
        ),
        CloseReason::Kicked => "disconnected by an operator (admin console)".into(),
        other => other.as_str().into(),
    }
}

/// Which bound a slow consumer crossed, naming its setting.
fn slow_consumer_message(conn: &Outbox, shared: &Shared) -> String {
    let d = &shared.settings.delivery;
    match conn.overflow() {
        Some(Overflow::Bytes) => format!(
            "outbound queue over {} bytes (delivery.max_queued_bytes): the connection read too slowly",
            d.max_queued_bytes
        ),
        Some(Overflow::WriteStalled) => format!(
            "a write made no progress for {:?} (delivery.write_timeout): the connection stopped reading",
            d.write_timeout
        ),
        Some(Overflow::Frames) | None => format!(
            "outbound queue full ({} frames, delivery.queue_capacity): the connection read too slowly",
            d.queue_capacity
        ),
    }
}
