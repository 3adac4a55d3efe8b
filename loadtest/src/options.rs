//! Command-line options, validated once into [`Options`].
//!
//! Invariant: code after [`Cli::into_options`] trusts [`Options`]: the target
//! is a loopback address (this tool never sends traffic anywhere else),
//! counts are non-zero where they must be, and fractions are in range.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;

/// Connections per source address used when `--source-addrs` is not given:
/// well below the ~28,000 ephemeral ports Linux offers per address.
pub const CONNS_PER_SOURCE_ADDR: usize = 25_000;

/// The load scenarios.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// N clients subscribe and receive for `--duration`.
    Fanout,
    /// Like fanout, but a fraction of the clients read slowly or not at all.
    Slow,
    /// N connects as fast as possible; connect-time percentiles. With
    /// `--streaming M`, M clients stream first and the N connect at once
    /// inside the window (time until each has its snapshots).
    ConnectStorm,
    /// Fanout while clients disconnect and reconnect at `--churn-rate`.
    Churn,
    /// Restart the in-process server at increasing rates; find the knee.
    Ramp,
    /// `--clients` healthy clients plus `--stalled` clients that read
    /// normally, then stop reading at one moment (sockets kept open);
    /// server-side socket memory and time to eviction.
    Stalled,
    /// A long run: healthy clients with churn, a share of clients that
    /// stall (each replaced when it is gone), server RSS and descriptors.
    Soak,
}

/// What each client subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Subscription {
    /// The group `*`: every symbol.
    All,
    /// One named group.
    Group(String),
    /// K symbols picked at random per client from the universe
    /// (`--universe`, or the snapshots of a probe subscription to `*`).
    Random(usize),
    /// No subscription (connect-storm).
    None,
}

impl std::str::FromStr for Subscription {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        if s == "*" {
            return Ok(Subscription::All);
        }
        if s == "none" {
            return Ok(Subscription::None);
        }
        if let Some(g) = s.strip_prefix("group:") {
            if g.is_empty() {
                bail!("group:NAME needs a name");
            }
            return Ok(Subscription::Group(g.to_string()));
        }
        if let Some(k) = s.strip_prefix("random:") {
            let k: usize = k
                .parse()
                .with_context(|| format!("random:K needs a count, got {k:?}"))?;
            if k == 0 {
                bail!("random:K needs K >= 1");
            }
            return Ok(Subscription::Random(k));
        }
        bail!("--subscribe must be '*', 'group:NAME', 'random:K' or 'none', got {s:?}")
    }
}

/// How slow clients behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SlowMode {
    /// Never read after subscribing (only to notice the close).
    Stop,
    /// Read at most this many bytes per second.
    Rate(u64),
}

impl std::str::FromStr for SlowMode {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> anyhow::Result<Self> {
        if s == "stop" {
            return Ok(SlowMode::Stop);
        }
        if let Some(n) = s.strip_prefix("rate:") {
            let n: u64 = n
                .parse()
                .with_context(|| format!("rate:N needs bytes/s, got {n:?}"))?;
            if n == 0 {
                bail!("rate:0 is the same as 'stop'; use that");
            }
            return Ok(SlowMode::Rate(n));
        }
        bail!("--slow-mode must be 'stop' or 'rate:N', got {s:?}")
    }
}

/// Where the clients connect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Target {
    /// Resolved loopback address.
    pub addr: SocketAddr,
    /// The `Host` header value (`host:port` as given).
    pub host: String,
    /// Path and query for the upgrade request, e.g. `/ws?client=lt`.
    pub path: String,
    /// `wss://`: TLS, with the host (without port) as the server name.
    pub tls: bool,
}

impl Target {
    /// The URL, as it was given.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        format!("{scheme}://{}{}", self.host, self.path)
    }

    /// The host without its port: the TLS server name.
    pub fn server_name(&self) -> &str {
        let host = match self.host.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => &self.host,
        };
        host.trim_start_matches('[').trim_end_matches(']')
    }
}

/// The producer of a Redis-fed fleet (`--produce`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Produce {
    /// `redis://HOST:PORT`, as given.
    pub redis_url: String,
    /// The stream's key.
    pub stream: String,
    /// Redis's resolved (loopback) address.
    pub addr: SocketAddr,
    /// Ticks per `tickcast_publish_batch` call.
    pub batch: usize,
    /// Calls per round trip.
    pub pipeline: usize,
    /// Core the producer thread is pinned to.
    pub cpu: Option<usize>,
}

/// Most ticks per call, and calls per round trip, `--produce` accepts.
pub const MAX_PRODUCE_BATCH: usize = 100_000;

