//! Calls awaiting the broker's answer, by correlation id.
//!
//! Every envelope that expects an answer (`sub`, `unsub`, `join`, `leave`,
//! an emit with `id`, a request) carries an id from one counter, so one map
//! serves them all: the reader completes an entry when `ok`, `ack`, `reply`
//! or `err` names its id. When a connection is lost every entry fails with
//! [`Error::Disconnected`], since its answer can no longer arrive.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::oneshot;

use crate::error::Error;
use crate::lock;

/// A successful answer from the broker.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Answer {
    /// `ok`: a sub, unsub, join or leave was accepted.
    Ok,
    /// `ack`: an emit reached this many connections.
    Ack(u64),
    /// `reply`: a request's answer.
    Reply {
        /// The responder succeeded.
        ok: bool,
        /// The answer's payload.
        payload: Bytes,
    },
}

/// Who waits for an answer.
#[derive(Debug)]
pub(crate) enum Waiter {
    /// A caller awaiting the result.
    Call(oneshot::Sender<Result<Answer, Error>>),
    /// The connection task restoring a subscription or room after a
    /// reconnect; nobody awaits it, a failure is reported instead. The
    /// string says what was restored.
    Restore(String),
}

/// What became of an answer handed to [`Pending::complete`].
#[derive(Debug)]
pub(crate) enum Completion {
    /// A caller got it (or had stopped waiting).
    Delivered,
    /// It answered a restore.
    Restore(String, Result<Answer, Error>),
    /// No entry had this id: a late answer (the caller timed out) or a
    /// broker bug.
    Unknown(Result<Answer, Error>),
}

/// The map of calls in flight.
#[derive(Debug, Default)]
pub(crate) struct Pending {
    /// Std mutex: every operation is a map insert or removal.
    map: Mutex<HashMap<u64, Waiter>>,
    /// The correlation id counter; starts at 1 (0 is never used).
    next_id: AtomicU64,
}

impl Pending {
    /// A fresh id for an envelope that expects an answer.
    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a caller for `id`; the returned receiver gets the answer.
    pub(crate) fn call(&self, id: u64) -> oneshot::Receiver<Result<Answer, Error>> {
        let (tx, rx) = oneshot::channel();
        lock(&self.map).insert(id, Waiter::Call(tx));
        rx
    }

    /// Registers a restore for `id`.
    pub(crate) fn restore(&self, id: u64, what: String) {
        lock(&self.map).insert(id, Waiter::Restore(what));
    }

    /// Forgets `id` (the caller stopped waiting).
    pub(crate) fn remove(&self, id: u64) {
        lock(&self.map).remove(&id);
    }

    /// Hands an answer to whoever waits for `id`.
    pub(crate) fn complete(&self, id: u64, result: Result<Answer, Error>) -> Completion {
        let waiter = lock(&self.map).remove(&id);
        match waiter {
            Some(Waiter::Call(tx)) => {
                // The caller may have given up (timed out) meanwhile.
                let _ = tx.send(result);
                Completion::Delivered
            }
            Some(Waiter::Restore(what)) => Completion::Restore(what, result),
            None => Completion::Unknown(result),
        }
    }

    /// Fails every call in flight with `error` (restores are dropped).
    pub(crate) fn fail_all(&self, error: &Error) {
        let drained: Vec<Waiter> = lock(&self.map).drain().map(|(_, w)| w).collect();
        for waiter in drained {
            if let Waiter::Call(tx) = waiter {
                let _ = tx.send(Err(error.clone()));
            }
        }
    }

    /// How many calls are in flight.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        lock(&self.map).len()
    }
}

/// Removes a call's entry when the call's future ends or is dropped, so a
/// caller that timed out or was cancelled leaves nothing behind.
pub(crate) struct PendingGuard<'a> {
    pending: &'a Pending,
    id: u64,
}

impl<'a> PendingGuard<'a> {
    /// Guards the entry `id` of `pending`.
    pub(crate) fn new(pending: &'a Pending, id: u64) -> PendingGuard<'a> {
        PendingGuard { pending, id }
    }
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reach_their_caller() {
        let pending = Pending::default();
        let a = pending.next_id();
        let b = pending.next_id();
        assert_ne!(a, b);
        let rx_a = pending.call(a);
        let rx_b = pending.call(b);
        assert!(matches!(
            pending.complete(b, Ok(Answer::Ack(3))),
            Completion::Delivered
        ));
        assert_eq!(rx_b.await.expect("answered"), Ok(Answer::Ack(3)));
        assert!(matches!(
            pending.complete(b, Ok(Answer::Ok)),
            Completion::Unknown(_)
        ));
        pending.fail_all(&Error::Disconnected);
        assert_eq!(rx_a.await.expect("answered"), Err(Error::Disconnected));
        assert_eq!(pending.len(), 0);
    }

    #[test]
    fn restores_are_returned_and_guards_clean_up() {
        let pending = Pending::default();
        pending.restore(7, "sub / a".into());
        match pending.complete(7, Err(Error::Timeout)) {
            Completion::Restore(what, Err(Error::Timeout)) => assert_eq!(what, "sub / a"),
            other => panic!("unexpected {other:?}"),
        }
        let id = pending.next_id();
        let _rx = pending.call(id);
        drop(PendingGuard::new(&pending, id));
        assert_eq!(pending.len(), 0);
    }
}
