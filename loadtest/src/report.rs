//! Turning worker results into a [`Report`], and writing it out: a table
//! for people, `report.json` with every figure, `.hgrm` percentile
//! distributions and an SVG latency plot.
//!
//! Invariant: every figure in the table is also in `report.json`, under the
//! same meaning; latency and rate figures cover only the measured window
//! (after warm-up), and only ticks (never snapshots or control replies) are
//! latency samples.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::{End, WorkerResult};
use crate::options::{Options, Scenario};
use crate::seqcheck::SeqCounts;
use crate::stats::{Percentiles, Spread, latency_histogram, merge};

/// Client counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientCounts {
    /// Clients asked for (`--clients`).
    pub requested: u64,
    /// Connections whose handshake completed (churn replacements included).
    pub connected: u64,
    /// Connects or handshakes that failed.
    pub failed: u64,
    /// Failures by reason (`refused`, `timeout`, `handshake: HTTP 503: …`).
    pub connect_failures: BTreeMap<String, u64>,
    /// Slow clients among the connected.
    pub slow: u64,
    /// Connections closed by the churn scenario.
    pub churned: u64,
    /// Fast clients closed with 4001.
    pub evicted_fast: u64,
    /// Slow clients closed with 4001.
    pub evicted_slow: u64,
}

/// Sequence-check results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeqSummary {
    /// Summed over every connected client that was not evicted.
    pub not_evicted: SeqCounts,
    /// How many of those saw a gap, duplicate or reordering (must be 0).
    pub clients_with_anomalies: u64,
    /// Summed over evicted clients (informational).
    pub evicted: SeqCounts,
}

/// Receive rates over the measured window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Throughput {
    /// Text frames per second, all clients.
    pub msgs_per_sec: f64,
    /// Ticks per second, all clients.
    pub ticks_per_sec: f64,
    /// Bytes per second, all clients.
    pub bytes_per_sec: f64,
}

/// One step of the ramp scenario.
#[derive(Debug, Clone, Serialize)]
pub struct RampStep {
    /// Offered ticks per second (server side, all symbols).
    pub rate: u64,
    /// Fast clients' p99 latency, ms.
    pub p99_ms: f64,
    /// Received ticks / expected ticks, fast clients.
    pub delivery: f64,
    /// Clients evicted.
    pub evicted: u64,
    /// Gap events on non-evicted clients.
    pub gaps: u64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Tool name and version.
    pub tool: String,
    /// Scenario run.
    pub scenario: Scenario,
    /// `ws://` URL targeted.
    pub target: String,
    /// Run start, seconds since the UNIX epoch.
    pub started_unix: u64,
    /// Cores and host name of the machine.
    pub machine: BTreeMap<String, String>,
    /// The validated options.
    pub options: Options,
    /// Length of the measured window, s.
    pub window_secs: f64,
    /// Client counts.
    pub clients: ClientCounts,
    /// TCP connect + handshake time.
    pub connect_time: Percentiles,
    /// Receive rates.
    pub throughput: Throughput,
    /// End-to-end latency (receive time − `ts`) of fast clients' ticks.
    pub latency: Percentiles,
    /// The same for slow clients (only while they still read).
    pub latency_slow: Percentiles,
    /// Ticks received in the window per fast client open the whole window.
    pub per_client_ticks: Spread,
    /// Sequence checks.
    pub seq: SeqSummary,
    /// How fast clients' connections ended (`close 4001`, `open at end`, …).
    pub ends_fast: BTreeMap<String, u64>,
    /// How slow clients' connections ended.
    pub ends_slow: BTreeMap<String, u64>,
    /// Control messages received, by type.
    pub control: BTreeMap<String, u64>,
    /// Text frames that were not valid messages.
    pub invalid_messages: u64,
    /// Binary frames received.
    pub binary_frames: u64,
    /// Server pings answered.
    pub pings: u64,
    /// Ticks stamped later than their receive time (clock trouble).
    pub negative_latency_samples: u64,
    /// Ramp steps, in order (ramp scenario only).
    pub ramp: Vec<RampStep>,
    /// First ramp rate whose p99 exceeded the limit or whose delivery fell
    /// below 99%.
    pub knee_rate: Option<u64>,
    /// Fast clients' latency distribution, ns.
    #[serde(skip)]
    pub latency_hist: Histogram<u64>,
    /// Slow clients' latency distribution, ns.
    #[serde(skip)]
    pub latency_slow_hist: Histogram<u64>,
    /// Connect-time distribution, ns.
    #[serde(skip)]
    pub connect_hist: Histogram<u64>,
}

