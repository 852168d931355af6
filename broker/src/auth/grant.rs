//! A connection's grant: who it is (the token's `sub`), until when
//! (`exp`), and what it may do ([`Permissions`]), with a bounded cache of
//! publish decisions per (namespace, event) so that repeated emits cost
//! one lookup. Replaced whole on refresh (the cache with it).

use std::collections::HashMap;
use std::sync::Arc;

use herald_protocol::Pattern;

use super::permissions::Permissions;
use crate::router::FastHash;

/// Most publish decisions cached per connection; past it the cache is
/// cleared (a client cycling through event names cannot grow it).
const MAX_CACHED_DECISIONS: usize = 256;

/// What one connection was granted.
#[derive(Debug)]
pub(crate) struct Grant {
    /// The token's `sub`; none for an anonymous connection.
    pub(crate) user: Option<Arc<str>>,
    /// The token's `exp` (Unix seconds), if it has one.
    pub(crate) exp: Option<u64>,
    permissions: Arc<Permissions>,
    /// Decisions by namespace, then event (foldhash: the names are the
    /// client's, the hasher is seeded per process).
    publish_cache: HashMap<Box<str>, HashMap<Box<str>, bool, FastHash>, FastHash>,
    cached: usize,
}

impl Grant {
    pub(crate) fn new(
        user: Option<Arc<str>>,
        exp: Option<u64>,
        permissions: Arc<Permissions>,
    ) -> Grant {
        Grant {
            user,
            exp,
            permissions,
            publish_cache: HashMap::default(),
            cached: 0,
        }
    }

    /// May emit or request `event` in `namespace` (cached).
    pub(crate) fn may_publish(&mut self, namespace: &str, event: &str) -> bool {
        if let Some(decision) = self
            .publish_cache
            .get(namespace)
            .and_then(|events| events.get(event))
        {
            return *decision;
        }
        let decision = self.permissions.may_publish(namespace, event);
        if self.cached >= MAX_CACHED_DECISIONS {
            self.publish_cache.clear();
            self.cached = 0;
        }
        self.publish_cache
            .entry(namespace.into())
            .or_default()
            .insert(event.into(), decision);
        self.cached += 1;
        decision
    }

    /// See [`Permissions::may_subscribe`].
    pub(crate) fn may_subscribe(
        &self,
        namespace: &str,
        pattern: &Pattern,
        group: Option<&str>,
        responder: bool,
    ) -> bool {
        self.permissions
            .may_subscribe(namespace, pattern, group, responder)
    }

    /// See [`Permissions::may_join`].
    pub(crate) fn may_join(&self, namespace: &str, room: &str) -> bool {
        self.permissions.may_join(namespace, room)
    }

    /// See [`Permissions::powers`].
    pub(crate) fn powers(&self, namespace: &str) -> bool {
        self.permissions.powers(namespace)
    }

    /// See [`Permissions::default_subscriptions`].
    pub(crate) fn default_subscriptions(&self, namespace: &str) -> Vec<Pattern> {
        self.permissions.default_subscriptions(namespace)
    }

    /// The user id for logs: the `sub`, or `-` when anonymous.
    pub(crate) fn user_label(grant: Option<&Grant>) -> &str {
        grant.and_then(|g| g.user.as_deref()).unwrap_or("-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_publish_cache_is_bounded_and_agrees_with_the_permissions() {
        let rules: herald_config::PermissionRules =
            serde_json::from_str(r#"{"ns": {"/": {"publish": {"allow": ["a.*"]}}}}"#)
                .expect("rules");
        let permissions = Arc::new(Permissions::compile(&rules).expect("compiles"));
        let mut grant = Grant::new(None, None, permissions);
        for round in 0..2 {
            for i in 0..1000 {
                assert!(grant.may_publish("/", &format!("a.{i}")), "round {round}");
                assert!(!grant.may_publish("/", &format!("b.{i}")));
                assert!(grant.cached <= MAX_CACHED_DECISIONS);
            }
        }
        assert!(!grant.may_publish("/other", "a.1"));
    }
}
