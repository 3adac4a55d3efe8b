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
use crate::metrics::Disconnect;
use crate::wire::encode;
use crate::wire::http::{self, Route};
use crate::wire::protocol::{self, ErrorCode, Request, RequestError};
use rate::TokenBucket;

/// Input kept beyond this capacity is released once it has been parsed, so
/// an idle connection does not keep a burst's worth of buffer.
const INPUT_KEEP: usize = 4096;

/// tungstenite's read buffer per open connection, in bytes: a quarter of
/// an idle `*` subscriber's memory at 512 (see `Settings::from_config`).
const READ_BUFFER: usize = 128;

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
    /// An event that ends the WebSocket was reported: nothing more is
    /// parsed, whatever the caller does next.
    ended: bool,
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
    /// The metrics' and logs' name for it.
    pub(crate) fn disconnect(&self) -> Disconnect {
        match self {
            CloseReason::Oversize => Disconnect::Oversize,
            CloseReason::InvalidUtf8 | CloseReason::Protocol(_) => Disconnect::Protocol,
            CloseReason::RateLimited => Disconnect::RateLimited,
        }
    }

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
            // connections cheap (tungstenite allocates it eagerly, and
            // grows it for a longer message). 128 bytes hold a masked
            // `ping` or a subscribe to a few symbols.
            ws: WebSocketConfig::default()
                .read_buffer_size(READ_BUFFER)
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
    /// The `client` query parameter of the upgrade (at most 64 bytes).
    client: Option<Box<str>>,
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
            client: None,
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

    /// The client name the upgrade gave (`?client=`), for logs.
    pub(crate) fn client(&self) -> Option<&str> {
        self.client.as_deref()
    }

    /// What the connection may subscribe to; `None`: everything.
    pub(crate) fn entitlements(&self) -> Option<&Entitlements> {
        self.entitlements.as_deref()
    }

    /// A verified `refresh` for the same user: the new expiry and
    /// entitlements replace the old ones.
    pub(crate) fn refresh(&mut self, identity: Identity) {
        debug_assert_eq!(self.user.as_deref(), Some(identity.user.as_str()));
        self.expires_at = identity.expires_at;
        self.entitlements = identity.entitlements.map(Box::new);
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
        epoch: &str,
    ) -> Opened {
        let leftover = match &mut self.phase {
            Phase::Handshake { head, .. } => head.split_off(up.consumed.min(head.len())),
            _ => Vec::new(),
        };
        self.client = up.client.as_deref().map(Box::from);
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
            ended: false,
        }));
        self.last_rx = now;
        self.last_ping = now;
        let hb = settings.heartbeat.as_millis() as u64;
        Opened {
            switching_protocols: http::switching_protocols(&up.key),
            welcome: encode::json(&protocol::welcome(
                conn_id,
                hb,
                settings.queue_capacity,
                epoch,
            )),
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
        if open.ended {
            return 0;
        }
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
                    open.ended = true;
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
mod tests;
