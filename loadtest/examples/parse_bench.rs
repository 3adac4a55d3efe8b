//! Ad-hoc throughput check of the client's per-message path, no sockets:
//! WebSocket frame parse → tick scan → symbol intern → sequence check →
//! latency record, over an in-memory buffer of tickcast-shaped frames.
//! The fast path is the engine's own (`fastpath::take_ticks`, then the
//! general loop for any frame it leaves).
//!
//! ```sh
//! cargo run --release -p loadtest --example parse_bench -- [MESSAGES] [SYMBOLS] [CONNS]
//! ```
//!
//! `FRAMES=FILE` replays captured payloads (one JSON message per line)
//! instead of synthetic ticks; `STAGE=1..4` stops after frame parse / scan
//! / intern / sequence check; `STAGE=9` times `scan_fast` alone;
//! `GENERAL=0` skips the comparison run.
//!
//! Prints messages per second of CPU time for the fast path (`scan_fast` + `SymbolTable`) and,
//! for comparison, for the general path (`Scanner::scan` + a plain
//! `FxHashMap` intern). Not a test: numbers depend on the machine.

use std::hint::black_box;
use std::time::Instant;

use loadtest::fastpath::{TickSink, take_ticks};
use loadtest::frame::{self, Parsed};
use loadtest::intern::SymbolTable;
use loadtest::latency::LatencyCounts;
use loadtest::scan::{Kind, Scanned, Scanner, TsPrefix, scan_fast};
use loadtest::seqcheck::SeqTracker;
use loadtest::stats::latency_histogram;
use rustc_hash::FxHashMap;

/// One read's worth of frames, like a 64 KiB socket read.
const CHUNK: usize = 64 * 1024;

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numeric argument"))
        .collect();
    let messages = args.first().copied().unwrap_or(10_000_000);
    let symbols = args.get(1).copied().unwrap_or(100) as usize;
    let conns = args.get(2).copied().unwrap_or(1000) as usize;

    // Chunks of whole frames; each chunk belongs to one connection and
    // carries its next ticks in round-robin symbol order.
    let names: Vec<String> = (0..symbols).map(|i| format!("EQ{i:04}")).collect();
    let ts0 = 1_763_775_000_123_456_789u64;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut seq = vec![1u64; symbols];
    let mut built = 0u64;
    let mut sym = 0usize;
    // FRAMES=FILE: payloads captured from a server, one JSON per line,
    // instead of the synthetic ones.
    let captured: Vec<Vec<u8>> = std::env::var("FRAMES")
        .ok()
        .filter(|f| !f.is_empty())
        .map(|f| {
            std::fs::read_to_string(f)
                .expect("reading FRAMES")
                .lines()
                .filter(|l| !l.is_empty())
                .map(|l| l.as_bytes().to_vec())
                .collect()
        })
        .unwrap_or_default();
    let mut next_captured = 0usize;
    // A few distinct chunks are enough; they are replayed.
    while chunks.len() < 8 {
        let mut c = Vec::with_capacity(CHUNK);
        loop {
            let payload = if captured.is_empty() {
                format!(
                    r#"{{"type":"tick","symbol":"{}","seq":{},"ts":{},"bid":189.25,"ask":189.27,"bid_size":300,"ask_size":500,"last":189.26,"volume":1234567}}"#,
                    names[sym],
                    seq[sym],
                    ts0 + built * 97
                )
                .into_bytes()
            } else {
                next_captured = (next_captured + 1) % captured.len();
                captured[next_captured].clone()
            };
            if c.len() + payload.len() + 4 > CHUNK {
                break;
            }
            c.push(0x81);
            c.push(126);
            c.extend_from_slice(&(payload.len() as u16).to_be_bytes());
            c.extend_from_slice(&payload);
            seq[sym] += 1;
            sym = (sym + 1) % symbols;
            built += 1;
        }
        chunks.push(c);
    }
    let per_chunk: Vec<u64> = chunks.iter().map(|c| count_frames(c)).collect();
    let avg_len =
        chunks.iter().map(Vec::len).sum::<usize>() as f64 / per_chunk.iter().sum::<u64>() as f64;
    println!(
        "{messages} messages, {symbols} symbols, {conns} connections, {avg_len:.0} bytes/frame"
    );

    if std::env::var("STAGE").is_ok_and(|v| v == "9") {
        // scan_fast alone over pre-split payloads.
        let payloads: Vec<&[u8]> = chunks
            .iter()
            .flat_map(|c| {
                let mut v = Vec::new();
                let mut at = 0;
                while let Ok(Parsed::Frame(f)) = frame::parse(&c[at..]) {
                    v.push(&c[at + f.header_len..at + f.len()]);
                    at += f.len();
                }
                v
            })
            .collect();
        for _ in 0..3 {
            let t = Instant::now();
            let mut n = 0u64;
            while n < messages {
                for p in &payloads {
                    black_box(scan_fast(black_box(p)));
                }
                n += payloads.len() as u64;
            }
            let ns = t.elapsed().as_nanos() as f64 / n as f64;
            println!("scan_fast alone: {ns:.1} ns/msg (wall)");
        }
        return;
    }
    for round in 0..2 {
        let fast = run(&chunks, &per_chunk, messages, conns, true);
        // GENERAL=0 skips the comparison run (for profiling the fast one).
        let general = if std::env::var("GENERAL").is_ok_and(|v| v == "0") {
            f64::NAN
        } else {
            run(&chunks, &per_chunk, messages, conns, false)
        };
        println!(
            "round {round}: fast path {:>6.1} M msgs/s ({:>5.1} ns/msg)   general path {:>6.1} M msgs/s ({:>5.1} ns/msg)",
            fast / 1e6,
            1e9 / fast,
            general / 1e6,
            1e9 / general
        );
    }
}

