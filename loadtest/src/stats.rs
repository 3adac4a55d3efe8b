//! Histograms and summaries: latency and connect-time distributions, and
//! the spread of per-client message counts.
//!
//! Invariant: every latency histogram is created by [`latency_histogram`]
//! (nanoseconds, 1 ns..=60 s, 3 significant digits), so any two can be
//! merged without resizing; values out of range saturate rather than fail.

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track without saturating, in ns (60 s).
pub const MAX_TRACKED_NS: u64 = 60_000_000_000;

/// Creates an empty latency (or connect-time) histogram in nanoseconds.
pub fn latency_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1,
    // high >= 2 * low, sigfig <= 5), so construction cannot fail.
    Histogram::new_with_bounds(1, MAX_TRACKED_NS, 3).expect("constant histogram bounds are valid")
}

/// Adds every sample of `src` into `dst`.
///
/// # Errors
/// Fails only if the histograms were not both made by
/// [`latency_histogram`] and a value does not fit.
pub fn merge(dst: &mut Histogram<u64>, src: &Histogram<u64>) -> anyhow::Result<()> {
    dst.add(src)
        .map_err(|e| anyhow::anyhow!("merging histograms: {e:?}"))
}

/// Percentiles of a nanosecond histogram, reported in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample, µs.
    pub min_us: f64,
    /// Mean, µs.
    pub mean_us: f64,
    /// Median, µs.
    pub p50_us: f64,
    /// 90th percentile, µs.
    pub p90_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p99_9_us: f64,
    /// 99.99th percentile, µs.
    pub p99_99_us: f64,
    /// Largest sample, µs.
    pub max_us: f64,
}

impl Percentiles {
    /// Summarizes a nanosecond histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Percentiles::default();
        }
        let us = |ns: u64| ns as f64 / 1_000.0;
        Percentiles {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1_000.0,
            p50_us: us(h.value_at_quantile(0.50)),
            p90_us: us(h.value_at_quantile(0.90)),
            p99_us: us(h.value_at_quantile(0.99)),
            p99_9_us: us(h.value_at_quantile(0.999)),
            p99_99_us: us(h.value_at_quantile(0.9999)),
            max_us: us(h.max()),
        }
    }
}

/// The spread of a per-client figure (e.g. ticks received). A fair fan-out
/// has a narrow one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Spread {
    /// Number of clients summarized.
    pub clients: u64,
    /// Smallest value.
    pub min: u64,
    /// 1st percentile (nearest rank).
    pub p1: u64,
    /// Median (nearest rank).
    pub median: u64,
    /// 99th percentile (nearest rank).
    pub p99: u64,
    /// Largest value.
    pub max: u64,
    /// Sum over all clients.
    pub sum: u64,
}

impl Spread {
    /// Summarizes `values` (sorted in place).
    pub fn of(values: &mut [u64]) -> Self {
        if values.is_empty() {
            return Spread::default();
        }
        values.sort_unstable();
        let n = values.len();
        let rank = |q: f64| values[(((n as f64) * q).ceil() as usize).clamp(1, n) - 1];
        Spread {
            clients: n as u64,
            min: values[0],
            p1: rank(0.01),
            median: rank(0.5),
            p99: rank(0.99),
            max: values[n - 1],
            sum: values.iter().sum(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_histogram_holds_samples_of_both() {
        let mut a = latency_histogram();
        let mut b = latency_histogram();
        for v in 1..=1000u64 {
            a.saturating_record(v * 1_000);
        }
        for _ in 0..10 {
            b.saturating_record(50_000_000);
        }
        merge(&mut a, &b).expect("same bounds merge");
        assert_eq!(a.len(), 1010);
        assert!(a.max() >= 49_900_000);
        let p = Percentiles::of(&a);
        assert!((p.p50_us - 505.0).abs() < 2.0, "p50 {}", p.p50_us);
        assert!(p.p99_9_us > 40_000.0);
    }

    #[test]
    fn merging_empty_histograms_stays_empty() {
        let mut a = latency_histogram();
        merge(&mut a, &latency_histogram()).expect("merge");
        assert_eq!(Percentiles::of(&a), Percentiles::default());
    }

    #[test]
    fn out_of_range_latency_saturates() {
        let mut a = latency_histogram();
        a.saturating_record(u64::MAX);
        assert_eq!(a.len(), 1);
        assert!(a.max() >= MAX_TRACKED_NS - MAX_TRACKED_NS / 1000);
    }

    #[test]
    fn spread_reports_nearest_rank_percentiles() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        let s = Spread::of(&mut v);
        assert_eq!(
            (s.min, s.p1, s.median, s.p99, s.max, s.sum),
            (1, 1, 50, 99, 100, 5050)
        );
        assert_eq!(Spread::of(&mut []), Spread::default());
    }
}
