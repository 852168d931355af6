//! The local handler registry: which handlers a delivered event runs.
//!
//! The broker knows one subscription per `(namespace, pattern, group,
//! responder)` key ([`SubKey`]) and sends this connection one frame per emit
//! for all its plain subscriptions together, plus one per queue group that
//! picked it. So the SDK subscribes once per key and fans out here, matching
//! the event against every local pattern with [`Pattern::matches`]:
//!
//! - an event with `ack` is a request: it runs ONE responder handler (the
//!   first registered whose pattern matches);
//! - an event with `group` runs ONE handler of that queue group whose
//!   pattern matches (round-robin), so "exactly one member per group" holds
//!   for handlers in one process as it does for connections;
//! - any other event runs the plain handlers whose pattern matches.
//!
//! Each handler owns a bounded queue ([`Delivery`]s) drained by its own
//! task (see [`crate::handler`]), so it sees events one at a time and in
//! order; the reader waits for queue space instead of dropping.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use herald_protocol::Pattern;
use herald_protocol::envelope::Event;
use tokio::sync::mpsc;

use crate::lock;

/// The broker-side identity of a subscription.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct SubKey {
    /// Namespace.
    pub(crate) namespace: String,
    /// Event name or pattern, as the user wrote it.
    pub(crate) event: String,
    /// Queue group, if any.
    pub(crate) group: Option<String>,
    /// A responder subscription (requests only).
    pub(crate) responder: bool,
}

impl std::fmt::Display for SubKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.namespace, self.event)?;
        if let Some(group) = &self.group {
            write!(f, " (queue group {group})")?;
        }
        if self.responder {
            f.write_str(" (responder)")?;
        }
        Ok(())
    }
}

/// Where a request's answer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyTo {
    /// The `ack` handle of the request event.
    pub(crate) handle: u64,
    /// The connection the request came in on; the reply is dropped if that
    /// connection is gone (the broker has forgotten the handle).
    pub(crate) generation: u64,
}

/// One event on its way to one handler.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    /// Event name (the pattern may have had wildcards).
    pub(crate) event: String,
    /// The room it was emitted to, if any.
    pub(crate) room: Option<String>,
    /// The MessagePack payload.
    pub(crate) payload: Bytes,
    /// The payload is an array of several arguments (`args` on the wire).
    pub(crate) args: bool,
    /// The sender's session id, when the broker named it.
    pub(crate) from: Option<String>,
    /// Set for requests.
    pub(crate) reply: Option<ReplyTo>,
}

/// A handler's queue.
pub(crate) type Queue = mpsc::Sender<Delivery>;

#[derive(Debug)]
struct Entry {
    key: SubKey,
    pattern: Pattern,
    /// (handler id, its queue), in registration order.
    handlers: Vec<(u64, Queue)>,
}

impl Entry {
    fn is_plain(&self) -> bool {
        self.key.group.is_none() && !self.key.responder
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Entries by namespace, each list in subscription order.
    by_namespace: HashMap<String, Vec<Entry>>,
    next_handler: u64,
    /// Round-robin position among the local handlers of a queue group.
    group_cursor: usize,
}

/// What a delivered event should run.
#[derive(Debug)]
pub(crate) enum Route {
    /// These handlers' queues, in registration order.
    Handlers(Vec<Queue>),
    /// A request no local responder matches (it raced an unsubscribe):
    /// answer it with an error so the requester is not left to time out.
    NoResponder,
}

/// The registry (see the module documentation).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// Std mutex: routing clones the matching queues out and releases it
    /// before awaiting queue space.
    inner: Mutex<Inner>,
}

impl Registry {
    /// True when the broker already has a subscription for `key`.
    pub(crate) fn contains(&self, key: &SubKey) -> bool {
        lock(&self.inner)
            .by_namespace
            .get(&key.namespace)
            .is_some_and(|entries| entries.iter().any(|e| e.key == *key))
    }

    /// Adds a handler under `key` (creating the entry); returns its id.
    pub(crate) fn add(&self, key: SubKey, pattern: Pattern, queue: Queue) -> u64 {
        let mut inner = lock(&self.inner);
        inner.next_handler += 1;
        let id = inner.next_handler;
        let entries = inner.by_namespace.entry(key.namespace.clone()).or_default();
        match entries.iter_mut().find(|e| e.key == key) {
            Some(entry) => entry.handlers.push((id, queue)),
            None => entries.push(Entry {
                key,
                pattern,
                handlers: vec![(id, queue)],
            }),
        }
        id
    }

