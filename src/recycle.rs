//! Tick frames go back to the publisher that allocated them, and their
//! memory is used again for the next ticks.
//!
//! Why: the publisher allocates one frame per tick and a shard lets go of
//! it last, when the tick leaves the symbol's history. With the system
//! allocator (glibc) a block freed on another thread than the one that
//! allocated it goes back through the allocating thread's arena lock, so
//! the publisher's `malloc` and the shards' `free` contended for one lock
//! on every tick: a quarter of the publisher thread's samples were
//! `malloc`, `free` and the lock's futex calls, and the shard spent as
//! much again freeing (`perf record`, `benches/publisher.rs`, issue 11).
//!
//! How: a shard hands each frame it drops while holding the only
//! reference ([`Recycler::give`]) to the publisher in batches, over one
//! bounded channel shared by the shards. The publisher keeps them, by
//! length, in a [`FramePool`]; a tick whose frame has the length of a
//! pooled one is copied into it: no allocator call on either side. A
//! tick stream's frame lengths are stable (the same symbols, prices of
//! the same magnitude), so nearly every frame finds one; a length that
//! falls out of use (a `seq` gains a digit) is trimmed from the pool.
//!
//! Invariants: a frame is reused only while nothing else holds it
//! (`Arc::get_mut`), so no connection ever sees bytes change under it.
//! Nothing here waits: a full channel, a gone publisher or a full pool
//! just drops the frame where it is, as before. The pool holds at most
//! [`POOL_MAX`] frames.

use std::sync::Arc;

use crossbeam_channel::{Receiver, Sender};

use crate::Frame;
use crate::inbox::{TICK_BATCH, TickMsg};

/// Batches in flight from the shards to the publisher. Each holds up to
/// one inbox drain's worth of frames (see [`Recycler::flush`]); when the
/// publisher falls this far behind, frames are dropped on the shard.
const CHANNEL_BATCHES: usize = 64;

/// The most frames the publisher keeps for reuse: about 80 ms of ticks at
/// 200,000 ticks/s, some 3 MB of ~200-byte frames. Steady state needs
/// only what a shard returns between two of the publisher's looks (a few
/// batches); the rest is slack for bursts.
pub(crate) const POOL_MAX: usize = 16_384;

/// Frames returned between two trims of the pool (see
/// [`FramePool::trim`]): long enough that a bin's demand is measured over
/// many of its frames' round trips, short enough (a third of a second at
/// 200,000 ticks/s) that frames of a length gone out of use leave soon.
const TRIM_EVERY: usize = 4 * POOL_MAX;

/// The longest frame pooled: a tick frame is at most ~300 bytes (a 32-byte
/// symbol and every field at its longest); anything longer is not a tick.
const LONGEST_POOLED: usize = 512;

