//! Compiled permissions: the claim's (or `auth.anonymous`'s) allow and
//! deny lists parsed into patterns once, per namespace, and the decisions
//! of PROTOCOL.md §22: publish (an event matched by an allow pattern and
//! no deny pattern), subscribe and respond (the subscription pattern
//! contained in one allow pattern and overlapping no deny pattern; queue
//! groups), join (a room matched like an event name), powers.

use std::collections::HashMap;

use herald_config::{NamespaceRules, PatternRule, PermissionRules};
use herald_protocol::{NameError, Pattern};

/// The namespace key that applies to namespaces not listed.
const ANY_NAMESPACE: &str = "*";

/// Allow and deny patterns; deny wins, nothing allowed by default.
#[derive(Debug, Default)]
struct Rule {
    allow: Vec<Pattern>,
    deny: Vec<Pattern>,
}

impl Rule {
    fn compile(allow: &[String], deny: &[String]) -> Result<Rule, NameError> {
        let parse = |list: &[String]| -> Result<Vec<Pattern>, NameError> {
            list.iter().map(|p| Pattern::parse(p)).collect()
        };
        Ok(Rule {
            allow: parse(allow)?,
            deny: parse(deny)?,
        })
    }

    /// A concrete name (event, room): allowed and not denied.
    fn admits(&self, name: &str) -> bool {
        self.allow.iter().any(|p| p.matches(name)) && !self.deny.iter().any(|p| p.matches(name))
    }

    /// A pattern: every event it can match allowed by one allow pattern,
    /// none denied.
    fn covers(&self, pattern: &Pattern) -> bool {
        self.allow.iter().any(|p| p.contains(pattern))
            && !self.deny.iter().any(|p| p.overlaps(pattern))
    }
}

/// What a connection may do in one namespace.
#[derive(Debug, Default)]
struct Namespace {
    publish: Rule,
    subscribe: Rule,
    groups: Vec<Box<str>>,
    respond: Rule,
    join: Rule,
    powers: bool,
}

impl Namespace {
    fn compile(rules: &NamespaceRules) -> Result<Namespace, NameError> {
        let rule = |r: &PatternRule| Rule::compile(&r.allow, &r.deny);
        for group in &rules.subscribe.groups {
            herald_protocol::names::validate_group(group)?;
        }
        Ok(Namespace {
            publish: rule(&rules.publish)?,
            subscribe: Rule::compile(&rules.subscribe.allow, &rules.subscribe.deny)?,
            groups: rules
                .subscribe
                .groups
                .iter()
                .map(|g| g.as_str().into())
                .collect(),
            respond: rule(&rules.respond)?,
            join: rule(&rules.join)?,
            powers: rules.powers,
        })
    }
}

/// Why a permission set could not be compiled: a pattern or group in it
/// breaks the name rules.
#[derive(Debug, thiserror::Error)]
#[error("namespace {namespace:?}: {error}")]
pub(crate) struct PermissionError {
    namespace: String,
    error: NameError,
}

/// A connection's permissions, by namespace.
#[derive(Debug, Default)]
pub(crate) struct Permissions {
    namespaces: HashMap<Box<str>, Namespace>,
    any: Option<Namespace>,
}

impl Permissions {
    /// Parses every pattern of `rules`.
    pub(crate) fn compile(rules: &PermissionRules) -> Result<Permissions, PermissionError> {
        let mut permissions = Permissions::default();
        for (namespace, ns_rules) in &rules.ns {
            let compiled = Namespace::compile(ns_rules).map_err(|error| PermissionError {
                namespace: namespace.clone(),
                error,
            })?;
            if namespace == ANY_NAMESPACE {
                permissions.any = Some(compiled);
            } else {
                permissions
                    .namespaces
                    .insert(namespace.as_str().into(), compiled);
            }
        }
        Ok(permissions)
    }

    fn namespace(&self, namespace: &str) -> Option<&Namespace> {
        self.namespaces.get(namespace).or(self.any.as_ref())
    }

    /// May emit or request `event` in `namespace`.
    pub(crate) fn may_publish(&self, namespace: &str, event: &str) -> bool {
        self.namespace(namespace)
            .is_some_and(|ns| ns.publish.admits(event))
    }

    /// May subscribe to `pattern` (as a responder when `responder`, in
    /// queue group `group` when given) in `namespace`.
    pub(crate) fn may_subscribe(
        &self,
        namespace: &str,
        pattern: &Pattern,
        group: Option<&str>,
        responder: bool,
    ) -> bool {
        let Some(ns) = self.namespace(namespace) else {
            return false;
        };
        if responder {
            return ns.respond.covers(pattern);
        }
        let group_ok = ns.groups.is_empty()
            || group.is_some_and(|g| ns.groups.iter().any(|allowed| **allowed == *g));
        group_ok && ns.subscribe.covers(pattern)
    }

