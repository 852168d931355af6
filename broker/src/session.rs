//! One WebSocket session: the hello/welcome handshake, the reader that
//! turns envelopes into router calls (validating names and limits), and
//! the clean-up that removes the connection from every map it joined.
//!
//! Bad input is answered with an `err` envelope and the connection stays
//! open; only a broken handshake, a frame over the size limit or a long run
//! of invalid frames closes it, with a named reason. Envelopes over the
//! message rate (`rate_limits`) are answered `rate_limited` unhandled, and
//! close the connection `rate_limited` when that goes on.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::envelope::{
    Auth as AuthEnvelope, Emit, Limits, Notice, Reply, Resume, RoomChange, Subscription, Welcome,
};
use herald_protocol::{CloseReason, Envelope, ErrorCode, PROTOCOL_VERSION, decode};
use tracing::{debug, warn};

use crate::admission::{self, Denied, EmitNames, RoomChangeNames};
use crate::auth::{self, Expiry, ExpiryClock, Grant};
use crate::conn::Conn;
use crate::frame;
use crate::inbound::{FrameReader, Incoming, ReadError};
use crate::limits::{self, Limited, MessageLimiter, SessionPermit};
use crate::outbox::{Outbox, Profile};
use crate::presence_api;
use crate::resume::Restorer;
use crate::router::{PendingNumber, RoomMove, SubKey};
use crate::socket::Halves;
use crate::state::Shared;
use crate::stats::Stats;
use crate::wire::WireFormat;
use crate::writer::Goodbye;

/// Invalid frames in a row after which the connection is closed.
const MAX_INVALID_IN_A_ROW: u32 = 100;
/// Request timeout when the client gives none.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves one upgraded connection until it closes: the read half is
/// framed here, the write half belongs to the connection's writer task.
pub(crate) async fn run(
    halves: Halves,
    shared: Arc<Shared>,
    peer: SocketAddr,
    _permit: SessionPermit,
    token: Option<Box<str>>,
) {
    let (mut reader, conn) = Conn::open(
        halves,
        &shared,
        shared.max_message_bytes(),
        Goodbye::Envelope,
        WireFormat::Herald,
    );
    let id = conn.outbox.id;
    {
        let mut info = conn.outbox.info();
        info.transport = "websocket";
        info.peer = Some(peer);
    }
    let mut session = Session {
        shared: shared.clone(),
        outbox: conn.outbox.clone(),
        subscriptions: HashSet::new(),
        last_seen: conn.last_seen.clone(),
        greeted: false,
        invalid_in_a_row: 0,
        was_responder: false,
        back_pressure: None,
        pending_resume: None,
        rate: shared.limits.message_limiter(),
        header_token: token,
        grant: None,
        expiry: None,
    };
    debug!(conn = id.0, %peer, "connection opened");
    let reason = session.read_loop(&mut reader).await;
    let reason = conn.finish(&shared, reason).await;
    session.clean_up();
    if session.greeted {
        shared
            .router
            .observer()
            .change(&crate::admin::observe::Change::Disconnected {
                conn: &session.outbox,
                namespace: "/",
                reason: reason.as_str(),
            });
    }
    shared.stats.closed(reason);
    log_close(
        id.0,
        peer,
        reason,
        Grant::user_label(session.grant.as_deref()),
    );
}

struct Session {
    shared: Arc<Shared>,
    outbox: Outbox,
    /// Reverse index: what to remove from the router on close.
    subscriptions: HashSet<SubKey>,
    last_seen: Arc<AtomicU64>,
    greeted: bool,
    invalid_in_a_row: u32,
    /// Set once the connection subscribes as a responder: on close, the
    /// requests still waiting on it are failed at once.
    was_responder: bool,
    /// A receiver of this connection's last emit whose queue is past its
    /// high-water mark: the reader waits for it before reading on.
    back_pressure: Option<Outbox>,
    /// A `hello.resume` waiting for the history mirror to catch up (in a
    /// cluster whose backplane keeps history); read before the next frame.
    pending_resume: Option<(Resume, Welcome)>,
    /// The message rate's bucket (`rate_limits.messages_per_second`).
    rate: Option<MessageLimiter>,
    /// The `Authorization: Bearer` token of the upgrade, until `hello`.
    header_token: Option<Box<str>>,
    /// Who the connection is and what it may do (`auth.mode = "jwt"`);
    /// none with `"none"`. Boxed: one pointer in every session.
    grant: Option<Box<Grant>>,
    /// The token's expiry clock, when it has an `exp`.
    expiry: Option<Box<ExpiryClock>>,
}

