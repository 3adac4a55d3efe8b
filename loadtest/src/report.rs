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

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::engine::{ClientResult, End, Role, Window, WorkerResult};
use crate::monitor::{MonitorData, Sample, Settled};
use crate::options::{Options, Scenario, Subscription};
use crate::produce::ProducerSummary;
use crate::seqcheck::SeqCounts;
use crate::stats::{Percentiles, Spread, latency_histogram, merge};

/// One target's share of the clients (several `--url`s).
#[derive(Debug, Clone, Default, Serialize)]
pub struct TargetCounts {
    /// Its URL.
    pub url: String,
    /// Clients whose connect succeeded.
    pub connected: u64,
    /// Connects that failed.
    pub failed: u64,
    /// Ticks its clients received in the window.
    pub ticks_window: u64,
    /// `ticks_window` per second of the window.
    pub ticks_per_sec: f64,
}

/// Client counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ClientCounts {
    /// Clients asked for (`--clients`, plus `--stalled` and `--streaming`).
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

/// Healthy clients' delivery against the feed's nominal rate (`--rate`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Delivery {
    /// Ticks one client should get in the window: rate x window x the share
    /// of symbols it subscribes to (`None` when the share is unknown: a
    /// named group).
    pub expected_per_client: Option<f64>,
    /// Healthy clients open for the whole window (the ones measured).
    pub clients: u64,
    /// Healthy clients connected in total, and how many of them were
    /// evicted (4001) or otherwise cut (reset, EOF) by the server.
    pub healthy_connected: u64,
    /// See `healthy_connected`.
    pub healthy_evicted: u64,
    /// Lowest, mean and highest per-client ticks / expected, in %.
    pub min_pct: Option<f64>,
    /// See `min_pct`.
    pub mean_pct: Option<f64>,
    /// See `min_pct`.
    pub max_pct: Option<f64>,
    /// Healthy clients open for part of the window only (churn), at least
    /// [`PARTIAL_MIN_SECS`] of it, and not cut by the server: their ticks
    /// against rate x the time they were open in the window.
    pub partial_clients: u64,
    /// Lowest and mean of those, in %.
    pub partial_min_pct: Option<f64>,
    /// See `partial_min_pct`.
    pub partial_mean_pct: Option<f64>,
}

/// Shortest stay in the window for a churned client's delivery to count.
pub const PARTIAL_MIN_SECS: f64 = 10.0;

/// Stalled clients (stalled and soak scenarios): time from each one's
/// stall to its server-side socket being gone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StallSummary {
    /// Stalled clients that connected.
    pub connected: u64,
    /// Of those, how many reached their stall moment (the others ended
    /// first, or the run did).
    pub stalled: u64,
    /// Stalled ones whose server-side socket was seen gone (`ss`) before
    /// the window ended.
    pub gone: u64,
    /// Stalled ones still there when the window ended although they had
    /// been stalled for at least `horizon_secs` (a target miss).
    pub not_gone: u64,
    /// Stalled ones still there at the window end, stalled for less than
    /// `horizon_secs` (no verdict: the run ended first).
    pub censored: u64,
    /// Horizon the verdict uses, s (10).
    pub horizon_secs: f64,
    /// Stall to socket gone, ms (upper bound: the end of the first `ss`
    /// dump without it), over the `gone` ones.
    pub eviction_ms: Spread,
    /// How many of the `gone` ones went within `horizon_secs`.
    pub gone_within_horizon: u64,
    /// Stalled ones that saw the server hang up (reset or FIN) while
    /// stalled, and stall to hang-up, ms. Informational: a stalled client
    /// often never sees the reset (its kernel dropped segments it had no
    /// memory for, so the server's sequence ran ahead of it and the RST
    /// falls outside its zero window, which TCP discards), so the
    /// server-side `ss` view is the measure.
    pub hangup_seen: u64,
    /// See `hangup_seen`.
    pub hangup_ms: Spread,
}

