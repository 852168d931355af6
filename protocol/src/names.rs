//! Name rules: namespaces, event names, subscription patterns, rooms and
//! queue groups, and matching an event name against a pattern.
//!
//! Events are dot-separated tokens (`order.created`). A pattern may use `*`
//! for exactly one token and `>` as its last token for one or more
//! remaining tokens (NATS-style): `order.*` matches `order.created`,
//! `order.>` matches `order.created` and `order.eu.created`.
//!
//! **System events** are names whose first token starts with `$`
//! (`$connection`, `$disconnect`): only the broker emits them, so
//! [`validate_event`] refuses them; a subscription may name them
//! ([`Pattern::parse`] accepts a first token `$[A-Za-z0-9_:-]+`), but a
//! wildcard at the first token never matches them (MQTT's rule for `$`
//! topics), so `>` or `*.x` never receive broker events by accident.

use thiserror::Error;

/// Longest namespace, in bytes.
pub const MAX_NAMESPACE_LEN: usize = 128;
/// Longest event name or pattern, in bytes.
pub const MAX_EVENT_LEN: usize = 256;
/// Most tokens in an event name or pattern.
pub const MAX_TOKENS: usize = 16;
/// Longest room name, in bytes.
pub const MAX_ROOM_LEN: usize = 128;
/// Longest queue group name, in bytes.
pub const MAX_GROUP_LEN: usize = 64;

/// Most characters of a peer's text quoted back in an error message.
pub const MAX_EXCERPT_CHARS: usize = 64;

/// The start of a peer's text, to quote in an error: at most
/// [`MAX_EXCERPT_CHARS`] characters, with `…` when cut, so an answer built
/// from a megabyte name stays a few hundred bytes (even `{:?}`-escaped).
pub fn excerpt(text: &str) -> String {
    match text.char_indices().nth(MAX_EXCERPT_CHARS) {
        None => text.to_owned(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// Why a name was refused. The message names the rule that was broken and
/// quotes at most the start of the name ([`excerpt`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    /// The namespace breaks the namespace rule.
    #[error(
        "invalid namespace {0:?}: must be \"/\" or \"/segment[/segment...]\" of [A-Za-z0-9_-], at most 128 bytes"
    )]
    Namespace(String),
    /// The event name breaks the event rule, or is a system event (first
    /// token starting with `$`), which only the broker may emit; the
    /// message says which.
    #[error("invalid event name {0:?}: {rule}", rule = event_rule(.0))]
    Event(String),
    /// The pattern breaks the pattern rule.
    #[error(
        "invalid pattern {0:?}: tokens of [A-Za-z0-9_:-], '*' for one token, '>' only as the last token, '$' only to start the first token"
    )]
    Pattern(String),
    /// The room name breaks the room rule.
    #[error("invalid room {0:?}: must be 1-128 bytes without control characters")]
    Room(String),
    /// The queue group name breaks the group rule.
    #[error("invalid queue group {0:?}: must be 1-64 bytes of [A-Za-z0-9_.-]")]
    Group(String),
}

/// The rule an invalid event name broke, for [`NameError::Event`]'s message
/// (the variant keeps one shape so that callers matching on it need no new
/// arm for system events).
fn event_rule(name: &str) -> &'static str {
    if is_system_event(name) {
        "names whose first token starts with '$' are system events, reserved for the broker"
    } else {
        "must be 1-16 dot-separated tokens of [A-Za-z0-9_:-], at most 256 bytes, no wildcards"
    }
}

/// True for a system event name (first token starts with `$`), which only
/// the broker emits.
pub fn is_system_event(event: &str) -> bool {
    event.starts_with('$')
}

/// `$` followed by a plain token: the first token of a system event.
fn is_system_token(token: &str) -> bool {
    token.strip_prefix('$').is_some_and(is_plain_token)
}

fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b':')
}

fn is_plain_token(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(is_token_char)
}

