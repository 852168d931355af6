//! The one writer task of a connection: drains its bounded queue into the
//! socket in batches (feed everything queued, flush once), pings on the
//! heartbeat interval, and writes the close envelope and close frame.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use herald_protocol::{CloseReason, Envelope, ErrorCode, encode};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::outbox::Outbox;
use crate::state::Shared;

/// Most frames fed before a flush, so one busy connection still flushes
/// regularly.
const MAX_BATCH: usize = 1024;
/// How long a non-shutdown close may take before the socket is dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Runs until the connection closes; returns when the socket is done.
pub(crate) async fn run<S>(
    mut sink: S,
    mut queue: mpsc::Receiver<Bytes>,
    conn: Outbox,
    last_seen: Arc<AtomicU64>,
    shared: Arc<Shared>,
) where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let interval = shared.settings.server.heartbeat_interval;
    let timeout_ms =
        u64::try_from(shared.settings.server.heartbeat_timeout.as_millis()).unwrap_or(u64::MAX);
    let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let step = tokio::select! {
            biased;
            () = conn.close.cancelled() => break,
            frame = queue.recv() => match frame {
                Some(frame) => write_batch(&mut sink, &mut queue, frame, &conn).await,
                None => break,
            },
            _ = heartbeat.tick() => {
                if shared.now_ms().saturating_sub(last_seen.load(Relaxed)) > timeout_ms {
                    conn.close_with(CloseReason::HeartbeatTimeout);
                    break;
                }
                sink.send(Message::Ping(Bytes::new())).await
            }
        };
        if step.is_err() {
            conn.close_with(CloseReason::TransportError);
            break;
        }
    }
    close(sink, queue, &conn, &shared).await;
}

/// Feeds `first` and everything else already queued, then flushes once.
/// A close request interrupts a write stuck on a peer that stopped reading.
async fn write_batch<S>(
    sink: &mut S,
    queue: &mut mpsc::Receiver<Bytes>,
    first: Bytes,
    conn: &Outbox,
) -> Result<(), WsError>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let write = async {
        sink.feed(Message::Binary(first)).await?;
        let mut fed = 1;
        while fed < MAX_BATCH {
            let Ok(frame) = queue.try_recv() else { break };
            sink.feed(Message::Binary(frame)).await?;
            fed += 1;
        }
        report_drops(sink, conn).await?;
        sink.flush().await
    };
    tokio::select! {
        result = write => result,
        () = conn.close.cancelled() => Ok(()),
    }
}

/// Tells the client how many events the `drop` policy discarded.
async fn report_drops<S>(sink: &mut S, conn: &Outbox) -> Result<(), WsError>
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let dropped = conn.unreported_drops.swap(0, Relaxed);
    if dropped == 0 {
        return Ok(());
    }
    let notice = Envelope::error(
        None,
        ErrorCode::Dropped,
        format!(
            "{dropped} events were dropped because this connection reads too slowly \
             (delivery.slow_consumer = \"drop\")"
        ),
    );
    sink.feed(Message::Binary(Bytes::from(encode(&notice))))
        .await
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
/// `close` envelope and a close frame.
async fn close<S>(mut sink: S, mut queue: mpsc::Receiver<Bytes>, conn: &Outbox, shared: &Shared)
where
    S: Sink<Message, Error = WsError> + Unpin,
{
    let reason = conn.close_reason();
    let limit = match reason {
        CloseReason::ShuttingDown => shared.settings.server.shutdown_grace.max(CLOSE_TIMEOUT),
        _ => CLOSE_TIMEOUT,
    };
    let goodbye = async {
        if drains_queue(reason) {
            queue.close();
            while let Some(frame) = queue.recv().await {
                sink.feed(Message::Binary(frame)).await?;
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
            sink.feed(Message::Binary(Bytes::from(encode(&envelope))))
                .await?;
        }
        sink.send(Message::Close(Some(CloseFrame {
            code: CloseCode::from(reason.ws_code()),
            reason: reason.as_str().into(),
        })))
        .await?;
        sink.close().await
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
