//! The in-memory [`HistoryLog`] of a single node: one bounded log per
//! history namespace, each behind its own lock.
//!
//! A log keeps at most `size` events for at most `ttl` (older ones are
//! evicted when the log is next touched) and the message ids seen within
//! `history.mid_window` (at most `history.max_mids`). Its lock is held
//! while an event is appended *and* fanned out, so a namespace's events
//! reach every receiver in `seq` order, and a resume that takes the lock
//! sees a clean cut between what it replays and what comes live. The epoch
//! is made once per process: nothing survives a restart, and a client
//! resuming with the old epoch is told `recovered: false`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use herald_config::{HistoryNamespace, HistorySettings};
use herald_protocol::names::namespace_matches;

use super::{
    Appended, Gap, HistoryLog, HistoryStats, MidSource, Outcome, Page, Parts, Record, Stamp,
    Stored, Wanted,
};

/// Most namespaces with a log at once: past it, events in further
/// namespaces are delivered without history (a client choosing namespace
/// names cannot make the broker keep unbounded logs).
const MAX_LOGS: usize = 4096;

/// The logs of every history namespace on this node.
#[derive(Debug)]
pub(crate) struct MemoryHistory {
    rules: Vec<HistoryNamespace>,
    replay_limit: usize,
    mid_window: Duration,
    max_mids: usize,
    epoch: Arc<str>,
    logs: DashMap<Box<str>, Arc<Mutex<Log>>, foldhash::fast::RandomState>,
}

/// What one log holds and did, for `/metrics` (kept under the log's lock,
/// so an append touches no shared counter).
#[derive(Debug, Default)]
struct Counters {
    bytes: u64,
    evicted: u64,
    duplicates: u64,
}

/// One namespace's log.
#[derive(Debug)]
struct Log {
    size: usize,
    ttl: Duration,
    /// The epoch its `seq`s belong to: this process's on one node; in a
    /// cluster, Redis's (empty until the node first hears of the log).
    epoch: Arc<str>,
    /// The last `seq` given (0: none yet).
    last: u64,
    events: VecDeque<(Instant, Stored)>,
    mids: HashMap<Arc<str>, Instant>,
    mid_order: VecDeque<(Instant, Arc<str>)>,
    counters: Counters,
}

fn locked(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A new epoch: the start time in nanoseconds and the process id, in
/// base 36, so two starts never share one.
fn new_epoch() -> Arc<str> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Arc::from(format!(
        "{}{}",
        base36(nanos),
        base36(u128::from(std::process::id()))
    ))
}

fn base36(mut n: u128) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

impl MemoryHistory {
    pub(crate) fn new(settings: &HistorySettings) -> MemoryHistory {
        MemoryHistory {
            rules: settings.namespaces.clone(),
            replay_limit: settings.replay_limit,
            mid_window: settings.mid_window,
            max_mids: settings.max_mids,
            epoch: new_epoch(),
            logs: DashMap::default(),
        }
    }

    fn rule(&self, namespace: &str) -> Option<&HistoryNamespace> {
        self.rules
            .iter()
            .find(|rule| namespace_matches(&rule.namespace, namespace))
    }

    /// The namespace's log, made on first use (none past [`MAX_LOGS`]).
    fn log(&self, namespace: &str) -> Option<Arc<Mutex<Log>>> {
        if let Some(log) = self.logs.get(namespace) {
            return Some(log.clone());
        }
        let rule = self.rule(namespace)?;
        if self.logs.len() >= MAX_LOGS {
            return None;
        }
        let log = self
            .logs
            .entry(namespace.into())
            .or_insert_with(|| {
                Arc::new(Mutex::new(Log {
                    size: rule.size,
                    ttl: rule.ttl,
                    epoch: self.epoch.clone(),
                    last: 0,
                    events: VecDeque::new(),
                    mids: HashMap::new(),
                    mid_order: VecDeque::new(),
                    counters: Counters::default(),
                }))
            })
            .clone();
        Some(log)
    }

    /// Drops events past their age and message ids past the window.
    fn expire(&self, log: &mut Log, now: Instant) {
        while let Some((at, _)) = log.events.front() {
            if now.duration_since(*at) <= log.ttl && log.events.len() <= log.size {
                break;
            }
            if let Some((_, gone)) = log.events.pop_front() {
                log.counters.bytes -= gone.weight() as u64;
                log.counters.evicted += 1;
            }
        }
        while let Some((at, mid)) = log.mid_order.front() {
            if now.duration_since(*at) <= self.mid_window && log.mid_order.len() <= self.max_mids {
                break;
            }
            if log.mids.get(mid) == Some(at) {
                log.mids.remove(mid);
            }
            log.mid_order.pop_front();
        }
    }

