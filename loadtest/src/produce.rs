//! The producer of a Redis-fed fleet (`--produce redis://HOST:PORT/STREAM`):
//! one thread that puts ticks on the stream through the Redis Function
//! `tickcast_publish_batch`, pipelined, at a paced rate (or as fast as
//! Redis takes them), while the clients read what the nodes fed from the
//! stream send.
//!
//! ```text
//!  producer thread: every turn, the ticks now due (rate x time - sent, at
//!  most batch x pipeline) go as ceil(due / batch) FCALLs in one pipeline;
//!  one round trip; the replies are counted (accepted ticks, refused calls)
//! ```
//!
//! Invariants:
//! - a call's ticks count as produced only when Redis answered it with its
//!   array of `seq`s (one per tick); an error reply is a refused call and
//!   adds nothing (the function checks a batch whole before writing);
//! - ticks go round-robin over the symbols (`symbol_names`), so over any
//!   whole number of rounds every symbol gets the same share: a client on
//!   K of N symbols expects K/N of what was produced;
//! - the pacing never builds up more than one second of backlog (after a
//!   stall or a reconnect the producer does not burst to catch up further);
//! - the thread ends when told to, within one round trip (bounded by the
//!   socket timeouts) or one reconnect pause.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::options::Produce;
use crate::stats::{Percentiles, latency_histogram};

/// Time allowed to open the connection to Redis.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// A round trip that takes longer than this is a failure.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// A paced producer sends at least this often while ticks are due, even
/// when fewer than a batch are.
const FLUSH_EVERY: Duration = Duration::from_millis(1);
/// Pause before reconnecting after a failed round trip.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);
/// Progress samples are kept at most this often.
const SAMPLE_EVERY: Duration = Duration::from_millis(1);
/// Prices cycle through this many values.
const PRICE_STEPS: usize = 100;

/// The producer's symbols: `P0000`, `P0001`, … (wider past 10,000).
pub fn symbol_names(n: usize) -> Vec<String> {
    let width = n.saturating_sub(1).max(1).to_string().len().max(4);
    (0..n).map(|i| format!("P{i:0width$}")).collect()
}

/// What the producer was asked to do.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Where and how.
    pub produce: Produce,
    /// Ticks per second in total (0: unpaced).
    pub rate: u64,
    /// Symbols, round-robin.
    pub symbols: usize,
    /// Print one progress line per second.
    pub progress: bool,
}

/// Counters the thread shares while it runs.
#[derive(Debug, Default)]
struct Live {
    stop: AtomicBool,
    accepted: AtomicU64,
}

/// A running producer; [`Producer::stop`] ends it and returns its record
/// (dropped without `stop`, the thread is told to end and left to do so).
#[derive(Debug)]
pub struct Producer {
    live: Arc<Live>,
    handle: Option<JoinHandle<Record>>,
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.live.stop.store(true, Ordering::Relaxed);
    }
}

/// Everything the thread saw, for [`Record::summary`].
#[derive(Debug)]
pub struct Record {
    plan: Plan,
    /// When the thread started producing.
    pub started: Instant,
    /// When it stopped.
    pub ended: Instant,
    /// (time, ticks accepted so far), at most one per [`SAMPLE_EVERY`],
    /// starting with (started, 0).
    samples: Vec<(Instant, u64)>,
    accepted: u64,
    calls: u64,
    refused_calls: u64,
    refused_ticks: u64,
    failed_round_trips: u64,
    round_trips: u64,
    first_error: Option<String>,
    round_trip: Histogram<u64>,
    pinned: Option<bool>,
}

