//! What the binary says once it is serving: the banner on stdout (for a
//! person at a terminal, and for the scripts and tests that read the
//! address from its first line) and the startup event in the logs.

use tickcast::{Broadcaster, Config};

use super::Loaded;

/// Groups whose symbols the banner lists at most.
const BANNER_SYMBOLS: usize = 6;

/// Prints the banner. Its first line holds `ws://ADDR/ws` (`wss://` with
/// TLS).
pub(crate) fn print_banner(b: &Broadcaster, loaded: &Loaded) {
    let c = b.config();
    let s = tls_s(c);
    println!(
        "tickcast {} listening on ws{s}://{}/ws ({} I/O threads{}, queue {} frames, heartbeat {} ms)",
        env!("CARGO_PKG_VERSION"),
        b.local_addr(),
        c.shards(),
        if c.pin_threads { ", pinned" } else { "" },
        c.queue_capacity,
        c.heartbeat.as_millis()
    );
    if c.synthetic_rate > 0 {
        println!(
            "synthetic feed: {} symbols, {} ticks/s; groups:",
            c.synthetic_symbols, c.synthetic_rate
        );
    } else {
        println!("no synthetic feed (--synthetic-rate 0); groups:");
    }
    for (name, symbols) in b.groups() {
        let head: Vec<&str> = symbols
            .iter()
            .take(BANNER_SYMBOLS)
            .map(String::as_str)
            .collect();
        let more = if symbols.len() > BANNER_SYMBOLS {
            ", …"
        } else {
            ""
        };
        let so_far = match prefixes(loaded, &name) {
            Some(p) => format!(" so far, {p} growing"),
            None => String::new(),
        };
        println!(
            "  {name:<11} {:>4} symbols{so_far}  ({}{more})",
            symbols.len(),
            head.join(", ")
        );
    }
    println!("  *           every symbol");
    println!(
        "board: http{s}://{0}/   status: http{s}://{0}/status   health: http{s}://{0}/healthz   stop: Ctrl-C",
        b.local_addr()
    );
}

/// Logs the startup summary: one `info` event.
pub(crate) fn log_startup(b: &Broadcaster, loaded: &Loaded) {
    let c = b.config();
    let config_file = loaded
        .file
        .as_ref()
        .map_or_else(|| "none".to_string(), |f| f.display().to_string());
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        listen = %format_args!("ws{}://{}/ws", tls_s(c), b.local_addr()),
        auth = %auth_mode(c),
        tls = %tls_mode(c),
        feed = %feed(c),
        groups = %groups(b, loaded),
        origins = %origins(c),
        max_connections_per_ip = c.max_connections_per_ip,
        max_connections_per_user = c.max_connections_per_user,
        request_rate = c.request_rate,
        request_burst = c.request_burst,
        io_threads = c.shards(),
        config_file = %config_file,
        "tickcast started"
    );
}

/// How clients are let in: the running broadcaster's authenticator (a
/// JWT key is one, built at start), e.g. `jwt RS256 (key FILE)`.
fn auth_mode(c: &Config) -> String {
    match &c.auth {
        None => "open: no token required".to_string(),
        Some(a) => a.describe(),
    }
}

/// `"s"` when the port speaks TLS (`wss://`, `https://`).
fn tls_s(c: &Config) -> &'static str {
    if c.tls.is_some() { "s" } else { "" }
}

fn tls_mode(c: &Config) -> String {
    match &c.tls {
        None => "off".to_string(),
        Some(t) => format!("on: {} ({})", t.cert.display(), t.key.display()),
    }
}

fn feed(c: &Config) -> String {
    if c.synthetic_rate == 0 {
        "none (synthetic_rate 0)".to_string()
    } else {
        format!(
            "synthetic: {} symbols, {} ticks/s",
            c.synthetic_symbols, c.synthetic_rate
        )
    }
}

fn origins(c: &Config) -> String {
    if c.allowed_origins.is_empty() {
        "any".to_string()
    } else {
        c.allowed_origins.join(",")
    }
}

/// The prefixes of file group `name` (`EUR* GBP*`), if it has any: its
/// count grows as symbols with them are published.
fn prefixes(loaded: &Loaded, name: &str) -> Option<String> {
    let p: Vec<String> = loaded
        .groups
        .iter()
        .filter(|g| g.name == name)
        .flat_map(|g| g.spec.prefixes.iter().map(|p| format!("{p}*")))
        .collect();
    (!p.is_empty()).then(|| p.join(" "))
}

/// `name (count)` per group, with the prefixes of the file's groups.
fn groups(b: &Broadcaster, loaded: &Loaded) -> String {
    let parts: Vec<String> = b
        .groups()
        .into_iter()
        .map(|(name, symbols)| match prefixes(loaded, &name) {
            Some(p) => format!("{name} ({} so far, {p})", symbols.len()),
            None => format!("{name} ({})", symbols.len()),
        })
        .collect();
    if parts.is_empty() {
        "none".to_string()
    } else {
        parts.join(", ")
    }
}
