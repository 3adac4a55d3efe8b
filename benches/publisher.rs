//! The publisher thread with no clients: how many ticks per second one
//! publisher carries from `Publisher::publish` to the shards' inboxes
//! (issue 11 asks for at least 5 M/s, so the publisher is never a feed's
//! bottleneck).
//!
//! What is measured: one iteration publishes `BATCH` ticks (100 symbols,
//! bid/ask/sizes as a quote feed sends them) from the bench thread and
//! waits until the broadcaster's `ticks_published` count (counted by the
//! publisher once a tick is in every shard's inbox) has grown by `BATCH`:
//! validation and the queue on the caller's side, then numbering,
//! serializing once and one send per shard on the publisher thread, while
//! the shard drains its inbox (no connections, so no fan-out; a full inbox
//! would hold the publisher back). One shard, threads unpinned. A `PublishError::Full` (the queue is 65,536 ticks) is
//! retried: the figure is the sustained rate, not the enqueue rate.
//!
//! Mock cost: none; the threads are the real ones. The caller's own work
//! (building the `Tick`) is inside the measurement, as for a real feed.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tickcast::{Broadcaster, Config, PublishError, Tick};

/// Ticks per iteration: enough to fill the queue and the inbox many times
/// over, so the steady state dominates.
const BATCH: u64 = 200_000;

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
    g.throughput(Throughput::Elements(BATCH));
    g.sample_size(10);
    g.bench_function("publish_to_shard_inbox", |bench| {
        bench.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let target = b.stats().ticks_published + BATCH;
                for _ in 0..BATCH {
                    let mut t = Tick::new(&symbols[(i % 100) as usize])
                        .bid(100.0 + (i % 1000) as f64 / 100.0)
                        .ask(100.5 + (i % 1000) as f64 / 100.0)
                        .bid_size(100 + i % 7)
                        .ask_size(200 + i % 5);
                    loop {
                        match p.publish(t) {
                            Ok(()) => break,
                            Err(PublishError::Full(back)) => {
                                t = back;
                                std::thread::yield_now();
                            }
                            Err(e) => panic!("{e}"),
                        }
                    }
                    i += 1;
                }
                let deadline = Instant::now() + Duration::from_secs(30);
                while b.stats().ticks_published < target {
                    assert!(Instant::now() < deadline, "the publisher stalled");
                    std::thread::yield_now();
                }
            }
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group!(benches, publisher);
criterion_main!(benches);
