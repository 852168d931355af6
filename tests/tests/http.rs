//! The HTTP side of the broker's port: health, readiness, unknown paths,
//! wrong methods and non-WebSocket requests to the WebSocket endpoint.

#![allow(clippy::unwrap_used)]

use herald_tests::{http_request, start_broker};

#[tokio::test]
async fn health_and_readiness_answer_200() {
    let broker = start_broker(|_| {}).await;
    let health = broker.get("/healthz").await;
    assert_eq!(health.status, 200, "{health:?}");
    assert_eq!(health.body.trim(), "ok");
    let ready = broker.get("/readyz").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    assert_eq!(ready.body.trim(), "ready");
    assert!(broker.handle().is_ready());
}

#[tokio::test]
async fn unknown_paths_are_404_json() {
    let broker = start_broker(|_| {}).await;
    let response = broker.get("/nope").await;
    assert_eq!(response.status, 404, "{response:?}");
    assert!(
        response
            .head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{response:?}"
    );
    assert!(response.body.starts_with("{\"error\":{"), "{response:?}");
    assert!(
        response.body.contains("\"code\":\"not_found\""),
        "{response:?}"
    );
    assert!(
        response.body.contains("/v1/ws"),
        "names the endpoint: {response:?}"
    );
}

#[tokio::test]
async fn wrong_methods_are_405() {
    let broker = start_broker(|_| {}).await;
    for path in ["/healthz", "/readyz", "/v1/ws"] {
        let response = http_request(
            broker.addr(),
            &format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert_eq!(response.status, 405, "{path}: {response:?}");
        assert!(response.body.contains("method_not_allowed"), "{response:?}");
    }
}

#[tokio::test]
async fn a_plain_get_of_the_websocket_endpoint_is_400() {
    let broker = start_broker(|_| {}).await;
    let response = broker.get("/v1/ws").await;
    assert_eq!(response.status, 400, "{response:?}");
    assert!(
        response.body.contains("\"code\":\"not_websocket\""),
        "{response:?}"
    );
    assert_eq!(broker.stats().connections_refused, 1);
    broker.assert_healthy().await;
}
