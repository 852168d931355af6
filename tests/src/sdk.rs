//! Helpers for the tests that drive a broker through the SDK
//! (`herald-client`): `tests/tests/sdk.rs` and `tests/tests/sdk_restart.rs`.
//!
//! SDK handlers run in the client's own tasks, so a test learns what they
//! got through a channel: [`forward`] makes a handler that sends every value
//! into one, and [`recv`] (or [`bounded`] around any future) awaits it. As
//! everywhere in this crate, every wait is bounded by [`TIMEOUT`] and fails
//! with a message saying what was awaited; nothing sleeps to synchronise.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use herald_client::{Client, ClientBuilder, ConnectionState, ReconnectPolicy, Recovery};
use tokio::sync::{mpsc, oneshot};

use crate::{TIMEOUT, TestBroker};

/// A reconnect back-off fast enough for tests: 20 ms doubling up to 200 ms,
/// retrying forever.
pub const FAST_RECONNECT: ReconnectPolicy = ReconnectPolicy {
    initial: Duration::from_millis(20),
    max: Duration::from_millis(200),
    factor: 2.0,
    max_attempts: None,
};

/// Awaits `future`, failing the test after [`TIMEOUT`] with a message naming
/// `what` was awaited.
pub async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(TIMEOUT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {TIMEOUT:?} waiting for {what}"),
    }
}

/// The next value from `rx` (bounded by [`TIMEOUT`]); fails the test if the
/// channel closed instead.
pub async fn recv<T>(rx: &mut mpsc::Receiver<T>) -> T {
    match bounded("an event", rx.recv()).await {
        Some(value) => value,
        None => panic!("the channel closed while an event was awaited"),
    }
}

/// A handler (for `on`, `on_queue`, `on_event`, ...) that forwards every
/// value it gets into `tx`; a closed channel is ignored.
pub fn forward<T: Send + 'static>(
    tx: &mpsc::Sender<T>,
) -> impl Fn(T) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync + 'static {
    let tx = tx.clone();
    move |value| {
        let tx = tx.clone();
        Box::pin(async move {
            let _ = tx.send(value).await;
        })
    }
}

/// Waits until `client`'s connection state is `state` (bounded by
/// [`TIMEOUT`]); `name` says which client in a failure message. The state
/// the client is in now counts, so a state it has already reached (and not
/// left) is not missed.
pub async fn wait_state(client: &Client, name: &str, state: ConnectionState) {
    let mut changes = client.state_changes();
    let waited = bounded(
        &format!("{name} to be {state:?}"),
        changes.wait_for(|s| *s == state),
    )
    .await;
    if let Err(error) = waited {
        panic!("{name}'s state changes ended while waiting for {state:?}: {error}");
    }
}

/// An SDK client of `broker` named `name` (the `hello` client name), with
/// the SDK's default settings.
pub async fn client(broker: &TestBroker, name: &str) -> Client {
    connect(Client::builder(broker.url()).name(name)).await
}

/// An SDK client of `broker` named `name` that reconnects with
/// [`FAST_RECONNECT`], for tests that stop or restart the broker under it.
pub async fn reconnecting_client(broker: &TestBroker, name: &str) -> Client {
    connect(
        Client::builder(broker.url())
            .name(name)
            .reconnect(FAST_RECONNECT),
    )
    .await
}

/// Connects `builder`, bounded by [`TIMEOUT`]; a failure fails the test.
pub async fn connect(builder: ClientBuilder) -> Client {
    match bounded("the SDK client to connect", builder.connect()).await {
        Ok(client) => client,
        Err(error) => panic!("the SDK client did not connect: {error}"),
    }
}

/// Streams the `u64`s `0..=events` as `tick` events of `namespace` from
/// `publisher` to `subscriber` (fire-and-forget, the last one acked) and
/// calls `fault` once the subscriber has received 2,000 of them; the second
/// half is emitted only after the fault. Returns what the subscriber's
/// handler got, in arrival order, and its first recovery report (awaited,
/// bounded): the exactly-once-in-order checks of the history tests.
pub async fn stream_through_fault<F, Fut>(
    subscriber: &Client,
    publisher: Client,
    namespace: &str,
    events: u64,
    fault: F,
) -> (Vec<u64>, BTreeMap<String, Recovery>)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    let expected = usize::try_from(events).expect("a test-sized count") + 1;
    let (recovered_tx, mut recovered_rx) = mpsc::unbounded_channel();
    subscriber.on_recovery(move |r: &BTreeMap<String, Recovery>| {
        let _ = recovered_tx.send(r.clone());
    });
    let (tx, mut rx) = mpsc::channel::<u64>(expected);
    subscriber
        .of(namespace)
        .on("tick", move |n: u64| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(n).await;
            }
        })
        .await
        .expect("the subscription is taken");
    let (fault_tx, fault_rx) = oneshot::channel::<()>();
    let ns = publisher.of(namespace);
    let emitting = tokio::spawn(async move {
        for n in 0..events / 2 {
            ns.emit("tick", &n).await.expect("a fire-and-forget emit");
        }
        // The second half goes out after the fault.
        fault_rx.await.expect("the fault happened");
        for n in events / 2..events {
            ns.emit("tick", &n).await.expect("a fire-and-forget emit");
        }
        ns.emit_acked("tick", &events)
            .await
            .expect("the last emit is acked")
    });
    let mut got = Vec::with_capacity(expected);
    let mut fault = Some((fault, fault_tx));
    while got.len() < expected {
        let n = bounded("the next event", rx.recv())
            .await
            .expect("the handler is alive");
        got.push(n);
        if got.len() == 2_000
            && let Some((fault, done)) = fault.take()
        {
            fault().await;
            let _ = done.send(());
        }
    }
    bounded("the publisher", emitting)
        .await
        .expect("the publisher task ends");
    let recovery = bounded("the recovery report", recovered_rx.recv())
        .await
        .expect("a resume reports its recovery");
    (got, recovery)
}
