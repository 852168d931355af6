//! Reconnection back-off: exponential growth, a cap, and full jitter.
//!
//! The delay before reconnect attempt `n` (counting from 0) is drawn
//! uniformly from `[0, min(max, initial * factor^n)]` ("full jitter"), so a
//! fleet of clients dropped by one broker restart does not reconnect in
//! lock-step. The random source is a parameter, so tests can seed it.

use std::time::Duration;

use rand::Rng;

/// How the client reconnects after losing its connection.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ReconnectPolicy {
    /// Upper bound of the first delay.
    pub initial: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Growth of the upper bound per attempt (values below 1 count as 1).
    pub factor: f64,
    /// Attempts before giving up and closing the client; `None` retries
    /// forever, `Some(0)` never reconnects.
    pub max_attempts: Option<u32>,
}

impl ReconnectPolicy {
    /// A policy that never reconnects: a lost connection closes the client.
    pub fn disabled() -> ReconnectPolicy {
        ReconnectPolicy {
            max_attempts: Some(0),
            ..ReconnectPolicy::default()
        }
    }

    /// True when the policy allows at least one reconnect attempt.
    pub fn is_enabled(&self) -> bool {
        self.max_attempts != Some(0)
    }

    /// The upper bound of the delay before attempt `attempt` (from 0):
    /// `min(max, initial * factor^attempt)`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = if self.factor.is_finite() && self.factor >= 1.0 {
            self.factor
        } else {
            1.0
        };
        let max = self.max.as_secs_f64();
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let grown = self.initial.as_secs_f64() * factor.powi(exponent);
        // `grown` may be infinite for large attempts; `min` keeps it finite.
        Duration::from_secs_f64(grown.min(max).max(0.0))
    }

    /// The delay before attempt `attempt`, drawn with full jitter from
    /// `[0, ceiling(attempt)]`.
    pub fn delay(&self, attempt: u32, rng: &mut impl Rng) -> Duration {
        let ceiling = self.ceiling(attempt).as_secs_f64();
        if ceiling <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64(rng.random_range(0.0..=ceiling))
    }
}

impl Default for ReconnectPolicy {
    /// 100 ms growing twofold up to 5 s, retrying forever.
    fn default() -> ReconnectPolicy {
        ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
            max_attempts: None,
        }
    }
}

/// The attempt counter of one reconnection episode.
#[derive(Debug)]
pub(crate) struct Backoff {
    policy: ReconnectPolicy,
    attempt: u32,
}

impl Backoff {
    /// Starts an episode at attempt 0.
    pub(crate) fn new(policy: ReconnectPolicy) -> Backoff {
        Backoff { policy, attempt: 0 }
    }

    /// Attempts made so far in this episode.
    pub(crate) fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The delay before the next attempt, or `None` once `max_attempts`
    /// attempts were made.
    pub(crate) fn next_delay(&mut self, rng: &mut impl Rng) -> Option<Duration> {
        if self
            .policy
            .max_attempts
            .is_some_and(|max| self.attempt >= max)
        {
            return None;
        }
        let delay = self.policy.delay(self.attempt, rng);
        self.attempt = self.attempt.saturating_add(1);
        Some(delay)
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    use super::*;

    fn policy() -> ReconnectPolicy {
        ReconnectPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            factor: 2.0,
            max_attempts: None,
        }
    }

    #[test]
    fn ceiling_grows_then_caps() {
        let p = policy();
        let ms = |n| p.ceiling(n).as_millis();
        assert_eq!(ms(0), 100);
        assert_eq!(ms(1), 200);
        assert_eq!(ms(2), 400);
        assert_eq!(ms(5), 3200);
        assert_eq!(ms(6), 5000);
        assert_eq!(ms(1000), 5000);
        assert_eq!(ms(u32::MAX), 5000);
    }

    #[test]
    fn odd_factors_do_not_shrink_or_explode() {
        for factor in [0.5, 0.0, -3.0, f64::NAN, f64::INFINITY] {
            let p = ReconnectPolicy { factor, ..policy() };
            assert_eq!(p.ceiling(3), Duration::from_millis(100), "{factor}");
        }
    }

    #[test]
    fn full_jitter_stays_within_bounds_and_varies() {
        let p = policy();
        let mut rng = StdRng::seed_from_u64(7);
        for attempt in 0..12 {
            let mut seen = Vec::new();
            for _ in 0..200 {
                let d = p.delay(attempt, &mut rng);
                assert!(d <= p.ceiling(attempt), "attempt {attempt}: {d:?}");
                seen.push(d);
            }
            // Full jitter: draws spread over the interval, not one value.
            let low = seen.iter().filter(|d| **d < p.ceiling(attempt) / 2).count();
            assert!(low > 20 && low < 180, "attempt {attempt}: {low} low draws");
        }
    }

    #[test]
    fn same_seed_same_delays() {
        let p = policy();
        let draw = |seed| {
            let mut rng = StdRng::seed_from_u64(seed);
            (0..5).map(|n| p.delay(n, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(1), draw(1));
    }

    #[test]
    fn attempts_are_bounded_by_max_attempts() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut b = Backoff::new(ReconnectPolicy {
            max_attempts: Some(3),
            ..policy()
        });
        assert!(b.next_delay(&mut rng).is_some());
        assert!(b.next_delay(&mut rng).is_some());
        assert!(b.next_delay(&mut rng).is_some());
        assert_eq!(b.next_delay(&mut rng), None);
        assert_eq!(b.attempts(), 3);

        let mut never = Backoff::new(ReconnectPolicy::disabled());
        assert_eq!(never.next_delay(&mut rng), None);
        assert!(!ReconnectPolicy::disabled().is_enabled());
        assert!(ReconnectPolicy::default().is_enabled());
    }
}
