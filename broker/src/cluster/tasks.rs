//! The Redis side of a node: one multiplexed RESP3 connection (the `redis`
//! crate's `ConnectionManager`, which reconnects on its own and
//! re-subscribes every channel after a reconnect) carries commands,
//! publishes and subscription pushes. Three tasks use it:
//!
//! - the **publisher** drains the bounded outbound queue in order and sends
//!   each batch as one pipeline (one connection, so one publisher's events
//!   keep their order);
//! - the **listener** decodes pushed messages in arrival order and pushes
//!   what the router must hear into the inbox (`backplane::Inbound`);
//! - the **maintainer** keeps the channel subscriptions equal to the local
//!   interest, re-asserts this node's registry and liveness key every
//!   heartbeat (so a restarted Redis is refilled), and re-reads the other
//!   nodes' registries, pruning nodes whose liveness key expired.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{PushInfo, PushKind, RedisResult, Value};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::keys::Keys;
use super::registry::{self, Entry};
use super::wire::{Body, Message};
use super::{Cluster, Outbound, history};
use crate::backplane::{AppendDone, Backplane, Inbound, Numbered, RemoteView};
use crate::history::OwnedStamp;

/// Most queued messages sent as one pipeline.
const MAX_BATCH: usize = 512;
/// Longest wait between two reconnection attempts.
const MAX_RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// A Redis client for `url`, speaking RESP3 (needed for pushes on a
/// multiplexed connection).
pub(super) fn client(url: &str) -> RedisResult<redis::Client> {
    let separator = if url.contains('?') { '&' } else { '?' };
    redis::Client::open(format!("{url}{separator}protocol=resp3"))
}

/// Starts the connection and the three tasks.
pub(super) fn spawn(
    cluster: Arc<Cluster>,
    inbox: mpsc::Sender<Inbound>,
    outbound: mpsc::Receiver<Outbound>,
) {
    let (pushes_tx, pushes) = mpsc::channel(cluster.settings.queue_capacity);
    let push_cluster = cluster.clone();
    let on_push = move |push: PushInfo| -> Result<(), redis::aio::SendError> {
        if push.kind == PushKind::Disconnection {
            push_cluster.set_up(false);
        } else if pushes_tx.try_send(push).is_err() {
            push_cluster.stats.undeliverable.fetch_add(1, Relaxed);
        }
        Ok(())
    };
    let timeout = cluster.settings.command_timeout;
    let config = ConnectionManagerConfig::new()
        .set_push_sender(on_push)
        .set_automatic_resubscription()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_max_delay(MAX_RECONNECT_DELAY)
        .set_number_of_retries(2);
    let connection = match ConnectionManager::new_lazy_with_config(cluster.client.clone(), config) {
        Ok(connection) => connection,
        Err(error) => {
            warn!(%error, "cannot create the Redis connection; the cluster side is off");
            return;
        }
    };
    let _ = cluster.connection.set(connection.clone());
    tokio::spawn(publisher(cluster.clone(), connection.clone(), outbound));
    tokio::spawn(listener(cluster.clone(), inbox.clone(), pushes));
    tokio::spawn(maintainer(cluster, inbox, connection));
}

async fn publisher(
    cluster: Arc<Cluster>,
    mut connection: ConnectionManager,
    mut outbound: mpsc::Receiver<Outbound>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    loop {
        let received = tokio::select! {
            () = cluster.stop.cancelled() => return,
            n = outbound.recv_many(&mut batch, MAX_BATCH) => n,
        };
        if received == 0 {
            return;
        }
        let (pipe, waiting) = pipeline(&cluster, &mut batch);
        let n = received as u64;
        match pipe.query_async::<Vec<Value>>(&mut connection).await {
            Ok(replies) => {
                cluster.stats.sent.fetch_add(n, Relaxed);
                for (reply, done) in replies.iter().zip(waiting) {
                    let numbered = history::Appended::from_reply(reply)
                        .map(|a| Numbered {
                            seq: a.seq,
                            epoch: a.epoch,
                            duplicate: a.duplicate,
                        })
                        .map_err(|e| e.to_string());
                    if let Some(done) = done {
                        let _ = done.send(numbered);
                    }
                }
            }
            Err(error) => {
                cluster.stats.dropped.fetch_add(n, Relaxed);
                debug!(%error, "publishing to Redis failed");
                for done in waiting.into_iter().flatten() {
                    let _ = done.send(Err(format!(
                        "the cluster backplane (redis) failed: {error}"
                    )));
                }
                cluster.set_up(false);
            }
        }
    }
}

