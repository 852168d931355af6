//! [`Namespace`]: subscribe, emit, request and rooms in one namespace; and
//! [`Emitter`], an emit aimed at a room, excluding the sender and/or a room
//! (or one socket).
//!
//! Payloads are the user's values encoded with `rmp_serde::to_vec_named`
//! (a MessagePack map keyed by field name) and decoded with
//! `rmp_serde::from_slice`; other SDKs follow the same convention. Every
//! name is checked locally with the protocol's rules before anything is
//! sent, so a bad name fails with [`Error::InvalidName`] without a round
//! trip.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::names::{validate_event, validate_group, validate_namespace, validate_room};
use herald_protocol::{EmitRef, Pattern, encode_emit};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::client::{Client, unexpected};
use crate::dispatch::{Delivery, SubKey};
use crate::error::Error;
use crate::handler::{self, Context, Decode};
use crate::history::HistoryPage;
use crate::payload::Payload;
use crate::pending::Answer;
use crate::presence::{LIST_EVENT, Presence};
use crate::subscription::Subscription;

/// A handle on one namespace of a [`Client`]; cheap to clone.
#[derive(Debug, Clone)]
pub struct Namespace {
    client: Client,
    name: Arc<str>,
}

impl Namespace {
    pub(crate) fn new(client: Client, name: String) -> Namespace {
        Namespace {
            client,
            name: name.into(),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The client this handle belongs to.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Runs `handler` for every event matching `event`: an event name or a
    /// pattern (`order.*` for one token, `order.>` for the rest). Returns
    /// once the broker accepted the subscription.
    ///
    /// The handler gets the payload decoded as `T`; events arrive one at a
    /// time and in each publisher's order. A payload that does not decode
    /// as `T`, or a panic in the handler, is reported through
    /// [`Client::on_error`] and the subscription goes on. Dropping the
    /// returned [`Subscription`] does NOT unsubscribe.
    pub async fn on<T, F, Fut>(&self, event: &str, handler: F) -> Result<Subscription, Error>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.events(event, None, handler::typed, handler::data, handler)
            .await
    }

    /// Like [`Namespace::on`], but the handler gets an [`Event`]: the
    /// payload with the event's name, room and sender, for patterns that
    /// match several events.
    pub async fn on_event<T, F, Fut>(&self, event: &str, handler: F) -> Result<Subscription, Error>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.events(event, None, handler::typed, handler::with_event, handler)
            .await
    }

    /// Like [`Namespace::on_event`], without decoding: the handler gets
    /// the [`Payload`] as it came (bytes and `args` flag), for relays that
    /// pass it on (e.g. with [`Emitter::emit_raw`]).
    pub async fn on_raw<F, Fut>(&self, event: &str, handler: F) -> Result<Subscription, Error>
    where
        F: Fn(Event<Payload>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.events(event, None, handler::raw, handler::with_event, handler)
            .await
    }

    /// Like [`Namespace::on`], as a member of queue group `group`: each
    /// event reaches one member of the group (across all connections that
    /// subscribed with that group).
    pub async fn on_queue<T, F, Fut>(
        &self,
        event: &str,
        group: &str,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.events(event, Some(group), handler::typed, handler::data, handler)
            .await
    }

