//! [`EngineConn`]: one Engine.IO session as its app (Socket.IO, or the
//! echo endpoint) holds it, whatever the transport: the client's message
//! packets in ([`EngineConn::recv`]), the [`Outbox`] out, and in between
//! the heartbeat (a ping `2` every `socketio.ping_interval`, closed as
//! `heartbeat_timeout` without a pong within `socketio.ping_timeout`) and
//! the switch from long-polling to the WebSocket an upgrade handed over.
//!
//! No task or channel of its own: the app's task runs it, and reads a
//! WebSocket with the connection's [`FrameReader`] directly, so an idle
//! WebSocket session costs what a native one does.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::CloseReason;
use tokio::io::AsyncWriteExt;
use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::time::{Instant, Sleep};

use super::packet::{self, Packet};
use super::polling::PollSession;
use super::websocket::Handover;
use super::{Message, Transport};
use crate::conn::Conn;
use crate::frame;
use crate::inbound::{FrameReader, Incoming};
use crate::outbox::Outbox;
use crate::session::read_error_reason;
use crate::state::Shared;
use crate::stats::Stats;
use crate::writer::{Goodbye, Pings};

/// How packets reach the session.
enum Io {
    /// POSTed packets, through the session's inbox.
    Polling {
        inbox: mpsc::Receiver<Vec<Packet>>,
        /// Packets of a POST not handled yet.
        pending: VecDeque<Packet>,
    },
    /// The WebSocket, read here; its writer task drains the outbox.
    WebSocket { reader: FrameReader, conn: Conn },
}

/// The Engine.IO heartbeat: the server pings, the client pongs.
struct Heartbeat {
    timer: Pin<Box<Sleep>>,
    awaiting_pong: bool,
    interval: Duration,
    timeout: Duration,
}

/// One Engine.IO session, held by its app.
pub(crate) struct EngineConn {
    /// The session's send side: queue complete WebSocket frames of
    /// Engine.IO packets (see [`EngineConn::send_text`] and
    /// [`packet::message_item`]); the router may hold it as any receiver.
    pub(crate) outbox: Outbox,
    sid: Arc<str>,
    transport: Transport,
    io: Io,
    heartbeat: Heartbeat,
    /// The long-polling side, kept after an upgrade so the sid stays
    /// refused until the session ends; none for a WebSocket-only session.
    polling: Option<Arc<PollSession>>,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
    /// The `Authorization: Bearer` token of the handshake request (read
    /// only with auth on), for the app to take.
    pub(crate) token: Option<Box<str>>,
}

impl std::fmt::Debug for EngineConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConn")
            .field("sid", &self.sid)
            .field("transport", &self.transport)
            .finish_non_exhaustive()
    }
}

impl EngineConn {
    fn new(
        sid: Arc<str>,
        outbox: Outbox,
        io: Io,
        polling: Option<Arc<PollSession>>,
        shared: Arc<Shared>,
        permit: OwnedSemaphorePermit,
    ) -> EngineConn {
        let settings = &shared.settings.socketio;
        let heartbeat = Heartbeat {
            timer: Box::pin(tokio::time::sleep(settings.ping_interval)),
            awaiting_pong: false,
            interval: settings.ping_interval,
            timeout: settings.ping_timeout,
        };
        let transport = match io {
            Io::Polling { .. } => Transport::Polling,
            Io::WebSocket { .. } => Transport::WebSocket,
        };
        EngineConn {
            outbox,
            sid,
            transport,
            io,
            heartbeat,
            polling,
            shared,
            _permit: permit,
            token: None,
        }
    }

    /// A session on a WebSocket from the start.
    pub(super) fn websocket(
        sid: Arc<str>,
        reader: FrameReader,
        conn: Conn,
        shared: Arc<Shared>,
        permit: OwnedSemaphorePermit,
    ) -> EngineConn {
        let outbox = conn.outbox.clone();
        EngineConn::new(
            sid,
            outbox,
            Io::WebSocket { reader, conn },
            None,
            shared,
            permit,
        )
    }

    /// A long-polling session (already in the registry).
    pub(super) fn polling(
        session: Arc<PollSession>,
        inbox: mpsc::Receiver<Vec<Packet>>,
        shared: Arc<Shared>,
        permit: OwnedSemaphorePermit,
    ) -> EngineConn {
        let io = Io::Polling {
            inbox,
            pending: VecDeque::new(),
        };
        EngineConn::new(
            Arc::from(&*session.sid),
            session.outbox.clone(),
            io,
            Some(session),
            shared,
            permit,
        )
    }

    /// The Engine.IO session id (what the handshake sent as `sid`).
    pub(crate) fn engine_sid(&self) -> &str {
        &self.sid
    }

    /// The transport the session is on now.
    pub(crate) fn transport(&self) -> Transport {
        self.transport
    }