/// Checks a namespace: `/` or `/a/b` with segments of `[A-Za-z0-9_-]`.
pub fn validate_namespace(ns: &str) -> Result<(), NameError> {
    let bad = || NameError::Namespace(excerpt(ns));
    if ns == "/" {
        return Ok(());
    }
    if ns.len() > MAX_NAMESPACE_LEN || !ns.starts_with('/') {
        return Err(bad());
    }
    let ok = ns[1..].split('/').all(|seg| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-'))
    });
    if ok { Ok(()) } else { Err(bad()) }
}

/// Checks a namespace pattern: a namespace name whose segments may also be
/// `*` (exactly one segment) or, last, `>` (one or more segments), as in
/// `/rooms/*` or `/feeds/>`. A plain name is a pattern matching itself.
pub fn validate_namespace_pattern(pattern: &str) -> Result<(), NameError> {
    let segments: Vec<&str> = pattern.get(1..).unwrap_or_default().split('/').collect();
    let last = segments.len().saturating_sub(1);
    let concrete: Vec<&str> = segments
        .iter()
        .enumerate()
        .map(|(i, seg)| match *seg {
            "*" => "x",
            ">" if i == last => "x",
            other => other,
        })
        .collect();
    validate_namespace(&format!("/{}", concrete.join("/")))
        .and_then(|()| {
            if pattern.starts_with('/') {
                Ok(())
            } else {
                Err(NameError::Namespace(excerpt(pattern)))
            }
        })
        .map_err(|_| NameError::Namespace(excerpt(pattern)))
}

/// Whether namespace `ns` matches a pattern checked by
/// [`validate_namespace_pattern`].
pub fn namespace_matches(pattern: &str, ns: &str) -> bool {
    let mut want = pattern.split('/');
    let mut have = ns.split('/');
    loop {
        match (want.next(), have.next()) {
            (None, None) => return true,
            (Some(">"), Some(seg)) => return !seg.is_empty(),
            (Some("*"), Some(seg)) if !seg.is_empty() => {}
            (Some(w), Some(h)) if w == h => {}
            _ => return false,
        }
    }
}

/// Checks a concrete event name (no wildcards) that a client may emit:
/// system events (`$connection`) are refused, with a message saying they
/// are reserved for the broker.
pub fn validate_event(event: &str) -> Result<(), NameError> {
    let ok = event.len() <= MAX_EVENT_LEN
        && event.split('.').count() <= MAX_TOKENS
        && event.split('.').all(is_plain_token);
    if ok {
        Ok(())
    } else {
        Err(NameError::Event(excerpt(event)))
    }
}

/// Checks a system event name, as the broker emits it: a first token `$`
/// followed by `[A-Za-z0-9_:-]+`, then ordinary tokens, within the event
/// name limits.
pub fn validate_system_event(event: &str) -> Result<(), NameError> {
    let mut tokens = event.split('.');
    let ok = event.len() <= MAX_EVENT_LEN
        && event.split('.').count() <= MAX_TOKENS
        && tokens.next().is_some_and(is_system_token)
        && tokens.all(is_plain_token);
    if ok {
        Ok(())
    } else {
        Err(NameError::Event(excerpt(event)))
    }
}

/// Checks a room name.
pub fn validate_room(room: &str) -> Result<(), NameError> {
    if room.is_empty() || room.len() > MAX_ROOM_LEN || room.chars().any(char::is_control) {
        Err(NameError::Room(excerpt(room)))
    } else {
        Ok(())
    }
}

/// Checks a queue group name.
pub fn validate_group(group: &str) -> Result<(), NameError> {
    let ok = !group.is_empty()
        && group.len() <= MAX_GROUP_LEN
        && group
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(NameError::Group(excerpt(group)))
    }
}

/// One token of a parsed pattern.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Token {
    /// Matches exactly this token.
    Literal(Box<str>),
    /// `*`: matches any one token.
    One,
    /// `>`: matches one or more remaining tokens; always last.
    Rest,
}

/// A subscription target: an exact event name, or a pattern with wildcards.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// No wildcard: matches only this event name (one hash probe to route).
    Exact(Box<str>),
    /// At least one wildcard token.
    Wildcard(Box<[Token]>),
}

