//! The registry of what each node can take: its queue groups and its
//! responders, as `(namespace, pattern)` targets. Each node keeps its own
//! entries in the Redis set `{prefix}:node:{id}:subs`; this module has the
//! entry type (stored as a MessagePack tuple), the local reference counts
//! (several connections may share one entry), and the cached view of the
//! other nodes' entries that an emit consults.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use herald_protocol::Pattern;
use serde::{Deserialize, Serialize};

/// One registry entry: a queue group or a responder on a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub(crate) namespace: String,
    /// The subscribed event name or pattern, as the client gave it.
    pub(crate) pattern: String,
    /// The queue group; `None` for a responder.
    pub(crate) group: Option<String>,
}

impl Entry {
    pub(crate) fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Option<Entry> {
        rmp_serde::from_slice(bytes).ok()
    }
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

/// One remote target, parsed for matching.
#[derive(Debug, Clone)]
struct RemoteTarget {
    pattern: Pattern,
    group: Option<Arc<str>>,
    node: Arc<str>,
}

/// The other live nodes' entries, indexed by namespace. Replaced whole on
/// every refresh (an `Arc` snapshot), never edited in place.
#[derive(Debug, Default)]
pub(crate) struct RemoteView {
    by_namespace: HashMap<String, Vec<RemoteTarget>>,
    names: HashSet<String>,
    /// Registry entries per live remote node (the admin console's list).
    by_node: BTreeMap<String, usize>,
    nodes: usize,
    entries: usize,
}

impl RemoteView {
    /// Builds the view from each live node's entries; entries whose
    /// pattern does not parse are skipped.
    pub(crate) fn new(nodes: &BTreeMap<String, Vec<Entry>>) -> RemoteView {
        let mut view = RemoteView {
            nodes: nodes.len(),
            names: nodes.keys().cloned().collect(),
            by_node: nodes.iter().map(|(n, e)| (n.clone(), e.len())).collect(),
            ..RemoteView::default()
        };
        for (node, entries) in nodes {
            let node: Arc<str> = Arc::from(node.as_str());
            for entry in entries {
                let Ok(pattern) = Pattern::parse(&entry.pattern) else {
                    continue;
                };
                view.entries += 1;
                view.by_namespace
                    .entry(entry.namespace.clone())
                    .or_default()
                    .push(RemoteTarget {
                        pattern,
                        group: entry.group.as_deref().map(Arc::from),
                        node: node.clone(),
                    });
            }
        }
        view
    }

    /// Whether `node` is a live remote node.
    pub(crate) fn has_node(&self, node: &str) -> bool {
        self.names.contains(node)
    }

    /// The live remote nodes with their registry entries, by id.
    pub(crate) fn node_list(&self) -> &BTreeMap<String, usize> {
        &self.by_node
    }

    /// Live remote nodes.
    pub(crate) fn nodes(&self) -> usize {
        self.nodes
    }

    /// Entries of live remote nodes.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    fn matching(&self, namespace: &str, event: &str) -> impl Iterator<Item = &RemoteTarget> {
        self.by_namespace
            .get(namespace)
            .into_iter()
            .flatten()
            .filter(move |t| t.pattern.matches(event))
    }

    /// Whether any remote node has a queue group in `namespace`.
    pub(crate) fn has_groups(&self, namespace: &str) -> bool {
        self.by_namespace
            .get(namespace)
            .is_some_and(|targets| targets.iter().any(|t| t.group.is_some()))
    }

    /// For each queue group matching the event on some remote node, those
    /// nodes (sorted, no duplicates).
    pub(crate) fn groups(&self, namespace: &str, event: &str) -> BTreeMap<Arc<str>, Vec<Arc<str>>> {
        let mut groups: BTreeMap<Arc<str>, Vec<Arc<str>>> = BTreeMap::new();
        for target in self.matching(namespace, event) {
            if let Some(group) = &target.group {
                let nodes = groups.entry(group.clone()).or_default();
                if !nodes.contains(&target.node) {
                    nodes.push(target.node.clone());
                }
            }
        }
        for nodes in groups.values_mut() {
            nodes.sort();
        }
        groups
    }

    /// The remote nodes with a responder for the event (sorted).
    pub(crate) fn responders(&self, namespace: &str, event: &str) -> Vec<Arc<str>> {
        let nodes: BTreeSet<Arc<str>> = self
            .matching(namespace, event)
            .filter(|t| t.group.is_none())
            .map(|t| t.node.clone())
            .collect();
        nodes.into_iter().collect()
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
        assert_eq!(Entry::decode(&e.encode()), Some(e));
        assert_eq!(Entry::decode(b"\xc1"), None);
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

    #[test]
    fn the_view_matches_groups_and_responders_per_node() {
        let mut nodes = BTreeMap::new();
        nodes.insert(
            "n2".to_owned(),
            vec![
                entry("/o", "a.*", Some("g")),
                entry("/o", "a.b", Some("g")),
                entry("/o", "a.>", None),
                entry("/o", "bad..pattern", Some("x")),
            ],
        );
        nodes.insert("n1".to_owned(), vec![entry("/o", "a.b", Some("g"))]);
        let view = RemoteView::new(&nodes);
        assert_eq!(view.nodes(), 2);
        assert_eq!(view.entries(), 4);
        let groups = view.groups("/o", "a.b");
        let names: Vec<&str> = groups[&Arc::from("g")].iter().map(|n| &**n).collect();
        assert_eq!(names, ["n1", "n2"]);
        assert!(view.groups("/o", "c").is_empty());
        assert!(view.groups("/other", "a.b").is_empty());
        assert_eq!(view.responders("/o", "a.b.c").len(), 1);
        assert!(view.has_groups("/o"));
        assert!(!view.has_groups("/p"));
    }
}
