//! The admin console (`[admin]`, off by default; PROTOCOL.md §26): the
//! page at `GET /admin`, the JSON admin API under `/admin/api/`, its one
//! live stream, and the stock Socket.IO Admin UI protocol on the Socket.IO
//! front end.
//!
//! - `credentials`: who may use it (bearer token, argon2 password).
//! - `api`: the JSON endpoints: nodes, connections, namespaces, counters,
//!   and the actions (disconnect, emit, leave a room) through the same
//!   router and admission paths as the HTTP publish API and services.
//! - `stream`: `GET /admin/api/stream`, Server-Sent Events carrying
//!   per-namespace rates every second and a sampled live tail.
//! - `observe`: the taps in the router the stream and the Admin UI read
//!   (one relaxed atomic load per emit while nobody watches).
//! - `sio`: the `@socket.io/admin-ui` server protocol on the admin
//!   Socket.IO namespace (`admin.socketio_namespace`).
//! - `page.html`: the console itself, embedded (`include_str!`), no CDN.
//!
//! The console is served on `server.operator_listen` when that is set
//! (it is an operator's tool, like `/metrics`), otherwise on
//! `server.listen`.

mod api;
pub(crate) mod credentials;
pub(crate) mod observe;
pub(crate) mod sio;
mod stream;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body as HttpBody;

pub(crate) use self::credentials::Credentials;
use crate::http::{Body, error};
use crate::state::Shared;

/// The console's page, written for Herald (vanilla JS, charts drawn on a
/// canvas), embedded in the binary.
const PAGE: &str = include_str!("page.html");

/// The page's path; the API is under [`API_PREFIX`].
pub(crate) const PAGE_PATH: &str = "/admin";
/// The admin API's path prefix.
pub(crate) const API_PREFIX: &str = "/admin/api/";

/// Whether `path` is the console's (the page or the API).
pub(crate) fn is_admin_path(path: &str) -> bool {
    path == PAGE_PATH || path == "/admin/" || path.starts_with(API_PREFIX)
}

/// Serves one request of the console (the caller checked
/// [`is_admin_path`] and that the console is enabled here).
pub(crate) async fn handle<B>(req: Request<B>, shared: Arc<Shared>) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix(API_PREFIX) else {
        return if req.method() == Method::GET {
            page()
        } else {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "use GET",
            )
        };
    };
    // A browser cannot give a WebSocket an `Authorization` header: the
    // stream then takes it as its first message.
    let stream = rest == "stream" && req.method() == Method::GET;
    if (!stream || req.headers().contains_key(http::header::AUTHORIZATION))
        && let Err(unauthorized) = shared.admin.authorize(req.headers()).await
    {
        return unauthorized.response();
    }
    if stream {
        return stream::open(req, &shared);
    }
    api::handle(req, rest, &shared).await
}

/// Disconnects a connection for an operator (`kicked`): a Socket.IO
/// connection is first sent a DISCONNECT for each namespace it is in, so
/// its client reports `io server disconnect` (and does not reconnect) as
/// with a Socket.IO server's `socket.disconnect()`.
pub(crate) fn kick(conn: &crate::outbox::Outbox) {
    if conn.format == crate::wire::WireFormat::SocketIo {
        let namespaces: Vec<Box<str>> = conn
            .info()
            .namespaces
            .iter()
            .map(|(ns, _)| ns.clone())
            .collect();
        for namespace in namespaces {
            let mut text = String::new();
            herald_protocol::socketio::encode::write_disconnect(&mut text, &namespace);
            conn.answer(&crate::engineio::packet::message_item(&text, &[]));
        }
    }
    conn.close_with(herald_protocol::CloseReason::Kicked);
}

/// `GET /admin`: the page (it holds no data; it asks for the credentials
/// and calls the API with them).
fn page() -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(PAGE.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    response
}
