//! Unit tests of the session core: bytes and clock steps in, events out,
//! no socket.

use std::time::Duration;

use serde_json::Value;

use super::*;
use crate::Config;
use crate::wire::ws::{self, Header};

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn head() -> Vec<u8> {
    format!(
        "GET /ws?client=t HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n\r\n"
    )
    .into_bytes()
}

/// A masked client frame (FIN set).
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    let mut out = vec![0x80 | opcode];
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

fn text(s: &str) -> Vec<u8> {
    client_frame(0x1, s.as_bytes())
}

fn json_of(f: &Frame) -> Value {
    serde_json::from_slice(ws::payload(f.as_bytes()).unwrap()).unwrap()
}

/// An open session (the head was routed and admitted) and its clock.
fn opened(config: &Config) -> (Session, Instant) {
    let t0 = Instant::now();
    let mut s = Session::new(t0, config);
    s.receive(&head(), t0);
    let Some(Route::Upgrade(up)) = s.route() else {
        panic!("the head routes to an upgrade")
    };
    s.open(&up, 7, None, t0, &Settings::from_config(config), "e-1");
    (s, t0)
}

fn events(s: &mut Session, now: Instant, bytes: &[u8]) -> Vec<Event> {
    s.receive(bytes, now);
    let mut out = Vec::new();
    s.read_messages(now, usize::MAX, &mut out);
    out
}