    /// Like [`Namespace::on_queue`], but the handler gets an [`Event`]: the
    /// payload with the event's name and room.
    pub async fn on_queue_event<T, F, Fut>(
        &self,
        event: &str,
        group: &str,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        T: DeserializeOwned + Send + 'static,
        F: Fn(Event<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.events(
            event,
            Some(group),
            handler::typed,
            handler::with_event,
            handler,
        )
        .await
    }

    /// Answers requests for `event`: the broker routes each request to one
    /// responder. `Ok(value)` replies with the encoded value; `Err(e)`
    /// replies with an error carrying `e.to_string()`, which the requester
    /// gets as [`Error::Remote`]. A panic replies with an error too.
    pub async fn on_request<T, R, E, F, Fut>(
        &self,
        event: &str,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        self.requests(event, None, handler::typed, encode_typed, handler)
            .await
    }

    /// Like [`Namespace::on_request`], without decoding or encoding: the
    /// handler gets the request as an [`Event`] of its raw [`Payload`]
    /// (with the sender and the `args` flag) and answers with a raw
    /// `Payload`, whose `args` flag travels with the reply. A relay
    /// answers a Socket.IO ack with several values this way.
    pub async fn on_request_raw<E, F, Fut>(
        &self,
        event: &str,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        E: std::fmt::Display + Send + 'static,
        F: Fn(Event<Payload>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Payload, E>> + Send + 'static,
    {
        let namespace = self.name.to_string();
        let decode = move |delivery: &Delivery| {
            Ok(handler::event(
                &namespace,
                delivery,
                handler::raw(delivery)?,
            ))
        };
        self.requests(event, None, decode, Ok, handler).await
    }

    /// Like [`Namespace::on_request`], as a responder in queue group
    /// `group`. In protocol version 1 every request already goes to exactly
    /// one responder, so the group does not change who is picked.
    pub async fn on_request_queue<T, R, E, F, Fut>(
        &self,
        event: &str,
        group: &str,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        T: DeserializeOwned + Send + 'static,
        R: Serialize + Send + 'static,
        E: std::fmt::Display + Send + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        self.requests(event, Some(group), handler::typed, encode_typed, handler)
            .await
    }

    /// Subscribes (in `group`, if given) with `handler` run per event, on
    /// what `shape` makes of the payloads `decode` made.
    pub(crate) async fn events<T, A, D, F, Fut>(
        &self,
        event: &str,
        group: Option<&str>,
        decode: D,
        shape: handler::Shape<T, A>,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        T: Send + 'static,
        A: Send + 'static,
        D: Decode<T> + Send + Sync + 'static,
        F: Fn(A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        if let Some(group) = group {
            validate_group(group)?;
        }
        self.subscribe(event, group, false, move |queue, ctx| {
            tokio::spawn(handler::run_events(queue, ctx, decode, shape, handler));
        })
        .await
    }

    /// Subscribes as a responder (in `group`, if given) with `handler`
    /// answering each request, on payloads made by `decode`, with answers
    /// encoded by `encode`.
    async fn requests<T, R, E, D, N, F, Fut>(
        &self,
        event: &str,
        group: Option<&str>,
        decode: D,
        encode: N,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        T: Send + 'static,
        R: Send + 'static,
        E: std::fmt::Display + Send + 'static,
        D: Decode<T> + Send + Sync + 'static,
        N: Fn(R) -> Result<Payload, String> + Send + Sync + 'static,
        F: Fn(T) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, E>> + Send + 'static,
    {
        if let Some(group) = group {
            validate_group(group)?;
        }
        self.subscribe(event, group, true, move |queue, ctx| {
            tokio::spawn(handler::run_requests(queue, ctx, decode, encode, handler));
        })
        .await
    }

    async fn subscribe(
        &self,
        event: &str,
        group: Option<&str>,
        responder: bool,
        spawn: impl FnOnce(mpsc::Receiver<Delivery>, Context),
    ) -> Result<Subscription, Error> {
        validate_namespace(&self.name)?;
        let pattern = Pattern::parse(event)?;
        let shared = self.client.shared();
        let key = SubKey {
            namespace: self.name.to_string(),
            event: event.to_owned(),
            group: group.map(str::to_owned),
            responder,
        };
        let (tx, rx) = mpsc::channel(shared.config.handler_queue);
        let handler_id = shared.subscribe(key.clone(), pattern, tx).await?;
        spawn(
            rx,
            Context {
                shared: Arc::downgrade(shared),
                namespace: key.namespace.clone(),
            },
        );
        Ok(Subscription::new(self.client.clone(), key, handler_id))
    }

    /// Emits `event` to every subscriber in this namespace (fire and
    /// forget). Returns once the event was handed to the connection, or to
    /// the offline buffer while disconnected ([`Error::BufferFull`] when
    /// that is full).
    pub async fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), Error> {
        self.emitter().emit(event, payload).await
    }

    /// Emits `event` with a payload as is, bytes and `args` flag (fire and
    /// forget), for relays; see [`Emitter::emit_raw`].
    pub async fn emit_raw(&self, event: &str, payload: Payload) -> Result<(), Error> {
        self.emitter().emit_raw(event, payload).await
    }

    /// Emits `event` and waits for the broker's acknowledgement: the number
    /// of connections the event was queued to (in a namespace with a
    /// history, the acknowledgement comes once the event is in it).
    ///
    /// The emit carries a message id (`mid`). When the connection it went
    /// out on is lost, or the answer does not come within the connect
    /// timeout, it is sent again with the same id once the client is
    /// connected again (at most
    /// [`ACKED_EMIT_ATTEMPTS`](crate::ACKED_EMIT_ATTEMPTS) times in all): in
    /// a history namespace the broker drops a repeated id within
    /// `history.mid_window` (answering 0 receivers), so a retry never
    /// delivers the event twice. Fails with [`Error::Disconnected`] or
    /// [`Error::Timeout`] after the last attempt, and [`Error::Closed`]
    /// when the client closes or gives up reconnecting meanwhile. Called
    /// while no connection is up it fails with [`Error::Disconnected`] at
    /// once.
    pub async fn emit_acked<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<u64, Error> {
        self.emitter().emit_acked(event, payload).await
    }

    /// Sends a request to one responder of `event` and waits at most
    /// `timeout` for its reply, decoded as `R`.
    ///
    /// Fails with [`Error::NoResponders`] when nobody answers `event`,
    /// [`Error::Timeout`] when the reply does not come in time (also
    /// enforced locally), [`Error::Remote`] when the responder failed, and
    /// [`Error::Disconnected`] when the connection is (or goes) down.
    pub async fn request<T, R>(
        &self,
        event: &str,
        payload: &T,
        timeout: Duration,
    ) -> Result<R, Error>
    where
        T: Serialize + ?Sized,
        R: DeserializeOwned,
    {
        let emitter = self.emitter();
        let (event, payload) = emitter.prepare(event, payload)?;
        self.call_request(timeout, emitter.envelope(event, &payload))
            .await
    }

    /// Sends `emit` as a request (with `ack` and the timeout) and decodes
    /// its reply as `R`.
    async fn call_request<R: DeserializeOwned>(
        &self,
        timeout: Duration,
        emit: EmitRef<'_>,
    ) -> Result<R, Error> {
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let answer = self
            .client
            .shared()
            .call_frame(timeout, |id| {
                encode_emit(&EmitRef {
                    ack: Some(id),
                    timeout_ms: Some(timeout_ms),
                    ..emit
                })
            })
            .await?;
        match answer {
            Answer::Reply { ok: true, payload } => {
                rmp_serde::from_slice(&payload).map_err(|e| Error::Decode(e.to_string()))
            }
            Answer::Reply { ok: false, payload } => Err(Error::Remote(remote_message(&payload))),
            other => Err(unexpected(&other)),
        }
    }

    /// Who is connected to this namespace, or to its `room`, on every node
    /// (at most `limit` members, 1 to 1000, default 100; the count is
    /// whole). Under auth the token must allow subscribing to
    /// `$presence.join` here (and joining the room). Socket.IO's
    /// `fetchSockets()` is the model.
    pub async fn presence(
        &self,
        room: Option<&str>,
        limit: Option<usize>,
        timeout: Duration,
    ) -> Result<Presence, Error> {
        #[derive(Serialize)]
        struct Ask<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            room: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            limit: Option<usize>,
        }
        validate_namespace(&self.name)?;
        if let Some(room) = room {
            validate_room(room)?;
        }
        let payload = Payload::encode(&Ask { room, limit })?;
        let ask = EmitRef {
            namespace: &self.name,
            event: LIST_EVENT,
            payload: &payload.bytes,
            ..EmitRef::default()
        };
        self.call_request(timeout, ask).await
    }

    /// The events of this namespace's history after `since` whose name
    /// matches `pattern` (an event name or pattern, `>` for all), oldest
    /// first, at most `limit` (default 100, at most the broker's
    /// `history.replay_limit`): what a service loads before it goes live.
    /// The namespace must keep a history (`[[history.namespaces]]`); under
    /// auth the token must allow subscribing to `pattern` here. In a
    /// cluster any node answers with the whole history (kept in Redis).
    pub async fn history(
        &self,
        pattern: &str,
        since: u64,
        limit: Option<usize>,
        timeout: Duration,
    ) -> Result<HistoryPage, Error> {
        #[derive(Serialize)]
        struct Ask<'a> {
            pattern: &'a str,
            since: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            limit: Option<usize>,
        }
        validate_namespace(&self.name)?;
        let payload = Payload::encode(&Ask {
            pattern,
            since,
            limit,
        })?;
        let ask = EmitRef {
            namespace: &self.name,
            event: crate::history::READ_EVENT,
            payload: &payload.bytes,
            ..EmitRef::default()
        };
        self.call_request(timeout, ask).await
    }

    /// Joins `room` in this namespace: events emitted to the room reach
    /// this client. Restored after reconnects.
    pub async fn join(&self, room: &str) -> Result<(), Error> {
        validate_namespace(&self.name)?;
        validate_room(room)?;
        self.client.shared().join(&self.name, room).await
    }

    /// Leaves `room` in this namespace.
    pub async fn leave(&self, room: &str) -> Result<(), Error> {
        validate_namespace(&self.name)?;
        validate_room(room)?;
        self.client.shared().leave(&self.name, room).await
    }

    /// An emitter that reaches only the members of `room`.
    pub fn to(&self, room: impl Into<String>) -> Emitter {
        self.emitter().to(room)
    }

    /// An emitter that does not deliver to this client itself.
    pub fn except_self(&self) -> Emitter {
        self.emitter().exclude_self()
    }

    fn emitter(&self) -> Emitter {
        Emitter {
            namespace: self.clone(),
            room: None,
            exclude_self: false,
            except: None,
        }
    }
}

/// Encodes a typed request handler's answer with the SDK's convention.
fn encode_typed<R: Serialize>(answer: R) -> Result<Payload, String> {
    Payload::encode(&answer).map_err(|e| e.to_string())
}

/// A delivered event with its metadata, for [`Namespace::on_event`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Event<T> {
    /// The namespace it was emitted in.
    pub namespace: String,
    /// The event's name (the subscription may have been a pattern).
    pub event: String,
    /// The room it was emitted to, if any.
    pub room: Option<String>,
    /// The session id of the connection that emitted it (see
    /// [`Event::from`]).
    pub from: Option<String>,
    /// The payload holds several arguments (see [`Event::args`]).
    pub args: bool,
    /// The payload, decoded.
    pub data: T,
}

impl<T> Event<T> {
    /// The session id of the connection that emitted the event, when the
    /// broker names it: absent for HTTP publishes and the broker's own
    /// events. Emit to this id (`ns.to(sid)`, a service power) to answer
    /// one socket.
    pub fn from(&self) -> Option<&str> {
        self.from.as_deref()
    }

