//! Per-tick latency recording at a few instructions a tick, exact.
//!
//! Every tick's latency goes into a histogram (`stats::latency_histogram`:
//! 1 ns..=60 s, 3 significant digits). `Histogram::saturating_record` costs
//! a call, a range check, a saturating add, the min/max update and the total
//! per value: at 10 M ticks/s that was ~8 % of the client thread. A
//! [`LatencyCounts`] instead adds 1 to a plain `u64` per bucket, using the
//! same bucket layout as the histogram, and hands the counts over with one
//! `record_n` per non-empty bucket when flushed (once a second, and at the
//! end).
//!
//! Invariant: after [`LatencyCounts::flush_into`], the histogram is equal
//! (`PartialEq`: every bucket count, the total, `min_nz()` and `max()`) to
//! one that had each value recorded with `saturating_record`. A histogram
//! only keeps counts per bucket; its min and max are reported rounded to
//! their bucket (`lowest_equivalent` / `highest_equivalent`), so recording
//! a bucket's lowest value `n` times is indistinguishable from recording
//! the `n` values that fell in it. The bucket layout is hdrhistogram's
//! (bucket = powers of two above the first `SUB_BUCKETS` values, `HALF`
//! sub-buckets each), derived here from the same bounds; the tests compare
//! it with the crate's own `lowest_equivalent` and with whole histograms.

use hdrhistogram::Histogram;

use crate::stats::{MAX_TRACKED_NS, latency_histogram};

/// Significant digits of [`latency_histogram`]: 3 means single-unit
/// resolution up to 2 × 10³, so 2048 sub-buckets (the next power of two).
const SUB_BUCKET_MAGNITUDE: u32 = 11;
/// Values below this all have their own bucket (bucket 0).
const SUB_BUCKETS: u64 = 1 << SUB_BUCKET_MAGNITUDE;
/// Sub-buckets used in every bucket after the first (its upper half).
const HALF_MAGNITUDE: u32 = SUB_BUCKET_MAGNITUDE - 1;
const HALF: u64 = 1 << HALF_MAGNITUDE;
/// `64 - log2(SUB_BUCKETS)`: `leading_zeros(v | (SUB_BUCKETS - 1))`
/// subtracted from it is the bucket of `v` (0 for the smallest values).
const LEADING_ZERO_BASE: u32 = 64 - SUB_BUCKET_MAGNITUDE;

/// Index into the counts array of the bucket holding `v` (hdrhistogram's
/// `index_for` for lowest value 1, i.e. unit magnitude 0).
#[inline(always)]
fn index_of(v: u64) -> usize {
    let bucket = LEADING_ZERO_BASE - (v | (SUB_BUCKETS - 1)).leading_zeros();
    let sub = v >> bucket;
    // ((bucket + 1) << HALF_MAGNITUDE) + sub - HALF, without going below 0
    // for bucket 0 (sub < HALF there).
    ((u64::from(bucket) << HALF_MAGNITUDE) + sub) as usize
}

/// The lowest value of the bucket at `index` (inverse of [`index_of`]).
fn lowest_of(index: usize) -> u64 {
    let i = index as u64;
    let bucket = (i >> HALF_MAGNITUDE).saturating_sub(1);
    let sub = if i < SUB_BUCKETS {
        i
    } else {
        (i & (HALF - 1)) + HALF
    };
    sub << bucket
}

/// Latency counts per histogram bucket, for one histogram (see the module
/// docs).
#[derive(Debug, Clone)]
pub struct LatencyCounts {
    /// One count per bucket of [`latency_histogram`]; allocated zeroed, so
    /// pages no latency touches cost no memory.
    counts: Vec<u64>,
    /// Where values past the histogram's range go (the bucket of
    /// [`MAX_TRACKED_NS`], as `saturating_record` clamps them).
    clamp_index: usize,
}

impl Default for LatencyCounts {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyCounts {
    /// Empty counts laid out like [`latency_histogram`].
    pub fn new() -> Self {
        let len = latency_histogram().distinct_values();
        LatencyCounts {
            counts: vec![0; len],
            clamp_index: index_of(MAX_TRACKED_NS).min(len - 1),
        }
    }

