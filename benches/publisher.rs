//! The publisher thread with no clients: how many ticks per second one
//! publisher carries from the feed's call to the shards' inboxes (issue 11
//! asks for at least 5 M/s, so the publisher is never a feed's
//! bottleneck).
//!
//! What is measured: one iteration publishes `TICKS` ticks (100 symbols,
//! bid/ask/sizes as a quote feed sends them) from the bench thread and
//! waits until the broadcaster's `ticks_published` count (counted by the
//! publisher once a tick is in every shard's inbox) has grown by `TICKS`:
//! validation and the queue on the caller's side, then numbering,
//! serializing once and one send per shard on the publisher thread, while
//! the shard drains its inbox (no connections, so no fan-out; a full inbox
//! would hold the publisher back). One shard, threads unpinned. A full
//! queue (`Full`, 65,536 slots) is retried after a short sleep: the
//! figure is the sustained rate, not the enqueue rate.
//!
//! Two ways in: `publish`, one tick per call (one queue slot and possibly
//! one wake per tick), and `publish_batch`, `BATCH` ticks per call (one
//! slot and at most one wake per batch), as a feed handler that receives
//! quotes in packets would call it.
//!
//! Mock cost: none; the threads are the real ones. The caller's own work
//! (building the `Tick`) is inside the measurement, as for a real feed.
//! The allocator is the system's, as in the `tickcast` binary. Frames the
//! shards let go of go back to the publisher and are filled again
//! (`recycle.rs`): before that, each frame was allocated on the publisher
//! and freed on a shard, glibc's arena lock was taken on both sides for
//! every tick, and this bench measured 1.2-1.6 M ticks/s for
//! `publish_batch` against 1.8-2.7 M after, interleaved on the 2-vCPU VM.
//! Then the symbol held inline in the `Tick` (no `malloc` on the bench
//! thread, no `free` on the publisher), the encoder writing by position
//! and write prefetches: 2.27-2.58 -> 3.12-3.55 M (`publish_batch`) and
//! 1.65-2.42 -> 2.22-3.20 M (`publish`), 4 interleaved pairs. At that
//! rate both cores are busy: the publisher thread ~100 % of one (half of
//! it encoding: zmij, itoa, the copies), the bench thread and the shard
//! the other, so 5 M/s needs both sides about 40 % cheaper.
//! Then the numbers' text from registers (`wire/digits.rs`), batch
//! vectors given back to the feed (`Publisher::batch_buffer`, used
//! below) and tick batches to the publisher, the symbol looked up as its
//! `Name`: `publish_batch` 2.82-4.15 -> 3.41-4.70 M ticks/s wall and 239-306
//! -> 193-254 ns of publisher CPU per tick (4 interleaved pairs, median
//! ratio 0.81), i.e. 3.3-4.2 -> 3.9-5.2 M ticks/s per core of the
//! publisher's own. Of the publisher's time then (`perf record`): ~40 %
//! encoding (620 instructions per tick), ~25 % writing each tick into its
//! recycled frame, most of it waiting for the frame's cache lines, which
//! the shards touched last (a build that skipped that copy was ~40 ns per
//! tick faster), ~7 % the symbol lookup.
//! (mimalloc carried 3.5 M before the change, but in the server it stalled
//! the shard for about a second in some per-client cells, evicting every
//! client: `loadtest/runs/2026-12-07-vm-2core-issue11-mimalloc/`.)

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickcast::{BatchError, Broadcaster, Config, PublishError, Tick};

/// Ticks per iteration: enough to fill the queue and the inbox many times
/// over, so the steady state dominates.
const TICKS: u64 = 200_000;
/// Ticks per `publish_batch` call: a packet's worth of quotes.
const BATCH: usize = 256;

/// The `i`th tick of the bench's quote stream.
fn tick(symbols: &[String], i: u64) -> Tick {
    Tick::new(&symbols[(i % 100) as usize])
        .bid(100.0 + (i % 1000) as f64 / 100.0)
        .ask(100.5 + (i % 1000) as f64 / 100.0)
        .bid_size(100 + i % 7)
        .ask_size(200 + i % 5)
}

/// How long the bench thread steps aside: while the publisher's queue is
/// full, and between two looks at the count it waits for. On a 2-core
/// machine the bench thread shares a core with the publisher or the shard;
/// spinning there (a `yield_now` loop around `stats()`, which merges every
/// shard's histograms) took 25 % of all samples in a profile (the bench
/// thread 44 %, more than the publisher thread), and the figure measured
/// the bench. 100 µs is
/// 0.25 % of an iteration at 5 M ticks/s, and the queue holds 13 ms of
/// ticks at that rate, so it never runs dry while the bench sleeps.
const STEP_ASIDE: Duration = Duration::from_micros(100);

