//! Bad input and unreachable brokers: one clear `herald: error: ...` line
//! on stderr and the documented exit code, never a panic. Also the broker
//! URL from `HERALD_URL`, a broker going away mid-command, and `--help`.

mod common;

use common::{Running, bare_herald, herald, run, unused_port};
use herald_tests::{short_grace, start_broker};

#[tokio::test]
async fn invalid_json_is_a_usage_error() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    for args in [
        &["pub", "/o", "ev", "{oops"][..],
        &["pub", "/o", "ev", ""],
        &["pub", "/o", "ev", "[1,]"],
        &["request", "/o", "ev", "{'single': 1}"],
    ] {
        let done = run(herald(&url, args)).await;
        done.assert_error(2, "invalid JSON payload");
    }
    let done = run(herald(&url, &["pub", "/o", "ev", "{\"a\":"])).await;
    done.assert_error(2, "EOF while parsing");
    broker.shutdown().await;
}

#[tokio::test]
async fn invalid_names_are_usage_errors_caught_before_connecting() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let control = "eu\u{1}west";
    let cases: [(&[&str], &str); 11] = [
        (
            &["pub", "orders", "ev", "{}"],
            "invalid namespace \"orders\"",
        ),
        (&["pub", "/orders/", "ev", "{}"], "invalid namespace"),
        (&["pub", "/o", "a..b", "{}"], "invalid event name \"a..b\""),
        (
            &["pub", "/o", "order.*", "{}"],
            "invalid event name \"order.*\"",
        ),
        (
            &["pub", "/o", "ev", "{}", "--room", ""],
            "invalid room \"\"",
        ),
        (&["sub", "/o", "a.*b"], "invalid pattern \"a.*b\""),
        (&["sub", "/o", "a.>.c"], "invalid pattern"),
        (&["sub", "/o", "a", "--room", control], "invalid room"),
        (
            &["sub", "/o", "a", "--queue", "bad group"],
            "invalid queue group \"bad group\"",
        ),
        (&["request", "/o", "a b", "{}"], "invalid event name"),
        (
            &["reply", "/o", "a", "--queue", "no/slash"],
            "invalid queue group",
        ),
    ];
    for (args, fragment) in cases {
        let done = run(herald(&url, args)).await;
        done.assert_error(2, fragment);
    }
    assert_eq!(
        broker.stats().connections_opened,
        0,
        "names are checked before connecting"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_broker_fails_fast_with_its_exit_code() {
    let url = format!("ws://127.0.0.1:{}", unused_port());
    for args in [
        &["pub", "/o", "ev", "{}"][..],
        &["sub", "/o", "ev"],
        &["request", "/o", "ev", "{}"],
        &["reply", "/o", "ev"],
    ] {
        let done = run(herald(&url, args)).await;
        done.assert_error(3, "could not connect");
        assert!(done.stderr.contains(&url), "names the URL: {done:?}");
    }
}

#[tokio::test]
async fn a_bad_url_is_a_usage_error() {
    for url in ["http://127.0.0.1:7400", "127.0.0.1:7400", "ws://"] {
        let done = run(herald(url, &["pub", "/o", "ev", "{}"])).await;
        done.assert_error(2, "invalid broker url");
    }
}

#[tokio::test]
async fn a_broker_refusing_the_upgrade_counts_as_unreachable() {
    let broker = start_broker(|_| {}).await;
    let wrong_path = format!("ws://{}/not/the/endpoint", broker.addr());
    let done = run(herald(&wrong_path, &["pub", "/o", "ev", "{}"])).await;
    done.assert_error(3, "404");
    broker.shutdown().await;
}

#[tokio::test]
async fn herald_url_names_the_broker_and_url_overrides_it() {
    let broker = start_broker(|_| {}).await;
    let mut command = bare_herald(&["sub", "/env", "ev", "--count", "1"]);
    command.env("HERALD_URL", broker.url());
    let subscriber = Running::started(command, "subscribed").await;

    let mut command = bare_herald(&["pub", "/env", "ev", "\"via env\""]);
    command.env("HERALD_URL", broker.url());
    run(command).await.assert_code(0);

    // --url wins over HERALD_URL (which points nowhere here).
    let mut command = herald(&broker.url(), &["pub", "/env", "ev", "\"via flag\""]);
    command.env("HERALD_URL", format!("ws://127.0.0.1:{}", unused_port()));
    let done = run(command).await;
    done.assert_code(0);
    assert_eq!(
        done.stdout, "published 1 event to 0 receivers\n",
        "{done:?}"
    );

    let done = subscriber.finish().await;
    done.assert_code(0);
    assert_eq!(
        done.lines(),
        [r#"{"namespace":"/env","event":"ev","payload":"via env"}"#]
    );

    // And an unreachable HERALD_URL is used when there is no --url.
    let mut command = bare_herald(&["pub", "/env", "ev", "1"]);
    let nowhere = format!("ws://127.0.0.1:{}", unused_port());
    command.env("HERALD_URL", &nowhere);
    run(command).await.assert_error(3, &nowhere);
    broker.shutdown().await;
}

#[tokio::test]
async fn sub_and_reply_exit_when_the_broker_goes_away() {
    let broker = start_broker(short_grace).await;
    let url = broker.url();
    let subscriber = Running::started(herald(&url, &["sub", "/gone", "ev"]), "subscribed").await;
    let echo = Running::started(herald(&url, &["reply", "/gone", "ask"]), "ready").await;

    assert!(broker.shutdown().await, "the broker shut down in time");

    for process in [subscriber, echo] {
        let done = process.finish().await;
        done.assert_error(3, "lost the connection to the broker");
    }
}

#[tokio::test]
async fn help_works_for_every_subcommand() {
    let done = run(bare_herald(&["--help"])).await;
    done.assert_code(0);
    for text in [
        "Usage: herald",
        "sub",
        "pub",
        "request",
        "reply",
        "Exit codes:",
        "4  request: no responders",
        "HERALD_URL",
        "ws://127.0.0.1:7400/v1/ws",
    ] {
        assert!(
            done.stdout.contains(text),
            "--help lacks {text:?}: {}",
            done.stdout
        );
    }

    for (command, text) in [
        ("sub", "--queue <GROUP>"),
        ("pub", "--repeat <N>"),
        ("request", "--timeout <DURATION>"),
        ("reply", "--count <N>"),
    ] {
        let done = run(bare_herald(&[command, "--help"])).await;
        done.assert_code(0);
        assert!(
            done.stdout.contains(&format!("Usage: herald {command}")),
            "{command} --help: {}",
            done.stdout
        );
        assert!(
            done.stdout.contains(text),
            "{command} --help lacks {text:?}"
        );
    }
    let done = run(bare_herald(&["sub", "--help"])).await;
    assert!(
        done.stdout
            .contains("events emitted to no room still arrive"),
        "sub --help explains rooms: {}",
        done.stdout
    );
}

#[tokio::test]
async fn usage_errors_exit_with_code_2() {
    for args in [
        &[][..],
        &["bogus"],
        &["sub", "/o"],
        &["pub", "/o", "ev"],
        &["sub", "/o", "ev", "--count", "0"],
        &["request", "/o", "ev", "{}", "--timeout", "soon"],
        &["pub", "/o", "ev", "{}", "--nope"],
    ] {
        let done = run(bare_herald(args)).await;
        done.assert_code(2);
        assert_eq!(done.stdout, "", "{args:?}");
        assert!(done.stderr.contains("error:"), "{args:?}: {done:?}");
        assert!(!done.stderr.contains("panicked"), "{args:?}: {done:?}");
    }
}

#[tokio::test]
async fn ctrl_c_stops_sub_and_reply_cleanly() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let subscriber = Running::started(herald(&url, &["sub", "/int", "ev"]), "subscribed").await;
    let echo = Running::started(herald(&url, &["reply", "/int", "ask"]), "ready").await;

    for process in [subscriber, echo] {
        process.interrupt().await;
        let done = process.finish().await;
        done.assert_code(0);
        assert!(!done.stderr.contains("error"), "{done:?}");
    }
    broker
        .wait_for_stats("both clients to leave", |s| s.connections_current == 0)
        .await;
    broker.shutdown().await;
}

#[tokio::test]
async fn an_oversized_payload_is_refused_with_a_clear_error() {
    let broker = start_broker(|settings| settings.limits.max_payload_bytes = 64).await;
    let big = format!("\"{}\"", "x".repeat(100));
    for args in [
        &["pub", "/big", "ev", big.as_str()][..],
        &["request", "/big", "ev", big.as_str()],
    ] {
        let done = run(herald(&broker.url(), args)).await;
        done.assert_error(1, "exceeds the broker's limit of 64");
    }
    broker.shutdown().await;
}

#[tokio::test]
async fn payloads_that_are_not_msgpack_are_reported_and_skipped() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    let mut subscriber = Running::started(
        herald(&url, &["sub", "/odd", "ev", "--count", "1"]),
        "subscribed",
    )
    .await;

    // A raw client emits an empty payload (not MessagePack), then a good one.
    let mut raw = broker.client().await;
    raw.emit_acked(herald_tests::emit("/odd", "ev", Vec::new()))
        .await;
    let warning = subscriber.wait_for_stderr("herald: warning:").await;
    assert!(warning.contains("/odd ev"), "{warning}");
    raw.emit_acked(herald_tests::emit("/odd", "ev", vec![0x2a]))
        .await;

    let done = subscriber.finish().await;
    done.assert_code(0);
    assert_eq!(
        done.lines(),
        [r#"{"namespace":"/odd","event":"ev","payload":42}"#]
    );
    broker.shutdown().await;
}
