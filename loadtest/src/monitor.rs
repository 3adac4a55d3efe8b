//! The server-side monitor: a sampler thread that, every `interval`, dumps
//! the server's own TCP sockets with `ss` and reads the server process's
//! memory and descriptors from `/proc`.
//!
//! ```text
//!  sampler thread ─ every ~150 ms ─┬─ ss -H -t -a -m -n -e '( sport = :PORT )'   (server side of every connection, any state)
//!                                  ├─ /proc/PID/status VmRSS, VmHWM; /proc/PID/fd count
//!                                  └─ /proc/stat, /proc/PID/stat, /proc/self/stat (CPU: server, us, others, irq, steal)
//! ```
//!
//! What is summed: for every socket whose local port is the server's port
//! (so the server's half of each loopback connection, never the clients'),
//! in every state but `LISTEN`, the `skmem` fields
//!
//! - `r` (`sk_rmem_alloc`): receive queue, what clients sent that the server
//!   has not read yet;
//! - `w` (`sk_wmem_queued`): send queue, what the server handed the kernel
//!   that the client has not acknowledged yet (unsent or in flight);
//! - `bl` (backlog): packets that arrived while the socket was locked.
//!
//! `queued = r + w + bl`. These are the kernel's own accounting (truesize,
//! so headers and skb overhead included), which is what `SO_SNDBUF` bounds.
//! Not added: `t` (`sk_wmem_alloc`, bytes handed to the IP layer and not
//! yet freed: on loopback those are clones of skbs `w` already counts),
//! `f` (`sk_forward_alloc`, memory reserved ahead but holding no data; it is
//! reported apart as `charged = queued + f`), `rb`/`tb` (the limits, not
//! usage), `o` (option memory) and `d` (a drop counter).
//!
//! One dump of every state gives both the established sockets and the
//! closing ones (`FIN-WAIT-*`, `CLOSING`, `LAST-ACK`, `CLOSE-WAIT`,
//! `TIME-WAIT`, `SYN-RECV`) at the same instant.
//!
//! Invariant: the thread ends when told to or after [`MAX_RUN`]; every
//! `ss` run is bounded by [`SS_TIMEOUT`]. A missing `ss` or `/proc` entry
//! is reported as unavailable, never fatal.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Hard bound on the sampler thread's life.
pub const MAX_RUN: Duration = Duration::from_secs(4 * 3600);

/// Longest one `ss` dump may take before it is killed (the sample is then
/// marked unavailable).
pub const SS_TIMEOUT: Duration = Duration::from_secs(5);

/// The `skmem:(…)` fields of one socket, in bytes (`d` is a count).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SkMem {
    /// `sk_rmem_alloc`: receive queue.
    pub r: u64,
    /// `sk_rcvbuf`: receive buffer limit.
    pub rb: u64,
    /// `sk_wmem_alloc`: handed to the IP layer, not yet freed.
    pub t: u64,
    /// `sk_sndbuf`: send buffer limit.
    pub tb: u64,
    /// `sk_forward_alloc`: reserved, holding no data.
    pub f: u64,
    /// `sk_wmem_queued`: send queue (unsent and unacknowledged).
    pub w: u64,
    /// `sk_omem_alloc`: option memory.
    pub o: u64,
    /// Backlog queue.
    pub bl: u64,
    /// Packets dropped.
    pub d: u64,
}

impl SkMem {
    /// Parses `skmem:(r0,rb131072,t0,tb3939840,f3910,w4282,o0,bl0,d0)`
    /// anywhere in `line`; unknown keys are ignored.
    pub fn parse(line: &str) -> Option<SkMem> {
        let start = line.find("skmem:(")? + "skmem:(".len();
        let end = start + line[start..].find(')')?;
        let mut m = SkMem::default();
        for field in line[start..end].split(',') {
            let digits = field
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(field.len());
            let (key, value) = field.split_at(digits);
            let Ok(v) = value.parse::<u64>() else {
                continue;
            };
            match key {
                "r" => m.r = v,
                "rb" => m.rb = v,
                "t" => m.t = v,
                "tb" => m.tb = v,
                "f" => m.f = v,
                "w" => m.w = v,
                "o" => m.o = v,
                "bl" => m.bl = v,
                "d" => m.d = v,
                _ => {}
            }
        }
        Some(m)
    }

