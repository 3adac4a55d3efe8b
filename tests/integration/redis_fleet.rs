//! A fleet of nodes on one Redis stream, under faults, with a producer
//! feeding it all along: a node killed mid-run (its clients resume on the
//! others with no gap and no duplicate), and Redis restarted without
//! persistence (a new epoch: a resume naming the old one is reset) and with
//! it (the same epoch: a resume across the restart gets exactly the ticks
//! it missed). Every check compares what clients hold with what the stream
//! holds (`XRANGE`), tick by tick.
//!
//! Only new connections are used after an epoch change; what an open
//! connection sees then (reset snapshots) is tested in `redis_feed.rs`.

use std::collections::HashMap;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use redis::Connection;
use serde_json::{Value, json};
use tickcast::RedisFeed;
use tungstenite::Message;

use crate::redis_feed::{SYMBOLS, Seen, price, produce, redis_and_producer, stream_contents};
use crate::redis_server::{Persistence, RedisServer};
use crate::util::{Binary, Client, TestServer, WAIT, spawn_binary};

/// The symbols of the killed-node test.
const FLEET_SYMBOLS: [&str; 5] = ["FA", "FB", "FC", "FD", "FE"];

/// History per symbol on the nodes here: far more than a reconnect misses
/// (at 400 ticks/s per symbol, the replay cap of half the default queue,
/// 2,048 ticks, is 5 s away).
const HISTORY: usize = 8192;

/// How often the producer sends its pipeline of calls.
const PRODUCER_PERIOD: Duration = Duration::from_millis(2);

/// Ticks a client of the killed-node test reads on node A before the kill
/// (half a second of the feed), misses at least before it resumes, and
/// reads at least on the node it resumed on.
const ON_A: usize = 1000;
const MISSED: u64 = 200;
const ON_B: usize = 500;

/// A producer thread calling `tickcast_publish` at a steady rate,
/// round-robin over its symbols, until stopped.
struct Producer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<u64>>,
}

impl Producer {
    /// `per_period` pipelined calls every `PRODUCER_PERIOD` (4: 2,000
    /// ticks/s) on stream `s` of `r`.
    fn start(r: &RedisServer, symbols: &'static [&'static str], per_period: u64) -> Producer {
        let mut conn = r.connection();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            thread::spawn(move || {
                let deadline = Instant::now() + WAIT * 4;
                let (mut next, mut i) = (Instant::now(), 0u64);
                while !stop.load(SeqCst) {
                    assert!(Instant::now() < deadline, "the producer was never stopped");
                    let mut pipe = redis::pipe();
                    for _ in 0..per_period {
                        pipe.cmd("FCALL")
                            .arg("tickcast_publish")
                            .arg(1)
                            .arg("s")
                            .arg(symbols[(i % symbols.len() as u64) as usize])
                            .arg("bid")
                            .arg(price(i));
                        i += 1;
                    }
                    let seqs: Vec<u64> = pipe.query(&mut conn).expect("FCALLs");
                    assert_eq!(seqs.len() as u64, per_period);
                    // Pacing, not synchronization: the rate stays steady.
                    next += PRODUCER_PERIOD;
                    thread::sleep(next.saturating_duration_since(Instant::now()));
                }
                i
            })
        };
        Producer {
            stop,
            thread: Some(thread),
        }
    }

    /// Stops the producer; returns how many ticks it published.
    fn stop(mut self) -> u64 {
        self.stop.store(true, SeqCst);
        let t = self.thread.take().unwrap();
        t.join().expect("the producer failed")
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
    }
}

/// One message a client received.
#[derive(Debug, Clone)]
enum Msg {
    Tick(Seen),
    Snapshot {
        symbol: String,
        seq: u64,
        reset: bool,
    },
    Other(Value),
}

/// A client whose reads time out quickly, so that a reader can look at
/// what it is waiting for between messages.
fn client(addr: SocketAddr) -> Client {
    let c = Client::connect(addr);
    c.ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    c
}

