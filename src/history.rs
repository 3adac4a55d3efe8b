//! [`History`]: the last `history_depth` tick frames of every symbol, the
//! source of `resume` replays and of the `history` op.
//!
//! Each shard keeps its own, next to its last-value cache, and fills it in
//! the same step as its fan-out (`Shard::fan_out`). So the history a shard
//! replays from ends exactly at the tick before the next one its inbox will
//! deliver: replay-then-contiguous is exact by construction, as
//! snapshot-then-contiguous is, with no lock on the tick path.
//!
//! Memory: the publisher sends one `Frame` (an `Arc<[u8]>`) to every
//! shard, so the tick bytes (~150-200 bytes of JSON and header, plus the
//! allocation's 16-byte `Arc` counts) are held once, whatever the number of
//! shards; each shard adds a 16-byte pointer per tick held. At most
//! `symbols x depth x (frame + 16 x shards)` bytes: 1,000 symbols at the
//! default depth of 256 on 2 shards is at most ~60 MB, and a symbol that
//! ticked fewer than `depth` times holds only its ticks (the ring's room is
//! taken at its first tick: `depth x 16` bytes per shard).

use std::collections::VecDeque;

use crate::Frame;
use crate::symbols::SymId;

/// One symbol's ring: `frames` hold seqs `newest + 1 - len ..= newest`.
#[derive(Debug, Default)]
struct Ring {
    newest: u64,
    frames: VecDeque<Frame>,
}

/// The last `depth` ticks of every symbol (shard-local).
#[derive(Debug)]
pub(crate) struct History {
    depth: usize,
    rings: Vec<Ring>,
}

impl History {
    /// An empty history keeping `depth` ticks per symbol (0: none).
    pub(crate) fn new(depth: usize) -> History {
        History {
            depth,
            rings: Vec::new(),
        }
    }

    /// The most ticks kept per symbol.
    pub(crate) fn depth(&self) -> usize {
        self.depth
    }

    /// Records tick `seq` of `sym`, dropping the oldest beyond the depth.
    /// Ticks of a symbol arrive in `seq` order; a `seq` that does not follow
    /// the newest (a feed that renumbered, an upstream whose first entries
    /// were trimmed) starts the ring afresh, so it always holds one
    /// contiguous run and never replays ticks of another numbering.
    /// Returns the frame that fell out of the ring, if one did (for
    /// [`crate::recycle`]).
    pub(crate) fn push(&mut self, sym: SymId, seq: u64, frame: &Frame) -> Option<Frame> {
        if self.depth == 0 {
            return None;
        }
        let i = sym as usize;
        if self.rings.len() <= i {
            self.rings.resize_with(i + 1, Ring::default);
        }
        let ring = &mut self.rings[i];
        if ring.frames.capacity() == 0 {
            ring.frames.reserve_exact(self.depth);
        }
        let mut evicted = None;
        if ring.newest.checked_add(1) != Some(seq) {
            ring.frames.clear();
        } else if ring.frames.len() == self.depth {
            evicted = ring.frames.pop_front();
        }
        ring.frames.push_back(frame.clone());
        ring.newest = seq;
        // The next push of this symbol drops the oldest frame and the
        // shard reads its count (`Recycler::give`): a frame written some
        // `symbols x depth` ticks ago, long out of the cache. Asking for
        // it now, a symbol's tick interval ahead, took the shard's
        // per-tick work from 21 % to 15 % of the samples with no clients
        // (`benches/publisher.rs`, `perf record`).
        if ring.frames.len() == self.depth
            && let Some(next) = ring.frames.front()
        {
            next.prefetch_counts();
        }
        evicted
    }

    /// Forgets every tick of `sym` (its numbering restarts: a new epoch),
    /// so nothing of the old numbering is ever replayed.
    pub(crate) fn forget(&mut self, sym: SymId) {
        if let Some(ring) = self.rings.get_mut(sym as usize) {
            ring.frames.clear();
            ring.newest = 0;
        }
    }

    /// The `seq` of `sym`'s newest tick (0 if it has none here).
    pub(crate) fn newest(&self, sym: SymId) -> u64 {
        self.rings.get(sym as usize).map_or(0, |r| r.newest)
    }

    /// The ticks after `after`, oldest first, if the history holds every
    /// one of them (none is missing) and there are at most `max`; `None`
    /// otherwise (the history does not reach back, or `after` is ahead of
    /// the newest tick). A symbol with no tick holds "every tick after 0".
    pub(crate) fn since(&self, sym: SymId, after: u64, max: usize) -> Option<Vec<Frame>> {
        let (newest, frames) = match self.rings.get(sym as usize) {
            Some(r) => (r.newest, &r.frames),
            None => (0, &VecDeque::new()),
        };
        let missed = newest.checked_sub(after)?;
        let missed = usize::try_from(missed).ok()?;
        if missed > frames.len() || missed > max {
            return None;
        }
        Some(frames.range(frames.len() - missed..).cloned().collect())
    }

