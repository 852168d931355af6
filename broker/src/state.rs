//! What every task of one broker shares: settings, the router, counters,
//! readiness and the shutdown switch.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use herald_config::Settings;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::outbox::ConnId;
use crate::router::Router;
use crate::stats::Stats;

/// Bytes of read buffer per connection. Small, so idle connections stay
/// cheap; a busy publisher still reads dozens of frames per syscall.
const READ_BUFFER_BYTES: usize = 4 * 1024;
/// Frames are written to the socket once this much is buffered, or on flush.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;
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
    /// One permit per WebSocket session (`server.max_connections`).
    pub(crate) sessions: Arc<Semaphore>,
    pub(crate) node: String,
    next_conn: AtomicU64,
    started: Instant,
}

/// A node name unique per broker start (session ids are built from it, so
/// they never repeat across restarts, even when the broker is always PID 1
/// in a container). std's `RandomState` is randomly seeded per process and
/// per instance, which is all the randomness this needs.
fn node_name() -> String {
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
    pub(crate) fn new(settings: Settings) -> Shared {
        let stats = Arc::new(Stats::default());
        Shared {
            sessions: Arc::new(Semaphore::new(settings.server.max_connections)),
            router: Router::new(stats.clone()),
            stats,
            ready: AtomicBool::new(true),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            node: node_name(),
            next_conn: AtomicU64::new(0),
            started: Instant::now(),
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

    /// The WebSocket limits: bounded message, frame and write buffer sizes.
    pub(crate) fn ws_config(&self) -> WebSocketConfig {
        let max_message = self.settings.limits.max_payload_bytes + ENVELOPE_OVERHEAD_BYTES;
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_BYTES)
            .write_buffer_size(WRITE_BUFFER_BYTES)
            .max_write_buffer_size(WRITE_BUFFER_BYTES + 2 * max_message)
            .max_message_size(Some(max_message))
            .max_frame_size(Some(max_message))
    }
}