/// A shard's recycler and the publisher's pool, connected: the shards'
/// frames go one way, the emptied batch vectors come back the other (so a
/// batch is not a new allocation on a shard and a cross-thread free on the
/// publisher at every inbox drain: `Recycler::give` growing a fresh `Vec`
/// from empty was the largest `malloc` caller left on a busy shard,
/// `perf record --call-graph dwarf`, issue 11). Clone the recycler for each
/// shard.
///
/// The vectors of the tick batches the publisher sends the shards come
/// back too, from the shard that let go of a batch last: a new one per 64
/// ticks was a `malloc` on the publisher and a `free` of 2.5 KB on a shard.
pub(crate) fn pair() -> (Recycler, FramePool) {
    let (tx, rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    let (empty_tx, empty_rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    let (ticks_tx, ticks_rx) = crossbeam_channel::bounded(CHANNEL_BATCHES);
    (
        Recycler::new(Channels {
            frames: tx,
            empties: empty_rx,
            tick_batches: ticks_tx,
        }),
        FramePool::new(rx, empty_tx, ticks_rx),
    )
}

/// A recycler's ends of the channels to the pool.
#[derive(Debug, Clone)]
struct Channels {
    frames: Sender<Vec<Frame>>,
    /// Batch vectors the publisher emptied, to be filled again.
    empties: Receiver<Vec<Frame>>,
    /// Emptied tick batches, for the publisher's next ones.
    tick_batches: Sender<Vec<TickMsg>>,
}

/// A shard's side: frames it was the last to hold, waiting to be sent.
#[derive(Debug)]
pub(crate) struct Recycler {
    channels: Channels,
    batch: Vec<Frame>,
}

impl Clone for Recycler {
    /// Another shard's recycler to the same pool, with a batch of its own.
    fn clone(&self) -> Recycler {
        Recycler::new(self.channels.clone())
    }
}

impl Recycler {
    fn new(channels: Channels) -> Recycler {
        Recycler {
            channels,
            batch: Vec::new(),
        }
    }

    /// Gives the publisher back the vector of a tick batch this shard let
    /// go of last, its ticks taken out.
    pub(crate) fn give_tick_batch(&mut self, mut ticks: Vec<TickMsg>) {
        ticks.clear();
        // If enough are waiting, or the publisher is gone: freed here.
        let _ = self.channels.tick_batches.try_send(ticks);
    }

    /// Takes `frame`, which the shard no longer needs: kept for the
    /// publisher if nothing else holds it, dropped (a count decrement)
    /// otherwise. Another shard or a connection's queue holding it will
    /// let go of it later, and the last one frees or returns it.
    pub(crate) fn give(&mut self, frame: Frame) {
        if frame.is_sole() && frame.len() <= LONGEST_POOLED {
            self.batch.push(frame);
        }
    }

    /// Sends the frames given since the last flush, once per inbox drain.
    pub(crate) fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self
            .channels
            .empties
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(self.batch.len()));
        // If the publisher is behind or gone, the frames are freed here.
        let _ = self
            .channels
            .frames
            .try_send(std::mem::replace(&mut self.batch, next));
    }
}

/// The publisher's side: returned frames by length, ready to be filled.
#[derive(Debug)]
pub(crate) struct FramePool {
    rx: Receiver<Vec<Frame>>,
    /// Emptied batches back to the shards.
    empties: Sender<Vec<Frame>>,
    /// Tick batch vectors the shards are done with.
    tick_batches: Receiver<Vec<TickMsg>>,
    /// `bins[n]`: frames of `n` bytes.
    bins: Vec<Bin>,
    /// Frames in all bins (at most [`POOL_MAX`]).
    pooled: usize,
    /// Frames taken in since the bins were last trimmed.
    since_trim: usize,
    /// Frames filled again so far (read by the tests only).
    #[cfg(test)]
    recycled: u64,
}

/// The pooled frames of one length.
#[derive(Debug, Default)]
struct Bin {
    frames: Vec<Arc<[u8]>>,
    /// Frames of this length the publisher asked for since the last trim.
    wanted: usize,
}

impl FramePool {
    fn new(
        rx: Receiver<Vec<Frame>>,
        empties: Sender<Vec<Frame>>,
        tick_batches: Receiver<Vec<TickMsg>>,
    ) -> FramePool {
        FramePool {
            rx,
            empties,
            tick_batches,
            bins: Vec::new(),
            pooled: 0,
            since_trim: 0,
            #[cfg(test)]
            recycled: 0,
        }
    }

    /// Takes in what the shards returned since the last call.
    pub(crate) fn collect(&mut self) {
        while let Ok(mut batch) = self.rx.try_recv() {
            self.since_trim += batch.len();
            for frame in batch.drain(..) {
                if self.pooled == POOL_MAX {
                    // Freed here, on the thread that allocated it.
                    continue;
                }
                let bytes = frame.into_shared();
                let n = bytes.len();
                if self.bins.len() <= n {
                    self.bins.resize_with(n + 1, Bin::default);
                }
                self.bins[n].frames.push(bytes);
                self.pooled += 1;
            }
            // Shards gone or well supplied: the vector is freed here.
            let _ = self.empties.try_send(batch);
        }
        if self.since_trim >= TRIM_EVERY {
            self.trim();
        }
    }

