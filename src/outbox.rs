//! [`Outbox`]: a connection's bounded queue of outbound frames.
//!
//! Each queue entry is a shared [`Frame`] holding one frame or a *batch*
//! of whole frames (the ticks a subscription class received in one shard
//! turn, concatenated once for all its members), or a range of a shard's
//! *chunk* (the batches of many connections alone in their classes, side
//! by side in one allocation), or an HTTP response (the `101` of the
//! upgrade, or a refusal), which is never cut.
//!
//! Invariant: bytes leave a connection in whole frames, in push order.
//! `offset` is the number of bytes of the head entry already written; every
//! other queued entry is untouched. Because every reply, pong and close frame
//! is queued here too (never written to the socket directly), a control
//! frame can never land inside a half-sent broadcast frame.
//!
//! The queue is bounded in frames (the `capacity` given to
//! [`Outbox::new`]); a push into a full queue fails and the caller evicts
//! the connection (close 4001). Only the final close frame (or final HTTP
//! response) may exceed the bound. Pure: no mio, no sockets, tested
//! with scripted writers.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;
use std::time::Instant;

use crate::Frame;
use crate::wire::ws::Header;

/// How many frames one `writev` carries at most. Linux's `IOV_MAX` is 1024;
/// 256 frames of a typical 150-byte tick is ~38 KiB per syscall, enough to
/// amortize the syscall while keeping the iovec array on the stack small.
const MAX_IOV: usize = 256;
/// The iovec array of a write that carries few entries (the common case:
/// one batch or chunk range, and a reply or two): 16
/// slices are 256 bytes to fill, against 4 KiB for `MAX_IOV`.
const SMALL_IOV: usize = 16;

/// The queue refuses a push.
///
/// ```
/// use tickcast::outbox::{Outbox, PushError};
/// let now = std::time::Instant::now();
/// let mut o = Outbox::new(1);
/// o.push_close(tickcast::Frame::from(&b"\x88\x00"[..]), now);
/// assert_eq!(o.try_push(tickcast::Frame::from(&b"x"[..]), now), Err(PushError::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// `capacity` frames are already queued: the consumer is too slow.
    Full,
    /// A close frame has been queued; nothing may follow it.
    Closed,
}

/// What one [`Outbox::write_to`] call achieved.
///
/// ```
/// use tickcast::outbox::{Outbox, Progress};
/// let mut o = Outbox::new(4);
/// let now = std::time::Instant::now();
/// o.try_push_batch(tickcast::Frame::from(&b"\x81\x01a\x81\x01b"[..]), 2, now).unwrap();
/// let p = o.write_to(&mut Vec::new()).unwrap();
/// assert_eq!(p, Progress { bytes: 6, frames: 2, drained: true });
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes accepted by the writer.
    pub bytes: usize,
    /// Frames completely written (and dropped from the queue).
    pub frames: usize,
    /// True if and only if the queue is now empty.
    pub drained: bool,
}

/// One queue entry: `bytes[start..end]` holds `frames` whole frames, or
/// (when `http`) one HTTP response, counted as one frame.
#[derive(Debug, Clone)]
struct Entry {
    /// A [`Frame`]'s bytes, shared, or an HTTP response's, or a shard's
    /// chunk of several connections' batches (see
    /// [`Outbox::try_push_range`]).
    bytes: Arc<[u8]>,
    /// Where this entry's bytes begin: 0 but in a chunk.
    start: usize,
    /// Where they end: `bytes.len()`, or less in a chunk, or after an
    /// eviction cut a batch at a frame boundary.
    end: usize,
    /// Whole frames in it; at most `capacity`, so 32 bits (an entry is 64
    /// bytes, and an idle connection keeps 16 of them).
    frames: u32,
    /// An HTTP response: sent whole, never cut at a "frame" boundary.
    http: bool,
    /// When it was queued: the head's is the age of the oldest byte the
    /// client has not taken yet (see [`Outbox::oldest`]).
    queued_at: Instant,
    /// Ticks: when `publish` accepted the oldest of them, in nanoseconds
    /// since the UNIX epoch; 0 for every other entry (see
    /// [`Outbox::write_recording`]).
    published_ns: u64,
}