/// Parses `redis://HOST:PORT/STREAM` for `--produce` and refuses
/// non-loopback Redis servers.
///
/// # Errors
/// On a malformed URL, an unresolvable host, an address outside
/// 127.0.0.0/8 and ::1, or a batch or pipeline outside
/// 1..=[`MAX_PRODUCE_BATCH`].
pub fn parse_produce(
    url: &str,
    batch: usize,
    pipeline: usize,
    cpu: Option<usize>,
) -> anyhow::Result<Produce> {
    let feed = tickcast::RedisFeed::parse(url).map_err(|e| anyhow::anyhow!("--produce: {e}"))?;
    let host = feed.redis_url.trim_start_matches("redis://");
    if host.contains('@') {
        bail!("--produce {url:?}: credentials in the URL are not supported");
    }
    let has_port = match host.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => host.contains(':'),
    };
    let with_port = if has_port {
        host.to_string()
    } else {
        format!("{host}:6379")
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {with_port}"))?
        .collect();
    let Some(addr) = addrs.iter().find(|a| a.ip().is_loopback()).copied() else {
        bail!(
            "--produce {with_port} is not a loopback address; this tool only targets 127.0.0.0/8 or ::1"
        );
    };
    for (name, v) in [("produce-batch", batch), ("produce-pipeline", pipeline)] {
        if !(1..=MAX_PRODUCE_BATCH).contains(&v) {
            bail!("--{name} must be 1..={MAX_PRODUCE_BATCH}, got {v}");
        }
    }
    Ok(Produce {
        redis_url: feed.redis_url,
        stream: feed.stream,
        addr,
        batch,
        pipeline,
        cpu,
    })
}

/// How a `wss://` server's certificate is checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trust {
    /// Against the CA certificates of this PEM file (`--ca`).
    Ca(PathBuf),
    /// Not at all (`--insecure`).
    Insecure,
}

