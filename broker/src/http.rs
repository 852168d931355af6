//! The HTTP side of the broker's one port: the WebSocket upgrade at
//! `/v1/ws` (subprotocol `herald.v1` required, `Origin` checked against
//! `server.allowed_origins`, connection limits, refused while shutting
//! down), the HTTP publish API `POST /v1/emit/{event}` (`publish`),
//! Prometheus metrics at `GET /metrics` (`metrics`; behind
//! `server.operator_token` when set, and on the operator listener instead
//! when `server.operator_listen` is set, whose routes are here too),
//! `GET /healthz` and `GET /readyz`; and, only when
//! `testing.echo_endpoint` names a path, the echo endpoint's upgrade
//! (`echo`: no subprotocol, the same connection limit).
//!
//! Refusals are JSON `{"error":{"code":…,"message":…}}` with a 4xx/5xx
//! status, so a client can print exactly why it was turned away. A request
//! with both `Content-Length` and `Transfer-Encoding` is refused with 400
//! `bad_request` whatever its path, and its connection closed.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{SUBPROTOCOL, WS_PATH};
use http::header::{
    ALLOW, CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY,
    SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body as HttpBody;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::{debug, warn};

use crate::echo;
use crate::engineio::{self, App};
use crate::limits::{SessionPermit, origin};
use crate::metrics::{self, Sample};
use crate::presence_api;
use crate::publish::{self, EMIT_PATH};
use crate::session;
use crate::socket;
use crate::state::Shared;
use crate::stats::Stats;

pub(crate) type Body = Full<Bytes>;

/// Where a request goes, decided from its method and path alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    Health,
    Ready,
    Upgrade(Endpoint),
    /// An Engine.IO path, whatever the method (Engine.IO answers wrong
    /// methods itself, with its own error codes).
    EngineIo(App),
    Emit,
    /// `GET /v1/history/{event-or-pattern}`.
    History,
    /// `GET /v1/presence/{namespace}`.
    Presence,
    Metrics,
    /// The path exists, but not for this method; the value is `Allow`.
    WrongMethod(&'static str),
    NotFound,
}

/// Which WebSocket endpoint an upgrade is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `/v1/ws`: a Herald session, subprotocol `herald.v1` required.
    Herald,
    /// `testing.echo_endpoint`: plain WebSocket, every message sent back.
    Echo,
}

/// The configurable paths; empty means not served (the config check keeps
/// them apart from each other and from the broker's own paths).
#[derive(Debug, Clone, Copy, Default)]
struct Paths<'a> {
    /// `testing.echo_endpoint`.
    echo: &'a str,
    /// `socketio.path`, when `socketio.enabled`.
    socketio: &'a str,
    /// `testing.engineio_echo_endpoint`.
    engineio_echo: &'a str,
}

