//! Faults, each over real sockets: a client that resets in the middle of a
//! frame, one that half-closes, a client process stopped with SIGSTOP, a
//! publisher burst of ten times the rate, a full shard inbox. The server
//! keeps serving everyone else, sheds what it must with the documented
//! codes, and recovers. (EMFILE during a connect storm is in lifecycle.rs.)

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use crate::util::{
    Client, Got, SeqCheck, TestServer, WAIT, feed_every, heavy, read_in_background, tick,
};
use serde_json::json;

/// A client that reads `sym`'s stream in a thread and checks every `seq`,
/// until `stop`; returns the ticks it got.
fn watcher(srv: &TestServer, sym: &str, stop: Arc<AtomicBool>) -> thread::JoinHandle<u64> {
    let mut c = Client::connect(srv.addr);
    c.subscribe(&[sym], &[], 1);
    read_in_background(c, stop)
}

/// A client subscribed to `sym`, read by the test thread itself once the
/// fault is over (a reader thread may not have been scheduled by then on a
/// loaded machine, which made "the bystander got ticks" flaky).
fn bystander(srv: &TestServer, sym: &str) -> Client {
    let mut c = Client::connect(srv.addr);
    c.subscribe(&[sym], &[], 1);
    c
}

/// Reads `c` until `n` more ticks of `sym` have arrived, each the next
/// `seq`: the stream went on through the fault, with no gap.
fn keeps_streaming(c: &mut Client, sym: &str, n: u64) {
    let mut check = SeqCheck::default();
    let deadline = Instant::now() + WAIT;
    while check.ticks < n {
        assert!(Instant::now() < deadline, "{} of {n} ticks", check.ticks);
        match c.recv() {
            Got::Json(v) if v["symbol"] == sym => check.feed(&v),
            Got::Json(_) => {}
            other => panic!("the bystander was cut: {other:?}"),
        }
    }
}

/// Reads `c` in a thread until it has `sym`'s tick with `seq == target`
/// (0: not known yet), checking every `seq`; returns the ticks it got.
fn reader_until(
    mut c: Client,
    sym: &'static str,
    target: Arc<std::sync::atomic::AtomicU64>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut check = SeqCheck::default();
        loop {
            let want = target.load(SeqCst);
            if want > 0 && check.last.get(sym) == Some(&want) {
                return check.ticks;
            }
            match c.recv() {
                Got::Json(v) => check.feed(&v),
                other => panic!("{other:?} after {} ticks", check.ticks),
            }
        }
    })
}

/// A raw upgrade on a fresh socket; returns it after the `101`.
fn raw_upgrade(srv: &TestServer) -> TcpStream {
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
    )
    .unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 101"),
        "{:?}",
        String::from_utf8_lossy(&buf[..n])
    );
    s
}

#[test]
fn a_reset_in_the_middle_of_a_frame_hurts_no_one() {
    let srv = TestServer::start(|c| c.io_threads = 1);
    let stop = Arc::new(AtomicBool::new(false));
    let mut watcher = bystander(&srv, "A");
    let published = feed_every(&srv, "A", Duration::from_millis(1), stop.clone());
    for _ in 0..20 {
        let mut s = raw_upgrade(&srv);
        // The header and mask of a 100-byte text frame, and 10 bytes of it.
        s.write_all(&[0x81, 0x80 | 100, 1, 2, 3, 4]).unwrap();
        s.write_all(&[b'x'; 10]).unwrap();
        socket2::SockRef::from(&s)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(s); // RST
    }
    let s = srv.wait_stats("the reset sockets to be released", |s| s.sockets == 1);
    assert_eq!(s.connections, 1, "the bystander is still open: {s:?}");
    keeps_streaming(&mut watcher, "A", 50);
    stop.store(true, SeqCst);
    published.join().unwrap();
}

#[test]
fn a_half_closed_client_is_released_and_the_others_keep_streaming() {
    let srv = TestServer::start(|_| {});
    let stop = Arc::new(AtomicBool::new(false));
    let mut watcher = bystander(&srv, "H");
    let published = feed_every(&srv, "H", Duration::from_millis(2), stop.clone());
    let mut half = Client::connect(srv.addr);
    half.subscribe(&["H"], &[], 1);
    // The client shuts its write side without a close frame: for a
    // WebSocket that is the end of the connection (1006 on its side).
    half.ws.get_mut().shutdown(Shutdown::Write).unwrap();
    srv.wait_stats("the half-closed socket to be released", |s| {
        s.connections == 1 && s.sockets == 1
    });
    let mut rest = Vec::new();
    let _ = half.ws.get_mut().read_to_end(&mut rest);
    keeps_streaming(&mut watcher, "H", 20);
    stop.store(true, SeqCst);
    published.join().unwrap();
}

