//! Comparison peer: the broadcaster a Rust developer would write by default
//! (tokio + tokio-tungstenite, one `tokio::sync::broadcast` channel, one task
//! per connection), speaking enough of tickcast's PROTOCOL.md for the load
//! generator: `welcome` on connect, `subscribed` + one `snapshot` per symbol
//! on `subscribe` (the filter is ignored: every client gets every symbol),
//! `pong` for the `ping` op, ticks with the same JSON as tickcast, and close
//! 4001 "slow consumer" when a client lags behind the channel.
//!
//! Invariant: a client's snapshot and its broadcast receiver are taken under
//! the same lock the generator holds while it updates the last values and
//! sends, so the ticks after each snapshot continue its seq without a gap.
//!
//! Usage: `peer-tokio-tungstenite --listen 127.0.0.1:9101 --symbols 100
//! --rate 2000 [--capacity 4096]`

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast::{self, error::RecvError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

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

struct Market {
    names: Vec<String>,
    last: Vec<Option<Quote>>,
}

fn json(kind: &str, symbol: &str, q: &Quote) -> String {
    format!(
        r#"{{"type":"{kind}","symbol":"{symbol}","seq":{},"ts":{},"bid":{:.2},"ask":{:.2},"bid_size":{},"ask_size":{},"last":{:.2},"volume":{}}}"#,
        q.seq, q.ts, q.bid, q.ask, q.bid_size, q.ask_size, q.last, q.volume
    )
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

struct Args {
    listen: String,
    symbols: usize,
    rate: u64,
    capacity: usize,
}

fn args() -> Result<Args, String> {
    let mut a = Args { listen: "127.0.0.1:9101".into(), symbols: 100, rate: 2000, capacity: 4096 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let v = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--listen" => a.listen = v,
            "--symbols" => a.symbols = v.parse().map_err(|e| format!("--symbols: {e}"))?,
            "--rate" => a.rate = v.parse().map_err(|e| format!("--rate: {e}"))?,
            "--capacity" => a.capacity = v.parse().map_err(|e| format!("--capacity: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if a.symbols == 0 || a.capacity == 0 {
        return Err("--symbols and --capacity must be > 0".into());
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
    let market = Arc::new(Mutex::new(Market {
        names: (0..a.symbols).map(|i| format!("S{i:03}")).collect(),
        last: vec![None; a.symbols],
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
    eprintln!("peer-tokio-tungstenite listening on ws://{}/ws ({} symbols, {} ticks/s)", a.listen, a.symbols, a.rate);
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, Arc::clone(&market), tx.clone()));
    }
}

/// Emits `rate` ticks per second, round-robin over the symbols, in 1 ms
/// batches.
async fn generate(market: Arc<Mutex<Market>>, tx: broadcast::Sender<Utf8Bytes>, rate: u64) {
    let mut interval = tokio::time::interval(Duration::from_millis(1));
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut next_symbol = 0usize;
    loop {
        interval.tick().await;
        let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
        let Ok(mut m) = market.lock() else { return };
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
            let text = json("tick", &m.names[i], &q);
            // No receivers is fine.
            let _ = tx.send(Utf8Bytes::from(text));
            sent += 1;
        }
    }
}

async fn serve(stream: TcpStream, market: Arc<Mutex<Market>>, tx: broadcast::Sender<Utf8Bytes>) {
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else { return };
    let (mut sink, mut source) = ws.split();
    let welcome = r#"{"type":"welcome","conn_id":"c-0","server":"peer-tokio-tungstenite/0.1.0","protocol":1,"heartbeat_ms":5000,"max_queue":4096}"#;
    if sink.send(Message::text(welcome)).await.is_err() {
        return;
    }
    let mut rx: Option<broadcast::Receiver<Utf8Bytes>> = None;
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
                    Some("subscribe") => {
                        let snaps: Vec<String> = {
                            let Ok(m) = market.lock() else { return };
                            if rx.is_none() {
                                rx = Some(tx.subscribe());
                            }
                            m.last.iter().zip(&m.names).filter_map(|(q, n)| q.map(|q| json("snapshot", n, &q))).collect()
                        };
                        let groups = req.get("groups").cloned().unwrap_or(serde_json::json!([]));
                        let symbols = req.get("symbols").cloned().unwrap_or(serde_json::json!([]));
                        replies.push(serde_json::json!({"type":"subscribed","id":id,"symbols":symbols,"groups":groups}).to_string());
                        replies.extend(snaps);
                    }
                    Some("ping") => replies.push(serde_json::json!({"type":"pong","id":id,"ts":now_ns()}).to_string()),
                    Some("list_groups") => {
                        let n = market.lock().map_or(0, |m| m.names.len());
                        replies.push(serde_json::json!({"type":"groups","id":id,"groups":[{"name":"*","symbols":n}]}).to_string());
                    }
                    _ => replies.push(serde_json::json!({"type":"error","id":id,"code":"bad_request","message":"unknown op"}).to_string()),
                }
                for r in replies {
                    if sink.send(Message::text(r)).await.is_err() {
                        return;
                    }
                }
            }
            tick = async {
                match rx.as_mut() {
                    Some(r) => r.recv().await,
                    None => std::future::pending().await,
                }
            } => {
                match tick {
                    Ok(text) => {
                        if sink.send(Message::Text(text)).await.is_err() {
                            return;
                        }
                    }
                    Err(RecvError::Lagged(_)) => {
                        let frame = CloseFrame { code: CloseCode::from(4001), reason: "slow consumer".into() };
                        let _ = tokio::time::timeout(Duration::from_secs(1), sink.send(Message::Close(Some(frame)))).await;
                        return;
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}
