//! A log's events in arrival order, packed back to back in one byte ring.
//!
//! An append writes the event's parts ([`Parts::pack_into`]) right after
//! the newest event and an eviction only moves the start past the oldest:
//! no allocation or free per event, and the writes go to the next bytes in
//! order, which the CPU fetches ahead (a heap buffer per event is written
//! where an event was freed `size` appends ago, memory long out of cache).
//! An event never wraps: one that does not fit before the end of the
//! buffer starts at its beginning. The buffer doubles when an event does
//! not fit, and is compacted to twice what it holds when it holds less
//! than a quarter of it, so it stays within four times the bytes kept
//! (plus [`MIN_CAPACITY`]).

use std::collections::VecDeque;

use super::Stored;
use super::stored::{Parts, StoredRef};

/// The smallest buffer a ring keeps once it holds anything.
pub(crate) const MIN_CAPACITY: usize = 64 * 1024;

/// One event's place in the ring.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// When it was appended (milliseconds of the log's clock).
    at: u64,
    seq: u64,
    start: usize,
    len: usize,
    layout: super::stored::Layout,
}

/// The events of one log.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    /// The bytes; its length is the ring's capacity.
    buffer: Vec<u8>,
    entries: VecDeque<Entry>,
    /// Where the next event's bytes go.
    tail: usize,
    /// Bytes of the events kept.
    held: usize,
}

impl Ring {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of the events kept, and of their places.
    pub(crate) fn weight(&self) -> usize {
        self.held + self.entries.len() * std::mem::size_of::<Entry>()
    }

    /// The buffer's size.
    #[cfg(test)]
    pub(crate) fn capacity(&self) -> usize {
        self.buffer.len()
    }

    /// The oldest event's `seq` and time.
    pub(crate) fn front(&self) -> Option<(u64, u64)> {
        self.entries.front().map(|e| (e.seq, e.at))
    }

    /// Appends event `seq`, packing `parts` in place.
    pub(crate) fn push_back(&mut self, at: u64, seq: u64, parts: &Parts<'_>) {
        let len = parts.packed_len();
        let start = match self.place(len) {
            Some(start) => start,
            None => {
                self.reshape((self.held + len).max(self.buffer.len()) * 2);
                self.tail
            }
        };
        let slot = &mut self.buffer[start..start + len];
        let layout = parts.pack_into(slot);
        self.tail = start + len;
        self.held += len;
        self.entries.push_back(Entry {
            at,
            seq,
            start,
            len,
            layout,
        });
    }

    /// Where `len` bytes fit after the newest event, if they do.
    fn place(&self, len: usize) -> Option<usize> {
        let Some(head) = self.entries.front().map(|e| e.start) else {
            return (len <= self.buffer.len()).then_some(0);
        };
        if self.tail > head {
            // Not wrapped: free after the tail, then before the head.
            if self.buffer.len() - self.tail >= len {
                Some(self.tail)
            } else {
                (head >= len).then_some(0)
            }
        } else {
            // Wrapped (or full, when they meet): free between them.
            (head - self.tail >= len).then_some(self.tail)
        }
    }

    /// Drops the oldest event; its size.
    pub(crate) fn pop_front(&mut self) -> Option<usize> {
        let gone = self.entries.pop_front()?;
        self.held -= gone.len;
        if self.entries.is_empty() {
            self.tail = 0;
        }
        if self.buffer.len() > MIN_CAPACITY && self.held < self.buffer.len() / 4 {
            self.reshape((self.held * 2).max(MIN_CAPACITY));
        }
        Some(gone.len)
    }

    /// Moves the events, oldest first from 0, into a buffer of `capacity`.
    fn reshape(&mut self, capacity: usize) {
        let mut buffer = vec![0; capacity.max(MIN_CAPACITY)];
        let mut at = 0;
        for entry in &mut self.entries {
            buffer[at..at + entry.len]
                .copy_from_slice(&self.buffer[entry.start..entry.start + entry.len]);
            entry.start = at;
            at += entry.len;
        }
        self.buffer = buffer;
        self.tail = at;
    }

    pub(crate) fn clear(&mut self) {
        *self = Ring::default();
    }

