//! Clustering over Redis: the Redis backend of the [`Backplane`] seam.
//! It names neither the router nor the broker's shared state: the router
//! calls it through the trait, and what other nodes send is pushed as
//! [`Inbound`] messages into the channel given at start.
//!
//! Several nodes share one Redis (pub/sub only: no home-made protocol).
//! - **Plain fan-out.** The origin delivers locally, then publishes the emit
//!   on the namespace's channel `{prefix}:ev:{namespace}`. A node listens
//!   on the channels of the namespaces where it has plain subscribers (the
//!   cheap interest: Redis ships an event only to nodes that asked for its
//!   namespace) and delivers to its local subscribers.
//! - **Queue groups and responders** are listed per node in a Redis set
//!   (`registry`); every node caches the others' entries (`RemoteView`)
//!   and picks, per group, ONE node (round robin, itself included), which
//!   gets the event on its own channel `{prefix}:node:{id}`. Requests pick a
//!   responder the same way; replies come back on the origin's channel.
//! - **Liveness.** Each node refreshes a key with a TTL; a node whose key
//!   expired is pruned from the registry by the others.
//!
//! `tasks` runs the Redis side (connection, publisher, listener,
//! heartbeat), `wire` is the message format, `keys` the names, `registry`
//! the local interest and its Redis encoding.

mod history;
mod keys;
mod presence;
mod registry;
mod tasks;
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use herald_config::{ClusterSettings, HistorySettings};
use herald_protocol::envelope::Emit;
use herald_protocol::names::namespace_matches;
use std::time::Duration;
use thiserror::Error;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use self::keys::Keys;
use self::registry::{Entry, LocalInterest};
use self::wire::{Body, Message, WireEmit};
use crate::backplane::{
    AppendDone, Backplane, BackplaneSample, BoxFuture, HistoryEntry, HistoryRange, Inbound,
    Interest, Member, RemoteView, ToNode, Unreachable,
};

/// What can stop the cluster side from starting.
#[derive(Debug, Error)]
pub(crate) enum ClusterError {
    /// `cluster.redis_url` was refused by the Redis client.
    #[error("cluster.redis_url {url:?} is not usable: {source}")]
    RedisUrl {
        /// The configured URL.
        url: String,
        /// The client's reason.
        source: redis::RedisError,
    },
}

/// One write waiting for Redis, in the order the router made it.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A message for a channel.
    Publish { channel: String, message: Vec<u8> },
    /// One presence field of this node set (`Some`) or removed.
    Present {
        field: String,
        member: Option<Vec<u8>>,
    },
    /// This node's whole presence hash, written again.
    Presence(Vec<(String, Vec<u8>)>),
    /// A history append (the append script): numbered, stored and
    /// published on the namespace's history channel in one step.
    Append {
        namespace: String,
        mid: Option<String>,
        message: Vec<u8>,
        done: Option<AppendDone>,
    },
}

/// Counters of the cluster side (read at scrape time).
#[derive(Debug, Default)]
pub(crate) struct ClusterStats {
    /// Messages handed to Redis.
    pub(crate) sent: AtomicU64,
    /// Messages received from other nodes.
    pub(crate) received: AtomicU64,
    /// Outgoing messages dropped: Redis down, or the queue full.
    pub(crate) dropped: AtomicU64,
    /// Incoming messages that could not be used: undecodable, a group
    /// delivery or request for which this node has no member any more.
    pub(crate) undeliverable: AtomicU64,
    /// Times the connection to Redis was lost.
    pub(crate) disconnects: AtomicU64,
}

