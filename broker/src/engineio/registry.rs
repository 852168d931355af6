//! Long-polling sessions by sid, so a GET, a POST or an upgrade finds its
//! session. WebSocket-only sessions are never listed (nothing else can
//! address them). The number of sessions is bounded by the broker's
//! connection permits (`server.max_connections`): each session holds one.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use dashmap::DashMap;

use super::polling::PollSession;

/// The long-polling sessions of one broker.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: DashMap<Box<str>, Arc<PollSession>>,
    /// Long-polling GETs waiting for packets now.
    pub(crate) waiting: Arc<AtomicUsize>,
}

impl Registry {
    pub(crate) fn insert(&self, session: Arc<PollSession>) {
        self.sessions.insert(session.sid.clone(), session);
    }

    /// The session `sid`, unless it is unknown or closing.
    pub(crate) fn get(&self, sid: &str) -> Option<Arc<PollSession>> {
        let session = self.sessions.get(sid)?.clone();
        (!session.outbox.close.is_cancelled()).then_some(session)
    }

    pub(crate) fn remove(&self, sid: &str) {
        self.sessions.remove(sid);
    }

    /// Sessions listed now.
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// GETs waiting for packets now.
    pub(crate) fn polls_waiting(&self) -> usize {
        self.waiting.load(Relaxed)
    }
}