/// The next message; `Ok(None)` if none came within the read timeout (or
/// it was a ping); `Err` with what ended the connection.
fn next_msg(c: &mut Client) -> Result<Option<Msg>, String> {
    let text = match c.ws.read() {
        Ok(Message::Text(t)) => t.to_string(),
        Ok(Message::Close(f)) => return Err(format!("close frame {f:?}")),
        Ok(_) => return Ok(None),
        Err(tungstenite::Error::Io(e))
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e.to_string()),
    };
    let v: Value = serde_json::from_str(&text).expect("the server sent JSON");
    Ok(Some(match v["type"].as_str() {
        Some("tick") => Msg::Tick(Seen::of(&text, &v)),
        Some("snapshot") => Msg::Snapshot {
            symbol: v["symbol"].as_str().expect("symbol").to_string(),
            seq: v["seq"].as_u64().expect("seq"),
            reset: v["reset"] == true,
        },
        _ => Msg::Other(v),
    }))
}

/// What one connection received, in order.
#[derive(Debug, Default)]
struct Log(Vec<Msg>);

impl Log {
    fn ticks(&self) -> usize {
        self.0.iter().filter(|m| matches!(m, Msg::Tick(_))).count()
    }

    /// The ticks of `sym`, in the order received.
    fn ticks_of(&self, sym: &str) -> Vec<Seen> {
        self.0
            .iter()
            .filter_map(|m| match m {
                Msg::Tick(t) if t.symbol == sym => Some(t.clone()),
                _ => None,
            })
            .collect()
    }

    /// Every snapshot: (symbol, seq, reset).
    fn snapshots(&self) -> Vec<(&str, u64, bool)> {
        self.0
            .iter()
            .filter_map(|m| match m {
                Msg::Snapshot { symbol, seq, reset } => Some((symbol.as_str(), *seq, *reset)),
                _ => None,
            })
            .collect()
    }

    /// The first message about `sym`: a tick or a snapshot.
    fn first_of(&self, sym: &str) -> Option<&Msg> {
        self.0.iter().find(|m| match m {
            Msg::Tick(t) => t.symbol == sym,
            Msg::Snapshot { symbol, .. } => symbol == sym,
            Msg::Other(_) => false,
        })
    }

    /// The reply with `id`.
    fn reply(&self, id: i64) -> Option<&Value> {
        self.0.iter().find_map(|m| match m {
            Msg::Other(v) if v["id"] == id => Some(v),
            _ => None,
        })
    }

    /// The last seq held per symbol, from ticks and snapshots.
    fn held(&self) -> HashMap<String, u64> {
        let mut held = HashMap::new();
        for m in &self.0 {
            match m {
                Msg::Tick(t) => held.insert(t.symbol.clone(), t.seq),
                Msg::Snapshot { symbol, seq, .. } => held.insert(symbol.clone(), *seq),
                Msg::Other(_) => None,
            };
        }
        held
    }

    /// Whether it holds every symbol of `targets` up to its seq.
    fn reaches(&self, targets: &HashMap<String, u64>) -> bool {
        let held = self.held();
        targets
            .iter()
            .all(|(sym, &seq)| held.get(sym).is_some_and(|&h| h >= seq))
    }

    /// Reads `c` until `done` holds; panics if the connection ends or
    /// `WAIT` passes.
    fn read_until(&mut self, c: &mut Client, what: &str, done: impl Fn(&Log) -> bool) {
        let deadline = Instant::now() + WAIT;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "no {what} within {WAIT:?}: {} ticks, the last message {:?}",
                self.ticks(),
                self.0.last()
            );
            match next_msg(c) {
                Ok(Some(m)) => self.0.push(m),
                Ok(None) => {}
                Err(end) => panic!("the connection ended waiting for {what}: {end}"),
            }
        }
    }

    /// A `ping` as a fence: its `pong` is queued behind every tick already
    /// queued for the connection, so a duplicate sent after the last tick
    /// expected shows up in the log.
    fn fence(&mut self, c: &mut Client, id: i64) {
        c.send(json!({"op":"ping","id":id}));
        self.read_until(c, "pong", |l| {
            l.reply(id).is_some_and(|v| v["type"] == "pong")
        });
    }
}

