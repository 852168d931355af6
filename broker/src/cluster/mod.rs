//! Clustering over Redis: the router's remote side.
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
//! `backplane` runs the Redis side (connection, publisher, listener,
//! heartbeat), `wire` is the message format, `keys` the names.

mod backplane;
mod keys;
mod registry;
mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use herald_config::ClusterSettings;
use herald_protocol::envelope::Emit;
use thiserror::Error;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use self::keys::Keys;
pub(crate) use self::registry::RemoteView;
use self::registry::{Entry, LocalInterest};
pub(crate) use self::wire::Body;
use self::wire::Message;
pub(crate) use self::wire::WireEmit;
use crate::router::SubKey;
use crate::state::Shared;

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

/// One message waiting to be published: the channel and the bytes.
pub(crate) type Outbound = (String, Vec<u8>);

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

/// What `/metrics` and `/readyz` report about the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ClusterSample {
    pub(crate) up: bool,
    pub(crate) nodes: u64,
    pub(crate) remote_entries: u64,
    pub(crate) namespaces: u64,
    pub(crate) sent: u64,
    pub(crate) received: u64,
    pub(crate) dropped: u64,
    pub(crate) undeliverable: u64,
    pub(crate) disconnects: u64,
}

/// The cluster side of one node.
#[derive(Debug)]
pub(crate) struct Cluster {
    keys: Keys,
    settings: ClusterSettings,
    client: redis::Client,
    outbound: mpsc::Sender<Outbound>,
    outbound_rx: Mutex<Option<mpsc::Receiver<Outbound>>>,
    local: Mutex<LocalInterest>,
    /// Woken when the local interest changed.
    changed: Notify,
    /// Woken when another node announced a change.
    view_stale: Notify,
    view: RwLock<Arc<RemoteView>>,
    /// Namespaces whose channel this node listens on now.
    namespaces: AtomicU64,
    up: AtomicBool,
    cursor: AtomicUsize,
    stop: CancellationToken,
    connection: OnceLock<redis::aio::ConnectionManager>,
    pub(crate) stats: ClusterStats,
}

/// Lock a mutex even if a panicking thread poisoned it (the data is plain
/// counts, always consistent).
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Cluster {
    /// The cluster side for `settings`, with node id `node`; nothing runs
    /// until [`Cluster::start`].
    pub(crate) fn new(
        settings: &ClusterSettings,
        node: &str,
    ) -> Result<Arc<Cluster>, ClusterError> {
        let client =
            backplane::client(&settings.redis_url).map_err(|source| ClusterError::RedisUrl {
                url: settings.redis_url.clone(),
                source,
            })?;
        let (outbound, outbound_rx) = mpsc::channel(settings.queue_capacity);
        Ok(Arc::new(Cluster {
            keys: Keys::new(&settings.prefix, node),
            settings: settings.clone(),
            client,
            outbound,
            outbound_rx: Mutex::new(Some(outbound_rx)),
            local: Mutex::new(LocalInterest::default()),
            changed: Notify::new(),
            view_stale: Notify::new(),
            view: RwLock::new(Arc::new(RemoteView::default())),
            namespaces: AtomicU64::new(0),
            up: AtomicBool::new(false),
            cursor: AtomicUsize::new(0),
            stop: CancellationToken::new(),
            connection: OnceLock::new(),
            stats: ClusterStats::default(),
        }))
    }

    /// Starts the Redis side: connection, publisher, listener, heartbeat.
    pub(crate) fn start(self: &Arc<Self>, shared: &Arc<Shared>) {
        let outbound_rx = lock(&self.outbound_rx).take();
        if let Some(outbound_rx) = outbound_rx {
            backplane::spawn(self.clone(), shared.clone(), outbound_rx);
        }
    }

    /// This node's id.
    pub(crate) fn node(&self) -> &str {
        self.keys.node()
    }

    /// Whether Redis answered the last command.
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Relaxed)
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

    /// The other nodes' queue groups and responders, as last read.
    pub(crate) fn view(&self) -> Arc<RemoteView> {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set_view(&self, view: RemoteView) {
        *self.view.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(view);
    }

    /// A round-robin position for picking a node.
    pub(crate) fn next_cursor(&self) -> usize {
        self.cursor.fetch_add(1, Relaxed)
    }

    /// A subscription was added on this node.
    pub(crate) fn subscribed(&self, key: &SubKey) {
        let mut local = lock(&self.local);
        let changed = match registry_entry(key) {
            Some(entry) => local.add_entry(entry),
            None => local.add_namespace(&key.namespace),
        };
        drop(local);
        if changed {
            self.changed.notify_one();
        }
    }

    /// A subscription was removed on this node.
    pub(crate) fn unsubscribed(&self, key: &SubKey) {
        let mut local = lock(&self.local);
        let changed = match registry_entry(key) {
            Some(entry) => local.remove_entry(&entry),
            None => local.remove_namespace(&key.namespace),
        };
        drop(local);
        if changed {
            self.changed.notify_one();
        }
    }

    /// Publishes a local emit to the plain subscribers of the other nodes.
    pub(crate) fn forward_event(&self, emit: &Emit, sender: Option<&str>) {
        let channel = self.keys.namespace_channel(&emit.namespace);
        self.publish(channel, Body::Event(WireEmit::from_emit(emit, sender)));
    }

    /// Sends `body` to one node's own channel. False when it was dropped
    /// (Redis down or the queue full).
    pub(crate) fn send_to(&self, node: &str, body: Body) -> bool {
        self.publish(self.keys.node_channel(node), body)
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
        if self.outbound.try_send((channel, message.encode())).is_err() {
            self.stats.dropped.fetch_add(1, Relaxed);
            return false;
        }
        true
    }

    /// The numbers `/metrics` shows.
    pub(crate) fn sample(&self) -> ClusterSample {
        let view = self.view();
        ClusterSample {
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

    /// Leaves the cluster: stops the Redis tasks and removes this node's
    /// registry entries and liveness key at once (bounded by
    /// `cluster.command_timeout`).
    pub(crate) async fn leave(&self) {
        self.stop.cancel();
        if let Some(connection) = self.connection.get() {
            let leaving = backplane::leave(connection.clone(), &self.keys, self.node());
            if tokio::time::timeout(self.settings.command_timeout, leaving)
                .await
                .is_err()
            {
                tracing::warn!(
                    "could not deregister from the cluster in time; the other nodes will expire this node"
                );
            }
        }
    }
}

/// The registry entry of a queue-group or responder subscription; `None`
/// for a plain one (tracked per namespace instead).
fn registry_entry(key: &SubKey) -> Option<Entry> {
    let group = match (&key.group, key.responder) {
        (_, true) => None,
        (Some(group), false) => Some(group.to_string()),
        (None, false) => return None,
    };
    Some(Entry {
        namespace: key.namespace.to_string(),
        pattern: key.pattern.to_string(),
        group,
    })
}
