//! The stock Socket.IO Admin UI (`@socket.io/admin-ui`) server protocol,
//! on the Socket.IO front end's admin namespace
//! (`admin.socketio_namespace`, default `/admin`), so that UI pointed at
//! Herald shows every connection of this node, native ones included.
//!
//! - CONNECT with `{username, password}` (or `{sessionId}` from an
//!   earlier `session`) checked against the admin credentials (the
//!   password of `admin.password_hash`, or the admin token as the
//!   password); refused with CONNECT_ERROR `invalid credentials`.
//! - On connect: `session` (a session id for reconnects), `config`
//!   (`supportedFeatures`, empty when `admin.read_only`), `all_sockets`;
//!   then `server_stats` every 2 s, and `socket_connected`,
//!   `socket_disconnected`, `room_joined`, `room_left` as they happen
//!   (told by `observe`).
//! - Commands: `emit(nsp, filter, ev, ...args)`, `join(nsp, room,
//!   filter)`, `leave(nsp, room, filter)`, `_disconnect(nsp, close,
//!   filter)`; `filter` is a room or a session id (every socket is in the
//!   room of its id), none meaning the whole namespace. An emit goes
//!   through `admission::emit` and `Router::publish`; room changes
//!   through `Router::join` / `Router::leave`; a disconnect closes the
//!   connection (`kicked`).
//!
//! A native connection shows as one socket per namespace it subscribed
//! in (`/` before it subscribes), with transport `websocket` and
//! `data.herald = "native"`.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use herald_protocol::envelope::Emit;
use herald_protocol::socketio::encode::{write_connect, write_connect_error, write_event_head};
use herald_protocol::socketio::json::Json;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::observe::{Change, Watcher};
use crate::admission::{self, EmitNames};
use crate::engineio::packet::message_item;
use crate::outbox::Outbox;
use crate::state::Shared;

/// How often `server_stats` is sent (as the reference server does).
const STATS_INTERVAL: Duration = Duration::from_secs(2);

/// The session ids handed out by `session`: a reconnecting UI presents
/// one instead of the password (kept while the broker runs, bounded).
static SESSIONS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Most remembered UI session ids.
const MAX_SESSIONS: usize = 256;

/// Whether `namespace` is the admin namespace of this broker.
pub(crate) fn is_admin_namespace(shared: &Shared, namespace: &str) -> bool {
    let admin = &shared.settings.admin;
    admin.enabled && !admin.socketio_namespace.is_empty() && admin.socketio_namespace == namespace
}

/// One connection's admin socket.
#[derive(Debug, Default)]
pub(crate) struct AdminSocket {
    /// Set once its credentials passed.
    ready: AtomicBool,
    /// Stops its `server_stats` ticker.
    stop: CancellationToken,
}

fn text_of(json: Option<&Json>) -> Option<String> {
    match json {
        Some(Json::Str(text)) => Some(text.clone()),
        _ => None,
    }
}

fn to_value(json: &Json) -> Value {
    serde_json::from_str(&json.to_string()).unwrap_or(Value::Null)
}

/// An event packet `["name", ...args]` in `namespace`.
fn event(namespace: &str, args: &Value) -> Bytes {
    let mut text = String::with_capacity(128);
    write_event_head(&mut text, namespace, None, 0);
    text.push_str(&args.to_string());
    message_item(&text, &[])
}