/// The stream's entries of `sym` after seq `after`, in order.
fn entries_after(want: &[Seen], sym: &str, after: u64) -> Vec<Seen> {
    want.iter()
        .filter(|t| t.symbol == sym && t.seq > after)
        .cloned()
        .collect()
}

/// The last seq of each symbol in the stream; asserts each symbol's seqs
/// are 1, 2, 3, … in the stream itself.
fn last_seqs(want: &[Seen]) -> HashMap<String, u64> {
    let mut last: HashMap<String, u64> = HashMap::new();
    for t in want {
        let l = last.entry(t.symbol.clone()).or_default();
        assert_eq!(t.seq, *l + 1, "the stream's own numbering of {}", t.symbol);
        *l = t.seq;
    }
    last
}

/// Asserts `got` is `want`, naming the first difference (the vectors are
/// thousands of ticks long).
fn assert_same(what: &str, got: &[Seen], want: &[Seen]) {
    if got == want {
        return;
    }
    let i = got.iter().zip(want).take_while(|(g, w)| g == w).count();
    panic!(
        "{what}: got {} ticks, the stream has {}; first difference at {i}: got {:?}, want {:?} (got from there: {:?})",
        got.len(),
        want.len(),
        got.get(i),
        want.get(i),
        got.get(i..(i + 5).min(got.len()))
            .map(|s| s.iter().map(|t| t.seq).collect::<Vec<_>>()),
    );
}

fn stream_epoch(c: &mut Connection) -> Option<String> {
    redis::cmd("GET").arg("s:epoch").query(c).unwrap()
}

/// Polls `f` until it gives a value; panics past `WAIT`.
fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Connects probes to `addr` until one's `welcome` carries `epoch`.
fn wait_welcome_epoch(addr: SocketAddr, epoch: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let last = Client::connect(addr).welcome["epoch"].take();
        if last == epoch {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} still welcomes with epoch {last}, not {epoch}"
        );
        thread::sleep(Duration::from_millis(10));
    }
}

/// A node binary fed from stream `s` of `r` alone, with one I/O thread;
/// no `TICKCAST_*` variable inherited from the test's environment.
fn spawn_node(r: &RedisServer) -> (Binary, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickcast"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TICKCAST_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--listen", "127.0.0.1:0", "--no-pin", "--io-threads", "1"])
        .args(["--synthetic-rate", "0", "--history-depth"])
        .arg(HISTORY.to_string())
        .arg("--feed")
        .arg(format!("{}/s", r.url()));
    spawn_binary(cmd, Stdio::null())
}

/// An in-process node fed from stream `s` of `r`, its feed up.
fn fed_node(r: &RedisServer) -> TestServer {
    let feed = RedisFeed::parse(&format!("{}/s", r.url())).unwrap();
    let n = TestServer::start(|c| {
        c.feeds = vec![feed];
        c.history_depth = HISTORY;
    });
    n.wait_stats("the feed up", |s| s.feeds == 1 && s.feeds_down == 0);
    n
}

/// What the killed-node test's threads share with it.
#[derive(Default)]
struct Fleet {
    /// Clients that have read enough on node A.
    warm: AtomicUsize,
    /// Set just before node A is killed.
    killed: AtomicBool,
    /// Clients that have read enough on the node they resumed on.
    resumed: AtomicUsize,
    /// The last seq of each symbol, once the producer stopped.
    targets: OnceLock<HashMap<String, u64>>,
}

/// What one client of node A received: there until it died, then on the
/// node it resumed on.
struct Roamed {
    epoch_a: Value,
    epoch_b: Value,
    on_a: Log,
    /// What ended the connection to A.
    end_a: String,
    /// The ticks the stream had past what the client held when it resumed.
    missed: u64,
    on_b: Log,
}

