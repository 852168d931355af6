//! The connection task: it owns the socket, and keeps one connected.
//!
//! - Handshake ([`attempt`]): WebSocket upgrade offering `herald.v1`, then
//!   `hello` (with the token, fetched from the token provider before every
//!   attempt) and the broker's `welcome`, all within the connect timeout.
//!   A token refused `unauthorized` is final for a fixed token; with a
//!   provider it is retried with a new token [`UNAUTHORIZED_ATTEMPTS`]
//!   times in a row.
//! - Activation ([`activate`]): builds the frames that restore every
//!   subscription and room, puts the offline buffer behind them, and opens
//!   the outbox to the new connection's bounded queue.
//! - Serving ([`serve`]): a reader (decodes frames, completes pending calls,
//!   feeds handler queues, awaiting their space) and a writer (drains the
//!   queue: receive one, take what else is ready, feed each, flush once)
//!   run side by side until the connection fails or the client closes.
//! - Reconnecting ([`reconnect`]): back-off with full jitter, rotating
//!   through the broker URLs, until a broker answers or the policy gives up.
//!   A connection the broker closed `token_expired` or `unauthorized` is
//!   reconnected only when a token provider can give a new token.
//!
//! A connection is considered dead when nothing arrives for three of the
//! broker's heartbeat intervals (the broker pings every interval; pongs are
//! answered by tungstenite while the reader reads). The reader does not
//! read the clock per frame: a timer checks once per interval whether
//! anything came since its last check, so silence is noticed after three
//! to four intervals.
//!
//! The reader's hot path allocates nothing per event: an `event` frame is
//! decoded borrowed ([`herald_protocol::decode_view`]), routed into a
//! scratch vector of handler queues, and handed over as [`Delivery`]s that
//! share the frame's memory.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use herald_protocol::envelope::{Hello, Notice, Reply, Resume, Welcome};
use herald_protocol::{CloseReason, Decoded, Envelope, EventView, PROTOCOL_VERSION, SUBPROTOCOL};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::ProtocolError;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::backoff::Backoff;
use crate::client::{Config, ConnectionState, Shared, room_change, sub_envelope};
use crate::dispatch::{Delivery, Queue, ReplyTo, Route};
use crate::error::{ClientEvent, Error};
use crate::handler::{error_payload, send_reply};
use crate::lock;
use crate::outbox::Outgoing;
use crate::pending::{Answer, Completion};
use crate::token::token_for_hello;

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Capacity of each connection's outgoing queue; a full queue makes
/// senders wait (backpressure) rather than grow.
const OUTGOING_QUEUE: usize = 1024;
/// Most frames the writer feeds before one flush.
const MAX_BATCH: usize = 256;
/// How long a closing client waits to write what is queued and for the
/// broker to answer its close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// How long to wait to answer the broker's close frame when it closed.
const CLOSE_REPLY_GRACE: Duration = Duration::from_millis(500);
/// Largest frame accepted from the broker (its payload limit is at most
/// 64 MiB; envelopes add a few bytes).
const MAX_FRAME: usize = 64 * 1024 * 1024 + 64 * 1024;
/// Bytes read from the socket at once. tungstenite zero-fills the free
/// part of its read buffer before every read (and, while delivered frames
/// still share the buffer, allocates a new one of this size): at its
/// default of 128 KiB that fill cost more than the read itself whenever a
/// read brings a few events; 32 KiB still takes a few hundred events per
/// read.
const READ_BUFFER: usize = 32 * 1024;
/// With a token provider: connection attempts refused `unauthorized` in a
/// row (each with a new token from the provider) before the refusal is
/// final.
pub(crate) const UNAUTHORIZED_ATTEMPTS: u32 = 3;

/// A connection that completed the hello/welcome handshake.
#[derive(Debug)]
pub(crate) struct Established {
    ws: WsStream,
    welcome: Welcome,
    url_index: usize,
    /// The resume point the hello carried: what the broker restored.
    resumed: Option<Resume>,
}