/// Storm newcomers (connect-storm with `--streaming`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StormSummary {
    /// Newcomers asked for.
    pub newcomers: u64,
    /// Newcomers whose handshake completed.
    pub connected: u64,
    /// Newcomers whose connect or handshake failed.
    pub failed: u64,
    /// Connect call to handshake done, newcomers only.
    pub connect_time: Percentiles,
    /// Snapshots each newcomer expected (`--expect-snapshots`).
    pub expected_snapshots: Option<u64>,
    /// Newcomers that received all of them.
    pub with_snapshots: u64,
    /// Connect call to the last expected snapshot.
    pub snapshots_time: Percentiles,
    /// Newcomers that had them within 2 s of their connect call.
    pub snapshots_within_2s: u64,
    /// First newcomer's connect call to the last newcomer's last snapshot,
    /// ms.
    pub span_ms: f64,
    /// Newcomers' tick latency in the window.
    pub latency: Percentiles,
}

/// What the sampler saw on the server's side (see `monitor`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerSide {
    /// Sampling interval, ms.
    pub interval_ms: u64,
    /// Samples taken (run and settling).
    pub samples: u64,
    /// `ss` status: `ok` or why it was not available.
    pub ss: String,
    /// Mean and longest `ss` dump, ms.
    pub ss_ms_mean: f64,
    /// See `ss_ms_mean`.
    pub ss_ms_max: f64,
    /// Peak of skmem `r + w + bl` summed over the server's sockets, every
    /// state, bytes.
    pub peak_queued_bytes: u64,
    /// The same over established sockets only.
    pub peak_queued_established_bytes: u64,
    /// The same over the closing / orphaned ones only.
    pub peak_queued_closing_bytes: u64,
    /// Peak of `r + w + bl + f` (memory charged, reserve included).
    pub peak_charged_bytes: u64,
    /// Peak of summed Send-Q (payload bytes not acknowledged).
    pub peak_send_q_bytes: u64,
    /// Peak of summed Recv-Q.
    pub peak_recv_q_bytes: u64,
    /// Largest `r + w + bl` of any one socket.
    pub peak_socket_queued_bytes: u64,
    /// Peak of `queued` in the first and second half of the window (a
    /// bounded queue shows no growth from one to the other).
    pub window_first_half_peak_queued: u64,
    /// See `window_first_half_peak_queued`.
    pub window_second_half_peak_queued: u64,
    /// Most established server sockets at once.
    pub peak_established: u64,
    /// Most closing / orphaned server sockets at once (every state but
    /// `ESTAB` and `LISTEN`), and the peak of each state.
    pub peak_closing: u64,
    /// See `peak_closing`.
    pub peak_closing_by_state: BTreeMap<String, u64>,
    /// Server RSS before the first connect, KiB.
    pub rss_before_kib: Option<u64>,
    /// Highest sampled RSS, KiB.
    pub rss_peak_kib: Option<u64>,
    /// `VmHWM` at the end: the true peak RSS of the server's life, KiB.
    pub rss_hwm_kib: Option<u64>,
    /// RSS once settled, KiB.
    pub rss_after_kib: Option<u64>,
    /// RSS at the first and last sample of the window, KiB.
    pub rss_window_first_kib: Option<u64>,
    /// See `rss_window_first_kib`.
    pub rss_window_last_kib: Option<u64>,
    /// Least-squares slope of RSS over the window (after the warm-up),
    /// KiB per minute.
    pub rss_slope_kib_per_min: Option<f64>,
    /// Mean RSS per minute of the window, KiB.
    pub rss_per_minute_kib: Vec<u64>,
    /// Server descriptors before the run, at their peak, and once settled.
    pub fds_before: Option<u64>,
    /// See `fds_before`.
    pub fds_peak: Option<u64>,
    /// See `fds_before`.
    pub fds_after: Option<u64>,
    /// The server let go of every connection within the settle limit.
    pub settled: bool,
    /// Seconds it took (or the limit).
    pub settle_secs: f64,
    /// Its sockets left then, by state.
    pub sockets_after: BTreeMap<String, u64>,
    /// Mean CPU use over the samples, % of one core: the server, the load
    /// generator, other processes (other tenants of the machine: noise),
    /// interrupts and softirq, steal.
    pub cpu_mean: Option<crate::monitor::CpuUse>,
    /// Highest sampled CPU use of other processes, % of one core.
    pub other_cpu_pct_max: Option<f64>,
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
    /// CPU the load generator's process used in the window, % of one core
    /// (all its threads; with the in-process server, the server's too). A
    /// cell where it nears 100 % per client thread measures the load
    /// generator, not the server.
    pub loadgen_cpu_pct: Option<f64>,
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
    /// Healthy clients' delivery.
    pub delivery: Delivery,
    /// Stalled clients (stalled and soak scenarios).
    pub stalled: Option<StallSummary>,
    /// Storm newcomers (connect-storm with `--streaming`).
    pub storm: Option<StormSummary>,
    /// The server's side (with sampling on).
    pub server: Option<ServerSide>,
    /// The producer (`--produce`).
    pub producer: Option<ProducerSummary>,
    /// Per target (`--url`; clients round-robin over them).
    pub targets: Vec<TargetCounts>,
    /// The raw samples (written to `samples.csv`).
    #[serde(skip)]
    pub samples: Vec<Sample>,
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

