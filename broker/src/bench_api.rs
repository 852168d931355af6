//! Router access for the criterion micro-benchmarks (`benches/router.rs`):
//! subscribe detached connections, match and emit, with no sockets. Not a
//! stable API; hidden from the docs.

use std::sync::Arc;

use bytes::Bytes;
use herald_config::SlowConsumerPolicy;
use herald_protocol::envelope::Emit;
use herald_protocol::{NameError, Pattern};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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

impl Default for RouterBench {
    fn default() -> Self {
        Self::new()
    }
}

impl RouterBench {
    /// An empty router and one publishing connection.
    pub fn new() -> RouterBench {
        let stats = Arc::new(Stats::default());
        let (publisher, _) = Self::connection(0, &stats);
        RouterBench {
            router: Router::new(stats.clone()),
            publisher,
            conns: Vec::new(),
            stats,
        }
    }

    fn connection(id: u64, stats: &Arc<Stats>) -> (Outbox, mpsc::Receiver<Bytes>) {
        let (tx, rx) = mpsc::channel(1024);
        let outbox = ConnShared::new(
            ConnId(id),
            tx,
            SlowConsumerPolicy::Drop,
            CancellationToken::new(),
            stats.clone(),
        );
        (outbox, rx)
    }

    /// Opens a new connection subscribed to `pattern` in `namespace`.
    pub fn subscribe(&mut self, namespace: &str, pattern: &str) -> Result<(), NameError> {
        let id = self.conns.len() as u64 + 1;
        let (outbox, rx) = Self::connection(id, &self.stats);
        self.router.subscribe(
            &outbox,
            &SubKey {
                namespace: namespace.into(),
                pattern: Pattern::parse(pattern)?,
                group: None,
                responder: false,
            },
        );
        self.conns.push((outbox, rx));
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
