//! Comparison peer: the broadcaster a Rust developer would write by default
//! (tokio + tokio-tungstenite, one task per connection), speaking enough of
//! tickcast's PROTOCOL.md for the load generator: `welcome` on connect,
//! `subscribed` + one `snapshot` per covered symbol with a value on
//! `subscribe`, `pong` for the `ping` op, ticks with the same JSON as
//! tickcast, and close 4001 "slow consumer" when a client lags behind.
//!
//! Two routes, each the idiomatic tokio tool for its case:
//!
//! - `*` (every client gets everything): one `tokio::sync::broadcast`
//!   channel, a shared ring of `--capacity` ticks that every `*` receiver
//!   reads; a receiver that falls a ring behind (`Lagged`) is closed.
//! - named symbols (each client its own watchlist): the generator keeps a
//!   routing table, per symbol the clients that asked for it, and pushes
//!   each tick into those clients' own bounded `mpsc` queues (`--queue`
//!   ticks each; a full queue closes the client). A per-client filter on
//!   the one broadcast channel would make every task wake for and discard
//!   every tick of the universe (clients x ticks/s of work for a share of
//!   the deliveries), and per-symbol broadcast channels would leave each
//!   task merging up to a hundred receivers; routing at the source costs
//!   one `try_send` per delivery, the same as the fan-out itself.
//!
//! A task writes every tick already waiting (`feed`) before one `flush`,
//! so a busy client costs one `write` per wake-up, not one per tick.
//!
//! Invariant: a client's snapshots and its routes (or broadcast receiver)
//! are taken under the same lock the generator holds while it updates the
//! last values and sends, so the ticks after each snapshot continue its seq
//! without a gap; a symbol is routed to a client at most once, and never
//! while the client also holds `*`, so no tick is delivered twice.
//!
//! Usage: `peer-tokio-tungstenite --listen 127.0.0.1:9101 --symbols 100
//! --rate 2000 [--capacity 4096] [--queue 4096]`

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// Ticks written (`feed`) before a `flush` when many are waiting: bounds
/// the time a task spends before it looks at its client's requests again.
const WRITE_BATCH: usize = 256;

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

/// Last values and the routing table for named-symbol subscriptions.
struct Market {
    names: Vec<String>,
    index: HashMap<String, usize>,
    last: Vec<Option<Quote>>,
    /// Per symbol: the queue slots of the clients subscribed to it by name.
    routes: Vec<Vec<usize>>,
    /// Per slot: that client's queue, `None` once it overflowed (dropping
    /// the only sender closes the queue: the task sees it and sends 4001)
    /// or when the slot is free.
    queues: Vec<Option<mpsc::Sender<Utf8Bytes>>>,
    free: Vec<usize>,
}

fn json(kind: &str, symbol: &str, q: &Quote) -> String {
    format!(
        r#"{{"type":"{kind}","symbol":"{symbol}","seq":{},"ts":{},"bid":{:.2},"ask":{:.2},"bid_size":{},"ask_size":{},"last":{:.2},"volume":{}}}"#,
        q.seq, q.ts, q.bid, q.ask, q.bid_size, q.ask_size, q.last, q.volume
    )
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

struct Args {
    listen: String,
    symbols: usize,
    rate: u64,
    capacity: usize,
    /// Ticks each client's own queue holds (named-symbol routes), as
    /// tickcast's per-connection queue of 4096 frames.
    queue: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        listen: "127.0.0.1:9101".into(),
        symbols: 100,
        rate: 2000,
        capacity: 4096,
        queue: 4096,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => a.listen = v,
            "--symbols" => a.symbols = v.parse().map_err(|e| format!("--symbols: {e}"))?,
            "--rate" => a.rate = v.parse().map_err(|e| format!("--rate: {e}"))?,
            "--capacity" => a.capacity = v.parse().map_err(|e| format!("--capacity: {e}"))?,
            "--queue" => a.queue = v.parse().map_err(|e| format!("--queue: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.symbols == 0 || a.capacity == 0 || a.queue == 0 {
        return Err("--symbols, --capacity and --queue must be > 0".into());
    }
    Ok(a)
}

#[tokio::main]
async fn main() {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let names: Vec<String> = (0..a.symbols).map(|i| format!("S{i:03}")).collect();
    let market = Arc::new(Mutex::new(Market {
        index: names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect(),
        names,
        last: vec![None; a.symbols],
        routes: vec![Vec::new(); a.symbols],
        queues: Vec::new(),
        free: Vec::new(),
    }));
    let (tx, _) = broadcast::channel::<Utf8Bytes>(a.capacity);
    tokio::spawn(generate(Arc::clone(&market), tx.clone(), a.rate));
    let listener = match TcpListener::bind(&a.listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: bind {}: {e}", a.listen);
            std::process::exit(1);
        }
    };
    eprintln!(
        "peer-tokio-tungstenite listening on ws://{}/ws ({} symbols, {} ticks/s)",
        a.listen, a.symbols, a.rate
    );
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, Arc::clone(&market), tx.clone(), a.queue));
    }
}