/// An activated connection, ready to serve.
#[derive(Debug)]
pub(crate) struct Live {
    ws: WsStream,
    /// The receiving end of the queue the outbox now hands out.
    rx: mpsc::Receiver<Outgoing>,
    /// Written before anything from `rx`: restore frames, then the offline
    /// buffer.
    initial: VecDeque<Outgoing>,
    generation: u64,
    heartbeat_ms: u64,
    url_index: usize,
}

/// Why serving a connection stopped.
#[derive(Debug)]
struct Lost {
    reason: String,
    /// The broker sent a close frame: answer it before leaving.
    close_received: bool,
    /// The broker closed it for its token (`token_expired`,
    /// `unauthorized`): reconnecting needs a new token.
    token: Option<Error>,
}

impl Lost {
    fn new(reason: String) -> Lost {
        Lost {
            reason,
            close_received: false,
            token: None,
        }
    }
}

/// The first connection: one attempt per URL, in order (a URL refused
/// `unauthorized` is tried again with a new token while a provider gives
/// one, see [`UNAUTHORIZED_ATTEMPTS`]). Fails with the provider's error,
/// with the first refusal that retrying would not fix, or else
/// [`Error::Connect`] naming every failure.
pub(crate) async fn connect_first(shared: &Shared) -> Result<Established, Error> {
    let config = &shared.config;
    let mut refusal = None;
    let mut failures = Vec::new();
    for (url_index, url) in config.urls.iter().enumerate() {
        let mut refused = 0;
        let result = loop {
            let token = token_for_hello(&shared.token, config.connect_timeout).await?;
            match attempt(url, config, token, None).await {
                Err(Error::Unauthorized { .. })
                    if shared.token.has_provider() && refused + 1 < UNAUTHORIZED_ATTEMPTS =>
                {
                    let delay = config.reconnect.delay(refused, &mut rand::rng());
                    refused += 1;
                    tracing::debug!(%url, refused, "token refused; asking the provider again");
                    tokio::time::sleep(delay).await;
                }
                result => break result,
            }
        };
        match result {
            Ok((ws, welcome)) => {
                return Ok(Established {
                    ws,
                    welcome,
                    url_index,
                    resumed: None,
                });
            }
            Err(error) => {
                tracing::debug!(%url, %error, "connection attempt failed");
                if !error.is_retryable() && refusal.is_none() {
                    refusal = Some(error.clone());
                }
                failures.push(match error {
                    Error::Connect(message) => message,
                    other => format!("{url}: {other}"),
                });
            }
        }
    }
    Err(refusal.unwrap_or_else(|| Error::Connect(failures.join("; "))))
}

/// One connection attempt: upgrade, hello (with `token`), welcome;
/// bounded by `config.connect_timeout`.
async fn attempt(
    url: &Url,
    config: &Config,
    token: Option<String>,
    resume: Option<Resume>,
) -> Result<(WsStream, Welcome), Error> {
    let timeout = config.connect_timeout;
    let handshake = async {
        let mut ws = open(url, config.tls.as_ref()).await?;
        let welcome = hello(&mut ws, url, &config.name, token, resume).await?;
        Ok((ws, welcome))
    };
    tokio::time::timeout(timeout, handshake)
        .await
        .unwrap_or_else(|_| {
            Err(Error::Connect(format!(
                "{url}: no welcome within {timeout:?}"
            )))
        })
}

/// The WebSocket upgrade, offering the `herald.v1` subprotocol.
async fn open(url: &Url, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<WsStream, Error> {
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Error::InvalidUrl(format!("{url}: {e}")))?;
    request.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(SUBPROTOCOL),
    );
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .max_message_size(Some(MAX_FRAME))
        .max_frame_size(Some(MAX_FRAME));
    let connector = tls.map(|tls| Connector::Rustls(tls.clone()));
    let (ws, _response) =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector)
            .await
            .map_err(|e| handshake_error(url, e))?;
    Ok(ws)
}

