//! Connection lifecycle: heartbeats, shutdown, the binary's signals, and
//! churn leaving nothing behind.

use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tungstenite::Message;

use crate::util::{Client, Got, SeqCheck, TestServer, WAIT, heavy, spawn_binary, tick};

#[test]
fn a_silent_client_is_closed_with_4002() {
    let srv = TestServer::start(|c| c.heartbeat = Duration::from_millis(100));
    let mut silent = Client::connect(srv.addr);
    let mut alive = Client::connect(srv.addr);
    assert_eq!(alive.welcome["heartbeat_ms"], 100);
    // `alive` keeps talking: tungstenite answers each server ping on its
    // next read, and each server ping is also answered with a `ping`
    // request. `silent` reads nothing, so it answers nothing. This goes on
    // until the server has timed `silent` out and `alive`, still open, has
    // seen 6 server pings (twice the 3-interval timeout).
    let deadline = Instant::now() + WAIT;
    let (mut server_pings, mut pongs) = (0, 0);
    while server_pings < 6 || srv.stats().heartbeat_timeouts == 0 {
        assert!(
            Instant::now() < deadline,
            "{server_pings} server pings, {pongs} pongs: {:?}",
            srv.stats()
        );
        match alive.ws.read().expect("the live client stays open") {
            Message::Ping(_) => {
                server_pings += 1;
                alive.send(json!({"op":"ping"}));
            }
            Message::Text(t) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).unwrap();
                assert_eq!(v["type"], "pong", "{v}");
                pongs += 1;
            }
            other => panic!("the live client got {other:?}"),
        }
    }
    let (code, reason) = silent.until_close();
    assert_eq!((code, reason.as_str()), (4002, "heartbeat timeout"));
    assert_eq!(srv.stats().heartbeat_timeouts, 1, "the live client stays");
    // Every `ping` request got its pong, in order, before this reply.
    let (r, before) = alive.exchange(json!({"op":"ping"}), 1);
    assert_eq!(r["type"], "pong", "the live client still answers: {r}");
    assert!(before.iter().all(|v| v["type"] == "pong"), "{before:?}");
    assert_eq!(pongs + before.len(), server_pings);
}

#[test]
fn shutdown_sends_1001_and_joins() {
    let srv = TestServer::start(|_| {});
    let mut clients: Vec<Client> = (0..6).map(|_| Client::connect(srv.addr)).collect();
    for c in &mut clients {
        c.subscribe(&["A"], &[], 1);
    }
    srv.publish(tick("A", 1));
    // A socket mid-handshake is closed too.
    let half = std::net::TcpStream::connect(srv.addr).unwrap();
    srv.wait_stats("all sockets", |s| s.sockets == 7);
    let t0 = Instant::now();
    srv.shutdown();
    assert!(t0.elapsed() < WAIT, "shutdown returned in bounded time");
    for mut c in clients {
        let (code, reason) = c.until_close();
        assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    }
    drop(half);
}

#[test]
fn the_binary_serves_the_synthetic_feed_and_stops_on_sigterm() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickcast"));
    cmd.args(["--listen", "127.0.0.1:0", "--no-pin", "--io-threads", "2"])
        .args(["--synthetic-symbols", "50", "--synthetic-rate", "500"]);
    let (mut child, addr) = spawn_binary(cmd, Stdio::null());
    let mut c = Client::connect(addr);
    let g = c.request(json!({"op":"list_groups"}), 1);
    let names: Vec<&str> = g["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    for want in ["us-tech", "fx-majors", "crypto"] {
        assert!(names.contains(&want), "{names:?}");
    }
    c.subscribe(&[], &["fx-majors"], 2);
    let mut ticks = 0;
    let deadline = Instant::now() + WAIT;
    while ticks < 5 {
        assert!(Instant::now() < deadline, "{ticks} ticks within {WAIT:?}");
        if c.json()["type"] == "tick" {
            ticks += 1;
        }
    }
    child.term();
    let (code, _) = c.until_close();
    assert_eq!(code, 1001);
    let status = child.exit_status();
    assert!(status.success(), "exit status {status}");
}

/// Subscribes a churning client; true once subscribed. A worker starved
/// of CPU for a moment (8 of them, a feed and the shards share the
/// machine) can fill its queue and be evicted with 4001 before it reads
/// the reply: that is the server doing its job, so it is allowed here.
fn churn_subscribe(c: &mut Client, symbols: &[&str], groups: &[&str]) -> bool {
    c.send(json!({"op":"subscribe","symbols":symbols,"groups":groups,"id":1}));
    match c.recv() {
        Got::Json(v) => {
            assert_eq!(v["type"], "subscribed", "{v}");
            true
        }
        Got::Close(4001, _) => false,
        other => panic!("subscribing during churn: {other:?}"),
    }
}

