//! The client engine: many WebSocket clients on a few mio event loops.
//!
//! ```text
//!  run(opts) ─┬─ worker thread 0: Poll + Slab<Conn> ─ connect → handshake → subscribe → read frames
//!             ├─ worker thread 1: ...
//!             └─ coordinator (this thread): waits for connects, sets the measured window,
//!                prints progress (interval histograms arrive over a channel), joins, merges
//! ```
//!
//! Each worker owns its connections outright (no locks on the data path):
//! one 64 KiB read buffer per thread, a small per-connection `pending`
//! buffer holding at most one partial frame, and per-thread histograms that
//! are merged when the run ends.
//!
//! Invariants:
//! - a connection's bytes are parsed in arrival order, whole frames only;
//!   `pending` holds the tail of the last read that was not yet a whole frame;
//! - every socket is read until `WouldBlock` or a short read (mio is
//!   edge-triggered; a short read leaves the socket empty, so the next
//!   arrival raises a new edge; after a hang-up, until EOF) or, past
//!   [`READS_PER_EVENT`], put on the `again` list so the loop comes back to
//!   it without waiting for a new event;
//! - every loop is bounded in time: connects by `connect_timeout`, the run by
//!   the measured window, the final drain by [`DRAIN_TIMEOUT`].

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use hdrhistogram::Histogram;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};
use slab::Slab;
use socket2::{Domain, Protocol, Socket, Type};

use crate::fastpath::{TickSink, take_ticks};
use crate::frame::{self, FrameError, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Parsed};
use crate::handshake::ClientHandshake;
use crate::intern::SymbolTable;
use crate::latency::LatencyCounts;
use crate::options::{Options, Scenario, SlowMode, Subscription, Target};
use crate::scan::{Control, Kind, Scanned, Scanner, TsPrefix, parse_control, scan_fast};
use crate::seqcheck::{SeqCounts, SeqTracker};
use crate::stats::latency_histogram;
use crate::tls::Wire;

/// Size of each worker's read buffer. 64 KiB reads amortize the syscall
/// over hundreds of tick frames; larger reads did not help on loopback.
pub const READ_CHUNK: usize = 64 * 1024;

/// Reads per readiness event before the socket goes to the back of the
/// line, so one busy connection cannot starve the others on its thread.
pub const READS_PER_EVENT: usize = 8;

/// How long slow clients get after the window to read out their socket and
/// find the server's close frame.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(3);

/// Receive buffer of slow clients, bytes (see `connect`).
const SLOW_RCVBUF: usize = 64 * 1024;

/// Connects started per turn of a worker's loop (see `start_connects`).
pub const CONNECT_BURST: usize = 64;

/// Upper bound on one `poll` wait: the loop re-checks deadlines, slow-reader
/// budgets and the stop flag at least this often.
const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// How a client's connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// Still open when the run ended (we then closed it with 1000).
    StillOpen,
    /// The server sent a close frame.
    Closed {
        /// Close code (1005 when the frame had none).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The TCP stream ended without a close frame.
    Eof,
    /// A socket error after the handshake (e.g. reset).
    IoError(String),
    /// The server broke the framing rules.
    Protocol(String),
    /// Closed by the churn scenario.
    Churned,
    /// Connect or handshake failed.
    ConnectFailed(String),
}

/// What part a client plays in its scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Reads everything as fast as it can (the clients whose latency and
    /// delivery the targets are about).
    Fast,
    /// A slow reader of the slow scenario (`--slow-mode`).
    Slow,
    /// Reads normally, then stops reading at its stall moment and keeps the
    /// socket open (stalled and soak scenarios).
    Stalled,
    /// Connects in the storm, next to a streaming population.
    Newcomer,
}

/// What one client saw.
#[derive(Debug, Clone)]
pub struct ClientResult {
    /// Client number (0-based, churn replacements continue after `clients`).
    pub index: usize,
    /// The target it connected to (an index into `Options::targets`:
    /// client i goes to target i % N).
    pub target: usize,
    /// Whether this was a slow or stalled client.
    pub slow: bool,
    /// Its part in the scenario.
    pub role: Role,
    /// Its local address: the server's peer address for it.
    pub local_addr: Option<SocketAddr>,
    /// When its connect started, ns after the run's start.
    pub started_ns: u64,
    /// When its result was recorded (it ended), ns after the run's start.
    pub ended_ns: u64,
    /// When a stalled client stopped reading, ns after the run's start.
    pub stalled_ns: Option<u64>,
    /// When a stalled client, after it stalled, first saw the server hang
    /// up (a reset, or a FIN that reached it), ns after the run's start.
    pub hangup_ns: Option<u64>,
    /// Time from its connect call until every expected snapshot had
    /// arrived (`Options::expect_snapshots`), ns.
    pub snapshots_ns: Option<u64>,
    /// TCP connect + handshake time, if the handshake completed.
    pub connect_ns: Option<u64>,
    /// Ticks received inside the measured window.
    pub ticks_window: u64,
    /// Ticks received in total.
    pub ticks_total: u64,
    /// Snapshots received.
    pub snapshots: u64,
    /// Sequence check results.
    pub seq: SeqCounts,
    /// Whether the client was open for the whole measured window.
    pub full_window: bool,
    /// How it ended.
    pub end: End,
}

/// Counters a worker keeps for the whole thread.
#[derive(Debug, Clone, Default)]
pub struct Counters {
    /// Text frames received inside the window.
    pub msgs_window: u64,
    /// Ticks received inside the window.
    pub ticks_window: u64,
    /// Bytes read inside the window (after the handshake).
    pub bytes_window: u64,
    /// Control messages by type (`welcome`, `subscribed`, `error:CODE`, …).
    pub control: BTreeMap<String, u64>,
    /// Text frames that were not valid messages.
    pub invalid: u64,
    /// Binary frames (the protocol has none).
    pub binary: u64,
    /// Pings answered.
    pub pings: u64,
    /// Ticks whose `ts` was later than the receive time (clock skew).
    pub negative_latency: u64,
}

/// Everything one worker thread reports at the end.
#[derive(Debug)]
pub struct WorkerResult {
    /// Per-client results.
    pub clients: Vec<ClientResult>,
    /// Latency of fast clients' ticks in the window, ns.
    pub fast: Histogram<u64>,
    /// Latency of slow clients' ticks in the window, ns.
    pub slow: Histogram<u64>,
    /// Latency of storm newcomers' ticks in the window, ns.
    pub newcomer: Histogram<u64>,
    /// Connect + handshake times, ns.
    pub connect: Histogram<u64>,
    /// Thread-wide counters.
    pub counters: Counters,
}

/// State shared between the coordinator and the workers (atomics only).
#[derive(Debug)]
pub struct Shared {
    /// Set by the coordinator to end the run early (e.g. on failure).
    pub stop: AtomicBool,
    /// Start of the measured window, ns after `t0`; `u64::MAX` until known.
    pub window_start: AtomicU64,
    /// End of the measured window, ns after `t0`; `u64::MAX` until known.
    pub window_end: AtomicU64,
    /// Initial clients whose connect attempt has settled (open or failed).
    pub settled: AtomicU64,
    /// Connections open right now.
    pub open: AtomicU64,
    /// Connect failures so far.
    pub failed: AtomicU64,
    /// Closes with code 4001 so far.
    pub evicted: AtomicU64,
    /// Text frames received so far (any time), for progress lines.
    pub msgs: AtomicU64,
    /// When stalled clients stop reading (stalled scenario), ns after
    /// `t0`; `u64::MAX` until known.
    pub stall_at: AtomicU64,
    /// When the storm's newcomers connect (connect-storm with streaming),
    /// ns after `t0`; `u64::MAX` until known.
    pub storm_at: AtomicU64,
}

