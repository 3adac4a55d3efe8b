//! Shared helpers for the integration tests: a real broadcaster on
//! `127.0.0.1:0` and a blocking tungstenite client with bounded waits.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tickcast::{BatchError, Broadcaster, Config, PublishError, Publisher, Stats, Tick};
use tungstenite::{Message, WebSocket};

/// How long any single wait in a test may take before it fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// Held for its whole run by each test that loads the machine hard or
/// needs the CPU to keep up: Chromium, a feed publishing flat out, the
/// eviction timing, connection churn. All tests share one binary, so
/// without it two of these could run at once; on a 2-core machine one
/// then starves the other's readers (seen: the full-load reader evicted
/// with 4001 while Chromium ran). Other tests still run alongside.
pub fn heavy() -> MutexGuard<'static, ()> {
    static HEAVY: Mutex<()> = Mutex::new(());
    // A heavy test that failed poisoned it; the lock itself is still good.
    HEAVY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A broadcaster started for one test; shut down on drop.
pub struct TestServer {
    pub b: Option<Broadcaster>,
    pub addr: SocketAddr,
}

impl TestServer {
    /// Three unpinned shards, no synthetic feed, then `f`'s changes.
    pub fn start(f: impl FnOnce(&mut Config)) -> TestServer {
        let mut c = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            synthetic_rate: 0,
            io_threads: 3,
            pin_threads: false,
            ..Config::default()
        };
        f(&mut c);
        let b = Broadcaster::start(c).expect("start broadcaster");
        let addr = b.local_addr();
        TestServer { b: Some(b), addr }
    }

    pub fn b(&self) -> &Broadcaster {
        self.b.as_ref().unwrap()
    }

    /// Publishes, retrying while the publisher queue is full.
    pub fn publish(&self, t: Tick) {
        publish_retrying(&self.b().publisher(), t);
    }

    pub fn stats(&self) -> Stats {
        self.b().stats()
    }

    /// Waits until `pred(stats)` holds.
    pub fn wait_stats(&self, what: &str, pred: impl Fn(&Stats) -> bool) -> Stats {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}: {s:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn shutdown(mut self) {
        self.b.take().unwrap().shutdown().unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(b) = self.b.take() {
            let _ = b.shutdown();
        }
    }
}

/// One received item.
#[derive(Debug, Clone, PartialEq)]
pub enum Got {
    Json(Value),
    Close(u16, String),
    /// The connection ended without a close frame, or a read error.
    End(String),
}

/// A blocking WebSocket client with a read timeout, over TCP or (in
/// `tls.rs`) TLS.
pub struct Client<S: Read + Write = TcpStream> {
    pub ws: WebSocket<S>,
    pub welcome: Value,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::connect_path(addr, "/ws")
    }

    pub fn connect_path(addr: SocketAddr, path: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("tcp connect");
        Client::over(stream, addr, path)
    }

    /// Completes the upgrade over an already connected stream.
    pub fn over(stream: TcpStream, addr: SocketAddr, path: &str) -> Client {
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client::handshake(&format!("ws://{addr}{path}"), stream)
    }
}

impl<S: Read + Write> Client<S> {
    /// Completes the upgrade to `url` over `stream` (whose reads time out)
    /// and reads the `welcome`.
    pub fn handshake(url: &str, stream: S) -> Client<S> {
        let (ws, _resp) = tungstenite::client::client(url, stream).expect("handshake");
        let mut c = Client {
            ws,
            welcome: Value::Null,
        };
        match c.recv() {
            Got::Json(v) if v["type"] == "welcome" => c.welcome = v,
            other => panic!("expected welcome, got {other:?}"),
        }
        c
    }

    pub fn send(&mut self, v: Value) {
        self.ws.send(Message::text(v.to_string())).expect("send");
    }

    pub fn send_text(&mut self, s: &str) {
        self.ws.send(Message::text(s.to_string())).expect("send");
    }

    /// The next JSON message or close; pings and pongs are skipped, but
    /// not past `WAIT` (the server's heartbeat pings would otherwise keep
    /// the read timeout from ever firing).
    pub fn recv(&mut self) -> Got {
        let deadline = Instant::now() + WAIT;
        loop {
            if Instant::now() >= deadline {
                return Got::End(format!("no message within {WAIT:?}, only pings"));
            }
            match self.ws.read() {
                Ok(Message::Text(t)) => {
                    return Got::Json(serde_json::from_str(t.as_str()).expect("server sent JSON"));
                }
                Ok(Message::Close(Some(f))) => {
                    return Got::Close(u16::from(f.code), f.reason.to_string());
                }
                Ok(Message::Close(None)) => return Got::Close(1005, String::new()),
                Ok(Message::Binary(_)) => panic!("server sent a binary frame"),
                Ok(_) => {}
                Err(e) => return Got::End(e.to_string()),
            }
        }
    }

    /// The next JSON message; panics on close.
    pub fn json(&mut self) -> Value {
        match self.recv() {
            Got::Json(v) => v,
            other => panic!("expected JSON, got {other:?}"),
        }
    }

