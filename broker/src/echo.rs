//! The WebSocket echo endpoint (`testing.echo_endpoint`, off by default):
//! every text message is sent back as text, every binary message as
//! binary, pings are answered with pongs. It exists so that a conformance
//! suite (the Autobahn TestSuite, `scripts/autobahn.sh`) exercises the
//! broker's own frame reader ([`crate::inbound`]) and writer
//! ([`crate::writer`]) exactly as Herald sessions use them: the same
//! framing rules, close handling, outbox and queue limits. No Herald
//! envelope is sent or expected, and no subprotocol is negotiated.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use herald_protocol::CloseReason;
use tracing::debug;

use crate::conn::Conn;
use crate::frame;
use crate::inbound::{FrameReader, Incoming};
use crate::limits::SessionPermit;
use crate::session::read_error_reason;
use crate::socket::Halves;
use crate::state::Shared;
use crate::stats::Stats;
use crate::wire::WireFormat;
use crate::writer::Goodbye;

/// Serves one upgraded echo connection until it closes. Messages are
/// limited to `limits.max_payload_bytes` (there is no envelope around
/// them).
pub(crate) async fn run(
    halves: Halves,
    shared: Arc<Shared>,
    peer: SocketAddr,
    _permit: SessionPermit,
) {
    let max_message = shared.settings.limits.max_payload_bytes;
    let (mut reader, conn) = Conn::open(
        halves,
        &shared,
        max_message,
        Goodbye::FrameOnly,
        WireFormat::Herald,
    );
    let id = conn.outbox.id.0;
    debug!(conn = id, %peer, "echo connection opened");
    let reason = echo(&mut reader, &conn, &shared).await;
    let reason = conn.finish(&shared, reason).await;
    shared.stats.closed(reason);
    debug!(conn = id, %peer, reason = reason.as_str(), "echo connection closed");
}

/// Sends back what arrives, until the peer closes, breaks the framing
/// rules, or the connection is asked to close (shutdown, or a queue the
/// peer does not read).
async fn echo(reader: &mut FrameReader, conn: &Conn, shared: &Shared) -> CloseReason {
    let outbox = &conn.outbox;
    let cancelled = outbox.close.cancelled();
    tokio::pin!(cancelled);
    loop {
        let message = tokio::select! {
            biased;
            () = &mut cancelled => return outbox.close_reason(),
            message = reader.next() => message,
        };
        if reader.heard_from_peer() {
            conn.last_seen.store(shared.now_ms(), Relaxed);
        }
        // Answers, not events: queued with the reserve, and a peer that
        // does not read them is closed as a slow consumer.
        let answer = match message {
            Ok(None) => return CloseReason::ClientClosed,
            Ok(Some(Incoming::Close(code))) => {
                outbox.peer_closed(code);
                return CloseReason::ClientClosed;
            }
            Err(error) => return read_error_reason(&error),
            Ok(Some(Incoming::Pong)) => continue,
            Ok(Some(Incoming::Ping(payload))) => frame::pong(&payload),
            Ok(Some(Incoming::Text(text))) => {
                Stats::add(&shared.stats.bytes_received, text.len() as u64);
                frame::text(&text)
            }
            Ok(Some(Incoming::Binary(data))) => {
                Stats::add(&shared.stats.bytes_received, data.len() as u64);
                frame::binary(&data)
            }
        };
        outbox.answer(&answer);
    }
}
