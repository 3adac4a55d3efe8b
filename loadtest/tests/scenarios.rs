//! The stalled, soak and streaming connect-storm scenarios end to end,
//! against an in-process tickcast on 127.0.0.1:0 with short lag and linger
//! limits, so each test runs in a few seconds.
//!
//! The server-side sampler needs `ss` (iproute2); without it the tests
//! still check everything the clients see and skip the `ss` figures.

use std::net::SocketAddr;
use std::time::Duration;

use loadtest::inprocess::{self, StopFn};
use loadtest::{Options, Report, Scenario, Subscription, Target, run};

const SYMBOLS: usize = 20;

fn server(rate: u64) -> (SocketAddr, StopFn) {
    inprocess::start_with(tickcast::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        synthetic_symbols: SYMBOLS,
        synthetic_rate: rate,
        max_lag: Duration::from_millis(500),
        close_linger: Duration::from_millis(500),
        io_threads: 1,
        pin_threads: false,
        ..tickcast::Config::default()
    })
    .expect("in-process tickcast starts")
}

fn options(addr: SocketAddr, scenario: Scenario, rate: u64) -> Options {
    let mut o = Options::fanout(
        Target {
            addr,
            host: addr.to_string(),
            path: "/ws".into(),
            tls: false,
        },
        4,
    );
    o.scenario = scenario;
    o.rate = rate;
    o.symbols = SYMBOLS;
    o.expect_snapshots = Some(SYMBOLS as u64);
    o.threads = 2;
    o.warmup = Duration::from_millis(500);
    o.connect_timeout = Duration::from_secs(5);
    o.sample_interval = Duration::from_millis(100);
    // Other tests of this binary open sockets in this process too, so the
    // descriptor count is not waited for long.
    o.settle = Duration::from_secs(1);
    o.server_pid = Some(std::process::id());
    o.progress = false;
    o
}

fn ss_worked(r: &Report) -> bool {
    r.server.as_ref().is_some_and(|s| s.ss == "ok")
}

#[test]
fn stalled_clients_are_gone_soon_and_healthy_ones_keep_every_tick() {
    let rate = 4000;
    let (addr, stop) = server(rate);
    // Let every symbol get a value first.
    std::thread::sleep(Duration::from_millis(300));
    let mut o = options(addr, Scenario::Stalled, rate);
    o.clients = 3;
    o.stalled = 2;
    o.stall_after = o.warmup;
    o.duration = Duration::from_secs(5);
    let r = run(&o).expect("run");
    stop();
    let t = r.table();
    assert!(r.sequence_ok(), "{t}");
    assert_eq!(r.clients.connected, 5, "{t}");
    let st = r.stalled.as_ref().expect("a stalled summary");
    assert_eq!((st.connected, st.stalled), (2, 2), "{t}");
    assert_eq!(r.delivery.healthy_evicted, 0, "{t}");
    assert_eq!(r.delivery.clients, 3, "{t}");
    assert!(r.delivery.min_pct.is_some_and(|p| p > 50.0), "{t}");
    // Lag 0.5 s after the buffers fill, then 0.5 s of linger and a reset.
    // The server's side (`ss`) is the measure: a stalled client may never
    // see the reset (see `StallSummary::hangup_seen`), as CI showed once
    // on a loaded machine (1 of 2 seen, both gone on the server).
    assert!(st.hangup_seen <= 2, "{t}");
    if !ss_worked(&r) {
        assert_eq!(st.hangup_seen, 2, "without ss, the client side: {t}");
    }
    if ss_worked(&r) {
        assert_eq!(st.gone, 2, "{t}");
        assert!(st.eviction_ms.max < 4000, "{t}");
        let s = r.server.as_ref().expect("server side");
        assert!(s.peak_established >= 5, "{t}");
        assert!(s.peak_queued_bytes > 0, "{t}");
        assert!(!r.samples.is_empty());
    }
}

#[test]
fn storm_newcomers_get_their_snapshots_next_to_streaming_clients() {
    let rate = 1000;
    let (addr, stop) = server(rate);
    std::thread::sleep(Duration::from_millis(300));
    let mut o = options(addr, Scenario::ConnectStorm, rate);
    o.streaming = 3;
    o.clients = 12;
    o.subscribe = Subscription::All;
    o.storm_at = Duration::from_millis(300);
    o.duration = Duration::from_millis(1500);
    let r = run(&o).expect("run");
    stop();
    let t = r.table();
    assert!(r.sequence_ok(), "{t}");
    let st = r.storm.as_ref().expect("a storm summary");
    assert_eq!((st.newcomers, st.connected, st.failed), (12, 12, 0), "{t}");
    assert_eq!(st.with_snapshots, 12, "{t}");
    assert!(
        st.snapshots_time.count == 12 && st.snapshots_time.max_us > 0.0,
        "{t}"
    );
    // The streaming clients were there for the whole window.
    assert_eq!(r.per_client_ticks.clients, 3, "{t}");
    assert!(r.latency.count > 0, "{t}");
}

#[test]
fn soak_replaces_stalled_clients_and_churns_the_others() {
    let rate = 2000;
    let (addr, stop) = server(rate);
    std::thread::sleep(Duration::from_millis(300));
    let mut o = options(addr, Scenario::Soak, rate);
    o.clients = 6;
    o.stalled = 1;
    o.stall_after = Duration::from_millis(300);
    // The stalled client may never see the server's reset: it leaves
    // after 1.5 s stalled (the server drops it within about 1 s).
    o.stall_for = Some(Duration::from_millis(1500));
    o.churn_rate = 4.0;
    o.duration = Duration::from_secs(4);
    let r = run(&o).expect("run");
    stop();
    let t = r.table();
    assert!(r.sequence_ok(), "{t}");
    assert!(r.clients.churned > 0, "{t}");
    let st = r.stalled.as_ref().expect("a stalled summary");
    assert!(st.stalled >= 2, "the gone stalled client was replaced: {t}");
    let s = r.server.as_ref().expect("server side");
    assert!(s.rss_window_first_kib.is_some(), "{t}");
}

#[test]
fn storm_newcomers_can_leave_once_they_have_their_snapshots() {
    let rate = 1000;
    let (addr, stop) = server(rate);
    std::thread::sleep(Duration::from_millis(300));
    let mut o = options(addr, Scenario::ConnectStorm, rate);
    o.streaming = 2;
    o.clients = 6;
    o.subscribe = Subscription::All;
    o.storm_at = Duration::from_millis(200);
    o.storm_leave = Some(Duration::ZERO);
    o.duration = Duration::from_millis(1500);
    let r = run(&o).expect("run");
    stop();
    let t = r.table();
    assert!(r.sequence_ok(), "{t}");
    let st = r.storm.as_ref().expect("a storm summary");
    assert_eq!(st.with_snapshots, 6, "{t}");
    assert_eq!(r.clients.churned, 6, "every newcomer left: {t}");
    assert_eq!(r.ends_fast.get("open at end"), Some(&2), "{t}");
}
