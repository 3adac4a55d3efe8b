//! The `tickcast` binary: read the operator's settings (flags, environment,
//! settings file; see [`cli`]), start a [`Broadcaster`] with the built-in
//! synthetic feed and the configured groups, reload the TLS certificate on
//! SIGHUP, and shut down gracefully on SIGINT or SIGTERM. `tickcast
//! publish` is the Redis producer instead (see [`cli::publish`]).

mod cli;

use anyhow::Context;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use tickcast::Broadcaster;

fn main() -> anyhow::Result<()> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "publish") {
        return cli::publish::run(&args[1..]);
    }
    let loaded = match cli::load(args, std::env::vars_os()) {
        Ok(l) => l,
        Err(cli::LoadError::Clap(e)) => e.exit(),
        Err(cli::LoadError::Invalid(message)) => anyhow::bail!(message),
    };
    cli::logging::init(loaded.settings.log_format)?;
    for name in &loaded.unknown_env {
        tracing::warn!(variable = %name, "not a tickcast setting; ignored");
    }
    let config = loaded
        .settings
        .to_config()
        .map_err(|e| anyhow::anyhow!(e))?;
    // Install the handler before starting, so an early signal is not lost.
    let mut signals =
        Signals::new([SIGINT, SIGTERM, SIGHUP]).context("installing signal handlers")?;
    let b = Broadcaster::start(config).context("starting the broadcaster")?;
    loaded.define_groups(&b)?;
    cli::summary::print_banner(&b, &loaded);
    cli::summary::log_startup(&b, &loaded);
    for signal in signals.forever() {
        if signal == SIGHUP {
            match b.reload_tls() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded for new connections"),
                Err(e) => tracing::error!(
                    error = %e,
                    "SIGHUP: no reload, the certificate in force is kept"
                ),
            }
            continue;
        }
        tracing::info!(signal, "closing connections (1001) and shutting down");
        break;
    }
    let s = b.stats();
    b.shutdown().context("shutting down")?;
    tracing::info!(
        ticks_published = s.ticks_published,
        frames_sent = s.frames_sent,
        evicted_slow = s.evicted_slow,
        "stopped"
    );
    Ok(())
}