/// Maps a failed upgrade to an [`Error`].
fn handshake_error(url: &Url, error: WsError) -> Error {
    match error {
        WsError::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .map(|b| {
                    String::from_utf8_lossy(b)
                        .trim()
                        .chars()
                        .take(512)
                        .collect()
                })
                .filter(|b: &String| !b.is_empty());
            Error::Handshake {
                status: status.as_u16(),
                reason: body.unwrap_or_else(|| {
                    status
                        .canonical_reason()
                        .unwrap_or("no reason given")
                        .to_owned()
                }),
            }
        }
        WsError::Protocol(ProtocolError::SecWebSocketSubProtocolError(e)) => Error::Handshake {
            status: 101,
            reason: format!("{url} did not accept subprotocol {SUBPROTOCOL}: {e}"),
        },
        WsError::Url(e) => Error::InvalidUrl(format!("{url}: {e}")),
        WsError::Io(e) => crate::tls::describe(url, &e)
            .unwrap_or_else(|| Error::Connect(format!("{url}: {}", WsError::Io(e)))),
        other => Error::Connect(format!("{url}: {other}")),
    }
}

/// Sends `hello` and waits for `welcome`. A refusal for the token (an
/// `err` or a `close` saying `unauthorized`) is [`Error::Unauthorized`].
async fn hello(
    ws: &mut WsStream,
    url: &Url,
    name: &str,
    token: Option<String>,
    resume: Option<Resume>,
) -> Result<Welcome, Error> {
    let failed = |what: String| Error::Connect(format!("{url}: {what}"));
    let hello = Envelope::Hello(Hello {
        version: PROTOCOL_VERSION,
        client: Some(name.to_owned()),
        token,
        resume,
    });
    ws.send(binary(herald_protocol::encode(&hello)))
        .await
        .map_err(|e| failed(format!("sending hello failed: {e}")))?;
    loop {
        let frame = match ws.next().await {
            None => return Err(failed("closed before welcome".into())),
            Some(Err(e)) => return Err(failed(format!("reading welcome failed: {e}"))),
            Some(Ok(Message::Binary(frame))) => frame,
            Some(Ok(Message::Close(close))) => {
                let described = describe_close(close.as_ref());
                if let Some(error) = close
                    .as_ref()
                    .and_then(|c| token_error(CloseReason::parse(&c.reason), &described))
                {
                    return Err(error);
                }
                return Err(failed(format!("closed before welcome: {described}")));
            }
            // Pings are answered by tungstenite; text frames are not ours.
            Some(Ok(_)) => continue,
        };
        match herald_protocol::decode(&frame) {
            Ok(Envelope::Welcome(welcome)) => {
                if welcome.version != PROTOCOL_VERSION {
                    tracing::warn!(%url, version = welcome.version, "broker speaks another protocol version");
                }
                return Ok(welcome);
            }
            Ok(Envelope::Error(e)) => return Err(Error::from_broker(e.code, e.message)),
            Ok(Envelope::Close { reason, message }) => {
                return Err(token_error(reason, &message)
                    .unwrap_or_else(|| failed(format!("broker closed: {reason}: {message}"))));
            }
            Ok(Envelope::Ping { ts }) => {
                ws.send(binary(herald_protocol::encode(&Envelope::Pong { ts })))
                    .await
                    .map_err(|e| failed(format!("answering ping failed: {e}")))?;
            }
            Ok(other) => {
                return Err(failed(format!("expected welcome, got {}", other.kind())));
            }
            Err(e) => return Err(failed(format!("undecodable answer to hello: {e}"))),
        }
    }
}

/// The error for a close about the token, `None` for any other reason.
fn token_error(reason: CloseReason, message: &str) -> Option<Error> {
    let message = message.to_owned();
    match reason {
        CloseReason::Unauthorized => Some(Error::Unauthorized { message }),
        CloseReason::TokenExpired => Some(Error::TokenExpired { message }),
        _ => None,
    }
}