/// Healthy (fast, not newcomer) clients against the nominal rate.
fn delivery(
    opts: &Options,
    rate: f64,
    window: Window,
    clients: &[ClientResult],
    per_client: &[u64],
) -> Delivery {
    let secs = window.len.as_secs_f64();
    let share = match &opts.subscribe {
        Subscription::All => Some(1.0),
        Subscription::Random(k) => Some((*k as f64 / opts.symbols as f64).min(1.0)),
        Subscription::None => Some(0.0),
        Subscription::Group(_) => None,
    };
    let expected = share.map(|s| rate * secs * s);
    let healthy: Vec<&ClientResult> = clients
        .iter()
        .filter(|c| c.role == Role::Fast && c.connect_ns.is_some())
        .collect();
    let cut = |e: &End| {
        matches!(
            e,
            End::Closed { code: 4001, .. } | End::Eof | End::IoError(_) | End::Protocol(_)
        )
    };
    let pct = |n: u64| expected.filter(|&e| e > 0.0).map(|e| n as f64 / e * 100.0);
    let n = per_client.len() as u64;
    let (start, end) = (
        window.start.as_nanos() as u64,
        (window.start + window.len).as_nanos() as u64,
    );
    let partial: Vec<f64> = healthy
        .iter()
        .filter(|c| !c.full_window && !cut(&c.end))
        .filter_map(|c| {
            let opened = c.started_ns + c.connect_ns?;
            let from = opened.max(start);
            let to = c.ended_ns.min(end);
            let secs = to.saturating_sub(from) as f64 / 1e9;
            let rate = share? * rate;
            (secs >= PARTIAL_MIN_SECS && rate > 0.0)
                .then(|| c.ticks_window as f64 / (rate * secs) * 100.0)
        })
        .collect();
    Delivery {
        partial_clients: partial.len() as u64,
        partial_min_pct: partial.iter().copied().reduce(f64::min),
        partial_mean_pct: (!partial.is_empty())
            .then(|| partial.iter().sum::<f64>() / partial.len() as f64),
        expected_per_client: expected,
        clients: n,
        healthy_connected: healthy.len() as u64,
        healthy_evicted: healthy.iter().filter(|c| cut(&c.end)).count() as u64,
        min_pct: per_client.iter().min().and_then(|&m| pct(m)),
        mean_pct: (n > 0)
            .then(|| per_client.iter().sum::<u64>() / n)
            .and_then(pct),
        max_pct: per_client.iter().max().and_then(|&m| pct(m)),
    }
}

/// Clients and window ticks per target (client i went to target i % N).
fn target_counts(opts: &Options, clients: &[ClientResult], secs: f64) -> Vec<TargetCounts> {
    let mut out: Vec<TargetCounts> = opts
        .targets
        .iter()
        .map(|t| TargetCounts {
            url: t.url(),
            ..TargetCounts::default()
        })
        .collect();
    for c in clients {
        let Some(t) = out.get_mut(c.target) else {
            continue;
        };
        if matches!(c.end, End::ConnectFailed(_)) {
            t.failed += 1;
        } else {
            t.connected += 1;
            t.ticks_window += c.ticks_window;
        }
    }
    for t in &mut out {
        t.ticks_per_sec = if secs > 0.0 {
            t.ticks_window as f64 / secs
        } else {
            0.0
        };
    }
    out
}

