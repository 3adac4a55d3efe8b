//! An I/O shard: one pinned thread running one `mio::Poll` over its share of
//! the sockets, with its own subscription index and last-value cache.
//!
//! Each turn of the loop runs named phases, in this order:
//! 1. `poll` (blocking only if the inbox is empty, see [`crate::fanout`]);
//! 2. socket events: read requests (replies are queued), note writability;
//! 3. the inbox: ticks fan out into outboxes (an `Arc` clone each), notices,
//!    group changes, new sockets;
//! 4. connections that hit their per-turn read bound are read again;
//! 5. every connection that got frames is written, many frames per `writev`;
//! 6. housekeeping every [`HOUSEKEEPING`]: pings, heartbeat and handshake
//!    deadlines, lingering closes.
//!
//! Snapshot consistency falls out of the thread model: the shard applies
//! ticks to its last-value cache and to its connections' outboxes in one
//! step, and a subscription (which sends the snapshot from that cache) runs
//! between two such steps. So a snapshot with `seq = n` is always followed
//! by exactly `n+1, n+2, …` on that connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Receiver;
use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;
use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Message, error::ProtocolError};

use crate::broadcaster::Shared;
use crate::connection::{Connection, Io, Phase};
use crate::fanout::{ShardLink, ShardMsg, Sleep};
use crate::outbox::PushError;
use crate::protocol::{self, ErrorCode, Request, RequestError};
use crate::subscriptions::{ClassId, ConnKey, Index, Selection};
use crate::symbols::SymId;
use crate::{Error, Frame, Result, encode, http};

/// The token of the shard's waker; connection `k` uses `Token(k + 1)`.
const WAKER: Token = Token(0);
/// Inbox messages handled per turn before the shard goes back to its
/// sockets, so a flood of ticks cannot starve reads and writes. At 5,000
/// ticks/s this is almost a second of ticks: never reached in steady state.
const INBOX_BATCH: usize = 4096;
/// Most ticks in one class batch. A batch is queued as one entry, so a
/// bound keeps one entry small next to `queue_capacity` (4096 frames by
/// default) and keeps a burst from evicting every subscriber at once.
const MAX_BATCH: usize = 256;
/// Writes between two looks at the inbox during a pass. 64 writes take
/// ~0.3 ms; checking an empty inbox is one atomic load.
const DRAIN_EVERY: usize = 64;
/// Longest a writing pass runs before the shard polls its sockets again.
const PASS_BUDGET: Duration = Duration::from_millis(10);
/// Client messages read from one connection per turn; a flooding client
/// is read again next turn instead of starving the others.
const READS_PER_TURN: usize = 32;
/// How often deadlines and heartbeats are checked. Coarse on purpose: one
/// pass over 10,000 connections costs ~50 µs.
const HOUSEKEEPING: Duration = Duration::from_millis(100);

