//! HTTP long-polling: what a session shares with its GET and POST
//! requests ([`PollSession`]), and the two requests.
//!
//! - GET waits for the session's queue (the same bounded queue of
//!   WebSocket frames a writer drains) and answers what is queued, up to
//!   `socketio.max_payload` bytes (the message crossing it is the last
//!   one) and [`MAX_PACKETS`] packets, re-framed as a payload. It answers `1` when the session closes
//!   (`6` when the client closed it, or when an upgrade needs the poll
//!   ended). A second GET while one waits closes the session: 400, and the
//!   waiting one gets `1`.
//! - POST reads a body of at most `max_payload` bytes (larger: 413 and the
//!   session closed), checks every packet (an invalid one: 400 and the
//!   session closed), hands them to the session's task through a bounded
//!   inbox (waiting while it is full: back-pressure on the client) and
//!   answers `ok`. A `1` packet closes the session. One POST at a time.
//! - A GET abandoned before its answer (the client went away) closes the
//!   session (`transport_error`), as the reference server does.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::CloseReason;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body as HttpBody;
use tokio::sync::{Notify, mpsc};

use super::packet::{self, Packet};
use super::query::{ErrorCode, Refusal};
use super::websocket::Handover;
use crate::frame;
use crate::http::Body;
use crate::outbox::Outbox;
use crate::state::Shared;
use crate::stats::Stats;

/// Bodies of POSTed packets waiting for the session's task.
const INBOX_CAPACITY: usize = 2;

/// The most packets a GET answers: python-engineio refuses a payload of
/// more than 16 (`Payload.max_decode_packets`) and drops the session. A
/// queued item (a message and its attachments) is never split; one that
/// would cross the limit waits for the next GET (alone, when it is larger).
pub(crate) const MAX_PACKETS: usize = 16;

/// Where a session is in the upgrade to a WebSocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Stage {
    Polling = 0,
    /// A WebSocket with this sid is open and waits for `2probe`.
    Probing = 1,
    /// `3probe` was sent: polls are ended with `6` until the `5`.
    Upgrading = 2,
    /// The WebSocket carries the session; HTTP requests are refused.
    Upgraded = 3,
}

/// What a long-polling session shares with its requests (in the
/// [`super::Registry`]).
#[derive(Debug)]
pub(crate) struct PollSession {
    pub(crate) sid: Box<str>,
    pub(crate) outbox: Outbox,
    /// The session's queue; taken by the GET being answered, or by the
    /// session's task when it moves to a WebSocket.
    queue: Mutex<Option<mpsc::Receiver<Bytes>>>,
    /// An item taken from the queue that did not fit in the last answer
    /// ([`MAX_PACKETS`]): the next GET (or the WebSocket) sends it first.
    held: Mutex<Option<Bytes>>,
    /// A GET gave the queue back.
    pub(crate) queue_back: Notify,
    stage: AtomicU8,
    /// Wakes a waiting GET when an upgrade needs it ended.
    wake: Notify,
    polling: AtomicBool,
    posting: AtomicBool,
    pub(crate) inbox: mpsc::Sender<Vec<Packet>>,
    /// The WebSocket that completed the upgrade, for the session's task.
    handover: Mutex<Option<Handover>>,
    pub(crate) upgraded: Notify,
    /// GETs waiting now, broker-wide (for tests and operators).
    waiting: std::sync::Arc<AtomicUsize>,
}

impl PollSession {
    /// A session with its queue and a new inbox (whose receiver the
    /// session's task keeps).
    pub(crate) fn new(
        sid: String,
        outbox: Outbox,
        queue: mpsc::Receiver<Bytes>,
        waiting: std::sync::Arc<AtomicUsize>,
    ) -> (PollSession, mpsc::Receiver<Vec<Packet>>) {
        let (inbox, inbox_rx) = mpsc::channel(INBOX_CAPACITY);
        let session = PollSession {
            sid: sid.into_boxed_str(),
            outbox,
            queue: Mutex::new(Some(queue)),
            held: Mutex::new(None),
            queue_back: Notify::new(),
            stage: AtomicU8::new(Stage::Polling as u8),
            wake: Notify::new(),
            polling: AtomicBool::new(false),
            posting: AtomicBool::new(false),
            inbox,
            handover: Mutex::new(None),
            upgraded: Notify::new(),
            waiting,
        };
        (session, inbox_rx)
    }

    pub(crate) fn stage(&self) -> Stage {
        match self.stage.load(SeqCst) {
            0 => Stage::Polling,
            1 => Stage::Probing,
            2 => Stage::Upgrading,
            _ => Stage::Upgraded,
        }
    }

    /// Claims the upgrade for one WebSocket; false when another has it.
    pub(crate) fn start_probe(&self) -> bool {
        self.stage
            .compare_exchange(Stage::Polling as u8, Stage::Probing as u8, SeqCst, SeqCst)
            .is_ok()
    }

