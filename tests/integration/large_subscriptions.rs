//! A subscription never evicts its own connection: however many symbols it
//! covers, the `subscribed` reply and one snapshot per symbol with a value
//! arrive, then the live ticks, with no gap, at the default queue size.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{Client, Got, SeqCheck, TestServer, WAIT, heavy, tick};
use serde_json::json;

const SYMBOLS: usize = 10_000;

fn name(i: usize) -> String {
    format!("S{i:05}")
}

/// Reads until every one of `SYMBOLS` has had its snapshot and `live`
/// ticks more have arrived, checking that each symbol starts with its
/// snapshot and continues without a gap. Returns the messages of the given
/// `types` seen meanwhile, each with the number of symbols whose snapshot
/// had arrived before it.
/// A close is returned as an error, for the caller to report with the
/// server's counters (which eviction it was).
fn read_everything(
    c: &mut Client,
    live: u64,
    types: &[&str],
) -> Result<Vec<(usize, serde_json::Value)>, String> {
    let deadline = Instant::now() + WAIT * 3;
    let mut check = SeqCheck::default();
    let mut started = HashSet::new();
    let mut others = Vec::new();
    let mut ticks_after_snapshots = 0;
    while started.len() < SYMBOLS || ticks_after_snapshots < live {
        assert!(
            Instant::now() < deadline,
            "{} snapshots so far",
            started.len()
        );
        let v = match c.recv() {
            Got::Json(v) => v,
            other => {
                return Err(format!(
                    "the subscriber was closed: {other:?} after {} snapshots and {ticks_after_snapshots} live ticks",
                    started.len()
                ));
            }
        };
        let ty = v["type"].as_str().unwrap_or("").to_string();
        if let Some(sym) = v["symbol"].as_str()
            && started.insert(sym.to_string())
        {
            assert_eq!(
                ty, "snapshot",
                "the first message of {sym} is its snapshot: {v}"
            );
        }
        if ty == "tick" && started.len() == SYMBOLS {
            ticks_after_snapshots += 1;
        }
        if types.contains(&ty.as_str()) {
            others.push((started.len(), v.clone()));
        }
        check.feed(&v);
    }
    assert!(check.snapshots >= SYMBOLS as u64);
    Ok(others)
}

#[test]
fn a_subscription_to_ten_thousand_symbols_gets_every_snapshot_then_live_ticks() {
    let _heavy = heavy();
    let srv = TestServer::start(|c| c.io_threads = 1);
    srv.b().set_group("big", (0..SYMBOLS).map(name)).unwrap();
    // Every symbol gets a value; the probe sees the last one after the
    // single shard has applied all the others.
    let mut probe = Client::connect(srv.addr);
    probe.subscribe(&[&name(SYMBOLS - 1)], &[], 1);
    for i in 0..SYMBOLS {
        srv.publish(tick(&name(i), 1));
    }
    probe.until_tick(&name(SYMBOLS - 1));
    // It would not read (or answer pings) from now on: let it go.
    drop(probe);
    let stop = Arc::new(AtomicBool::new(false));
    let feed = {
        let p = srv.b().publisher();
        let stop = stop.clone();
        thread::spawn(move || {
            let deadline = Instant::now() + WAIT * 3;
            let mut i = 0usize;
            while !stop.load(SeqCst) && Instant::now() < deadline {
                // ~1,000 ticks/s over the whole universe: a live feed, and
                // 4 s of ticks before the default 4,096-frame queue of a
                // test client that a loaded CI machine pauses fills up.
                for _ in 0..5 {
                    let _ = p.publish(tick(&name(i * 7919 % SYMBOLS), 2 + i as u64));
                    i += 1;
                }
                thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let mut star = Client::connect(srv.addr);
    let mut group = Client::connect(srv.addr);
    star.send(json!({"op":"subscribe","id":1,"groups":["*"]}));
    // A request right behind the subscription waits for it, in order.
    star.send(json!({"op":"ping","id":2}));
    group.send(json!({"op":"subscribe","id":1,"groups":["big"]}));
    // Both read at once: a client that does not read while its live
    // ticks flow is evicted, as it should be.
    let group_reader = thread::spawn(move || {
        let (reply, _) = group.reply(1);
        assert_eq!(reply["groups"], json!(["big"]));
        read_everything(&mut group, 1_000, &[]).map(|_| group)
    });
    let (reply, before) = star.reply(1);
    assert_eq!(reply["groups"], json!(["*"]));
    assert!(before.is_empty(), "{before:?}");
    let pongs = read_everything(&mut star, 1_000, &["pong"])
        .unwrap_or_else(|e| panic!("`*`: {e}; {:?}", srv.stats()));
    assert_eq!(pongs.len(), 1, "the ping was answered: {pongs:?}");
    assert_eq!(pongs[0].0, SYMBOLS, "after the subscription it followed");
    // Keep reading until the group subscriber is done too: a client that
    // stops reading while its ticks flow is (rightly) evicted.
    let deadline = Instant::now() + WAIT * 3;
    while !group_reader.is_finished() {
        assert!(
            Instant::now() < deadline,
            "the group subscriber did not finish"
        );
        if let Got::Close(..) | Got::End(_) = star.recv() {
            panic!("the * subscriber was closed");
        }
    }
    let _group = group_reader
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("group: {e}; {:?}", srv.stats()));
    let s = srv.stats();
    stop.store(true, SeqCst);
    feed.join().unwrap();
    assert_eq!(
        (s.evicted_slow, s.evicted_lag, s.connections),
        (0, 0, 2),
        "{s:?}"
    );
}

#[test]
fn a_large_join_whose_first_symbols_have_no_value_does_not_stall() {
    // Queue 64: a join of more than 32 symbols with a value is served
    // chunk by chunk. The group's first 700 symbols (almost three chunks)
    // have no value, so the first chunks queue nothing; the `subscribed`
    // reply's write wakes the join once, and with no live feed nothing
    // else would.
    let srv = TestServer::start(|c| {
        c.io_threads = 1;
        c.queue_capacity = 64;
        // No ping within the test's WAIT: a ping's write would wake a
        // stalled join (after 5 s by default) and hide the stall.
        c.heartbeat = Duration::from_secs(60);
    });
    let empty: Vec<String> = (0..700).map(|i| format!("E{i:03}")).collect();
    let valued: Vec<String> = (0..40).map(|i| format!("V{i:02}")).collect();
    srv.b()
        .set_group("mixed", empty.iter().chain(&valued).cloned())
        .unwrap();
    let mut probe = Client::connect(srv.addr);
    probe.subscribe(&[valued.last().unwrap()], &[], 1);
    for v in &valued {
        srv.publish(tick(v, 1));
    }
    probe.until_tick(valued.last().unwrap());
    let mut c = Client::connect(srv.addr);
    c.subscribe(&[], &["mixed"], 1);
    let mut snapshots = HashSet::new();
    while snapshots.len() < valued.len() {
        match c.recv() {
            Got::Json(v) if v["type"] == "snapshot" => {
                snapshots.insert(v["symbol"].as_str().unwrap_or("").to_string());
            }
            Got::Json(_) => {}
            other => panic!("{other:?} after {} snapshots", snapshots.len()),
        }
    }
    // The join completed: a request behind it is answered.
    assert_eq!(c.request(json!({"op":"ping"}), 2)["type"], "pong");
}
