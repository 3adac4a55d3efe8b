//! Starting a tickcast server inside this process, for runs without
//! `--url` and for the ramp scenario (which restarts the server at each
//! rate).
//!
//! Invariant: this is the only module that depends on the `tickcast`
//! server crate; everything else speaks PROTOCOL.md over a socket.

use std::net::SocketAddr;

/// Stops the server and waits for its threads.
pub type StopFn = Box<dyn FnOnce()>;

/// Starts a tickcast server on 127.0.0.1 (port 0) publishing synthetic
/// ticks for `symbols` symbols at `rate` ticks per second in total, and
/// returns its address and a function that stops it.
///
/// The server gets its default shard count (one per core this process may
/// use) and pins its shards; run the whole tool under `taskset` to confine
/// it, as the benchmark script does.
///
/// # Errors
/// Whatever `Broadcaster::start` refuses (a bad rate or symbol count, no
/// free port).
pub fn start(symbols: usize, rate: u64) -> anyhow::Result<(SocketAddr, StopFn)> {
    start_with(tickcast::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        synthetic_symbols: symbols,
        synthetic_rate: rate,
        ..tickcast::Config::default()
    })
}

/// Starts a tickcast server with `config` (tests use it for short lag and
/// linger limits) and returns its address and a function that stops it.
///
/// # Errors
/// Whatever `Broadcaster::start` refuses.
pub fn start_with(config: tickcast::Config) -> anyhow::Result<(SocketAddr, StopFn)> {
    let b = tickcast::Broadcaster::start(config)?;
    let addr = b.local_addr();
    Ok((
        addr,
        Box::new(move || {
            // A panicked server thread is reported, not hidden.
            if let Err(e) = b.shutdown() {
                eprintln!("in-process server: {e}");
            }
        }),
    ))
}
