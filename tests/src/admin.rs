//! For the admin console tests: a broker with `[admin]` on, requests to
//! the admin API with credentials, its live stream, and password hashes.

use std::net::SocketAddr;

use futures_util::StreamExt;
use herald_config::Settings;
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::{HttpResponse, TIMEOUT, Ws, http_request};

/// The admin token the tests configure.
pub const ADMIN_TOKEN: &str = "admin-token-0123456789";

/// `Authorization: Bearer` with [`ADMIN_TOKEN`].
pub fn bearer() -> String {
    format!("Bearer {ADMIN_TOKEN}")
}

/// A `configure` for `start_broker`: the console on, with [`ADMIN_TOKEN`].
pub fn with_admin(settings: &mut Settings) {
    settings.admin.enabled = true;
    settings.admin.token = ADMIN_TOKEN.into();
}

/// An argon2id PHC string of `password` (a fresh salt).
pub fn password_hash(password: &str) -> String {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).expect("a valid salt");
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .expect("argon2 hashes")
        .to_string()
}

fn auth_header(auth: Option<&str>) -> String {
    auth.map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default()
}

/// `GET path` with `Authorization: auth` when given.
pub async fn admin_get(addr: SocketAddr, path: &str, auth: Option<&str>) -> HttpResponse {
    let auth = auth_header(auth);
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Connection: close\r\n\r\n"),
    )
    .await
}

/// `POST path` with a JSON `body` and `Authorization: auth` when given.
pub async fn admin_post(
    addr: SocketAddr,
    path: &str,
    auth: Option<&str>,
    body: &str,
) -> HttpResponse {
    let auth = auth_header(auth);
    http_request(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    )
    .await
}

/// The JSON body of a 200 answer; fails on anything else.
pub fn ok_json(response: &HttpResponse) -> Value {
    assert_eq!(response.status, 200, "{response:?}");
    serde_json::from_str(&response.body).unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}"))
}

/// Checks a refusal: its status and its JSON error code.
pub fn assert_refused(response: &HttpResponse, status: u16, code: &str) {
    assert_eq!(response.status, status, "{response:?}");
    let body: Value = serde_json::from_str(&response.body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}"));
    assert_eq!(body["error"]["code"], code, "{response:?}");
}

/// Opens the admin stream (`/admin/api/stream?query`), with
/// `Authorization: auth` when given.
pub async fn open_stream(addr: SocketAddr, query: &str, auth: Option<&str>) -> Result<Ws, WsError> {
    let mut request = format!("ws://{addr}/admin/api/stream?{query}").into_client_request()?;
    if let Some(auth) = auth {
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(auth).expect("a header value"),
        );
    }
    let (ws, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| WsError::ConnectionClosed)??;
    Ok(ws)
}

/// The next JSON message of the stream whose `type` is `kind`, skipping
/// others; `None` when the stream ends. Bounded by [`TIMEOUT`] per message.
pub async fn next_of(ws: &mut Ws, kind: &str) -> Option<Value> {
    loop {
        let message = tokio::time::timeout(TIMEOUT, ws.next())
            .await
            .unwrap_or_else(|_| {
                panic!("no {kind:?} message on the admin stream within {TIMEOUT:?}")
            });
        match message {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).expect("stream messages are JSON");
                if value["type"] == kind {
                    return Some(value);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => return None,
        }
    }
}

/// Serves the files of `dir` over HTTP on a free loopback port (`/` is
/// `index.html`; no path may leave `dir`), for the stock Socket.IO Admin
/// UI's built page. Stops when the handle is aborted or dropped with the
/// runtime.
pub async fn serve_dir(dir: std::path::PathBuf) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use hyper::server::conn::http1;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port for the page server");
    let addr = listener.local_addr().expect("the page server's address");
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let dir = dir.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let dir = dir.clone();
                    async move {
                        Ok::<_, std::convert::Infallible>(static_file(&dir, request.uri().path()))
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, task)
}

fn static_file(
    dir: &std::path::Path,
    path: &str,
) -> hyper::Response<http_body_util::Full<bytes::Bytes>> {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let file = (!relative.split('/').any(|part| part == ".."))
        .then(|| std::fs::read(dir.join(relative)).ok())
        .flatten();
    let content_type = match relative.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript",
        Some("css") => "text/css",
        Some("png") => "image/png",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    let (status, body) = match file {
        Some(bytes) => (200, bytes),
        None => (404, b"not found\n".to_vec()),
    };
    let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::OK);
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
