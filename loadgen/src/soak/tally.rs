//! What the soak's clients count as they go, shared by every task of the
//! run (one thread, so plain cells): deliveries, loss, requests, churn,
//! errors by kind, latencies, and the flag that tells the load to stop.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Display;
use std::time::Duration;

use crate::latency::LatencyHistogram;

/// At most this many distinct error messages are kept (with a count
/// each); any further kind is counted under [`OTHER_ERRORS`].
pub const MAX_ERROR_KINDS: usize = 20;
/// The key that counts errors beyond [`MAX_ERROR_KINDS`] kinds.
pub const OTHER_ERRORS: &str = "(other errors)";
/// An error message is cut to this many characters before it is kept.
const MAX_ERROR_CHARS: usize = 300;

/// The running counts of one soak.
#[derive(Debug, Default)]
pub struct Tally {
    /// Events published (fanout, pairs, churn).
    pub sent: Cell<u64>,
    /// Events received (fanout, pairs, churn).
    pub delivered: Cell<u64>,
    /// Deliveries that were due and never happened: gaps in a
    /// subscriber's sequence, and what was still missing at the end.
    pub lost: Cell<u64>,
    /// Requests sent.
    pub requests: Cell<u64>,
    /// Requests answered with the reply expected.
    pub replies: Cell<u64>,
    /// Churn clients that connected, subscribed, got their events and left.
    pub churned: Cell<u64>,
    /// Churn clients alive now.
    pub churn_alive: Cell<u64>,
    errors: Cell<u64>,
    error_kinds: RefCell<BTreeMap<String, u64>>,
    /// Event latencies since the start.
    pub latency: RefCell<LatencyHistogram>,
    /// Event latencies since the last report.
    pub interval_latency: RefCell<LatencyHistogram>,
    /// Request round trips since the start.
    pub request_latency: RefCell<LatencyHistogram>,
    stopping: Cell<bool>,
}

impl Tally {
    /// Counts one error (kept by its message, cut to a bounded length).
    pub fn error(&self, what: impl Display) {
        self.errors.set(self.errors.get() + 1);
        let mut text = what.to_string();
        if let Some((cut, _)) = text.char_indices().nth(MAX_ERROR_CHARS) {
            text.truncate(cut);
            text.push('…');
        }
        let mut kinds = self.error_kinds.borrow_mut();
        let key = if kinds.contains_key(&text) || kinds.len() < MAX_ERROR_KINDS {
            text
        } else {
            OTHER_ERRORS.to_owned()
        };
        *kinds.entry(key).or_insert(0) += 1;
    }

    /// Errors so far.
    pub fn errors(&self) -> u64 {
        self.errors.get()
    }

    /// The distinct error messages and how often each happened.
    pub fn error_kinds(&self) -> Vec<(String, u64)> {
        self.error_kinds
            .borrow()
            .iter()
            .map(|(text, n)| (text.clone(), *n))
            .collect()
    }

    /// Counts one received event and its latency.
    pub fn delivery(&self, latency: Option<Duration>) {
        self.delivered.set(self.delivered.get() + 1);
        if let Some(latency) = latency {
            self.latency.borrow_mut().record(latency);
            self.interval_latency.borrow_mut().record(latency);
        }
    }

    /// Adds `n` to a counter.
    pub fn add(counter: &Cell<u64>, n: u64) {
        counter.set(counter.get().saturating_add(n));
    }

    /// Tells every load task to wind down.
    pub fn stop(&self) {
        self.stopping.set(true);
    }

    /// True once [`Tally::stop`] was called.
    pub fn stopping(&self) -> bool {
        self.stopping.get()
    }

    /// The interval latency's 99th percentile in µs, and a fresh interval.
    pub fn take_interval_p99_us(&self) -> Option<u64> {
        let mut interval = self.interval_latency.borrow_mut();
        let p99 = interval.quantile_us(0.99);
        *interval = LatencyHistogram::new();
        p99
    }
}

/// What a subscriber makes of the sequence numbers it receives from one
/// publisher, which the broker delivers in order (PROTOCOL.md §8).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequenceCheck {
    /// The sequence number expected next.
    pub next: u64,
}

/// The verdict on one received sequence number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sequence {
    /// The one expected.
    InOrder,
    /// Later than expected: this many events in between were lost.
    Gap(u64),
    /// Earlier than expected: a duplicate or a reordering.
    Behind {
        /// The number expected.
        expected: u64,
        /// The number received.
        got: u64,
    },
}

impl SequenceCheck {
    /// A check that expects `first` next.
    pub fn starting_at(first: u64) -> SequenceCheck {
        SequenceCheck { next: first }
    }

    /// Judges `seq` and moves on past it (not past a late one).
    pub fn receive(&mut self, seq: u64) -> Sequence {
        if seq < self.next {
            return Sequence::Behind {
                expected: self.next,
                got: seq,
            };
        }
        let gap = seq - self.next;
        self.next = seq.saturating_add(1);
        if gap == 0 {
            Sequence::InOrder
        } else {
            Sequence::Gap(gap)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequences_find_gaps_and_reorderings() {
        let mut check = SequenceCheck::default();
        assert_eq!(check.receive(0), Sequence::InOrder);
        assert_eq!(check.receive(1), Sequence::InOrder);
        assert_eq!(check.receive(5), Sequence::Gap(3));
        assert_eq!(check.next, 6);
        assert_eq!(
            check.receive(2),
            Sequence::Behind {
                expected: 6,
                got: 2
            }
        );
        assert_eq!(check.next, 6, "a late one does not move the check back");
        let mut joined = SequenceCheck::starting_at(40);
        assert_eq!(joined.receive(40), Sequence::InOrder);
    }

    #[test]
    fn errors_are_counted_by_kind_within_bounds() {
        let tally = Tally::default();
        tally.error("a");
        tally.error("a");
        for i in 0..MAX_ERROR_KINDS + 5 {
            tally.error(format!("kind {i}"));
        }
        tally.error("x".repeat(10_000));
        assert_eq!(tally.errors(), 2 + MAX_ERROR_KINDS as u64 + 5 + 1);
        let kinds = tally.error_kinds();
        assert!(kinds.len() <= MAX_ERROR_KINDS + 1, "{}", kinds.len());
        assert!(kinds.contains(&("a".to_owned(), 2)));
        let other = kinds
            .iter()
            .find(|(text, _)| text == OTHER_ERRORS)
            .expect("the overflow is counted");
        assert_eq!(other.1, 7);
        assert!(kinds.iter().all(|(text, _)| text.chars().count() <= 301));
    }

    #[test]
    fn deliveries_feed_both_histograms() {
        let tally = Tally::default();
        tally.delivery(Some(Duration::from_micros(100)));
        tally.delivery(None);
        assert_eq!(tally.delivered.get(), 2);
        assert_eq!(tally.latency.borrow().count(), 1);
        assert!(tally.take_interval_p99_us().is_some());
        assert_eq!(tally.take_interval_p99_us(), None, "a fresh interval");
        assert_eq!(tally.latency.borrow().count(), 1, "the total stays");
    }
}
