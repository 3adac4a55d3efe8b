//! The binary's settings: a settings file, `TICKCAST_*` variables and
//! flags, in that order of precedence; a bad file refused with its key
//! and line; `[groups]` from the file; the log format.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use serde_json::{Value, json};

use crate::util::{Client, SeqCheck, TempDir, WAIT, raw_exchange, spawn_binary, status_of};

/// The binary on a free port with one I/O thread and no synthetic feed;
/// no `TICKCAST_*` variable inherited from the test's environment.
fn binary(file: Option<&Path>) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickcast"));
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TICKCAST_") {
            cmd.env_remove(k);
        }
    }
    cmd.args(["--listen", "127.0.0.1:0", "--no-pin", "--io-threads", "1"]);
    if let Some(f) = file {
        cmd.arg("--config").arg(f);
    }
    cmd
}

/// Runs a binary that must refuse to start; returns its stderr.
fn refused(mut cmd: Command) -> String {
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    assert!(!out.status.success(), "it started: {out:?}");
    assert!(out.stdout.is_empty(), "it printed a banner: {out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_unknown_key_in_the_file_stops_the_start_naming_it_and_its_line() {
    let dir = TempDir::new("unknown");
    let f = dir.file_text(
        "tickcast.toml",
        "synthetic_rate = 0\n\n# a comment\nheartbeat = 3000\n",
    );
    let err = refused(binary(Some(&f)));
    let want = format!("{}:4: unknown key `heartbeat`", f.display());
    assert!(err.contains(&want), "{err}");
}

#[test]
fn a_bad_value_stops_the_start_naming_the_key() {
    let dir = TempDir::new("bad");
    let f = dir.file_text(
        "tickcast.toml",
        "synthetic_rate = 0\nheartbeat_ms = \"fast\"\n",
    );
    let err = refused(binary(Some(&f)));
    let want = format!("{}:2: heartbeat_ms: ", f.display());
    assert!(err.contains(&want), "{err}");
    let mut cmd = binary(None);
    cmd.env("TICKCAST_HEARTBEAT_MS", "fast");
    let err = refused(cmd);
    assert!(
        err.contains("TICKCAST_HEARTBEAT_MS: invalid value \"fast\""),
        "{err}"
    );
    let mut cmd = binary(None);
    cmd.args(["--tls-cert", "cert.pem"]);
    assert!(refused(cmd).contains("tls_cert needs tls_key"));
}

/// The `heartbeat_ms` of the welcome of a binary started by `cmd`.
fn welcome_heartbeat(cmd: Command) -> Value {
    let (mut child, addr) = spawn_binary(cmd, Stdio::null());
    let c = Client::connect(addr);
    child.term();
    assert!(child.exit_status().success());
    c.welcome["heartbeat_ms"].clone()
}

#[test]
fn flags_beat_the_environment_which_beats_the_file() {
    let dir = TempDir::new("precedence");
    let f = dir.file_text("tickcast.toml", "synthetic_rate = 0\nheartbeat_ms = 1000\n");
    let mut cmd = binary(Some(&f));
    cmd.env("TICKCAST_HEARTBEAT_MS", "2000")
        .args(["--heartbeat-ms", "3000"]);
    assert_eq!(welcome_heartbeat(cmd), 3000);
    let mut cmd = binary(Some(&f));
    cmd.env("TICKCAST_HEARTBEAT_MS", "2000");
    assert_eq!(welcome_heartbeat(cmd), 2000);
    assert_eq!(welcome_heartbeat(binary(Some(&f))), 1000);
    // The file named by the environment instead of the flag.
    let mut cmd = binary(None);
    cmd.env("TICKCAST_CONFIG", &f);
    assert_eq!(welcome_heartbeat(cmd), 1000);
    let mut cmd = binary(None);
    cmd.arg("--synthetic-rate=0");
    assert_eq!(welcome_heartbeat(cmd), 5000, "the default");
}

/// The `symbols` count of group `name` in a `groups` reply.
fn count_of(groups: &Value, name: &str) -> Option<u64> {
    groups["groups"]
        .as_array()?
        .iter()
        .find(|g| g["name"] == name)?["symbols"]
        .as_u64()
}

#[test]
fn a_prefix_group_from_the_file_serves_the_synthetic_feed() {
    let dir = TempDir::new("groups");
    let f = dir.file_text(
        "tickcast.toml",
        "synthetic_symbols = 50\nsynthetic_rate = 500\n\n[groups]\n\
         all-eur = [\"EUR*\"]\nmine = [\"AAPL\", \"USDJPY\"]\n",
    );
    let (mut child, addr) = spawn_binary(binary(Some(&f)), Stdio::null());
    let mut c = Client::connect(addr);
    let g = c.request(json!({"op":"list_groups"}), 1);
    assert_eq!(count_of(&g, "mine"), Some(2), "{g}");
    assert!(
        count_of(&g, "fx-majors").is_some(),
        "the feed's groups stay"
    );
    c.subscribe(&[], &["all-eur"], 2);
    // The group holds exactly the symbols it delivers: wait until the
    // symbols seen are as many as it counts, with every one EUR*.
    let mut seen = HashSet::new();
    let mut check = SeqCheck::default();
    let deadline = Instant::now() + WAIT;
    let mut id = 3;
    loop {
        assert!(Instant::now() < deadline, "saw {seen:?} within {WAIT:?}");
        let v = c.json();
        check.feed(&v);
        if v["type"] == "tick" || v["type"] == "snapshot" {
            let sym = v["symbol"].as_str().unwrap_or_default().to_string();
            assert!(sym.starts_with("EUR"), "{v}");
            if seen.insert(sym) && seen.len() >= 2 {
                let g = c.request(json!({"op":"list_groups"}), id);
                id += 1;
                if count_of(&g, "all-eur") == Some(seen.len() as u64) {
                    break;
                }
            }
        }
    }
    child.term();
    assert!(child.exit_status().success());
}

/// The stderr lines of a binary started by `cmd`, until the one for which
/// `is_it` holds (within `WAIT`); then the binary is stopped.
fn stderr_until(cmd: Command, is_it: impl Fn(&str) -> bool) -> Vec<String> {
    let (mut child, _) = spawn_binary(cmd, Stdio::piped());
    let err = child.0.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    // Reads to the end, so the binary's later lines never meet a closed pipe.
    thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no such line within {WAIT:?}: {lines:?}"));
        let done = is_it(&line);
        lines.push(line);
        if done {
            break;
        }
    }
    child.term();
    assert!(child.exit_status().success());
    lines
}