    /// True when the payload is a MessagePack array of several arguments
    /// (a Socket.IO client's `emit(ev, a, b)`): decode it as a tuple or a
    /// sequence, or use [`Namespace::on_raw`] to pass it on as is. False
    /// for one argument, which is what native clients always send.
    pub fn args(&self) -> bool {
        self.args
    }
}

/// The text of an `ok: false` reply: a MessagePack string by convention,
/// else a description of what came.
fn remote_message(payload: &Bytes) -> String {
    rmp_serde::from_slice::<String>(payload).unwrap_or_else(|_| {
        format!(
            "responder error with a {}-byte non-string payload",
            payload.len()
        )
    })
}

/// An emit aimed at a room and/or excluding the sender; made by
/// [`Namespace::to`] and [`Namespace::except_self`].
#[derive(Debug, Clone)]
#[must_use = "an emitter does nothing until .emit() is awaited"]
pub struct Emitter {
    namespace: Namespace,
    room: Option<String>,
    exclude_self: bool,
    except: Option<String>,
}

impl Emitter {
    /// Only the members of `room` receive the event.
    pub fn to(mut self, room: impl Into<String>) -> Emitter {
        self.room = Some(room.into());
        self
    }

    /// The sending client does not receive the event itself.
    pub fn exclude_self(mut self) -> Emitter {
        self.exclude_self = true;
        self
    }

