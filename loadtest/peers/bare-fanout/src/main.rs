//! Comparison peer: the floor of this machine for a fan-out. One thread, one
//! mio loop, no protocol beyond what the load generator needs: a minimal
//! HTTP upgrade, `welcome` on connect, `subscribed` + one `snapshot` per
//! covered symbol with a last value on `subscribe` (`"groups":["*"]` covers
//! every symbol, `"symbols":[...]` the named ones); every other client frame
//! is read and dropped, a close frame ends the connection.
//!
//! Each turn of the loop: accept and read what is ready, generate the ticks
//! due (round-robin over the symbols, `rate` per second, caught up in whole
//! milliseconds like the other peers), serialize each tick ONCE into a
//! complete unmasked text frame, append the turn's frames to every `*`
//! socket's buffer (one copy of the whole batch) and each tick's frame to
//! the buffer of every socket on its symbol's list, and make one `write` per
//! socket with bytes pending (what the kernel does not take stays for the
//! next turn). A socket whose pending bytes pass `--max-buffered` (default
//! 4 MiB) is closed without a close frame.
//!
//! Invariants: one thread appends a client's snapshots and every later tick
//! to the same buffer in order, so the ticks after a snapshot continue its
//! `seq` without a gap. A socket is on a symbol's list at most once, and on
//! none while it is on the `*` list, so no tick is delivered twice.
//!
//! Two knobs make it a cheaper sender, to drive a load generator to its own
//! ceiling (both off by default, so the floor above is what is measured):
//! `--turn-ms N` makes a turn N milliseconds (ticks caught up in whole
//! turns, so each write carries N ms of ticks: a write per socket per turn
//! is most of the cost), and `--direct` writes a turn's block straight from
//! the shared batch to a `*` socket with nothing pending, keeping only what
//! the kernel did not take (no copy into the socket's buffer; the same
//! bytes in the same order on the wire).
//!
//! Usage: `peer-bare-fanout --listen 127.0.0.1:9103 --symbols 100
//! --rate 2000 [--max-buffered 4194304] [--turn-ms 1] [--direct]`

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{self, ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

const LISTENER: Token = Token(usize::MAX);
/// Largest request header block accepted, in bytes.
const MAX_REQUEST: usize = 8 * 1024;
/// Largest client frame payload accepted, in bytes.
const MAX_CLIENT_FRAME: usize = 64 * 1024;
/// Reads per readable event before moving on (edge-triggered: the
/// connection goes on the `again` list when the budget runs out).
const READS_PER_EVENT: usize = 4;
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const WELCOME: &str = r#"{"type":"welcome","conn_id":"c-0","server":"peer-bare-fanout/0.1.0","protocol":1,"heartbeat_ms":5000,"max_queue":4096}"#;

#[derive(Clone, Copy)]
struct Quote {
    seq: u64,
    ts: u64,
    bid: f64,
    ask: f64,
    bid_size: u64,
    ask_size: u64,
    last: f64,
    volume: u64,
}

struct Args {
    listen: String,
    symbols: usize,
    rate: u64,
    max_buffered: usize,
    turn_ms: u64,
    direct: bool,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.1:9103".into(),
        symbols: 100,
        rate: 2000,
        max_buffered: 4 << 20,
        turn_ms: 1,
        direct: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--direct" {
            a.direct = true;
            continue;
        }
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => a.listen = v,
            "--symbols" => a.symbols = v.parse().map_err(|e| format!("--symbols: {e}"))?,
            "--rate" => a.rate = v.parse().map_err(|e| format!("--rate: {e}"))?,
            "--max-buffered" => {
                a.max_buffered = v.parse().map_err(|e| format!("--max-buffered: {e}"))?
            }
            "--turn-ms" => a.turn_ms = v.parse().map_err(|e| format!("--turn-ms: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.symbols == 0 || a.max_buffered == 0 || a.turn_ms == 0 {
        return Err("--symbols, --max-buffered and --turn-ms must be > 0".into());
    }
    Ok(a)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Appends the JSON of one tick or snapshot, in the field order tickcast
/// writes (the load generator's fast path).
fn json(out: &mut String, kind: &str, symbol: &str, q: &Quote) {
    let _ = write!(
        out,
        r#"{{"type":"{kind}","symbol":"{symbol}","seq":{},"ts":{},"bid":{:.2},"ask":{:.2},"bid_size":{},"ask_size":{},"last":{:.2},"volume":{}}}"#,
        q.seq, q.ts, q.bid, q.ask, q.bid_size, q.ask_size, q.last, q.volume
    );
}

/// Appends one complete unmasked server text frame.
fn frame(out: &mut Vec<u8>, payload: &[u8]) {
    out.push(0x81);
    let n = payload.len();
    if n < 126 {
        out.push(n as u8);
    } else if n <= u16::MAX as usize {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

enum State {
    Handshake,
    Open,
}

struct Conn {
    stream: TcpStream,
    state: State,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    sent: usize,
    /// Position in `Server::subscribed` (the `*` list), once subscribed to `*`.
    sub_at: Option<usize>,
    /// Symbols whose list (`Server::routes`) holds this socket.
    symbols: Vec<usize>,
    /// On `Server::dirty` (has bytes to write this turn).
    dirty: bool,
}

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.sent
    }
}

struct Market {
    names: Vec<String>,
    index: HashMap<Vec<u8>, usize>,
    last: Vec<Option<Quote>>,
    start: Instant,
    rate: u64,
    /// Ticks are caught up in whole turns of this many ms.
    turn_ms: u64,
    sent: u64,
    next_symbol: usize,
}

impl Market {
    /// Time left until the next whole turn since the start.
    fn until_next_turn(&self) -> Duration {
        let turn = Duration::from_millis(self.turn_ms);
        let elapsed = self.start.elapsed();
        let into = Duration::from_nanos((elapsed.as_nanos() % turn.as_nanos()) as u64);
        turn - into
    }

    /// Generates the ticks due by now into `batch` as complete frames, each
    /// serialized once, and where each one is into `ticks`. Returns how many.
    fn generate(&mut self, batch: &mut Vec<u8>, ticks: &mut Vec<Framed>, text: &mut String) -> u64 {
        let ms = self.start.elapsed().as_millis() as u64 / self.turn_ms * self.turn_ms;
        let due = (u128::from(ms) * u128::from(self.rate) / 1000) as u64;
        let n = self.names.len();
        let first = self.sent;
        while self.sent < due {
            let at = batch.len();
            let i = self.next_symbol;
            self.next_symbol = (self.next_symbol + 1) % n;
            let prev = self.last[i];
            let s = self.sent;
            let mid = 100.0 + (i as f64) + ((s % 200) as f64 - 100.0) / 100.0;
            let q = Quote {
                seq: prev.map_or(1, |p| p.seq + 1),
                ts: now_ns(),
                bid: mid - 0.01,
                ask: mid + 0.01,
                bid_size: 100 + s % 500,
                ask_size: 100 + (s * 7) % 500,
                last: mid,
                volume: prev.map_or(0, |p| p.volume) + 100,
            };
            self.last[i] = Some(q);
            text.clear();
            json(text, "tick", &self.names[i], &q);
            frame(batch, text.as_bytes());
            ticks.push(Framed {
                symbol: i,
                bytes: (at, batch.len()),
            });
            self.sent += 1;
        }
        self.sent - first
    }
}

/// One tick of a turn's batch: its symbol and its frame's bytes.
struct Framed {
    symbol: usize,
    bytes: (usize, usize),
}

struct Server {
    poll: Poll,
    listener: TcpListener,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    /// Connections subscribed to `*`.
    subscribed: Vec<usize>,
    /// Per symbol: the connections that named it (and do not hold `*`).
    routes: Vec<Vec<usize>>,
    dirty: Vec<usize>,
    /// Connections whose read budget ran out (edge-triggered: no new event
    /// would come for bytes already there).
    again: Vec<usize>,
    max_buffered: usize,
    /// `--direct`: write a `*` socket's turn straight from the batch.
    direct: bool,
    market: Market,
    rbuf: Vec<u8>,
    text: String,
}

impl Server {
    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let id = self.free.pop().unwrap_or_else(|| {
                        self.conns.push(None);
                        self.conns.len() - 1
                    });
                    if self
                        .poll
                        .registry()
                        .register(
                            &mut stream,
                            Token(id),
                            Interest::READABLE | Interest::WRITABLE,
                        )
                        .is_err()
                    {
                        self.free.push(id);
                        continue;
                    }
                    self.conns[id] = Some(Conn {
                        stream,
                        state: State::Handshake,
                        inbuf: Vec::new(),
                        out: Vec::new(),
                        sent: 0,
                        sub_at: None,
                        symbols: Vec::new(),
                        dirty: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // EMFILE and the like: try again on the next event.
                Err(_) => return,
            }
        }
    }

    fn close(&mut self, id: usize) {
        let Some(mut c) = self.conns.get_mut(id).and_then(Option::take) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.stream);
        unroute(&mut self.routes, id, &mut c.symbols);
        if let Some(at) = c.sub_at {
            self.subscribed.swap_remove(at);
            if let Some(&moved) = self.subscribed.get(at)
                && let Some(m) = self.conns[moved].as_mut()
            {
                m.sub_at = Some(at);
            }
        }
        // Its slot may still be on `dirty` or `again`: those lists skip
        // empty slots, and a reused slot only costs a spare write attempt.
        self.free.push(id);
    }

    fn mark_dirty(&mut self, id: usize) {
        if let Some(c) = self.conns[id].as_mut()
            && !c.dirty
        {
            c.dirty = true;
            self.dirty.push(id);
        }
    }

    /// Reads what is there (bounded) and handles it; returns whether the
    /// connection stays open.
    fn read(&mut self, id: usize) -> bool {
        for _ in 0..READS_PER_EVENT {
            let Some(c) = self.conns[id].as_mut() else {
                return false;
            };
            match c.stream.read(&mut self.rbuf) {
                Ok(0) => return false,
                Ok(n) => {
                    c.inbuf.extend_from_slice(&self.rbuf[..n]);
                    if !self.handle_input(id) {
                        return false;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        self.again.push(id);
        true
    }

    /// Consumes whole requests and frames from the connection's input.
    fn handle_input(&mut self, id: usize) -> bool {
        let Some(c) = self.conns[id].as_mut() else {
            return false;
        };
        if let State::Handshake = c.state {
            let Some(end) = find(&c.inbuf, b"\r\n\r\n") else {
                return c.inbuf.len() <= MAX_REQUEST;
            };
            let Some(key) = header(&c.inbuf[..end], "sec-websocket-key") else {
                return false;
            };
            let mut sha = sha1_smol::Sha1::new();
            sha.update(key);
            sha.update(WS_GUID.as_bytes());
            let accept = base64::engine::general_purpose::STANDARD.encode(sha.digest().bytes());
            let resp = format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
            );
            c.out.extend_from_slice(resp.as_bytes());
            frame(&mut c.out, WELCOME.as_bytes());
            c.inbuf.drain(..end + 4);
            c.state = State::Open;
            self.mark_dirty(id);
        }
        let mut at = 0;
        loop {
            let Some(c) = self.conns[id].as_mut() else {
                return false;
            };
            match client_frame(&mut c.inbuf[at..]) {
                ClientFrame::Need => break,
                ClientFrame::Bad | ClientFrame::Close => return false,
                ClientFrame::Frame {
                    len,
                    opcode,
                    payload,
                } => {
                    let p = (at + payload.0, at + payload.1);
                    at += len;
                    if opcode == 0x1 && find(&c.inbuf[p.0..p.1], b"\"subscribe\"").is_some() {
                        // Taken out for the call and put back: no copy.
                        let inbuf = std::mem::take(&mut c.inbuf);
                        self.subscribe(id, &inbuf[p.0..p.1]);
                        if let Some(c) = self.conns[id].as_mut() {
                            c.inbuf = inbuf;
                        }
                    }
                }
            }
        }
        if let Some(c) = self.conns[id].as_mut() {
            c.inbuf.drain(..at);
        }
        true
    }

    /// Replies `subscribed` and the snapshots of the covered symbols, then
    /// puts the connection on the `*` list or its symbols' lists (once).
    fn subscribe(&mut self, id: usize, p: &[u8]) {
        let Some(c) = self.conns[id].as_mut() else {
            return;
        };
        let rid = request_id(p);
        let groups = array(p, b"\"groups\"");
        let symbols = array(p, b"\"symbols\"");
        let star = groups.is_some_and(|g| strings(g).next().is_some());
        let t = &mut self.text;
        t.clear();
        let raw = |a: Option<&[u8]>| String::from_utf8_lossy(a.unwrap_or_default()).into_owned();
        let id_text = rid.map_or("null".to_string(), |v| v.to_string());
        if groups.is_some_and(|g| strings(g).any(|s| s != b"*")) {
            let _ = write!(
                t,
                r#"{{"type":"error","id":{id_text},"code":"unknown_group","message":"only the group * is defined"}}"#
            );
            frame(&mut c.out, t.as_bytes());
            self.mark_dirty(id);
            return;
        }
        let _ = write!(
            t,
            r#"{{"type":"subscribed","id":{id_text},"symbols":[{}],"groups":[{}]}}"#,
            raw(symbols),
            raw(groups)
        );
        frame(&mut c.out, t.as_bytes());
        let market = &self.market;
        let mut snapshot = |c: &mut Conn, i: usize| {
            if let Some(q) = &market.last[i] {
                t.clear();
                json(t, "snapshot", &market.names[i], q);
                frame(&mut c.out, t.as_bytes());
            }
        };
        if star {
            for i in 0..market.names.len() {
                snapshot(c, i);
            }
            unroute(&mut self.routes, id, &mut c.symbols);
            if c.sub_at.is_none() {
                c.sub_at = Some(self.subscribed.len());
                self.subscribed.push(id);
            }
        } else {
            let mut seen = Vec::new();
            for name in symbols.into_iter().flat_map(strings) {
                // A symbol this peer does not publish never ticks: nothing to route.
                let Some(&i) = market.index.get(name) else {
                    continue;
                };
                if seen.contains(&i) {
                    continue;
                }
                seen.push(i);
                snapshot(c, i);
                if c.sub_at.is_none() && !c.symbols.contains(&i) {
                    c.symbols.push(i);
                    self.routes[i].push(id);
                }
            }
        }
        self.mark_dirty(id);
    }

    /// One `write` per connection with bytes pending.
    fn flush(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &id in &dirty {
            let Some(c) = self.conns[id].as_mut() else {
                continue;
            };
            c.dirty = false;
            if c.pending() == 0 {
                continue;
            }
            let keep = match c.stream.write(&c.out[c.sent..]) {
                Ok(0) => false,
                Ok(n) => {
                    c.sent += n;
                    true
                }
                Err(e)
                    if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted =>
                {
                    true
                }
                Err(_) => false,
            };
            if !keep {
                self.close(id);
                continue;
            }
            if c.sent == c.out.len() {
                c.out.clear();
                c.sent = 0;
            } else if c.sent >= c.out.len() / 2 {
                // Keep the rest for a writable event or the next fan-out;
                // compact once the written part dominates.
                c.out.drain(..c.sent);
                c.sent = 0;
            }
        }
        // Reuse the list's allocation.
        let mut dirty = dirty;
        dirty.clear();
        self.dirty = dirty;
    }

    /// Appends this turn's frames to every connection that covers them:
    /// the whole batch to each `*` connection, each tick to its symbol's
    /// list. Closes the connections that would pass the bound.
    fn fan_out(&mut self, batch: &[u8], ticks: &[Framed]) {
        self.fan_out_all(batch);
        for t in ticks {
            let bytes = &batch[t.bytes.0..t.bytes.1];
            let mut i = 0;
            while i < self.routes[t.symbol].len() {
                let id = self.routes[t.symbol][i];
                if self.conns[id].is_none() {
                    // Not expected (close() unroutes), but never loop on it.
                    self.routes[t.symbol].swap_remove(i);
                    continue;
                }
                if !self.append(id, bytes) {
                    // close() swap_removed it: the last one is at `i` now.
                    self.close(id);
                    continue;
                }
                i += 1;
            }
        }
    }

    /// Appends `bytes` to a connection's buffer; false if that would pass
    /// the bound (or the slot is empty).
    fn append(&mut self, id: usize, bytes: &[u8]) -> bool {
        let Some(c) = self.conns[id].as_mut() else {
            return false;
        };
        if c.pending() + bytes.len() > self.max_buffered {
            return false;
        }
        c.out.extend_from_slice(bytes);
        if !c.dirty {
            c.dirty = true;
            self.dirty.push(id);
        }
        true
    }

    fn fan_out_all(&mut self, batch: &[u8]) {
        let mut i = 0;
        while i < self.subscribed.len() {
            let id = self.subscribed[i];
            let Some(c) = self.conns[id].as_mut() else {
                i += 1;
                continue;
            };
            if c.pending() + batch.len() > self.max_buffered {
                // swap_remove moves the last subscriber to `i`: look at it next.
                self.close(id);
                continue;
            }
            let rest = if self.direct && c.pending() == 0 {
                // Nothing queued before it, so writing now keeps the order;
                // an error shows at the next write from the buffer.
                match c.stream.write(batch) {
                    Ok(n) => &batch[n.min(batch.len())..],
                    Err(_) => batch,
                }
            } else {
                batch
            };
            if !rest.is_empty() {
                c.out.extend_from_slice(rest);
                if !c.dirty {
                    c.dirty = true;
                    self.dirty.push(id);
                }
            }
            i += 1;
        }
    }
}

/// Takes connection `id` off the lists of `symbols` (and empties it).
fn unroute(routes: &mut [Vec<usize>], id: usize, symbols: &mut Vec<usize>) {
    for s in symbols.drain(..) {
        if let Some(at) = routes[s].iter().position(|&x| x == id) {
            routes[s].swap_remove(at);
        }
    }
}

/// The inside of the JSON array after `key` (`"symbols"`), without the
/// brackets; enough JSON for what the load generator sends.
fn array<'a>(p: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let after = &p[find(p, key)? + key.len()..];
    let open = after.iter().position(|&b| b == b'[')?;
    if !after[..open]
        .iter()
        .all(|&b| b == b':' || b.is_ascii_whitespace())
    {
        return None;
    }
    let inner = &after[open + 1..];
    Some(&inner[..inner.iter().position(|&b| b == b']')?])
}

/// The strings of an array's inside (no escapes: symbols are plain).
fn strings(inner: &[u8]) -> impl Iterator<Item = &[u8]> {
    inner.split(|&b| b == b'"').skip(1).step_by(2)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The value of one request header (case-insensitive name), trimmed.
fn header<'a>(head: &'a [u8], name: &str) -> Option<&'a [u8]> {
    head.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let (k, v) = line.split_at(colon);
        if !k.trim_ascii().eq_ignore_ascii_case(name.as_bytes()) {
            return None;
        }
        Some(v[1..].trim_ascii())
    })
}

