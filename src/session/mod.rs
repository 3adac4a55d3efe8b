//! [`Session`]: one client connection's protocol state, with no I/O. Bytes
//! and time go in; decisions come out, as values the shard acts on.
//!
//! ```text
//!  Handshake ──route(head)──► (shard: upgrade::authorize, Admission::admit)
//!      │                         │ refused: HTTP response, then Closing
//!      │                         ▼
//!      │                      open() ─► Open ──read_messages()──► Event*
//!      │                                  │ Close/PeerClose event, timer, shutdown
//!      ▼                                  ▼
//!   timeout / EOF ─► dropped           Closing ──(outbox drained + peer EOF, or deadline)──► dropped
//! ```
//!
//! The model is quinn-proto's and sozu's: the session decides, the shard
//! performs. Reading WebSocket frames goes through tungstenite over
//! [`Feed`], an in-memory stream of the bytes the shard handed in, so the
//! whole state machine runs in unit tests and under a fuzzer without a
//! socket. Request handling needs the shard's subscription index and lives
//! in [`requests`]; the upgrade's policy checks are in [`upgrade`].
//!
//! Invariants: tungstenite never writes to a socket: its automatic pong and
//! close replies land in `sink` and leave as [`Event`]s, to be queued on the
//! outbox like every other frame (so nothing is written inside a half-sent
//! frame). After an event that ends the WebSocket (`PeerClose`, `Close`,
//! `Drop`), no further input is parsed.

pub(crate) mod rate;
pub(crate) mod requests;
pub(crate) mod upgrade;

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tungstenite::protocol::{Role, WebSocketConfig, WebSocketContext};
use tungstenite::{Message, error::ProtocolError};

use crate::Frame;
use crate::auth::{Entitlements, Identity};
use crate::wire::encode;
use crate::wire::http::{self, Route};
use crate::wire::protocol::{self, ErrorCode, Request, RequestError};
use rate::TokenBucket;

/// Input kept beyond this capacity is released once it has been parsed, so
/// an idle connection does not keep a burst's worth of buffer.
const INPUT_KEEP: usize = 4096;

/// Where a session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Reading the HTTP request head.
    Handshake,
    /// An upgraded WebSocket.
    Open,
    /// A close frame or final HTTP response is queued; the socket is
    /// dropped when it is out and the peer closed its side, or at the
    /// deadline.
    Closing,
}

#[derive(Debug)]
enum Phase {
    Handshake {
        head: Vec<u8>,
        deadline: Instant,
    },
    Open(Box<OpenSession>),
    Closing {
        deadline: Instant,
        write_shut: bool,
        peer_closed: bool,
    },
}

/// The part of a session that exists once the WebSocket is open.
#[derive(Debug)]
struct OpenSession {
    ws: WebSocketContext,
    /// Client bytes not yet parsed: `input[pos..]`.
    input: Vec<u8>,
    pos: usize,
    /// The peer closed its side after `input`.
    eof: bool,
    /// tungstenite's automatic replies (pong, close echo).
    sink: Vec<u8>,
}

/// What the shard must do after a session read client input.
#[derive(Debug)]
pub(crate) enum Event {
    /// Queue this frame (a pong, or an error reply the session produced).
    Send(Frame),
    /// Act on this request (already counted against the rate limit).
    Request(Request),
    /// The client closed: queue this close reply, then close.
    PeerClose(Frame),
    /// Close the WebSocket with this code.
    Close(CloseReason),
    /// Drop the socket now: reset, EOF without a close handshake, or a
    /// stream that cannot be read.
    Drop,
}

/// Why the server closes a WebSocket it decided to close while reading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// 1009: a client frame or message over `max_message_size`.
    Oversize,
    /// 1007: a text message that is not UTF-8.
    InvalidUtf8,
    /// 1002: any other RFC 6455 violation, with tungstenite's words.
    Protocol(String),
    /// 4008: another `request_burst` of requests past the rate limit.
    RateLimited,
}

impl CloseReason {
    /// The close code and reason sent to the client.
    pub(crate) fn code_and_reason(&self) -> (u16, String) {
        match self {
            CloseReason::Oversize => (1009, "message too big".into()),
            CloseReason::InvalidUtf8 => (1007, "invalid UTF-8".into()),
            CloseReason::Protocol(e) => (1002, format!("protocol error: {e}")),
            CloseReason::RateLimited => (4008, "rate limited".into()),
        }
    }
}

/// A timer that fell due (see [`Session::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Due {
    /// The upgrade did not finish within `handshake_timeout`: drop it.
    HandshakeTimeout,
    /// Silent for three heartbeats: close with 4002.
    HeartbeatTimeout,
    /// A ping unanswered for `max_lag`: the client is that far behind the
    /// stream (or stalled); evict with 4001.
    Lagging,
    /// The identity expired while connected: close with 1008.
    Expired,
    /// Time for the next server ping.
    Ping,
    /// A closing socket's linger is over: drop it.
    LingerOver,
}

