//! Router access for the criterion micro-benchmarks (`benches/router.rs`):
//! subscribe detached connections, match, emit, churn subscriptions and
//! run requests, with no sockets. Not a stable API; hidden from the docs.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_config::SlowConsumerPolicy;
use herald_protocol::envelope::{Emit, Reply};
use herald_protocol::{Envelope, NameError, Pattern, decode};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::frame;
use crate::outbox::{ConnId, ConnShared, Outbox};
use crate::router::{Router, SubKey};
use crate::stats::Stats;

/// A router with in-memory connections whose queues the caller drains.
pub struct RouterBench {
    router: Router,
    publisher: Outbox,
    conns: Vec<(Outbox, mpsc::Receiver<Bytes>)>,
    stats: Arc<Stats>,
}

/// A plain (not queue-group) subscription to `pattern` in `namespace`.
fn plain_key(namespace: &str, pattern: &str, responder: bool) -> Result<SubKey, NameError> {
    Ok(SubKey {
        namespace: namespace.into(),
        pattern: Pattern::parse(pattern)?,
        group: None,
        responder,
    })
}

fn connection(id: u64, capacity: usize, stats: &Arc<Stats>) -> (Outbox, mpsc::Receiver<Bytes>) {
    let (tx, rx) = mpsc::channel(capacity);
    let outbox = ConnShared::new(
        ConnId(id),
        tx,
        SlowConsumerPolicy::Drop,
        CancellationToken::new(),
        stats.clone(),
    );
    (outbox, rx)
}

impl Default for RouterBench {
    fn default() -> Self {
        Self::new()
    }
}

impl RouterBench {
    /// An empty router and one publishing connection.
    pub fn new() -> RouterBench {
        let stats = Arc::new(Stats::default());
        let (publisher, _) = connection(0, 1024, &stats);
        RouterBench {
            router: Router::new(stats.clone()),
            publisher,
            conns: Vec::new(),
            stats,
        }
    }

    /// Opens a new connection subscribed to `pattern` in `namespace`.
    pub fn subscribe(&mut self, namespace: &str, pattern: &str) -> Result<(), NameError> {
        let id = self.conns.len() as u64 + 1;
        let (outbox, rx) = connection(id, 1024, &self.stats);
        self.router
            .subscribe(&outbox, &plain_key(namespace, pattern, false)?);
        self.conns.push((outbox, rx));
        Ok(())
    }

    /// One subscriber joins `event` and leaves it again. With `held`, each
    /// of the two changes is made while an emit of `event` holds the
    /// subscriber snapshot (as emits running on other threads would).
    pub fn churn(&self, namespace: &str, event: &str, held: bool) -> Result<(), NameError> {
        let key = plain_key(namespace, event, false)?;
        let conn = &self.publisher;
        let snapshot = held.then(|| self.router.snapshot(namespace, event));
        self.router.subscribe(conn, &key);
        drop(snapshot);
        let snapshot = held.then(|| self.router.snapshot(namespace, event));
        self.router.unsubscribe(conn, &key);
        drop(snapshot);
        Ok(())
    }

    /// How many subscription entries (exact and pattern) match `event`,
    /// without delivering anything.
    pub fn match_count(&self, namespace: &str, event: &str) -> usize {
        self.router.match_count(namespace, event)
    }

    /// Routes one emit and returns the number of receivers reached.
    pub fn emit(&self, namespace: &str, event: &str, payload: &Bytes) -> u64 {
        let emit = Emit {
            namespace: namespace.into(),
            event: event.into(),
            payload: payload.clone(),
            ..Emit::default()
        };
        self.router.emit(&self.publisher, &emit)
    }

    /// Empties every connection's queue (what the writers would do);
    /// returns the number of frames taken.
    pub fn drain(&mut self) -> usize {
        let mut taken = 0;
        for (_, rx) in &mut self.conns {
            while rx.try_recv().is_ok() {
                taken += 1;
            }
        }
        taken
    }
}

/// One requester and one responder on a router: requests are routed, taken
/// off the responder's queue, and answered or left to time out.
pub struct RequestBench {
    router: Router,
    requester: Outbox,
    answers: mpsc::Receiver<Bytes>,
    responder: Outbox,
    requests: mpsc::Receiver<Bytes>,
    emit: Emit,
}

impl Default for RequestBench {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestBench {
    /// Queue room for this many frames per connection.
    const QUEUE: usize = 1 << 21;

    /// A router with a responder on `rpc` in `/`.
    pub fn new() -> RequestBench {
        let stats = Arc::new(Stats::default());
        let router = Router::new(stats.clone());
        let (requester, answers) = connection(1, Self::QUEUE, &stats);
        let (responder, requests) = connection(2, Self::QUEUE, &stats);
        let key = plain_key("/", "rpc", true).expect("a valid event name");
        router.subscribe(&responder, &key);
        RequestBench {
            router,
            requester,
            answers,
            responder,
            requests,
            emit: Emit {
                namespace: "/".into(),
                event: "rpc".into(),
                payload: Bytes::from_static(b"\x01"),
                ..Emit::default()
            },
        }
    }

    /// Routes one request that expires after `timeout` and takes it off
    /// the responder's queue: its handle, or `None` when it was not routed.
    /// Call it inside a tokio runtime (the timeout needs one).
    pub fn open(&mut self, timeout: Duration) -> Option<u64> {
        self.router
            .request(&self.requester, &self.emit, 7, timeout)
            .ok()?;
        let frame = self.requests.try_recv().ok()?;
        match decode(&frame::payload(&frame)) {
            Ok(Envelope::Event(event)) => event.ack,
            _ => None,
        }
    }

    /// Answers request `handle` as the responder and takes the reply off
    /// the requester's queue. True when it was still waiting.
    pub fn reply(&mut self, handle: u64) -> bool {
        let reply = Reply {
            ack: handle,
            ok: true,
            payload: Bytes::from_static(b"\x02"),
            args: false,
        };
        self.router.reply(self.responder.id, reply).is_ok() && self.answers.try_recv().is_ok()
    }

    /// Waits for the requester's next answer (a reply or a `timeout`
    /// error); `None` when the queue is closed.
    pub async fn next_answer(&mut self) -> Option<Bytes> {
        self.answers.recv().await
    }

    /// Requests in flight.
    pub fn pending(&self) -> usize {
        self.router.pending_requests()
    }
}
