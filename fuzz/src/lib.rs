//! What the fuzz targets share: building client input (request heads,
//! masked frames, requests), decoding the targets' input formats, and the
//! checks every server output must pass (whole unmasked frames, well-formed
//! replies). The seed generator (`examples/seeds.rs`) encodes inputs with
//! the same types, so the committed corpus starts from meaningful traffic.

use std::time::Duration;

use tickcast::Config;
use tickcast::fuzzing::{Event, MAX_HEAD, Session};

/// The RFC 6455 example key.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// `Sec-WebSocket-Accept` for [`KEY`].
pub const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// A browser-like upgrade request head for `target`, with `extra` header
/// lines (each ending in CRLF).
pub fn upgrade_head(target: &str, extra: &str) -> Vec<u8> {
    format!(
        "GET {target} HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    )
    .into_bytes()
}

/// Heads the targets and seeds use: a valid upgrade first, then every kind
/// of refusal and a partial head (built once).
pub fn heads() -> &'static [Vec<u8>] {
    static HEADS: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(build_heads);
    &HEADS
}

fn build_heads() -> Vec<Vec<u8>> {
    vec![
        upgrade_head("/ws", ""),
        upgrade_head(
            "/ws?token=a%20b&client=board+1",
            "Origin: http://localhost:8080\r\n",
        ),
        upgrade_head("/ws", "Authorization: Bearer t0k\r\n"),
        upgrade_head("/ws", "Authorization: Basic abc\r\n"),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"HEAD /healthz HTTP/1.1\r\n\r\n".to_vec(),
        b"POST /healthz HTTP/1.1\r\n\r\n".to_vec(),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        b"HEAD /app.js HTTP/1.1\r\n\r\n".to_vec(),
        b"DELETE /style.css HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /nope/%ff HTTP/1.1\r\n\r\n".to_vec(),
        b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        String::from_utf8(upgrade_head("/ws", ""))
            .unwrap()
            .replace("Version: 13", "Version: 8")
            .into_bytes(),
        String::from_utf8(upgrade_head("/ws", ""))
            .unwrap()
            .replace("HTTP/1.1", "HTTP/1.0")
            .into_bytes(),
        String::from_utf8(upgrade_head("/ws", ""))
            .unwrap()
            .replace(KEY, "short==")
            .into_bytes(),
        String::from_utf8(upgrade_head("/ws", ""))
            .unwrap()
            .replace("websocket", "h2c")
            .into_bytes(),
        upgrade_head(&format!("/ws?client={}", "x".repeat(65)), ""),
        upgrade_head("/ws?client=%zz&token=%e2%82%ac", ""),
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n".to_vec(),
        b"GET /ws HTTP/1.1\r\nHost:".to_vec(),
    ]
}

/// A client frame: first byte `b0` (FIN, RSV, opcode), masked with `mask`
/// if given, the length in its shortest form.
pub fn client_frame(b0: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= usize::from(u16::MAX) => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(k) => {
            out.extend_from_slice(&k);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked, final frame with `opcode`.
pub fn masked(opcode: u8, payload: &[u8]) -> Vec<u8> {
    client_frame(0x80 | opcode, Some([0x37, 0xfa, 0x21, 0x3d]), payload)
}

/// A masked text frame.
pub fn text(s: &str) -> Vec<u8> {
    masked(0x1, s.as_bytes())
}

/// Requests of protocol v1, valid and not, for dictionaries and seeds.
pub const REQUESTS: &[&str] = &[
    r#"{"op":"subscribe","id":1,"symbols":["AAPL","MSFT","AAPL"],"groups":["fx-majors"]}"#,
    r#"{"op":"unsubscribe","id":2,"symbols":["MSFT"]}"#,
    r#"{"op":"unsubscribe","all":true}"#,
    r#"{"op":"list_groups","id":3}"#,
    r#"{"op":"ping"}"#,
    r#"{"op":"ping","id":18446744073709551615}"#,
    r#"{"op":"ping","id":-9223372036854775808}"#,
    r#"{"op":"ping","id":1.5}"#,
    r#"{"op":"ping","id":"x"}"#,
    r#"{"op":"fly","id":6}"#,
    r#"{"op":7}"#,
    r#"{"id":5}"#,
    r#"{"op":"subscribe","id":7}"#,
    r#"{"op":"subscribe","symbols":"AAPL"}"#,
    r#"{"op":"subscribe","symbols":[1]}"#,
    r#"{"op":"subscribe","symbols":[],"groups":[]}"#,
    r#"{"op":"unsubscribe","all":"yes"}"#,
    r#"[1,2]"#,
    "not json",
    "",
    r#"{"op":"subscribe","groups":["*"],"extra":{"nested":[null,true,1e400]}}"#,
    r#"{"op":"\u00e9\ud83d\ude00 very long op name that is cut at thirty-two chars"}"#,
];

/// Reads a fuzz input front to back; past the end every read gives zeros,
/// so any input decodes.
#[derive(Debug)]
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    /// A reader over `data`.
    pub fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data }
    }

    /// Returns true if and only if every byte was read.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The next byte (0 past the end).
    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    /// The next two bytes, big-endian.
    pub fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.u8(), self.u8()])
    }

    /// Up to `n` next bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (b, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        b
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}