/// The producer's figures in a report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ProducerSummary {
    /// `redis://HOST:PORT/STREAM`.
    pub url: String,
    /// Target rate, ticks/s (0: unpaced).
    pub target_rate: u64,
    /// Ticks per call.
    pub batch: usize,
    /// Calls per round trip.
    pub pipeline: usize,
    /// Symbols, round-robin.
    pub symbols: usize,
    /// Pinned core, and whether pinning worked.
    pub cpu: Option<usize>,
    /// Whether pinning to `cpu` worked.
    pub pinned: Option<bool>,
    /// Ticks Redis accepted, whole run.
    pub ticks_total: u64,
    /// Ticks accepted inside the measured window.
    pub ticks_window: u64,
    /// `ticks_window` per second of the window.
    pub ticks_per_sec: f64,
    /// `ticks_total` per second of the producer's whole run.
    pub ticks_per_sec_total: f64,
    /// Seconds the producer ran.
    pub run_secs: f64,
    /// `FCALL`s answered with their `seq`s.
    pub calls: u64,
    /// `FCALL`s answered with an error (nothing added).
    pub refused_calls: u64,
    /// Ticks in the refused calls.
    pub refused_ticks: u64,
    /// Round trips that failed (connection lost, timeout): their ticks
    /// count as neither produced nor refused.
    pub failed_round_trips: u64,
    /// The first error, refused call or failed round trip.
    pub first_error: Option<String>,
    /// Round trips.
    pub round_trips: u64,
    /// One pipelined round trip (send, Redis runs the calls, replies).
    pub round_trip: Percentiles,
    /// Produced ticks/s x the healthy clients' mean delivery (at most 1):
    /// the rate at which produced ticks reached their subscribers, end to
    /// end (`None` without clients or an expected count).
    pub end_to_end_ticks_per_sec: Option<f64>,
}

impl Producer {
    /// Connects to Redis, installs the function (`FUNCTION LOAD REPLACE`)
    /// and starts producing on a thread of its own.
    ///
    /// # Errors
    /// If Redis cannot be reached or refuses the function, or the thread
    /// cannot be created.
    pub fn start(plan: Plan) -> anyhow::Result<Producer> {
        let live = Arc::new(Live::default());
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let thread_live = Arc::clone(&live);
        let handle = std::thread::Builder::new()
            .name("loadtest-producer".into())
            .spawn(move || run(plan, &thread_live, &ready_tx))
            .context("spawning the producer thread")?;
        match ready_rx.recv_timeout(CONNECT_TIMEOUT + IO_TIMEOUT) {
            Ok(Ok(())) => Ok(Producer {
                live,
                handle: Some(handle),
            }),
            Ok(Err(e)) => {
                let _ = handle.join();
                anyhow::bail!("--produce: {e}")
            }
            Err(_) => {
                live.stop.store(true, Ordering::Relaxed);
                anyhow::bail!("--produce: Redis did not answer in time")
            }
        }
    }

    /// Ticks Redis accepted so far.
    pub fn accepted(&self) -> u64 {
        self.live.accepted.load(Ordering::Relaxed)
    }

