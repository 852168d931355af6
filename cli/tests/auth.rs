//! `--token` / `HERALD_TOKEN` against a real broker checking real HS256
//! tokens (`auth.mode = "jwt"`): every connecting command presents it;
//! a missing or refused token exits 7 without printing the token; a
//! refused action is the broker's `forbidden`; a `herald sub` whose token
//! expires exits 7.

mod common;

use std::time::Duration;

use common::{Running, herald, run};
use herald_tests::auth::{mint, mint_with};
use herald_tests::tokens::{expiring, expiry, jwt_broker, pubsub};
use serde_json::json;

#[tokio::test]
async fn every_command_presents_the_token_from_the_flag_or_the_environment() {
    let broker = jwt_broker(|_| {}).await;
    let url = broker.url();
    let token = mint(&expiring(
        "cli-user",
        600,
        json!({
            "/orders": {
                "publish": { "allow": ["order.>"] },
                "subscribe": { "allow": ["order.>"] },
            },
            "/svc": {
                "publish": { "allow": ["echo"] },
                "respond": { "allow": ["echo"] },
            },
        }),
    ));

    let mut sub_cmd = herald(&url, &["sub", "/orders", "order.>", "--count", "1"]);
    sub_cmd.env("HERALD_TOKEN", &token);
    let mut sub = Running::started(sub_cmd, "subscribed").await;
    let published = run(herald(
        &url,
        &[
            "pub",
            "/orders",
            "order.created",
            "{\"id\":1}",
            "--token",
            &token,
        ],
    ))
    .await;
    published.assert_code(0);
    assert_eq!(
        published.stdout.trim_end(),
        "published 1 event to 1 receiver"
    );
    let line = sub.next_line().await;
    assert!(line.contains("\"order.created\""), "{line}");
    sub.finish().await.assert_code(0);

    let mut reply_cmd = herald(&url, &["reply", "/svc", "echo", "--count", "1"]);
    reply_cmd.env("HERALD_TOKEN", &token);
    let reply = Running::started(reply_cmd, "ready").await;
    let mut request = herald(&url, &["request", "/svc", "echo", "{\"ping\":true}"]);
    request.env("HERALD_TOKEN", &token);
    let answered = run(request).await;
    answered.assert_code(0);
    assert_eq!(answered.stdout.trim_end(), "{\"ping\":true}");
    reply.finish().await.assert_code(0);
    for done in [&published, &answered] {
        assert!(!done.stderr.contains(&token), "{:?}", done.stderr);
    }
}

#[tokio::test]
async fn a_missing_or_refused_token_exits_7_and_is_never_printed() {
    let broker = jwt_broker(|_| {}).await;
    let url = broker.url();
    let publish = ["pub", "/orders", "order.created", "{}"];

    let done = run(herald(&url, &publish)).await;
    done.assert_error(7, "unauthorized");

    let forged = mint_with(
        "not-the-brokers-secret-0123456789",
        &expiring("mallory", 600, pubsub("/orders", &[">"])),
    );
    let mut with_flag = publish.to_vec();
    with_flag.extend(["--token", &forged]);
    let done = run(herald(&url, &with_flag)).await;
    done.assert_error(7, "unauthorized");
    assert!(!done.stderr.contains(&forged), "{:?}", done.stderr);

    let mut from_env = herald(&url, &["sub", "/orders", ">"]);
    from_env.env("HERALD_TOKEN", &forged);
    let done = run(from_env).await;
    done.assert_error(7, "unauthorized");
    assert!(!done.stderr.contains(&forged), "{:?}", done.stderr);
}

#[tokio::test]
async fn an_action_the_token_does_not_allow_is_forbidden() {
    let broker = jwt_broker(|_| {}).await;
    let url = broker.url();
    let token = mint(&expiring(
        "reader",
        600,
        pubsub("/orders", &["order.created"]),
    ));
    let done = run(herald(
        &url,
        &["pub", "/orders", "order.deleted", "{}", "--token", &token],
    ))
    .await;
    done.assert_error(1, "forbidden");
    let done = run(herald(
        &url,
        &["sub", "/orders", "order.>", "--token", &token],
    ))
    .await;
    done.assert_error(1, "forbidden");
}

#[tokio::test]
async fn a_sub_whose_token_expires_exits_7() {
    let broker = jwt_broker(|s| expiry(s, Duration::from_secs(1), Duration::ZERO)).await;
    let token = mint(&expiring("brief", 2, pubsub("/orders", &["order.>"])));
    let sub = Running::started(
        herald(
            &broker.url(),
            &["sub", "/orders", "order.>", "--token", &token],
        ),
        "subscribed",
    )
    .await;
    let done = sub.finish().await;
    done.assert_error(7, "token expired");
    assert!(!done.stderr.contains(&token), "{:?}", done.stderr);
}
