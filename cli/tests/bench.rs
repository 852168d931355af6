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

/// A two-second soak at small rates, every part of the mix on.
const SMALL_SOAK: [&str; 26] = [
    "bench",
    "soak",
    "--duration",
    "2s",
    "--report-every",
    "1s",
    "--fanout-subscribers",
    "2",
    "--fanout-rate",
    "50",
    "--pairs",
    "1",
    "--pairs-rate",
    "50",
    "--request-rate",
    "10",
    "--churn-rate",
    "5",
    "--churn-events",
    "2",
    "--churn-event-rate",
    "50",
    "--settle-timeout",
    "4s",
    "--request-timeout",
    "1s",
];

#[tokio::test]
async fn soak_exits_0_when_clean_and_1_when_clients_are_refused() {
    let broker = start_broker(|_| {}).await;
    let mut args = SMALL_SOAK.to_vec();
    args.push("--json");
    let done = run(herald(&broker.url(), &args)).await;
    done.assert_code(0);
    let summary: serde_json::Value =
        serde_json::from_str(&done.stdout).expect("soak --json prints its summary");
    assert_eq!(summary["lost"], 0, "{summary}");
    assert_eq!(summary["errors"], 0, "{summary}");
    assert_eq!(summary["reports"].as_array().map(Vec::len), Some(2));
    broker.shutdown().await;

    // Room for the steady connections only (3 fanout, 2 pairs, 4 requesters
    // and 2 responders, 1 churn publisher): every churn client is refused.
    let broker = start_broker(|settings| settings.server.max_connections = 12).await;
    let done = run(herald(&broker.url(), &SMALL_SOAK)).await;
    done.assert_code(1);
    assert!(done.stdout.contains("FAIL"), "{}", done.stdout);
    let last = done.stderr.lines().last().unwrap_or_default();
    assert!(last.contains("error: the soak failed"), "{}", done.stderr);

    let done = run(herald(&broker.url(), &["bench", "soak", "--quick"])).await;
    done.assert_error(2, "--quick");
    broker.shutdown().await;
}
