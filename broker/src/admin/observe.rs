//! What the admin console watches, tapped where it happens: every emit
//! entering this node (per-namespace rates and the live tail), and the
//! comings and goings of connections and room members (for the Socket.IO
//! Admin UI's watchers).
//!
//! The router owns one [`Observer`] and calls it on every emit; with no
//! tail open that costs one relaxed atomic load ([`Observer::emit`]). An
//! open tail gets samples through a bounded queue with `try_send`, and at
//! most its per-second budget (`admin.tail_rate`, refilled by the tail's
//! own task every second): what does not fit is counted as a dropped
//! sample, so the console never slows the broker down.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, PoisonError, RwLock};

use bytes::Bytes;
use dashmap::DashMap;
use herald_protocol::Pattern;
use herald_protocol::envelope::Emit;
use tokio::sync::mpsc;

use crate::outbox::Outbox;
use crate::router::FastHash;

/// Most namespaces whose rates are counted apart; the rest are counted
/// under [`OTHER_NAMESPACES`], so a client inventing names cannot grow the
/// map without bound.
const MAX_RATE_NAMESPACES: usize = 1024;

/// Where emits of namespaces past [`MAX_RATE_NAMESPACES`] are counted.
pub(crate) const OTHER_NAMESPACES: &str = "(other)";

/// One sampled event, as the tail shows it.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) namespace: Box<str>,
    pub(crate) event: Box<str>,
    pub(crate) room: Option<Box<str>>,
    pub(crate) from: Option<Arc<str>>,
    /// The payload as it was emitted (MessagePack), converted to JSON by
    /// the tail's task, not here.
    pub(crate) payload: Bytes,
    /// Several Socket.IO arguments spread from one array.
    pub(crate) args: bool,
    /// When it was sampled, ms since the Unix epoch.
    pub(crate) at_ms: u64,
}

/// Which events a tail wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct TailFilter {
    pub(crate) namespace: Option<Box<str>>,
    pub(crate) pattern: Option<Pattern>,
}

impl TailFilter {
    fn wants(&self, emit: &Emit) -> bool {
        self.namespace
            .as_deref()
            .is_none_or(|ns| ns == emit.namespace)
            && self.pattern.as_ref().is_none_or(|p| p.matches(&emit.event))
    }
}

/// One open tail: its filter, its queue, its budget for this second.
#[derive(Debug)]
pub(crate) struct Tail {
    filter: TailFilter,
    tx: mpsc::Sender<Sample>,
    /// Samples it may still take this second.
    budget: AtomicU32,
    /// Samples it matched but did not get (over the budget, queue full).
    pub(crate) dropped: AtomicU64,
}

impl Tail {
    /// Gives the tail its budget for the next second.
    pub(crate) fn refill(&self, per_second: u32) {
        self.budget.store(per_second, Relaxed);
    }

    fn offer(&self, emit: &Emit, from: Option<&Outbox>) {
        let took = self
            .budget
            .fetch_update(Relaxed, Relaxed, |b| b.checked_sub(1))
            .is_ok();
        let sample = || Sample {
            namespace: emit.namespace.as_str().into(),
            event: emit.event.as_str().into(),
            room: emit.room.as_deref().map(Box::from),
            from: from.map(|o| o.session.clone()),
            payload: emit.payload.clone(),
            args: emit.args,
            at_ms: unix_ms(),
        };
        if !took || self.tx.try_send(sample()).is_err() {
            self.dropped.fetch_add(1, Relaxed);
        }
    }
}

/// An admin socket of the Socket.IO Admin UI protocol: told of every
/// connection and room change.
#[derive(Debug, Clone)]
pub(crate) struct Watcher {
    pub(crate) outbox: Outbox,
    /// Its admin namespace (the `nsp` its events are sent in).
    pub(crate) namespace: Arc<str>,
}

/// A change a watcher is told of.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Change<'a> {
    /// A connection (native at its hello, Socket.IO per namespace).
    Connected {
        conn: &'a Outbox,
        namespace: &'a str,
    },
    Disconnected {
        conn: &'a Outbox,
        namespace: &'a str,
        reason: &'a str,
    },
    Room {
        namespace: &'a str,
        room: &'a str,
        session: &'a str,
        joined: bool,
    },
}

