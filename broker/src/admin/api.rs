//! The admin API's JSON endpoints (PROTOCOL.md §26), under `/admin/api/`:
//!
//! | method and path | what |
//! |---|---|
//! | `GET overview` | this node, uptime, read-only, the counters, the nodes |
//! | `GET nodes` | the cluster's nodes and their health |
//! | `GET connections?namespace=&room=&user=&transport=&client=&limit=` | this node's connections, filtered |
//! | `GET connections/{sid}` | one connection |
//! | `GET namespaces` | namespaces, their connections and subscriptions, rooms and members |
//! | `GET counters` | slow consumers, errors, drops, … |
//! | `POST connections/{sid}/disconnect` | close it (`kicked`) |
//! | `POST connections/{sid}/leave` `{"namespace","room"}` | make it leave a room |
//! | `POST emit` `{"namespace","event","room"?,"payload"?}` | emit an event |
//!
//! The actions go through the paths services use: an emit through
//! `admission::emit` and `Router::publish` as an HTTP publish does, a
//! room change through `Router::move_session` (which reaches a session on
//! another node too). With `admin.read_only` they are refused 403.

use std::collections::BTreeMap;

use bytes::Bytes;
use herald_protocol::CloseReason;
use herald_protocol::envelope::Emit;
use herald_protocol::names::{validate_namespace, validate_room};
use http::{Method, Request, Response, StatusCode, Uri};
use hyper::body::Body as HttpBody;
use serde::Deserialize;
use serde_json::{Value, json};

use super::observe::unix_ms;
use crate::admission::{self, EmitNames};
use crate::http::{Body, error, json as json_response};
use crate::outbox::Outbox;
use crate::publish::read_body;
use crate::router::RoomMove;
use crate::state::Shared;
use crate::stats::Stats;

/// Connections listed when the request gives no `limit`.
const DEFAULT_LIMIT: usize = 500;
/// Most connections one listing returns.
const MAX_LIMIT: usize = 10_000;
/// The transports a connection can have (the `transport` filter).
pub(crate) const TRANSPORTS: [&str; 3] = ["websocket", "socketio-websocket", "socketio-polling"];

/// A refusal of the API: status, code, message.
#[derive(Debug)]
pub(crate) struct ApiError(StatusCode, &'static str, String);

impl ApiError {
    fn bad(message: impl Into<String>) -> ApiError {
        ApiError(StatusCode::BAD_REQUEST, "bad_request", message.into())
    }

    fn response(&self) -> Response<Body> {
        error(self.0, self.1, &self.2)
    }
}

/// Serves one API request (`rest` is the path after `/admin/api/`).
pub(crate) async fn handle<B>(req: Request<B>, rest: &str, shared: &Shared) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let segments: Vec<&str> = rest.split('/').collect();
    let get = req.method() == Method::GET;
    let post = req.method() == Method::POST;
    let result = match (segments.as_slice(), get, post) {
        (["overview"], true, _) => Ok(overview(shared)),
        (["nodes"], true, _) => Ok(json!({ "nodes": nodes(shared) })),
        (["counters"], true, _) => Ok(counters(shared)),
        (["namespaces"], true, _) => Ok(namespaces(shared)),
        (["connections"], true, _) => connections(req.uri(), shared),
        (["connections", sid], true, _) => {
            find(shared, sid).map(|conn| connection_json(&conn, shared))
        }
        (["connections", sid, "disconnect"], _, true) => {
            writable(shared).and_then(|()| disconnect(shared, sid))
        }
        (["connections", sid, "leave"], _, true) => match writable(shared) {
            Ok(()) => leave(req, shared, sid).await,
            Err(e) => Err(e),
        },
        (["emit"], _, true) => match writable(shared) {
            Ok(()) => emit(req, shared).await,
            Err(e) => Err(e),
        },
        (
            ["overview" | "nodes" | "counters" | "namespaces" | "connections" | "stream"]
            | ["connections", _],
            false,
            _,
        ) => Err(ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET".into(),
        )),
        (["emit"] | ["connections", _, "disconnect" | "leave"], _, false) => Err(ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use POST".into(),
        )),
        _ => Err(ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no admin API endpoint /admin/api/{rest} (PROTOCOL.md §26)"),
        )),
    };
    match result {
        Ok(value) => json_response(StatusCode::OK, &value),
        Err(refusal) => refusal.response(),
    }
}