fn count_frames(c: &[u8]) -> u64 {
    let mut at = 0;
    let mut n = 0;
    while let Ok(Parsed::Frame(f)) = frame::parse(&c[at..]) {
        at += f.len();
        n += 1;
    }
    n
}

/// Parses at least `messages` frames; returns messages per second.
fn run(chunks: &[Vec<u8>], per_chunk: &[u64], messages: u64, conns: usize, fast: bool) -> f64 {
    let scanner = Scanner::new();
    let mut table = SymbolTable::new();
    let mut map: FxHashMap<Box<[u8]>, u32> = FxHashMap::default();
    let mut trackers = vec![SeqTracker::default(); conns];
    let mut hist = latency_histogram();
    let mut counts = LatencyCounts::new();
    let mut prefix = TsPrefix::default();
    let now = 1_763_775_001_000_000_000u64;
    // STAGE=1..4 stops after frame parse / scan / intern / seq check.
    let stage: u32 = std::env::var("STAGE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut done = 0u64;
    let mut i = 0usize;
    let started = Instant::now();
    let cpu0 = thread_cpu_ns();
    while done < messages {
        let c = &chunks[i % chunks.len()];
        // Replayed chunks repeat seqs: the checker counts them as
        // duplicates/reorders, which costs the same as in-order ticks.
        let tracker = &mut trackers[i % conns];
        let mut at = 0;
        if fast && stage == 0 {
            // The engine's path: the fused loop over the read, then
            // (below) the general loop for what it did not take.
            let mut sink = TickSink {
                symbols: &mut table,
                seq: tracker,
                latency: Some(&mut counts),
                now,
                future: 0,
                ts_prefix: &mut prefix,
            };
            at = take_ticks(c, 0, &mut sink).0;
        }
        while let Ok(Parsed::Frame(f)) = frame::parse(&c[at..]) {
            let payload = &c[at + f.header_len..at + f.len()];
            at += f.len();
            if stage == 1 {
                black_box(payload);
                continue;
            }
            if fast && let Some(t) = scan_fast(payload) {
                if stage == 2 {
                    black_box(t);
                    continue;
                }
                let id = table.intern(t.symbol);
                if stage == 3 {
                    black_box(id);
                    continue;
                }
                if stage == 4 {
                    tracker.tick(id, t.seq);
                    continue;
                }
                match t.kind {
                    Kind::Tick => {
                        tracker.tick(id, t.seq);
                        hist.saturating_record(now.saturating_sub(t.ts).max(1));
                    }
                    Kind::Snapshot => tracker.snapshot(id, t.seq),
                }
                continue;
            }
            if let Scanned::Tick(t) = scanner.scan(payload) {
                let id = match map.get(&*t.symbol) {
                    Some(&id) => id,
                    None => {
                        let id = map.len() as u32;
                        map.insert((*t.symbol).into(), id);
                        id
                    }
                };
                tracker.tick(id, t.seq);
                hist.saturating_record(now.saturating_sub(t.ts).max(1));
            }
        }
        done += per_chunk[i % chunks.len()];
        i += 1;
    }
    // CPU time, not wall time: the figure holds on a shared machine too.
    let secs = (thread_cpu_ns() - cpu0) as f64 / 1e9;
    let wall = started.elapsed().as_secs_f64();
    if wall > secs * 1.2 {
        eprintln!("(note: got only {:.0}% of a core)", 100.0 * secs / wall);
    }
    counts.flush_into(&mut hist);
    black_box((&trackers, &hist));
    done as f64 / secs
}

/// CPU time this thread has used, ns.
fn thread_cpu_ns() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}