/// One pipeline for a batch: publishes, and history appends (after
/// loading their script, which a restarted Redis no longer has); returns
/// where each append's outcome goes, in the order of their replies.
fn pipeline(
    cluster: &Cluster,
    batch: &mut Vec<Outbound>,
) -> (redis::Pipeline, Vec<Option<AppendDone>>) {
    let mut pipe = redis::pipe();
    let mut waiting = Vec::new();
    if batch.iter().any(|o| matches!(o, Outbound::Append { .. })) {
        pipe.load_script(&cluster.scripts.append).ignore();
    }
    let keys = &cluster.keys;
    let presence = keys.presence(cluster.node());
    for outbound in batch.drain(..) {
        match outbound {
            Outbound::Publish { channel, message } => {
                pipe.publish(channel, message).ignore();
            }
            Outbound::Present {
                field,
                member: Some(member),
            } => {
                pipe.hset(&presence, field, member).ignore();
            }
            Outbound::Present {
                field,
                member: None,
            } => {
                pipe.hdel(&presence, field).ignore();
            }
            Outbound::Presence(fields) => {
                pipe.del(&presence).ignore();
                if !fields.is_empty() {
                    pipe.hset_multiple(&presence, &fields).ignore();
                }
            }
            Outbound::Append {
                namespace,
                mid,
                message,
                done,
            } => {
                let Some(bounds) = cluster.history_bounds(&namespace) else {
                    if let Some(done) = done {
                        let _ = done.send(Err(format!("namespace {namespace} keeps no history")));
                    }
                    continue;
                };
                let mid_key = mid.map(|mid| keys.message_id(&namespace, &mid));
                let (stream, meta) = (
                    keys.history_stream(&namespace),
                    keys.history_meta(&namespace),
                );
                let channel = keys.history_channel(&namespace);
                let epoch = cluster.new_epoch();
                let append = history::Append {
                    stream: &stream,
                    meta: &meta,
                    mid_key: mid_key.as_deref(),
                    channel: Some(&channel),
                    message: &message,
                    new_epoch: &epoch,
                    bounds,
                };
                pipe.invoke_script(&append.invocation(&cluster.scripts));
                waiting.push(done);
            }
        }
    }
    (pipe, waiting)
}

/// A numbered history event from the history channels, for the inbox.
fn stamped(cluster: &Cluster, payload: &[u8]) -> Option<Inbound> {
    let published = history::parse_published(payload)?;
    let message = Message::decode(published.message).ok()?;
    let Body::Event(wire) = message.body else {
        return None;
    };
    let mid = wire.mid.clone();
    let (emit, sender) = wire.into_emit();
    Some(Inbound::Stamped {
        here: message.from == cluster.node(),
        emit,
        sender,
        stamp: OwnedStamp {
            seq: published.seq,
            epoch: published.epoch.to_owned(),
            mid,
        },
    })
}

async fn listener(
    cluster: Arc<Cluster>,
    inbox: mpsc::Sender<Inbound>,
    mut pushes: mpsc::Receiver<PushInfo>,
) {
    loop {
        let push = tokio::select! {
            () = cluster.stop.cancelled() => return,
            push = pushes.recv() => push,
        };
        let Some(push) = push else { return };
        if push.kind == PushKind::PMessage {
            // [pattern, channel, payload]: only the history channels.
            let inbound = match push.data.get(2) {
                Some(Value::BulkString(payload)) => stamped(&cluster, payload),
                _ => None,
            };
            let Some(inbound) = inbound else {
                cluster.stats.undeliverable.fetch_add(1, Relaxed);
                continue;
            };
            cluster.stats.received.fetch_add(1, Relaxed);
            if inbox.send(inbound).await.is_err() {
                return;
            }
            continue;
        }
        if push.kind != PushKind::Message {
            continue;
        }
        let Some(Value::BulkString(bytes)) = push.data.get(1) else {
            cluster.stats.undeliverable.fetch_add(1, Relaxed);
            continue;
        };
        match Message::decode(bytes) {
            Ok(message) if message.from == cluster.node() => {}
            Ok(message) => {
                cluster.stats.received.fetch_add(1, Relaxed);
                match message.body.into_inbound(message.from) {
                    // In arrival order; waits while the dispatcher is
                    // behind (the pushes queue behind it is bounded).
                    Some(inbound) => {
                        if inbox.send(inbound).await.is_err() {
                            return;
                        }
                    }
                    None => cluster.view_stale.notify_one(),
                }
            }
            Err(error) => {
                cluster.stats.undeliverable.fetch_add(1, Relaxed);
                warn!(%error, "ignored a message from the cluster backplane");
            }
        }
    }
}

