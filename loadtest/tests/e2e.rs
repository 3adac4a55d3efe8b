//! End-to-end: the client engine against a tiny blocking tungstenite
//! server that follows PROTOCOL.md (welcome, subscribed, snapshots, ticks),
//! on 127.0.0.1 port 0. Each test runs the engine for about a second.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use loadtest::{Options, Target, run};
use tungstenite::Message;
use tungstenite::protocol::CloseFrame;
use tungstenite::protocol::frame::coding::CloseCode;

const SYMBOLS: usize = 5;
/// Hard bound on any test server thread.
const SERVER_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every tick in order.
    Clean,
    /// Symbol S1 skips one seq after 50 ticks.
    SkipSeq,
    /// Close every connection with 4001 after 200 ticks.
    Evict,
}

struct TestServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    pongs: Arc<AtomicU64>,
    handle: Option<JoinHandle<()>>,
}

impl TestServer {
    fn start(mode: Mode) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind port 0");
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let addr = listener.local_addr().expect("local addr");
        let stop = Arc::new(AtomicBool::new(false));
        let pongs = Arc::new(AtomicU64::new(0));
        let (s, p) = (Arc::clone(&stop), Arc::clone(&pongs));
        let handle = std::thread::spawn(move || {
            let began = Instant::now();
            let mut conns = Vec::new();
            while !s.load(Ordering::Relaxed) && began.elapsed() < SERVER_DEADLINE {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let (s, p) = (Arc::clone(&s), Arc::clone(&p));
                        conns.push(std::thread::spawn(move || {
                            let _ = serve(stream, mode, &s, &p);
                        }));
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => break,
                }
            }
            s.store(true, Ordering::Relaxed);
            for c in conns {
                let _ = c.join();
            }
        });
        TestServer {
            addr,
            stop,
            pongs,
            handle: Some(handle),
        }
    }

    fn target(&self) -> Target {
        Target {
            addr: self.addr,
            host: self.addr.to_string(),
            path: "/ws".into(),
            tls: false,
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

fn tick_json(kind: &str, sym: usize, seq: u64) -> String {
    format!(
        r#"{{"type":"{kind}","symbol":"S{sym:03}","seq":{seq},"ts":{},"bid":1.25,"ask":1.27,"bid_size":3,"ask_size":2,"last":1.26,"volume":10}}"#,
        now_ns()
    )
}

fn serve(
    stream: TcpStream,
    mode: Mode,
    stop: &AtomicBool,
    pongs: &AtomicU64,
) -> Result<(), Box<dyn std::error::Error>> {
    stream.set_nonblocking(false)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut ws = tungstenite::accept(stream)?;
    ws.send(Message::text(r#"{"type":"welcome","conn_id":"c-1","server":"test/0","protocol":1,"heartbeat_ms":5000,"max_queue":64}"#))?;
    let sub = ws.read()?;
    let text = sub.to_text()?.to_string();
    if !text.contains(r#""op":"subscribe""#) {
        return Err("first request was not a subscribe".into());
    }
    ws.send(Message::text(
        r#"{"type":"subscribed","id":1,"symbols":[],"groups":["*"]}"#,
    ))?;
    ws.send(Message::Ping(b"hb".to_vec().into()))?;
    let mut seqs = [100u64; SYMBOLS];
    for (i, s) in seqs.iter().enumerate() {
        ws.send(Message::text(tick_json("snapshot", i, *s)))?;
    }
    ws.get_mut()
        .set_read_timeout(Some(Duration::from_millis(1)))?;
    let began = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) && began.elapsed() < SERVER_DEADLINE {
        for _ in 0..5 {
            let i = (n % SYMBOLS as u64) as usize;
            seqs[i] += 1;
            if mode == Mode::SkipSeq && n == 51 {
                seqs[i] += 1;
            }
            ws.send(Message::text(tick_json("tick", i, seqs[i])))?;
            n += 1;
        }
        if mode == Mode::Evict && n >= 200 {
            ws.close(Some(CloseFrame {
                code: CloseCode::from(4001),
                reason: "slow consumer".into(),
            }))?;
            let _ = ws.flush();
            // Read until the client's close reply ends the connection.
            while began.elapsed() < SERVER_DEADLINE && ws.read().is_ok() {}
            return Ok(());
        }
        match ws.read() {
            Ok(Message::Pong(_)) => {
                pongs.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Message::Close(_)) => return Ok(()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn options(target: Target, clients: usize) -> Options {
    let mut o = Options::fanout(target, clients);
    o.threads = 2;
    o.warmup = Duration::from_millis(200);
    o.duration = Duration::from_millis(1000);
    o.connect_timeout = Duration::from_secs(5);
    o.progress = false;
    o
}

#[test]
fn every_client_receives_every_tick_in_order() {
    let server = TestServer::start(Mode::Clean);
    let report = run(&options(server.target(), 20)).expect("run");
    assert_eq!(report.clients.connected, 20);
    assert_eq!(report.clients.failed, 0);
    assert!(report.sequence_ok(), "{}", report.table());
    assert_eq!(
        report.seq.not_evicted.unbaselined, 0,
        "snapshots set every baseline"
    );
    assert!(report.seq.not_evicted.in_order > 1000, "{}", report.table());
    assert_eq!(report.control.get("welcome"), Some(&20));
    assert_eq!(report.control.get("subscribed"), Some(&20));
    assert_eq!(report.per_client_ticks.clients, 20);
    assert!(report.per_client_ticks.min > 0);
    assert!(report.latency.count > 0 && report.latency.p99_us > 0.0);
    assert_eq!(report.ends_fast.get("open at end"), Some(&20));
    assert_eq!(report.invalid_messages, 0);
    // The server's ping got a (masked: tungstenite insists) pong.
    assert_eq!(report.pings, 20);
    assert!(server.pongs.load(Ordering::Relaxed) >= 20);
}

#[test]
fn skipped_seq_is_reported_as_a_gap() {
    let server = TestServer::start(Mode::SkipSeq);
    let report = run(&options(server.target(), 4)).expect("run");
    assert_eq!(report.clients.connected, 4);
    assert!(!report.sequence_ok());
    assert_eq!(report.seq.clients_with_anomalies, 4);
    assert_eq!(report.seq.not_evicted.gaps, 4);
    assert_eq!(report.seq.not_evicted.missing, 4);
    assert_eq!(report.seq.not_evicted.duplicates, 0);
}

#[test]
fn eviction_close_code_is_recorded() {
    let server = TestServer::start(Mode::Evict);
    let report = run(&options(server.target(), 3)).expect("run");
    assert_eq!(report.clients.evicted_fast, 3, "{}", report.table());
    assert_eq!(report.ends_fast.get("close 4001 slow consumer"), Some(&3));
}

#[test]
fn refused_connects_are_counted_not_fatal() {
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut o = options(
        Target {
            addr,
            host: addr.to_string(),
            path: "/ws".into(),
            tls: false,
        },
        5,
    );
    o.duration = Duration::from_millis(100);
    let report = run(&o).expect("run");
    assert_eq!(report.clients.failed, 5);
    assert_eq!(
        report.clients.connect_failures.get("connect: refused"),
        Some(&5)
    );
}

#[test]
fn report_files_are_written() {
    let server = TestServer::start(Mode::Clean);
    let mut o = options(server.target(), 2);
    o.duration = Duration::from_millis(300);
    let report = run(&o).expect("run");
    let dir = std::env::temp_dir().join(format!("loadtest-e2e-{}", std::process::id()));
    report.write_to(&dir).expect("write");
    for f in [
        "report.json",
        "latency.hgrm",
        "connect.hgrm",
        "latency.svg",
        "summary.txt",
    ] {
        assert!(dir.join(f).exists(), "{f} missing");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("report.json")).expect("read"))
            .expect("valid json");
    assert!(json["latency"]["p99_us"].is_number());
    assert!(json["seq"]["not_evicted"]["gaps"].is_number());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rate_limited_slow_clients_still_receive_and_are_reported_apart() {
    let server = TestServer::start(Mode::Clean);
    let mut o = options(server.target(), 10);
    o.slow_fraction = 0.5;
    o.slow_mode = loadtest::SlowMode::Rate(20_000);
    let report = run(&o).expect("run");
    assert_eq!(report.clients.slow, 5);
    assert!(report.latency_slow.count > 0, "{}", report.table());
    assert!(
        report.latency.count > report.latency_slow.count,
        "{}",
        report.table()
    );
    assert_eq!(report.ends_slow.values().sum::<u64>(), 5);
}
