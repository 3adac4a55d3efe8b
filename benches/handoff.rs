//! The publisher-to-shard hand-off: a bounded crossbeam channel send of a
//! shared frame plus the shard wake-up, with a wake (an eventfd write via
//! `mio::Waker`) on every send versus the coalesced rule tickcast uses
//! (`tickcast::wake::Sleep`: wake only if the shard announced it is going
//! to sleep).
//!
//! Context: the receiver is a thread spinning on `try_recv` (a busy shard),
//! which is exactly when coalescing matters: it never needs a wake.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mio::{Poll, Token, Waker};
use tickcast::Frame;
use tickcast::wake::Sleep;

fn handoff(c: &mut Criterion) {
    let poll = Poll::new().unwrap();
    let waker = Waker::new(poll.registry(), Token(0)).unwrap();
    let frame = Frame::from(&[0x81u8, 3, b'a', b'b', b'c'][..]);
    let (tx, rx) = crossbeam_channel::bounded::<Frame>(65_536);
    let stop = Arc::new(AtomicBool::new(false));
    // The consumer spins and never announces a sleep, as a busy shard.
    let sleep = Sleep::default();
    let consumer = {
        let stop = stop.clone();
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                while rx.try_recv().is_ok() {}
                std::hint::spin_loop();
            }
        })
    };
    let mut g = c.benchmark_group("handoff");
    g.throughput(Throughput::Elements(1));
    g.bench_function("send_and_wake_every_time", |b| {
        b.iter(|| {
            tx.send(frame.clone()).unwrap();
            waker.wake().unwrap();
        })
    });
    g.bench_function("send_and_coalesced_wake", |b| {
        b.iter(|| {
            tx.send(frame.clone()).unwrap();
            if sleep.should_wake() {
                waker.wake().unwrap();
            }
        })
    });
    g.finish();
    stop.store(true, Ordering::Relaxed);
    consumer.join().unwrap();
}

criterion_group!(benches, handoff);
criterion_main!(benches);
