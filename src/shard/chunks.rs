//! [`ChunkPool`]: the chunks a shard packs class batches into (see
//! `fanout`), filled again once every connection has written its range.
//!
//! Why: with every client its own watchlist, each turn's ticks are copied
//! into 8 KiB chunks, tens of thousands a second at 4 M deliveries/s. A
//! fresh allocation each was `malloc`/`free` on glibc's large-block path:
//! 9 % of the server's samples in the distinct-subscription cell at
//! 3 M/s, 16 % once the shard fell behind (`_int_malloc`, `unlink_chunk`,
//! `_int_free`; `perf record -e cpu-clock -g`, issue 11), which made a
//! shard that fell a little behind fall further. Pooled (and with the
//! recycler's batches returned, `crate::recycle`), the allocator's
//! functions on the shard thread went from 7.6 % of the server's samples
//! in that cell to 0.5 %.
//!
//! How: every pooled chunk is [`CHUNK_BYTES`] long; a turn's batches fill
//! a prefix and each connection queues its range of it. The pool keeps a
//! reference to each chunk it filled, oldest first. A chunk whose ranges
//! have all been written is held by the pool alone (`Arc::get_mut`
//! succeeds). When the pool has no free chunk, it looks at the oldest
//! ones (connections write their ranges in the order they were queued,
//! so those are the likeliest to be written), moves every free one it
//! meets to a stack, and sends a held one (a connection behind) to the
//! back. The next fill takes the top of the stack, so the chunks that go
//! round are the ones in flight and a few more, and stay in the cache.
//! Taking the oldest instead, round a ring of every chunk kept (4,096 at
//! full load, 32 MiB), had the kernel's copy out of the chunks and the
//! fill go up by as much as the allocator's share went down
//! (`_copy_from_iter` 13.3 -> 15.9 % of the server in the large-universe
//! cell).
//!
//! Invariants: a chunk is filled only while nothing else holds it, so no
//! queued byte ever changes. The pool holds at most [`MAX_KEPT`] chunks,
//! and [`ChunkPool::trim`] lets go of those the last period did not need,
//! coldest first: an idle shard keeps none.

use std::collections::VecDeque;
use std::sync::Arc;

/// Bytes of every pooled chunk: most bytes of batches packed into one.
/// One chunk per 8 KiB is ~70,000 a second at 4 M deliveries/s of
/// ~150-byte ticks; a chunk lives while any of its ranges is queued, so
/// its size also bounds what one lagging connection keeps alive of its
/// neighbours' bytes (see `fanout::SHARE_BELOW`). A batch larger than this
/// gets an allocation of its own.
pub(super) const CHUNK_BYTES: usize = 8 * 1024;

/// Held chunks looked at, oldest first, before a new one is allocated
/// when none is free. A held chunk goes to the back, so a lagging
/// connection's chunks are passed over at one look each per round.
const LOOKS: usize = 16;

/// Most chunks kept: 32 MiB. A shard writing 600 MB/s (4 M deliveries of
/// 150 bytes) with 25 ms of it queued on average has ~1,900 chunks in
/// flight; past this bound the oldest reference is dropped and its last
/// holder frees it.
const MAX_KEPT: usize = 4096;

/// A shard's chunks: handed out, and free.
#[derive(Debug, Default)]
pub(super) struct ChunkPool {
    /// Chunks filled and queued, oldest first; some may be written since.
    queued: VecDeque<Arc<[u8]>>,
    /// Chunks found written, the most recently found last.
    free: Vec<Arc<[u8]>>,
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
        self.queued.push_back(chunk.clone());
        if self.queued.len() + self.free.len() > MAX_KEPT {
            // The oldest reference goes; its last holder frees it.
            self.queued.pop_front();
        }
        chunk
    }

    /// A chunk nothing else holds: the last one found written, or a new
    /// one.
    fn free_chunk(&mut self) -> Arc<[u8]> {
        if self.free.is_empty() {
            self.find_written();
        }
        if let Some(chunk) = self.free.pop() {
            return chunk;
        }
        #[cfg(test)]
        {
            self.allocated += 1;
        }
        std::iter::repeat_n(0u8, CHUNK_BYTES).collect()
    }

    /// Moves the written chunks at the front of `queued` to `free`,
    /// passing over at most [`LOOKS`] held ones, and stopping at the
    /// first held one once something is free.
    fn find_written(&mut self) {
        // Each held chunk is looked at once at most.
        let most = LOOKS.min(self.queued.len());
        let mut looks = 0;
        while looks < most
            && let Some(mut chunk) = self.queued.pop_front()
        {
            if Arc::get_mut(&mut chunk).is_some() {
                self.free.push(chunk);
                continue;
            }
            self.queued.push_back(chunk);
            looks += 1;
            if !self.free.is_empty() {
                break;
            }
        }
    }

    /// Keeps no more chunks than were filled since the last trim (the
    /// shard calls it every housekeeping pass, 100 ms), letting the
    /// coldest free ones go first: what a period needed stays, a burst's
    /// surplus and an idle shard's chunks go.
    pub(super) fn trim(&mut self) {
        let over = (self.queued.len() + self.free.len()).saturating_sub(self.filled);
        let from_free = over.min(self.free.len());
        self.free.drain(..from_free);
        for _ in from_free..over {
            self.queued.pop_front();
        }
        self.filled = 0;
    }

    /// Chunks kept (for tests).
    #[cfg(test)]
    fn kept(&self) -> usize {
        self.queued.len() + self.free.len()
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
    fn the_chunk_written_last_is_filled_first() {
        let mut pool = ChunkPool::default();
        let chunks: Vec<Arc<[u8]>> = (0..3).map(|_| pool.fill(std::iter::empty())).collect();
        let newest = chunks[2].as_ptr();
        drop(chunks);
        let again = pool.fill([&b"x"[..]].into_iter());
        assert_eq!(again.as_ptr(), newest, "the newest of the written chunks");
        assert_eq!(pool.allocated, 3);
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
        // The first two fills after them look at the LOOKS held chunks
        // first and make new ones; from then on a written one is found
        // and filled again.
        assert_eq!(pool.allocated, LOOKS + 2);
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