#[test]
fn churn_while_ticks_flow_leaves_no_leaked_connection() {
    let _heavy = heavy();
    let srv = TestServer::start(|c| c.handshake_timeout = Duration::from_millis(300));
    let p = srv.b().publisher();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let feed = thread::spawn(move || {
        let mut i = 0;
        // Stopped by `stop`; the deadline only bounds it if the test fails
        // before setting `stop`.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
            let _ = p.publish(tick(if i % 2 == 0 { "A" } else { "B" }, i));
            i += 1;
            if i % 20 == 0 {
                // Pacing (about 20,000 ticks/s), not a wait.
                thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let addr = srv.addr;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                // How long to churn (not a wait for anything); each worker
                // returns how many connections it made.
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    match n % 4 {
                        // Subscribe, read a little, close properly.
                        0 => {
                            let mut c = Client::connect(addr);
                            if churn_subscribe(&mut c, &["A", "B"], &["*"]) {
                                match c.recv() {
                                    Got::Json(_) | Got::Close(4001, _) => {}
                                    other => panic!("reading during churn: {other:?}"),
                                }
                            }
                            let _ = c.ws.close(None);
                            let _ = c.ws.flush();
                        }
                        // Subscribe and vanish without a close frame.
                        1 => {
                            let mut c = Client::connect(addr);
                            churn_subscribe(&mut c, &["A"], &[]);
                            drop(c);
                        }
                        // Connect and leave mid-handshake.
                        2 => {
                            use std::io::Write;
                            let mut s = std::net::TcpStream::connect(addr).unwrap();
                            let _ = s.write_all(b"GET /ws HTTP/1.1\r\nHost: x\r\n");
                        }
                        // Connect and say nothing.
                        _ => drop(std::net::TcpStream::connect(addr).unwrap()),
                    }
                }
                n
            })
        })
        .collect();
    let made: u64 = workers.into_iter().map(|w| w.join().unwrap()).sum();
    // Every connection made has been accepted (none is still in the
    // backlog) and released.
    let s = srv.wait_stats("every socket to be accepted and released", |s| {
        s.accepted >= made && s.connections == 0 && s.sockets == 0
    });
    assert_eq!(s.accepted, made, "churned: {s:?}");
    assert!(s.accepted > 100, "churned: {s:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feed.join().unwrap();
    // Still healthy afterwards: a snapshot of A, then (after any ticks of
    // A still on their way, in seq order) a tick of a new symbol.
    let mut c = Client::connect(addr);
    c.subscribe(&["A", "HEALTH"], &[], 1);
    let v = c.json();
    assert_eq!(
        (v["type"].as_str(), v["symbol"].as_str()),
        (Some("snapshot"), Some("A")),
        "{v}"
    );
    srv.publish(tick("HEALTH", 0));
    let mut check = SeqCheck::default();
    check.feed(&v);
    for v in c.until_tick("HEALTH") {
        assert_eq!(v["symbol"], "A", "{v}");
        check.feed(&v);
    }
}

/// CPU time (user + system, in clock ticks) used so far by process `pid`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// How many of the descriptor numbers below `limit` process `pid` uses
/// (`limit` of them: none is free, so `accept` fails with EMFILE).
fn fds_below(pid: u32, limit: u32) -> u32 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&fd| fd < limit)
        .count() as u32
}

#[test]
fn running_out_of_file_descriptors_does_not_spin_the_acceptor() {
    // A server allowed 48 descriptors, then 120 connections: accept fails
    // with EMFILE while the listener stays readable.
    let mut cmd = Command::new("bash");
    cmd.arg("-c").arg(format!(
        "ulimit -n 48 && exec {} --listen 127.0.0.1:0 --no-pin --io-threads 1 --synthetic-rate 0",
        env!("CARGO_BIN_EXE_tickcast")
    ));
    let (mut child, addr) = spawn_binary(cmd, Stdio::null());
    let flood: Vec<std::net::TcpStream> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    assert!(flood.len() > 60, "the kernel accepted the connections");
    // Wait until it is out of descriptors: 0..48 all in use.
    let deadline = Instant::now() + WAIT;
    while fds_below(child.0.id(), 48) < 48 {
        assert!(
            Instant::now() < deadline,
            "the server uses only {} of its 48 descriptors",
            fds_below(child.0.id(), 48)
        );
        thread::sleep(Duration::from_millis(5));
    }
    // A measurement, not a wait for anything: 300 ms for the shards to be
    // done with the sockets just accepted, then the CPU the server burns
    // in one second while out of descriptors.
    thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(child.0.id());
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(child.0.id()) - before;
    assert_eq!(fds_below(child.0.id(), 48), 48, "still out of descriptors");
    // A spinning acceptor would burn ~100 ticks (a whole core) here.
    assert!(
        used < 30,
        "the server used {used} of 100 clock ticks while out of descriptors"
    );
    // Once descriptors are free again, it accepts and serves.
    drop(flood);
    let deadline = Instant::now() + WAIT;
    let mut c = loop {
        if let Ok(s) = std::net::TcpStream::connect(addr) {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let url = format!("ws://{addr}/ws");
            if let Ok((ws, _)) = tungstenite::client::client(url.as_str(), s) {
                break ws;
            }
        }
        assert!(Instant::now() < deadline, "the server never recovered");
        thread::sleep(Duration::from_millis(50));
    };
    let welcome = c.read().unwrap();
    assert!(welcome.to_text().unwrap().contains("welcome"));
    child.term();
    child.exit_status();
}
