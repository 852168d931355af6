//! One Socket.IO connection (an Engine.IO session, over either transport):
//! the namespaces it connected to, and its packets turned into router
//! calls through the same admission checks as a native session.
//!
//! - CONNECT to a namespace subscribes the socket to `>` there (what is
//!   emitted to its namespace, its rooms and itself reaches it), answers
//!   `0/ns,{"sid"}` with its session id and publishes `$connection`.
//! - EVENT is a Herald emit that does not come back to the sender; with
//!   an ack id it is a request to one responder, whose reply becomes the
//!   ack. Events named `$subscribe`, `$unsubscribe`, `$join` and `$leave`
//!   are the client's own commands, acked `{"ok":true}` or
//!   `{"ok":false,"error":{…}}`.
//! - DISCONNECT leaves the namespace (`$disconnect`, reason `client
//!   namespace disconnect`); with no namespace left the session closes.
//! - A packet that does not parse closes the session, as the reference
//!   server does; so does no CONNECT within `socketio.connect_timeout`.
//! - A packet over the message rate (`rate_limits`) is not handled and is
//!   answered with code `rate_limited`; the session closes `rate_limited`
//!   when that goes on.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::envelope::{Emit, Notice};
use herald_protocol::names::validate_namespace;
use herald_protocol::socketio::assemble::{Assembled, Assembler};
use herald_protocol::socketio::encode::{write_connect, write_connect_error, write_head};
use herald_protocol::socketio::json::{Json, write_str};
use herald_protocol::socketio::packet::PacketType;
use herald_protocol::socketio::packet::{Body, PacketLimits};
use herald_protocol::{CloseReason, ErrorCode};
use tracing::debug;

use super::format;
use super::lifecycle;
use crate::admin::observe::Change;
use crate::admin::sio as sio_admin;
use crate::admission::{self, Denied, EmitNames, RoomChangeNames};
use crate::auth::{self, Expiry, ExpiryClock, Grant};
use crate::engineio::packet::message_item;
use crate::engineio::{EngineConn, Message, Transport};
use crate::history::{HistoryLog, Wanted};
use crate::limits::{Limited, MessageLimiter};
use crate::outbox::{Outbox, Profile};
use crate::resume::{Filter, replay_item};
use crate::router::SubKey;
use crate::state::Shared;
use crate::stats::Stats;
use crate::wire::Answer;

/// Request timeout of an event with an ack (Socket.IO clients give none).
const ACK_TIMEOUT: Duration = Duration::from_secs(30);

/// A socket recovering missed events (its CONNECT had a `pid` and an
/// `offset`).
#[derive(Debug)]
struct Recovering {
    namespace: String,
    keys: Vec<SubKey>,
    pid: String,
    since: u64,
    epoch: String,
}

/// Serves one Engine.IO session speaking Socket.IO until it closes.
pub(crate) async fn serve(mut conn: EngineConn, shared: Arc<Shared>) {
    let outbox = conn.outbox.clone();
    let mut session = Session {
        shared: shared.clone(),
        outbox: outbox.clone(),
        transport: conn.transport(),
        sockets: Sockets::default(),
        assembler: Assembler::new(PacketLimits::default()),
        back_pressure: None,
        pending_recovery: None,
        rate: shared.limits.message_limiter(),
        header_token: conn.token.take(),
        grant: None,
        expiry: None,
        admin: None,
    };
    session.note_transport();
    debug!(conn = outbox.id.0, "socket.io session opened");
    let reason = session.read_loop(&mut conn).await;
    // Counts the close, and takes the session id out of the router.
    // Boxed: it runs once, so its state need not enlarge every idle
    // session's task.
    let reason = Box::pin(conn.finish(reason)).await;
    session.clean_up(lifecycle::reason_of(reason));
    debug!(
        conn = outbox.id.0,
        user = Grant::user_label(session.grant.as_deref()),
        reason = reason.as_str(),
        "socket.io session closed"
    );
}

/// The namespaces a connection is connected to: a few at most, so a
/// vector (smaller than a map in every idle session).
#[derive(Default)]
struct Sockets(Vec<(Box<str>, Socket)>);

impl Sockets {
    fn contains_key(&self, namespace: &str) -> bool {
        self.0.iter().any(|(ns, _)| **ns == *namespace)
    }

    fn get_mut(&mut self, namespace: &str) -> Option<&mut Socket> {
        self.0
            .iter_mut()
            .find(|(ns, _)| **ns == *namespace)
            .map(|(_, socket)| socket)
    }