/// How long after stalling each stalled client's server socket went.
fn stall_summary(
    clients: &[ClientResult],
    monitor: Option<&MonitorData>,
    window: Window,
) -> StallSummary {
    const HORIZON_NS: u64 = 10_000_000_000;
    let end_ns = (window.start + window.len).as_nanos() as u64;
    let mut s = StallSummary {
        horizon_secs: HORIZON_NS as f64 / 1e9,
        ..StallSummary::default()
    };
    let (mut evict, mut hangup) = (Vec::new(), Vec::new());
    for c in clients.iter().filter(|c| c.role == Role::Stalled) {
        if c.connect_ns.is_none() {
            continue;
        }
        s.connected += 1;
        let Some(at) = c.stalled_ns else { continue };
        s.stalled += 1;
        if let Some(h) = c.hangup_ns {
            s.hangup_seen += 1;
            hangup.push(h.saturating_sub(at) / 1_000_000);
        }
        let gone = monitor
            .zip(c.local_addr)
            .and_then(|(m, addr)| m.gone_at(&addr, at))
            .filter(|&g| g <= end_ns);
        match gone {
            Some(g) => {
                let ns = g.saturating_sub(at);
                s.gone += 1;
                s.gone_within_horizon += u64::from(ns <= HORIZON_NS);
                evict.push(ns / 1_000_000);
            }
            None if end_ns.saturating_sub(at) >= HORIZON_NS => s.not_gone += 1,
            None => s.censored += 1,
        }
    }
    s.eviction_ms = Spread::of(&mut evict);
    s.hangup_ms = Spread::of(&mut hangup);
    s
}

/// The storm's newcomers: connected, and how soon they had their
/// snapshots.
fn storm_summary(
    opts: &Options,
    clients: &[ClientResult],
    latency: &Histogram<u64>,
) -> StormSummary {
    let newcomers: Vec<&ClientResult> = clients
        .iter()
        .filter(|c| c.role == Role::Newcomer)
        .collect();
    let mut connect = latency_histogram();
    let mut snaps = latency_histogram();
    let mut s = StormSummary {
        newcomers: opts.clients as u64,
        expected_snapshots: opts.expect_snapshots,
        latency: Percentiles::of(latency),
        ..StormSummary::default()
    };
    let first = newcomers.iter().map(|c| c.started_ns).min().unwrap_or(0);
    let mut last_done = first;
    for c in &newcomers {
        match c.connect_ns {
            Some(ns) => {
                s.connected += 1;
                connect.saturating_record(ns.max(1));
            }
            None => s.failed += 1,
        }
        if let Some(ns) = c.snapshots_ns {
            s.with_snapshots += 1;
            snaps.saturating_record(ns.max(1));
            s.snapshots_within_2s += u64::from(ns <= 2_000_000_000);
            last_done = last_done.max(c.started_ns + ns);
        }
    }
    s.connect_time = Percentiles::of(&connect);
    s.snapshots_time = Percentiles::of(&snaps);
    s.span_ms = (last_done - first) as f64 / 1e6;
    s
}