/// Emits `rate` ticks per second, round-robin over the symbols, in 1 ms
/// batches: each to the `*` channel and to the queues routed to its symbol.
async fn generate(market: Arc<Mutex<Market>>, tx: broadcast::Sender<Utf8Bytes>, rate: u64) {
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut next_symbol = 0usize;
    loop {
        interval.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let Ok(mut guard) = market.lock() else { return };
        let m = &mut *guard;
        let n = m.names.len();
        while sent < due {
            let i = next_symbol;
            next_symbol = (next_symbol + 1) % n;
            let prev = m.last[i];
            let mid = 100.0 + (i as f64) + ((sent % 200) as f64 - 100.0) / 100.0;
            let q = Quote {
                seq: prev.map_or(1, |p| p.seq + 1),
                ts: now_ns(),
                bid: mid - 0.01,
                ask: mid + 0.01,
                bid_size: 100 + sent % 500,
                ask_size: 100 + (sent * 7) % 500,
                last: mid,
                volume: prev.map_or(0, |p| p.volume) + 100,
            };
            m.last[i] = Some(q);
            let text = Utf8Bytes::from(json("tick", &m.names[i], &q));
            for &slot in &m.routes[i] {
                if let Some(queue) = &m.queues[slot]
                    && let Err(TrySendError::Full(_)) = queue.try_send(text.clone())
                {
                    m.queues[slot] = None;
                }
            }
            // No `*` receivers is fine.
            let _ = tx.send(text);
            sent += 1;
        }
    }
}

/// One client's routes in the market; removed when the task ends.
struct Routes {
    market: Arc<Mutex<Market>>,
    slot: Option<usize>,
    symbols: Vec<usize>,
    routed: Vec<bool>,
}

impl Routes {
    /// Routes `symbol` to this client's queue (created on first use).
    fn add(
        &mut self,
        m: &mut Market,
        symbol: usize,
        queue_len: usize,
        rx: &mut Option<mpsc::Receiver<Utf8Bytes>>,
    ) {
        if self.routed.is_empty() {
            self.routed = vec![false; m.names.len()];
        }
        if self.routed[symbol] {
            return;
        }
        let slot = *self.slot.get_or_insert_with(|| {
            let (q, r) = mpsc::channel(queue_len);
            *rx = Some(r);
            match m.free.pop() {
                Some(s) => {
                    m.queues[s] = Some(q);
                    s
                }
                None => {
                    m.queues.push(Some(q));
                    m.queues.len() - 1
                }
            }
        });
        m.routes[symbol].push(slot);
        self.routed[symbol] = true;
        self.symbols.push(symbol);
    }

    /// Drops every route (the client took `*`, or is gone).
    fn clear(&mut self, m: &mut Market) {
        let Some(slot) = self.slot else { return };
        for &s in &self.symbols {
            if let Some(at) = m.routes[s].iter().position(|&x| x == slot) {
                m.routes[s].swap_remove(at);
            }
            self.routed[s] = false;
        }
        self.symbols.clear();
    }
}

impl Drop for Routes {
    fn drop(&mut self) {
        let market = Arc::clone(&self.market);
        let Ok(mut m) = market.lock() else { return };
        self.clear(&mut m);
        if let Some(slot) = self.slot.take() {
            m.queues[slot] = None;
            m.free.push(slot);
        }
    }
}

enum Next {
    Tick(Utf8Bytes),
    /// Fell behind: a `*` receiver lagged, or the routed queue overflowed.
    Lagged,
    Closed,
}

