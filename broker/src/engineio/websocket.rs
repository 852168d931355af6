//! The WebSocket transport: a session on a WebSocket from the start, and
//! the upgrade of a long-polling session (`sid` given): the client sends
//! `2probe`, the broker answers `3probe` on the new socket and ends the
//! waiting poll with `6`, the client sends `5`, and the session's task
//! switches to the socket (its writer takes the session's queue over).
//! A probe that fails (the socket closes, a wrong packet, no `5` within
//! `server.handshake_timeout`) leaves the session on long-polling.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tracing::debug;

use super::conn::EngineConn;
use super::packet;
use super::polling::PollSession;
use super::sid::new_sid;
use crate::conn::Conn;
use crate::inbound::{FrameReader, Incoming};
use crate::limits::SessionPermit;
use crate::socket::{Halves, WriteHalf};
use crate::state::Shared;
use crate::stats::Stats;
use crate::wire::WireFormat;
use crate::writer::{Goodbye, Pings};

/// The socket an upgrade hands to the session's task after the `5`.
#[derive(Debug)]
pub(crate) struct Handover {
    pub(crate) reader: FrameReader,
    pub(crate) write: WriteHalf,
}

/// Opens a new session on an upgraded WebSocket (no `sid`), the open
/// packet queued first; the caller runs its app in this same task.
pub(crate) fn open(
    halves: Halves,
    shared: &Arc<Shared>,
    peer: SocketAddr,
    permit: SessionPermit,
) -> EngineConn {
    let settings = &shared.settings.socketio;
    let (reader, conn) = Conn::open_with(
        halves,
        shared,
        settings.max_payload,
        Goodbye::FrameOnly,
        WireFormat::SocketIo,
        Pings::Off,
    );
    let sid: Arc<str> = Arc::from(new_sid());
    let open = packet::open(
        &sid,
        &[],
        settings.ping_interval.as_millis(),
        settings.ping_timeout.as_millis(),
        settings.max_payload,
    );
    conn.outbox.answer(&crate::frame::text(open.as_bytes()));
    debug!(conn = conn.outbox.id.0, %peer, "engine.io websocket session opened");
    EngineConn::websocket(sid, reader, conn, shared.clone(), permit)
}

/// Runs the probe of an upgrade on an upgraded WebSocket; hands the socket
/// to the session after the `5`.
pub(crate) async fn probe(halves: Halves, session: Arc<PollSession>, shared: Arc<Shared>) {
    let Halves { read, early, write } = halves;
    let settings = &shared.settings;
    let mut reader = FrameReader::new(
        read,
        &early,
        settings.socketio.max_payload,
        settings.server.message_timeout,
    );
    drop(early);
    let mut write = write;
    let outcome = tokio::time::timeout(
        settings.server.handshake_timeout,
        exchange(&mut reader, &mut write, &session, &shared),
    )
    .await;
    match outcome {
        Ok(Ok(())) => {
            debug!(
                sid = &*session.sid,
                "engine.io session upgraded to websocket"
            );
            session.hand_over(Handover { reader, write });
        }
        Ok(Err(why)) => {
            debug!(sid = &*session.sid, why, "engine.io upgrade probe failed");
            session.probe_failed();
            let _ = write.write_all(&crate::frame::close(1002, why)).await;
        }
        Err(_) => {
            debug!(sid = &*session.sid, "engine.io upgrade probe timed out");
            session.probe_failed();
        }
    }
}

/// `2probe` → `3probe` (and the poll ended), then `5`.
async fn exchange(
    reader: &mut FrameReader,
    write: &mut WriteHalf,
    session: &PollSession,
    shared: &Shared,
) -> Result<(), &'static str> {
    let write_timeout = shared.settings.delivery.write_timeout;
    let mut probed = false;
    loop {
        let incoming = tokio::select! {
            biased;
            () = session.outbox.close.cancelled() => return Err("the session closed"),
            incoming = reader.next() => incoming,
        };
        let text = match incoming {
            Ok(Some(Incoming::Text(text))) => text,
            Ok(Some(Incoming::Ping(_) | Incoming::Pong)) => continue,
            _ => return Err("the socket closed or sent something else than the probe"),
        };
        Stats::add(&shared.stats.bytes_received, text.len() as u64);
        match &text[..] {
            b"2probe" => {
                let answer = packet::text_frame(b'3', b"probe");
                tokio::time::timeout(write_timeout, write.write_all(&answer))
                    .await
                    .map_err(|_| "writing 3probe timed out")?
                    .map_err(|_| "writing 3probe failed")?;
                Stats::add(&shared.stats.bytes_sent, answer.len() as u64);
                if !probed {
                    probed = true;
                    session.probed();
                }
            }
            b"5" if probed => return Ok(()),
            _ => return Err("expected 2probe, then 5"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engineio::{App, run_app};

    /// An idle Socket.IO WebSocket session must cost about what a native
    /// one does (issue #10: at most 8 KiB broker RSS each; the `conns`
    /// benchmark measures it): its task's state, the app's future over an
    /// `EngineConn`, is at most a native session's plus
    /// `SOCKETIO_EXTRA` bytes (the Socket.IO session's own state: its
    /// namespaces, the attachment assembler, the connect deadline). The
    /// app future is the larger of the echo and Socket.IO apps.
    #[tokio::test]
    async fn a_websocket_session_is_no_larger_than_a_native_one() {
        let settings = herald_config::Settings::defaults();
        let limit = crate::fdlimit::ConnectionLimit::fit(10, crate::fdlimit::OpenFiles::raise());
        let shared = Arc::new(Shared::new(settings, "node".into(), None, limit));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut clients = Vec::new();
        let mut halves = Vec::new();
        for _ in 0..2 {
            clients.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
            let (socket, _) = listener.accept().await.expect("accept");
            let (read, write) = socket.into_split();
            halves.push(Halves {
                read: read.into(),
                early: bytes::Bytes::new(),
                write: write.into(),
            });
        }
        let permit = || {
            let slot = shared
                .sessions
                .clone()
                .try_acquire_owned()
                .expect("a permit");
            SessionPermit::new(slot, None)
        };
        let (Some(native), Some(engine)) = (halves.pop(), halves.pop()) else {
            panic!("two connections");
        };
        let native = crate::session::run(native, shared.clone(), addr, permit(), None);
        let engine = run_app(
            App::Echo,
            open(engine, &shared, addr, permit()),
            shared.clone(),
        );
        const SOCKETIO_EXTRA: usize = 128;
        let (native, engine) = (size_of_val(&native), size_of_val(&engine));
        assert!(
            engine <= native + SOCKETIO_EXTRA,
            "an Engine.IO session's future is {engine} bytes, a native session's {native}"
        );
    }
}