/// The taps of one broker.
#[derive(Debug, Default)]
pub(crate) struct Observer {
    /// Open tails: zero means [`Observer::emit`] returns at once.
    tail_count: AtomicUsize,
    tails: RwLock<Vec<Arc<Tail>>>,
    /// Emits per namespace since the first tail opened (cumulative; each
    /// reader takes differences).
    rates: DashMap<Box<str>, AtomicU64, FastHash>,
    watcher_count: AtomicUsize,
    watchers: RwLock<Vec<Watcher>>,
}

/// Removes a tail from the observer when its stream ends.
#[derive(Debug)]
pub(crate) struct TailGuard<'a> {
    observer: &'a Observer,
    pub(crate) tail: Arc<Tail>,
}

impl Drop for TailGuard<'_> {
    fn drop(&mut self) {
        let mut tails = self
            .observer
            .tails
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        tails.retain(|t| !Arc::ptr_eq(t, &self.tail));
        self.observer.tail_count.store(tails.len(), Relaxed);
    }
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0))
}

impl Observer {
    /// An emit entering this node (a connection's, a request, an HTTP
    /// publish). One relaxed load while no tail is open.
    #[inline]
    pub(crate) fn emit(&self, emit: &Emit, from: Option<&Outbox>) {
        if self.tail_count.load(Relaxed) != 0 {
            self.tap(emit, from);
        }
    }

    #[cold]
    #[inline(never)]
    fn tap(&self, emit: &Emit, from: Option<&Outbox>) {
        match self.rates.get(emit.namespace.as_str()) {
            Some(count) => {
                count.fetch_add(1, Relaxed);
            }
            None => {
                let key: &str = if self.rates.len() < MAX_RATE_NAMESPACES {
                    &emit.namespace
                } else {
                    OTHER_NAMESPACES
                };
                self.rates
                    .entry(key.into())
                    .or_default()
                    .fetch_add(1, Relaxed);
            }
        }
        let tails = self.tails.read().unwrap_or_else(PoisonError::into_inner);
        for tail in tails.iter().filter(|t| t.filter.wants(emit)) {
            tail.offer(emit, from);
        }
    }

    /// Opens a tail whose queue holds `capacity` samples; it is closed
    /// when the guard is dropped.
    pub(crate) fn open_tail(
        &self,
        filter: TailFilter,
        capacity: usize,
    ) -> (TailGuard<'_>, mpsc::Receiver<Sample>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let tail = Arc::new(Tail {
            filter,
            tx,
            budget: AtomicU32::new(0),
            dropped: AtomicU64::new(0),
        });
        let mut tails = self.tails.write().unwrap_or_else(PoisonError::into_inner);
        tails.push(tail.clone());
        self.tail_count.store(tails.len(), Relaxed);
        (
            TailGuard {
                observer: self,
                tail,
            },
            rx,
        )
    }

    /// Cumulative emits per namespace (counted while a tail is open).
    pub(crate) fn rates(&self) -> Vec<(String, u64)> {
        self.rates
            .iter()
            .map(|e| (e.key().to_string(), e.value().load(Relaxed)))
            .collect()
    }

    pub(crate) fn add_watcher(&self, watcher: Watcher) {
        let mut watchers = self
            .watchers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        watchers.push(watcher);
        self.watcher_count.store(watchers.len(), Relaxed);
    }

    pub(crate) fn remove_watcher(&self, outbox: &Outbox, namespace: &str) {
        let mut watchers = self
            .watchers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        watchers.retain(|w| !(w.outbox.id == outbox.id && *w.namespace == *namespace));
        self.watcher_count.store(watchers.len(), Relaxed);
    }

    /// Tells every watcher of `change`. One relaxed load when none.
    #[inline]
    pub(crate) fn change(&self, change: &Change<'_>) {
        if self.watcher_count.load(Relaxed) != 0 {
            self.tell(change);
        }
    }

    #[cold]
    #[inline(never)]
    fn tell(&self, change: &Change<'_>) {
        let watchers = self.watchers.read().unwrap_or_else(PoisonError::into_inner);
        for watcher in watchers.iter() {
            super::sio::notify(watcher, change);
        }
    }

    /// A native connection said hello (it shows under namespace `/`).
    pub(crate) fn connected(&self, conn: &Outbox) {
        self.change(&Change::Connected {
            conn,
            namespace: "/",
        });
    }
}