    /// Reads until a message for which `is_it` holds (`what` names it in
    /// the failure); returns it and every message received before it.
    fn read_until(&mut self, what: &str, is_it: impl Fn(&Value) -> bool) -> (Value, Vec<Value>) {
        let deadline = Instant::now() + WAIT;
        let mut before = Vec::new();
        loop {
            assert!(
                Instant::now() < deadline,
                "no {what} within {WAIT:?}: {} other messages, the last {:?}",
                before.len(),
                before.last()
            );
            let v = self.json();
            if is_it(&v) {
                return (v, before);
            }
            before.push(v);
        }
    }

    /// Reads until the next tick of `sym`; returns everything received
    /// before it. Ticks leave the publisher in the order they were
    /// published, so a tick of a subscribed symbol is a fence: whatever an
    /// earlier `publish` delivered to this client arrives before it.
    pub fn until_tick(&mut self, sym: &str) -> Vec<Value> {
        let what = format!("tick of {sym}");
        self.read_until(&what, |v| v["type"] == "tick" && v["symbol"] == sym)
            .1
    }

    /// Reads until the close frame; returns its code and reason.
    pub fn until_close(&mut self) -> (u16, String) {
        let deadline = Instant::now() + WAIT;
        loop {
            assert!(Instant::now() < deadline, "no close within {WAIT:?}");
            match self.recv() {
                Got::Json(_) => {}
                Got::Close(code, reason) => return (code, reason),
                Got::End(e) => panic!("connection ended without a close frame: {e}"),
            }
        }
    }

    /// Sends a request and waits for the reply with the same id; returns
    /// the reply and every message received before it, for tests that
    /// assert what did (or did not) arrive meanwhile.
    pub fn exchange(&mut self, mut req: Value, id: i64) -> (Value, Vec<Value>) {
        req["id"] = json!(id);
        self.send(req);
        self.reply(id)
    }

    /// Reads until the reply with `id` to a request already sent; returns
    /// it and every message received before it.
    pub fn reply(&mut self, id: i64) -> (Value, Vec<Value>) {
        self.read_until(&format!("reply to id {id}"), |v| v["id"] == json!(id))
    }

    /// Sends a request and returns the reply with the same id, skipping
    /// whatever arrives before it (ticks, snapshots); use
    /// [`Client::exchange`] to see those.
    pub fn request(&mut self, req: Value, id: i64) -> Value {
        self.exchange(req, id).0
    }

    /// For an evicted client reading at last: reads its backlog, then
    /// asserts the end is the 4001, or a reset (its close frame could not
    /// be sent within the close grace).
    pub fn expect_eviction(&mut self) {
        let end = loop {
            match self.recv() {
                Got::Json(_) => {}
                other => break other,
            }
        };
        match end {
            Got::Close(code, _) => assert_eq!(code, 4001),
            Got::End(e) => assert!(e.to_lowercase().contains("reset"), "{e}"),
            Got::Json(_) => unreachable!(),
        }
    }

    pub fn subscribe(&mut self, symbols: &[&str], groups: &[&str], id: i64) -> Value {
        let r = self.request(
            json!({"op":"subscribe","symbols":symbols,"groups":groups}),
            id,
        );
        assert_eq!(r["type"], "subscribed", "{r}");
        r
    }
}

/// Checks per-symbol sequence continuity of a message stream: a snapshot
/// (or the first tick) sets the baseline, every tick must be the next seq.
#[derive(Debug, Default)]
pub struct SeqCheck {
    pub last: std::collections::HashMap<String, u64>,
    pub ticks: u64,
    pub snapshots: u64,
}

impl SeqCheck {
    /// Feeds one message; panics on a gap, duplicate or reordering.
    pub fn feed(&mut self, v: &Value) {
        let ty = v["type"].as_str().unwrap_or("");
        if ty != "tick" && ty != "snapshot" {
            return;
        }
        let sym = v["symbol"].as_str().expect("symbol").to_string();
        let seq = v["seq"].as_u64().expect("seq");
        assert!(v["ts"].as_u64().is_some(), "ts missing in {v}");
        if ty == "snapshot" {
            self.snapshots += 1;
            if let Some(&prev) = self.last.get(&sym) {
                assert_eq!(seq, prev, "snapshot of {sym} disagrees with the stream");
            }
            self.last.insert(sym, seq);
            return;
        }
        self.ticks += 1;
        if let Some(&prev) = self.last.get(&sym) {
            assert_eq!(
                seq,
                prev + 1,
                "seq gap or duplicate on {sym}: {prev} then {seq}"
            );
        }
        self.last.insert(sym, seq);
    }
}

/// A TCP connection with a small receive buffer, so the server notices a
/// stalled reader quickly.
pub fn small_window(addr: SocketAddr, bytes: usize) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    s.set_recv_buffer_size(bytes).unwrap();
    s.connect(&addr.into()).unwrap();
    s.into()
}

