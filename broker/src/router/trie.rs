//! The wildcard subscriptions of one namespace as a token trie, so an emit
//! finds the matching patterns by walking the event's tokens instead of
//! testing every pattern.
//!
//! A pattern `order.*.paid` is stored along the path `order` → `*` →
//! `paid`; `order.>` ends at `order` with its subscribers in the node's
//! `rest` slot, which matches one or more remaining tokens. Matching an
//! event of `k` tokens visits at most the literal child and the `*` child
//! at each level, so its cost depends on the event and on how many
//! patterns overlap, not on how many patterns the namespace holds.
//!
//! A system event (first token starting with `$`, emitted by the broker
//! only) is matched by literal first tokens alone: `*` and `>` at the
//! first token never match it, as [`herald_protocol::Pattern::matches`]
//! says (MQTT's `$` rule).

use std::collections::HashMap;

use herald_protocol::names::Token;

use super::FastHash;
use super::index::Subscribers;

/// One trie node: children by literal token, the `*` child, and the
/// subscribers of patterns that end here (`end`) or continue with `>`
/// (`rest`).
#[derive(Debug, Clone, Default)]
pub(crate) struct PatternTrie {
    literal: HashMap<Box<str>, PatternTrie, FastHash>,
    one: Option<Box<PatternTrie>>,
    end: Option<Subscribers>,
    rest: Option<Subscribers>,
    /// Distinct patterns stored at or below this node.
    patterns: usize,
}