    /// Removes handler `id` from `key`. Returns true when that was the last
    /// handler of the key, whose entry is then gone (time to `unsub`).
    pub(crate) fn remove(&self, key: &SubKey, id: u64) -> bool {
        let mut inner = lock(&self.inner);
        let Some(entries) = inner.by_namespace.get_mut(&key.namespace) else {
            return false;
        };
        let Some(pos) = entries.iter().position(|e| e.key == *key) else {
            return false;
        };
        entries[pos].handlers.retain(|(h, _)| *h != id);
        if !entries[pos].handlers.is_empty() {
            return false;
        }
        entries.remove(pos);
        if entries.is_empty() {
            inner.by_namespace.remove(&key.namespace);
        }
        true
    }

    /// Removes `key` with all its handlers (the broker revoked it); their
    /// queues close, so their tasks end once drained. True if it was there.
    pub(crate) fn remove_key(&self, key: &SubKey) -> bool {
        let mut inner = lock(&self.inner);
        let Some(entries) = inner.by_namespace.get_mut(&key.namespace) else {
            return false;
        };
        let before = entries.len();
        entries.retain(|e| e.key != *key);
        let removed = entries.len() < before;
        if entries.is_empty() {
            inner.by_namespace.remove(&key.namespace);
        }
        removed
    }

    /// Every key the broker should know, for restoring after a reconnect.
    pub(crate) fn keys(&self) -> Vec<SubKey> {
        let inner = lock(&self.inner);
        let mut keys: Vec<SubKey> = inner
            .by_namespace
            .values()
            .flat_map(|entries| entries.iter().map(|e| e.key.clone()))
            .collect();
        keys.sort();
        keys
    }

    /// Drops every handler queue; their tasks end once their queues drain.
    pub(crate) fn clear(&self) {
        lock(&self.inner).by_namespace.clear();
    }