impl Pattern {
    /// Parses and validates a subscription target.
    pub fn parse(text: &str) -> Result<Pattern, NameError> {
        let bad = || NameError::Pattern(excerpt(text));
        if text.len() > MAX_EVENT_LEN || text.split('.').count() > MAX_TOKENS {
            return Err(bad());
        }
        let mut tokens = Vec::new();
        let mut wild = false;
        let count = text.split('.').count();
        for (i, token) in text.split('.').enumerate() {
            match token {
                "*" => {
                    wild = true;
                    tokens.push(Token::One);
                }
                ">" if i + 1 == count => {
                    wild = true;
                    tokens.push(Token::Rest);
                }
                t if is_plain_token(t) || (i == 0 && is_system_token(t)) => {
                    tokens.push(Token::Literal(t.into()));
                }
                _ => return Err(bad()),
            }
        }
        if wild {
            Ok(Pattern::Wildcard(tokens.into_boxed_slice()))
        } else {
            Ok(Pattern::Exact(text.into()))
        }
    }

    /// True when the pattern has a wildcard.
    pub fn is_wildcard(&self) -> bool {
        matches!(self, Pattern::Wildcard(_))
    }

    /// Does this pattern match the (valid) event name? A wildcard at the
    /// first token never matches a system event (`>` does not match
    /// `$connection`; `$connection` and `$sys.>` do).
    pub fn matches(&self, event: &str) -> bool {
        match self {
            Pattern::Exact(name) => &**name == event,
            Pattern::Wildcard(tokens) => {
                let first_is_wild = !matches!(tokens.first(), Some(Token::Literal(_)));
                !(first_is_wild && is_system_event(event)) && wildcard_matches(tokens, event)
            }
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(name) => f.write_str(name),
            Pattern::Wildcard(tokens) => {
                for (i, t) in tokens.iter().enumerate() {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    match t {
                        Token::Literal(s) => f.write_str(s)?,
                        Token::One => f.write_str("*")?,
                        Token::Rest => f.write_str(">")?,
                    }
                }
                Ok(())
            }
        }
    }
}

impl Pattern {
    /// The pattern as tokens (an exact name as literal tokens).
    fn tokens(&self) -> std::borrow::Cow<'_, [Token]> {
        match self {
            Pattern::Wildcard(tokens) => std::borrow::Cow::Borrowed(tokens),
            Pattern::Exact(name) => {
                std::borrow::Cow::Owned(name.split('.').map(|t| Token::Literal(t.into())).collect())
            }
        }
    }

    /// Whether the first token is a literal system token (`$name`): the
    /// pattern matches system events only.
    fn is_system(&self) -> bool {
        match self {
            Pattern::Exact(name) => is_system_event(name),
            Pattern::Wildcard(tokens) => {
                matches!(tokens.first(), Some(Token::Literal(t)) if t.starts_with('$'))
            }
        }
    }

    /// Whether the first token is a wildcard (never matches system events).
    fn starts_wild(&self) -> bool {
        matches!(self, Pattern::Wildcard(t) if !matches!(t.first(), Some(Token::Literal(_))))
    }

    /// Containment: does this pattern match every event `other` can match?
    /// (`order.>` contains `order.*` and `order.created`; `order.created`
    /// does not contain `order.>`.) A wildcard at the first token never
    /// contains a system pattern (`$connection`), as it never matches one.
    pub fn contains(&self, other: &Pattern) -> bool {
        if other.is_system() && self.starts_wild() {
            return false;
        }
        contains_tokens(&self.tokens(), &other.tokens())
    }

    /// Overlap: is there an event both patterns match? (`order.*` and
    /// `*.created` overlap on `order.created`; `a.b` and `a.c` do not.)
    pub fn overlaps(&self, other: &Pattern) -> bool {
        if (self.is_system() && other.starts_wild()) || (other.is_system() && self.starts_wild()) {
            return false;
        }
        overlap_tokens(&self.tokens(), &other.tokens())
    }
}