/// One server frame found by [`server_frames`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame<'a> {
    /// The opcode.
    pub opcode: u8,
    /// The (unmasked) payload.
    pub payload: &'a [u8],
}

/// Splits bytes the server queues as frames into their frames, asserting
/// the `Frame` invariant: one or more whole, final, unmasked server frames,
/// no RSV bit, a known opcode, control frames of at most 125 bytes, close
/// payloads of a code and a UTF-8 reason.
pub fn server_frames(bytes: &[u8]) -> Vec<ServerFrame<'_>> {
    assert!(!bytes.is_empty(), "an empty frame is not a frame");
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        assert!(rest.len() >= 2, "truncated frame header: {bytes:02x?}");
        let (b0, b1) = (rest[0], rest[1]);
        assert_eq!(b0 & 0xf0, 0x80, "FIN set, no RSV bit: {bytes:02x?}");
        assert_eq!(b1 & 0x80, 0, "server frames are never masked: {bytes:02x?}");
        let (hlen, len) = match b1 & 0x7f {
            126 => {
                assert!(rest.len() >= 4, "truncated 16-bit length");
                (4, usize::from(u16::from_be_bytes([rest[2], rest[3]])))
            }
            127 => {
                assert!(rest.len() >= 10, "truncated 64-bit length");
                let raw: [u8; 8] = rest[2..10].try_into().unwrap();
                (10, usize::try_from(u64::from_be_bytes(raw)).unwrap())
            }
            n => (2, usize::from(n)),
        };
        assert!(rest.len() >= hlen + len, "truncated payload: {bytes:02x?}");
        let opcode = b0 & 0x0f;
        let payload = &rest[hlen..hlen + len];
        match opcode {
            0x1 => assert!(std::str::from_utf8(payload).is_ok(), "text is UTF-8"),
            0x2 => {}
            0x8..=0xA => {
                assert!(len <= 125, "control frame over 125 bytes: {len}");
                if opcode == 0x8 {
                    assert_ne!(len, 1, "a close payload is empty or has a code");
                    if len >= 2 {
                        assert!(std::str::from_utf8(&payload[2..]).is_ok(), "close reason");
                    }
                }
            }
            other => panic!("unknown opcode {other:#x} in {bytes:02x?}"),
        }
        out.push(ServerFrame { opcode, payload });
        rest = &rest[hlen + len..];
    }
    out
}

/// The JSON of a single text frame (replies, `welcome`).
pub fn json_of(bytes: &[u8]) -> serde_json::Value {
    let frames = server_frames(bytes);
    assert_eq!(frames.len(), 1, "one reply, one frame");
    assert_eq!(frames[0].opcode, 0x1, "replies are text frames");
    serde_json::from_slice(frames[0].payload).expect("replies are JSON")
}

