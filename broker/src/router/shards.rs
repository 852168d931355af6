//! Copy-on-write sets keyed by connection, split by hash into shards, so a
//! change made while a reader holds a snapshot copies one shard, not the
//! whole set.
//!
//! Emits hold `Arc` snapshots of subscriber lists and room members and
//! changes go through `Arc::make_mut`, which copies what a reader still
//! holds. With one flat map that copy is every entry (100,000 on a hot
//! event). Here it is the list of shard pointers (one reference count per
//! shard) and the one shard the change falls in: shards average 64 to 256
//! entries, so a held change costs at most about n / 64 + 256 reference
//! counts instead of n (some 700 for n = 100,000). The shard count doubles when shards
//! average more than [`MAX_SHARD`] entries and halves below a quarter of
//! that (each costs one pass over the set, amortised over as many changes).
//! Reading stays a walk over a few contiguous shards.

use std::collections::HashSet;
use std::sync::Arc;

use indexmap::IndexMap;

use super::FastHash;
use crate::outbox::{ConnId, Outbox};

/// The average shard size above which the shards double.
const MAX_SHARD: usize = 256;

/// One shard's storage.
pub(crate) trait Shard: Clone + Default {
    /// What is kept per connection.
    type Item;
    fn contains(&self, id: ConnId) -> bool;
    /// Adds `id`, or replaces its item; true when `id` is new.
    fn insert(&mut self, id: ConnId, item: Self::Item) -> bool;
    /// True when `id` was there.
    fn remove(&mut self, id: ConnId) -> bool;
    /// Hands every entry to `into` (when the set is resharded).
    fn drain(self, into: &mut impl FnMut(ConnId, Self::Item));
}

/// A set of connections in copy-on-write shards.
#[derive(Debug, Clone)]
pub(crate) struct Sharded<S> {
    layout: Layout<S>,
    len: usize,
}

/// A small set is one shard held inline: an emit reaches it with no more
/// indirection than a plain map, and copying it (when a change meets a
/// held snapshot) is bounded by [`MAX_SHARD`] like copying one shard.
#[derive(Debug, Clone)]
enum Layout<S> {
    One(S),
    /// A power of two of shards, at least two.
    Many(Vec<Arc<S>>),
}

impl<S: Shard> Default for Sharded<S> {
    fn default() -> Self {
        Sharded {
            layout: Layout::One(S::default()),
            len: 0,
        }
    }
}

/// The shard of `id` among `count` (a power of two). Fibonacci hashing
/// spreads consecutive ids evenly, and the top bits pick the shard, so a
/// doubling splits each shard in two.
fn shard_of(id: ConnId, count: usize) -> usize {
    if count == 1 {
        return 0;
    }
    let spread = id.0.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // `count` ≤ the entries / 64, far below 2^32: the shift keeps < 32 bits.
    (spread >> (64 - count.trailing_zeros())) as usize
}

impl<S: Shard> Sharded<S> {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn count(&self) -> usize {
        match &self.layout {
            Layout::One(_) => 1,
            Layout::Many(shards) => shards.len(),
        }
    }

    fn shard(&self, at: usize) -> &S {
        match &self.layout {
            Layout::One(shard) => shard,
            Layout::Many(shards) => &shards[at],
        }
    }

    /// The shards in order.
    fn shards(&self) -> impl Iterator<Item = &S> {
        let (one, many) = match &self.layout {
            Layout::One(shard) => (Some(shard), &[][..]),
            Layout::Many(shards) => (None, &shards[..]),
        };
        one.into_iter().chain(many.iter().map(|s| &**s))
    }

    pub(crate) fn contains(&self, id: ConnId) -> bool {
        self.shard(shard_of(id, self.count())).contains(id)
    }

    /// Adds `id` with `item` (replacing an earlier item).
    pub(crate) fn insert(&mut self, id: ConnId, item: S::Item) {
        let at = shard_of(id, self.count());
        let added = match &mut self.layout {
            Layout::One(shard) => shard.insert(id, item),
            Layout::Many(shards) => Arc::make_mut(&mut shards[at]).insert(id, item),
        };
        if added {
            self.len += 1;
            if self.len > self.count() * MAX_SHARD {
                self.reshard(self.count() * 2);
            }
        }
    }