    /// The handlers `event` runs (see the module documentation).
    pub(crate) fn route(&self, event: &Event) -> Route {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let entries = inner
            .by_namespace
            .get(&event.namespace)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let matching = |entry: &&Entry| entry.pattern.matches(&event.event);
        if event.ack.is_some() {
            return entries
                .iter()
                .filter(|e| e.key.responder)
                .find(matching)
                .and_then(|e| e.handlers.first())
                .map_or(Route::NoResponder, |(_, q)| {
                    Route::Handlers(vec![q.clone()])
                });
        }
        let mut queues: Vec<Queue> = entries
            .iter()
            .filter(|e| match &event.group {
                Some(group) => !e.key.responder && e.key.group.as_ref() == Some(group),
                None => e.is_plain(),
            })
            .filter(matching)
            .flat_map(|e| e.handlers.iter().map(|(_, q)| q.clone()))
            .collect();
        if event.group.is_some() && queues.len() > 1 {
            inner.group_cursor = inner.group_cursor.wrapping_add(1);
            let chosen = queues.swap_remove(inner.group_cursor % queues.len());
            queues = vec![chosen];
        }
        Route::Handlers(queues)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(event: &str, group: Option<&str>, responder: bool) -> SubKey {
        SubKey {
            namespace: "/orders".into(),
            event: event.into(),
            group: group.map(str::to_owned),
            responder,
        }
    }

    struct Fixture {
        registry: Registry,
        receivers: Vec<(&'static str, mpsc::Receiver<Delivery>)>,
    }

    impl Fixture {
        fn new() -> Fixture {
            Fixture {
                registry: Registry::default(),
                receivers: Vec::new(),
            }
        }

        fn add(&mut self, label: &'static str, key: SubKey) -> u64 {
            let (tx, rx) = mpsc::channel(8);
            let pattern = Pattern::parse(&key.event).expect("valid pattern");
            self.receivers.push((label, rx));
            self.registry.add(key, pattern, tx)
        }

        /// Routes `ev` and returns the labels of the handlers it reached.
        fn deliver(&mut self, ev: Event) -> Vec<&'static str> {
            let queues = match self.registry.route(&ev) {
                Route::Handlers(queues) => queues,
                Route::NoResponder => return vec!["<no responder>"],
            };
            for q in queues {
                q.try_send(Delivery {
                    event: ev.event.clone(),
                    room: None,
                    payload: ev.payload.clone(),
                    args: false,
                    from: None,
                    reply: None,
                })
                .expect("queue has room");
            }
            let mut hit = Vec::new();
            for (label, rx) in &mut self.receivers {
                while rx.try_recv().is_ok() {
                    hit.push(*label);
                }
            }
            hit
        }
    }

    fn event(name: &str) -> Event {
        Event {
            namespace: "/orders".into(),
            event: name.into(),
            ..Event::default()
        }
    }

    #[test]
    fn plain_group_and_request_are_kept_apart() {
        let mut f = Fixture::new();
        f.add("exact", key("order.created", None, false));
        f.add("star", key("order.*", None, false));
        f.add("rest", key("order.>", None, false));
        f.add("billing", key("order.created", Some("billing"), false));
        f.add("audit", key("order.*", Some("audit"), false));
        f.add("responder", key("order.created", None, true));

        // Plain: every plain handler whose pattern matches, no group ones.
        assert_eq!(f.deliver(event("order.created")), ["exact", "star", "rest"]);
        assert_eq!(f.deliver(event("order.eu.created")), ["rest"]);

        // Group: only that group's matching handlers.
        let mut grouped = event("order.created");
        grouped.group = Some("billing".into());
        assert_eq!(f.deliver(grouped.clone()), ["billing"]);
        grouped.group = Some("audit".into());
        assert_eq!(f.deliver(grouped.clone()), ["audit"]);
        grouped.group = Some("nobody".into());
        assert!(f.deliver(grouped).is_empty());

        // Request: exactly one responder.
        let mut request = event("order.created");
        request.ack = Some(7);
        assert_eq!(f.deliver(request.clone()), ["responder"]);
        request.event = "order.updated".into();
        assert_eq!(f.deliver(request), ["<no responder>"]);

        // Other namespaces see nothing.
        let mut elsewhere = event("order.created");
        elsewhere.namespace = "/other".into();
        assert!(f.deliver(elsewhere).is_empty());
    }

    #[test]
    fn one_local_handler_per_group_event_round_robin() {
        let mut f = Fixture::new();
        f.add("w1", key("job", Some("workers"), false));
        f.add("w2", key("job", Some("workers"), false));
        f.add("w3", key("*", Some("workers"), false));
        let mut job = event("job");
        job.group = Some("workers".into());
        let mut seen = Vec::new();
        for _ in 0..6 {
            let hit = f.deliver(job.clone());
            assert_eq!(hit.len(), 1, "exactly one handler of the group: {hit:?}");
            seen.push(hit[0]);
        }
        for worker in ["w1", "w2", "w3"] {
            assert_eq!(seen.iter().filter(|w| **w == worker).count(), 2, "{seen:?}");
        }
    }

    #[test]
    fn one_entry_per_key_and_removal_reports_the_last_handler() {
        let mut f = Fixture::new();
        let a = f.add("a", key("order.created", None, false));
        let b = f.add("b", key("order.created", None, false));
        assert!(f.registry.contains(&key("order.created", None, false)));
        assert!(!f.registry.contains(&key("order.created", Some("g"), false)));
        assert_eq!(f.registry.keys().len(), 1);
        assert_eq!(f.deliver(event("order.created")), ["a", "b"]);

        assert!(!f.registry.remove(&key("order.created", None, false), a));
        assert_eq!(f.deliver(event("order.created")), ["b"]);
        assert!(f.registry.remove(&key("order.created", None, false), b));
        assert!(f.registry.keys().is_empty());
        assert!(f.deliver(event("order.created")).is_empty());
        // Removing again is harmless.
        assert!(!f.registry.remove(&key("order.created", None, false), b));
    }

    #[test]
    fn removing_a_key_drops_all_its_handlers() {
        let mut f = Fixture::new();
        f.add("a", key("order.*", None, false));
        f.add("b", key("order.*", None, false));
        f.add("g", key("order.*", Some("g"), false));
        assert!(f.registry.remove_key(&key("order.*", None, false)));
        assert!(!f.registry.remove_key(&key("order.*", None, false)));
        assert!(!f.registry.remove_key(&key("order.*", None, true)));
        assert_eq!(f.registry.keys(), [key("order.*", Some("g"), false)]);
        assert!(f.deliver(event("order.created")).is_empty());
        // The removed handlers' queues are closed.
        assert!(f.receivers[0].1.is_closed() && f.receivers[1].1.is_closed());
        assert!(f.registry.remove_key(&key("order.*", Some("g"), false)));
        assert!(f.registry.keys().is_empty());
    }
}