/// Whether every token sequence matched by `inner` is matched by `outer`.
fn contains_tokens(outer: &[Token], inner: &[Token]) -> bool {
    match (outer.first(), inner.first()) {
        // `>` takes one or more tokens: `inner` has at least one left.
        (Some(Token::Rest), inner_first) => inner_first.is_some(),
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        // Only `>` covers a `>` (handled above).
        (Some(_), Some(Token::Rest)) => false,
        (Some(Token::One), Some(_)) => contains_tokens(&outer[1..], &inner[1..]),
        (Some(Token::Literal(a)), Some(Token::Literal(b))) if a == b => {
            contains_tokens(&outer[1..], &inner[1..])
        }
        (Some(Token::Literal(_)), Some(_)) => false,
    }
}

/// Whether some token sequence is matched by both.
fn overlap_tokens(a: &[Token], b: &[Token]) -> bool {
    match (a.first(), b.first()) {
        (Some(Token::Rest), other) | (other, Some(Token::Rest)) => other.is_some(),
        (None, None) => true,
        (None, Some(_)) | (Some(_), None) => false,
        (Some(Token::Literal(x)), Some(Token::Literal(y))) if x != y => false,
        (Some(_), Some(_)) => overlap_tokens(&a[1..], &b[1..]),
    }
}

