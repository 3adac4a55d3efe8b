//! Delivery: every client receives every tick of its subscriptions, once,
//! in order, with contiguous `seq`, whichever shard it is on.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::util::{
    Client, SeqCheck, TestServer, WAIT, heavy, publish_batch_retrying, small_window, tick,
};

#[test]
fn every_client_receives_every_update_in_order() {
    let srv = TestServer::start(|_| {});
    // 9 clients over 3 shards (the acceptor fills the least-loaded shard).
    let mut clients: Vec<Client> = (0..9).map(|_| Client::connect(srv.addr)).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        c.subscribe(&["AAA", "BBB"], &[], i as i64);
    }
    const N: u64 = 2000;
    for i in 0..N {
        srv.publish(tick(if i % 2 == 0 { "AAA" } else { "BBB" }, i));
    }
    for c in &mut clients {
        let mut check = SeqCheck::default();
        let deadline = Instant::now() + WAIT;
        while check.ticks < N {
            assert!(Instant::now() < deadline, "{} of {N} ticks", check.ticks);
            check.feed(&c.json());
        }
        assert_eq!(check.last["AAA"], N / 2);
        assert_eq!(check.last["BBB"], N / 2);
    }
}

#[test]
fn tick_json_matches_the_contract() {
    let srv = TestServer::start(|_| {});
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.welcome["protocol"], 1);
    assert_eq!(c.welcome["max_queue"], 4096);
    assert_eq!(c.welcome["heartbeat_ms"], 5000);
    assert!(c.welcome["conn_id"].as_str().unwrap().starts_with("c-"));
    c.subscribe(&["AAPL"], &[], 1);
    let before = tickcast_now();
    srv.publish(
        tickcast::Tick::new("AAPL")
            .bid(189.25)
            .ask(189.27)
            .bid_size(300)
            .volume(5),
    );
    let v = c.json();
    let after = tickcast_now();
    assert_eq!(v["type"], "tick");
    assert_eq!(v["symbol"], "AAPL");
    assert_eq!(v["seq"], 1);
    let ts = v["ts"].as_u64().unwrap();
    assert!(before <= ts && ts <= after, "ts is the acceptance time");
    assert_eq!(v["bid"], 189.25);
    assert_eq!(v["ask"], 189.27);
    assert_eq!(v["bid_size"], 300);
    assert_eq!(v["volume"], 5);
    assert!(v.get("last").is_none(), "absent fields are left out");
}

