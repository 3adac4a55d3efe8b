//! What the broadcaster counts, and where each count lives.
//!
//! Two kinds of state, so that the hot path touches no shared memory:
//!
//! - [`Counters`]: process-wide relaxed atomics for events that happen
//!   once per tick or per socket on threads other than the shards
//!   (publish, accept). Statistics, not synchronization.
//! - Per shard, [`ShardCounts`] and a [`Latency`] histogram, owned by the
//!   shard thread as plain integers. The shard copies its counts into its
//!   [`ShardCell`] (a `parking_lot` mutex nobody else holds for long) once
//!   per loop turn when they changed, and merges its histogram into the
//!   cell once a second ([`MERGE_EVERY`]). A scrape locks each cell in
//!   turn and sums them ([`Metrics`]): per write, a shard pays a few
//!   additions, and one write in [`SAMPLE_EVERY`] a clock read and a
//!   histogram record per batch; never an atomic.
//!
//! The labels ([`Disconnect`], [`HandshakeFailure`]) are the same in the
//! counters, the Prometheus text, the `/stats` JSON and the connection log.

mod feeds;
mod render;
mod snapshot;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

pub(crate) use feeds::{FeedCell, FeedCells};
pub(crate) use render::PROMETHEUS_CONTENT_TYPE;
pub(crate) use snapshot::ProcessFigures;
pub use snapshot::{LatencySummary, Metrics, ShardMetrics};

/// Process-wide counters of the threads other than the shards (the
/// connection and socket counts are kept by `Admission`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) accepted: AtomicU64,
    pub(crate) ticks_published: AtomicU64,
    pub(crate) ticks_rejected: AtomicU64,
    pub(crate) accept_errors: AtomicU64,
    /// The upstream feeds (`Config::feeds`).
    pub(crate) feeds: FeedCells,
}

/// Adds one to `counter`.
pub(crate) fn count(counter: &AtomicU64) {
    count_n(counter, 1);
}

/// Adds `n` to `counter` (a batch of ticks counted at once).
pub(crate) fn count_n(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Relaxed);
}

/// Why an open WebSocket connection ended: one per connection, counted
/// once, when it stops being open (the label of `tickcast_closes_total`
/// and the `reason` of the connection's log line).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Disconnect {
    /// 4001: its outbound queue overflowed.
    SlowConsumer,
    /// 4001: it lagged more than `max_lag` behind the stream.
    Lag,
    /// 4002: silent for three heartbeats.
    Heartbeat,
    /// 1002 or 1007: a WebSocket protocol violation.
    Protocol,
    /// 1009: a message over `max_message_size`.
    Oversize,
    /// 4008: a request flood.
    RateLimited,
    /// 1008: its token expired.
    Expired,
    /// The client closed with a close frame.
    Normal,
    /// 1001: the server shut down.
    Shutdown,
    /// The socket ended without a close handshake (EOF, reset, I/O error).
    Dropped,
}

impl Disconnect {
    /// Every reason, in the order of `ShardCounts::disconnects`.
    pub const ALL: [Disconnect; 10] = [
        Disconnect::SlowConsumer,
        Disconnect::Lag,
        Disconnect::Heartbeat,
        Disconnect::Protocol,
        Disconnect::Oversize,
        Disconnect::RateLimited,
        Disconnect::Expired,
        Disconnect::Normal,
        Disconnect::Shutdown,
        Disconnect::Dropped,
    ];

    /// The label value: `slow_consumer`, `lag`, `heartbeat`, …
    pub fn label(self) -> &'static str {
        match self {
            Disconnect::SlowConsumer => "slow_consumer",
            Disconnect::Lag => "lag",
            Disconnect::Heartbeat => "heartbeat",
            Disconnect::Protocol => "protocol",
            Disconnect::Oversize => "oversize",
            Disconnect::RateLimited => "rate_limited",
            Disconnect::Expired => "expired",
            Disconnect::Normal => "normal",
            Disconnect::Shutdown => "shutdown",
            Disconnect::Dropped => "dropped",
        }
    }
}