/// A refusal: answered with `err`, and fatal ones close the connection.
struct Refusal {
    id: Option<u64>,
    code: ErrorCode,
    message: String,
    close: Option<CloseReason>,
}

impl Refusal {
    fn new(id: Option<u64>, code: ErrorCode, message: impl Into<String>) -> Refusal {
        Refusal {
            id,
            code,
            message: message.into(),
            close: None,
        }
    }

    fn fatal(mut self) -> Refusal {
        self.close = Some(CloseReason::ProtocolError);
        self
    }

    fn denied(id: Option<u64>, denied: Denied) -> Refusal {
        Refusal::new(id, denied.code, denied.message)
    }

    fn rate_limited(id: Option<u64>, limited: Limited) -> Refusal {
        Refusal {
            close: limited.close.then_some(CloseReason::RateLimited),
            ..Refusal::new(id, ErrorCode::RateLimited, limited.message)
        }
    }
}

type Handled = Result<(), Refusal>;

impl Session {
    async fn read_loop(&mut self, reader: &mut FrameReader) -> CloseReason {
        // Both made once, not per frame: building them registers a waiter
        // and a timer, which would cost more than routing a small event.
        let close = self.outbox.close.clone();
        let cancelled = close.cancelled();
        tokio::pin!(cancelled);
        let hello_timeout = tokio::time::sleep(self.shared.settings.server.handshake_timeout);
        tokio::pin!(hello_timeout);
        loop {
            // Messages already read are handled straight away; the close
            // token and the clock are consulted when the reader must wait
            // for the socket (at least once per read of at most 16 KiB).
            let message = match reader.next_buffered() {
                Ok(None) => tokio::select! {
                    biased;
                    () = &mut cancelled => return self.outbox.close_reason(),
                    () = &mut hello_timeout, if !self.greeted => {
                        return CloseReason::HandshakeTimeout;
                    }
                    expiry = auth::next_expiry(&mut self.expiry), if self.expiry.is_some() => {
                        if let Some(reason) = self.on_expiry(expiry) {
                            return reason;
                        }
                        continue;
                    }
                    message = reader.next() => message,
                },
                buffered => buffered,
            };
            if reader.heard_from_peer() {
                self.last_seen.store(self.shared.now_ms(), Relaxed);
            }
            let result = match message {
                Ok(None) => return CloseReason::ClientClosed,
                Ok(Some(Incoming::Close(code))) => {
                    self.outbox.peer_closed(code);
                    return CloseReason::ClientClosed;
                }
                Err(error) => return read_error_reason(&error),
                Ok(Some(Incoming::Binary(frame))) => {
                    Stats::add(&self.shared.stats.bytes_received, frame.len() as u64);
                    self.on_frame(frame)
                }
                Ok(Some(Incoming::Text(_))) => Err(Refusal::new(
                    None,
                    ErrorCode::TextFrame,
                    "text frames are not supported: send one MessagePack envelope per binary frame",
                )),
                Ok(Some(Incoming::Ping(payload))) => {
                    self.outbox.answer(&frame::pong(&payload));
                    Ok(())
                }
                Ok(Some(Incoming::Pong)) => Ok(()),
            };
            match result {
                Ok(()) => self.invalid_in_a_row = 0,
                Err(refusal) => {
                    if let Some(reason) = self.refuse(refusal) {
                        return reason;
                    }
                }
            }
            if let Some((resume, welcome)) = self.pending_resume.take() {
                for (namespace, since) in resume
                    .offsets
                    .iter()
                    .take(self.shared.settings.limits.max_subscriptions_per_connection)
                {
                    crate::mirror::catch_up(&self.shared, namespace, *since).await;
                }
                self.resume(&resume, welcome);
            }
            // A client that keeps the reader busy still meets its expiry.
            if self.expiry.as_ref().is_some_and(|clock| clock.is_due()) {
                let expiry = auth::next_expiry(&mut self.expiry).await;
                if let Some(reason) = self.on_expiry(expiry) {
                    return reason;
                }
            }
            // Back-pressure: a receiver of the last emit is past its
            // high-water mark, so stop reading until it drained (bounded).
            if let Some(receiver) = self.back_pressure.take() {
                receiver.wait_drained().await;
            }
            // Give way regularly: buffered messages are handled without
            // touching the socket, which alone would never yield, and the
            // writers of the receivers must run too.
            tokio::task::consume_budget().await;
        }
    }

