//! A token bucket refilled by timestamp: no timer, no task; each take
//! first adds what the time since the last one earned, capped at the
//! burst. The caller passes the clock (`tokio::time::Instant`, so tests
//! run on a paused clock).

use tokio::time::Instant;

/// A bucket's refill rate and size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Rate {
    /// Tokens earned per second.
    per_second: f64,
    /// The most tokens the bucket holds (and starts with).
    burst: f64,
}

impl Rate {
    /// `per_second` tokens a second, at most `burst` at once; `None` when
    /// `per_second` is 0 (the limit is off).
    pub(crate) fn new(per_second: usize, burst: usize) -> Option<Rate> {
        (per_second > 0).then(|| Rate {
            per_second: per_second as f64,
            burst: burst.max(1) as f64,
        })
    }

    /// The size of the bucket, as configured.
    pub(crate) fn burst(self) -> f64 {
        self.burst
    }
}

/// One bucket: what it holds and when that was last brought up to date.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TokenBucket {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub(crate) fn full(rate: Rate, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: rate.burst,
            last: now,
        }
    }

    /// Adds what the time since the last update earned.
    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
        self.last = now;
    }

    /// Takes one token if there is one; false when the bucket is empty.
    pub(crate) fn take(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket is full again (after bringing it up to date).
    pub(crate) fn is_full(&mut self, rate: Rate, now: Instant) -> bool {
        self.refill(rate, now);
        self.tokens >= rate.burst
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_then_the_rate() {
        let rate = Rate::new(10, 3).expect("on");
        let mut bucket = TokenBucket::full(rate, Instant::now());
        for _ in 0..3 {
            assert!(bucket.take(rate, Instant::now()));
        }
        assert!(!bucket.take(rate, Instant::now()), "the burst is spent");
        tokio::time::advance(Duration::from_millis(99)).await;
        assert!(!bucket.take(rate, Instant::now()), "not yet a whole token");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(bucket.take(rate, Instant::now()), "one token per 100 ms");
        assert!(!bucket.take(rate, Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn refills_cap_at_the_burst() {
        let rate = Rate::new(1000, 5).expect("on");
        let mut bucket = TokenBucket::full(rate, Instant::now());
        assert!(bucket.take(rate, Instant::now()));
        assert!(!bucket.is_full(rate, Instant::now()));
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(bucket.is_full(rate, Instant::now()));
        let taken = (0..100)
            .filter(|_| bucket.take(rate, Instant::now()))
            .count();
        assert_eq!(taken, 5, "an hour idle earns no more than the burst");
    }

    #[test]
    fn zero_is_off_and_the_burst_is_at_least_one() {
        assert_eq!(Rate::new(0, 10), None);
        assert_eq!(Rate::new(5, 0).map(Rate::burst), Some(1.0));
    }
}
