//! A backend's view of the other live nodes: which queue groups and
//! responders each has, by `(namespace, pattern)` target. Built by the
//! backend from whatever it shares (a Redis set per node today), read by
//! the router on every emit that may cross nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use herald_protocol::Pattern;
use serde::{Deserialize, Serialize};

/// What a node can take: a queue group or a responder on a target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub(crate) struct Target {
    pub(crate) namespace: String,
    /// The subscribed event name or pattern, as the client gave it.
    pub(crate) pattern: String,
    /// The queue group; `None` for a responder.
    pub(crate) group: Option<String>,
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
    pub(crate) fn new(nodes: &BTreeMap<String, Vec<Target>>) -> RemoteView {
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

    fn entry(ns: &str, pattern: &str, group: Option<&str>) -> Target {
        Target {
            namespace: ns.into(),
            pattern: pattern.into(),
            group: group.map(Into::into),
        }
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
