//! [`ChunkPool`]: the chunks a shard packs class batches into (see
//! `fanout`), filled again once every connection has written its range.
//!
//! Why: with every client its own watchlist, each turn's ticks are copied
//! into 8 KiB chunks, tens of thousands a second at 4 M deliveries/s. A
//! fresh allocation each was `malloc`/`free` on glibc's large-block path:
//! 9 % of the shard thread in the distinct-subscription cell at 3 M/s,
//! 16 % once the shard fell behind (`_int_malloc`, `unlink_chunk`,
//! `_int_free`; `perf record -e cpu-clock -g`, issue 11), which made a
//! shard that fell a little behind fall further. Pooled (and with the
//! recycler's batches returned, `crate::recycle`), the allocator's share
//! of the shard thread in that cell went from 7.6 % to 0.5 %.
//!
//! How: every pooled chunk is [`CHUNK_BYTES`] long; a turn's batches fill
//! a prefix and each connection queues its range of it. The pool keeps a
//! reference to each chunk it filled, oldest first. A chunk whose ranges
//! have all been written is held by the pool alone (`Arc::get_mut`
//! succeeds) and is filled again. Connections write their ranges in the
//! order they were queued, so the oldest chunk is the likeliest to be
//! free; one still held (a connection behind) goes to the back, and after
//! [`LOOKS`] held ones a new chunk is allocated.
//!
//! Invariants: a chunk is filled only while nothing else holds it, so no
//! queued byte ever changes. The pool holds at most [`MAX_KEPT`] chunks,
//! and [`ChunkPool::trim`] lets go of those the last period did not need:
//! an idle shard keeps none.

use std::collections::VecDeque;
use std::sync::Arc;

/// Bytes of every pooled chunk: most bytes of batches packed into one.
/// One chunk per 8 KiB is ~70,000 a second at 4 M deliveries/s of
/// ~150-byte ticks; a chunk lives while any of its ranges is queued, so
/// its size also bounds what one lagging connection keeps alive of its
/// neighbours' bytes (see `fanout::SHARE_BELOW`). A batch larger than this
/// gets an allocation of its own.
pub(super) const CHUNK_BYTES: usize = 8 * 1024;

/// Chunks looked at, oldest first, before a new one is allocated. A held
/// chunk goes to the back, so a lagging connection's chunks are passed
/// over at the cost of one look each per round of the ring.
const LOOKS: usize = 4;

/// Most chunks kept: 32 MiB. A shard writing 600 MB/s (4 M deliveries of
/// 150 bytes) with 25 ms of it queued on average has ~1,900 chunks in
/// flight; past this bound the oldest reference is dropped and its last
/// holder frees it.
const MAX_KEPT: usize = 4096;

/// A shard's chunks, oldest first.
#[derive(Debug, Default)]
pub(super) struct ChunkPool {
    ring: VecDeque<Arc<[u8]>>,
    /// Chunks filled since the last trim.
    filled: usize,
    /// Chunks allocated (read by the tests only).
    #[cfg(test)]
    allocated: usize,
}

impl ChunkPool {
    /// `parts` (at most [`CHUNK_BYTES`] in all) copied side by side into
    /// the start of a chunk: a free pooled one, or a new one.
    pub(super) fn fill<'a>(&mut self, parts: impl Iterator<Item = &'a [u8]>) -> Arc<[u8]> {
        let mut chunk = self.free_chunk();
        let Some(buf) = Arc::get_mut(&mut chunk) else {
            unreachable!("a free chunk has no other holder");
        };
        let mut at = 0;
        for p in parts {
            buf[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        self.filled += 1;
        self.ring.push_back(chunk.clone());
        if self.ring.len() > MAX_KEPT {
            self.ring.pop_front();
        }
        chunk
    }

    /// A chunk nothing else holds, taken out of the ring.
    fn free_chunk(&mut self) -> Arc<[u8]> {
        for _ in 0..LOOKS.min(self.ring.len()) {
            let Some(mut chunk) = self.ring.pop_front() else {
                break;
            };
            if Arc::get_mut(&mut chunk).is_some() {
                return chunk;
            }
            self.ring.push_back(chunk);
        }
        #[cfg(test)]
        {
            self.allocated += 1;
        }
        std::iter::repeat_n(0u8, CHUNK_BYTES).collect()
    }

    /// Keeps no more chunks than were filled since the last trim (the
    /// shard calls it every housekeeping pass, 100 ms): what a period
    /// needed stays, a burst's surplus and an idle shard's chunks go.
    pub(super) fn trim(&mut self) {
        while self.ring.len() > self.filled {
            self.ring.pop_front();
        }
        self.filled = 0;
    }

    /// Chunks in the ring (for tests).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.ring.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_is_filled_again_only_when_nothing_else_holds_it() {
        let mut pool = ChunkPool::default();
        let a = pool.fill([&b"ab"[..], b"cd"].into_iter());
        assert_eq!(&a[..4], b"abcd");
        assert_eq!(a.len(), CHUNK_BYTES);
        let a_ptr = a.as_ptr();
        // `a` is still queued somewhere: the next fill takes a new chunk
        // and leaves `a`'s bytes alone.
        let b = pool.fill([&b"xyz"[..]].into_iter());
        assert_eq!(&a[..4], b"abcd");
        assert_eq!(&b[..3], b"xyz");
        assert_eq!(pool.allocated, 2);
        // Every range of `a` written: its memory is filled again.
        drop(a);
        let c = pool.fill([&b"12"[..]].into_iter());
        assert_eq!(c.as_ptr(), a_ptr);
        assert_eq!(&c[..2], b"12");
        assert_eq!(&b[..3], b"xyz", "a held chunk is untouched");
        assert_eq!(pool.allocated, 2);
    }

    #[test]
    fn chunks_held_long_are_passed_over_and_left_alone() {
        let mut pool = ChunkPool::default();
        // A lagging connection holds the first LOOKS chunks; every chunk
        // after them is written and let go at once.
        let held: Vec<Arc<[u8]>> = (0..LOOKS)
            .map(|i| pool.fill([&[i as u8; 3][..]].into_iter()))
            .collect();
        for _ in 0..100 {
            drop(pool.fill([&b"new"[..]].into_iter()));
        }
        // Each time the held ones come round, LOOKS looks and one new
        // chunk; the free ones after them are used again: ~14 new chunks
        // for 100 fills, not 100.
        let new = pool.allocated - LOOKS;
        assert!((1..=16).contains(&new), "{new} new chunks");
        for (i, c) in held.iter().enumerate() {
            assert_eq!(&c[..3], &[i as u8; 3], "a held chunk is untouched");
        }
    }

    #[test]
    fn the_pool_keeps_at_most_max_kept_and_an_idle_one_keeps_none() {
        let mut pool = ChunkPool::default();
        let held: Vec<Arc<[u8]>> = (0..MAX_KEPT + 10)
            .map(|_| pool.fill(std::iter::empty()))
            .collect();
        assert_eq!(pool.kept(), MAX_KEPT);
        drop(held);
        pool.trim();
        assert_eq!(pool.kept(), MAX_KEPT, "filled that many this period");
        pool.trim();
        assert_eq!(pool.kept(), 0, "nothing filled in the last period");
    }
}
