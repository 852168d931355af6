//! Process tests of `herald-broker healthcheck`, the probe the Docker
//! image's `HEALTHCHECK` runs: exit 0 and `healthy: …` on stdout for a
//! broker that answers `/healthz`; exit 1 and `unhealthy: …` naming the
//! problem on stderr for everything else (nothing listening, a non-2xx
//! answer, no answer in time, a bad URL, a bad configuration).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::net::TcpListener;

use support::{Finished, Process, broker};

/// Runs `herald-broker <args>` to its end with an empty environment.
async fn healthcheck(args: &[&str]) -> Finished {
    Process::run(&mut broker(args, &[])).await
}

/// Asserts exit 1, nothing on stdout, and one `unhealthy:` line on stderr
/// that contains every one of `needles`.
fn assert_unhealthy(finished: &Finished, needles: &[&str]) {
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    assert!(finished.stdout.is_empty(), "{finished:?}");
    let message = finished.stderr.trim_end();
    assert!(
        message.starts_with("unhealthy: ") && !message.contains('\n'),
        "one `unhealthy:` line expected: {message:?}"
    );
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }
}

/// A port nothing listens on (bound to find it, then released).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test]
async fn a_serving_broker_is_healthy_at_an_explicit_url() {
    let broker = herald_tests::start_broker(|_| {}).await;
    let url = format!("http://{}/healthz", broker.addr());
    let finished = healthcheck(&["healthcheck", "--url", &url]).await;
    assert_eq!(finished.status.code(), Some(0), "{finished:?}");
    assert_eq!(finished.stdout, format!("healthy: {url} answered 200 OK\n"));
    assert!(finished.stderr.is_empty(), "{finished:?}");
    broker.shutdown().await;
}

#[tokio::test]
async fn without_a_url_the_configured_listen_address_is_probed_on_loopback() {
    let broker = herald_tests::start_broker(|_| {}).await;
    let port = broker.addr().port();
    let expected = format!("healthy: http://127.0.0.1:{port}/healthz answered 200 OK\n");
    // From a flag, the environment (as in the image) and a config file;
    // 0.0.0.0 cannot be connected to, so the probe uses 127.0.0.1.
    let listen = format!("0.0.0.0:{port}");
    let by_flag = healthcheck(&["healthcheck", "--listen", &listen]).await;
    assert_eq!(by_flag.stdout, expected, "{by_flag:?}");
    let by_env = Process::run(&mut broker_with_env(&listen)).await;
    assert_eq!(by_env.stdout, expected, "{by_env:?}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), format!("[server]\nlisten = \"{listen}\"\n")).unwrap();
    let config = file.path().to_str().unwrap();
    let by_file = healthcheck(&["--config", config, "healthcheck"]).await;
    assert_eq!(by_file.stdout, expected, "{by_file:?}");
    broker.shutdown().await;
}

fn broker_with_env(listen: &str) -> tokio::process::Command {
    broker(&["healthcheck"], &[("HERALD__SERVER__LISTEN", listen)])
}

#[tokio::test]
async fn nothing_listening_is_unhealthy_naming_the_address() {
    let port = closed_port();
    let listen = format!("127.0.0.1:{port}");
    let finished = healthcheck(&["healthcheck", "--listen", &listen]).await;
    assert_unhealthy(
        &finished,
        &[
            &format!("cannot connect to {listen}"),
            &format!("http://{listen}/healthz"),
        ],
    );
}

#[tokio::test]
async fn a_non_2xx_answer_is_unhealthy_naming_the_status() {
    let broker = herald_tests::start_broker(|_| {}).await;
    let url = format!("http://{}/no-such-page", broker.addr());
    let finished = healthcheck(&["healthcheck", "--url", &url]).await;
    assert_unhealthy(&finished, &[&url, "answered 404 Not Found"]);
    broker.shutdown().await;
}

#[tokio::test]
async fn a_server_that_never_answers_is_unhealthy_after_the_timeout() {
    // Bound but never accepting: the connection completes in the backlog,
    // the request is never answered.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/healthz", silent.local_addr().unwrap());
    let finished = healthcheck(&["healthcheck", "--url", &url, "--timeout", "200ms"]).await;
    assert_unhealthy(&finished, &[&url, "did not answer within 200ms"]);
}

#[tokio::test]
async fn a_bad_url_is_unhealthy_with_the_reason() {
    let finished = healthcheck(&["healthcheck", "--url", "https://127.0.0.1:7400/healthz"]).await;
    assert_unhealthy(
        &finished,
        &[
            "invalid health-check URL",
            "only http:// URLs are supported",
        ],
    );
    let finished = healthcheck(&["healthcheck", "--url", "http://exa mple/"]).await;
    assert_unhealthy(
        &finished,
        &["invalid health-check URL", "\"http://exa mple/\""],
    );
}

#[tokio::test]
async fn a_bad_configuration_is_unhealthy_naming_the_key() {
    let finished = healthcheck(&["healthcheck", "--set", "server.lisen=1"]).await;
    assert_unhealthy(&finished, &["server.lisen"]);
    let finished = Process::run(&mut broker(
        &["healthcheck"],
        &[("HERALD__SERVER__LISTEN", "not an address")],
    ))
    .await;
    assert_unhealthy(&finished, &["server.listen", "invalid socket address"]);
}

#[tokio::test]
async fn a_bad_timeout_is_a_usage_error_naming_the_flag() {
    let finished = healthcheck(&["healthcheck", "--timeout", "5"]).await;
    assert_eq!(finished.status.code(), Some(2), "{finished:?}");
    assert!(finished.stderr.contains("--timeout"), "{finished:?}");
}
