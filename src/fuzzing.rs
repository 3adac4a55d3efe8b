//! Entry points for the fuzz targets in `fuzz/`, compiled only with the
//! `fuzzing` feature. **Not a public API**: no stability promise, hidden
//! from the docs.
//!
//! The parsers and the session core are `pub(crate)`; the fuzz crate is
//! another crate, so it reaches them through these thin wrappers. Each
//! wrapper calls the crate's own function and converts the result into a
//! public mirror type; none of them changes behaviour. What is exposed is
//! exactly what the targets drive:
//!
//! - [`route`]: the HTTP upgrade parser and router (`wire::http::route`);
//! - [`parse_request`]: the client request parser
//!   (`wire::protocol::parse_request`);
//! - [`stream_reply`]: the Redis feed's reply parser
//!   (`feed::redis_stream::resp`), whole and in pieces, and
//!   [`stream_entry`]: a stream entry read into a tick
//!   (`feed::redis_stream::entry::parse`);
//! - [`Session`]: one connection's sans-I/O protocol state
//!   (`session::Session`), with the [`Settings`](crate::session::Settings)
//!   the shard derives from the [`Config`] kept beside it.

use std::time::{Instant, SystemTime};

use crate::auth::Identity;
use crate::wire::{encode, http, protocol};
use crate::{Config, Frame, session};

/// Largest request head a session buffers (`wire::http::MAX_HEAD`).
pub const MAX_HEAD: usize = http::MAX_HEAD;
/// Most bytes of the `client` query parameter (`wire::http::MAX_CLIENT_NAME`).
pub const MAX_CLIENT_NAME: usize = http::MAX_CLIENT_NAME;

// ---- feed::redis_stream ---------------------------------------------------------

/// A parsed `XREAD` + `GET` reply pair: the entries (id, fields) and the
/// epoch; `Err(None)` incomplete, `Err(Some(why))` malformed.
pub type StreamReply = Result<(Vec<(Vec<u8>, Vec<Vec<u8>>)>, Option<Vec<u8>>), Option<String>>;

/// The reply parser on `buf` in one go and in pieces of `step` bytes
/// (each parse going on from where the last piece ended).
pub fn stream_reply(buf: &[u8], step: usize) -> [StreamReply; 2] {
    crate::feed::redis_stream::resp::parse_owned(buf, step)
}

/// A stream entry's fields read into a tick: its symbol, seq and ts, or
/// why it is refused.
pub fn stream_entry(fields: &[&[u8]]) -> Result<(String, u64, u64), String> {
    crate::feed::redis_stream::entry::parse(fields).map(|e| (e.tick.symbol.into(), e.seq, e.ts))
}

// ---- wire::http ---------------------------------------------------------------

/// Routes the request head at the start of `buf`: `wire::http::route`.
/// `None`: incomplete, read more.
pub fn route(buf: &[u8]) -> Option<Route> {
    http::route(buf).map(Route::from)
}

/// What to do with a request head (`wire::http::Route`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Upgrade to a WebSocket (after the policy checks).
    Upgrade(Upgrade),
    /// Send this response and close.
    Respond(Response),
    /// Send the metrics (`/metrics`, `/stats`) and close; `head_only`: the
    /// headers only.
    Report {
        /// A HEAD request.
        head_only: bool,
    },
}

impl From<http::Route> for Route {
    fn from(r: http::Route) -> Route {
        match r {
            http::Route::Upgrade(up) => Route::Upgrade(Upgrade(up)),
            http::Route::Respond(resp) => Route::Respond(Response(resp)),
            http::Route::Report { head_only, .. } => Route::Report { head_only },
        }
    }
}

/// An upgrade request that passed every syntactic check
/// (`wire::http::Upgrade`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upgrade(http::Upgrade);

impl Upgrade {
    /// The `Sec-WebSocket-Key`.
    pub fn key(&self) -> &str {
        &self.0.key
    }

    /// The access token (query `token` or `Authorization: Bearer`).
    pub fn token(&self) -> Option<&str> {
        self.0.token.as_deref()
    }

    /// The `client` query parameter, decoded.
    pub fn client(&self) -> Option<&str> {
        self.0.client.as_deref()
    }

    /// The `Origin` header.
    pub fn origin(&self) -> Option<&str> {
        self.0.origin.as_deref()
    }

    /// Bytes of the buffer taken by the head; the rest are early frames.
    pub fn consumed(&self) -> usize {
        self.0.consumed
    }
}

/// A complete HTTP response to send before closing
/// (`wire::http::Response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response(http::Response);

impl Response {
    /// The status code.
    pub fn status(&self) -> u16 {
        self.0.status
    }