    /// Counts one latency of `ns` (0 counts as 1 ns, the histogram's
    /// lowest value; beyond its range, as its highest).
    #[inline(always)]
    pub fn record(&mut self, ns: u64) {
        let mut i = index_of(ns.max(1));
        if i >= self.counts.len() {
            i = self.clamp_index;
        }
        self.counts[i] += 1;
    }

    /// Returns true if and only if nothing was recorded since the last
    /// flush (a scan of every bucket).
    pub fn is_empty(&self) -> bool {
        self.counts.iter().all(|&c| c == 0)
    }

    /// Adds every count into `h` (a [`latency_histogram`]) and clears them.
    /// Scans the whole array (~26,000 buckets, a few µs; once a second).
    pub fn flush_into(&mut self, h: &mut Histogram<u64>) {
        for (i, c) in self.counts.iter_mut().enumerate() {
            if *c > 0 {
                h.saturating_record_n(lowest_of(i), std::mem::take(c));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values at and around every bucket boundary, plus the range ends.
    fn telling_values() -> Vec<u64> {
        let mut v = vec![0, 1, 2, 1023, 1024, 1025, 2047, 2048, 2049, 4095, 4096];
        for shift in 11..63 {
            let b = 1u64 << shift;
            v.extend([b - 1, b, b + 1, b + (b >> 1), b + (b >> 1) + 1]);
        }
        v.extend([
            MAX_TRACKED_NS - 1,
            MAX_TRACKED_NS,
            MAX_TRACKED_NS + 1,
            MAX_TRACKED_NS * 2,
            u64::MAX - 1,
            u64::MAX,
        ]);
        v
    }

    #[test]
    fn buckets_are_the_histograms() {
        let h = latency_histogram();
        for v in telling_values() {
            let v = v.max(1);
            let i = index_of(v);
            if i >= h.distinct_values() {
                continue;
            }
            assert_eq!(lowest_of(i), h.lowest_equivalent(v), "v={v} i={i}");
            assert_eq!(index_of(lowest_of(i)), i, "v={v}");
        }
        // Every index maps to a value that maps back to it.
        for i in 0..h.distinct_values() {
            assert_eq!(index_of(lowest_of(i)), i, "i={i}");
        }
        assert_eq!(
            index_of(MAX_TRACKED_NS),
            index_of(h.lowest_equivalent(MAX_TRACKED_NS))
        );
    }

    #[test]
    fn flushed_counts_equal_per_value_records() {
        let mut values = telling_values();
        // Plus a spread of pseudo-random latencies, many in shared buckets.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            values.push(x >> (x % 64));
            values.push(1_000_000 + x % 50_000);
        }
        let mut direct = latency_histogram();
        let mut counts = LatencyCounts::new();
        let mut flushed = latency_histogram();
        for (k, &v) in values.iter().enumerate() {
            direct.saturating_record(v.max(1));
            counts.record(v);
            // Flush now and then, as the engine does once a second.
            if k % 7_919 == 0 {
                counts.flush_into(&mut flushed);
                assert!(counts.is_empty());
            }
        }
        counts.flush_into(&mut flushed);
        assert_eq!(flushed.len(), values.len() as u64);
        assert_eq!(flushed.max(), direct.max());
        assert_eq!(flushed.min_nz(), direct.min_nz());
        assert_eq!(flushed.mean(), direct.mean());
        assert_eq!(
            flushed.value_at_quantile(0.99),
            direct.value_at_quantile(0.99)
        );
        assert!(flushed == direct, "histograms differ");
    }

    #[test]
    fn a_flush_of_nothing_changes_nothing() {
        let mut counts = LatencyCounts::new();
        let mut h = latency_histogram();
        counts.flush_into(&mut h);
        assert!(h.is_empty());
        counts.record(5);
        counts.flush_into(&mut h);
        counts.flush_into(&mut h);
        assert_eq!(h.len(), 1);
        assert_eq!(h.count_at(5), 1);
    }
}