/// What the maintainer has already told Redis.
#[derive(Debug, Default)]
struct Asserted {
    control: bool,
    namespaces: BTreeSet<String>,
    entries_version: Option<u64>,
}

async fn maintainer(
    cluster: Arc<Cluster>,
    inbox: mpsc::Sender<Inbound>,
    mut connection: ConnectionManager,
) {
    let mut asserted = Asserted::default();
    let mut ticker = tokio::time::interval(cluster.settings.heartbeat_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let full = tokio::select! {
            () = cluster.stop.cancelled() => return,
            _ = ticker.tick() => true,
            () = cluster.changed.notified() => false,
            () = cluster.view_stale.notified() => true,
        };
        let was_up = cluster.is_up();
        match maintain(
            &cluster,
            &inbox,
            &mut connection,
            &mut asserted,
            full || !was_up,
        )
        .await
        {
            Ok(()) => {
                cluster.set_up(true);
                if !was_up || cluster.presence_lost.swap(false, Relaxed) {
                    // Redis may have restarted empty, or a write was lost.
                    cluster.rewrite_presence();
                }
                if !was_up {
                    // Redis may have restarted empty: tell the others to
                    // re-read this node's registry now.
                    announce(&cluster, &mut connection, Body::Changed).await;
                }
            }
            Err(error) => {
                debug!(%error, "cluster maintenance failed");
                cluster.set_up(false);
            }
        }
    }
}

async fn announce(cluster: &Cluster, connection: &mut ConnectionManager, body: Body) {
    let message = Message {
        from: cluster.node().to_owned(),
        body,
    };
    let sent: RedisResult<()> = redis::cmd("PUBLISH")
        .arg(cluster.keys.control_channel())
        .arg(message.encode())
        .query_async(connection)
        .await;
    if let Err(error) = sent {
        debug!(%error, "announcing to the cluster failed");
    }
}

async fn maintain(
    cluster: &Cluster,
    inbox: &mpsc::Sender<Inbound>,
    connection: &mut ConnectionManager,
    asserted: &mut Asserted,
    refresh_view: bool,
) -> RedisResult<()> {
    let keys = &cluster.keys;
    if !asserted.control {
        connection
            .subscribe(&[keys.control_channel(), keys.own_channel()])
            .await?;
        if cluster.keeps_history() {
            connection.psubscribe(keys.history_channels()).await?;
        }
        asserted.control = true;
    }
    let (namespaces, entries, version) = {
        let local = super::lock(&cluster.local);
        (local.namespaces(), local.entries(), local.entries_version)
    };
    for namespace in namespaces.difference(&asserted.namespaces.clone()) {
        connection
            .subscribe(keys.namespace_channel(namespace))
            .await?;
        asserted.namespaces.insert(namespace.clone());
    }
    for namespace in asserted.namespaces.clone().difference(&namespaces) {
        connection
            .unsubscribe(keys.namespace_channel(namespace))
            .await?;
        asserted.namespaces.remove(namespace);
    }
    cluster
        .namespaces
        .store(asserted.namespaces.len() as u64, Relaxed);
    register(cluster, connection, &entries).await?;
    if asserted.entries_version != Some(version) {
        asserted.entries_version = Some(version);
        announce(cluster, connection, Body::Changed).await;
    }
    if refresh_view {
        read_view(cluster, inbox, connection).await?;
    }
    Ok(())
}