/// Creates shard `id`'s poll and waker on the caller's thread (so failures
/// surface from `Broadcaster::start`) and spawns its thread.
pub(crate) fn spawn(
    id: usize,
    shared: Arc<Shared>,
    core: Option<core_affinity::CoreId>,
) -> Result<(ShardLink, JoinHandle<()>)> {
    let poll = Poll::new().map_err(|source| Error::CreatePoll {
        thread: format!("shard {id}"),
        source,
    })?;
    let waker = Waker::new(poll.registry(), WAKER).map_err(|source| Error::CreatePoll {
        thread: format!("shard {id}"),
        source,
    })?;
    let (tx, rx) = crossbeam_channel::bounded(shared.config.shard_inbox);
    let sleep = Arc::new(Sleep::default());
    let sockets = Arc::new(AtomicUsize::new(0));
    let link = ShardLink::new(tx, Arc::new(waker), sleep.clone(), sockets.clone());
    let now = Instant::now();
    let c = &shared.config;
    let ws_config = WebSocketConfig::default()
        .read_buffer_size(512)
        .write_buffer_size(0)
        .max_message_size(Some(c.max_message_size))
        .max_frame_size(Some(c.max_message_size));
    let shard = Shard {
        poll,
        rx,
        sleep,
        sockets,
        conns: Slab::new(),
        index: Index::default(),
        lvc: Vec::new(),
        dirty: Vec::new(),
        again: Vec::new(),
        overflow: Vec::new(),
        pending_classes: Vec::new(),
        batch_parts: Vec::new(),
        actions: Vec::new(),
        sink: Vec::new(),
        scratch: vec![0; 16 * 1024],
        ws_config,
        now,
        next_housekeeping: now + HOUSEKEEPING,
        stopping: None,
        frames: 0,
        bytes: 0,
        shared,
    };
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

/// What housekeeping decided for one connection.
#[derive(Debug, Clone, Copy)]
enum Action {
    Remove,
    HandshakeTimeout,
    Ping,
    Close(u16, &'static str),
}

struct Shard {
    poll: Poll,
    rx: Receiver<ShardMsg>,
    sleep: Arc<Sleep>,
    /// Sockets held, read by the acceptor to balance shards.
    sockets: Arc<AtomicUsize>,
    conns: Slab<Connection>,
    index: Index,
    /// Last tick per symbol, `(seq, frame)`: the snapshot source.
    lvc: Vec<Option<(u64, Frame)>>,
    /// Connections with frames to write this turn.
    dirty: Vec<ConnKey>,
    /// Connections that may have more input buffered.
    again: Vec<ConnKey>,
    /// Connections whose outbox overflowed during a fan-out.
    overflow: Vec<ConnKey>,
    /// Classes with a pending batch.
    pending_classes: Vec<ClassId>,
    /// Scratch for the batch being flushed (see `flush_classes`).
    batch_parts: Vec<Frame>,
    actions: Vec<(usize, Action)>,
    /// Receives tungstenite's automatic replies (see `connection::Io`).
    sink: Vec<u8>,
    /// Discarded input of closing connections.
    scratch: Vec<u8>,
    ws_config: WebSocketConfig,
    now: Instant,
    next_housekeeping: Instant,
    /// Set by `Shutdown`: the time by which every socket is dropped.
    stopping: Option<Instant>,
    /// Frames and bytes written this turn (added to the shared counters
    /// once per turn).
    frames: u64,
    bytes: u64,
    shared: Arc<Shared>,
}

impl Shard {
    fn run(mut self) {
        let mut events = Events::with_capacity(1024);
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
            self.drain_inbox();
            self.read_again();
            self.flush_dirty();
            if self.now >= self.next_housekeeping {
                self.housekeeping();
                self.next_housekeeping = self.now + HOUSEKEEPING;
            }
            self.publish_counters();
            if let Some(deadline) = self.stopping {
                if self.conns.is_empty() {
                    break;
                }
                if self.now >= deadline {
                    let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
                    for k in keys {
                        self.remove(k);
                    }
                    break;
                }
            }
        }
        self.publish_counters();
        // Sockets still in the inbox were counted by the acceptor.
        for msg in self.rx.try_iter() {
            if let ShardMsg::Accept { .. } = msg {
                self.shared.counters.sockets.fetch_sub(1, Relaxed);
                self.sockets.fetch_sub(1, Relaxed);
            }
        }
    }

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

    // ---- phase 2: socket events --------------------------------------------

    fn on_readable(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.phase {
            Phase::Handshake { .. } => self.read_handshake(key),
            Phase::Open { .. } => self.read_open(key),
            Phase::Closing { .. } => {
                if conn.discard_input(&mut self.scratch)
                    && let Phase::Closing {
                        peer_closed,
                        write_shut,
                        ..
                    } = &mut conn.phase
                {
                    *peer_closed = true;
                    if *write_shut {
                        self.remove(key);
                    }
                }
            }
        }
    }

    fn read_handshake(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let Phase::Handshake { buf, .. } = &mut conn.phase else {
            return;
        };
        let mut got = false;
        while buf.len() < http::MAX_HEAD {
            let start = buf.len();
            buf.resize((start + 2048).min(http::MAX_HEAD), 0);
            match std::io::Read::read(&mut conn.stream, &mut buf[start..]) {
                Ok(0) => {
                    buf.truncate(start);
                    self.shared.counters.handshakes_failed.fetch_add(1, Relaxed);
                    self.remove(key);
                    return;
                }
                Ok(n) => {
                    buf.truncate(start + n);
                    got = true;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => buf.truncate(start),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    buf.truncate(start);
                    break;
                }
                Err(_) => {
                    self.shared.counters.handshakes_failed.fetch_add(1, Relaxed);
                    self.remove(key);
                    return;
                }
            }
        }
        if !got {
            return;
        }
        match http::route(buf) {
            None => {}
            Some(http::Route::Respond(resp)) => self.respond(key, resp),
            Some(http::Route::Upgrade(up)) => self.upgrade(key, up),
        }
    }

    /// Sends a final HTTP response and closes.
    fn respond(&mut self, key: usize, resp: http::Response) {
        if resp.status >= 400 {
            self.shared.counters.handshakes_failed.fetch_add(1, Relaxed);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.outbox.push_close(Frame::from(resp.to_bytes()));
        conn.start_closing(self.now + self.shared.config.close_linger);
        self.mark_dirty(key);
    }

    /// Applies the policy checks and completes the upgrade.
    fn upgrade(&mut self, key: usize, up: http::Upgrade) {
        let shared = self.shared.clone();
        let c = &shared.config;
        let refuse = |s: &mut Shard, status: u16, line: &str| {
            s.respond(key, http::Response::text(status, line));
        };
        if !c.allowed_origins.is_empty()
            && !up
                .origin
                .as_ref()
                .is_some_and(|o| c.allowed_origins.contains(o))
        {
            return refuse(self, 403, "origin not allowed");
        }
        let mut identity = None;
        if let Some(auth) = &c.auth {
            let Some(token) = up.token.as_deref() else {
                return refuse(self, 401, "missing token");
            };
            match auth.authenticate(token) {
                Some(id) => identity = Some(id),
                None => return refuse(self, 401, "invalid or expired token"),
            }
        }
        let Some(conn) = self.conns.get(key) else {
            return;
        };
        let ip = conn.peer.ip();
        if c.max_connections_per_ip > 0 {
            let mut per_ip = shared.per_ip.lock();
            let n = per_ip.entry(ip).or_insert(0);
            if *n >= c.max_connections_per_ip {
                drop(per_ip);
                return refuse(self, 429, "too many connections from this address");
            }
            *n += 1;
        }
        if shared.counters.open.fetch_add(1, Relaxed) >= c.max_connections {
            shared.counters.open.fetch_sub(1, Relaxed);
            shared.release_ip(ip, c.max_connections_per_ip > 0);
            shared.counters.refused_full.fetch_add(1, Relaxed);
            return refuse(self, 503, "connection limit reached");
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.ip_counted = c.max_connections_per_ip > 0;
        let Phase::Handshake { buf, .. } = &mut conn.phase else {
            return;
        };
        let leftover = buf.split_off(up.consumed.min(buf.len()));
        conn.conn_id = shared.next_conn_id.fetch_add(1, Relaxed) + 1;
        conn.client = up.client.map(String::into_boxed_str);
        if let Some(id) = identity {
            conn.user = Some(Arc::from(id.user));
            conn.expires_at = id.expires_at;
            conn.entitlements = id.entitlements.map(Box::new);
        }
        let ws =
            WebSocketContext::from_partially_read(leftover, Role::Server, Some(self.ws_config));
        conn.phase = Phase::Open { ws: Box::new(ws) };
        conn.last_rx = self.now;
        conn.last_ping = self.now;
        let hb = c.heartbeat.as_millis() as u64;
        let welcome = protocol::welcome(conn.conn_id, hb, c.queue_capacity);
        // An empty outbox takes two frames whatever its capacity (>= 1 each
        // time it is drained, and these are the first two).
        let _ = conn
            .outbox
            .try_push(Frame::from(http::switching_protocols(&up.key)));
        self.push(key, encode::json(&welcome));
        // Frames may have arrived with the request head.
        self.again.push(key as ConnKey);
    }

    fn read_open(&mut self, key: usize) {
        for _ in 0..READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            let Phase::Open { ws } = &mut conn.phase else {
                return;
            };
            let mut io = Io {
                sock: &mut conn.stream,
                sink: &mut self.sink,
                got_data: false,
            };
            let res = ws.read(&mut io);
            if let Ok(Message::Close(_)) = &res {
                // Moves tungstenite's close reply into the sink; the
                // "connection closed" result is expected.
                let _ = ws.flush(&mut io);
            }
            if io.got_data {
                conn.last_rx = self.now;
            }
            if !self.sink.is_empty() && !matches!(res, Ok(Message::Close(_))) {
                let f = Frame::from(&self.sink[..]);
                self.sink.clear();
                if !self.push(key, f) {
                    return;
                }
            }
            match res {
                Ok(Message::Text(text)) => self.on_text(key, text.as_str()),
                Ok(Message::Binary(_)) => {
                    let e = RequestError::new(
                        &None,
                        ErrorCode::BadRequest,
                        "binary messages are not accepted: send JSON in a text message",
                    );
                    self.push(key, encode::json(&e.to_json()));
                }
                Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => {}
                Ok(Message::Close(_)) => {
                    let reply = std::mem::take(&mut self.sink);
                    self.leave_open(key);
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.outbox.push_close(Frame::from(reply));
                        conn.start_closing(self.now + self.shared.config.close_linger);
                    }
                    self.mark_dirty(key);
                    return;
                }
                Err(tungstenite::Error::Io(e)) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    return;
                }
                Err(tungstenite::Error::Capacity(_)) => {
                    self.shared.counters.closed_oversize.fetch_add(1, Relaxed);
                    return self.close(key, 1009, "message too big", false);
                }
                Err(tungstenite::Error::Utf8(_)) => {
                    self.shared.counters.closed_protocol.fetch_add(1, Relaxed);
                    return self.close(key, 1007, "invalid UTF-8", false);
                }
                Err(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    return self.remove(key);
                }
                Err(tungstenite::Error::Protocol(e)) => {
                    self.shared.counters.closed_protocol.fetch_add(1, Relaxed);
                    let reason = format!("protocol error: {e}");
                    return self.close(key, 1002, &reason, false);
                }
                Err(_) => return self.remove(key),
            }
        }
        // The bound was hit: more input may be buffered in tungstenite.
        self.again.push(key as ConnKey);
    }

    // ---- requests ------------------------------------------------------------

    fn on_text(&mut self, key: usize, text: &str) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.bucket.take(self.now) {
            if conn.bucket.refused > self.shared.config.request_burst {
                self.shared.counters.closed_rate_limit.fetch_add(1, Relaxed);
                return self.close(key, 4008, "rate limited", false);
            }
            let id = protocol::parse_request(text)
                .ok()
                .and_then(|r| r.id().clone());
            let e = RequestError::new(&id, ErrorCode::RateLimited, "too many requests: slow down");
            self.push(key, encode::json(&e.to_json()));
            return;
        }
        let mut snapshots = Vec::new();
        let reply = match protocol::parse_request(text) {
            Err(e) => Err(e),
            Ok(Request::Subscribe {
                id,
                symbols,
                groups,
            }) => self
                .subscribe(key, &id, &symbols, &groups)
                .map(|(reply, syms)| {
                    snapshots = syms;
                    reply
                }),
            Ok(Request::Unsubscribe {
                id,
                symbols,
                groups,
                all,
            }) => self.unsubscribe(key, &id, &symbols, &groups, all),
            Ok(Request::ListGroups { id }) => Ok(protocol::groups(&id, &self.index.group_list())),
            Ok(Request::Ping { id }) => Ok(protocol::pong(&id, unix_nanos())),
        };
        match reply {
            Ok(v) => {
                self.push(key, encode::json(&v));
            }
            Err(e) => {
                self.push(key, encode::json(&e.to_json()));
            }
        }
        // Snapshots go out after the `subscribed` reply.
        self.send_snapshots(key, &snapshots);
    }

    /// Resolves names to a [`Selection`], checking everything before
    /// anything changes.
    fn resolve(
        &self,
        key: usize,
        id: &protocol::Id,
        symbols: &[String],
        groups: &[String],
        for_subscribe: bool,
    ) -> Result<Selection, RequestError> {
        let c = &self.shared.config;
        let mut sel = Selection::default();
        for g in groups {
            if g == "*" {
                sel.all = true;
            } else if let Some(name) = self.index.group_name(g) {
                sel.groups.push(name);
            } else {
                let shown: String = g.chars().take(64).collect();
                return Err(RequestError::new(
                    id,
                    ErrorCode::UnknownGroup,
                    format!("no group named '{shown}'"),
                ));
            }
        }
        for s in symbols {
            if let Err(reason) = crate::tick::validate_symbol(s) {
                return Err(RequestError::new(id, ErrorCode::BadRequest, reason));
            }
            let sym = if for_subscribe && !c.reject_unknown_symbols {
                Some(self.shared.symbols.intern(s))
            } else {
                self.shared.symbols.get(s)
            };
            match sym {
                Some(sym) => sel.symbols.push(sym),
                None if for_subscribe => {
                    return Err(RequestError::new(
                        id,
                        ErrorCode::UnknownSymbol,
                        format!("no symbol named '{s}'"),
                    ));
                }
                None => {}
            }
        }
        if for_subscribe {
            let conn = self.conns.get(key);
            if let Some(ent) = conn.and_then(|c| c.entitlements.as_deref()) {
                if sel.all && !ent.groups.contains("*") {
                    return Err(RequestError::new(
                        id,
                        ErrorCode::Forbidden,
                        "not entitled to '*'",
                    ));
                }
                if let Some(g) = sel.groups.iter().find(|g| !ent.groups.contains(&***g)) {
                    return Err(RequestError::new(
                        id,
                        ErrorCode::Forbidden,
                        format!("not entitled to group '{g}'"),
                    ));
                }
                for (name, &sym) in symbols.iter().zip(&sel.symbols) {
                    let in_group = ent.groups.contains("*")
                        || ent
                            .groups
                            .iter()
                            .any(|g| self.index.group_symbols(g).binary_search(&sym).is_ok());
                    if !ent.symbols.contains(name) && !in_group {
                        return Err(RequestError::new(
                            id,
                            ErrorCode::Forbidden,
                            format!("not entitled to symbol '{name}'"),
                        ));
                    }
                }
            }
            let after = self.index.count_after(key as ConnKey, &sel);
            if after > c.max_subscriptions {
                return Err(RequestError::new(
                    id,
                    ErrorCode::TooManySubscriptions,
                    format!(
                        "this would make {after} subscriptions; the limit is {}",
                        c.max_subscriptions
                    ),
                ));
            }
        }
        Ok(sel)
    }

    fn subscribe(
        &mut self,
        key: usize,
        id: &protocol::Id,
        symbols: &[String],
        groups: &[String],
    ) -> Result<(serde_json::Value, Vec<SymId>), RequestError> {
        let sel = self.resolve(key, id, symbols, groups, true)?;
        self.index.subscribe(key as ConnKey, &sel);
        // The symbols whose snapshots follow the reply.
        let mut syms: Vec<SymId> = if sel.all {
            (0..self.lvc.len() as SymId).collect()
        } else {
            let mut v = sel.symbols.clone();
            for g in &sel.groups {
                v.extend_from_slice(self.index.group_symbols(g));
            }
            v
        };
        syms.sort_unstable();
        syms.dedup();
        Ok((protocol::ack("subscribed", id, symbols, groups), syms))
    }

    fn unsubscribe(
        &mut self,
        key: usize,
        id: &protocol::Id,
        symbols: &[String],
        groups: &[String],
        all: bool,
    ) -> Result<serde_json::Value, RequestError> {
        if all {
            let sel = self.index.selection(key as ConnKey);
            self.index.unsubscribe(key as ConnKey, &sel);
            let mut names: Vec<String> = sel
                .symbols
                .iter()
                .filter_map(|&s| self.shared.symbols.name(s).map(|n| n.to_string()))
                .collect();
            names.sort();
            let mut gnames: Vec<String> = sel.groups.iter().map(|g| g.to_string()).collect();
            if sel.all {
                gnames.insert(0, "*".to_string());
            }
            return Ok(protocol::ack("unsubscribed", id, &names, &gnames));
        }
        let sel = self.resolve(key, id, symbols, groups, false)?;
        self.index.unsubscribe(key as ConnKey, &sel);
        Ok(protocol::ack("unsubscribed", id, symbols, groups))
    }

    /// Queues the `snapshot` of each of `syms` that has a last value.
    fn send_snapshots(&mut self, key: usize, syms: &[SymId]) {
        for &s in syms {
            let Some(Some((_, frame))) = self.lvc.get(s as usize) else {
                continue;
            };
            let Some(snap) = encode::snapshot_of(frame) else {
                continue;
            };
            if !self.push(key, snap) {
                break;
            }
        }
    }

    // ---- phase 3: the inbox --------------------------------------------------

    fn drain_inbox(&mut self) {
        for _ in 0..INBOX_BATCH {
            let Ok(msg) = self.rx.try_recv() else { break };
            if !matches!(msg, ShardMsg::Tick { .. }) {
                // Everything else is ordered after the ticks before it.
                self.flush_classes();
            }
            match msg {
                ShardMsg::Tick { sym, seq, frame } => self.fan_out(sym, seq, frame),
                ShardMsg::Notice { user, frame } => {
                    let keys: Vec<usize> = self
                        .conns
                        .iter()
                        .filter(|(_, c)| {
                            c.is_open() && user.as_ref().is_none_or(|u| c.user.as_ref() == Some(u))
                        })
                        .map(|(k, _)| k)
                        .collect();
                    for k in keys {
                        self.push(k, frame.clone());
                    }
                }
                ShardMsg::Accept { stream, peer } => self.accept(stream, peer),
                ShardMsg::SetGroup { name, symbols } => {
                    let gained = self.index.set_group(name, symbols.to_vec());
                    for (key, syms) in gained {
                        self.send_snapshots(key as usize, &syms);
                    }
                }
                ShardMsg::RemoveGroup { name } => {
                    let notified = self.index.remove_group(&name);
                    let v = protocol::ack("unsubscribed", &None, &[], &[name.to_string()]);
                    let f = encode::json(&v);
                    for key in notified {
                        self.push(key as usize, f.clone());
                    }
                }
                ShardMsg::Shutdown => self.begin_shutdown(),
            }
        }
        // Messages left over are seen by `poll_timeout` (via
        // `Sleep::prepare`), which then does not let the poll block.
        self.flush_classes();
    }

    /// The hot path, part 1: one `Arc` clone per subscription class that
    /// covers the symbol (not per connection).
    fn fan_out(&mut self, sym: SymId, seq: u64, frame: Frame) {
        let i = sym as usize;
        if self.lvc.len() <= i {
            self.lvc.resize(i + 1, None);
        }
        debug_assert_eq!(
            self.lvc[i].as_ref().map_or(0, |(s, _)| *s) + 1,
            seq,
            "ticks of a symbol reach a shard in seq order"
        );
        let longest = self
            .index
            .push_pending(sym, &frame, &mut self.pending_classes);
        self.lvc[i] = Some((seq, frame));
        if longest >= MAX_BATCH {
            self.flush_classes();
        }
    }

    /// The hot path, part 2: each class's pending ticks become one shared
    /// batch (one copy per class), queued on every member with an `Arc`
    /// clone. Connections that overflow are evicted afterwards.
    fn flush_classes(&mut self) {
        let classes = std::mem::take(&mut self.pending_classes);
        for &c in &classes {
            let Some(class) = self.index.class_mut(c) else {
                continue;
            };
            // Swap, not take: both vectors keep their capacity, so a steady
            // stream allocates no pending vectors.
            std::mem::swap(&mut class.pending, &mut self.batch_parts);
            let n = self.batch_parts.len();
            let batch = match n {
                0 => continue,
                1 => self.batch_parts[0].clone(),
                _ => Frame::concat(&self.batch_parts),
            };
            self.batch_parts.clear();
            let Some(class) = self.index.class(c) else {
                continue;
            };
            for &key in &class.members {
                let Some(conn) = self.conns.get_mut(key as usize) else {
                    continue;
                };
                match conn.outbox.try_push_batch(batch.clone(), n) {
                    Ok(()) => {
                        if !conn.dirty {
                            conn.dirty = true;
                            self.dirty.push(key);
                        }
                    }
                    Err(PushError::Full) => self.overflow.push(key),
                    Err(PushError::Closed) => {}
                }
            }
        }
        while let Some(key) = self.overflow.pop() {
            self.evict(key as usize);
        }
        for &c in &classes {
            self.index.sweep(c);
        }
        let mut classes = classes;
        classes.clear();
        self.pending_classes = classes;
    }

    fn accept(&mut self, mut stream: TcpStream, peer: SocketAddr) {
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let registered = self.stopping.is_none()
            && self
                .poll
                .registry()
                .register(
                    &mut stream,
                    Token(key + 1),
                    Interest::READABLE | Interest::WRITABLE,
                )
                .is_ok();
        if !registered {
            self.shared.counters.sockets.fetch_sub(1, Relaxed);
            self.sockets.fetch_sub(1, Relaxed);
            return;
        }
        entry.insert(Connection::new(stream, peer, self.now, &self.shared.config));
    }

    fn begin_shutdown(&mut self) {
        if self.stopping.is_some() {
            return;
        }
        self.stopping = Some(self.now + self.shared.config.close_linger);
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for key in keys {
            match self.conns.get(key).map(|c| &c.phase) {
                Some(Phase::Handshake { .. }) => self.remove(key),
                Some(Phase::Open { .. }) => self.close(key, 1001, "server shutting down", false),
                _ => {}
            }
        }
    }

    // ---- phase 4 and 5: read again, write ------------------------------------

    fn read_again(&mut self) {
        let again = std::mem::take(&mut self.again);
        for &key in &again {
            self.on_readable(key as usize);
        }
        let mut again = again;
        again.clear();
        // `on_readable` may have queued keys for the next turn.
        again.append(&mut self.again);
        self.again = again;
    }

    /// Writes every connection with queued frames, in the order they
    /// became dirty: a rolling, round-robin pass. Every [`DRAIN_EVERY`]
    /// writes it takes new ticks from the inbox, so connections later in a
    /// long pass get them in the same write: a tick waits at most about one
    /// pass, not a pass to be noticed plus a pass to be written. Returns
    /// after [`PASS_BUDGET`] to serve sockets and timers; the rest of the
    /// pass continues next turn.
    fn flush_dirty(&mut self) {
        let start = Instant::now();
        let mut i = 0;
        while i < self.dirty.len() {
            let key = self.dirty[i] as usize;
            i += 1;
            self.write_conn(key);
            if i % DRAIN_EVERY == 0 {
                if !self.rx.is_empty() {
                    self.drain_inbox();
                }
                if start.elapsed() >= PASS_BUDGET {
                    break;
                }
            }
        }
        self.dirty.drain(..i);
    }

    fn write_conn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.dirty {
            return;
        }
        conn.dirty = false;
        match conn
            .outbox
            .write_to(&mut crate::connection::Send(&conn.stream))
        {
            Ok(p) => {
                self.frames += p.frames as u64;
                self.bytes += p.bytes as u64;
                if p.drained && matches!(conn.phase, Phase::Closing { .. }) && conn.finish_writing()
                {
                    self.remove(key);
                }
            }
            Err(_) => self.remove(key),
        }
    }

    // ---- phase 6: housekeeping -----------------------------------------------

    fn housekeeping(&mut self) {
        let hb = self.shared.config.heartbeat;
        let now_sys = SystemTime::now();
        let mut actions = std::mem::take(&mut self.actions);
        for (key, conn) in self.conns.iter() {
            let act = match &conn.phase {
                Phase::Handshake { deadline, .. } if self.now >= *deadline => {
                    Some(Action::HandshakeTimeout)
                }
                Phase::Handshake { .. } => None,
                Phase::Open { .. } => {
                    if self.now.saturating_duration_since(conn.last_rx) >= hb * 3 {
                        Some(Action::Close(4002, "heartbeat timeout"))
                    } else if conn.expires_at.is_some_and(|t| t <= now_sys) {
                        Some(Action::Close(1008, "token expired"))
                    } else if self.now.saturating_duration_since(conn.last_ping) >= hb {
                        Some(Action::Ping)
                    } else {
                        None
                    }
                }
                Phase::Closing { deadline, .. } if self.now >= *deadline => Some(Action::Remove),
                Phase::Closing { .. } => None,
            };
            if let Some(act) = act {
                actions.push((key, act));
            }
        }
        for (key, act) in actions.drain(..) {
            match act {
                Action::Remove => self.remove(key),
                Action::HandshakeTimeout => {
                    self.shared.counters.handshakes_failed.fetch_add(1, Relaxed);
                    self.remove(key);
                }
                Action::Ping => {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.last_ping = self.now;
                    }
                    self.push(key, encode::ping());
                }
                Action::Close(code, reason) => {
                    let counter = match code {
                        4002 => &self.shared.counters.heartbeat_timeouts,
                        _ => &self.shared.counters.closed_expired,
                    };
                    counter.fetch_add(1, Relaxed);
                    self.close(key, code, reason, false);
                }
            }
        }
        self.actions = actions;
        self.flush_dirty();
    }

    fn publish_counters(&mut self) {
        if self.frames > 0 {
            self.shared
                .counters
                .frames_sent
                .fetch_add(self.frames, Relaxed);
            self.shared
                .counters
                .bytes_sent
                .fetch_add(self.bytes, Relaxed);
            self.frames = 0;
            self.bytes = 0;
        }
    }

    // ---- helpers -------------------------------------------------------------

    /// Queues `frame` for `key`. Returns false if it was not queued: the
    /// connection is gone, closing, or was just evicted for overflowing.
    fn push(&mut self, key: usize, frame: Frame) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        match conn.outbox.try_push(frame) {
            Ok(()) => {
                self.mark_dirty(key);
                true
            }
            Err(PushError::Full) => {
                self.evict(key);
                false
            }
            Err(PushError::Closed) => false,
        }
    }

    fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(key as ConnKey);
        }
    }

    /// Close 4001: the backlog is dropped so the close frame goes next.
    fn evict(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(Connection::is_open) {
            self.shared.counters.evicted_slow.fetch_add(1, Relaxed);
            self.close(key, 4001, "slow consumer", true);
        }
    }

    /// Starts a server-initiated close with `code`. With `drop_backlog`,
    /// unsent frames are discarded first.
    fn close(&mut self, key: usize, code: u16, reason: &str, drop_backlog: bool) {
        self.leave_open(key);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let frame = encode::close(code, reason);
        let c = &self.shared.config;
        let linger = if drop_backlog {
            conn.outbox.evict(frame);
            // An evicted client is stalled: its socket buffers are full of
            // older frames. Keep the close frame waiting about as long as
            // a silent client is tolerated, so a client that resumes
            // reading finds 4001 after its backlog instead of a bare EOF.
            c.close_linger.max(c.heartbeat * 3)
        } else {
            conn.outbox.push_close(frame);
            c.close_linger
        };
        conn.start_closing(self.now + linger);
        self.mark_dirty(key);
    }

    /// Bookkeeping for a connection that stops being an open WebSocket.
    fn leave_open(&mut self, key: usize) {
        if self.conns.get(key).is_some_and(Connection::is_open) {
            self.index.remove(key as ConnKey);
            self.shared.counters.open.fetch_sub(1, Relaxed);
        }
    }

    /// Drops the socket now.
    fn remove(&mut self, key: usize) {
        self.leave_open(key);
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.shared.release_ip(conn.peer.ip(), conn.ip_counted);
        self.shared.counters.sockets.fetch_sub(1, Relaxed);
        self.sockets.fetch_sub(1, Relaxed);
    }
}

/// Nanoseconds since the UNIX epoch.
pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
