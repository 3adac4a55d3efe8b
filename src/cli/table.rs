//! The one table of settings. Each row gives a key (`heartbeat_ms`), its
//! type, its default and its doc; from it come the flag (`--heartbeat-ms`),
//! the environment variable (`TICKCAST_HEARTBEAT_MS`), the settings file
//! key, the `--help` text, and the [`Settings`] field. Defaults are taken
//! from [`Config::default`] where the library has the knob, so the binary
//! and the library cannot disagree.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use tickcast::Config;
use toml::de::ValueDeserializer;

use super::value::{Form, LogFormat, SettingValue};

/// One setting, as the sources and `--help` see it.
#[derive(Debug)]
pub(crate) struct Spec {
    /// The file key; the flag and the environment variable derive from it.
    pub(crate) key: &'static str,
    /// What the value is, in `--help` (`MS`, `FILE`).
    pub(crate) value_name: &'static str,
    /// The doc comment of the row.
    pub(crate) doc: &'static str,
    pub(crate) form: Form,
}

impl Spec {
    /// `--heartbeat-ms`, without the dashes.
    pub(crate) fn flag(&self) -> String {
        self.key.replace('_', "-")
    }

    /// `TICKCAST_HEARTBEAT_MS`.
    pub(crate) fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.key.to_ascii_uppercase())
    }
}

/// Every environment variable of a setting starts with this.
pub(crate) const ENV_PREFIX: &str = "TICKCAST_";