    /// The probe was answered: a waiting GET is ended with `6`.
    pub(crate) fn probed(&self) {
        self.stage.store(Stage::Upgrading as u8, SeqCst);
        self.wake.notify_waiters();
    }

    /// The probing WebSocket went away before the `5`: back to polling.
    pub(crate) fn probe_failed(&self) {
        let _ = self
            .stage
            .fetch_update(SeqCst, SeqCst, |s| (s < Stage::Upgraded as u8).then_some(0));
    }

    /// The `5` arrived: the session's task takes the WebSocket over.
    pub(crate) fn hand_over(&self, handover: Handover) {
        if let Ok(mut slot) = self.handover.lock() {
            *slot = Some(handover);
        }
        self.stage.store(Stage::Upgraded as u8, SeqCst);
        self.upgraded.notify_one();
    }

    /// The WebSocket to move to, once the queue is free too; both taken,
    /// with the item a GET held back (to be written before the queue's).
    pub(crate) fn take_upgrade(&self) -> Option<(Handover, mpsc::Receiver<Bytes>, Option<Bytes>)> {
        let mut handover = self.handover.lock().ok()?;
        handover.as_ref()?;
        let queue = self.queue.lock().ok()?.take()?;
        let held = self.held.lock().ok().and_then(|mut held| held.take());
        handover.take().map(|h| (h, queue, held))
    }

    fn take_held(&self) -> Option<Bytes> {
        self.held.lock().ok().and_then(|mut held| held.take())
    }

    fn hold(&self, item: Bytes) {
        if let Ok(mut held) = self.held.lock() {
            *held = Some(item);
        }
    }
}

/// The queue, taken by one GET and given back when it is done (also when
/// the request is dropped halfway).
struct Borrowed<'a> {
    session: &'a PollSession,
    queue: Option<mpsc::Receiver<Bytes>>,
}

impl Drop for Borrowed<'_> {
    fn drop(&mut self) {
        if let (Some(queue), Ok(mut slot)) = (self.queue.take(), self.session.queue.lock()) {
            *slot = Some(queue);
        }
        self.session.queue_back.notify_one();
    }
}

/// Clears a flag when dropped.
struct Claim<'a>(&'a AtomicBool);

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        self.0.store(false, SeqCst);
    }
}

/// Counts a waiting GET while it lives.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, SeqCst);
    }
}

/// A 200 with a text payload.
fn payload(body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    response
}

/// The packet that ends a poll of a closing session: `6` when the client
/// closed it (it knows), `1` otherwise.
fn closing_packet(reason: CloseReason) -> &'static [u8] {
    match reason {
        CloseReason::ClientClosed => b"6",
        _ => b"1",
    }
}

/// GET: waits for queued packets (or the close, or an upgrade) and answers
/// them as one payload.
pub(crate) async fn poll(
    session: &PollSession,
    shared: &Shared,
) -> Result<Response<Body>, Refusal> {
    match session.stage() {
        Stage::Upgraded => {
            return Err(Refusal::bad(
                ErrorCode::BadRequest,
                "this session moved to its WebSocket; long-polling requests are refused",
            ));
        }
        Stage::Upgrading => return Ok(payload(Bytes::from_static(b"6"))),
        Stage::Polling | Stage::Probing => {}
    }
    if session.polling.swap(true, SeqCst) {
        session.outbox.close_with(CloseReason::ProtocolError);
        return Err(Refusal::bad(
            ErrorCode::BadRequest,
            "a second GET while one was waiting: the session is closed",
        ));
    }
    let _claim = Claim(&session.polling);
    // A GET dropped before it is answered (the client went away; nothing
    // was taken from the queue yet) closes the session, as the reference
    // server's does: the transport under the session is gone.
    let mut abandoned = Abandoned(Some(&session.outbox));
    let answer = wait(session, shared).await;
    abandoned.0 = None;
    Ok(answer)
}

/// Closes the session when dropped armed.
struct Abandoned<'a>(Option<&'a Outbox>);

impl Drop for Abandoned<'_> {
    fn drop(&mut self) {
        if let Some(outbox) = self.0.take() {
            outbox.close_with(CloseReason::TransportError);
        }
    }
}