fn wildcard_matches(tokens: &[Token], event: &str) -> bool {
    let mut parts = event.split('.');
    for token in tokens {
        match token {
            Token::Rest => return parts.next().is_some(),
            Token::One => {
                if parts.next().is_none() {
                    return false;
                }
            }
            Token::Literal(lit) => match parts.next() {
                Some(p) if p == &**lit => {}
                _ => return false,
            },
        }
    }
    parts.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, e: &str) -> bool {
        Pattern::parse(p).expect("valid pattern").matches(e)
    }

    #[test]
    fn namespaces() {
        for ok in ["/", "/orders", "/a/b-c/d_e"] {
            assert!(validate_namespace(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "orders",
            "/orders/",
            "//",
            "/a b",
            "/é",
            &format!("/{}", "a".repeat(200)),
        ] {
            assert!(validate_namespace(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events() {
        for ok in ["a", "order.created", "a:b.c-d_e"] {
            assert!(validate_event(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "a.",
            ".a",
            "a..b",
            "a.*",
            "a.>",
            "a b",
            "a.b.c.d.e.f.g.h.i.j.k.l.m.n.o.p.q",
        ] {
            assert!(validate_event(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn patterns_parse() {
        assert!(!Pattern::parse("order.created").expect("ok").is_wildcard());
        assert!(Pattern::parse("order.*").expect("ok").is_wildcard());
        assert!(Pattern::parse(">").expect("ok").is_wildcard());
        for bad in ["", "a.>.b", ">.a", "a.**", "a.*b", "a..b", "a.b>"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        for text in ["a.*.c", "a.>", "*", "a.b"] {
            assert_eq!(Pattern::parse(text).expect("ok").to_string(), text);
        }
    }

    #[test]
    fn pattern_matching() {
        assert!(m("order.*", "order.created"));
        assert!(!m("order.*", "order"));
        assert!(!m("order.*", "order.eu.created"));
        assert!(m("order.>", "order.created"));
        assert!(m("order.>", "order.eu.created"));
        assert!(!m("order.>", "order"));
        assert!(m("*.created", "order.created"));
        assert!(!m("*.created", "order.updated"));
        assert!(m(">", "anything.at.all"));
        assert!(m("a.*.c", "a.b.c"));
        assert!(!m("a.*.c", "a.b.d"));
        assert!(m("order.created", "order.created"));
        assert!(!m("order.created", "order.create"));
    }

    #[test]
    fn system_events_are_reserved_but_subscribable() {
        for name in ["$connection", "$disconnect", "$sys.a", "$"] {
            let message = validate_event(name).expect_err("reserved").to_string();
            assert!(message.contains("reserved for the broker"), "{message}");
        }
        // Other invalid names keep the ordinary rule's message.
        let message = validate_event("a.$b").expect_err("invalid").to_string();
        assert!(message.contains("dot-separated tokens"), "{message}");

        for ok in ["$connection", "$disconnect", "$a_b:c-1.x"] {
            assert!(validate_system_event(ok).is_ok(), "{ok}");
        }
        for bad in ["connection", "$", "$a.$b", "$a.*", "$ a", "a.$b"] {
            assert!(validate_system_event(bad).is_err(), "{bad}");
        }

        assert!(!Pattern::parse("$connection").expect("ok").is_wildcard());
        assert!(Pattern::parse("$sys.>").expect("ok").is_wildcard());
        for bad in ["$", "a.$b", "$*", "$>", "*.$a", "$a$"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn wildcards_at_the_first_token_never_match_system_events() {
        assert!(m("$connection", "$connection"));
        assert!(!m("$connection", "$disconnect"));
        assert!(m("$sys.>", "$sys.a.b"));
        assert!(m("$sys.*", "$sys.a"));
        assert!(!m(">", "$connection"));
        assert!(!m("*", "$connection"));
        assert!(!m("*.a", "$sys.a"));
        assert!(!m("*.>", "$sys.a"));
        // Only the first token is special.
        assert!(m(">", "connection"));
    }

    #[test]
    fn rooms_and_groups() {
        assert!(validate_room("eu").is_ok());
        assert!(validate_room("room with spaces").is_ok());
        assert!(validate_room("").is_err());
        assert!(validate_room("a\nb").is_err());
        assert!(validate_group("billing").is_ok());
        assert!(validate_group("billing.v2").is_ok());
        assert!(validate_group("").is_err());
        assert!(validate_group("a b").is_err());
    }

    #[test]
    fn refusals_quote_a_bounded_excerpt() {
        let huge = "\u{1}".repeat(1 << 20);
        for error in [
            validate_namespace(&huge).expect_err("refused"),
            validate_event(&huge).expect_err("refused"),
            validate_room(&huge).expect_err("refused"),
            validate_group(&huge).expect_err("refused"),
            Pattern::parse(&huge).expect_err("refused"),
        ] {
            let message = error.to_string();
            assert!(message.len() < 600, "{} bytes: {message}", message.len());
            assert!(message.contains('…'), "{message}");
        }
        assert_eq!(excerpt("short"), "short");
    }

    fn contains(a: &str, b: &str) -> bool {
        Pattern::parse(a)
            .expect("valid")
            .contains(&Pattern::parse(b).expect("valid"))
    }

    fn overlaps(a: &str, b: &str) -> bool {
        Pattern::parse(a)
            .expect("valid")
            .overlaps(&Pattern::parse(b).expect("valid"))
    }

    #[test]
    fn containment() {
        assert!(contains("order.>", "order.created"));
        assert!(contains("order.>", "order.*"));
        assert!(contains("order.>", "order.>"));
        assert!(contains("order.>", "order.*.x"));
        assert!(contains("order.*", "order.created"));
        assert!(contains(">", "a.b.c"));
        assert!(contains(">", ">"));
        assert!(contains("*.created", "order.created"));
        assert!(contains("order.created", "order.created"));
        assert!(!contains("order.created", "order.>"));
        assert!(!contains("order.created", "order.*"));
        assert!(!contains("order.*", "order.>"));
        assert!(!contains("order.*", "order.a.b"));
        assert!(!contains("order.>", "order"));
        assert!(!contains("order.>", ">"));
        assert!(!contains("a.*", "*.b"));
        // System patterns: only a pattern starting with the same `$` name.
        assert!(!contains(">", "$connection"));
        assert!(!contains("*", "$connection"));
        assert!(contains("$connection", "$connection"));
        assert!(contains("$sys.>", "$sys.a"));
        assert!(!contains("$connection", "$disconnect"));
        // `>` never matches system events, so it contains `*.>`.
        assert!(contains(">", "*.>"));
    }

    #[test]
    fn overlap() {
        assert!(overlaps("order.*", "*.created"));
        assert!(overlaps("order.>", "order.created"));
        assert!(overlaps(">", "a"));
        assert!(overlaps("a.>", "*.b.c"));
        assert!(!overlaps("a.b", "a.c"));
        assert!(!overlaps("a.*", "a.b.c"));
        assert!(!overlaps("a.>", "a"));
        assert!(!overlaps(">", "$connection"));
        assert!(overlaps("$connection", "$connection"));
        assert!(!overlaps("*.>", "$sys.a"));
        assert!(overlaps("$sys.*", "$sys.>"));
    }

    /// Every event of up to four tokens over `a`, `b`, `c`, with `$s` as
    /// a possible first token: enough to decide containment and overlap
    /// of patterns of up to three tokens over `a`, `b`, `*`, `>` (`c` is
    /// a token no pattern names).
    fn sample_events() -> Vec<String> {
        let mut events: Vec<Vec<&str>> = vec![vec!["a"], vec!["b"], vec!["c"], vec!["$s"]];
        let mut all = events.clone();
        for _ in 1..4 {
            let mut longer = Vec::new();
            for event in &events {
                for token in ["a", "b", "c"] {
                    let mut next = event.clone();
                    next.push(token);
                    longer.push(next);
                }
            }
            all.extend(longer.iter().cloned());
            events = longer;
        }
        all.into_iter().map(|tokens| tokens.join(".")).collect()
    }

    fn sample_pattern() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::prelude::*;
        (
            prop_oneof!["a", "b", "\\*", "\\$s", ">"],
            proptest::collection::vec(prop_oneof!["a", "b", "\\*", ">"], 0..3),
        )
            .prop_map(|(first, rest)| {
                let mut tokens = vec![first];
                tokens.extend(rest);
                // `>` only last.
                if let Some(at) = tokens.iter().position(|t| t == ">") {
                    tokens.truncate(at + 1);
                }
                tokens.join(".")
            })
    }

    proptest::proptest! {
        #[test]
        fn containment_and_overlap_agree_with_the_matcher(a in sample_pattern(), b in sample_pattern()) {
            let pa = Pattern::parse(&a).expect("valid");
            let pb = Pattern::parse(&b).expect("valid");
            let events = sample_events();
            let contained = events.iter().all(|e| !pb.matches(e) || pa.matches(e));
            let common = events.iter().any(|e| pa.matches(e) && pb.matches(e));
            proptest::prop_assert_eq!(pa.contains(&pb), contained, "{} contains {}", a, b);
            proptest::prop_assert_eq!(pa.overlaps(&pb), common, "{} overlaps {}", a, b);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = Pattern::parse(&s);
            let _ = validate_event(&s);
            let _ = validate_namespace(&s);
        }

        #[test]
        fn exact_pattern_matches_itself(tokens in proptest::collection::vec("[a-z0-9_]{1,6}", 1..6)) {
            let name = tokens.join(".");
            proptest::prop_assert!(Pattern::parse(&name).expect("valid").matches(&name));
            let rest = format!("{}.>", tokens[0]);
            proptest::prop_assert_eq!(Pattern::parse(&rest).expect("valid").matches(&name), tokens.len() > 1);
        }
    }
}

#[cfg(test)]
mod namespace_pattern_tests {
    use super::{namespace_matches, validate_namespace_pattern};

    #[test]
    fn patterns_of_namespaces() {
        for good in ["/", "/chat", "/rooms/*", "/feeds/>", "/*/x"] {
            assert!(validate_namespace_pattern(good).is_ok(), "{good}");
        }
        for bad in ["", "chat", "/a//b", "/>/x", "/a b", "/**"] {
            assert!(validate_namespace_pattern(bad).is_err(), "{bad}");
        }
        assert!(namespace_matches("/chat", "/chat"));
        assert!(!namespace_matches("/chat", "/chat/x"));
        assert!(namespace_matches("/rooms/*", "/rooms/a"));
        assert!(!namespace_matches("/rooms/*", "/rooms/a/b"));
        assert!(namespace_matches("/feeds/>", "/feeds/a/b"));
        assert!(!namespace_matches("/feeds/>", "/feeds"));
    }
}