    /// Keeps in each bin no more frames than were asked for since the
    /// last trim. Lengths drift (a symbol's `seq` gains a digit, prices
    /// cross a power of ten): frames of a length no tick has any more
    /// would otherwise sit in the pool for good, and fill it.
    fn trim(&mut self) {
        for bin in &mut self.bins {
            if bin.frames.len() > bin.wanted {
                self.pooled -= bin.frames.len() - bin.wanted;
                bin.frames.truncate(bin.wanted);
            }
            bin.wanted = 0;
        }
        self.since_trim = 0;
    }

    /// A frame holding `bytes`: a pooled one of that length if there is
    /// one, a new allocation otherwise.
    pub(crate) fn frame(&mut self, bytes: &[u8]) -> Frame {
        if let Some(bin) = self.bins.get_mut(bytes.len()) {
            bin.wanted += 1;
            while let Some(mut shared) = bin.frames.pop() {
                self.pooled -= 1;
                // Nothing else holds a returned frame but for a moment
                // (another shard's reference, dropped since, when two
                // shards dropped it together).
                if let Some(buf) = Arc::get_mut(&mut shared) {
                    buf.copy_from_slice(bytes);
                    #[cfg(test)]
                    {
                        self.recycled += 1;
                    }
                    if let Some(next) = bin.frames.last() {
                        crate::wire::frame::prefetch_all(next);
                    }
                    return Frame::from_shared(shared);
                }
            }
        }
        Frame::from(bytes)
    }