    fn insert(&mut self, namespace: &str, socket: Socket) {
        self.0.reserve_exact(1);
        self.0.push((namespace.into(), socket));
    }

    fn remove(&mut self, namespace: &str) -> Option<Socket> {
        let at = self.0.iter().position(|(ns, _)| **ns == *namespace)?;
        Some(self.0.swap_remove(at).1)
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn values(&self) -> impl Iterator<Item = &Socket> {
        self.0.iter().map(|(_, socket)| socket)
    }

    fn drain(&mut self) -> std::vec::Drain<'_, (Box<str>, Socket)> {
        self.0.drain(..)
    }
}

/// One namespace this connection is connected to.
#[derive(Default)]
struct Socket {
    /// Reverse index: what to remove from the router when it leaves.
    /// A vector: nearly always the one `>` (a set would take a table).
    subscriptions: Vec<SubKey>,
}

struct Session {
    shared: Arc<Shared>,
    outbox: Outbox,
    /// `websocket` or `polling`: the transport now (what a CONNECT reports).
    transport: Transport,
    sockets: Sockets,
    assembler: Assembler,
    back_pressure: Option<Outbox>,
    /// A connection state recovery waiting for the cluster's history
    /// mirror to catch up; run before the next packet is read.
    pending_recovery: Option<Recovering>,
    /// The message rate's bucket (`rate_limits.messages_per_second`).
    rate: Option<MessageLimiter>,
    /// The handshake's `Authorization: Bearer` token, until a CONNECT.
    header_token: Option<Box<str>>,
    /// Who the connection is and what it may do (`auth.mode = "jwt"`,
    /// set by the first CONNECT); none with `"none"`.
    grant: Option<Box<Grant>>,
    /// The token's expiry clock, when it has an `exp`.
    expiry: Option<Box<ExpiryClock>>,
    /// Its socket in the admin namespace (`admin.socketio_namespace`),
    /// speaking the Socket.IO Admin UI protocol.
    admin: Option<Arc<sio_admin::AdminSocket>>,
}

/// What handling one packet asks of the read loop.
enum Next {
    Read,
    Close(CloseReason),
}

impl Session {
    async fn read_loop(&mut self, conn: &mut EngineConn) -> CloseReason {
        // Boxed and dropped once a namespace is connected, so a connected
        // socket holds no timer for it. The close token is watched by
        // `EngineConn::recv`, which ends the session with its reason.
        let mut connect_deadline = Some(Box::pin(tokio::time::sleep(
            self.shared.settings.socketio.connect_timeout,
        )));
        let mut connected_once = false;
        loop {
            let message = match connect_deadline.as_mut() {
                Some(deadline) => tokio::select! {
                    biased;
                    () = deadline => return CloseReason::ConnectTimeout,
                    message = conn.recv() => message,
                },
                None if self.expiry.is_some() => tokio::select! {
                    expiry = auth::next_expiry(&mut self.expiry) => {
                        match expiry {
                            Expiry::Expiring(exp) => self.notify_all(&Notice {
                                code: Notice::TOKEN_EXPIRING.into(),
                                message: auth::expiring_message(exp),
                                exp: Some(exp),
                                revoked: Vec::new(),
                            }),
                            Expiry::Expired => {
                                Stats::add(&self.shared.stats.auth.expired, 1);
                                return CloseReason::TokenExpired;
                            }
                        }
                        continue;
                    }
                    message = conn.recv() => message,
                },
                None => conn.recv().await,
            };
            let next = match message {
                // The session moved to the WebSocket an upgrade handed
                // over (not an end): read on, and namespaces connected
                // from now on report the new transport.
                Ok(None) => {
                    self.transport = conn.transport();
                    self.note_transport();
                    self.update_profile();
                    continue;
                }
                Err(reason) => return reason,
                Ok(Some(Message::Text(text))) => self.on_text(&text),
                Ok(Some(Message::Binary(data))) => self.on_binary(data),
            };
            if let Next::Close(reason) = next {
                return reason;
            }
            let connected = !self.sockets.is_empty() || self.admin.is_some();
            if connected {
                connected_once = true;
                connect_deadline = None;
            }
            if connected_once && !connected {
                // The client left its last namespace.
                return CloseReason::ClientClosed;
            }
            if let Some(recovering) = self.pending_recovery.take() {
                let (namespace, since) = (recovering.namespace.clone(), recovering.since);
                Box::pin(crate::mirror::catch_up(&self.shared, &namespace, since)).await;
                if let Some(history) = self.shared.router.history().cloned() {
                    self.recover_socket(history.as_ref(), recovering);
                }
            }
            if let Some(receiver) = self.back_pressure.take() {
                // Boxed: it is rare, and unboxed its state would make every
                // idle session's task larger.
                Box::pin(receiver.wait_drained()).await;
            }
            tokio::task::consume_budget().await;
        }
    }