/// The cluster side of one node.
#[derive(Debug)]
pub(crate) struct Cluster {
    keys: Keys,
    settings: ClusterSettings,
    client: redis::Client,
    outbound: mpsc::Sender<Outbound>,
    local: Mutex<LocalInterest>,
    /// Woken when the local interest changed.
    changed: Notify,
    /// Woken when another node announced a change.
    view_stale: Notify,
    view: RwLock<Arc<RemoteView>>,
    /// Namespaces whose channel this node listens on now.
    namespaces: AtomicU64,
    up: AtomicBool,
    stop: CancellationToken,
    connection: OnceLock<redis::aio::ConnectionManager>,
    /// What this node's presence hash holds (`presence.rs`).
    presence: Mutex<presence::Mirror>,
    /// Set when a presence write could not be queued: the maintainer
    /// writes the whole hash again.
    presence_lost: AtomicBool,
    pub(crate) stats: ClusterStats,
    /// Which namespaces keep a history (in Redis, `history`).
    history: HistorySettings,
    scripts: history::Scripts,
    /// Where catch-up requests go, behind what the listener pushed.
    inbox: mpsc::Sender<Inbound>,
}

/// How long a namespace's epoch and last `seq` outlive its last append
/// (at least a day, and at least its history's `ttl`): past it the
/// history is gone and a new epoch starts.
const MIN_META_TTL: Duration = Duration::from_secs(24 * 3600);

/// Lock a mutex even if a panicking thread poisoned it (the data is plain
/// counts, always consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cluster {
    /// Joins the cluster of `settings` as node `node` and starts the Redis
    /// side (connection, publisher, listener, heartbeat); what other nodes
    /// send goes to `inbox`. Must be called within a tokio runtime.
    pub(crate) fn start(
        settings: &ClusterSettings,
        history: &HistorySettings,
        node: &str,
        inbox: mpsc::Sender<Inbound>,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let client =
            tasks::client(&settings.redis_url).map_err(|source| ClusterError::RedisUrl {
                url: settings.redis_url.clone(),
                source,
            })?;
        let (outbound, outbound_rx) = mpsc::channel(settings.queue_capacity);
        let cluster = Arc::new(Cluster {
            keys: Keys::new(&settings.prefix, node),
            settings: settings.clone(),
            client,
            outbound,
            local: Mutex::new(LocalInterest::default()),
            changed: Notify::new(),
            view_stale: Notify::new(),
            view: RwLock::new(Arc::new(RemoteView::default())),
            namespaces: AtomicU64::new(0),
            up: AtomicBool::new(false),
            stop: CancellationToken::new(),
            connection: OnceLock::new(),
            presence: Mutex::new(presence::Mirror::default()),
            presence_lost: AtomicBool::new(false),
            stats: ClusterStats::default(),
            history: history.clone(),
            scripts: history::Scripts::default(),
            inbox: inbox.clone(),
        });
        tasks::spawn(cluster.clone(), inbox, outbound_rx);
        Ok(cluster)
    }

    /// This node's id.
    pub(crate) fn node(&self) -> &str {
        self.keys.node()
    }

    fn set_up(&self, up: bool) {
        let was = self.up.swap(up, Relaxed);
        if was && !up {
            self.stats.disconnects.fetch_add(1, Relaxed);
            tracing::warn!("cluster backplane (redis) unreachable: delivering locally only");
        } else if !was && up {
            tracing::info!(node = self.node(), "cluster backplane (redis) connected");
        }
    }

    fn set_view(&self, view: RemoteView) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    /// Counts an interest change; wakes the maintainer when the namespace
    /// set or the registry changed.
    fn note_interest(&self, interest: Interest<'_>, added: bool) {
        let mut local = lock(&self.local);
        let changed = match (registry_entry(interest), added) {
            (Some(entry), true) => local.add_entry(entry),
            (Some(entry), false) => local.remove_entry(&entry),
            (None, true) => local.add_namespace(interest.namespace()),
            (None, false) => local.remove_namespace(interest.namespace()),
        };
        drop(local);
        if changed {
            self.changed.notify_one();
        }
    }

    /// Queues this node's whole presence hash (after Redis came back, or
    /// when a single write was lost), in order with the single writes.
    fn rewrite_presence(&self) {
        let mirror = lock(&self.presence);
        let fields = mirror
            .fields
            .iter()
            .map(|(field, member)| (field.clone(), member.clone()))
            .collect();
        if self.outbound.try_send(Outbound::Presence(fields)).is_err() {
            self.presence_lost.store(true, Relaxed);
        }
    }

    fn publish(&self, channel: String, body: Body) -> bool {
        if !self.is_up() {
            self.stats.dropped.fetch_add(1, Relaxed);
            return false;
        }
        let message = Message {
            from: self.node().to_owned(),
            body,
        };
        let publish = Outbound::Publish {
            channel,
            message: message.encode(),
        };
        if self.outbound.try_send(publish).is_err() {
            self.stats.dropped.fetch_add(1, Relaxed);
            return false;
        }
        true
    }

    /// The Redis bounds of `namespace`'s history, when it keeps one.
    fn history_bounds(&self, namespace: &str) -> Option<history::Bounds> {
        let rule = self
            .history
            .namespaces
            .iter()
            .find(|rule| namespace_matches(&rule.namespace, namespace))?;
        Some(history::Bounds {
            size: rule.size,
            ttl: rule.ttl,
            meta_ttl: rule.ttl.max(MIN_META_TTL),
            mid_window: self.history.mid_window,
        })
    }

    /// The epoch a namespace starts when Redis has none for it: this
    /// node's id and the time, so no two starts share one.
    fn new_epoch(&self) -> String {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        format!("{}.{nanos:x}", self.node())
    }
}