/// Replaces this node's registry with `entries` and refreshes its liveness
/// key, atomically (other nodes never see it half written).
async fn register(
    cluster: &Cluster,
    connection: &mut ConnectionManager,
    entries: &[Entry],
) -> RedisResult<()> {
    let keys = &cluster.keys;
    let node = cluster.node();
    let ttl_ms = u64::try_from(cluster.settings.node_ttl.as_millis()).unwrap_or(u64::MAX);
    let mut pipe = redis::pipe();
    pipe.atomic().del(keys.registry(node)).ignore();
    if !entries.is_empty() {
        let members: Vec<Vec<u8>> = entries.iter().map(registry::encode).collect();
        pipe.sadd(keys.registry(node), members).ignore();
    }
    pipe.cmd("SET")
        .arg(keys.alive(node))
        .arg(1)
        .arg("PX")
        .arg(ttl_ms)
        .ignore();
    pipe.sadd(keys.nodes(), node).ignore();
    pipe.cmd("PEXPIRE")
        .arg(keys.presence(node))
        .arg(ttl_ms)
        .ignore();
    pipe.query_async(connection).await
}

/// Re-reads the other nodes' registries; prunes nodes whose liveness key
/// expired (and fails the requests this node was waiting on them for).
async fn read_view(
    cluster: &Cluster,
    inbox: &mpsc::Sender<Inbound>,
    connection: &mut ConnectionManager,
) -> RedisResult<()> {
    let keys = &cluster.keys;
    let mut nodes: Vec<String> = redis::cmd("SMEMBERS")
        .arg(keys.nodes())
        .query_async(connection)
        .await?;
    nodes.retain(|n| n != cluster.node());
    if nodes.is_empty() {
        cluster.set_view(RemoteView::default());
        return Ok(());
    }
    let mut alive = redis::pipe();
    for node in &nodes {
        alive.exists(keys.alive(node));
    }
    let alive: Vec<bool> = alive.query_async(connection).await?;
    let (live, dead): (Vec<_>, Vec<_>) = nodes.into_iter().zip(alive).partition(|(_, a)| *a);
    if !dead.is_empty() {
        let mut prune = redis::pipe();
        for (node, _) in &dead {
            prune.srem(keys.nodes(), node).ignore();
            prune.del(keys.registry(node)).ignore();
            prune.del(keys.presence(node)).ignore();
        }
        prune.query_async::<()>(connection).await?;
        for (node, _) in &dead {
            warn!(
                node,
                "cluster node expired; dropping its queue groups and responders"
            );
            let gone = Inbound::NodeGone { node: node.clone() };
            if inbox.send(gone).await.is_err() {
                return Ok(());
            }
        }
    }
    let mut registries = redis::pipe();
    for (node, _) in &live {
        registries.smembers(keys.registry(node));
    }
    let members: Vec<Vec<Vec<u8>>> = if live.is_empty() {
        Vec::new()
    } else {
        registries.query_async(connection).await?
    };
    let view: BTreeMap<String, Vec<Entry>> = live
        .into_iter()
        .map(|(node, _)| node)
        .zip(members)
        .map(|(node, members)| {
            let entries = members.iter().filter_map(|m| registry::decode(m)).collect();
            (node, entries)
        })
        .collect();
    cluster.set_view(RemoteView::new(&view));
    Ok(())
}

/// Removes this node from the cluster: registry, liveness key, membership,
/// and a `Left` announcement so the others forget it now.
pub(super) async fn leave(mut connection: ConnectionManager, keys: &Keys, node: &str) {
    let mut pipe = redis::pipe();
    pipe.del(keys.registry(node))
        .ignore()
        .del(keys.presence(node))
        .ignore()
        .del(keys.alive(node))
        .ignore()
        .srem(keys.nodes(), node)
        .ignore();
    let message = Message {
        from: node.to_owned(),
        body: Body::Left,
    };
    pipe.publish(keys.control_channel(), message.encode())
        .ignore();
    if let Err(error) = pipe.query_async::<()>(&mut connection).await {
        warn!(%error, "could not deregister from the cluster");
    }
}
