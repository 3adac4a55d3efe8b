//! Nodes fed from a Redis stream (`Config::feeds`), against a real
//! `redis-server`: every node publishes exactly what the stream holds
//! (same symbol, seq, ts, price text), and a Redis that goes away and
//! comes back costs no tick and duplicates none.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::Connection;
use tickcast::redis_stream::{RedisSink, SinkError};
use tickcast::{Decimal, RedisFeed, Tick, redis_stream};
use tungstenite::Message;

use crate::redis_server::{Persistence, RedisServer, redis_for};
use crate::util::{Client, TestServer, WAIT, raw_exchange, status_of};

pub(crate) const SYMBOLS: [&str; 3] = ["AAA", "BBB", "CCC"];

/// One tick as a client saw it, the price as its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub(crate) symbol: String,
    pub(crate) seq: u64,
    pub(crate) ts: u64,
    pub(crate) bid: String,
}

impl Seen {
    /// The tick `v`, parsed from `text`, with its price as sent, digit for
    /// digit (serde_json would round it).
    pub(crate) fn of(text: &str, v: &serde_json::Value) -> Seen {
        let bid = text
            .split(r#""bid":"#)
            .nth(1)
            .and_then(|s| s.split([',', '}']).next())
            .unwrap_or_default()
            .to_string();
        Seen {
            symbol: v["symbol"].as_str().unwrap().to_string(),
            seq: v["seq"].as_u64().unwrap(),
            ts: v["ts"].as_u64().unwrap(),
            bid,
        }
    }
}

fn node(r: &RedisServer, stream: &str) -> TestServer {
    let feed = RedisFeed::parse(&format!("{}/{stream}", r.url())).unwrap();
    TestServer::start(|c| c.feeds = vec![feed])
}

/// A Redis with the function installed and a producer connection to it.
/// `None`: no redis-server (skipped).
pub(crate) fn redis_and_producer(test: &str, p: Persistence) -> Option<(RedisServer, Connection)> {
    if !redis_for(test) {
        return None;
    }
    let r = RedisServer::start(p);
    let mut producer = r.connection();
    redis_stream::install(&mut producer).unwrap();
    Some((r, producer))
}

/// A Redis with the function installed, a producer connection to it, and a
/// node fed from its stream `s`, up. `None`: no redis-server (skipped).
fn fed_node(test: &str, p: Persistence) -> Option<(RedisServer, Connection, TestServer)> {
    let (r, producer) = redis_and_producer(test, p)?;
    let n = node(&r, "s");
    n.wait_stats("the feed up", |s| s.feeds_down == 0);
    Some((r, producer, n))
}

fn wait_until(what: &str, mut pred: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !pred() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The price text for tick `i`: values an f64 cannot hold exactly.
pub(crate) fn price(i: u64) -> String {
    format!("123456789.1234567890{:04}", i % 10_000)
}

/// Publishes `n` ticks round-robin over SYMBOLS in one pipeline; returns
/// the seqs Redis assigned.
pub(crate) fn produce(c: &mut Connection, stream: &str, from: u64, n: u64) -> Vec<u64> {
    let mut pipe = redis::pipe();
    for i in from..from + n {
        pipe.cmd("FCALL")
            .arg("tickcast_publish")
            .arg(1)
            .arg(stream)
            .arg(SYMBOLS[(i % 3) as usize])
            .arg("bid")
            .arg(price(i))
            .arg("volume")
            .arg(i);
    }
    pipe.query(c).expect("FCALLs")
}

/// What the stream holds, as clients should see it.
pub(crate) fn stream_contents(c: &mut Connection, stream: &str) -> Vec<Seen> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(c)
        .unwrap();
    entries
        .into_iter()
        .map(|(_, f)| {
            let get = |k: &str| {
                f.iter()
                    .position(|x| x == k)
                    .map(|i| f[i + 1].clone())
                    .unwrap()
            };
            Seen {
                symbol: get("symbol"),
                seq: get("seq").parse().unwrap(),
                ts: get("ts").parse().unwrap(),
                bid: get("bid"),
            }
        })
        .collect()
}

/// Reads raw text frames until `n` ticks arrived (other messages are
/// returned apart); panics past `WAIT`.
fn read_ticks(c: &mut Client, n: usize) -> (Vec<Seen>, Vec<serde_json::Value>) {
    let deadline = Instant::now() + WAIT;
    let (mut ticks, mut other) = (Vec::new(), Vec::new());
    while ticks.len() < n {
        assert!(
            Instant::now() < deadline,
            "{} of {n} ticks within {WAIT:?}; other messages: {other:?}",
            ticks.len()
        );
        let text = match c.ws.read() {
            Ok(Message::Text(t)) => t.to_string(),
            Ok(Message::Close(f)) => panic!("closed: {f:?}"),
            Ok(_) => continue,
            Err(e) => panic!("read: {e}"),
        };
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        if v["type"] != "tick" {
            other.push(v);
            continue;
        }
        ticks.push(Seen::of(&text, &v));
    }
    (ticks, other)
}

fn subscribed_client(node: &TestServer) -> Client {
    let mut c = Client::connect(node.addr);
    c.subscribe(&SYMBOLS, &[], 1);
    c
}

#[test]
fn nodes_fed_from_one_stream_publish_identical_ticks() {
    let test = "nodes_fed_from_one_stream_publish_identical_ticks";
    let Some((r, mut producer)) = redis_and_producer(test, Persistence::None) else {
        return;
    };
    let nodes: Vec<TestServer> = (0..3).map(|_| node(&r, "s")).collect();
    for n in &nodes {
        n.wait_stats("the feed up", |s| s.feeds == 1 && s.feeds_down == 0);
    }
    let mut clients: Vec<Client> = nodes.iter().map(subscribed_client).collect();
    const N: u64 = 3000;
    let seqs = produce(&mut producer, "s", 0, N);
    assert_eq!(seqs.len(), N as usize);
    let want = stream_contents(&mut producer, "s");
    assert_eq!(want.len(), N as usize, "the stream holds every tick");
    for (i, c) in clients.iter_mut().enumerate() {
        let (got, other) = read_ticks(c, N as usize);
        assert!(other.is_empty(), "node {i}: {other:?}");
        assert_eq!(got, want, "node {i} published the stream as it is");
    }
    // Per symbol, 1..=N/3: no gap, no duplicate.
    let mut last: HashMap<&str, u64> = HashMap::new();
    for t in &want {
        let l = last.entry(&t.symbol).or_default();
        assert_eq!(t.seq, *l + 1);
        *l = t.seq;
    }
    assert!(want[7].bid == price(7) && price(7).len() > 17);
    for n in &nodes {
        assert_eq!(n.stats().ticks_published, N);
    }
}

#[test]
fn a_node_replays_the_stream_at_start() {
    let test = "a_node_replays_the_stream_at_start";
    let Some((r, mut producer)) = redis_and_producer(test, Persistence::None) else {
        return;
    };
    produce(&mut producer, "s", 0, 300);
    let n = node(&r, "s");
    let s = n.wait_stats("the replay", |s| s.ticks_published == 300);
    assert_eq!(s.feeds_down, 0);
    // The replay filled the last-value cache: a new client's snapshot is
    // the stream's last tick of the symbol.
    let mut c = Client::connect(n.addr);
    let r = c.request(serde_json::json!({"op":"subscribe","symbols":["AAA"]}), 1);
    assert_eq!(r["type"], "subscribed");
    let snap = c.json();
    assert_eq!(
        (snap["type"].as_str(), snap["seq"].as_u64()),
        (Some("snapshot"), Some(100))
    );
}

fn health(n: &TestServer, path: &str) -> (u16, String) {
    let resp = raw_exchange(
        n.addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    );
    let text = String::from_utf8_lossy(&resp).to_string();
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_string();
    (status_of(&resp), body)
}

fn expect_feed_status(c: &mut Client, state: &str) {
    let v = c.json();
    assert_eq!(
        (v["type"].as_str(), v["state"].as_str()),
        (Some("feed_status"), Some(state)),
        "{v}"
    );
    assert!(
        v["ts"].as_u64().is_some() && v["text"].as_str().is_some(),
        "{v}"
    );
}

/// Redis killed and restarted (with its append-only file): the node marks
/// the feed down (feed_status, /healthz 503, /livez 200), reconnects, and
/// continues after the last entry it read: every tick once.
#[test]
fn feed_down_then_up_loses_and_duplicates_nothing() {
    let test = "feed_down_then_up_loses_and_duplicates_nothing";
    let Some((mut r, mut producer, n)) = fed_node(test, Persistence::AppendOnly) else {
        return;
    };
    assert_eq!(health(&n, "/healthz"), (200, "ok".into()));
    let mut c = subscribed_client(&n);
    produce(&mut producer, "s", 0, 300);
    let (first, _) = read_ticks(&mut c, 300);

    r.kill();
    expect_feed_status(&mut c, "down");
    assert_eq!(health(&n, "/healthz"), (503, "feed down".into()));
    assert_eq!(health(&n, "/livez").0, 200);
    let s = n.wait_stats("reconnect attempts", |s| s.feed_reconnects >= 2);
    assert_eq!(s.feeds_down, 1);

    r.restart();
    expect_feed_status(&mut c, "up");
    wait_until("/healthz ok", || health(&n, "/healthz").0 == 200);
    let mut producer = r.connection();
    produce(&mut producer, "s", 300, 300);
    let (second, other) = read_ticks(&mut c, 300);
    assert!(other.is_empty(), "{other:?}");
    let got: Vec<Seen> = first.into_iter().chain(second).collect();
    assert_eq!(
        got,
        stream_contents(&mut producer, "s"),
        "every tick once, in order"
    );
    assert_eq!(got.last().map(|t| t.seq), Some(200));
    assert_eq!(n.stats().ticks_published, 600);
}

/// Redis restarted without persistence: the stream's history is gone, its
/// epoch is new and its seqs restart; the node takes the new numbering
/// (the ticks are not dropped as replays of the old one), and a connection
/// open across the change is told: a `snapshot` with `"reset": true` and
/// `seq` 0 for each of its symbols, before the new history's tick 1.
#[test]
fn a_lost_stream_restarts_the_numbering() {
    let test = "a_lost_stream_restarts_the_numbering";
    let Some((mut r, mut producer, n)) = fed_node(test, Persistence::None) else {
        return;
    };
    let mut c = subscribed_client(&n);
    let old_epoch = c.welcome["epoch"].clone();
    produce(&mut producer, "s", 0, 30);
    read_ticks(&mut c, 30);
    r.kill();
    expect_feed_status(&mut c, "down");
    r.restart();
    let mut producer = r.connection();
    redis_stream::install(&mut producer).unwrap();
    produce(&mut producer, "s", 0, 30);
    // In order: the resets and `feed_status` up (in either order), then
    // the new ticks; per symbol the reset comes first and seq 1 follows.
    let deadline = Instant::now() + WAIT;
    let (mut ticks, mut resets, mut up) = (Vec::new(), Vec::new(), false);
    let mut held: HashMap<String, u64> = HashMap::new();
    while ticks.len() < 30 {
        assert!(
            Instant::now() < deadline,
            "ticks {ticks:?} resets {resets:?}"
        );
        let v = c.json();
        let sym = v["symbol"].as_str().unwrap_or_default().to_string();
        match v["type"].as_str() {
            Some("feed_status") => {
                assert_eq!(v["state"], "up", "{v}");
                up = true;
            }
            Some("snapshot") => {
                assert_eq!(
                    (v["seq"].as_u64(), v["reset"].as_bool()),
                    (Some(0), Some(true)),
                    "{v}"
                );
                assert!(v.get("bid").is_none(), "no price of the old history: {v}");
                assert!(
                    held.insert(sym.clone(), 0).is_none(),
                    "one reset per symbol: {v}"
                );
                resets.push(sym);
            }
            Some("tick") => {
                let seq = v["seq"].as_u64().unwrap();
                let last = held
                    .get_mut(&sym)
                    .expect("the reset before the symbol's first new tick");
                assert_eq!(seq, *last + 1, "contiguous after the reset: {v}");
                *last = seq;
                ticks.push(v);
            }
            _ => panic!("unexpected {v}"),
        }
    }
    assert!(up, "feed_status up arrived");
    resets.sort();
    assert_eq!(resets, SYMBOLS, "every symbol held was reset");
    let got: Vec<u64> = ticks.iter().map(|t| t["seq"].as_u64().unwrap()).collect();
    let want: Vec<u64> = stream_contents(&mut producer, "s")
        .iter()
        .map(|t| t.seq)
        .collect();
    assert_eq!(got, want);
    assert_eq!(n.stats().ticks_published, 60);
    // New connections see the new epoch (the node reads it right after
    // the entries it read while it was unknown), the stream's as it is.
    let stored: String = redis::cmd("GET")
        .arg("s:epoch")
        .query(&mut producer)
        .unwrap();
    assert_ne!(old_epoch.as_str(), Some(stored.as_str()));
    wait_until("the node's epoch to be the stream's new one", || {
        Client::connect(n.addr).welcome["epoch"].as_str() == Some(stored.as_str())
    });
}

/// The stream deleted and begun again, with its first entries trimmed
/// before the node read them, all while the node is connected: the node
/// drops nothing of the new history it can see and mixes nothing of the
/// old one in. Per symbol, an open connection gets the reset to `seq` 0,
/// then the first surviving entry as a reset `snapshot`, then the ticks
/// after it.
#[test]
fn a_new_history_trimmed_before_the_node_read_it_starts_with_a_reset_snapshot() {
    let test = "a_new_history_trimmed_before_the_node_read_it_starts_with_a_reset_snapshot";
    let Some((_r, mut producer, n)) = fed_node(test, Persistence::None) else {
        return;
    };
    let mut c = subscribed_client(&n);
    produce(&mut producer, "s", 0, 30);
    read_ticks(&mut c, 30);
    // One transaction: the node sees the new history only whole, trimmed.
    let mut tx = redis::pipe();
    tx.atomic()
        .cmd("DEL")
        .arg("s")
        .arg("s:seq")
        .arg("s:epoch")
        .ignore()
        .cmd("HSET")
        .arg("s:config")
        .arg("maxlen")
        .arg(10)
        .ignore();
    for i in 0..900u64 {
        tx.cmd("FCALL")
            .arg("tickcast_publish")
            .arg(1)
            .arg("s")
            .arg(SYMBOLS[(i % 3) as usize])
            .arg("bid")
            .arg(price(i))
            .ignore();
    }
    let () = tx.query(&mut producer).unwrap();
    let want = stream_contents(&mut producer, "s");
    assert!(
        want.len() < 900 && want.iter().all(|t| t.seq > 1),
        "the new history's first entries are trimmed: {} left",
        want.len()
    );
    let mut first: HashMap<String, u64> = HashMap::new();
    for t in &want {
        first.entry(t.symbol.clone()).or_insert(t.seq);
    }
    let deadline = Instant::now() + WAIT;
    let mut held: HashMap<String, u64> = HashMap::new();
    let mut ticks = 0;
    while ticks + first.len() < want.len() {
        assert!(Instant::now() < deadline, "{ticks} ticks, held {held:?}");
        let v = c.json();
        let sym = v["symbol"].as_str().unwrap_or_default().to_string();
        let seq = v["seq"].as_u64().unwrap_or_default();
        match (v["type"].as_str(), v["reset"].as_bool()) {
            (Some("snapshot"), Some(true)) if seq == 0 => {
                assert!(held.insert(sym, 0).is_none(), "one reset to 0: {v}");
            }
            (Some("snapshot"), Some(true)) => {
                assert_eq!(held.get(&sym), Some(&0), "the reset to 0 first: {v}");
                assert_eq!(Some(&seq), first.get(&sym), "the first entry kept: {v}");
                held.insert(sym, seq);
            }
            (Some("tick"), None) => {
                let last = held.get_mut(&sym).expect("a snapshot first");
                assert!(*last > 0, "no tick right after the reset to 0: {v}");
                assert_eq!(seq, *last + 1, "{v}");
                *last = seq;
                ticks += 1;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    let mut newest: HashMap<String, u64> = HashMap::new();
    for t in &want {
        newest.insert(t.symbol.clone(), t.seq);
    }
    assert_eq!(held, newest, "every symbol up to its newest entry");
}

/// A node fed from two streams: its epoch is derived from both (the same
/// on every such node) and moves when either's does; a new history of one
/// stream resets that stream's symbols only, and the other's ticks go on
/// without a gap.
#[test]
fn one_of_two_streams_restarting_resets_its_symbols_only() {
    let test = "one_of_two_streams_restarting_resets_its_symbols_only";
    let Some((r, mut producer)) = redis_and_producer(test, Persistence::None) else {
        return;
    };
    let publish = |c: &mut Connection, stream: &str, sym: &str, n: u64| {
        let mut pipe = redis::pipe();
        for i in 0..n {
            pipe.cmd("FCALL")
                .arg("tickcast_publish")
                .arg(1)
                .arg(stream)
                .arg(sym)
                .arg("bid")
                .arg(price(i));
        }
        let seqs: Vec<u64> = pipe.query(c).expect("FCALLs");
        seqs
    };
    publish(&mut producer, "a", "AAA", 1);
    publish(&mut producer, "b", "BBB", 1);
    let feeds = |r: &RedisServer| {
        ["a", "b"]
            .map(|s| RedisFeed::parse(&format!("{}/{s}", r.url())).unwrap())
            .to_vec()
    };
    let n = TestServer::start(|c| c.feeds = feeds(&r));
    let twin = TestServer::start(|c| c.feeds = feeds(&r));
    let epoch_of = |n: &TestServer| Client::connect(n.addr).welcome["epoch"].clone();
    for node in [&n, &twin] {
        node.wait_stats("both feeds replayed", |s| s.ticks_published == 2);
    }
    wait_until("both nodes to derive one epoch", || {
        epoch_of(&n) == epoch_of(&twin)
    });
    let before = epoch_of(&n);
    let mut c = Client::connect(n.addr);
    c.subscribe(&["AAA", "BBB"], &[], 1);
    let snaps: Vec<_> = (0..2).map(|_| c.json()).collect();
    assert!(
        snaps
            .iter()
            .all(|v| v["type"] == "snapshot" && v["seq"] == 1),
        "{snaps:?}"
    );
    let () = redis::cmd("DEL")
        .arg("a")
        .arg("a:seq")
        .arg("a:epoch")
        .query(&mut producer)
        .unwrap();
    publish(&mut producer, "a", "AAA", 5);
    publish(&mut producer, "b", "BBB", 5);
    let mut held: HashMap<String, u64> = HashMap::from([("AAA".into(), 1), ("BBB".into(), 1)]);
    let (mut resets, mut ticks) = (Vec::new(), 0);
    let deadline = Instant::now() + WAIT;
    while ticks < 10 {
        assert!(Instant::now() < deadline, "{held:?}");
        let v = c.json();
        let sym = v["symbol"].as_str().unwrap_or_default().to_string();
        let seq = v["seq"].as_u64().unwrap_or_default();
        match v["type"].as_str() {
            Some("snapshot") => {
                assert_eq!((seq, v["reset"].as_bool()), (0, Some(true)), "{v}");
                resets.push(sym.clone());
                held.insert(sym, 0);
            }
            Some("tick") => {
                let last = held.get_mut(&sym).expect("a held symbol");
                assert_eq!(seq, *last + 1, "{v}");
                *last = seq;
                ticks += 1;
            }
            _ => panic!("unexpected {v}"),
        }
    }
    assert_eq!(resets, ["AAA"], "only the restarted stream's symbol");
    assert_eq!(held, HashMap::from([("AAA".into(), 5), ("BBB".into(), 6)]));
    wait_until("a new node epoch", || epoch_of(&n) != before);
    wait_until("the twin to agree", || epoch_of(&n) == epoch_of(&twin));
}

#[test]
fn redis_unreachable_at_start_leaves_the_node_serving() {
    if !redis_for("redis_unreachable_at_start_leaves_the_node_serving") {
        return;
    }
    let mut r = RedisServer::start(Persistence::None);
    r.kill();
    let n = node(&r, "s");
    let mut c = Client::connect(n.addr);
    assert_eq!(c.welcome["type"], "welcome");
    assert_eq!(health(&n, "/healthz"), (503, "feed down".into()));
    assert_eq!(health(&n, "/livez").0, 200);
    c.subscribe(&SYMBOLS, &[], 1);
    r.restart();
    expect_feed_status(&mut c, "up");
    let mut producer = r.connection();
    produce(&mut producer, "s", 0, 30);
    let (got, _) = read_ticks(&mut c, 30);
    assert_eq!(got, stream_contents(&mut producer, "s"));
}

/// An in-process feed handler publishing through `RedisSink`: exact
/// decimals reach the node's clients digit for digit, floats as their
/// shortest text; what Redis refuses comes back as an error.
#[test]
fn redis_sink_ticks_reach_clients_exactly() {
    let test = "redis_sink_ticks_reach_clients_exactly";
    let Some((r, _producer, n)) = fed_node(test, Persistence::None) else {
        return;
    };
    let mut c = subscribed_client(&n);
    let mut sink = RedisSink::connect(&r.url(), "s").unwrap();
    let exact = Decimal::parse("0.30000000000000000001").unwrap();
    assert_eq!(sink.publish(&Tick::new("AAA").bid(exact)).unwrap(), 1);
    sink.queue(&Tick::new("AAA").bid(0.1 + 0.2).volume(5))
        .unwrap();
    sink.queue(&Tick::new("BBB").bid(Decimal::parse("-12.500").unwrap()))
        .unwrap();
    assert_eq!(sink.queued(), 2);
    assert_eq!(sink.flush().unwrap(), [2, 1]);
    assert!(matches!(
        sink.publish(&Tick::new("AAA").bid(f64::NAN)),
        Err(SinkError::Invalid(_))
    ));
    // 1e300 is 301 digits in plain notation: the function refuses it.
    assert!(matches!(
        sink.publish(&Tick::new("AAA").bid(1e300)),
        Err(SinkError::Redis(_))
    ));
    let (got, _) = read_ticks(&mut c, 3);
    let bids: Vec<(&str, u64, &str)> = got
        .iter()
        .map(|t| (t.symbol.as_str(), t.seq, t.bid.as_str()))
        .collect();
    assert_eq!(
        bids,
        [
            ("AAA", 1, "0.30000000000000000001"),
            ("AAA", 2, "0.30000000000000004"),
            ("BBB", 1, "-12.500"),
        ]
    );
}

#[test]
fn a_client_whose_node_goes_away_resumes_on_another_with_no_gap() {
    let test = "a_client_whose_node_goes_away_resumes_on_another_with_no_gap";
    let Some((r, mut producer)) = redis_and_producer(test, Persistence::None) else {
        return;
    };
    produce(&mut producer, "s", 0, 3); // the stream and its epoch exist
    let a = node(&r, "s");
    let b = node(&r, "s");
    for n in [&a, &b] {
        n.wait_stats("the feed up and replayed", |s| {
            s.feeds_down == 0 && s.ticks_published == 3
        });
    }
    let mut c = subscribed_client(&a);
    let epoch = c.welcome["epoch"].clone();
    assert_eq!(
        Client::connect(b.addr).welcome["epoch"],
        epoch,
        "one stream, one epoch on every node"
    );
    produce(&mut producer, "s", 3, 300);
    let (mut got, _) = read_ticks(&mut c, 300);
    // Node A goes away; ticks go on meanwhile.
    drop(c);
    a.shutdown();
    produce(&mut producer, "s", 303, 300);
    let mut held = serde_json::Map::new();
    for t in &got {
        held.insert(t.symbol.clone(), t.seq.into());
    }
    let mut c = Client::connect(b.addr);
    let reply = c.request(
        serde_json::json!({"op":"subscribe","symbols":SYMBOLS,"epoch":epoch,"resume":held}),
        1,
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");
    produce(&mut producer, "s", 603, 30);
    let (rest, other) = read_ticks(&mut c, 330);
    assert!(
        other.iter().all(|v| v["type"] != "snapshot"),
        "resumed, not reset: {other:?}"
    );
    got.extend(rest);
    // Everything the stream holds, each once, in order per symbol: no gap
    // at either seam (A's last tick → B's replay → B's live stream). Only
    // per symbol: B replays symbol by symbol (AAA's missed ticks, then
    // BBB's, …), so across symbols the order is not the stream's.
    let want = stream_contents(&mut producer, "s");
    assert_eq!(got.len(), want.len() - 3, "every tick once");
    for sym in SYMBOLS {
        let of = |ticks: &[Seen]| -> Vec<Seen> {
            ticks.iter().filter(|t| t.symbol == sym).cloned().collect()
        };
        assert_eq!(
            of(&got),
            of(&want[3..]),
            "what the client holds of {sym} is the stream"
        );
    }
}
