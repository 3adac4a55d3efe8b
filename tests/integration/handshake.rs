//! The HTTP side: upgrades, refusals with the contract's statuses, and
//! sockets that never finish a handshake.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::json;
use tickcast::{Identity, StaticTokens};

use crate::util::{Client, TestServer, WAIT, raw_exchange, raw_exchange_first, status_of, tick};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
}

#[test]
fn non_upgrade_and_garbage_handshakes_get_an_http_error() {
    let srv = TestServer::start(|_| {});
    let a = srv.addr;
    assert_eq!(
        status_of(&raw_exchange(a, b"GET /ws HTTP/1.1\r\nHost: t\r\n\r\n")),
        426
    );
    assert_eq!(
        status_of(&raw_exchange(a, b"GET /nope HTTP/1.1\r\n\r\n")),
        404
    );
    assert_eq!(
        status_of(&raw_exchange(a, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")),
        400
    );
    assert_eq!(
        status_of(&raw_exchange(
            a,
            upgrade("/ws", "").replace(KEY, "x").as_bytes()
        )),
        400
    );
    let huge = format!("GET /ws HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(20_000));
    assert_eq!(status_of(&raw_exchange(a, huge.as_bytes())), 400);
    let ok = raw_exchange(a, b"GET /healthz HTTP/1.1\r\n\r\n");
    assert_eq!(status_of(&ok), 200);
    assert!(ok.ends_with(b"\r\n\r\nok\n"));
    // The server keeps serving after all that.
    let mut c = Client::connect(a);
    assert_eq!(c.request(json!({"op":"ping"}), 1)["type"], "pong");
    srv.wait_stats("refused sockets to go", |s| {
        s.sockets == 1 && s.handshakes_failed >= 4
    });
}

#[test]
fn handshake_bytes_split_across_reads_still_upgrade() {
    let srv = TestServer::start(|_| {});
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.set_nodelay(true).unwrap();
    // The request head, then a masked ping request in the same byte stream.
    let mut bytes = upgrade("/ws?client=split", "").into_bytes();
    let req = br#"{"op":"ping","id":5}"#;
    bytes.extend_from_slice(&[0x81, 0x80 | req.len() as u8, 0, 0, 0, 0]);
    bytes.extend_from_slice(req);
    for chunk in bytes.chunks(7) {
        s.write_all(chunk).unwrap();
        // Not a wait for anything: the pause between writes is what makes
        // the server see the head in several reads (no condition to poll).
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + WAIT;
    while !String::from_utf8_lossy(&got).contains("\"pong\"") {
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&got)
        );
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 101 "), "{text}");
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    assert!(text.contains("\"welcome\""));
}

#[test]
fn a_half_open_handshake_is_closed_at_its_deadline() {
    let srv = TestServer::start(|c| c.handshake_timeout = Duration::from_millis(200));
    let mut s = TcpStream::connect(srv.addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    s.write_all(b"GET /ws HTTP/1.1\r\n").unwrap();
    let t0 = Instant::now();
    let mut buf = [0u8; 64];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without a response");
    assert!(t0.elapsed() < WAIT);
    srv.wait_stats("the socket to go", |s| {
        s.sockets == 0 && s.handshakes_failed == 1
    });
}

#[test]
fn the_connection_limit_refuses_with_503() {
    let srv = TestServer::start(|c| c.max_connections = 2);
    let _a = Client::connect(srv.addr);
    let _b = Client::connect(srv.addr);
    let resp = raw_exchange(srv.addr, upgrade("/ws", "").as_bytes());
    assert_eq!(status_of(&resp), 503);
    assert!(String::from_utf8_lossy(&resp).contains("connection limit"));
    drop(_a);
    srv.wait_stats("a free slot", |s| s.connections == 1);
    let _c = Client::connect(srv.addr);
    assert_eq!(srv.stats().refused_full, 1);
}

#[test]
fn the_per_ip_limit_refuses_with_429() {
    let srv = TestServer::start(|c| c.max_connections_per_ip = 1);
    let _a = Client::connect(srv.addr);
    assert_eq!(
        status_of(&raw_exchange(srv.addr, upgrade("/ws", "").as_bytes())),
        429
    );
}

#[test]
fn a_foreign_origin_is_refused_with_403() {
    let srv = TestServer::start(|c| c.allowed_origins = vec!["https://ui.example".into()]);
    let bad = upgrade("/ws", "Origin: https://evil.example\r\n");
    assert_eq!(status_of(&raw_exchange(srv.addr, bad.as_bytes())), 403);
    let good = upgrade("/ws", "Origin: https://ui.example\r\n");
    assert_eq!(
        status_of(&raw_exchange_first(srv.addr, good.as_bytes())),
        101
    );
}

/// A server with three tokens: alice (everything), bob (group `fx` and
/// symbol AAPL) and carol (`short-token`, expiring in 600 ms); returns it
/// and carol's expiry.
fn auth_server() -> (TestServer, SystemTime) {
    let short_expiry = SystemTime::now() + Duration::from_millis(600);
    let tokens = StaticTokens::default()
        .with("alice-token", Identity::new("alice"))
        .with(
            "bob-token",
            Identity::new("bob")
                .entitled_to_groups(["fx"])
                .entitled_to_symbols(["AAPL"]),
        )
        .with(
            "short-token",
            Identity::new("carol").expires_at(short_expiry),
        );
    let srv = TestServer::start(|c| c.auth = Some(Arc::new(tokens)));
    srv.b().set_group("fx", ["EURUSD"]).unwrap();
    srv.b().set_group("tech", ["MSFT"]).unwrap();
    (srv, short_expiry)
}

#[test]
fn tokens_are_required_when_auth_is_on() {
    let (srv, _) = auth_server();
    assert_eq!(
        status_of(&raw_exchange(srv.addr, upgrade("/ws", "").as_bytes())),
        401
    );
    let wrong = upgrade("/ws?token=guess", "");
    assert_eq!(status_of(&raw_exchange(srv.addr, wrong.as_bytes())), 401);
    let _q = Client::connect_path(srv.addr, "/ws?token=alice-token");
    let bearer = upgrade("/ws", "Authorization: Bearer alice-token\r\n");
    assert_eq!(
        status_of(&raw_exchange_first(srv.addr, bearer.as_bytes())),
        101
    );
}

#[test]
fn subscriptions_outside_the_entitlements_are_forbidden() {
    let (srv, _) = auth_server();
    let mut bob = Client::connect_path(srv.addr, "/ws?token=bob-token");
    for req in [
        json!({"op":"subscribe","groups":["tech"]}),
        json!({"op":"subscribe","groups":["*"]}),
        json!({"op":"subscribe","symbols":["MSFT"]}),
        json!({"op":"subscribe","symbols":["AAPL","MSFT"]}),
    ] {
        let v = bob.request(req.clone(), 1);
        assert_eq!(v["code"], "forbidden", "{req}");
    }
    bob.subscribe(&["AAPL", "EURUSD"], &["fx"], 2);
    srv.publish(tick("MSFT", 0));
    srv.publish(tick("EURUSD", 0));
    assert_eq!(
        bob.json()["symbol"],
        "EURUSD",
        "the forbidden request changed nothing"
    );
}

#[test]
fn notices_can_target_one_user() {
    let (srv, _) = auth_server();
    let mut alice = Client::connect_path(srv.addr, "/ws?token=alice-token");
    let mut bob = Client::connect_path(srv.addr, "/ws?token=bob-token");
    srv.b().notice_user("bob", "for bob only");
    srv.b().notice("for everyone");
    assert_eq!(bob.json()["text"], "for bob only");
    assert_eq!(bob.json()["text"], "for everyone");
    assert_eq!(alice.json()["text"], "for everyone");
}

#[test]
fn an_expiring_token_closes_with_1008() {
    let (srv, expiry) = auth_server();
    let mut carol = Client::connect_path(srv.addr, "/ws?token=short-token");
    let (code, reason) = carol.until_close();
    assert_eq!((code, reason.as_str()), (1008, "token expired"));
    // The close comes once the token has expired, not before, so the same
    // token is refused right away (no sleep).
    assert!(SystemTime::now() >= expiry, "closed before the expiry");
    srv.wait_stats("the close to be counted", |s| s.closed_expired == 1);
    let again = upgrade("/ws?token=short-token", "");
    assert_eq!(status_of(&raw_exchange(srv.addr, again.as_bytes())), 401);
}

/// The smallest queue the config accepts still carries the handshake: the
/// `101`, the `welcome`, then a subscription's reply and snapshots (issue
/// 7: at a capacity of 1 the welcome overflowed and the client got a close
/// frame instead of its `101`).
#[test]
fn the_smallest_queue_allowed_still_completes_the_handshake() {
    let srv = TestServer::start(|c| c.queue_capacity = tickcast::MIN_QUEUE_CAPACITY);
    for i in 0..3 {
        srv.publish(tick(&format!("Q{i}"), 1));
    }
    srv.wait_stats("the ticks to be published", |s| s.ticks_published == 3);
    let mut c = Client::connect(srv.addr);
    assert_eq!(c.welcome["max_queue"], tickcast::MIN_QUEUE_CAPACITY);
    c.subscribe(&["Q0", "Q1", "Q2"], &[], 1);
    let mut snapshots: Vec<String> = (0..3)
        .map(|_| {
            let m = c.json();
            assert_eq!(m["type"], "snapshot", "{m}");
            m["symbol"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    snapshots.sort();
    assert_eq!(snapshots, ["Q0", "Q1", "Q2"]);
}