impl<'a> Paths<'a> {
    fn of(shared: &'a Shared) -> Paths<'a> {
        let settings = &shared.settings;
        Paths {
            echo: &settings.testing.echo_endpoint,
            socketio: if settings.socketio.enabled {
                &settings.socketio.path
            } else {
                ""
            },
            engineio_echo: &settings.testing.engineio_echo_endpoint,
        }
    }
}

/// Whether `path` is the Engine.IO endpoint at `configured`, which
/// answers with and without its trailing slash (clients differ).
fn engineio_path(path: &str, configured: &str) -> bool {
    !configured.is_empty() && path.trim_end_matches('/') == configured.trim_end_matches('/')
}

fn route(method: &Method, path: &str, paths: Paths<'_>) -> Route {
    let get = method == Method::GET;
    let echo_path = paths.echo;
    if engineio_path(path, paths.socketio) {
        return Route::EngineIo(App::SocketIo);
    }
    if engineio_path(path, paths.engineio_echo) {
        return Route::EngineIo(App::Echo);
    }
    match path {
        "/healthz" if get => Route::Health,
        "/readyz" if get => Route::Ready,
        "/metrics" if get => Route::Metrics,
        WS_PATH if get => Route::Upgrade(Endpoint::Herald),
        "/healthz" | "/readyz" | "/metrics" | WS_PATH => Route::WrongMethod("GET"),
        path if publish::is_emit_path(path) && method == Method::POST => Route::Emit,
        path if publish::is_emit_path(path) => Route::WrongMethod("POST"),
        path if crate::history_http::is_history_path(path) && get => Route::History,
        path if crate::history_http::is_history_path(path) => Route::WrongMethod("GET"),
        path if presence_api::is_presence_path(path) && get => Route::Presence,
        path if presence_api::is_presence_path(path) => Route::WrongMethod("GET"),
        path if !echo_path.is_empty() && path == echo_path && get => Route::Upgrade(Endpoint::Echo),
        path if !echo_path.is_empty() && path == echo_path => Route::WrongMethod("GET"),
        _ => Route::NotFound,
    }
}

/// Routes one HTTP request; one whose head carried both `Content-Length`
/// and `Transfer-Encoding` (`framed_twice`, from `framing`) is refused
/// before anything else.
pub(crate) async fn handle<B>(
    req: Request<B>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    framed_twice: bool,
) -> Result<Response<Body>, Infallible>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if framed_twice {
        debug!(%peer, "refused a request with both Content-Length and Transfer-Encoding");
        return Ok(framed_twice_refusal());
    }
    if shared.admin_on_main() && crate::admin::is_admin_path(req.uri().path()) {
        return Ok(crate::admin::handle(req, shared).await);
    }
    let response = match route(req.method(), req.uri().path(), Paths::of(&shared)) {
        route @ (Route::Health | Route::Ready) => probe(route, &shared),
        Route::Upgrade(endpoint) => upgrade(req, shared, peer, endpoint),
        Route::EngineIo(app) => engineio::handle(req, app, shared, peer).await,
        Route::Emit => publish::publish(req, &shared).await,
        Route::History => crate::history_http::history(&req, &shared).await,
        Route::Presence => presence_api::presence(req, &shared).await,
        // Served on the operator listener instead (`server.operator_listen`).
        Route::Metrics if shared.settings.server.operator_addr().is_some() => {
            not_found(req.uri().path())
        }
        Route::Metrics => operator_metrics(req.headers(), &shared),
        Route::WrongMethod(allow) => wrong_method(allow),
        Route::NotFound => not_found(req.uri().path()),
    };
    Ok(response)
}

/// Routes one HTTP request of the operator listener
/// (`server.operator_listen`): `GET /metrics`, `/healthz` and `/readyz`,
/// and the admin console when `admin.enabled`.
pub(crate) async fn handle_operator<B>(
    req: Request<B>,
    shared: Arc<Shared>,
) -> Result<Response<Body>, Infallible>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if shared.settings.admin.enabled && crate::admin::is_admin_path(req.uri().path()) {
        return Ok(crate::admin::handle(req, shared).await);
    }
    let path = req.uri().path();
    let response = match route(req.method(), path, Paths::default()) {
        route @ (Route::Health | Route::Ready) => probe(route, &shared),
        Route::Metrics => operator_metrics(req.headers(), &shared),
        Route::WrongMethod(allow) if matches!(path, "/healthz" | "/readyz" | "/metrics") => {
            wrong_method(allow)
        }
        _ => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!(
                "no route for {path}; the operator listener serves GET /metrics, /healthz and /readyz{}",
                if shared.settings.admin.enabled {
                    ", and the admin console at /admin"
                } else {
                    ""
                }
            ),
        ),
    };
    Ok(response)
}

/// `GET /healthz` and `GET /readyz`.
fn probe(route: Route, shared: &Shared) -> Response<Body> {
    match route {
        Route::Ready if !shared.is_ready() => {
            text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n")
        }
        Route::Ready if shared.cluster_degraded() => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "degraded: cluster backplane (redis) unreachable; delivering to local subscribers only\n",
        ),
        Route::Ready => text(StatusCode::OK, "ready\n"),
        _ => text(StatusCode::OK, "ok\n"),
    }
}

fn wrong_method(allow: &'static str) -> Response<Body> {
    let mut response = error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &format!("use {allow}"),
    );
    response
        .headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    response
}

fn not_found(path: &str) -> Response<Body> {
    error(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!(
            "no route for {path}; the WebSocket endpoint is {WS_PATH}, \
             HTTP publishing is POST {EMIT_PATH}/{{event}}"
        ),
    )
}

/// `GET /metrics`, when the request carries the operator token (if one
/// is configured; 401 otherwise).
fn operator_metrics(headers: &HeaderMap, shared: &Shared) -> Response<Body> {
    match shared.limits.operator_token.authorize(headers) {
        Ok(()) => metrics_text(shared),
        Err(unauthorized) => {
            Stats::add(&shared.stats.operator_unauthorized, 1);
            unauthorized.response()
        }
    }
}