/// Peaks and trends of the server-side samples.
fn server_side(opts: &Options, m: &MonitorData, settled: &Settled, window: Window) -> ServerSide {
    let start = window.start.as_nanos() as u64;
    let end = (window.start + window.len).as_nanos() as u64;
    let mid = start + (end - start) / 2;
    let mut s = ServerSide {
        interval_ms: opts.sample_interval.as_millis() as u64,
        samples: m.samples.len() as u64,
        ss: m.ss_error.clone().unwrap_or_else(|| "ok".into()),
        rss_before_kib: m.rss_before_kib,
        rss_hwm_kib: settled.hwm_kib,
        rss_after_kib: settled.rss_after_kib,
        fds_before: m.fds_before,
        fds_after: settled.fds_after,
        settled: settled.settled,
        settle_secs: settled.secs,
        sockets_after: settled.sockets_after.clone(),
        ..ServerSide::default()
    };
    let (mut ss_sum, mut ss_n) = (0u64, 0u64);
    let mut rss_points = Vec::new();
    let mut per_minute: Vec<(u64, u64)> = Vec::new();
    let mut other = Vec::new();
    for x in &m.samples {
        if let Some(t) = &x.sockets {
            ss_sum += x.ss_ns;
            ss_n += 1;
            s.ss_ms_max = s.ss_ms_max.max(x.ss_ns as f64 / 1e6);
            let q = t.queued();
            s.peak_queued_bytes = s.peak_queued_bytes.max(q);
            s.peak_queued_established_bytes =
                s.peak_queued_established_bytes.max(t.queued_established);
            s.peak_queued_closing_bytes = s.peak_queued_closing_bytes.max(t.queued_closing);
            s.peak_charged_bytes = s.peak_charged_bytes.max(q + t.f);
            s.peak_send_q_bytes = s.peak_send_q_bytes.max(t.send_q);
            s.peak_recv_q_bytes = s.peak_recv_q_bytes.max(t.recv_q);
            s.peak_socket_queued_bytes = s.peak_socket_queued_bytes.max(t.max_socket_queued);
            s.peak_established = s.peak_established.max(t.established);
            s.peak_closing = s.peak_closing.max(t.closing_count());
            for (state, n) in &t.closing {
                let e = s.peak_closing_by_state.entry(state.clone()).or_insert(0);
                *e = (*e).max(*n);
            }
            if (start..mid).contains(&x.at_ns) {
                s.window_first_half_peak_queued = s.window_first_half_peak_queued.max(q);
            } else if (mid..end).contains(&x.at_ns) {
                s.window_second_half_peak_queued = s.window_second_half_peak_queued.max(q);
            }
        }
        if let Some(kib) = x.rss_kib {
            s.rss_peak_kib = Some(s.rss_peak_kib.unwrap_or(0).max(kib));
            if (start..end).contains(&x.at_ns) {
                let min = (x.at_ns - start) as f64 / 60e9;
                rss_points.push((min, kib as f64));
                s.rss_window_first_kib.get_or_insert(kib);
                s.rss_window_last_kib = Some(kib);
                let i = ((x.at_ns - start) / 60_000_000_000) as usize;
                if per_minute.len() <= i {
                    per_minute.resize(i + 1, (0, 0));
                }
                per_minute[i].0 += kib;
                per_minute[i].1 += 1;
            }
        }
        if let Some(fds) = x.fds {
            s.fds_peak = Some(s.fds_peak.unwrap_or(0).max(fds));
        }
        if let Some(c) = x.cpu {
            other.push(c);
        }
    }
    if ss_n > 0 {
        s.ss_ms_mean = ss_sum as f64 / ss_n as f64 / 1e6;
    }
    s.rss_slope_kib_per_min = crate::monitor::slope(&rss_points);
    s.rss_per_minute_kib = per_minute
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(sum, n)| sum / n)
        .collect();
    if !other.is_empty() {
        let n = other.len() as f64;
        let mean = |f: fn(&crate::monitor::CpuUse) -> f64| other.iter().map(f).sum::<f64>() / n;
        s.cpu_mean = Some(crate::monitor::CpuUse {
            server: mean(|c| c.server),
            loadgen: mean(|c| c.loadgen),
            other: mean(|c| c.other),
            irq: mean(|c| c.irq),
            steal: mean(|c| c.steal),
        });
        s.other_cpu_pct_max = other.iter().map(|c| c.other).reduce(f64::max);
    }
    s
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

