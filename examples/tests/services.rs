//! The example services together against a real broker: two `billing`
//! copies (a queue group), one `notifier` and one `orders` run as child
//! processes (the example binaries cargo built for this test) against a
//! broker started in-process on a real socket.
//!
//! Checks: every order is billed exactly once across both billing copies,
//! and both take part (the broker hands a queue group's events round
//! robin); the notifier sees `order.created` and `order.billed` for every
//! order; orders gets its invoice by request/reply. Services talk to the
//! test only through their stdout lines ([`Line`]); every read is bounded
//! and children are killed when dropped.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use herald_examples::{Line, ORDER_BILLED, ORDER_CREATED};
use herald_tests::examples::example_binary;
use herald_tests::{TestBroker, start_broker};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{Instant, timeout_at};

/// Orders the test places.
const ORDERS: u64 = 50;
/// Longest the whole exchange of one phase may take.
const TIMEOUT: Duration = Duration::from_secs(20);

/// A stdout line of one running service: (which copy, the line).
type Tagged = (usize, Line);
/// A stdout line as read: (which copy, the text).
type Raw = (usize, String);

/// One running example service. Its stdout lines go, parsed, to the
/// channel it was started with; its stderr (logs) is kept for failure
/// messages. Killed when dropped.
struct Service {
    name: String,
    child: Child,
    logs: Arc<Mutex<String>>,
}

impl Service {
    /// Starts example `name` as copy `copy` with `args`, against `broker`,
    /// sending its stdout lines to `lines`.
    fn start(
        name: &str,
        copy: usize,
        broker: &TestBroker,
        args: &[&str],
        lines: &mpsc::Sender<Raw>,
    ) -> Service {
        let mut child = Command::new(example_binary(name))
            .args(args)
            .env_clear()
            .env("HERALD_URL", broker.url())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {name} example: {e}"));
        let label = format!("{name}#{copy}");
        let stdout = child.stdout.take().expect("stdout is piped");
        let tx = lines.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(text)) = reader.next_line().await {
                if tx.send((copy, text)).await.is_err() {
                    break;
                }
            }
        });
        let logs = Arc::new(Mutex::new(String::new()));
        let sink = logs.clone();
        let mut stderr = child.stderr.take().expect("stderr is piped");
        tokio::spawn(async move {
            let mut buffer = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buffer).await {
                let text = String::from_utf8_lossy(&buffer[..n]);
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&text);
            }
        });
        Service {
            name: label,
            child,
            logs,
        }
    }

    fn logs(&self) -> String {
        self.logs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends SIGTERM (as Ctrl-C or `docker stop` would).
    async fn terminate(&self) {
        let pid = self.child.id().expect("the service is running");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .await
            .expect("the kill command runs");
        assert!(status.success(), "kill -TERM {pid} failed");
    }

    /// Waits for the exit (bounded).
    async fn exit_status(&mut self) -> ExitStatus {
        match tokio::time::timeout(TIMEOUT, self.child.wait()).await {
            Ok(status) => status.expect("waiting works"),
            Err(_) => panic!(
                "{} did not exit within {TIMEOUT:?}; its logs:\n{}",
                self.name,
                self.logs()
            ),
        }
    }

    /// Waits for a clean exit (status 0).
    async fn assert_exits_cleanly(&mut self) {
        let status = self.exit_status().await;
        assert!(
            status.success(),
            "{} exited with {status}; its logs:\n{}",
            self.name,
            self.logs()
        );
    }
}

/// The next line on `lines` before `deadline`, parsed; `None` once every
/// sender is gone (the services' stdout ended).
async fn next_line(
    lines: &mut mpsc::Receiver<Raw>,
    deadline: Instant,
    waiting_for: &str,
    services: &[&Service],
) -> Option<Tagged> {
    match timeout_at(deadline, lines.recv()).await {
        Ok(None) => None,
        Ok(Some((copy, text))) => match text.parse::<Line>() {
            Ok(line) => Some((copy, line)),
            Err(error) => {
                panic!("copy {copy} printed a stray line while waiting for {waiting_for}: {error}")
            }
        },
        Err(_) => {
            let logs: Vec<String> = services
                .iter()
                .map(|s| format!("--- {}:\n{}", s.name, s.logs()))
                .collect();
            panic!(
                "timed out after {TIMEOUT:?} waiting for {waiting_for}\n{}",
                logs.join("\n")
            )
        }
    }
}