    /// The last `limit` ticks of `sym`, oldest first.
    pub(crate) fn last(&self, sym: SymId, limit: usize) -> impl Iterator<Item = &Frame> {
        let frames = self.rings.get(sym as usize).map(|r| &r.frames);
        let len = frames.map_or(0, VecDeque::len);
        frames
            .into_iter()
            .flat_map(move |f| f.range(len - limit.min(len)..))
    }

    /// Tick frames held, over every symbol (for the memory bound's test).
    #[cfg(test)]
    fn held(&self) -> usize {
        self.rings.iter().map(|r| r.frames.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tick;
    use crate::wire::encode::TickEncoder;

    fn frames(h: &History, sym: SymId, after: u64) -> Option<Vec<u64>> {
        let seqs = h.since(sym, after, usize::MAX)?;
        Some(seqs.iter().map(seq_of).collect())
    }

    fn seq_of(f: &Frame) -> u64 {
        let p = crate::wire::ws::payload(f.as_bytes()).unwrap();
        let v: serde_json::Value = serde_json::from_slice(p).unwrap();
        v["seq"].as_u64().unwrap()
    }

    fn fill(h: &mut History, sym: SymId, n: u64) -> Vec<Frame> {
        let mut enc = TickEncoder::new();
        (1..=n)
            .map(|seq| {
                let f = enc.encode("S", seq, seq, &Tick::new("S").bid(seq as f64));
                h.push(sym, seq, &f);
                f
            })
            .collect()
    }

    #[test]
    fn since_replays_exactly_what_was_missed_or_nothing() {
        let mut h = History::new(4);
        fill(&mut h, 2, 10);
        assert_eq!(h.newest(2), 10);
        assert_eq!(frames(&h, 2, 7), Some(vec![8, 9, 10]));
        assert_eq!(frames(&h, 2, 6), Some(vec![7, 8, 9, 10]), "the whole ring");
        assert_eq!(frames(&h, 2, 10), Some(vec![]), "nothing missed");
        assert_eq!(frames(&h, 2, 5), None, "seq 6 is gone");
        assert_eq!(frames(&h, 2, 11), None, "ahead of the server");
        assert_eq!(h.since(2, 6, 3), None, "more than the caller allows");
        assert_eq!(frames(&h, 9, 0), Some(vec![]), "no tick: nothing after 0");
        assert_eq!(frames(&h, 9, 1), None);
        let last: Vec<u64> = h.last(2, 2).map(seq_of).collect();
        assert_eq!(last, vec![9, 10]);
        assert_eq!(h.last(2, 100).count(), 4);
        assert_eq!(h.last(9, 5).count(), 0);
    }

    #[test]
    fn a_seq_that_does_not_follow_starts_the_ring_afresh() {
        let mut h = History::new(8);
        fill(&mut h, 0, 5);
        let mut enc = TickEncoder::new();
        let f = enc.encode("S", 40, 1, &Tick::new("S"));
        h.push(0, 40, &f);
        assert_eq!(frames(&h, 0, 39), Some(vec![40]));
        assert_eq!(frames(&h, 0, 4), None, "seqs 5..39 were never here");
        let f = enc.encode("S", 2, 1, &Tick::new("S"));
        h.push(0, 2, &f);
        assert_eq!(frames(&h, 0, 1), Some(vec![2]), "renumbered from 1");
        assert_eq!(h.held(), 1);
    }

    #[test]
    fn memory_is_bounded_by_the_depth_and_old_frames_are_freed() {
        let mut h = History::new(8);
        let mut all = Vec::new();
        for sym in 0..5 {
            all.extend(fill(&mut h, sym, 1000));
        }
        assert_eq!(h.held(), 5 * 8, "depth ticks per symbol, no more");
        for r in &h.rings {
            assert!(r.frames.capacity() < 16, "ring room stays near the depth");
        }
        // Only the last 8 of each symbol are still shared with the history.
        let shared = all
            .iter()
            .filter(|f| std::sync::Arc::strong_count(&(*f).clone().into_shared()) > 2)
            .count();
        assert_eq!(shared, 5 * 8);
        let mut off = History::new(0);
        fill(&mut off, 0, 10);
        assert_eq!(off.held(), 0);
        assert_eq!(
            off.since(0, 1, 10),
            None,
            "nothing kept: every resume resets"
        );
    }
}