/// 400 for a request that framed its body twice, closing the connection
/// (RFC 9112 §6.1): which of the two lengths a proxy in front of the broker
/// used is unknown, so nothing after it on this connection can be trusted.
fn framed_twice_refusal() -> Response<Body> {
    let mut response = error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "the request has both Content-Length and Transfer-Encoding, which is ambiguous \
         (RFC 9112 section 6.1); send one of them",
    );
    response
        .headers_mut()
        .insert(CONNECTION, HeaderValue::from_static("close"));
    response
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// `GET /metrics`: every metric as Prometheus text.
fn metrics_text(shared: &Shared) -> Response<Body> {
    let sample = Sample {
        stats: shared.stats.snapshot(),
        rooms: shared.router.room_count(),
        pending_requests: shared.router.pending_requests(),
        connection_limit: shared.connection_limit.sessions,
        cluster: shared.backplane.as_ref().map(|b| b.sample()),
        history: shared.router.history().map(|h| h.stats()),
    };
    let body = shared.stats.metrics.render(&sample);
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(metrics::CONTENT_TYPE),
    );
    response
}

/// A JSON response.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut body = value.to_string();
    body.push('\n');
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A JSON error response: `{"error":{"code":…,"message":…}}`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    json(
        status,
        &serde_json::json!({ "error": { "code": code, "message": message } }),
    )
}

fn header_has_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn upgrade<B>(
    mut req: Request<B>,
    shared: Arc<Shared>,
    peer: SocketAddr,
    endpoint: Endpoint,
) -> Response<Body>
where
    B: Send + 'static,
{
    let refuse = |status, code, message: &str| {
        Stats::add(&shared.stats.connections_refused, 1);
        debug!(%peer, code, message, "upgrade refused");
        error(status, code, message)
    };
    let headers = req.headers();
    let Some(key) = websocket_key(headers) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "not_websocket",
            "expected a WebSocket upgrade (RFC 6455, version 13)",
        );
    };
    if endpoint == Endpoint::Herald
        && !header_has_token(headers, SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL)
    {
        let offered = headers
            .get(SEC_WEBSOCKET_PROTOCOL)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none");
        return refuse(
            StatusCode::BAD_REQUEST,
            "unsupported_subprotocol",
            &format!(
                "missing or unsupported WebSocket subprotocol (offered: {offered}); \
                 offer Sec-WebSocket-Protocol: {SUBPROTOCOL}"
            ),
        );
    }
    if let Err(refused) = origin::check(headers, &shared.settings.server.allowed_origins) {
        Stats::add(&shared.stats.origin_refused, 1);
        return refuse(
            StatusCode::FORBIDDEN,
            "origin_not_allowed",
            refused.message(),
        );
    }
    if !shared.is_ready() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the broker is shutting down",
        );
    }
    let ip_slot = match shared.limits.open_session(peer.ip(), &shared.stats) {
        Ok(slot) => slot,
        Err(refused) => return shared.limits.refusal(refused),
    };
    let Ok(slot) = shared.sessions.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection_limit",
            &shared.connection_limit.refusal(),
        );
    };
    let permit = SessionPermit::new(slot, ip_slot);
    // The token of `Authorization: Bearer` (only read with auth on).
    let token = shared
        .auth
        .as_ref()
        .and_then(|_| crate::auth::bearer_token(req.headers()))
        .map(String::into_boxed_str);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => match (socket::split(upgraded), endpoint) {
                (Some(halves), Endpoint::Herald) => {
                    session::run(halves, shared, peer, permit, token).await;
                }
                (Some(halves), Endpoint::Echo) => echo::run(halves, shared, peer, permit).await,
                (None, _) => warn!(%peer, "upgraded connection is not a TCP stream; dropped"),
            },
            Err(e) => warn!(%peer, error = %e, "upgrade failed"),
        }
    });
    // A subprotocol the client did not offer must not be named (RFC 6455
    // §4.1): the echo endpoint names none.
    let subprotocol = (endpoint == Endpoint::Herald).then_some(SUBPROTOCOL);
    switching_protocols(&key, subprotocol)
}

/// The `Sec-WebSocket-Key` of a well-formed WebSocket upgrade request
/// (`Upgrade: websocket`, `Connection: upgrade`, version 13), if it is one.
pub(crate) fn websocket_key(headers: &HeaderMap) -> Option<HeaderValue> {
    let key = headers.get(SEC_WEBSOCKET_KEY)?;
    (header_has_token(headers, UPGRADE, "websocket")
        && header_has_token(headers, CONNECTION, "upgrade")
        && header_has_token(headers, SEC_WEBSOCKET_VERSION, "13"))
    .then(|| key.clone())
}