/// Milliseconds of a `Config` duration, for the `*_ms` settings.
fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Generates, from the rows: [`Settings`] (every value, resolved) and its
/// `Default`, [`Layer`] (the values one source gives), and [`SPECS`].
macro_rules! settings {
    (
        defaults from $d:ident = $cfg:expr;
        $( $(#[doc = $doc:literal])+ $key:ident : $ty:ty = $default:expr, $value_name:literal; )+
    ) => {
        /// Every setting, resolved: CLI over environment over file over
        /// default.
        #[derive(Debug, Clone, PartialEq)]
        pub(crate) struct Settings {
            $( $(#[doc = $doc])+ pub(crate) $key: $ty, )+
        }

        impl Default for Settings {
            fn default() -> Settings {
                let $d: Config = $cfg;
                Settings { $( $key: $default, )+ }
            }
        }

        /// The settings one source gives; `None`: not given there.
        #[derive(Debug, Default)]
        pub(crate) struct Layer {
            $( $key: Option<$ty>, )+
        }

        /// Every setting, in the order of the table.
        pub(crate) const SPECS: &[Spec] = &[$(
            Spec {
                key: stringify!($key),
                value_name: $value_name,
                doc: concat!($($doc, "\n"),+),
                form: <$ty as SettingValue>::FORM,
            },
        )+];

        impl Layer {
            /// Sets `key` from the text of flags or an environment
            /// variable. `None`: `key` is not a setting.
            pub(crate) fn set_texts(
                &mut self,
                key: &str,
                texts: &[&str],
            ) -> Option<Result<(), String>> {
                match key {
                    $( stringify!($key) => Some(
                        <$ty as SettingValue>::parse_all(texts).map(|v| self.$key = Some(v)),
                    ), )+
                    _ => None,
                }
            }

            /// Sets `key` from a value of the settings file. `None`: `key`
            /// is not a setting.
            pub(crate) fn set_toml(
                &mut self,
                key: &str,
                value: ValueDeserializer<'_>,
            ) -> Option<Result<(), toml::de::Error>> {
                match key {
                    $( stringify!($key) => Some(
                        <$ty as Deserialize>::deserialize(value).map(|v| self.$key = Some(v)),
                    ), )+
                    _ => None,
                }
            }

            /// This layer, with `lower` filling what it does not give.
            pub(crate) fn over(self, lower: Layer) -> Layer {
                Layer { $( $key: self.$key.or(lower.$key), )+ }
            }

            /// Every setting: this layer's value, else the default.
            pub(crate) fn resolve(self) -> Settings {
                let d = Settings::default();
                Settings { $( $key: self.$key.unwrap_or(d.$key), )+ }
            }
        }

        impl Settings {
            /// The value of `key` as `--help` shows it.
            pub(crate) fn shown(&self, key: &str) -> Option<String> {
                match key {
                    $( stringify!($key) => self.$key.show(), )+
                    _ => None,
                }
            }
        }
    };
}

settings! {
    defaults from d = Config::default();

    /// Address to listen on.
    listen: SocketAddr = d.listen, "ADDR";
    /// I/O threads (shards); 0 = one per available core.
    io_threads: usize = d.io_threads, "N";
    /// Do not pin I/O threads to cores.
    no_pin: bool = !d.pin_threads, "BOOL";
    /// Outbound queue per connection, in frames; overflow evicts with 4001.
    queue_capacity: usize = d.queue_capacity, "FRAMES";
    /// Server ping interval in milliseconds; 3 silent intervals close with 4002.
    heartbeat_ms: u64 = ms(d.heartbeat), "MS";
    /// Kernel send buffer per connection in bytes (SO_SNDBUF); 0 = kernel autotuning.
    send_buffer: usize = d.send_buffer, "BYTES";
    /// Evict (4001) a connection lagging this many ms behind the stream.
    max_lag_ms: u64 = ms(d.max_lag), "MS";
    /// Most open WebSocket connections; past it upgrades get HTTP 503.
    max_connections: usize = d.max_connections, "N";
    /// Most connections per client IP (HTTP 429 past it); 0 = no limit.
    max_connections_per_ip: usize = d.max_connections_per_ip, "N";
    /// Largest client message in bytes; larger closes with 1009.
    max_message_size: usize = d.max_message_size, "BYTES";
    /// Most subscriptions (symbols + groups + `*`) per connection.
    max_subscriptions: usize = d.max_subscriptions, "N";
    /// Ticks kept per symbol for resume and `history` (0: none).
    history_depth: usize = d.history_depth, "TICKS";
    /// Time allowed for the HTTP upgrade, in milliseconds.
    handshake_timeout_ms: u64 = ms(d.handshake_timeout), "MS";
    /// How long a closing connection may take before its socket is reset, in milliseconds.
    close_linger_ms: u64 = ms(d.close_linger), "MS";
    /// Ticks that may wait for the publisher thread before publish refuses them.
    publish_queue: usize = d.publish_queue, "TICKS";
    /// Ticks that may wait for one I/O thread before the publisher waits.
    shard_inbox: usize = d.shard_inbox, "TICKS";
    /// Refuse subscriptions to symbols never seen (unknown_symbol).
    reject_unknown_symbols: bool = d.reject_unknown_symbols, "BOOL";
    /// Requests per second a connection may make on average.
    request_rate: u32 = d.request_rate, "N";
    /// Requests a connection may make in a burst (rate_limited past it).
    request_burst: u32 = d.request_burst, "N";
    /// Allowed Origin header values (repeatable, or comma-separated); none = any origin.
    allow_origin: Vec<String> = d.allowed_origins.clone(), "ORIGIN";
    /// Verify HS256 access tokens with the shared secret in this file.
    jwt_secret_file: Option<PathBuf> = None, "FILE";
    /// Verify RS256 or ES256 access tokens with the PEM public key in this file.
    jwt_public_key_file: Option<PathBuf> = None, "FILE";
    /// When set, a token's `aud` must contain this.
    jwt_audience: Option<String> = None, "AUD";
    /// When set, a token's `iss` must equal this.
    jwt_issuer: Option<String> = None, "ISS";
    /// Most open connections per user (the token's `sub`; HTTP 429 past it); 0 = no limit.
    max_connections_per_user: usize = d.max_connections_per_user, "N";
    /// Serve wss:// and https:// with this PEM certificate chain (needs tls_key).
    tls_cert: Option<PathBuf> = None, "FILE";
    /// The PEM private key of tls_cert.
    tls_key: Option<PathBuf> = None, "FILE";
    /// Symbols in the built-in synthetic feed.
    synthetic_symbols: usize = d.synthetic_symbols, "N";
    /// Synthetic ticks per second over all symbols; 0 = no synthetic feed.
    synthetic_rate: u64 = d.synthetic_rate, "N";
    /// Read ticks from this Redis stream, numbered there (repeatable): redis://HOST:PORT/STREAM.
    feed: Vec<String> = Vec::new(), "URL";
    /// Log lines as text or json (levels from RUST_LOG, default info).
    log_format: LogFormat = LogFormat::Text, "FORMAT";
}