    /// Waits (at most `timeout`) until at least `n` ticks were accepted;
    /// returns whether they were.
    pub fn wait_accepted(&self, n: u64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.accepted() < n {
            let gone = self.handle.as_ref().is_none_or(JoinHandle::is_finished);
            if Instant::now() >= deadline || gone {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        true
    }

    /// Stops the thread and returns what it did.
    ///
    /// # Errors
    /// If the thread panicked.
    pub fn stop(mut self) -> anyhow::Result<Record> {
        self.live.stop.store(true, Ordering::Relaxed);
        self.handle
            .take()
            .ok_or_else(|| anyhow::anyhow!("the producer was already stopped"))?
            .join()
            .map_err(|_| anyhow::anyhow!("the producer thread panicked"))
    }
}

impl Record {
    /// A thread's record before its first call, started at `started`.
    fn new(started: Instant, plan: Plan, pinned: Option<bool>) -> Record {
        Record {
            started,
            ended: started,
            samples: vec![(started, 0)],
            accepted: 0,
            calls: 0,
            refused_calls: 0,
            refused_ticks: 0,
            failed_round_trips: 0,
            round_trips: 0,
            first_error: None,
            round_trip: latency_histogram(),
            pinned,
            plan,
        }
    }

    /// Ticks accepted by `t` (the last sample at or before it).
    fn accepted_at(&self, t: Instant) -> u64 {
        let i = self.samples.partition_point(|(at, _)| *at <= t);
        if i == 0 { 0 } else { self.samples[i - 1].1 }
    }

    /// The figures, with the window `[from, to)`.
    pub fn summary(&self, from: Instant, to: Instant) -> ProducerSummary {
        let p = &self.plan.produce;
        let window = to.saturating_duration_since(from).as_secs_f64();
        let ticks_window = self.accepted_at(to) - self.accepted_at(from).min(self.accepted_at(to));
        let run = self
            .ended
            .saturating_duration_since(self.started)
            .as_secs_f64();
        let per = |n: u64, secs: f64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        ProducerSummary {
            url: format!("{}/{}", p.redis_url, p.stream),
            target_rate: self.plan.rate,
            batch: p.batch,
            pipeline: p.pipeline,
            symbols: self.plan.symbols,
            cpu: p.cpu,
            pinned: self.pinned,
            ticks_total: self.accepted,
            ticks_window,
            ticks_per_sec: per(ticks_window, window),
            ticks_per_sec_total: per(self.accepted, run),
            run_secs: run,
            calls: self.calls,
            refused_calls: self.refused_calls,
            refused_ticks: self.refused_ticks,
            failed_round_trips: self.failed_round_trips,
            first_error: self.first_error.clone(),
            round_trips: self.round_trips,
            round_trip: Percentiles::of(&self.round_trip),
            end_to_end_ticks_per_sec: None,
        }
    }
}

/// Connects and installs the function.
fn connect(p: &Produce) -> Result<redis::Connection, String> {
    let client = redis::Client::open(p.redis_url.as_str()).map_err(|e| e.to_string())?;
    let mut conn = client
        .get_connection_with_timeout(CONNECT_TIMEOUT)
        .map_err(|e| format!("connecting to {}: {e}", p.redis_url))?;
    conn.set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| conn.set_write_timeout(Some(IO_TIMEOUT)))
        .map_err(|e| e.to_string())?;
    tickcast::redis_stream::install(&mut conn)
        .map_err(|e| format!("FUNCTION LOAD on {}: {e}", p.redis_url))?;
    Ok(conn)
}

/// The ticks' text: symbols and a cycle of bid/ask prices.
struct Ticks {
    symbols: Vec<String>,
    bids: Vec<String>,
    asks: Vec<String>,
    /// Ticks built so far (picks the symbol and the price).
    next: u64,
}

impl Ticks {
    fn new(symbols: usize) -> Ticks {
        Ticks {
            symbols: symbol_names(symbols.max(1)),
            bids: (0..PRICE_STEPS).map(|i| format!("100.{i:02}")).collect(),
            asks: (0..PRICE_STEPS).map(|i| format!("101.{i:02}")).collect(),
            next: 0,
        }
    }