/// The actions are refused with `admin.read_only`.
fn writable(shared: &Shared) -> Result<(), ApiError> {
    if shared.settings.admin.read_only {
        return Err(ApiError(
            StatusCode::FORBIDDEN,
            "read_only",
            "the admin console is read-only (admin.read_only)".into(),
        ));
    }
    Ok(())
}

fn overview(shared: &Shared) -> Value {
    json!({
        "node": shared.node,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_ms": shared.now_ms(),
        "read_only": shared.settings.admin.read_only,
        "tail_rate": shared.settings.admin.tail_rate,
        "connections": shared.router.sessions().all().len(),
        "counters": counters(shared),
        "nodes": nodes(shared),
    })
}

/// This node's health: `shutting_down`, `degraded` (clustered, Redis
/// unreachable) or `ok`.
pub(crate) fn health(shared: &Shared) -> &'static str {
    if !shared.is_ready() {
        "shutting_down"
    } else if shared.cluster_degraded() {
        "degraded"
    } else {
        "ok"
    }
}

/// This node, and with `[cluster]` every live node of the registry.
pub(crate) fn nodes(shared: &Shared) -> Vec<Value> {
    let mut list = vec![json!({
        "id": shared.node,
        "self": true,
        "health": health(shared),
        "connections": shared.stats.connections_current.load(std::sync::atomic::Ordering::Relaxed),
        "uptime_ms": shared.now_ms(),
    })];
    if let Some(backplane) = &shared.backplane {
        let view = backplane.view();
        for (node, entries) in view.node_list() {
            list.push(json!({
                "id": node,
                "self": false,
                "health": "live",
                "registry_entries": entries,
            }));
        }
    }
    list
}

pub(crate) fn counters(shared: &Shared) -> Value {
    let s = shared.stats.snapshot();
    let closed: BTreeMap<&str, u64> = s
        .closed_by_reason
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| (r.as_str(), *n))
        .collect();
    json!({
        "connections_current": s.connections_current,
        "connections_opened": s.connections_opened,
        "connections_refused": s.connections_refused,
        "events_received": s.events_received,
        "events_delivered": s.events_delivered,
        "events_dropped": s.events_dropped,
        "slow_consumers": s.closed(CloseReason::SlowConsumer),
        "errors_sent": s.errors_sent,
        "bad_frames": s.bad_frames,
        "decode_errors": s.decode_errors,
        "requests": s.requests,
        "request_timeouts": s.request_timeouts,
        "publisher_stalls": s.publisher_stalls,
        "subscriptions": s.subscriptions,
        "rooms": shared.router.room_count(),
        "closed_by_reason": closed,
    })
}

