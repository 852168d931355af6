//! The expiry clock of a connection whose token has an `exp`: first the
//! `token_expiring` notice (`auth.expiry_notice` before `exp`), then the
//! close with `token_expired` (`auth.expiry_grace` after it). Allocated
//! only for tokens with an `exp` (boxed in the session), and replaced on
//! refresh.

use std::pin::Pin;
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

    /// Waits for the next step. Cancel-safe: the step advances only when
    /// it is returned.
    pub(crate) async fn next(&mut self) -> Expiry {
        self.sleep.as_mut().await;
        if self.noticed {
            return Expiry::Expired;
        }
        self.noticed = true;
        self.sleep.as_mut().reset(self.close_at);
        Expiry::Expiring(self.exp)
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
pub(crate) async fn next(clock: &mut Option<Box<ExpiryClock>>) -> Expiry {
    match clock {
        Some(clock) => clock.next().await,
        None => std::future::pending().await,
    }
}