/// What the shard must do once a closing session's outbox has drained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Drained {
    /// Shut the write side now (first time only).
    pub(crate) shut_write: bool,
    /// The peer has closed too: drop the socket.
    pub(crate) drop: bool,
}

/// The first frames of an open WebSocket: the `101` and the `welcome`.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) switching_protocols: Vec<u8>,
    pub(crate) welcome: Frame,
}

/// The settings a session needs, taken once from `Config`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) heartbeat: Duration,
    pub(crate) max_lag: Duration,
    pub(crate) queue_capacity: usize,
    pub(crate) ws: WebSocketConfig,
}

impl Settings {
    pub(crate) fn from_config(c: &crate::Config) -> Settings {
        Settings {
            heartbeat: c.heartbeat,
            max_lag: c.max_lag,
            queue_capacity: c.queue_capacity,
            // Clients send little: a small read buffer keeps 10,000 idle
            // connections cheap (tungstenite allocates it eagerly).
            ws: WebSocketConfig::default()
                .read_buffer_size(512)
                .write_buffer_size(0)
                .max_message_size(Some(c.max_message_size))
                .max_frame_size(Some(c.max_message_size)),
        }
    }
}

/// One client connection's protocol state.
#[derive(Debug)]
pub(crate) struct Session {
    phase: Phase,
    /// Last time any byte arrived.
    last_rx: Instant,
    /// Last time a ping was queued.
    last_ping: Instant,
    /// When the oldest ping not yet answered by a pong was queued.
    unanswered_ping: Option<Instant>,
    bucket: TokenBucket,
    user: Option<Arc<str>>,
    expires_at: Option<SystemTime>,
    entitlements: Option<Box<Entitlements>>,
}

impl Session {
    /// A session whose upgrade must finish by `now + handshake_timeout`.
    pub(crate) fn new(now: Instant, config: &crate::Config) -> Session {
        Session {
            phase: Phase::Handshake {
                head: Vec::new(),
                deadline: now + config.handshake_timeout,
            },
            last_rx: now,
            last_ping: now,
            unanswered_ping: None,
            bucket: TokenBucket::new(config.request_rate, config.request_burst, now),
            user: None,
            expires_at: None,
            entitlements: None,
        }
    }

    /// The session's phase.
    pub(crate) fn state(&self) -> State {
        match self.phase {
            Phase::Handshake { .. } => State::Handshake,
            Phase::Open(_) => State::Open,
            Phase::Closing { .. } => State::Closing,
        }
    }

