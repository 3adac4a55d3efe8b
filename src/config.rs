//! [`Config`]: every knob of the broadcaster, with its default, its unit and
//! why it has that value. Built once and checked by [`Config::validate`]
//! (called by [`Broadcaster::start`](crate::Broadcaster::start)); after that
//! the rest of the crate trusts it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::{Authenticator, Error, Result};

/// The largest `history_depth` accepted, in ticks per symbol: a `history`
/// reply of this many ticks is ~12 MB, well under a client's message limit.
pub const MAX_HISTORY_DEPTH: usize = 65_536;

/// The smallest `queue_capacity` accepted, in frames. A new connection's
/// queue holds the `101` and the `welcome` at once, and before the client
/// has read anything the server may add a ping, a pong and a reply or two;
/// a queue smaller than that would evict a client for the server's own
/// control traffic, before it could read a byte.
pub const MIN_QUEUE_CAPACITY: usize = 16;

/// Where TLS takes its certificate chain and private key, both PEM files.
/// Read at start and again on `Broadcaster::reload_tls`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How JWT access tokens are verified (docs/protocol.md, "Access tokens").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtConfig {
    /// The key, and with it the only algorithm accepted.
    pub key: JwtKey,
    /// When set, a token's `aud` must contain it.
    pub audience: Option<String>,
    /// When set, a token's `iss` must equal it.
    pub issuer: Option<String>,
}

/// A JWT verification key file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtKey {
    /// A shared secret (the file's bytes, a trailing newline removed): HS256.
    SecretFile(PathBuf),
    /// A PEM public key: RS256 for an RSA key, ES256 for an EC P-256 key.
    PublicKeyFile(PathBuf),
}

/// A stream on Redis that feeds this node (`--feed
/// redis://HOST:PORT/STREAM`): ticks numbered by the Redis Function
/// `tickcast_publish`, published here with their `seq` and `ts`.
///
/// ```
/// let f = tickcast::RedisFeed::parse("redis://10.0.0.5:6379/ticks:eu").unwrap();
/// assert_eq!(f.redis_url, "redis://10.0.0.5:6379");
/// assert_eq!(f.stream, "ticks:eu");
/// assert!(tickcast::RedisFeed::parse("redis://10.0.0.5:6379").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisFeed {
    /// `redis://HOST:PORT` (database 0).
    pub redis_url: String,
    /// The stream's key.
    pub stream: String,
}

impl RedisFeed {
    /// Reads `redis://HOST:PORT/STREAM`: the path is the stream's key
    /// (not a database number, as it would be for other Redis clients).
    ///
    /// # Errors
    /// A message naming what is missing.
    pub fn parse(url: &str) -> std::result::Result<RedisFeed, String> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| format!("feed {url:?}: expected redis://HOST:PORT/STREAM"))?;
        let (host, stream) = rest
            .split_once('/')
            .ok_or_else(|| format!("feed {url:?}: no stream after redis://HOST:PORT/"))?;
        if host.is_empty() || stream.is_empty() {
            return Err(format!("feed {url:?}: expected redis://HOST:PORT/STREAM"));
        }
        Ok(RedisFeed {
            redis_url: format!("redis://{host}"),
            stream: stream.to_string(),
        })
    }
}

