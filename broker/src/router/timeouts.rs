//! The one task per router that answers requests whose deadline passed
//! with a `timeout` error.
//!
//! A router may be built outside a runtime (unit tests, benchmarks), so the
//! task starts with the first request rather than with the router, and
//! starts again if the runtime it ran on went away. It ends when the router
//! is dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use herald_protocol::ErrorCode;
use tokio_util::sync::CancellationToken;

use super::requests::{Pending, Requester, Requests};
use crate::stats::Stats;
use crate::wire::Answer;

/// Starts, and on drop stops, the timeout task of one router.
#[derive(Debug, Default)]
pub(crate) struct TimeoutWatcher {
    running: Arc<AtomicBool>,
    stop: CancellationToken,
}

/// Clears the running flag when the task ends, however it ends (a runtime
/// shutting down drops it without running it to completion).
struct Running(Arc<AtomicBool>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl TimeoutWatcher {
    /// Makes sure the task runs; called before each request is handed on.
    /// Outside a runtime it does nothing (the next request in one starts
    /// it: every deadline armed meanwhile is still honoured).
    pub(crate) fn ensure(&self, requests: &Arc<Requests>, stats: &Arc<Stats>) {
        if self.running.load(Ordering::Acquire)
            || self
                .running
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.running.store(false, Ordering::Release);
            return;
        };
        let running = Running(self.running.clone());
        let (requests, stats, stop) = (requests.clone(), stats.clone(), self.stop.clone());
        runtime.spawn(async move {
            let _running = running;
            watch(&requests, &stats, &stop).await;
        });
    }
}

impl Drop for TimeoutWatcher {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn watch(requests: &Requests, stats: &Stats, stop: &CancellationToken) {
    let mut expired = Vec::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = requests.expired(&mut expired) => {}
        }
        for pending in expired.drain(..) {
            timed_out(pending, stats);
        }
        // A burst of expiries comes in batches: let other tasks run between.
        tokio::task::yield_now().await;
    }
}

/// Tells the requester its request expired.
fn timed_out(pending: Pending, stats: &Stats) {
    // A request from another node times out at its origin.
    if let Requester::Local(requester) = pending.requester {
        Stats::add(&stats.request_timeouts, 1);
        requester.answer_with(&Answer::Error {
            namespace: Some(&pending.namespace),
            id: Some(pending.ack),
            code: ErrorCode::Timeout,
            message: &format!("no reply within {} ms", pending.timeout.as_millis()),
        });
    }
}
