//! [`Metrics`] as text: the Prometheus exposition format (`/metrics`) and
//! JSON (`/stats`).

use std::fmt::Write;

use serde_json::{Value, json};

use super::snapshot::{LatencySummary, Metrics, ShardMetrics};
use super::{Disconnect, HandshakeFailure};

/// The `Content-Type` of [`Metrics::to_prometheus`].
pub(crate) const PROMETHEUS_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histogram's buckets, in microseconds: from
/// a loopback write (~20 µs) to the lag eviction (5 s by default), about
/// three per decade.
const BUCKETS_US: [u64; 17] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000,
];

impl Metrics {
    /// The Prometheus text exposition format (version 0.0.4).
    pub fn to_prometheus(&self) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let s = &self.stats;
        let mut p = Prom(&mut out);
        p.per_shard(
            "tickcast_connections",
            "gauge",
            "Open WebSocket connections.",
            &self.shards,
            |m| m.connections,
        );
        p.per_shard(
            "tickcast_sockets",
            "gauge",
            "Sockets held: handshaking, open and closing.",
            &self.shards,
            |m| m.sockets,
        );
        p.per_shard(
            "tickcast_outbox_frames",
            "gauge",
            "Frames queued in outboxes (sampled every 100 ms).",
            &self.shards,
            |m| m.outbox_frames,
        );
        p.single(
            "tickcast_ticks_published_total",
            "counter",
            "Ticks accepted by publish and sent to the shards.",
            s.ticks_published,
        );
        p.single(
            "tickcast_ticks_rejected_total",
            "counter",
            "Ticks publish handed back because the publisher was behind.",
            s.ticks_rejected,
        );
        p.single(
            "tickcast_feeds_down",
            "gauge",
            "Upstream feeds (Redis streams) down now, of tickcast_feeds.",
            s.feeds_down as u64,
        );
        p.single(
            "tickcast_feeds",
            "gauge",
            "Upstream feeds (Redis streams) configured.",
            s.feeds as u64,
        );
        p.single(
            "tickcast_feed_reconnects_total",
            "counter",
            "Reconnect attempts of the upstream feeds.",
            s.feed_reconnects,
        );
        self.traffic(&mut p);
        self.latency_histogram(&mut p);
        out
    }

    /// What was written, how connections ended, what the acceptor saw.
    fn traffic(&self, p: &mut Prom<'_>) {
        let s = &self.stats;
        p.per_shard(
            "tickcast_frames_sent_total",
            "counter",
            "Frames completely written to sockets.",
            &self.shards,
            |m| m.frames_sent,
        );
        p.per_shard(
            "tickcast_bytes_sent_total",
            "counter",
            "Bytes written to sockets.",
            &self.shards,
            |m| m.bytes_sent,
        );
        p.header(
            "tickcast_closes_total",
            "counter",
            "Open connections that ended, by reason.",
        );
        for m in &self.shards {
            for (why, n) in &m.closes {
                p.sample_2("tickcast_closes_total", m.shard, "reason", why.label(), *n);
            }
        }
        p.header(
            "tickcast_handshake_failures_total",
            "counter",
            "Sockets that never became a WebSocket, by reason.",
        );
        for m in &self.shards {
            for (why, n) in &m.handshake_failures {
                p.sample_2(
                    "tickcast_handshake_failures_total",
                    m.shard,
                    "reason",
                    why.label(),
                    *n,
                );
            }
        }
        p.single(
            "tickcast_accepted_total",
            "counter",
            "TCP connections accepted.",
            s.accepted,
        );
        p.single(
            "tickcast_refused_full_total",
            "counter",
            "Sockets closed and upgrades refused for the connection limit.",
            s.refused_full,
        );
        p.single(
            "tickcast_accept_errors_total",
            "counter",
            "accept() errors (such as EMFILE).",
            s.accept_errors,
        );
    }

    fn latency_histogram(&self, p: &mut Prom<'_>) {
        let name = "tickcast_publish_to_write_seconds";
        p.header(
            name,
            "histogram",
            "From publish accepting a tick to the socket write that carried it \
             (the ticks of one write in 8).",
        );
        let h = self.latency.histogram();
        for le in BUCKETS_US {
            let n = if h.is_empty() {
                0
            } else {
                h.count_between(0, le)
            };
            let _ = writeln!(p.0, "{name}_bucket{{le=\"{}\"}} {n}", seconds(le as f64));
        }
        let _ = writeln!(p.0, "{name}_bucket{{le=\"+Inf\"}} {}", h.len());
        let sum = if h.is_empty() {
            0.0
        } else {
            h.mean() * h.len() as f64
        };
        let _ = writeln!(p.0, "{name}_sum {}", seconds(sum));
        let _ = writeln!(p.0, "{name}_count {}", h.len());
    }

    /// The same figures as JSON: totals, per shard, and the latency
    /// percentiles in microseconds (fields ending in `_us`).
    pub fn to_json(&self) -> String {
        let s = &self.stats;
        let shards: Vec<Value> = self.shards.iter().map(shard_json).collect();
        let total_closes: serde_json::Map<String, Value> = Disconnect::ALL
            .iter()
            .map(|&d| (d.label().to_string(), json!(self.closes_for(d))))
            .collect();
        let total_failures: serde_json::Map<String, Value> = HandshakeFailure::ALL
            .iter()
            .map(|&h| (h.label().to_string(), json!(self.handshake_failures_for(h))))
            .collect();
        json!({
            "uptime_ms": self.uptime.as_millis() as u64,
            "connections": s.connections,
            "sockets": s.sockets,
            "accepted": s.accepted,
            "ticks_published": s.ticks_published,
            "ticks_rejected": s.ticks_rejected,
            "frames_sent": s.frames_sent,
            "bytes_sent": s.bytes_sent,
            "outbox_frames": self.outbox_frames(),
            "handshakes_failed": s.handshakes_failed,
            "refused_full": s.refused_full,
            "accept_errors": s.accept_errors,
            "feeds": s.feeds,
            "feeds_down": s.feeds_down,
            "feed_reconnects": s.feed_reconnects,
            "closes": total_closes,
            "handshake_failures": total_failures,
            "publish_to_write": latency_json(&self.publish_to_write),
            "publish_to_write_1s": latency_json(&self.publish_to_write_1s),
            "shards": shards,
        })
        .to_string()
    }
}

