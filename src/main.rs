//! The `tickcast` binary: parse flags, start a [`Broadcaster`] with the
//! built-in synthetic feed, reload the TLS certificate on SIGHUP, and shut
//! down gracefully on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tickcast::{Broadcaster, Config, TlsFiles};

/// A WebSocket broadcaster for market data (protocol v1 on /ws).
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// I/O threads (shards); 0 = one per available core.
    #[arg(long, default_value_t = 0)]
    io_threads: usize,
    /// Do not pin I/O threads to cores.
    #[arg(long)]
    no_pin: bool,
    /// Outbound queue per connection, in frames; overflow evicts with 4001.
    #[arg(long, default_value_t = 4096)]
    queue_capacity: usize,
    /// Server ping interval in milliseconds; 3 silent intervals close with 4002.
    #[arg(long, default_value_t = 5000)]
    heartbeat_ms: u64,
    /// Kernel send buffer per connection in bytes (SO_SNDBUF); 0 = kernel autotuning.
    #[arg(long, default_value_t = 64 * 1024)]
    send_buffer: usize,
    /// Evict (4001) a connection lagging this many ms behind the stream.
    #[arg(long, default_value_t = 5000)]
    max_lag_ms: u64,
    /// Most open WebSocket connections; past it upgrades get HTTP 503.
    #[arg(long, default_value_t = 100_000)]
    max_connections: usize,
    /// Most connections per client IP (HTTP 429 past it); 0 = no limit.
    #[arg(long, default_value_t = 0)]
    max_connections_per_ip: usize,
    /// Largest client message in bytes; larger closes with 1009.
    #[arg(long, default_value_t = 64 * 1024)]
    max_message_size: usize,
    /// Most subscriptions per connection.
    #[arg(long, default_value_t = 2048)]
    max_subscriptions: usize,
    /// Refuse subscriptions to symbols never seen (unknown_symbol).
    #[arg(long)]
    reject_unknown_symbols: bool,
    /// Allowed Origin header values (repeatable); none = any origin.
    #[arg(long = "allow-origin")]
    allow_origin: Vec<String>,
    /// Symbols in the built-in synthetic feed.
    #[arg(long, default_value_t = 300)]
    synthetic_symbols: usize,
    /// Synthetic ticks per second over all symbols; 0 = no synthetic feed.
    #[arg(long, default_value_t = 1000)]
    synthetic_rate: u64,
    /// TLS certificate chain, PEM, leaf first: the port serves wss:// and
    /// https:// (plaintext clients are dropped). SIGHUP reloads it.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (PKCS#8, PKCS#1 or SEC1), for --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl Args {
    fn into_config(self) -> Config {
        Config {
            listen: self.listen,
            io_threads: self.io_threads,
            pin_threads: !self.no_pin,
            queue_capacity: self.queue_capacity,
            heartbeat: Duration::from_millis(self.heartbeat_ms),
            send_buffer: self.send_buffer,
            max_lag: Duration::from_millis(self.max_lag_ms),
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            max_message_size: self.max_message_size,
            max_subscriptions: self.max_subscriptions,
            reject_unknown_symbols: self.reject_unknown_symbols,
            allowed_origins: self.allow_origin,
            synthetic_symbols: self.synthetic_symbols,
            synthetic_rate: self.synthetic_rate,
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| TlsFiles { cert, key }),
            ..Config::default()
        }
    }
}

fn main() -> anyhow::Result<()> {
    let config = Args::parse().into_config();
    // Install the handler before starting, so an early signal is not lost.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    let shards = config.shards();
    let b = Broadcaster::start(config).context("starting the broadcaster")?;
    let c = b.config();
    let tls_s = if c.tls.is_some() { "s" } else { "" };
    println!(
        "tickcast {} listening on ws{tls_s}://{}/ws ({} I/O threads{}, queue {} frames, heartbeat {} ms)",
        env!("CARGO_PKG_VERSION"),
        b.local_addr(),
        shards,
        if c.pin_threads { ", pinned" } else { "" },
        c.queue_capacity,
        c.heartbeat.as_millis()
    );
    if c.synthetic_rate > 0 {
        println!(
            "synthetic feed: {} symbols, {} ticks/s; groups:",
            c.synthetic_symbols, c.synthetic_rate
        );
        for (name, symbols) in b.groups() {
            let head: Vec<&str> = symbols.iter().take(6).map(String::as_str).collect();
            let more = if symbols.len() > 6 { ", …" } else { "" };
            println!(
                "  {name:<11} {:>4} symbols  ({}{more})",
                symbols.len(),
                head.join(", ")
            );
        }
        println!("  *           every symbol");
    } else {
        println!("no synthetic feed (--synthetic-rate 0)");
    }
    println!(
        "board: http{tls_s}://{0}/   health: http{tls_s}://{0}/healthz   stop: Ctrl-C",
        b.local_addr()
    );
    for sig in signals.forever() {
        if sig == SIGHUP {
            match b.reload_tls() {
                Ok(()) => eprintln!("SIGHUP: TLS certificate reloaded for new connections"),
                Err(e) => eprintln!("SIGHUP: no reload, the certificate in force is kept: {e}"),
            }
            continue;
        }
        eprintln!("signal {sig}: closing connections (1001) and shutting down");
        break;
    }
    let s = b.stats();
    b.shutdown().context("shutting down")?;
    eprintln!(
        "stopped: {} ticks published, {} frames sent, {} evicted as slow",
        s.ticks_published, s.frames_sent, s.evicted_slow
    );
    Ok(())
}
