//! [`Client`]: the handle to one logical connection, and the state every
//! handle, handler task and the connection task share.
//!
//! The client's operations all come down to a few moves on [`Shared`]:
//! [`Shared::emit`] (fire and forget, buffered while offline),
//! [`Shared::call`] (send an envelope with a fresh id and await the broker's
//! answer), and the membership changes ([`Shared::subscribe`],
//! [`Shared::join`], ...) that also update what is restored after a
//! reconnect.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use herald_protocol::envelope::{RoomChange, Subscription as SubEnvelope};
use herald_protocol::{Envelope, ErrorCode, Limits, Pattern};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::backoff::ReconnectPolicy;
use crate::builder::ClientBuilder;
use crate::dispatch::{Queue, Registry, SubKey};
use crate::error::{ClientEvent, Error};
use crate::lock;
use crate::namespace::Namespace;
use crate::outbox::{Outbox, Outgoing};
use crate::pending::{Answer, Pending, PendingGuard};
use crate::recovery::{Positions, Recovery, RecoveryCallback};
use crate::revoked::{Revoked, RevokedCallback};
use crate::token::{Credentials, TokenState};

/// Where the client stands with its broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// The first connection is being made.
    Connecting,
    /// Connected: the broker answered `welcome`.
    Connected,
    /// The connection was lost; the client is reconnecting (emits are
    /// buffered meanwhile).
    Reconnecting,
    /// Closed by [`Client::close`], by dropping every handle, or after
    /// reconnection gave up. Final.
    Closed,
}

/// The callback that receives [`ClientEvent`]s.
pub(crate) type ErrorCallback = Arc<dyn Fn(ClientEvent) + Send + Sync>;

/// The settings a client was built with.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Broker endpoints, in the order they are tried.
    pub(crate) urls: Vec<Url>,
    /// Name sent in `hello`.
    pub(crate) name: String,
    /// Reconnection back-off.
    pub(crate) reconnect: ReconnectPolicy,
    /// Capacity of the offline buffer.
    pub(crate) offline_buffer: usize,
    /// Capacity of each handler's queue.
    pub(crate) handler_queue: usize,
    /// Bound on one connection attempt (TCP, upgrade, hello/welcome), and
    /// on waiting for the broker's answer to sub/unsub/join/leave.
    pub(crate) connect_timeout: Duration,
    /// The TLS client configuration, when some URL is `wss://`.
    pub(crate) tls: Option<Arc<rustls::ClientConfig>>,
}

/// State shared by the handles, the handler tasks and the connection task.
pub(crate) struct Shared {
    /// The settings.
    pub(crate) config: Config,
    /// Where frames go: the current connection or the offline buffer.
    pub(crate) outbox: Outbox,
    /// Calls awaiting the broker's answer.
    pub(crate) pending: Pending,
    /// Local handlers by subscription.
    pub(crate) registry: Registry,
    /// Rooms joined, as (namespace, room): restored after a reconnect.
    pub(crate) rooms: Mutex<BTreeSet<(String, String)>>,
    /// Serialises membership changes (sub/unsub/join/leave) with the
    /// restore after a reconnect, so the restore sees every change either
    /// before it (and restores it) or after it (and the change goes to the
    /// new connection). A tokio mutex: it is held while awaiting the
    /// broker's answer.
    pub(crate) membership: tokio::sync::Mutex<()>,
    /// The connection state, observable through [`Client::state_changes`].
    pub(crate) state: watch::Sender<ConnectionState>,
    /// The session id the broker gave the current connection.
    pub(crate) session: Mutex<Option<String>>,
    /// The limits the current broker announced.
    pub(crate) limits: Mutex<Option<Limits>>,
    /// The user's error callback.
    pub(crate) on_error: RwLock<Option<ErrorCallback>>,
    /// The token presented, where new ones come from, and the identity the
    /// broker confirmed.
    pub(crate) token: TokenState,
    /// The user's callback for subscriptions and rooms the broker revoked.
    pub(crate) on_revoked: RwLock<Option<RevokedCallback>>,
    /// Positions in history namespaces, for resume and de-duplication.
    pub(crate) positions: Positions,
    /// The session id of the last connection, resumed by the next one.
    pub(crate) last_session: Mutex<Option<String>>,
    /// Told what each resume recovered.
    pub(crate) on_recovery: RwLock<Option<RecoveryCallback>>,
    /// Cancelled to close: stops the connection task, which flushes and
    /// sends a close frame.
    pub(crate) cancel: CancellationToken,
    /// Set by the first [`Client::close`].
    pub(crate) closing: AtomicBool,
    /// Counts connections; a reply goes back only on its own connection.
    pub(crate) generation: AtomicU64,
    /// The connection task, awaited by [`Client::close`].
    pub(crate) task: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .field("state", &*self.state.borrow())
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Fresh shared state, not connected yet.
    pub(crate) fn new(config: Config, credentials: Credentials) -> Shared {
        let offline = config.offline_buffer;
        Shared {
            config,
            outbox: Outbox::new(offline),
            pending: Pending::default(),
            registry: Registry::default(),
            rooms: Mutex::new(BTreeSet::new()),
            membership: tokio::sync::Mutex::new(()),
            state: watch::Sender::new(ConnectionState::Connecting),
            session: Mutex::new(None),
            limits: Mutex::new(None),
            on_error: RwLock::new(None),
            token: TokenState::new(credentials),
            on_revoked: RwLock::new(None),
            positions: Positions::default(),
            last_session: Mutex::new(None),
            on_recovery: RwLock::new(None),
            cancel: CancellationToken::new(),
            closing: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            task: Mutex::new(None),
        }
    }