/// The error codes of `PROTOCOL.md`.
pub const ERROR_CODES: &[&str] = &[
    "bad_request",
    "unknown_group",
    "unknown_symbol",
    "forbidden",
    "too_many_subscriptions",
    "rate_limited",
];

/// Asserts an `error` reply is well formed; returns its code.
pub fn check_error_reply(v: &serde_json::Value) -> String {
    assert_eq!(v["type"], "error", "{v}");
    let code = v["code"].as_str().expect("a code").to_string();
    assert!(ERROR_CODES.contains(&code.as_str()), "{v}");
    assert!(v["message"].is_string(), "{v}");
    assert!(
        v.get("id").is_none_or(|id| id.is_i64() || id.is_u64()),
        "an id is an integer: {v}"
    );
    code
}

/// What one event is, once its frames have passed the checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// `Send` of pongs only.
    Pongs,
    /// `Send` of one `error` reply with this code.
    Error(String),
    /// A request.
    Request,
    /// `PeerClose`, `Close` or `Drop`.
    End,
}

/// Checks one event's frames: `Send` is pongs or one `error` reply (never
/// a close: nothing may follow a close frame), `PeerClose` ends with the
/// close reply, `Close` builds a valid close frame with its code.
pub fn check_event(e: &Event) -> Checked {
    match e {
        Event::Send(f) => {
            let frames = server_frames(f.as_bytes());
            if frames.iter().all(|f| f.opcode == 0xA) {
                Checked::Pongs
            } else {
                Checked::Error(check_error_reply(&json_of(f.as_bytes())))
            }
        }
        Event::Request(r) => {
            assert!(
                ["subscribe", "unsubscribe", "list_groups", "ping"].contains(&r.op()),
                "{r:?}"
            );
            Checked::Request
        }
        Event::PeerClose(f) => {
            let frames = server_frames(f.as_bytes());
            let (last, before) = frames.split_last().expect("a close reply");
            assert_eq!(last.opcode, 0x8, "the reply ends with a close: {frames:?}");
            assert!(
                before.iter().all(|f| f.opcode == 0xA),
                "only pongs before the close reply: {frames:?}"
            );
            Checked::End
        }
        Event::Close(reason) => {
            let (code, text) = reason.code_and_reason();
            assert!(
                [1002, 1007, 1009, 4008].contains(&code),
                "close code {code}: {text}"
            );
            let f = reason.frame();
            let frames = server_frames(f.as_bytes());
            assert_eq!(frames.len(), 1);
            assert_eq!(frames[0].opcode, 0x8);
            assert_eq!(&frames[0].payload[..2], &code.to_be_bytes());
            Checked::End
        }
        Event::Drop => Checked::End,
    }
}

/// Asserts what every `read_messages` call promises: it parsed at most
/// `max` messages; an event that ends the WebSocket is the last one;
/// at most two events per message parsed (a flushed pong, then the
/// message's), plus one flushed pong; and if it parsed fewer than `max`
/// without ending, all input went to the parser.
pub fn check_read(s: &Session, max: usize, parsed: usize, events: &[Event]) {
    assert!(parsed <= max, "parsed {parsed} > max {max}");
    if let Some(i) = events.iter().position(Event::ends) {
        assert_eq!(i, events.len() - 1, "events after the end: {events:?}");
    }
    assert!(
        events.len() <= parsed.saturating_mul(2).saturating_add(1),
        "{} events for {parsed} messages: {events:?}",
        events.len()
    );
    let ended = events.last().is_some_and(Event::ends);
    if parsed < max && !ended && s.is_open() {
        assert!(
            s.wants_input(),
            "fewer than max parsed, not ended: the input is used up"
        );
    }
}