    /// `FCALL tickcast_publish_batch 1 <stream> <n> (<symbol> 4 bid B ask A){n}`.
    fn call(&mut self, stream: &str, n: usize) -> redis::Cmd {
        let mut c = redis::cmd("FCALL");
        c.arg("tickcast_publish_batch").arg(1).arg(stream).arg(n);
        let count = self.symbols.len() as u64;
        for _ in 0..n {
            let k = self.next;
            self.next += 1;
            let sym = &self.symbols[(k % count) as usize];
            let px = ((k / count) % PRICE_STEPS as u64) as usize;
            c.arg(sym)
                .arg("4")
                .arg("bid")
                .arg(&self.bids[px])
                .arg("ask")
                .arg(&self.asks[px]);
        }
        c
    }
}

/// How many ticks to send now (0: none yet), given the target rate.
///
/// `sent` is the ticks already sent (moved up so that at most one second
/// of backlog is owed), `since_send` the time since the last send.
fn due(rate: u64, elapsed: Duration, sent: &mut u64, since_send: Duration, max: usize) -> usize {
    let max = max as u64;
    if rate == 0 {
        return max as usize;
    }
    let owed_total = (rate as f64 * elapsed.as_secs_f64()) as u64;
    if owed_total > *sent + rate {
        *sent = owed_total - rate;
    }
    let owed = owed_total.saturating_sub(*sent);
    // A full round trip at once; less only once the last send is
    // FLUSH_EVERY old (so a paced producer makes about one round trip per
    // millisecond, not one per tick).
    if owed == 0 || (owed < max && since_send < FLUSH_EVERY) {
        return 0;
    }
    owed.min(max) as usize
}

/// The producer thread.
fn run(plan: Plan, live: &Live, ready: &mpsc::Sender<Result<(), String>>) -> Record {
    let pinned = plan.produce.cpu.map(crate::sys::pin_to_core);
    let mut conn = match connect(&plan.produce) {
        Ok(c) => {
            let _ = ready.send(Ok(()));
            Some(c)
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            None
        }
    };
    let started = Instant::now();
    let mut rec = Record::new(started, plan, pinned);
    if conn.is_none() {
        return rec;
    }
    let p = rec.plan.produce.clone();
    let (rate, max) = (rec.plan.rate, p.batch * p.pipeline);
    let mut ticks = Ticks::new(rec.plan.symbols);
    let mut sent = 0u64;
    let mut last_send = started;
    let mut last_line = (started, 0u64);
    while !live.stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if rec.plan.progress && now.duration_since(last_line.0) >= Duration::from_secs(1) {
            let dt = now.duration_since(last_line.0).as_secs_f64();
            eprintln!(
                "produce t={:6.1}s ticks/s={:>10.0} refused={} failed={}",
                now.duration_since(started).as_secs_f64(),
                (rec.accepted - last_line.1) as f64 / dt,
                rec.refused_calls,
                rec.failed_round_trips
            );
            last_line = (now, rec.accepted);
        }
        let n = due(
            rate,
            now.duration_since(started),
            &mut sent,
            now.duration_since(last_send),
            max,
        );
        if n == 0 {
            std::thread::sleep(Duration::from_micros(200));
            continue;
        }
        let Some(c) = conn.as_mut() else {
            conn = reconnect(&p, live, &mut rec);
            continue;
        };
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        let mut sizes = Vec::with_capacity(n.div_ceil(p.batch));
        let mut left = n;
        while left > 0 {
            let m = left.min(p.batch);
            pipe.add_command(ticks.call(&p.stream, m));
            sizes.push(m as u64);
            left -= m;
        }
        sent += n as u64;
        last_send = now;
        let reply = pipe.query::<Vec<redis::Value>>(c);
        let after = Instant::now();
        rec.round_trips += 1;
        match reply {
            Ok(values) => {
                count_replies(&mut rec, &sizes, &values);
                live.accepted.store(rec.accepted, Ordering::Relaxed);
                let rtt = after.duration_since(now).as_nanos() as u64;
                rec.round_trip.saturating_record(rtt.max(1));
            }
            Err(e) => {
                rec.failed_round_trips += 1;
                rec.first_error.get_or_insert_with(|| e.to_string());
                conn = None;
            }
        }
        if rec
            .samples
            .last()
            .is_none_or(|(t, _)| after.duration_since(*t) >= SAMPLE_EVERY)
        {
            rec.samples.push((after, rec.accepted));
        }
    }
    rec.ended = Instant::now();
    rec.samples.push((rec.ended, rec.accepted));
    rec
}

