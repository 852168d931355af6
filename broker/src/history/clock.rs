//! The clock a log's ttls and message-id windows are measured with:
//! milliseconds of the kernel's coarse monotonic clock, which is read
//! without asking the hardware (it ticks every few milliseconds: ample for
//! ttls and windows of seconds, and cheap enough to read on every append).

/// Milliseconds since some fixed point, never going back.
#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
pub(crate) fn now_ms() -> u64 {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::MonotonicCoarse);
    let seconds = u64::try_from(now.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(now.tv_nsec).unwrap_or(0);
    seconds * 1000 + nanos / 1_000_000
}

/// Milliseconds since the first call, never going back.
#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
pub(crate) fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = START.get_or_init(std::time::Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}

/// `duration` in the clock's milliseconds.
pub(crate) fn ms(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_clock_does_not_go_back_and_follows_real_time() {
        let start = super::now_ms();
        let real = std::time::Instant::now();
        let mut last = start;
        // Bounded: the coarse clock ticks every few milliseconds.
        while real.elapsed() < std::time::Duration::from_millis(30) {
            let now = super::now_ms();
            assert!(now >= last);
            last = now;
        }
        assert!(last - start >= 10, "{start} .. {last}");
    }
}
