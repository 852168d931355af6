//! `herald request` and `herald reply` against a real broker: the echo
//! responder, queue-group responders, and the three ways a request fails
//! (no responders, timeout, an error reply), each with its exit code.

mod common;

use common::{Running, herald, run};
use herald_tests::start_broker;

/// Starts `herald reply` with `args` and waits for its "ready" note.
async fn responder(url: &str, args: &[&str]) -> Running {
    let mut full = vec!["reply"];
    full.extend_from_slice(args);
    Running::started(herald(url, &full), "ready").await
}

#[tokio::test]
async fn request_prints_what_the_echo_responder_sends_back() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let echo = responder(&url, &["/svc", "echo", "--count", "2"]).await;

    let payload = r#"{"b":[1,{"c":null}],"a":"ünï","n":-5,"f":0.5}"#;
    let done = run(herald(&url, &["request", "/svc", "echo", payload])).await;
    done.assert_code(0);
    assert_eq!(done.lines(), [payload], "the echo, keys in order");
    assert_eq!(done.stderr, "");

    let done = run(herald(
        &url,
        &["request", "/svc", "echo", "42", "--timeout", "3s"],
    ))
    .await;
    done.assert_code(0);
    assert_eq!(done.lines(), ["42"]);

    let done = echo.finish().await;
    done.assert_code(0);
    assert_eq!(done.stdout, "", "reply prints nothing on stdout");
    assert!(
        done.stderr
            .contains("herald: ready: answering \"echo\" in /svc"),
        "{done:?}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn responders_in_a_queue_group_share_the_requests() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let first = responder(&url, &["/svc", "work.*", "--queue", "echoers", "-n", "1"]).await;
    let second = responder(&url, &["/svc", "work.*", "--queue", "echoers", "-n", "1"]).await;

    for n in 0..2 {
        let payload = format!(r#"{{"n":{n}}}"#);
        let done = run(herald(&url, &["request", "/svc", "work.do", &payload])).await;
        done.assert_code(0);
        assert_eq!(done.lines(), [payload.as_str()]);
    }

    // Requests rotate among responders: each answered one and exited.
    for member in [first, second] {
        let done = member.finish().await;
        done.assert_code(0);
        assert!(
            done.stderr.contains("(queue group \"echoers\")"),
            "{done:?}"
        );
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn no_responders_has_its_own_exit_code() {
    let broker = start_broker(|_| {}).await;
    let done = run(herald(
        &broker.url(),
        &["request", "/svc", "nobody.home", "{}"],
    ))
    .await;
    done.assert_error(4, "no responders for \"nobody.home\" in /svc");
    broker.shutdown().await;
}

#[tokio::test]
async fn a_responder_that_never_answers_times_the_request_out() {
    let broker = start_broker(|_| {}).await;
    // A raw protocol client that subscribes as a responder and ignores
    // every request.
    let mut silent = broker.client().await;
    silent.subscribe("/svc", "slow", None, true).await;

    let done = run(herald(
        &broker.url(),
        &["request", "/svc", "slow", "{}", "--timeout", "300ms"],
    ))
    .await;
    done.assert_error(5, "no reply to \"slow\" in /svc within 300ms");

    let request = silent.expect_event().await;
    assert!(request.ack.is_some(), "the responder did get the request");
    broker.shutdown().await;
}

#[tokio::test]
async fn an_error_reply_has_its_own_exit_code() {
    let broker = start_broker(|_| {}).await;
    let mut failing = broker.client().await;
    failing.subscribe("/svc", "fragile", None, true).await;

    let requester = Running::spawn(herald(&broker.url(), &["request", "/svc", "fragile", "1"]));
    let request = failing.expect_event().await;
    let handle = request.ack.expect("a request carries a reply handle");
    let message = rmp_serde::to_vec("database is on fire").expect("a string encodes");
    failing.reply(handle, false, message).await;

    let done = requester.finish().await;
    done.assert_error(
        6,
        "the responder answered with an error: database is on fire",
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn a_request_the_echo_cannot_decode_is_answered_with_an_error() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let echo = responder(&url, &["/svc", "echo"]).await;

    // A raw request with an empty payload: not MessagePack.
    let mut raw = broker.client().await;
    raw.request(
        herald_tests::emit("/svc", "echo", Vec::new()),
        1,
        Some(5000),
    )
    .await;
    let reply = raw.expect_reply().await;
    assert!(!reply.ok, "an undecodable request gets an error reply");

    // The responder goes on answering.
    let done = run(herald(&url, &["request", "/svc", "echo", "true"])).await;
    done.assert_code(0);
    assert_eq!(done.lines(), ["true"]);
    drop(echo);
    broker.shutdown().await;
}