fn binary(frame: Vec<u8>) -> Message {
    Message::Binary(Bytes::from(frame))
}

fn describe_close(close: Option<&CloseFrame>) -> String {
    match close {
        Some(frame) if frame.reason.is_empty() => format!("code {}", u16::from(frame.code)),
        Some(frame) => format!("{} (code {})", frame.reason, u16::from(frame.code)),
        None => "no close reason".to_owned(),
    }
}

/// Makes `established` the current connection: queues the frames that
/// restore subscriptions and rooms, then the offline buffer, and opens the
/// outbox to the new queue. Fails with [`Error::Closed`] if the client
/// closed meanwhile.
pub(crate) async fn activate(
    shared: &Arc<Shared>,
    established: Established,
) -> Result<Live, Error> {
    let Established {
        ws,
        welcome,
        url_index,
        resumed,
    } = established;
    // Holding the membership lock, every sub/join either finished before
    // (and is restored here) or starts after (and goes to the new queue).
    // What the hello's resume point carried the broker restored already.
    let _membership = shared.membership.lock().await;
    let resumed = resumed.unwrap_or_default();
    let mut initial = VecDeque::new();
    for key in shared.registry.keys().into_iter().filter(|key| {
        !resumed.subs.iter().any(|s| {
            s.ns == key.namespace && s.ev == key.event && s.q == key.group && s.r == key.responder
        })
    }) {
        let id = shared.pending.next_id();
        shared.pending.restore(id, format!("subscription {key}"));
        let envelope = Envelope::Subscribe(sub_envelope(&key, Some(id)));
        initial.push_back(Outgoing::once(encode(&envelope)));
    }
    let rooms: Vec<(String, String)> = lock(&shared.rooms).iter().cloned().collect();
    for (namespace, room) in rooms.into_iter().filter(|r| !resumed.rooms.contains(r)) {
        let id = shared.pending.next_id();
        shared
            .pending
            .restore(id, format!("room {room} in {namespace}"));
        let envelope = Envelope::Join(room_change(id, &namespace, &room));
        initial.push_back(Outgoing::once(encode(&envelope)));
    }
    let restored = initial.len();
    let generation = shared
        .generation
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        + 1;
    let (tx, rx) = mpsc::channel(OUTGOING_QUEUE);
    let buffered = shared.outbox.go_up(tx, generation)?;
    let flushed = buffered.len();
    initial.extend(buffered.into_iter().map(Outgoing::replayable));
    *lock(&shared.session) = Some(welcome.session.clone());
    *lock(&shared.last_session) = Some(welcome.session.clone());
    if !welcome.recovery.is_empty() {
        crate::recovery::on_welcome(shared, &welcome.recovery);
    }
    *lock(&shared.limits) = Some(welcome.limits);
    shared.token.welcomed(welcome.user.clone(), welcome.exp);
    shared.set_state(ConnectionState::Connected);
    let url = &shared.config.urls[url_index];
    tracing::info!(
        %url,
        session = %welcome.session,
        user = welcome.user.as_deref().unwrap_or(""),
        node = welcome.node.as_deref().unwrap_or(""),
        restored,
        flushed,
        "connected to herald broker"
    );
    Ok(Live {
        ws,
        rx,
        initial,
        generation,
        heartbeat_ms: welcome.heartbeat_ms,
        url_index,
    })
}

fn encode(envelope: &Envelope) -> Bytes {
    Bytes::from(herald_protocol::encode(envelope))
}