    /// `r + w + bl`: data the kernel queues for this socket (see the module
    /// docs for why these three).
    pub fn queued(&self) -> u64 {
        self.r + self.w + self.bl
    }
}

/// One socket of an `ss -H -t -a -m -n` dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SsSocket {
    /// `ESTAB`, `FIN-WAIT-1`, `LISTEN`, …
    pub state: String,
    /// `Recv-Q`: payload bytes not read by the application.
    pub recv_q: u64,
    /// `Send-Q`: payload bytes not acknowledged by the peer.
    pub send_q: u64,
    /// Local address.
    pub local: Option<SocketAddr>,
    /// Peer address (`None` for `*:*`).
    pub peer: Option<SocketAddr>,
    /// Memory, when `-m` gave it (time-wait sockets have none).
    pub skmem: Option<SkMem>,
    /// The socket's cookie (`sk:` with `-e`): tells two connections from
    /// the same peer address apart when a port is reused.
    pub cookie: Option<u64>,
}

/// Parses `ss -H -t -a -m -n -e` output: one line per socket (state,
/// Recv-Q, Send-Q, local, peer, then `ino:… sk:…`), its `skmem:(…)` on the
/// next, indented line.
/// Lines that are neither are skipped.
pub fn parse_ss(text: &str) -> Vec<SsSocket> {
    let mut out: Vec<SsSocket> = Vec::new();
    for line in text.lines() {
        if line.starts_with([' ', '\t']) {
            if let (Some(last), Some(m)) = (out.last_mut(), SkMem::parse(line)) {
                last.skmem = Some(m);
            }
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 5 {
            continue;
        }
        let (Ok(recv_q), Ok(send_q)) = (cols[1].parse(), cols[2].parse()) else {
            continue;
        };
        out.push(SsSocket {
            state: cols[0].to_string(),
            recv_q,
            send_q,
            local: parse_addr(cols[3]),
            peer: parse_addr(cols[4]),
            // Some ss versions print skmem on the same line.
            skmem: SkMem::parse(line),
            cookie: cols[5..]
                .iter()
                .find_map(|c| c.strip_prefix("sk:"))
                .and_then(|h| u64::from_str_radix(h, 16).ok()),
        });
    }
    out
}

/// `127.0.0.1:8080`, `[::1]:8080`, `[::ffff:127.0.0.1]:8080` (as IPv4);
/// `None` for `*:*` and the like.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let a: SocketAddr = s.parse().ok()?;
    Some(match a {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), v6.port()),
            None => a,
        },
        v4 => v4,
    })
}

/// Totals over one dump of the server's sockets (every state but `LISTEN`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SockTotals {
    /// Sockets in `ESTAB`.
    pub established: u64,
    /// Sockets in any other state but `LISTEN`, by state.
    pub closing: BTreeMap<String, u64>,
    /// Sum of `Recv-Q` (payload bytes).
    pub recv_q: u64,
    /// Sum of `Send-Q` (payload bytes).
    pub send_q: u64,
    /// Sum of `skmem` `r`.
    pub r: u64,
    /// Sum of `skmem` `w`.
    pub w: u64,
    /// Sum of `skmem` `t` (not part of `queued`).
    pub t: u64,
    /// Sum of `skmem` `f` (not part of `queued`).
    pub f: u64,
    /// Sum of `skmem` `bl`.
    pub bl: u64,
    /// `r + w + bl` over established sockets.
    pub queued_established: u64,
    /// `r + w + bl` over the other states.
    pub queued_closing: u64,
    /// The largest `r + w + bl` of one socket.
    pub max_socket_queued: u64,
}