/// A WebSocket client in another process (Python's standard library only):
/// upgrades, subscribes to `sym`, prints `ready`, then reads forever.
const PY_CLIENT: &str = r#"
import socket, sys, os
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
req = ('{"op":"subscribe","id":1,"symbols":["%s"]}' % sys.argv[2]).encode()
mask = b"\x01\x02\x03\x04"
s.sendall(bytes([0x81, 0x80 | len(req)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(req)))
print("ready", flush=True)
while s.recv(65536):
    pass
"#;

#[test]
fn a_client_process_stopped_with_sigstop_is_evicted_for_lag() {
    let _heavy = heavy();
    if Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "python3 is needed in CI");
        eprintln!("skipped: no python3");
        return;
    }
    let srv = TestServer::start(|c| {
        c.max_lag = Duration::from_millis(500);
        c.heartbeat = Duration::from_millis(400);
        c.close_linger = Duration::from_millis(300);
    });
    let stop = Arc::new(AtomicBool::new(false));
    let bystander = watcher(&srv, "P", stop.clone());
    let published = feed_every(&srv, "P", Duration::from_micros(300), stop.clone());
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(PY_CLIENT)
        .arg(srv.addr.port().to_string())
        .arg("P")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut ready)
        .unwrap();
    assert_eq!(&ready, b"ready\n");
    srv.wait_stats("the process's connection", |s| s.connections == 2);
    let pid = child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid; no memory is involved.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    let stopped = Instant::now();
    let s = srv.wait_stats("the stopped client's eviction", |s| s.evicted_lag == 1);
    let found = stopped.elapsed();
    srv.wait_stats("its socket to be gone", |s| s.sockets == 1);
    assert_eq!((s.evicted_slow, s.heartbeat_timeouts), (0, 0), "{s:?}");
    assert!(found < Duration::from_secs(5), "found after {found:?}");
    // SAFETY: as above.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = child.wait();
    stop.store(true, SeqCst);
    published.join().unwrap();
    assert!(
        bystander.join().unwrap() > 100,
        "the bystander kept its stream"
    );
}

#[test]
fn a_publisher_burst_of_ten_times_the_rate_is_shed_before_numbering() {
    let _heavy = heavy();
    let srv = TestServer::start(|c| c.publish_queue = 256);
    let mut c = Client::connect(srv.addr);
    c.subscribe(&["B"], &[], 1);
    let last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let bystander = reader_until(c, "B", last.clone());
    let p = srv.b().publisher();
    let mut accepted = 0u64;
    let mut refused = 0u64;
    // A second at ~2,000 ticks/s, a second of 10x that, a second at 2,000.
    for (per_ms, ms) in [(2, 1000), (20, 1000), (2, 1000)] {
        for _ in 0..ms {
            for _ in 0..per_ms {
                match p.publish(tick("B", accepted)) {
                    Ok(()) => accepted += 1,
                    Err(tickcast::PublishError::Full(_)) => refused += 1,
                    Err(e) => panic!("{e}"),
                }
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
    // A refused tick has no seq: the bystander gets every accepted one,
    // numbered 1, 2, 3, ... with no gap (SeqCheck panics on one).
    // One more tick wakes the reader if it already has all the others.
    last.store(accepted + 1, SeqCst);
    srv.publish(tick("B", accepted));
    accepted += 1;
    assert_eq!(bystander.join().unwrap(), accepted);
    let s = srv.stats();
    assert_eq!(
        (s.ticks_published, s.ticks_rejected),
        (accepted, refused),
        "{s:?}"
    );
    assert_eq!(
        (s.evicted_slow, s.evicted_lag),
        (0, 0),
        "the bystander kept up: {s:?}"
    );
}

#[test]
fn a_full_shard_inbox_makes_the_publisher_wait_not_drop() {
    let _heavy = heavy();
    // An inbox of 16 messages: a burst fills it at once.
    let srv = TestServer::start(|c| {
        c.shard_inbox = 16;
        c.io_threads = 2;
        // Room for every tick in the outboxes: the readers are debug-build
        // clients on a machine running other tests, and an eviction (4001)
        // is not what this test is about.
        c.queue_capacity = 32_768;
    });
    const N: u64 = 20_000;
    let last = Arc::new(std::sync::atomic::AtomicU64::new(N));
    let readers: Vec<_> = (0..4)
        .map(|_| {
            let mut c = Client::connect(srv.addr);
            c.subscribe(&["F"], &[], 1);
            reader_until(c, "F", last.clone())
        })
        .collect();
    for i in 0..N {
        srv.publish(tick("F", i));
    }
    for r in readers {
        assert_eq!(r.join().unwrap(), N, "every tick, in order");
    }
    let s = srv.stats();
    assert_eq!((s.ticks_published, s.ticks_rejected), (N, 0), "{s:?}");
    // The shards are still serving.
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.request(json!({"op":"ping"}), 9)["type"], "pong");
}
