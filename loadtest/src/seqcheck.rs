//! Per-connection, per-symbol sequence checking.
//!
//! PROTOCOL.md promises, per connection and symbol: the `snapshot` carries
//! the `seq` of the last tick before it, and the ticks that follow carry
//! exactly `seq+1`, `seq+2`, … So a `snapshot` sets the baseline and every
//! later `tick` must be the baseline + 1.
//!
//! Invariant: the baseline only moves forward. A gap moves it to the new
//! `seq` (so one lost run of ticks counts as one gap event); a duplicate or
//! an older `seq` leaves it where it is. A symbol with no last value gets no
//! snapshot, so its first tick sets the baseline and counts as
//! `unbaselined`, not as an error.

use serde::Serialize;

/// Sentinel for "no baseline yet".
const NONE: u64 = u64::MAX;

/// Counts of sequence anomalies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SeqCounts {
    /// Ticks with exactly baseline + 1.
    pub in_order: u64,
    /// Events where `seq` jumped past baseline + 1.
    pub gaps: u64,
    /// Ticks skipped over by those gaps, in total.
    pub missing: u64,
    /// Ticks whose `seq` equals the baseline (seen twice).
    pub duplicates: u64,
    /// Ticks whose `seq` is below the baseline (arrived out of order).
    pub reorders: u64,
    /// First ticks of a symbol with no snapshot before them.
    pub unbaselined: u64,
    /// Snapshots that moved an existing baseline (a re-subscribe).
    pub rebaselined: u64,
}

impl SeqCounts {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &SeqCounts) {
        self.in_order += other.in_order;
        self.gaps += other.gaps;
        self.missing += other.missing;
        self.duplicates += other.duplicates;
        self.reorders += other.reorders;
        self.unbaselined += other.unbaselined;
        self.rebaselined += other.rebaselined;
    }

    /// Returns true if and only if no gap, duplicate or reordering was seen.
    pub fn is_clean(&self) -> bool {
        self.gaps == 0 && self.duplicates == 0 && self.reorders == 0
    }
}

/// The sequence state of one connection. Symbols are small integer ids
/// interned per client thread, so a lookup is an index, not a hash.
#[derive(Debug, Clone, Default)]
pub struct SeqTracker {
    last: Vec<u64>,
    /// Anomaly counts so far.
    pub counts: SeqCounts,
}

/// What a tick did to the sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TickOutcome {
    /// Exactly baseline + 1 (or the first tick of an unbaselined symbol).
    InOrder,
    /// Skipped this many ticks.
    Gap(u64),
    /// Same `seq` as the baseline.
    Duplicate,
    /// Older than the baseline.
    Reorder,
}

/// `u64` baselines per 64-byte cache line.
const PER_LINE: usize = 8;

impl SeqTracker {
    /// Loads one baseline from every cache line of the state, all at once,
    /// before a read's ticks are checked. With a thousand connections the
    /// state of the next one is rarely in cache; the checks would find
    /// that out one miss at a time, each waiting for the ticks before it
    /// to be parsed, while these loads are independent and overlap.
    #[inline]
    pub fn warm(&self) {
        let folded = self
            .last
            .iter()
            .step_by(PER_LINE)
            .fold(0u64, |acc, &v| acc ^ v);
        std::hint::black_box(folded);
    }

    #[inline(always)]
    fn slot(&mut self, symbol: u32) -> &mut u64 {
        let i = symbol as usize;
        if i >= self.last.len() {
            self.grow(i);
        }
        &mut self.last[i]
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, i: usize) {
        self.last.resize(i + 1, NONE);
    }

    /// Records a snapshot of `symbol` at `seq`.
    pub fn snapshot(&mut self, symbol: u32, seq: u64) {
        let slot = self.slot(symbol);
        let moved = *slot != NONE && *slot != seq;
        *slot = seq;
        if moved {
            self.counts.rebaselined += 1;
        }
    }

    /// Records a tick of `symbol` at `seq`.
    #[inline]
    pub fn tick(&mut self, symbol: u32, seq: u64) -> TickOutcome {
        // Nearly every tick: exactly the baseline + 1.
        if let Some(slot) = self.last.get_mut(symbol as usize)
            && *slot != NONE
            && seq == slot.wrapping_add(1)
        {
            *slot = seq;
            self.counts.in_order += 1;
            return TickOutcome::InOrder;
        }
        self.tick_other(symbol, seq)
    }

