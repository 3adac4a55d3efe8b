//! `tickcast publish --redis redis://HOST:PORT --stream S`: a producer for
//! feed handlers in any language. It reads JSON ticks, one per line, on
//! stdin (parsed with simd-json) and puts them on the stream through
//! `tickcast_publish`, pipelined.
//!
//! A line is an object with `symbol` and any of `bid`, `ask`, `last`
//! (a JSON string holding a decimal, taken digit for digit, or a JSON
//! number) and `bid_size`, `ask_size`, `volume` (non-negative integers);
//! any other key is an error. A number goes through `f64`, which keeps at
//! most 15 significant digits and drops trailing zeros: give a price as a
//! string to keep more. Blank lines are skipped. The first bad line stops
//! the run with its line number, after the lines before it were sent.

use std::ffi::OsString;
use std::io::BufRead;

use anyhow::{Context, bail};
use clap::{Arg, Command, value_parser};
use simd_json::prelude::*;
use tickcast::redis_stream::RedisSink;
use tickcast::{Decimal, Price, Tick};

/// Ticks per pipeline: one round trip per 512 lines keeps a producer near
/// Redis's own rate without holding many unsent ticks.
const PIPELINE: usize = 512;

fn command() -> Command {
    Command::new("tickcast publish")
        .about(
            "Read JSON ticks, one per line, on stdin and publish them to a Redis stream \
             with the tickcast_publish function (seq and ts assigned in Redis).",
        )
        .arg(
            Arg::new("redis")
                .long("redis")
                .value_name("URL")
                .required(true)
                .help("redis://HOST:PORT"),
        )
        .arg(
            Arg::new("stream")
                .long("stream")
                .value_name("KEY")
                .required(true)
                .help("The stream's key"),
        )
        .arg(
            Arg::new("pipeline")
                .long("pipeline")
                .value_name("N")
                .value_parser(value_parser!(usize))
                .default_value(PIPELINE.to_string())
                .help("Ticks per round trip"),
        )
}

/// Runs the subcommand; `args` starts with `publish`.
pub(crate) fn run(args: &[OsString]) -> anyhow::Result<()> {
    let m = command()
        .try_get_matches_from(args)
        .unwrap_or_else(|e| e.exit());
    let url = m.get_one::<String>("redis").cloned().unwrap_or_default();
    let stream = m.get_one::<String>("stream").cloned().unwrap_or_default();
    let pipeline = m
        .get_one::<usize>("pipeline")
        .copied()
        .unwrap_or(PIPELINE)
        .max(1);
    let mut sink =
        RedisSink::connect(&url, &stream).with_context(|| format!("connecting to {url}"))?;
    let mut sent = 0usize;
    let stdin = std::io::stdin().lock();
    for (i, line) in stdin.lines().enumerate() {
        let line = line.context("reading stdin")?;
        if line.trim().is_empty() {
            continue;
        }
        let tick = match parse_line(line.into_bytes()) {
            Ok(t) => t,
            Err(e) => {
                sent += flush(&mut sink)?;
                bail!("line {}: {e} ({sent} ticks published before it)", i + 1);
            }
        };
        sink.queue(&tick)
            .with_context(|| format!("line {}", i + 1))?;
        if sink.queued() >= pipeline {
            sent += flush(&mut sink)?;
        }
    }
    sent += flush(&mut sink)?;
    eprintln!("published {sent} ticks to {stream}");
    Ok(())
}

fn flush(sink: &mut RedisSink) -> anyhow::Result<usize> {
    let seqs = sink
        .flush()
        .context("Redis refused a tick of the last pipeline (the ones before it were added)")?;
    Ok(seqs.len())
}

/// One line of JSON into a tick.
fn parse_line(mut bytes: Vec<u8>) -> Result<Tick, String> {
    let v = simd_json::to_borrowed_value(&mut bytes).map_err(|e| format!("not JSON: {e}"))?;
    let obj = v.as_object().ok_or("not a JSON object")?;
    let mut t = Tick::default();
    for (k, v) in obj.iter() {
        let size = || {
            v.as_u64()
                .ok_or_else(|| format!("{k} is not a non-negative integer"))
        };
        match k.as_ref() {
            "symbol" => t.symbol = v.as_str().ok_or("symbol is not a string")?.into(),
            "bid" => t.bid = Some(price(k, v)?),
            "ask" => t.ask = Some(price(k, v)?),
            "last" => t.last = Some(price(k, v)?),
            "bid_size" => t.bid_size = Some(size()?),
            "ask_size" => t.ask_size = Some(size()?),
            "volume" => t.volume = Some(size()?),
            other => return Err(format!("unknown field {other:?}")),
        }
    }
    if t.symbol.is_empty() {
        return Err("no symbol".into());
    }
    Ok(t)
}

fn price(name: &str, v: &simd_json::BorrowedValue<'_>) -> Result<Price, String> {
    if let Some(text) = v.as_str() {
        return Decimal::parse(text)
            .map(Price::Exact)
            .map_err(|e| format!("{name}: {e}"));
    }
    v.as_f64()
        .filter(|f| f.is_finite())
        .map(Price::Float)
        .ok_or_else(|| format!("{name} is not a number or a decimal string"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Tick, String> {
        parse_line(s.as_bytes().to_vec())
    }

    #[test]
    fn lines_become_ticks() {
        let t =
            parse(r#"{"symbol":"AAPL","bid":"0.30000000000000000001","ask":189.27,"volume":5}"#)
                .unwrap();
        assert_eq!(t.symbol, "AAPL");
        assert_eq!(
            t.bid.map(|p| p.to_string()).as_deref(),
            Some("0.30000000000000000001")
        );
        assert_eq!(t.ask, Some(Price::Float(189.27)));
        assert_eq!(t.volume, Some(5));
    }

    #[test]
    fn bad_lines_are_refused() {
        for s in [
            "not json",
            "[1]",
            r#"{"bid":1}"#,
            r#"{"symbol":"A","bdi":1}"#,
            r#"{"symbol":"A","bid":"1e5"}"#,
            r#"{"symbol":"A","bid":true}"#,
            r#"{"symbol":"A","volume":-1}"#,
            r#"{"symbol":"A","volume":1.5}"#,
            r#"{"symbol":7}"#,
        ] {
            assert!(parse(s).is_err(), "{s}");
        }
    }
}