    /// May join `room` in `namespace`.
    pub(crate) fn may_join(&self, namespace: &str, room: &str) -> bool {
        self.namespace(namespace)
            .is_some_and(|ns| ns.join.admits(room))
    }

    /// Holds the service-side powers in `namespace`.
    pub(crate) fn powers(&self, namespace: &str) -> bool {
        self.namespace(namespace).is_some_and(|ns| ns.powers)
    }

    /// The `subscribe.allow` patterns of `namespace` that are themselves
    /// allowed (not overlapping a deny pattern), when plain subscriptions
    /// are (no `groups` required): a Socket.IO socket's default
    /// subscriptions.
    pub(crate) fn default_subscriptions(&self, namespace: &str) -> Vec<Pattern> {
        let Some(ns) = self.namespace(namespace) else {
            return Vec::new();
        };
        if !ns.groups.is_empty() {
            return Vec::new();
        }
        ns.subscribe
            .allow
            .iter()
            .filter(|p| ns.subscribe.covers(p))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn permissions(json: &str) -> Permissions {
        let rules: PermissionRules = serde_json::from_str(json).expect("valid rules");
        Permissions::compile(&rules).expect("compiles")
    }

    fn pattern(text: &str) -> Pattern {
        Pattern::parse(text).expect("valid")
    }

    const CHAT: &str = r#"{"ns": {
        "/chat": {
            "publish": {"allow": ["msg.*"], "deny": ["msg.admin"]},
            "subscribe": {"allow": ["msg.>", "$connection"], "deny": ["msg.secret.>"]},
            "respond": {"allow": ["rpc.>"]},
            "join": {"allow": ["room.*"]},
            "powers": true
        },
        "/jobs": {"subscribe": {"allow": ["job.>"], "groups": ["workers"]}},
        "*": {"subscribe": {"allow": ["public.>"]}}
    }}"#;

    #[test]
    fn publish_allow_and_deny() {
        let p = permissions(CHAT);
        assert!(p.may_publish("/chat", "msg.hello"));
        assert!(!p.may_publish("/chat", "msg.admin"));
        assert!(!p.may_publish("/chat", "msg.a.b"));
        assert!(!p.may_publish("/other", "msg.hello"));
    }

    #[test]
    fn subscribe_needs_containment_and_no_overlap_with_deny() {
        let p = permissions(CHAT);
        let sub = |ns, pat: &str| p.may_subscribe(ns, &pattern(pat), None, false);
        // msg.> could match msg.secret.x, which is denied.
        assert!(!sub("/chat", "msg.>"));
        assert!(sub("/chat", "msg.room.*"));
        assert!(sub("/chat", "$connection"));
        assert!(!sub("/chat", ">"));
        assert!(!sub("/chat", "$disconnect"));
        // Overlaps the deny pattern msg.secret.>.
        assert!(!sub("/chat", "msg.*.x"));
        assert!(!sub("/chat", "msg.secret.a"));
        assert!(sub("/elsewhere", "public.news"));
        assert!(!sub("/elsewhere", "msg.x"));
        // Responders are checked against respond.
        assert!(p.may_subscribe("/chat", &pattern("rpc.add"), None, true));
        assert!(!p.may_subscribe("/chat", &pattern("msg.x"), None, true));
    }

    #[test]
    fn groups_restrict_subscriptions() {
        let p = permissions(CHAT);
        let job = pattern("job.run");
        assert!(!p.may_subscribe("/jobs", &job, None, false));
        assert!(!p.may_subscribe("/jobs", &job, Some("others"), false));
        assert!(p.may_subscribe("/jobs", &job, Some("workers"), false));
        assert!(p.default_subscriptions("/jobs").is_empty());
    }

    #[test]
    fn join_powers_and_defaults() {
        let p = permissions(CHAT);
        assert!(p.may_join("/chat", "room.1"));
        assert!(!p.may_join("/chat", "lobby"));
        assert!(p.powers("/chat"));
        assert!(!p.powers("/elsewhere"));
        let defaults: Vec<String> = p
            .default_subscriptions("/chat")
            .iter()
            .map(ToString::to_string)
            .collect();
        // msg.> overlaps the deny list, so only $connection.
        assert_eq!(defaults, ["$connection"]);
    }

    #[test]
    fn nothing_is_allowed_by_default() {
        let p = permissions("{}");
        assert!(!p.may_publish("/", "a"));
        assert!(!p.may_subscribe("/", &pattern("a"), None, false));
        assert!(!p.may_join("/", "a"));
        assert!(!p.powers("/"));
    }

    #[test]
    fn invalid_patterns_are_refused_naming_the_namespace() {
        let rules: PermissionRules =
            serde_json::from_str(r#"{"ns": {"/x": {"publish": {"allow": ["a..b"]}}}}"#)
                .expect("parses");
        let error = Permissions::compile(&rules).expect_err("invalid");
        assert!(error.to_string().contains("\"/x\""), "{error}");
    }
}