    /// Moves to `state` (watchers see only changes).
    pub(crate) fn set_state(&self, state: ConnectionState) {
        self.state.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
    }

    /// Reports an event to `tracing` and the user's callback. The callback
    /// runs on the reporting task; a panic in it is caught and logged.
    pub(crate) fn report(&self, event: ClientEvent) {
        match &event {
            ClientEvent::ConnectionLost { .. } => tracing::info!(%event, "herald client"),
            _ => tracing::warn!(%event, "herald client"),
        }
        let callback = self
            .on_error
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(callback) = callback {
            crate::run_callback("error", || callback(event));
        }
    }

    /// `Err(Closed)` once the client is closed.
    pub(crate) fn ensure_open(&self) -> Result<(), Error> {
        if self.closing.load(Ordering::Acquire) || self.outbox.is_closed() {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Refuses a payload larger than the broker's announced limit before
    /// sending it (the broker would refuse it anyway).
    pub(crate) fn check_payload(&self, len: usize) -> Result<(), Error> {
        let max = lock(&self.limits).map_or(0, |l| l.max_payload);
        if max > 0 && u64::try_from(len).unwrap_or(u64::MAX) > max {
            return Err(Error::Broker {
                code: ErrorCode::PayloadTooLarge,
                message: format!("payload of {len} bytes exceeds the broker's limit of {max}"),
            });
        }
        Ok(())
    }

    /// Sends a fire-and-forget frame: to the connection, or into the
    /// offline buffer while disconnected.
    pub(crate) async fn emit(&self, frame: Bytes) -> Result<(), Error> {
        self.ensure_open()?;
        // A send fails only if the connection died after we took its sender;
        // the outbox has moved on by then, so routing again settles it.
        for _ in 0..3 {
            match self.outbox.route_emit(&frame)? {
                None => return Ok(()),
                Some((tx, _)) => {
                    if tx.send(Outgoing::replayable(frame.clone())).await.is_ok() {
                        return Ok(());
                    }
                }
            }
        }
        Err(Error::Disconnected)
    }

    /// Sends the envelope `build(id)` with a fresh id and awaits the
    /// broker's answer, at most `timeout`.
    pub(crate) async fn call(
        &self,
        timeout: Duration,
        build: impl FnOnce(u64) -> Envelope,
    ) -> Result<Answer, Error> {
        self.call_frame(timeout, |id| herald_protocol::encode(&build(id)))
            .await
    }

    /// [`Shared::call`] with the frame encoded by `build(id)` itself.
    pub(crate) async fn call_frame(
        &self,
        timeout: Duration,
        build: impl FnOnce(u64) -> Vec<u8>,
    ) -> Result<Answer, Error> {
        self.ensure_open()?;
        let id = self.pending.next_id();
        let frame = Bytes::from(build(id));
        let (tx, _) = self.outbox.sender()?;
        let answer = self.pending.call(id);
        let _guard = PendingGuard::new(&self.pending, id);
        // The entry is registered before the frame is queued: if the
        // connection dies in between, either the sweep fails the entry or
        // the send fails here. The timeout covers waiting for queue space.
        let exchange = async {
            tx.send(Outgoing::once(frame))
                .await
                .map_err(|_| Error::Disconnected)?;
            answer.await.unwrap_or(Err(Error::Disconnected))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .unwrap_or(Err(Error::Timeout))
    }

    /// Subscribes `key` (once per key on the broker) and registers a
    /// handler queue under it; returns the handler id.
    pub(crate) async fn subscribe(
        &self,
        key: SubKey,
        pattern: Pattern,
        queue: Queue,
    ) -> Result<u64, Error> {
        self.ensure_open()?;
        let _membership = self.membership.lock().await;
        if !self.registry.contains(&key) {
            let envelope = sub_envelope(&key, None);
            let answer = self
                .call(self.config.connect_timeout, |id| {
                    Envelope::Subscribe(SubEnvelope {
                        id: Some(id),
                        ..envelope
                    })
                })
                .await?;
            expect_ok(&answer)?;
        }
        Ok(self.registry.add(key, pattern, queue))
    }

    /// Removes a handler; unsubscribes on the broker with the last handler
    /// of its key. A lost connection counts as success: the subscription is
    /// not restored.
    pub(crate) async fn unsubscribe(&self, key: &SubKey, handler: u64) -> Result<(), Error> {
        self.ensure_open()?;
        let _membership = self.membership.lock().await;
        if !self.registry.remove(key, handler) {
            return Ok(());
        }
        let envelope = sub_envelope(key, None);
        let result = self
            .call(self.config.connect_timeout, |id| {
                Envelope::Unsubscribe(SubEnvelope {
                    id: Some(id),
                    ..envelope
                })
            })
            .await;
        match result {
            Ok(answer) => expect_ok(&answer),
            Err(Error::Disconnected) => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Joins a room (restored after reconnects).
    pub(crate) async fn join(&self, namespace: &str, room: &str) -> Result<(), Error> {
        self.ensure_open()?;
        let _membership = self.membership.lock().await;
        let member = (namespace.to_owned(), room.to_owned());
        if lock(&self.rooms).contains(&member) {
            return Ok(());
        }
        let answer = self
            .call(self.config.connect_timeout, |id| {
                Envelope::Join(room_change(id, namespace, room))
            })
            .await?;
        expect_ok(&answer)?;
        lock(&self.rooms).insert(member);
        Ok(())
    }

    /// Leaves a room. A lost connection counts as success: the membership
    /// is not restored.
    pub(crate) async fn leave(&self, namespace: &str, room: &str) -> Result<(), Error> {
        self.ensure_open()?;
        let _membership = self.membership.lock().await;
        let member = (namespace.to_owned(), room.to_owned());
        if !lock(&self.rooms).remove(&member) {
            return Ok(());
        }
        let result = self
            .call(self.config.connect_timeout, |id| {
                Envelope::Leave(room_change(id, namespace, room))
            })
            .await;
        match result {
            Ok(answer) => expect_ok(&answer),
            Err(Error::Disconnected) => Ok(()),
            Err(error) => Err(error),
        }
    }
}

impl Shared {
    /// Makes ANOTHER connection (session id `sid`) join (`join == true`)
    /// or leave `room`: a service power the broker may refuse with
    /// `forbidden`. Awaits the broker's answer like [`Shared::join`], but
    /// is not restored after a reconnect: the membership is the other
    /// connection's, and ends with it.
    pub(crate) async fn change_member(
        &self,
        namespace: &str,
        room: &str,
        sid: &str,
        join: bool,
    ) -> Result<(), Error> {
        self.ensure_open()?;
        let answer = self
            .call(self.config.connect_timeout, |id| {
                let change = RoomChange {
                    sid: Some(sid.to_owned()),
                    ..room_change(id, namespace, room)
                };
                if join {
                    Envelope::Join(change)
                } else {
                    Envelope::Leave(change)
                }
            })
            .await?;
        expect_ok(&answer)
    }
}

/// The `sub`/`unsub` body for `key`.
pub(crate) fn sub_envelope(key: &SubKey, id: Option<u64>) -> SubEnvelope {
    SubEnvelope {
        id,
        namespace: key.namespace.clone(),
        event: key.event.clone(),
        group: key.group.clone(),
        responder: key.responder,
    }
}

/// The `join`/`leave` body.
pub(crate) fn room_change(id: u64, namespace: &str, room: &str) -> RoomChange {
    RoomChange {
        id: Some(id),
        namespace: namespace.to_owned(),
        room: room.to_owned(),
        sid: None,
    }
}

/// Checks that a call was answered with `ok`.
pub(crate) fn expect_ok(answer: &Answer) -> Result<(), Error> {
    match answer {
        Answer::Ok => Ok(()),
        other => Err(unexpected(other)),
    }
}

/// The error for an answer of the wrong kind (a broker bug).
pub(crate) fn unexpected(answer: &Answer) -> Error {
    Error::Broker {
        code: ErrorCode::Unknown,
        message: format!("unexpected answer from the broker: {answer:?}"),
    }
}

/// Closes the connection when the last user handle is dropped.
#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The connection task flushes queued emits, sends a close frame and
        // ends, as for `close()`, just without anyone awaiting it.
        self.shared.cancel.cancel();
    }
}

/// A [`Client`] that does not keep the connection open: held by handler
/// tasks that hand out client handles (a service's `Connection`), since a
/// strong one inside a task the client owns would keep the client alive
/// through itself.
#[derive(Debug, Clone)]
pub(crate) struct WeakClient(std::sync::Weak<Inner>);

impl WeakClient {
    /// The client, unless every user handle is gone.
    pub(crate) fn upgrade(&self) -> Option<Client> {
        self.0.upgrade().map(|inner| Client { inner })
    }
}

/// A connection to a Herald broker, with automatic reconnection.
///
/// Cheap to clone: clones share the connection. The connection lives until
/// [`Client::close`] is called or every handle is dropped ([`Namespace`]s,
/// [`Subscription`](crate::Subscription)s and handlers that capture a
/// handle count); dropping the last one closes it like `close()`, in the
/// background.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl Client {
    /// Connects to one broker with default settings; see [`ClientBuilder`].
    ///
    /// `url` is a base URL (`ws://127.0.0.1:7400`, to which `/v1/ws` is
    /// appended) or a full endpoint URL (`ws://host:7400/v1/ws`).
    pub async fn connect(url: impl Into<String>) -> Result<Client, Error> {
        ClientBuilder::new(url).connect().await
    }

    /// Starts configuring a client for the broker at `url`.
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder::new(url)
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Client {
        Client {
            inner: Arc::new(Inner { shared }),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.inner.shared
    }

    /// A handle that does not keep the client open, for what the SDK's own
    /// tasks hold (see [`WeakClient`]).
    pub(crate) fn downgrade(&self) -> WeakClient {
        WeakClient(Arc::downgrade(&self.inner))
    }

    /// A handle on `namespace` (`/` or `/a/b`), where events are emitted
    /// and subscribed. The name is checked when the handle is used.
    pub fn of(&self, namespace: impl Into<String>) -> Namespace {
        Namespace::new(self.clone(), namespace.into())
    }

    /// The current connection state.
    pub fn state(&self) -> ConnectionState {
        *self.shared().state.borrow()
    }

    /// A receiver that sees every change of the connection state.
    pub fn state_changes(&self) -> watch::Receiver<ConnectionState> {
        self.shared().state.subscribe()
    }

    /// The session id the broker gave the current connection, or `None`
    /// while disconnected.
    pub fn session_id(&self) -> Option<String> {
        lock(&self.shared().session).clone()
    }

    /// The limits the current broker announced in `welcome`.
    pub fn limits(&self) -> Option<Limits> {
        *lock(&self.shared().limits)
    }

    /// The user id the broker verified for this connection's token (the
    /// token's `sub`, from `welcome`), or `None` when the broker does not
    /// check tokens or no token was presented. Kept while reconnecting
    /// (the last connection's).
    pub fn user(&self) -> Option<String> {
        self.shared().token.identity().user
    }

    /// When the connection's token expires: the `exp` the broker announced
    /// in `welcome` or in its `token_expiring` notice, or, after a refresh,
    /// the `exp` claim of the new token (read, not verified, by the SDK).
    /// `None` when the token does not expire or the broker does not check
    /// tokens.
    pub fn token_expiry(&self) -> Option<SystemTime> {
        self.shared()
            .token
            .identity()
            .exp
            .map(crate::token::unix_time)
    }

    /// Replaces the connection's token in place, without reconnecting (the
    /// `auth` envelope). New permissions apply at once: what the new token
    /// no longer allows is revoked (see [`Client::on_revoked`]). Without a
    /// token provider, `token` is also what later reconnections present.
    ///
    /// Fails with [`Error::Unauthorized`] when the broker refuses the token
    /// (the old one stays in force), [`Error::Timeout`] without an answer
    /// within the connect timeout, or [`Error::Disconnected`] while the
    /// connection is down (the next connection asks the provider, or uses
    /// the fixed token, anyway).
    pub async fn refresh_token(&self, token: impl Into<String>) -> Result<(), Error> {
        crate::token::refresh(self.shared(), token.into()).await
    }

    /// Asks the token provider for a new token and sends it as
    /// [`Client::refresh_token`] does. The client also does this on its own
    /// when the broker says the token expires soon. Fails with
    /// [`Error::TokenProvider`] when there is no provider or it failed.
    pub async fn reauthenticate(&self) -> Result<(), Error> {
        let shared = self.shared();
        shared.ensure_open()?;
        let token = shared.token.fresh(shared.config.connect_timeout).await?;
        crate::token::refresh(shared, token).await
    }

    /// Sets the callback told about subscriptions and rooms the broker
    /// revoked because a refreshed token no longer allows them (PROTOCOL.md
    /// §22, the `revoked` notice). The client has already forgotten them
    /// when the callback runs: they are not restored after a reconnect, and
    /// their handlers end after the events already queued. Replaces any
    /// earlier callback; it runs on the client's reader, so it must return
    /// quickly. Revocations are also logged with `tracing` (warn).
    pub fn on_revoked(&self, callback: impl Fn(Vec<Revoked>) + Send + Sync + 'static) {
        *self
            .shared()
            .on_revoked
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(callback));
    }

    /// Sets the callback told, after every reconnect that resumed, what was
    /// recovered in each history namespace the client had received from
    /// (PROTOCOL.md "History and resume"): `recovered: true` when every
    /// missed event was replayed (they are delivered to the handlers
    /// before any live one), `false` when none could be (too old, the
    /// broker lost its history, or too many), so the application reloads
    /// its state. Replaces any earlier callback; it runs on the client's
    /// connection task, so it must return quickly.
    pub fn on_recovery(
        &self,
        callback: impl Fn(&BTreeMap<String, Recovery>) + Send + Sync + 'static,
    ) {
        *self
            .shared()
            .on_recovery
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(callback));
    }

    /// Sets the callback that receives what goes wrong outside any call:
    /// payloads that did not decode, handler panics, broker errors that
    /// answer no call, lost connections, token refreshes that failed (see
    /// [`ClientEvent`]). Replaces any earlier callback. It runs on the
    /// client's tasks, so it must return quickly; everything it receives is
    /// also logged with `tracing`.
    pub fn on_error(&self, callback: impl Fn(ClientEvent) + Send + Sync + 'static) {
        *self
            .shared()
            .on_error
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Arc::new(callback));
    }

    /// Closes the client: writes the emits already queued for the
    /// connection, sends a WebSocket close (1000), and stops reconnecting.
    /// Emits waiting in the offline buffer are discarded (and reported).
    /// Calls in flight fail with [`Error::Closed`], as does every later call,
    /// including a second `close()`.
    pub async fn close(&self) -> Result<(), Error> {
        let shared = self.shared();
        if shared.closing.swap(true, Ordering::AcqRel) {
            return Err(Error::Closed);
        }
        shared.cancel.cancel();
        let task = lock(&shared.task).take();
        if let Some(task) = task {
            if let Err(error) = task.await {
                tracing::error!(%error, "herald connection task failed");
            }
        }
        shared.set_state(ConnectionState::Closed);
        Ok(())
    }
}