/// Why a socket never became an open WebSocket (the label of
/// `tickcast_handshake_failures_total`). Successful plain HTTP requests
/// (`/healthz`, the pages, `/metrics`) are not failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HandshakeFailure {
    /// 400: a malformed request or upgrade.
    BadRequest,
    /// 401: missing or invalid token.
    Unauthorized,
    /// 403: origin not allowed.
    Forbidden,
    /// 404: no such path.
    NotFound,
    /// 405: a method other than GET or HEAD on a page.
    MethodNotAllowed,
    /// 426: not an upgrade, or a WebSocket version other than 13.
    UpgradeRequired,
    /// 429: the per-IP or the per-user limit.
    TooMany,
    /// 503: the connection limit.
    Full,
    /// The request head did not arrive within `handshake_timeout`.
    Timeout,
    /// The peer closed or reset the socket before the upgrade finished.
    Dropped,
    /// Not TLS on a TLS port: a plaintext client, garbage records, a
    /// failed TLS handshake.
    Tls,
}

impl HandshakeFailure {
    /// Every reason, in the order of `ShardCounts::handshake_failures`.
    pub const ALL: [HandshakeFailure; 11] = [
        HandshakeFailure::BadRequest,
        HandshakeFailure::Unauthorized,
        HandshakeFailure::Forbidden,
        HandshakeFailure::NotFound,
        HandshakeFailure::MethodNotAllowed,
        HandshakeFailure::UpgradeRequired,
        HandshakeFailure::TooMany,
        HandshakeFailure::Full,
        HandshakeFailure::Timeout,
        HandshakeFailure::Dropped,
        HandshakeFailure::Tls,
    ];

    /// The failure an HTTP error status stands for (any other 4xx/5xx is
    /// counted as a bad request).
    pub(crate) fn from_status(status: u16) -> HandshakeFailure {
        match status {
            401 => HandshakeFailure::Unauthorized,
            403 => HandshakeFailure::Forbidden,
            404 => HandshakeFailure::NotFound,
            405 => HandshakeFailure::MethodNotAllowed,
            426 => HandshakeFailure::UpgradeRequired,
            429 => HandshakeFailure::TooMany,
            503 => HandshakeFailure::Full,
            _ => HandshakeFailure::BadRequest,
        }
    }

    /// The label value: the HTTP status (`"404"`), or `timeout`, `dropped`,
    /// `tls`.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::BadRequest => "400",
            HandshakeFailure::Unauthorized => "401",
            HandshakeFailure::Forbidden => "403",
            HandshakeFailure::NotFound => "404",
            HandshakeFailure::MethodNotAllowed => "405",
            HandshakeFailure::UpgradeRequired => "426",
            HandshakeFailure::TooMany => "429",
            HandshakeFailure::Full => "503",
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Dropped => "dropped",
            HandshakeFailure::Tls => "tls",
        }
    }
}

/// One shard's counts, kept as plain integers by the shard thread.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ShardCounts {
    /// Frames (ticks, replies, control frames) completely written.
    pub(crate) frames_sent: u64,
    /// Bytes written to sockets.
    pub(crate) bytes_sent: u64,
    /// Per [`Disconnect`], in the order of [`Disconnect::ALL`].
    pub(crate) disconnects: [u64; Disconnect::ALL.len()],
    /// Per [`HandshakeFailure`], in the order of [`HandshakeFailure::ALL`].
    pub(crate) handshake_failures: [u64; HandshakeFailure::ALL.len()],
    /// Open WebSocket connections on the shard now.
    pub(crate) connections: u64,
    /// Sockets the shard holds now: handshaking, open and closing.
    pub(crate) sockets: u64,
    /// Frames queued in the shard's outboxes at the last housekeeping.
    pub(crate) outbox_frames: u64,
}

impl ShardCounts {
    pub(crate) fn disconnected(&mut self, why: Disconnect) {
        self.disconnects[why as usize] += 1;
    }

    pub(crate) fn handshake_failed(&mut self, why: HandshakeFailure) {
        self.handshake_failures[why as usize] += 1;
    }
}

/// Largest latency the histogram tells apart, in microseconds (a minute);
/// longer ones are recorded as this. Nothing stays queued that long: the
/// lag eviction (`max_lag`, 5 s by default) comes first.
const LATENCY_MAX_US: u64 = 60_000_000;
/// Significant digits kept: 1% resolution at any latency, plenty for
/// percentiles. The counts array is then 2,560 slots (20 KiB) rather than
/// ~17,000 with 3 digits: merging and clearing it is what the histogram
/// costs a shard besides the records (measured under callgrind: with 3
/// digits merged every 100 ms it was ~30% of the server's instructions
/// at 10,000 frames/s).
const LATENCY_SIGFIG: u8 = 2;

