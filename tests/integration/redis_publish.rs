//! `tickcast publish`: JSON lines on stdin become `tickcast_publish` calls,
//! decimal strings kept digit for digit; a bad line stops the run with its
//! number, after the lines before it were added.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::redis_server::{Persistence, RedisServer, redis_for};

fn redis(test: &str) -> Option<RedisServer> {
    redis_for(test).then(|| RedisServer::start(Persistence::None))
}

fn publish(r: &RedisServer, stdin: &str) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tickcast"))
        .args([
            "publish",
            "--redis",
            &r.url(),
            "--stream",
            "s",
            "--pipeline",
            "2",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn entries(r: &RedisServer) -> Vec<Vec<String>> {
    let mut c = r.connection();
    let e: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg("s")
        .arg("-")
        .arg("+")
        .query(&mut c)
        .unwrap();
    e.into_iter().map(|(_, f)| f).collect()
}

#[test]
fn publish_reads_json_lines_into_the_stream() {
    let Some(r) = redis("publish_reads_json_lines_into_the_stream") else {
        return;
    };
    let lines = concat!(
        r#"{"symbol":"AAPL","bid":"0.30000000000000000001","ask":189.27,"volume":5}"#,
        "\n\n",
        r#"{"symbol":"AAPL","last":"-12.500"}"#,
        "\n",
        r#"{"symbol":"MSFT","bid_size":300}"#,
        "\n",
    );
    let out = publish(&r, lines);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("published 3 ticks"), "{stderr}");
    let got = entries(&r);
    assert_eq!(got.len(), 3);
    assert_eq!(&got[0][..4], ["symbol", "AAPL", "seq", "1"]);
    assert_eq!(
        &got[0][6..],
        [
            "bid",
            "0.30000000000000000001",
            "ask",
            "189.27",
            "volume",
            "5"
        ]
    );
    assert_eq!(&got[1][2..4], ["seq", "2"]);
    assert_eq!(&got[1][6..], ["last", "-12.500"]);
    assert_eq!(&got[2][6..], ["bid_size", "300"]);
}

#[test]
fn publish_stops_at_a_bad_line_and_names_it() {
    let Some(r) = redis("publish_stops_at_a_bad_line_and_names_it") else {
        return;
    };
    let lines = concat!(
        r#"{"symbol":"A","bid":"1.5"}"#,
        "\n",
        r#"{"symbol":"A","bid":"1e5"}"#,
        "\n",
        r#"{"symbol":"A","bid":"2.5"}"#,
        "\n",
    );
    let out = publish(&r, lines);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("line 2"), "{stderr}");
    assert_eq!(
        entries(&r).len(),
        1,
        "the line before it was added, none after"
    );
}