    /// The `Content-Type`.
    pub fn content_type(&self) -> &'static str {
        self.0.content_type
    }

    /// The body (not sent for a `HEAD` request).
    pub fn body(&self) -> &[u8] {
        &self.0.body
    }

    /// Returns true if and only if only the headers are sent (`HEAD`).
    pub fn head_only(&self) -> bool {
        self.0.head_only
    }

    /// The bytes sent on the wire (`Response::to_bytes`).
    pub fn to_bytes(&self) -> Vec<u8> {
        self.0.to_bytes()
    }
}

// ---- wire::protocol -----------------------------------------------------------

/// Parses one text message into a request:
/// `wire::protocol::parse_request`.
///
/// # Errors
/// The refusal the client gets as an `error` reply.
pub fn parse_request(text: &str) -> Result<Request, RequestError> {
    protocol::parse_request(text)
        .map(Request)
        .map_err(RequestError)
}

/// One parsed client request (`wire::protocol::Request`).
#[derive(Debug, Clone, PartialEq)]
pub struct Request(protocol::Request);

impl Request {
    /// The request's `id`, as the client sent it.
    pub fn id(&self) -> Option<&serde_json::Number> {
        self.0.id().as_ref()
    }

    /// The `op`.
    pub fn op(&self) -> &'static str {
        match self.0 {
            protocol::Request::Subscribe { .. } => "subscribe",
            protocol::Request::Unsubscribe { .. } => "unsubscribe",
            protocol::Request::ListGroups { .. } => "list_groups",
            protocol::Request::Ping { .. } => "ping",
            protocol::Request::Refresh { .. } => "refresh",
            protocol::Request::History { .. } => "history",
        }
    }

    /// The `symbols` of a (un)subscription; empty otherwise.
    pub fn symbols(&self) -> &[String] {
        match &self.0 {
            protocol::Request::Subscribe { symbols, .. }
            | protocol::Request::Unsubscribe { symbols, .. } => symbols,
            _ => &[],
        }
    }

    /// The `groups` of a (un)subscription; empty otherwise.
    pub fn groups(&self) -> &[String] {
        match &self.0 {
            protocol::Request::Subscribe { groups, .. }
            | protocol::Request::Unsubscribe { groups, .. } => groups,
            _ => &[],
        }
    }

    /// `all` of an unsubscription; false otherwise.
    pub fn all(&self) -> bool {
        matches!(self.0, protocol::Request::Unsubscribe { all: true, .. })
    }
}

/// A refused request (`wire::protocol::RequestError`).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestError(protocol::RequestError);

impl RequestError {
    /// The id echoed in the reply, if the request had a valid one.
    pub fn id(&self) -> Option<&serde_json::Number> {
        self.0.id.as_ref()
    }

    /// The error code of the reply (`bad_request`, ...).
    pub fn code(&self) -> &'static str {
        self.0.code.as_str()
    }

    /// The human-readable message of the reply.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The `error` reply (`RequestError::to_json`).
    pub fn to_json(&self) -> serde_json::Value {
        self.0.to_json()
    }
}

// ---- session ------------------------------------------------------------------

/// Where a session is in its life (`session::State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// Reading the HTTP request head.
    Handshake,
    /// An upgraded WebSocket.
    Open,
    /// A close frame or final response is queued.
    Closing,
}

impl From<session::State> for State {
    fn from(s: session::State) -> State {
        match s {
            session::State::Handshake => State::Handshake,
            session::State::Open => State::Open,
            session::State::Closing => State::Closing,
        }
    }
}

/// What the shard must do after a session read client input
/// (`session::Event`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Queue this frame (a pong, or an error reply).
    Send(Frame),
    /// Act on this request.
    Request(Request),
    /// The client closed: queue this close reply, then close.
    PeerClose(Frame),
    /// Close the WebSocket for this reason.
    Close(CloseReason),
    /// Drop the socket now.
    Drop,
}

impl Event {
    /// Returns true if and only if the event ends the WebSocket
    /// (`PeerClose`, `Close`, `Drop`).
    pub fn ends(&self) -> bool {
        matches!(self, Event::PeerClose(_) | Event::Close(_) | Event::Drop)
    }
}

impl From<session::Event> for Event {
    fn from(e: session::Event) -> Event {
        match e {
            session::Event::Send(f) => Event::Send(f),
            session::Event::Request(r) => Event::Request(Request(r)),
            session::Event::PeerClose(f) => Event::PeerClose(f),
            session::Event::Close(r) => Event::Close(CloseReason(r)),
            session::Event::Drop => Event::Drop,
        }
    }
}

/// Why the server closes a WebSocket (`session::CloseReason`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason(session::CloseReason);

impl CloseReason {
    /// The close code and reason sent to the client.
    pub fn code_and_reason(&self) -> (u16, String) {
        self.0.code_and_reason()
    }

    /// The close frame the shard queues for it (`encode::close`).
    pub fn frame(&self) -> Frame {
        let (code, reason) = self.0.code_and_reason();
        encode::close(code, &reason)
    }
}