    /// [`SeqTracker::tick`] for everything but an in-order tick of a known
    /// symbol.
    #[cold]
    #[inline(never)]
    fn tick_other(&mut self, symbol: u32, seq: u64) -> TickOutcome {
        let slot = self.slot(symbol);
        let last = *slot;
        let outcome = if last == NONE {
            *slot = seq;
            self.counts.unbaselined += 1;
            return TickOutcome::InOrder;
        } else if seq == last.wrapping_add(1) {
            *slot = seq;
            TickOutcome::InOrder
        } else if seq > last {
            *slot = seq;
            TickOutcome::Gap(seq - last - 1)
        } else if seq == last {
            TickOutcome::Duplicate
        } else {
            TickOutcome::Reorder
        };
        match outcome {
            TickOutcome::InOrder => self.counts.in_order += 1,
            TickOutcome::Gap(n) => {
                self.counts.gaps += 1;
                self.counts.missing += n;
            }
            TickOutcome::Duplicate => self.counts.duplicates += 1,
            TickOutcome::Reorder => self.counts.reorders += 1,
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_after_snapshot_in_order_are_clean() {
        let mut t = SeqTracker::default();
        t.snapshot(0, 41);
        assert_eq!(t.tick(0, 42), TickOutcome::InOrder);
        assert_eq!(t.tick(0, 43), TickOutcome::InOrder);
        assert!(t.counts.is_clean());
        assert_eq!(t.counts.in_order, 2);
    }

    #[test]
    fn snapshot_sets_baseline_so_first_tick_must_follow_it() {
        let mut t = SeqTracker::default();
        t.snapshot(3, 10);
        assert_eq!(t.tick(3, 12), TickOutcome::Gap(1));
        assert_eq!(t.counts.gaps, 1);
        assert_eq!(t.counts.missing, 1);
    }

    #[test]
    fn gap_counts_one_event_and_moves_baseline() {
        let mut t = SeqTracker::default();
        t.snapshot(0, 1);
        t.tick(0, 2);
        assert_eq!(t.tick(0, 6), TickOutcome::Gap(3));
        assert_eq!(t.tick(0, 7), TickOutcome::InOrder);
        assert_eq!((t.counts.gaps, t.counts.missing), (1, 3));
    }

    #[test]
    fn repeated_seq_is_a_duplicate() {
        let mut t = SeqTracker::default();
        t.snapshot(0, 5);
        t.tick(0, 6);
        assert_eq!(t.tick(0, 6), TickOutcome::Duplicate);
        assert_eq!(t.counts.duplicates, 1);
        assert!(!t.counts.is_clean());
    }

    #[test]
    fn older_seq_is_a_reorder_and_does_not_move_baseline() {
        let mut t = SeqTracker::default();
        t.snapshot(0, 5);
        t.tick(0, 6);
        t.tick(0, 7);
        assert_eq!(t.tick(0, 6), TickOutcome::Reorder);
        assert_eq!(t.tick(0, 8), TickOutcome::InOrder);
        assert_eq!(t.counts.reorders, 1);
    }

    #[test]
    fn symbols_are_tracked_independently() {
        let mut t = SeqTracker::default();
        t.snapshot(0, 100);
        t.snapshot(1, 7);
        assert_eq!(t.tick(1, 8), TickOutcome::InOrder);
        assert_eq!(t.tick(0, 101), TickOutcome::InOrder);
        assert!(t.counts.is_clean());
    }

    #[test]
    fn first_tick_without_snapshot_sets_baseline() {
        let mut t = SeqTracker::default();
        assert_eq!(t.tick(2, 50), TickOutcome::InOrder);
        assert_eq!(t.tick(2, 51), TickOutcome::InOrder);
        assert_eq!(t.counts.unbaselined, 1);
        assert!(t.counts.is_clean());
    }

    #[test]
    fn warming_changes_nothing() {
        let mut t = SeqTracker::default();
        t.warm();
        for sym in 0..20 {
            t.snapshot(sym, 10);
        }
        t.warm();
        assert_eq!(t.tick(3, 11), TickOutcome::InOrder);
        assert_eq!(t.tick(19, 12), TickOutcome::Gap(1));
        t.warm();
        assert_eq!(t.tick(3, 12), TickOutcome::InOrder);
        assert_eq!((t.counts.in_order, t.counts.gaps), (2, 1));
    }

    #[test]
    fn counts_add_up() {
        let mut a = SeqCounts {
            gaps: 1,
            missing: 2,
            ..Default::default()
        };
        let b = SeqCounts {
            gaps: 2,
            duplicates: 1,
            ..Default::default()
        };
        a.add(&b);
        assert_eq!((a.gaps, a.missing, a.duplicates), (3, 2, 1));
    }
}
