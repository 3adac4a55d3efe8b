//! Resume and history (protocol 1.1) over real sockets: the `epoch` in
//! `welcome`, `subscribe` with `epoch` + `resume` (the missed ticks, then
//! live, or a reset snapshot), and the `history` op.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tickcast::{Identity, StaticTokens, Tick};

use crate::util::{Client, Got, SeqCheck, TestServer, WAIT, heavy, publish_retrying, tick};

#[test]
fn the_epoch_is_stable_for_a_server_and_new_for_another() {
    let a = TestServer::start(|_| {});
    let b = TestServer::start(|_| {});
    let e1 = Client::connect(a.addr).welcome["epoch"].clone();
    let e2 = Client::connect(a.addr).welcome["epoch"].clone();
    let other = Client::connect(b.addr).welcome["epoch"].clone();
    assert!(e1.as_str().is_some_and(|e| e.starts_with("e-")), "{e1}");
    assert_eq!(e1, e2, "one server, one epoch");
    assert_eq!(e1, json!(a.b().epoch()));
    assert_ne!(e1, other, "a new process numbers a new sequence space");
}

/// A client reads part of a live feed, disconnects, and resumes while the
/// feed goes on: over both connections it must receive every tick
/// published, each once, in order (counted against the publisher).
#[test]
fn a_resume_under_a_live_feed_gets_exactly_the_missed_ticks_then_live() {
    let _heavy = heavy();
    let srv = TestServer::start(|c| {
        c.history_depth = 65_536;
        c.queue_capacity = 65_536;
    });
    let syms = ["RA", "RB"];
    let mut first = Client::connect(srv.addr);
    let epoch = first.welcome["epoch"].clone();
    first.subscribe(&syms, &[], 1);
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(AtomicU64::new(0));
    let feeder = {
        let (p, stop, published) = (srv.b().publisher(), stop.clone(), published.clone());
        thread::spawn(move || {
            // Bursts of 100 then a pause: a feed at speed that the history
            // (and half the queue) still covers for the reconnect.
            let deadline = Instant::now() + WAIT;
            while !stop.load(SeqCst) && Instant::now() < deadline {
                for i in 0..100u64 {
                    publish_retrying(&p, tick(syms[(i % 2) as usize], i));
                    published.fetch_add(1, SeqCst);
                }
                thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let mut check = SeqCheck::default();
    while check.ticks < 2_000 {
        check.feed(&first.json());
    }
    drop(first);
    let held = check.last.clone();
    // The feed goes on while the client is away.
    let away = published.load(SeqCst) + 1_000;
    let deadline = Instant::now() + WAIT;
    while published.load(SeqCst) < away {
        assert!(Instant::now() < deadline, "the feed stalled");
        thread::sleep(Duration::from_millis(1));
    }
    let mut again = Client::connect(srv.addr);
    let (reply, _) = again.exchange(
        json!({"op":"subscribe","symbols":syms,"epoch":epoch,"resume":held}),
        2,
    );
    assert_eq!(reply["type"], "subscribed", "{reply}");
    let mut replayed_from: HashMap<String, u64> = HashMap::new();
    let resumed_at = check.ticks;
    // Read on until the feed has stopped and every tick it published came.
    let deadline = Instant::now() + WAIT * 2;
    loop {
        assert!(Instant::now() < deadline, "{} ticks", check.ticks);
        if check.ticks >= resumed_at + 5_000 && !stop.load(SeqCst) {
            stop.store(true, SeqCst);
            while !feeder.is_finished() {
                thread::sleep(Duration::from_millis(1));
            }
        }
        if stop.load(SeqCst) && check.ticks == published.load(SeqCst) {
            break;
        }
        let v = again.json();
        assert_ne!(v["type"], "snapshot", "a resumable symbol was reset: {v}");
        if v["type"] == "tick" {
            let sym = v["symbol"].as_str().unwrap_or_default().to_string();
            replayed_from
                .entry(sym)
                .or_insert(v["seq"].as_u64().unwrap_or(0));
        }
        check.feed(&v);
    }
    feeder.join().unwrap();
    for s in syms {
        assert_eq!(
            replayed_from[s],
            held[s] + 1,
            "{s} resumed right after the seq held"
        );
    }
    let total = published.load(SeqCst);
    assert_eq!(check.ticks, total, "every tick published, once");
    assert_eq!(check.last["RA"] + check.last["RB"], total);
}

/// Collects what a subscription sends until `n` snapshots or ticks came.
fn frames_after(c: &mut Client, id: i64, n: usize) -> Vec<Value> {
    let (reply, _) = c.reply(id);
    assert_eq!(reply["type"], "subscribed", "{reply}");
    (0..n).map(|_| c.json()).collect()
}

#[test]
fn a_resume_that_cannot_be_served_gets_a_reset_snapshot() {
    let srv = TestServer::start(|c| {
        c.history_depth = 4;
        c.io_threads = 1;
    });
    for i in 0..10 {
        srv.publish(tick("OLD", i));
    }
    for i in 0..3 {
        srv.publish(tick("NEW", i));
    }
    let mut c = Client::connect(srv.addr);
    let epoch = c.welcome["epoch"].clone();
    fence(&mut c, &srv);
    c.send(
        json!({"op":"subscribe","id":1,"symbols":["OLD","NEW","NONE"],
        "epoch":epoch,"resume":{"OLD":2,"NEW":1,"NONE":5,"ELSEWHERE":3}}),
    );
    let got = frames_after(&mut c, 1, 4);
    let brief: Vec<(String, String, u64, bool)> = got
        .iter()
        .map(|v| {
            (
                v["type"].as_str().unwrap_or_default().to_string(),
                v["symbol"].as_str().unwrap_or_default().to_string(),
                v["seq"].as_u64().unwrap_or(u64::MAX),
                v["reset"] == true,
            )
        })
        .collect();
    let want = |t: &str, s: &str, seq, reset| (t.to_string(), s.to_string(), seq, reset);
    assert_eq!(
        brief,
        vec![
            want("snapshot", "OLD", 10, true), // seq 3 left the history
            want("tick", "NEW", 2, false),
            want("tick", "NEW", 3, false),
            want("snapshot", "NONE", 0, true), // ahead of this node
        ],
        "{got:?}"
    );
    assert!(got[0]["bid"].is_number(), "a reset snapshot has the values");
    for (resume, why) in [
        (json!({"epoch":"e-other","resume":{"NEW":1}}), "other epoch"),
        (json!({"epoch":epoch,"resume":{"NEW":9}}), "seq ahead"),
    ] {
        let mut c = Client::connect(srv.addr);
        let mut req = json!({"op":"subscribe","id":2,"symbols":["NEW"]});
        req["epoch"] = resume["epoch"].clone();
        req["resume"] = resume["resume"].clone();
        c.send(req);
        let got = frames_after(&mut c, 2, 1);
        assert_eq!(got[0]["type"], "snapshot", "{why}: {got:?}");
        assert_eq!(got[0]["reset"], true, "{why}: {got:?}");
        let n = got[0]["seq"].as_u64().unwrap_or(0);
        assert!(n >= 3, "{why}: the newest NEW: {got:?}");
        srv.publish(tick("NEW", 9));
        let next = c.json();
        assert_eq!(next["seq"], n + 1, "{why}: live after the reset: {next}");
    }
    let mut c = Client::connect(srv.addr);
    for bad in [
        json!({"op":"subscribe","id":3,"symbols":["NEW"],"resume":{"NEW":1}}),
        json!({"op":"subscribe","id":3,"symbols":["NEW"],"epoch":epoch,"resume":{"NEW":"1"}}),
    ] {
        let r = c.request(bad, 3);
        assert_eq!(r["code"], "bad_request", "{r}");
    }
}

/// A fence on a one-shard server: once `c` receives a tick published
/// after the others, the shard holds every earlier tick (one inbox, in
/// publish order).
fn fence(c: &mut Client, srv: &TestServer) {
    c.subscribe(&["FENCE"], &[], 99);
    srv.publish(Tick::new("FENCE").bid(1.0));
    c.until_tick("FENCE");
}

/// Hundreds of symbols resumed at once, each missing more ticks than a
/// small queue holds in total: served chunk by chunk as the socket drains,
/// never evicted, every tick once.
#[test]
fn a_large_resume_drains_through_a_small_queue() {
    let srv = TestServer::start(|c| {
        c.queue_capacity = 64;
        c.history_depth = 64;
        c.io_threads = 1;
    });
    let syms: Vec<String> = (0..200).map(|i| format!("L{i:03}")).collect();
    let mut c = Client::connect(srv.addr);
    let epoch = c.welcome["epoch"].clone();
    for s in &syms {
        srv.publish(tick(s, 0));
    }
    let resume: serde_json::Map<String, Value> =
        syms.iter().map(|s| (s.clone(), json!(1))).collect();
    for round in 1..=20 {
        for s in &syms {
            srv.publish(tick(s, round));
        }
    }
    fence(&mut c, &srv);
    c.send(json!({"op":"subscribe","id":1,"symbols":syms,"epoch":epoch,"resume":resume}));
    let (reply, _) = c.reply(1);
    assert_eq!(reply["type"], "subscribed", "{reply}");
    let mut check = SeqCheck::default();
    for s in &syms {
        check.last.insert(s.clone(), 1);
    }
    while check.ticks < 200 * 20 {
        match c.recv() {
            Got::Json(v) => {
                assert_ne!(v["type"], "snapshot", "{v}");
                check.feed(&v);
            }
            other => panic!("after {} ticks: {other:?}", check.ticks),
        }
    }
    assert!(
        check.last.values().all(|&s| s == 21),
        "every symbol caught up"
    );
}

#[test]
fn history_returns_the_last_ticks_oldest_first_within_limits() {
    let tokens = StaticTokens::default()
        .with("all", Identity::new("a"))
        .with("only-h1", Identity::new("b").entitled_to_symbols(["H1"]));
    let srv = TestServer::start(|c| {
        c.history_depth = 5;
        c.io_threads = 1;
        c.auth = Some(Arc::new(tokens));
    });
    for i in 0..8 {
        srv.publish(tick("H1", i));
    }
    srv.publish(Tick::new("H2").bid(0.1).ask(0.30000000000000004));
    let mut c = Client::connect_path(srv.addr, "/ws?token=all");
    fence(&mut c, &srv);
    let r = c.request(json!({"op":"history","symbol":"H1","limit":3}), 6);
    assert_eq!(
        (r["type"].as_str(), r["symbol"].as_str()),
        (Some("history"), Some("H1"))
    );
    let seqs: Vec<u64> = r["ticks"]
        .as_array()
        .map(|t| t.iter().filter_map(|x| x["seq"].as_u64()).collect())
        .unwrap_or_default();
    assert_eq!(seqs, vec![6, 7, 8], "{r}");
    let t = &r["ticks"][2];
    assert_eq!(t["volume"], 7, "the fields of tick 8: {t}");
    assert!(t.get("type").is_none() && t.get("symbol").is_none(), "{t}");
    assert!(t["ts"].as_u64().is_some());
    let all = c.request(json!({"op":"history","symbol":"H1"}), 7);
    assert_eq!(
        all["ticks"].as_array().map(Vec::len),
        Some(5),
        "no limit: all kept"
    );
    let h2 = c.request(json!({"op":"history","symbol":"H2","limit":1}), 8);
    assert_eq!(
        h2["ticks"],
        json!([{"seq":1,"ts":h2["ticks"][0]["ts"],"bid":0.1,"ask":0.30000000000000004}])
    );
    let none = c.request(json!({"op":"history","symbol":"NOPE","limit":1}), 9);
    assert_eq!(none["ticks"], json!([]));
    let over = c.request(json!({"op":"history","symbol":"H1","limit":6}), 10);
    assert_eq!(over["code"], "bad_request", "{over}");
    assert!(
        over["message"].as_str().unwrap_or("").contains('5'),
        "{over}"
    );
    let zero = c.request(json!({"op":"history","symbol":"H1","limit":0}), 11);
    assert_eq!(zero["code"], "bad_request");
    // The op touches no live stream: a tick published now is not sent.
    srv.publish(tick("H1", 9));
    let pong = c.exchange(json!({"op":"ping"}), 12);
    assert!(
        pong.1.is_empty(),
        "no tick without a subscription: {:?}",
        pong.1
    );
    fence(&mut c, &srv);
    let mut limited = Client::connect_path(srv.addr, "/ws?token=only-h1");
    let ok = limited.request(json!({"op":"history","symbol":"H1","limit":1}), 1);
    assert_eq!(ok["ticks"][0]["seq"], 9);
    let no = limited.request(json!({"op":"history","symbol":"H2","limit":1}), 2);
    assert_eq!(no["code"], "forbidden", "{no}");
}

#[test]
fn history_of_an_unknown_symbol_is_refused_when_the_server_rejects_them() {
    let srv = TestServer::start(|c| c.reject_unknown_symbols = true);
    let mut c = Client::connect(srv.addr);
    let r = c.request(json!({"op":"history","symbol":"NOPE","limit":1}), 1);
    assert_eq!(r["code"], "unknown_symbol", "{r}");
}