    /// The events after `since`, or why they cannot be had; at most
    /// `limit` of them when `all` is false, all or none when it is true.
    fn after(
        &self,
        log: &Log,
        since: u64,
        limit: usize,
        all: bool,
        filter: &dyn Fn(&Stored) -> bool,
    ) -> Result<Vec<Stored>, Gap> {
        if since > log.last {
            return Err(Gap::Ahead);
        }
        let first = log.events.front().map_or(log.last + 1, |(_, e)| e.seq);
        if since + 1 < first {
            return Err(Gap::TooOld);
        }
        let missed = usize::try_from(log.last - since).unwrap_or(usize::MAX);
        if all && missed > limit {
            return Err(Gap::OverLimit);
        }
        let skip = usize::try_from(since + 1 - first).unwrap_or(usize::MAX);
        Ok(log
            .events
            .iter()
            .skip(skip)
            .filter(|(_, e)| filter(e))
            .take(limit)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

/// Where one namespace's log stands (a cluster node's mirror of Redis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Position {
    /// Empty until the node first heard of the log.
    pub(crate) epoch: Arc<str>,
    /// The oldest `seq` kept (`last + 1` when none is).
    pub(crate) first: u64,
    pub(crate) last: u64,
}

impl MemoryHistory {
    /// The logs of a cluster node: a mirror of what Redis numbered, whose
    /// epochs come from Redis (each log's is empty until the node hears
    /// of it, so nothing is recovered from a log it never caught up).
    pub(crate) fn mirror(settings: &HistorySettings) -> MemoryHistory {
        MemoryHistory {
            epoch: Arc::from(""),
            ..MemoryHistory::new(settings)
        }
    }

    fn push(log: &mut Log, now: Instant, event: Stored) {
        log.last = event.seq;
        log.counters.bytes += event.weight() as u64;
        log.events.push_back((now, event));
    }

    fn clear(log: &mut Log, epoch: &str, last: u64) {
        log.events.clear();
        log.counters.bytes = 0;
        log.epoch = Arc::from(epoch);
        log.last = last;
    }

    /// Where the namespace's log stands; `None` when it keeps no history.
    pub(crate) fn position(&self, namespace: &str) -> Option<Position> {
        let log = self.log(namespace)?;
        let mut log = locked(&log);
        self.expire(&mut log, Instant::now());
        Some(Position {
            epoch: log.epoch.clone(),
            first: log.events.front().map_or(log.last + 1, |(_, e)| e.seq),
            last: log.last,
        })
    }

    /// Appends an event that Redis numbered, and calls `publish` with its
    /// stamp while the log is locked. Nothing happens (false) for a `seq`
    /// at or before the log's last one in the same epoch (already here); a
    /// new epoch restarts the log at this event.
    pub(crate) fn append_numbered(
        &self,
        namespace: &str,
        record: Record<'_>,
        stamp: Stamp<'_>,
        publish: &mut dyn FnMut(Stamp<'_>),
    ) -> bool {
        let Some(log) = self.log(namespace) else {
            publish(stamp);
            return true;
        };
        let mut log = locked(&log);
        if *log.epoch != *stamp.epoch {
            Self::clear(&mut log, stamp.epoch, stamp.seq.saturating_sub(1));
        } else if stamp.seq <= log.last {
            return false;
        }
        let now = Instant::now();
        let stored = Stored::new(stamp.seq, Parts::of(record), stamp.mid_source());
        Self::push(&mut log, now, stored);
        self.expire(&mut log, now);
        publish(stamp);
        true
    }

    /// Restarts the namespace's log as Redis holds it: `epoch`, `last`,
    /// and the kept `events` (oldest first, all at or before `last`), none
    /// delivered again.
    pub(crate) fn reset(&self, namespace: &str, epoch: &str, last: u64, events: Vec<Stored>) {
        let Some(log) = self.log(namespace) else {
            return;
        };
        let mut log = locked(&log);
        Self::clear(&mut log, epoch, 0);
        let now = Instant::now();
        for event in events.into_iter().filter(|e| e.seq <= last) {
            Self::push(&mut log, now, event);
        }
        log.last = last;
        self.expire(&mut log, now);
    }

    /// Puts older events (oldest first) in front of the log, for a resume
    /// reaching back before what this node received; ignored unless they
    /// end right before the log's first event, in its epoch.
    pub(crate) fn backfill(&self, namespace: &str, epoch: &str, events: Vec<Stored>) {
        let Some(log) = self.log(namespace) else {
            return;
        };
        let mut log = locked(&log);
        let first = log.events.front().map_or(log.last + 1, |(_, e)| e.seq);
        let fits = events.last().is_some_and(|e| e.seq + 1 == first)
            && events.windows(2).all(|w| w[0].seq + 1 == w[1].seq);
        if *log.epoch != *epoch || !fits {
            return;
        }
        let now = Instant::now();
        for event in events.into_iter().rev() {
            log.counters.bytes += event.weight() as u64;
            log.events.push_front((now, event));
        }
        self.expire(&mut log, now);
    }
}

impl HistoryLog for MemoryHistory {
    fn covers(&self, namespace: &str) -> bool {
        self.rule(namespace).is_some()
    }

    fn append(
        &self,
        namespace: &str,
        record: Record<'_>,
        publish: &mut dyn FnMut(Stamp<'_>),
    ) -> Appended {
        let Some(log) = self.log(namespace) else {
            return Appended::Unlogged;
        };
        let mut log = locked(&log);
        let now = Instant::now();
        // One `expire` per append (after it): a remembered `mid` counts
        // only within the window.
        let given = record.emit.message_id.as_deref();
        let window = self.mid_window;
        let seen = |mid: &str| {
            log.mids
                .get(mid)
                .is_some_and(|at| now.duration_since(*at) <= window)
        };
        if given.is_some_and(seen) {
            log.counters.duplicates += 1;
            return Appended::Duplicate;
        }
        let seq = log.last + 1;
        let mid = match given {
            Some(mid) => {
                let mid: Arc<str> = Arc::from(mid);
                log.mids.insert(mid.clone(), now);
                log.mid_order.push_back((now, mid));
                MidSource::Given(record.emit.message_id.as_deref().unwrap_or_default())
            }
            None => MidSource::Derived { epoch: &log.epoch },
        };
        let stored = Stored::new(seq, Parts::of(record), mid);
        Self::push(&mut log, now, stored);
        self.expire(&mut log, now);
        publish(Stamp {
            seq,
            epoch: &log.epoch,
            mid: given,
        });
        Appended::New
    }

    fn read(
        &self,
        namespace: &str,
        since: u64,
        limit: usize,
        filter: &dyn Fn(&Stored) -> bool,
    ) -> Result<Page, Gap> {
        let log = self.log(namespace).ok_or(Gap::NoHistory)?;
        let mut log = locked(&log);
        self.expire(&mut log, Instant::now());
        let mut complete = true;
        let events = match self.after(&log, since, limit, false, filter) {
            Err(Gap::TooOld) => {
                // A reader that asks for too old a position gets what is
                // left, marked incomplete.
                complete = false;
                let since = log.events.front().map_or(log.last, |(_, e)| e.seq - 1);
                self.after(&log, since, limit, false, filter)?
            }
            other => other?,
        };
        Ok(Page {
            epoch: log.epoch.clone(),
            last: log.last,
            events,
            complete,
        })
    }

    fn recover(&self, wanted: &[Wanted], attach: &mut dyn FnMut(&[Outcome])) {
        let mut order: Vec<&Wanted> = wanted.iter().collect();
        order.sort_by(|a, b| a.namespace.cmp(&b.namespace));
        order.dedup_by(|a, b| a.namespace == b.namespace);
        let logs: Vec<Option<Arc<Mutex<Log>>>> =
            order.iter().map(|w| self.log(&w.namespace)).collect();
        // Locked in name order (every recovery takes them in that order;
        // an append takes one), so recoveries cannot deadlock.
        let mut guards: Vec<Option<MutexGuard<'_, Log>>> =
            logs.iter().map(|log| log.as_deref().map(locked)).collect();
        let now = Instant::now();
        let outcomes: Vec<Outcome> = order
            .iter()
            .zip(guards.iter_mut())
            .map(|(want, guard)| {
                let Some(log) = guard.as_deref_mut() else {
                    return Outcome {
                        namespace: want.namespace.clone(),
                        replay: Err(Gap::NoHistory),
                        epoch: self.epoch.clone(),
                        last: 0,
                    };
                };
                self.expire(log, now);
                let epoch = log.epoch.clone();
                let replay = if epoch.is_empty() || want.epoch.as_deref() != Some(&*epoch) {
                    Err(Gap::Epoch)
                } else {
                    self.after(log, want.since, self.replay_limit, true, &|_| true)
                };
                Outcome {
                    namespace: want.namespace.clone(),
                    replay,
                    epoch,
                    last: log.last,
                }
            })
            .collect();
        attach(&outcomes);
        drop(guards);
    }

    fn stats(&self) -> HistoryStats {
        let mut stats = HistoryStats::default();
        for log in &self.logs {
            let log = locked(log.value());
            stats.events += log.events.len() as u64;
            stats.bytes += log.counters.bytes;
            stats.evicted += log.counters.evicted;
            stats.duplicates += log.counters.duplicates;
            stats.logs += 1;
        }
        stats
    }
}

#[cfg(test)]
mod tests;