    /// Removes `id`; true when it was there.
    pub(crate) fn remove(&mut self, id: ConnId) -> bool {
        let at = shard_of(id, self.count());
        let removed = match &mut self.layout {
            Layout::One(shard) => shard.remove(id),
            Layout::Many(shards) => {
                let slot = &mut shards[at];
                match Arc::get_mut(slot) {
                    Some(unique) => unique.remove(id),
                    // Shared with a snapshot: copied only when the change
                    // is real.
                    None => slot.contains(id) && Arc::make_mut(slot).remove(id),
                }
            }
        };
        if !removed {
            return false;
        }
        self.len -= 1;
        if self.count() > 1 && self.len < self.count() * MAX_SHARD / 4 {
            self.reshard(self.count() / 2);
        }
        true
    }

    fn reshard(&mut self, count: usize) {
        let mut shards: Vec<S> = (0..count).map(|_| S::default()).collect();
        let mut into = |id, item| {
            shards[shard_of(id, count)].insert(id, item);
        };
        match std::mem::replace(&mut self.layout, Layout::One(S::default())) {
            Layout::One(shard) => shard.drain(&mut into),
            Layout::Many(old) => {
                for shard in old {
                    Arc::unwrap_or_clone(shard).drain(&mut into);
                }
            }
        }
        self.layout = if count == 1 {
            Layout::One(shards.pop().unwrap_or_default())
        } else {
            Layout::Many(shards.into_iter().map(Arc::new).collect())
        };
    }

    /// How many shards `self` and `other` share (for tests of what a change
    /// copies).
    #[cfg(test)]
    fn shared_with(&self, other: &Sharded<S>) -> usize {
        match (&self.layout, &other.layout) {
            (Layout::Many(a), Layout::Many(b)) => a
                .iter()
                .filter(|a| b.iter().any(|b| Arc::ptr_eq(a, b)))
                .count(),
            _ => 0,
        }
    }
}

/// Subscribers and queue-group members: each connection with its outbox,
/// a shard being a small insertion-ordered map (a contiguous walk on emit,
/// a hash probe on change; a vector scanned on change was measured at
/// twice the cost of a change with no emit running).
pub(crate) type Members = Sharded<IndexMap<ConnId, Outbox, FastHash>>;

impl Shard for IndexMap<ConnId, Outbox, FastHash> {
    type Item = Outbox;

    fn contains(&self, id: ConnId) -> bool {
        self.contains_key(&id)
    }

    fn insert(&mut self, id: ConnId, item: Outbox) -> bool {
        IndexMap::insert(self, id, item).is_none()
    }

    fn remove(&mut self, id: ConnId) -> bool {
        self.swap_remove(&id).is_some()
    }

    fn drain(self, into: &mut impl FnMut(ConnId, Outbox)) {
        for (id, outbox) in self {
            into(id, outbox);
        }
    }
}

impl Members {
    /// Every member once.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Outbox> {
        self.shards().flat_map(|s| s.values())
    }

    /// Every member once, from a starting point chosen by `start` (a
    /// round-robin cursor): consecutive cursors start in consecutive
    /// shards, and within a shard one position further each time round.
    /// With one shard (up to 256 members) that is `start mod n` exactly;
    /// with more, each member leads once per round of its shard, which
    /// evens out as shards are filled alike.
    pub(crate) fn rotation(&self, start: usize) -> impl Iterator<Item = &Outbox> {
        let count = self.count();
        let first = start % count;
        let lead = self.shard(first);
        let offset = (start / count).checked_rem(lead.len()).unwrap_or(0);
        let (before, after) = lead.as_slice().split_at(offset);
        let others = (first + 1..count)
            .chain(0..first)
            .flat_map(|at| self.shard(at).values());
        after.values().chain(others).chain(before.values())
    }
}

/// A room's members: a shard is a hash set (tested once per receiver of
/// an emit to the room).
pub(crate) type RoomSet = Sharded<HashSet<ConnId, FastHash>>;

impl Shard for HashSet<ConnId, FastHash> {
    type Item = ();

    fn contains(&self, id: ConnId) -> bool {
        HashSet::contains(self, &id)
    }

    fn insert(&mut self, id: ConnId, (): ()) -> bool {
        HashSet::insert(self, id)
    }

    fn remove(&mut self, id: ConnId) -> bool {
        HashSet::remove(self, &id)
    }