fn end_key(end: &End) -> String {
    match end {
        End::StillOpen => "open at end".into(),
        End::Closed { code, reason } if reason.is_empty() => format!("close {code}"),
        End::Closed { code, reason } => format!("close {code} {reason}"),
        End::Eof => "eof without close frame".into(),
        End::IoError(e) => format!("io: {e}"),
        End::Protocol(e) => format!("protocol: {e}"),
        End::Churned => "churned".into(),
        End::ConnectFailed(e) => format!("connect failed: {e}"),
    }
}

/// Merges worker results into a report.
///
/// # Errors
/// Only if histograms fail to merge (they are all built alike, so never).
pub fn build(
    opts: &Options,
    url: &str,
    results: Vec<WorkerResult>,
    window: Duration,
) -> anyhow::Result<Report> {
    let mut fast = latency_histogram();
    let mut slow = latency_histogram();
    let mut connect = latency_histogram();
    let mut clients = ClientCounts {
        requested: opts.clients as u64,
        ..Default::default()
    };
    let mut seq = SeqSummary::default();
    let mut ends_fast = BTreeMap::new();
    let mut ends_slow = BTreeMap::new();
    let mut control = BTreeMap::new();
    let (mut msgs, mut ticks, mut bytes) = (0u64, 0u64, 0u64);
    let (mut invalid, mut binary, mut pings, mut negative) = (0, 0, 0, 0);
    let mut per_client = Vec::new();
    for w in results {
        merge(&mut fast, &w.fast)?;
        merge(&mut slow, &w.slow)?;
        merge(&mut connect, &w.connect)?;
        msgs += w.counters.msgs_window;
        ticks += w.counters.ticks_window;
        bytes += w.counters.bytes_window;
        invalid += w.counters.invalid;
        binary += w.counters.binary;
        pings += w.counters.pings;
        negative += w.counters.negative_latency;
        for (k, v) in w.counters.control {
            *control.entry(k).or_insert(0) += v;
        }
        for c in w.clients {
            if let End::ConnectFailed(reason) = &c.end {
                clients.failed += 1;
                *clients.connect_failures.entry(reason.clone()).or_insert(0) += 1;
                continue;
            }
            clients.connected += 1;
            let evicted = matches!(c.end, End::Closed { code: 4001, .. });
            if c.slow {
                clients.slow += 1;
                clients.evicted_slow += u64::from(evicted);
            } else {
                clients.evicted_fast += u64::from(evicted);
            }
            clients.churned += u64::from(c.end == End::Churned);
            let ends = if c.slow {
                &mut ends_slow
            } else {
                &mut ends_fast
            };
            *ends.entry(end_key(&c.end)).or_insert(0) += 1;
            if evicted {
                seq.evicted.add(&c.seq);
            } else {
                seq.not_evicted.add(&c.seq);
                seq.clients_with_anomalies += u64::from(!c.seq.is_clean());
            }
            if !c.slow && c.full_window {
                per_client.push(c.ticks_window);
            }
        }
    }
    let secs = window.as_secs_f64();
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let mut machine = BTreeMap::new();
    machine.insert("cores".into(), crate::sys::cores().to_string());
    if let Ok(h) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        machine.insert("hostname".into(), h.trim().to_string());
    }
    Ok(Report {
        tool: format!("tickcast-loadtest {}", env!("CARGO_PKG_VERSION")),
        scenario: opts.scenario,
        target: url.to_string(),
        started_unix: crate::engine::wall_ns() / 1_000_000_000,
        machine,
        options: opts.clone(),
        window_secs: secs,
        clients,
        connect_time: Percentiles::of(&connect),
        throughput: Throughput {
            msgs_per_sec: per_sec(msgs),
            ticks_per_sec: per_sec(ticks),
            bytes_per_sec: per_sec(bytes),
        },
        latency: Percentiles::of(&fast),
        latency_slow: Percentiles::of(&slow),
        per_client_ticks: Spread::of(&mut per_client),
        seq,
        ends_fast,
        ends_slow,
        control,
        invalid_messages: invalid,
        binary_frames: binary,
        pings,
        negative_latency_samples: negative,
        ramp: Vec::new(),
        knee_rate: None,
        latency_hist: fast,
        latency_slow_hist: slow,
        connect_hist: connect,
    })
}

