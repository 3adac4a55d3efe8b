//! The session core as a state machine: a random sequence of client
//! actions (request heads, valid masked frames, garbage, EOF), clock steps
//! and the shard's calls (`route`/`open`, `read_messages`, `due`,
//! `pinged`, `start_closing`, `drained`, `peer_closed`), decoded by
//! `Action::decode` after four bytes of configuration (`CoreConfig`).
//! Where the shard reacts to a result (an ending event, a timer, a refused
//! head, a dropped socket), the target reacts the same way.
//!
//! A model beside the session tracks what its public contract implies, and
//! after every step the target checks, beyond "never panics":
//! - `state()` is the model's: only `open` moves Handshake→Open, only
//!   `start_closing` moves to Closing, and it never moves back;
//! - `read_limit(max)` is at most `max`, and in the handshake never lets
//!   the head grow past `MAX_HEAD` (it is `MAX_HEAD` minus what came);
//! - `route()` decides on exactly the bytes received so far (capped at
//!   `MAX_HEAD`), as `wire::http::route` does, and only in the handshake;
//! - `read_messages` keeps its promises (`check_read`) and hands out only
//!   well-formed frames (`check_event`); after an event that ends the
//!   WebSocket (and the shard's `start_closing`) no further event comes;
//!   outside Open it parses nothing;
//! - the rate limit holds: requests allowed never exceed
//!   `burst + rate × elapsed`, and a 4008 comes after exactly `burst`
//!   refusals in a row;
//! - `due()` agrees with the clock: the handshake and linger deadlines
//!   exactly, the heartbeat timeout exactly, and a ping, a lag, an expiry
//!   only when their time has come, in order of priority;
//! - `drained`/`peer_closed` shut the write side once and drop only when
//!   both sides are done.
#![no_main]

use std::time::{Duration, Instant, SystemTime};

use libfuzzer_sys::fuzz_target;
use tickcast::fuzzing::{self, Drained, Due, Event, MAX_HEAD, Route, Session, State};
use tickcast::{Config, Identity};
use tickcast_fuzz::{Action, Checked, CoreConfig, Reader, check_event, check_opened, check_read};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    let config = CoreConfig([r.u8(), r.u8(), r.u8(), r.u8()]).config();
    let mut m = Model::new(config);
    let mut s = Session::new(m.now, &m.config);
    m.check(&s);
    while let Some(action) = Action::decode(&mut r) {
        let before = s.state();
        let alive = m.step(&mut s, &action);
        assert!(s.state() >= before, "{before:?} -> {:?}", s.state());
        if !alive {
            // The shard dropped the socket: the session is gone.
            break;
        }
        m.check(&s);
    }
});

/// What the session's contract implies about its state.
struct Model {
    config: Config,
    t0: Instant,
    wall0: SystemTime,
    now: Instant,
    state: State,
    /// The request head received so far (capped as the session caps it).
    head: Vec<u8>,
    /// The first `start_closing` deadline.
    linger_until: Option<Instant>,
    write_shut: bool,
    peer_closed: bool,
    last_rx: Instant,
    last_ping: Instant,
    first_ping: Option<Instant>,
    expires_at: Option<SystemTime>,
    /// Requests the rate limit allowed (requests and non-rate-limit
    /// refusals), and refusals since the last allowed one.
    allowed: u64,
    refused_in_a_row: u32,
    conn_id: u64,
}

impl Model {
    fn new(config: Config) -> Model {
        let now = Instant::now();
        Model {
            config,
            t0: now,
            wall0: SystemTime::now(),
            now,
            state: State::Handshake,
            head: Vec::new(),
            linger_until: None,
            write_shut: false,
            peer_closed: false,
            last_rx: now,
            last_ping: now,
            first_ping: None,
            expires_at: None,
            allowed: 0,
            refused_in_a_row: 0,
            conn_id: 0,
        }
    }

    fn wall(&self) -> SystemTime {
        self.wall0 + (self.now - self.t0)
    }