fn random_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// A CONNECT to the admin namespace: checks the credentials (on a task:
/// a password check is an argon2 hash), then answers and starts telling.
pub(crate) fn connect(
    shared: &Arc<Shared>,
    outbox: &Outbox,
    namespace: &str,
    auth: Option<&Json>,
) -> Arc<AdminSocket> {
    let socket = Arc::new(AdminSocket::default());
    let user = text_of(auth.and_then(|a| a.get("username"))).unwrap_or_default();
    let password = text_of(auth.and_then(|a| a.get("password"))).unwrap_or_default();
    let session = text_of(auth.and_then(|a| a.get("sessionId")));
    let (shared, outbox, namespace, task_socket) = (
        shared.clone(),
        outbox.clone(),
        Arc::<str>::from(namespace),
        socket.clone(),
    );
    shared.clone().tasks.spawn(async move {
        let known = session.is_some_and(|id| {
            SESSIONS
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&id)
        });
        if !known && !shared.admin.check(&user, &password).await {
            let mut text = String::new();
            write_connect_error(&mut text, &namespace, "invalid credentials");
            outbox.answer(&message_item(&text, &[]));
            return;
        }
        let mut text = String::new();
        write_connect(&mut text, &namespace, &outbox.session);
        outbox.answer(&message_item(&text, &[]));
        let id = random_id();
        {
            let mut sessions = SESSIONS.lock().unwrap_or_else(PoisonError::into_inner);
            if sessions.len() >= MAX_SESSIONS {
                sessions.remove(0);
            }
            sessions.push(id.clone());
        }
        outbox.answer(&event(&namespace, &json!(["session", id])));
        let features: &[&str] = if shared.settings.admin.read_only {
            &[]
        } else {
            &["EMIT", "JOIN", "LEAVE", "DISCONNECT", "MJOIN", "MLEAVE", "MDISCONNECT"]
        };
        outbox.answer(&event(
            &namespace,
            &json!(["config", { "supportedFeatures": features }]),
        ));
        outbox.answer(&event(&namespace, &json!(["all_sockets", all_sockets(&shared)])));
        task_socket.ready.store(true, Relaxed);
        shared.router.observer().add_watcher(Watcher {
            outbox: outbox.clone(),
            namespace: namespace.clone(),
        });
        let mut tick = tokio::time::interval(STATS_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    outbox.answer(&event(&namespace, &json!(["server_stats", server_stats(&shared)])));
                }
                () = task_socket.stop.cancelled() => break,
                () = outbox.close.cancelled() => break,
            }
        }
        shared
            .router
            .observer()
            .remove_watcher(&outbox, &namespace);
    });
    socket
}

/// The admin socket left (DISCONNECT, or the connection closed).
pub(crate) fn disconnect(socket: &AdminSocket) {
    socket.stop.cancel();
}

fn server_stats(shared: &Shared) -> Value {
    let all = shared.router.sessions().all();
    let polling = all
        .iter()
        .filter(|c| c.info().transport == "socketio-polling")
        .count();
    let mut namespaces: std::collections::BTreeMap<String, usize> = Default::default();
    for conn in &all {
        for ns in namespaces_of(conn) {
            *namespaces.entry(ns).or_default() += 1;
        }
    }
    json!({
        "serverId": shared.node,
        "hostname": shared.node,
        "pid": std::process::id(),
        "uptime": shared.now_ms() as f64 / 1000.0,
        "clientsCount": all.len(),
        "pollingClientsCount": polling,
        "aggregatedEvents": [],
        "namespaces": namespaces.into_iter()
            .map(|(name, n)| json!({"name": name, "socketsCount": n}))
            .collect::<Vec<_>>(),
    })
}

/// The namespaces a connection shows in (`/` when it has none).
fn namespaces_of(conn: &Outbox) -> Vec<String> {
    let info = conn.info();
    if info.namespaces.is_empty() {
        return vec!["/".to_owned()];
    }
    info.namespaces
        .iter()
        .map(|(ns, _)| ns.to_string())
        .collect()
}

fn all_sockets(shared: &Shared) -> Vec<Value> {
    let mut all = shared.router.sessions().all();
    all.sort_by_key(|c| c.id);
    all.iter()
        .flat_map(|conn| {
            namespaces_of(conn)
                .into_iter()
                .map(move |ns| serialize(conn, &ns))
        })
        .collect()
}

/// A connection in `namespace` as the Admin UI's `SerializedSocket`.
fn serialize(conn: &Outbox, namespace: &str) -> Value {
    let info = conn.info().clone();
    let mut rooms: Vec<String> = vec![conn.session.to_string()];
    rooms.extend(
        conn.rooms()
            .iter()
            .filter(|(ns, _)| **ns == *namespace)
            .map(|(_, room)| room.to_string()),
    );
    let (transport, kind) = match info.transport {
        "socketio-polling" => ("polling", "socket.io"),
        "socketio-websocket" => ("websocket", "socket.io"),
        _ => ("websocket", "native"),
    };
    json!({
        "id": &*conn.session,
        "clientId": &*conn.session,
        "transport": transport,
        "nsp": namespace,
        "data": { "herald": kind, "user": info.user.as_deref(), "client": info.client.as_deref() },
        "handshake": {
            "address": info.peer.map(|p| p.ip().to_string()).unwrap_or_default(),
            "headers": {},
            "query": {},
            "issued": info.since_ms,
            "secure": false,
            "time": info.since_ms.to_string(),
            "url": "",
            "xdomain": false,
        },
        "rooms": rooms,
    })
}

