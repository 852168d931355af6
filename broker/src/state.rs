//! What every task of one broker shares: settings, the router, counters,
//! readiness and the shutdown switch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use herald_config::Settings;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::Authenticator;
use crate::backplane::Backplane;
use crate::engineio;
use crate::fdlimit::ConnectionLimit;
use crate::history::HistoryLog;
use crate::history::memory::MemoryHistory;
use crate::limits::Limits;
use crate::outbox::ConnId;
use crate::router::Router;
use crate::stats::Stats;

/// Room for envelope fields around the largest payload.
const ENVELOPE_OVERHEAD_BYTES: usize = 64 * 1024;

/// One broker's shared state.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) router: Router,
    pub(crate) stats: Arc<Stats>,
    /// False once shutdown began: `/readyz` answers 503, upgrades refused.
    pub(crate) ready: AtomicBool,
    /// Cancelled at shutdown; every connection's close token is a child.
    pub(crate) shutdown: CancellationToken,
    /// Every connection task, so shutdown can wait for them to drain.
    pub(crate) tasks: TaskTracker,
    /// One permit per WebSocket session: `connection_limit.sessions` of
    /// them.
    pub(crate) sessions: Arc<Semaphore>,
    /// `server.max_connections`, lowered when the open-files limit is
    /// lower (`fdlimit`).
    pub(crate) connection_limit: ConnectionLimit,
    pub(crate) node: String,
    /// The remote side, when clustered (`cluster.backend = "redis"`).
    pub(crate) backplane: Option<Arc<dyn Backplane>>,
    /// With a backplane that keeps history: this node's mirror of it
    /// (the same logs the router reads), kept in step by the dispatcher.
    pub(crate) mirror: Option<Arc<MemoryHistory>>,
    /// Engine.IO long-polling sessions by sid.
    pub(crate) engineio: engineio::Registry,
    next_conn: AtomicU64,
    started: Instant,
    /// Abuse limits, origins' rule and the operator token (`limits`).
    pub(crate) limits: Limits,
    /// Token verification and grants (`auth.mode = "jwt"`); none with
    /// `mode = "none"`. Set by `Broker::start` once its keys are loaded.
    pub(crate) auth: Option<Authenticator>,
    /// The admin console's credentials (`[admin]`); set by
    /// `Broker::start`.
    pub(crate) admin: crate::admin::Credentials,
}

/// A node name unique per broker start: the node part of session ids
/// unless `cluster.node_id` names the node (connection numbers start at
/// the start time, so session ids do not repeat across restarts either
/// way, even when the broker is always PID 1 in a container). std's `RandomState` is randomly seeded per process and
/// per instance, which is all the randomness this needs.
pub(crate) fn node_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("herald-{:012x}", hasher.finish() & 0xffff_ffff_ffff)
}

impl Shared {
    /// The state of a broker named `node`, clustered when `backplane` is
    /// given, admitting `connection_limit.sessions` sessions at once.
    pub(crate) fn new(
        settings: Settings,
        node: String,
        backplane: Option<Arc<dyn Backplane>>,
        connection_limit: ConnectionLimit,
    ) -> Shared {
        let stats = Arc::new(Stats::default());
        // With a backplane that keeps history, the logs here mirror what it
        // numbered; on one node they are the history itself.
        let clustered = backplane.as_ref().is_some_and(|b| b.keeps_history());
        let logs = (!settings.history.namespaces.is_empty()).then(|| {
            Arc::new(if clustered {
                MemoryHistory::mirror(&settings.history)
            } else {
                MemoryHistory::new(&settings.history)
            })
        });
        let mirror = logs.clone().filter(|_| clustered);
        let history = logs.map(|logs| logs as Arc<dyn HistoryLog>);
        Shared {
            sessions: Arc::new(Semaphore::new(connection_limit.sessions)),
            connection_limit,
            router: Router::clustered(stats.clone(), &node, backplane.clone())
                .with_history(history),
            backplane,
            mirror,
            engineio: engineio::Registry::default(),
            stats,
            ready: AtomicBool::new(true),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            node,
            // Numbered from the start time (ms), so that session ids stay
            // unique across restarts even with a fixed `cluster.node_id`.
            next_conn: AtomicU64::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
            ),
            started: Instant::now(),
            limits: Limits::new(&settings),
            auth: None,
            admin: crate::admin::Credentials::default(),
            settings,
        }
    }

    pub(crate) fn next_conn_id(&self) -> ConnId {
        ConnId(self.next_conn.fetch_add(1, Relaxed) + 1)
    }

    /// Milliseconds since the broker started (a cheap monotonic clock for
    /// heartbeat bookkeeping).
    pub(crate) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Relaxed)
    }

    /// True while clustered and the backplane (Redis) is unreachable: the
    /// node still serves and delivers locally, but not across nodes.
    pub(crate) fn cluster_degraded(&self) -> bool {
        self.backplane.as_ref().is_some_and(|b| !b.is_up())
    }

    /// Whether the admin console is served on the main listener (it is
    /// on the operator listener instead when `server.operator_listen` is
    /// set).
    pub(crate) fn admin_on_main(&self) -> bool {
        self.settings.admin.enabled && self.settings.server.operator_addr().is_none()
    }

    /// The largest message a client may send: the payload limit plus room
    /// for the envelope around it.
    pub(crate) fn max_message_bytes(&self) -> usize {
        self.settings.limits.max_payload_bytes + ENVELOPE_OVERHEAD_BYTES
    }
}
