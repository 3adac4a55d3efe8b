//! Slow consumers: evicted with 4001 when their queue overflows, never
//! silently skipped, and never delaying the others.

use std::thread;
use std::time::{Duration, Instant};

use tickcast::Tick;
use tungstenite::Message;

use crate::util::{
    Client, Got, SeqCheck, TestServer, WAIT, heavy, publish_batch_retrying, publish_retrying,
    small_window, tick,
};

#[test]
fn slow_client_is_evicted_without_delaying_others() {
    let _heavy = heavy();
    let srv = TestServer::start(|c| {
        c.queue_capacity = 2048;
        c.send_buffer = 64 * 1024;
        // Long enough for the stalled client to come back for its close.
        c.close_linger = Duration::from_secs(20);
    });
    let mut slow = Client::over(small_window(srv.addr, 4096), srv.addr, "/ws");
    slow.subscribe(&["S"], &[], 1);
    let mut fast = Vec::new();
    for i in 0..3 {
        let mut c = Client::connect(srv.addr);
        c.subscribe(&["S", "END"], &[], i);
        fast.push(read_until_end(c));
    }
    // Publish in paced bursts until the slow client is evicted.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut published = 0u64;
    while srv.stats().evicted_slow == 0 {
        assert!(
            Instant::now() < deadline,
            "slow client never evicted: {:?}",
            srv.stats()
        );
        // ~10,000 ticks/s: easy for the fast readers on a busy 2-core box.
        for _ in 0..20 {
            srv.publish(tick("S", published));
            published += 1;
        }
        // Pacing, not a wait: the eviction is waited for by the loop.
        thread::sleep(Duration::from_millis(2));
    }
    // A few more after the eviction, then the end marker.
    for _ in 0..100 {
        srv.publish(tick("S", published));
        published += 1;
    }
    srv.publish(tick("END", 0));
    for h in fast {
        let check = h
            .join()
            .expect("fast client saw no gap and was not evicted");
        assert_eq!(check.last["S"], published, "fast clients got every tick");
    }
    // The stalled client now reads: its backlog, then the 4001 close.
    let mut check = SeqCheck::default();
    let end = Instant::now() + WAIT;
    let (code, reason) = loop {
        assert!(Instant::now() < end, "no close for the slow client");
        match slow.recv() {
            Got::Json(v) => check.feed(&v),
            Got::Close(code, reason) => break (code, reason),
            Got::End(e) => panic!("evicted client got no close frame: {e}"),
        }
    };
    assert_eq!((code, reason.as_str()), (4001, "slow consumer"));
    assert!(
        check.ticks < published,
        "it was evicted, not served everything"
    );
    // Shards publish their counts once a turn: wait for the eviction's.
    let s = srv.wait_stats("the eviction to be counted", |s| s.evicted_slow >= 1);
    assert_eq!(s.evicted_slow, 1, "only the slow client was evicted");
    drop(slow);
    srv.wait_stats("every socket to go", |s| {
        s.connections == 0 && s.sockets == 0
    });
}

#[test]
fn pong_is_never_interleaved_inside_a_broadcast_frame() {
    let _heavy = heavy();
    let srv = TestServer::start(|c| {
        c.io_threads = 1;
        // Small kernel buffers force partial writes of broadcast frames.
        c.send_buffer = 4096;
        c.queue_capacity = 100_000;
    });
    let mut c = Client::over(small_window(srv.addr, 16 * 1024), srv.addr, "/ws");
    c.subscribe(&["P", "END"], &[], 1);
    let p = srv.b().publisher();
    let feeder = thread::spawn(move || {
        for i in 0..5_000u64 {
            // Large frames: a long payload makes mid-frame stops likely.
            publish_retrying(&p, tick("P", i).volume(i).bid_size(u64::MAX - i));
        }
        publish_retrying(&p, tick("END", 0));
    });
    let mut check = SeqCheck::default();
    let mut pongs = 0;
    let mut pings_sent = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(
            Instant::now() < deadline,
            "no END: {} ticks, {pongs} pongs; the feeder finished: {}",
            check.ticks,
            feeder.is_finished()
        );
        if check.ticks % 50 == 0 && pings_sent < 200 {
            c.ws.send(Message::Ping(format!("p{pings_sent}").into_bytes().into()))
                .unwrap();
            pings_sent += 1;
        }
        match c.ws.read().expect("stream stays well-formed") {
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("whole JSON");
                check.feed(&v);
                if v["symbol"] == "END" {
                    break;
                }
            }
            Message::Pong(_) => pongs += 1,
            _ => {}
        }
    }
    feeder.join().unwrap();
    assert_eq!(check.ticks, 5_001);
    assert!(pongs > 0, "pongs arrived between frames");
}

/// A burst many times a client's queue reaches every client whose
/// socket takes it: the shard fans out a pass's worth of ticks, writes
/// them, then takes more, instead of queueing the whole burst at once and
/// evicting clients that were never behind. The burst (~90 KB per client)
/// fits in the kernel's socket buffers, so how fast the test's readers
/// parse does not matter: any 4001 here is the server's own doing.
/// (Before, every client was evicted: the burst landed in one or two
/// inbox drains, and 256 frames of queue hold a fraction of it.)
#[test]
fn a_burst_larger_than_the_queue_reaches_every_client_that_reads() {
    const BURST: u64 = 1_500;
    let _heavy = heavy();
    let srv = TestServer::start(|c| {
        c.io_threads = 1;
        c.queue_capacity = 256;
    });
    let readers: Vec<_> = (0..20)
        .map(|i| {
            let mut c = Client::connect(srv.addr);
            c.subscribe(&["END"], &["*"], i);
            read_until_end(c)
        })
        .collect();
    // Small ticks in batches of the most one may hold, as fast as the
    // publisher takes them.
    let p = srv.b().publisher();
    let max = tickcast::MAX_BATCH as u64;
    for from in (0..BURST).step_by(max as usize) {
        let batch = (from..(from + max).min(BURST)).map(|i| Tick::new("B").last(i as f64));
        publish_batch_retrying(&p, batch.collect());
    }
    publish_retrying(&p, tick("END", 0));
    for h in readers {
        let check = h.join().expect("every reader got the whole burst in order");
        assert_eq!(check.last["B"], BURST);
    }
    assert_eq!(srv.stats().evicted_slow, 0);
}

/// Reads `c` in a thread of its own until the tick of `END`, checking
/// every `seq`; panics if the stream ends first (an eviction) or if no
/// `END` comes within a minute.
fn read_until_end(mut c: Client) -> thread::JoinHandle<SeqCheck> {
    thread::spawn(move || {
        let mut check = SeqCheck::default();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match c.recv() {
                Got::Json(v) => {
                    check.feed(&v);
                    if v["symbol"] == "END" {
                        return check;
                    }
                }
                other => panic!("a reading client ended: {other:?} after {check:?}"),
            }
            assert!(Instant::now() < deadline, "no END: {check:?}");
        }
    })
}
