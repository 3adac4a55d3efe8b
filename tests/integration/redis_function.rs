//! The Redis Function `tickcast_publish` (and its batch variant) on a real
//! `redis-server`: what it writes, what it refuses (writing nothing), and
//! how the epoch follows the stream's history.

use std::time::{SystemTime, UNIX_EPOCH};

use redis::Connection;
use tickcast::redis_stream;

use crate::redis_server::{Persistence, RedisServer, redis_for};

type Entry = (String, Vec<String>);

fn server(test: &str) -> Option<(RedisServer, Connection)> {
    if !redis_for(test) {
        return None;
    }
    let r = RedisServer::start(Persistence::None);
    let mut c = r.connection();
    redis_stream::install(&mut c).expect("FUNCTION LOAD REPLACE");
    Some((r, c))
}

fn publish(c: &mut Connection, stream: &str, args: &[&str]) -> redis::RedisResult<u64> {
    redis::cmd("FCALL")
        .arg("tickcast_publish")
        .arg(1)
        .arg(stream)
        .arg(args)
        .query(c)
}

fn entries(c: &mut Connection, stream: &str) -> Vec<Entry> {
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(c)
        .unwrap()
}

fn epoch(c: &mut Connection, stream: &str) -> Option<String> {
    redis::cmd("GET")
        .arg(format!("{stream}:epoch"))
        .query(c)
        .unwrap()
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

#[test]
fn publish_assigns_seq_and_ts_and_keeps_the_text() {
    let Some((_r, mut c)) = server("publish_assigns_seq_and_ts_and_keeps_the_text") else {
        return;
    };
    let before = now_nanos();
    let args = [
        "AAPL",
        "bid",
        "189.25",
        "ask",
        "0.30000000000000000001",
        "last",
        "-0.5",
        "bid_size",
        "300",
        "ask_size",
        "0",
        "volume",
        "18446744073709551615",
    ];
    assert_eq!(publish(&mut c, "s", &args).unwrap(), 1);
    assert_eq!(publish(&mut c, "s", &["AAPL", "bid", "189.26"]).unwrap(), 2);
    assert_eq!(
        publish(&mut c, "s", &["MSFT"]).unwrap(),
        1,
        "seq is per symbol"
    );
    let after = now_nanos();
    let got = entries(&mut c, "s");
    assert_eq!(got.len(), 3);
    let fields = &got[0].1;
    let names: Vec<&str> = fields.iter().step_by(2).map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "symbol", "seq", "ts", "bid", "ask", "last", "bid_size", "ask_size", "volume"
        ]
    );
    let values: Vec<&str> = fields
        .iter()
        .skip(1)
        .step_by(2)
        .map(String::as_str)
        .collect();
    assert_eq!(values[0], "AAPL");
    assert_eq!(values[1], "1");
    assert_eq!(
        &values[3..],
        &args[2..].iter().step_by(2).copied().collect::<Vec<_>>()[..]
    );
    // ts: integer nanoseconds from Redis's clock, exact text (the last three
    // digits are 0: TIME has microseconds).
    for e in &got {
        let ts: u128 = e.1[5].parse().unwrap();
        assert!(
            before / 1000 * 1000 <= ts && ts <= after,
            "{before} <= {ts} <= {after}"
        );
        assert!(e.1[5].ends_with("000"));
    }
    assert_eq!(got[1].1[3], "2");
    assert_eq!(
        &got[2].1,
        &["symbol", "MSFT", "seq", "1", "ts", &got[2].1[5]]
    );
}

#[test]
fn malformed_calls_are_refused_and_add_nothing() {
    let Some((_r, mut c)) = server("malformed_calls_are_refused_and_add_nothing") else {
        return;
    };
    publish(&mut c, "s", &["AAPL", "bid", "1"]).unwrap();
    let long = "X".repeat(33);
    let digits39 = "1".repeat(39);
    let bad: &[&[&str]] = &[
        &[],
        &[""],
        &[&long],
        &["A\nB"],
        &["A\u{85}B"],
        &["AAPL", "bod", "1"],
        &["AAPL", "bid"],
        &["AAPL", "bid", "1", "bid", "2"],
        &["AAPL", "bid", "1e5"],
        &["AAPL", "bid", "01.5"],
        &["AAPL", "bid", ".5"],
        &["AAPL", "bid", "5."],
        &["AAPL", "bid", "+5"],
        &["AAPL", "bid", "NaN"],
        &["AAPL", "bid", ""],
        &["AAPL", "bid", &digits39],
        &["AAPL", "volume", "-1"],
        &["AAPL", "volume", "1.5"],
        &["AAPL", "volume", "18446744073709551616"],
        &["AAPL", "ask_size", "007"],
        &["AAPL", "bid", "1", "seq", "5"],
    ];
    for args in bad {
        let err = publish(&mut c, "s", args);
        assert!(err.is_err(), "{args:?} was accepted: {err:?}");
    }
    // Not UTF-8, and a truncated sequence.
    for bytes in [&b"\xff"[..], b"A\xc3", b"\xed\xa0\x80"] {
        let err: redis::RedisResult<u64> = redis::cmd("FCALL")
            .arg("tickcast_publish")
            .arg(1)
            .arg("s")
            .arg(bytes)
            .query(&mut c);
        assert!(err.is_err(), "{bytes:?} was accepted");
    }
    // Wrong key count.
    let two_keys: redis::RedisResult<u64> = redis::cmd("FCALL")
        .arg("tickcast_publish")
        .arg(2)
        .arg("s")
        .arg("t")
        .arg("AAPL")
        .query(&mut c);
    assert!(two_keys.is_err());
    assert_eq!(entries(&mut c, "s").len(), 1, "nothing was added");
    assert_eq!(
        publish(&mut c, "s", &["AAPL"]).unwrap(),
        2,
        "no seq was used"
    );
    assert_eq!(publish(&mut c, "s", &["BTC-USD é"]).unwrap(), 1);
}

