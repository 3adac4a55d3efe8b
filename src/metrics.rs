//! Counters kept by every thread and summed by
//! [`Broadcaster::stats`](crate::Broadcaster::stats).
//!
//! All counters are relaxed atomics: they are statistics, not
//! synchronization. Shards add their hot counters (frames, bytes) once per
//! loop turn rather than once per frame.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Process-wide counters (the connection and socket counts are kept by
/// `Admission`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) ticks_published: AtomicU64,
    pub(crate) ticks_rejected: AtomicU64,
    pub(crate) frames_sent: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) evicted_slow: AtomicU64,
    pub(crate) evicted_lag: AtomicU64,
    pub(crate) heartbeat_timeouts: AtomicU64,
    pub(crate) closed_protocol: AtomicU64,
    pub(crate) closed_oversize: AtomicU64,
    pub(crate) closed_rate_limit: AtomicU64,
    pub(crate) closed_expired: AtomicU64,
    pub(crate) handshakes_failed: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
}

impl Counters {
    /// The counters; the caller fills in the admission counts
    /// (`connections`, `sockets`, `refused_full`).
    pub(crate) fn snapshot(&self) -> Stats {
        Stats {
            connections: 0,
            sockets: 0,
            accepted: self.accepted.load(Relaxed),
            ticks_published: self.ticks_published.load(Relaxed),
            ticks_rejected: self.ticks_rejected.load(Relaxed),
            frames_sent: self.frames_sent.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            evicted_slow: self.evicted_slow.load(Relaxed),
            evicted_lag: self.evicted_lag.load(Relaxed),
            heartbeat_timeouts: self.heartbeat_timeouts.load(Relaxed),
            closed_protocol: self.closed_protocol.load(Relaxed),
            closed_oversize: self.closed_oversize.load(Relaxed),
            closed_rate_limit: self.closed_rate_limit.load(Relaxed),
            closed_expired: self.closed_expired.load(Relaxed),
            handshakes_failed: self.handshakes_failed.load(Relaxed),
            refused_full: 0,
            accept_errors: self.accept_errors.load(Relaxed),
        }
    }
}

/// Adds one to `counter`.
pub(crate) fn count(counter: &AtomicU64) {
    counter.fetch_add(1, Relaxed);
}

/// A point-in-time copy of the broadcaster's counters. Counts are since
/// start; `connections` and `sockets` are current.
///
/// ```
/// # let b = tickcast::Broadcaster::start(tickcast::Config {
/// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
/// #     ..Default::default() }).unwrap();
/// let s: tickcast::Stats = b.stats();
/// println!("{} open, {} frames sent, {} evicted", s.connections, s.frames_sent, s.evicted_slow);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Open WebSocket connections (upgraded, not closing).
    pub connections: usize,
    /// Sockets held by the shards: handshaking, open and closing.
    pub sockets: usize,
    /// TCP connections accepted.
    pub accepted: u64,
    /// Ticks accepted by `publish` and sent to the shards.
    pub ticks_published: u64,
    /// Ticks `publish` returned because the publisher was behind.
    pub ticks_rejected: u64,
    /// Frames (ticks, replies, control frames) completely written.
    pub frames_sent: u64,
    /// Bytes written to sockets.
    pub bytes_sent: u64,
    /// Connections evicted with 4001 because their outbound queue
    /// overflowed.
    pub evicted_slow: u64,
    /// Connections evicted with 4001 because they lagged more than
    /// `Config::max_lag` behind the stream.
    pub evicted_lag: u64,
    /// Connections closed with 4002 (silent for three heartbeats).
    pub heartbeat_timeouts: u64,
    /// Connections closed for a WebSocket protocol violation (1002/1007).
    pub closed_protocol: u64,
    /// Connections closed with 1009 (message over the size limit).
    pub closed_oversize: u64,
    /// Connections closed with 4008 (request flood).
    pub closed_rate_limit: u64,
    /// Connections closed with 1008 (token expired).
    pub closed_expired: u64,
    /// Sockets that never completed the upgrade (refused, timed out, reset).
    pub handshakes_failed: u64,
    /// Sockets closed at once, and upgrades refused with 503, for the
    /// connection limit.
    pub refused_full: u64,
    /// `accept` errors (such as EMFILE); each backs off the acceptor.
    pub accept_errors: u64,
}