impl Shared {
    fn new() -> Self {
        Shared {
            stop: AtomicBool::new(false),
            window_start: AtomicU64::new(u64::MAX),
            window_end: AtomicU64::new(u64::MAX),
            settled: AtomicU64::new(0),
            open: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            evicted: AtomicU64::new(0),
            msgs: AtomicU64::new(0),
            stall_at: AtomicU64::new(u64::MAX),
            storm_at: AtomicU64::new(u64::MAX),
        }
    }
}

/// Wall-clock time in ns since the UNIX epoch (the unit of `ts`).
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A small xorshift generator: masks, random picks. Not cryptographic;
/// RFC 6455 masks only need to be unpredictable to intermediaries, and
/// there are none on loopback.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from the clock and `salt`.
    pub fn new(salt: u64) -> Self {
        Rng((wall_ns() ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)) | 1)
    }

    /// Next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A value in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn mask(&mut self) -> [u8; 4] {
        (self.next_u64() as u32).to_ne_bytes()
    }
}

/// One client to connect.
#[derive(Debug, Clone)]
struct Spec {
    index: usize,
    role: Role,
    /// Part of the connect phase the window waits for (not a churn or
    /// soak replacement, nor a storm newcomer).
    initial: bool,
}

impl Spec {
    fn is_slow(&self) -> bool {
        matches!(self.role, Role::Slow | Role::Stalled)
    }
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum State {
    Connecting,
    Handshaking,
    Open,
}

#[derive(Debug)]
struct Conn {
    spec: Spec,
    /// Index of its target in `Plan::targets`.
    target: usize,
    stream: Wire,
    state: State,
    started: Instant,
    hs: Option<ClientHandshake>,
    hs_buf: Vec<u8>,
    pending: Vec<u8>,
    out: Vec<u8>,
    seq: SeqTracker,
    connect_ns: Option<u64>,
    opened_at: u64,
    ticks_window: u64,
    ticks_total: u64,
    snapshots: u64,
    /// Set once the connection is finished; the loop then removes it.
    end: Option<End>,
    /// Stop-mode slow client: not reading until the drain phase.
    paused: bool,
    /// Rate-mode slow client: bytes it may still read.
    budget: f64,
    /// Local address, once connected.
    local: Option<SocketAddr>,
    /// Connect call, ns after `t0`.
    started_rel: u64,
    /// Stalled client: when it stopped reading (ns after `t0`).
    stalled_at: Option<u64>,
    /// Stalled client: when it saw the server hang up after stalling.
    hangup_at: Option<u64>,
    /// Connect call to the last expected snapshot, ns.
    snapshots_ns: Option<u64>,
    /// Storm newcomer with `--storm-leave`: when it closes (ns after `t0`).
    leave_at: Option<u64>,
}

/// Static per-run facts every worker needs.
#[derive(Debug)]
struct Plan {
    /// Clients connect round-robin: client i to `targets[i % len]`.
    targets: Vec<Target>,
    /// Per target, for `wss://`: what each connection's TLS starts from.
    tls: Vec<Option<crate::tls::Client>>,
    opts: Options,
    universe: Vec<String>,
    t0: Instant,
}

impl Plan {
    fn rebuilt(&self, opts: Options) -> Plan {
        Plan {
            targets: self.targets.clone(),
            tls: self.tls.clone(),
            opts,
            universe: self.universe.clone(),
            t0: self.t0,
        }
    }
}

/// Per-thread state used while parsing; split from the connection slab so
/// both can be borrowed at once.
struct Ctx {
    scanner: Scanner,
    symbols: SymbolTable,
    rng: Rng,
    fast: Histogram<u64>,
    fast_interval: Histogram<u64>,
    slow: Histogram<u64>,
    newcomer: Histogram<u64>,
    /// Latencies counted since the last flush into the histograms above
    /// (see `latency`: exact, cheaper per tick).
    counts: RoleCounts,
    /// The fast path's `ts` prefix, kept across reads.
    ts_prefix: TsPrefix,
    counters: Counters,
    msgs_unflushed: u64,
    /// Snapshots a subscription brings (`u64::MAX`: unknown).
    expect_snapshots: u64,
}

impl Ctx {
    fn bump(&mut self, key: &str) {
        *self.counters.control.entry(key.to_string()).or_insert(0) += 1;
    }

