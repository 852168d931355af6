//! The per-connection message rate (`rate_limits.messages_per_second`,
//! `message_burst`, `max_rate_limited_messages`): a token bucket a session
//! keeps and updates by timestamp on each client message (no timer), and
//! the count of over-rate messages since the bucket was last full, which
//! closes the connection at `max_rate_limited_messages`.

use herald_config::RateLimitSettings;
use tokio::time::Instant;

use super::token_bucket::{Rate, TokenBucket};

/// The configured message rate (when the limit is on).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageRate {
    rate: Rate,
    per_second: usize,
    /// Over-rate messages that close the connection; 0 = never.
    close_after: u32,
}

/// What to do with one client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Handle it.
    Allowed,
    /// Over the rate: answer `rate_limited`, do not handle it.
    Limited,
    /// Over the rate once too often: answer, then close `rate_limited`.
    Close,
}

/// One connection's bucket and its over-rate count.
#[derive(Debug)]
pub(crate) struct MessageLimiter {
    bucket: TokenBucket,
    over: u32,
}

impl MessageRate {
    /// The message rate of `settings`; `None` when off.
    pub(crate) fn new(settings: &RateLimitSettings) -> Option<MessageRate> {
        Some(MessageRate {
            rate: Rate::new(settings.messages_per_second, settings.message_burst)?,
            per_second: settings.messages_per_second,
            close_after: u32::try_from(settings.max_rate_limited_messages).unwrap_or(u32::MAX),
        })
    }

    /// A new connection's limiter: a full bucket.
    pub(crate) fn limiter(&self) -> MessageLimiter {
        MessageLimiter {
            bucket: TokenBucket::full(self.rate, Instant::now()),
            over: 0,
        }
    }

    /// The verdict on one more message of the connection `limiter` is.
    pub(crate) fn check(&self, limiter: &mut MessageLimiter) -> Verdict {
        let now = Instant::now();
        if limiter.over > 0 && limiter.bucket.is_full(self.rate, now) {
            limiter.over = 0;
        }
        if limiter.bucket.take(self.rate, now) {
            return Verdict::Allowed;
        }
        limiter.over = limiter.over.saturating_add(1);
        if self.close_after > 0 && limiter.over >= self.close_after {
            Verdict::Close
        } else {
            Verdict::Limited
        }
    }

    /// The text of the `rate_limited` answer.
    pub(crate) fn refusal(&self, verdict: Verdict) -> String {
        let mut text = format!(
            "message not handled: this connection is over its rate of {} messages per second \
             (rate_limits.messages_per_second, burst rate_limits.message_burst = {})",
            self.per_second,
            self.rate.burst()
        );
        if verdict == Verdict::Close {
            text.push_str("; closing it (rate_limits.max_rate_limited_messages)");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn rate(per_second: usize, burst: usize, close_after: usize) -> MessageRate {
        MessageRate::new(&RateLimitSettings {
            connections_per_ip_per_second: 0,
            connection_burst: 1,
            max_connections_per_ip: 0,
            max_tracked_ips: 1,
            messages_per_second: per_second,
            message_burst: burst,
            max_rate_limited_messages: close_after,
        })
        .expect("on")
    }

    #[tokio::test(start_paused = true)]
    async fn over_rate_messages_are_limited_then_close() {
        let rate = rate(10, 2, 3);
        let mut limiter = rate.limiter();
        assert_eq!(rate.check(&mut limiter), Verdict::Allowed);
        assert_eq!(rate.check(&mut limiter), Verdict::Allowed);
        assert_eq!(rate.check(&mut limiter), Verdict::Limited);
        assert_eq!(rate.check(&mut limiter), Verdict::Limited);
        // A token earned in between does not forgive: the bucket was not
        // full again.
        tokio::time::advance(Duration::from_millis(100)).await;
        assert_eq!(rate.check(&mut limiter), Verdict::Allowed);
        assert_eq!(rate.check(&mut limiter), Verdict::Close);
        assert!(
            rate.refusal(Verdict::Close)
                .contains("max_rate_limited_messages")
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_starts_the_count_again() {
        let rate = rate(10, 2, 2);
        let mut limiter = rate.limiter();
        for _ in 0..2 {
            assert_eq!(rate.check(&mut limiter), Verdict::Allowed);
        }
        assert_eq!(rate.check(&mut limiter), Verdict::Limited);
        tokio::time::advance(Duration::from_millis(200)).await;
        for _ in 0..2 {
            assert_eq!(rate.check(&mut limiter), Verdict::Allowed);
        }
        assert_eq!(
            rate.check(&mut limiter),
            Verdict::Limited,
            "count restarted"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn zero_never_closes() {
        let rate = rate(1, 1, 0);
        let mut limiter = rate.limiter();
        assert_eq!(rate.check(&mut limiter), Verdict::Allowed);
        for _ in 0..1000 {
            assert_eq!(rate.check(&mut limiter), Verdict::Limited);
        }
    }
}
