//! The log subscriber: `tracing` events (the binary's and the library's)
//! to stderr, as text or JSON lines, at the levels `RUST_LOG` sets
//! (default `info`; e.g. `RUST_LOG=tickcast=debug`). Stdout keeps the
//! banner, which scripts and tests read.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::LevelFilter;

use super::value::LogFormat;

/// Installs the subscriber for the whole process.
///
/// # Errors
/// A `RUST_LOG` that does not parse, or a subscriber already installed.
pub(crate) fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env()
        .context("RUST_LOG")?;
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours for a person at a terminal, none in a log file.
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => logs.try_init(),
        LogFormat::Json => logs.json().try_init(),
    }
    .map_err(|e| anyhow::anyhow!("installing the log subscriber: {e}"))
}