impl Backplane for Cluster {
    fn is_up(&self) -> bool {
        self.up.load(Relaxed)
    }

    fn forward_event(&self, emit: &Emit, sender: Option<&str>) {
        let channel = self.keys.namespace_channel(&emit.namespace);
        self.publish(channel, Body::Event(WireEmit::from_emit(emit, sender)));
    }

    fn send_to(&self, node: &str, message: ToNode<'_>) -> bool {
        self.publish(self.keys.node_channel(node), Body::from(message))
    }

    fn subscribed(&self, interest: Interest<'_>) {
        self.note_interest(interest, true);
    }

    fn unsubscribed(&self, interest: Interest<'_>) {
        self.note_interest(interest, false);
    }

    fn view(&self) -> Arc<RemoteView> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn keeps_history(&self) -> bool {
        !self.history.namespaces.is_empty()
    }

    fn append(&self, emit: &Emit, sender: Option<&str>, done: Option<AppendDone>) -> bool {
        let fail = |done: Option<AppendDone>, why: &str| {
            if let Some(done) = done {
                let _ = done.send(Err(why.to_owned()));
            }
            false
        };
        if !self.is_up() {
            self.stats.dropped.fetch_add(1, Relaxed);
            return fail(done, "the cluster backplane (redis) is unreachable");
        }
        let mut wire = WireEmit::from_emit(emit, sender);
        wire.mid = emit.message_id.clone();
        wire.xs = emit.exclude_self;
        let message = Message {
            from: self.node().to_owned(),
            body: Body::Event(wire),
        };
        let outbound = Outbound::Append {
            namespace: emit.namespace.clone(),
            mid: emit.message_id.clone(),
            message: message.encode(),
            done,
        };
        match self.outbound.try_send(outbound) {
            Ok(()) => true,
            Err(refused) => {
                self.stats.dropped.fetch_add(1, Relaxed);
                if let Outbound::Append { done, .. } = refused.into_inner() {
                    fail(done, "the cluster backplane's queue is full");
                }
                false
            }
        }
    }