    /// Moves the counted latencies into the histograms (before the
    /// interval histogram is sent, and at the end).
    fn flush_latencies(&mut self) {
        self.counts.fast.flush_into(&mut self.fast_interval);
        self.counts.slow.flush_into(&mut self.slow);
        self.counts.newcomer.flush_into(&mut self.newcomer);
    }
}

/// Latency counts per role, flushed into `Ctx::fast_interval`, `slow` and
/// `newcomer`.
#[derive(Debug, Default)]
struct RoleCounts {
    fast: LatencyCounts,
    slow: LatencyCounts,
    newcomer: LatencyCounts,
}

impl RoleCounts {
    fn of(&mut self, role: Role) -> &mut LatencyCounts {
        match role {
            Role::Fast => &mut self.fast,
            Role::Slow | Role::Stalled => &mut self.slow,
            Role::Newcomer => &mut self.newcomer,
        }
    }
}

/// Timing of the chunk being parsed.
#[derive(Clone, Copy)]
struct Now {
    wall: u64,
    in_window: bool,
}

struct Worker {
    plan: Arc<Plan>,
    shared: Arc<Shared>,
    progress: mpsc::Sender<Histogram<u64>>,
    poll: Poll,
    conns: Slab<Conn>,
    buf: Vec<u8>,
    ctx: Ctx,
    queue: VecDeque<Spec>,
    /// Storm newcomers, released into `queue` at the storm moment.
    storm: VecDeque<Spec>,
    /// The storm has started: connects are no longer throttled.
    stormed: bool,
    /// Stalled clients open but not stalled yet (recounted by each
    /// `apply_stalls` pass).
    stall_pending: usize,
    again: Vec<Token>,
    results: Vec<ClientResult>,
    connect_hist: Histogram<u64>,
    in_flight: usize,
    next_index: usize,
}

/// Runs the client side of one scenario pass against `targets` (client i
/// connects to `targets[i % len]`) and returns the raw per-worker results,
/// merged by the caller. `t0` is the run's time origin: every `*_ns`
/// instant in the results is measured from it.
pub(crate) fn drive(
    opts: &Options,
    targets: &[Target],
    universe: Vec<String>,
    t0: Instant,
) -> anyhow::Result<(Vec<WorkerResult>, Window)> {
    if targets.is_empty() {
        anyhow::bail!("no target to connect to");
    }
    let mut tls = Vec::with_capacity(targets.len());
    for target in targets {
        tls.push(match (target.tls, &opts.trust) {
            (false, _) => None,
            (true, Some(trust)) => Some(crate::tls::Client::new(target, trust)?),
            (true, None) => anyhow::bail!("a wss:// target needs --ca FILE or --insecure"),
        });
    }
    let plan = Arc::new(Plan {
        targets: targets.to_vec(),
        tls,
        opts: opts.clone(),
        universe,
        t0,
    });
    let shared = Arc::new(Shared::new());
    let (tx, rx) = mpsc::channel::<Histogram<u64>>();
    let people = population(opts);
    let threads = opts.threads.min(people.len()).max(1);
    let initial = people.iter().filter(|s| s.initial).count();
    let mut handles = Vec::new();
    for id in 0..threads {
        // Client i goes to thread i % threads (slow and stalled clients are
        // spread evenly over the indexes, so over the threads too).
        let (specs, storm): (VecDeque<Spec>, VecDeque<Spec>) = people
            .iter()
            .skip(id)
            .step_by(threads)
            .cloned()
            .partition(|s| s.initial);
        let plan = Arc::clone(&plan);
        let shared = Arc::clone(&shared);
        let tx = tx.clone();
        let cpu = (!opts.cpus.is_empty()).then(|| opts.cpus[id % opts.cpus.len()]);
        let handle = std::thread::Builder::new()
            .name(format!("loadtest-{id}"))
            .spawn(move || -> anyhow::Result<WorkerResult> {
                if let Some(cpu) = cpu
                    && !crate::sys::pin_to_core(cpu)
                {
                    eprintln!("warning: could not pin thread {id} to cpu {cpu}");
                }
                Worker::new(id, plan, shared, tx, specs, storm)?.run()
            })
            .context("spawning worker thread")?;
        handles.push(handle);
    }
    drop(tx);
    let window = coordinate(opts, &plan, &shared, &rx, threads, initial);
    let mut results = Vec::new();
    for h in handles {
        match h.join() {
            Ok(r) => results.push(r?),
            Err(_) => anyhow::bail!("a worker thread panicked"),
        }
    }
    Ok((results, window))
}

/// Spreads `slow_count` slow clients evenly over `0..clients`.
fn is_slow(index: usize, clients: usize, slow_count: usize) -> bool {
    slow_count > 0 && (index * slow_count) % clients < slow_count
}

/// Every client the scenario starts with, in index order.
fn population(opts: &Options) -> Vec<Spec> {
    let spec = |index, role, initial| Spec {
        index,
        role,
        initial,
    };
    match opts.scenario {
        Scenario::Stalled | Scenario::Soak => {
            let total = opts.clients + opts.stalled;
            (0..total)
                .map(|i| {
                    let stalled = is_slow(i, total, opts.stalled);
                    spec(i, if stalled { Role::Stalled } else { Role::Fast }, true)
                })
                .collect()
        }
        Scenario::ConnectStorm if opts.streaming > 0 => (0..opts.streaming)
            .map(|i| spec(i, Role::Fast, true))
            .chain(
                (opts.streaming..opts.streaming + opts.clients)
                    .map(|i| spec(i, Role::Newcomer, false)),
            )
            .collect(),
        _ => {
            let slow_count = (opts.clients as f64 * opts.slow_fraction).round() as usize;
            (0..opts.clients)
                .map(|i| {
                    let slow = is_slow(i, opts.clients, slow_count);
                    spec(i, if slow { Role::Slow } else { Role::Fast }, true)
                })
                .collect()
        }
    }
}

/// The measured window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// Its start, after the run's `t0`.
    pub start: Duration,
    /// Its length.
    pub len: Duration,
    /// CPU this process used during the window, % of one core (all its
    /// threads; with the in-process server, the server's too).
    pub cpu_pct: Option<f64>,
}

/// Waits for the connect phase, fixes the measured window, prints progress
/// and returns it.
fn coordinate(
    opts: &Options,
    plan: &Plan,
    shared: &Shared,
    rx: &mpsc::Receiver<Histogram<u64>>,
    threads: usize,
    initial: usize,
) -> Window {
    let connect_deadline = plan.t0 + opts.connect_timeout + Duration::from_secs(1);
    let clients = initial as u64;
    // Bounded by the connect deadline.
    while shared.settled.load(Ordering::Relaxed) < clients && Instant::now() < connect_deadline {
        std::thread::sleep(Duration::from_millis(5));
        while rx.try_recv().is_ok() {}
    }
    let plain_storm = opts.scenario == Scenario::ConnectStorm && opts.streaming == 0;
    let since_t0 = plan.t0.elapsed();
    let warmup = if plain_storm {
        Duration::ZERO
    } else {
        opts.warmup
    };
    let start = since_t0 + warmup;
    let end = start + opts.duration;
    if opts.scenario == Scenario::Stalled {
        let at = since_t0 + opts.stall_after;
        shared
            .stall_at
            .store(at.as_nanos() as u64, Ordering::Relaxed);
    }
    if opts.scenario == Scenario::ConnectStorm && opts.streaming > 0 {
        let at = start + opts.storm_at;
        shared
            .storm_at
            .store(at.as_nanos() as u64, Ordering::Relaxed);
    }
    shared
        .window_start
        .store(start.as_nanos() as u64, Ordering::Relaxed);
    shared
        .window_end
        .store(end.as_nanos() as u64, Ordering::Relaxed);
    if opts.progress {
        eprintln!(
            "connected {} / {} ({} failed) in {:.2}s; warm-up {:.1}s, measuring {:.1}s",
            shared.open.load(Ordering::Relaxed),
            clients,
            shared.failed.load(Ordering::Relaxed),
            since_t0.as_secs_f64(),
            warmup.as_secs_f64(),
            opts.duration.as_secs_f64()
        );
    }
    let mut so_far = latency_histogram();
    // The intervals that arrived since the last progress line: its p99 is
    // that second's, where `so_far`'s is the run's (a tail long over stays
    // in it).
    let mut this_second = latency_histogram();
    // The process's CPU at the window's start and end, read by this loop
    // (every <= 100 ms), with the instants read.
    let mut cpu_at: [Option<(Instant, f64)>; 2] = [None, None];
    let mut last_msgs = shared.msgs.load(Ordering::Relaxed);
    let mut last_tick = Instant::now();
    let finish = plan.t0 + end + DRAIN_TIMEOUT + Duration::from_secs(2);
    // Ends when every worker has hung up its progress sender (they exit on
    // their own at the window end) or, as a bound, shortly after the drain.
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(h) => {
                let _ = crate::stats::merge(&mut so_far, &h);
                let _ = crate::stats::merge(&mut this_second, &h);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() > finish {
            shared.stop.store(true, Ordering::Relaxed);
        }
        for (slot, at) in cpu_at.iter_mut().zip([start, end]) {
            if slot.is_none() && plan.t0.elapsed() >= at {
                *slot = crate::sys::process_cpu_secs().map(|c| (Instant::now(), c));
            }
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            let msgs = shared.msgs.load(Ordering::Relaxed);
            let dt = last_tick.elapsed().as_secs_f64();
            last_tick = Instant::now();
            if opts.progress {
                let t = plan.t0.elapsed().as_secs_f64();
                let p99 = |h: &Histogram<u64>| {
                    if h.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{:.3}ms", h.value_at_quantile(0.99) as f64 / 1e6)
                    }
                };
                eprintln!(
                    "t={t:6.1}s msgs/s={:>10.0} p99(1s)={:>10} p99(run)={:>10} open={} evicted={} failed={} threads={threads}",
                    (msgs - last_msgs) as f64 / dt,
                    p99(&this_second),
                    p99(&so_far),
                    shared.open.load(Ordering::Relaxed),
                    shared.evicted.load(Ordering::Relaxed),
                    shared.failed.load(Ordering::Relaxed),
                );
            }
            last_msgs = msgs;
            this_second.reset();
        }
    }
    if cpu_at[1].is_none() && plan.t0.elapsed() >= end {
        cpu_at[1] = crate::sys::process_cpu_secs().map(|c| (Instant::now(), c));
    }
    let cpu_pct = match cpu_at {
        [Some((t0, c0)), Some((t1, c1))] if t1 > t0 => {
            Some(100.0 * (c1 - c0) / (t1 - t0).as_secs_f64())
        }
        _ => None,
    };
    Window {
        start,
        len: end - start,
        cpu_pct,
    }
}