/// The next tick from either route.
async fn next_tick(
    all: &mut Option<broadcast::Receiver<Utf8Bytes>>,
    routed: &mut Option<mpsc::Receiver<Utf8Bytes>>,
) -> Next {
    let from_all = async {
        match all.as_mut() {
            Some(r) => match r.recv().await {
                Ok(t) => Next::Tick(t),
                Err(RecvError::Lagged(_)) => Next::Lagged,
                Err(RecvError::Closed) => Next::Closed,
            },
            None => std::future::pending().await,
        }
    };
    let from_routed = async {
        match routed.as_mut() {
            // The market holds the only sender: it went away because the
            // queue overflowed.
            Some(r) => r.recv().await.map_or(Next::Lagged, Next::Tick),
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        n = from_all => n,
        n = from_routed => n,
    }
}

/// A tick already waiting on either route, without waiting.
fn ready_tick(
    all: &mut Option<broadcast::Receiver<Utf8Bytes>>,
    routed: &mut Option<mpsc::Receiver<Utf8Bytes>>,
) -> Option<Next> {
    use broadcast::error::TryRecvError as B;
    use mpsc::error::TryRecvError as M;
    if let Some(r) = all.as_mut() {
        match r.try_recv() {
            Ok(t) => return Some(Next::Tick(t)),
            Err(B::Lagged(_)) => return Some(Next::Lagged),
            Err(B::Closed) => return Some(Next::Closed),
            Err(B::Empty) => {}
        }
    }
    match routed.as_mut()?.try_recv() {
        Ok(t) => Some(Next::Tick(t)),
        Err(M::Disconnected) => Some(Next::Lagged),
        Err(M::Empty) => None,
    }
}

async fn serve(
    stream: TcpStream,
    market: Arc<Mutex<Market>>,
    tx: broadcast::Sender<Utf8Bytes>,
    queue_len: usize,
) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let welcome = r#"{"type":"welcome","conn_id":"c-0","server":"peer-tokio-tungstenite/0.1.0","protocol":1,"heartbeat_ms":5000,"max_queue":4096}"#;
    if sink.send(Message::text(welcome)).await.is_err() {
        return;
    }
    let mut all: Option<broadcast::Receiver<Utf8Bytes>> = None;
    let mut routed: Option<mpsc::Receiver<Utf8Bytes>> = None;
    let mut routes = Routes {
        market: Arc::clone(&market),
        slot: None,
        symbols: Vec::new(),
        routed: Vec::new(),
    };
    loop {
        tokio::select! {
            msg = source.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let Ok(req) = serde_json::from_str::<serde_json::Value>(text.as_str()) else {
                    let _ = sink.send(Message::text(r#"{"type":"error","code":"bad_request","message":"not JSON"}"#)).await;
                    continue;
                };
                let id = req.get("id").cloned().unwrap_or(serde_json::Value::Null);
                let mut replies = Vec::new();
                match req.get("op").and_then(|o| o.as_str()) {
                    Some("subscribe") => match subscribe(&req, &market, &tx, queue_len, &mut all, &mut routed, &mut routes) {
                        Some(snaps) => {
                            let groups = req.get("groups").cloned().unwrap_or(serde_json::json!([]));
                            let symbols = req.get("symbols").cloned().unwrap_or(serde_json::json!([]));
                            replies.push(serde_json::json!({"type":"subscribed","id":id,"symbols":symbols,"groups":groups}).to_string());
                            replies.extend(snaps);
                        }
                        None => replies.push(serde_json::json!({"type":"error","id":id,"code":"unknown_group","message":"only the group * is defined"}).to_string()),
                    },
                    Some("ping") => replies.push(serde_json::json!({"type":"pong","id":id,"ts":now_ns()}).to_string()),
                    Some("list_groups") => {
                        let n = market.lock().map_or(0, |m| m.names.len());
                        replies.push(serde_json::json!({"type":"groups","id":id,"groups":[{"name":"*","symbols":n}]}).to_string());
                    }
                    _ => replies.push(serde_json::json!({"type":"error","id":id,"code":"bad_request","message":"unknown op"}).to_string()),
                }
                for r in replies {
                    if sink.feed(Message::text(r)).await.is_err() {
                        return;
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
            tick = next_tick(&mut all, &mut routed) => {
                let mut next = Some(tick);
                let mut fed = 0;
                while let Some(n) = next.take() {
                    match n {
                        Next::Tick(text) => {
                            if sink.feed(Message::Text(text)).await.is_err() {
                                return;
                            }
                            fed += 1;
                            if fed < WRITE_BATCH {
                                next = ready_tick(&mut all, &mut routed);
                            }
                        }
                        Next::Lagged => {
                            let frame = CloseFrame { code: CloseCode::from(4001), reason: "slow consumer".into() };
                            let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
                            return;
                        }
                        Next::Closed => return,
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Applies a `subscribe` under the market lock and returns the snapshots
/// to send, or `None` for a group other than `*` (nothing changed).
fn subscribe(
    req: &serde_json::Value,
    market: &Mutex<Market>,
    tx: &broadcast::Sender<Utf8Bytes>,
    queue_len: usize,
    all: &mut Option<broadcast::Receiver<Utf8Bytes>>,
    routed: &mut Option<mpsc::Receiver<Utf8Bytes>>,
    routes: &mut Routes,
) -> Option<Vec<String>> {
    let strings = |key: &str| -> Vec<String> {
        req.get(key)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let groups = strings("groups");
    if groups.iter().any(|g| g != "*") {
        return None;
    }
    let star = !groups.is_empty();
    let Ok(mut guard) = market.lock() else {
        return Some(Vec::new());
    };
    let m = &mut *guard;
    if star && all.is_none() {
        *all = Some(tx.subscribe());
        routes.clear(m);
    }
    let covered: Vec<usize> = if star {
        (0..m.names.len()).collect()
    } else {
        let mut seen = vec![false; m.names.len()];
        let mut v = Vec::new();
        for s in strings("symbols") {
            // A symbol this peer does not publish never ticks: nothing to route.
            if let Some(&i) = m.index.get(&s)
                && !seen[i]
            {
                seen[i] = true;
                v.push(i);
            }
        }
        if all.is_none() {
            for &i in &v {
                routes.add(m, i, queue_len, routed);
            }
        }
        v
    };
    Some(
        covered
            .into_iter()
            .filter_map(|i| m.last[i].map(|q| json("snapshot", &m.names[i], &q)))
            .collect(),
    )
}
