//! The deadlines of the requests in flight: one ordered set per router,
//! watched by one task, instead of a task per request sleeping out its
//! whole timeout.
//!
//! A deadline is a tick (milliseconds since the set was made, rounded up so
//! a timeout never fires early) kept with the request's handle in a
//! `BTreeSet`, earliest first; a reply removes its entry at once. The
//! watching task sleeps until the earliest deadline it knows of. Adding a
//! deadline wakes it only when that deadline is earlier (rare: timeouts are
//! mostly alike, so new deadlines come last); removing one never does: at
//! worst the watcher wakes for a deadline already answered, finds nothing
//! due and sleeps again, which costs one wake-up per timeout period instead
//! of one per request.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// A deadline: milliseconds since the set's start.
pub(crate) type Tick = u64;

/// At most this many handles are taken per wake-up, so the lock is never
/// held long and the watcher gives way between batches.
const BATCH: usize = 1024;

#[derive(Debug)]
struct State {
    /// `(deadline, handle)`, earliest first.
    due: BTreeSet<(Tick, u64)>,
    /// When the watcher looks next, at the latest (`Tick::MAX`: only when
    /// woken; 0: it is looking now).
    wake_at: Tick,
}

/// The deadlines of one router's requests.
#[derive(Debug)]
pub(crate) struct Deadlines {
    start: Instant,
    state: Mutex<State>,
    wake: Notify,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            start: Instant::now(),
            state: Mutex::new(State {
                due: BTreeSet::new(),
                wake_at: Tick::MAX,
            }),
            wake: Notify::new(),
        }
    }
}

impl Deadlines {
    /// The set is plain data (no invariant a panicking holder could break
    /// half-way), so a poisoned lock is still usable.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn elapsed_ms(&self) -> u128 {
        Instant::now()
            .saturating_duration_since(self.start)
            .as_millis()
    }

    /// Records that `handle` expires `timeout` from now; returns its
    /// deadline (needed to remove it).
    pub(crate) fn insert(&self, handle: u64, timeout: Duration) -> Tick {
        // Round up: the elapsed milliseconds are floored, so one more keeps
        // the deadline at or after now + timeout.
        let tick =
            Tick::try_from(self.elapsed_ms() + timeout.as_millis() + 1).unwrap_or(Tick::MAX - 1);
        let wake = {
            let mut state = self.lock();
            state.due.insert((tick, handle));
            let earlier = tick < state.wake_at;
            if earlier {
                state.wake_at = tick;
            }
            earlier
        };
        if wake {
            // Stores a permit when the watcher is not waiting yet, so a
            // wake-up between its check and its wait is not lost.
            self.wake.notify_one();
        }
        tick
    }

    /// Forgets the deadline of `handle` (answered, or never sent).
    pub(crate) fn remove(&self, tick: Tick, handle: u64) {
        self.lock().due.remove(&(tick, handle));
    }

    /// Deadlines recorded and not yet due or removed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().due.len()
    }

    /// Waits until at least one deadline has passed and moves the handles
    /// of passed deadlines (at most [`BATCH`]) into `out`, each once.
    /// Cancel-safe: nothing is taken before the last await.
    pub(crate) async fn due(&self, out: &mut Vec<u64>) {
        loop {
            let next = {
                let mut state = self.lock();
                let now = Tick::try_from(self.elapsed_ms()).unwrap_or(Tick::MAX);
                while out.len() < BATCH {
                    match state.due.first() {
                        Some(&(tick, handle)) if tick <= now => {
                            state.due.pop_first();
                            out.push(handle);
                        }
                        _ => break,
                    }
                }
                if !out.is_empty() {
                    // The caller comes back once it has handled these:
                    // nobody needs to wake it meanwhile.
                    state.wake_at = 0;
                    return;
                }
                let next = state.due.first().map_or(Tick::MAX, |&(tick, _)| tick);
                state.wake_at = next;
                next
            };
            let deadline = self.start.checked_add(Duration::from_millis(next));
            match deadline.filter(|_| next != Tick::MAX) {
                Some(deadline) => {
                    tokio::select! {
                        () = self.wake.notified() => {}
                        () = tokio::time::sleep_until(deadline) => {}
                    }
                }
                None => self.wake.notified().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Far above any wait here: a deadline that should fire does so long
    /// before, and the test fails instead of hanging when one never does.
    const BOUND: Duration = Duration::from_secs(10);

    async fn next_due(deadlines: &Deadlines) -> Vec<u64> {
        let mut out = Vec::new();
        tokio::time::timeout(BOUND, deadlines.due(&mut out))
            .await
            .expect("a deadline passes");
        out
    }

    #[tokio::test]
    async fn a_removed_deadline_never_fires_and_none_fires_early() {
        let deadlines = Deadlines::default();
        let opened = Instant::now();
        let first = deadlines.insert(1, Duration::from_millis(20));
        deadlines.insert(2, Duration::from_millis(40));
        deadlines.remove(first, 1);
        assert_eq!(deadlines.len(), 1);
        assert_eq!(next_due(&deadlines).await, vec![2]);
        assert!(opened.elapsed() >= Duration::from_millis(40));
        assert_eq!(deadlines.len(), 0);
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_the_waiting_watcher() {
        let deadlines = Arc::new(Deadlines::default());
        deadlines.insert(1, Duration::from_secs(3600));
        let watcher = tokio::spawn({
            let deadlines = deadlines.clone();
            async move { next_due(&deadlines).await }
        });
        // Let the watcher go to sleep on the one-hour deadline first.
        tokio::task::yield_now().await;
        deadlines.insert(2, Duration::from_millis(5));
        assert_eq!(watcher.await.expect("the watcher ran"), vec![2]);
        assert_eq!(deadlines.len(), 1, "the one-hour deadline stays");
    }

    #[tokio::test]
    async fn each_deadline_fires_once_in_batches() {
        let deadlines = Deadlines::default();
        let count = 3 * BATCH as u64 + 5;
        for handle in 0..count {
            deadlines.insert(handle, Duration::from_millis(handle % 7));
        }
        let mut fired = Vec::new();
        while fired.len() < count as usize {
            let batch = next_due(&deadlines).await;
            assert!(batch.len() <= BATCH);
            fired.extend(batch);
        }
        fired.sort_unstable();
        assert_eq!(fired, (0..count).collect::<Vec<_>>());
        assert_eq!(deadlines.len(), 0);
    }
}