fn tickcast_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[test]
fn subscribing_under_full_load_gives_snapshot_then_contiguous() {
    let _heavy = heavy();
    // The feed is unthrottled and the client is a debug build: it cannot
    // keep up. The kernel's autotuned buffers (instead of the default
    // 64 KiB) and a queue of 131,072 frames (instead of 4,096: the
    // unthrottled feed fills that within a CI pause) let it read its 3,000
    // ticks before its queue overflows; this test is about ordering, not
    // eviction.
    let srv = TestServer::start(|c| {
        c.send_buffer = 0;
        c.queue_capacity = 1 << 17;
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let p = srv.b().publisher();
    let stop2 = stop.clone();
    let feed = std::thread::spawn(move || {
        let mut i = 0u64;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            for s in ["X1", "X2", "X3", "X4"] {
                let _ = p.publish(tick(s, i));
            }
            i += 1;
            if i.is_multiple_of(64) {
                std::thread::yield_now();
            }
        }
    });
    // Wait until ticks are flowing.
    srv.wait_stats("ticks to flow", |s| s.ticks_published > 10_000);
    for round in 0..12 {
        let mut c = Client::connect(srv.addr);
        let groups: &[&str] = if round % 3 == 0 { &["*"] } else { &[] };
        c.subscribe(&["X1", "X2", "X3"], groups, 1);
        let mut check = SeqCheck::default();
        let mut first_seen = std::collections::HashSet::new();
        let deadline = Instant::now() + WAIT;
        while check.ticks < 3000 {
            assert!(Instant::now() < deadline, "{} of 3000 ticks", check.ticks);
            let v = c.json();
            if let Some(sym) = v["symbol"].as_str()
                && first_seen.insert(sym.to_string())
            {
                assert_eq!(
                    v["type"], "snapshot",
                    "first message of {sym} is its snapshot"
                );
            }
            check.feed(&v);
        }
        assert!(check.snapshots >= 3);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feed.join().unwrap();
}

#[test]
fn overlapping_subscriptions_deliver_once() {
    let srv = TestServer::start(|_| {});
    srv.b().set_group("g", ["S1", "S2"]).unwrap();
    let mut c = Client::connect(srv.addr);
    c.subscribe(&["S1"], &["g"], 1);
    c.subscribe(&["S1", "S1"], &["g", "*"], 2);
    c.subscribe(&[], &["*"], 3);
    for i in 0..100 {
        srv.publish(tick("S1", i));
    }
    srv.publish(tick("END", 0));
    let mut check = SeqCheck::default();
    let mut s1 = 0;
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no END: {s1} ticks of S1");
        let v = c.json();
        check.feed(&v);
        if v["symbol"] == "END" {
            break;
        }
        if v["symbol"] == "S1" {
            s1 += 1;
        }
    }
    assert_eq!(s1, 100, "each tick exactly once");
}

#[test]
fn unsubscribe_stops_delivery() {
    let srv = TestServer::start(|_| {});
    srv.b().set_group("g", ["G1"]).unwrap();
    let mut c = Client::connect(srv.addr);
    c.subscribe(&["A", "B"], &["g"], 1);
    srv.publish(tick("A", 0));
    srv.publish(tick("G1", 0));
    let (r, before) = c.exchange(
        json!({"op":"unsubscribe","symbols":["A"],"groups":["g"]}),
        2,
    );
    assert_eq!(
        r,
        json!({"type":"unsubscribed","id":2,"symbols":["A"],"groups":["g"]})
    );
    for v in &before {
        // The two ticks published before the unsubscribe may or may not
        // have reached the shard before it.
        assert!(
            v["type"] == "tick" && (v["symbol"] == "A" || v["symbol"] == "G1"),
            "only the ticks published while subscribed: {v}"
        );
    }
    for i in 0..50 {
        srv.publish(tick("A", i));
        srv.publish(tick("G1", i));
    }
    // B is still subscribed: its tick is the fence behind the 100 above.
    srv.publish(tick("B", 0));
    let before = c.until_tick("B");
    assert!(
        before.is_empty(),
        "no A or G1 after unsubscribed: {before:?}"
    );
    let (r, before) = c.exchange(json!({"op":"unsubscribe","all":true}), 3);
    assert_eq!(r["symbols"], json!(["B"]));
    assert!(before.is_empty(), "{before:?}");
    srv.publish(tick("B", 1));
    srv.publish(tick("A", 1));
    let (r, before) = c.exchange(json!({"op":"ping"}), 4);
    assert_eq!(r["type"], "pong");
    assert!(
        before.is_empty(),
        "nothing arrives after unsubscribe all: {before:?}"
    );
    // A ping is not ordered with ticks (they reach the shard another way),
    // so the fence is a tick: subscribe to a new symbol and publish it
    // after B and A. Anything of B or A delivered would arrive before it.
    let (r, before) = c.exchange(json!({"op":"subscribe","symbols":["FENCE"]}), 5);
    assert_eq!(r["type"], "subscribed", "{r}");
    assert!(
        before.is_empty(),
        "nothing arrives after unsubscribe all: {before:?}"
    );
    srv.publish(tick("FENCE", 0));
    let before = c.until_tick("FENCE");
    assert!(
        before.is_empty(),
        "nothing arrives after unsubscribe all: {before:?}"
    );
}

#[test]
fn group_redefinition_moves_subscribers_with_snapshots() {
    let srv = TestServer::start(|_| {});
    srv.b().set_group("g", ["A"]).unwrap();
    srv.publish(tick("B", 0));
    // set_group goes to the shards directly, ticks through the publisher
    // thread: once it counts the tick as sent, the shards have it queued
    // ahead of the regroup below, so B's last value is there to snapshot.
    srv.wait_stats("the B tick to reach the shards", |s| s.ticks_published == 1);
    let mut c = Client::connect(srv.addr);
    c.subscribe(&[], &["g"], 1);
    srv.b().set_group("g", ["B"]).unwrap();
    let v = c.json();
    assert_eq!(
        (v["type"].as_str(), v["symbol"].as_str(), v["seq"].as_u64()),
        (Some("snapshot"), Some("B"), Some(1))
    );
    srv.publish(tick("A", 1));
    srv.publish(tick("B", 1));
    let v = c.json();
    assert_eq!(
        (v["symbol"].as_str(), v["seq"].as_u64()),
        (Some("B"), Some(2))
    );
    assert!(srv.b().remove_group("g").unwrap());
    let v = c.json();
    assert_eq!(
        v,
        json!({"type":"unsubscribed","symbols":[],"groups":["g"]})
    );
    let r = c.request(json!({"op":"subscribe","groups":["g"]}), 2);
    assert_eq!(r["code"], "unknown_group");
}

#[test]
fn notices_reach_everyone() {
    let srv = TestServer::start(|_| {});
    let mut a = Client::connect(srv.addr);
    let mut b = Client::connect(srv.addr);
    srv.b().notice("market closes in 5 minutes");
    for c in [&mut a, &mut b] {
        let v = c.json();
        assert_eq!(v["type"], "notice");
        assert_eq!(v["text"], "market closes in 5 minutes");
        assert!(v["ts"].as_u64().is_some());
    }
}

/// Clients with watchlists of their own are each alone in their class:
/// the shard copies their batches side by side into shared chunks, and a
/// client that lags (256 frames or more waiting) gets its batches in
/// allocations of its own. Either way each gets exactly the ticks of its
/// symbols, once, in order: nothing of a neighbour's range of the chunk.
#[test]
fn watchlists_of_their_own_get_exactly_their_ticks_keeping_up_or_lagging() {
    let _heavy = heavy();
    let srv = TestServer::start(|c| {
        c.io_threads = 1;
        // Small kernel buffers: the lagging client's backlog stays in its
        // outbox, where the shard sees it.
        c.send_buffer = 4096;
    });
    let names: Vec<String> = (0..8).map(|i| format!("W{i}")).collect();
    const PER_SYMBOL: u64 = 400;
    // Watchlists {W0,W1}, {W1,W2}, …, {W5,W6}: all different.
    let readers: Vec<_> = (0..6)
        .map(|i| {
            let mine = [names[i].clone(), names[i + 1].clone()];
            let mut c = Client::connect(srv.addr);
            c.subscribe(&[&mine[0], &mine[1]], &[], 1);
            std::thread::spawn(move || read_watchlist(&mut c, &mine, 2 * PER_SYMBOL))
        })
        .collect();
    // A client that does not read: its outbox fills past 256 frames.
    let mut lagging = Client::over(small_window(srv.addr, 4096), srv.addr, "/ws");
    lagging.subscribe(&["W6", "W7"], &[], 1);
    // Bursts of 64 ticks over the 8 symbols: 8 ticks per symbol per
    // batch, so a shard turn holds several ticks of each watchlist.
    let p = srv.b().publisher();
    for i in (0..PER_SYMBOL * 8).step_by(64) {
        let batch = (i..i + 64)
            .map(|j| tick(&names[(j % 8) as usize], j / 8))
            .collect();
        publish_batch_retrying(&p, batch);
    }
    for r in readers {
        let check = r.join().expect("a reader failed");
        assert_eq!(check.ticks, 2 * PER_SYMBOL);
    }
    let deadline = Instant::now() + WAIT;
    while srv.b().metrics().outbox_frames() < 256 {
        assert!(
            Instant::now() < deadline,
            "the lagging client's outbox never passed 256 frames"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let check = read_watchlist(
        &mut lagging,
        &["W6".to_string(), "W7".to_string()],
        2 * PER_SYMBOL,
    );
    assert_eq!(
        (check.last["W6"], check.last["W7"]),
        (PER_SYMBOL, PER_SYMBOL)
    );
}

/// Reads `c` until it has `n` ticks, each of one of `mine`, in order (for
/// at most `WAIT`).
fn read_watchlist(c: &mut Client, mine: &[String], n: u64) -> SeqCheck {
    let mut check = SeqCheck::default();
    let deadline = Instant::now() + WAIT;
    while check.ticks < n {
        assert!(Instant::now() < deadline, "{} of {n} ticks", check.ticks);
        let v = c.json();
        if v["type"] == "tick" {
            let sym = v["symbol"].as_str().unwrap_or("");
            assert!(mine.iter().any(|m| m == sym), "{sym} is not in {mine:?}");
        }
        check.feed(&v);
    }
    check
}

/// The publisher fills the frames that shards let go of with new ticks
/// (`recycle`). A frame still queued for a client must never be among
/// them: `slow` holds every `AA` tick in its queue while the history
/// (depth 2) lets go of them, `fast` releases the `BB` ticks as it reads,
/// and nobody wants `ZZ`, so frames of the very lengths `slow` holds are
/// refilled all along. Every tick must then arrive with the fields it was
/// published with.
#[test]
fn frames_the_publisher_refills_are_never_ones_still_queued() {
    let _heavy = heavy();
    const N: u64 = 3000;
    let srv = TestServer::start(|c| {
        c.history_depth = 2;
        c.queue_capacity = 4 * N as usize;
    });
    let mut slow = Client::connect(srv.addr);
    slow.subscribe(&["AA"], &[], 1);
    let mut fast = Client::connect(srv.addr);
    fast.subscribe(&["AA", "BB"], &[], 1);
    let reader = std::thread::spawn(move || read_exact_ticks(&mut fast, 2 * N));
    // Same-length symbols and the same price steps: the frames of all
    // three have the same lengths.
    for i in 0..N {
        for sym in ["AA", "BB", "ZZ"] {
            srv.publish(tick(sym, i));
        }
    }
    srv.wait_stats("every tick published", |s| s.ticks_published == 3 * N);
    assert_eq!(reader.join().unwrap().ticks, 2 * N);
    assert_eq!(read_exact_ticks(&mut slow, N).ticks, N);
}

/// Reads `n` ticks, checking `seq` continuity and that each tick carries
/// what `util::tick` published for it (its `seq` less one).
fn read_exact_ticks(c: &mut Client, n: u64) -> SeqCheck {
    let mut check = SeqCheck::default();
    let deadline = Instant::now() + WAIT * 2;
    while check.ticks < n {
        assert!(Instant::now() < deadline, "{} of {n} ticks", check.ticks);
        let v = c.json();
        if v["type"] != "tick" {
            continue;
        }
        check.feed(&v);
        let i = v["seq"].as_u64().unwrap() - 1;
        let want = tick(v["symbol"].as_str().unwrap(), i);
        assert_eq!(v["volume"], json!(i), "{v}");
        // serde_json's default float parsing may be off by an ulp.
        let near = |got: &Value, want: Option<tickcast::Price>| {
            let (got, want) = (got.as_f64().unwrap(), want.unwrap().to_f64());
            (got - want).abs() < 1e-9
        };
        assert!(near(&v["bid"], want.bid), "{v}");
        assert!(near(&v["ask"], want.ask), "{v}");
    }
    check
}