/// A client's life: subscribe on node `a` and read until it goes away,
/// then resume on node `b` (once it has missed at least `MISSED` ticks, so
/// that there is something to miss) and read until every symbol reaches
/// the stream's end (`fleet.targets`).
fn roam(a: SocketAddr, b: SocketAddr, redis: &str, fleet: &Fleet) -> Roamed {
    let deadline = Instant::now() + WAIT * 3;
    let mut c = client(a);
    let epoch_a = c.welcome["epoch"].clone();
    c.send(json!({"op":"subscribe","id":1,"symbols":FLEET_SYMBOLS}));
    let (mut on_a, mut warm) = (Log::default(), false);
    let end_a = loop {
        assert!(
            Instant::now() < deadline,
            "node A did not go away: {} ticks",
            on_a.ticks()
        );
        match next_msg(&mut c) {
            Ok(Some(m)) => on_a.0.push(m),
            Ok(None) => {}
            Err(end) => break end,
        }
        if !warm && on_a.ticks() >= ON_A {
            warm = true;
            fleet.warm.fetch_add(1, SeqCst);
        }
    };
    assert!(
        fleet.killed.load(SeqCst),
        "lost node A before it was killed: {end_a}"
    );
    drop(c);
    // A symbol's seq counts its entries, so the stream holds the sum of
    // the seqs held, plus what the client missed.
    let held = on_a.held();
    let held_count: u64 = held.values().sum();
    let mut redis = redis::Client::open(redis)
        .unwrap()
        .get_connection_with_timeout(WAIT)
        .unwrap();
    let missed = wait_for("ticks missed", || {
        let len = xlen(&mut redis);
        (len >= held_count + MISSED).then_some(len - held_count)
    });
    let mut c = client(b);
    let epoch_b = c.welcome["epoch"].clone();
    c.send(json!({"op":"subscribe","id":2,"symbols":FLEET_SYMBOLS,
        "epoch":epoch_a,"resume":held}));
    let (mut on_b, mut resumed) = (Log::default(), false);
    loop {
        if let Some(t) = fleet.targets.get()
            && on_b.reaches(t)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the resumed client did not reach the stream's end: {} ticks, holds {:?}",
            on_b.ticks(),
            on_b.held()
        );
        match next_msg(&mut c) {
            Ok(Some(m)) => on_b.0.push(m),
            Ok(None) => {}
            Err(end) => panic!("lost the node resumed on: {end}"),
        }
        if !resumed && on_b.ticks() >= ON_B {
            resumed = true;
            fleet.resumed.fetch_add(1, SeqCst);
        }
    }
    on_b.fence(&mut c, 3);
    Roamed {
        epoch_a,
        epoch_b,
        on_a,
        end_a,
        missed,
        on_b,
    }
}

/// Checks one roamed client against the stream: per symbol, from its first
/// held seq (A's snapshot, or 0 without one) to the end, every tick once,
/// in order, over both nodes.
fn check_roamed(i: usize, r: &Roamed, epoch: &str, want: &[Seen]) {
    assert_eq!((&r.epoch_a, &r.epoch_b), (&json!(epoch), &json!(epoch)));
    assert!(
        !r.end_a.starts_with("close frame"),
        "client {i}: a killed node sends no close frame: {}",
        r.end_a
    );
    let reply = r.on_a.reply(1).map(|v| v["type"].clone());
    assert_eq!(reply, Some(json!("subscribed")), "client {i} on A");
    let reply = r.on_b.reply(2).cloned().unwrap_or_default();
    assert_eq!(reply["type"], "subscribed", "client {i} on B: {reply}");
    assert!(
        r.on_b.snapshots().is_empty(),
        "client {i} resumed, not reset or resnapshotted: {:?}",
        r.on_b.snapshots()
    );
    assert!(
        r.on_a.ticks() >= ON_A && r.on_b.ticks() >= ON_B,
        "client {i}"
    );
    // The missed ticks came from B's history (they are in `on_b`: checked
    // below with the rest).
    assert!(r.missed >= MISSED, "client {i}");
    eprintln!(
        "DIAG client {i}: on A {} ticks, missed {}, on B {} ticks, snaps A {:?}",
        r.on_a.ticks(),
        r.missed,
        r.on_b.ticks(),
        r.on_a.snapshots()
    );
    let mut total = 0;
    for sym in FLEET_SYMBOLS {
        let snaps: Vec<_> = r
            .on_a
            .snapshots()
            .into_iter()
            .filter(|s| s.0 == sym)
            .collect();
        let from = match r.on_a.first_of(sym) {
            Some(Msg::Snapshot { seq, reset, .. }) => {
                assert!(!reset, "client {i}: {sym}'s first snapshot is a reset");
                *seq
            }
            _ => 0,
        };
        assert!(
            snaps.len() <= 1,
            "client {i}: {sym} snapshotted again: {snaps:?}"
        );
        let got: Vec<Seen> = r
            .on_a
            .ticks_of(sym)
            .into_iter()
            .chain(r.on_b.ticks_of(sym))
            .collect();
        assert_same(
            &format!("client {i}, {sym} after seq {from}"),
            &got,
            &entries_after(want, sym, from),
        );
        total += got.len();
    }
    assert_eq!(total, r.on_a.ticks() + r.on_b.ticks(), "client {i}");
}