/// The connection task: serves `live`, reconnects when it is lost, and
/// closes everything when the client closes or reconnection gives up.
pub(crate) async fn run(shared: Arc<Shared>, mut live: Live) {
    loop {
        let url_index = live.url_index;
        let Some(lost) = serve(&shared, live).await else {
            break;
        };
        shared.report(ClientEvent::ConnectionLost {
            reason: lost.reason,
        });
        let reconnecting = shared.config.reconnect.is_enabled();
        // Closed for its token: the same token would be refused, only a
        // provider helps. Said with the typed error, reconnecting or not.
        if let Some(error) = lost
            .token
            .filter(|_| !reconnecting || !shared.token.has_provider())
        {
            shared.report(ClientEvent::GaveUp { attempts: 0, error });
            break;
        }
        if !reconnecting {
            break;
        }
        shared.set_state(ConnectionState::Reconnecting);
        match reconnect(&shared, url_index).await {
            Some(next) => live = next,
            None => break,
        }
    }
    finish(&shared);
}

/// Closes for good: nothing more goes out, every waiter is told.
fn finish(shared: &Shared) {
    let dropped = shared.outbox.close();
    if dropped > 0 {
        shared.report(ClientEvent::EmitsDropped { count: dropped });
    }
    shared.pending.fail_all(&Error::Closed);
    // Dropping the handler queues ends the handler tasks once they drain.
    shared.registry.clear();
    *lock(&shared.session) = None;
    shared.set_state(ConnectionState::Closed);
    tracing::debug!("herald client closed");
}

/// Serves one connection. Returns why it was lost, or `None` when the
/// client closed (the close handshake is done by then).
async fn serve(shared: &Arc<Shared>, live: Live) -> Option<Lost> {
    let Live {
        ws,
        mut rx,
        initial,
        generation,
        heartbeat_ms,
        ..
    } = live;
    let heartbeat = (heartbeat_ms > 0).then(|| Duration::from_millis(heartbeat_ms));
    let (mut sink, mut stream) = ws.split();
    let mut batch = initial;
    let lost = {
        let reader = read_loop(shared, &mut stream, heartbeat, generation);
        let writer = write_loop(&mut sink, &mut rx, &mut batch);
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => None,
            lost = reader => Some(lost),
            reason = writer => Some(Lost::new(reason)),
        }
    };
    let Some(lost) = lost else {
        close_gracefully(shared, sink, stream, rx, batch).await;
        return None;
    };

    // From here on emits are buffered; then the queue is closed and what it
    // still holds is collected (a sender that raced the close re-routes to
    // the buffer, behind the frames collected here).
    shared.outbox.go_down();
    rx.close();
    let mut replay: Vec<Bytes> = batch
        .into_iter()
        .filter(|o| o.replay)
        .map(|o| o.frame)
        .collect();
    while let Ok(outgoing) = rx.try_recv() {
        if outgoing.replay {
            replay.push(outgoing.frame);
        }
    }
    let dropped = shared.outbox.requeue_front(replay);
    if dropped > 0 {
        shared.report(ClientEvent::EmitsDropped { count: dropped });
    }
    shared.pending.fail_all(&Error::Disconnected);
    *lock(&shared.session) = None;
    if lost.close_received {
        // Lets tungstenite write its answer to the broker's close frame.
        let _ = tokio::time::timeout(CLOSE_REPLY_GRACE, sink.close()).await;
    }
    Some(lost)
}

/// Writes what is queued, sends a close frame (1000, `client_closed`) and
/// waits briefly for the broker's answer.
async fn close_gracefully(
    shared: &Shared,
    mut sink: SplitSink<WsStream, Message>,
    mut stream: SplitStream<WsStream>,
    mut rx: mpsc::Receiver<Outgoing>,
    mut frames: VecDeque<Outgoing>,
) {
    let dropped = shared.outbox.close();
    if dropped > 0 {
        shared.report(ClientEvent::EmitsDropped { count: dropped });
    }
    rx.close();
    while let Ok(outgoing) = rx.try_recv() {
        frames.push_back(outgoing);
    }
    let count = frames.len();
    let goodbye = async {
        for outgoing in frames {
            sink.feed(Message::Binary(outgoing.frame)).await?;
        }
        sink.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: CloseReason::ClientClosed.as_str().into(),
        })))
        .await?;
        // The broker answers with its own close frame; then the stream ends.
        while let Some(message) = stream.next().await {
            if matches!(message, Ok(Message::Close(_)) | Err(_)) {
                break;
            }
        }
        Ok::<(), WsError>(())
    };
    match tokio::time::timeout(CLOSE_GRACE, goodbye).await {
        Ok(Ok(())) => tracing::debug!(flushed = count, "closed the connection"),
        Ok(Err(error)) => tracing::debug!(%error, "closing the connection failed"),
        Err(_) => tracing::debug!("the broker did not answer the close frame in time"),
    }
}