impl Worker {
    fn new(
        id: usize,
        plan: Arc<Plan>,
        shared: Arc<Shared>,
        progress: mpsc::Sender<Histogram<u64>>,
        queue: VecDeque<Spec>,
        storm: VecDeque<Spec>,
    ) -> anyhow::Result<Self> {
        let n = queue.len() + storm.len();
        let expect_snapshots = plan.opts.expect_snapshots.unwrap_or(u64::MAX);
        Ok(Worker {
            next_index: plan.opts.total_clients() + id,
            plan,
            shared,
            progress,
            poll: Poll::new().context("creating mio Poll")?,
            conns: Slab::with_capacity(n),
            buf: vec![0; READ_CHUNK],
            ctx: Ctx {
                scanner: Scanner::new(),
                symbols: SymbolTable::new(),
                rng: Rng::new(id as u64 + 1),
                fast: latency_histogram(),
                fast_interval: latency_histogram(),
                slow: latency_histogram(),
                newcomer: latency_histogram(),
                counts: RoleCounts::default(),
                ts_prefix: TsPrefix::default(),
                counters: Counters::default(),
                msgs_unflushed: 0,
                expect_snapshots,
            },
            queue,
            storm,
            stormed: false,
            stall_pending: 0,
            again: Vec::new(),
            results: Vec::with_capacity(n),
            connect_hist: latency_histogram(),
            in_flight: 0,
        })
    }

    fn rel_ns(&self) -> u64 {
        self.plan.t0.elapsed().as_nanos() as u64
    }

