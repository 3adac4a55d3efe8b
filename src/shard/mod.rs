//! An I/O shard: one pinned thread running one `mio::Poll` over its share of
//! the sockets, with its own subscription index and last-value cache.
//!
//! The loop runs named phases, in this order:
//!
//! ```text
//! loop {
//!     poll(timeout)            // blocks only if no work is waiting (see `wake`)
//!     socket_events()          // input.rs: read, hand bytes to the session, act on its events
//!                              //   (request heads paced: HANDSHAKES_PER_TURN)
//!     drain_inbox()            // ticks fan out into outboxes (fanout.rs), notices, groups, sockets
//!     read_again()             // input.rs: connections that hit their per-turn read bound
//!     flush_dirty()            // output.rs: write every connection with queued frames
//!     housekeeping()           // every HOUSEKEEPING: session timers (pings, deadlines),
//!                              //   outbox gauge; each second, latencies to the shard's cell
//!     publish_counters()       // the shard's counts to its cell, once per turn
//! }
//! ```
//!
//! Metrics are the shard's own plain integers and histogram
//! (`crate::metrics`): no shared atomic is touched per frame, and the
//! shard's cell is locked at most once per turn, and once a second for
//! the latency histogram.
//!
//! Snapshot consistency falls out of the thread model: the shard applies
//! ticks to its last-value cache and to its connections' outboxes in one
//! step, and a subscription (which sends the snapshot from that cache) runs
//! between two such steps. So a snapshot with `seq = n` is always followed
//! by exactly `n+1, n+2, …` on that connection.

mod chunks;
mod connection;
mod fanout;
mod input;
mod joins;
mod log;
mod output;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;
use mio::net::TcpStream;
use mio::{Events, Poll, Token, Waker};
use slab::Slab;

use crate::admission::Admission;
use crate::history::History;
use crate::inbox::{ShardLink, ShardMsg};
use crate::metrics::{Disconnect, HandshakeFailure, Latency, Sampler, ShardCounts};
use crate::recycle::Recycler;
use crate::runtime::Runtime;
use crate::session::{Due, Event, Settings, State};
use crate::subscriptions::{ClassId, ConnKey, Index};
use crate::symbols::SymId;
use crate::transport::{PlainTcp, ServerTls, Stream, TlsTcp};
use crate::wake::Sleep;
use crate::wire::encode;
use crate::{Error, Frame, Result};
use connection::Connection;
use output::Eviction;

/// The token of the shard's waker; connection `k` uses `Token(k + 1)`.
const WAKER: Token = Token(0);
/// Readiness events taken per poll. More wait for the next poll; 1024 is
/// well above what one turn's writes leave time for.
const EVENTS_CAPACITY: usize = 1024;
/// How often deadlines and heartbeats are checked. Coarse on purpose: one
/// pass over 10,000 connections costs ~50 µs.
const HOUSEKEEPING: Duration = Duration::from_millis(100);
/// Bytes read from a socket at once: many client requests, and the
/// discarded input of closing connections.
const READ_CHUNK: usize = 16 * 1024;

/// Creates shard `id`'s poll and waker on the caller's thread (so failures
/// surface from `Broadcaster::start`) and spawns its thread.
pub(crate) fn spawn(
    id: usize,
    runtime: Arc<Runtime>,
    admission: Arc<Admission>,
    tls: Option<Arc<ServerTls>>,
    core: Option<core_affinity::CoreId>,
    recycler: Recycler,
) -> Result<(ShardLink, JoinHandle<()>)> {
    let poll_err = |source| Error::CreatePoll {
        thread: format!("shard {id}"),
        source,
    };
    let poll = Poll::new().map_err(poll_err)?;
    let waker = Waker::new(poll.registry(), WAKER).map_err(poll_err)?;
    let (tx, rx) = crossbeam_channel::bounded(crate::inbox::capacity(runtime.config.shard_inbox));
    let sleep = Arc::new(Sleep::default());
    let load = Arc::new(AtomicUsize::new(0));
    let link = ShardLink::new(tx, Arc::new(waker), sleep.clone(), load.clone());
    let inbox = InboxEnd {
        rx,
        sleep,
        load,
        recycler,
    };
    let shard = Shard::new(id, poll, inbox, runtime, admission, tls);
    let name = format!("tickcast-shard-{id}");
    let handle = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if let Some(core) = core {
                // Pinning is an optimization: an unpinned shard still works.
                let _ = core_affinity::set_for_current(core);
            }
            shard.run();
        })
        .map_err(|source| Error::Spawn { name, source })?;
    Ok((link, handle))
}

