//! Connection lifecycle: heartbeats, shutdown, the binary's signals, and
//! churn leaving nothing behind.

mod util;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use util::{Client, Got, TestServer, WAIT, tick};

#[test]
fn a_silent_client_is_closed_with_4002() {
    let srv = TestServer::start(|c| c.heartbeat = Duration::from_millis(100));
    let mut silent = Client::connect(srv.addr);
    let mut alive = Client::connect(srv.addr);
    assert_eq!(alive.welcome["heartbeat_ms"], 100);
    // `alive` answers pings (tungstenite replies on read); `silent` reads
    // nothing for 600 ms, so it answers nothing.
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(600) {
        alive.send(json!({"op":"ping"}));
        assert_eq!(alive.json()["type"], "pong");
        thread::sleep(Duration::from_millis(20));
    }
    let (code, reason) = silent.until_close();
    assert_eq!((code, reason.as_str()), (4002, "heartbeat timeout"));
    assert_eq!(srv.stats().heartbeat_timeouts, 1, "the live client stays");
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

/// Starts the binary (`cmd`, with `--listen 127.0.0.1:0`) and reads the
/// address it prints on its first line.
fn spawn_binary(mut cmd: Command) -> (std::process::Child, std::net::SocketAddr) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    let addr = line
        .split("ws://")
        .nth(1)
        .and_then(|s| s.split("/ws").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    // Keep reading: a closed pipe would make the binary's later prints fail.
    thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    (child, addr)
}

#[test]
fn the_binary_serves_the_synthetic_feed_and_stops_on_sigterm() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickcast"));
    cmd.args(["--listen", "127.0.0.1:0", "--no-pin", "--io-threads", "2"])
        .args(["--synthetic-symbols", "50", "--synthetic-rate", "500"]);
    let (mut child, addr) = spawn_binary(cmd);
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
    while ticks < 5 {
        if c.json()["type"] == "tick" {
            ticks += 1;
        }
    }
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let (code, _) = c.until_close();
    assert_eq!(code, 1001);
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the binary did not exit");
        thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
}

#[test]
fn churn_while_ticks_flow_leaves_no_leaked_connection() {
    let srv = TestServer::start(|c| c.handshake_timeout = Duration::from_millis(300));
    let p = srv.b().publisher();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop2 = stop.clone();
    let feed = thread::spawn(move || {
        let mut i = 0;
        while !stop2.load(std::sync::atomic::Ordering::Relaxed) {
            let _ = p.publish(tick(if i % 2 == 0 { "A" } else { "B" }, i));
            i += 1;
            if i % 20 == 0 {
                thread::sleep(Duration::from_millis(1));
            }
        }
    });
    let addr = srv.addr;
    let workers: Vec<_> = (0..8)
        .map(|_| {
            thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(3);
                let mut n = 0u64;
                while Instant::now() < deadline {
                    n += 1;
                    match n % 4 {
                        // Subscribe, read a little, close properly.
                        0 => {
                            let mut c = Client::connect(addr);
                            c.subscribe(&["A", "B"], &["*"], 1);
                            let _ = c.json();
                            let _ = c.ws.close(None);
                            let _ = c.ws.flush();
                        }
                        // Subscribe and vanish without a close frame.
                        1 => {
                            let mut c = Client::connect(addr);
                            c.subscribe(&["A"], &[], 1);
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
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let s = srv.wait_stats("every socket to be released", |s| {
        s.connections == 0 && s.sockets == 0
    });
    assert!(s.accepted > 100, "churned: {s:?}");
    // Still healthy afterwards.
    let mut c = Client::connect(addr);
    c.subscribe(&["A"], &[], 1);
    assert!(matches!(c.recv(), Got::Json(_)));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    feed.join().unwrap();
}

/// CPU time (user + system, in clock ticks) used so far by process `pid`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the `(comm)`: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
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
    let (mut child, addr) = spawn_binary(cmd);
    let flood: Vec<std::net::TcpStream> = (0..120)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    assert!(flood.len() > 60, "the kernel accepted the connections");
    thread::sleep(Duration::from_millis(300));
    let before = cpu_ticks(child.id());
    thread::sleep(Duration::from_secs(1));
    let used = cpu_ticks(child.id()) - before;
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
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}
