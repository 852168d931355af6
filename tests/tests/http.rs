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

/// Every HTTP status line in `text`, in order (bodies here are JSON or
/// plain words, never a status line).
fn statuses(text: &str) -> Vec<u16> {
    text.match_indices("HTTP/1.1 ")
        .filter_map(|(at, prefix)| text.get(at + prefix.len()..at + prefix.len() + 3))
        .filter_map(|code| code.parse().ok())
        .collect()
}

/// Issue #9, defect 7: RFC 9112 §6.1 lets a server refuse a request that
/// frames its body twice (the shape of request smuggling); hyper would
/// serve it with the chunked body, so the broker checks the raw bytes.
#[tokio::test]
async fn a_request_with_both_content_length_and_transfer_encoding_is_refused_with_400_and_closed() {
    let broker = start_broker(|_| {}).await;
    let mut sub = broker.client().await;
    sub.subscribe("/", "x", None, false).await;
    let both = [
        "Content-Length: 1\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\ncontent-length: 1\r\n",
    ];
    for headers in both {
        for (method, path) in [("POST", "/v1/emit/x"), ("GET", "/healthz")] {
            // No `Connection: close`: the broker closes by itself, or
            // `http_request` fails waiting for the end.
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 {headers}\r\n1\r\n1\r\n0\r\n\r\n"
            );
            let response = http_request(broker.addr(), &request).await;
            let case = format!("{method} {path} with {headers:?}: {response:?}");
            assert_eq!(response.status, 400, "{case}");
            assert!(
                response
                    .body
                    .starts_with("{\"error\":{\"code\":\"bad_request\""),
                "{case}"
            );
            for needle in ["Content-Length", "Transfer-Encoding", "RFC 9112"] {
                assert!(response.body.contains(needle), "{needle}: {case}");
            }
            let head = response.head.to_ascii_lowercase();
            assert!(head.contains("connection: close"), "{case}");
            assert!(head.contains("content-type: application/json"), "{case}");
        }
    }

    // On one kept-alive connection, requests framed once (a Content-Length
    // body, then a chunked one that mentions the other header) are served;
    // the one framed twice is refused and nothing after it is read.
    let pipelined = "POST /v1/emit/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1\r\n\r\n1\
         POST /v1/emit/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\n\r\n\
         1b\r\n\"Content-Length: 5\\r\\n\\r\\n\"\r\n0\r\n\r\n\
         GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n\
         0\r\n\r\n\
         POST /v1/emit/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: 1\r\n\r\n3";
    let response = http_request(broker.addr(), pipelined).await;
    let text = format!("{}\r\n\r\n{}", response.head, response.body);
    assert_eq!(statuses(&text), [200, 200, 400], "{text}");
    sub.expect_event().await;
    sub.expect_event().await;
    sub.assert_no_event().await;
    assert_eq!(
        broker.stats().events_received,
        2,
        "only the two framed once"
    );
    broker.assert_healthy().await;
}