/// Parses `ws://` or `wss://HOST:PORT/PATH?QUERY` and refuses non-loopback
/// targets.
///
/// # Errors
/// On a scheme other than `ws` and `wss`, an unresolvable host, or an
/// address outside 127.0.0.0/8 and ::1.
pub fn parse_url(url: &str) -> anyhow::Result<Target> {
    let (rest, tls) = match (url.strip_prefix("ws://"), url.strip_prefix("wss://")) {
        (Some(rest), _) => (rest, false),
        (_, Some(rest)) => (rest, true),
        _ => bail!("only ws:// and wss:// URLs are supported, got {url:?}"),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/ws"),
    };
    if authority.is_empty() {
        bail!("URL {url:?} has no host");
    }
    let has_port = match authority.strip_prefix('[') {
        Some(v6) => v6.contains("]:"),
        None => authority.contains(':'),
    };
    let with_port = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    let addrs: Vec<SocketAddr> = with_port
        .to_socket_addrs()
        .with_context(|| format!("resolving {with_port}"))?
        .collect();
    let Some(addr) = addrs.iter().find(|a| a.ip().is_loopback()).copied() else {
        bail!("{with_port} is not a loopback address; this tool only targets 127.0.0.0/8 or ::1");
    };
    Ok(Target {
        addr,
        host: authority.to_string(),
        path: path.to_string(),
        tls,
    })
}

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    about = "WebSocket load generator for tickcast (PROTOCOL.md v1)"
)]
pub struct Cli {
    /// Server URL, ws:// or wss://HOST:PORT/ws (loopback only);
    /// repeatable or a comma list: clients are spread round-robin over the
    /// URLs (client i connects to URL i % N). Without it the in-process
    /// server is started (see inprocess.rs), unless --produce is given.
    #[arg(long, value_delimiter = ',')]
    pub url: Vec<String>,
    /// Produce the ticks: publish to this Redis stream
    /// (redis://HOST:PORT/STREAM, loopback only) through
    /// `FCALL tickcast_publish_batch`, at --rate ticks/s (0: as fast as
    /// Redis takes them) over --symbols symbols, from a thread of its own.
    /// The --url nodes are fed from the stream; with --clients 0 and no
    /// --url, the producer runs alone for warm-up + duration.
    #[arg(long, value_name = "REDIS_URL")]
    pub produce: Option<String>,
    /// --produce: ticks per `tickcast_publish_batch` call.
    #[arg(long, default_value_t = 16)]
    pub produce_batch: usize,
    /// --produce: calls per round trip (pipelined).
    #[arg(long, default_value_t = 64)]
    pub produce_pipeline: usize,
    /// --produce: pin the producer thread to this core (default: the next
    /// slot of --cpu after the client threads, cpu[threads % len]; no
    /// pinning without --cpu).
    #[arg(long)]
    pub produce_cpu: Option<usize>,
    /// wss://: trust the CA certificates in this PEM file.
    #[arg(long, conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// wss://: accept any server certificate, unchecked (a loopback
    /// benchmark whose CA the tool is not given).
    #[arg(long)]
    pub insecure: bool,
    /// Scenario to run.
    #[arg(long, value_enum, default_value = "fanout")]
    pub scenario: Scenario,
    /// Number of clients (default 100; 1000 for connect-storm).
    #[arg(long)]
    pub clients: Option<usize>,
    /// Measured seconds, after the warm-up (default 10; 0 for connect-storm).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Warm-up seconds excluded from latency and rate figures.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Client threads (each runs its own mio Poll).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Pin client threads to these cores (comma list; thread i gets
    /// cpu[i % len]).
    #[arg(long, value_delimiter = ',')]
    pub cpu: Vec<usize>,
    /// Source addresses 127.0.0.1..=127.0.0.N to spread clients over
    /// (default: one per 25,000 clients).
    #[arg(long)]
    pub source_addrs: Option<usize>,
    /// '*' (default), 'group:NAME', 'random:K' or 'none'.
    #[arg(long, default_value = "*")]
    pub subscribe: Subscription,
    /// Symbol universe for random:K (comma list). Without it a probe
    /// connection subscribes to '*' and takes the symbols of its snapshots.
    #[arg(long, value_delimiter = ',')]
    pub universe: Vec<String>,
    /// Stalled clients, on top of --clients (stalled and soak scenarios;
    /// soak default: 1% of --clients, at least 1).
    #[arg(long)]
    pub stalled: Option<usize>,
    /// When stalled clients stop reading, in seconds: after the connect
    /// phase (stalled scenario; default the warm-up, so they stall as the
    /// window opens), or after each one's own connect (soak; default 2).
    #[arg(long)]
    pub stall_after: Option<f64>,
    /// Seconds a stalled client stays stalled before it closes its socket
    /// itself (it is then replaced in soak); default 12 in soak (a
    /// stalled client often never sees the server's reset), never in the
    /// stalled scenario.
    #[arg(long)]
    pub stall_for: Option<f64>,
    /// Stalled scenario: each stalled client stops --stall-after seconds
    /// after its own connect (as in soak), not all at one moment; with
    /// many clients, they stall as they arrive instead of reading through
    /// a long connect phase.
    #[arg(long)]
    pub stall_each: bool,
    /// SO_RCVBUF of stalled clients, bytes (0 = kernel autotuning, which
    /// lets the client's kernel absorb a stream for a long time).
    #[arg(long, default_value_t = 65536)]
    pub stall_rcvbuf: usize,
    /// connect-storm: clients that subscribe and stream before the storm
    /// (the storm's --clients then connect at once, inside the window).
    #[arg(long, default_value_t = 0)]
    pub streaming: usize,
    /// connect-storm with --streaming: seconds into the window at which the
    /// storm starts (default 5).
    #[arg(long)]
    pub storm_at: Option<f64>,
    /// connect-storm with --streaming: newcomers close (1000) this many
    /// seconds after their last expected snapshot (default: they stay and
    /// stream until the end), to tell the storm's cost from the steady
    /// cost of the larger population.
    #[arg(long)]
    pub storm_leave: Option<f64>,
    /// Snapshots a client expects from its subscription (default: --symbols
    /// for '*', K for random:K); the time until a client has them all is
    /// reported.
    #[arg(long)]
    pub expect_snapshots: Option<u64>,
    /// Process id of the server, for its RSS and descriptor count (the
    /// in-process server is this process).
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Server-side sampling interval in ms (ss and /proc); 0 = off.
    /// Default 150 for stalled, soak and connect-storm with --streaming.
    #[arg(long)]
    pub sample_ms: Option<u64>,
    /// After the run, seconds to wait for the server's sockets to be gone
    /// and its descriptor count back to where it started (with sampling).
    #[arg(long, default_value_t = 15.0)]
    pub settle: f64,
    /// Fraction of clients that are slow (default 0.1 for the slow scenario).
    #[arg(long)]
    pub slow_fraction: Option<f64>,
    /// 'stop' (never read) or 'rate:N' (read N bytes/s).
    #[arg(long, default_value = "stop")]
    pub slow_mode: SlowMode,
    /// Disconnects+reconnects per second across all clients (churn;
    /// default 100 there).
    #[arg(long)]
    pub churn_rate: Option<f64>,
    /// Seconds a connect + handshake may take before it counts as failed.
    #[arg(long, default_value_t = 10.0)]
    pub connect_timeout: f64,
    /// Connects in flight per thread at once (0 = unlimited; default 256,
    /// unlimited for connect-storm).
    #[arg(long)]
    pub connect_concurrency: Option<usize>,
    /// Number of symbols: the in-process server's, and, against an external
    /// server, what it was started with (snapshots expected from '*').
    #[arg(long, default_value_t = 100)]
    pub symbols: usize,
    /// Ticks per second in total: what the in-process server publishes,
    /// and, against an external server, what it was started with (the
    /// delivery % is computed against it). With --produce: the producer's
    /// target rate (0: unpaced), and the delivery % is computed against
    /// what it actually produced in the window.
    #[arg(long, default_value_t = 2000)]
    pub rate: u64,
    /// Ramp: comma list of rates to try, in order.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,5000,10000,20000,50000,100000"
    )]
    pub ramp: Vec<u64>,
    /// Ramp: p99 above this (ms) marks the knee.
    #[arg(long, default_value_t = 10.0)]
    pub p99_limit_ms: f64,
    /// Output directory (default loadtest/out/<timestamp>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// No per-second progress lines.
    #[arg(long)]
    pub quiet: bool,
}

