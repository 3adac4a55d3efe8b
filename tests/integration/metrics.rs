//! `/metrics` and `/stats` over a real socket while ticks flow and clients
//! connect, close, break the protocol and get evicted: the Prometheus text
//! is read with a Prometheus text parser (`prometheus-parse`), the JSON
//! with serde_json, and the counters must move between two scrapes.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value as PromValue};
use serde_json::Value;
use tungstenite::Message;

use crate::util::{Client, Got, TestServer, WAIT, raw_exchange, status_of, tick};

/// A GET of `path`: (status, the Content-Type, the body).
fn get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let resp = raw_exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
    );
    let status = status_of(&resp);
    let text = String::from_utf8(resp).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let content_type = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Type: "))
        .unwrap_or("")
        .to_string();
    (status, content_type, body.to_string())
}

/// `/metrics`, parsed.
fn scrape(addr: SocketAddr) -> Scrape {
    let (status, content_type, body) = get(addr, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    Scrape::parse(body.as_bytes().lines()).expect("Prometheus text format")
}

fn value(s: &Sample) -> f64 {
    match &s.value {
        PromValue::Counter(v) | PromValue::Gauge(v) | PromValue::Untyped(v) => *v,
        other => panic!("{} is not a number: {other:?}", s.metric),
    }
}

/// The sum over every sample of `metric` whose labels include `labels`.
fn sum(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)))
        .map(value)
        .sum()
}