/// An open session with `config`, as the unit tests' `opened()`: the
/// upgrade head routed and admitted. As much of `early` as the shard would
/// read with the head (up to `read_limit`) arrives with it; returns the
/// session, its first frames and how many bytes of `early` it took.
pub fn opened(
    config: &Config,
    now: std::time::Instant,
    early: &[u8],
) -> (Session, tickcast::fuzzing::Opened, usize) {
    let mut s = Session::new(now, config);
    let head = upgrade_head("/ws?client=fuzz", "");
    s.receive(&head, now);
    let taken = s.read_limit(early.len());
    assert!(head.len() + taken <= MAX_HEAD, "read_limit caps the head");
    s.receive(&early[..taken], now);
    let Some(tickcast::fuzzing::Route::Upgrade(up)) = s.route() else {
        panic!("the head routes to an upgrade")
    };
    assert_eq!(up.consumed(), head.len());
    let o = s.open(&up, 7, None, now);
    (s, o, taken)
}

/// Checks the first frames of an open WebSocket: the `101` (with the
/// accept value of [`KEY`] when that was the key) and the `welcome`.
pub fn check_opened(o: &tickcast::fuzzing::Opened, key: &str, conn_id: u64) {
    let resp = String::from_utf8(o.switching_protocols.clone()).expect("ASCII");
    assert!(
        resp.starts_with("HTTP/1.1 101 Switching Protocols\r\n"),
        "{resp}"
    );
    assert!(resp.contains("Sec-WebSocket-Accept: "), "{resp}");
    if key == KEY {
        assert!(resp.contains(&format!("Sec-WebSocket-Accept: {ACCEPT}\r\n")));
    }
    assert!(resp.ends_with("\r\n\r\n"));
    let w = json_of(o.welcome.as_bytes());
    let id = format!("c-{conn_id}");
    assert_eq!(
        (w["type"].as_str(), w["conn_id"].as_str()),
        (Some("welcome"), Some(id.as_str()))
    );
}

// ---- session_frames' input ----------------------------------------------------

/// The input of `session_frames`: two bytes of settings, then the client's
/// byte stream.
#[derive(Debug, Clone)]
pub struct FramesInput<'a> {
    /// `max_message_size`.
    pub max_message_size: usize,
    /// The stream is handed in chunks of this size.
    pub chunk: usize,
    /// The peer closes its side after the stream.
    pub eof: bool,
    /// `read_messages`' `max` per call.
    pub per_call: usize,
    /// The first chunk arrives with the request head.
    pub with_head: bool,
    /// `request_burst` (the rate is the default's).
    pub burst: u32,
    /// The client's bytes.
    pub stream: &'a [u8],
}

const SIZES: [usize; 4] = [128, 1024, 65536, 65536];
const CHUNKS: [usize; 8] = [1, 2, 3, 7, 16, 100, 512, usize::MAX];
const PER_CALL: [usize; 4] = [1, 3, 32, usize::MAX];
const BURSTS: [u32; 4] = [200, 1, 3, 8];