/// Broadcaster configuration. `Config::default()` is what
/// `cargo run --release` uses.
///
/// ```
/// let mut c = tickcast::Config::default();
/// c.listen = "127.0.0.1:0".parse().unwrap();
/// c.synthetic_rate = 0;
/// c.validate().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:8080`.
    pub listen: SocketAddr,
    /// Number of I/O shards (threads each running one `mio::Poll`).
    /// 0 (default) means one per core this process may run on.
    pub io_threads: usize,
    /// Pin each shard to a core with `core_affinity`. Default true: a shard
    /// that migrates between cores loses its caches.
    pub pin_threads: bool,
    /// Outbound queue per connection, in frames. Default 4096: about 0.8 s of
    /// a busy 5,000 ticks/s `*` stream, on top of the kernel's socket buffer.
    /// A tick frame is at most ~330 bytes (a 32-byte symbol and every field),
    /// so one connection holds at most ~1.3 MiB queued at the default.
    /// A connection that would exceed it is evicted with close 4001.
    pub queue_capacity: usize,
    /// Interval between server pings. Default 5 s. A connection silent for
    /// three intervals is closed with 4002.
    pub heartbeat: Duration,
    /// Kernel send buffer per connection (`SO_SNDBUF`), in bytes; 0 leaves
    /// the kernel's autotuning (up to `net.ipv4.tcp_wmem`'s maximum, 4 MiB
    /// on common kernels). Default 64 KiB (~400 ticks): Linux doubles it
    /// for bookkeeping, so a stalled client holds at most ~128 KiB of
    /// kernel memory (1,000 stalled clients ~128 MiB instead of 4 GiB), and
    /// data the kernel holds is out of the server's hands, so a small
    /// buffer keeps a stalled client visible to the lag and queue bounds.
    /// The trade-off: one connection's throughput is at most about this
    /// buffer per round trip (64 KiB per 100 ms is ~650 KB/s, a whole
    /// 5,000 ticks/s `*` stream); raise it for `*` subscribers across
    /// long, fast links.
    pub send_buffer: usize,
    /// Longest a connection may lag behind the stream before it is evicted
    /// with 4001: the age of the oldest frame still in its queue, or of
    /// its oldest unanswered ping (so a stalled client is found within
    /// about this plus one heartbeat at any tick rate, even when the
    /// kernel's buffers absorb a slow stream). Default 5 s: far beyond a
    /// healthy client's lag (milliseconds), short enough that a stalled
    /// client's socket is gone within seconds.
    pub max_lag: Duration,
    /// Most open WebSocket connections; the next upgrade gets HTTP 503.
    /// Default 100,000. The process's file-descriptor limit applies too.
    pub max_connections: usize,
    /// Most connections from one IP address (HTTP 429 past it). 0 (default)
    /// means no limit: load generators open thousands from one address.
    pub max_connections_per_ip: usize,
    /// Largest client message (and frame), in bytes; larger closes with
    /// 1009. Default 64 KiB: requests are small, and a bound keeps a hostile
    /// client from making the server buffer megabytes.
    pub max_message_size: usize,
    /// Most subscriptions (symbols + groups + `*`) per connection. Default
    /// 2048, enough for every symbol of a large feed one by one.
    pub max_subscriptions: usize,
    /// Ticks kept per symbol for `resume` and the `history` op (0: none,
    /// every resume is reset). Default 256: a reconnect of seconds to
    /// minutes at typical per-symbol rates, at most ~60 KB per symbol
    /// (each tick's frame, ~200 bytes, is held once and shared by the
    /// shards, plus 16 bytes per shard; see docs/architecture.md).
    pub history_depth: usize,
    /// Time allowed for the HTTP upgrade. Default 10 s: half-open sockets
    /// cannot pile up.
    pub handshake_timeout: Duration,
    /// How long a closing connection may take to take its close frame and
    /// close its side before the socket is reset (`SO_LINGER` 0, so the
    /// kernel frees its buffers at once instead of keeping an orphan that
    /// holds them until the peer goes away). Default 2 s. For an evicted
    /// (4001) connection this makes the close frame best effort: a client
    /// that is truly stalled gets a reset, not megabytes kept for it.
    pub close_linger: Duration,
    /// Ticks that may wait for the publisher thread before
    /// [`Publisher::publish`](crate::Publisher::publish) returns them in an
    /// error. Default 65,536 (~13 ms at 5 M ticks/s).
    pub publish_queue: usize,
    /// Ticks that may wait for one shard before the publisher waits for
    /// it. Ticks travel in batches of up to 64, so the bound is rounded up
    /// to whole batches; any other message (a notice, a new socket) takes
    /// a batch's room. Default 65,536.
    pub shard_inbox: usize,
    /// Refuse subscriptions to symbols never published nor in a group, with
    /// `unknown_symbol`. Default false: a client may subscribe before the
    /// first tick of a symbol.
    pub reject_unknown_symbols: bool,
    /// Requests per second a connection may make on average. Default 50.
    pub request_rate: u32,
    /// Requests a connection may make in a burst. Default 200. A request
    /// beyond the budget gets `rate_limited`; a connection that keeps
    /// flooding (another `request_burst` refused requests) is closed 4008.
    pub request_burst: u32,
    /// `Origin` values allowed to connect (exact match). Empty (default)
    /// allows every origin, including none.
    pub allowed_origins: Vec<String>,
    /// Checks access tokens. `None` (default): no authentication, every
    /// client may connect and subscribe to everything.
    pub auth: Option<Arc<dyn Authenticator>>,
    /// Verify JWT access tokens with this key (the binary's
    /// `--jwt-secret-file` / `--jwt-public-key-file`). `None` (default):
    /// no JWT. Exclusive with `auth`.
    pub jwt: Option<JwtConfig>,
    /// Most open connections per user (the token's `sub`); past it upgrades
    /// get HTTP 429. 0 (default): no limit.
    pub max_connections_per_user: usize,
    /// Serve `wss://` and `https://` on `listen` with this certificate and
    /// key (read by `Broadcaster::start`, again by
    /// `Broadcaster::reload_tls`); a plaintext client on that port is
    /// dropped. `None` (default): plain `ws://` and `http://`.
    pub tls: Option<TlsFiles>,
    /// Symbols in the built-in synthetic feed. Default 300.
    pub synthetic_symbols: usize,
    /// Ticks per second of the built-in synthetic feed, over all symbols;
    /// 0 disables it. Default 1,000.
    pub synthetic_rate: u64,
    /// Redis streams to read ticks from, one feed thread each (see
    /// `docs/protocol.md`, "The shared feed on Redis Streams"). Default
    /// none. A stream's symbols are numbered in Redis; the same symbol
    /// from the synthetic feed or `Publisher::publish` is refused.
    pub feeds: Vec<RedisFeed>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            io_threads: 0,
            pin_threads: true,
            queue_capacity: 4096,
            heartbeat: Duration::from_secs(5),
            send_buffer: 64 * 1024,
            max_lag: Duration::from_secs(5),
            max_connections: 100_000,
            max_connections_per_ip: 0,
            max_message_size: 64 * 1024,
            max_subscriptions: 2048,
            history_depth: 256,
            handshake_timeout: Duration::from_secs(10),
            close_linger: Duration::from_secs(2),
            publish_queue: 65_536,
            shard_inbox: 65_536,
            reject_unknown_symbols: false,
            request_rate: 50,
            request_burst: 200,
            allowed_origins: Vec::new(),
            auth: None,
            jwt: None,
            max_connections_per_user: 0,
            tls: None,
            synthetic_symbols: 300,
            synthetic_rate: 1_000,
            feeds: Vec::new(),
        }
    }
}

