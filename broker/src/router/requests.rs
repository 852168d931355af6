//! Requests in flight: the handle given to the responder → who asked.
//!
//! A request is answered by a `reply` naming the handle, or expires at its
//! deadline; either way the entry is removed exactly once (`DashMap::remove`
//! decides the race), so the requester gets one answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use dashmap::DashMap;

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
#[derive(Debug, Clone, PartialEq, Eq)]
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
    /// When the request was routed (for the latency histogram).
    pub(crate) started: Instant,
}

/// The table of requests in flight.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    next_handle: AtomicU64,
    pending: DashMap<u64, Pending>,
}

impl Requests {
    /// Records a request and returns the handle the responder will answer.
    pub(crate) fn open(&self, pending: Pending) -> u64 {
        let handle = self.next_handle.fetch_add(1, Relaxed) + 1;
        if let Requester::Local(requester) = &pending.requester {
            requester.pending_requests.fetch_add(1, Relaxed);
        }
        self.pending.insert(handle, pending);
        handle
    }

    /// Takes the request answered by `responder`, if it is still open and
    /// was sent to that responder.
    pub(crate) fn answer(&self, handle: u64, responder: &Responder) -> Option<Pending> {
        let (_, pending) = self
            .pending
            .remove_if(&handle, |_, p| p.responder == *responder)?;
        Self::release(&pending);
        Some(pending)
    }

    /// Takes a request whose deadline passed, if nobody answered it.
    pub(crate) fn expire(&self, handle: u64) -> Option<Pending> {
        let (_, pending) = self.pending.remove(&handle)?;
        Self::release(&pending);
        Some(pending)
    }

    /// Takes every request waiting on `responder` (it disconnected), so
    /// their requesters are told at once instead of at their timeout.
    /// Costs a scan of the requests in flight; called only for connections
    /// that had responder subscriptions.
    pub(crate) fn abandon(&self, responder: &Responder) -> Vec<Pending> {
        let handles: Vec<u64> = self
            .pending
            .iter()
            .filter(|entry| entry.value().responder == *responder)
            .map(|entry| *entry.key())
            .collect();
        handles
            .into_iter()
            .filter_map(|handle| self.answer(handle, responder))
            .collect()
    }

    /// Forgets a request that could not be delivered after all.
    pub(crate) fn cancel(&self, handle: u64) {
        self.expire(handle);
    }

    fn release(pending: &Pending) {
        if let Requester::Local(requester) = &pending.requester {
            requester.pending_requests.fetch_sub(1, Relaxed);
        }
    }

    /// Requests in flight now.
    pub(crate) fn len(&self) -> usize {
        self.pending.len()
    }
}