/// Reads `lines` until every service started on it printed `ready`.
async fn wait_ready(lines: &mut mpsc::Receiver<Raw>, services: &[&Service]) {
    let deadline = Instant::now() + TIMEOUT;
    let mut ready = vec![false; services.len()];
    while ready.contains(&false) {
        match next_line(lines, deadline, "ready lines", services).await {
            Some((copy, Line::Ready)) => ready[copy] = true,
            Some(other) => panic!("{other:?} before every service was ready"),
            None => panic!("a service ended before it was ready"),
        }
    }
}

/// Reads `lines` until `done` holds for everything read so far, then
/// stops the services with SIGTERM and reads the rest (so a late
/// duplicate is seen too). Returns every line read.
async fn collect_then_stop(
    lines: &mut mpsc::Receiver<Raw>,
    services: &mut [Service],
    waiting_for: &str,
    done: impl Fn(&[Tagged]) -> bool,
) -> Vec<Tagged> {
    let refs: Vec<&Service> = services.iter().collect();
    let deadline = Instant::now() + TIMEOUT;
    let mut seen = Vec::new();
    while !done(&seen) {
        match next_line(lines, deadline, waiting_for, &refs).await {
            Some(line) => seen.push(line),
            None => panic!("the services ended while waiting for {waiting_for}"),
        }
    }
    for service in services.iter() {
        service.terminate().await;
    }
    while let Some(line) = next_line(lines, deadline, "the services' last lines", &refs).await {
        seen.push(line);
    }
    for service in services.iter_mut() {
        service.assert_exits_cleanly().await;
    }
    seen
}

/// Order ids and how often each occurs among `ids`.
fn counts(ids: impl Iterator<Item = u64>) -> BTreeMap<u64, usize> {
    let mut counts = BTreeMap::new();
    for id in ids {
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Every order id from 1 to `ORDERS` exactly once.
fn each_order_once() -> BTreeMap<u64, usize> {
    (1..=ORDERS).map(|id| (id, 1)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_billing_copies_bill_each_order_once_and_the_notifier_sees_every_order_event() {
    let broker = start_broker(|_| {}).await;

    let (billing_tx, mut billing_lines) = mpsc::channel(256);
    let (notifier_tx, mut notifier_lines) = mpsc::channel(256);
    let (orders_tx, mut orders_lines) = mpsc::channel(256);
    let mut billing = vec![
        Service::start("billing", 0, &broker, &[], &billing_tx),
        Service::start("billing", 1, &broker, &[], &billing_tx),
    ];
    let mut notifier = vec![Service::start("notifier", 0, &broker, &[], &notifier_tx)];
    // Each channel closes once its services' stdout ended.
    drop((billing_tx, notifier_tx));
    wait_ready(&mut billing_lines, &billing.iter().collect::<Vec<_>>()).await;
    wait_ready(&mut notifier_lines, &notifier.iter().collect::<Vec<_>>()).await;

    let count = ORDERS.to_string();
    let mut orders = Service::start("orders", 0, &broker, &["--count", &count], &orders_tx);
    drop(orders_tx);
    let mut printed = Vec::new();
    let deadline = Instant::now() + TIMEOUT;
    while let Some((_, line)) = next_line(&mut orders_lines, deadline, "orders", &[&orders]).await {
        printed.push(line);
    }
    orders.assert_exits_cleanly().await;
    // The invoice comes first (request/reply), then every order, in order.
    let mut expected = vec![Line::Invoice {
        number: "INV-000001".into(),
        order_id: 1,
    }];
    expected.extend((1..=ORDERS).map(|order_id| Line::Created { order_id }));
    assert_eq!(printed, expected);

    let billed = collect_then_stop(&mut billing_lines, &mut billing, "billed lines", |seen| {
        seen.len() >= ORDERS as usize
    })
    .await;
    let billed_ids = billed.iter().map(|(_, line)| match line {
        Line::Billed { order_id } => *order_id,
        other => panic!("billing printed {other:?}"),
    });
    assert_eq!(
        counts(billed_ids),
        each_order_once(),
        "every order billed exactly once"
    );
    for copy in 0..billing.len() {
        assert!(
            billed.iter().any(|(by, _)| *by == copy),
            "billing copy {copy} billed nothing; the queue group should share the orders"
        );
    }

    let notified = collect_then_stop(
        &mut notifier_lines,
        &mut notifier,
        "notifications",
        |seen| seen.len() >= 2 * ORDERS as usize,
    )
    .await;
    for event in [ORDER_CREATED, ORDER_BILLED] {
        let ids = notified.iter().filter_map(|(_, line)| match line {
            Line::Notified {
                event: name,
                order_id,
            } if name == event => Some(*order_id),
            Line::Notified { .. } => None,
            other => panic!("notifier printed {other:?}"),
        });
        assert_eq!(counts(ids), each_order_once(), "{event} notifications");
    }

    broker.shutdown().await;
}