impl SockTotals {
    /// Sums a parsed dump.
    pub fn of(sockets: &[SsSocket]) -> SockTotals {
        let mut t = SockTotals::default();
        for s in sockets.iter().filter(|s| s.state != "LISTEN") {
            let est = s.state == "ESTAB";
            if est {
                t.established += 1;
            } else {
                *t.closing.entry(s.state.clone()).or_insert(0) += 1;
            }
            t.recv_q += s.recv_q;
            t.send_q += s.send_q;
            if let Some(m) = s.skmem {
                t.r += m.r;
                t.w += m.w;
                t.t += m.t;
                t.f += m.f;
                t.bl += m.bl;
                let q = m.queued();
                if est {
                    t.queued_established += q;
                } else {
                    t.queued_closing += q;
                }
                t.max_socket_queued = t.max_socket_queued.max(q);
            }
        }
        t
    }

    /// `r + w + bl` over every socket.
    pub fn queued(&self) -> u64 {
        self.queued_established + self.queued_closing
    }

    /// Sockets not established (orphaned or closing), every state.
    pub fn closing_count(&self) -> u64 {
        self.closing.values().sum()
    }
}

/// One sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sample {
    /// When the sample started, ns after the run's `t0`.
    pub at_ns: u64,
    /// How long the `ss` dump took, ns (0 without `ss`).
    pub ss_ns: u64,
    /// The server's sockets, if `ss` worked.
    pub sockets: Option<SockTotals>,
    /// Server `VmRSS`, KiB.
    pub rss_kib: Option<u64>,
    /// Server open descriptors.
    pub fds: Option<u64>,
    /// CPU use since the previous sample, in % of one core.
    pub cpu: Option<CpuUse>,
}

/// Where the machine's CPU went between two samples, % of one core.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CpuUse {
    /// The server process (0 when it is this process).
    pub server: f64,
    /// This process (the load generator, with its `ss` children).
    pub loadgen: f64,
    /// Task time (user + system) of every other process: other tenants.
    pub other: f64,
    /// Interrupt and softirq time, charged to no process (loopback packet
    /// processing, ours included, lands here).
    pub irq: f64,
    /// Time the hypervisor gave to other guests.
    pub steal: f64,
}

/// The presence intervals of one peer address: `(first, last, cookie)`, the
/// sample indexes between which one server socket (`cookie`, 0 when `ss`
/// gave none: then each run of consecutive samples) was listed.
pub type Presence = Vec<(u32, u32, u64)>;

/// Everything the sampler recorded.
#[derive(Debug, Clone, Default)]
pub struct MonitorData {
    /// The samples, in order.
    pub samples: Vec<Sample>,
    /// End of each sample's `ss` dump, ns after `t0` (same indexes).
    pub sample_end_ns: Vec<u64>,
    /// Server-side sockets by peer address (the client's local address).
    pub presence: HashMap<SocketAddr, Presence>,
    /// `ss` could not be run (not installed, or it failed).
    pub ss_error: Option<String>,
    /// Server descriptors and RSS before the first client connected.
    pub fds_before: Option<u64>,
    /// Server RSS before the first client connected, KiB.
    pub rss_before_kib: Option<u64>,
}

impl MonitorData {
    /// When the server-side socket of the connection from `peer` was first
    /// seen gone, at or after `after_ns`: the end of the first dump that no
    /// longer listed it (an upper bound; the dump before still had it).
    /// `None` if it was never seen, or was still there in the last dump.
    pub fn gone_at(&self, peer: &SocketAddr, after_ns: u64) -> Option<u64> {
        let runs = self.presence.get(peer)?;
        let last_ns = |i: u32| self.samples.get(i as usize).map(|s| s.at_ns);
        // The first incarnation still listed at or after `after_ns`.
        let &(_, last, _) = runs
            .iter()
            .find(|&&(_, last, _)| last_ns(last).is_some_and(|t| t >= after_ns))
            .or_else(|| runs.last())?;
        let next = last as usize + 1;
        if next >= self.samples.len() {
            return None;
        }
        self.sample_end_ns.get(next).copied()
    }

