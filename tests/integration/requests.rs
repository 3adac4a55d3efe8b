//! Client requests: every error code of PROTOCOL.md, a failed request
//! changes nothing, and the connection stays usable afterwards.

use std::io::Write;
use std::time::Instant;

use serde_json::json;
use tungstenite::Message;

use crate::util::{Client, TestServer, WAIT, tick};

fn code(v: &serde_json::Value) -> &str {
    assert_eq!(v["type"], "error", "{v}");
    v["code"].as_str().unwrap()
}

#[test]
fn bad_requests_get_the_right_error_and_the_connection_stays_usable() {
    let srv = TestServer::start(|c| c.max_subscriptions = 3);
    srv.b().set_group("g", ["A", "B"]).unwrap();
    let mut c = Client::connect(srv.addr);
    for bad in ["not json", "[1,2]", "42", "{\"op\":7}", "{}"] {
        c.send_text(bad);
        let v = c.json();
        assert_eq!(code(&v), "bad_request", "{bad}");
        assert!(v.get("id").is_none());
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let cases = [
        (json!({"op":"fly"}), "bad_request"),
        (json!({"op":"subscribe"}), "bad_request"),
        (json!({"op":"subscribe","symbols":"A"}), "bad_request"),
        (json!({"op":"subscribe","symbols":[1]}), "bad_request"),
        (json!({"op":"subscribe","symbols":[""]}), "bad_request"),
        (
            json!({"op":"subscribe","symbols":["X".repeat(33)]}),
            "bad_request",
        ),
        (
            json!({"op":"subscribe","symbols":["A\u{1}"]}),
            "bad_request",
        ),
        (json!({"op":"subscribe","groups":["nope"]}), "unknown_group"),
        (
            json!({"op":"subscribe","symbols":["A"],"groups":["nope"]}),
            "unknown_group",
        ),
        (
            json!({"op":"unsubscribe","groups":["nope"]}),
            "unknown_group",
        ),
        (json!({"op":"unsubscribe","all":1}), "bad_request"),
        (
            json!({"op":"subscribe","symbols":["A","B","C","D"]}),
            "too_many_subscriptions",
        ),
    ];
    for (i, (req, want)) in cases.iter().enumerate() {
        let id = 100 + i as i64;
        let (v, before) = c.exchange(req.clone(), id);
        assert_eq!(code(&v), *want, "{req}");
        assert_eq!(v["id"], json!(id), "the id is echoed");
        assert!(before.is_empty(), "one reply per request: {before:?}");
    }
    // A non-integer id cannot be echoed.
    c.send(json!({"op":"ping","id":"seven"}));
    assert_eq!(code(&c.json()), "bad_request");
    // A binary message is refused with an error, not a close.
    c.ws.send(Message::binary(vec![1, 2, 3])).unwrap();
    assert_eq!(code(&c.json()), "bad_request");
    // Nothing above subscribed to anything: ticks of A (or of the other
    // symbols the refused requests named) are not delivered. FENCE,
    // subscribed now and published after them, is the fence: ticks leave
    // the publisher in order, so any of them delivered would come first.
    let (r, before) = c.exchange(json!({"op":"subscribe","symbols":["FENCE"]}), 6);
    assert_eq!(r["type"], "subscribed", "{r}");
    assert!(before.is_empty(), "{before:?}");
    for s in ["A", "B", "C", "D"] {
        srv.publish(tick(s, 0));
    }
    srv.publish(tick("FENCE", 0));
    let before = c.until_tick("FENCE");
    assert!(
        before.is_empty(),
        "a refused request subscribed something: {before:?}"
    );
    let (pong, before) = c.exchange(json!({"op":"ping"}), 1);
    assert_eq!(pong["type"], "pong");
    assert!(pong["ts"].as_u64().unwrap() > 0);
    assert!(before.is_empty(), "{before:?}");
    // FENCE is given back, so the limit below counts from nothing held.
    let r = c.request(json!({"op":"unsubscribe","symbols":["FENCE"]}), 7);
    assert_eq!(
        r,
        json!({"type":"unsubscribed","id":7,"symbols":["FENCE"],"groups":[]})
    );
    // The limit counts what is held: 3 fit, the 4th does not.
    c.subscribe(&["A", "B"], &["g"], 2);
    let v = c.request(json!({"op":"subscribe","symbols":["C"]}), 3);
    assert_eq!(code(&v), "too_many_subscriptions");
    c.subscribe(&["A"], &[], 4); // already held: not a new subscription
    let g = c.request(json!({"op":"list_groups"}), 5);
    assert_eq!(
        g,
        json!({"type":"groups","id":5,"groups":[{"name":"g","symbols":2}]})
    );
}

#[test]
fn unknown_symbols_are_refused_when_configured() {
    // One shard, so a probe that has received the tick proves the shard's
    // last-value cache holds it (no sleep).
    let srv = TestServer::start(|c| {
        c.reject_unknown_symbols = true;
        c.io_threads = 1;
    });
    let mut probe = Client::connect(srv.addr);
    probe.subscribe(&[], &["*"], 1);
    srv.publish(tick("SEEN", 0));
    srv.b().set_group("g", ["INGROUP"]).unwrap();
    assert_eq!(probe.json()["symbol"], "SEEN");
    let mut c = Client::connect(srv.addr);
    let (v, before) = c.exchange(json!({"op":"subscribe","symbols":["SEEN","NEVER"]}), 1);
    assert_eq!(code(&v), "unknown_symbol");
    assert!(v["message"].as_str().unwrap().contains("NEVER"));
    assert!(before.is_empty(), "{before:?}");
    // The refused request subscribed nothing: a subscribed SEEN would have
    // sent its snapshot before this reply.
    let (r, before) = c.exchange(
        json!({"op":"subscribe","symbols":["SEEN","INGROUP"],"groups":[]}),
        2,
    );
    assert_eq!(r["type"], "subscribed", "{r}");
    assert!(
        before.is_empty(),
        "the refused request subscribed SEEN: {before:?}"
    );
    assert_eq!(r["symbols"], json!(["SEEN", "INGROUP"]));
    let snap = c.json();
    assert_eq!(
        (snap["type"].as_str(), snap["seq"].as_u64()),
        (Some("snapshot"), Some(1))
    );
}

#[test]
fn requests_beyond_the_rate_are_limited_then_the_flood_is_closed() {
    let srv = TestServer::start(|c| {
        c.request_rate = 1;
        c.request_burst = 5;
    });
    let mut c = Client::connect(srv.addr);
    for i in 0..5 {
        assert_eq!(c.request(json!({"op":"ping"}), i)["type"], "pong");
    }
    let v = c.request(json!({"op":"ping"}), 9);
    assert_eq!(code(&v), "rate_limited");
    for _ in 0..10 {
        c.send(json!({"op":"ping"}));
    }
    let (code, _) = c.until_close();
    assert_eq!(code, 4008);
    srv.wait_stats("the close", |s| s.closed_rate_limit == 1);
}

#[test]
fn an_oversize_message_is_closed_with_1009() {
    let srv = TestServer::start(|c| c.max_message_size = 1024);
    let mut c = Client::connect(srv.addr);
    c.send_text(&format!(
        "{{\"op\":\"ping\",\"pad\":\"{}\"}}",
        "x".repeat(2000)
    ));
    assert_eq!(c.until_close().0, 1009);
    srv.wait_stats("the close", |s| {
        s.closed_oversize == 1 && s.connections == 0
    });
}

/// Writes a raw client frame (masked with a zero key unless `masked` is
/// false) under the tungstenite client.
fn raw_frame(c: &mut Client, first: u8, payload: &[u8], masked: bool) {
    let mut f = vec![first];
    let m = if masked { 0x80 } else { 0 };
    f.push(m | payload.len() as u8);
    if masked {
        f.extend_from_slice(&[0, 0, 0, 0]);
    }
    f.extend_from_slice(payload);
    c.ws.get_mut().write_all(&f).unwrap();
}

#[test]
fn invalid_utf8_is_closed_with_1007() {
    let srv = TestServer::start(|_| {});
    let mut c = Client::connect(srv.addr);
    raw_frame(&mut c, 0x81, &[0xff, 0xfe], true);
    assert_eq!(c.until_close().0, 1007);
}

#[test]
fn an_unmasked_client_frame_is_closed_with_1002() {
    let srv = TestServer::start(|_| {});
    let mut c = Client::connect(srv.addr);
    raw_frame(&mut c, 0x81, b"{}", false);
    assert_eq!(c.until_close().0, 1002);
    srv.wait_stats("the close", |s| s.closed_protocol == 1);
}

#[test]
fn a_fragmented_request_is_reassembled() {
    let srv = TestServer::start(|_| {});
    let mut c = Client::connect(srv.addr);
    let text = br#"{"op":"ping","id":77}"#;
    raw_frame(&mut c, 0x01, &text[..5], true); // text, not final
    raw_frame(&mut c, 0x89, b"hi", true); // a ping in between is allowed
    raw_frame(&mut c, 0x80, &text[5..], true); // continuation, final
    let v = c.json();
    assert_eq!(
        (v["type"].as_str(), v["id"].as_i64()),
        (Some("pong"), Some(77))
    );
}

#[test]
fn a_client_close_is_answered_and_the_connection_released() {
    let srv = TestServer::start(|_| {});
    let mut c = Client::connect(srv.addr);
    srv.wait_stats("the connection", |s| s.connections == 1);
    c.ws.close(None).unwrap();
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no end of the close handshake");
        match c.ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => break,
            Err(e) => panic!("close handshake failed: {e}"),
        }
    }
    srv.wait_stats("release", |s| s.connections == 0 && s.sockets == 0);
}