/// Publish-to-write latencies in microseconds: from the moment
/// `Publisher::publish` accepted a tick (its `ts`) to the socket write
/// that carried its last byte.
#[derive(Debug, Clone)]
pub(crate) struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Latency {
        // The bounds are constants that hdrhistogram accepts (1 ≤ low,
        // high ≥ 2·low, sigfig ≤ 5): this cannot fail.
        Latency(
            Histogram::new_with_bounds(1, LATENCY_MAX_US, LATENCY_SIGFIG)
                .expect("valid constant histogram bounds"),
        )
    }
}

impl Latency {
    /// Records `frames` ticks published at `published_ns` and written at
    /// `written_ns` (both nanoseconds since the UNIX epoch).
    #[inline]
    pub(crate) fn record(&mut self, published_ns: u64, written_ns: u64, frames: usize) {
        let us = written_ns.saturating_sub(published_ns) / 1_000;
        self.0.saturating_record_n(us, frames as u64);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Adds `other`'s records (same bounds: cannot fail).
    pub(crate) fn add(&mut self, other: &Latency) {
        let _ = self.0.add(&other.0);
    }

    pub(crate) fn reset(&mut self) {
        self.0.reset();
    }

    pub(crate) fn histogram(&self) -> &Histogram<u64> {
        &self.0
    }
}

/// One socket write in this many records the latency of the ticks it
/// completes. Recording every write cost ~120 instructions per write
/// (hdrhistogram's `record_n` ~60, the clock read and arithmetic ~50),
/// ~10% of all the server's instructions per frame when each write
/// carries one tick (loadtest/callgrind.sh); one in 8 keeps that near 1%
/// and still samples 1,250 of every 10,000 writes.
pub(crate) const SAMPLE_EVERY: u32 = 8;

/// Picks the writes that record latencies: every [`SAMPLE_EVERY`]th, or
/// the next one after it if that one completed no ticks. A countdown
/// rather than a random draw: cheaper, and a client's writes interleave
/// with the others' in the write pass, so no connection or position in
/// the pass is favoured for long.
#[derive(Debug, Default)]
pub(crate) struct Sampler {
    until: u32,
}

impl Sampler {
    /// Whether the next write is sampled.
    #[inline]
    pub(crate) fn take(&mut self) -> bool {
        if self.until == 0 {
            true
        } else {
            self.until -= 1;
            false
        }
    }

    /// The sampled write recorded ticks: count down again.
    #[inline]
    pub(crate) fn used(&mut self) {
        self.until = SAMPLE_EVERY - 1;
    }
}

/// How often a shard merges its latencies into its cell: scrapes see
/// latencies at most this old, and the `/stats` `publish_to_write_1s`
/// figures are those of the last such interval.
pub(crate) const MERGE_EVERY: Duration = Duration::from_secs(1);

/// What a shard publishes for scrapes.
#[derive(Debug)]
pub(crate) struct Published {
    pub(crate) counts: ShardCounts,
    /// Every latency since start.
    pub(crate) latency: Latency,
    /// The latencies of the last merge interval ([`MERGE_EVERY`]).
    pub(crate) last_window: Latency,
}

/// One shard's published metrics: written by the shard (once per turn for
/// counts, once per housekeeping for latencies), read by scrapes.
#[derive(Debug)]
pub(crate) struct ShardCell(Mutex<Published>);

impl Default for ShardCell {
    fn default() -> ShardCell {
        ShardCell(Mutex::new(Published {
            counts: ShardCounts::default(),
            latency: Latency::default(),
            last_window: Latency::default(),
        }))
    }
}

impl ShardCell {
    /// Publishes the shard's current counts.
    pub(crate) fn set_counts(&self, counts: &ShardCounts) {
        self.0.lock().counts.clone_from(counts);
    }

    /// Moves `local`'s records into the cell, where they become the last
    /// interval's, and leaves `local` empty. Call every [`MERGE_EVERY`].
    /// One pass over the counts to add and one to clear, none when idle.
    pub(crate) fn merge_latency(&self, local: &mut Latency) {
        let mut p = self.0.lock();
        if !local.is_empty() {
            p.latency.add(local);
        }
        std::mem::swap(&mut p.last_window, local);
        if !local.is_empty() {
            local.reset();
        }
    }