/// Three node processes on one stream and a producer at 2,000 ticks/s;
/// four clients on node A, which is SIGKILLed mid-run; each resumes on
/// node B or C with the epoch and the seqs it holds, and ends up with
/// exactly the stream.
#[test]
fn a_node_killed_mid_run_its_clients_resume_elsewhere_with_no_gap() {
    let test = "a_node_killed_mid_run_its_clients_resume_elsewhere_with_no_gap";
    let Some((r, mut conn)) = redis_and_producer(test, Persistence::None) else {
        return;
    };
    let mut nodes: Vec<(Binary, SocketAddr)> = (0..3).map(|_| spawn_node(&r)).collect();
    let producer = Producer::start(&r, &FLEET_SYMBOLS, 4);
    let epoch = wait_for("the stream's epoch", || stream_epoch(&mut conn));
    for (_, addr) in &nodes {
        wait_welcome_epoch(*addr, &epoch);
    }
    let fleet = Arc::new(Fleet::default());
    let a = nodes[0].1;
    let clients: Vec<JoinHandle<Roamed>> = (0..4)
        .map(|i| {
            let (b, url, fleet) = (nodes[1 + i % 2].1, r.url(), fleet.clone());
            thread::spawn(move || roam(a, b, &url, &fleet))
        })
        .collect();
    let all = |n: &AtomicUsize| {
        assert!(
            !clients.iter().any(|c| c.is_finished()),
            "a client stopped early"
        );
        (n.load(SeqCst) == clients.len()).then_some(())
    };
    wait_for("every client reading on node A", || all(&fleet.warm));

    fleet.killed.store(true, SeqCst);
    let (mut node_a, _) = nodes.remove(0);
    node_a.0.kill().unwrap(); // SIGKILL: no shutdown, no close frames
    let status = node_a.0.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    wait_for("every client resumed", || all(&fleet.resumed));

    let produced = producer.stop();
    let want = stream_contents(&mut conn, "s");
    assert_eq!(want.len() as u64, produced, "the stream holds every call");
    let targets = last_seqs(&want);
    assert_eq!(targets.len(), FLEET_SYMBOLS.len());
    fleet.targets.set(targets).unwrap();
    for (i, c) in clients.into_iter().enumerate() {
        let roamed = c.join().unwrap_or_else(|_| panic!("client {i} failed"));
        check_roamed(i, &roamed, &epoch, &want);
    }
}

/// Subscribes a fresh client to SYMBOLS resuming `resume` in `epoch`
/// (subscribe id 1).
fn resuming(n: &TestServer, epoch: &str, resume: &HashMap<String, u64>) -> (Client, Log) {
    let mut c = client(n.addr);
    c.send(json!({"op":"subscribe","id":1,"symbols":SYMBOLS,"epoch":epoch,"resume":resume}));
    (c, Log::default())
}