    fn run(mut self) -> anyhow::Result<WorkerResult> {
        let mut events = Events::with_capacity(1024);
        let mut last_progress = Instant::now();
        let mut last_sweep = Instant::now();
        let mut last_budget = Instant::now();
        let mut churn_tokens = 0.0f64;
        let mut churn_last = Instant::now();
        let opts = self.plan.opts.clone();
        let churn_per_thread =
            opts.churn_rate / opts.threads.min(opts.total_clients()).max(1) as f64;
        let mut draining_since: Option<Instant> = None;
        loop {
            if !self.stormed
                && !self.storm.is_empty()
                && self.rel_ns() >= self.shared.storm_at.load(Ordering::Relaxed)
            {
                self.stormed = true;
                self.queue.extend(self.storm.drain(..));
            }
            self.start_connects();
            let limit = self.plan.opts.connect_concurrency;
            let connects_ready =
                !self.queue.is_empty() && (self.stormed || limit == 0 || self.in_flight < limit);
            let timeout = if self.again.is_empty() && !connects_ready {
                POLL_INTERVAL
            } else {
                Duration::ZERO
            };
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != io::ErrorKind::Interrupted
            {
                return Err(e).context("mio poll");
            }
            for ev in events.iter() {
                let token = ev.token();
                if ev.is_writable() {
                    self.on_writable(token);
                }
                if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                    self.on_readable(token, ev.is_read_closed() || ev.is_error());
                }
                self.reap(token);
            }
            for token in std::mem::take(&mut self.again) {
                self.on_readable(token, false);
                self.reap(token);
            }
            if matches!(opts.slow_mode, SlowMode::Rate(_)) {
                let dt = last_budget.elapsed().as_secs_f64();
                last_budget = Instant::now();
                self.serve_slow_readers(dt);
            }
            self.flush_msgs();
            if self.stall_pending > 0 {
                self.apply_stalls();
            }
            if self.stormed && self.plan.opts.storm_leave.is_some() {
                self.leave_after_snapshots();
            }

            let now_rel = self.rel_ns();
            let start = self.shared.window_start.load(Ordering::Relaxed);
            let end = self.shared.window_end.load(Ordering::Relaxed);
            if last_sweep.elapsed() >= Duration::from_millis(100) {
                last_sweep = Instant::now();
                self.sweep_connect_deadlines();
            }
            if last_progress.elapsed() >= Duration::from_secs(1) {
                last_progress = Instant::now();
                self.send_progress();
            }
            // Churn runs from the end of the connect phase to the window end.
            if churn_per_thread > 0.0 && start != u64::MAX && now_rel < end {
                churn_tokens += churn_per_thread * churn_last.elapsed().as_secs_f64();
                churn_tokens = churn_tokens.min(churn_per_thread.max(1.0));
                while churn_tokens >= 1.0 {
                    churn_tokens -= 1.0;
                    self.churn_one();
                }
            }
            churn_last = Instant::now();
            if self.shared.stop.load(Ordering::Relaxed) {
                break;
            }
            if end != u64::MAX && now_rel >= end {
                match draining_since {
                    None => {
                        draining_since = Some(Instant::now());
                        if !self.begin_drain() {
                            break;
                        }
                    }
                    Some(t) => {
                        let busy = self
                            .conns
                            .iter()
                            .any(|(_, c)| c.spec.is_slow() && c.end.is_none());
                        if !busy || t.elapsed() >= DRAIN_TIMEOUT {
                            break;
                        }
                    }
                }
            }
        }
        self.finish()
    }

    fn flush_msgs(&mut self) {
        if self.ctx.msgs_unflushed > 0 {
            self.shared
                .msgs
                .fetch_add(self.ctx.msgs_unflushed, Ordering::Relaxed);
            self.ctx.msgs_unflushed = 0;
        }
    }

    fn send_progress(&mut self) {
        self.ctx.flush_latencies();
        let fresh = latency_histogram();
        let interval = std::mem::replace(&mut self.ctx.fast_interval, fresh);
        let _ = crate::stats::merge(&mut self.ctx.fast, &interval);
        // The coordinator may be gone already at the very end; that's fine.
        let _ = self.progress.send(interval);
    }

    /// Starts queued connects up to the concurrency limit (none once the
    /// storm has started: newcomers connect all at once).
    ///
    /// At most [`CONNECT_BURST`] per call: a loopback `connect` runs the
    /// server kernel's SYN handling in this thread, so thousands in one go
    /// would leave the open connections unread for a second (the loop comes
    /// back at once while connects are queued).
    fn start_connects(&mut self) {
        let limit = if self.stormed {
            0
        } else {
            self.plan.opts.connect_concurrency
        };
        let mut started = 0;
        while (limit == 0 || self.in_flight < limit) && started < CONNECT_BURST {
            let Some(spec) = self.queue.pop_front() else {
                break;
            };
            started += 1;
            match self.connect(spec.clone()) {
                Ok(()) => self.in_flight += 1,
                Err(e) => self.connect_failed(spec, format!("connect: {}", io_reason(&e))),
            }
        }
    }

    /// `--storm-leave`: newcomers that have had their snapshots for that
    /// long close with 1000 (counted as churned).
    fn leave_after_snapshots(&mut self) {
        let Some(linger) = self.plan.opts.storm_leave else {
            return;
        };
        let now = self.rel_ns();
        let linger = linger.as_nanos() as u64;
        let mut leaving = Vec::new();
        for (k, c) in self.conns.iter_mut() {
            if c.spec.role != Role::Newcomer || c.end.is_some() {
                continue;
            }
            if c.leave_at.is_none()
                && let Some(ns) = c.snapshots_ns
            {
                c.leave_at = Some(c.started_rel + ns + linger);
            }
            if c.leave_at.is_some_and(|t| now >= t) {
                leaving.push(k);
            }
        }
        for k in leaving {
            if let Some(conn) = self.conns.get_mut(k) {
                let mask = self.ctx.rng.mask();
                frame::encode_close(&mut conn.out, 1000, "leave", mask);
                flush(conn);
                conn.end = Some(End::Churned);
            }
            self.reap(Token(k));
        }
    }

    /// Stops the stalled clients whose moment has come: the scenario's one
    /// moment (stalled), or `stall_after` after each one opened (soak, and
    /// stalled with `--stall-each`).
    fn apply_stalls(&mut self) {
        let now = self.rel_ns();
        let per_client = self.plan.opts.stall_each || self.plan.opts.scenario == Scenario::Soak;
        let global = self.shared.stall_at.load(Ordering::Relaxed);
        let after = self.plan.opts.stall_after.as_nanos() as u64;
        let lifetime = self.plan.opts.stall_for.map(|d| d.as_nanos() as u64);
        let mut pending = 0;
        let mut leaving = Vec::new();
        for (k, c) in self.conns.iter_mut() {
            if c.spec.role != Role::Stalled || c.state != State::Open || c.end.is_some() {
                continue;
            }
            if let Some(at) = c.stalled_at {
                // `--stall-for`: the stalled client goes away (a closed
                // tab), whether or not it saw the server drop it.
                match lifetime {
                    Some(l) if now >= at.saturating_add(l) => leaving.push(k),
                    Some(_) => pending += 1,
                    None => {}
                }
                continue;
            }
            let at = if per_client {
                c.opened_at.saturating_add(after)
            } else {
                global
            };
            if now >= at {
                c.paused = true;
                c.stalled_at = Some(now);
            }
            pending += 1;
        }
        self.stall_pending = pending;
        for k in leaving {
            if let Some(c) = self.conns.get_mut(k) {
                // Closed with unread data: the kernel resets the connection.
                c.end = Some(End::Churned);
            }
            self.reap(Token(k));
        }
    }

    fn connect(&mut self, spec: Spec) -> io::Result<()> {
        let target = spec.index % self.plan.targets.len().max(1);
        let addr = self.plan.targets[target].addr;
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_nonblocking(true)?;
        sock.set_tcp_nodelay(true)?;
        // A stalled reader must look stalled to the server: with the
        // kernel's receive autotuning (up to tcp_rmem's max, 32 MiB here)
        // the client's own buffer would absorb ~40 s of a busy stream
        // before the server saw any backpressure. 64 KiB is a browser-like
        // window.
        match spec.role {
            Role::Slow => sock.set_recv_buffer_size(SLOW_RCVBUF)?,
            Role::Stalled if self.plan.opts.stall_rcvbuf > 0 => {
                sock.set_recv_buffer_size(self.plan.opts.stall_rcvbuf)?
            }
            _ => {}
        }
        if addr.is_ipv4() {
            let n = self.plan.opts.source_addrs.max(1);
            let last = 1 + (spec.index % n) as u8;
            let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last)), 0);
            sock.bind(&src.into())?;
        }
        match sock.connect(&addr.into()) {
            Ok(()) => {}
            Err(e)
                if e.raw_os_error() == Some(libc::EINPROGRESS)
                    || e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        let tcp = TcpStream::from_std(sock.into());
        let mut stream = match self.plan.tls.get(target) {
            Some(Some(tls)) => Wire::tls(tcp, &tls.config, tls.server_name.clone())?,
            _ => Wire::plain(tcp),
        };
        let started_rel = self.rel_ns();
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        self.poll.registry().register(
            stream.tcp(),
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        let paused = false;
        entry.insert(Conn {
            spec,
            target,
            stream,
            state: State::Connecting,
            started: Instant::now(),
            hs: None,
            hs_buf: Vec::new(),
            pending: Vec::new(),
            out: Vec::new(),
            seq: SeqTracker::default(),
            connect_ns: None,
            opened_at: 0,
            ticks_window: 0,
            ticks_total: 0,
            snapshots: 0,
            end: None,
            paused,
            budget: 0.0,
            local: None,
            started_rel,
            stalled_at: None,
            hangup_at: None,
            snapshots_ns: None,
            leave_at: None,
        });
        Ok(())
    }

    fn connect_failed(&mut self, spec: Spec, reason: String) {
        self.shared.failed.fetch_add(1, Ordering::Relaxed);
        if spec.initial {
            self.shared.settled.fetch_add(1, Ordering::Relaxed);
        }
        self.results.push(ClientResult {
            index: spec.index,
            target: spec.index % self.plan.targets.len().max(1),
            slow: spec.is_slow(),
            role: spec.role,
            local_addr: None,
            started_ns: 0,
            ended_ns: self.rel_ns(),
            stalled_ns: None,
            hangup_ns: None,
            snapshots_ns: None,
            connect_ns: None,
            ticks_window: 0,
            ticks_total: 0,
            snapshots: 0,
            seq: SeqCounts::default(),
            full_window: false,
            end: End::ConnectFailed(reason),
        });
    }

    fn on_writable(&mut self, token: Token) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.end.is_some() {
            return;
        }
        if conn.state == State::Connecting {
            match conn.stream.tcp().take_error() {
                Ok(Some(e)) | Err(e) => {
                    conn.end = Some(End::ConnectFailed(format!("connect: {}", io_reason(&e))));
                    return;
                }
                Ok(None) => {}
            }
            match conn.stream.tcp().peer_addr() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => {
                    conn.end = Some(End::ConnectFailed(format!("connect: {}", io_reason(&e))));
                    return;
                }
            }
            let t = &self.plan.targets[conn.target];
            let hs = ClientHandshake::new(&t.host, &t.path);
            conn.out.extend_from_slice(&hs.request);
            conn.hs = Some(hs);
            conn.state = State::Handshaking;
        }
        flush(conn);
    }

    /// Reads what the socket has (see the module invariants).
    fn on_readable(&mut self, token: Token, hangup: bool) {
        let Some(conn) = self.conns.get_mut(token.0) else {
            return;
        };
        if conn.end.is_some() {
            return;
        }
        if conn.state == State::Connecting {
            if hangup {
                let reason = match conn.stream.tcp().take_error() {
                    Ok(Some(e)) | Err(e) => io_reason(&e),
                    Ok(None) => "connection closed".to_string(),
                };
                conn.end = Some(End::ConnectFailed(format!("connect: {reason}")));
            }
            return;
        }
        if conn.paused {
            if !hangup {
                return;
            }
            // The server hung up on a stopped reader: read out what is left
            // to find its close frame.
            conn.paused = false;
            if conn.stalled_at.is_some() && conn.hangup_at.is_none() {
                conn.hangup_at = Some(self.plan.t0.elapsed().as_nanos() as u64);
            }
        }
        if let (SlowMode::Rate(_), Role::Slow, State::Open) =
            (self.plan.opts.slow_mode, conn.spec.role, conn.state)
        {
            // Rate-limited readers are served by serve_slow_readers, unless
            // the peer hung up (then read it out).
            if !hangup {
                return;
            }
        }
        for _ in 0..READS_PER_EVENT {
            match self.read_once(token.0, usize::MAX) {
                ReadOutcome::More => {}
                // A short read emptied the socket: the next byte to arrive
                // raises a new edge, so the read that would only return
                // WouldBlock is skipped (it was half the syscalls when
                // reads are small). Not after a hang-up: that edge is
                // spent, so read on until EOF.
                ReadOutcome::Drained if !hangup => return,
                ReadOutcome::Drained => {}
                ReadOutcome::Blocked | ReadOutcome::Done => return,
            }
        }
        self.again.push(token);
    }

    /// One read (of at most `limit` bytes) and the parsing of what arrived.
    fn read_once(&mut self, key: usize, limit: usize) -> ReadOutcome {
        let Some(conn) = self.conns.get_mut(key) else {
            return ReadOutcome::Done;
        };
        if conn.end.is_some() {
            return ReadOutcome::Done;
        }
        let keep = conn.pending.len();
        if self.buf.len() < keep + READ_CHUNK {
            self.buf.resize(keep + READ_CHUNK, 0);
        }
        self.buf[..keep].copy_from_slice(&conn.pending);
        let want = READ_CHUNK.min(limit.max(1));
        let n = match conn.stream.read(&mut self.buf[keep..keep + want]) {
            Ok(0) => {
                conn.end = Some(End::Eof);
                return ReadOutcome::Done;
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::Blocked,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return ReadOutcome::More,
            Err(e) => {
                conn.end = Some(if conn.state == State::Open {
                    End::IoError(io_reason(&e))
                } else {
                    End::ConnectFailed(format!("handshake: {}", io_reason(&e)))
                });
                return ReadOutcome::Done;
            }
        };
        if conn.state == State::Open {
            conn.budget -= n as f64;
        }
        // TCP reads return everything queued up to the buffer size, so a
        // short read means the socket is empty for now (not so for TLS).
        let more = if n < want && conn.stream.short_read_drains() {
            ReadOutcome::Drained
        } else {
            ReadOutcome::More
        };
        let rel = self.plan.t0.elapsed().as_nanos() as u64;
        let start = self.shared.window_start.load(Ordering::Relaxed);
        let end = self.shared.window_end.load(Ordering::Relaxed);
        let now = Now {
            wall: wall_ns(),
            in_window: rel >= start && rel < end,
        };
        let mut data_from = 0;
        let mut limited = false;
        if conn.state == State::Handshaking {
            conn.hs_buf.extend_from_slice(&self.buf[keep..keep + n]);
            let Some(hs) = conn.hs.as_ref() else {
                return ReadOutcome::Done;
            };
            match hs.check_response(&conn.hs_buf) {
                Ok(None) => return more,
                Err(e) => {
                    conn.end = Some(End::ConnectFailed(format!("handshake: {e}")));
                    return ReadOutcome::Done;
                }
                Ok(Some(hdr)) => {
                    let elapsed = conn.started.elapsed().as_nanos() as u64;
                    conn.connect_ns = Some(elapsed);
                    self.connect_hist.saturating_record(elapsed.max(1));
                    conn.state = State::Open;
                    conn.opened_at = rel;
                    conn.hs = None;
                    // Bytes after the header block are frames: they are
                    // the tail of this read.
                    let frames_len = conn.hs_buf.len() - hdr;
                    data_from = keep + n - frames_len;
                    conn.hs_buf = Vec::new();
                    self.in_flight = self.in_flight.saturating_sub(1);
                    self.shared.open.fetch_add(1, Ordering::Relaxed);
                    if conn.spec.initial {
                        self.shared.settled.fetch_add(1, Ordering::Relaxed);
                    }
                    conn.local = conn.stream.tcp().local_addr().ok();
                    let sub = subscribe_message(&self.plan, &mut self.ctx.rng);
                    if let Some(msg) = sub {
                        let mask = self.ctx.rng.mask();
                        frame::encode_masked(&mut conn.out, OP_TEXT, msg.as_bytes(), mask);
                        flush(conn);
                    }
                    // Slow clients start being slow now: a stopped reader
                    // pauses, a rate-limited one waits for its budget
                    // (serve_slow_readers); both still parse this read.
                    if conn.spec.role == Role::Slow {
                        conn.paused = self.plan.opts.slow_mode == SlowMode::Stop;
                        limited = matches!(self.plan.opts.slow_mode, SlowMode::Rate(_));
                    }
                    // Stalled clients read until their stall moment
                    // (apply_stalls, run each turn of the loop).
                    if conn.spec.role == Role::Stalled {
                        self.stall_pending += 1;
                    }
                }
            }
        }
        if now.in_window {
            self.ctx.counters.bytes_window += n as u64;
        }
        let data = &self.buf[data_from..keep + n];
        let consumed = match parse_frames(conn, &mut self.ctx, data, now) {
            Ok(c) => c,
            Err(e) => {
                conn.end = Some(End::Protocol(e.to_string()));
                return ReadOutcome::Done;
            }
        };
        conn.pending.clear();
        conn.pending.extend_from_slice(&data[consumed..]);
        if conn.end.is_some() {
            flush(conn);
            return ReadOutcome::Done;
        }
        if conn.paused || limited {
            return ReadOutcome::Done;
        }
        more
    }

    fn serve_slow_readers(&mut self, dt: f64) {
        let SlowMode::Rate(rate) = self.plan.opts.slow_mode else {
            return;
        };
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.spec.role == Role::Slow && c.state == State::Open && c.end.is_none())
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            // At most one second's worth of budget accumulates.
            conn.budget = (conn.budget + rate as f64 * dt).min(rate as f64);
            while let Some(c) = self.conns.get(key) {
                if c.budget < 1.0 {
                    break;
                }
                let limit = c.budget as usize;
                if self.read_once(key, limit) != ReadOutcome::More {
                    break;
                }
            }
            self.reap(Token(key));
        }
    }

    fn sweep_connect_deadlines(&mut self) {
        let timeout = self.plan.opts.connect_timeout;
        for (_, c) in self.conns.iter_mut() {
            if c.end.is_none() && c.state != State::Open && c.started.elapsed() > timeout {
                c.end = Some(End::ConnectFailed("timeout".to_string()));
            }
        }
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.end.is_some())
            .map(|(k, _)| k)
            .collect();
        for k in keys {
            self.reap(Token(k));
        }
    }

    fn churn_one(&mut self) {
        let open: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.state == State::Open && c.end.is_none() && c.spec.role == Role::Fast)
            .map(|(k, _)| k)
            .collect();
        if open.is_empty() {
            return;
        }
        let key = open[self.ctx.rng.below(open.len())];
        if let Some(conn) = self.conns.get_mut(key) {
            let mask = self.ctx.rng.mask();
            frame::encode_close(&mut conn.out, 1000, "churn", mask);
            flush(conn);
            conn.end = Some(End::Churned);
        }
        self.reap(Token(key));
        self.queue.push_back(Spec {
            index: self.next_index,
            role: Role::Fast,
            initial: false,
        });
        self.next_index += self.plan.opts.threads.max(1);
    }

    /// Ends the window: fast clients are closed; stopped slow readers start
    /// reading out their sockets. Returns true if and only if there is
    /// something left to drain.
    fn begin_drain(&mut self) -> bool {
        self.send_progress();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        let mut draining = false;
        for k in keys {
            let Some(c) = self.conns.get_mut(k) else {
                continue;
            };
            if c.spec.is_slow() && c.state == State::Open && c.end.is_none() {
                c.paused = false;
                draining = true;
                self.again.push(Token(k));
            } else if c.end.is_none() {
                // A connect still in progress did not connect in time.
                c.end = Some(if c.state == State::Open {
                    End::StillOpen
                } else {
                    End::ConnectFailed("window ended first".into())
                });
                self.reap(Token(k));
            }
        }
        // From here on slow readers read at full speed.
        if let SlowMode::Rate(_) = self.plan.opts.slow_mode {
            self.plan = Arc::new(self.plan.rebuilt(Options {
                slow_mode: SlowMode::Stop,
                ..self.plan.opts.clone()
            }));
        }
        draining
    }

    /// Removes a finished connection and records its result.
    fn reap(&mut self, token: Token) {
        let Some(c) = self.conns.get(token.0) else {
            return;
        };
        let Some(end) = c.end.clone() else { return };
        let mut conn = self.conns.remove(token.0);
        let _ = self.poll.registry().deregister(conn.stream.tcp());
        if let End::ConnectFailed(_) = end {
            self.in_flight = self.in_flight.saturating_sub(1);
            self.connect_failed(
                conn.spec,
                match end {
                    End::ConnectFailed(r) => r,
                    _ => String::new(),
                },
            );
            return;
        }
        // Soak: a stalled client that is gone (evicted, reset) is replaced
        // by a new one while the window lasts, so the share of stalled
        // clients holds for the whole run; a healthy client the server cut
        // (evicted, reset) reconnects, as a real one would, so the
        // population does too (churned ones are requeued by churn_one).
        let replace = match (conn.spec.role, &end) {
            (Role::Stalled, e) => *e != End::StillOpen,
            (Role::Fast, e) => !matches!(e, End::StillOpen | End::Churned),
            _ => false,
        };
        if self.plan.opts.scenario == Scenario::Soak
            && replace
            && self.rel_ns() < self.shared.window_end.load(Ordering::Relaxed)
            && !self.shared.stop.load(Ordering::Relaxed)
        {
            self.queue.push_back(Spec {
                index: self.next_index,
                role: conn.spec.role,
                initial: false,
            });
            self.next_index += self.plan.opts.threads.max(1);
        }
        if end == End::StillOpen {
            let mask = self.ctx.rng.mask();
            frame::encode_close(&mut conn.out, 1000, "done", mask);
            flush(&mut conn);
        }
        if let End::Closed { code: 4001, .. } = end {
            self.shared.evicted.fetch_add(1, Ordering::Relaxed);
        }
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        let start = self.shared.window_start.load(Ordering::Relaxed);
        let full_window = conn.opened_at <= start && end == End::StillOpen;
        self.results.push(ClientResult {
            index: conn.spec.index,
            target: conn.target,
            slow: conn.spec.is_slow(),
            role: conn.spec.role,
            local_addr: conn.local,
            started_ns: conn.started_rel,
            ended_ns: self.rel_ns(),
            stalled_ns: conn.stalled_at,
            hangup_ns: conn.hangup_at,
            snapshots_ns: conn.snapshots_ns,
            connect_ns: conn.connect_ns,
            ticks_window: conn.ticks_window,
            ticks_total: conn.ticks_total,
            snapshots: conn.snapshots,
            seq: conn.seq.counts,
            full_window,
            end,
        });
    }

    fn finish(mut self) -> anyhow::Result<WorkerResult> {
        self.flush_msgs();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            if let Some(c) = self.conns.get_mut(k)
                && c.end.is_none()
            {
                c.end = Some(if c.state == State::Open {
                    End::StillOpen
                } else {
                    End::ConnectFailed("run ended first".into())
                });
            }
            self.reap(Token(k));
        }
        // Connects of the run's own clients (storm newcomers included) that
        // never started count as failed; churn and soak replacements that
        // never started are not clients yet.
        for spec in std::mem::take(&mut self.queue)
            .into_iter()
            .chain(std::mem::take(&mut self.storm))
        {
            if spec.initial || spec.role == Role::Newcomer {
                self.connect_failed(spec, "never started".into());
            }
        }
        self.ctx.flush_latencies();
        let interval = std::mem::replace(&mut self.ctx.fast_interval, latency_histogram());
        crate::stats::merge(&mut self.ctx.fast, &interval)?;
        Ok(WorkerResult {
            clients: self.results,
            fast: self.ctx.fast,
            slow: self.ctx.slow,
            newcomer: self.ctx.newcomer,
            connect: self.connect_hist,
            counters: self.ctx.counters,
        })
    }
}