/// The waiting part of a GET: takes the queue, waits, answers.
async fn wait(session: &PollSession, shared: &Shared) -> Response<Body> {
    let queue = session.queue.lock().ok().and_then(|mut q| q.take());
    let mut borrowed = Borrowed { session, queue };
    let Some(queue) = borrowed.queue.as_mut() else {
        // The session's task took the queue for its WebSocket.
        return payload(Bytes::from_static(b"6"));
    };
    let _waiting = Waiting::new(&session.waiting);
    let outbox = &session.outbox;
    let wake = session.wake.notified();
    tokio::pin!(wake);
    // Registered before the check, so an upgrade in between is not missed.
    wake.as_mut().enable();
    if session.stage() >= Stage::Upgrading {
        return payload(Bytes::from_static(b"6"));
    }
    let held = session.take_held();
    let first = if let Some(item) = held {
        item
    } else {
        tokio::select! {
        biased;
        () = outbox.close.cancelled() => {
            return payload(Bytes::from_static(closing_packet(outbox.close_reason())));
        }
        () = &mut wake => return payload(Bytes::from_static(b"6")),
        item = queue.recv() => match item {
            Some(item) => {
                outbox.taken(item.len());
                item
            }
            None => return payload(Bytes::from_static(b"1")),
        },
        }
    };
    let limit = shared.settings.socketio.max_payload;
    let mut body = Vec::with_capacity(first.len().min(limit));
    let mut packets = 0;
    let mut next = Some(first);
    while let Some(item) = next.take() {
        let count = frame::frames(&item).count();
        if packets > 0 && packets + count > MAX_PACKETS {
            session.hold(item);
            break;
        }
        packets += count;
        packet::append_item(&mut body, &item);
        if body.len() < limit && packets < MAX_PACKETS {
            next = queue.try_recv().ok();
            if let Some(item) = &next {
                outbox.taken(item.len());
            }
        }
    }
    Stats::add(&shared.stats.bytes_sent, body.len() as u64);
    payload(body)
}

/// POST: reads and checks the packets, hands them to the session's task.
pub(crate) async fn post<B>(
    session: &PollSession,
    req: Request<B>,
    shared: &Shared,
) -> Result<Response<Body>, Refusal>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if session.stage() == Stage::Upgraded {
        return Err(Refusal::bad(
            ErrorCode::BadRequest,
            "this session moved to its WebSocket; long-polling requests are refused",
        ));
    }
    let outbox = &session.outbox;
    if session.posting.swap(true, SeqCst) {
        outbox.close_with(CloseReason::ProtocolError);
        return Err(Refusal::bad(
            ErrorCode::BadRequest,
            "a second POST while one was being read: the session is closed",
        ));
    }
    let _claim = Claim(&session.posting);
    let limit = shared.settings.socketio.max_payload;
    let body = match read_body(
        req.into_body(),
        limit,
        shared.settings.server.handshake_timeout,
    )
    .await
    {
        Ok(body) => body,
        Err(refusal) => {
            outbox.close_with(if refusal.status == StatusCode::PAYLOAD_TOO_LARGE {
                CloseReason::MessageTooBig
            } else {
                CloseReason::TransportError
            });
            return Err(refusal);
        }
    };
    Stats::add(&shared.stats.bytes_received, body.len() as u64);
    let mut packets = match packet::parse_payload(&body) {
        Ok(packets) => packets,
        Err(error) => {
            outbox.close_with(CloseReason::ProtocolError);
            return Err(Refusal::bad(
                ErrorCode::BadRequest,
                format!("invalid packet ({error}): the session is closed"),
            ));
        }
    };
    // Packets after a close are never read, as on a WebSocket.
    let close = packets.iter().position(|p| *p == Packet::Close);
    if let Some(at) = close {
        packets.truncate(at);
    }
    if !packets.is_empty() {
        tokio::select! {
            biased;
            sent = session.inbox.send(packets) => {
                if sent.is_err() {
                    return Err(closed());
                }
            }
            () = outbox.close.cancelled() => return Err(closed()),
        }
    }
    if close.is_some() {
        outbox.close_with(CloseReason::ClientClosed);
    }
    let mut response = Response::new(Full::new(Bytes::from_static(b"ok")));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=UTF-8"),
    );
    Ok(response)
}

fn closed() -> Refusal {
    Refusal::bad(ErrorCode::UnknownSid, "the session closed")
}

/// Reads a POST body of at most `limit` bytes within `deadline`.
async fn read_body<B>(body: B, limit: usize, deadline: Duration) -> Result<Bytes, Refusal>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let too_large = || Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: ErrorCode::BadRequest,
        detail: format!(
            "the body exceeds socketio.max_payload = {limit} bytes: the session is closed"
        ),
    };
    if body.size_hint().lower() > limit as u64 {
        return Err(too_large());
    }
    let collected = tokio::time::timeout(deadline, Limited::new(body, limit).collect())
        .await
        .map_err(|_| {
            Refusal::bad(
                ErrorCode::BadRequest,
                format!("the body did not arrive within {deadline:?} (server.handshake_timeout)"),
            )
        })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(too_large()),
        Err(error) => Err(Refusal::bad(
            ErrorCode::BadRequest,
            format!("the body could not be read: {error}"),
        )),
    }
}