    /// Records one dump's peers into the presence map as sample `idx`.
    /// `TIME-WAIT` does not count: it is the kernel's memory of a closed
    /// connection, without a descriptor or buffers.
    fn note_peers(&mut self, idx: u32, sockets: &[SsSocket]) {
        for s in sockets
            .iter()
            .filter(|s| s.state != "LISTEN" && s.state != "TIME-WAIT")
        {
            let Some(peer) = s.peer else { continue };
            let cookie = s.cookie.unwrap_or(0);
            let runs = self.presence.entry(peer).or_default();
            let same = runs.iter_mut().rev().find(|r| r.2 == cookie);
            match same {
                // The same socket (a cookie is never reused while it lives).
                Some(r) if cookie != 0 => r.1 = idx,
                Some(r) if r.1 == idx => {}
                Some(r) if r.1 + 1 == idx => r.1 = idx,
                _ => runs.push((idx, idx, cookie)),
            }
        }
    }
}

/// What to watch.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    /// The server's listening port (its sockets' local port).
    pub port: u16,
    /// The server's process id, for RSS and descriptors.
    pub pid: Option<u32>,
    /// Time between samples.
    pub interval: Duration,
}

/// A running sampler thread.
#[derive(Debug)]
pub struct Monitor {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<MonitorData>,
    fds_before: Option<u64>,
}

impl Monitor {
    /// Takes the "before" figures, then starts sampling every
    /// `cfg.interval`; times are ns after `t0`.
    pub fn start(cfg: MonitorConfig, t0: Instant) -> std::io::Result<Monitor> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let fds_before = cfg.pid.and_then(fd_count);
        let mut data = MonitorData {
            fds_before,
            rss_before_kib: cfg.pid.and_then(|p| status_kib(p, "VmRSS:")),
            ..MonitorData::default()
        };
        let handle = std::thread::Builder::new()
            .name("loadtest-monitor".into())
            .spawn(move || {
                let began = Instant::now();
                let mut cpu = CpuMeter::new(cfg.pid);
                while !flag.load(Ordering::Relaxed) && began.elapsed() < MAX_RUN {
                    let next = Instant::now() + cfg.interval;
                    sample_once(&cfg, t0, &mut data, &mut cpu);
                    // Sleep in short steps so a stop is seen quickly.
                    while !flag.load(Ordering::Relaxed) && Instant::now() < next {
                        std::thread::sleep(Duration::from_millis(10).min(cfg.interval));
                    }
                }
                data
            })?;
        Ok(Monitor {
            stop,
            handle,
            fds_before,
        })
    }

    /// The server's descriptor count before the run.
    pub fn fds_before(&self) -> Option<u64> {
        self.fds_before
    }

    /// Stops the thread and returns what it recorded.
    pub fn finish(self) -> MonitorData {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_default()
    }
}

fn sample_once(cfg: &MonitorConfig, t0: Instant, data: &mut MonitorData, cpu: &mut CpuMeter) {
    let at_ns = t0.elapsed().as_nanos() as u64;
    let mut sample = Sample {
        at_ns,
        ..Sample::default()
    };
    if data.ss_error.is_none() {
        match dump_ss(cfg.port) {
            Ok(text) => {
                let sockets = parse_ss(&text);
                let idx = data.samples.len() as u32;
                data.note_peers(idx, &sockets);
                sample.sockets = Some(SockTotals::of(&sockets));
            }
            Err(e) => data.ss_error = Some(e),
        }
    }
    let end_ns = t0.elapsed().as_nanos() as u64;
    sample.ss_ns = end_ns - at_ns;
    if let Some(pid) = cfg.pid {
        sample.rss_kib = status_kib(pid, "VmRSS:");
        sample.fds = fd_count(pid);
    }
    sample.cpu = cpu.sample();
    data.samples.push(sample);
    data.sample_end_ns.push(end_ns);
}