    fn drain(self, into: &mut impl FnMut(ConnId, ())) {
        for id in self {
            into(id, ());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::{Arc, LazyLock};

    use herald_config::SlowConsumerPolicy;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::outbox::ConnShared;
    use crate::stats::Stats;

    fn outbox(id: u64) -> Outbox {
        static STATS: LazyLock<Arc<Stats>> = LazyLock::new(Arc::default);
        // The receiver is dropped: these outboxes are only compared by id.
        let (tx, _) = mpsc::channel(1);
        ConnShared::new(
            ConnId(id),
            tx,
            SlowConsumerPolicy::Drop,
            CancellationToken::new(),
            STATS.clone(),
        )
    }

    fn ids(members: &Members) -> Vec<u64> {
        members.iter().map(|o| o.id.0).collect()
    }

    /// Checks `members` holds exactly `model`, each once.
    fn assert_holds(members: &Members, model: &BTreeSet<u64>) {
        let mut listed = ids(members);
        listed.sort_unstable();
        assert_eq!(listed, model.iter().copied().collect::<Vec<_>>());
        assert_eq!(members.len(), model.len());
        assert!(model.iter().all(|id| members.contains(ConnId(*id))));
    }

    #[test]
    fn members_grow_and_shrink_keeping_every_member() {
        let outboxes: Vec<Outbox> = (0..20_000).map(outbox).collect();
        let mut members = Members::default();
        let mut model = BTreeSet::new();
        for o in &outboxes {
            members.insert(o.id, o.clone());
            model.insert(o.id.0);
        }
        assert_holds(&members, &model);
        let sizes: Vec<usize> = members.shards().map(IndexMap::len).collect();
        assert!(sizes.len() >= 64, "{} shards", sizes.len());
        assert!(
            sizes.iter().all(|s| *s <= 2 * MAX_SHARD),
            "unbalanced: {sizes:?}"
        );
        // Inserting again replaces, never duplicates.
        members.insert(outboxes[7].id, outboxes[7].clone());
        assert_holds(&members, &model);
        // Every other one leaves, then all but three.
        for o in outboxes.iter().step_by(2) {
            assert!(members.remove(o.id));
            model.remove(&o.id.0);
        }
        assert!(!members.remove(outboxes[0].id), "already gone");
        assert_holds(&members, &model);
        for o in outboxes.iter().skip(7).step_by(2) {
            members.remove(o.id);
            model.remove(&o.id.0);
        }
        assert_holds(&members, &model);
        assert_eq!(members.shards().count(), 1, "shrunk back to one shard");
    }

    #[test]
    fn a_change_while_a_snapshot_is_held_copies_one_shard() {
        let mut current = Arc::new(Members::default());
        for id in 0..100_000 {
            Arc::make_mut(&mut current).insert(ConnId(id), outbox(id));
        }
        let shards = current.shards().count();
        let held = current.clone();
        Arc::make_mut(&mut current).insert(ConnId(100_000), outbox(100_000));
        assert_eq!(current.shared_with(&held), shards - 1);
        assert!(!held.contains(ConnId(100_000)), "the snapshot is unchanged");
        assert_eq!(held.len(), 100_000);
        let held = current.clone();
        assert!(Arc::make_mut(&mut current).remove(ConnId(5)));
        assert_eq!(current.shared_with(&held), shards - 1);
        assert!(held.contains(ConnId(5)) && !current.contains(ConnId(5)));
    }

    #[test]
    fn rotation_is_round_robin_in_one_shard() {
        let mut members = Members::default();
        for id in [10, 11, 12] {
            members.insert(ConnId(id), outbox(id));
        }
        let order = ids(&members);
        for start in 0..7 {
            let rotated: Vec<u64> = members.rotation(start).map(|o| o.id.0).collect();
            let expected: Vec<u64> = (0..3).map(|i| order[(start + i) % 3]).collect();
            assert_eq!(rotated, expected);
        }
        assert_eq!(Members::default().rotation(3).count(), 0);
    }

    #[test]
    fn rotation_over_shards_visits_everyone_and_lets_everyone_lead() {
        let mut members = Members::default();
        for id in 0..1_500 {
            members.insert(ConnId(id), outbox(id));
        }
        let count = members.shards().count();
        let longest = members.shards().map(IndexMap::len).max().unwrap_or(0);
        let mut leaders = BTreeSet::new();
        for start in 0..count * longest {
            let mut seen: Vec<u64> = members.rotation(start).map(|o| o.id.0).collect();
            leaders.insert(seen[0]);
            seen.sort_unstable();
            seen.dedup();
            assert_eq!(seen.len(), 1_500, "start {start}");
        }
        assert_eq!(leaders.len(), 1_500);
    }

    #[test]
    fn room_sets_track_membership_across_reshards() {
        let mut room = RoomSet::default();
        for id in 0..5_000 {
            room.insert(ConnId(id), ());
        }
        assert!(room.shards().count() > 1);
        for id in (0..5_000).filter(|id| id % 3 != 0) {
            assert!(room.remove(ConnId(id)));
        }
        for id in 0..5_000 {
            assert_eq!(room.contains(ConnId(id)), id % 3 == 0, "{id}");
        }
        assert_eq!(room.len(), 1_667);
    }
}