    /// Answers a refusal; returns the close reason when it is fatal. Only
    /// malformed or invalid frames count towards the run that closes the
    /// connection (PROTOCOL.md §4.5); a refused valid request (no
    /// responders, a limit, ...) is an answer, and ends the run like any
    /// valid frame.
    fn refuse(&mut self, refusal: Refusal) -> Option<CloseReason> {
        Stats::add(&self.shared.stats.bad_frames, 1);
        Stats::add(&self.shared.stats.errors_sent, 1);
        debug!(conn = self.outbox.id.0, code = refusal.code.as_str(), message = %refusal.message, "refused");
        self.send(&Envelope::error(refusal.id, refusal.code, refusal.message));
        if refusal.close.is_some() {
            return refusal.close;
        }
        if !refusal.code.is_invalid_frame() {
            self.invalid_in_a_row = 0;
            return None;
        }
        self.invalid_in_a_row += 1;
        (self.invalid_in_a_row >= MAX_INVALID_IN_A_ROW).then_some(CloseReason::ProtocolError)
    }

    fn send(&self, envelope: &Envelope) {
        self.outbox.answer(&frame::envelope(envelope));
    }

    fn on_frame(&mut self, frame: Bytes) -> Handled {
        let envelope = decode(&frame).map_err(|e| {
            Stats::add(&self.shared.stats.decode_errors, 1);
            let refusal = Refusal::new(None, e.code(), e.to_string());
            if self.greeted {
                refusal
            } else {
                refusal.fatal()
            }
        })?;
        if !self.greeted {
            return self.on_hello(envelope);
        }
        if let Some(limiter) = self.rate.as_mut() {
            self.shared
                .limits
                .message(limiter, &self.shared.stats)
                .map_err(|limited| Refusal::rate_limited(limits::answer_id(&envelope), limited))?;
        }
        match envelope {
            Envelope::Subscribe(sub) => self.on_subscribe(sub),
            Envelope::Unsubscribe(sub) => self.on_unsubscribe(sub),
            Envelope::Join(change) => self.on_room_change(change, true),
            Envelope::Leave(change) => self.on_room_change(change, false),
            Envelope::Emit(emit) => self.on_emit(emit),
            Envelope::Reply(reply) => self.on_reply(reply),
            Envelope::Ping { ts } => {
                self.send(&Envelope::Pong { ts });
                Ok(())
            }
            Envelope::Pong { .. } => Ok(()),
            Envelope::Auth(auth) => self.on_auth(auth),
            Envelope::Close { .. } => {
                self.outbox.close_with(CloseReason::ClientClosed);
                Ok(())
            }
            Envelope::Hello(_) => Err(Refusal::new(
                None,
                ErrorCode::HelloRequired,
                "hello was already received on this connection",
            )),
            other => Err(Refusal::new(
                None,
                ErrorCode::InvalidEnvelope,
                format!(
                    "{:?} envelopes are sent by brokers, not to them",
                    other.kind()
                ),
            )),
        }
    }

