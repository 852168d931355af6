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
use std::time::{SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use herald_config::{HistoryNamespace, HistorySettings};
use herald_protocol::names::namespace_matches;

use super::clock::{ms, now_ms};
use super::ring::Ring;
use super::{
    Appended, Gap, HistoryLog, HistoryStats, Outcome, Page, Parts, Record, Stamp, Stored, Wanted,
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
    /// `history.mid_window`, in milliseconds.
    mid_window: u64,
    max_mids: usize,
    epoch: Arc<str>,
    /// The logs of the namespaces the config names (rules without a
    /// wildcard): made at the start and kept, so an append finds one
    /// without taking a lock or a reference count.
    named: HashMap<Box<str>, Mutex<Log>, foldhash::fast::RandomState>,
    /// The logs of namespaces matched by a wildcard rule, made on first use.
    logs: DashMap<Box<str>, Arc<Mutex<Log>>, foldhash::fast::RandomState>,
}

/// A namespace's log, as [`MemoryHistory::log`] finds it.
enum LogRef<'a> {
    Named(&'a Mutex<Log>),
    Made(Arc<Mutex<Log>>),
}

impl std::ops::Deref for LogRef<'_> {
    type Target = Mutex<Log>;

    fn deref(&self) -> &Mutex<Log> {
        match self {
            LogRef::Named(log) => log,
            LogRef::Made(log) => log,
        }
    }
}

/// What one log holds and did, for `/metrics` (kept under the log's lock,
/// so an append touches no shared counter).
#[derive(Debug, Default)]
struct Counters {
    evicted: u64,
    duplicates: u64,
}

/// One namespace's log.
#[derive(Debug)]
struct Log {
    size: usize,
    /// Milliseconds an event is kept.
    ttl: u64,
    /// The epoch its `seq`s belong to: this process's on one node; in a
    /// cluster, Redis's (empty until the node first hears of the log).
    epoch: Arc<str>,
    /// The last `seq` given (0: none yet).
    last: u64,
    events: Ring,
    /// Message ids seen, with when (in [`now_ms`]).
    mids: HashMap<Arc<str>, u64>,
    mid_order: VecDeque<(u64, Arc<str>)>,
    counters: Counters,
}