    fn read_history(
        &self,
        namespace: &str,
        since: u64,
        limit: usize,
    ) -> BoxFuture<'_, Result<HistoryRange, String>> {
        let namespace = namespace.to_owned();
        Box::pin(async move {
            let bounds = self
                .history_bounds(&namespace)
                .ok_or_else(|| format!("namespace {namespace} keeps no history"))?;
            let mut connection = self
                .connection
                .get()
                .cloned()
                .ok_or_else(|| "the cluster backplane (redis) is not started".to_owned())?;
            let stream = self.keys.history_stream(&namespace);
            let meta = self.keys.history_meta(&namespace);
            let range = history::read(
                &mut connection,
                &self.scripts,
                (&stream, &meta),
                since,
                limit,
                (&self.new_epoch(), bounds.meta_ttl),
            )
            .await
            .map_err(|e| e.to_string())?;
            let mut entries = Vec::with_capacity(range.entries.len());
            for (seq, bytes) in range.entries {
                let Ok(Message {
                    body: Body::Event(wire),
                    ..
                }) = Message::decode(&bytes)
                else {
                    return Err(format!(
                        "history entry {seq} of {namespace} is not an event"
                    ));
                };
                let mid = wire.mid.clone();
                let (emit, sender) = wire.into_emit();
                entries.push(HistoryEntry {
                    seq,
                    mid,
                    emit,
                    sender,
                });
            }
            Ok(HistoryRange {
                last: range.last,
                epoch: range.epoch,
                entries,
            })
        })
    }

    fn catch_up(&self, namespace: &str, since: u64, done: oneshot::Sender<()>) -> bool {
        let request = Inbound::CatchUp {
            namespace: namespace.to_owned(),
            since,
            done,
        };
        self.inbox.try_send(request).is_ok()
    }

    fn present(&self, namespace: &str, sid: &str, member: Option<&Member>) {
        let field = presence::field(namespace, sid);
        let member = member.map(presence::encode);
        let mut mirror = lock(&self.presence);
        match &member {
            Some(member) => mirror.fields.insert(field.clone(), member.clone()),
            None => mirror.fields.remove(&field),
        };
        // Queued under the mirror's lock: a rewrite's snapshot and the
        // single writes reach the queue in the order they were made.
        if self
            .outbound
            .try_send(Outbound::Present { field, member })
            .is_err()
        {
            self.presence_lost.store(true, Relaxed);
        }
    }

    fn presence<'a>(
        &'a self,
        namespace: &'a str,
    ) -> BoxFuture<'a, Result<Vec<Member>, Unreachable>> {
        Box::pin(async move {
            let Some(connection) = self.connection.get() else {
                return Err(Unreachable("not connected yet".into()));
            };
            let reading = presence::read(connection.clone(), &self.keys, namespace);
            match tokio::time::timeout(self.settings.command_timeout, reading).await {
                Ok(Ok(members)) => Ok(members),
                Ok(Err(error)) => Err(Unreachable(error.to_string())),
                Err(_) => Err(Unreachable(format!(
                    "no answer within cluster.command_timeout = {:?}",
                    self.settings.command_timeout
                ))),
            }
        })
    }

    fn undeliverable(&self) {
        self.stats.undeliverable.fetch_add(1, Relaxed);
    }

    fn sample(&self) -> BackplaneSample {
        let view = self.view();
        BackplaneSample {
            up: self.is_up(),
            nodes: view.nodes() as u64,
            remote_entries: view.entries() as u64,
            namespaces: self.namespaces.load(Relaxed),
            sent: self.stats.sent.load(Relaxed),
            received: self.stats.received.load(Relaxed),
            dropped: self.stats.dropped.load(Relaxed),
            undeliverable: self.stats.undeliverable.load(Relaxed),
            disconnects: self.stats.disconnects.load(Relaxed),
        }
    }

    /// Stops the Redis tasks and removes this node's registry entries and
    /// liveness key at once (bounded by `cluster.command_timeout`).
    fn leave(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            self.stop.cancel();
            if let Some(connection) = self.connection.get() {
                let leaving = tasks::leave(connection.clone(), &self.keys, self.node());
                if tokio::time::timeout(self.settings.command_timeout, leaving)
                    .await
                    .is_err()
                {
                    tracing::warn!(
                        "could not deregister from the cluster in time; the other nodes will expire this node"
                    );
                }
            }
        })
    }
}

/// The registry entry of a queue-group or responder subscription; `None`
/// for a plain one (tracked per namespace instead).
fn registry_entry(interest: Interest<'_>) -> Option<Entry> {
    match interest {
        Interest::Plain { .. } => None,
        Interest::Target {
            namespace,
            pattern,
            group,
        } => Some(Entry {
            namespace: namespace.to_owned(),
            pattern: pattern.to_string(),
            group: group.map(str::to_owned),
        }),
    }
}
