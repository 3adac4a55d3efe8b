//! [`Outbox`]: a connection's bounded queue of outbound frames.
//!
//! Invariant: bytes leave a connection in whole frames, in push order.
//! `offset` is the number of bytes of the head frame already written; every
//! other queued frame is untouched. Because every reply, pong and close frame
//! is queued here too (never written to the socket directly), a control
//! frame can never land inside a half-sent broadcast frame.
//!
//! The queue is bounded in frames ([`Outbox::capacity`]); a push into a full
//! queue fails and the caller evicts the connection (close 4001). Only the
//! final close frame may exceed the bound. Pure: no mio, no sockets, tested
//! with scripted writers.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};

use crate::Frame;

/// How many frames one `writev` carries at most. Linux's `IOV_MAX` is 1024;
/// 256 frames of a typical 150-byte tick is ~38 KiB per syscall, enough to
/// amortize the syscall while keeping the iovec array on the stack small.
const MAX_IOV: usize = 256;

/// The queue refuses a push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// `capacity` frames are already queued: the consumer is too slow.
    Full,
    /// A close frame has been queued; nothing may follow it.
    Closed,
}

/// What one [`Outbox::write_to`] call achieved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Bytes accepted by the writer.
    pub bytes: usize,
    /// Frames completely written (and dropped from the queue).
    pub frames: usize,
    /// True if and only if the queue is now empty.
    pub drained: bool,
}

/// A bounded FIFO of [`Frame`]s with a resume offset into the head frame.
#[derive(Debug)]
pub struct Outbox {
    queue: VecDeque<Frame>,
    /// Bytes of `queue[0]` already written; 0 when the queue is empty.
    offset: usize,
    /// Most frames the queue holds before `try_push` fails.
    capacity: usize,
    /// A close frame is queued (or the queue was abandoned); no more pushes.
    closed: bool,
}

impl Outbox {
    /// An empty outbox holding at most `capacity` frames (at least 1).
    pub fn new(capacity: usize) -> Outbox {
        Outbox {
            queue: VecDeque::new(),
            offset: 0,
            capacity: capacity.max(1),
            closed: false,
        }
    }

    /// Queues `frame` at the back.
    ///
    /// # Errors
    /// [`PushError::Full`] if `capacity` frames are queued (evict the
    /// connection), [`PushError::Closed`] after [`Outbox::push_close`].
    pub fn try_push(&mut self, frame: Frame) -> Result<(), PushError> {
        if self.closed {
            return Err(PushError::Closed);
        }
        if self.queue.len() >= self.capacity {
            return Err(PushError::Full);
        }
        self.queue.push_back(frame);
        self.check_invariants();
        Ok(())
    }

    /// Queues a final close frame after everything already queued, even if
    /// the queue is full. Later pushes fail with [`PushError::Closed`].
    /// Does nothing if a close frame is already queued.
    pub fn push_close(&mut self, close: Frame) {
        if !self.closed {
            self.closed = true;
            self.queue.push_back(close);
        }
        self.check_invariants();
    }

    /// Drops every frame not yet started (a half-written head frame is
    /// kept, so the stream stays well-formed) and queues `close`. Used to
    /// evict a slow consumer: it gets its close frame as soon as its socket
    /// accepts it, without first receiving the backlog.
    pub fn evict(&mut self, close: Frame) {
        let keep = usize::from(self.offset > 0);
        self.queue.truncate(keep);
        self.closed = false;
        self.push_close(close);
    }

    /// Writes queued frames to `w` with vectored writes, many frames per
    /// call, until the queue is empty or `w` returns `WouldBlock`.
    ///
    /// # Errors
    /// Any error of `w` other than `WouldBlock` and `Interrupted`, and
    /// `WriteZero` if `w` accepts nothing.
    pub fn write_to<W: Write>(&mut self, w: &mut W) -> io::Result<Progress> {
        let mut progress = Progress::default();
        while !self.queue.is_empty() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let mut n = 0;
            for (i, f) in self.queue.iter().take(MAX_IOV).enumerate() {
                let bytes = if i == 0 {
                    &f.as_bytes()[self.offset..]
                } else {
                    f.as_bytes()
                };
                slices[i] = IoSlice::new(bytes);
                n += 1;
            }
            match w.write_vectored(&slices[..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(written) => {
                    progress.bytes += written;
                    progress.frames += self.advance(written);
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

    /// Consumes `n` written bytes; returns how many frames completed.
    fn advance(&mut self, mut n: usize) -> usize {
        let mut done = 0;
        while n > 0 {
            let Some(head) = self.queue.front() else {
                break;
            };
            let left = head.len() - self.offset;
            if n >= left {
                n -= left;
                self.offset = 0;
                self.queue.pop_front();
                done += 1;
            } else {
                self.offset += n;
                n = 0;
            }
        }
        done
    }

    /// Number of queued frames (a half-written head counts).
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Returns true if and only if nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The most frames `try_push` accepts.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Returns true if and only if a close frame has been queued.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Returns true if and only if the head frame is partly written.
    pub fn is_mid_frame(&self) -> bool {
        self.offset > 0
    }

    fn check_invariants(&self) {
        debug_assert!(self.queue.front().is_none_or(|f| self.offset < f.len()));
        debug_assert!(!self.queue.is_empty() || self.offset == 0);
        debug_assert!(self.queue.len() <= self.capacity + 2);
    }
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

    fn f(s: &str) -> Frame {
        Frame::from(s.as_bytes())
    }

    #[test]
    fn len_empty_full() {
        let mut o = Outbox::new(2);
        assert!(o.is_empty());
        o.try_push(f("a")).unwrap();
        o.try_push(f("b")).unwrap();
        assert_eq!(o.len(), 2);
        assert_eq!(o.try_push(f("c")), Err(PushError::Full));
    }

    #[test]
    fn partial_writes_resume_mid_frame_in_order() {
        let mut o = Outbox::new(10);
        for s in ["hello", "world", "!"] {
            o.try_push(f(s)).unwrap();
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
        assert!(o.is_mid_frame());
        w.calls_left = 100;
        let p = o.write_to(&mut w).unwrap();
        assert!(p.drained);
        assert_eq!(p.frames, 2);
        assert_eq!(w.out, b"helloworld!");
    }

    #[test]
    fn close_frame_goes_after_the_queue_even_when_full() {
        let mut o = Outbox::new(1);
        o.try_push(f("data")).unwrap();
        o.push_close(f("CLOSE"));
        assert_eq!(o.try_push(f("late")), Err(PushError::Closed));
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
            o.try_push(f(s)).unwrap();
        }
        let mut w = Scripted {
            out: vec![],
            per_call: 2,
            calls_left: 1,
        };
        o.write_to(&mut w).unwrap();
        o.evict(f("X"));
        w.calls_left = 100;
        w.per_call = 100;
        o.write_to(&mut w).unwrap();
        assert_eq!(w.out, b"abcdefX");
    }

    #[test]
    fn evict_with_nothing_started_sends_only_the_close() {
        let mut o = Outbox::new(10);
        o.try_push(f("abc")).unwrap();
        o.evict(f("X"));
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
            o.try_push(f(&format!("{i:04}"))).unwrap();
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
        o.try_push(f("a")).unwrap();
        assert_eq!(
            o.write_to(&mut Zero).unwrap_err().kind(),
            io::ErrorKind::WriteZero
        );
    }
}