/// Scrapes until `ok` holds (counts are published once per shard turn,
/// latencies every 100 ms).
fn scrape_until(addr: SocketAddr, what: &str, ok: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + WAIT;
    loop {
        let s = scrape(addr);
        if ok(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "no {what} in /metrics");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn metrics_move_between_two_scrapes_and_parse_as_prometheus_text() {
    let srv = TestServer::start(|c| {
        c.io_threads = 2;
        c.queue_capacity = 64;
    });
    let addr = srv.addr;
    let first = scrape(addr);
    assert_eq!(
        first.docs.get("tickcast_connections").map(String::as_str),
        Some("Open WebSocket connections.")
    );
    for shard in ["0", "1"] {
        let n = first
            .samples
            .iter()
            .filter(|s| s.metric == "tickcast_connections" && s.labels.get("shard") == Some(shard))
            .count();
        assert_eq!(n, 1, "one connections gauge for shard {shard}");
    }

    // Ticks flow to a reader.
    let mut reader = Client::connect_path(addr, "/ws?client=metrics-test");
    reader.subscribe(&["AAA"], &[], 1);
    for i in 0..50 {
        srv.publish(tick("AAA", i));
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut got = 0;
    while got < 50 {
        match reader.recv() {
            Got::Json(v) if v["type"] == "tick" => got += 1,
            Got::Json(_) => {}
            other => panic!("the reader lost its stream: {other:?}"),
        }
    }
    let open = scrape_until(addr, "the reader's connection", |s| {
        sum(s, "tickcast_connections", &[]) == 1.0
    });
    let sockets = sum(&open, "tickcast_sockets", &[]);
    assert!(
        (1.0..=2.0).contains(&sockets),
        "the reader's, and this scrape's once its shard published: {sockets}"
    );

    // A normal close, a protocol error (an unmasked client frame: 1002), an
    // eviction (a burst past a queue of 64 frames that is never read), a
    // 404 and a 426.
    let mut leaving = Client::connect(addr);
    leaving.ws.close(None).expect("close");
    while let Ok(m) = leaving.ws.read() {
        assert!(matches!(m, Message::Close(_) | Message::Ping(_)), "{m:?}");
    }
    let mut rude = Client::connect(addr);
    rude.ws
        .get_mut()
        .write_all(b"\x81\x02hi")
        .expect("raw frame");
    assert_eq!(rude.until_close().0, 1002);
    let mut stalled = Client::connect(addr);
    stalled.subscribe(&["BBB"], &[], 1);
    let deadline = Instant::now() + WAIT;
    let mut i = 0;
    while srv.stats().evicted_slow == 0 {
        assert!(
            Instant::now() < deadline,
            "never evicted: {:?}",
            srv.stats()
        );
        for _ in 0..100 {
            srv.publish(tick("BBB", i));
            i += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(get(addr, "/nope").0, 404);
    assert_eq!(get(addr, "/ws").0, 426);

    let second = scrape_until(addr, "every close, failure and latency", |s| {
        ["normal", "protocol", "slow_consumer"]
            .iter()
            .all(|r| sum(s, "tickcast_closes_total", &[("reason", r)]) >= 1.0)
            && ["404", "426"]
                .iter()
                .all(|r| sum(s, "tickcast_handshake_failures_total", &[("reason", r)]) >= 1.0)
            // One write in 8 is sampled: 50 ticks in ~50 writes give ~6.
            && sum(s, "tickcast_publish_to_write_seconds_count", &[]) >= 3.0
    });
    for (counter, at_least) in [
        ("tickcast_ticks_published_total", 150.0),
        ("tickcast_frames_sent_total", 50.0),
        ("tickcast_bytes_sent_total", 50.0 * 60.0),
        ("tickcast_accepted_total", 5.0),
    ] {
        let (before, after) = (sum(&first, counter, &[]), sum(&second, counter, &[]));
        assert!(
            after - before >= at_least,
            "{counter}: {before} then {after}"
        );
    }
    assert_eq!(
        sum(&second, "tickcast_closes_total", &[("reason", "heartbeat")]),
        0.0,
        "every reason is listed, zero or not"
    );
    assert!(sum(&second, "tickcast_outbox_frames", &[]) >= 0.0);
    check_histogram(&second);
    drop(reader);
}

/// The latency histogram's buckets are cumulative and end at `+Inf` with
/// the count.
fn check_histogram(s: &Scrape) {
    let h = s
        .samples
        .iter()
        .find(|s| s.metric == "tickcast_publish_to_write_seconds")
        .expect("the latency histogram");
    let PromValue::Histogram(buckets) = &h.value else {
        panic!("not a histogram: {h:?}");
    };
    assert!(buckets.len() > 10, "{buckets:?}");
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count),
        "{buckets:?}"
    );
    let last = buckets.last().unwrap();
    assert!(last.less_than.is_infinite());
    assert_eq!(
        last.count,
        sum(s, "tickcast_publish_to_write_seconds_count", &[])
    );
    // Loopback, a 2-core machine: well under a second, and more than 0.
    let under_1s = buckets.iter().find(|b| b.less_than == 1.0).unwrap();
    assert_eq!(under_1s.count, last.count, "{buckets:?}");
    assert!(sum(s, "tickcast_publish_to_write_seconds_sum", &[]) > 0.0);
}

#[test]
fn stats_is_json_with_ordered_percentiles_per_shard() {
    let srv = TestServer::start(|c| c.io_threads = 2);
    let mut c = Client::connect(srv.addr);
    c.subscribe(&["CCC"], &[], 1);
    for i in 0..200 {
        srv.publish(tick("CCC", i));
    }
    let _ = c.until_tick("CCC");
    let deadline = Instant::now() + WAIT;
    let stats = loop {
        let (status, content_type, body) = get(srv.addr, "/stats");
        assert_eq!((status, content_type.as_str()), (200, "application/json"));
        let v: Value = serde_json::from_str(&body).expect("JSON");
        if v["publish_to_write"]["count"].as_u64() >= Some(1) {
            break v;
        }
        assert!(Instant::now() < deadline, "no latency in /stats: {v}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let l = &stats["publish_to_write"];
    let p: Vec<u64> = ["p50_us", "p90_us", "p99_us", "p999_us", "max_us"]
        .iter()
        .map(|k| l[k].as_u64().unwrap_or_else(|| panic!("{k} in {l}")))
        .collect();
    assert!(
        p.windows(2).all(|w| w[0] <= w[1]),
        "percentiles in order: {l}"
    );
    assert!(p[4] < 10_000_000, "loopback latency under 10 s: {l}");
    let shards = stats["shards"].as_array().expect("shards");
    assert_eq!(shards.len(), 2);
    let per_shard: u64 = shards
        .iter()
        .map(|s| s["publish_to_write"]["count"].as_u64().unwrap())
        .sum();
    assert_eq!(per_shard, l["count"].as_u64().unwrap(), "the shards add up");
    assert_eq!(stats["connections"], 1);
    assert!(stats["ticks_published"].as_u64() >= Some(200));
    let closes: HashMap<String, Value> = serde_json::from_value(stats["closes"].clone()).unwrap();
    assert!(closes.contains_key("slow_consumer") && closes.contains_key("normal"));
    assert!(
        stats["handshake_failures"]["404"].as_u64().is_some(),
        "{stats}"
    );
    let head = raw_exchange(srv.addr, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&head), 200);
    assert!(head.ends_with(b"\r\n\r\n"), "HEAD has no body");
    let m = srv.b().metrics();
    assert!(m.publish_to_write.count >= l["count"].as_u64().unwrap());
    assert_eq!(srv.stats().connections, 1, "Stats still adds up");
}