#[test]
fn batch_is_all_or_nothing() {
    let Some((_r, mut c)) = server("batch_is_all_or_nothing") else {
        return;
    };
    let batch = |c: &mut Connection, args: &[&str]| -> redis::RedisResult<Vec<u64>> {
        redis::cmd("FCALL")
            .arg("tickcast_publish_batch")
            .arg(1)
            .arg("s")
            .arg(args)
            .query(c)
    };
    let seqs = batch(
        &mut c,
        &[
            "3", "A", "2", "bid", "1.5", "B", "0", "A", "4", "ask", "2", "volume", "7",
        ],
    )
    .unwrap();
    assert_eq!(seqs, [1, 1, 2]);
    let got = entries(&mut c, "s");
    assert_eq!(got.len(), 3);
    assert_eq!(&got[2].1[6..], &["ask", "2", "volume", "7"]);
    assert_eq!(got[0].1[5], got[2].1[5], "one ts per batch");
    for bad in [
        &["2", "A", "2", "bid", "1.5", "B", "2", "bid", "x"][..],
        &["2", "A", "0"],
        &["1", "A", "0", "B"],
        &["0"],
        &["1", "A", "2", "bid"],
    ] {
        assert!(batch(&mut c, bad).is_err(), "{bad:?} was accepted");
    }
    assert_eq!(entries(&mut c, "s").len(), 3, "nothing was added");
}

#[test]
fn epoch_is_stable_with_the_stream_and_new_without_it() {
    let Some((_r, mut c)) = server("epoch_is_stable_with_the_stream_and_new_without_it") else {
        return;
    };
    assert_eq!(epoch(&mut c, "s"), None);
    publish(&mut c, "s", &["A"]).unwrap();
    let first = epoch(&mut c, "s").expect("the first call sets the epoch");
    assert!(first.starts_with("e-"), "{first}");
    publish(&mut c, "s", &["A"]).unwrap();
    assert_eq!(epoch(&mut c, "s").as_deref(), Some(first.as_str()));
    // The stream's history is gone: a new epoch, the seqs restart.
    redis::cmd("DEL").arg("s").query::<u64>(&mut c).unwrap();
    assert_eq!(publish(&mut c, "s", &["A"]).unwrap(), 1);
    let second = epoch(&mut c, "s").unwrap();
    assert_ne!(first, second);
}

#[test]
fn maxlen_comes_from_the_config_hash() {
    let Some((_r, mut c)) = server("maxlen_comes_from_the_config_hash") else {
        return;
    };
    redis::cmd("HSET")
        .arg("s:config")
        .arg("maxlen")
        .arg(10)
        .query::<u64>(&mut c)
        .unwrap();
    for _ in 0..2000 {
        publish(&mut c, "s", &["A"]).unwrap();
    }
    let len: u64 = redis::cmd("XLEN").arg("s").query(&mut c).unwrap();
    // MAXLEN ~ trims whole macro nodes (100 entries by default).
    assert!(len < 200, "{len} entries kept");
}

/// Redis killed (SIGKILL) and restarted: with an append-only file the
/// stream, its seqs and its epoch continue; without persistence the
/// history is gone, so the epoch is new and the seqs restart.
#[test]
fn epoch_across_a_redis_restart_follows_persistence() {
    if !redis_for("epoch_across_a_redis_restart_follows_persistence") {
        return;
    }
    for (persistence, survives) in [(Persistence::AppendOnly, true), (Persistence::None, false)] {
        let mut r = RedisServer::start(persistence);
        let mut c = r.connection();
        redis_stream::install(&mut c).unwrap();
        for _ in 0..5 {
            publish(&mut c, "s", &["A", "bid", "1.25"]).unwrap();
        }
        let before = epoch(&mut c, "s").unwrap();
        r.kill();
        r.restart();
        let mut c = r.connection();
        redis_stream::install(&mut c).unwrap();
        let seq = publish(&mut c, "s", &["A"]).unwrap();
        let after = epoch(&mut c, "s").unwrap();
        if survives {
            assert_eq!((seq, &after), (6, &before), "{persistence:?}");
            assert_eq!(entries(&mut c, "s").len(), 6);
        } else {
            assert_eq!(seq, 1, "{persistence:?}");
            assert_ne!(after, before, "{persistence:?}");
        }
    }
}
