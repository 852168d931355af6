//! The HTTP side of the broker's one port: the WebSocket upgrade at
//! `/v1/ws` (subprotocol `herald.v1` required, connection limit, refused
//! while shutting down), `GET /healthz` and `GET /readyz`.
//!
//! Refusals are JSON `{"error":{"code":…,"message":…}}` with a 4xx/5xx
//! status, so a client can print exactly why it was turned away.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use herald_protocol::{SUBPROTOCOL, WS_PATH};
use http::header::{
    CONNECTION, CONTENT_TYPE, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tracing::{debug, warn};

use crate::session;
use crate::state::Shared;
use crate::stats::Stats;

pub(crate) type Body = Full<Bytes>;

/// Routes one HTTP request.
pub(crate) async fn handle<B>(
    req: Request<B>,
    shared: Arc<Shared>,
    peer: SocketAddr,
) -> Result<Response<Body>, Infallible>
where
    B: Send + 'static,
{
    let response = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/readyz") if shared.is_ready() => text(StatusCode::OK, "ready\n"),
        (&Method::GET, "/readyz") => text(StatusCode::SERVICE_UNAVAILABLE, "shutting down\n"),
        (&Method::GET, WS_PATH) => upgrade(req, shared, peer),
        (_, "/healthz" | "/readyz" | WS_PATH) => error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "use GET",
        ),
        (_, path) => error(
            StatusCode::NOT_FOUND,
            "not_found",
            &format!("no route for {path}; the WebSocket endpoint is {WS_PATH}"),
        ),
    };
    Ok(response)
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
}

/// A JSON error response.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    let body = format!(
        "{{\"error\":{{\"code\":{},\"message\":{}}}}}\n",
        json_string(code),
        json_string(message)
    );
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn header_has_token(headers: &HeaderMap, name: http::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn upgrade<B>(mut req: Request<B>, shared: Arc<Shared>, peer: SocketAddr) -> Response<Body>
where
    B: Send + 'static,
{
    let refuse = |status, code, message: &str| {
        Stats::add(&shared.stats.connections_refused, 1);
        debug!(%peer, code, message, "upgrade refused");
        error(status, code, message)
    };
    let headers = req.headers();
    let key = match headers.get(SEC_WEBSOCKET_KEY) {
        Some(key)
            if header_has_token(headers, UPGRADE, "websocket")
                && header_has_token(headers, CONNECTION, "upgrade")
                && header_has_token(headers, SEC_WEBSOCKET_VERSION, "13") =>
        {
            key.clone()
        }
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "not_websocket",
                "expected a WebSocket upgrade (RFC 6455, version 13)",
            );
        }
    };
    if !header_has_token(headers, SEC_WEBSOCKET_PROTOCOL, SUBPROTOCOL) {
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
    if !shared.is_ready() {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the broker is shutting down",
        );
    }
    let Ok(permit) = shared.sessions.clone().try_acquire_owned() else {
        return refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "connection_limit",
            &format!(
                "connection limit reached (server.max_connections = {})",
                shared.settings.server.max_connections
            ),
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    let tasks = shared.tasks.clone();
    tasks.spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let config = shared.ws_config();
                let ws = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                session::run(ws, shared, peer, permit).await;
            }
            Err(e) => warn!(%peer, error = %e, "upgrade failed"),
        }
    });
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(UPGRADE, http::HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, http::HeaderValue::from_static("Upgrade"));
    h.insert(
        SEC_WEBSOCKET_PROTOCOL,
        http::HeaderValue::from_static(SUBPROTOCOL),
    );
    if let Ok(accept) = http::HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\n"), "\"a\\\"b\\\\c\\u000a\"");
    }
}