/// Tells one watcher of a change (called by `observe`).
pub(crate) fn notify(watcher: &Watcher, change: &Change<'_>) {
    let args = match *change {
        Change::Connected { conn, namespace } => {
            json!(["socket_connected", serialize(conn, namespace)])
        }
        Change::Disconnected {
            conn,
            namespace,
            reason,
        } => json!(["socket_disconnected", namespace, &*conn.session, reason]),
        Change::Room {
            namespace,
            room,
            session,
            joined,
        } => {
            let name = if joined { "room_joined" } else { "room_left" };
            json!([name, namespace, room, session])
        }
    };
    // A watcher that does not read misses updates; it is never waited for.
    let _ = watcher.outbox.offer(&event(&watcher.namespace, &args));
}

/// The local connections a command's `filter` names in `namespace`: a
/// session id, a room, or (none) every connection in the namespace.
fn targets(shared: &Shared, namespace: &str, filter: Option<&str>) -> Vec<Outbox> {
    if let Some(conn) = filter.and_then(|sid| shared.router.sessions().get(sid)) {
        return vec![conn];
    }
    shared
        .router
        .sessions()
        .all()
        .into_iter()
        .filter(|conn| match filter {
            Some(room) => conn
                .rooms()
                .iter()
                .any(|(ns, r)| **ns == *namespace && **r == *room),
            None => namespaces_of(conn).iter().any(|ns| ns == namespace),
        })
        .collect()
}

/// One command of the Admin UI (ignored before the credentials passed,
/// and with `admin.read_only`, which advertises no feature).
pub(crate) fn command(shared: &Shared, socket: &AdminSocket, name: &str, args: &[Json]) {
    if !socket.ready.load(Relaxed) || shared.settings.admin.read_only {
        return;
    }
    let Some(namespace) = text_of(args.first()) else {
        return;
    };
    let max_rooms = shared.settings.limits.max_rooms_per_connection;
    match name {
        "_disconnect" => {
            let filter = text_of(args.get(2));
            for conn in targets(shared, &namespace, filter.as_deref()) {
                super::kick(&conn);
            }
        }
        "join" | "leave" => {
            let Some(room) = text_of(args.get(1)) else {
                return;
            };
            if herald_protocol::names::validate_room(&room).is_err()
                || shared.router.is_session_room(&room)
            {
                return;
            }
            let filter = text_of(args.get(2));
            let mut seen = HashSet::new();
            for conn in targets(shared, &namespace, filter.as_deref()) {
                if !seen.insert(conn.id) {
                    continue;
                }
                if name == "join" {
                    let _ = shared.router.join(&conn, &namespace, &room, max_rooms);
                } else {
                    shared.router.leave(&conn, &namespace, &room);
                }
            }
        }
        "emit" => emit(shared, &namespace, args),
        _ => {}
    }
}

/// `emit(nsp, filter, ev, ...args)`: one argument is the payload, several
/// are spread as Socket.IO arguments.
fn emit(shared: &Shared, namespace: &str, args: &[Json]) {
    let Some(event) = text_of(args.get(2)) else {
        return;
    };
    let room = text_of(args.get(1));
    let values: Vec<Value> = args.iter().skip(3).map(to_value).collect();
    let (payload, spread) = match values.as_slice() {
        [one] => (rmp_serde::to_vec(one), false),
        _ => (rmp_serde::to_vec(&values), true),
    };
    let Ok(payload) = payload.map(Bytes::from) else {
        return;
    };
    let names = EmitNames {
        namespace,
        event: &event,
        room: room.as_deref(),
        except: None,
        payload: &payload,
    };
    if admission::emit(shared, None, None, &names).is_err() {
        return;
    }
    let emit = Emit {
        namespace: namespace.to_owned(),
        event,
        room,
        payload,
        args: spread,
        ..Emit::default()
    };
    shared.router.publish(None, &emit);
}