    fn on_hello(&mut self, envelope: Envelope) -> Handled {
        let Envelope::Hello(hello) = envelope else {
            return Err(Refusal::new(
                None,
                ErrorCode::HelloRequired,
                format!(
                    "the first envelope must be hello, got {:?}",
                    envelope.kind()
                ),
            )
            .fatal());
        };
        if hello.version != PROTOCOL_VERSION {
            return Err(Refusal::new(
                None,
                ErrorCode::UnsupportedVersion,
                format!(
                    "protocol version {} is not supported; this broker speaks {PROTOCOL_VERSION}",
                    hello.version
                ),
            )
            .fatal());
        }
        let token = hello.token.as_deref().or(self.header_token.as_deref());
        let grant = auth::authenticate(&self.shared, token).map_err(|failure| {
            debug!(
                conn = self.outbox.id.0,
                reason = failure.as_str(),
                "token refused"
            );
            let mut refusal = Refusal::new(None, ErrorCode::Unauthorized, auth::UNAUTHORIZED);
            refusal.close = Some(CloseReason::Unauthorized);
            refusal
        })?;
        self.header_token = None;
        let (user, exp) = grant.as_ref().map_or((None, None), |g| {
            (g.user.as_deref().map(str::to_owned), g.exp)
        });
        self.set_grant(grant);
        let user_id = self.grant.as_deref().and_then(|g| g.user.clone());
        let profile = Profile::new(user_id, hello.client.as_deref(), "native");
        self.outbox.set_profile(profile);
        let settings = &self.shared.settings;
        let limits = Limits {
            max_payload: settings.limits.max_payload_bytes as u64,
            max_subscriptions: settings.limits.max_subscriptions_per_connection as u64,
            max_rooms: settings.limits.max_rooms_per_connection as u64,
            max_pending_requests: settings.limits.max_pending_requests_per_connection as u64,
        };
        let welcome = Welcome {
            version: PROTOCOL_VERSION,
            session: self.outbox.session.to_string(),
            heartbeat_ms: u64::try_from(settings.server.heartbeat_interval.as_millis())
                .unwrap_or(u64::MAX),
            limits,
            node: Some(self.shared.node.clone()),
            user,
            exp,
            recovery: BTreeMap::new(),
        };
        match &hello.resume {
            None => self.send(&Envelope::Welcome(welcome)),
            Some(resume) if self.shared.mirror.is_some() => {
                self.pending_resume = Some((resume.clone(), welcome));
            }
            Some(resume) => self.resume(resume, welcome),
        }
        self.greeted = true;
        {
            let mut info = self.outbox.info();
            info.client = hello.client.as_deref().map(Box::from);
            info.user = self
                .grant
                .as_deref()
                .and_then(|g| g.user.as_deref())
                .map(Box::from);
        }
        self.shared.router.observer().connected(&self.outbox);
        let user = Grant::user_label(self.grant.as_deref());
        debug!(conn = self.outbox.id.0, client = ?hello.client, user, "hello");
        Ok(())
    }

    /// `hello.resume`: the welcome (with what was recovered), the replays,
    /// then an `err` for each subscription or room that was refused.
    fn resume(&mut self, resume: &Resume, welcome: Welcome) {
        let outbox = self.outbox.clone();
        let mut welcome = Some(welcome);
        let mut announce = |recovery| {
            if let Some(welcome) = welcome.take() {
                let welcome = Welcome {
                    recovery,
                    ..welcome
                };
                outbox.answer(&frame::envelope(&Envelope::Welcome(welcome)));
            }
        };
        let restorer = Restorer {
            shared: &self.shared,
            outbox: &self.outbox,
            grant: self.grant.as_deref(),
            subscriptions: &mut self.subscriptions,
        };
        let refused = crate::resume::resume(restorer, resume, &mut announce);
        self.was_responder |= self.subscriptions.iter().any(|key| key.responder);
        for denied in refused {
            self.send(&Envelope::error(None, denied.code, denied.message));
        }
    }

