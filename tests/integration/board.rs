//! The trading board at `/`, served by tickcast and run in a real browser.
//!
//! The browser test launches headless Chromium with a fresh profile and
//! `--remote-debugging-port=0`, reads the `DevTools listening on ws://…`
//! line from its stderr, creates a page target and drives it over the
//! Chrome DevTools Protocol (CDP: JSON over a WebSocket, spoken here with
//! tungstenite): `Page.navigate`, `Runtime.evaluate` to read the state the
//! page mirrors into `data-*` attributes, `Page.captureScreenshot`, and the
//! `Runtime.consoleAPICalled` / `Runtime.exceptionThrown` /
//! `Log.entryAdded` events to catch console errors. Every wait has a
//! deadline; Chromium's process group is killed when the guard drops, also
//! on panic.
//!
//! Without Chromium (`chromium`, `chromium-browser`, `google-chrome` on
//! `PATH`, or `$CHROMIUM`) the browser test prints why and passes, unless
//! `CI` is set: CI must run it (`.ci/run` installs Chromium).
//!
//! `TICKCAST_SCREENSHOT=docs/board.png cargo test --test integration board::`
//! also saves the screenshot there (it always goes to `target/tmp/board.png`).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tickcast::{Config, Identity, StaticTokens};
use tungstenite::{Message, WebSocket};

use crate::util::{TestServer, heavy, raw_exchange, status_of};

/// Longest wait for any one thing the page should do.
const PAGE_WAIT: Duration = Duration::from_secs(15);
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
    let Some(bin) = find_chromium() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Chromium is missing: install the `chromium` package"
        );
        eprintln!(
            "SKIPPED the_board_streams_checks_seq_and_reconnects_in_chromium: no chromium on PATH \
             (apt-get install chromium, or set CHROMIUM=/path/to/chrome)"
        );
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
    let mut page = chromium.new_page();
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
    page.screenshot();

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

// --------------------------------------------------------------- Chromium

fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// A headless Chromium with its own profile directory. Dropping it kills
/// its whole process group and deletes the profile.
struct Chromium {
    child: Child,
    profile: PathBuf,
    /// `127.0.0.1:PORT` of the DevTools endpoint.
    devtools: String,
    /// The browser-wide CDP connection.
    browser: Cdp,
}