/// Runs `ss` once for the sockets whose local port is `port`, every state.
///
/// # Errors
/// A message if `ss` cannot start, fails, or takes over [`SS_TIMEOUT`].
pub fn dump_ss(port: u16) -> Result<String, String> {
    let mut child = Command::new("ss")
        .args(["-H", "-t", "-a", "-m", "-n", "-e"])
        .arg(format!("( sport = :{port} )"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run ss: {e}"))?;
    let mut stdout = child.stdout.take().ok_or("ss: no stdout")?;
    // Read on this thread; a watchdog kills a hung ss so the read ends.
    let pid = child.id();
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    let watchdog = std::thread::spawn(move || {
        let began = Instant::now();
        while !flag.load(Ordering::Relaxed) {
            if began.elapsed() > SS_TIMEOUT {
                // SAFETY: kill(2) on our own child's pid; at worst ESRCH.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut text = String::new();
    let read = stdout.read_to_string(&mut text);
    let status = child.wait();
    done.store(true, Ordering::Relaxed);
    let _ = watchdog.join();
    read.map_err(|e| format!("reading ss output: {e}"))?;
    match status {
        Ok(s) if s.success() => Ok(text),
        Ok(s) => Err(format!("ss failed: {s}")),
        Err(e) => Err(format!("waiting for ss: {e}")),
    }
}

/// How the server looked once the clients were gone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Settled {
    /// Its sockets were gone (but `TIME-WAIT`, which holds no descriptor
    /// and no buffer) and its descriptors back to the count before the run.
    pub settled: bool,
    /// Seconds from the end of the run until then (or until the limit).
    pub secs: f64,
    /// Descriptors at that point.
    pub fds_after: Option<u64>,
    /// RSS at that point, KiB.
    pub rss_after_kib: Option<u64>,
    /// Peak RSS of the server's life (`VmHWM`), KiB.
    pub hwm_kib: Option<u64>,
    /// The server's sockets left, by state (`LISTEN` not counted).
    pub sockets_after: BTreeMap<String, u64>,
}

/// Waits (at most `limit`, polling every 200 ms) until the server's
/// connections are gone and its descriptor count is back to `fds_before`.
pub fn settle(cfg: &MonitorConfig, fds_before: Option<u64>, limit: Duration) -> Settled {
    let began = Instant::now();
    loop {
        let sockets = dump_ss(cfg.port)
            .ok()
            .map(|t| SockTotals::of(&parse_ss(&t)));
        let fds = cfg.pid.and_then(fd_count);
        let sockets_gone = sockets.as_ref().is_none_or(|t| {
            t.established == 0
                && t.closing
                    .iter()
                    .all(|(state, n)| state == "TIME-WAIT" || *n == 0)
        });
        let fds_back = match (fds, fds_before) {
            (Some(now), Some(before)) => now <= before,
            _ => true,
        };
        let done = sockets_gone && fds_back;
        if done || began.elapsed() >= limit {
            let mut after = BTreeMap::new();
            if let Some(t) = &sockets {
                if t.established > 0 {
                    after.insert("ESTAB".to_string(), t.established);
                }
                after.extend(t.closing.clone());
            }
            return Settled {
                settled: done,
                secs: began.elapsed().as_secs_f64(),
                fds_after: fds,
                rss_after_kib: cfg.pid.and_then(|p| status_kib(p, "VmRSS:")),
                hwm_kib: cfg.pid.and_then(|p| status_kib(p, "VmHWM:")),
                sockets_after: after,
            };
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status_kib(&text, key)
}

/// The value of `key` (e.g. `VmRSS:`) in `/proc/PID/status` text, KiB.
pub fn parse_status_kib(text: &str, key: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// Entries in `/proc/PID/fd`.
pub fn fd_count(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.count() as u64)
}

/// CPU use of the machine, the server and this process (children
/// included: the `ss` runs) between two calls.
#[derive(Debug)]
struct CpuMeter {
    pid: Option<u32>,
    last: Option<(Instant, CpuTicks, u64, u64)>,
}

impl CpuMeter {
    fn new(pid: Option<u32>) -> Self {
        CpuMeter { pid, last: None }
    }

    fn read(&self) -> Option<(CpuTicks, u64, u64)> {
        let machine = cpu_ticks(&std::fs::read_to_string("/proc/stat").ok()?)?;
        let own = process_ticks(&std::fs::read_to_string("/proc/self/stat").ok()?, true)?;
        let server = match self.pid {
            Some(p) if p != std::process::id() => process_ticks(
                &std::fs::read_to_string(format!("/proc/{p}/stat")).ok()?,
                true,
            )?,
            _ => 0,
        };
        Some((machine, server, own))
    }

    /// Use since the last call (`None` on the first).
    fn sample(&mut self) -> Option<CpuUse> {
        let (m, server, own) = self.read()?;
        let now = Instant::now();
        let (t, m0, server0, own0) = self.last.replace((now, m, server, own))?;
        let secs = now.duration_since(t).as_secs_f64();
        if secs <= 0.0 {
            return None;
        }
        let pct = |ticks: u64| ticks as f64 / clock_ticks_per_sec() / secs * 100.0;
        let server = server.saturating_sub(server0);
        let own = own.saturating_sub(own0);
        Some(CpuUse {
            server: pct(server),
            loadgen: pct(own),
            other: pct(m.task.saturating_sub(m0.task).saturating_sub(server + own)),
            irq: pct(m.irq.saturating_sub(m0.irq)),
            steal: pct(m.steal.saturating_sub(m0.steal)),
        })
    }
}

/// Clock ticks of all cores from `/proc/stat`'s `cpu` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTicks {
    /// user + nice + system.
    pub task: u64,
    /// irq + softirq.
    pub irq: u64,
    /// steal.
    pub steal: u64,
}

/// Parses `/proc/stat`'s `cpu` line (user nice system idle iowait irq
/// softirq steal …).
pub fn cpu_ticks(stat: &str) -> Option<CpuTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 7 {
        return None;
    }
    Some(CpuTicks {
        task: v[0] + v[1] + v[2],
        irq: v[5] + v[6],
        steal: v.get(7).copied().unwrap_or(0),
    })
}

fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as f64 } else { 100.0 }
}

/// `utime + stime` (plus `cutime + cstime` with `children`) from a
/// `/proc/PID/stat` line; the command name may hold spaces and parentheses.
pub fn process_ticks(stat: &str, children: bool) -> Option<u64> {
    let after = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); utime is field 14.
    let f: Vec<&str> = after.split_whitespace().collect();
    let get = |field: usize| f.get(field - 3).and_then(|x| x.parse::<u64>().ok());
    let mut t = get(14)? + get(15)?;
    if children {
        t += get(16)? + get(17)?;
    }
    Some(t)
}

/// Least-squares slope of `points` (x, y), in y units per x unit; `None`
/// with fewer than two distinct x.
pub fn slope(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    if points.len() < 2 {
        return None;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mx) * (p.0 - mx)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    Some(sxy / sxx)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DUMP: &str = "\
LISTEN     0      4096       127.0.0.1:8080       0.0.0.0:*
\t skmem:(r0,rb131072,t0,tb16384,f0,w0,o0,bl0,d0)
ESTAB      0      3450       127.0.0.1:8080     127.0.0.1:47446
\t skmem:(r0,rb131072,t0,tb3939840,f3910,w4282,o0,bl0,d0)
ESTAB      156    0          127.0.0.1:8080     127.0.0.2:47544
\t skmem:(r988,rb131072,t0,tb131072,f3108,w0,o0,bl7,d2)
FIN-WAIT-1 0      130000     127.0.0.1:8080     127.0.0.1:47560
\t skmem:(r0,rb131072,t512,tb131072,f0,w133632,o0,bl0,d0)
TIME-WAIT  0      0          127.0.0.1:8080     127.0.0.1:47600
CLOSE-WAIT 28     0     [::ffff:127.0.0.1]:8080  [::ffff:127.0.0.1]:47522
\t skmem:(r859,rb131072,t0,tb3939840,f3237,w0,o0,bl0,d0)
";

    #[test]
    fn ss_dump_parses_every_socket_with_its_memory() {
        let s = parse_ss(DUMP);
        assert_eq!(s.len(), 6);
        assert_eq!(s[0].state, "LISTEN");
        assert_eq!(s[0].peer, None);
        assert_eq!(s[1].send_q, 3450);
        assert_eq!(s[1].peer, "127.0.0.1:47446".parse().ok());
        assert_eq!(
            s[1].skmem,
            Some(SkMem {
                r: 0,
                rb: 131_072,
                t: 0,
                tb: 3_939_840,
                f: 3910,
                w: 4282,
                o: 0,
                bl: 0,
                d: 0
            })
        );
        assert_eq!(s[2].recv_q, 156);
        assert_eq!(s[2].skmem.map(|m| (m.r, m.bl, m.d)), Some((988, 7, 2)));
        assert_eq!(s[4].state, "TIME-WAIT");
        assert_eq!(s[4].skmem, None, "time-wait sockets have no skmem");
        // v4-mapped addresses compare equal to the client's IPv4 address.
        assert_eq!(s[5].peer, "127.0.0.1:47522".parse().ok());
        assert_eq!(s[5].local, "127.0.0.1:8080".parse().ok());
    }

    #[test]
    fn totals_sum_r_w_bl_of_every_state_but_listen() {
        let t = SockTotals::of(&parse_ss(DUMP));
        assert_eq!(t.established, 2);
        assert_eq!(t.closing.get("FIN-WAIT-1"), Some(&1));
        assert_eq!(t.closing.get("TIME-WAIT"), Some(&1));
        assert_eq!(t.closing.get("CLOSE-WAIT"), Some(&1));
        assert_eq!(t.closing.get("LISTEN"), None);
        assert_eq!(t.closing_count(), 3);
        assert_eq!(t.queued_established, 4282 + 988 + 7);
        assert_eq!(t.queued_closing, 133_632 + 859);
        assert_eq!(t.queued(), 4282 + 988 + 7 + 133_632 + 859);
        assert_eq!(t.max_socket_queued, 133_632);
        assert_eq!((t.t, t.f), (512, 3910 + 3108 + 3237));
        assert_eq!((t.recv_q, t.send_q), (156 + 28, 3450 + 130_000));
    }

    #[test]
    fn odd_lines_are_skipped_and_skmem_on_the_same_line_is_read() {
        let s = parse_ss(
            "garbage\nESTAB 1 2 127.0.0.1:1 127.0.0.1:2 skmem:(r5,w6)\n\tno memory here\n",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].skmem.map(|m| m.queued()), Some(11));
        assert!(SkMem::parse("skmem:(r1,w2").is_none());
        assert_eq!(
            SkMem::parse("skmem:(rx,w2)").map(|m| (m.r, m.w)),
            Some((0, 2))
        );
    }

    fn data_with(present: &[&[&str]]) -> MonitorData {
        let mut d = MonitorData::default();
        for (i, peers) in present.iter().enumerate() {
            let text: String = peers
                .iter()
                .map(|p| format!("ESTAB 0 0 127.0.0.1:80 {p}\n"))
                .collect();
            d.note_peers(i as u32, &parse_ss(&text));
            d.samples.push(Sample {
                at_ns: i as u64 * 100,
                ..Sample::default()
            });
            d.sample_end_ns.push(i as u64 * 100 + 10);
        }
        d
    }

    #[test]
    fn a_socket_is_gone_at_the_end_of_the_first_dump_without_it() {
        let a = "127.0.0.1:1000";
        let b = "127.0.0.1:2000";
        let d = data_with(&[&[a, b], &[a, b], &[b], &[b], &[a, b], &[]]);
        let pa: SocketAddr = a.parse().expect("addr");
        let pb: SocketAddr = b.parse().expect("addr");
        assert_eq!(d.presence[&pa], vec![(0, 1, 0), (4, 4, 0)]);
        assert_eq!(d.presence[&pb], vec![(0, 4, 0)]);
        // Stalled at 50 ns: listed at 0 and 100, missing from dump 2.
        assert_eq!(d.gone_at(&pa, 50), Some(210));
        // A later incarnation (the port reused) is found by time.
        assert_eq!(d.gone_at(&pa, 300), Some(510));
        assert_eq!(d.gone_at(&pb, 0), Some(510));
        assert_eq!(d.gone_at(&"127.0.0.1:3".parse().expect("addr"), 0), None);
        // Still listed in the last dump: not gone.
        let d = data_with(&[&[a], &[a]]);
        assert_eq!(d.gone_at(&pa, 0), None);
    }

    #[test]
    fn time_wait_is_gone() {
        let mut d = MonitorData::default();
        for (i, state) in ["ESTAB", "FIN-WAIT-2", "TIME-WAIT"].iter().enumerate() {
            let text = format!("{state} 0 0 127.0.0.1:80 127.0.0.1:1000\n");
            d.note_peers(i as u32, &parse_ss(&text));
            d.samples.push(Sample {
                at_ns: i as u64 * 100,
                ..Sample::default()
            });
            d.sample_end_ns.push(i as u64 * 100 + 10);
        }
        let p: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        // An orphan in FIN-WAIT-2 is still the server's socket; TIME-WAIT is not.
        assert_eq!(d.presence[&p], vec![(0, 1, 0)]);
        assert_eq!(d.gone_at(&p, 0), Some(210));
    }

    #[test]
    fn a_reused_port_is_a_new_socket_when_cookies_say_so() {
        let mut d = MonitorData::default();
        // Socket 0x1a, then at once a new connection from the same port (0x2b).
        for (i, cookie) in ["1a", "1a", "2b", "2b"].iter().enumerate() {
            let text = format!(
                "ESTAB 0 0 127.0.0.1:80 127.0.0.1:1000 ino:7 sk:{cookie} cgroup:/ <->\n\t skmem:(r1,w2)\n"
            );
            let socks = parse_ss(&text);
            assert_eq!(socks[0].cookie, u64::from_str_radix(cookie, 16).ok());
            d.note_peers(i as u32, &socks);
            d.samples.push(Sample {
                at_ns: i as u64 * 100,
                ..Sample::default()
            });
            d.sample_end_ns.push(i as u64 * 100 + 10);
        }
        let p: SocketAddr = "127.0.0.1:1000".parse().expect("addr");
        assert_eq!(d.presence[&p], vec![(0, 1, 0x1a), (2, 3, 0x2b)]);
        // Stalled at 50: the first socket was gone by the end of dump 2.
        assert_eq!(d.gone_at(&p, 50), Some(210));
        assert_eq!(d.gone_at(&p, 250), None, "the second is still there");
    }

    #[test]
    fn slope_is_least_squares() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 7.0)).collect();
        assert!((slope(&pts).expect("slope") - 3.0).abs() < 1e-9);
        let noisy = [(0.0, 1.0), (1.0, 3.0), (2.0, 2.0), (3.0, 4.0)];
        assert!((slope(&noisy).expect("slope") - 0.8).abs() < 1e-9);
        assert_eq!(slope(&[(1.0, 1.0)]), None);
        assert_eq!(slope(&[(1.0, 1.0), (1.0, 2.0)]), None);
    }

    #[test]
    fn proc_files_parse() {
        let status = "Name:\ttickcast\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(10_240));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(20_480));
        assert_eq!(parse_status_kib(status, "VmSwap:"), None);
        let stat = "cpu  100 5 50 1000 20 1 2 3 0 0\ncpu0 50 0 0 0 0 0 0 0\n";
        assert_eq!(
            cpu_ticks(stat),
            Some(CpuTicks {
                task: 155,
                irq: 3,
                steal: 3
            })
        );
        assert_eq!(cpu_ticks("cpu  1 2 3\n"), None);
        // utime 14, stime 15, cutime 16, cstime 17; a name with ") (".
        let pstat = "42 (odd) (name) S 1 42 42 0 -1 4194560 10 0 0 0 70 30 4 6 20 0 1 0";
        assert_eq!(process_ticks(pstat, false), Some(100));
        assert_eq!(process_ticks(pstat, true), Some(110));
    }

    #[test]
    fn this_process_is_measurable() {
        let me = std::process::id();
        assert!(status_kib(me, "VmRSS:").is_some_and(|k| k > 0));
        assert!(fd_count(me).is_some_and(|n| n >= 3));
    }
}