fn shard_json(m: &ShardMetrics) -> Value {
    let by = |pairs: Vec<(&'static str, u64)>| -> serde_json::Map<String, Value> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect()
    };
    json!({
        "shard": m.shard,
        "connections": m.connections,
        "sockets": m.sockets,
        "frames_sent": m.frames_sent,
        "bytes_sent": m.bytes_sent,
        "outbox_frames": m.outbox_frames,
        "closes": by(m.closes.iter().map(|(d, n)| (d.label(), *n)).collect()),
        "handshake_failures": by(m.handshake_failures.iter().map(|(h, n)| (h.label(), *n)).collect()),
        "publish_to_write": latency_json(&m.publish_to_write),
        "publish_to_write_1s": latency_json(&m.publish_to_write_1s),
    })
}

fn latency_json(l: &LatencySummary) -> Value {
    json!({
        "count": l.count,
        "p50_us": l.p50_us,
        "p90_us": l.p90_us,
        "p99_us": l.p99_us,
        "p999_us": l.p999_us,
        "max_us": l.max_us,
        "mean_us": (l.mean_us * 10.0).round() / 10.0,
    })
}

/// Microseconds as seconds, in the shortest form that round-trips.
fn seconds(us: f64) -> f64 {
    us / 1e6
}

/// A writer of Prometheus samples.
struct Prom<'a>(&'a mut String);

impl Prom<'_> {
    fn header(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn single(&mut self, name: &str, kind: &str, help: &str, v: u64) {
        self.header(name, kind, help);
        let _ = writeln!(self.0, "{name} {v}");
    }

    fn per_shard(
        &mut self,
        name: &str,
        kind: &str,
        help: &str,
        shards: &[ShardMetrics],
        v: impl Fn(&ShardMetrics) -> u64,
    ) {
        self.header(name, kind, help);
        for m in shards {
            let _ = writeln!(self.0, "{name}{{shard=\"{}\"}} {}", m.shard, v(m));
        }
    }

    fn sample_2(&mut self, name: &str, shard: usize, label: &str, value: &str, v: u64) {
        let _ = writeln!(
            self.0,
            "{name}{{shard=\"{shard}\",{label}=\"{value}\"}} {v}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{Counters, Disconnect, ShardCells, ShardCounts, snapshot::ProcessFigures};
    use std::time::Duration;

    fn metrics() -> Metrics {
        let cells = ShardCells::new(2);
        let mut counts = ShardCounts {
            frames_sent: 7,
            connections: 2,
            ..ShardCounts::default()
        };
        counts.disconnected(Disconnect::SlowConsumer);
        cells.get(1).set_counts(&counts);
        let mut local = crate::metrics::Latency::default();
        local.record(0, 80_000, 3); // 80 µs, three ticks
        local.record(0, 2_000_000_000, 1); // 2 s
        cells.get(0).merge_latency(&mut local);
        assert!(local.is_empty(), "merged records leave the shard");
        Metrics::collect(
            &Counters::default(),
            &cells,
            ProcessFigures {
                connections: 2,
                sockets: 3,
                refused_full: 0,
                uptime: Duration::from_secs(1),
            },
        )
    }

    #[test]
    fn prometheus_text_has_every_family_and_cumulative_buckets() {
        let text = metrics().to_prometheus();
        for family in [
            "tickcast_connections gauge",
            "tickcast_outbox_frames gauge",
            "tickcast_ticks_published_total counter",
            "tickcast_frames_sent_total counter",
            "tickcast_bytes_sent_total counter",
            "tickcast_closes_total counter",
            "tickcast_handshake_failures_total counter",
            "tickcast_publish_to_write_seconds histogram",
        ] {
            assert!(text.contains(&format!("# TYPE {family}\n")), "{family}");
        }
        assert!(text.contains("tickcast_connections{shard=\"1\"} 2\n"));
        assert!(text.contains("tickcast_closes_total{shard=\"1\",reason=\"slow_consumer\"} 1\n"));
        assert!(text.contains("tickcast_publish_to_write_seconds_bucket{le=\"0.0001\"} 3\n"));
        assert!(text.contains("tickcast_publish_to_write_seconds_bucket{le=\"1\"} 3\n"));
        assert!(text.contains("tickcast_publish_to_write_seconds_bucket{le=\"2.5\"} 4\n"));
        assert!(text.contains("tickcast_publish_to_write_seconds_bucket{le=\"+Inf\"} 4\n"));
        assert!(text.contains("tickcast_publish_to_write_seconds_count 4\n"));
    }

    #[test]
    fn json_has_ordered_percentiles_per_shard() {
        let m = metrics();
        let v: Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(v["frames_sent"], 7);
        assert_eq!(v["closes"]["slow_consumer"], 1);
        let l = &v["shards"][0]["publish_to_write"];
        assert_eq!(l["count"], 4);
        assert_eq!(l["p50_us"], 80);
        assert!(l["max_us"].as_u64().unwrap() >= 1_999_000, "{l}");
        assert_eq!(v["shards"][1]["publish_to_write"]["count"], 0);
    }
}
