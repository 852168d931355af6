//! One subscription index: exact names in a map keyed by
//! `(namespace, event)` (one hash probe per emit), patterns kept apart in a
//! token trie per namespace, and for each, the plain subscribers and the
//! queue groups.
//!
//! Entries are `Arc` snapshots: an emit clones the `Arc` out of the map and
//! drops the map guard before offering frames, so no lock is held during
//! fan-out. Changes use `Arc::make_mut`, which edits in place unless an
//! emit is reading that very snapshot at the moment; then it copies the
//! snapshot, which is cheap: the subscribers and group members are kept in
//! copy-on-write shards ([`Members`]), so the copy takes the shard pointers
//! and the one shard that changes, not every subscriber.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use dashmap::DashMap;
use herald_protocol::Pattern;
use indexmap::IndexMap;

use super::FastHash;
use super::key::{ChannelKey, KeyPair};
use super::shards::Members;
use super::trie::PatternTrie;
use crate::outbox::{ConnId, Outbox};

/// One queue group on one subscription target.
#[derive(Debug, Clone, Default)]
pub(crate) struct Group {
    pub(crate) members: Members,
    /// Round-robin position; shared by the copies of a snapshot so a
    /// rebuild does not restart the rotation.
    pub(crate) cursor: Arc<AtomicUsize>,
}

/// Who subscribed to one target.
#[derive(Debug, Clone, Default)]
pub(crate) struct Subscribers {
    pub(crate) plain: Members,
    pub(crate) groups: IndexMap<Arc<str>, Group>,
}

impl Subscribers {
    pub(crate) fn is_empty(&self) -> bool {
        self.plain.is_empty() && self.groups.is_empty()
    }

    pub(crate) fn insert(&mut self, group: Option<&Arc<str>>, conn: &Outbox) {
        match group {
            None => self.plain.insert(conn.id, conn.clone()),
            Some(name) => self
                .groups
                .entry(name.clone())
                .or_default()
                .members
                .insert(conn.id, conn.clone()),
        }
    }

    pub(crate) fn remove(&mut self, group: Option<&Arc<str>>, conn: ConnId) {
        match group {
            None => {
                self.plain.remove(conn);
            }
            Some(name) => {
                if let Some(g) = self.groups.get_mut(name) {
                    g.members.remove(conn);
                    if g.members.is_empty() {
                        self.groups.swap_remove(name);
                    }
                }
            }
        }
    }
}

/// What matched one event: the exact entry and the namespace's patterns.
#[derive(Debug, Default)]
pub(crate) struct Matched {
    pub(crate) exact: Option<Arc<Subscribers>>,
    pub(crate) patterns: Option<Arc<PatternTrie>>,
}

impl Matched {
    /// The subscribers of the patterns that match `event` (found by
    /// walking the trie, not by testing each pattern).
    pub(crate) fn pattern_hits<'a>(&'a self, event: &str) -> Vec<&'a Subscribers> {
        let mut hits = Vec::new();
        if let Some(trie) = &self.patterns {
            trie.matches(event, &mut |subs| hits.push(subs));
        }
        hits
    }
}

/// Exact and pattern subscriptions of one kind (events or responders).
#[derive(Debug, Default)]
pub(crate) struct SubscriptionIndex {
    exact: DashMap<ChannelKey, Arc<Subscribers>, FastHash>,
    patterns: DashMap<Box<str>, Arc<PatternTrie>, FastHash>,
}

impl SubscriptionIndex {
    /// Everything that may match `event` in `namespace`.
    pub(crate) fn lookup(&self, namespace: &str, event: &str) -> Matched {
        let key: &dyn KeyPair = &(namespace, event);
        Matched {
            exact: self.exact.get(key).map(|e| e.value().clone()),
            patterns: self.patterns.get(namespace).map(|p| p.value().clone()),
        }
    }

    pub(crate) fn insert(
        &self,
        namespace: &str,
        pattern: &Pattern,
        group: Option<&Arc<str>>,
        conn: &Outbox,
    ) {
        match pattern {
            Pattern::Exact(name) => {
                let mut entry = self
                    .exact
                    .entry(ChannelKey::new(namespace, name))
                    .or_default();
                Arc::make_mut(entry.value_mut()).insert(group, conn);
            }
            Pattern::Wildcard(tokens) => {
                let mut entry = self.patterns.entry(namespace.into()).or_default();
                Arc::make_mut(entry.value_mut())
                    .entry(tokens)
                    .insert(group, conn);
            }
        }
    }

    pub(crate) fn remove(
        &self,
        namespace: &str,
        pattern: &Pattern,
        group: Option<&Arc<str>>,
        conn: ConnId,
    ) {
        match pattern {
            Pattern::Exact(name) => {
                let key: &dyn KeyPair = &(namespace, &**name);
                self.exact.remove_if_mut(key, |_, subs| {
                    let subs = Arc::make_mut(subs);
                    subs.remove(group, conn);
                    subs.is_empty()
                });
            }
            Pattern::Wildcard(tokens) => {
                self.patterns.remove_if_mut(namespace, |_, trie| {
                    let trie = Arc::make_mut(trie);
                    trie.update(tokens, |subs| subs.remove(group, conn));
                    trie.is_empty()
                });
            }
        }
    }

    /// Number of distinct targets indexed (for tests and metrics).
    #[cfg(test)]
    pub(crate) fn targets(&self) -> usize {
        self.exact.len() + self.patterns.iter().map(|p| p.len()).sum::<usize>()
    }
}
