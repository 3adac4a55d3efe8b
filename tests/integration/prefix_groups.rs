//! Groups defined by prefix (`EUR*`): they take the symbols already
//! published and every symbol first published later, from its `seq` 1.

use serde_json::json;
use tickcast::GroupSpec;

use crate::util::{Client, TestServer, tick};

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