impl Report {
    /// Returns true if and only if no client that was not evicted saw a
    /// gap, duplicate or reordering.
    pub fn sequence_ok(&self) -> bool {
        self.seq.clients_with_anomalies == 0
    }

    /// A plain-text table of the main figures.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let c = &self.clients;
        let ms = |us: f64| format!("{:.3}", us / 1000.0);
        let lat_row = |s: &mut String, name: &str, p: &Percentiles| {
            let _ = writeln!(
                s,
                "  {name:<14} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
                p.count,
                ms(p.p50_us),
                ms(p.p90_us),
                ms(p.p99_us),
                ms(p.p99_9_us),
                ms(p.p99_99_us),
                ms(p.max_us)
            );
        };
        let _ = writeln!(
            s,
            "== tickcast loadtest: {:?} against {} ==",
            self.scenario, self.target
        );
        let _ = writeln!(
            s,
            "clients      requested {}  connected {}  failed {}  slow {}  churned {}  evicted fast/slow {}/{}",
            c.requested, c.connected, c.failed, c.slow, c.churned, c.evicted_fast, c.evicted_slow
        );
        for (reason, n) in &c.connect_failures {
            let _ = writeln!(s, "  failure      {n:>8} x {reason}");
        }
        let t = &self.throughput;
        let _ = writeln!(
            s,
            "window       {:.1}s   msgs/s {:.0}   ticks/s {:.0}   MiB/s {:.1}",
            self.window_secs,
            t.msgs_per_sec,
            t.ticks_per_sec,
            t.bytes_per_sec / (1024.0 * 1024.0)
        );
        let _ = writeln!(
            s,
            "  {:<14} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "(ms)", "samples", "p50", "p90", "p99", "p99.9", "p99.99", "max"
        );
        lat_row(&mut s, "connect", &self.connect_time);
        lat_row(&mut s, "latency fast", &self.latency);
        if self.latency_slow.count > 0 || self.clients.slow > 0 {
            lat_row(&mut s, "latency slow", &self.latency_slow);
        }
        let p = &self.per_client_ticks;
        let _ = writeln!(
            s,
            "per-client ticks (fast, whole window, {} clients): min {} p1 {} median {} p99 {} max {}",
            p.clients, p.min, p.p1, p.median, p.p99, p.max
        );
        let q = &self.seq.not_evicted;
        let _ = writeln!(
            s,
            "sequence     {}  gaps {} (missing {})  duplicates {}  reorders {}  clients with anomalies {}  [in order {}, unbaselined {}]",
            if self.sequence_ok() { "OK" } else { "FAIL" },
            q.gaps,
            q.missing,
            q.duplicates,
            q.reorders,
            self.seq.clients_with_anomalies,
            q.in_order,
            q.unbaselined
        );
        for (name, ends) in [
            ("ends fast", &self.ends_fast),
            ("ends slow", &self.ends_slow),
        ] {
            if !ends.is_empty() {
                let list: Vec<String> = ends.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                let _ = writeln!(s, "{name:<12} {}", list.join(", "));
            }
        }
        let list: Vec<String> = self
            .control
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            s,
            "control      {}  invalid {}  binary {}  pings {}",
            list.join(", "),
            self.invalid_messages,
            self.binary_frames,
            self.pings
        );
        if self.negative_latency_samples > 0 {
            let _ = writeln!(
                s,
                "warning      {} ticks stamped in the future",
                self.negative_latency_samples
            );
        }
        if !self.ramp.is_empty() {
            let _ = writeln!(s, "ramp         rate      p99(ms)  delivery  evicted  gaps");
            for r in &self.ramp {
                let _ = writeln!(
                    s,
                    "             {:<9} {:<8.3} {:<9.4} {:<8} {}",
                    r.rate, r.p99_ms, r.delivery, r.evicted, r.gaps
                );
            }
            let _ = writeln!(
                s,
                "knee         {}",
                self.knee_rate
                    .map_or("not reached".into(), |r| r.to_string())
            );
        }
        s
    }

    /// Writes `report.json`, `latency.hgrm` (+ `latency-slow.hgrm`,
    /// `connect.hgrm`), `latency.svg` and `summary.txt` into `dir`.
    ///
    /// # Errors
    /// On any file-system error, with the path in the message.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let write = |name: &str, body: &[u8]| {
            let p = dir.join(name);
            std::fs::write(&p, body).with_context(|| format!("writing {}", p.display()))
        };
        write(
            "report.json",
            serde_json::to_string_pretty(self)?.as_bytes(),
        )?;
        write("summary.txt", self.table().as_bytes())?;
        write("latency.hgrm", hgrm(&self.latency_hist).as_bytes())?;
        write("connect.hgrm", hgrm(&self.connect_hist).as_bytes())?;
        let mut series = vec![("fast clients", &self.latency_hist)];
        if !self.latency_slow_hist.is_empty() {
            write(
                "latency-slow.hgrm",
                hgrm(&self.latency_slow_hist).as_bytes(),
            )?;
            series.push(("slow clients", &self.latency_slow_hist));
        }
        let title = format!(
            "{:?}: {} clients, {} ({}), {:.0} ticks/s received by all clients",
            self.scenario,
            self.clients.requested,
            self.target,
            match &self.options.subscribe {
                crate::options::Subscription::All => "*".to_string(),
                other => format!("{other:?}"),
            },
            self.throughput.ticks_per_sec
        );
        write(
            "latency.svg",
            crate::plot::latency_svg(&title, &series).as_bytes(),
        )?;
        Ok(())
    }
}

