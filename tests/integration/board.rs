//! The trading board at `/`, served by tickcast and run in a real browser
//! (headless Chromium over the DevTools protocol: see `browser`), reading
//! the state the page mirrors into `data-*` attributes.
//!
//! `TICKCAST_SCREENSHOT=docs/board.png cargo test --test integration board::`
//! also saves the screenshot there (it always goes to `target/tmp/board.png`).

use std::io::ErrorKind;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tickcast::{Config, Identity, StaticTokens};

use crate::browser::{Chromium, chromium_for};
use crate::util::{TestServer, heavy, raw_exchange, status_of};
/// The token the page is opened with (`/?token=…`); the server requires it.
const TOKEN: &str = "board-token";

#[test]
fn the_board_is_served_at_the_root() {
    let srv = TestServer::start(|_| {});
    let resp = raw_exchange(srv.addr, b"GET /?token=x HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status_of(&resp), 200);
    let text = String::from_utf8(resp).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(
        head.contains("\r\nContent-Type: text/html; charset=utf-8\r\n"),
        "{head}"
    );
    assert!(body.contains("<title>tickcast board</title>"), "{body}");
    assert!(body.contains("<script src=\"app.js\"></script>"));
    assert!(body.contains("id=\"rows\""));

    let js = raw_exchange(srv.addr, b"GET /app.js HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&js), 200);
    let js = String::from_utf8(js).unwrap();
    assert!(js.contains("Content-Type: text/javascript"));
    assert!(js.contains("new WebSocket("));
    let css = raw_exchange(srv.addr, b"GET /style.css HTTP/1.1\r\n\r\n");
    assert!(
        String::from_utf8(css)
            .unwrap()
            .contains("Content-Type: text/css")
    );

    let head_only = raw_exchange(srv.addr, b"HEAD / HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&head_only), 200);
    assert!(head_only.ends_with(b"\r\n\r\n"), "HEAD has no body");
    assert_eq!(
        status_of(&raw_exchange(srv.addr, b"POST / HTTP/1.1\r\n\r\n")),
        405
    );
    assert_eq!(
        status_of(&raw_exchange(srv.addr, b"GET /app.jsx HTTP/1.1\r\n\r\n")),
        404
    );
}

/// The feed of the browser test: 100 synthetic symbols, 200 ticks/s (2 per
/// symbol), and a token required to connect.
fn board_config(c: &mut Config) {
    c.synthetic_rate = 200;
    c.synthetic_symbols = 100;
    c.io_threads = 2;
    let tokens = StaticTokens::default().with(TOKEN, Identity::new("trader"));
    c.auth = Some(Arc::new(tokens));
}

#[test]
fn the_board_streams_checks_seq_and_reconnects_in_chromium() {
    let Some(bin) = chromium_for("the_board_streams_checks_seq_and_reconnects_in_chromium") else {
        return;
    };
    let _heavy = heavy();
    let started = Instant::now();
    let srv = TestServer::start(board_config);
    let addr = srv.addr;
    let group = |name: &str| -> Vec<String> {
        let (_, mut symbols) = srv
            .b()
            .groups()
            .into_iter()
            .find(|(g, _)| g == name)
            .unwrap_or_else(|| panic!("no group {name}"));
        symbols.sort();
        symbols
    };
    let fx = group("fx-majors");
    let crypto = group("crypto");

    let mut chromium = Chromium::launch(&bin);
    let mut page = chromium.new_page(STATE_JS);
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1200, "height": 640, "deviceScaleFactor": 1, "mobile": false}),
    );

    // First visit: no hash, no stored choice → the default group, fx-majors,
    // over /ws?token=… taken from the page's URL (the server refuses
    // connections without it).
    page.navigate(&format!("http://{addr}/?token={TOKEN}"));
    let s = page.wait_until("the board to connect and list fx-majors", |s| {
        s["conn"] == "open" && symbols(s) == fx
    });
    assert_eq!(
        s["hash"], "#group=fx-majors",
        "the choice is kept in the hash"
    );
    assert_eq!(s["group"], "fx-majors", "the picker shows the group");
    assert_eq!(s["connects"], "1");
    assert_eq!(s["resume"], "", "a first connection resumes nothing");
    assert!(
        s["wsurl"]
            .as_str()
            .is_some_and(|u| u.starts_with(&format!("ws://{addr}/ws?"))),
        "{s}"
    );
    page.wait_until("every fx-majors row to tick and a price to move", |now| {
        all_ticked_since(&s, now) && prices_moved(&s, now)
    });
    let s = page.wait_until("a second of rates, latencies and a ping RTT", |s| {
        num(s, "rate") > 0.0 && s["latency"] != "" && s["rtt"] != "" && num(s, "ticks") > 10.0
    });
    assert_eq!(s["gaps"], "0", "{s}");
    let latency = num(&s, "latency");
    assert!(
        (0.0..5_000.0).contains(&latency),
        "same machine, same clock: {latency} ms"
    );

    // Pick another group in the <select>: the board switches, in order.
    page.eval(
        "(() => { const g = document.getElementById('group'); g.value = 'crypto';
                  g.dispatchEvent(new Event('change')); })()",
    );
    let s = page.wait_until("the board to switch to crypto", |s| {
        symbols(s) == crypto && s["hash"] == "#group=crypto"
    });
    page.wait_until("every crypto row to tick and a price to move", |now| {
        all_ticked_since(&s, now) && prices_moved(&s, now)
    });
    // A moment for flashes, then the picture for the README.
    page.pump(Duration::from_millis(300));
    page.screenshot(
        "board.png",
        std::env::var_os("TICKCAST_SCREENSHOT").map(PathBuf::from),
    );

    // `*` is every symbol: 100 rows, sorted.
    page.eval(
        "(() => { const g = document.getElementById('group'); g.value = '*';
                  g.dispatchEvent(new Event('change')); })()",
    );
    let s = page.wait_until("all 100 symbols", |s| s["rows"] == "100");
    let all = symbols(&s);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "rows sorted: {all:?}");

    // Typed symbols (any case, commas or spaces) replace the group.
    page.eval(
        "(() => { document.getElementById('symbols').value = 'msft, eurusd btc-usd';
                  document.getElementById('pick').requestSubmit(); })()",
    );
    let typed = ["BTC-USD", "EURUSD", "MSFT"].map(String::from).to_vec();
    let s = page.wait_until("the typed symbols", |s| {
        symbols(s) == typed && s["hash"] == "#symbols=MSFT,EURUSD,BTC-USD"
    });
    page.wait_until("the typed symbols to tick", |now| all_ticked_since(&s, now));

    // A plain reload of / (no hash) remembers the choice (localStorage).
    page.navigate(&format!("http://{addr}/?token={TOKEN}"));
    let s = page.wait_until("the reloaded board to show the typed symbols", |s| {
        s["conn"] == "open" && s["connects"] == "1" && symbols(s) == typed
    });
    page.wait_until("the reloaded board to tick", |now| {
        all_ticked_since(&s, now)
    });
    assert_eq!(page.problems(), Vec::<String>::new(), "console errors");

    // The server goes away: the board says so, with the close code and
    // reason, and keeps retrying.
    srv.shutdown();
    page.outage = true;
    let down = page.wait_until("the board to show the server's close", |s| {
        s["conn"] == "reconnecting"
            && s["closeCode"] == "1001"
            && s["closeReason"] == "server shutting down"
            && s["stale"] == true
    });
    assert!(
        down["connText"]
            .as_str()
            .is_some_and(|t| t.starts_with("reconnecting")),
        "{down}"
    );
    page.pump(Duration::from_millis(1500)); // a failed attempt or two

    // It comes back on the same address: the board reconnects by itself,
    // resubscribes, and the new server's seq (from 1 again) is no gap
    // because the new connection's snapshots set new baselines.
    let srv = TestServer::start(|c| {
        board_config(c);
        c.listen = addr;
    });
    let back = page.wait_until("the board to reconnect", |s| {
        s["conn"] == "open" && s["connects"] == "2" && s["stale"] == false
    });
    page.outage = false; // from now on, a failed connection is an error again
    page.wait_until("ticks of the new server", |now| {
        symbols(now) == typed && all_ticked_since(&back, now)
    });
    let s = page.wait_until("a fresh second of rates", |s| num(s, "rate") > 0.0);
    assert_eq!(s["gaps"], "0", "{s}");
    // The board resumed, but the new server is another epoch (its seqs
    // count from 1 again): every symbol was reset, none replayed.
    assert_eq!(s["resume"], "reset: 3 symbols", "{s}");
    assert_eq!(s["closeCode"], "1001", "the last close stays on show");
    assert!(
        srv.stats().sockets >= 1,
        "the board is connected to the new server"
    );
    let problems = page.problems();
    assert_eq!(problems, Vec::<String>::new(), "console errors");
    for line in &page.expected {
        eprintln!("expected while the server was down: {line}");
    }
    eprintln!("board test: {:.1} s", started.elapsed().as_secs_f64());
    drop(page);
    drop(chromium);
}