/// CPU time the publisher thread has used so far, in nanoseconds, from
/// Linux's `/proc/self/task/*/schedstat` (`None` elsewhere). On a 2-core
/// machine the bench thread, the shard and the publisher share the cores,
/// so the rate above is that of all three; ticks per second of the
/// publisher thread's own CPU time is what one publisher carries when it
/// has a core to itself, which is what the 5 M/s target is about.
fn publisher_cpu_ns() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let dir = task.ok()?.path();
        let comm = std::fs::read_to_string(dir.join("comm")).ok()?;
        // Thread names are cut to 15 bytes.
        if comm.trim_end() == "tickcast-publis" {
            let stat = std::fs::read_to_string(dir.join("schedstat")).ok()?;
            return stat.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

/// Ticks published and the publisher thread's CPU time over them, summed
/// over one bench function's iterations.
#[derive(Default)]
struct CpuTally {
    ticks: u64,
    cpu_ns: u64,
}

impl CpuTally {
    /// Runs `f` (which publishes `ticks`) and counts the publisher's CPU
    /// time over it.
    fn count(&mut self, ticks: u64, f: impl FnOnce()) {
        let before = publisher_cpu_ns();
        f();
        if let (Some(a), Some(b)) = (before, publisher_cpu_ns()) {
            self.ticks += ticks;
            self.cpu_ns += b.saturating_sub(a);
        }
    }

    fn report(&self, name: &str) {
        if self.cpu_ns > 0 {
            let per_tick = self.cpu_ns as f64 / self.ticks as f64;
            println!(
                "publisher/{name}: the publisher thread used {per_tick:.0} ns of CPU per tick \
                 over {} ticks: {:.2} M ticks/s per core of its own",
                self.ticks,
                1e3 / per_tick
            );
        }
    }
}

/// Waits (bounded) until `target` ticks have been published.
fn wait_published(b: &Broadcaster, target: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while b.stats().ticks_published < target {
        assert!(Instant::now() < deadline, "the publisher stalled");
        std::thread::sleep(STEP_ASIDE);
    }
}

fn publisher(c: &mut Criterion) {
    let b = Broadcaster::start(Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        io_threads: 1,
        pin_threads: false,
        synthetic_rate: 0,
        ..Config::default()
    })
    .unwrap();
    let p = b.publisher();
    let symbols: Vec<String> = (0..100).map(|i| format!("S{i:03}")).collect();
    let mut i = 0u64;
    let mut g = c.benchmark_group("publisher");
    g.throughput(Throughput::Elements(TICKS));
    g.sample_size(10);
    let mut one_by_one = CpuTally::default();
    g.bench_function("publish", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                one_by_one.count(TICKS, || {
                    let target = b.stats().ticks_published + TICKS;
                    for _ in 0..TICKS {
                        let mut t = tick(&symbols, i);
                        loop {
                            match p.publish(t) {
                                Ok(()) => break,
                                Err(PublishError::Full(back)) => {
                                    t = back;
                                    std::thread::sleep(STEP_ASIDE);
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                        i += 1;
                    }
                    wait_published(&b, target);
                });
            }
            start.elapsed()
        })
    });
    let mut batched = CpuTally::default();
    g.bench_function("publish_batch", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                batched.count(TICKS, || {
                    let target = b.stats().ticks_published + TICKS;
                    for _ in 0..TICKS / BATCH as u64 {
                        let mut batch = p.batch_buffer();
                        batch.extend((0..BATCH as u64).map(|k| tick(&symbols, i + k)));
                        loop {
                            match p.publish_batch(batch) {
                                Ok(()) => break,
                                Err(BatchError::Full(back)) => {
                                    batch = back;
                                    std::thread::sleep(STEP_ASIDE);
                                }
                                Err(e) => panic!("{e}"),
                            }
                        }
                        i += BATCH as u64;
                    }
                    // TICKS is not a multiple of BATCH: the rest one by one.
                    let rest = TICKS % BATCH as u64;
                    if rest > 0 {
                        let last: Vec<Tick> = (0..rest).map(|k| tick(&symbols, i + k)).collect();
                        while let Err(BatchError::Full(_)) = p.publish_batch(last.clone()) {
                            std::thread::sleep(STEP_ASIDE);
                        }
                        i += rest;
                    }
                    wait_published(&b, target);
                });
            }
            start.elapsed()
        })
    });
    g.finish();
    one_by_one.report("publish");
    batched.report("publish_batch");
}

criterion_group!(benches, publisher);
criterion_main!(benches);