    /// Runs `f` on the published state, under the lock.
    pub(crate) fn read<R>(&self, f: impl FnOnce(&Published) -> R) -> R {
        f(&self.0.lock())
    }
}

/// Every shard's cell, created with the runtime (before the shards).
#[derive(Debug)]
pub(crate) struct ShardCells(Box<[ShardCell]>);

impl ShardCells {
    pub(crate) fn new(shards: usize) -> ShardCells {
        ShardCells((0..shards).map(|_| ShardCell::default()).collect())
    }

    /// Shard `i`'s cell. Every shard id is below the count given to
    /// [`ShardCells::new`].
    pub(crate) fn get(&self, i: usize) -> &ShardCell {
        &self.0[i]
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &ShardCell> {
        self.0.iter()
    }
}

/// A point-in-time copy of the broadcaster's counters. Counts are since
/// start; `connections` and `sockets` are current. [`Metrics`] has the
/// same per shard, by reason, and the latency. Each shard publishes its
/// counts at the end of a loop turn, so a count may trail by one turn what
/// a client has already seen (a close frame, say).
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
    /// Upstream feeds configured (`Config::feeds`).
    pub feeds: usize,
    /// Upstream feeds down now (unreachable, or not yet connected).
    pub feeds_down: usize,
    /// Reconnect attempts of the upstream feeds.
    pub feed_reconnects: u64,
    /// `accept` errors (such as EMFILE); each backs off the acceptor.
    pub accept_errors: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_index_their_arrays_in_order() {
        for (i, d) in Disconnect::ALL.iter().enumerate() {
            assert_eq!(*d as usize, i, "{d:?}");
        }
        for (i, h) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(*h as usize, i, "{h:?}");
        }
        let statuses = [400, 401, 403, 404, 405, 426, 429, 503];
        for (status, h) in statuses.iter().zip(HandshakeFailure::ALL) {
            assert_eq!(HandshakeFailure::from_status(*status), h);
            assert_eq!(h.label(), status.to_string());
        }
        assert_eq!(
            HandshakeFailure::from_status(413),
            HandshakeFailure::BadRequest
        );
    }

    #[test]
    fn latency_is_recorded_in_microseconds_and_saturates() {
        let mut l = Latency::default();
        l.record(1_000_000, 1_250_000, 4); // 250 µs, four ticks
        l.record(2_000, 1_000, 1); // a clock step back: 0, not a wrap
        l.record(0, u64::MAX, 1); // beyond a minute: a minute
        let h = l.histogram();
        assert_eq!(h.len(), 6);
        assert_eq!(h.value_at_quantile(0.5), 250);
        assert_eq!(h.min(), 0);
        assert!(h.max() >= LATENCY_MAX_US && h.max() < LATENCY_MAX_US * 101 / 100);
    }

    #[test]
    fn one_write_in_sample_every_records_and_a_miss_moves_the_sample_on() {
        let mut s = Sampler::default();
        assert!(s.take(), "the first write is sampled");
        assert!(s.take(), "it recorded nothing: the next one is");
        s.used();
        let taken: Vec<bool> = (0..SAMPLE_EVERY).map(|_| s.take()).collect();
        assert_eq!(taken.iter().filter(|t| **t).count(), 1);
        assert!(taken[SAMPLE_EVERY as usize - 1]);
    }

    #[test]
    fn a_merge_adds_to_the_total_and_replaces_the_last_interval() {
        let cell = ShardCell::default();
        let mut local = Latency::default();
        local.record(0, 100_000, 2);
        cell.merge_latency(&mut local);
        assert!(local.is_empty());
        assert!(
            cell.read(|p| p.last_window.histogram().len() == 2 && p.latency.histogram().len() == 2)
        );
        local.record(0, 100_000, 1);
        cell.merge_latency(&mut local);
        assert!(
            cell.read(|p| p.last_window.histogram().len() == 1 && p.latency.histogram().len() == 3)
        );
        cell.merge_latency(&mut local);
        assert!(cell.read(|p| p.last_window.is_empty() && p.latency.histogram().len() == 3));
    }
}
