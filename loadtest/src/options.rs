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
    /// N connects as fast as possible; connect-time percentiles.
    ConnectStorm,
    /// Fanout while clients disconnect and reconnect at `--churn-rate`.
    Churn,
    /// Restart the in-process server at increasing rates; find the knee.
    Ramp,
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
}

/// Parses `ws://HOST:PORT/PATH?QUERY` and refuses non-loopback targets.
///
/// # Errors
/// On a scheme other than `ws`, an unresolvable host, or an address outside
/// 127.0.0.0/8 and ::1.
pub fn parse_url(url: &str) -> anyhow::Result<Target> {
    let Some(rest) = url.strip_prefix("ws://") else {
        bail!("only ws:// URLs are supported, got {url:?}");
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
        format!("{authority}:80")
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
    })
}

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "loadtest",
    about = "WebSocket load generator for tickcast (PROTOCOL.md v1)"
)]
pub struct Cli {
    /// Server URL, ws://HOST:PORT/ws (loopback only). Without it the
    /// in-process server is started (see inprocess.rs).
    #[arg(long)]
    pub url: Option<String>,
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
    /// In-process server: number of symbols.
    #[arg(long, default_value_t = 100)]
    pub symbols: usize,
    /// In-process server: ticks per second in total.
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
    /// Target server; `None` means the in-process server.
    pub target: Option<Target>,
    /// Scenario to run.
    pub scenario: Scenario,
    /// Number of clients.
    pub clients: usize,
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
        let target = self.url.as_deref().map(parse_url).transpose()?;
        let storm = self.scenario == Scenario::ConnectStorm;
        let clients = self.clients.unwrap_or(if storm { 1000 } else { 100 });
        if clients == 0 {
            bail!("--clients must be at least 1");
        }
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
        let churn_rate = self
            .churn_rate
            .unwrap_or(if self.scenario == Scenario::Churn {
                100.0
            } else {
                0.0
            });
        if !(churn_rate.is_finite() && churn_rate >= 0.0) {
            bail!("--churn-rate must be >= 0");
        }
        let source_addrs = self
            .source_addrs
            .unwrap_or(clients.div_ceil(CONNS_PER_SOURCE_ADDR))
            .max(1);
        if source_addrs > 254 {
            bail!("--source-addrs must be at most 254 (127.0.0.1..=127.0.0.254)");
        }
        if self.scenario == Scenario::Ramp {
            if target.is_some() {
                bail!(
                    "ramp restarts the server at each rate, so it needs the in-process server: drop --url \
                     (for an external server, run fanout once per rate you configure on it)"
                );
            }
            if self.ramp.is_empty() || self.ramp.contains(&0) {
                bail!("--ramp needs one or more rates > 0");
            }
        }
        let subscribe = if storm && self.subscribe == Subscription::All {
            Subscription::None
        } else {
            self.subscribe
        };
        Ok(Options {
            target,
            scenario: self.scenario,
            clients,
            duration: secs(
                "duration",
                self.duration.unwrap_or(if storm { 0.0 } else { 10.0 }),
            )?,
            warmup: secs("warmup", self.warmup)?,
            threads: self.threads,
            cpus: self.cpu,
            source_addrs,
            subscribe,
            universe: self.universe,
            slow_fraction,
            slow_mode: self.slow_mode,
            churn_rate,
            connect_timeout: secs("connect-timeout", self.connect_timeout)?,
            connect_concurrency: self
                .connect_concurrency
                .unwrap_or(if storm { 0 } else { 256 }),
            symbols: self.symbols.max(1),
            rate: self.rate,
            ramp: self.ramp,
            p99_limit_ms: self.p99_limit_ms,
            progress: !self.quiet,
        })
    }
}

impl Options {
    /// Options for `clients` fan-out clients of `target`, other knobs at
    /// their defaults (convenient for tests and embedding).
    pub fn fanout(target: Target, clients: usize) -> Self {
        let mut o = Cli::try_parse_from(["loadtest"])
            .expect("no arguments always parse")
            .into_options()
            .expect("defaults are valid");
        o.target = Some(target);
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
        let t = o.target.expect("target");
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
        assert!(parse_url("wss://127.0.0.1:443/ws").is_err());
        assert!(parse_url("http://127.0.0.1/ws").is_err());
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
    fn invalid_counts_are_refused() {
        assert!(opts(&["--clients", "0"]).is_err());
        assert!(opts(&["--threads", "0"]).is_err());
        assert!(opts(&["--duration", "-1"]).is_err());
        let o = opts(&["--cpu", "0,1", "--threads", "2"]).expect("valid");
        assert_eq!(o.cpus, vec![0, 1]);
    }
}