impl Config {
    /// Checks every knob.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] naming the first knob out of range.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: &str| Err(Error::InvalidConfig(m.to_string()));
        if self.io_threads > 1024 {
            return bad("io_threads must be at most 1024");
        }
        if self.queue_capacity < MIN_QUEUE_CAPACITY {
            return Err(Error::InvalidConfig(format!(
                "queue_capacity must be at least {MIN_QUEUE_CAPACITY} frames"
            )));
        }
        if self.queue_capacity > 1 << 20 {
            return bad("queue_capacity must be at most 1048576 frames");
        }
        if self.heartbeat < Duration::from_millis(10) {
            return bad("heartbeat (heartbeat_ms) must be at least 10 ms");
        }
        if self.max_lag < Duration::from_millis(100) {
            return bad("max_lag (max_lag_ms) must be at least 100 ms");
        }
        if self.max_connections == 0 {
            return bad("max_connections must be at least 1");
        }
        if self.max_message_size < 128 {
            return bad("max_message_size must be at least 128 bytes");
        }
        if self.max_subscriptions == 0 {
            return bad("max_subscriptions must be at least 1");
        }
        if self.history_depth > MAX_HISTORY_DEPTH {
            return bad(&format!(
                "history_depth must be at most {MAX_HISTORY_DEPTH} ticks"
            ));
        }
        if self.handshake_timeout.is_zero() {
            return bad("handshake_timeout (handshake_timeout_ms) must be positive");
        }
        if self.publish_queue == 0 || self.shard_inbox == 0 {
            return bad("publish_queue and shard_inbox must be at least 1");
        }
        if self.request_rate == 0 || self.request_burst == 0 {
            return bad("request_rate and request_burst must be at least 1");
        }
        if self.synthetic_rate > 0 && self.synthetic_symbols == 0 {
            return bad("synthetic_symbols must be at least 1 when the synthetic feed is on");
        }
        if self.synthetic_symbols > 100_000 {
            return bad("synthetic_symbols must be at most 100000");
        }
        if self.jwt.is_some() && self.auth.is_some() {
            return bad("jwt and auth are exclusive: JWT is one Authenticator");
        }
        if let Some(tls) = &self.tls
            && (tls.cert.as_os_str().is_empty() || tls.key.as_os_str().is_empty())
        {
            return bad("tls needs both a certificate file and a key file");
        }
        Ok(())
    }

    /// The number of shards `io_threads` resolves to.
    ///
    /// ```
    /// let c = tickcast::Config { io_threads: 3, ..Default::default() };
    /// assert_eq!(c.shards(), 3);
    /// assert!(tickcast::Config::default().shards() >= 1);
    /// ```
    pub fn shards(&self) -> usize {
        if self.io_threads > 0 {
            self.io_threads
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_too_small_for_the_handshake_is_refused() {
        for (cap, ok) in [
            (1, false),
            (MIN_QUEUE_CAPACITY - 1, false),
            (MIN_QUEUE_CAPACITY, true),
        ] {
            let c = Config {
                queue_capacity: cap,
                ..Config::default()
            };
            assert_eq!(c.validate().is_ok(), ok, "queue_capacity {cap}");
        }
    }

    #[test]
    fn tls_needs_both_files_and_reads_them_at_start() {
        let tls = |cert: &str, key: &str| Config {
            tls: Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            }),
            ..Config::default()
        };
        assert!(tls("cert.pem", "").validate().is_err());
        assert!(tls("", "key.pem").validate().is_err());
        // Whether the files exist is for `Broadcaster::start` to find out.
        tls("cert.pem", "key.pem").validate().unwrap();
    }

    #[test]
    fn default_is_valid_and_zero_queue_is_refused() {
        Config::default().validate().unwrap();
        let c = Config {
            queue_capacity: 0,
            ..Config::default()
        };
        assert!(
            matches!(c.validate(), Err(Error::InvalidConfig(m)) if m.contains("queue_capacity"))
        );
        let c = Config {
            heartbeat: Duration::ZERO,
            ..Config::default()
        };
        assert!(c.validate().is_err());
    }
}