impl Chromium {
    fn launch(bin: &Path) -> Chromium {
        use std::os::unix::process::CommandExt;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let profile =
            std::env::temp_dir().join(format!("tickcast-board-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&profile).unwrap();
        let mut child = Command::new(bin)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--mute-audio",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // Its own process group, so that the guard can end the renderer
            // and helper processes too.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        // Chromium writes the DevTools address to stderr; the thread keeps
        // draining stderr afterwards so that Chromium never blocks on it.
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            let mut seen = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(url) = line.strip_prefix("DevTools listening on ") {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(Ok(url.trim().to_string()));
                    }
                } else if tx.is_some() && seen.len() < 50 {
                    seen.push(line);
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err(seen.join("\n")));
            }
        });
        let mut guard = Chromium {
            child,
            profile,
            devtools: String::new(),
            browser: Cdp::placeholder(),
        };
        let url = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(url)) => url,
            Ok(Err(stderr)) => panic!("Chromium exited before DevTools was up:\n{stderr}"),
            Err(_) => panic!("no 'DevTools listening on' from Chromium within 30 s"),
        };
        guard.devtools = url
            .strip_prefix("ws://")
            .and_then(|rest| rest.split('/').next())
            .unwrap_or_else(|| panic!("unexpected DevTools URL {url}"))
            .to_string();
        guard.browser = Cdp::connect(&url);
        guard
    }

    /// Opens a new tab and returns a CDP connection to it, with the
    /// Runtime, Log and Page domains enabled.
    fn new_page(&mut self) -> Cdp {
        let target = self
            .browser
            .call("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().expect("targetId").to_string();
        let mut page = Cdp::connect(&format!("ws://{}/devtools/page/{id}", self.devtools));
        for domain in ["Runtime", "Log", "Page"] {
            page.call(&format!("{domain}.enable"), json!({}));
        }
        page
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        let group = -(self.child.id() as libc::pid_t);
        // SAFETY: kill(2) on our own child's process group.
        unsafe { libc::kill(group, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above; whatever is left of the group goes now.
        unsafe { libc::kill(group, libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

// -------------------------------------------------------------------- CDP

/// One CDP connection (browser or page): numbered commands, and the events
/// that arrive meanwhile, of which console errors are kept.
struct Cdp {
    ws: Option<WebSocket<TcpStream>>,
    next_id: u64,
    /// Console errors, uncaught exceptions and error log entries.
    problems: Vec<String>,
    /// While the server is down (`outage`), the browser logs each refused
    /// WebSocket attempt as an error: those are expected and kept here.
    expected: Vec<String>,
    outage: bool,
}

impl Cdp {
    fn placeholder() -> Cdp {
        Cdp {
            ws: None,
            next_id: 1,
            problems: Vec::new(),
            expected: Vec::new(),
            outage: false,
        }
    }

    fn connect(url: &str) -> Cdp {
        let hostport = url
            .strip_prefix("ws://")
            .and_then(|r| r.split('/').next())
            .expect("a ws:// URL");
        let addr: SocketAddr = hostport.parse().expect("DevTools on an IP address");
        assert!(addr.ip().is_loopback(), "DevTools must be on loopback");
        let stream = TcpStream::connect(addr).expect("connect to DevTools");
        stream.set_read_timeout(Some(PAGE_WAIT)).unwrap();
        let (ws, _) = tungstenite::client::client(url, stream).expect("DevTools handshake");
        // From now on short read timeouts let every wait check its deadline.
        ws.get_ref()
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Cdp {
            ws: Some(ws),
            ..Cdp::placeholder()
        }
    }

    /// Sends a command and returns its result; panics on a CDP error or
    /// when no answer comes within `PAGE_WAIT`.
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let msg = json!({"id": id, "method": method, "params": params});
        let ws = self.ws.as_mut().expect("connected");
        ws.send(Message::text(msg.to_string()))
            .unwrap_or_else(|e| panic!("sending {method}: {e}"));
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            assert!(Instant::now() < deadline, "no answer to {method}");
            let Some(v) = self.read() else { continue };
            if v["id"] == json!(id) {
                if let Some(err) = v.get("error") {
                    panic!("{method} failed: {err}");
                }
                return v["result"].clone();
            }
        }
    }

    /// The next message (events are noted on the way), or `None` after a
    /// short read timeout.
    fn read(&mut self) -> Option<Value> {
        let ws = self.ws.as_mut().expect("connected");
        match ws.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("CDP sends JSON");
                if v.get("method").is_some() {
                    self.event(&v);
                }
                Some(v)
            }
            Ok(_) => None,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("DevTools connection failed: {e}"),
        }
    }

    fn event(&mut self, v: &Value) {
        let p = &v["params"];
        let text = match v["method"].as_str().unwrap_or("") {
            "Runtime.consoleAPICalled"
                if matches!(p["type"].as_str(), Some("error" | "assert")) =>
            {
                let args: Vec<String> = p["args"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|x| {
                                x.get("value")
                                    .map(|v| v.to_string())
                                    .or_else(|| x["description"].as_str().map(str::to_string))
                                    .unwrap_or_default()
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                format!("console.{}: {}", p["type"], args.join(" "))
            }
            "Runtime.exceptionThrown" => {
                let d = &p["exceptionDetails"];
                let what = d["exception"]["description"]
                    .as_str()
                    .or(d["text"].as_str())
                    .unwrap_or("?");
                format!("uncaught: {what}")
            }
            "Log.entryAdded" if p["entry"]["level"] == "error" => {
                let e = &p["entry"];
                format!(
                    "log ({}): {} {}",
                    e["source"].as_str().unwrap_or("?"),
                    e["text"].as_str().unwrap_or(""),
                    e["url"].as_str().unwrap_or("")
                )
            }
            _ => return,
        };
        if self.outage
            && text.contains("WebSocket connection to")
            && text.contains("ERR_CONNECTION_REFUSED")
        {
            self.expected.push(text);
        } else {
            eprintln!("page problem: {text}");
            self.problems.push(text);
        }
    }

    /// Reads events for `d`.
    fn pump(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.read();
        }
    }

    fn problems(&mut self) -> Vec<String> {
        self.pump(Duration::from_millis(100));
        self.problems.clone()
    }

    fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
    }

    /// Evaluates `expr` in the page; `Err` with the exception text if it
    /// throws.
    fn try_eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        match r.get("exceptionDetails") {
            Some(d) => Err(d.to_string()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        self.try_eval(expr)
            .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
    }

    /// Polls the page's state until `ok(state)`; panics with the last state
    /// after `PAGE_WAIT`.
    fn wait_until(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            // The page may be navigating: an evaluation error is "not yet".
            let last = match self.try_eval(STATE_JS) {
                Ok(s) if !s.is_null() && ok(&s) => return s,
                Ok(s) => s,
                Err(e) => json!({"evaluation failed": e}),
            };
            assert!(
                Instant::now() < deadline,
                "timed out after {PAGE_WAIT:?} waiting for {what}; the page shows {last:#}"
            );
            self.pump(Duration::from_millis(100));
        }
    }

    /// Captures the viewport as PNG into `target/tmp/board.png`, and into
    /// `$TICKCAST_SCREENSHOT` when set.
    fn screenshot(&mut self) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let mut paths = vec![Path::new(env!("CARGO_TARGET_TMPDIR")).join("board.png")];
        if let Some(p) = std::env::var_os("TICKCAST_SCREENSHOT") {
            paths.push(PathBuf::from(p));
        }
        for p in paths {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).unwrap();
            }
            std::fs::write(&p, &png).unwrap();
            eprintln!("board screenshot: {}", p.display());
        }
    }
}

/// Standard base64 (CDP's encoding of binary results).
fn base64_decode(s: &str) -> Vec<u8> {
    let sextet = |c: u8| -> u32 {
        u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        })
    };
    let digits: Vec<u8> = s
        .bytes()
        .filter(|c| *c != b'=' && !c.is_ascii_whitespace())
        .collect();
    let mut out = Vec::with_capacity(digits.len() / 4 * 3 + 3);
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &c)| n | sextet(c) << (18 - 6 * i));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn base64_decodes_cdp_payloads() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode(""), b"");
}