    /// Records the transport for the admin console.
    fn note_transport(&self) {
        self.outbox.info().transport = match self.transport.as_str() {
            "polling" => "socketio-polling",
            _ => "socketio-websocket",
        };
    }

    /// A packet in the admin namespace (the Socket.IO Admin UI protocol).
    fn on_admin(&mut self, namespace: &str, body: &Body) {
        match body {
            Body::Connect { auth } if self.admin.is_none() => {
                self.admin = Some(sio_admin::connect(
                    &self.shared,
                    &self.outbox,
                    namespace,
                    auth.as_ref(),
                ));
            }
            Body::Disconnect => {
                if let Some(admin) = self.admin.take() {
                    sio_admin::disconnect(&admin);
                }
            }
            Body::Event { name, args, .. } => {
                if let Some(admin) = &self.admin {
                    sio_admin::command(&self.shared, admin, name, args);
                }
            }
            _ => {}
        }
    }

    fn on_text(&mut self, text: &Bytes) -> Next {
        let Ok(text) = std::str::from_utf8(text) else {
            return Next::Close(CloseReason::InvalidUtf8);
        };
        match self.assembler.text(text) {
            Ok(Some(packet)) => self.on_packet(packet),
            Ok(None) => Next::Read,
            Err(error) => self.parse_error(&error),
        }
    }

    fn on_binary(&mut self, data: Bytes) -> Next {
        match self.assembler.binary(data) {
            Ok(Some(packet)) => self.on_packet(packet),
            Ok(None) => Next::Read,
            Err(error) => self.parse_error(&error),
        }
    }

    fn parse_error(&self, error: &dyn std::fmt::Display) -> Next {
        Stats::add(&self.shared.stats.bad_frames, 1);
        debug!(conn = self.outbox.id.0, %error, "invalid socket.io packet");
        Next::Close(CloseReason::ProtocolError)
    }

    fn on_packet(&mut self, assembled: Assembled) -> Next {
        if let Some(limiter) = self.rate.as_mut() {
            if let Err(limited) = self.shared.limits.message(limiter, &self.shared.stats) {
                return self.rate_limited(&assembled, limited);
            }
        }
        let namespace = assembled.packet.namespace.clone();
        if sio_admin::is_admin_namespace(&self.shared, &namespace) {
            self.on_admin(&namespace, &assembled.packet.body);
            return Next::Read;
        }
        match &assembled.packet.body {
            Body::Connect { auth } => {
                self.on_connect(&namespace, auth.as_ref());
                Next::Read
            }
            Body::Disconnect => {
                self.leave_namespace(&namespace, "client namespace disconnect");
                Next::Read
            }
            // Packets for a namespace the socket is not in are ignored, as
            // the reference server does (they race a disconnect).
            _ if !self.sockets.contains_key(&namespace) => Next::Read,
            Body::Event { name, args, .. } => {
                let id = assembled.packet.id;
                if name.starts_with('$') {
                    self.on_command(&namespace, id, name, args);
                } else {
                    self.on_event(&namespace, id, name, &assembled);
                }
                Next::Read
            }
            // The broker never asks a client for an ack.
            Body::Ack { .. } => Next::Read,
        }
    }

    /// A packet over the message rate: not handled, but answered as a
    /// refusal is (an event's ack or error packet, a command's ack, a
    /// CONNECT_ERROR) with code `rate_limited`; a DISCONNECT still leaves.
    fn rate_limited(&mut self, assembled: &Assembled, limited: Limited) -> Next {
        let packet = &assembled.packet;
        let namespace = packet.namespace.as_str();
        let denied = Denied {
            code: ErrorCode::RateLimited,
            message: limited.message,
        };
        match &packet.body {
            Body::Connect { .. } => {
                let mut text = String::new();
                write_connect_error(&mut text, namespace, &denied.message);
                self.outbox.answer(&message_item(&text, &[]));
            }
            Body::Disconnect => self.leave_namespace(namespace, "client namespace disconnect"),
            Body::Event { name, .. } if self.sockets.contains_key(namespace) => {
                if name.starts_with('$') {
                    self.answer_command(namespace, packet.id, Err(denied));
                } else {
                    self.refuse(namespace, packet.id, &denied);
                }
            }
            _ => {}
        }
        if limited.close {
            Next::Close(CloseReason::RateLimited)
        } else {
            Next::Read
        }
    }