    /// Returns true if and only if the session is an open WebSocket.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open(_))
    }

    /// The user of the identity the connection was opened with.
    pub(crate) fn user(&self) -> Option<&Arc<str>> {
        self.user.as_ref()
    }

    /// What the connection may subscribe to; `None`: everything.
    pub(crate) fn entitlements(&self) -> Option<&Entitlements> {
        self.entitlements.as_deref()
    }

    // ---- handshake -----------------------------------------------------------

    /// How many bytes the session takes in its next read, at most `max`:
    /// a request head is never buffered past [`http::MAX_HEAD`].
    pub(crate) fn read_limit(&self, max: usize) -> usize {
        match &self.phase {
            Phase::Handshake { head, .. } => max.min(http::MAX_HEAD - head.len()),
            _ => max,
        }
    }

    /// Client bytes arrived at `now`. In `Closing` they are dropped.
    pub(crate) fn receive(&mut self, bytes: &[u8], now: Instant) {
        if bytes.is_empty() {
            return;
        }
        self.last_rx = now;
        match &mut self.phase {
            Phase::Handshake { head, .. } => {
                let room = http::MAX_HEAD - head.len();
                head.extend_from_slice(&bytes[..bytes.len().min(room)]);
            }
            Phase::Open(open) => {
                if open.pos == open.input.len() {
                    open.input.clear();
                    open.pos = 0;
                }
                open.input.extend_from_slice(bytes);
            }
            Phase::Closing { .. } => {}
        }
    }

    /// Handshake: the decision on the request head so far, or `None` to
    /// read more (a head that cannot fit gets a 400).
    pub(crate) fn route(&self) -> Option<Route> {
        match &self.phase {
            Phase::Handshake { head, .. } => http::route(head),
            _ => None,
        }
    }

    /// Completes the upgrade of a head that routed to `up` and was
    /// admitted as connection `conn_id` with `identity`. Bytes after the
    /// head are the first WebSocket input.
    pub(crate) fn open(
        &mut self,
        up: &http::Upgrade,
        conn_id: u64,
        identity: Option<Identity>,
        now: Instant,
        settings: &Settings,
    ) -> Opened {
        let leftover = match &mut self.phase {
            Phase::Handshake { head, .. } => head.split_off(up.consumed.min(head.len())),
            _ => Vec::new(),
        };
        if let Some(id) = identity {
            self.user = Some(Arc::from(id.user));
            self.expires_at = id.expires_at;
            self.entitlements = id.entitlements.map(Box::new);
        }
        self.phase = Phase::Open(Box::new(OpenSession {
            ws: WebSocketContext::new(Role::Server, Some(settings.ws)),
            input: leftover,
            pos: 0,
            eof: false,
            sink: Vec::new(),
        }));
        self.last_rx = now;
        self.last_ping = now;
        let hb = settings.heartbeat.as_millis() as u64;
        Opened {
            switching_protocols: http::switching_protocols(&up.key),
            welcome: encode::json(&protocol::welcome(conn_id, hb, settings.queue_capacity)),
        }
    }

    // ---- open ----------------------------------------------------------------

    /// The peer closed its side (read returned 0). In `Open`, what it sent
    /// before is still parsed, then `read_messages` reports [`Event::Drop`]
    /// (no close handshake).
    pub(crate) fn receive_eof(&mut self) {
        if let Phase::Open(open) = &mut self.phase {
            open.eof = true;
        }
    }

    /// Returns true if and only if every byte handed in has gone to the
    /// parser and the peer has not closed: read the socket for more. The
    /// parser may still hold whole messages, so call
    /// [`Session::read_messages`] first.
    pub(crate) fn wants_input(&self) -> bool {
        match &self.phase {
            Phase::Open(open) => open.pos == open.input.len() && !open.eof,
            _ => true,
        }
    }

    /// Parses at most `max` messages of the input into `out`. Returns the
    /// number of messages parsed; fewer than `max` means the input is used
    /// up (or the WebSocket ended: see the module's invariants).
    pub(crate) fn read_messages(
        &mut self,
        now: Instant,
        max: usize,
        out: &mut Vec<Event>,
    ) -> usize {
        let Phase::Open(open) = &mut self.phase else {
            return 0;
        };
        let mut parsed = 0;
        while parsed < max {
            let mut feed = Feed {
                input: &open.input[open.pos..],
                eof: open.eof,
                consumed: 0,
                sink: &mut open.sink,
            };
            let res = open.ws.read(&mut feed);
            if let Ok(Message::Close(_)) = &res {
                // Moves tungstenite's close reply into the sink; the
                // "connection closed" result is expected.
                let _ = open.ws.flush(&mut feed);
            }
            open.pos += feed.consumed;
            let closing = matches!(res, Ok(Message::Close(_)));
            if !open.sink.is_empty() && !closing {
                out.push(Event::Send(Frame::from(&open.sink[..])));
                open.sink.clear();
            }
            let event = match res {
                Ok(Message::Text(text)) => Some(on_text(&mut self.bucket, text.as_str(), now)),
                Ok(Message::Binary(_)) => Some(on_binary(&mut self.bucket, now)),
                Ok(Message::Pong(_)) => {
                    // The client has read everything up to our ping.
                    self.unanswered_ping = None;
                    None
                }
                Ok(Message::Ping(_) | Message::Frame(_)) => None,
                Ok(Message::Close(_)) => Some(Event::PeerClose(Frame::from(std::mem::take(
                    &mut open.sink,
                )))),
                Err(tungstenite::Error::Io(e)) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(tungstenite::Error::Capacity(_)) => Some(Event::Close(CloseReason::Oversize)),
                Err(tungstenite::Error::Utf8(_)) => Some(Event::Close(CloseReason::InvalidUtf8)),
                Err(tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake)) => {
                    Some(Event::Drop)
                }
                Err(tungstenite::Error::Protocol(e)) => {
                    Some(Event::Close(CloseReason::Protocol(e.to_string())))
                }
                Err(_) => Some(Event::Drop),
            };
            parsed += 1;
            if let Some(event) = event {
                let ends = matches!(event, Event::PeerClose(_) | Event::Close(_) | Event::Drop);
                out.push(event);
                if ends {
                    break;
                }
            }
        }
        if open.pos == open.input.len() && open.input.capacity() > INPUT_KEEP {
            open.input = Vec::new();
            open.pos = 0;
        }
        parsed
    }

    // ---- timers and closing ----------------------------------------------

    /// The timer that is due at `now` (`wall` for token expiry), if any.
    pub(crate) fn due(&self, now: Instant, wall: SystemTime, settings: &Settings) -> Option<Due> {
        let heartbeat = settings.heartbeat;
        match &self.phase {
            Phase::Handshake { deadline, .. } => {
                (now >= *deadline).then_some(Due::HandshakeTimeout)
            }
            Phase::Open(_) => {
                if now.saturating_duration_since(self.last_rx) >= heartbeat * 3 {
                    Some(Due::HeartbeatTimeout)
                } else if self
                    .unanswered_ping
                    .is_some_and(|t| now.saturating_duration_since(t) >= settings.max_lag)
                {
                    Some(Due::Lagging)
                } else if self.expires_at.is_some_and(|t| t <= wall) {
                    Some(Due::Expired)
                } else if now.saturating_duration_since(self.last_ping) >= heartbeat {
                    Some(Due::Ping)
                } else {
                    None
                }
            }
            Phase::Closing { deadline, .. } => (now >= *deadline).then_some(Due::LingerOver),
        }
    }

    /// A ping was queued at `now`. Until a pong comes back, the oldest
    /// unanswered ping measures how far behind the client is.
    pub(crate) fn pinged(&mut self, now: Instant) {
        self.last_ping = now;
        self.unanswered_ping.get_or_insert(now);
    }

    /// Moves to `Closing` (the caller queued the close frame or the final
    /// response); the socket is dropped at `deadline` at the latest. Does
    /// nothing if already closing.
    pub(crate) fn start_closing(&mut self, deadline: Instant) {
        if !matches!(self.phase, Phase::Closing { .. }) {
            self.phase = Phase::Closing {
                deadline,
                write_shut: false,
                peer_closed: false,
            };
        }
    }

    /// In `Closing`, the peer closed its side. Returns true if and only if
    /// the socket can be dropped (our write side is already shut).
    pub(crate) fn peer_closed(&mut self) -> bool {
        match &mut self.phase {
            Phase::Closing {
                peer_closed,
                write_shut,
                ..
            } => {
                *peer_closed = true;
                *write_shut
            }
            _ => false,
        }
    }

    /// In `Closing`, the outbox has drained: the last byte is out.
    pub(crate) fn drained(&mut self) -> Drained {
        match &mut self.phase {
            Phase::Closing {
                write_shut,
                peer_closed,
                ..
            } => {
                let shut_write = !*write_shut;
                *write_shut = true;
                Drained {
                    shut_write,
                    drop: *peer_closed,
                }
            }
            _ => Drained {
                shut_write: false,
                drop: false,
            },
        }
    }
}