    fn view(&self, entry: &Entry) -> StoredRef<'_> {
        StoredRef {
            seq: entry.seq,
            layout: entry.layout,
            data: &self.buffer[entry.start..entry.start + entry.len],
        }
    }

    /// The events from the `skip`th oldest on.
    pub(crate) fn iter_from(&self, skip: usize) -> impl Iterator<Item = StoredRef<'_>> + Clone {
        self.entries
            .range(skip.min(self.entries.len())..)
            .map(|e| self.view(e))
    }

    /// Puts older events (oldest first, all appended at `at`) in front.
    pub(crate) fn prepend(&mut self, at: u64, older: &[Stored]) {
        let mut ring = Ring::default();
        ring.reshape(older.iter().map(|e| e.as_ref().data.len()).sum::<usize>() + self.held);
        for event in older {
            ring.push_back(at, event.seq, &event.parts());
        }
        for entry in &self.entries {
            ring.push_back(entry.at, entry.seq, &self.view(entry).parts());
        }
        *self = ring;
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{MIN_CAPACITY, Ring};
    use crate::history::Stored;
    use crate::history::stored::Parts;

    fn parts(payload: &[u8]) -> Parts<'_> {
        Parts::plain(payload, None)
    }

    fn seqs_and_payloads(ring: &Ring) -> Vec<(u64, Vec<u8>)> {
        ring.iter_from(0)
            .map(|e| (e.seq, e.parts().payload.to_vec()))
            .collect()
    }

    #[test]
    fn events_wrap_around_and_read_back_in_order() {
        let mut ring = Ring::default();
        let big = vec![7u8; MIN_CAPACITY / 4];
        for seq in 1..=10 {
            ring.push_back(0, seq, &parts(&big));
            while ring.len() > 2 {
                ring.pop_front();
            }
        }
        assert_eq!(
            ring.capacity(),
            MIN_CAPACITY,
            "three events fit: never grew"
        );
        let kept: Vec<u64> = ring.iter_from(0).map(|e| e.seq).collect();
        assert_eq!(kept, [9, 10]);
        assert!(
            ring.iter_from(0)
                .all(|e| e.parts().payload == big.as_slice())
        );
    }

    #[test]
    fn a_big_event_grows_the_ring_and_emptying_it_shrinks_it_back() {
        let mut ring = Ring::default();
        ring.push_back(0, 1, &parts(b"small"));
        let huge = vec![1u8; MIN_CAPACITY * 3];
        ring.push_back(0, 2, &parts(&huge));
        assert!(ring.capacity() >= MIN_CAPACITY * 3);
        assert_eq!(seqs_and_payloads(&ring)[0], (1, b"small".to_vec()));
        ring.pop_front();
        ring.pop_front();
        ring.push_back(0, 3, &parts(b"x"));
        ring.pop_front();
        assert_eq!(ring.capacity(), MIN_CAPACITY);
    }

    #[test]
    fn prepended_events_come_first() {
        let mut ring = Ring::default();
        ring.push_back(5, 3, &parts(b"three"));
        let older = [Stored::new(1, parts(b"one")), Stored::new(2, parts(b"two"))];
        ring.prepend(4, &older);
        assert_eq!(
            seqs_and_payloads(&ring),
            [
                (1, b"one".to_vec()),
                (2, b"two".to_vec()),
                (3, b"three".to_vec())
            ]
        );
        assert_eq!(ring.front(), Some((1, 4)));
    }

    proptest! {
        /// Whatever the sizes and evictions, the ring holds exactly the
        /// events a plain queue would, within four times their bytes.
        #[test]
        fn the_ring_holds_what_a_queue_would(
            steps in prop::collection::vec((0usize..40_000, 0usize..4), 1..200)
        ) {
            let mut ring = Ring::default();
            let mut queue = std::collections::VecDeque::new();
            for (seq, (size, pops)) in steps.into_iter().enumerate() {
                let payload = vec![(seq % 251) as u8; size];
                ring.push_back(0, seq as u64, &parts(&payload));
                queue.push_back((seq as u64, payload));
                for _ in 0..pops {
                    prop_assert_eq!(ring.pop_front().is_some(), queue.pop_front().is_some());
                }
                let expected: Vec<(u64, Vec<u8>)> = queue.iter().cloned().collect();
                prop_assert_eq!(seqs_and_payloads(&ring), expected);
                let held: usize = queue.iter().map(|(_, p)| p.len() + 1).sum();
                prop_assert!(ring.capacity() <= (held * 4).max(MIN_CAPACITY * 2) + 80_000);
            }
        }
    }
}