/// A timer that fell due (`session::Due`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The upgrade did not finish in time.
    HandshakeTimeout,
    /// Silent for three heartbeats.
    HeartbeatTimeout,
    /// A ping unanswered for `max_lag`.
    Lagging,
    /// The identity expired.
    Expired,
    /// Time for the next server ping.
    Ping,
    /// A closing socket's linger is over.
    LingerOver,
}

impl From<session::Due> for Due {
    fn from(d: session::Due) -> Due {
        match d {
            session::Due::HandshakeTimeout => Due::HandshakeTimeout,
            session::Due::HeartbeatTimeout => Due::HeartbeatTimeout,
            session::Due::Lagging => Due::Lagging,
            session::Due::Expired => Due::Expired,
            session::Due::Ping => Due::Ping,
            session::Due::LingerOver => Due::LingerOver,
        }
    }
}

/// What to do once a closing session's outbox drained
/// (`session::Drained`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Shut the write side now (first time only).
    pub shut_write: bool,
    /// The peer has closed too: drop the socket.
    pub drop: bool,
}

/// The first frames of an open WebSocket (`session::Opened`).
#[derive(Debug, Clone)]
pub struct Opened {
    /// The `101 Switching Protocols` response.
    pub switching_protocols: Vec<u8>,
    /// The `welcome` frame.
    pub welcome: Frame,
}

/// One connection's protocol state (`session::Session`), with the settings
/// the shard derives from its [`Config`]. Each method calls the session's
/// method of the same name.
#[derive(Debug)]
pub struct Session {
    inner: session::Session,
    settings: session::Settings,
}

impl Session {
    /// A session in `Handshake` at `now` (`Session::new`), with
    /// `Settings::from_config(config)`.
    pub fn new(now: Instant, config: &Config) -> Session {
        Session {
            inner: session::Session::new(now, config),
            settings: session::Settings::from_config(config),
        }
    }

    /// The session's phase.
    pub fn state(&self) -> State {
        self.inner.state().into()
    }

    /// Returns true if and only if the session is an open WebSocket.
    pub fn is_open(&self) -> bool {
        self.inner.is_open()
    }

    /// The user of the identity the connection was opened with.
    pub fn user(&self) -> Option<&str> {
        self.inner.user().map(|u| &**u)
    }

    /// How many bytes the session takes in its next read, at most `max`.
    pub fn read_limit(&self, max: usize) -> usize {
        self.inner.read_limit(max)
    }

    /// Client bytes arrived at `now`.
    pub fn receive(&mut self, bytes: &[u8], now: Instant) {
        self.inner.receive(bytes, now);
    }

    /// Handshake: the decision on the head so far, or `None` to read more.
    pub fn route(&self) -> Option<Route> {
        self.inner.route().map(Route::from)
    }

    /// Completes the upgrade of a head that routed to `up`.
    pub fn open(
        &mut self,
        up: &Upgrade,
        conn_id: u64,
        identity: Option<Identity>,
        now: Instant,
    ) -> Opened {
        let o = self
            .inner
            .open(&up.0, conn_id, identity, now, &self.settings, "e-fuzz");
        Opened {
            switching_protocols: o.switching_protocols,
            welcome: o.welcome,
        }
    }

    /// The peer closed its side.
    pub fn receive_eof(&mut self) {
        self.inner.receive_eof();
    }

    /// Returns true if and only if all input went to the parser and the
    /// peer has not closed.
    pub fn wants_input(&self) -> bool {
        self.inner.wants_input()
    }

    /// Parses at most `max` messages, appending their events to `out`;
    /// returns the number of messages parsed.
    pub fn read_messages(&mut self, now: Instant, max: usize, out: &mut Vec<Event>) -> usize {
        let mut events = Vec::new();
        let n = self.inner.read_messages(now, max, &mut events);
        out.extend(events.into_iter().map(Event::from));
        n
    }

    /// The timer due at `now` (`wall` for token expiry), if any.
    pub fn due(&self, now: Instant, wall: SystemTime) -> Option<Due> {
        self.inner.due(now, wall, &self.settings).map(Due::from)
    }

    /// A ping was queued at `now`.
    pub fn pinged(&mut self, now: Instant) {
        self.inner.pinged(now);
    }

    /// Moves to `Closing`, to be dropped at `deadline` at the latest.
    pub fn start_closing(&mut self, deadline: Instant) {
        self.inner.start_closing(deadline);
    }

    /// In `Closing`, the peer closed its side; true: drop the socket.
    pub fn peer_closed(&mut self) -> bool {
        self.inner.peer_closed()
    }

    /// In `Closing`, the outbox has drained.
    pub fn drained(&mut self) -> Drained {
        let d = self.inner.drained();
        Drained {
            shut_write: d.shut_write,
            drop: d.drop,
        }
    }
}