/// A text message: a request if the rate limit allows it, else an error
/// reply, and once the client keeps flooding, a 4008 close.
fn on_text(bucket: &mut TokenBucket, text: &str, now: Instant) -> Event {
    match bucket.take(now) {
        rate::Verdict::Allowed => match protocol::parse_request(text) {
            Ok(req) => Event::Request(req),
            Err(e) => Event::Send(encode::json(&e.to_json())),
        },
        rate::Verdict::Refused => {
            let id = protocol::parse_request(text)
                .ok()
                .and_then(|r| r.id().clone());
            let e = RequestError::new(&id, ErrorCode::RateLimited, "too many requests: slow down");
            Event::Send(encode::json(&e.to_json()))
        }
        rate::Verdict::Flood => Event::Close(CloseReason::RateLimited),
    }
}

/// A binary message: refused with `bad_request`, and counted against the
/// rate limit like a request, so a flood of them is closed like any flood.
fn on_binary(bucket: &mut TokenBucket, now: Instant) -> Event {
    let (code, message) = match bucket.take(now) {
        rate::Verdict::Allowed => (
            ErrorCode::BadRequest,
            "binary messages are not accepted: send JSON in a text message",
        ),
        rate::Verdict::Refused => (ErrorCode::RateLimited, "too many requests: slow down"),
        rate::Verdict::Flood => return Event::Close(CloseReason::RateLimited),
    };
    Event::Send(encode::json(
        &RequestError::new(&None, code, message).to_json(),
    ))
}

/// The stream tungstenite reads from: the bytes the shard handed in, then
/// `WouldBlock` (or EOF, once the peer closed). Its writes (automatic pong
/// and close replies) go to `sink`, never to a socket.
#[derive(Debug)]
struct Feed<'a> {
    input: &'a [u8],
    eof: bool,
    consumed: usize,
    sink: &'a mut Vec<u8>,
}

impl Read for Feed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let rest = &self.input[self.consumed..];
        if rest.is_empty() {
            return if self.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        self.consumed += n;
        Ok(n)
    }
}

impl Write for Feed<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sink.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
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
        s.open(&up, 7, None, t0, &Settings::from_config(config));
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
        let opened = s.open(&up, 17, None, t0, &Settings::from_config(&c));
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
}