/// The connection drops (cut in a relay between the browser and the
/// server): the board reconnects to the same server, resumes with its
/// epoch and last seqs, gets the missed ticks replayed and says
/// "resumed, 0 missed" (a broken replay would count seq gaps there).
#[test]
fn the_board_resumes_after_a_dropped_connection_in_chromium() {
    let Some(bin) = chromium_for("the_board_resumes_after_a_dropped_connection_in_chromium") else {
        return;
    };
    let _heavy = heavy();
    let srv = TestServer::start(board_config);
    let relay = Relay::start(srv.addr);
    let mut chromium = Chromium::launch(&bin);
    let mut page = chromium.new_page(STATE_JS);
    page.navigate(&format!(
        "http://{}/?token={TOKEN}#group=fx-majors",
        relay.addr
    ));
    let s = page.wait_until("the board to connect and tick", |s| {
        s["conn"] == "open" && num(s, "ticks") > 10.0
    });
    assert_eq!(s["resume"], "", "{s}");
    page.outage = true;
    relay.cut();
    let back = page.wait_until("the board to reconnect and resume", |s| {
        s["conn"] == "open" && s["connects"] == "2" && s["resume"] != ""
    });
    page.outage = false;
    let s = page.wait_until("ticks after the resume", |s| {
        num(s, "ticks") > num(&back, "ticks") + 20.0
    });
    assert_eq!(s["resume"], "resumed, 0 missed", "{s}");
    assert_eq!(s["gaps"], "0", "{s}");
    assert_eq!(s["closeCode"], "1006", "the cut connection: {s}");
    assert_eq!(page.problems(), Vec::<String>::new(), "console errors");
    drop(page);
    drop(chromium);
}