    /// The members of `room` do not receive the event (Socket.IO's
    /// `except(room)`). Every connection is in the room named after its
    /// session id, so `except(sid)` leaves out one socket. One room only:
    /// a later call replaces it.
    pub fn except(mut self, room_or_sid: impl Into<String>) -> Emitter {
        self.except = Some(room_or_sid.into());
        self
    }

    /// Emits `event` (fire and forget; see [`Namespace::emit`]).
    pub async fn emit<T: Serialize + ?Sized>(&self, event: &str, payload: &T) -> Result<(), Error> {
        self.emit_raw(event, Payload::encode(payload)?).await
    }

    /// Emits `event` with a payload as is, bytes and `args` flag (fire and
    /// forget): for relays that pass on what they received.
    pub async fn emit_raw(&self, event: &str, payload: Payload) -> Result<(), Error> {
        let (event, payload) = self.prepare_raw(event, payload)?;
        let frame = encode_emit(&self.envelope(event, &payload));
        self.namespace
            .client
            .shared()
            .emit(Bytes::from(frame))
            .await
    }

    /// Emits `event` and waits for the broker's count of receivers (see
    /// [`Namespace::emit_acked`]).
    pub async fn emit_acked<T: Serialize + ?Sized>(
        &self,
        event: &str,
        payload: &T,
    ) -> Result<u64, Error> {
        let (event, payload) = self.prepare(event, payload)?;
        let shared = self.namespace.client.shared();
        let mid = crate::recovery::new_mid();
        let mut attempt = 1;
        loop {
            let generation = shared.generation.load(std::sync::atomic::Ordering::Relaxed);
            // Only an emit that went out on a connection is retried; with
            // none up, it fails at once, as it always did.
            let was_up = *shared.state.borrow() == crate::ConnectionState::Connected;
            let answer = shared
                .call_frame(shared.config.connect_timeout, |id| {
                    encode_emit(&EmitRef {
                        id: Some(id),
                        message_id: Some(&mid),
                        ..self.envelope(event, &payload)
                    })
                })
                .await;
            match answer {
                Ok(Answer::Ack(receivers)) => return Ok(receivers),
                Ok(other) => return Err(unexpected(&other)),
                Err(error @ (Error::Disconnected | Error::Timeout))
                    if was_up && attempt < crate::recovery::ACKED_EMIT_ATTEMPTS =>
                {
                    attempt += 1;
                    // Lost: wait for the next connection. No answer in
                    // time: the same one will do, while it is up.
                    let newer_than = match error {
                        Error::Disconnected => generation,
                        _ => generation.saturating_sub(1),
                    };
                    crate::recovery::await_connection(shared, newer_than).await?;
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Checks the names, encodes the payload and checks its size.
    fn prepare<'e, T: Serialize + ?Sized>(
        &self,
        event: &'e str,
        payload: &T,
    ) -> Result<(&'e str, Payload), Error> {
        self.prepare_raw(event, Payload::encode(payload)?)
    }

    /// Checks the names and the payload's size.
    fn prepare_raw<'e>(
        &self,
        event: &'e str,
        payload: Payload,
    ) -> Result<(&'e str, Payload), Error> {
        validate_namespace(&self.namespace.name)?;
        validate_event(event)?;
        for room in [&self.room, &self.except].into_iter().flatten() {
            validate_room(room)?;
        }
        self.namespace
            .client
            .shared()
            .check_payload(payload.bytes.len())?;
        Ok((event, payload))
    }

    /// The emit of `event` with `payload`, borrowed: encoded with
    /// [`encode_emit`], no envelope is built.
    fn envelope<'a>(&'a self, event: &'a str, payload: &'a Payload) -> EmitRef<'a> {
        EmitRef {
            id: None,
            namespace: &self.namespace.name,
            event,
            room: self.room.as_deref(),
            payload: &payload.bytes,
            exclude_self: self.exclude_self,
            ack: None,
            timeout_ms: None,
            args: payload.args,
            except: self.except.as_deref(),
            message_id: None,
        }
    }
}
