//! Clients that stop reading are found by how far they lag, evicted with
//! 4001 within about `max_lag`, and their sockets reset so the kernel gives
//! their buffers back; the clients that do read keep every tick.

use std::io::Read;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Client, TestServer, feed_every, heavy, read_in_background};

#[test]
fn a_stalled_client_is_evicted_for_lag_and_its_socket_reset() {
    let _heavy = heavy();
    let max_lag = Duration::from_millis(500);
    let srv = TestServer::start(|c| {
        // So large that only the lag bound can evict at this rate.
        c.queue_capacity = 1 << 20;
        c.max_lag = max_lag;
        c.close_linger = Duration::from_millis(300);
        c.io_threads = 1;
    });
    let mut healthy = Client::connect(srv.addr);
    healthy.subscribe(&["S"], &[], 1);
    let mut stalled = Client::connect(srv.addr);
    stalled.subscribe(&["S"], &[], 1);
    let stop = Arc::new(AtomicBool::new(false));
    let reading = read_in_background(healthy, stop.clone());
    // ~2,000 ticks/s of ~200 bytes: the stalled side's kernel buffers fill
    // within a second, then frames wait in its queue and age.
    let published = feed_every(&srv, "S", Duration::from_micros(500), stop.clone());
    let stalled_at = Instant::now();
    let s = srv.wait_stats("a lag eviction", |s| s.evicted_lag == 1);
    let found_after = stalled_at.elapsed();
    assert_eq!((s.evicted_slow, s.heartbeat_timeouts), (0, 0), "{s:?}");
    srv.wait_stats("the stalled socket to be gone", |s| {
        s.sockets == 1 && s.connections == 1
    });
    let gone_after = stalled_at.elapsed();
    stop.store(true, SeqCst);
    let sent = published.join().unwrap();
    let got = reading.join().unwrap();
    assert!(
        got > 100 && sent > 100,
        "the healthy client kept its stream: {got} of {sent}"
    );
    // Within the lag bound plus the time to fill the kernel's buffers, and
    // the close grace: seconds, not the tens of seconds of autotuned
    // buffers and three heartbeats.
    assert!(found_after < max_lag * 8, "found after {found_after:?}");
    assert!(
        gone_after < found_after + Duration::from_secs(3),
        "gone after {gone_after:?}"
    );
    stalled.expect_eviction();
}

#[test]
fn a_client_that_stops_answering_pings_is_evicted_at_a_trickle() {
    let _heavy = heavy();
    // One tick every 100 ms never fills a kernel buffer: only the ping
    // round trip shows that the client stopped reading.
    let srv = TestServer::start(|c| {
        c.heartbeat = Duration::from_millis(300);
        c.max_lag = Duration::from_millis(400);
        c.close_linger = Duration::from_millis(200);
    });
    let mut stalled = Client::connect(srv.addr);
    stalled.subscribe(&["T"], &[], 1);
    let stop = Arc::new(AtomicBool::new(false));
    let published = feed_every(&srv, "T", Duration::from_millis(100), stop.clone());
    // A ping goes out after one heartbeat (300 ms); unanswered for 400 ms
    // it evicts, before three silent heartbeats (900 ms) would.
    let s = srv.wait_stats("a lag eviction", |s| s.evicted_lag == 1);
    assert_eq!((s.heartbeat_timeouts, s.evicted_slow), (0, 0), "{s:?}");
    srv.wait_stats("the socket to be gone", |s| s.sockets == 0);
    stop.store(true, SeqCst);
    published.join().unwrap();
    // Its kernel holds the ticks, the pings and then the close frame (the
    // server's buffers never filled), and then the reset that came when
    // the close grace ran out. Read it raw: a WebSocket client would
    // first answer the pings, to a socket the server has closed. The
    // close frame is best effort: either it is there, or the read ends in
    // a reset (Linux may drop unread data when the reset arrives).
    let mut raw = Vec::new();
    let end = stalled.ws.get_mut().read_to_end(&mut raw);
    let close = encode_close(4001, "slow consumer");
    let has_close = raw.windows(close.len()).any(|w| w == close);
    let reset = end
        .as_ref()
        .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset);
    assert!(has_close || reset, "{} bytes, then {end:?}", raw.len());
}

/// The bytes of a server close frame.
fn encode_close(code: u16, reason: &str) -> Vec<u8> {
    let mut f = vec![0x88, (2 + reason.len()) as u8];
    f.extend_from_slice(&code.to_be_bytes());
    f.extend_from_slice(reason.as_bytes());
    f
}

#[test]
fn a_client_that_reads_is_never_evicted_for_lag() {
    let _heavy = heavy();
    let srv = TestServer::start(|c| {
        c.heartbeat = Duration::from_millis(100);
        c.max_lag = Duration::from_millis(300);
    });
    let mut c = Client::connect(srv.addr);
    c.subscribe(&["U"], &[], 1);
    let stop = Arc::new(AtomicBool::new(false));
    let published = feed_every(&srv, "U", Duration::from_millis(5), stop.clone());
    let reading = read_in_background(c, stop.clone());
    // Ten lag bounds and thirty pings (a measurement window, not a wait
    // for a condition): every ping answered in time.
    thread::sleep(Duration::from_secs(3));
    let s = srv.stats();
    assert_eq!(
        (s.evicted_lag, s.evicted_slow, s.connections),
        (0, 0, 1),
        "{s:?}"
    );
    assert!(
        s.frames_sent > s.ticks_published + 20,
        "pings went out: {s:?}"
    );
    stop.store(true, SeqCst);
    published.join().unwrap();
    assert!(reading.join().unwrap() > 100);
}