/// Merges worker results (and what the sampler saw, if it ran) into a
/// report.
///
/// # Errors
/// Only if histograms fail to merge (they are all built alike, so never).
/// With a producer, the delivery % is against what it produced in the
/// window, not the nominal `--rate`.
pub fn build(
    opts: &Options,
    url: &str,
    results: Vec<WorkerResult>,
    window: Window,
    server: Option<(MonitorData, Settled)>,
    producer: Option<ProducerSummary>,
) -> anyhow::Result<Report> {
    let mut fast = latency_histogram();
    let mut slow = latency_histogram();
    let mut newcomer = latency_histogram();
    let mut all_clients: Vec<ClientResult> = Vec::new();
    let mut connect = latency_histogram();
    let mut clients = ClientCounts {
        requested: opts.total_clients() as u64,
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
        merge(&mut newcomer, &w.newcomer)?;
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
        for c in &w.clients {
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
            if c.role == Role::Fast && c.full_window {
                per_client.push(c.ticks_window);
            }
        }
        all_clients.extend(w.clients);
    }
    let secs = window.len.as_secs_f64();
    let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
    let rate = producer
        .as_ref()
        .map_or(opts.rate as f64, |p| p.ticks_per_sec);
    let delivery = delivery(opts, rate, window, &all_clients, &per_client);
    let producer = producer.map(|mut p| {
        p.end_to_end_ticks_per_sec = delivery
            .mean_pct
            .map(|pct| p.ticks_per_sec * (pct / 100.0).min(1.0));
        p
    });
    let targets = target_counts(opts, &all_clients, secs);
    let (monitor, settled) = match server {
        Some((m, s)) => (Some(m), Some(s)),
        None => (None, None),
    };
    let stalled = matches!(opts.scenario, Scenario::Stalled | Scenario::Soak)
        .then(|| stall_summary(&all_clients, monitor.as_ref(), window));
    let storm = (opts.scenario == Scenario::ConnectStorm && opts.streaming > 0)
        .then(|| storm_summary(opts, &all_clients, &newcomer));
    let server = match (&monitor, &settled) {
        (Some(m), Some(s)) => Some(server_side(opts, m, s, window)),
        _ => None,
    };
    let samples = monitor.map(|m| m.samples).unwrap_or_default();
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
        loadgen_cpu_pct: window.cpu_pct,
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
        delivery,
        stalled,
        storm,
        server,
        producer,
        targets,
        samples,
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

    /// Checks beyond the sequence that fail the run (exit status 3): for
    /// soak, a descriptor leak or sockets the server did not let go of.
    pub fn failed_checks(&self) -> Vec<String> {
        let mut failed = Vec::new();
        if self.scenario != Scenario::Soak {
            return failed;
        }
        let Some(s) = &self.server else {
            return failed;
        };
        if let (Some(before), Some(after)) = (s.fds_before, s.fds_after)
            && after > before
        {
            failed.push(format!(
                "descriptor leak: the server had {before} descriptors before the run and {after} after"
            ));
        }
        if !s.settled {
            failed.push(format!(
                "the server still held connections {:.1} s after the run: {:?}",
                s.settle_secs, s.sockets_after
            ));
        }
        failed
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
        if let Some(cpu) = self.loadgen_cpu_pct {
            let whose = if self.options.targets.is_empty() {
                "this process, with the in-process server"
            } else {
                "the load generator"
            };
            let _ = writeln!(
                s,
                "cpu          {cpu:.0} % of one core in the window ({whose}, {} client thread(s))",
                self.options.threads
            );
        }
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
        self.table_extra(&mut s);
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

    /// The producer and per-target lines of the table.
    fn table_fleet(&self, s: &mut String) {
        if let Some(p) = &self.producer {
            let target = if p.target_rate == 0 {
                "unpaced".to_string()
            } else {
                format!("target {}/s", p.target_rate)
            };
            let _ = writeln!(
                s,
                "producer     {}  {target}  batch {} x pipeline {}  symbols {}  cpu {}",
                p.url,
                p.batch,
                p.pipeline,
                p.symbols,
                match (p.cpu, p.pinned) {
                    (Some(c), Some(true)) => c.to_string(),
                    (Some(c), _) => format!("{c} (pinning failed)"),
                    (None, _) => "-".to_string(),
                }
            );
            let _ = writeln!(
                s,
                "producer     produced ticks/s {:.0} (window; {:.0} over its {:.1} s run)  ticks {} (window {})  calls {}  refused calls {} ({} ticks)  failed round trips {}  round trip ms p50 {:.3} p99 {:.3}",
                p.ticks_per_sec,
                p.ticks_per_sec_total,
                p.run_secs,
                p.ticks_total,
                p.ticks_window,
                p.calls,
                p.refused_calls,
                p.refused_ticks,
                p.failed_round_trips,
                p.round_trip.p50_us / 1000.0,
                p.round_trip.p99_us / 1000.0
            );
            if let Some(e) = p.end_to_end_ticks_per_sec {
                let _ = writeln!(
                    s,
                    "end-to-end   {e:.0} ticks/s (produced x mean delivery of the healthy clients); delivered {:.0} ticks/s to all clients",
                    self.throughput.ticks_per_sec
                );
            }
            if let Some(err) = &p.first_error {
                let _ = writeln!(s, "producer     first error: {err}");
            }
        }
        if self.targets.len() > 1 {
            for t in &self.targets {
                let _ = writeln!(
                    s,
                    "target       {}  connected {}  failed {}  ticks/s {:.0}",
                    t.url, t.connected, t.failed, t.ticks_per_sec
                );
            }
        }
    }

    /// The delivery, stalled, storm and server lines of the table.
    fn table_extra(&self, s: &mut String) {
        self.table_fleet(s);
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        let opt = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
        let d = &self.delivery;
        if let Some(e) = d.expected_per_client
            && e > 0.0
        {
            let _ = writeln!(
                s,
                "delivery     healthy clients (whole window) {}: min {}% mean {}% max {}% of {e:.0} ticks each; healthy evicted/cut {} of {}",
                d.clients,
                opt(d.min_pct),
                opt(d.mean_pct),
                opt(d.max_pct),
                d.healthy_evicted,
                d.healthy_connected
            );
            if d.partial_clients > 0 {
                let _ = writeln!(
                    s,
                    "delivery     healthy clients open {PARTIAL_MIN_SECS:.0}+ s of the window (churn) {}: min {}% mean {}% of rate x time open",
                    d.partial_clients,
                    opt(d.partial_min_pct),
                    opt(d.partial_mean_pct)
                );
            }
        }
        if let Some(st) = &self.stalled {
            let e = &st.eviction_ms;
            let h = &st.hangup_ms;
            let _ = writeln!(
                s,
                "stalled      connected {}  stalled {}  gone {} (within {:.0} s: {})  not gone {}  censored {}  stall->gone ms: p50 {} p99 {} max {}  hang-up seen {} (p50 {} max {} ms)",
                st.connected,
                st.stalled,
                st.gone,
                st.horizon_secs,
                st.gone_within_horizon,
                st.not_gone,
                st.censored,
                e.median,
                e.p99,
                e.max,
                st.hangup_seen,
                h.median,
                h.max
            );
        }
        if let Some(st) = &self.storm {
            let c = &st.connect_time;
            let t = &st.snapshots_time;
            let ms = |us: f64| format!("{:.1}", us / 1000.0);
            let _ = writeln!(
                s,
                "storm        newcomers {}  connected {}  failed {}  connect ms p50 {} p99 {} max {}",
                st.newcomers,
                st.connected,
                st.failed,
                ms(c.p50_us),
                ms(c.p99_us),
                ms(c.max_us)
            );
            let _ = writeln!(
                s,
                "storm        all {} snapshots: {} newcomers ({} within 2 s); connect->snapshots ms p50 {} p99 {} max {}; span {:.0} ms; newcomer tick p99 {} ms",
                st.expected_snapshots
                    .map_or("expected".to_string(), |n| n.to_string()),
                st.with_snapshots,
                st.snapshots_within_2s,
                ms(t.p50_us),
                ms(t.p99_us),
                ms(t.max_us),
                st.span_ms,
                ms(st.latency.p99_us)
            );
        }
        if let Some(v) = &self.server {
            let states: Vec<String> = v
                .peak_closing_by_state
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            let _ = writeln!(
                s,
                "server       peak queued (skmem r+w+bl) {:.1} MiB [established {:.1}, closing {:.1}; with f {:.1}]  Send-Q {:.1} MiB  largest socket {:.0} KiB  window halves {:.1} / {:.1} MiB",
                mib(v.peak_queued_bytes),
                mib(v.peak_queued_established_bytes),
                mib(v.peak_queued_closing_bytes),
                mib(v.peak_charged_bytes),
                mib(v.peak_send_q_bytes),
                v.peak_socket_queued_bytes as f64 / 1024.0,
                mib(v.window_first_half_peak_queued),
                mib(v.window_second_half_peak_queued)
            );
            let _ = writeln!(
                s,
                "server       sockets peak established {}  closing {} [{}]  after {:?}",
                v.peak_established,
                v.peak_closing,
                states.join(", "),
                v.sockets_after
            );
            let kib =
                |k: Option<u64>| k.map_or("-".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
            let _ = writeln!(
                s,
                "server       RSS MiB before {} peak {} (VmHWM {}) after {}; window {} -> {}, slope {} KiB/min; fds before {} peak {} after {}; settled {} in {:.1} s",
                kib(v.rss_before_kib),
                kib(v.rss_peak_kib),
                kib(v.rss_hwm_kib),
                kib(v.rss_after_kib),
                kib(v.rss_window_first_kib),
                kib(v.rss_window_last_kib),
                opt(v.rss_slope_kib_per_min),
                v.fds_before.map_or("-".into(), |n| n.to_string()),
                v.fds_peak.map_or("-".into(), |n| n.to_string()),
                v.fds_after.map_or("-".into(), |n| n.to_string()),
                if v.settled { "yes" } else { "NO" },
                v.settle_secs
            );
            let _ = writeln!(
                s,
                "server       {} samples every {} ms (ss {}: dump mean {:.1} ms, max {:.1} ms); CPU % of a core: {}",
                v.samples,
                v.interval_ms,
                v.ss,
                v.ss_ms_mean,
                v.ss_ms_max,
                v.cpu_mean.map_or("-".to_string(), |c| format!(
                    "server {:.0}, loadgen {:.0}, other processes {:.0} (max {}), irq {:.0}, steal {:.0}",
                    c.server,
                    c.loadgen,
                    c.other,
                    opt(v.other_cpu_pct_max),
                    c.irq,
                    c.steal
                ))
            );
        }
        for f in self.failed_checks() {
            let _ = writeln!(s, "FAILED       {f}");
        }
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
        if !self.samples.is_empty() {
            write("samples.csv", samples_csv(&self.samples).as_bytes())?;
        }
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

/// The sampler's samples as CSV: one row per sample, times in s after the
/// run's start, bytes, KiB for RSS.
pub fn samples_csv(samples: &[Sample]) -> String {
    let mut s = String::from(
        "t_s,ss_ms,established,closing,closing_states,recv_q,send_q,r,w,t,f,bl,queued,queued_established,queued_closing,max_socket_queued,rss_kib,fds,cpu_server,cpu_loadgen,cpu_other,cpu_irq,cpu_steal\n",
    );
    let opt = |v: Option<u64>| v.map_or(String::new(), |v| v.to_string());
    for x in samples {
        let _ = write!(
            s,
            "{:.3},{:.1},",
            x.at_ns as f64 / 1e9,
            x.ss_ns as f64 / 1e6
        );
        match &x.sockets {
            Some(t) => {
                let states: Vec<String> =
                    t.closing.iter().map(|(k, n)| format!("{k}={n}")).collect();
                let _ = write!(
                    s,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{},",
                    t.established,
                    t.closing_count(),
                    states.join(";"),
                    t.recv_q,
                    t.send_q,
                    t.r,
                    t.w,
                    t.t,
                    t.f,
                    t.bl,
                    t.queued(),
                    t.queued_established,
                    t.queued_closing
                );
                let _ = write!(s, "{},", t.max_socket_queued);
            }
            None => s.push_str(",,,,,,,,,,,,,,"),
        }
        let cpu = x.cpu.map_or(",,,,".to_string(), |c| {
            format!(
                "{:.1},{:.1},{:.1},{:.1},{:.1}",
                c.server, c.loadgen, c.other, c.irq, c.steal
            )
        });
        let _ = writeln!(s, "{},{},{cpu}", opt(x.rss_kib), opt(x.fds));
    }
    s
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
    use std::time::Duration;

    fn client(role: Role, opened_s: u64, ended_s: u64, ticks: u64, end: End) -> ClientResult {
        ClientResult {
            index: 0,
            target: 0,
            slow: role == Role::Stalled,
            role,
            local_addr: None,
            started_ns: opened_s * 1_000_000_000,
            ended_ns: ended_s * 1_000_000_000,
            stalled_ns: None,
            hangup_ns: None,
            snapshots_ns: None,
            connect_ns: Some(1),
            ticks_window: ticks,
            ticks_total: ticks,
            snapshots: 0,
            seq: SeqCounts::default(),
            full_window: opened_s == 0 && end == End::StillOpen,
            end,
        }
    }

    #[test]
    fn delivery_counts_whole_window_and_churned_clients_by_time_open() {
        let mut o = Options::fanout(
            crate::options::parse_url("ws://127.0.0.1:1/ws").expect("url"),
            3,
        );
        o.rate = 100;
        let window = Window {
            start: Duration::from_secs(1),
            len: Duration::from_secs(30),
            cpu_pct: None,
        };
        let clients = vec![
            client(Role::Fast, 0, 40, 3000, End::StillOpen),
            // Open 21 s of the window (10..31), 2,079 of 2,100 ticks.
            client(Role::Fast, 10, 40, 2079, End::StillOpen),
            // Churned after 5 s in the window: too short to count.
            client(Role::Fast, 2, 6, 500, End::Churned),
            // Cut by the server: counted apart.
            client(Role::Fast, 0, 12, 1100, End::IoError("reset".into())),
            client(Role::Stalled, 0, 9, 10, End::IoError("reset".into())),
        ];
        let d = delivery(&o, o.rate as f64, window, &clients, &[3000]);
        assert_eq!(d.expected_per_client, Some(3000.0));
        assert_eq!((d.clients, d.min_pct), (1, Some(100.0)));
        assert_eq!((d.healthy_connected, d.healthy_evicted), (4, 1));
        assert_eq!(d.partial_clients, 1);
        assert!((d.partial_min_pct.expect("pct") - 99.0).abs() < 1e-6);
    }

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