    /// Queues a message packet: `4` + `text`, as an answer (it may use the
    /// queue's reserve; a client that reads none of them is closed as a
    /// slow consumer). False when it was not queued.
    pub(crate) fn send_text(&self, text: &str) -> bool {
        self.outbox
            .answer(&packet::text_frame(b'4', text.as_bytes()))
    }

    /// Queues a binary message packet, as an answer.
    pub(crate) fn send_binary(&self, data: &[u8]) -> bool {
        self.outbox.answer(&frame::binary(data))
    }

    /// Queues one prepared item (e.g. [`packet::message_item`]: a text
    /// message and its binary attachments), as an answer.
    #[allow(dead_code)] // For the Socket.IO layer (`crate::socketio`).
    pub(crate) fn send_item(&self, item: &Bytes) -> bool {
        self.outbox.answer(item)
    }

    /// The next message packet from the client. Control packets (pong,
    /// noop, the client's ping) are handled here, the heartbeat is kept,
    /// and a WebSocket an upgrade handed over is switched to:
    /// `Ok(None)` says that just happened (now [`EngineConn::transport`] is
    /// [`Transport::WebSocket`]); call again. `Err` is why the session
    /// ends (the client closed it, the heartbeat timed out, an invalid
    /// packet, shutdown, a slow consumer, …): call [`EngineConn::finish`].
    ///
    /// Cancel-safe (for `tokio::select!`): nothing read is lost when the
    /// future is dropped (but while it writes the item a poll held back
    /// to a WebSocket it switches to, which only a session's end cancels).
    pub(crate) async fn recv(&mut self) -> Result<Option<Message>, CloseReason> {
        loop {
            if let Some(message) = self.next_buffered()? {
                return Ok(Some(message));
            }
            let polling = match self.io {
                Io::Polling { .. } => self.polling.clone(),
                Io::WebSocket { .. } => None,
            };
            if let Some(session) = &polling {
                // POSTed packets were all handled (`next_buffered`) and the
                // inbox is looked at first below, so nothing sent before
                // the `5` is overtaken.
                if let Some((handover, queue, held)) = session.take_upgrade() {
                    Box::pin(self.switch(handover, queue, held)).await?;
                    return Ok(None);
                }
            }
            let close = &self.outbox.close;
            let timer = self.heartbeat.timer.as_mut();
            let step = match (&mut self.io, polling) {
                // Boxed: only long-polling sessions pay for the state of
                // this wait, not every idle WebSocket session's task.
                (Io::Polling { inbox, pending }, Some(session)) => {
                    Box::pin(poll_wait(inbox, pending, close, &session, timer)).await
                }
                (Io::Polling { .. }, None) => Step::Closed,
                (Io::WebSocket { reader, .. }, _) => tokio::select! {
                    biased;
                    () = close.cancelled() => Step::Closed,
                    incoming = reader.next() => Step::Incoming(incoming),
                    () = timer => Step::Beat,
                },
            };
            match step {
                Step::Continue => {}
                Step::Closed => return Err(self.outbox.close_reason()),
                Step::Beat => self.beat()?,
                Step::Incoming(incoming) => {
                    if let Some(message) = self.incoming(incoming)? {
                        return Ok(Some(message));
                    }
                }
            }
        }
    }

    /// The next message among packets already read (a POST's, or whole
    /// messages already buffered from the WebSocket); never waits.
    pub(crate) fn next_buffered(&mut self) -> Result<Option<Message>, CloseReason> {
        loop {
            let read = match &mut self.io {
                Io::Polling { pending, .. } => match pending.pop_front() {
                    Some(packet) => Ok(packet),
                    None => return Ok(None),
                },
                Io::WebSocket { reader, .. } => match reader.next_buffered() {
                    Ok(None) => return Ok(None),
                    other => Err(other),
                },
            };
            let message = match read {
                Ok(packet) => self.packet(packet)?,
                Err(incoming) => self.incoming(incoming)?,
            };
            if message.is_some() {
                return Ok(message);
            }
        }
    }

    /// Closes for `reason` (unless one was given before), waits for the
    /// writer's goodbye on a WebSocket, forgets the sid, counts the close;
    /// returns the reason that won.
    pub(crate) async fn finish(self, reason: CloseReason) -> CloseReason {
        let EngineConn {
            outbox,
            io,
            polling,
            shared,
            ..
        } = self;
        let reason = match io {
            Io::WebSocket { reader, conn } => {
                drop(reader);
                conn.finish(&shared, reason).await
            }
            Io::Polling { .. } => {
                crate::conn::forget_outbox(&shared, &outbox);
                outbox.close_with(reason);
                outbox.close_reason()
            }
        };
        if let Some(session) = polling {
            shared.engineio.remove(&session.sid);
        }
        shared.stats.closed(reason);
        reason
    }

    /// The heartbeat timer fired: ping, or give up on the missing pong.
    fn beat(&mut self) -> Result<(), CloseReason> {
        let heartbeat = &mut self.heartbeat;
        if heartbeat.awaiting_pong {
            self.outbox.close_with(CloseReason::HeartbeatTimeout);
            return Err(self.outbox.close_reason());
        }
        heartbeat.awaiting_pong = true;
        let deadline = Instant::now() + heartbeat.timeout;
        heartbeat.timer.as_mut().reset(deadline);
        self.outbox.answer(&packet::text_frame(b'2', b""));
        Ok(())
    }