/// One connection as the API shows it.
pub(crate) fn connection_json(conn: &Outbox, shared: &Shared) -> Value {
    let info = conn.info().clone();
    let mut rooms: Vec<(String, String)> = conn
        .rooms()
        .iter()
        .map(|(ns, room)| (ns.to_string(), room.to_string()))
        .collect();
    rooms.sort();
    let (frames, bytes) = conn.queue_depth();
    let delivery = &shared.settings.delivery;
    json!({
        "sid": &*conn.session,
        "node": shared.node,
        "transport": info.transport,
        "peer": info.peer.map(|p| p.to_string()),
        "user": info.user.as_deref(),
        "client": info.client.as_deref(),
        "since_ms": info.since_ms,
        "age_ms": unix_ms().saturating_sub(info.since_ms),
        "namespaces": info.namespaces.iter()
            .map(|(ns, n)| json!({"name": &**ns, "subscriptions": n}))
            .collect::<Vec<_>>(),
        "rooms": rooms.iter()
            .map(|(ns, room)| json!({"namespace": ns, "room": room}))
            .collect::<Vec<_>>(),
        "queue": {
            "frames": frames,
            "bytes": bytes,
            "capacity": delivery.queue_capacity,
            "max_bytes": delivery.max_queued_bytes,
        },
        "dropped": conn.dropped.load(std::sync::atomic::Ordering::Relaxed),
        "pending_requests": conn.pending_requests.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// The connection filters of `GET connections`.
#[derive(Debug, Default)]
pub(crate) struct ConnFilter {
    namespace: Option<String>,
    room: Option<String>,
    user: Option<String>,
    transport: Option<String>,
    client: Option<String>,
    limit: usize,
}

impl ConnFilter {
    /// Parses the query; a bad value or an unknown parameter is a 400
    /// naming it.
    pub(crate) fn parse(uri: &Uri) -> Result<ConnFilter, ApiError> {
        let mut filter = ConnFilter {
            limit: DEFAULT_LIMIT,
            ..ConnFilter::default()
        };
        for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
            let value = value.into_owned();
            if value.is_empty() {
                continue;
            }
            match &*key {
                "namespace" => {
                    validate_namespace(&value)
                        .map_err(|e| ApiError::bad(format!("namespace: {e}")))?;
                    filter.namespace = Some(value);
                }
                "room" => {
                    validate_room(&value).map_err(|e| ApiError::bad(format!("room: {e}")))?;
                    filter.room = Some(value);
                }
                "user" => filter.user = Some(value),
                "client" => filter.client = Some(value.to_lowercase()),
                "transport" => {
                    if !TRANSPORTS.contains(&value.as_str()) {
                        return Err(ApiError::bad(format!(
                            "transport {value:?} is not one of {}",
                            TRANSPORTS.join(", ")
                        )));
                    }
                    filter.transport = Some(value);
                }
                "limit" => {
                    filter.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            ApiError::bad(format!(
                                "limit {value:?} is not a number from 1 to {MAX_LIMIT}"
                            ))
                        })?;
                }
                other => {
                    return Err(ApiError::bad(format!(
                        "unknown filter {other:?}: use namespace, room, user, transport, client or limit"
                    )));
                }
            }
        }
        Ok(filter)
    }

    fn matches(&self, conn: &Outbox) -> bool {
        let info = conn.info();
        let namespace_ok = self
            .namespace
            .as_deref()
            .is_none_or(|ns| info.namespaces.iter().any(|(n, _)| **n == *ns));
        let user_ok = self
            .user
            .as_deref()
            .is_none_or(|u| info.user.as_deref() == Some(u));
        let transport_ok = self
            .transport
            .as_deref()
            .is_none_or(|t| info.transport == t);
        let client_ok = self.client.as_deref().is_none_or(|c| {
            info.client
                .as_deref()
                .is_some_and(|name| name.to_lowercase().contains(c))
        });
        drop(info);
        let room_ok = self.room.as_deref().is_none_or(|room| {
            conn.rooms()
                .iter()
                .any(|(ns, r)| **r == *room && self.namespace.as_deref().is_none_or(|n| **ns == *n))
        });
        namespace_ok && user_ok && transport_ok && client_ok && room_ok
    }
}

fn connections(uri: &Uri, shared: &Shared) -> Result<Value, ApiError> {
    let filter = ConnFilter::parse(uri)?;
    let mut matching: Vec<Outbox> = shared
        .router
        .sessions()
        .all()
        .into_iter()
        .filter(|c| filter.matches(c))
        .collect();
    matching.sort_by_key(|c| c.id);
    let total = matching.len();
    let listed: Vec<Value> = matching
        .iter()
        .take(filter.limit)
        .map(|c| connection_json(c, shared))
        .collect();
    Ok(json!({ "node": shared.node, "total": total, "connections": listed }))
}

