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
//!
//! Routing allocates nothing per event: the event is borrowed from its
//! frame ([`EventView`]), the matching queues go into the reader's own
//! scratch vector, and a [`Delivery`] shares the frame and says where its
//! names and payload lie in it: names become `String`s only for handlers
//! that ask for the event's metadata.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use herald_protocol::{EventView, Pattern};
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

/// Where one part of a delivery (a name, the payload) lies in its frame.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    /// The span of `part` in `frame`, if it lies there (empty parts lie
    /// everywhere).
    fn within(frame: &[u8], part: &[u8]) -> Option<Span> {
        if part.is_empty() {
            return Some(Span::default());
        }
        let start = (part.as_ptr() as usize).checked_sub(frame.as_ptr() as usize)?;
        let end = start.checked_add(part.len())?;
        if end > frame.len() {
            return None;
        }
        Some(Span {
            start: u32::try_from(start).ok()?,
            end: u32::try_from(end).ok()?,
        })
    }

    fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One event on its way to one handler: the frame it came in, shared (one
/// reference count, however many handlers get it), and where its parts
/// lie in it. Names become `&str`s (or `String`s) only when asked for.
#[derive(Debug, Clone)]
pub(crate) struct Delivery {
    frame: Bytes,
    event: Span,
    room: Option<Span>,
    from: Option<Span>,
    payload: Span,
    /// The payload is an array of several arguments (`args` on the wire).
    pub(crate) args: bool,
    /// Set for requests.
    pub(crate) reply: Option<ReplyTo>,
}

impl Delivery {
    /// The delivery of `event`, borrowed from `frame`, answering `reply`.
    pub(crate) fn new(frame: &Bytes, event: &EventView<'_>, reply: Option<ReplyTo>) -> Delivery {
        match Delivery::spans(frame, event) {
            Some((name, room, from, payload)) => Delivery {
                frame: frame.clone(),
                event: name,
                room,
                from,
                payload,
                args: event.args,
                reply,
            },
            // Not from `frame` after all: the parts are copied into a frame
            // of their own.
            None => Delivery::copied(event, reply),
        }
    }

    /// Where `event`'s name, room, sender and payload lie in `frame`.
    #[allow(clippy::type_complexity, reason = "a private tuple of four spans")]
    fn spans(
        frame: &[u8],
        event: &EventView<'_>,
    ) -> Option<(Span, Option<Span>, Option<Span>, Span)> {
        let optional = |part: Option<&str>| match part {
            Some(part) => Span::within(frame, part.as_bytes()).map(Some),
            None => Some(None),
        };
        Some((
            Span::within(frame, event.event.as_bytes())?,
            optional(event.room)?,
            optional(event.from)?,
            Span::within(frame, &event.payload)?,
        ))
    }

    /// The delivery of `event` with its parts copied.
    fn copied(event: &EventView<'_>, reply: Option<ReplyTo>) -> Delivery {
        let mut buffer = Vec::new();
        let mut place = |part: &[u8]| {
            let start = buffer.len();
            buffer.extend_from_slice(part);
            (start, buffer.len())
        };
        let name = place(event.event.as_bytes());
        let room = event.room.map(|room| place(room.as_bytes()));
        let from = event.from.map(|from| place(from.as_bytes()));
        let payload = place(&event.payload);
        let span = |(start, end): (usize, usize)| Span {
            start: u32::try_from(start).unwrap_or(u32::MAX),
            end: u32::try_from(end).unwrap_or(u32::MAX),
        };
        Delivery {
            frame: Bytes::from(buffer),
            event: span(name),
            room: room.map(span),
            from: from.map(span),
            payload: span(payload),
            args: event.args,
            reply,
        }
    }

    fn text(&self, span: Span) -> &str {
        // Every span is of a `&str` (or empty), so this never falls back.
        self.frame
            .get(span.range())
            .and_then(|b| std::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// Event name (the pattern may have had wildcards).
    pub(crate) fn event(&self) -> &str {
        self.text(self.event)
    }

    /// The room it was emitted to, if any.
    pub(crate) fn room(&self) -> Option<&str> {
        self.room.map(|span| self.text(span))
    }

    /// The sender's session id, when the broker named it.
    pub(crate) fn from(&self) -> Option<&str> {
        self.from.map(|span| self.text(span))
    }

    /// The MessagePack payload's bytes.
    pub(crate) fn payload(&self) -> &[u8] {
        self.frame.get(self.payload.range()).unwrap_or_default()
    }

    /// The MessagePack payload, sharing the frame's memory.
    pub(crate) fn payload_bytes(&self) -> Bytes {
        self.frame.slice_ref(self.payload())
    }
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
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// The handlers' queues put in the caller's vector, in registration
    /// order (none, when no local handler matches).
    Handlers,
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

    /// The handlers `event` runs (see the module documentation): their
    /// queues are appended to `queues` (cleared first).
    pub(crate) fn route(&self, event: &EventView<'_>, queues: &mut Vec<Queue>) -> Route {
        queues.clear();
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        let entries = inner
            .by_namespace
            .get(event.namespace)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let matching = |entry: &&Entry| entry.pattern.matches(event.event);
        if event.ack.is_some() {
            return match entries
                .iter()
                .filter(|e| e.key.responder)
                .find(matching)
                .and_then(|e| e.handlers.first())
            {
                Some((_, queue)) => {
                    queues.push(queue.clone());
                    Route::Handlers
                }
                None => Route::NoResponder,
            };
        }
        queues.extend(
            entries
                .iter()
                .filter(|e| match event.group {
                    Some(group) => !e.key.responder && e.key.group.as_deref() == Some(group),
                    None => e.is_plain(),
                })
                .filter(matching)
                .flat_map(|e| e.handlers.iter().map(|(_, q)| q.clone())),
        );
        if event.group.is_some() && queues.len() > 1 {
            inner.group_cursor = inner.group_cursor.wrapping_add(1);
            let chosen = queues.swap_remove(inner.group_cursor % queues.len());
            queues.clear();
            queues.push(chosen);
        }
        Route::Handlers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_protocol::envelope::Event;

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
            let frame = Bytes::from(herald_protocol::encode(&herald_protocol::Envelope::Event(
                ev,
            )));
            let Ok(herald_protocol::Decoded::Event(view)) = herald_protocol::decode_view(&frame)
            else {
                panic!("an event frame decodes as an event");
            };
            let mut queues = vec![];
            if self.registry.route(&view, &mut queues) == Route::NoResponder {
                return vec!["<no responder>"];
            }
            for q in queues {
                q.try_send(Delivery::new(&frame, &view, None))
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
    fn deliveries_share_the_frame() {
        let mut ev = event("order.created");
        ev.room = Some("eu".into());
        ev.from = Some("s1".into());
        ev.payload = Bytes::from_static(b"\x01\x02");
        let frame = Bytes::from(herald_protocol::encode(&herald_protocol::Envelope::Event(
            ev,
        )));
        let Ok(herald_protocol::Decoded::Event(view)) = herald_protocol::decode_view(&frame) else {
            panic!("an event frame decodes as an event");
        };
        let delivery = Delivery::new(&frame, &view, None);
        assert_eq!(delivery.event(), "order.created");
        assert_eq!(delivery.room(), Some("eu"));
        assert_eq!(delivery.from(), Some("s1"));
        assert_eq!(delivery.payload(), b"\x01\x02");
        assert_eq!(
            delivery.payload().as_ptr(),
            view.payload.as_ptr(),
            "not a copy"
        );
        assert_eq!(delivery.payload_bytes(), view.payload);
        // Parts from elsewhere are copied into a frame of their own.
        let elsewhere = Bytes::from_static(b"unrelated");
        let copied = Delivery::new(&elsewhere, &view, None);
        assert_eq!(
            (
                copied.event(),
                copied.room(),
                copied.from(),
                copied.payload()
            ),
            ("order.created", Some("eu"), Some("s1"), &b"\x01\x02"[..])
        );
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