impl PatternTrie {
    /// True when no pattern is stored.
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns == 0
    }

    /// Number of distinct patterns stored.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.patterns
    }

    /// The subscribers of `tokens`, created empty when the pattern is new.
    pub(crate) fn entry(&mut self, tokens: &[Token]) -> &mut Subscribers {
        let stored = matches!(self.slot_existing(tokens), Some(Some(_)));
        if !stored {
            self.slot_mut(tokens)
                .get_or_insert_with(Subscribers::default);
            self.count_path(tokens, 1);
        }
        self.slot_mut(tokens)
            .get_or_insert_with(Subscribers::default)
    }

    /// Applies `change` to the subscribers of `tokens`, if the pattern is
    /// stored, and prunes the pattern (and any node left empty) when the
    /// change leaves it without subscribers.
    pub(crate) fn update(&mut self, tokens: &[Token], change: impl FnOnce(&mut Subscribers)) {
        let emptied = match self.slot_existing(tokens) {
            Some(slot) => {
                if let Some(subscribers) = slot.as_mut() {
                    change(subscribers);
                }
                let emptied = slot.as_ref().is_some_and(Subscribers::is_empty);
                if emptied {
                    *slot = None;
                }
                emptied
            }
            None => false,
        };
        if emptied {
            self.count_path(tokens, -1);
            self.prune(tokens);
        }
    }

    /// Calls `hit` with the subscribers of every pattern matching `event`.
    pub(crate) fn matches<'a>(&'a self, event: &str, hit: &mut impl FnMut(&'a Subscribers)) {
        let mut tokens = event.split('.');
        if herald_protocol::names::is_system_event(event) {
            // Skip the root's `>` and `*`: only a literal `$...` first
            // token leads on.
            if let Some(child) = tokens.next().and_then(|first| self.literal.get(first)) {
                child.walk(&mut tokens, hit);
            }
            return;
        }
        self.walk(&mut tokens, hit);
    }

    fn walk<'a, 'e>(
        &'a self,
        tokens: &mut (impl Iterator<Item = &'e str> + Clone),
        hit: &mut impl FnMut(&'a Subscribers),
    ) {
        let Some(token) = tokens.next() else {
            if let Some(end) = &self.end {
                hit(end);
            }
            return;
        };
        if let Some(rest) = &self.rest {
            hit(rest);
        }
        if let Some(one) = &self.one {
            one.walk(&mut tokens.clone(), hit);
        }
        if let Some(child) = self.literal.get(token) {
            child.walk(tokens, hit);
        }
    }

    /// The slot of the node a pattern's path leads to (created as needed).
    fn slot_mut(&mut self, tokens: &[Token]) -> &mut Option<Subscribers> {
        let mut node = self;
        for (i, token) in tokens.iter().enumerate() {
            match token {
                Token::Rest if i + 1 == tokens.len() => return &mut node.rest,
                Token::Rest | Token::One => {
                    node = node.one.get_or_insert_with(Box::default);
                }
                Token::Literal(lit) => {
                    node = node.literal.entry(lit.clone()).or_default();
                }
            }
        }
        &mut node.end
    }

    /// Like [`Self::slot_mut`] without creating anything.
    fn slot_existing(&mut self, tokens: &[Token]) -> Option<&mut Option<Subscribers>> {
        let mut node = self;
        for (i, token) in tokens.iter().enumerate() {
            match token {
                Token::Rest if i + 1 == tokens.len() => return Some(&mut node.rest),
                Token::Rest | Token::One => node = node.one.as_deref_mut()?,
                Token::Literal(lit) => node = node.literal.get_mut(&**lit)?,
            }
        }
        Some(&mut node.end)
    }

    /// Adds `delta` to the pattern count of every node on the path.
    fn count_path(&mut self, tokens: &[Token], delta: isize) {
        let mut node = Some(self);
        for token in tokens.iter().map(Some).chain([None]) {
            let Some(current) = node else { return };
            current.patterns = current.patterns.saturating_add_signed(delta);
            node = match token {
                None | Some(Token::Rest) => None,
                Some(Token::One) => current.one.as_deref_mut(),
                Some(Token::Literal(lit)) => current.literal.get_mut(&**lit),
            };
        }
    }

    /// Drops the nodes on the path that no longer hold any pattern.
    fn prune(&mut self, tokens: &[Token]) {
        let Some((first, rest)) = tokens.split_first() else {
            return;
        };
        match first {
            Token::Literal(lit) => {
                if let Some(child) = self.literal.get_mut(&**lit) {
                    child.prune(rest);
                    if child.is_empty() {
                        self.literal.remove(&**lit);
                    }
                }
            }
            Token::One => {
                if let Some(child) = self.one.as_deref_mut() {
                    child.prune(rest);
                    if child.is_empty() {
                        self.one = None;
                    }
                }
            }
            Token::Rest => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use herald_protocol::Pattern;
    use proptest::prelude::*;

    use std::sync::Arc;

    use herald_config::SlowConsumerPolicy;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::outbox::{ConnId, ConnShared, Outbox};
    use crate::stats::Stats;

    fn tokens(pattern: &str) -> Box<[Token]> {
        match Pattern::parse(pattern) {
            Ok(Pattern::Wildcard(tokens)) => tokens,
            other => panic!("{pattern} is not a wildcard pattern: {other:?}"),
        }
    }

    fn conn(id: u64) -> Outbox {
        let (tx, _rx) = mpsc::channel(4);
        ConnShared::new(
            ConnId(id),
            tx,
            SlowConsumerPolicy::Disconnect,
            CancellationToken::new(),
            Arc::new(Stats::default()),
        )
    }

    /// The ids of the connections whose patterns match `event`, sorted.
    fn matching(trie: &PatternTrie, event: &str) -> Vec<u64> {
        let mut ids = Vec::new();
        trie.matches(event, &mut |subs| {
            ids.extend(subs.plain.iter().map(|o| o.id.0))
        });
        ids.sort_unstable();
        ids
    }

    #[test]
    fn one_rest_and_literals() {
        let mut trie = PatternTrie::default();
        for (id, p) in [
            (1, "order.*"),
            (2, "order.>"),
            (3, "*.created"),
            (4, "order.*.paid"),
        ] {
            trie.entry(&tokens(p)).insert(None, &conn(id));
        }
        assert_eq!(trie.len(), 4);
        assert_eq!(matching(&trie, "order.created"), [1, 2, 3]);
        assert_eq!(matching(&trie, "order.17.paid"), [2, 4]);
        assert_eq!(matching(&trie, "order"), Vec::<u64>::new());
        assert_eq!(matching(&trie, "user.created"), [3]);
    }

    #[test]
    fn first_token_wildcards_skip_system_events() {
        let mut trie = PatternTrie::default();
        for (id, p) in [(1, ">"), (2, "*"), (3, "*.>"), (4, "$sys.>"), (5, "$sys.*")] {
            trie.entry(&tokens(p)).insert(None, &conn(id));
        }
        assert_eq!(matching(&trie, "$connection"), Vec::<u64>::new());
        assert_eq!(matching(&trie, "$sys.a"), [4, 5]);
        assert_eq!(matching(&trie, "$sys.a.b"), [4]);
        assert_eq!(matching(&trie, "connection"), [1, 2]);
        assert_eq!(matching(&trie, "sys.a"), [1, 3]);
    }

    #[test]
    fn removal_prunes_nodes() {
        let mut trie = PatternTrie::default();
        let p = tokens("a.*.c.>");
        trie.entry(&p).insert(None, &conn(1));
        trie.update(&p, |subs| subs.remove(None, ConnId(1)));
        assert!(trie.is_empty());
        assert!(trie.literal.is_empty(), "empty path left behind: {trie:?}");
        // Removing an unknown pattern is a no-op.
        trie.update(&tokens("x.*"), |subs| subs.remove(None, ConnId(1)));
        assert!(trie.is_empty());
    }

    proptest! {
        /// The trie finds exactly the patterns whose `matches` accepts the
        /// event, through random inserts and removals.
        #[test]
        fn agrees_with_linear_matching(
            ops in prop::collection::vec(
                (prop::bool::ANY, 0usize..13, 0u64..4), 1..60),
            events in prop::collection::vec(0usize..10, 1..10),
        ) {
            const PATTERNS: [&str; 13] = [
                "a.*", "a.>", "*.b", "*.*", ">", "a.b.*", "*.b.>", "a.*.c",
                "*", "*.>", "*.*.*", "b.*", "$s.*",
            ];
            const EVENTS: [&str; 10] = [
                "a", "a.b", "a.b.c", "b.b", "a.c.c", "x.b.y.z", "b", "a.b.c.d", "$s.b", "$s",
            ];
            let mut trie = PatternTrie::default();
            let mut model: Vec<(usize, u64)> = Vec::new();
            for (add, p, id) in ops {
                let t = tokens(PATTERNS[p]);
                if add {
                    trie.entry(&t).insert(None, &conn(id));
                    if !model.contains(&(p, id)) { model.push((p, id)); }
                } else {
                    trie.update(&t, |subs| subs.remove(None, ConnId(id)));
                    model.retain(|entry| *entry != (p, id));
                }
            }
            for e in events {
                let event = EVENTS[e];
                let mut expected: Vec<u64> = model.iter()
                    .filter(|(p, _)| Pattern::parse(PATTERNS[*p]).is_ok_and(|pat| pat.matches(event)))
                    .map(|(_, id)| *id)
                    .collect();
                expected.sort_unstable();
                prop_assert_eq!(matching(&trie, event), expected, "event {}", event);
            }
            let distinct: std::collections::HashSet<&str> =
                model.iter().map(|(p, _)| PATTERNS[*p]).collect();
            prop_assert_eq!(trie.len(), distinct.len());
        }
    }
}