    /// A step of the expiry clock: the notice, or the close reason.
    fn on_expiry(&mut self, expiry: Expiry) -> Option<CloseReason> {
        match expiry {
            Expiry::Expiring(exp) => {
                self.send(&expiring_notice(exp));
                None
            }
            Expiry::Expired => {
                Stats::add(&self.shared.stats.auth.expired, 1);
                Some(CloseReason::TokenExpired)
            }
        }
    }

    /// Takes `grant` as the connection's, with its expiry clock.
    fn set_grant(&mut self, grant: Option<Grant>) {
        (self.grant, self.expiry) = auth::install(&self.shared, grant);
    }

    /// `auth`: a new token for this connection. Refused (the old one
    /// kept) when invalid or naming another user; accepted, it applies at
    /// once: subscriptions and rooms it no longer allows are removed and
    /// listed in a `revoked` notice.
    fn on_auth(&mut self, request: AuthEnvelope) -> Handled {
        let grant = auth::refresh(&self.shared, self.grant.as_deref(), &request.token).map_err(
            |failure| {
                debug!(
                    conn = self.outbox.id.0,
                    reason = failure.as_str(),
                    "refresh refused"
                );
                Refusal::new(request.id, ErrorCode::Unauthorized, auth::UNAUTHORIZED)
            },
        )?;
        self.set_grant(grant);
        // Presence lists the new token's user (from its next change on).
        if let Some(profile) = self.outbox.profile() {
            let user = self.grant.as_deref().and_then(|g| g.user.clone());
            self.outbox.set_profile(Profile {
                user,
                ..(*profile).clone()
            });
        }
        let mut revoked = Vec::new();
        if let Some(grant) = self.grant.as_deref() {
            let refused: Vec<SubKey> = self
                .subscriptions
                .iter()
                .filter(|key| !auth::allows_subscription(grant, key))
                .cloned()
                .collect();
            for key in refused {
                self.subscriptions.remove(&key);
                self.shared.router.unsubscribe(&self.outbox, &key);
                revoked.push(auth::revoked_subscription(&key));
            }
            revoked.extend(auth::revoke_rooms(&self.shared, &self.outbox, grant));
        }
        self.ok(request.id);
        if !revoked.is_empty() {
            self.send(&Envelope::Notice(Notice {
                code: Notice::REVOKED.into(),
                message: auth::revoked_message(revoked.len()),
                exp: None,
                revoked,
            }));
        }
        Ok(())
    }

    fn sub_key(sub: &Subscription) -> Result<SubKey, Refusal> {
        admission::subscription(
            &sub.namespace,
            &sub.event,
            sub.group.as_deref(),
            sub.responder,
        )
        .map_err(|denied| Refusal::denied(sub.id, denied))
    }

    fn ok(&self, id: Option<u64>) {
        if let Some(id) = id {
            self.send(&Envelope::Ok { id });
        }
    }

    fn on_subscribe(&mut self, sub: Subscription) -> Handled {
        let key = Self::sub_key(&sub)?;
        admission::subscribe(&self.shared, self.grant.as_deref(), &key)
            .map_err(|denied| Refusal::denied(sub.id, denied))?;
        if !self.subscriptions.contains(&key) {
            let max = self.shared.settings.limits.max_subscriptions_per_connection;
            if self.subscriptions.len() >= max {
                return Err(Refusal::new(
                    sub.id,
                    ErrorCode::TooManySubscriptions,
                    format!(
                        "this connection already has {max} subscriptions \
                         (limits.max_subscriptions_per_connection)"
                    ),
                ));
            }
            self.shared.router.subscribe(&self.outbox, &key);
            self.was_responder |= key.responder;
            self.subscriptions.insert(key);
        }
        self.ok(sub.id);
        Ok(())
    }