impl<'a> FramesInput<'a> {
    /// Decodes any bytes.
    pub fn decode(data: &'a [u8]) -> FramesInput<'a> {
        let mut r = Reader::new(data);
        let (b0, b1) = (r.u8(), r.u8());
        FramesInput {
            max_message_size: SIZES[usize::from(b0 & 3)],
            chunk: CHUNKS[usize::from((b0 >> 2) & 7)],
            eof: b0 & 0x20 != 0,
            per_call: PER_CALL[usize::from(b0 >> 6)],
            with_head: b1 & 1 != 0,
            burst: BURSTS[usize::from((b1 >> 1) & 3)],
            stream: r.rest(),
        }
    }

    /// The two settings bytes for the given indexes (see the tables).
    pub fn settings(
        size: u8,
        chunk: u8,
        eof: bool,
        per_call: u8,
        with_head: bool,
        burst: u8,
    ) -> [u8; 2] {
        [
            (size & 3) | (chunk & 7) << 2 | u8::from(eof) << 5 | (per_call & 3) << 6,
            u8::from(with_head) | (burst & 3) << 1,
        ]
    }

    /// The configuration the session runs with.
    pub fn config(&self) -> Config {
        Config {
            max_message_size: self.max_message_size,
            request_burst: self.burst,
            ..Config::default()
        }
    }
}

// ---- session_core's input -----------------------------------------------------

/// The configuration knobs `session_core` varies, from four bytes.
#[derive(Debug, Clone, Copy)]
pub struct CoreConfig(pub [u8; 4]);

impl CoreConfig {
    /// The session's configuration.
    pub fn config(&self) -> Config {
        let [h0, h1, h2, _] = self.0;
        let ms = Duration::from_millis;
        Config {
            max_message_size: [128, 256, 4096, 65536][usize::from(h0 & 3)],
            request_burst: u32::from((h0 >> 2) & 7) + 1,
            request_rate: u32::from(h1 & 15) + 1,
            heartbeat: [ms(10), ms(100), ms(1000), ms(5000)][usize::from((h1 >> 4) & 3)],
            max_lag: [ms(100), ms(1000), ms(5000), ms(60_000)][usize::from(h1 >> 6)],
            handshake_timeout: [ms(1), ms(100), ms(1000), ms(10_000)][usize::from(h2 & 3)],
            close_linger: [ms(0), ms(10), ms(2000), ms(60_000)][usize::from((h2 >> 2) & 3)],
            ..Config::default()
        }
    }
}

/// One step of `session_core`: a client action, a clock step, or one of
/// the shard's calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Raw bytes (garbage); `limited`: cut to `read_limit` as the shard does.
    Raw { limited: bool, bytes: Vec<u8> },
    /// One client frame: first byte, masked or not, payload of `len` bytes
    /// (cycled from `fill`), `cut`: only the first half of it is sent.
    Frame {
        b0: u8,
        masked: bool,
        cut: bool,
        len: u16,
        fill: Vec<u8>,
    },
    /// A masked text frame holding `REQUESTS[i]`.
    Request(u8),
    /// `heads()[i]`, whole or (`split`) its first half only.
    Head { i: u8, split: bool },
    /// The peer closed its side.
    Eof,
    /// The clock moves on by this many milliseconds.
    Advance(u16),
    /// The clock moves on by `n` half heartbeats.
    Heartbeats(u8),
    /// `due()`; `act`: do what the shard does about it.
    Due { act: bool },
    /// `read_messages` with `max` (255: no limit).
    Read(u8),
    /// `pinged()`.
    Pinged,
    /// `start_closing()` with a deadline this many ms away.
    StartClosing(u16),
    /// `drained()`.
    Drained,
    /// `peer_closed()`.
    PeerClosed,
    /// `route()`; an upgrade is opened with identity `id` (0: none,
    /// 1: no expiry, n: expires in n-2 seconds), a response starts closing.
    RouteOpen { id: u8 },
}

const TAGS: u8 = 14;

impl Action {
    /// Decodes the next action; `None` at the end of the input.
    pub fn decode(r: &mut Reader<'_>) -> Option<Action> {
        if r.is_empty() {
            return None;
        }
        let tag = r.u8();
        let flag = tag & 0x80 != 0;
        Some(match (tag & 0x7f) % TAGS {
            0 => {
                let n = usize::from(r.u8());
                Action::Raw {
                    limited: flag,
                    bytes: r.bytes(n).to_vec(),
                }
            }
            1 => {
                let b0 = r.u8();
                let f = r.u8();
                let len = r.u16();
                let n = usize::from(r.u8() & 31);
                Action::Frame {
                    b0,
                    masked: f & 1 != 0,
                    cut: f & 2 != 0,
                    len,
                    fill: r.bytes(n).to_vec(),
                }
            }
            2 => Action::Request(r.u8()),
            3 => Action::Head {
                i: r.u8(),
                split: flag,
            },
            4 => Action::Eof,
            5 => Action::Advance(r.u16()),
            6 => Action::Heartbeats(r.u8()),
            7 => Action::Due { act: !flag },
            8 => Action::Read(r.u8()),
            9 => Action::Pinged,
            10 => Action::StartClosing(r.u16()),
            11 => Action::Drained,
            12 => Action::PeerClosed,
            _ => Action::RouteOpen { id: r.u8() },
        })
    }

