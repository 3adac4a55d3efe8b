//! Headless Chromium driven over the Chrome DevTools Protocol, for the
//! pages tickcast serves (the board at `/`, the status page at `/status`).
//!
//! [`Chromium::launch`] starts it with a fresh profile and
//! `--remote-debugging-port=0`, reads the `DevTools listening on ws://…`
//! line from its stderr; [`Chromium::new_page`] creates a page target and
//! a [`Cdp`] connection to it (JSON over a WebSocket, spoken with
//! tungstenite): `Page.navigate`, `Runtime.evaluate` to read the state a
//! page mirrors into the DOM, `Page.captureScreenshot`, and the
//! `Runtime.consoleAPICalled` / `Runtime.exceptionThrown` /
//! `Log.entryAdded` events to catch console errors. Every wait has a
//! deadline; Chromium's process group is killed when the guard drops, also
//! on panic.
//!
//! Without Chromium (`chromium`, `chromium-browser`, `google-chrome` on
//! `PATH`, or `$CHROMIUM`) a browser test prints why and passes, unless
//! `CI` is set: CI must run it (`.ci/run` installs Chromium).

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// Longest wait for any one thing a page should do.
pub const PAGE_WAIT: Duration = Duration::from_secs(15);

/// The Chromium binary for the browser test `test`, or `None` (after
/// saying why) when there is none and `CI` is not set.
pub fn chromium_for(test: &str) -> Option<PathBuf> {
    let bin = find_chromium();
    if bin.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but Chromium is missing: install the `chromium` package"
        );
        eprintln!(
            "SKIPPED {test}: no chromium on PATH \
             (apt-get install chromium, or set CHROMIUM=/path/to/chrome)"
        );
    }
    bin
}

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
pub struct Chromium {
    child: Child,
    profile: PathBuf,
    /// `127.0.0.1:PORT` of the DevTools endpoint.
    devtools: String,
    /// The browser-wide CDP connection.
    browser: Cdp,
}

impl Chromium {
    pub fn launch(bin: &Path) -> Chromium {
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
    /// Runtime, Log and Page domains enabled; `state_js` is the expression
    /// [`Cdp::wait_until`] evaluates (the page's state, or null).
    pub fn new_page(&mut self, state_js: &'static str) -> Cdp {
        let target = self
            .browser
            .call("Target.createTarget", json!({"url": "about:blank"}));
        let id = target["targetId"].as_str().expect("targetId").to_string();
        let mut page = Cdp::connect(&format!("ws://{}/devtools/page/{id}", self.devtools));
        page.state_js = state_js;
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
pub struct Cdp {
    ws: Option<WebSocket<TcpStream>>,
    /// What [`Cdp::wait_until`] evaluates.
    state_js: &'static str,
    next_id: u64,
    /// Console errors, uncaught exceptions and error log entries.
    problems: Vec<String>,
    /// While the server is down (`outage`), the browser logs each refused
    /// WebSocket attempt as an error: those are expected and kept here.
    pub expected: Vec<String>,
    pub outage: bool,
}

impl Cdp {
    fn placeholder() -> Cdp {
        Cdp {
            ws: None,
            state_js: "null",
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
    pub fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub fn pump(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.read();
        }
    }

    pub fn problems(&mut self) -> Vec<String> {
        self.pump(Duration::from_millis(100));
        self.problems.clone()
    }

    pub fn navigate(&mut self, url: &str) {
        let r = self.call("Page.navigate", json!({"url": url}));
        assert!(r.get("errorText").is_none(), "navigating to {url}: {r}");
    }

    /// Evaluates `expr` in the page; `Err` with the exception text if it
    /// throws.
    pub fn try_eval(&mut self, expr: &str) -> Result<Value, String> {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
        );
        match r.get("exceptionDetails") {
            Some(d) => Err(d.to_string()),
            None => Ok(r["result"]["value"].clone()),
        }
    }

    pub fn eval(&mut self, expr: &str) -> Value {
        self.try_eval(expr)
            .unwrap_or_else(|e| panic!("evaluating {expr}: {e}"))
    }

    /// Polls the page's state (`state_js`) until `ok(state)`; panics with
    /// the last state after `PAGE_WAIT`.
    pub fn wait_until(&mut self, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PAGE_WAIT;
        loop {
            // The page may be navigating: an evaluation error is "not yet".
            let last = match self.try_eval(self.state_js) {
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

    /// Captures the viewport as PNG into `target/tmp/NAME`, and into
    /// `also` when given.
    pub fn screenshot(&mut self, name: &str, also: Option<PathBuf>) {
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let png = base64_decode(r["data"].as_str().expect("screenshot data"));
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
        let mut paths = vec![Path::new(env!("CARGO_TARGET_TMPDIR")).join(name)];
        paths.extend(also);
        for p in paths {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).unwrap();
            }
            std::fs::write(&p, &png).unwrap();
            eprintln!("screenshot: {}", p.display());
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
