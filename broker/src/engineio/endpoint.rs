//! One HTTP request at an Engine.IO path, checked and dispatched as the
//! reference server does: the `Origin` first (403), a CORS preflight
//! (`OPTIONS`, 204), then `transport` (code 0), `EIO` (code 5), and then by
//! transport and `sid`: a handshake (GET only, code 2), a poll or a POST
//! of a known session (code 1 for an unknown sid), a WebSocket session,
//! or the upgrade of a long-polling one.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Body as HttpBody;
use tracing::{debug, warn};

use super::conn::EngineConn;
use super::cors::{self, Origin};
use super::polling::{self, PollSession};
use super::query::{self, ErrorCode, Refusal};
use super::sid::new_sid;
use super::{App, Transport, packet, run_app, websocket};
use crate::http::{Body, switching_protocols, websocket_key};
use crate::socket;
use crate::state::Shared;
use crate::stats::Stats;
use crate::wire::WireFormat;

/// Answers one request at the path of `app`.
pub(crate) async fn handle<B>(
    req: Request<B>,
    app: App,
    shared: Arc<Shared>,
    peer: SocketAddr,
) -> Response<Body>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let origin = match cors::check(req.headers(), &shared.settings.socketio.allowed_origins) {
        Ok(origin) => origin,
        Err(refusal) => {
            debug!(%peer, detail = refusal.detail, "engine.io request refused");
            return refusal.response();
        }
    };
    let mut response = match dispatch(req, app, &origin, shared, peer).await {
        Ok(response) => response,
        Err(refusal) => {
            debug!(%peer, code = refusal.code as u8, detail = refusal.detail, "engine.io request refused");
            refusal.response()
        }
    };
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        cors::apply(&mut response, &origin);
    }
    response
}

async fn dispatch<B>(
    mut req: Request<B>,
    app: App,
    origin: &Origin,
    shared: Arc<Shared>,
    peer: SocketAddr,
) -> Result<Response<Body>, Refusal>
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if req.method() == Method::OPTIONS {
        return Ok(cors::preflight(req.headers(), origin));
    }
    let query = query::parse(req.uri())?;
    let get = req.method() == Method::GET;
    // A handshake's `Authorization: Bearer` token (read only with auth on).
    let token = shared
        .auth
        .as_ref()
        .filter(|_| query.sid.is_none())
        .and_then(|_| crate::auth::bearer_token(req.headers()))
        .map(String::into_boxed_str);
    let lookup = |sid: &str| {
        shared
            .engineio
            .get(sid)
            .ok_or_else(|| Refusal::bad(ErrorCode::UnknownSid, format!("no open session {sid:?}")))
    };
    match (query.transport, query.sid) {
        (_, None) if !get => Err(Refusal::bad(
            ErrorCode::BadHandshakeMethod,
            format!("a new session starts with GET, not {}", req.method()),
        )),
        (Transport::Polling, None) => open_polling(app, &shared, token),
        (Transport::Polling, Some(sid)) => {
            let session = lookup(&sid)?;
            match *req.method() {
                Method::GET => polling::poll(&session, &shared).await,
                Method::POST => polling::post(&session, req, &shared).await,
                ref other => Err(Refusal::bad(
                    ErrorCode::BadRequest,
                    format!("long-polling uses GET and POST, not {other}"),
                )),
            }
        }
        (Transport::WebSocket, sid) => {
            let Some(key) = websocket_key(req.headers()) else {
                return Err(Refusal::bad(
                    ErrorCode::BadRequest,
                    "transport=websocket needs a WebSocket upgrade (RFC 6455, version 13)",
                ));
            };
            let next = match sid {
                None => Next::Serve(admit(&shared)?),
                Some(sid) => {
                    let session = lookup(&sid)?;
                    if !session.start_probe() {
                        return Err(Refusal::bad(
                            ErrorCode::BadRequest,
                            "this session is already upgrading or upgraded to a WebSocket",
                        ));
                    }
                    Next::Probe(session)
                }
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            let tasks = shared.tasks.clone();
            tasks.spawn(async move {
                let halves = match on_upgrade.await {
                    Ok(upgraded) => socket::split(upgraded),
                    Err(e) => {
                        warn!(%peer, error = %e, "engine.io upgrade failed");
                        None
                    }
                };
                match (halves, next) {
                    (Some(halves), Next::Serve(permit)) => {
                        let mut conn = websocket::open(halves, &shared, peer, permit);
                        conn.token = token;
                        run_app(app, conn, shared).await;
                    }
                    (Some(halves), Next::Probe(session)) => {
                        // Boxed: a probe is short-lived, and inline it
                        // would make every WebSocket session's task as
                        // large as its state.
                        Box::pin(websocket::probe(halves, session, shared)).await;
                    }
                    (None, Next::Probe(session)) => session.probe_failed(),
                    (None, Next::Serve(_)) => {}
                }
            });
            Ok(switching_protocols(&key, None))
        }
    }
}

/// What an accepted WebSocket upgrade goes on to.
enum Next {
    Serve(tokio::sync::OwnedSemaphorePermit),
    Probe(Arc<PollSession>),
}

/// A connection permit for a new session, unless the broker is shutting
/// down or at its limit (`server.max_connections`, shared with `/v1/ws`).
fn admit(shared: &Shared) -> Result<tokio::sync::OwnedSemaphorePermit, Refusal> {
    let refuse = |detail: String| {
        Stats::add(&shared.stats.connections_refused, 1);
        Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: ErrorCode::BadRequest,
            detail,
        }
    };
    if !shared.is_ready() {
        return Err(refuse("the broker is shutting down".into()));
    }
    shared
        .sessions
        .clone()
        .try_acquire_owned()
        .map_err(|_| refuse(shared.connection_limit.refusal()))
}

/// The handshake of a long-polling session: registered, its app started,
/// answered with the open packet.
fn open_polling(
    app: App,
    shared: &Arc<Shared>,
    token: Option<Box<str>>,
) -> Result<Response<Body>, Refusal> {
    let permit = admit(shared)?;
    let (outbox, queue) = crate::conn::new_outbox(shared, WireFormat::SocketIo);
    Stats::add(&shared.stats.connections_opened, 1);
    Stats::add(&shared.stats.connections_current, 1);
    let sid = new_sid();
    let settings = &shared.settings.socketio;
    let open = packet::open(
        &sid,
        &["websocket"],
        settings.ping_interval.as_millis(),
        settings.ping_timeout.as_millis(),
        settings.max_payload,
    );
    let (session, inbox) = PollSession::new(sid, outbox, queue, shared.engineio.waiting.clone());
    let session = Arc::new(session);
    shared.engineio.insert(session.clone());
    debug!(
        conn = session.outbox.id.0,
        "engine.io polling session opened"
    );
    let mut conn = EngineConn::polling(session, inbox, shared.clone(), permit);
    conn.token = token;
    shared.tasks.spawn(run_app(app, conn, shared.clone()));
    let mut response = Response::new(Full::new(Bytes::from(open)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    Ok(response)
}
