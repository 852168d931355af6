//! Origins and the operator endpoints against a real broker (PROTOCOL.md
//! §24): `server.allowed_origins` on native upgrades of `/v1/ws` and on the
//! Socket.IO paths; `/metrics` on `server.operator_listen` and behind
//! `server.operator_token` / `operator_token_file`.

use std::net::SocketAddr;

use herald_broker::{Broker, Error};
use herald_config::Settings;
use herald_protocol::{SUBPROTOCOL, WS_PATH};
use herald_tests::{
    HttpResponse, RawClient, TIMEOUT, http_get, http_request, local, refused, start_broker,
};
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

const TOKEN: &str = "s3cr3t-operator-token_0123";

/// A native upgrade of `/v1/ws` sending `Origin: origin`, when given.
async fn upgrade_with_origin(addr: SocketAddr, origin: Option<&str>) -> Result<RawClient, WsError> {
    let mut request = format!("ws://{addr}{WS_PATH}").into_client_request()?;
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static(SUBPROTOCOL),
    );
    if let Some(origin) = origin {
        headers.insert(
            "Origin",
            HeaderValue::from_str(origin).expect("a header value"),
        );
    }
    let connect = tokio_tungstenite::connect_async_with_config(request, None, true);
    let (ws, _) = tokio::time::timeout(TIMEOUT, connect)
        .await
        .expect("the upgrade answered in time")?;
    Ok(RawClient::new(ws))
}

/// `GET path` with the given extra header lines.
async fn get_with(addr: SocketAddr, path: &str, headers: &str) -> HttpResponse {
    http_request(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{headers}Connection: close\r\n\r\n"),
    )
    .await
}

fn json_error(response: &HttpResponse) -> (String, String) {
    let value: serde_json::Value = serde_json::from_str(&response.body).expect("a JSON body");
    let text = |key: &str| value["error"][key].as_str().unwrap_or_default().to_owned();
    (text("code"), text("message"))
}

#[tokio::test]
async fn native_upgrades_from_other_origins_are_refused_403() {
    let broker = start_broker(|s| {
        s.server.allowed_origins = vec!["https://app.example".into()];
    })
    .await;
    let addr = broker.addr();
    let response = refused(upgrade_with_origin(addr, Some("https://evil.example")).await);
    assert_eq!(response.status, 403, "{response:?}");
    let (code, message) = json_error(&response);
    assert_eq!(code, "origin_not_allowed");
    assert!(message.contains("server.allowed_origins"), "{message}");
    assert!(message.contains("https://evil.example"), "{message}");
    // No Origin (a service, the SDK), the listed one, and the same origin.
    let same = format!("http://{addr}");
    for origin in [None, Some("https://app.example"), Some(same.as_str())] {
        let mut client = upgrade_with_origin(addr, origin)
            .await
            .unwrap_or_else(|e| panic!("{origin:?} refused: {e}"));
        client.hello().await;
    }
    assert_eq!(broker.stats().origin_refused, 1);
    let metrics = broker.get("/metrics").await;
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l == "herald_origin_refused_total 1"),
        "{}",
        metrics.body
    );
}

#[tokio::test]
async fn by_default_only_same_origin_pages_reach_either_endpoint() {
    let broker = start_broker(|_| {}).await;
    let addr = broker.addr();
    let response = refused(upgrade_with_origin(addr, Some("https://evil.example")).await);
    assert_eq!(response.status, 403);
    let evil = "Origin: https://evil.example\r\n";
    let handshake = get_with(addr, "/socket.io/?EIO=4&transport=polling", evil).await;
    assert_eq!(handshake.status, 403, "{handshake:?}");
    let body: serde_json::Value = serde_json::from_str(&handshake.body).expect("JSON");
    assert_eq!(body["code"], 4, "Engine.IO's Forbidden");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("server.allowed_origins"),
        "{body}"
    );
    let same = format!("Origin: http://{addr}\r\n");
    let ok = get_with(addr, "/socket.io/?EIO=4&transport=polling", &same).await;
    assert_eq!(ok.status, 200, "{ok:?}");
    let mut client = upgrade_with_origin(addr, Some(&format!("http://{addr}")))
        .await
        .expect("same origin");
    client.hello().await;
    assert_eq!(broker.stats().origin_refused, 2);
}