/// A client subscribed to SYMBOLS reads the 300 ticks produced next (100
/// per symbol), once the node has published the `from` before them;
/// returns the epoch of its welcome and the seqs it holds.
fn read_a_while(
    n: &TestServer,
    producer: &mut Connection,
    from: u64,
) -> (String, HashMap<String, u64>) {
    n.wait_stats("the stream so far", |s| s.ticks_published == from);
    let mut c = client(n.addr);
    let epoch = c.welcome["epoch"].as_str().unwrap().to_string();
    c.send(json!({"op":"subscribe","id":1,"symbols":SYMBOLS}));
    let mut log = Log::default();
    log.read_until(&mut c, "subscribed", |l| l.reply(1).is_some());
    produce(producer, "s", from, 300);
    let targets = last_seqs(&stream_contents(producer, "s"));
    log.read_until(&mut c, "the stream's end", |l| l.reaches(&targets));
    log.fence(&mut c, 2);
    assert_eq!(log.ticks(), 300, "{:?}", log.held());
    (epoch, log.held())
}

fn xlen(c: &mut Connection) -> u64 {
    redis::cmd("XLEN").arg("s").query(c).unwrap()
}

/// Starts a producer (1,000 ticks/s) and, once it is going, makes the
/// clients (`subscribe`), so that their subscriptions meet a live feed;
/// lets it run until each client holds 100 ticks per symbol beyond the
/// stream's end before it started, stops it, then reads each client to the
/// stream's end and past a fence. Returns the stream and the clients.
fn live_until_the_end(
    r: &RedisServer,
    producer: &mut Connection,
    subscribe: impl FnOnce() -> Vec<(Client, Log)>,
) -> (Vec<Seen>, Vec<(Client, Log)>) {
    let before = last_seqs(&stream_contents(producer, "s"));
    let further: HashMap<String, u64> = before.into_iter().map(|(s, q)| (s, q + 100)).collect();
    let len = xlen(producer);
    let live = Producer::start(r, &SYMBOLS, 2);
    wait_for("the producer going", || {
        (xlen(producer) >= len + 30).then_some(())
    });
    let mut clients = subscribe();
    for (c, log) in clients.iter_mut() {
        log.read_until(c, "live ticks", |l| l.reaches(&further));
    }
    live.stop();
    let want = stream_contents(producer, "s");
    let targets = last_seqs(&want);
    for (c, log) in clients.iter_mut() {
        log.read_until(c, "the stream's end", |l| l.reaches(&targets));
        log.fence(c, 2);
        let reply = log.reply(1).cloned().unwrap_or_default();
        assert_eq!(reply["type"], "subscribed", "{reply}");
    }
    (want, clients)
}