    /// Appends the encoding [`Action::decode`] reads back.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let flag = |b: bool| if b { 0x80 } else { 0 };
        match self {
            Action::Raw { limited, bytes } => {
                out.push(flag(*limited));
                out.push(bytes.len().min(255) as u8);
                out.extend_from_slice(&bytes[..bytes.len().min(255)]);
            }
            Action::Frame {
                b0,
                masked,
                cut,
                len,
                fill,
            } => {
                let n = fill.len().min(31);
                out.extend_from_slice(&[1, *b0, u8::from(*masked) | u8::from(*cut) << 1]);
                out.extend_from_slice(&len.to_be_bytes());
                out.push(n as u8);
                out.extend_from_slice(&fill[..n]);
            }
            Action::Request(i) => out.extend_from_slice(&[2, *i]),
            Action::Head { i, split } => out.extend_from_slice(&[3 | flag(*split), *i]),
            Action::Eof => out.push(4),
            Action::Advance(ms) => {
                out.push(5);
                out.extend_from_slice(&ms.to_be_bytes());
            }
            Action::Heartbeats(n) => out.extend_from_slice(&[6, *n]),
            Action::Due { act } => out.push(7 | flag(!*act)),
            Action::Read(max) => out.extend_from_slice(&[8, *max]),
            Action::Pinged => out.push(9),
            Action::StartClosing(ms) => {
                out.push(10);
                out.extend_from_slice(&ms.to_be_bytes());
            }
            Action::Drained => out.push(11),
            Action::PeerClosed => out.push(12),
            Action::RouteOpen { id } => out.extend_from_slice(&[13, *id]),
        }
    }

    /// The client bytes of a `Raw`, `Frame`, `Request` or `Head` action.
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self {
            Action::Raw { bytes, .. } => Some(bytes.clone()),
            Action::Frame {
                b0,
                masked,
                cut,
                len,
                fill,
            } => {
                let payload: Vec<u8> = if fill.is_empty() {
                    vec![b'x'; usize::from(*len)]
                } else {
                    fill.iter()
                        .copied()
                        .cycle()
                        .take(usize::from(*len))
                        .collect()
                };
                let mask = masked.then_some([0xa5, 0x5a, 0x0f, 0xf0]);
                let mut f = client_frame(*b0, mask, &payload);
                if *cut {
                    f.truncate(f.len() / 2);
                }
                Some(f)
            }
            Action::Request(i) => Some(text(REQUESTS[usize::from(*i) % REQUESTS.len()])),
            Action::Head { i, split } => {
                let hs = heads();
                let mut h = hs[usize::from(*i) % hs.len()].clone();
                if *split {
                    h.truncate(h.len() / 2);
                }
                Some(h)
            }
            _ => None,
        }
    }
}

/// Encodes a whole `session_core` input.
pub fn encode_core(config: [u8; 4], actions: &[Action]) -> Vec<u8> {
    let mut out = config.to_vec();
    for a in actions {
        a.encode(&mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_round_trip() {
        let actions = vec![
            Action::Raw {
                limited: true,
                bytes: b"abc".to_vec(),
            },
            Action::Frame {
                b0: 0x81,
                masked: true,
                cut: false,
                len: 300,
                fill: b"{}".to_vec(),
            },
            Action::Request(3),
            Action::Head { i: 0, split: true },
            Action::Eof,
            Action::Advance(65535),
            Action::Heartbeats(6),
            Action::Due { act: false },
            Action::Due { act: true },
            Action::Read(255),
            Action::Pinged,
            Action::StartClosing(10),
            Action::Drained,
            Action::PeerClosed,
            Action::RouteOpen { id: 1 },
        ];
        let bytes = encode_core([1, 2, 3, 4], &actions);
        let mut r = Reader::new(&bytes[4..]);
        let mut back = Vec::new();
        while let Some(a) = Action::decode(&mut r) {
            back.push(a);
        }
        assert_eq!(back, actions);
    }

    #[test]
    fn every_core_config_is_valid() {
        for b in 0..=255u8 {
            CoreConfig([b, b, b, b]).config().validate().unwrap();
        }
    }
}