struct Shard {
    /// The shard's index: its thread's name and its metrics' `shard` label.
    id: usize,
    poll: Poll,
    rx: Receiver<ShardMsg>,
    sleep: Arc<Sleep>,
    /// Sockets held, read by the acceptor to balance shards; moved only
    /// through `Admission`.
    load: Arc<AtomicUsize>,
    conns: Slab<Connection>,
    index: Index,
    /// Last tick per symbol: the snapshot source.
    lvc: Vec<Option<fanout::LastValue>>,
    /// The last ticks per symbol, filled with the fan-out: the replay
    /// source of `resume` and `history`.
    history: History,
    /// Tick frames this shard held last, on their way back to the
    /// publisher.
    recycler: Recycler,
    /// Symbols whose new history (epoch) has not had its first tick here
    /// yet, sorted: that tick decides whether a reset snapshot precedes it
    /// (see `fan_out`). Empty but for a moment after a Redis failover.
    restarted: Vec<SymId>,
    /// Connections with frames to write this turn.
    dirty: Vec<ConnKey>,
    /// Connections that may have more input buffered.
    again: Vec<ConnKey>,
    /// Connections whose outbox overflowed during a fan-out.
    overflow: Vec<ConnKey>,
    /// Classes with a pending batch.
    pending_classes: Vec<ClassId>,
    /// The ticks fanned out since the last flush; classes hold indices
    /// into it (see `fanout`).
    turn: Vec<Frame>,
    /// Set when a connection has half its queue waiting: the shard takes
    /// nothing more from its inbox until its write pass has reached every
    /// dirty connection (see [`Shard::drain_inbox`]).
    fan_out_paused: bool,
    /// Most ticks one inbox drain takes (`fanout::drain_ticks`).
    drain_ticks: usize,
    /// Scratch: the classes packed into the chunk being planned.
    packed: Vec<ClassId>,
    /// The chunks packed batches are copied into, reused.
    chunks: chunks::ChunkPool,
    /// Scratch: the timers housekeeping found due.
    timers: Vec<(usize, Due)>,
    /// Scratch: what a session's input produced.
    events: Vec<Event>,
    /// Scratch: bytes just read from a socket.
    read_buf: Vec<u8>,
    settings: Settings,
    now: Instant,
    next_housekeeping: Instant,
    /// Set by `Shutdown`: the time by which every socket is dropped.
    stopping: Option<Instant>,
    /// Request heads routed this turn (see `input::HANDSHAKES_PER_TURN`).
    handshakes_this_turn: usize,
    /// The shard's counts, copied to its cell when `counts_changed`.
    counts: ShardCounts,
    counts_changed: bool,
    /// Publish-to-write latencies since the last merge into the cell
    /// (every `metrics::MERGE_EVERY`, at a housekeeping pass).
    latency: Latency,
    /// Which writes record their latency (one in `metrics::SAMPLE_EVERY`).
    sampler: Sampler,
    next_latency_merge: Instant,
    runtime: Arc<Runtime>,
    admission: Arc<Admission>,
    /// Set when the port speaks TLS: every socket accepted is `wss://`.
    tls: Option<Arc<ServerTls>>,
}

/// The shard's end of its [`ShardLink`]: the inbox, the flag the
/// publisher reads to know whether to wake it, and its share of the load.
struct InboxEnd {
    rx: Receiver<ShardMsg>,
    sleep: Arc<Sleep>,
    load: Arc<AtomicUsize>,
    /// Where the frames the shard lets go of go (the publisher).
    recycler: Recycler,
}

