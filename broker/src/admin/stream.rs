//! `GET /admin/api/stream?namespace=&pattern=`: the console's one live
//! stream, a WebSocket of JSON text messages (a browser cannot set
//! headers on a WebSocket, so a page that has no `Authorization` header
//! to send sends `{"authorization": "Bearer …"}` as its first message):
//!
//! - `{"type":"open"}` once the tail is open (what is emitted from then
//!   on can be sampled);
//! - every second `{"type":"rates", …}`: emits per second per namespace
//!   on this node, the counters, and the samples dropped so far;
//! - `{"type":"event", …}` for each sampled event matching the filter,
//!   its payload as JSON.
//!
//! The tail is taken by `observe`: a bounded queue, at most
//! `admin.tail_rate` samples a second, the rest counted as dropped, so a
//! slow console or a flood never slows the broker.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use herald_protocol::Pattern;
use herald_protocol::names::validate_namespace;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tracing::debug;

use super::observe::{Sample, TailFilter};
use crate::http::{Body, error, switching_protocols, websocket_key};
use crate::state::Shared;

/// Longest a send to the console may take before the stream is closed.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message the console may send (its authorization).
const MAX_CLIENT_MESSAGE: usize = 4096;

/// The tail's filter from the query; a bad one is answered 400.
fn filter(uri: &Uri) -> Result<TailFilter, String> {
    let mut filter = TailFilter::default();
    for (key, value) in url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if value.is_empty() {
            continue;
        }
        match &*key {
            "namespace" => {
                validate_namespace(&value).map_err(|e| format!("namespace: {e}"))?;
                filter.namespace = Some(value.as_ref().into());
            }
            "pattern" => {
                let pattern = Pattern::parse(&value).map_err(|e| format!("pattern: {e}"))?;
                filter.pattern = Some(pattern);
            }
            other => {
                return Err(format!(
                    "unknown parameter {other:?}: the stream takes namespace and pattern"
                ));
            }
        }
    }
    Ok(filter)
}

/// Upgrades to the stream (the caller checked the credentials when the
/// request carried any).
pub(crate) fn open<B: Send + 'static>(mut req: Request<B>, shared: &Arc<Shared>) -> Response<Body> {
    let filter = match filter(req.uri()) {
        Ok(filter) => filter,
        Err(message) => return error(StatusCode::BAD_REQUEST, "bad_request", &message),
    };
    let Some(key) = websocket_key(req.headers()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "the admin stream is a WebSocket (RFC 6455, version 13)",
        );
    };
    let authorized = req.headers().contains_key(http::header::AUTHORIZATION);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let shared = shared.clone();
    shared.clone().tasks.spawn(async move {
        let Ok(upgraded) = on_upgrade.await else {
            return;
        };
        let mut config = WebSocketConfig::default();
        config.max_message_size = Some(MAX_CLIENT_MESSAGE);
        config.max_frame_size = Some(MAX_CLIENT_MESSAGE);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        serve(ws, &shared, filter, authorized).await;
    });
    switching_protocols(&key, None)
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// Waits for `{"authorization": "…"}` and checks it.
async fn first_message_auth(ws: &mut Ws, shared: &Shared) -> bool {
    let deadline = shared.settings.server.handshake_timeout;
    let Ok(Some(Ok(Message::Text(text)))) = tokio::time::timeout(deadline, ws.next()).await else {
        return false;
    };
    let value: Value = serde_json::from_str(&text).unwrap_or_default();
    let Some(Ok(header)) = value
        .get("authorization")
        .and_then(Value::as_str)
        .map(HeaderValue::from_str)
    else {
        return false;
    };
    let mut headers = HeaderMap::new();
    headers.insert(http::header::AUTHORIZATION, header);
    shared.admin.authorize(&headers).await.is_ok()
}

async fn send(ws: &mut Ws, value: &Value) -> bool {
    let message = Message::text(value.to_string());
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, ws.send(message)).await,
        Ok(Ok(()))
    )
}

async fn serve(mut ws: Ws, shared: &Shared, filter: TailFilter, authorized: bool) {
    if !authorized && !shared.admin.is_open() && !first_message_auth(&mut ws, shared).await {
        let close = CloseFrame {
            code: 1008.into(),
            reason: "unauthorized".into(),
        };
        let _ = ws.close(Some(close)).await;
        return;
    }
    let rate = u32::try_from(shared.settings.admin.tail_rate).unwrap_or(u32::MAX);
    let observer = shared.router.observer();
    let (guard, mut samples) = observer.open_tail(filter, shared.settings.admin.tail_rate);
    guard.tail.refill(rate);
    // Says the tail is open: what is emitted from now on can be sampled.
    let open = json!({
        "type": "open",
        "node": shared.node,
        "tail_rate": shared.settings.admin.tail_rate,
    });
    if !send(&mut ws, &open).await {
        return;
    }
    let mut last: HashMap<String, u64> = observer.rates().into_iter().collect();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    let started = std::time::Instant::now();
    let mut last_tick = started;
    loop {
        let ok = tokio::select! {
            _ = tick.tick() => {
                guard.tail.refill(rate);
                let elapsed = last_tick.elapsed().as_secs_f64().max(0.001);
                last_tick = std::time::Instant::now();
                let now: HashMap<String, u64> = observer.rates().into_iter().collect();
                let per_second: serde_json::Map<String, Value> = now
                    .iter()
                    .map(|(ns, n)| {
                        let delta = n.saturating_sub(last.get(ns).copied().unwrap_or(0));
                        (ns.clone(), json!((delta as f64 / elapsed * 10.0).round() / 10.0))
                    })
                    .collect();
                last = now;
                let message = json!({
                    "type": "rates",
                    "t": super::observe::unix_ms(),
                    "namespaces": per_second,
                    "dropped_samples": guard.tail.dropped.load(Relaxed),
                    "connections": shared.router.sessions().all().len(),
                    "counters": super::api::counters(shared),
                    "health": super::api::health(shared),
                });
                send(&mut ws, &message).await
            }
            sample = samples.recv() => match sample {
                Some(sample) => send(&mut ws, &sample_json(&sample)).await,
                None => false,
            },
            incoming = ws.next() => matches!(incoming, Some(Ok(
                Message::Text(_) | Message::Binary(_) | Message::Ping(_) | Message::Pong(_)
            ))),
            () = shared.shutdown.cancelled() => false,
        };
        if !ok {
            break;
        }
    }
    debug!(
        dropped = guard.tail.dropped.load(Relaxed),
        "admin stream closed"
    );
    let _ = tokio::time::timeout(SEND_TIMEOUT, ws.close(None)).await;
}

/// A sampled event as the stream sends it: its MessagePack payload as
/// JSON (bytes as arrays of numbers; a payload that does not decode as
/// `{"$undecodable": size}`).
pub(crate) fn sample_json(sample: &Sample) -> Value {
    let payload = rmpv::decode::read_value(&mut &sample.payload[..])
        .ok()
        .and_then(|v| serde_json::to_value(&v).ok())
        .unwrap_or_else(|| json!({ "$undecodable": sample.payload.len() }));
    json!({
        "type": "event",
        "ns": &*sample.namespace,
        "event": &*sample.event,
        "room": sample.room.as_deref(),
        "from": sample.from.as_deref(),
        "args": sample.args,
        "payload": payload,
        "at_ms": sample.at_ms,
    })
}