    /// Performs one action; false once the shard would have dropped the
    /// socket.
    fn step(&mut self, s: &mut Session, action: &Action) -> bool {
        let now = self.now;
        match action {
            Action::Raw { .. }
            | Action::Frame { .. }
            | Action::Request(_)
            | Action::Head { .. } => {
                let mut bytes = action.bytes().unwrap();
                if matches!(action, Action::Raw { limited: true, .. }) {
                    bytes.truncate(s.read_limit(bytes.len()));
                }
                self.receive(s, &bytes);
            }
            Action::Eof => match self.state {
                // The shard drops a head cut short.
                State::Handshake => {
                    s.receive_eof();
                    return false;
                }
                State::Open => s.receive_eof(),
                State::Closing => return !self.peer_closed(s),
            },
            Action::Advance(ms) => self.now += Duration::from_millis(u64::from(*ms)),
            Action::Heartbeats(n) => self.now += self.config.heartbeat * u32::from(*n) / 2,
            Action::Due { act } => {
                let due = s.due(now, self.wall());
                if *act {
                    match due {
                        None => {}
                        Some(Due::HandshakeTimeout | Due::LingerOver) => return false,
                        Some(Due::Ping) => self.pinged(s),
                        Some(Due::HeartbeatTimeout | Due::Lagging | Due::Expired) => {
                            self.start_closing(s, now + self.config.close_linger);
                        }
                    }
                }
            }
            Action::Read(max) => {
                return self.read(
                    s,
                    if *max == 255 {
                        usize::MAX
                    } else {
                        usize::from(*max % 40)
                    },
                );
            }
            Action::Pinged => self.pinged(s),
            Action::StartClosing(ms) => {
                self.start_closing(s, now + Duration::from_millis(u64::from(*ms)));
            }
            Action::Drained => {
                let got = s.drained();
                let want = if self.state == State::Closing {
                    let d = Drained {
                        shut_write: !self.write_shut,
                        drop: self.peer_closed,
                    };
                    self.write_shut = true;
                    d
                } else {
                    Drained {
                        shut_write: false,
                        drop: false,
                    }
                };
                assert_eq!(got, want);
                return !got.drop;
            }
            Action::PeerClosed => return !self.peer_closed(s),
            Action::RouteOpen { id } => self.route_open(s, *id),
        }
        true
    }

    fn receive(&mut self, s: &mut Session, bytes: &[u8]) {
        s.receive(bytes, self.now);
        if bytes.is_empty() {
            return;
        }
        self.last_rx = self.now;
        if self.state == State::Handshake {
            let room = MAX_HEAD - self.head.len();
            self.head.extend_from_slice(&bytes[..bytes.len().min(room)]);
        }
    }

    fn pinged(&mut self, s: &mut Session) {
        s.pinged(self.now);
        self.last_ping = self.now;
        self.first_ping.get_or_insert(self.now);
    }

    fn start_closing(&mut self, s: &mut Session, deadline: Instant) {
        s.start_closing(deadline);
        if self.state != State::Closing {
            self.state = State::Closing;
            self.linger_until = Some(deadline);
            self.write_shut = false;
            self.peer_closed = false;
        }
    }

    /// `peer_closed()`; returns true if the shard drops the socket.
    fn peer_closed(&mut self, s: &mut Session) -> bool {
        let got = s.peer_closed();
        let want = self.state == State::Closing && self.write_shut;
        if self.state == State::Closing {
            self.peer_closed = true;
        }
        assert_eq!(got, want, "peer_closed in {:?}", self.state);
        got
    }

    /// `read_messages(max)` and the shard's reaction to its events; false
    /// if the socket is dropped.
    fn read(&mut self, s: &mut Session, max: usize) -> bool {
        let mut events = Vec::new();
        let parsed = s.read_messages(self.now, max, &mut events);
        check_read(s, max, parsed, &events);
        assert_eq!(s.state(), self.state, "reading never changes the phase");
        if self.state != State::Open {
            assert_eq!(parsed, 0, "only an open session parses");
            assert!(events.is_empty(), "events in {:?}: {events:?}", self.state);
            return true;
        }
        let (burst, rate) = (self.config.request_burst, self.config.request_rate);
        for e in &events {
            match check_event(e) {
                Checked::Request => self.allowed_one(),
                Checked::Error(code) if code == "rate_limited" => self.refused_in_a_row += 1,
                Checked::Error(_) => self.allowed_one(),
                Checked::Pongs | Checked::End => {}
            }
            if let Event::Close(reason) = e
                && reason.code_and_reason().0 == 4008
            {
                assert_eq!(
                    self.refused_in_a_row, burst,
                    "4008 after exactly a burst of refusals"
                );
            }
        }
        let elapsed = (self.now - self.t0).as_secs_f64();
        let budget = f64::from(burst) + f64::from(rate) * elapsed;
        assert!(
            self.allowed as f64 <= budget * 1.001 + 1.0,
            "{} requests allowed in {elapsed}s (burst {}, rate {})",
            self.allowed,
            burst,
            rate
        );
        match events.last() {
            Some(Event::Drop) => false,
            Some(Event::PeerClose(_) | Event::Close(_)) => {
                // The shard queues the close and starts closing; then
                // nothing more is parsed, whatever arrives.
                self.start_closing(s, self.now + self.config.close_linger);
                let mut more = Vec::new();
                s.receive(b"\x81\x82\x00\x00\x00\x00{}", self.now);
                assert_eq!(s.read_messages(self.now, usize::MAX, &mut more), 0);
                assert!(more.is_empty(), "events after the end: {more:?}");
                true
            }
            _ => true,
        }
    }

