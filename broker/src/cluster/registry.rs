//! The registry of what each node can take: its queue groups and its
//! responders, as `(namespace, pattern)` targets. Each node keeps its own
//! entries in the Redis set `{prefix}:node:{id}:subs`; this module has the
//! entries' Redis encoding (a MessagePack tuple) and the local reference
//! counts (several connections may share one entry). The view of the other
//! nodes' entries is the backend-neutral `backplane::RemoteView`.

use std::collections::{BTreeSet, HashMap};

use crate::backplane::Target;

/// One registry entry: a queue group or a responder on a target.
pub(crate) type Entry = Target;

/// An entry as stored in the Redis set: a MessagePack tuple.
pub(crate) fn encode(entry: &Entry) -> Vec<u8> {
    rmp_serde::to_vec(entry).unwrap_or_default()
}

/// An entry read back from the Redis set; `None` when it is not one.
pub(crate) fn decode(bytes: &[u8]) -> Option<Entry> {
    rmp_serde::from_slice(bytes).ok()
}

/// Local reference counts: namespaces with plain subscribers (the Redis
/// channels to listen on) and registry entries.
#[derive(Debug, Default)]
pub(crate) struct LocalInterest {
    namespaces: HashMap<String, usize>,
    entries: HashMap<Entry, usize>,
    /// Bumped whenever the entry set (not just a count) changes.
    pub(crate) entries_version: u64,
}

fn increment<K: Eq + std::hash::Hash>(map: &mut HashMap<K, usize>, key: K) -> bool {
    let count = map.entry(key).or_insert(0);
    *count += 1;
    *count == 1
}

fn decrement<K: Eq + std::hash::Hash>(map: &mut HashMap<K, usize>, key: &K) -> bool {
    let Some(count) = map.get_mut(key) else {
        return false;
    };
    *count -= 1;
    if *count == 0 {
        map.remove(key);
        return true;
    }
    false
}

impl LocalInterest {
    /// Counts a plain subscription; true when its namespace is new.
    pub(crate) fn add_namespace(&mut self, namespace: &str) -> bool {
        increment(&mut self.namespaces, namespace.to_owned())
    }

    /// Uncounts a plain subscription; true when its namespace is gone.
    pub(crate) fn remove_namespace(&mut self, namespace: &str) -> bool {
        decrement(&mut self.namespaces, &namespace.to_owned())
    }

    /// Counts a group member or responder; true when the entry is new.
    pub(crate) fn add_entry(&mut self, entry: Entry) -> bool {
        let new = increment(&mut self.entries, entry);
        self.entries_version += u64::from(new);
        new
    }

    /// Uncounts a group member or responder; true when the entry is gone.
    pub(crate) fn remove_entry(&mut self, entry: &Entry) -> bool {
        let gone = decrement(&mut self.entries, entry);
        self.entries_version += u64::from(gone);
        gone
    }

    pub(crate) fn namespaces(&self) -> BTreeSet<String> {
        self.namespaces.keys().cloned().collect()
    }

    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.entries.keys().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ns: &str, pattern: &str, group: Option<&str>) -> Entry {
        Entry {
            namespace: ns.into(),
            pattern: pattern.into(),
            group: group.map(Into::into),
        }
    }

    #[test]
    fn entries_round_trip_and_garbage_is_refused() {
        let e = entry("/o", "a.*", Some("g"));
        assert_eq!(decode(&encode(&e)), Some(e));
        assert_eq!(decode(b"\xc1"), None);
    }

    #[test]
    fn local_counts_report_first_and_last() {
        let mut local = LocalInterest::default();
        assert!(local.add_namespace("/a"));
        assert!(!local.add_namespace("/a"));
        assert!(!local.remove_namespace("/a"));
        assert!(local.remove_namespace("/a"));
        assert!(!local.remove_namespace("/a"));
        let e = entry("/a", "x", Some("g"));
        assert!(local.add_entry(e.clone()));
        assert!(!local.add_entry(e.clone()));
        let version = local.entries_version;
        assert!(!local.remove_entry(&e));
        assert_eq!(local.entries_version, version);
        assert!(local.remove_entry(&e));
        assert!(local.entries().is_empty());
    }
}