    fn on_connect(&mut self, namespace: &str, auth: Option<&Json>) {
        let settings = &self.shared.settings.socketio;
        let allowed = validate_namespace(namespace).is_ok()
            && (settings.namespaces.is_empty()
                || settings.namespaces.iter().any(|n| n == namespace));
        if !allowed {
            let mut text = String::new();
            write_connect_error(&mut text, namespace, "Invalid namespace");
            self.outbox.answer(&message_item(&text, &[]));
            return;
        }
        if let Err(failure) = self.authenticate(auth) {
            debug!(
                conn = self.outbox.id.0,
                reason = failure.as_str(),
                "token refused"
            );
            let mut text = String::new();
            write_head(&mut text, PacketType::ConnectError, namespace, None, 0);
            text.push_str(r#"{"message":"unauthorized","data":{"code":"unauthorized"}}"#);
            self.outbox.answer(&message_item(&text, &[]));
            return;
        }
        if self.sockets.contains_key(namespace) {
            let mut text = String::new();
            write_connect(&mut text, namespace, &self.outbox.session);
            self.outbox.answer(&message_item(&text, &[]));
        } else {
            self.update_profile();
            let patterns = match self.grant.as_deref() {
                // Under jwt: the namespace's allowed subscribe patterns.
                Some(grant) => grant
                    .default_subscriptions(namespace)
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                None => vec![">".to_owned()],
            };
            let mut keys = Vec::with_capacity(patterns.len());
            for pattern in patterns {
                match admission::subscription(namespace, &pattern, None, false) {
                    Ok(key) => keys.push(key),
                    Err(denied) => {
                        let mut text = String::new();
                        write_connect_error(&mut text, namespace, &denied.message);
                        self.outbox.answer(&message_item(&text, &[]));
                        return;
                    }
                }
            }
            self.open_socket(namespace, keys, auth);
        }
        let transport = self.transport.as_str();
        let user = self
            .grant
            .as_deref()
            .map(|g| g.user.as_deref().unwrap_or_default());
        lifecycle::connected(&self.shared, &self.outbox, namespace, auth, transport, user);
        self.shared.router.observer().change(&Change::Connected {
            conn: &self.outbox,
            namespace,
        });
    }

    /// Subscribes a new socket and answers its CONNECT. In a history
    /// namespace the answer carries a `pid` and, when the CONNECT's auth
    /// has the `pid` and `offset` of an earlier socket (Socket.IO's
    /// connection state recovery), the missed events are replayed right
    /// after it, all at one instant of the namespace's log (see
    /// `crate::resume`): recovered, the answer repeats the client's `pid`
    /// (`socket.recovered` is then true); not, it gives a new one and
    /// replays nothing.
    fn open_socket(&mut self, namespace: &str, keys: Vec<SubKey>, auth: Option<&Json>) {
        let history = self
            .shared
            .router
            .history()
            .filter(|h| h.covers(namespace))
            .cloned();
        let Some(history) = history else {
            self.attach_socket(namespace, keys, None);
            return;
        };
        let text = |key: &str| match auth.and_then(|a| a.get(key)) {
            Some(Json::Str(value)) => Some(value.clone()),
            _ => None,
        };
        let asked = text("pid").zip(text("offset"));
        let position = asked
            .as_ref()
            .and_then(|(_, offset)| format::parse_offset(offset));
        let Some(((pid, _), (since, epoch))) = asked.as_ref().zip(position) else {
            let own = self.outbox.session.to_string();
            self.attach_socket(namespace, keys, Some(&own));
            return;
        };
        let recovery = Recovering {
            namespace: namespace.to_owned(),
            keys,
            pid: pid.clone(),
            since,
            epoch: epoch.to_owned(),
        };
        if self.shared.mirror.is_some() {
            // In a cluster the mirror catches up first (read_loop).
            self.pending_recovery = Some(recovery);
        } else {
            self.recover_socket(history.as_ref(), recovery);
        }
    }

    /// The recovery part of [`Self::open_socket`].
    fn recover_socket(&mut self, history: &dyn HistoryLog, recovering: Recovering) {
        let Recovering {
            namespace,
            keys,
            pid,
            since,
            epoch,
        } = recovering;
        let namespace = namespace.as_str();
        let pid = &pid;
        let wanted = [Wanted {
            namespace: namespace.to_owned(),
            since,
            epoch: Some(epoch),
        }];
        history.recover(&wanted, &mut |outcomes| {
            let Some(outcome) = outcomes.first() else {
                return;
            };
            let filter = Filter {
                subs: &keys,
                rooms: &[],
                sid: pid,
            };
            let replay = outcome
                .replay
                .as_ref()
                .map_err(|gap| *gap)
                .and_then(|events| {
                    replay_item(&self.shared, &self.outbox, &filter, outcome, events)
                });
            let own = self.outbox.session.to_string();
            let answered_pid = if replay.is_ok() { pid.as_str() } else { &own };
            debug!(
                conn = self.outbox.id.0,
                namespace,
                recovered = replay.is_ok(),
                "socket.io recovery"
            );
            self.attach_socket(namespace, keys.clone(), Some(answered_pid));
            if let Ok((frames, _)) = replay
                && !frames.is_empty()
            {
                self.outbox.answer(&frames);
            }
        });
    }

    /// Registers a socket's subscriptions and answers its CONNECT (with a
    /// `pid` in a history namespace).
    fn attach_socket(&mut self, namespace: &str, keys: Vec<SubKey>, pid: Option<&str>) {
        for key in &keys {
            self.shared.router.subscribe(&self.outbox, key);
        }
        self.sockets.insert(
            namespace,
            Socket {
                subscriptions: keys,
            },
        );
        let mut text = String::new();
        write_connect(&mut text, namespace, &self.outbox.session);
        if let Some(pid) = pid {
            text.pop();
            text.push_str(",\"pid\":");
            write_str(&mut text, pid);
            text.push('}');
        }
        self.outbox.answer(&message_item(&text, &[]));
    }

    /// Who this connection is, for presence: its user and transport now.
    fn update_profile(&self) {
        let user = self.grant.as_deref().and_then(|g| g.user.clone());
        let profile = Profile::new(user, None, self.transport.as_str());
        self.outbox.set_profile(profile);
    }

    /// The grant for a CONNECT: its payload's `token` (a new token for a
    /// connection already authenticated is a refresh), else the
    /// handshake's `Authorization: Bearer`, else anonymous; a connection
    /// already authenticated keeps its grant.
    fn authenticate(&mut self, auth: Option<&Json>) -> Result<(), auth::Failure> {
        if self.shared.auth.is_none() {
            return Ok(());
        }
        let token = match auth.and_then(|a| a.get("token")) {
            Some(Json::Str(token)) => Some(token.as_str()),
            _ => None,
        };
        if self.grant.is_some() {
            return match token {
                Some(token) => self.refresh(token),
                None => Ok(()),
            };
        }
        let token = token.or(self.header_token.as_deref());
        let grant = auth::authenticate(&self.shared, token)?;
        self.header_token = None;
        self.set_grant(grant);
        Ok(())
    }

    /// Takes `grant` as the connection's, with its expiry clock.
    fn set_grant(&mut self, grant: Option<Grant>) {
        (self.grant, self.expiry) = auth::install(&self.shared, grant);
        self.outbox.info().user = self
            .grant
            .as_deref()
            .and_then(|g| g.user.as_deref())
            .map(Box::from);
    }

    /// A new token (`$auth`, or a CONNECT with one): replaces the grant,
    /// removes the subscriptions and rooms it no longer allows and tells
    /// the client in a `$notice` (`revoked`) per namespace.
    fn refresh(&mut self, token: &str) -> Result<(), auth::Failure> {
        let grant = auth::refresh(&self.shared, self.grant.as_deref(), token)?;
        self.set_grant(grant);
        let Some(grant) = self.grant.as_deref() else {
            return Ok(());
        };
        let mut revoked = Vec::new();
        for (_, socket) in &mut self.sockets.0 {
            socket.subscriptions.retain(|key| {
                let keep = auth::allows_subscription(grant, key);
                if !keep {
                    self.shared.router.unsubscribe(&self.outbox, key);
                    revoked.push(auth::revoked_subscription(key));
                }
                keep
            });
        }
        revoked.extend(auth::revoke_rooms(&self.shared, &self.outbox, grant));
        let namespaces: Vec<String> = self
            .sockets
            .0
            .iter()
            .map(|(ns, _)| ns.to_string())
            .collect();
        for namespace in namespaces {
            let here: Vec<_> = revoked
                .iter()
                .filter(|r| r.ns == namespace)
                .cloned()
                .collect();
            if !here.is_empty() {
                let notice = Notice {
                    code: Notice::REVOKED.into(),
                    message: auth::revoked_message(here.len()),
                    exp: None,
                    revoked: here,
                };
                self.outbox.answer(&format::notice(&namespace, &notice));
            }
        }
        Ok(())
    }

    /// Sends `notice` as `$notice` in every namespace connected.
    fn notify_all(&self, notice: &Notice) {
        for (namespace, _) in &self.sockets.0 {
            self.outbox.answer(&format::notice(namespace, notice));
        }
    }

    fn leave_namespace(&mut self, namespace: &str, reason: &str) {
        let Some(socket) = self.sockets.remove(namespace) else {
            return;
        };
        self.remove_socket(namespace, socket, reason);
    }

    fn remove_socket(&self, namespace: &str, socket: Socket, reason: &str) {
        let router = &self.shared.router;
        for key in socket.subscriptions {
            router.unsubscribe(&self.outbox, &key);
        }
        router.leave_rooms(&self.outbox, Some(namespace));
        lifecycle::disconnected(&self.shared, &self.outbox, namespace, reason);
        router.observer().change(&Change::Disconnected {
            conn: &self.outbox,
            namespace,
            reason,
        });
    }

    fn refuse(&self, namespace: &str, id: Option<u64>, denied: &Denied) {
        Stats::add(&self.shared.stats.errors_sent, 1);
        self.outbox.answer_with(&Answer::Error {
            namespace: Some(namespace),
            id,
            code: denied.code,
            message: &denied.message,
        });
    }

    fn on_event(&mut self, namespace: &str, id: Option<u64>, name: &str, assembled: &Assembled) {
        let payload = match assembled.args_payload() {
            Ok(payload) => payload,
            Err(error) => {
                let denied = Denied {
                    code: ErrorCode::InvalidEnvelope,
                    message: error.to_string(),
                };
                return self.refuse(namespace, id, &denied);
            }
        };
        let names = EmitNames {
            namespace,
            event: name,
            room: None,
            except: None,
            payload: &payload.bytes,
        };
        let grant = self.grant.as_deref_mut();
        if let Err(denied) = admission::emit(&self.shared, Some(&self.outbox), grant, &names) {
            return self.refuse(namespace, id, &denied);
        }
        let emit = Emit {
            namespace: namespace.to_owned(),
            event: name.to_owned(),
            payload: payload.bytes,
            args: payload.spread,
            exclude_self: true,
            ack: id,
            ..Emit::default()
        };
        let router = &self.shared.router;
        let Some(ack) = id else {
            self.back_pressure = router.publish(Some(&self.outbox), &emit).back_pressure;
            return;
        };
        let limits = &self.shared.settings.limits;
        if self.outbox.pending_requests.load(Relaxed) >= limits.max_pending_requests_per_connection
        {
            let denied = Denied {
                code: ErrorCode::TooManyRequests,
                message: format!(
                    "{} requests already in flight (limits.max_pending_requests_per_connection)",
                    limits.max_pending_requests_per_connection
                ),
            };
            return self.refuse(namespace, id, &denied);
        }
        let timeout = ACK_TIMEOUT.min(limits.max_request_timeout);
        if let Err(error) = router.request(&self.outbox, &emit, ack, timeout) {
            self.refuse(namespace, id, &error.into());
        }
    }

    /// The client's own commands: `$subscribe` / `$unsubscribe` (a Herald
    /// pattern, and optionally `{"group": name}`), `$join` / `$leave` (a
    /// room).
    fn on_command(&mut self, namespace: &str, id: Option<u64>, name: &str, args: &[Json]) {
        let result = self.command(namespace, name, args);
        self.answer_command(namespace, id, result);
    }

    /// A command's answer: its ack when it has an id, else an error packet
    /// for a refusal.
    fn answer_command(&self, namespace: &str, id: Option<u64>, result: Result<(), Denied>) {
        match (id, result) {
            (Some(id), Ok(())) => {
                self.outbox
                    .answer(&format::command_ack(namespace, id, None));
            }
            (Some(id), Err(denied)) => {
                let refused = Some((denied.code.as_str(), denied.message.as_str()));
                self.outbox
                    .answer(&format::command_ack(namespace, id, refused));
            }
            (None, Ok(())) => {}
            (None, Err(denied)) => self.refuse(namespace, None, &denied),
        }
    }

    fn command(&mut self, namespace: &str, name: &str, args: &[Json]) -> Result<(), Denied> {
        let text = |json: Option<&Json>| match json {
            Some(Json::Str(text)) => Ok(text.clone()),
            _ => Err(Denied {
                code: ErrorCode::InvalidEnvelope,
                message: format!("{name} takes a string as its first argument"),
            }),
        };
        let first = text(args.first());
        let shared = self.shared.clone();
        let max_rooms = shared.settings.limits.max_rooms_per_connection;
        match name {
            "$subscribe" | "$unsubscribe" => {
                let pattern = first?;
                let group = match args.get(1).and_then(|options| options.get("group")) {
                    Some(Json::Str(group)) => Some(group.as_str()),
                    _ => None,
                };
                let key = admission::subscription(namespace, &pattern, group, false)?;
                if name == "$subscribe" {
                    admission::subscribe(&shared, self.grant.as_deref(), &key)?;
                }
                let Some(socket) = self.sockets.get_mut(namespace) else {
                    return Ok(());
                };
                if name == "$unsubscribe" {
                    if let Some(at) = socket.subscriptions.iter().position(|k| *k == key) {
                        socket.subscriptions.swap_remove(at);
                        shared.router.unsubscribe(&self.outbox, &key);
                    }
                    return Ok(());
                }
                let total: usize = self.sockets.values().map(|s| s.subscriptions.len()).sum();
                let max = shared.settings.limits.max_subscriptions_per_connection;
                let Some(socket) = self.sockets.get_mut(namespace) else {
                    return Ok(());
                };
                if !socket.subscriptions.contains(&key) {
                    if total >= max {
                        return Err(Denied {
                            code: ErrorCode::TooManySubscriptions,
                            message: format!(
                                "this connection already has {max} subscriptions (limits.max_subscriptions_per_connection)"
                            ),
                        });
                    }
                    shared.router.subscribe(&self.outbox, &key);
                    socket.subscriptions.push(key);
                }
                Ok(())
            }
            "$join" | "$leave" => {
                let room = first?;
                let names = RoomChangeNames {
                    namespace,
                    room: &room,
                    session: None,
                    join: name == "$join",
                };
                admission::room_change(&shared, &self.outbox, self.grant.as_deref(), &names)?;
                if name == "$join" {
                    shared
                        .router
                        .join(&self.outbox, namespace, &room, max_rooms)?;
                } else {
                    shared.router.leave(&self.outbox, namespace, &room);
                }
                Ok(())
            }
            "$auth" => {
                let token = match args.first().and_then(|a| a.get("token")) {
                    Some(Json::Str(token)) => token.clone(),
                    _ => {
                        return Err(Denied {
                            code: ErrorCode::InvalidEnvelope,
                            message: "$auth takes {\"token\": \"...\"} as its first argument"
                                .into(),
                        });
                    }
                };
                self.refresh(&token).map_err(|failure| {
                    debug!(
                        conn = self.outbox.id.0,
                        reason = failure.as_str(),
                        "refresh refused"
                    );
                    Denied {
                        code: ErrorCode::Unauthorized,
                        message: auth::UNAUTHORIZED.into(),
                    }
                })
            }
            _ => Err(Denied {
                code: ErrorCode::InvalidEvent,
                message: format!(
                    "{name:?}: events starting with '$' are reserved; the client commands are $subscribe, $unsubscribe, $join, $leave and $auth"
                ),
            }),
        }
    }

    /// Leaves every namespace still connected (the connection closed).
    fn clean_up(&mut self, reason: &str) {
        if let Some(admin) = self.admin.take() {
            sio_admin::disconnect(&admin);
        }
        let sockets: Vec<(Box<str>, Socket)> = self.sockets.drain().collect();
        for (namespace, socket) in sockets {
            self.remove_socket(&namespace, socket, reason);
        }
        self.shared.router.leave_rooms(&self.outbox, None);
    }
}
