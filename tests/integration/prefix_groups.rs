//! Groups defined by prefix (`EUR*`): they take the symbols already
//! published and every symbol first published later, from its `seq` 1.

use std::time::Duration;

use serde_json::json;
use tickcast::GroupSpec;

use crate::util::{Client, SeqCheck, TestServer, tick};

/// `(symbol, seq)` of every tick and snapshot in `msgs`, by type.
fn seqs(msgs: &[serde_json::Value], ty: &str) -> Vec<(String, u64)> {
    msgs.iter()
        .filter(|v| v["type"] == ty)
        .map(|v| {
            let sym = v["symbol"].as_str().unwrap_or_default().to_string();
            (sym, v["seq"].as_u64().unwrap_or_default())
        })
        .collect()
}

fn group_count(c: &mut Client, name: &str, id: i64) -> Option<u64> {
    let r = c.request(json!({"op":"list_groups"}), id);
    r["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == name)
        .and_then(|g| g["symbols"].as_u64())
}

#[test]
fn a_prefix_group_takes_a_new_symbol_from_its_first_tick() {
    let srv = TestServer::start(|_| {});
    // EURUSD is published before the group exists; the fence client sees
    // its tick, so the publisher has recorded it.
    let mut fence = Client::connect(srv.addr);
    fence.subscribe(&["EURUSD", "FENCE"], &[], 1);
    srv.publish(tick("EURUSD", 0));
    srv.publish(tick("GBPUSD", 0));
    fence.until_tick("EURUSD");
    srv.b()
        .set_group_spec("all-eur", GroupSpec::from_entries(["EUR*"]))
        .unwrap();
    // Three shards: three clients land on different ones.
    let mut subs: Vec<Client> = (0..3).map(|_| Client::connect(srv.addr)).collect();
    for (i, c) in subs.iter_mut().enumerate() {
        c.subscribe(&[], &["all-eur"], i as i64 + 10);
        let snap = c.json();
        assert_eq!(seqs(&[snap], "snapshot"), [("EURUSD".to_string(), 1)]);
        assert_eq!(group_count(c, "all-eur", 20), Some(1), "EURUSD only");
    }
    // EURJPY appears after the subscriptions; the EURUSD tick is a fence.
    for i in 0..3 {
        srv.publish(tick("EURJPY", i));
    }
    srv.publish(tick("GBPJPY", 0));
    srv.publish(tick("EURUSD", 1));
    for c in &mut subs {
        let got = c.until_tick("EURUSD");
        assert_eq!(
            seqs(&got, "tick"),
            [
                ("EURJPY".to_string(), 1),
                ("EURJPY".to_string(), 2),
                ("EURJPY".to_string(), 3),
            ],
            "EURJPY from seq 1, no snapshot; GBPJPY is not in the group: {got:?}"
        );
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(group_count(c, "all-eur", 30), Some(2));
    }
    let groups = srv.b().groups();
    assert_eq!(
        groups,
        [(
            "all-eur".to_string(),
            vec!["EURUSD".to_string(), "EURJPY".to_string()]
        )]
    );
}

#[test]
fn a_group_redefined_without_its_prefix_takes_no_new_symbol() {
    let srv = TestServer::start(|_| {});
    srv.b()
        .set_group_spec("eur", GroupSpec::from_entries(["EUR*", "USDJPY"]))
        .unwrap();
    let mut c = Client::connect(srv.addr);
    c.subscribe(&[], &["eur"], 1);
    assert_eq!(group_count(&mut c, "eur", 2), Some(1), "USDJPY");
    srv.b().set_group("eur", ["EURUSD", "USDJPY"]).unwrap();
    srv.publish(tick("EURCHF", 0));
    srv.publish(tick("EURUSD", 0));
    let before = c.until_tick("EURUSD");
    assert!(seqs(&before, "tick").is_empty(), "{before:?}");
    assert_eq!(group_count(&mut c, "eur", 3), Some(2));
}

/// New symbols appear while the group is redefined with the same prefix
/// and clients subscribe: the book's lock orders each definition and each
/// new symbol the same way on every shard, so no subscriber misses the
/// start of a symbol or sees a gap.
#[test]
fn new_symbols_during_redefinitions_arrive_whole() {
    const SYMBOLS: u64 = 200;
    const TICKS: u64 = 3;
    let srv = TestServer::start(|_| {});
    let spec = || GroupSpec::from_entries(["NEW*"]);
    srv.b().set_group_spec("new", spec()).unwrap();
    let mut early = Client::connect(srv.addr);
    early.subscribe(&["DONE"], &["new"], 1);
    let p = srv.b().publisher();
    let feed = std::thread::spawn(move || {
        for round in 0..TICKS {
            for i in 0..SYMBOLS {
                crate::util::publish_retrying(&p, tick(&format!("NEW{i:03}"), round));
                // Pacing, so that new symbols keep appearing while the
                // group is being redefined (round 0, 200 symbols, ~30 ms).
                if round == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            }
        }
    });
    // Redefine and subscribe while the feed is creating symbols.
    let mut late: Vec<Client> = Vec::new();
    let mut redefined = 0;
    while !feed.is_finished() && redefined < 2000 {
        srv.b().set_group_spec("new", spec()).unwrap();
        redefined += 1;
        if redefined % 8 == 0 && late.len() < 6 {
            let mut c = Client::connect(srv.addr);
            c.subscribe(&["DONE"], &["new"], redefined);
            late.push(c);
        }
    }
    feed.join().unwrap();
    srv.publish(tick("DONE", 0));
    for c in std::iter::once(&mut early).chain(&mut late) {
        let got = c.until_tick("DONE");
        let mut check = SeqCheck::default();
        let mut last = std::collections::HashMap::new();
        for v in &got {
            check.feed(v);
            if v["type"] == "tick" || v["type"] == "snapshot" {
                let sym = v["symbol"].as_str().unwrap_or_default().to_string();
                let seq = v["seq"].as_u64().unwrap_or_default();
                let first = last.insert(sym.clone(), seq).is_none();
                assert!(
                    !first || v["type"] == "snapshot" || seq == 1,
                    "{sym} starts at {v}"
                );
            }
        }
        assert_eq!(last.len() as u64, SYMBOLS, "every symbol");
        assert!(last.values().all(|&s| s == TICKS), "every tick: {last:?}");
        assert_eq!(group_count(c, "new", 100), Some(SYMBOLS));
    }
    assert_eq!(srv.b().groups()[0].1.len() as u64, SYMBOLS);
}