/// Drains the outgoing queue into the socket: feeds a batch, flushes once.
/// A frame leaves `batch` only once fed, so frames not yet written survive
/// this future being dropped. Returns why writing stopped.
async fn write_loop(
    sink: &mut SplitSink<WsStream, Message>,
    rx: &mut mpsc::Receiver<Outgoing>,
    batch: &mut VecDeque<Outgoing>,
) -> String {
    loop {
        if batch.is_empty() {
            match rx.recv().await {
                Some(outgoing) => batch.push_back(outgoing),
                None => return "outgoing queue closed".to_owned(),
            }
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(outgoing) => batch.push_back(outgoing),
                    Err(_) => break,
                }
            }
        }
        while let Some(outgoing) = batch.front() {
            if let Err(error) = sink.feed(Message::Binary(outgoing.frame.clone())).await {
                return format!("write failed: {error}");
            }
            batch.pop_front();
        }
        if let Err(error) = sink.flush().await {
            return format!("write failed: {error}");
        }
    }
}

/// Heartbeat intervals without a frame after which the connection is
/// dead.
const SILENT_INTERVALS: u32 = 3;
/// The longest heartbeat interval taken from the broker.
const MAX_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);

/// Reads frames until the connection fails, closes or stays silent for
/// [`SILENT_INTERVALS`] of the broker's `heartbeat` intervals.
async fn read_loop(
    shared: &Arc<Shared>,
    stream: &mut SplitStream<WsStream>,
    heartbeat: Option<Duration>,
    generation: u64,
) -> Lost {
    let lost = Lost::new;
    // The reason from a `close` envelope, reported with the close frame.
    let mut announced: Option<(CloseReason, String)> = None;
    // Liveness without a clock read per frame: `heard` is set by every
    // frame, and the timer, once per interval, counts intervals without.
    // (At most a year: the broker's figure is not trusted to be sane.)
    let interval = heartbeat.map_or(MAX_INTERVAL, |h| h.min(MAX_INTERVAL));
    let check = tokio::time::sleep(interval);
    let mut check = std::pin::pin!(check);
    let mut heard = false;
    let mut silent = 0;
    // Reused for every event: the queues of the handlers it runs.
    let mut queues = Vec::new();
    loop {
        let next = tokio::select! {
            biased;
            next = stream.next() => next,
            () = &mut check, if heartbeat.is_some() => {
                silent = if heard { 0 } else { silent + 1 };
                heard = false;
                if silent >= SILENT_INTERVALS {
                    return lost(format!(
                        "nothing received from the broker for {:?} ({SILENT_INTERVALS} heartbeats)",
                        interval.saturating_mul(SILENT_INTERVALS)
                    ));
                }
                check.as_mut().reset(tokio::time::Instant::now() + interval);
                continue;
            }
        };
        heard = true;
        match next {
            None => {
                let mut ended = lost("connection closed".into());
                if let Some((reason, message)) = announced {
                    ended.reason = format!("{reason}: {message}");
                    ended.token = token_error(reason, &message);
                }
                return ended;
            }
            Some(Err(error)) => return lost(format!("read failed: {error}")),
            Some(Ok(Message::Binary(frame))) => {
                handle_frame(shared, frame, generation, &mut announced, &mut queues).await;
            }
            Some(Ok(Message::Close(close))) => {
                let described = describe_close(close.as_ref());
                let mut reason = format!("broker closed the connection: {described}");
                let token = match announced {
                    Some((code, message)) => {
                        reason.push_str(&format!(" ({code}: {message})"));
                        token_error(code, &message)
                    }
                    None => close
                        .as_ref()
                        .and_then(|c| token_error(CloseReason::parse(&c.reason), &described)),
                };
                return Lost {
                    reason,
                    close_received: true,
                    token,
                };
            }
            Some(Ok(Message::Text(_))) => {
                tracing::warn!("ignoring a text frame from the broker (herald uses binary frames)");
            }
            // Pings are answered by tungstenite itself; pongs need nothing.
            Some(Ok(_)) => {}
        }
    }
}