impl Shard {
    fn new(
        id: usize,
        poll: Poll,
        inbox: InboxEnd,
        runtime: Arc<Runtime>,
        admission: Arc<Admission>,
        tls: Option<Arc<ServerTls>>,
    ) -> Shard {
        let InboxEnd {
            rx,
            sleep,
            load,
            recycler,
        } = inbox;
        let now = Instant::now();
        Shard {
            id,
            poll,
            rx,
            sleep,
            load,
            conns: Slab::new(),
            index: Index::default(),
            lvc: Vec::new(),
            history: History::new(runtime.config.history_depth),
            recycler,
            restarted: Vec::new(),
            dirty: Vec::new(),
            again: Vec::new(),
            overflow: Vec::new(),
            pending_classes: Vec::new(),
            turn: Vec::new(),
            packed: Vec::new(),
            chunks: chunks::ChunkPool::default(),
            timers: Vec::new(),
            events: Vec::new(),
            read_buf: vec![0; READ_CHUNK],
            fan_out_paused: false,
            drain_ticks: fanout::drain_ticks(runtime.config.queue_capacity),
            settings: Settings::from_config(&runtime.config),
            now,
            next_housekeeping: now + HOUSEKEEPING,
            stopping: None,
            handshakes_this_turn: 0,
            counts: ShardCounts::default(),
            counts_changed: false,
            latency: Latency::default(),
            sampler: Sampler::default(),
            next_latency_merge: now + crate::metrics::MERGE_EVERY,
            runtime,
            admission,
            tls,
        }
    }

    fn run(mut self) {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        loop {
            let timeout = self.poll_timeout();
            if let Err(e) = self.poll.poll(&mut events, Some(timeout))
                && e.kind() != std::io::ErrorKind::Interrupted
            {
                // The poll itself failing is unrecoverable for this shard.
                break;
            }
            self.sleep.awake();
            self.now = Instant::now();
            self.handshakes_this_turn = 0;
            self.socket_events(&events);
            self.drain_inbox();
            self.read_again();
            self.flush_dirty();
            if self.now >= self.next_housekeeping {
                self.housekeeping();
                self.next_housekeeping = self.now + HOUSEKEEPING;
            }
            self.publish_counters();
            self.check_invariants();
            if self.stopping.is_some() && self.shutdown_done() {
                break;
            }
        }
        self.publish_counters();
        self.publish_latency();
        // Sockets still in the inbox were counted by the acceptor.
        for msg in self.rx.try_iter() {
            if let ShardMsg::Accept { .. } = msg {
                self.admission.drop_socket(&self.load);
            }
        }
    }

    /// How long the next poll may block: not at all while work is waiting.
    fn poll_timeout(&mut self) -> Duration {
        if !self.again.is_empty() || !self.dirty.is_empty() {
            return Duration::ZERO;
        }
        if !self.sleep.prepare(&self.rx) {
            return Duration::ZERO;
        }
        self.next_housekeeping
            .saturating_duration_since(Instant::now())
    }

    // ---- phase: socket events ------------------------------------------------

