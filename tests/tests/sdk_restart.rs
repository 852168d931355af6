//! The SDK across a broker restart: when the broker goes away and comes
//! back on the same port, SDK clients go `Reconnecting` then `Connected`
//! again, and their subscriptions, queue groups, rooms and responders are
//! restored and work.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use herald_client::{Client, ConnectionState};
use herald_tests::sdk::{bounded, forward, reconnecting_client, wait_state};
use herald_tests::{TestBroker, start_broker, start_broker_on};
use tokio::sync::mpsc;

const NS: &str = "/restart";
const JOBS: u64 = 20;
/// Capacity of the channels the handlers forward into: room for every job
/// of a round, so no handler ever waits on one.
const CHANNEL: usize = 64;

/// Everything the clients subscribed, checked end to end.
struct World {
    publisher: Client,
    clients: Vec<(&'static str, Client)>,
    ticks: mpsc::Receiver<u64>,
    jobs: mpsc::Receiver<(usize, u64)>,
    chats: mpsc::Receiver<String>,
}

impl World {
    async fn new(broker: &TestBroker) -> World {
        let (tick_tx, ticks) = mpsc::channel(CHANNEL);
        let subscriber = reconnecting_client(broker, "subscriber").await;
        subscriber
            .of(NS)
            .on("tick", forward::<u64>(&tick_tx))
            .await
            .unwrap();

        let (job_tx, jobs) = mpsc::channel(CHANNEL);
        let mut workers = Vec::new();
        for member in 0..2 {
            let worker = reconnecting_client(broker, "worker").await;
            let tx = job_tx.clone();
            worker
                .of(NS)
                .on_queue("job", "workers", move |n: u64| {
                    let tx = tx.clone();
                    async move {
                        let _ = tx.send((member, n)).await;
                    }
                })
                .await
                .unwrap();
            workers.push(worker);
        }

        let (chat_tx, chats) = mpsc::channel(CHANNEL);
        let member = reconnecting_client(broker, "room member").await;
        member.of(NS).join("lobby").await.unwrap();
        member
            .of(NS)
            .on("chat", forward::<String>(&chat_tx))
            .await
            .unwrap();

        let responder = reconnecting_client(broker, "responder").await;
        responder
            .of(NS)
            .on_request("double", |n: u64| async move { Ok::<u64, String>(n * 2) })
            .await
            .unwrap();

        let publisher = reconnecting_client(broker, "publisher").await;
        let mut clients = vec![("subscriber", subscriber), ("room member", member)];
        clients.push(("responder", responder));
        clients.extend(workers.into_iter().map(|w| ("worker", w)));
        clients.push(("publisher", publisher.clone()));
        World {
            publisher,
            clients,
            ticks,
            jobs,
            chats,
        }
    }

    /// Subscriptions the world holds on a broker: tick, 2 x job, chat,
    /// double.
    const SUBSCRIPTIONS: u64 = 5;

    /// Exercises every kind of interest once, through `broker`'s counters
    /// and the handlers' channels.
    async fn check(&mut self, round: u64) {
        let ns = self.publisher.of(NS);
        let receivers = bounded("emit tick", ns.emit_acked("tick", &round))
            .await
            .unwrap();
        assert_eq!(receivers, 1, "tick reaches the one subscriber");
        assert_eq!(bounded("the tick", self.ticks.recv()).await, Some(round));

        let mut members = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for job in 0..JOBS {
            let receivers = bounded("emit job", ns.emit_acked("job", &job))
                .await
                .unwrap();
            assert_eq!(receivers, 1, "a job reaches one worker");
        }
        for _ in 0..JOBS {
            let (member, job) = bounded("a job", self.jobs.recv()).await.unwrap();
            members.insert(member);
            assert!(seen.insert(job), "job {job} delivered twice");
        }
        assert_eq!(members.len(), 2, "both workers got jobs");

        let text = format!("hello {round}");
        let receivers = bounded("emit chat", ns.to("lobby").emit_acked("chat", &text))
            .await
            .unwrap();
        assert_eq!(receivers, 1, "the room has its one member");
        assert_eq!(bounded("the chat", self.chats.recv()).await, Some(text));

        let doubled: u64 = bounded(
            "the request",
            ns.request("double", &(round + 21), Duration::from_secs(2)),
        )
        .await
        .unwrap();
        assert_eq!(doubled, (round + 21) * 2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_clients_reconnect_and_restore_after_a_broker_restart() {
    let first = start_broker(|_| {}).await;
    let addr = first.addr();
    let mut world = World::new(&first).await;
    assert_eq!(first.stats().subscriptions, World::SUBSCRIPTIONS);
    assert_eq!(first.handle().rooms(), 1);
    world.check(0).await;
    let sessions: Vec<Option<String>> = world.clients.iter().map(|(_, c)| c.session_id()).collect();

    assert!(first.shutdown().await);
    for (name, client) in &world.clients {
        wait_state(client, name, ConnectionState::Reconnecting).await;
    }

    let second = start_broker_on(addr, |_| {}).await;
    for (name, client) in &world.clients {
        wait_state(client, name, ConnectionState::Connected).await;
    }
    second
        .wait_for_stats("the subscriptions to be restored", |s| {
            s.subscriptions == World::SUBSCRIPTIONS
        })
        .await;
    assert_eq!(second.handle().rooms(), 1, "the room was restored");
    for ((name, client), before) in world.clients.iter().zip(&sessions) {
        assert_ne!(&client.session_id(), before, "{name} has a new session");
    }
    world.check(1).await;

    for (_, client) in &world.clients {
        bounded("close", client.close()).await.unwrap();
    }
    assert!(second.shutdown().await);
}
