//! `--produce` end to end: a real `redis-server` (its own free port and
//! temporary directory), two in-process tickcast nodes fed from its stream,
//! the loadtest's producer and clients spread over both nodes. The counts
//! are checked against the stream itself (XLEN, the function's `seq`s).
//!
//! Skipped (with a message) when `redis-server` is not on PATH, unless `CI`
//! is set (then they fail).

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use loadtest::inprocess::{self, StopFn};
use loadtest::{Cli, Report};

const WAIT: Duration = Duration::from_secs(10);
const SYMBOLS: usize = 20;

fn redis_for(test: &str) -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but redis-server is missing: install the `redis-server` package"
        );
        eprintln!("SKIPPED {test}: no redis-server on PATH (apt-get install redis-server)");
    }
    found
}

/// A `redis-server` without persistence; killed, reaped and its directory
/// removed on drop.
struct Redis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Redis {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "loadtest-redis-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let r = Redis { child, port, dir };
        let deadline = Instant::now() + WAIT;
        loop {
            let up = redis::Client::open(r.url().as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if up.is_ok() {
                return r;
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url().as_str())
            .unwrap()
            .get_connection_with_timeout(WAIT)
            .unwrap()
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tickcast node fed from `stream` on `redis` only (no synthetic feed).
fn node(redis: &Redis, stream: &str) -> (SocketAddr, StopFn) {
    let feed = tickcast::RedisFeed::parse(&format!("{}/{stream}", redis.url())).unwrap();
    inprocess::start_with(tickcast::Config {
        listen: SocketAddr::from(([127, 0, 0, 1], 0)),
        synthetic_rate: 0,
        feeds: vec![feed],
        io_threads: 1,
        pin_threads: false,
        ..tickcast::Config::default()
    })
    .expect("in-process node starts")
}

fn run(args: &[&str]) -> Report {
    let mut v = vec!["loadtest", "--quiet"];
    v.extend_from_slice(args);
    let opts = Cli::try_parse_from(v).unwrap().into_options().unwrap();
    loadtest::run(&opts).expect("run completes")
}

/// XLEN, and the sum of the function's last `seq` per symbol: both must
/// equal what the producer says Redis accepted.
fn stream_counts(redis: &Redis, stream: &str) -> (u64, u64) {
    let mut c = redis.conn();
    let len: u64 = redis::cmd("XLEN").arg(stream).query(&mut c).unwrap();
    let seqs: Vec<(String, u64)> = redis::cmd("HGETALL")
        .arg(format!("{stream}:seq"))
        .query(&mut c)
        .unwrap();
    (len, seqs.iter().map(|(_, s)| s).sum())
}

#[test]
fn a_producer_feeds_two_nodes_and_their_clients_get_every_tick() {
    if !redis_for("a_producer_feeds_two_nodes_and_their_clients_get_every_tick") {
        return;
    }
    let redis = Redis::start();
    let (a, stop_a) = node(&redis, "fleet");
    let (b, stop_b) = node(&redis, "fleet");
    let urls = format!("ws://{a}/ws,ws://{b}/ws");
    let produce = format!("{}/fleet", redis.url());
    let symbols = SYMBOLS.to_string();
    let r = run(&[
        "--url",
        &urls,
        "--produce",
        &produce,
        "--rate",
        "3000",
        "--symbols",
        &symbols,
        "--clients",
        "6",
        "--threads",
        "2",
        "--warmup",
        "0.5",
        "--duration",
        "2",
    ]);
    stop_a();
    stop_b();
    let t = r.table();
    let p = r.producer.as_ref().expect("a producer summary");
    assert_eq!((p.refused_calls, p.failed_round_trips), (0, 0), "{t}");
    assert_eq!(
        stream_counts(&redis, "fleet"),
        (p.ticks_total, p.ticks_total),
        "{t}"
    );
    assert!(
        (2700.0..=3300.0).contains(&p.ticks_per_sec),
        "paced at 3,000/s: {t}"
    );
    assert_eq!(r.clients.connected, 6, "{t}");
    assert!(r.sequence_ok(), "{t}");
    // Round-robin: three clients on each node, and both deliver.
    let per: Vec<(u64, bool)> = r
        .targets
        .iter()
        .map(|t| (t.connected, t.ticks_window > 0))
        .collect();
    assert_eq!(per, [(3, true), (3, true)], "{t}");
    // Every client on `*` gets every tick produced in the window (measured
    // against what was produced, edges aside).
    let d = &r.delivery;
    assert_eq!(d.clients, 6, "{t}");
    let (min, max) = (d.min_pct.unwrap_or(0.0), d.max_pct.unwrap_or(0.0));
    assert!(min > 97.0 && max < 103.0, "{t}");
    let e2e = p.end_to_end_ticks_per_sec.expect("an end-to-end figure");
    assert!(e2e > 0.95 * p.ticks_per_sec, "{t}");
    // Latency from Redis's `ts` (TIME, same clock): positive, not absurd.
    assert!(r.latency.count > 0, "{t}");
    assert_eq!(r.negative_latency_samples, 0, "{t}");
    assert!(r.latency.p50_us < 1_000_000.0, "{t}");
}

#[test]
fn the_producer_alone_counts_what_redis_accepted() {
    if !redis_for("the_producer_alone_counts_what_redis_accepted") {
        return;
    }
    let redis = Redis::start();
    let produce = format!("{}/alone", redis.url());
    let r = run(&[
        "--produce",
        &produce,
        "--clients",
        "0",
        "--rate",
        "2000",
        "--symbols",
        "7",
        "--warmup",
        "0.3",
        "--duration",
        "1",
    ]);
    let t = r.table();
    let p = r.producer.as_ref().expect("a producer summary");
    assert_eq!(r.clients.connected, 0, "{t}");
    assert_eq!(p.refused_calls, 0, "{t}");
    assert!(
        (1800.0..=2200.0).contains(&p.ticks_per_sec),
        "paced at 2,000/s: {t}"
    );
    assert_eq!(
        stream_counts(&redis, "alone"),
        (p.ticks_total, p.ticks_total),
        "{t}"
    );
    // Round-robin over the symbols: their seqs differ by at most one.
    let mut c = redis.conn();
    let seqs: Vec<(String, u64)> = redis::cmd("HGETALL")
        .arg("alone:seq")
        .query(&mut c)
        .unwrap();
    assert_eq!(seqs.len(), 7, "{t}");
    let (lo, hi) = (
        seqs.iter().map(|s| s.1).min().unwrap(),
        seqs.iter().map(|s| s.1).max().unwrap(),
    );
    assert!(hi - lo <= 1, "{seqs:?}");
    assert!(t.contains("producer"), "{t}");
}

#[test]
fn refused_calls_are_counted_and_add_nothing() {
    if !redis_for("refused_calls_are_counted_and_add_nothing") {
        return;
    }
    let redis = Redis::start();
    // The stream's key holds a string: every XADD inside the function fails.
    let mut c = redis.conn();
    redis::cmd("SET")
        .arg("taken")
        .arg("not a stream")
        .query::<()>(&mut c)
        .unwrap();
    let produce = format!("{}/taken", redis.url());
    let r = run(&[
        "--produce",
        &produce,
        "--clients",
        "0",
        "--rate",
        "1000",
        "--warmup",
        "0",
        "--duration",
        "0.5",
    ]);
    let t = r.table();
    let p = r.producer.as_ref().expect("a producer summary");
    assert!(p.refused_calls > 0, "{t}");
    assert_eq!((p.ticks_total, p.calls), (0, 0), "{t}");
    assert!(p.first_error.is_some(), "{t}");
}