    /// An empty vector for the next tick batch: one a shard gave back,
    /// or a new one.
    pub(crate) fn tick_batch(&mut self) -> Vec<TickMsg> {
        self.tick_batches
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(TICK_BATCH))
    }

    /// Frames reused so far (for tests).
    #[cfg(test)]
    pub(crate) fn recycled(&self) -> u64 {
        self.recycled
    }

    /// Frames waiting in the pool.
    #[cfg(test)]
    pub(crate) fn pooled(&self) -> usize {
        self.pooled
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_returned_frame_is_filled_again_and_a_shared_one_is_not_returned() {
        let (mut shard, mut pool) = pair();
        let a = pool.frame(b"\x81\x03abc");
        let held = pool.frame(b"\x81\x03xyz");
        let other = held.clone();
        let a_ptr = a.as_bytes().as_ptr();
        shard.give(a);
        shard.give(held);
        shard.flush();
        pool.collect();
        assert_eq!(pool.pooled(), 1, "only the frame nothing else holds");
        // Another length: a new allocation.
        let c = pool.frame(b"\x81\x01c");
        assert_eq!(pool.recycled(), 0);
        let b = pool.frame(b"\x81\x03def");
        assert_eq!(b.as_bytes(), b"\x81\x03def");
        assert_eq!(b.as_bytes().as_ptr(), a_ptr, "the returned memory");
        assert_eq!((pool.recycled(), pool.pooled()), (1, 0));
        assert_eq!(
            other.as_bytes(),
            b"\x81\x03xyz",
            "a held frame is untouched"
        );
        assert_eq!(c.as_bytes(), b"\x81\x01c");
    }

    #[test]
    fn a_pooled_frame_that_is_held_again_is_not_filled() {
        let (mut shard, mut pool) = pair();
        let f = pool.frame(b"\x81\x02hi");
        // Sole when given, then cloned before the publisher fills it (as
        // when two shards drop a frame at the same moment and both give
        // it; the pool checks again when it fills a frame).
        shard.give(f);
        let stolen = shard.batch[0].clone();
        shard.flush();
        pool.collect();
        assert_eq!(pool.pooled(), 1);
        let g = pool.frame(b"\x81\x02yo");
        assert_eq!((pool.recycled(), pool.pooled()), (0, 0));
        assert_eq!(stolen.as_bytes(), b"\x81\x02hi");
        assert_eq!(g.as_bytes(), b"\x81\x02yo");
    }

    #[test]
    fn frames_of_a_length_no_longer_wanted_leave_the_pool() {
        let (mut shard, mut pool) = pair();
        // A thousand 3-byte frames come back; then every tick is 4 bytes
        // long (a seq gained a digit), and the 4-byte frames come back.
        for _ in 0..1000 {
            shard.give(Frame::from(&b"\x81\x01a"[..]));
        }
        shard.flush();
        pool.collect();
        let mut taken = 0;
        for _ in 0..TRIM_EVERY / 100 + 1 {
            let held: Vec<Frame> = (0..100).map(|_| pool.frame(b"\x81\x02ab")).collect();
            taken += held.len();
            for f in held {
                shard.give(f);
            }
            shard.flush();
            pool.collect();
        }
        assert!(taken >= TRIM_EVERY, "a trim was due");
        assert_eq!(pool.bins[3].frames.len(), 0, "no 3-byte frame was wanted");
        assert_eq!(pool.pooled(), pool.bins[4].frames.len());
        assert!(pool.recycled() > 0);
    }

    #[test]
    fn emptied_batches_go_back_to_the_shards_with_their_room() {
        let (mut shard, mut pool) = pair();
        let mut other = shard.clone();
        for _ in 0..100 {
            shard.give(Frame::from(&b"\x81\x01a"[..]));
        }
        shard.flush();
        // No emptied vector back yet: the next batch is sized as this one.
        assert_eq!(shard.batch.capacity(), 100);
        pool.collect();
        assert_eq!(pool.pooled(), 100);
        // The next flush (of this shard or another) fills that vector
        // again: its room is there before the first frame is given.
        other.give(Frame::from(&b"\x81\x01b"[..]));
        other.flush();
        assert!(other.batch.capacity() >= 100, "{}", other.batch.capacity());
        assert!(other.batch.is_empty());
    }

    #[test]
    fn tick_batch_vectors_come_back_empty_with_their_memory() {
        let (mut shard, mut pool) = pair();
        let mut ticks = pool.tick_batch();
        assert_eq!((ticks.len(), ticks.capacity()), (0, TICK_BATCH));
        let frame = Frame::from(&b"\x81\x01a"[..]);
        ticks.push(TickMsg {
            sym: 7,
            seq: 1,
            ts: 1,
            frame: frame.clone(),
        });
        let memory = ticks.as_ptr();
        shard.give_tick_batch(ticks);
        assert!(frame.is_sole(), "the tick's reference went with it");
        let back = pool.tick_batch();
        assert!(back.is_empty());
        assert_eq!(back.as_ptr(), memory);
        let new = pool.tick_batch();
        assert_ne!(new.as_ptr(), memory, "given back once");
    }

    #[test]
    fn nothing_waits_when_the_publisher_is_gone_or_behind() {
        let (mut shard, pool) = pair();
        for _ in 0..CHANNEL_BATCHES + 3 {
            shard.give(Frame::from(&b"\x81\x00"[..]));
            shard.flush();
        }
        assert_eq!(pool.rx.len(), CHANNEL_BATCHES);
        drop(pool);
        shard.give(Frame::from(&b"\x81\x00"[..]));
        shard.flush();
    }

    #[test]
    fn the_pool_holds_at_most_pool_max_frames() {
        let (mut shard, mut pool) = pair();
        for _ in 0..POOL_MAX / 1024 + 2 {
            for _ in 0..1024 {
                shard.give(Frame::from(&b"\x81\x01x"[..]));
            }
            shard.flush();
            pool.collect();
        }
        assert_eq!(pool.pooled(), POOL_MAX);
    }
}