#[test]
fn the_head_is_routed_once_complete_then_opens_with_101_and_welcome() {
    let c = Config::default();
    let t0 = Instant::now();
    let mut s = Session::new(t0, &c);
    let h = head();
    s.receive(&h[..20], t0);
    assert!(s.route().is_none(), "incomplete head: read more");
    let mut rest = h[20..].to_vec();
    rest.extend(text(r#"{"op":"ping","id":1}"#));
    s.receive(&rest, t0);
    let Some(Route::Upgrade(up)) = s.route() else {
        panic!()
    };
    let opened = s.open(&up, 17, None, t0, &Settings::from_config(&c), "e-1");
    let resp = String::from_utf8(opened.switching_protocols).unwrap();
    assert!(resp.starts_with("HTTP/1.1 101 ") && resp.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    let w = json_of(&opened.welcome);
    assert_eq!(
        (w["type"].as_str(), w["conn_id"].as_str()),
        (Some("welcome"), Some("c-17"))
    );
    assert_eq!(
        (w["heartbeat_ms"].as_u64(), w["max_queue"].as_u64()),
        (Some(5000), Some(4096))
    );
    assert_eq!(s.state(), State::Open);
    let mut out = Vec::new();
    s.read_messages(t0, 8, &mut out);
    assert!(
        matches!(&out[..], [Event::Request(Request::Ping { .. })]),
        "the frame sent with the head is parsed: {out:?}"
    );
}

#[test]
fn a_head_is_never_buffered_past_its_limit() {
    let c = Config::default();
    let t0 = Instant::now();
    let mut s = Session::new(t0, &c);
    assert_eq!(s.read_limit(1 << 20), http::MAX_HEAD);
    s.receive(&vec![b'a'; http::MAX_HEAD + 100], t0);
    assert_eq!(s.read_limit(1 << 20), 0);
    assert!(matches!(s.route(), Some(Route::Respond(r)) if r.status == 400));
}

#[test]
fn pings_are_answered_with_pongs_as_events() {
    let (mut s, t0) = opened(&Config::default());
    let mut out = events(&mut s, t0, &client_frame(0x9, b"hb"));
    // tungstenite queues the pong and writes it on its next read.
    out.extend(events(&mut s, t0, &[]));
    let pong = out.iter().find_map(|e| match e {
        Event::Send(f) => Some(f.clone()),
        _ => None,
    });
    let pong = pong.expect("a pong");
    let h = Header::parse(pong.as_bytes()).unwrap();
    assert_eq!(
        (h.opcode, ws::payload(pong.as_bytes())),
        (0xA, Some(&b"hb"[..]))
    );
}

#[test]
fn a_client_close_is_echoed_and_ends_parsing() {
    let (mut s, t0) = opened(&Config::default());
    let mut input = client_frame(0x8, &1000u16.to_be_bytes());
    input.extend(text(r#"{"op":"ping"}"#));
    let out = events(&mut s, t0, &input);
    assert_eq!(out.len(), 1, "nothing after the close: {out:?}");
    let Event::PeerClose(reply) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(Header::parse(reply.as_bytes()).map(|h| h.opcode), Some(0x8));
}

#[test]
fn nothing_is_parsed_after_an_ending_event_even_if_the_caller_asks_again() {
    // Found by the session_frames fuzz target: the guarantee held only
    // within one read_messages call.
    let (mut s, t0) = opened(&Config::default());
    let mut input = b"\x81\x02hi".to_vec(); // unmasked: 1002
    input.extend(text(r#"{"op":"ping"}"#));
    let out = events(&mut s, t0, &input);
    assert!(
        matches!(&out[..], [Event::Close(CloseReason::Protocol(_))]),
        "{out:?}"
    );
    assert!(events(&mut s, t0, &text(r#"{"op":"ping"}"#)).is_empty());
}

#[test]
fn protocol_violations_become_close_reasons() {
    let c = Config {
        max_message_size: 128,
        ..Config::default()
    };
    type Check = fn(&Event) -> bool;
    let cases: [(Vec<u8>, Check); 4] = [
        (b"\x81\x02hi".to_vec(), |e| {
            matches!(e, Event::Close(CloseReason::Protocol(_)))
        }),
        (client_frame(0x1, b"\xff\xfe"), |e| {
            matches!(e, Event::Close(CloseReason::InvalidUtf8))
        }),
        (text(&"x".repeat(200)), |e| {
            matches!(e, Event::Close(CloseReason::Oversize))
        }),
        (
            client_frame(0x2, b"\x01"),
            |e| matches!(e, Event::Send(f) if json_of(f)["code"] == "bad_request"),
        ),
    ];
    for (i, (input, want)) in cases.into_iter().enumerate() {
        let (mut s, t0) = opened(&c);
        let out = events(&mut s, t0, &input);
        assert!(out.last().is_some_and(want), "case {i}: {out:?}");
    }
    let (code, reason) = CloseReason::Protocol("x".into()).code_and_reason();
    assert_eq!((code, reason.as_str()), (1002, "protocol error: x"));
}

#[test]
fn requests_past_the_rate_are_refused_then_a_flood_is_closed() {
    let c = Config {
        request_rate: 1,
        request_burst: 3,
        ..Config::default()
    };
    let (mut s, t0) = opened(&c);
    let input: Vec<u8> = (0..8)
        .flat_map(|i| text(&format!(r#"{{"op":"ping","id":{i}}}"#)))
        .collect();
    let out = events(&mut s, t0, &input);
    let kinds: Vec<String> = out
        .iter()
        .map(|e| match e {
            Event::Request(_) => "req".to_string(),
            Event::Send(f) => json_of(f)["code"].as_str().unwrap_or("").to_string(),
            Event::Close(r) => r.code_and_reason().0.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "req",
            "req",
            "req",
            "rate_limited",
            "rate_limited",
            "rate_limited",
            "4008"
        ],
        "three allowed, a burst refused (with the request's id), then closed"
    );
}

#[test]
fn binary_messages_count_against_the_rate_limit() {
    let c = Config {
        request_rate: 1,
        request_burst: 1,
        ..Config::default()
    };
    let (mut s, t0) = opened(&c);
    let input: Vec<u8> = (0..3).flat_map(|_| client_frame(0x2, b"x")).collect();
    let out = events(&mut s, t0, &input);
    assert!(matches!(&out[0], Event::Send(f) if json_of(f)["code"] == "bad_request"));
    assert!(matches!(&out[1], Event::Send(f) if json_of(f)["code"] == "rate_limited"));
    assert!(
        matches!(&out[2], Event::Close(CloseReason::RateLimited)),
        "{out:?}"
    );
}

#[test]
fn eof_without_a_close_handshake_drops_after_the_input_before_it() {
    let (mut s, t0) = opened(&Config::default());
    s.receive(&text(r#"{"op":"list_groups"}"#), t0);
    s.receive_eof();
    assert!(!s.wants_input());
    let mut out = Vec::new();
    s.read_messages(t0, 8, &mut out);
    assert!(
        matches!(
            &out[..],
            [Event::Request(Request::ListGroups { .. }), Event::Drop]
        ),
        "{out:?}"
    );
}

#[test]
fn at_most_max_messages_are_parsed_per_call() {
    let (mut s, t0) = opened(&Config::default());
    let input: Vec<u8> = (0..40).flat_map(|_| client_frame(0xA, b"")).collect();
    s.receive(&input, t0);
    let mut out = Vec::new();
    assert_eq!(s.read_messages(t0, 32, &mut out), 32);
    assert_eq!(
        s.read_messages(t0, 32, &mut out),
        8,
        "the rest is parsed next time, with no new input"
    );
    assert_eq!(s.read_messages(t0, 32, &mut out), 0);
    assert!(s.wants_input());
}

#[test]
fn timers_fall_due_in_order_of_phase() {
    let c = Config {
        max_lag: Duration::from_secs(7),
        ..Config::default()
    };
    let st = Settings::from_config(&c);
    let hb = c.heartbeat;
    let t0 = Instant::now();
    let wall = SystemTime::now();
    let s = Session::new(t0, &c);
    assert_eq!(s.due(t0, wall, &st), None);
    assert_eq!(
        s.due(t0 + c.handshake_timeout, wall, &st),
        Some(Due::HandshakeTimeout)
    );
    let (mut s, t0) = opened(&c);
    assert_eq!(s.due(t0 + hb / 2, wall, &st), None);
    assert_eq!(s.due(t0 + hb, wall, &st), Some(Due::Ping));
    s.pinged(t0 + hb);
    let mut out = Vec::new();
    s.receive(&client_frame(0xA, b""), t0 + hb);
    s.read_messages(t0 + hb, 8, &mut out);
    assert_eq!(s.due(t0 + hb * 2, wall, &st), Some(Due::Ping));
    s.pinged(t0 + hb * 2);
    s.receive(&text(r#"{"op":"ping"}"#), t0 + hb * 3);
    s.read_messages(t0 + hb * 3, 8, &mut out);
    assert_eq!(
        s.due(t0 + hb * 2 + c.max_lag, wall, &st),
        Some(Due::Lagging),
        "a request is life, but only a pong answers the ping"
    );
    assert_eq!(s.due(t0 + hb * 6, wall, &st), Some(Due::HeartbeatTimeout));
    s.expires_at = Some(wall);
    assert_eq!(s.due(t0 + hb * 3, wall, &st), Some(Due::Expired));
    s.start_closing(t0 + Duration::from_secs(2));
    assert_eq!(s.state(), State::Closing);
    assert_eq!(
        s.due(t0 + Duration::from_secs(2), wall, &st),
        Some(Due::LingerOver)
    );
}

#[test]
fn closing_drops_once_written_out_and_the_peer_closed() {
    let (mut s, t0) = opened(&Config::default());
    s.start_closing(t0);
    assert!(!s.peer_closed(), "our side is not shut yet");
    assert_eq!(
        s.drained(),
        Drained {
            shut_write: true,
            drop: true
        }
    );
    assert!(!s.drained().shut_write, "shut once");
    let (mut s, t0) = opened(&Config::default());
    s.start_closing(t0);
    assert_eq!(
        s.drained(),
        Drained {
            shut_write: true,
            drop: false
        }
    );
    assert!(s.peer_closed(), "written out and the peer closed: drop");
}