/// A bounded FIFO of [`Frame`]s with a resume offset into the head entry.
///
/// ```
/// use tickcast::outbox::{Outbox, PushError};
/// use tickcast::Frame;
/// let now = std::time::Instant::now();
/// let mut o = Outbox::new(2);
/// o.try_push(Frame::from(&b"\x81\x02hi"[..]), now).unwrap();
/// o.try_push(Frame::from(&b"\x81\x02yo"[..]), now).unwrap();
/// assert_eq!(o.oldest(), Some(now));
/// assert_eq!(o.try_push(Frame::from(&b"\x81\x00"[..]), now), Err(PushError::Full));
/// let mut sink = Vec::new(); // any io::Write; a socket in the server
/// let p = o.write_to(&mut sink).unwrap();
/// assert_eq!((p.frames, p.drained), (2, true));
/// assert_eq!(sink, b"\x81\x02hi\x81\x02yo");
/// ```
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Entry>,
    /// Bytes of `queue[0]` already written; 0 when the queue is empty.
    offset: usize,
    /// Frames queued (a batch counts each frame it holds).
    frames: usize,
    /// Most frames the queue holds before `try_push` fails.
    capacity: usize,
    /// A close frame is queued (or the queue was abandoned); no more pushes.
    closed: bool,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames (at least 1, at
    /// most `u32::MAX`).
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            offset: 0,
            frames: 0,
            capacity: capacity.clamp(1, u32::MAX as usize),
            closed: false,
        }
    }

    /// Queues one frame at the back.
    ///
    /// # Errors
    /// [`PushError::Full`] if `capacity` frames are queued (evict the
    /// connection), [`PushError::Closed`] after [`Outbox::push_close`].
    pub fn try_push(&mut self, frame: Frame, now: Instant) -> Result<(), PushError> {
        self.try_push_batch(frame, 1, now)
    }

    /// Queues `batch`, which holds `frames` whole frames, at the back.
    ///
    /// # Errors
    /// [`PushError::Full`] if the queue would then hold more than
    /// `capacity` frames, [`PushError::Closed`] after a close frame.
    pub fn try_push_batch(
        &mut self,
        batch: Frame,
        frames: usize,
        now: Instant,
    ) -> Result<(), PushError> {
        let end = batch.len();
        self.try_push_range(&batch.into_shared(), 0..end, frames, 0, now)
    }

    /// Queues `bytes[range]`, which holds `frames` whole tick frames, the
    /// oldest of which `publish` accepted at `published_ns` (nanoseconds
    /// since the UNIX epoch), so that [`Outbox::write_recording`] reports
    /// their delivery. The range is all of a class's batch, or one
    /// connection's part of a chunk that a shard filled with the batches
    /// of many connections in one turn (one allocation and one copy for
    /// all of them, see `shard::fanout`). Takes one reference to `bytes`;
    /// the chunk lives while any entry in it is queued.
    ///
    /// # Errors
    /// As [`Outbox::try_push_batch`].
    pub(crate) fn try_push_range(
        &mut self,
        bytes: &Arc<[u8]>,
        range: std::ops::Range<usize>,
        frames: usize,
        published_ns: u64,
        now: Instant,
    ) -> Result<(), PushError> {
        debug_assert!(range.start < range.end && range.end <= bytes.len());
        if self.closed {
            return Err(PushError::Closed);
        }
        if self.frames + frames > self.capacity {
            return Err(PushError::Full);
        }
        self.frames += frames;
        self.queue.push_back(Entry {
            bytes: bytes.clone(),
            start: range.start,
            end: range.end,
            // At most `capacity` (checked above), which fits.
            frames: frames as u32,
            http: false,
            queued_at: now,
            published_ns,
        });
        self.check_invariants();
        Ok(())
    }

    /// Asks the CPU for the cache line the next push writes, to be
    /// written: a hint, with no effect on the queue. The fan-out asks it a
    /// few members of a class ahead (see `shard::fanout`).
    #[inline]
    pub(crate) fn prefetch_back(&self) {
        let (front, back) = self.queue.as_slices();
        let tail = if back.is_empty() { front } else { back };
        // One past the last entry: where the next push goes, unless the
        // queue is full (it grows first) or wraps (it goes to the start).
        // A hint at a wrong address costs a line fetched in vain.
        crate::wire::frame::prefetch(tail.as_ptr_range().end.cast());
    }

    /// Queues an HTTP response (the upgrade's `101`), counted as one frame.
    ///
    /// # Errors
    /// As [`Outbox::try_push`].
    pub(crate) fn try_push_http(
        &mut self,
        response: Vec<u8>,
        now: Instant,
    ) -> Result<(), PushError> {
        if self.closed {
            return Err(PushError::Closed);
        }
        if self.frames + 1 > self.capacity {
            return Err(PushError::Full);
        }
        self.push_back(Arc::from(response), true, now);
        Ok(())
    }

    /// Queues a final HTTP response (a refusal); like
    /// [`Outbox::push_close`], nothing may follow it.
    pub(crate) fn push_http_close(&mut self, response: Vec<u8>, now: Instant) {
        if !self.closed {
            self.closed = true;
            self.push_back(Arc::from(response), true, now);
        }
    }

    fn push_back(&mut self, bytes: Arc<[u8]>, http: bool, now: Instant) {
        self.frames += 1;
        self.queue.push_back(Entry {
            start: 0,
            end: bytes.len(),
            bytes,
            frames: 1,
            http,
            queued_at: now,
            published_ns: 0,
        });
        self.check_invariants();
    }

    /// Queues a final close frame after everything already queued, even if
    /// the queue is full. Later pushes fail with [`PushError::Closed`].
    /// Does nothing if a close frame is already queued.
    pub fn push_close(&mut self, close: Frame, now: Instant) {
        if !self.closed {
            self.closed = true;
            self.push_back(close.into_shared(), false, now);
        }
    }

    /// Drops every frame not yet started (a half-written head frame is
    /// kept, so the stream stays well-formed) and queues `close`. Used to
    /// evict a slow consumer: it gets its close frame as soon as its socket
    /// accepts it, without first receiving the backlog.
    pub fn evict(&mut self, close: Frame, now: Instant) {
        let keep = usize::from(self.offset > 0);
        self.queue.truncate(keep);
        self.frames = 0;
        if let Some(head) = self.queue.front_mut() {
            // A half-sent batch is cut after the frame being sent; an HTTP
            // response is finished whole.
            let end = if head.http {
                head.end
            } else {
                head.start + frame_boundary(&head.bytes[head.start..head.end], self.offset)
            };
            head.frames = 1;
            head.end = end;
            self.frames = 1;
            if end == head.start + self.offset {
                self.queue.clear();
                self.offset = 0;
                self.frames = 0;
            }
        }
        self.closed = false;
        self.push_close(close, now);
    }

    /// Writes queued frames to `w` with vectored writes, many frames per
    /// call, until the queue is empty or `w` returns `WouldBlock`.
    ///
    /// # Errors
    /// Any error of `w` other than `WouldBlock` and `Interrupted`, and
    /// `WriteZero` if `w` accepts nothing.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<Progress> {
        self.write_recording(w, |_, _| {})
    }

    /// [`Outbox::write_to`], calling `delivered(published_ns, frames)` for
    /// each entry of ticks (queued by [`Outbox::try_push_range`]) as the
    /// write that carries its last byte returns.
    ///
    /// # Errors
    /// As [`Outbox::write_to`].
    #[inline]
    pub(crate) fn write_recording<W: Write>(
        &mut self,
        w: &mut W,
        mut delivered: impl FnMut(u64, usize),
    ) -> io::Result<Progress> {
        let mut progress = Progress::default();
        while !self.queue.is_empty() {
            // Most writes carry a few entries: a small iovec array is
            // cheaper to set up (each array is filled before use).
            let wrote = if self.queue.len() <= SMALL_IOV {
                self.write_gathered::<SMALL_IOV, W>(w)
            } else {
                self.write_gathered::<MAX_IOV, W>(w)
            };
            match wrote {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    progress.bytes += written;
                    progress.frames += self.advance(written, &mut delivered);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.queue.is_empty() && self.queue.capacity() > 64 {
            // An idle connection should not keep a burst's worth of slots.
            self.queue.shrink_to(16);
        }
        progress.drained = self.queue.is_empty();
        self.check_invariants();
        Ok(progress)
    }

    /// One vectored write of the first `N` (at most) entries.
    #[inline]
    fn write_gathered<const N: usize, W: Write>(&self, w: &mut W) -> io::Result<usize> {
        let mut slices = [IoSlice::new(&[]); N];
        let mut n = 0;
        for (i, e) in self.queue.iter().take(N).enumerate() {
            let start = if i == 0 {
                e.start + self.offset
            } else {
                e.start
            };
            slices[i] = IoSlice::new(&e.bytes[start..e.end]);
            n += 1;
        }
        w.write_vectored(&slices[..n])
    }

    /// Consumes `n` written bytes; returns how many frames completed.
    #[inline]
    fn advance(&mut self, mut n: usize, delivered: &mut impl FnMut(u64, usize)) -> usize {
        let mut done = 0;
        while n > 0 {
            let Some(head) = self.queue.front() else {
                break;
            };
            let left = head.end - head.start - self.offset;
            if n >= left {
                n -= left;
                self.offset = 0;
                let frames = head.frames as usize;
                done += frames;
                self.frames -= frames;
                if head.published_ns != 0 {
                    delivered(head.published_ns, frames);
                }
                self.queue.pop_front();
            } else {
                self.offset += n;
                n = 0;
            }
        }
        done
    }

    /// Gives the queue's slots back when nothing is queued, so an idle
    /// connection holds no outbox memory; the next push takes 4 slots
    /// (256 bytes). The shard calls it for every connection at each
    /// housekeeping pass: 10,000 nearly idle `*` subscribers kept 2.5-3 KiB
    /// each here (the slots their 100 snapshots grew to), most of their
    /// memory. A busy connection pays at most one small allocation per
    /// pass for it.
    pub(crate) fn release_idle(&mut self) {
        if self.queue.is_empty() && self.queue.capacity() > 0 {
            self.queue = VecDeque::new();
        }
    }

    /// When the oldest entry still queued (the head, partly written or
    /// not) was pushed; `None` when the queue is empty. `now` minus this is
    /// how far behind the client is, on top of the kernel's buffers.
    pub fn oldest(&self) -> Option<Instant> {
        self.queue.front().map(|e| e.queued_at)
    }

    /// Number of queued frames (a half-written head counts; a batch counts
    /// each frame it holds).
    pub fn len(&self) -> usize {
        self.frames
    }

    /// Whether at least half of `capacity` frames are queued.
    pub(crate) fn half_full(&self) -> bool {
        self.frames * 2 >= self.capacity
    }

    /// Returns true if and only if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn check_invariants(&self) {
        const { assert!(std::mem::size_of::<Entry>() <= 64) };
        debug_assert!(
            self.queue
                .front()
                .is_none_or(|e| e.start + self.offset < e.end)
        );
        debug_assert!(!self.queue.is_empty() || self.offset == 0);
        debug_assert!(self.frames <= self.capacity + 2);
        debug_assert!(self.queue.is_empty() == (self.frames == 0));
    }
}