    fn pong(&mut self) {
        let heartbeat = &mut self.heartbeat;
        if heartbeat.awaiting_pong {
            heartbeat.awaiting_pong = false;
            let next = Instant::now() + heartbeat.interval;
            heartbeat.timer.as_mut().reset(next);
        }
    }

    /// What one WebSocket read gave.
    fn incoming(
        &mut self,
        incoming: Result<Option<Incoming>, crate::inbound::ReadError>,
    ) -> Result<Option<Message>, CloseReason> {
        let fail = |outbox: &Outbox, reason: CloseReason| {
            outbox.close_with(reason);
            Err(outbox.close_reason())
        };
        let packet = match incoming {
            Ok(None) => return fail(&self.outbox, CloseReason::TransportError),
            Err(error) => return fail(&self.outbox, read_error_reason(&error)),
            Ok(Some(Incoming::Close(code))) => {
                self.outbox.peer_closed(code);
                return Err(self.outbox.close_reason());
            }
            Ok(Some(Incoming::Ping(payload))) => {
                self.outbox.answer(&frame::pong(&payload));
                return Ok(None);
            }
            Ok(Some(Incoming::Pong)) => return Ok(None),
            Ok(Some(Incoming::Binary(data))) => {
                Stats::add(&self.shared.stats.bytes_received, data.len() as u64);
                Packet::Message(Message::Binary(data))
            }
            Ok(Some(Incoming::Text(text))) => {
                Stats::add(&self.shared.stats.bytes_received, text.len() as u64);
                match packet::parse_text(text) {
                    Ok(packet) => packet,
                    Err(_) => return fail(&self.outbox, CloseReason::ProtocolError),
                }
            }
        };
        self.packet(packet)
    }

    /// Handles one packet; a message is handed on.
    fn packet(&mut self, packet: Packet) -> Result<Option<Message>, CloseReason> {
        match packet {
            Packet::Message(message) => return Ok(Some(message)),
            Packet::Pong(_) => self.pong(),
            // Clients of protocol 4 do not ping, but an answer costs
            // nothing and keeps a probing client going.
            Packet::Ping(data) => {
                self.outbox.answer(&packet::text_frame(b'3', &data));
            }
            Packet::Close => {
                self.outbox.close_with(CloseReason::ClientClosed);
                return Err(self.outbox.close_reason());
            }
            Packet::Noop | Packet::Upgrade => {}
        }
        Ok(None)
    }

    /// Moves the session to the WebSocket an upgrade handed over: the
    /// item the last poll held back is written first, then its writer
    /// takes the queue over.
    async fn switch(
        &mut self,
        handover: Handover,
        queue: mpsc::Receiver<Bytes>,
        held: Option<Bytes>,
    ) -> Result<(), CloseReason> {
        let Handover { reader, mut write } = handover;
        if let Some(item) = held {
            let timeout = self.shared.settings.delivery.write_timeout;
            let written = tokio::time::timeout(timeout, write.write_all(&item)).await;
            if !matches!(written, Ok(Ok(()))) {
                self.outbox.close_with(CloseReason::TransportError);
                return Err(self.outbox.close_reason());
            }
            Stats::add(&self.shared.stats.bytes_sent, item.len() as u64);
        }
        let conn = Conn::resume(
            write,
            queue,
            self.outbox.clone(),
            &self.shared,
            Goodbye::FrameOnly,
            Pings::Off,
        );
        // Packets POSTed before the `5` were handled first (the inbox is
        // drained before the switch is looked at).
        self.io = Io::WebSocket { reader, conn };
        self.transport = Transport::WebSocket;
        Ok(())
    }
}

/// One wait of a long-polling session: a POST's packets, the close, the
/// hand-over of an upgrade (or the queue it waits for), or the heartbeat.
async fn poll_wait(
    inbox: &mut mpsc::Receiver<Vec<Packet>>,
    pending: &mut VecDeque<Packet>,
    close: &tokio_util::sync::CancellationToken,
    session: &PollSession,
    timer: Pin<&mut Sleep>,
) -> Step {
    // `notify_one` keeps a permit when nobody waits, so a hand-over
    // between the caller's check and here is not missed.
    tokio::select! {
        biased;
        batch = inbox.recv() => {
            pending.extend(batch.unwrap_or_default());
            Step::Continue
        }
        () = close.cancelled() => Step::Closed,
        () = session.upgraded.notified() => Step::Continue,
        () = session.queue_back.notified() => Step::Continue,
        () = timer => Step::Beat,
    }
}

/// What one wait of [`EngineConn::recv`] ended with.
enum Step {
    Continue,
    Closed,
    Beat,
    Incoming(Result<Option<Incoming>, crate::inbound::ReadError>),
}
