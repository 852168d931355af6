//! Requests in flight: the handle given to the responder → who asked, with
//! each request's deadline and an index of the requests by responder.
//!
//! A request is answered by a `reply` naming the handle, expires at its
//! deadline, or is abandoned when its responder goes; whichever comes
//! first removes the entry, exactly once (`DashMap::remove` decides the
//! race), so the requester gets one answer. Removing the entry also removes
//! its deadline and its index entry, so nothing of an answered request
//! stays behind.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::FastHash;
use super::deadlines::{Deadlines, Tick};
use crate::outbox::{ConnId, Outbox};

/// Who asked.
#[derive(Debug)]
pub(crate) enum Requester {
    /// A connection of this node.
    Local(Outbox),
    /// Another node; its own handle for the request is the pending `ack`.
    Node(Arc<str>),
}

/// Who may answer.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Responder {
    /// A connection of this node.
    Local(ConnId),
    /// Whichever responder another node picked.
    Node(Arc<str>),
}

/// One request waiting for its reply.
#[derive(Debug)]
pub(crate) struct Pending {
    pub(crate) requester: Requester,
    /// The requester's own ack id (or the origin node's handle), echoed in
    /// the reply.
    pub(crate) ack: u64,
    /// Only this responder may answer.
    pub(crate) responder: Responder,
    /// Where the request was made (a Socket.IO answer names it).
    pub(crate) namespace: Arc<str>,
    /// When the request was routed (for the latency histogram).
    pub(crate) started: Instant,
    /// How long the requester waits (named in the `timeout` error).
    pub(crate) timeout: Duration,
    /// Its entry in the deadlines.
    deadline: Tick,
}

/// The table of requests in flight.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    next_handle: AtomicU64,
    pending: DashMap<u64, Pending, FastHash>,
    /// The handles waiting on each responder, so a responder that goes
    /// costs in proportion to its own requests.
    by_responder: DashMap<Responder, HashSet<u64, FastHash>, FastHash>,
    deadlines: Deadlines,
}

impl Requests {
    /// Records a request that `responder` may answer within `timeout` and
    /// returns the handle it will answer. Its deadline is armed at once, so
    /// open it before the request is handed on (a reply can then never
    /// come before its deadline exists).
    pub(crate) fn open(
        &self,
        requester: Requester,
        ack: u64,
        responder: Responder,
        namespace: &str,
        timeout: Duration,
    ) -> u64 {
        let handle = self.next_handle.fetch_add(1, Relaxed) + 1;
        if let Requester::Local(requester) = &requester {
            requester.pending_requests.fetch_add(1, Relaxed);
        }
        self.by_responder
            .entry(responder.clone())
            .or_default()
            .insert(handle);
        // The entry goes in before its deadline, so an expiry always finds
        // it (unless it was answered).
        self.pending.insert(
            handle,
            Pending {
                requester,
                ack,
                responder,
                namespace: Arc::from(namespace),
                started: Instant::now(),
                timeout,
                deadline: Tick::MAX,
            },
        );
        let deadline = self.deadlines.insert(handle, timeout);
        match self.pending.get_mut(&handle) {
            Some(mut pending) => pending.deadline = deadline,
            // Already taken (a very quick reply): its deadline is ours to drop.
            None => self.deadlines.remove(deadline, handle),
        }
        handle
    }

    /// Takes the request answered by `responder`, if it is still open and
    /// was sent to that responder.
    pub(crate) fn answer(&self, handle: u64, responder: &Responder) -> Option<Pending> {
        let (_, pending) = self
            .pending
            .remove_if(&handle, |_, p| p.responder == *responder)?;
        Some(self.release(handle, pending))
    }

    /// Takes a request whose deadline passed, if nobody answered it.
    pub(crate) fn expire(&self, handle: u64) -> Option<Pending> {
        let (_, pending) = self.pending.remove(&handle)?;
        Some(self.release(handle, pending))
    }

    /// Waits for deadlines to pass and moves the requests they belong to
    /// into `out` (those not answered meanwhile). Cancel-safe.
    pub(crate) async fn expired(&self, out: &mut Vec<Pending>) {
        let mut handles = Vec::new();
        self.deadlines.due(&mut handles).await;
        out.extend(handles.into_iter().filter_map(|h| self.expire(h)));
    }

    /// Takes every request waiting on `responder` (it disconnected), so
    /// their requesters are told at once instead of at their timeout.
    /// Costs in proportion to that responder's requests.
    pub(crate) fn abandon(&self, responder: &Responder) -> Vec<Pending> {
        let Some((_, handles)) = self.by_responder.remove(responder) else {
            return Vec::new();
        };
        handles
            .into_iter()
            .filter_map(|handle| self.answer(handle, responder))
            .collect()
    }

    /// Forgets a request that could not be delivered after all.
    pub(crate) fn cancel(&self, handle: u64) {
        self.expire(handle);
    }

    /// The clean-up of a request just taken out of the table (by whoever
    /// won the race, so it runs once).
    fn release(&self, handle: u64, pending: Pending) -> Pending {
        if let Requester::Local(requester) = &pending.requester {
            requester.pending_requests.fetch_sub(1, Relaxed);
        }
        if pending.deadline != Tick::MAX {
            self.deadlines.remove(pending.deadline, handle);
        }
        let emptied = self
            .by_responder
            .get_mut(&pending.responder)
            .is_some_and(|mut handles| {
                handles.remove(&handle);
                handles.is_empty()
            });
        if emptied {
            self.by_responder
                .remove_if(&pending.responder, |_, handles| handles.is_empty());
        }
        pending
    }

    /// Requests in flight now.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }

    /// Deadlines armed now (one per request in flight; for tests).
    #[cfg(test)]
    pub(crate) fn armed(&self) -> usize {
        self.deadlines.len()
    }

    /// Responders with requests in flight (for tests).
    #[cfg(test)]
    pub(crate) fn responders(&self) -> usize {
        self.by_responder.len()
    }
}
