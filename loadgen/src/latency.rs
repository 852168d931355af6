//! End-to-end latency histogram (HdrHistogram, microseconds).

use std::time::Duration;

use hdrhistogram::Histogram;

/// The largest latency recorded as itself; longer ones count as this.
pub const MAX_TRACKED: Duration = Duration::from_secs(60);

/// Latencies in microseconds from 1 µs to one minute, 3 significant digits.
#[derive(Debug, Clone)]
pub struct LatencyHistogram {
    histogram: Histogram<u64>,
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        LatencyHistogram::new()
    }
}

impl LatencyHistogram {
    /// An empty histogram.
    pub fn new() -> LatencyHistogram {
        let max_us = u64::try_from(MAX_TRACKED.as_micros()).unwrap_or(u64::MAX);
        let histogram = match Histogram::new_with_bounds(1, max_us, 3) {
            Ok(histogram) => histogram,
            // The bounds are constants that HdrHistogram accepts.
            Err(error) => unreachable!("invalid histogram bounds: {error}"),
        };
        LatencyHistogram { histogram }
    }

    /// Records one latency (clamped to 1 µs ..= [`MAX_TRACKED`]).
    pub fn record(&mut self, latency: Duration) {
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        self.histogram.saturating_record(us.max(1));
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        // Both histograms have the same bounds, so adding cannot fail; a
        // failure would only lose latency samples, never counts.
        let _ = self.histogram.add(&other.histogram);
    }

    /// Values recorded.
    pub fn count(&self) -> u64 {
        self.histogram.len()
    }

    /// The latency at `quantile` (0.0 ..= 1.0) in microseconds, if any
    /// value was recorded.
    pub fn quantile_us(&self, quantile: f64) -> Option<u64> {
        (self.count() > 0).then(|| self.histogram.value_at_quantile(quantile))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_histogram_has_no_percentiles() {
        assert_eq!(LatencyHistogram::new().quantile_us(0.5), None);
    }

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut histogram = LatencyHistogram::new();
        for us in 1..=1000u64 {
            histogram.record(Duration::from_micros(us));
        }
        assert_eq!(histogram.count(), 1000);
        assert_eq!(histogram.quantile_us(0.5), Some(500));
        assert_eq!(histogram.quantile_us(0.99), Some(990));
        assert_eq!(histogram.quantile_us(0.999), Some(999));
    }

    #[test]
    fn merging_adds_counts_and_extremes_are_clamped() {
        let mut a = LatencyHistogram::new();
        a.record(Duration::ZERO);
        let mut b = LatencyHistogram::new();
        b.record(Duration::from_secs(3600));
        a.merge(&b);
        assert_eq!(a.count(), 2);
        assert_eq!(a.quantile_us(0.0), Some(1), "zero is recorded as 1 µs");
        let max = a.quantile_us(1.0).expect("two values");
        let limit = MAX_TRACKED.as_micros() as u64;
        assert!(
            max >= limit && max <= limit + limit / 500,
            "an hour is clamped to about one minute, got {max} µs"
        );
    }
}