/// Validated run options; see the matching [`Cli`] flags for meaning.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// Target servers, clients round-robin over them; empty means the
    /// in-process server (or, with `produce` and no clients, none).
    pub targets: Vec<Target>,
    /// The producer (`--produce`), if any.
    pub produce: Option<Produce>,
    /// How a `wss://` target's certificate is checked (`None` for `ws://`).
    pub trust: Option<Trust>,
    /// Scenario to run.
    pub scenario: Scenario,
    /// Number of clients (healthy ones for stalled and soak; newcomers for
    /// connect-storm with `streaming`).
    pub clients: usize,
    /// Stalled clients on top of `clients`.
    pub stalled: usize,
    /// When stalled clients stop reading (see [`Cli::stall_after`]).
    pub stall_after: Duration,
    /// Each stalled client stalls `stall_after` after its own connect
    /// (always so in soak).
    pub stall_each: bool,
    /// A stalled client closes its socket this long after stalling (None:
    /// it keeps it until the run ends or the server drops it).
    pub stall_for: Option<Duration>,
    /// SO_RCVBUF of stalled clients (0 = autotuning).
    pub stall_rcvbuf: usize,
    /// connect-storm: clients streaming before the storm.
    pub streaming: usize,
    /// connect-storm with `streaming`: storm start, after the window start.
    pub storm_at: Duration,
    /// Newcomers close this long after their snapshots (None: they stay).
    pub storm_leave: Option<Duration>,
    /// Snapshots each subscription should bring (None: unknown).
    pub expect_snapshots: Option<u64>,
    /// Server process id for RSS and descriptors.
    pub server_pid: Option<u32>,
    /// Server-side sampling interval (zero: off).
    pub sample_interval: Duration,
    /// Wait for the server to settle after the run (with sampling).
    pub settle: Duration,
    /// Measured window.
    pub duration: Duration,
    /// Warm-up excluded from figures.
    pub warmup: Duration,
    /// Client threads.
    pub threads: usize,
    /// Cores to pin client threads to (empty: no pinning).
    pub cpus: Vec<usize>,
    /// Source addresses 127.0.0.1..=127.0.0.N.
    pub source_addrs: usize,
    /// What each client subscribes to.
    pub subscribe: Subscription,
    /// Symbol universe for random:K (empty: probe).
    pub universe: Vec<String>,
    /// Fraction of slow clients, 0..=1.
    pub slow_fraction: f64,
    /// Behaviour of slow clients.
    pub slow_mode: SlowMode,
    /// Disconnect+reconnect events per second (0: none).
    pub churn_rate: f64,
    /// Connect + handshake deadline.
    pub connect_timeout: Duration,
    /// Connects in flight per thread (0 = unlimited).
    pub connect_concurrency: usize,
    /// In-process server symbols.
    pub symbols: usize,
    /// In-process server ticks per second.
    pub rate: u64,
    /// Ramp rates.
    pub ramp: Vec<u64>,
    /// Ramp knee threshold for p99, ms.
    pub p99_limit_ms: f64,
    /// Print a progress line per second.
    pub progress: bool,
}

/// `--produce` with or without clients: nodes fed from the stream get
/// clients (their `--url`), or the producer runs alone.
fn check_produce(scenario: Scenario, clients: usize, targets: &[Target]) -> anyhow::Result<()> {
    if clients == 0 {
        if !targets.is_empty() {
            bail!("--clients 0 with --produce runs the producer alone: drop --url");
        }
        if scenario != Scenario::Fanout {
            bail!("the producer alone (--clients 0) runs as --scenario fanout");
        }
    } else if targets.is_empty() {
        bail!(
            "--produce feeds nodes started apart (tickcast --feed redis://HOST:PORT/STREAM): \
             give their --url, or --clients 0 for the producer alone"
        );
    }
    Ok(())
}