fn locked(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Characters in an epoch.
const EPOCH_LEN: usize = 8;

/// A new epoch: 8 random base-36 characters (41 bits: two starts share
/// one with odds of 1 in 2.8 × 10^12). Every event in a history namespace
/// carries it, so it is kept short.
fn new_epoch() -> Arc<str> {
    use std::hash::BuildHasher;
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    // Keyed from the operating system's randomness at every call.
    let mut n =
        std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    let mut epoch = String::with_capacity(EPOCH_LEN);
    for _ in 0..EPOCH_LEN {
        epoch.push(char::from(DIGITS[(n % 36) as usize]));
        n /= 36;
    }
    Arc::from(epoch)
}

impl MemoryHistory {
    pub(crate) fn new(settings: &HistorySettings) -> MemoryHistory {
        MemoryHistory::with_epoch(settings, new_epoch())
    }

    fn with_epoch(settings: &HistorySettings, epoch: Arc<str>) -> MemoryHistory {
        let mut history = MemoryHistory {
            rules: settings.namespaces.clone(),
            replay_limit: settings.replay_limit,
            mid_window: ms(settings.mid_window),
            max_mids: settings.max_mids,
            epoch,
            named: HashMap::default(),
            logs: DashMap::default(),
        };
        let literal = |rule: &&HistoryNamespace| {
            !rule
                .namespace
                .split('/')
                .any(|seg| seg == "*" || seg == ">")
        };
        history.named = history
            .rules
            .iter()
            .filter(literal)
            .filter_map(|rule| {
                // The first rule that matches is the namespace's.
                let first = history.rule(&rule.namespace)?;
                Some((
                    rule.namespace.as_str().into(),
                    Mutex::new(history.new_log(first)),
                ))
            })
            .collect();
        history
    }

    fn new_log(&self, rule: &HistoryNamespace) -> Log {
        Log {
            size: rule.size,
            ttl: ms(rule.ttl),
            epoch: self.epoch.clone(),
            last: 0,
            events: Ring::default(),
            mids: HashMap::new(),
            mid_order: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    fn rule(&self, namespace: &str) -> Option<&HistoryNamespace> {
        self.rules
            .iter()
            .find(|rule| namespace_matches(&rule.namespace, namespace))
    }

    /// The namespace's log: a named one, or one made on first use (none
    /// past [`MAX_LOGS`]).
    fn log(&self, namespace: &str) -> Option<LogRef<'_>> {
        if let Some(log) = self.named.get(namespace) {
            return Some(LogRef::Named(log));
        }
        if let Some(log) = self.logs.get(namespace) {
            return Some(LogRef::Made(log.clone()));
        }
        let rule = self.rule(namespace)?;
        if self.logs.len() >= MAX_LOGS {
            return None;
        }
        let log = self
            .logs
            .entry(namespace.into())
            .or_insert_with(|| Arc::new(Mutex::new(self.new_log(rule))))
            .clone();
        Some(LogRef::Made(log))
    }

    /// Drops events past their age and message ids past the window.
    fn expire(&self, log: &mut Log, now: u64) {
        while let Some((_, at)) = log.events.front() {
            if now.saturating_sub(at) <= log.ttl && log.events.len() <= log.size {
                break;
            }
            log.events.pop_front();
            log.counters.evicted += 1;
        }
        while let Some((at, mid)) = log.mid_order.front() {
            if now.saturating_sub(*at) <= self.mid_window && log.mid_order.len() <= self.max_mids {
                break;
            }
            if log.mids.get(mid) == Some(at) {
                log.mids.remove(mid);
            }
            log.mid_order.pop_front();
        }
    }
}

impl Log {
    /// The events after `since`, or why they cannot be had; at most
    /// `limit` of them when `all` is false, all or none when it is true.
    fn after(
        &self,
        since: u64,
        limit: usize,
        all: bool,
        filter: &dyn Fn(&str) -> bool,
    ) -> Result<Vec<Stored>, Gap> {
        if since > self.last {
            return Err(Gap::Ahead);
        }
        let first = self.first();
        if since + 1 < first {
            return Err(Gap::TooOld);
        }
        let missed = usize::try_from(self.last - since).unwrap_or(usize::MAX);
        if all && missed > limit {
            return Err(Gap::OverLimit);
        }
        let skip = usize::try_from(since + 1 - first).unwrap_or(usize::MAX);
        Ok(Stored::copies(
            self.events
                .iter_from(skip)
                .filter(|e| filter(e.event()))
                .take(limit),
        ))
    }

    /// The oldest `seq` kept (`last + 1` when none is).
    fn first(&self) -> u64 {
        self.events.front().map_or(self.last + 1, |(seq, _)| seq)
    }

    fn clear(&mut self, epoch: &str, last: u64) {
        self.events.clear();
        self.epoch = Arc::from(epoch);
        self.last = last;
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
        MemoryHistory::with_epoch(settings, Arc::from(""))
    }

    /// Where the namespace's log stands; `None` when it keeps no history.
    pub(crate) fn position(&self, namespace: &str) -> Option<Position> {
        let log = self.log(namespace)?;
        let mut log = locked(&log);
        self.expire(&mut log, now_ms());
        Some(Position {
            epoch: log.epoch.clone(),
            first: log.first(),
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
            log.clear(stamp.epoch, stamp.seq.saturating_sub(1));
        } else if stamp.seq <= log.last {
            return false;
        }
        let now = now_ms();
        let parts = Parts {
            mid: stamp.mid,
            ..Parts::of(record)
        };
        log.events.push_back(now, stamp.seq, &parts);
        log.last = stamp.seq;
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
        log.clear(epoch, last);
        let now = now_ms();
        for event in events.iter().filter(|e| e.seq <= last) {
            log.events.push_back(now, event.seq, &event.parts());
        }
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
        let first = log.first();
        let fits = events.last().is_some_and(|e| e.seq + 1 == first)
            && events.windows(2).all(|w| w[0].seq + 1 == w[1].seq);
        if *log.epoch != *epoch || !fits {
            return;
        }
        let now = now_ms();
        log.events.prepend(now, &events);
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
        let now = now_ms();
        // One `expire` per append (after it): a remembered `mid` counts
        // only within the window.
        let given = record.emit.message_id.as_deref();
        let window = self.mid_window;
        let seen = |mid: &str| {
            log.mids
                .get(mid)
                .is_some_and(|at| now.saturating_sub(*at) <= window)
        };
        if given.is_some_and(seen) {
            log.counters.duplicates += 1;
            return Appended::Duplicate;
        }
        let seq = log.last + 1;
        if let Some(mid) = given {
            let mid: Arc<str> = Arc::from(mid);
            log.mids.insert(mid.clone(), now);
            log.mid_order.push_back((now, mid));
        }
        log.events.push_back(now, seq, &Parts::of(record));
        log.last = seq;
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
        filter: &dyn Fn(&str) -> bool,
    ) -> Result<Page, Gap> {
        let log = self.log(namespace).ok_or(Gap::NoHistory)?;
        let mut log = locked(&log);
        self.expire(&mut log, now_ms());
        let mut complete = true;
        let events = match log.after(since, limit, false, filter) {
            Err(Gap::TooOld) => {
                // A reader that asks for too old a position gets what is
                // left, marked incomplete.
                complete = false;
                let since = log.first() - 1;
                log.after(since, limit, false, filter)?
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
        let logs: Vec<Option<LogRef<'_>>> = order.iter().map(|w| self.log(&w.namespace)).collect();
        // Locked in name order (every recovery takes them in that order;
        // an append takes one), so recoveries cannot deadlock.
        let mut guards: Vec<Option<MutexGuard<'_, Log>>> =
            logs.iter().map(|log| log.as_deref().map(locked)).collect();
        let now = now_ms();
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
                    log.after(want.since, self.replay_limit, true, &|_| true)
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
        let made = self.logs.iter().map(|log| Arc::clone(log.value()));
        let named = self.named.values().map(LogRef::Named);
        for log in named.chain(made.map(LogRef::Made)) {
            let log = locked(&log);
            stats.events += log.events.len() as u64;
            stats.bytes += log.events.weight() as u64;
            stats.evicted += log.counters.evicted;
            stats.duplicates += log.counters.duplicates;
            stats.logs += 1;
        }
        stats
    }
}

#[cfg(test)]
mod tests;