/// Namespaces with their connections and subscriptions, and their rooms
/// with their members, from this node's connections.
pub(crate) fn namespaces(shared: &Shared) -> Value {
    #[derive(Default)]
    struct Ns {
        connections: u64,
        subscriptions: u64,
        rooms: BTreeMap<String, u64>,
    }
    let mut all: BTreeMap<String, Ns> = BTreeMap::new();
    for conn in shared.router.sessions().all() {
        for (ns, subs) in &conn.info().namespaces {
            let entry = all.entry(ns.to_string()).or_default();
            entry.connections += 1;
            entry.subscriptions += u64::from(*subs);
        }
        for (ns, room) in conn.rooms().iter() {
            *all.entry(ns.to_string())
                .or_default()
                .rooms
                .entry(room.to_string())
                .or_default() += 1;
        }
    }
    let list: Vec<Value> = all
        .into_iter()
        .map(|(name, ns)| {
            json!({
                "name": name,
                "connections": ns.connections,
                "subscriptions": ns.subscriptions,
                "rooms": ns.rooms.into_iter()
                    .map(|(room, members)| json!({"name": room, "members": members}))
                    .collect::<Vec<_>>(),
            })
        })
        .collect();
    json!({ "node": shared.node, "namespaces": list })
}

/// This node's connection `sid`, or 404 (naming its node when it is
/// another node's).
fn find(shared: &Shared, sid: &str) -> Result<Outbox, ApiError> {
    shared.router.sessions().get(sid).ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "unknown_session",
            format!(
                "no connection of this node ({}) has session id {:?}",
                shared.node,
                herald_protocol::names::excerpt(sid)
            ),
        )
    })
}

fn disconnect(shared: &Shared, sid: &str) -> Result<Value, ApiError> {
    let conn = find(shared, sid)?;
    super::kick(&conn);
    Ok(json!({ "disconnected": sid }))
}

/// The body of `POST connections/{sid}/leave`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LeaveBody {
    namespace: String,
    room: String,
}

/// The body of `POST emit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmitBody {
    namespace: String,
    event: String,
    #[serde(default)]
    room: Option<String>,
    #[serde(default)]
    payload: Value,
}

async fn json_body<T, B>(req: Request<B>, shared: &Shared) -> Result<T, ApiError>
where
    T: serde::de::DeserializeOwned,
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let limit = shared.settings.limits.max_payload_bytes + 4096;
    let deadline = shared.settings.server.handshake_timeout;
    let body = read_body(req.into_body(), limit, deadline)
        .await
        .map_err(|e| ApiError(e.status(), e.code(), e.to_string()))?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad(format!("the body is not the expected JSON: {e}")))
}

async fn leave<B>(req: Request<B>, shared: &Shared, sid: &str) -> Result<Value, ApiError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body: LeaveBody = json_body(req, shared).await?;
    validate_namespace(&body.namespace).map_err(|e| ApiError::bad(e.to_string()))?;
    validate_room(&body.room).map_err(|e| ApiError::bad(e.to_string()))?;
    let change = RoomMove {
        namespace: &body.namespace,
        room: &body.room,
        session: sid,
        join: false,
    };
    let max_rooms = shared.settings.limits.max_rooms_per_connection;
    shared
        .router
        .move_session(&change, max_rooms)
        .map_err(|e| match e.code {
            herald_protocol::ErrorCode::UnknownSession => {
                ApiError(StatusCode::NOT_FOUND, "unknown_session", e.message)
            }
            _ => ApiError(StatusCode::SERVICE_UNAVAILABLE, "unavailable", e.message),
        })?;
    Ok(json!({ "left": { "sid": sid, "namespace": body.namespace, "room": body.room } }))
}

async fn emit<B>(req: Request<B>, shared: &Shared) -> Result<Value, ApiError>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let body: EmitBody = json_body(req, shared).await?;
    let payload =
        Bytes::from(rmp_serde::to_vec(&body.payload).map_err(|e| ApiError::bad(e.to_string()))?);
    let names = EmitNames {
        namespace: &body.namespace,
        event: &body.event,
        room: body.room.as_deref(),
        except: None,
        payload: &payload,
    };
    admission::emit(shared, None, None, &names).map_err(|denied| {
        let status = match denied.code {
            herald_protocol::ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            herald_protocol::ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError(status, denied.code.as_str(), denied.message)
    })?;
    let emit = Emit {
        namespace: body.namespace,
        event: body.event,
        room: body.room,
        payload,
        ..Emit::default()
    };
    let published = shared.router.publish(None, &emit);
    Stats::add(&shared.stats.http_publishes, 1);
    Ok(json!({ "receivers": published.receivers }))
}