/// After a failed round trip: pause, then connect again (None if that
/// failed too, or the producer is stopping).
fn reconnect(p: &Produce, live: &Live, rec: &mut Record) -> Option<redis::Connection> {
    let until = Instant::now() + RECONNECT_PAUSE;
    while Instant::now() < until {
        if live.stop.load(Ordering::Relaxed) {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    match connect(p) {
        Ok(c) => Some(c),
        Err(e) => {
            rec.failed_round_trips += 1;
            rec.first_error.get_or_insert(e);
            None
        }
    }
}

/// Counts one pipeline's replies: an array of one `seq` per tick is an
/// accepted call; anything else is refused.
fn count_replies(rec: &mut Record, sizes: &[u64], values: &[redis::Value]) {
    for (i, &m) in sizes.iter().enumerate() {
        match values.get(i) {
            Some(redis::Value::Array(seqs)) if seqs.len() as u64 == m => {
                rec.calls += 1;
                rec.accepted += m;
            }
            other => {
                rec.refused_calls += 1;
                rec.refused_ticks += m;
                rec.first_error
                    .get_or_insert_with(|| format!("call refused: {other:?}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_fixed_width_and_distinct() {
        let s = symbol_names(3);
        assert_eq!(s, ["P0000", "P0001", "P0002"]);
        let s = symbol_names(20_000);
        assert_eq!((s[0].as_str(), s[19_999].as_str()), ("P00000", "P19999"));
        assert_eq!(symbol_names(1), ["P0000"]);
    }

    #[test]
    fn pacing_sends_what_is_due_in_batches_with_at_most_a_second_owed() {
        let ms = Duration::from_millis;
        let mut sent = 0;
        // 100,000/s: after 10 ms, 1,000 are due.
        assert_eq!(due(100_000, ms(10), &mut sent, ms(10), 1024), 1000);
        sent = 1000;
        // Half a millisecond later 50 are owed: more than the per-ms share
        // (101), no; it waits for the flush interval.
        assert_eq!(
            due(
                100_000,
                Duration::from_micros(10_500),
                &mut sent,
                Duration::from_micros(500),
                1024
            ),
            0
        );
        assert_eq!(due(100_000, ms(11), &mut sent, ms(1), 1024), 100);
        // A long stall: at most one second's worth is owed.
        sent = 0;
        assert_eq!(due(1000, ms(60_000), &mut sent, ms(1), 100_000), 1000);
        assert_eq!(sent, 59_000);
        // At most batch x pipeline per round trip.
        sent = 0;
        assert_eq!(due(1_000_000, ms(100), &mut sent, ms(1), 1024), 1024);
        // Unpaced: always the maximum.
        assert_eq!(due(0, ms(0), &mut sent, ms(0), 64), 64);
    }

    #[test]
    fn a_call_carries_n_ticks_round_robin_over_the_symbols() {
        let mut t = Ticks::new(2);
        let c = t.call("s", 3);
        let args: Vec<String> = c
            .args_iter()
            .map(|a| match a {
                redis::Arg::Simple(b) => String::from_utf8_lossy(b).into_owned(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(
            &args[..5],
            ["FCALL", "tickcast_publish_batch", "1", "s", "3"]
        );
        let syms: Vec<&str> = args[5..].chunks(6).map(|c| c[0].as_str()).collect();
        assert_eq!(syms, ["P0000", "P0001", "P0000"]);
        assert_eq!(
            &args[5..11],
            ["P0000", "4", "bid", "100.00", "ask", "101.00"]
        );
        assert_eq!(args[17..].first().map(String::as_str), Some("P0000"));
        assert_eq!(
            args[17 + 3],
            "100.01",
            "the second round has the next price"
        );
        assert_eq!(args.len(), 5 + 3 * 6);
    }

    fn record(samples: Vec<(Instant, u64)>) -> Record {
        let t0 = samples[0].0;
        let plan = Plan {
            produce: crate::options::parse_produce("redis://127.0.0.1:1/s", 16, 64, None)
                .expect("valid"),
            rate: 0,
            symbols: 10,
            progress: false,
        };
        let mut r = Record::new(t0, plan, None);
        r.ended = samples.last().map_or(t0, |s| s.0);
        r.accepted = samples.last().map_or(0, |s| s.1);
        r.samples = samples;
        r
    }

    #[test]
    fn the_window_counts_what_was_accepted_inside_it() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let r = record(vec![
            (t0, 0),
            (t0 + s(1), 100),
            (t0 + s(2), 300),
            (t0 + s(3), 600),
        ]);
        let w = r.summary(t0 + s(1), t0 + s(3));
        assert_eq!(w.ticks_window, 500);
        assert_eq!(w.ticks_per_sec, 250.0);
        assert_eq!(w.ticks_total, 600);
        assert_eq!(w.ticks_per_sec_total, 200.0);
        assert_eq!(r.summary(t0 + s(5), t0 + s(6)).ticks_window, 0);
    }

    #[test]
    fn replies_that_are_not_one_seq_per_tick_are_refused() {
        let mut r = record(vec![(Instant::now(), 0)]);
        let ok = redis::Value::Array(vec![redis::Value::Int(1), redis::Value::Int(2)]);
        let short = redis::Value::Array(vec![redis::Value::Int(1)]);
        let err = redis::Value::SimpleString("nope".into());
        count_replies(&mut r, &[2, 2, 2, 2], &[ok, short, err]);
        assert_eq!((r.calls, r.accepted), (1, 2));
        assert_eq!(
            (r.refused_calls, r.refused_ticks),
            (3, 6),
            "the missing reply too"
        );
        assert!(r.first_error.is_some());
    }
}