    fn on_unsubscribe(&mut self, sub: Subscription) -> Handled {
        let key = Self::sub_key(&sub)?;
        if self.subscriptions.remove(&key) {
            self.shared.router.unsubscribe(&self.outbox, &key);
        }
        self.ok(sub.id);
        Ok(())
    }

    /// A join or leave: of this connection, or (a service power) of the
    /// connection whose session id it names.
    fn on_room_change(&mut self, change: RoomChange, join: bool) -> Handled {
        let refuse = |denied| Refusal::denied(change.id, denied);
        let shared = &self.shared;
        let names = RoomChangeNames {
            namespace: &change.namespace,
            room: &change.room,
            session: change.sid.as_deref(),
            join,
        };
        admission::room_change(shared, &self.outbox, self.grant.as_deref(), &names)
            .map_err(refuse)?;
        let max_rooms = shared.settings.limits.max_rooms_per_connection;
        let result = match change.sid.as_deref() {
            Some(session) if session != &*self.outbox.session => {
                let change = RoomMove {
                    namespace: &change.namespace,
                    room: &change.room,
                    session,
                    join,
                };
                shared.router.move_session(&change, max_rooms)
            }
            _ if join => {
                shared
                    .router
                    .join(&self.outbox, &change.namespace, &change.room, max_rooms)
            }
            _ => {
                shared
                    .router
                    .leave(&self.outbox, &change.namespace, &change.room);
                Ok(())
            }
        };
        result.map_err(|e| refuse(e.into()))?;
        self.ok(change.id);
        Ok(())
    }

    fn check_payload(&self, id: Option<u64>, payload: &Bytes) -> Handled {
        let max = self.shared.settings.limits.max_payload_bytes;
        if payload.len() > max {
            return Err(Refusal::new(
                id,
                ErrorCode::PayloadTooLarge,
                format!(
                    "payload of {} bytes exceeds limits.max_payload_bytes = {max}",
                    payload.len()
                ),
            ));
        }
        Ok(())
    }

