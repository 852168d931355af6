//! The send-time stamp every payload carries in its first 8 bytes.
//!
//! Publishers and subscribers of one run live in the same process, so the
//! stamp is nanoseconds since an [`Instant`] shared by both (monotonic, no
//! wall-clock steps), written big-endian.

use std::time::{Duration, Instant};

/// The shared time origin of one run.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    origin: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}

impl Clock {
    /// A clock whose origin is now.
    pub fn new() -> Clock {
        Clock {
            origin: Instant::now(),
        }
    }

    /// Nanoseconds since the origin.
    pub fn now_ns(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Writes the current time into the first 8 bytes of `payload` (which
    /// must have at least 8).
    pub fn stamp(&self, payload: &mut [u8]) {
        write_stamp(payload, self.now_ns());
    }

    /// How long ago the stamp in `payload` was written, if it has one.
    pub fn age(&self, payload: &[u8]) -> Option<Duration> {
        let sent = read_stamp(payload)?;
        Some(Duration::from_nanos(self.now_ns().saturating_sub(sent)))
    }
}

/// Writes `ns` big-endian into the first 8 bytes of `payload`; does nothing
/// to a shorter payload.
pub fn write_stamp(payload: &mut [u8], ns: u64) {
    if let Some(head) = payload.get_mut(..8) {
        head.copy_from_slice(&ns.to_be_bytes());
    }
}

/// The stamp in the first 8 bytes of `payload`, if it has 8 bytes.
pub fn read_stamp(payload: &[u8]) -> Option<u64> {
    let head: [u8; 8] = payload.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// A payload of `len` bytes: a zero stamp, then a repeating filler pattern.
pub fn payload_template(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| if i < 8 { 0 } else { b'a' + (i % 26) as u8 })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip() {
        let mut payload = payload_template(128);
        write_stamp(&mut payload, 0x0102_0304_0506_0708);
        assert_eq!(&payload[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(read_stamp(&payload), Some(0x0102_0304_0506_0708));
        assert_eq!(payload.len(), 128);
        assert_eq!(payload[8], b'a' + 8);
    }

    #[test]
    fn short_payloads_have_no_stamp() {
        assert_eq!(read_stamp(&[1, 2, 3]), None);
        let mut short = [9u8; 4];
        write_stamp(&mut short, 5);
        assert_eq!(short, [9u8; 4], "a short payload is left alone");
    }

    #[test]
    fn age_is_measured_from_the_stamp() {
        let clock = Clock::new();
        let mut payload = payload_template(16);
        clock.stamp(&mut payload);
        let age = clock.age(&payload).expect("the payload has a stamp");
        assert!(age < Duration::from_secs(60));
        // A stamp from the future (another clock) never underflows.
        write_stamp(&mut payload, u64::MAX);
        assert_eq!(clock.age(&payload), Some(Duration::ZERO));
    }
}
