//! Names of the Redis keys and channels of one cluster, all under the
//! configured prefix, so clusters with different prefixes share one Redis
//! without seeing each other.

/// The key and channel names of one node in one cluster.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    prefix: String,
    node: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str, node: &str) -> Keys {
        Keys {
            prefix: prefix.to_owned(),
            node: node.to_owned(),
        }
    }

    /// Channel of a namespace's plain events: `{prefix}:ev:{namespace}`.
    pub(crate) fn namespace_channel(&self, namespace: &str) -> String {
        format!("{}:ev:{namespace}", self.prefix)
    }

    /// A node's own channel (group deliveries, requests, replies):
    /// `{prefix}:node:{id}`.
    pub(crate) fn node_channel(&self, node: &str) -> String {
        format!("{}:node:{node}", self.prefix)
    }

    /// This node's own channel.
    pub(crate) fn own_channel(&self) -> String {
        self.node_channel(&self.node)
    }

    /// The control channel: registry changes and departures.
    pub(crate) fn control_channel(&self) -> String {
        format!("{}:ctl", self.prefix)
    }

    /// The set of node ids that registered.
    pub(crate) fn nodes(&self) -> String {
        format!("{}:nodes", self.prefix)
    }

    /// A node's liveness key (expires `node_ttl` after its last heartbeat).
    pub(crate) fn alive(&self, node: &str) -> String {
        format!("{}:node:{node}:alive", self.prefix)
    }

    /// A node's registry: the set of its queue groups and responders.
    pub(crate) fn registry(&self, node: &str) -> String {
        format!("{}:node:{node}:subs", self.prefix)
    }

    /// A history namespace's stream: `{prefix}:hist:{namespace}`.
    pub(crate) fn history_stream(&self, namespace: &str) -> String {
        format!("{}:hist:{namespace}", self.prefix)
    }

    /// Its epoch and last `seq`: `{prefix}:hist:{namespace}:meta`.
    pub(crate) fn history_meta(&self, namespace: &str) -> String {
        format!("{}:hist:{namespace}:meta", self.prefix)
    }

    /// A publisher's message id, remembered for the de-duplication window:
    /// `{prefix}:mid:{namespace}:{mid}`.
    pub(crate) fn message_id(&self, namespace: &str, mid: &str) -> String {
        format!("{}:mid:{namespace}:{mid}", self.prefix)
    }

    /// The channel of a history namespace's numbered events (every node
    /// listens to all of them): `{prefix}:hev:{namespace}`.
    pub(crate) fn history_channel(&self, namespace: &str) -> String {
        format!("{}:hev:{namespace}", self.prefix)
    }

    /// The pattern of every history channel.
    pub(crate) fn history_channels(&self) -> String {
        format!("{}:hev:*", self.prefix)
    }

    /// A node's presence: a hash of its members by namespace and sid.
    pub(crate) fn presence(&self, node: &str) -> String {
        format!("{}:node:{node}:presence", self.prefix)
    }

    pub(crate) fn node(&self) -> &str {
        &self.node
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_prefixed() {
        let keys = Keys::new("hx", "n1");
        assert_eq!(keys.namespace_channel("/a/b"), "hx:ev:/a/b");
        assert_eq!(keys.own_channel(), "hx:node:n1");
        assert_eq!(keys.alive("n2"), "hx:node:n2:alive");
        assert_eq!(keys.registry("n2"), "hx:node:n2:subs");
        assert_eq!(keys.control_channel(), "hx:ctl");
        assert_eq!(keys.nodes(), "hx:nodes");
        assert_eq!(keys.history_stream("/a"), "hx:hist:/a");
        assert_eq!(keys.history_meta("/a"), "hx:hist:/a:meta");
        assert_eq!(keys.message_id("/a", "m1"), "hx:mid:/a:m1");
        assert_eq!(keys.history_channel("/a"), "hx:hev:/a");
        assert_eq!(keys.history_channels(), "hx:hev:*");
    }
}