    fn socket_events(&mut self, events: &Events) {
        for ev in events.iter() {
            if ev.token() == WAKER {
                continue;
            }
            let key = ev.token().0 - 1;
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                self.on_readable(key);
            }
            if ev.is_writable() {
                self.mark_dirty(key);
            }
        }
    }

    // ---- phase: the inbox ----------------------------------------------------

    /// Takes messages until `drain_ticks` ticks (or other messages) are
    /// in: ticks fan out, the rest is applied in order after the ticks
    /// before it.
    ///
    /// None while the fan-out is paused: once a connection has half its
    /// queue waiting, the shard writes every dirty connection before it
    /// takes more. A shard that falls behind then keeps its backlog in the
    /// inbox, where the publisher waits on it, instead of fanning all of
    /// it out while the connections late in a long write pass wait for
    /// their turn and overflow: that evicted up to 90 % of 1,000 clients
    /// whose sockets had taken every byte they were given (issue 11, the
    /// distinct-subscription cell at 4 M deliveries/s). Only a client that
    /// does not take what it is written can fill its queue. Until one that
    /// has stopped reading overflows and is evicted, each tick queued on
    /// it pauses the fan-out again, and the shard takes `drain_ticks`
    /// (1,024 at the default queue) per write pass.
    fn drain_inbox(&mut self) {
        if self.dirty.is_empty() {
            // Every connection is written, or waits on its socket.
            self.fan_out_paused = false;
        }
        let mut taken = 0;
        while taken < self.drain_ticks && !self.fan_out_paused {
            let Ok(msg) = self.rx.try_recv() else { break };
            taken += match &msg {
                ShardMsg::Ticks(batch) => batch.len(),
                _ => {
                    // Everything else is ordered after the ticks before it.
                    self.flush_classes();
                    1
                }
            };
            match msg {
                ShardMsg::Ticks(batch) => {
                    // Each frame's count line was last written by the
                    // publisher: ask for all of them before the clones
                    // below need the first, so the misses overlap rather
                    // than queue (`Frame::clone` was 8.6 % of all samples
                    // in `benches/publisher.rs`, most of the shard's time).
                    for t in batch.iter() {
                        t.frame.prefetch_counts();
                    }
                    match Arc::try_unwrap(batch) {
                        // The last holder (the only one with one shard):
                        // the frames move, and the vector goes back.
                        Ok(mut ticks) => {
                            for t in ticks.drain(..) {
                                self.fan_out(t.sym, t.seq, t.ts, t.frame);
                            }
                            self.recycler.give_tick_batch(ticks);
                        }
                        Err(shared) => {
                            for t in shared.iter() {
                                self.fan_out(t.sym, t.seq, t.ts, t.frame.clone());
                            }
                        }
                    }
                }
                ShardMsg::Notice { user, frame } => self.notice(user.as_deref(), &frame),
                ShardMsg::Accept { stream, peer } => self.accept(stream, peer),
                ShardMsg::SetGroup { name, symbols } => self.set_group(name, &symbols),
                ShardMsg::AddToGroup { name, sym } => self.add_to_group(&name, sym),
                ShardMsg::RemoveGroup { name } => self.remove_group(&name),
                ShardMsg::NewHistory { syms } => self.new_history(&syms),
                ShardMsg::Shutdown => self.begin_shutdown(),
            }
        }
        // Messages left over are seen by `poll_timeout` (via
        // `Sleep::prepare`), which then does not let the poll block.
        self.flush_classes();
        self.recycler.flush();
    }

    fn accept(&mut self, stream: TcpStream, peer: SocketAddr) {
        let transport = match &self.tls {
            None => Some(Stream::Plain(PlainTcp::new(stream))),
            // The certificate in force now; a reload later leaves it be.
            Some(tls) => TlsTcp::new(stream, tls.current())
                .ok()
                .map(|t| Stream::Tls(Box::new(t))),
        };
        let Some(transport) = transport else {
            self.admission.drop_socket(&self.load);
            return;
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let mut conn = Connection::new(transport, peer, self.now, &self.runtime.config);
        let registered =
            self.stopping.is_none() && conn.register(self.poll.registry(), Token(key + 1)).is_ok();
        if !registered {
            self.admission.drop_socket(&self.load);
            return;
        }
        entry.insert(conn);
    }

    fn begin_shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(self.now + self.runtime.config.close_linger);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            match self.conns.get(key).map(|c| c.session.state()) {
                Some(State::Handshake) => self.remove(key),
                Some(State::Open) => {
                    self.close(
                        key,
                        Disconnect::Shutdown,
                        1001,
                        "server shutting down",
                        false,
                    );
                }
                _ => {}
            }
        }
    }

    /// While stopping: true once every socket is gone (dropping what is
    /// left at the deadline).
    fn shutdown_done(&mut self) -> bool {
        if self.conns.is_empty() {
            return true;
        }
        if self.stopping.is_some_and(|deadline| self.now >= deadline) {
            let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
            for k in keys {
                self.reset(k);
            }
            return true;
        }
        false
    }

    // ---- phase: housekeeping -------------------------------------------------

    fn housekeeping(&mut self) {
        let wall = SystemTime::now();
        let max_lag = self.settings.max_lag;
        let mut timers = std::mem::take(&mut self.timers);
        let mut queued = 0;
        for (key, conn) in self.conns.iter_mut() {
            queued += conn.outbox.len() as u64;
            conn.outbox.release_idle();
            // The oldest frame still queued is the lag the shard sees
            // first; the session's unanswered ping covers what the kernel's
            // buffers hide.
            let queue_lag = conn.session.is_open()
                && conn
                    .outbox
                    .oldest()
                    .is_some_and(|t| self.now.saturating_duration_since(t) >= max_lag);
            let due = if queue_lag {
                Some(Due::Lagging)
            } else {
                conn.session.due(self.now, wall, &self.settings)
            };
            if let Some(due) = due {
                timers.push((key, due));
            }
        }
        self.set_count(|c| &mut c.outbox_frames, queued);
        self.chunks.trim();
        if self.now >= self.next_latency_merge {
            self.publish_latency();
            self.next_latency_merge = self.now + crate::metrics::MERGE_EVERY;
        }
        for (key, due) in timers.drain(..) {
            match due {
                Due::LingerOver => self.linger_over(key),
                Due::HandshakeTimeout => self.handshake_failed(key, HandshakeFailure::Timeout),
                Due::Ping => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.session.pinged(self.now);
                    }
                    self.push(key, encode::ping());
                }
                Due::Lagging => self.evict(key, Eviction::Lag),
                Due::HeartbeatTimeout => {
                    self.close(key, Disconnect::Heartbeat, 4002, "heartbeat timeout", false);
                }
                Due::Expired => self.close(key, Disconnect::Expired, 1008, "token expired", false),
            }
        }
        self.timers = timers;
        self.flush_dirty();
    }

    /// A closing connection's time is up and the peer has not closed its
    /// side: reset it. Even when its last bytes are with the kernel, a
    /// peer that does not read keeps them unacknowledged, and a normal
    /// close would leave an orphan holding them (seen: 3,534 of 10,000
    /// stalled clients in FIN-WAIT-1 with their buffers full).
    fn linger_over(&mut self, key: usize) {
        self.reset(key);
    }

    /// Sets a gauge of the shard's counts.
    fn set_count(&mut self, field: impl FnOnce(&mut ShardCounts) -> &mut u64, value: u64) {
        let f = field(&mut self.counts);
        if *f != value {
            *f = value;
            self.counts_changed = true;
        }
    }

    /// Copies the shard's counts to its cell if they changed this turn: one
    /// uncontended lock per busy turn, none per frame.
    fn publish_counters(&mut self) {
        self.set_count(|c| &mut c.sockets, self.conns.len() as u64);
        if self.counts_changed {
            self.runtime
                .shard_cells
                .get(self.id)
                .set_counts(&self.counts);
            self.counts_changed = false;
        }
    }

    /// Moves the latencies recorded since the last call into the cell.
    fn publish_latency(&mut self) {
        self.runtime
            .shard_cells
            .get(self.id)
            .merge_latency(&mut self.latency);
    }

    /// Debug builds, once per turn: a connection marked dirty is on the
    /// dirty list (the list may also hold stale keys, which the write pass
    /// skips); open connections hold an admission ticket and others do not;
    /// no eviction is left pending; the shard's load covers its
    /// connections. The list check is quadratic, so it runs only on small
    /// shards (the tests').
    fn check_invariants(&self) {
        if !cfg!(debug_assertions) {
            return;
        }
        if self.conns.len() <= 256 {
            for (k, c) in &self.conns {
                debug_assert!(
                    !c.dirty || self.dirty.contains(&(k as ConnKey)),
                    "connection {k} is marked dirty but not on the list"
                );
            }
        }
        debug_assert!(
            self.overflow.is_empty(),
            "evictions are handled within the turn"
        );
        for (k, c) in &self.conns {
            debug_assert_eq!(
                c.session.is_open(),
                c.admitted.is_some(),
                "connection {k}: open if and only if admitted"
            );
        }
        debug_assert!(
            self.load.load(std::sync::atomic::Ordering::Relaxed) >= self.conns.len(),
            "every connection is counted in the shard's load"
        );
    }
}