    fn allowed_one(&mut self) {
        self.allowed += 1;
        self.refused_in_a_row = 0;
    }

    /// `route()`, then what the shard does with the decision: open an
    /// upgrade (or refuse it, as a failed policy check or admission does
    /// when `id`'s top bit is set), start closing after a response.
    fn route_open(&mut self, s: &mut Session, id: u8) {
        let got = s.route();
        if self.state != State::Handshake {
            assert_eq!(got, None, "route() outside the handshake");
            return;
        }
        assert_eq!(got, fuzzing::route(&self.head), "route() is route(head)");
        match got {
            None => {}
            Some(Route::Respond(_) | Route::Report { .. }) => {
                self.start_closing(s, self.now + self.config.close_linger)
            }
            Some(Route::Upgrade(_)) if id & 0x80 != 0 => {
                self.start_closing(s, self.now + self.config.close_linger);
            }
            Some(Route::Upgrade(up)) => {
                let identity = match id {
                    0 => None,
                    1 => Some(Identity::new("ann")),
                    n => Some(
                        Identity::new("bob")
                            .expires_at(self.wall() + Duration::from_secs(u64::from(n - 2))),
                    ),
                };
                self.expires_at = identity.as_ref().and_then(|i| i.expires_at);
                let user = identity.as_ref().map(|i| i.user.clone());
                self.conn_id += 1;
                let o = s.open(&up, self.conn_id, identity, self.now);
                check_opened(&o, up.key(), self.conn_id);
                assert_eq!(s.user(), user.as_deref());
                self.state = State::Open;
                self.last_rx = self.now;
                self.last_ping = self.now;
            }
        }
    }

    /// The checks after every step.
    fn check(&self, s: &Session) {
        assert_eq!(s.state(), self.state);
        assert_eq!(s.is_open(), self.state == State::Open);
        if self.state != State::Open {
            assert!(s.wants_input(), "only an open session holds input back");
        }
        for max in [0, 1, 100, 4096, usize::MAX] {
            let limit = s.read_limit(max);
            assert!(limit <= max);
            if self.state == State::Handshake {
                assert_eq!(limit, max.min(MAX_HEAD - self.head.len()));
            } else {
                assert_eq!(limit, max);
            }
        }
        if self.state == State::Handshake {
            assert!(self.head.len() + s.read_limit(usize::MAX) <= MAX_HEAD);
        }
        self.check_due(s);
    }

    fn check_due(&self, s: &Session) {
        let (now, wall, c) = (self.now, self.wall(), &self.config);
        let due = s.due(now, wall);
        match self.state {
            State::Handshake => {
                let deadline = self.t0 + c.handshake_timeout;
                assert_eq!(due, (now >= deadline).then_some(Due::HandshakeTimeout));
            }
            State::Closing => {
                let deadline = self.linger_until.unwrap();
                assert_eq!(due, (now >= deadline).then_some(Due::LingerOver));
            }
            State::Open => {
                let since = |t: Instant| now.saturating_duration_since(t);
                let silent = since(self.last_rx) >= c.heartbeat * 3;
                let lag_possible = self.first_ping.is_some_and(|t| since(t) >= c.max_lag);
                let expired = self.expires_at.is_some_and(|t| t <= wall);
                let ping = since(self.last_ping) >= c.heartbeat;
                assert_eq!(due == Some(Due::HeartbeatTimeout), silent, "{due:?}");
                match due {
                    Some(Due::Lagging) => assert!(lag_possible),
                    Some(Due::Expired) => assert!(expired),
                    Some(Due::Ping) => assert!(ping && !expired),
                    None => assert!(!silent && !expired && !ping),
                    Some(Due::HeartbeatTimeout) => {}
                    Some(d @ (Due::HandshakeTimeout | Due::LingerOver)) => {
                        panic!("{d:?} in Open")
                    }
                }
            }
        }
    }
}