#[derive(Debug, PartialEq, Eq)]
enum ReadOutcome {
    /// Read a full buffer: there may be more.
    More,
    /// Read less than asked: the socket is empty until the next edge.
    Drained,
    /// `WouldBlock`.
    Blocked,
    /// The connection ended (or must not be read now).
    Done,
}

fn io_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused".into(),
        Some(libc::ECONNRESET) => "reset".into(),
        Some(libc::ETIMEDOUT) => "timed out".into(),
        Some(libc::EADDRNOTAVAIL) => "no free source port".into(),
        Some(libc::EMFILE) | Some(libc::ENFILE) => "too many open files".into(),
        // TLS failures: rustls's message says which (a certificate refused, ...).
        None if e.kind() == io::ErrorKind::InvalidData => format!("TLS: {e}"),
        _ => e.kind().to_string(),
    }
}

/// Writes as much of `conn.out` as the socket takes; the rest (and any
/// TLS records rustls still holds) waits for the next writable event.
fn flush(conn: &mut Conn) {
    while !conn.out.is_empty() {
        match conn.stream.write(&conn.out) {
            Ok(0) => return,
            Ok(n) => {
                conn.out.drain(..n);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    // An error shows at the next read.
    let _ = conn.stream.send_pending();
}

/// The subscribe request for one client, or `None` for no subscription.
fn subscribe_message(plan: &Plan, rng: &mut Rng) -> Option<String> {
    let body = match &plan.opts.subscribe {
        Subscription::None => return None,
        Subscription::All => serde_json::json!({"op": "subscribe", "id": 1, "groups": ["*"]}),
        Subscription::Group(g) => serde_json::json!({"op": "subscribe", "id": 1, "groups": [g]}),
        Subscription::Random(k) => {
            let u = &plan.universe;
            let mut picked: Vec<&String> = Vec::with_capacity(*k);
            if *k >= u.len() {
                picked.extend(u.iter());
            } else {
                // Partial Fisher-Yates over indices.
                let mut idx: Vec<usize> = (0..u.len()).collect();
                for i in 0..*k {
                    let j = i + rng.below(u.len() - i);
                    idx.swap(i, j);
                    picked.push(&u[idx[i]]);
                }
            }
            serde_json::json!({"op": "subscribe", "id": 1, "symbols": picked})
        }
    };
    Some(body.to_string())
}

/// Parses every whole frame at the start of `data`; returns the number of
/// bytes consumed. Stops early once the connection has ended.
///
/// Runs of ticks in the server's layout go through `fastpath::take_ticks`;
/// each frame it leaves is handled here, one at a time, then the fast path
/// takes over again.
fn parse_frames(
    conn: &mut Conn,
    ctx: &mut Ctx,
    data: &[u8],
    now: Now,
) -> Result<usize, FrameError> {
    let mut at = 0;
    while at < data.len() {
        at = fast_ticks(conn, ctx, data, at, now);
        if at >= data.len() {
            break;
        }
        let f = match frame::parse(&data[at..])? {
            Parsed::Frame(f) => f,
            Parsed::Need(_) => break,
        };
        let payload = &data[at + f.header_len..at + f.len()];
        at += f.len();
        match f.opcode {
            OP_TEXT => on_text(conn, ctx, payload, now),
            OP_BINARY => ctx.counters.binary += 1,
            OP_PING => {
                ctx.counters.pings += 1;
                let mask = ctx.rng.mask();
                frame::encode_masked(&mut conn.out, OP_PONG, payload, mask);
                flush(conn);
            }
            OP_PONG => {}
            OP_CLOSE => {
                let (code, reason) = frame::close_payload(payload);
                let mask = ctx.rng.mask();
                if code == 1005 {
                    frame::encode_masked(&mut conn.out, OP_CLOSE, &[], mask);
                } else {
                    frame::encode_close(&mut conn.out, code, "", mask);
                }
                conn.end = Some(End::Closed { code, reason });
                return Ok(at);
            }
            _ => {}
        }
    }
    Ok(at)
}

/// The fast path from `at` (see `fastpath`), with the per-tick counters
/// added once for the run it took; returns where it stopped.
#[inline]
fn fast_ticks(conn: &mut Conn, ctx: &mut Ctx, data: &[u8], at: usize, now: Now) -> usize {
    conn.seq.warm();
    let mut sink = TickSink {
        symbols: &mut ctx.symbols,
        seq: &mut conn.seq,
        latency: now.in_window.then(|| ctx.counts.of(conn.spec.role)),
        now: now.wall,
        future: 0,
        ts_prefix: &mut ctx.ts_prefix,
    };
    let (next, ticks) = take_ticks(data, at, &mut sink);
    let future = sink.future;
    ctx.msgs_unflushed += ticks;
    conn.ticks_total += ticks;
    if now.in_window {
        ctx.counters.msgs_window += ticks;
        ctx.counters.ticks_window += ticks;
        ctx.counters.negative_latency += future;
        conn.ticks_window += ticks;
    }
    next
}

fn on_text(conn: &mut Conn, ctx: &mut Ctx, payload: &[u8], now: Now) {
    ctx.msgs_unflushed += 1;
    if now.in_window {
        ctx.counters.msgs_window += 1;
    }
    // Nearly every message: the exact layout tickcast and the peers write.
    if let Some(t) = scan_fast(payload) {
        let id = ctx.symbols.intern(t.symbol);
        match t.kind {
            Kind::Tick => on_tick(conn, ctx, id, t.seq, t.ts, now),
            Kind::Snapshot => on_snapshot(conn, ctx, id, t.seq),
        }
        return;
    }
    on_text_general(conn, ctx, payload, now);
}

/// Everything [`scan_fast`] does not take: other layouts, escapes, control
/// messages, invalid text.
#[cold]
#[inline(never)]
fn on_text_general(conn: &mut Conn, ctx: &mut Ctx, payload: &[u8], now: Now) {
    match ctx.scanner.scan(payload) {
        Scanned::Tick(t) => {
            let id = ctx.symbols.intern(&t.symbol);
            on_tick(conn, ctx, id, t.seq, t.ts, now);
        }
        Scanned::Snapshot(t) => {
            let id = ctx.symbols.intern(&t.symbol);
            on_snapshot(conn, ctx, id, t.seq);
        }
        Scanned::Other => match parse_control(payload) {
            Ok(Control::Welcome { .. }) => ctx.bump("welcome"),
            Ok(Control::Subscribed { .. }) => ctx.bump("subscribed"),
            Ok(Control::Unsubscribed { .. }) => ctx.bump("unsubscribed"),
            Ok(Control::Groups { .. }) => ctx.bump("groups"),
            Ok(Control::Pong { .. }) => ctx.bump("pong"),
            Ok(Control::Notice { .. }) => ctx.bump("notice"),
            Ok(Control::Error { code, .. }) => ctx.bump(&format!("error:{code}")),
            Ok(Control::Unknown) => ctx.bump("unknown"),
            Err(_) => ctx.counters.invalid += 1,
        },
        Scanned::Invalid => ctx.counters.invalid += 1,
    }
}

#[inline(always)]
fn on_tick(conn: &mut Conn, ctx: &mut Ctx, id: u32, seq: u64, ts: u64, now: Now) {
    conn.seq.tick(id, seq);
    conn.ticks_total += 1;
    if now.in_window {
        conn.ticks_window += 1;
        ctx.counters.ticks_window += 1;
        if ts > now.wall {
            ctx.counters.negative_latency += 1;
        }
        ctx.counts
            .of(conn.spec.role)
            .record(now.wall.saturating_sub(ts));
    }
}

#[inline(always)]
fn on_snapshot(conn: &mut Conn, ctx: &Ctx, id: u32, seq: u64) {
    conn.seq.snapshot(id, seq);
    conn.snapshots += 1;
    if conn.snapshots == ctx.expect_snapshots && conn.snapshots_ns.is_none() {
        conn.snapshots_ns = Some(conn.started.elapsed().as_nanos() as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_clients_are_spread_evenly() {
        let slow: Vec<usize> = (0..100).filter(|&i| is_slow(i, 100, 10)).collect();
        assert_eq!(slow.len(), 10);
        assert!(slow.windows(2).all(|w| w[1] - w[0] == 10));
        assert_eq!((0..7).filter(|&i| is_slow(i, 7, 0)).count(), 0);
        assert_eq!((0..7).filter(|&i| is_slow(i, 7, 7)).count(), 7);
    }

    fn parse(args: &[&str]) -> Options {
        let mut v = vec!["loadtest"];
        v.extend_from_slice(args);
        <crate::Cli as clap::Parser>::try_parse_from(v)
            .expect("parses")
            .into_options()
            .expect("valid")
    }

    #[test]
    fn populations_give_each_scenario_its_roles() {
        let count = |p: &[Spec], r: Role| p.iter().filter(|s| s.role == r).count();
        let p = population(&parse(&[
            "--scenario",
            "stalled",
            "--stalled",
            "6",
            "--clients",
            "3",
        ]));
        assert_eq!(p.len(), 9);
        assert_eq!((count(&p, Role::Stalled), count(&p, Role::Fast)), (6, 3));
        assert!(p.iter().all(|s| s.initial));
        assert!(p.iter().enumerate().all(|(i, s)| s.index == i));
        let p = population(&parse(&[
            "--scenario",
            "connect-storm",
            "--streaming",
            "2",
            "--clients",
            "5",
        ]));
        assert_eq!((count(&p, Role::Fast), count(&p, Role::Newcomer)), (2, 5));
        assert!(p.iter().all(|s| s.initial == (s.role == Role::Fast)));
        let p = population(&parse(&["--scenario", "slow", "--clients", "10"]));
        assert_eq!((count(&p, Role::Slow), count(&p, Role::Fast)), (1, 9));
        let p = population(&parse(&["--scenario", "connect-storm", "--clients", "4"]));
        assert_eq!(count(&p, Role::Fast), 4);
    }

    #[test]
    fn rng_stays_below_bound() {
        let mut r = Rng::new(3);
        assert!((0..1000).all(|_| r.below(7) < 7));
    }
}