/// Formats a nanosecond histogram as HdrHistogram's percentile-distribution
/// text (the `.hgrm` format of wrk2 and HdrHistogram's
/// `outputPercentileDistribution`), values in milliseconds.
pub fn hgrm(h: &Histogram<u64>) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let scale = 1e6;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let q = v.quantile_iterated_to();
            let value = v.value_iterated_to() as f64 / scale;
            if q < 1.0 {
                let _ = writeln!(
                    s,
                    "{value:12.3} {q:2.12} {total:10} {:14.2}",
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(s, "{value:12.3} {q:2.12} {total:10}");
            }
        }
    }
    let (mean, stdev, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    };
    let _ = writeln!(s, "#[Mean    = {mean:12.3}, StdDeviation   = {stdev:12.3}]");
    let _ = writeln!(
        s,
        "#[Max     = {max:12.3}, Total count    = {:12}]",
        h.len()
    );
    // HdrHistogram's sub-bucket count: 2^ceil(log2(2 * 10^sigfig)).
    let sub_buckets = 1u64 << (2.0 * 10f64.powi(i32::from(h.sigfig()))).log2().ceil() as u32;
    let _ = writeln!(
        s,
        "#[Buckets = {:12}, SubBuckets     = {:12}]",
        h.buckets(),
        sub_buckets
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hgrm_has_header_rows_and_footer() {
        let mut h = latency_histogram();
        for v in 1..=10_000u64 {
            h.saturating_record(v * 1_000);
        }
        let text = hgrm(&h);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].contains("Value") && lines[0].contains("1/(1-Percentile)"));
        assert!(lines[1].is_empty());
        let first: Vec<&str> = lines[2].split_whitespace().collect();
        assert_eq!(first.len(), 4);
        assert_eq!(first[1].parse::<f64>().ok(), Some(0.0));
        let last_row = lines
            .iter()
            .rev()
            .find(|l| !l.starts_with('#'))
            .expect("a row");
        let cols: Vec<&str> = last_row.split_whitespace().collect();
        assert_eq!(cols.len(), 3, "the 100% row has no 1/(1-p) column");
        assert_eq!(cols[2], "10000");
        assert!(text.contains("#[Max     =       10.0"), "{text}");
        assert!(text.contains("SubBuckets     =         2048]"), "{text}");
    }
}