    fn on_emit(&mut self, emit: Emit) -> Handled {
        let answer_id = emit.ack.or(emit.id);
        if let (presence_api::LIST_EVENT, Some(ack)) = (emit.event.as_str(), emit.ack) {
            // Answered by the broker itself (PROTOCOL.md §6.7).
            let ask = (emit.namespace.as_str(), ack, &emit.payload[..]);
            return presence_api::request(&self.shared, &self.outbox, self.grant.as_deref(), ask)
                .map_err(|denied| Refusal::denied(Some(ack), denied));
        }
        if let (crate::history_http::READ_EVENT, Some(ack)) = (emit.event.as_str(), emit.ack) {
            // Answered by the broker itself (PROTOCOL.md §25.4).
            let ask = (emit.namespace.as_str(), ack, &emit.payload[..]);
            return crate::history_http::request(
                &self.shared,
                &self.outbox,
                self.grant.as_deref(),
                ask,
            )
            .map_err(|denied| Refusal::denied(Some(ack), denied));
        }
        let names = EmitNames {
            namespace: &emit.namespace,
            event: &emit.event,
            room: emit.room.as_deref(),
            except: emit.except.as_deref(),
            payload: &emit.payload,
        };
        admission::emit(
            &self.shared,
            Some(&self.outbox),
            self.grant.as_deref_mut(),
            &names,
        )
        .map_err(|denied| Refusal::denied(answer_id, denied))?;
        crate::history::check_mid(emit.message_id.as_deref())
            .map_err(|message| Refusal::new(answer_id, ErrorCode::InvalidEnvelope, message))?;
        let Some(ack) = emit.ack else {
            let published = self.shared.router.publish(Some(&self.outbox), &emit);
            self.back_pressure = published.back_pressure;
            if let Some(pending) = published.pending {
                // Numbered by the cluster's history: the ack waits for it.
                if let Some(id) = emit.id {
                    self.answer_when_numbered(id, pending);
                }
                return Ok(());
            }
            if let Some(id) = emit.id {
                self.send(&Envelope::Ack {
                    id,
                    receivers: published.receivers,
                });
            }
            return Ok(());
        };
        if emit.id.is_some() {
            return Err(Refusal::new(
                Some(ack),
                ErrorCode::InvalidEnvelope,
                "an emit carries either id (broker ack) or ack (request), not both",
            ));
        }
        let limits = &self.shared.settings.limits;
        if self.outbox.pending_requests.load(Relaxed) >= limits.max_pending_requests_per_connection
        {
            return Err(Refusal::new(
                Some(ack),
                ErrorCode::TooManyRequests,
                format!(
                    "{} requests already in flight (limits.max_pending_requests_per_connection)",
                    limits.max_pending_requests_per_connection
                ),
            ));
        }
        let timeout = emit
            .timeout_ms
            .map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_millis)
            .min(limits.max_request_timeout);
        self.shared
            .router
            .request(&self.outbox, &emit, ack, timeout)
            .map_err(|e| Refusal::new(Some(ack), e.code, e.message))
    }

    /// Acks an emit once the cluster's history numbered it, or answers
    /// `err` (`internal`) when Redis could not take it: the publisher
    /// retries with the same `mid`, which Redis de-duplicates.
    fn answer_when_numbered(&self, id: u64, pending: PendingNumber) {
        let outbox = self.outbox.clone();
        self.shared.tasks.spawn(async move {
            let envelope = match pending.await {
                Ok(Ok(_)) => Envelope::Ack { id, receivers: 0 },
                Ok(Err(message)) => Envelope::error(Some(id), ErrorCode::Internal, message),
                Err(_) => Envelope::error(
                    Some(id),
                    ErrorCode::Internal,
                    "the cluster backplane stopped before numbering the event",
                ),
            };
            outbox.answer(&frame::envelope(&envelope));
        });
    }

    fn on_reply(&mut self, reply: Reply) -> Handled {
        self.check_payload(Some(reply.ack), &reply.payload)?;
        let ack = reply.ack;
        self.shared
            .router
            .reply(self.outbox.id, reply)
            .map_err(|e| Refusal::new(Some(ack), e.code, e.message))
    }

    /// Removes the connection from every map it is in: cost in proportion
    /// to what this connection had, not to the broker's size.
    fn clean_up(&mut self) {
        for key in self.subscriptions.drain() {
            self.shared.router.unsubscribe(&self.outbox, &key);
        }
        if self.was_responder {
            self.shared.router.responder_gone(self.outbox.id);
        }
        self.shared.router.leave_rooms(&self.outbox, None);
    }
}

/// Ordinary closes are debug noise at scale; the broker's own decisions
/// are worth an operator's attention.
fn log_close(conn: u64, peer: SocketAddr, reason: CloseReason, user: &str) {
    let reason_text = reason.as_str();
    match reason {
        CloseReason::ClientClosed | CloseReason::TransportError | CloseReason::ShuttingDown => {
            debug!(conn, %peer, user, reason = reason_text, "connection closed");
        }
        _ => warn!(conn, %peer, user, reason = reason_text, "connection closed by the broker"),
    }
}

/// The `token_expiring` notice for a token expiring at `exp`.
fn expiring_notice(exp: u64) -> Envelope {
    Envelope::Notice(Notice {
        code: Notice::TOKEN_EXPIRING.into(),
        message: auth::expiring_message(exp),
        exp: Some(exp),
        revoked: Vec::new(),
    })
}

/// The close reason for a read that failed (the echo endpoint's too).
pub(crate) fn read_error_reason(error: &ReadError) -> CloseReason {
    match error {
        ReadError::TooBig { .. } => CloseReason::MessageTooBig,
        ReadError::Protocol(_) => CloseReason::ProtocolError,
        ReadError::InvalidUtf8(_) => CloseReason::InvalidUtf8,
        ReadError::Timeout(_) => CloseReason::MessageTimeout,
        ReadError::Io(_) => CloseReason::TransportError,
    }
}