/// Sends raw bytes on a fresh TCP connection and returns everything the
/// server sends until it closes (or `WAIT` passes).
pub fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + WAIT;
    loop {
        if Instant::now() >= deadline {
            return out;
        }
        match s.read(&mut buf) {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Sends raw bytes on a fresh TCP connection and returns the first read
/// of the response (an accepted upgrade stays open, so reading to the end
/// would wait).
pub fn raw_exchange_first(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(bytes).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// The status code of a raw HTTP response.
pub fn status_of(resp: &[u8]) -> u16 {
    let s = String::from_utf8_lossy(resp);
    s.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// Publishes through `p`, retrying while the publisher queue is full;
/// panics if it is still full after `WAIT`, or on any other refusal.
pub fn publish_retrying(p: &Publisher, mut t: Tick) {
    let deadline = Instant::now() + WAIT;
    loop {
        match p.publish(t) {
            Ok(()) => return,
            Err(PublishError::Full(back)) if Instant::now() < deadline => {
                t = back;
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(e @ PublishError::Full(_)) => panic!("publish failed for {WAIT:?}: {e}"),
            Err(e) => panic!("publish failed: {e}"),
        }
    }
}

/// `p.publish_batch(batch)`, retried while the publisher is behind (for
/// at most `WAIT`); panics on any other refusal.
pub fn publish_batch_retrying(p: &Publisher, mut batch: Vec<Tick>) {
    let deadline = Instant::now() + WAIT;
    loop {
        match p.publish_batch(batch) {
            Ok(()) => return,
            Err(BatchError::Full(back)) if Instant::now() < deadline => {
                batch = back;
                std::thread::sleep(Duration::from_micros(100));
            }
            Err(e) => panic!("publish_batch failed: {e}"),
        }
    }
}

/// A tick with every field.
pub fn tick(sym: &str, i: u64) -> Tick {
    Tick::new(sym)
        .bid(100.0 + i as f64 / 100.0)
        .ask(100.01 + i as f64 / 100.0)
        .bid_size(100)
        .ask_size(200)
        .last(100.0)
        .volume(i)
}

/// Publishes `sym` every `every` until `stop` (or `2 * WAIT` passes), then
/// once more, so that a reader blocked on the stream wakes up and sees
/// `stop`; returns how many ticks were published.
pub fn feed_every(
    srv: &TestServer,
    sym: &'static str,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    let p = srv.b().publisher();
    thread::spawn(move || {
        let deadline = Instant::now() + WAIT * 2;
        let mut i = 0;
        while !stop.load(SeqCst) && Instant::now() < deadline {
            if p.publish(tick(sym, i)).is_ok() {
                i += 1;
            }
            thread::sleep(every);
        }
        if p.publish(tick(sym, i)).is_ok() {
            i += 1;
        }
        i
    })
}

/// Reads `c` in a thread until `stop`, checking every tick's `seq`;
/// returns the ticks it got. Panics if the stream ends.
pub fn read_in_background<S: Read + Write + Send + 'static>(
    mut c: Client<S>,
    stop: Arc<AtomicBool>,
) -> thread::JoinHandle<u64> {
    thread::spawn(move || {
        let mut check = SeqCheck::default();
        while !stop.load(SeqCst) {
            match c.recv() {
                Got::Json(v) => check.feed(&v),
                other => panic!("a reading client lost its stream: {other:?}"),
            }
        }
        check.ticks
    })
}

/// A directory of one test's own (tests run in parallel), removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, SeqCst);
        let dir =
            std::env::temp_dir().join(format!("tickcast-test-{}-{n}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `bytes` to `name` in the directory; returns its path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    /// [`TempDir::file`] for text.
    pub fn file_text(&self, name: &str, text: &str) -> PathBuf {
        self.file(name, text.as_bytes())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The running binary; killed and reaped on drop if still running, so a
/// failing test does not leave it behind.
pub struct Binary(pub Child);

impl Binary {
    /// Sends SIGTERM.
    pub fn term(&self) {
        let kill = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .unwrap();
        assert!(kill.success());
    }

    /// Waits for the binary to exit, at most `WAIT`.
    pub fn exit_status(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(s) = self.0.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "the binary did not exit");
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the binary (`cmd`, with `--listen 127.0.0.1:0`) and reads the
/// address it prints on its first line (`ws://` or `wss://`) (within `WAIT`); its stderr goes
/// to `stderr`.
pub fn spawn_binary(mut cmd: Command, stderr: Stdio) -> (Binary, SocketAddr) {
    let mut child = Binary(cmd.stdout(Stdio::piped()).stderr(stderr).spawn().unwrap());
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut line = String::new();
        let _ = out.read_line(&mut line);
        let _ = tx.send(line);
        // Keep reading: a closed pipe would make the binary's later prints
        // fail. Ends when the binary exits.
        std::io::copy(&mut out, &mut std::io::sink())
    });
    let line = rx
        .recv_timeout(WAIT)
        .expect("the binary printed its address");
    // `ws://ADDR/ws`, or `wss://ADDR/ws` with TLS.
    let addr = line
        .split("://")
        .nth(1)
        .and_then(|s| s.split("/ws").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    (child, addr)
}