/// A TCP relay on `127.0.0.1:0` to `upstream`, whose connections the test
/// can cut at once (a network failure, seen by both ends).
struct Relay {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    fn start(upstream: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (held, stopped) = (conns.clone(), stop.clone());
        thread::spawn(move || {
            while !stopped.load(SeqCst) {
                let client = match listener.accept() {
                    Ok((s, _)) => s,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                    Err(e) => panic!("relay accept: {e}"),
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(upstream) else {
                    continue;
                };
                let mut list = held.lock().unwrap();
                list.push(client.try_clone().unwrap());
                list.push(server.try_clone().unwrap());
                pipe(client.try_clone().unwrap(), server.try_clone().unwrap());
                pipe(server, client);
            }
        });
        Relay { addr, conns, stop }
    }

    /// Cuts every connection relayed so far, both ways.
    fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        self.cut();
    }
}

/// Copies `from` to `to` in a thread until either ends.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(Shutdown::Write);
    });
}

// ------------------------------------------------------------ page state

/// Reads what the page shows: `#health`'s data attributes, the connection
/// pill, the hash and every row of the table.
const STATE_JS: &str = r#"(() => {
  const h = document.getElementById('health');
  if (!h) return null;
  const rows = [...document.querySelectorAll('#rows tr')].map((r) => ({
    symbol: r.dataset.symbol,
    seq: r.dataset.seq ?? null,
    prices: [...r.querySelectorAll('td')].slice(0, 4).map((td) => td.textContent).join(' '),
  }));
  return {
    ...h.dataset,
    hash: location.hash,
    group: document.getElementById('group').value,
    connText: document.getElementById('conn').textContent,
    wsurl: document.getElementById('wsurl').textContent,
    stale: document.getElementById('board').classList.contains('stale'),
    table: rows,
  };
})()"#;

fn symbols(s: &Value) -> Vec<String> {
    rows(s).into_iter().map(|(sym, _, _)| sym).collect()
}

/// (symbol, seq, price text) of each row.
fn rows(s: &Value) -> Vec<(String, Option<String>, String)> {
    s["table"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| {
                    (
                        r["symbol"].as_str().unwrap_or("").to_string(),
                        r["seq"].as_str().map(str::to_string),
                        r["prices"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn num(s: &Value, key: &str) -> f64 {
    s[key]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Every row of `now` has a seq, different from the one it had in `then`.
fn all_ticked_since(then: &Value, now: &Value) -> bool {
    let before = rows(then);
    let after = rows(now);
    !after.is_empty()
        && after.iter().all(|(sym, seq, _)| {
            seq.is_some()
                && before
                    .iter()
                    .find(|(b, _, _)| b == sym)
                    .is_none_or(|(_, old, _)| old != seq)
        })
}

/// Some price cell text changed between `then` and `now`.
fn prices_moved(then: &Value, now: &Value) -> bool {
    let before = rows(then);
    rows(now).iter().any(|(sym, _, px)| {
        before
            .iter()
            .any(|(b, _, old)| b == sym && old != px && !old.contains('—'))
    })
}
