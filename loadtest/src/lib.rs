//! A load generator for WebSocket market-data broadcasters that speak
//! tickcast's PROTOCOL.md (v1).
//!
//! ```text
//!  Options ─► run ─► engine (mio worker threads: connect → handshake → subscribe → frames)
//!                      │  fastpath (a read's tick frames in one pass: the rest ↓)
//!                      │  frame (server frames in, masked client frames out)
//!                      │  scan (type/symbol/seq/ts by byte scan; serde_json for the rest)
//!                      │  intern (symbol → dense id, cached per thread)
//!                      │  seqcheck (snapshot baseline, gaps, duplicates, reorders)
//!                      │  latency (per-bucket counts, flushed into the histograms)
//!                      └► per-thread histograms ─► report (table, report.json, .hgrm, plot SVG)
//! ```
//!
//! The client must never be the bottleneck: one thread parses tens of
//! millions of frames per second (one 64 KiB read buffer per thread, no
//! per-frame allocation, no locks on the data path).
//!
//! # Reading order
//! [`options`] → [`engine`] → [`fastpath`] → [`frame`] → [`scan`] →
//! [`intern`] → [`seqcheck`] → [`latency`] →
//! [`stats`] → [`report`] → [`plot`]; [`tls`] is the `wss://` wire;
//! [`produce`] feeds a Redis-fed fleet (`--produce`).
#![deny(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unsafe_op_in_unsafe_fn
)]

pub mod engine;
pub mod fastpath;
pub mod frame;
pub mod handshake;
pub mod inprocess;
pub mod intern;
pub mod latency;
pub mod monitor;
pub mod options;
pub mod plot;
pub mod probe;
pub mod produce;
pub mod report;
pub mod scan;
pub mod seqcheck;
pub mod stats;
pub mod sys;
pub mod tls;

use std::time::Duration;

pub use options::{Cli, Options, Produce, Scenario, SlowMode, Subscription, Target};
pub use report::{RampStep, Report};

/// How long the random:K probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the producer may take to give every symbol a first tick
/// before the clients connect.
const PRIME_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the scenario in `opts` and returns its report.
///
/// Without a target (`opts.targets` empty) the in-process server is
/// started (see [`inprocess`]); the ramp scenario always uses it. With a
/// producer (`opts.produce`) the targets are nodes fed from its stream, or,
/// without clients, there are none (the producer alone).
///
/// # Errors
/// If the in-process server cannot start, the producer cannot reach
/// Redis, the probe fails, or a worker thread cannot be created. Connect
/// failures are not errors: they are counted in the report.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    if let Err(e) = sys::raise_nofile_limit() {
        eprintln!("warning: could not raise the open-file limit: {e}");
    }
    if opts.scenario == Scenario::Ramp {
        return run_ramp(opts);
    }
    if let Some(p) = &opts.produce {
        return run_produced(opts, p);
    }
    if opts.targets.is_empty() {
        let (addr, stop) = inprocess::start(opts.symbols, opts.rate)?;
        let r = run_against(
            opts,
            &[in_process_target(addr)],
            Some(std::process::id()),
            None,
        );
        stop();
        r
    } else {
        run_against(opts, &opts.targets, opts.server_pid, None)
    }
}

/// `--produce`: the producer thread, then the clients of the nodes fed
/// from its stream (or nothing else, with no clients).
fn run_produced(opts: &Options, p: &Produce) -> anyhow::Result<Report> {
    let producer = produce::Producer::start(produce::Plan {
        produce: p.clone(),
        rate: opts.rate,
        symbols: opts.symbols,
        progress: opts.progress,
    })?;
    if opts.total_clients() == 0 {
        return producer_alone(opts, producer);
    }
    // Every symbol gets a value before the clients connect, so that `*`
    // brings one snapshot per symbol.
    if !producer.wait_accepted(opts.symbols as u64, PRIME_TIMEOUT) && opts.progress {
        eprintln!(
            "warning: the producer had not given every symbol a tick within {PRIME_TIMEOUT:?}"
        );
    }
    run_against(opts, &opts.targets, opts.server_pid, Some(producer))
}

