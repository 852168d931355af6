//! Per-client-address limits: new TCP connections per second (a token
//! bucket, checked at accept) and sessions held at once (checked at the
//! WebSocket upgrade or Engine.IO handshake). A client address is an IPv4
//! address or the /64 prefix of an IPv6 one (IPv4-mapped IPv6 addresses
//! count as IPv4).
//!
//! The table is bounded by `rate_limits.max_tracked_ips`. At the cap, a
//! new address first evicts the idle entries (no session open, bucket
//! full), then, if none was idle, every entry without an open session;
//! if every entry still holds a session, the new address is refused until
//! one closes (and no sweep runs again before then, so a full table costs
//! one failed lookup per refusal, not a scan).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use herald_config::RateLimitSettings;
use tokio::time::Instant;

use super::token_bucket::{Rate, TokenBucket};

/// A client address as the limits count it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IpKey {
    V4(u32),
    /// The first 64 bits (the network prefix) of an IPv6 address.
    V6(u64),
}

impl IpKey {
    pub(crate) fn of(ip: IpAddr) -> IpKey {
        match ip.to_canonical() {
            IpAddr::V4(v4) => IpKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => IpKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

/// Why a client address was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Over `rate_limits.connections_per_ip_per_second`.
    ConnectionRate,
    /// At `rate_limits.max_connections_per_ip`.
    ConnectionsPerIp,
    /// The table is at `rate_limits.max_tracked_ips`, every entry busy.
    TrackedIps,
}

/// What to do with a new TCP connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accept {
    /// Serve it.
    Serve,
    /// Answer its requests 429 and close it.
    Refuse(Refused),
    /// Close it at once, unread (a flood that ignores the 429s).
    Drop,
}

#[derive(Debug)]
struct Entry {
    /// The connection-rate bucket (when that limit is on).
    bucket: Option<TokenBucket>,
    /// Connections refused since one was last served.
    refused_in_a_row: u32,
    /// Sessions open now.
    sessions: u32,
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<IpKey, Entry, foldhash::quality::RandomState>,
    /// Set when a sweep freed nothing: no sweep until a session closes.
    full_of_sessions: bool,
}

/// The per-IP state of one broker.
#[derive(Debug)]
pub(crate) struct PerIp {
    rate: Option<Rate>,
    /// Refusals answered 429 in a row before further connections are
    /// dropped unread: the bucket's size.
    answered_refusals: u32,
    max_sessions: u32,
    cap: usize,
    table: Mutex<Table>,
}

impl PerIp {
    /// The per-IP limits of `settings`; `None` when both are off.
    pub(crate) fn new(settings: &RateLimitSettings) -> Option<Arc<PerIp>> {
        let rate = Rate::new(
            settings.connections_per_ip_per_second,
            settings.connection_burst,
        );
        let max_sessions = u32::try_from(settings.max_connections_per_ip).unwrap_or(u32::MAX);
        if rate.is_none() && max_sessions == 0 {
            return None;
        }
        Some(Arc::new(PerIp {
            rate,
            answered_refusals: u32::try_from(settings.connection_burst).unwrap_or(u32::MAX),
            max_sessions,
            cap: settings.max_tracked_ips.max(1),
            table: Mutex::new(Table::default()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The verdict on a new TCP connection from `ip` (connection rate).
    pub(crate) fn accept(&self, ip: IpAddr) -> Accept {
        let Some(rate) = self.rate else {
            return Accept::Serve;
        };
        let now = Instant::now();
        let mut table = self.lock();
        let Some(entry) = table.entry(IpKey::of(ip), self.cap, self.rate, now) else {
            return Accept::Refuse(Refused::TrackedIps);
        };
        let bucket = entry
            .bucket
            .get_or_insert_with(|| TokenBucket::full(rate, now));
        if bucket.take(rate, now) {
            entry.refused_in_a_row = 0;
            return Accept::Serve;
        }
        entry.refused_in_a_row = entry.refused_in_a_row.saturating_add(1);
        if entry.refused_in_a_row > self.answered_refusals {
            Accept::Drop
        } else {
            Accept::Refuse(Refused::ConnectionRate)
        }
    }

    /// Counts a new session of `ip`, refused at `max_connections_per_ip`;
    /// the slot gives it back when dropped. `Ok(None)` when that limit is
    /// off.
    pub(crate) fn open_session(self: &Arc<Self>, ip: IpAddr) -> Result<Option<IpSlot>, Refused> {
        if self.max_sessions == 0 {
            return Ok(None);
        }
        let key = IpKey::of(ip);
        let mut table = self.lock();
        let Some(entry) = table.entry(key, self.cap, self.rate, Instant::now()) else {
            return Err(Refused::TrackedIps);
        };
        if entry.sessions >= self.max_sessions {
            return Err(Refused::ConnectionsPerIp);
        }
        entry.sessions += 1;
        Ok(Some(IpSlot {
            table: self.clone(),
            key,
        }))
    }

    fn close_session(&self, key: IpKey) {
        let mut table = self.lock();
        if let Some(entry) = table.entries.get_mut(&key) {
            entry.sessions = entry.sessions.saturating_sub(1);
            if entry.sessions == 0 {
                table.full_of_sessions = false;
            }
        }
    }

    /// Addresses tracked now (for tests).
    #[cfg(test)]
    fn tracked(&self) -> usize {
        self.lock().entries.len()
    }
}

impl Table {
    /// The entry of `key`, made (evicting at the cap) when missing;
    /// `None` when the table is at `cap` and every entry holds a session.
    fn entry(
        &mut self,
        key: IpKey,
        cap: usize,
        rate: Option<Rate>,
        now: Instant,
    ) -> Option<&mut Entry> {
        if !self.entries.contains_key(&key) && self.entries.len() >= cap {
            if self.full_of_sessions {
                return None;
            }
            self.entries.retain(|_, e| {
                let idle = match (e.bucket.as_mut(), rate) {
                    (Some(bucket), Some(rate)) => bucket.is_full(rate, now),
                    _ => true,
                };
                e.sessions > 0 || !idle
            });
            if self.entries.len() >= cap {
                self.entries.retain(|_, e| e.sessions > 0);
            }
            if self.entries.len() >= cap {
                self.full_of_sessions = true;
                return None;
            }
        }
        Some(self.entries.entry(key).or_insert(Entry {
            bucket: None,
            refused_in_a_row: 0,
            sessions: 0,
        }))
    }
}

/// One open session of a client address, counted until dropped.
#[derive(Debug)]
pub(crate) struct IpSlot {
    table: Arc<PerIp>,
    key: IpKey,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        self.table.close_session(self.key);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings(rate: usize, burst: usize, sessions: usize, cap: usize) -> RateLimitSettings {
        RateLimitSettings {
            connections_per_ip_per_second: rate,
            connection_burst: burst,
            max_connections_per_ip: sessions,
            max_tracked_ips: cap,
            messages_per_second: 0,
            message_burst: 1,
            max_rate_limited_messages: 0,
        }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn off_when_both_limits_are_zero() {
        assert!(PerIp::new(&settings(0, 20, 0, 10)).is_none());
    }

    #[test]
    fn ipv6_addresses_share_their_slash_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(
            IpKey::of(ip("2001:db8:1:2::1")),
            IpKey::of(ip("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            IpKey::of(ip("2001:db8:1:2::1")),
            IpKey::of(ip("2001:db8:1:3::1"))
        );
        assert_eq!(IpKey::of(ip("::ffff:10.0.0.1")), IpKey::of(ip("10.0.0.1")));
        assert_ne!(IpKey::of(ip("10.0.0.1")), IpKey::of(ip("10.0.0.2")));
    }

    #[tokio::test(start_paused = true)]
    async fn the_burst_then_429s_then_drops_until_the_bucket_refills() {
        let limits = PerIp::new(&settings(2, 3, 0, 10)).expect("on");
        let a = ip("192.0.2.1");
        for _ in 0..3 {
            assert_eq!(limits.accept(a), Accept::Serve);
        }
        for _ in 0..3 {
            assert_eq!(limits.accept(a), Accept::Refuse(Refused::ConnectionRate));
        }
        assert_eq!(limits.accept(a), Accept::Drop, "the flood goes on");
        assert_eq!(
            limits.accept(ip("192.0.2.2")),
            Accept::Serve,
            "other addresses are not harmed"
        );
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(limits.accept(a), Accept::Serve, "one token per 500 ms");
        assert_eq!(limits.accept(a), Accept::Refuse(Refused::ConnectionRate));
    }

    #[test]
    fn sessions_per_address_are_counted_until_their_slot_drops() {
        let limits = PerIp::new(&settings(0, 1, 2, 10)).expect("on");
        let a = ip("198.51.100.7");
        let first = limits.open_session(a).expect("first");
        let second = limits.open_session(a).expect("second");
        assert_eq!(
            limits.open_session(a).map(|_| ()),
            Err(Refused::ConnectionsPerIp)
        );
        assert!(limits.open_session(ip("198.51.100.8")).is_ok());
        drop(first);
        let third = limits.open_session(a).expect("a slot was given back");
        drop((second, third));
    }

    #[tokio::test(start_paused = true)]
    async fn the_table_is_bounded_and_evicts_idle_addresses_first() {
        let limits = PerIp::new(&settings(1, 1, 1, 2)).expect("on");
        let held = limits.open_session(ip("10.0.0.1")).expect("a session");
        assert_eq!(limits.accept(ip("10.0.0.2")), Accept::Serve);
        assert_eq!(limits.tracked(), 2);
        // 10.0.0.2's bucket is not full yet and 10.0.0.1 holds a session:
        // a third address evicts the one with no session.
        assert_eq!(limits.accept(ip("10.0.0.3")), Accept::Serve);
        assert_eq!(limits.tracked(), 2);
        let other = limits.open_session(ip("10.0.0.3")).expect("a session");
        assert_eq!(
            limits.accept(ip("10.0.0.4")),
            Accept::Refuse(Refused::TrackedIps),
            "every tracked address holds a session"
        );
        assert_eq!(limits.tracked(), 2);
        drop(other);
        assert_eq!(limits.accept(ip("10.0.0.4")), Accept::Serve);
        assert_eq!(limits.tracked(), 2);
        drop(held);
    }
}
