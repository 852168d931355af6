//! `herald admin connections|namespaces|tail` against a real broker with
//! the admin console on: tables, `--json`, the filters, the token option
//! and its refusals, and the tail with its pattern filter.

mod common;

use common::{Running, herald, run};
use herald_tests::admin::{ADMIN_TOKEN, with_admin};
use herald_tests::{emit, start_broker};

fn admin_args<'a>(rest: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["admin", "--admin-token", ADMIN_TOKEN];
    args.extend_from_slice(rest);
    args
}

#[tokio::test]
async fn connections_and_namespaces_as_tables_and_json() {
    let broker = start_broker(with_admin).await;
    let url = broker.url();
    let mut client = broker.client().await;
    client.subscribe("/chat", "msg.*", None, false).await;
    client.join("/chat", "lobby").await;

    let table = run(herald(&url, &admin_args(&["connections"]))).await;
    table.assert_code(0);
    let lines = table.lines();
    assert!(lines[0].starts_with("SESSION"), "{lines:?}");
    assert!(
        lines[1].contains("websocket") && lines[1].contains("herald-tests"),
        "{lines:?}"
    );
    assert!(
        lines[1].contains("/chat(1)") && lines[1].contains("/chat:lobby"),
        "{lines:?}"
    );
    assert!(lines[2].starts_with("1 connection(s)"), "{lines:?}");

    let json = run(herald(
        &url,
        &admin_args(&["--json", "connections", "--room", "lobby"]),
    ))
    .await;
    json.assert_code(0);
    let value = &json.json_lines()[0];
    assert_eq!(value["total"], 1);
    assert_eq!(value["connections"][0]["rooms"][0]["room"], "lobby");
    let none = run(herald(
        &url,
        &admin_args(&["--json", "connections", "--namespace", "/other"]),
    ))
    .await;
    assert_eq!(none.assert_code(0).json_lines()[0]["total"], 0);

    let namespaces = run(herald(&url, &admin_args(&["namespaces"]))).await;
    namespaces.assert_code(0);
    let lines = namespaces.lines();
    assert!(lines[0].starts_with("NAMESPACE"), "{lines:?}");
    assert!(
        lines[1].starts_with("/chat") && lines[1].contains("lobby(1)"),
        "{lines:?}"
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_filters_and_a_console_that_is_off_are_errors() {
    let broker = start_broker(with_admin).await;
    let url = broker.url();
    let no_token = run(herald(&url, &["admin", "connections"])).await;
    no_token.assert_error(7, "admin API");
    let wrong = run(herald(
        &url,
        &[
            "admin",
            "--admin-token",
            "wrong-token-wrong-token",
            "namespaces",
        ],
    ))
    .await;
    wrong.assert_error(7, "admin token");
    let bad_filter = run(herald(
        &url,
        &admin_args(&["connections", "--transport", "pigeon"]),
    ))
    .await;
    bad_filter.assert_error(2, "transport");
    let bad_pattern = run(herald(&url, &admin_args(&["tail", "--pattern", "a..b"]))).await;
    bad_pattern.assert_error(2, "pattern");
    broker.shutdown().await;

    let off = start_broker(|_| {}).await;
    let not_served = run(herald(&off.url(), &admin_args(&["namespaces"]))).await;
    not_served.assert_error(1, "not found");
    off.shutdown().await;
}

#[tokio::test]
async fn tail_prints_the_sampled_events_matching_its_pattern() {
    let broker = start_broker(with_admin).await;
    let url = broker.url();
    let tail = Running::started(
        herald(
            &url,
            &admin_args(&["tail", "--pattern", "order.*", "--count", "1"]),
        ),
        "tailing",
    )
    .await;
    let mut publisher = broker.client().await;
    let payload = rmp_serde::to_vec(&serde_json::json!({"id": 42})).unwrap_or_default();
    publisher
        .emit_acked(emit("/shop", "cart.viewed", vec![0xc0]))
        .await;
    publisher
        .emit_acked(emit("/shop", "order.created", payload))
        .await;
    let done = tail.finish().await;
    done.assert_code(0);
    assert_eq!(done.stdout.trim_end(), r#"/shop order.created {"id":42}"#);
    broker.shutdown().await;
}