/// The producer by itself for warm-up + duration: its rate is the window's.
fn producer_alone(opts: &Options, producer: produce::Producer) -> anyhow::Result<Report> {
    let t0 = std::time::Instant::now();
    let window = engine::Window {
        start: opts.warmup,
        len: opts.duration,
        cpu_pct: None,
    };
    let end = t0 + opts.warmup + opts.duration;
    // Bounded by the window's end.
    loop {
        let left = end.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            break;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
    let record = producer.stop()?;
    let summary = record.summary(t0 + window.start, end);
    let url = summary.url.clone();
    report::build(opts, &url, Vec::new(), window, None, Some(summary))
}

fn in_process_target(addr: std::net::SocketAddr) -> Target {
    Target {
        addr,
        host: addr.to_string(),
        path: "/ws".into(),
        tls: false,
    }
}

fn run_against(
    opts: &Options,
    targets: &[Target],
    pid: Option<u32>,
    producer: Option<produce::Producer>,
) -> anyhow::Result<Report> {
    let Some(first) = targets.first() else {
        anyhow::bail!("no target to connect to");
    };
    let universe = match opts.subscribe {
        // All targets serve the same symbols (one stream, or the same
        // synthetic universe): one probe does.
        Subscription::Random(_) if opts.universe.is_empty() => {
            probe::universe(first, opts, PROBE_TIMEOUT)?
        }
        Subscription::Random(_) => opts.universe.clone(),
        _ => Vec::new(),
    };
    let url = targets
        .iter()
        .map(Target::url)
        .collect::<Vec<_>>()
        .join(",");
    let t0 = std::time::Instant::now();
    // Sampling watches one server (several targets refuse it).
    let watch = monitor::MonitorConfig {
        port: first.addr.port(),
        pid,
        interval: opts.sample_interval,
    };
    let sampler = if opts.sample_interval.is_zero() {
        None
    } else {
        Some(monitor::Monitor::start(watch.clone(), t0)?)
    };
    let driven = engine::drive(opts, targets, universe, t0);
    // The sampler runs on through the settling, so the samples show the
    // server letting go of its sockets.
    let server = sampler.map(|m| {
        let fds_before = m.fds_before();
        if pid == Some(std::process::id()) {
            // In-process: the sampler's own pipes would count as the
            // server's descriptors, so it stops first.
            let data = m.finish();
            (data, monitor::settle(&watch, fds_before, opts.settle))
        } else {
            let settled = monitor::settle(&watch, fds_before, opts.settle);
            (m.finish(), settled)
        }
    });
    let record = producer.map(produce::Producer::stop).transpose()?;
    let (results, window) = driven?;
    let from = t0 + window.start;
    let producer = record.map(|r| r.summary(from, from + window.len));
    report::build(opts, &url, results, window, server, producer)
}

/// Restarts the in-process server at each rate of `opts.ramp`, runs a
/// fan-out against it, and finds the knee.
fn run_ramp(opts: &Options) -> anyhow::Result<Report> {
    let mut steps = Vec::new();
    let mut knee = None;
    let mut last = None;
    for &rate in &opts.ramp {
        let (addr, stop) = inprocess::start(opts.symbols, rate)?;
        let step_opts = Options {
            rate,
            ..opts.clone()
        };
        let r = run_against(
            &step_opts,
            &[in_process_target(addr)],
            Some(std::process::id()),
            None,
        );
        stop();
        let r = r?;
        let share = match &opts.subscribe {
            Subscription::Random(k) => (*k as f64 / opts.symbols as f64).min(1.0),
            Subscription::None => 0.0,
            _ => 1.0,
        };
        let fast_clients = opts.clients as f64 * (1.0 - opts.slow_fraction);
        let expected = rate as f64 * r.window_secs * share * fast_clients;
        let delivery = if expected > 0.0 {
            r.per_client_ticks.sum as f64 / expected
        } else {
            0.0
        };
        let step = RampStep {
            rate,
            p99_ms: r.latency.p99_us / 1000.0,
            delivery,
            evicted: r.clients.evicted_fast + r.clients.evicted_slow,
            gaps: r.seq.not_evicted.gaps,
        };
        let bad = step.p99_ms > opts.p99_limit_ms || step.delivery < 0.99;
        if opts.progress {
            eprintln!(
                "ramp rate {rate}: p99 {:.3} ms, delivery {:.4}",
                step.p99_ms, step.delivery
            );
        }
        steps.push(step);
        last = Some(r);
        if bad {
            knee = Some(rate);
            break;
        }
    }
    let mut report = last.ok_or_else(|| anyhow::anyhow!("--ramp has no rates"))?;
    report.scenario = Scenario::Ramp;
    report.ramp = steps;
    report.knee_rate = knee;
    Ok(report)
}
