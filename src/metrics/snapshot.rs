//! [`Metrics`]: every shard's published cell, summed at read time, with
//! the process-wide counters: what `/metrics`, `/stats` and
//! [`Broadcaster::metrics`](crate::Broadcaster::metrics) show.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use hdrhistogram::Histogram;

use super::{Counters, Disconnect, HandshakeFailure, Latency, ShardCells, ShardCounts, Stats};

/// Percentiles of publish-to-write latency, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Ticks recorded (each delivered tick counts once per connection).
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p999_us: u64,
    /// Largest recorded.
    pub max_us: u64,
    /// Mean.
    pub mean_us: f64,
}

impl LatencySummary {
    fn of(h: &Histogram<u64>) -> LatencySummary {
        if h.is_empty() {
            return LatencySummary::default();
        }
        LatencySummary {
            count: h.len(),
            p50_us: h.value_at_quantile(0.5),
            p90_us: h.value_at_quantile(0.9),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us: h.mean(),
        }
    }
}

/// One shard's metrics.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ShardMetrics {
    /// The shard's index (`tickcast-shard-N`).
    pub shard: usize,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Sockets held: handshaking, open and closing.
    pub sockets: u64,
    /// Frames completely written.
    pub frames_sent: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Frames queued in its outboxes (as of its last housekeeping, every
    /// 100 ms).
    pub outbox_frames: u64,
    /// Ended connections per reason, in the order of [`Disconnect::ALL`].
    pub closes: Vec<(Disconnect, u64)>,
    /// Failed handshakes per reason, in the order of
    /// [`HandshakeFailure::ALL`].
    pub handshake_failures: Vec<(HandshakeFailure, u64)>,
    /// Publish-to-write latency since start.
    pub publish_to_write: LatencySummary,
    /// Publish-to-write latency over the last complete second.
    pub publish_to_write_1s: LatencySummary,
}

impl ShardMetrics {
    /// Ended connections for `why`.
    pub fn closes_for(&self, why: Disconnect) -> u64 {
        self.closes[why as usize].1
    }
}

/// The process-wide figures that are not kept by the shards.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ProcessFigures {
    pub(crate) connections: usize,
    pub(crate) sockets: usize,
    pub(crate) refused_full: u64,
    pub(crate) uptime: Duration,
}

/// A point-in-time copy of every metric: the totals ([`Stats`]), the same
/// per shard, and the publish-to-write latency.
///
/// ```
/// # let b = tickcast::Broadcaster::start(tickcast::Config {
/// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
/// #     io_threads: 2, ..Default::default() }).unwrap();
/// let m = b.metrics();
/// assert_eq!(m.shards.len(), 2);
/// assert!(m.to_prometheus().contains("# TYPE tickcast_connections gauge"));
/// assert!(m.to_json().starts_with('{'));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// The totals, as [`Broadcaster::stats`](crate::Broadcaster::stats).
    pub stats: Stats,
    /// Time since the broadcaster started.
    pub uptime: Duration,
    /// Per shard.
    pub shards: Vec<ShardMetrics>,
    /// Publish-to-write latency of every shard, since start.
    pub publish_to_write: LatencySummary,
    /// Publish-to-write latency of every shard, over the last complete
    /// second.
    pub publish_to_write_1s: LatencySummary,
    /// The merged histogram, for the Prometheus buckets.
    pub(super) latency: Latency,
}

impl Metrics {
    /// Sums every shard's cell (each locked in turn, briefly) with the
    /// process-wide counters.
    pub(crate) fn collect(counters: &Counters, cells: &ShardCells, p: ProcessFigures) -> Metrics {
        let mut latency = Latency::default();
        let mut window = Latency::default();
        let mut total = ShardCounts::default();
        let mut shards = Vec::new();
        for (shard, cell) in cells.iter().enumerate() {
            let s = cell.read(|published| {
                latency.add(&published.latency);
                window.add(&published.last_window);
                shard_metrics(shard, published)
            });
            add_counts(&mut total, &s);
            shards.push(s);
        }
        let closes = |why: Disconnect| total.disconnects[why as usize];
        let stats = Stats {
            connections: p.connections,
            sockets: p.sockets,
            accepted: counters.accepted.load(Relaxed),
            ticks_published: counters.ticks_published.load(Relaxed),
            ticks_rejected: counters.ticks_rejected.load(Relaxed),
            frames_sent: total.frames_sent,
            bytes_sent: total.bytes_sent,
            evicted_slow: closes(Disconnect::SlowConsumer),
            evicted_lag: closes(Disconnect::Lag),
            heartbeat_timeouts: closes(Disconnect::Heartbeat),
            closed_protocol: closes(Disconnect::Protocol),
            closed_oversize: closes(Disconnect::Oversize),
            closed_rate_limit: closes(Disconnect::RateLimited),
            closed_expired: closes(Disconnect::Expired),
            handshakes_failed: total.handshake_failures.iter().sum(),
            refused_full: p.refused_full,
            accept_errors: counters.accept_errors.load(Relaxed),
            feeds: counters.feeds.configured(),
            feeds_down: counters.feeds.down(),
            feed_reconnects: counters.feeds.reconnects(),
        };
        Metrics {
            stats,
            uptime: p.uptime,
            shards,
            publish_to_write: LatencySummary::of(latency.histogram()),
            publish_to_write_1s: LatencySummary::of(window.histogram()),
            latency,
        }
    }

    /// Ended connections for `why`, over every shard.
    pub fn closes_for(&self, why: Disconnect) -> u64 {
        self.shards.iter().map(|s| s.closes_for(why)).sum()
    }

    /// Failed handshakes for `why`, over every shard.
    pub fn handshake_failures_for(&self, why: HandshakeFailure) -> u64 {
        self.shards
            .iter()
            .map(|s| s.handshake_failures[why as usize].1)
            .sum()
    }

    /// Frames queued in every outbox (as of each shard's last
    /// housekeeping).
    pub fn outbox_frames(&self) -> u64 {
        self.shards.iter().map(|s| s.outbox_frames).sum()
    }
}

fn shard_metrics(shard: usize, p: &super::Published) -> ShardMetrics {
    let c = &p.counts;
    ShardMetrics {
        shard,
        connections: c.connections,
        sockets: c.sockets,
        frames_sent: c.frames_sent,
        bytes_sent: c.bytes_sent,
        outbox_frames: c.outbox_frames,
        closes: Disconnect::ALL
            .iter()
            .map(|&d| (d, c.disconnects[d as usize]))
            .collect(),
        handshake_failures: HandshakeFailure::ALL
            .iter()
            .map(|&h| (h, c.handshake_failures[h as usize]))
            .collect(),
        publish_to_write: LatencySummary::of(p.latency.histogram()),
        publish_to_write_1s: LatencySummary::of(p.last_window.histogram()),
    }
}

fn add_counts(total: &mut ShardCounts, s: &ShardMetrics) {
    total.frames_sent += s.frames_sent;
    total.bytes_sent += s.bytes_sent;
    for (i, (_, n)) in s.closes.iter().enumerate() {
        total.disconnects[i] += n;
    }
    for (i, (_, n)) in s.handshake_failures.iter().enumerate() {
        total.handshake_failures[i] += n;
    }
}
