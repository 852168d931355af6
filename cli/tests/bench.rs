//! `herald bench` end to end: a small run of each message workload against a
//! real broker reports every message delivered, and bad options and an
//! unreachable broker get their exit codes. Speed is never asserted here.

mod common;

use common::{herald, run, unused_port};
use herald_tests::start_broker;

#[tokio::test]
async fn small_runs_deliver_every_message_and_report_no_loss() {
    let broker = start_broker(|_| {}).await;
    let url = broker.url();
    for workload in ["fanout", "pairs", "latency"] {
        let done = run(herald(
            &url,
            &[
                "bench",
                workload,
                "--scale",
                "0.01",
                "--no-progress",
                "--json",
            ],
        ))
        .await;
        done.assert_code(0);
        let records: serde_json::Value =
            serde_json::from_str(&done.stdout).expect("bench --json prints JSON");
        let record = &records[0];
        assert_eq!(record["workload"], workload, "{records}");
        assert_eq!(record["loss"], 0, "{workload}: {record}");
        let sent = record["sent"].as_u64().expect("sent count");
        let delivered = record["delivered"].as_u64().expect("delivered count");
        assert!(sent > 0, "{workload}: nothing sent: {record}");
        assert!(delivered >= sent, "{workload}: {record}");
    }
    let stats = broker.stats();
    assert!(stats.events_received > 0 && stats.events_delivered >= stats.events_received);
    broker.shutdown().await;
}

#[tokio::test]
async fn bad_options_and_an_unreachable_broker_get_their_exit_codes() {
    let broker = start_broker(|_| {}).await;
    let done = run(herald(
        &broker.url(),
        &["bench", "fanout", "--payload", "4"],
    ))
    .await;
    done.assert_error(2, "payload");
    broker.shutdown().await;

    let nobody = format!("ws://127.0.0.1:{}", unused_port());
    let done = run(herald(
        &nobody,
        &["bench", "pairs", "--quick", "--no-progress"],
    ))
    .await;
    done.assert_code(3);
}