/// The number after `"id":`, if any.
fn request_id(p: &[u8]) -> Option<u64> {
    let at = find(p, b"\"id\":")? + 5;
    let digits: &[u8] = p[at..].trim_ascii_start();
    let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
    std::str::from_utf8(&digits[..n]).ok()?.parse().ok()
}

enum ClientFrame {
    Need,
    Bad,
    Close,
    /// A whole frame of `len` bytes, its payload (unmasked in place) at
    /// `payload.0..payload.1`.
    Frame {
        len: usize,
        opcode: u8,
        payload: (usize, usize),
    },
}

/// Parses (and unmasks in place) one client frame at the start of `buf`.
fn client_frame(buf: &mut [u8]) -> ClientFrame {
    if buf.len() < 2 {
        return ClientFrame::Need;
    }
    let opcode = buf[0] & 0x0f;
    let masked = buf[1] & 0x80 != 0;
    let (n, mut head) = match buf[1] & 0x7f {
        126 => {
            if buf.len() < 4 {
                return ClientFrame::Need;
            }
            (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
        }
        127 => {
            if buf.len() < 10 {
                return ClientFrame::Need;
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    if !masked || n > MAX_CLIENT_FRAME as u64 {
        return ClientFrame::Bad;
    }
    let n = n as usize;
    if buf.len() < head + 4 + n {
        return ClientFrame::Need;
    }
    let mut mask = [0u8; 4];
    mask.copy_from_slice(&buf[head..head + 4]);
    head += 4;
    for (i, b) in buf[head..head + n].iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
    if opcode == 0x8 {
        return ClientFrame::Close;
    }
    ClientFrame::Frame {
        len: head + n,
        opcode,
        payload: (head, head + n),
    }
}

fn run(a: Args) -> io::Result<()> {
    let addr: SocketAddr = a
        .listen
        .parse()
        .map_err(|e| io::Error::new(ErrorKind::InvalidInput, format!("--listen: {e}")))?;
    let poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!(
        "peer-bare-fanout listening on ws://{}/ws ({} symbols, {} ticks/s, {} ms turns{})",
        a.listen,
        a.symbols,
        a.rate,
        a.turn_ms,
        if a.direct { ", direct" } else { "" }
    );
    let names: Vec<String> = (0..a.symbols).map(|i| format!("S{i:03}")).collect();
    let mut s = Server {
        poll,
        listener,
        conns: Vec::new(),
        free: Vec::new(),
        subscribed: Vec::new(),
        routes: vec![Vec::new(); a.symbols],
        dirty: Vec::new(),
        again: Vec::new(),
        max_buffered: a.max_buffered,
        direct: a.direct,
        market: Market {
            index: names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.as_bytes().to_vec(), i))
                .collect(),
            names,
            last: vec![None; a.symbols],
            start: Instant::now(),
            rate: a.rate,
            turn_ms: a.turn_ms,
            sent: 0,
            next_symbol: 0,
        },
        rbuf: vec![0; 16 * 1024],
        text: String::with_capacity(256),
    };
    let mut events = Events::with_capacity(1024);
    let mut batch = Vec::with_capacity(64 * 1024);
    let mut ticks = Vec::new();
    let mut text = String::with_capacity(256);
    loop {
        // Ticks are due once a turn; don't sleep past the next one.
        let timeout = if s.again.is_empty() {
            s.market.until_next_turn()
        } else {
            Duration::ZERO
        };
        match s.poll.poll(&mut events, Some(timeout)) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let again = std::mem::take(&mut s.again);
        for id in again {
            if s.conns[id].is_some() && !s.read(id) {
                s.close(id);
            }
        }
        for ev in &events {
            let id = ev.token().0;
            if ev.token() == LISTENER {
                s.accept();
                continue;
            }
            if (ev.is_readable() || ev.is_read_closed() || ev.is_error())
                && s.conns.get(id).is_some_and(Option::is_some)
                && !s.read(id)
            {
                s.close(id);
            }
            if ev.is_writable() {
                s.mark_dirty(id);
            }
        }
        batch.clear();
        ticks.clear();
        if s.market.generate(&mut batch, &mut ticks, &mut text) > 0 {
            s.fan_out(&batch, &ticks);
        }
        s.flush();
    }
}

fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(a) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