fn secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    if !(0.0..1e7).contains(&v) {
        bail!("--{name} must be a number of seconds >= 0, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

impl Cli {
    /// Validates the command line into [`Options`].
    ///
    /// # Errors
    /// On any out-of-range or contradictory value.
    pub fn into_options(self) -> anyhow::Result<Options> {
        let targets = self
            .url
            .iter()
            .map(|u| parse_url(u))
            .collect::<anyhow::Result<Vec<Target>>>()?;
        let produce_cpu = self.produce_cpu.or_else(|| {
            (!self.cpu.is_empty()).then(|| self.cpu[self.threads.max(1) % self.cpu.len()])
        });
        let produce = self
            .produce
            .as_deref()
            .map(|u| parse_produce(u, self.produce_batch, self.produce_pipeline, produce_cpu))
            .transpose()?;
        let trust = match (&self.ca, self.insecure) {
            (Some(ca), _) => Some(Trust::Ca(ca.clone())),
            (None, true) => Some(Trust::Insecure),
            (None, false) => None,
        };
        match (targets.iter().any(|t| t.tls), trust.is_some()) {
            (true, false) => bail!("a wss:// URL needs --ca FILE (or --insecure)"),
            (false, true) => bail!("--ca and --insecure are for wss:// URLs"),
            _ => {}
        }
        let storm = self.scenario == Scenario::ConnectStorm;
        let stalling = matches!(self.scenario, Scenario::Stalled | Scenario::Soak);
        let streaming_storm = storm && self.streaming > 0;
        if self.streaming > 0 && !storm {
            bail!("--streaming is for --scenario connect-storm");
        }
        let soak = self.scenario == Scenario::Soak;
        let clients = self
            .clients
            .unwrap_or(if storm || soak { 1000 } else { 100 });
        let stalled = match (self.scenario, self.stalled) {
            (Scenario::Stalled, Some(n)) => n,
            (Scenario::Stalled, None) => bail!("--scenario stalled needs --stalled N"),
            (Scenario::Soak, Some(n)) => n,
            (Scenario::Soak, None) => clients.div_ceil(100).max(1),
            (_, Some(n)) if n > 0 => bail!("--stalled is for the stalled and soak scenarios"),
            _ => 0,
        };
        if clients == 0 && !(stalling && stalled > 0) && produce.is_none() {
            bail!("--clients must be at least 1");
        }
        if produce.is_some() {
            check_produce(self.scenario, clients + stalled, &targets)?;
        }
        let stall_after = secs(
            "stall-after",
            self.stall_after
                .unwrap_or(if soak { 2.0 } else { self.warmup }),
        )?;
        let storm_at = secs("storm-at", self.storm_at.unwrap_or(5.0))?;
        let duration = secs(
            "duration",
            self.duration.unwrap_or(match self.scenario {
                Scenario::ConnectStorm if streaming_storm => 15.0,
                Scenario::ConnectStorm => 0.0,
                Scenario::Soak => 600.0,
                _ => 10.0,
            }),
        )?;
        if streaming_storm && storm_at >= duration {
            bail!("--storm-at must fall inside the window (--duration)");
        }
        let sample_ms = self
            .sample_ms
            .unwrap_or(if stalling || streaming_storm { 150 } else { 0 });
        if self.threads == 0 || self.threads > 256 {
            bail!("--threads must be 1..=256");
        }
        let slow_fraction = self
            .slow_fraction
            .unwrap_or(if self.scenario == Scenario::Slow {
                0.1
            } else {
                0.0
            });
        if !(0.0..=1.0).contains(&slow_fraction) {
            bail!("--slow-fraction must be within 0..=1");
        }
        let churn_rate = self.churn_rate.unwrap_or(match self.scenario {
            Scenario::Churn => 100.0,
            Scenario::Soak => 10.0,
            _ => 0.0,
        });
        if !(churn_rate.is_finite() && churn_rate >= 0.0) {
            bail!("--churn-rate must be >= 0");
        }
        let total = clients + stalled + self.streaming;
        let source_addrs = self
            .source_addrs
            .unwrap_or(total.div_ceil(CONNS_PER_SOURCE_ADDR))
            .max(1);
        if source_addrs > 254 {
            bail!("--source-addrs must be at most 254 (127.0.0.1..=127.0.0.254)");
        }
        if targets.len() > 1 && sample_ms > 0 {
            bail!(
                "server-side sampling (--sample-ms; stalled, soak, storms next to streams) \
                 watches one server: give one --url"
            );
        }
        if self.scenario == Scenario::Ramp {
            if !targets.is_empty() {
                bail!(
                    "ramp restarts the server at each rate, so it needs the in-process server: drop --url \
                     (for an external server, run fanout once per rate you configure on it)"
                );
            }
            if self.ramp.is_empty() || self.ramp.contains(&0) {
                bail!("--ramp needs one or more rates > 0");
            }
        }
        // A plain storm measures connects only; next to a streaming
        // population the newcomers subscribe like everyone else.
        let subscribe = if storm && !streaming_storm && self.subscribe == Subscription::All {
            Subscription::None
        } else {
            self.subscribe
        };
        let symbols = self.symbols.max(1);
        // A producer's symbols are known up front: no probe needed.
        let universe = match (&subscribe, &produce) {
            (Subscription::Random(_), Some(_)) if self.universe.is_empty() => {
                crate::produce::symbol_names(symbols)
            }
            _ => self.universe,
        };
        let expect_snapshots = self.expect_snapshots.or(match &subscribe {
            Subscription::All => Some(symbols as u64),
            Subscription::Random(k) if universe.is_empty() => Some(*k as u64),
            Subscription::Random(k) => Some((*k).min(universe.len()) as u64),
            _ => None,
        });
        Ok(Options {
            targets,
            produce,
            trust,
            scenario: self.scenario,
            clients,
            stalled,
            stall_after,
            stall_each: self.stall_each || soak,
            stall_for: match self.stall_for {
                Some(v) => Some(secs("stall-for", v)?),
                None if soak => Some(Duration::from_secs(12)),
                None => None,
            },
            stall_rcvbuf: self.stall_rcvbuf,
            streaming: self.streaming,
            storm_at,
            storm_leave: self
                .storm_leave
                .map(|v| secs("storm-leave", v))
                .transpose()?,
            expect_snapshots,
            server_pid: self.server_pid,
            sample_interval: Duration::from_millis(sample_ms),
            settle: secs("settle", self.settle)?,
            duration,
            warmup: secs("warmup", self.warmup)?,
            threads: self.threads,
            cpus: self.cpu,
            source_addrs,
            subscribe,
            universe,
            slow_fraction,
            slow_mode: self.slow_mode,
            churn_rate,
            connect_timeout: secs("connect-timeout", self.connect_timeout)?,
            connect_concurrency: self
                .connect_concurrency
                .unwrap_or(if storm && !streaming_storm { 0 } else { 256 }),
            symbols,
            rate: self.rate,
            ramp: self.ramp,
            p99_limit_ms: self.p99_limit_ms,
            progress: !self.quiet,
        })
    }
}

impl Options {
    /// Every client the run starts with or adds at the storm: healthy,
    /// stalled and streaming (churn and soak replacements not counted).
    pub fn total_clients(&self) -> usize {
        self.clients + self.stalled + self.streaming
    }

    /// Options for `clients` fan-out clients of `target`, other knobs at
    /// their defaults (convenient for tests and embedding).
    pub fn fanout(target: Target, clients: usize) -> Self {
        let mut o = Cli::try_parse_from(["loadtest"])
            .expect("no arguments always parse")
            .into_options()
            .expect("defaults are valid");
        o.targets = vec![target];
        o.clients = clients;
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(args: &[&str]) -> anyhow::Result<Options> {
        let mut v = vec!["loadtest"];
        v.extend_from_slice(args);
        Cli::try_parse_from(v)?.into_options()
    }

    #[test]
    fn defaults_are_a_fanout_to_everything() {
        let o = opts(&["--url", "ws://127.0.0.1:9000/ws"]).expect("valid");
        assert_eq!(o.scenario, Scenario::Fanout);
        assert_eq!(o.clients, 100);
        assert_eq!(o.duration, Duration::from_secs(10));
        assert_eq!(o.warmup, Duration::from_secs(2));
        assert_eq!(o.subscribe, Subscription::All);
        assert_eq!((o.threads, o.source_addrs), (1, 1));
        let t = o.targets.first().cloned().expect("target");
        assert_eq!(t.addr, "127.0.0.1:9000".parse().expect("addr"));
        assert_eq!(t.path, "/ws");
    }

    #[test]
    fn subscription_forms_parse() {
        assert_eq!("*".parse::<Subscription>().ok(), Some(Subscription::All));
        assert_eq!(
            "group:fx".parse::<Subscription>().ok(),
            Some(Subscription::Group("fx".into()))
        );
        assert_eq!(
            "random:5".parse::<Subscription>().ok(),
            Some(Subscription::Random(5))
        );
        assert!("random:0".parse::<Subscription>().is_err());
        assert!("random:x".parse::<Subscription>().is_err());
        assert!("group:".parse::<Subscription>().is_err());
        assert!("AAPL".parse::<Subscription>().is_err());
    }

    #[test]
    fn slow_scenario_defaults_to_a_tenth_stopped() {
        let o = opts(&["--url", "ws://localhost:1/ws", "--scenario", "slow"]).expect("valid");
        assert_eq!(o.slow_fraction, 0.1);
        assert_eq!(o.slow_mode, SlowMode::Stop);
        let o = opts(&[
            "--url",
            "ws://localhost:1/ws",
            "--scenario",
            "slow",
            "--slow-mode",
            "rate:1000",
        ])
        .expect("valid");
        assert_eq!(o.slow_mode, SlowMode::Rate(1000));
        assert!(opts(&["--slow-mode", "rate:0"]).is_err());
        assert!(opts(&["--slow-fraction", "1.5"]).is_err());
    }

    #[test]
    fn connect_storm_does_not_subscribe_and_is_unthrottled() {
        let o = opts(&[
            "--url",
            "ws://127.0.0.1:1/ws",
            "--scenario",
            "connect-storm",
        ])
        .expect("valid");
        assert_eq!(o.subscribe, Subscription::None);
        assert_eq!(o.connect_concurrency, 0);
        assert_eq!(o.clients, 1000);
        assert_eq!(o.duration, Duration::ZERO);
    }

    #[test]
    fn source_addrs_default_to_one_per_25000_clients() {
        let o = opts(&["--url", "ws://127.0.0.1:1/ws", "--clients", "60000"]).expect("valid");
        assert_eq!(o.source_addrs, 3);
        assert!(opts(&["--source-addrs", "300"]).is_err());
    }

    #[test]
    fn non_loopback_and_non_ws_urls_are_refused() {
        assert!(parse_url("ws://10.0.0.1:80/ws").is_err());
        assert!(parse_url("ws://8.8.8.8:80/ws").is_err());
        assert!(parse_url("wss://8.8.8.8:443/ws").is_err());
        assert!(parse_url("http://127.0.0.1/ws").is_err());
        let t = parse_url("wss://[::1]/ws").expect("wss, v6 loopback");
        assert_eq!((t.tls, t.addr.port(), t.server_name()), (true, 443, "::1"));
        let t = parse_url("ws://127.0.0.5:81/ws?client=x").expect("loopback");
        assert_eq!(t.path, "/ws?client=x");
        assert_eq!(t.host, "127.0.0.5:81");
        let t = parse_url("ws://[::1]:82/ws").expect("v6 loopback");
        assert_eq!(t.addr.port(), 82);
        assert_eq!(
            parse_url("ws://127.0.0.1")
                .expect("default port")
                .addr
                .port(),
            80
        );
    }

    #[test]
    fn ramp_requires_the_in_process_server() {
        assert!(opts(&["--url", "ws://127.0.0.1:1/ws", "--scenario", "ramp"]).is_err());
        let o = opts(&["--scenario", "ramp", "--ramp", "100,200"]).expect("valid");
        assert_eq!(o.ramp, vec![100, 200]);
        assert!(opts(&["--scenario", "ramp", "--ramp", "0"]).is_err());
    }

    #[test]
    fn stalled_scenario_needs_a_count_and_stalls_when_the_window_opens() {
        let url = ["--url", "ws://127.0.0.1:1/ws"];
        assert!(opts(&[url[0], url[1], "--scenario", "stalled"]).is_err());
        let o = opts(&[
            url[0],
            url[1],
            "--scenario",
            "stalled",
            "--stalled",
            "1000",
            "--clients",
            "500",
            "--warmup",
            "3",
        ])
        .expect("valid");
        assert_eq!((o.clients, o.stalled, o.total_clients()), (500, 1000, 1500));
        assert_eq!(
            o.stall_after,
            Duration::from_secs(3),
            "default: the warm-up"
        );
        assert_eq!(o.stall_rcvbuf, 65536);
        assert!(!o.stall_each, "one moment for all by default");
        assert_eq!(o.stall_for, None, "stalled clients keep their sockets");
        assert_eq!(o.sample_interval, Duration::from_millis(150));
        assert_eq!(o.expect_snapshots, Some(100));
        // Only stalled clients is fine; --stalled elsewhere is not.
        let o =
            opts(&["--scenario", "stalled", "--stalled", "10", "--clients", "0"]).expect("valid");
        assert_eq!(o.total_clients(), 10);
        assert!(opts(&["--scenario", "fanout", "--stalled", "10"]).is_err());
        assert!(opts(&["--scenario", "fanout", "--clients", "0"]).is_err());
    }

    #[test]
    fn soak_defaults_to_ten_minutes_with_churn_and_one_percent_stalled() {
        let o = opts(&["--scenario", "soak"]).expect("valid");
        assert_eq!(o.duration, Duration::from_secs(600));
        assert_eq!((o.clients, o.stalled), (1000, 10));
        assert_eq!(o.churn_rate, 10.0);
        assert_eq!(o.stall_after, Duration::from_secs(2));
        assert!(o.stall_each);
        assert_eq!(o.stall_for, Some(Duration::from_secs(12)));
        let o =
            opts(&["--scenario", "soak", "--clients", "50", "--duration", "30"]).expect("valid");
        assert_eq!((o.stalled, o.duration), (1, Duration::from_secs(30)));
        let o = opts(&["--scenario", "fanout"]).expect("valid");
        assert_eq!(
            o.sample_interval,
            Duration::ZERO,
            "sampling is off by default"
        );
    }

    #[test]
    fn connect_storm_next_to_a_streaming_population_subscribes_everyone() {
        let o = opts(&[
            "--scenario",
            "connect-storm",
            "--streaming",
            "1000",
            "--clients",
            "8000",
        ])
        .expect("valid");
        assert_eq!(o.subscribe, Subscription::All);
        assert_eq!(o.duration, Duration::from_secs(15));
        assert_eq!(o.storm_at, Duration::from_secs(5));
        assert_eq!(o.storm_leave, None, "newcomers stay by default");
        assert_eq!(
            o.connect_concurrency, 256,
            "the streaming clients connect throttled"
        );
        assert_eq!(o.total_clients(), 9000);
        assert_eq!(o.source_addrs, 1);
        assert!(opts(&["--scenario", "fanout", "--streaming", "10"]).is_err());
        assert!(
            opts(&[
                "--scenario",
                "connect-storm",
                "--streaming",
                "10",
                "--duration",
                "4",
                "--storm-at",
                "5"
            ])
            .is_err(),
            "the storm must start inside the window"
        );
    }

    #[test]
    fn several_urls_are_targets_in_order() {
        let o = opts(&[
            "--url",
            "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws",
            "--url",
            "ws://127.0.0.1:3/ws",
        ])
        .expect("valid");
        let ports: Vec<u16> = o.targets.iter().map(|t| t.addr.port()).collect();
        assert_eq!(ports, [1, 2, 3]);
        // The sampler watches one server.
        let two = ["--url", "ws://127.0.0.1:1/ws,ws://127.0.0.1:2/ws"];
        assert!(opts(&[two[0], two[1], "--sample-ms", "100"]).is_err());
        assert!(opts(&[two[0], two[1], "--scenario", "stalled", "--stalled", "1"]).is_err());
        assert!(opts(&[two[0], "ws://127.0.0.1:1/ws,ws://10.0.0.1:2/ws"]).is_err());
    }

    #[test]
    fn produce_feeds_external_nodes_or_runs_alone() {
        let r = "redis://127.0.0.1:6390/ticks";
        let o = opts(&["--produce", r, "--url", "ws://127.0.0.1:1/ws"]).expect("valid");
        let p = o.produce.expect("a producer");
        assert_eq!(
            (p.redis_url.as_str(), p.stream.as_str()),
            ("redis://127.0.0.1:6390", "ticks")
        );
        assert_eq!((p.batch, p.pipeline, p.cpu), (16, 64, None));
        assert_eq!(p.addr.port(), 6390);
        // No in-process server next to a producer: clients need --url.
        assert!(opts(&["--produce", r]).is_err());
        let o = opts(&["--produce", r, "--clients", "0", "--rate", "0"]).expect("alone");
        assert_eq!((o.clients, o.rate, o.targets.len()), (0, 0, 0));
        assert!(
            opts(&[
                "--produce",
                r,
                "--clients",
                "0",
                "--url",
                "ws://127.0.0.1:1/ws"
            ])
            .is_err()
        );
        assert!(
            opts(&["--clients", "0"]).is_err(),
            "no producer, no clients"
        );
        assert!(opts(&["--produce", "redis://10.1.2.3:6379/s", "--clients", "0"]).is_err());
        assert!(opts(&["--produce", "redis://127.0.0.1:6379", "--clients", "0"]).is_err());
        let bad_batch = ["--produce", r, "--clients", "0", "--produce-batch", "0"];
        assert!(opts(&bad_batch).is_err());
        // The producer's core: given, or the slot after the client threads.
        let o = opts(&["--produce", r, "--clients", "0", "--cpu", "0,1"]).expect("valid");
        assert_eq!(o.produce.and_then(|p| p.cpu), Some(1));
        let o = opts(&[
            "--produce",
            r,
            "--clients",
            "0",
            "--cpu",
            "1",
            "--produce-cpu",
            "0",
        ])
        .expect("valid");
        assert_eq!(o.produce.and_then(|p| p.cpu), Some(0));
        // random:K takes the producer's symbols without a probe.
        let o = opts(&[
            "--produce",
            r,
            "--url",
            "ws://127.0.0.1:1/ws",
            "--symbols",
            "3",
            "--subscribe",
            "random:5",
        ])
        .expect("valid");
        assert_eq!(o.universe, ["P0000", "P0001", "P0002"]);
        assert_eq!(o.expect_snapshots, Some(3));
    }

    #[test]
    fn invalid_counts_are_refused() {
        assert!(opts(&["--clients", "0"]).is_err());
        assert!(opts(&["--threads", "0"]).is_err());
        assert!(opts(&["--duration", "-1"]).is_err());
        let o = opts(&["--cpu", "0,1", "--threads", "2"]).expect("valid");
        assert_eq!(o.cpus, vec![0, 1]);
    }
}
