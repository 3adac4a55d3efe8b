//! Serialize-once cost: encoding one tick into a complete WebSocket text
//! frame (`TickEncoder::encode`, the publisher's per-tick work), for a
//! minimal tick, a full quote, and a long symbol; plus deriving a snapshot.
//!
//! Context: this runs once per tick, never per client, so at 5,000 ticks/s
//! even 1 µs would be 0.5% of a core. The interesting figure is the ratio
//! to a per-client re-serialization, which the design avoids.

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use tickcast::Tick;
use tickcast::encode::TickEncoder;

fn encode(c: &mut Criterion) {
    let mut enc = TickEncoder::new();
    let minimal = Tick::new("AAPL").last(189.26);
    let full = Tick::new("AAPL")
        .bid(189.25)
        .ask(189.27)
        .bid_size(300)
        .ask_size(200)
        .last(189.26)
        .volume(120_034);
    let long = Tick {
        symbol: "X".repeat(32).into(),
        ..full.clone()
    };
    let mut g = c.benchmark_group("encode");
    for (name, t) in [
        ("minimal", &minimal),
        ("full_quote", &full),
        ("symbol_32b", &long),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                enc.encode(
                    black_box(&t.symbol),
                    42,
                    1_763_775_000_123_456_789,
                    black_box(t),
                )
            })
        });
    }
    g.bench_function("serde_json_value_per_client_for_comparison", |b| {
        b.iter(|| {
            let v = serde_json::json!({
                "type": "tick", "symbol": "AAPL", "seq": 42u64, "ts": 1_763_775_000_123_456_789u64,
                "bid": 189.25, "ask": 189.27, "bid_size": 300, "ask_size": 200,
                "last": 189.26, "volume": 120_034,
            });
            black_box(serde_json::to_vec(&v).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
