//! The outbound queue: `try_push` of shared frames and `write_to` against a
//! `MockWrite` that accepts up to `k` bytes per call, then `WouldBlock`.
//!
//! The mock copies nothing and costs a few ns per call, so the figures are
//! the queue's own bookkeeping (iovec building, offset handling, Arc
//! drops), not the kernel's.

use std::io::{self, IoSlice, Write};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tickcast::Frame;
use tickcast::outbox::Outbox;

/// Accepts `per_call` bytes per write, `calls` times, then `WouldBlock`.
struct MockWrite {
    per_call: usize,
    calls: usize,
}

impl Write for MockWrite {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.calls == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.calls -= 1;
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        Ok(total.min(self.per_call))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tick_frame() -> Frame {
    let t = tickcast::Tick::new("AAPL")
        .bid(189.25)
        .ask(189.27)
        .last(189.26)
        .volume(1);
    tickcast::encode::TickEncoder::new().encode("AAPL", 1, 2, &t)
}

fn outbox(c: &mut Criterion) {
    let f = tick_frame();
    let now = std::time::Instant::now();
    let mut g = c.benchmark_group("outbox");
    for n in [1usize, 16, 256] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("push_{n}_then_write_all"), |b| {
            b.iter_batched(
                || Outbox::new(4096),
                |mut o| {
                    for _ in 0..n {
                        let _ = o.try_push(f.clone(), now);
                    }
                    o.write_to(&mut MockWrite {
                        per_call: usize::MAX,
                        calls: usize::MAX,
                    })
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.throughput(Throughput::Elements(256));
    g.bench_function("push_256_write_in_4k_pieces", |b| {
        b.iter_batched(
            || Outbox::new(4096),
            |mut o| {
                for _ in 0..256 {
                    let _ = o.try_push(f.clone(), now);
                }
                o.write_to(&mut MockWrite {
                    per_call: 4096,
                    calls: usize::MAX,
                })
            },
            BatchSize::SmallInput,
        )
    });
    let batch = Frame::concat(&vec![f.clone(); 256]);
    g.bench_function("push_one_batch_of_256_then_write", |b| {
        b.iter_batched(
            || Outbox::new(4096),
            |mut o| {
                let _ = o.try_push_batch(batch.clone(), 256, now);
                o.write_to(&mut MockWrite {
                    per_call: usize::MAX,
                    calls: usize::MAX,
                })
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, outbox);
criterion_main!(benches);