/// The end of the frame that contains byte `offset` of `bytes`, a run of
/// whole unmasked server frames. Only for runs of frames: an HTTP response
/// is never passed here (its first bytes may well read as a frame header).
/// A header that does not parse (a run cut short, which the outbox never
/// holds) ends the run.
fn frame_boundary(bytes: &[u8], offset: usize) -> usize {
    let mut pos = 0;
    while pos < bytes.len() {
        let Some(len) = Header::parse(&bytes[pos..]).and_then(|h| h.frame_len()) else {
            return bytes.len();
        };
        pos = pos.saturating_add(len);
        if pos > offset {
            return pos.min(bytes.len());
        }
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Accepts `budget` bytes per call, then `WouldBlock` once `calls` runs
    /// out; records everything written.
    struct Scripted {
        out: Vec<u8>,
        per_call: usize,
        calls_left: usize,
    }

    impl Write for Scripted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.write_vectored(&[IoSlice::new(buf)])
        }
        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.calls_left == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls_left -= 1;
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.per_call - n);
                self.out.extend_from_slice(&b[..take]);
                n += take;
                if n == self.per_call {
                    break;
                }
            }
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn t() -> Instant {
        Instant::now()
    }

    fn f(s: &str) -> Frame {
        Frame::from(s.as_bytes())
    }

    #[test]
    fn ticks_are_reported_once_by_the_write_that_completes_them() {
        let mut o = Outbox::new(10);
        o.try_push(f("reply"), t()).unwrap();
        o.try_push_range(&f("abcdef").into_shared(), 0..6, 2, 7, t())
            .unwrap();
        o.try_push_range(&f("gh").into_shared(), 0..2, 1, 9, t())
            .unwrap();
        let mut delivered = Vec::new();
        let mut w = Scripted {
            out: Vec::new(),
            per_call: 8,
            calls_left: 1,
        };
        let p = o
            .write_recording(&mut w, |ts, n| delivered.push((ts, n)))
            .unwrap();
        assert_eq!(p.frames, 1, "the reply and 3 bytes of the first batch");
        assert!(
            delivered.is_empty(),
            "a half-written batch is not delivered"
        );
        w.calls_left = 2;
        o.write_recording(&mut w, |ts, n| delivered.push((ts, n)))
            .unwrap();
        assert_eq!(delivered, [(7, 2), (9, 1)]);
        assert_eq!(w.out, b"replyabcdefgh");
    }

    #[test]
    fn an_idle_outbox_holds_no_heap_and_takes_pushes_again() {
        let mut w = Scripted {
            out: Vec::with_capacity(1000),
            per_call: 1000,
            calls_left: 10,
        };
        let before = crate::test_alloc::live_bytes();
        let mut o = Outbox::new(200);
        for _ in 0..100 {
            o.try_push(f("x"), t()).unwrap();
        }
        o.release_idle();
        assert_eq!(o.len(), 100, "a queue with frames keeps them");
        assert!(o.write_to(&mut w).unwrap().drained);
        assert!(
            crate::test_alloc::live_bytes() > before,
            "the drained queue still holds its slots"
        );
        o.release_idle();
        assert_eq!(crate::test_alloc::live_bytes(), before);
        o.try_push(f("y"), t()).unwrap();
        w.calls_left = 1;
        o.write_to(&mut w).unwrap();
        assert_eq!(w.out.len(), 101);
        assert_eq!(w.out.last(), Some(&b'y'));
    }

    #[test]
    fn the_oldest_entry_is_the_head_until_it_is_written() {
        let (t1, t2) = (t(), t() + std::time::Duration::from_millis(5));
        let mut o = Outbox::new(10);
        assert_eq!(o.oldest(), None);
        o.try_push(f("abc"), t1).unwrap();
        o.try_push(f("de"), t2).unwrap();
        let mut w = Scripted {
            out: vec![],
            per_call: 2,
            calls_left: 1,
        };
        o.write_to(&mut w).unwrap();
        assert_eq!(o.oldest(), Some(t1), "a half-written head still counts");
        w.calls_left = 1;
        w.per_call = 1;
        o.write_to(&mut w).unwrap();
        assert_eq!(o.oldest(), Some(t2));
        w.calls_left = 10;
        o.write_to(&mut w).unwrap();
        assert_eq!(o.oldest(), None);
    }

    #[test]
    fn len_empty_full() {
        let mut o = Outbox::new(2);
        assert!(o.is_empty());
        o.try_push(f("a"), t()).unwrap();
        o.try_push(f("b"), t()).unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o.try_push(f("c"), t()), Err(PushError::Full));
    }

    #[test]
    fn prefetching_the_tail_changes_nothing() {
        // Empty, filled, wrapped round the ring, and full: the hint may
        // point one past the ring's end, and the queue stays as it was.
        let mut o = Outbox::new(100);
        o.prefetch_back();
        let mut sink = Vec::new();
        let mut want = Vec::new();
        for round in 0..40u8 {
            let payload = [b'a' + round % 26];
            o.try_push(f(std::str::from_utf8(&payload).unwrap()), t())
                .unwrap();
            want.push(payload[0]);
            o.prefetch_back();
            if round % 3 == 2 {
                o.write_to(&mut sink).unwrap();
            }
        }
        let mut full = Outbox::new(2);
        for s in ["x", "y"] {
            full.try_push(f(s), t()).unwrap();
            full.prefetch_back();
        }
        assert_eq!(full.try_push(f("z"), t()), Err(PushError::Full));
        o.write_to(&mut sink).unwrap();
        assert_eq!(sink, want);
        assert!(o.is_empty());
    }

    #[test]
    fn partial_writes_resume_mid_frame_in_order() {
        let mut o = Outbox::new(10);
        for s in ["hello", "world", "!"] {
            o.try_push(f(s), t()).unwrap();
        }
        let mut w = Scripted {
            out: vec![],
            per_call: 3,
            calls_left: 2,
        };
        let p = o.write_to(&mut w).unwrap();
        assert_eq!(
            p,
            Progress {
                bytes: 6,
                frames: 1,
                drained: false
            }
        );
        assert_eq!(o.offset, 1, "one byte of \"world\" is out");
        w.calls_left = 100;
        let p = o.write_to(&mut w).unwrap();
        assert!(p.drained);
        assert_eq!(p.frames, 2);
        assert_eq!(w.out, b"helloworld!");
    }

    #[test]
    fn close_frame_goes_after_the_queue_even_when_full() {
        let mut o = Outbox::new(1);
        o.try_push(f("data"), t()).unwrap();
        o.push_close(f("CLOSE"), t());
        assert_eq!(o.try_push(f("late"), t()), Err(PushError::Closed));
        let mut w = Scripted {
            out: vec![],
            per_call: 100,
            calls_left: 10,
        };
        o.write_to(&mut w).unwrap();
        assert_eq!(w.out, b"dataCLOSE");
    }

    #[test]
    fn evict_keeps_a_half_written_head_and_drops_the_rest() {
        let mut o = Outbox::new(10);
        for s in ["abcdef", "ghij", "klm"] {
            o.try_push(f(s), t()).unwrap();
        }
        let mut w = Scripted {
            out: vec![],
            per_call: 2,
            calls_left: 1,
        };
        o.write_to(&mut w).unwrap();
        o.evict(f("X"), t());
        w.calls_left = 100;
        w.per_call = 100;
        o.write_to(&mut w).unwrap();
        assert_eq!(w.out, b"abcdefX");
    }

    #[test]
    fn evict_with_nothing_started_sends_only_the_close() {
        let mut o = Outbox::new(10);
        o.try_push(f("abc"), t()).unwrap();
        o.evict(f("X"), t());
        let mut w = Scripted {
            out: vec![],
            per_call: 100,
            calls_left: 10,
        };
        o.write_to(&mut w).unwrap();
        assert_eq!(w.out, b"X");
    }

    #[test]
    fn many_frames_go_out_in_few_writes() {
        let mut o = Outbox::new(10_000);
        for i in 0..1000 {
            o.try_push(f(&format!("{i:04}")), t()).unwrap();
        }
        let mut w = Scripted {
            out: vec![],
            per_call: usize::MAX,
            calls_left: 100,
        };
        let p = o.write_to(&mut w).unwrap();
        assert_eq!(p.frames, 1000);
        assert_eq!(100 - w.calls_left, 1000usize.div_ceil(MAX_IOV));
    }

    #[test]
    fn batches_count_their_frames_against_the_capacity() {
        let mut o = Outbox::new(5);
        o.try_push_batch(f("abc"), 3, t()).unwrap();
        assert_eq!(o.len(), 3);
        assert_eq!(o.try_push_batch(f("de"), 3, t()), Err(PushError::Full));
        o.try_push_batch(f("de"), 2, t()).unwrap();
        let mut w = Scripted {
            out: vec![],
            per_call: 100,
            calls_left: 10,
        };
        let p = o.write_to(&mut w).unwrap();
        assert_eq!((p.frames, o.len()), (5, 0));
    }

    #[test]
    fn evict_cuts_a_half_sent_batch_after_the_current_frame() {
        let a = crate::encode::text(b"first");
        let b = crate::encode::text(b"second");
        let mut batch = a.as_bytes().to_vec();
        batch.extend_from_slice(b.as_bytes());
        let mut o = Outbox::new(10);
        o.try_push_batch(Frame::from(batch), 2, t()).unwrap();
        o.try_push(f("later"), t()).unwrap();
        let mut w = Scripted {
            out: vec![],
            per_call: 3,
            calls_left: 1,
        };
        o.write_to(&mut w).unwrap();
        o.evict(f("X"), t());
        w.per_call = 100;
        w.calls_left = 10;
        o.write_to(&mut w).unwrap();
        let mut want = a.as_bytes().to_vec();
        want.push(b'X');
        assert_eq!(w.out, want, "the frame in flight completes, then the close");
    }

    /// A chunk holding three connections' batches: `x`, `yz` and `w`
    /// frames, one after the other.
    fn chunk() -> (Arc<[u8]>, [std::ops::Range<usize>; 3], Vec<Frame>) {
        let frames: Vec<Frame> = ["x", "yy", "zzz", "w"]
            .iter()
            .map(|s| crate::encode::text(s.as_bytes()))
            .collect();
        let mut bytes = Vec::new();
        let mut at = vec![0];
        for f in &frames {
            bytes.extend_from_slice(f.as_bytes());
            at.push(bytes.len());
        }
        (
            Arc::from(bytes),
            [at[0]..at[1], at[1]..at[3], at[3]..at[4]],
            frames,
        )
    }

    #[test]
    fn a_range_of_a_shared_chunk_writes_only_its_own_bytes() {
        let (bytes, ranges, frames) = chunk();
        let mut o = Outbox::new(10);
        o.try_push(f("reply"), t()).unwrap();
        o.try_push_range(&bytes, ranges[1].clone(), 2, 5, t())
            .unwrap();
        assert_eq!(o.len(), 3, "the range counts its two frames");
        // One byte at a time: every resume lands inside the range.
        let mut w = Scripted {
            out: vec![],
            per_call: 1,
            calls_left: 1000,
        };
        let mut delivered = Vec::new();
        let p = o
            .write_recording(&mut w, |ts, n| delivered.push((ts, n)))
            .unwrap();
        assert!(p.drained);
        assert_eq!(p.frames, 3);
        assert_eq!(delivered, vec![(5, 2)]);
        let mut want = b"reply".to_vec();
        want.extend_from_slice(frames[1].as_bytes());
        want.extend_from_slice(frames[2].as_bytes());
        assert_eq!(w.out, want, "nothing of the neighbours' ranges");
    }

    #[test]
    fn evict_cuts_a_half_sent_range_after_its_current_frame() {
        let (bytes, ranges, frames) = chunk();
        let mut o = Outbox::new(10);
        o.try_push_range(&bytes, ranges[1].clone(), 2, 5, t())
            .unwrap();
        o.try_push_range(&bytes, ranges[2].clone(), 1, 6, t())
            .unwrap();
        let mut w = Scripted {
            out: vec![],
            per_call: 1,
            calls_left: 1,
        };
        o.write_to(&mut w).unwrap();
        o.evict(f("X"), t());
        w.per_call = 100;
        w.calls_left = 10;
        o.write_to(&mut w).unwrap();
        let mut want = frames[1].as_bytes().to_vec();
        want.push(b'X');
        assert_eq!(w.out, want, "the frame in flight completes, then the close");
        // An eviction with the head's range untouched drops it whole.
        let mut o = Outbox::new(10);
        o.try_push_range(&bytes, ranges[2].clone(), 1, 6, t())
            .unwrap();
        o.evict(f("X"), t());
        let mut sink = Vec::new();
        o.write_to(&mut sink).unwrap();
        assert_eq!(sink, b"X");
    }
    #[test]
    fn frame_boundaries_follow_the_headers() {
        let small = crate::encode::text(&[b'x'; 10]);
        let mid = crate::encode::text(&[b'y'; 300]);
        let mut run = small.as_bytes().to_vec();
        run.extend_from_slice(mid.as_bytes());
        assert_eq!(frame_boundary(&run, 0), 12);
        assert_eq!(frame_boundary(&run, 11), 12);
        assert_eq!(frame_boundary(&run, 12), run.len());
    }

    #[test]
    fn evict_never_cuts_a_half_sent_http_response() {
        // "HT" reads as the header of an 86-byte frame: an HTTP response
        // must be finished whole, not cut there.
        let resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n".to_vec();
        assert!(resp.len() > 86);
        let mut o = Outbox::new(10);
        o.try_push_http(resp.clone(), t()).unwrap();
        o.try_push(f("welcome"), t()).unwrap();
        let mut w = Scripted {
            out: vec![],
            per_call: 3,
            calls_left: 1,
        };
        o.write_to(&mut w).unwrap();
        o.evict(f("X"), t());
        w.per_call = 1000;
        w.calls_left = 10;
        o.write_to(&mut w).unwrap();
        let mut want = resp;
        want.push(b'X');
        assert_eq!(w.out, want);
    }

    #[test]
    fn a_writer_accepting_nothing_is_an_error() {
        struct Zero;
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut o = Outbox::new(1);
        o.try_push(f("a"), t()).unwrap();
        assert_eq!(
            o.write_to(&mut Zero).unwrap_err().kind(),
            io::ErrorKind::WriteZero
        );
    }
}