/// Acts on one frame from the broker; `queues` is scratch space.
async fn handle_frame(
    shared: &Arc<Shared>,
    frame: Bytes,
    generation: u64,
    announced: &mut Option<(CloseReason, String)>,
    queues: &mut Vec<Queue>,
) {
    let envelope = match herald_protocol::decode_view(&frame) {
        Ok(Decoded::Event(event)) => {
            // A repeat of an event already seen (by `seq` or `mid`, in a
            // history namespace) is dropped here.
            if shared.positions.accept(&event) {
                deliver(shared, &frame, &event, generation, queues).await;
            }
            return;
        }
        Ok(Decoded::Envelope(envelope)) => envelope,
        Err(error) => {
            tracing::warn!(%error, "ignoring an undecodable frame from the broker");
            return;
        }
    };
    match envelope {
        Envelope::Ok { id } => complete(shared, id, Ok(Answer::Ok)),
        Envelope::Ack { id, receivers } => complete(shared, id, Ok(Answer::Ack(receivers))),
        Envelope::Reply(reply) => complete(
            shared,
            reply.ack,
            Ok(Answer::Reply {
                ok: reply.ok,
                payload: reply.payload,
            }),
        ),
        Envelope::Error(error) => match error.id {
            Some(id) => complete(
                shared,
                id,
                Err(Error::from_broker(error.code, error.message)),
            ),
            None => shared.report(ClientEvent::Broker {
                code: error.code,
                message: error.message,
            }),
        },
        Envelope::Ping { ts } => {
            if let Some(tx) = shared.outbox.sender_for(generation) {
                // A full queue is busy writing, which shows liveness anyway.
                let _ = tx.try_send(Outgoing::once(encode(&Envelope::Pong { ts })));
            }
        }
        Envelope::Pong { .. } => {}
        Envelope::Close { reason, message } => {
            tracing::info!(%reason, %message, "broker is closing the connection");
            *announced = Some((reason, message));
        }
        Envelope::Notice(notice) => match notice.code.as_str() {
            Notice::TOKEN_EXPIRING => crate::token::on_expiring(shared, notice.exp),
            Notice::REVOKED => crate::revoked::on_revoked(shared, notice.revoked),
            code => tracing::debug!(code, message = %notice.message, "ignoring a notice"),
        },
        other => tracing::debug!(kind = other.kind(), "ignoring an unexpected envelope"),
    }
}

/// Hands an answer to its waiter; reports what nobody waits for.
fn complete(shared: &Shared, id: u64, result: Result<Answer, Error>) {
    match shared.pending.complete(id, result) {
        Completion::Delivered | Completion::Restore(_, Ok(_)) => {}
        Completion::Restore(what, Err(error)) => {
            shared.report(ClientEvent::RestoreFailed { what, error });
        }
        Completion::Unknown(Ok(answer)) => {
            // Most likely the caller timed out before the answer came.
            tracing::debug!(id, ?answer, "answer for a call nobody waits for");
        }
        Completion::Unknown(Err(error)) => match error {
            Error::Broker { code, message } => {
                shared.report(ClientEvent::Broker { code, message });
            }
            other => tracing::debug!(id, error = %other, "error for a call nobody waits for"),
        },
    }
}

