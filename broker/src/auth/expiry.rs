//! The expiry clock of a connection whose token has an `exp`: first the
//! `token_expiring` notice (`auth.expiry_notice` before `exp`), then the
//! close with `token_expired` (`auth.expiry_grace` after it). Allocated
//! only for tokens with an `exp` (boxed in the session), and replaced on
//! refresh.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, Sleep};

/// What the clock says when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// Send the `token_expiring` notice (the token's `exp`).
    Expiring(u64),
    /// Close the connection with `token_expired`.
    Expired,
}

/// One connection's expiry clock.
#[derive(Debug)]
pub(crate) struct ExpiryClock {
    sleep: Pin<Box<Sleep>>,
    exp: u64,
    close_at: Instant,
    noticed: bool,
}

/// The instant of Unix time `unix` (seconds) plus `offset_ms`.
fn instant_of(unix_ms: i128) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i128);
    let ahead = u64::try_from((unix_ms - now_ms).max(0)).unwrap_or(u64::MAX);
    Instant::now() + Duration::from_millis(ahead.min(u64::from(u32::MAX) * 1000))
}

impl ExpiryClock {
    /// A clock for a token expiring at `exp` (Unix seconds).
    pub(crate) fn new(exp: u64, notice: Duration, grace: Duration) -> Box<ExpiryClock> {
        let exp_ms = i128::from(exp) * 1000;
        let notice_at = instant_of(exp_ms - notice.as_millis() as i128);
        let close_at = instant_of(exp_ms + grace.as_millis() as i128);
        Box::new(ExpiryClock {
            sleep: Box::pin(tokio::time::sleep_until(notice_at)),
            exp,
            close_at,
            noticed: false,
        })
    }

    /// Whether the next step is due (its `next` would return at once).
    pub(crate) fn is_due(&self) -> bool {
        self.sleep.is_elapsed()
    }

    /// Polls for the next step; the step advances only when it is
    /// returned (so a dropped wait loses nothing).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Expiry> {
        if self.sleep.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        if self.noticed {
            return Poll::Ready(Expiry::Expired);
        }
        self.noticed = true;
        self.sleep.as_mut().reset(self.close_at);
        Poll::Ready(Expiry::Expiring(self.exp))
    }
}

/// The wait for a clock's next step: one pointer (it lives in every
/// session's read loop), pending forever when there is no clock.
pub(crate) struct NextExpiry<'a>(&'a mut Option<Box<ExpiryClock>>);

impl Future for NextExpiry<'_> {
    type Output = Expiry;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Expiry> {
        match self.0.as_deref_mut() {
            Some(clock) => clock.poll_next(cx),
            None => Poll::Pending,
        }
    }
}

/// A clock for `exp`, if the token has one.
pub(crate) fn clock_for(
    exp: Option<u64>,
    notice: Duration,
    grace: Duration,
) -> Option<Box<ExpiryClock>> {
    exp.map(|exp| ExpiryClock::new(exp, notice, grace))
}

/// Waits for the next step of `clock`, forever when there is none.
pub(crate) fn next(clock: &mut Option<Box<ExpiryClock>>) -> NextExpiry<'_> {
    NextExpiry(clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unix_ms() -> u128 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis())
    }

    #[tokio::test]
    async fn the_notice_comes_before_exp_and_the_close_at_exp_plus_grace() {
        let exp = u64::try_from(unix_ms() / 1000).unwrap_or_default() + 1;
        let mut clock = clock_for(
            Some(exp),
            Duration::from_secs(30),
            Duration::from_millis(100),
        );
        // exp is less than 30 s away: the notice comes at once.
        assert_eq!(next(&mut clock).await, Expiry::Expiring(exp));
        assert!(unix_ms() < u128::from(exp) * 1000);
        assert_eq!(next(&mut clock).await, Expiry::Expired);
        assert!(unix_ms() >= u128::from(exp) * 1000 + 100);
    }

    #[tokio::test]
    async fn a_past_exp_closes_at_once_and_no_exp_never_fires() {
        let mut clock = clock_for(Some(1), Duration::from_secs(30), Duration::ZERO);
        assert_eq!(next(&mut clock).await, Expiry::Expiring(1));
        assert_eq!(next(&mut clock).await, Expiry::Expired);
        let mut none = clock_for(None, Duration::from_secs(30), Duration::ZERO);
        let waited = tokio::time::timeout(Duration::from_millis(50), next(&mut none)).await;
        assert!(waited.is_err());
    }
}