#[test]
fn json_logs_are_json_lines_with_the_startup_summary() {
    let mut cmd = binary(None);
    cmd.args(["--synthetic-rate", "0", "--log-format", "json"]);
    let lines = stderr_until(cmd, |l| l.contains("tickcast started"));
    for l in &lines {
        serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"));
    }
    let start: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(start["level"], "INFO", "{start}");
    let fields = &start["fields"];
    assert_eq!(fields["auth"], "open: no token required", "{start}");
    assert_eq!(fields["tls"], "off", "{start}");
    assert_eq!(fields["feed"], "none (synthetic_rate 0)", "{start}");
    assert!(
        fields["listen"]
            .as_str()
            .is_some_and(|l| l.starts_with("ws://127.0.0.1:")),
        "{start}"
    );
}

#[test]
fn text_logs_say_the_server_is_open_and_name_a_stray_variable() {
    let mut cmd = binary(None);
    cmd.args(["--synthetic-rate", "0"])
        .env("TICKCAST_LOG_FORMAT", "text")
        .env("TICKCAST_NOT_A_SETTING", "1");
    let lines = stderr_until(cmd, |l| l.contains("tickcast started"));
    assert!(
        lines.iter().any(|l| l.contains("WARN")
            && l.contains("TICKCAST_NOT_A_SETTING")
            && l.contains("ignored")),
        "{lines:?}"
    );
    let start = lines.last().unwrap();
    assert!(start.contains("INFO"), "{start}");
    assert!(start.contains("open: no token required"), "{start}");
    assert!(serde_json::from_str::<Value>(start).is_err(), "{start}");
}

/// An upgrade request from `origin`.
fn upgrade_from(origin: &str) -> Vec<u8> {
    format!(
        "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Origin: {origin}\r\n\r\n"
    )
    .into_bytes()
}

#[test]
fn the_origin_allowlist_and_the_per_ip_limit_come_from_the_settings() {
    let dir = TempDir::new("admission");
    let f = dir.file_text(
        "tickcast.toml",
        "synthetic_rate = 0\nallow_origin = [\"https://ui.example\"]\n",
    );
    let mut cmd = binary(Some(&f));
    cmd.env("TICKCAST_MAX_CONNECTIONS_PER_IP", "1");
    let (mut child, addr) = spawn_binary(cmd, Stdio::null());
    let bad = raw_exchange(addr, &upgrade_from("https://evil.example"));
    assert_eq!(status_of(&bad), 403);
    // One connection from the allowed origin, kept open…
    let mut held = TcpStream::connect(addr).unwrap();
    held.set_read_timeout(Some(WAIT)).unwrap();
    held.write_all(&upgrade_from("https://ui.example")).unwrap();
    let mut buf = [0u8; 4096];
    let n = held.read(&mut buf).unwrap();
    assert_eq!(status_of(&buf[..n]), 101);
    // …and the second from the same IP is refused.
    let second = raw_exchange(addr, &upgrade_from("https://ui.example"));
    assert_eq!(status_of(&second), 429);
    drop(held);
    child.term();
    assert!(child.exit_status().success());
}