/// The 101 answer accepting a WebSocket upgrade whose key is `key`,
/// naming `subprotocol` when given.
pub(crate) fn switching_protocols(
    key: &HeaderValue,
    subprotocol: Option<&'static str>,
) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(UPGRADE, http::HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, http::HeaderValue::from_static("Upgrade"));
    if let Some(protocol) = subprotocol {
        h.insert(
            SEC_WEBSOCKET_PROTOCOL,
            http::HeaderValue::from_static(protocol),
        );
    }
    if let Ok(accept) = http::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn error_bodies_are_escaped_json() {
        let response = error(StatusCode::BAD_REQUEST, "x", "a\"b\\c\n");
        let body = response
            .into_body()
            .collect()
            .await
            .expect("a full body")
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(value["error"]["message"], "a\"b\\c\n");
        assert_eq!(value["error"]["code"], "x");
    }

    #[test]
    fn routes_depend_on_method_and_path() {
        let cases = [
            (Method::GET, "/healthz", Route::Health),
            (Method::GET, "/metrics", Route::Metrics),
            (Method::POST, "/metrics", Route::WrongMethod("GET")),
            (Method::GET, WS_PATH, Route::Upgrade(Endpoint::Herald)),
            (Method::POST, "/v1/emit/order.created", Route::Emit),
            (
                Method::GET,
                "/v1/emit/order.created",
                Route::WrongMethod("POST"),
            ),
            (Method::PUT, "/v1/emit", Route::WrongMethod("POST")),
            (Method::POST, "/v1/emitter", Route::NotFound),
            (Method::GET, "/", Route::NotFound),
        ];
        for (method, path, expected) in cases {
            assert_eq!(
                route(&method, path, Paths::default()),
                expected,
                "{method} {path}"
            );
        }
    }

    #[test]
    fn the_echo_endpoint_is_routed_only_when_configured() {
        let echo = "/v1/echo";
        let paths = Paths {
            echo,
            ..Paths::default()
        };
        assert_eq!(route(&Method::GET, echo, Paths::default()), Route::NotFound);
        assert_eq!(
            route(&Method::GET, echo, paths),
            Route::Upgrade(Endpoint::Echo)
        );
        assert_eq!(route(&Method::POST, echo, paths), Route::WrongMethod("GET"));
        assert_eq!(
            route(&Method::GET, WS_PATH, paths),
            Route::Upgrade(Endpoint::Herald)
        );
        assert_eq!(route(&Method::GET, "/", paths), Route::NotFound);
    }

    #[test]
    fn engineio_paths_take_every_method_with_or_without_the_slash() {
        let paths = Paths {
            socketio: "/socket.io/",
            engineio_echo: "/engine.io/",
            ..Paths::default()
        };
        for method in [Method::GET, Method::POST, Method::OPTIONS, Method::PUT] {
            for path in ["/socket.io/", "/socket.io"] {
                assert_eq!(route(&method, path, paths), Route::EngineIo(App::SocketIo));
            }
            assert_eq!(
                route(&method, "/engine.io/", paths),
                Route::EngineIo(App::Echo)
            );
        }
        assert_eq!(route(&Method::GET, "/socket.io/x", paths), Route::NotFound);
        assert_eq!(
            route(&Method::GET, "/socket.io/", Paths::default()),
            Route::NotFound
        );
    }
}

/// Why a query string was refused by [`query_params`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum QueryRefusal {
    /// A parameter that is not one of the names asked for.
    Unknown(String),
    /// A parameter given more than once.
    Repeated(String),
}

/// The values of the parameters `names` in `uri`'s query (URL-decoded), in
/// that order; any other parameter, or one given twice, is refused.
pub(crate) fn query_params<const N: usize>(
    uri: &http::Uri,
    names: [&str; N],
) -> Result<[Option<String>; N], QueryRefusal> {
    let mut values: [Option<String>; N] = std::array::from_fn(|_| None);
    let query = uri.query().unwrap_or_default();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let Some(slot) = names.iter().position(|n| *n == key) else {
            return Err(QueryRefusal::Unknown(key.into_owned()));
        };
        if values[slot].replace(value.into_owned()).is_some() {
            return Err(QueryRefusal::Repeated(key.into_owned()));
        }
    }
    Ok(values)
}