/// Redis restarted without persistence: the stream's history is gone and
/// the first call after makes a new epoch. The node then welcomes with it;
/// a resume naming the old epoch gets a reset snapshot for every symbol
/// (though the seqs it holds exist in the new numbering), then contiguous
/// ticks; a resume in the new epoch gets the missed ticks, no reset.
#[test]
fn redis_restarted_without_persistence_resumes_get_a_reset() {
    let test = "redis_restarted_without_persistence_resumes_get_a_reset";
    let Some((mut r, mut producer)) = redis_and_producer(test, Persistence::None) else {
        return;
    };
    let n = fed_node(&r);
    produce(&mut producer, "s", 0, 300);
    let old = stream_epoch(&mut producer).unwrap();
    wait_welcome_epoch(n.addr, &old);
    let (epoch, held) = read_a_while(&n, &mut producer, 300);
    assert_eq!(epoch, old);
    assert!(SYMBOLS.iter().all(|s| held[*s] == 200), "{held:?}");

    r.kill();
    n.wait_stats("the feed down", |s| s.feeds_down == 1);
    r.restart();
    let mut producer = r.connection();
    tickcast::redis_stream::install(&mut producer).unwrap();
    // 300 per symbol: the seqs the old client holds (200) exist again.
    let seqs = produce(&mut producer, "s", 0, 900);
    assert_eq!((seqs[0], seqs.iter().max()), (1, Some(&300)));
    let new = stream_epoch(&mut producer).unwrap();
    assert_ne!(new, old, "a lost history is a new epoch");
    wait_welcome_epoch(n.addr, &new);
    n.wait_stats("the new history", |s| s.ticks_published == 600 + 900);

    let in_new: HashMap<String, u64> = SYMBOLS.iter().map(|s| (s.to_string(), 250)).collect();
    let (want, clients) = live_until_the_end(&r, &mut producer, || {
        vec![resuming(&n, &old, &held), resuming(&n, &new, &in_new)]
    });
    for (c, _) in &clients {
        assert_eq!(c.welcome["epoch"], new.as_str());
    }
    let [(_, reset), (_, resumed)] = &clients[..] else {
        unreachable!()
    };
    let snaps = reset.snapshots();
    assert_eq!(
        snaps.len(),
        SYMBOLS.len(),
        "one reset per symbol: {snaps:?}"
    );
    for sym in SYMBOLS {
        let from = match reset.first_of(sym) {
            Some(Msg::Snapshot {
                seq, reset: true, ..
            }) => *seq,
            other => panic!("{sym} began with {other:?}, not a reset snapshot"),
        };
        assert!(
            from >= 300,
            "{sym}'s reset is at the new newest, not {from}"
        );
        let what = format!("{sym} after its reset at {from}");
        assert_same(
            &what,
            &reset.ticks_of(sym),
            &entries_after(&want, sym, from),
        );
        let what = format!("{sym} resumed in the new epoch from 250");
        assert_same(
            &what,
            &resumed.ticks_of(sym),
            &entries_after(&want, sym, 250),
        );
    }
    assert!(
        resumed.snapshots().is_empty(),
        "a resume in the new epoch is not reset: {:?}",
        resumed.snapshots()
    );
}

/// Redis restarted with its append-only file: the stream and its epoch
/// survive, the numbering continues, and a client that left before the
/// restart resumes after it with exactly the ticks it missed on both sides
/// of it, no reset.
#[test]
fn redis_restarted_with_persistence_resumes_without_reset() {
    let test = "redis_restarted_with_persistence_resumes_without_reset";
    let Some((mut r, mut producer)) = redis_and_producer(test, Persistence::AppendOnly) else {
        return;
    };
    let n = fed_node(&r);
    produce(&mut producer, "s", 0, 300);
    let epoch = stream_epoch(&mut producer).unwrap();
    wait_welcome_epoch(n.addr, &epoch);
    let (seen, held) = read_a_while(&n, &mut producer, 300);
    assert_eq!(seen, epoch);
    assert!(SYMBOLS.iter().all(|s| held[*s] == 200), "{held:?}");
    produce(&mut producer, "s", 600, 150); // missed before the restart

    r.kill();
    n.wait_stats("the feed down", |s| s.feeds_down == 1);
    r.restart();
    let mut producer = r.connection();
    assert_eq!(stream_epoch(&mut producer), Some(epoch.clone()));
    n.wait_stats("the feed up", |s| s.feeds_down == 0);
    let seqs = produce(&mut producer, "s", 750, 150); // missed after it
    assert_eq!(seqs[0], 251, "the numbering continues");
    n.wait_stats("every tick", |s| s.ticks_published == 900);
    assert_eq!(stream_epoch(&mut producer), Some(epoch.clone()));

    let (want, clients) =
        live_until_the_end(&r, &mut producer, || vec![resuming(&n, &epoch, &held)]);
    let [(c, resumed)] = &clients[..] else {
        unreachable!()
    };
    assert_eq!(c.welcome["epoch"], epoch.as_str());
    assert!(
        resumed.snapshots().is_empty(),
        "resumed, not reset: {:?}",
        resumed.snapshots()
    );
    for sym in SYMBOLS {
        let what = format!("{sym} resumed from 200 across the restart");
        let got = resumed.ticks_of(sym);
        assert_same(&what, &got, &entries_after(&want, sym, 200));
        assert!(got.len() > 100, "{sym}: the 100 missed and live ones");
    }
}