#[tokio::test]
async fn metrics_move_to_the_operator_listener() {
    let broker = start_broker(|s| s.server.operator_listen = "127.0.0.1:0".into()).await;
    let operator = broker
        .handle()
        .operator_addr()
        .expect("an operator listener");
    assert_ne!(operator, broker.addr());
    let main = broker.get("/metrics").await;
    assert_eq!(main.status, 404, "{main:?}");
    let metrics = http_get(operator, "/metrics").await;
    assert_eq!(metrics.status, 200, "{metrics:?}");
    assert!(
        metrics.body.contains("herald_connections "),
        "{}",
        metrics.body
    );
    for addr in [broker.addr(), operator] {
        assert_eq!(http_get(addr, "/healthz").await.status, 200);
        assert_eq!(http_get(addr, "/readyz").await.status, 200);
    }
    // The operator listener serves nothing else.
    let ws = http_get(operator, WS_PATH).await;
    assert_eq!(ws.status, 404, "{ws:?}");
    assert_eq!(json_error(&ws).0, "not_found");
    let post = herald_tests::http_post(operator, "/metrics", None, b"").await;
    assert_eq!(post.status, 405, "{post:?}");
    broker.assert_healthy().await;
    assert!(broker.shutdown().await);
    assert!(
        tokio::net::TcpStream::connect(operator).await.is_err(),
        "the operator listener closes at shutdown"
    );
}

async fn assert_token_guards_metrics(addr: SocketAddr, health: SocketAddr) {
    let missing = http_get(addr, "/metrics").await;
    assert_eq!(missing.status, 401, "{missing:?}");
    assert_eq!(json_error(&missing).0, "unauthorized");
    assert!(
        missing
            .head
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer"),
        "{missing:?}"
    );
    for wrong in [
        "Authorization: Bearer s3cr3t-operator-token_0124\r\n",
        "Authorization: Bearer s3cr3t-operator-token_012\r\n",
        "Authorization: Basic czNjcjN0\r\n",
    ] {
        let response = get_with(addr, "/metrics", wrong).await;
        assert_eq!(response.status, 401, "{wrong}: {response:?}");
    }
    let good = get_with(
        addr,
        "/metrics",
        &format!("Authorization: Bearer {TOKEN}\r\n"),
    )
    .await;
    assert_eq!(good.status, 200, "{good:?}");
    assert!(
        good.body
            .lines()
            .any(|l| l == "herald_operator_unauthorized_total 4"),
        "{}",
        good.body
    );
    assert_eq!(http_get(health, "/healthz").await.status, 200);
    assert_eq!(http_get(health, "/readyz").await.status, 200);
}

#[tokio::test]
async fn a_token_guards_metrics_on_the_main_port() {
    let broker = start_broker(|s| s.server.operator_token = TOKEN.into()).await;
    assert_token_guards_metrics(broker.addr(), broker.addr()).await;
    assert_eq!(broker.stats().operator_unauthorized, 4);
}

#[tokio::test]
async fn a_token_file_guards_metrics_on_the_operator_listener() {
    let path = std::env::temp_dir().join(format!("herald-operator-token-{}", std::process::id()));
    std::fs::write(&path, format!("{TOKEN}\n")).expect("write the token file");
    let file = path.display().to_string();
    let broker = start_broker(|s| {
        s.server.operator_listen = "127.0.0.1:0".into();
        s.server.operator_token_file = file;
    })
    .await;
    let operator = broker
        .handle()
        .operator_addr()
        .expect("an operator listener");
    assert_token_guards_metrics(operator, operator).await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_bad_token_file_or_a_taken_operator_address_stops_start_up() {
    let mut settings = Settings::defaults();
    settings.server.listen = local(0);
    settings.server.operator_token_file = "/nonexistent/herald-token".into();
    let error = Broker::start(settings).await.expect_err("no token file");
    assert!(matches!(error, Error::OperatorToken { .. }), "{error:?}");
    assert!(
        error.to_string().contains("server.operator_token_file"),
        "{error}"
    );

    let taken = start_broker(|_| {}).await;
    let mut settings = Settings::defaults();
    settings.server.listen = local(0);
    settings.server.operator_listen = taken.addr().to_string();
    let error = Broker::start(settings)
        .await
        .expect_err("the address is taken");
    assert!(
        error.to_string().contains("server.operator_listen"),
        "{error}"
    );
}