/// Feeds a delivered event (borrowed from `frame`) to the handlers it
/// runs, waiting for queue space. A request nobody here answers gets an
/// error reply at once.
async fn deliver(
    shared: &Arc<Shared>,
    frame: &Bytes,
    event: &EventView<'_>,
    generation: u64,
    queues: &mut Vec<Queue>,
) {
    match shared.registry.route(event, queues) {
        Route::Handlers => {
            let reply = event.ack.map(|handle| ReplyTo { handle, generation });
            let Some(last) = queues.pop() else {
                tracing::debug!(namespace = %event.namespace, event = %event.event, "no local handler for event");
                return;
            };
            let delivery = Delivery::new(frame, event, reply);
            // A send fails only when the handler was just unsubscribed.
            for queue in queues.drain(..) {
                let _ = queue.send(delivery.clone()).await;
            }
            let _ = last.send(delivery).await;
        }
        Route::NoResponder => {
            let Some(handle) = event.ack else { return };
            let message = format!(
                "no responder for {} in {} on this connection",
                event.event, event.namespace
            );
            let reply = Envelope::Reply(Reply {
                ack: handle,
                ok: false,
                payload: Bytes::from(error_payload(&message)),
                args: false,
            });
            send_reply(shared, generation, herald_protocol::encode(&reply)).await;
        }
    }
}

/// Reconnects with back-off, rotating through the URLs from the one that
/// was lost, asking the token provider (if any) before every attempt.
/// `None` when the client closed or the policy gave up, or when the broker
/// refused the token: at once for a fixed token, after
/// [`UNAUTHORIZED_ATTEMPTS`] refusals in a row with a provider.
async fn reconnect(shared: &Arc<Shared>, lost_url: usize) -> Option<Live> {
    let config = &shared.config;
    let mut backoff = Backoff::new(config.reconnect);
    let mut last_error = Error::Disconnected;
    let mut refused = 0;
    loop {
        let Some(delay) = next_delay(&mut backoff) else {
            shared.report(ClientEvent::GaveUp {
                attempts: backoff.attempts(),
                error: last_error,
            });
            return None;
        };
        let attempt_no = backoff.attempts();
        let url_index = (lost_url + attempt_no as usize - 1) % config.urls.len();
        let url = &config.urls[url_index];
        tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        let resume = crate::recovery::resume_point(shared);
        let resumed = resume.clone();
        let handshake = async {
            let token = token_for_hello(&shared.token, config.connect_timeout).await?;
            attempt(url, config, token, resume).await
        };
        let result = tokio::select! {
            biased;
            () = shared.cancel.cancelled() => return None,
            result = handshake => result,
        };
        match result {
            Ok((ws, welcome)) => {
                let established = Established {
                    ws,
                    welcome,
                    url_index,
                    resumed,
                };
                return activate(shared, established).await.ok();
            }
            Err(error) => {
                if matches!(error, Error::TokenProvider(_)) {
                    tracing::warn!(attempt = attempt_no, %error, "no token to reconnect with");
                } else {
                    tracing::debug!(%url, attempt = attempt_no, %error, "reconnect attempt failed");
                }
                if matches!(error, Error::Unauthorized { .. }) {
                    refused += 1;
                    if !shared.token.has_provider() || refused >= UNAUTHORIZED_ATTEMPTS {
                        shared.report(ClientEvent::GaveUp {
                            attempts: attempt_no,
                            error,
                        });
                        return None;
                    }
                } else {
                    refused = 0;
                }
                last_error = error;
            }
        }
    }
}

/// The next back-off delay (the thread-local RNG is not held across an
/// await).
fn next_delay(backoff: &mut Backoff) -> Option<Duration> {
    backoff.next_delay(&mut rand::rng())
}
