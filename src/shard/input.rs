//! What a shard does with what its clients send: read the socket, hand the
//! bytes to the connection's [`Session`](crate::session::Session), and
//! carry out the session's decisions (upgrade, replies, closes).

use std::sync::Arc;

use crate::metrics::{Disconnect, HandshakeFailure, PROMETHEUS_CONTENT_TYPE};
use crate::runtime::unix_nanos;
use crate::session::{Event, State, requests, upgrade};
use crate::subscriptions::ConnKey;
use crate::wire::http::{self, Route};

use super::Shard;
use super::connection::ReadOutcome;

/// Client messages parsed from one connection per turn; a flooding client
/// is read again next turn instead of starving the others.
const READS_PER_TURN: usize = 32;
/// Request heads routed per turn. A reconnect storm brings thousands of
/// handshakes at once (each a read, an upgrade, a `101`, a `welcome`, and
/// soon a subscription with its snapshots); taking them 64 per turn keeps
/// a turn's extra work to about a millisecond, so the write pass keeps
/// serving the connections already streaming, and 8,000 newcomers are
/// still through in ~125 turns (about a second when turns are busy).
pub(super) const HANDSHAKES_PER_TURN: usize = 64;

impl Shard {
    /// The socket of `key` is readable (or closed, or failed).
    pub(super) fn on_readable(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        match conn.session.state() {
            State::Handshake if self.handshakes_this_turn >= HANDSHAKES_PER_TURN => {
                // Paced: read again next turn (its bytes wait in the socket).
                self.again.push(key as ConnKey);
            }
            State::Handshake => {
                self.handshakes_this_turn += 1;
                self.read_handshake(key);
            }
            State::Open => self.read_open(key),
            State::Closing => {
                if conn.discard_input(&mut self.read_buf) && conn.session.peer_closed() {
                    self.remove(key);
                }
            }
        }
    }

    /// Connections that hit their per-turn bound are read again.
    pub(super) fn read_again(&mut self) {
        let again = std::mem::take(&mut self.again);
        for &key in &again {
            self.on_readable(key as usize);
        }
        let mut again = again;
        again.clear();
        // `on_readable` may have queued keys for the next turn.
        again.append(&mut self.again);
        self.again = again;
    }

    fn read_handshake(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let mut got = false;
        loop {
            let limit = conn.session.read_limit(self.read_buf.len());
            if limit == 0 {
                break;
            }
            match conn.read(&mut self.read_buf[..limit]) {
                ReadOutcome::Data(n) => {
                    conn.session.receive(&self.read_buf[..n], self.now);
                    got = true;
                }
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Eof | ReadOutcome::Failed => {
                    return self.handshake_failed(key, HandshakeFailure::Dropped);
                }
                ReadOutcome::NotTls => return self.handshake_failed(key, HandshakeFailure::Tls),
            }
        }
        if !got {
            return;
        }
        match conn.session.route() {
            None => {}
            Some(Route::Respond(resp)) => self.respond(key, &resp),
            Some(Route::Report { report, head_only }) => self.report(key, report, head_only),
            Some(Route::Upgrade(up)) => self.upgrade(key, &up),
        }
    }

    /// Answers `/metrics` or `/stats` with every shard's published metrics,
    /// or `/healthz` with the feeds' state.
    fn report(&mut self, key: usize, report: http::Report, head_only: bool) {
        if report == http::Report::Health {
            let resp = match self.runtime.counters.feeds.down() {
                0 => http::Response::text(200, "ok"),
                _ => http::Response::text(503, "feed down"),
            };
            return self.respond(key, &http::Response { head_only, ..resp });
        }
        let a = &self.admission;
        let m = self
            .runtime
            .metrics(a.open(), a.sockets(), a.refused_full());
        let (content_type, body) = match report {
            http::Report::Prometheus => (PROMETHEUS_CONTENT_TYPE, m.to_prometheus()),
            http::Report::Json | http::Report::Health => ("application/json", m.to_json()),
        };
        let resp = http::Response {
            status: 200,
            content_type,
            body: body.into_bytes(),
            extra: Vec::new(),
            head_only,
        };
        self.respond(key, &resp);
    }

    /// The upgrade's policy checks, admission, then the `101` and the
    /// `welcome`.
    fn upgrade(&mut self, key: usize, up: &http::Upgrade) {
        let identity = match upgrade::authorize(up, &self.runtime.config) {
            Ok(identity) => identity,
            Err(resp) => return self.respond(key, &resp),
        };
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let user = identity
            .as_ref()
            .map(|id| Arc::<str>::from(id.user.as_str()));
        let ticket = match self.admission.admit(conn.peer.ip(), user.as_ref()) {
            Ok(ticket) => ticket,
            Err(refusal) => {
                let (status, line) = refusal.response();
                return self.respond(key, &http::Response::text(status, line));
            }
        };
        let epoch = self.runtime.epoch();
        let opened = conn.session.open(
            up,
            ticket.conn_id,
            identity,
            self.now,
            &self.settings,
            &epoch,
        );
        super::log::opened(self.id, conn, ticket.conn_id);
        conn.admitted = Some(ticket);
        conn.opened_at = Some(self.now);
        self.counts.connections += 1;
        self.counts_changed = true;
        // The capacity is at least MIN_QUEUE_CAPACITY frames (validated),
        // so an empty outbox takes both.
        let _ = conn
            .outbox
            .try_push_http(opened.switching_protocols, self.now);
        self.push(key, opened.welcome);
        // Frames may have arrived with the request head.
        self.again.push(key as ConnKey);
    }

    /// Parses what the session already holds, then reads the socket for
    /// more, until the socket would block or [`READS_PER_TURN`] messages
    /// were parsed (then the connection is read again next turn).
    fn read_open(&mut self, key: usize) {
        let mut events = std::mem::take(&mut self.events);
        let mut budget = READS_PER_TURN;
        while let Some(conn) = self.conns.get_mut(key) {
            // tungstenite may hold whole messages from an earlier read, so
            // parse before reading the socket.
            let parsed = conn.session.read_messages(self.now, budget, &mut events);
            budget -= parsed.min(budget);
            for event in events.drain(..) {
                if self.conns.get(key).is_some_and(|c| c.session.is_open()) {
                    self.apply(key, event);
                }
                // Otherwise the WebSocket ended: later input is moot.
            }
            let Some(conn) = self.conns.get_mut(key) else {
                break;
            };
            if !conn.session.is_open() {
                break;
            }
            if budget == 0 {
                // The bound was hit: more input may be waiting.
                self.again.push(key as ConnKey);
                break;
            }
            if !conn.session.wants_input() {
                break;
            }
            match conn.read(&mut self.read_buf) {
                ReadOutcome::Data(n) => conn.session.receive(&self.read_buf[..n], self.now),
                ReadOutcome::WouldBlock => break,
                ReadOutcome::Eof => conn.session.receive_eof(),
                ReadOutcome::Failed | ReadOutcome::NotTls => {
                    self.remove(key);
                    break;
                }
            }
        }
        self.events = events;
    }

    /// Carries out one decision of an open session.
    fn apply(&mut self, key: usize, event: Event) {
        match event {
            Event::Send(frame) => {
                self.push(key, frame);
            }
            Event::Request(req) => self.on_request(key, req),
            Event::PeerClose(reply) => {
                self.leave_open(key, Disconnect::Normal);
                let now = self.now;
                let deadline = now + self.runtime.config.close_linger;
                if let Some(conn) = self.conns.get_mut(key) {
                    conn.outbox.push_close(reply, now);
                    conn.session.start_closing(deadline);
                }
                self.mark_dirty(key);
            }
            Event::Close(reason) => {
                let (code, text) = reason.code_and_reason();
                self.close(key, reason.disconnect(), code, &text, false);
            }
            Event::Drop => self.remove(key),
        }
    }

    /// Handles a request, or holds it while a large subscription joins.
    pub(super) fn on_request(&mut self, key: usize, req: crate::wire::protocol::Request) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if let Some(pending) = conn.pending.as_mut() {
            pending.defer(req);
            return;
        }
        let epoch = self.runtime.epoch();
        let mut cx = requests::Context {
            key: key as ConnKey,
            entitlements: conn.session.entitlements(),
            user: conn.session.user().map(|u| &**u),
            index: &mut self.index,
            symbols: &self.runtime.symbols,
            config: &self.runtime.config,
            known_symbols: self.lvc.len(),
            now_nanos: unix_nanos(),
            history: &self.history,
            epoch: &epoch,
        };
        let reply = requests::handle(req, &mut cx);
        if let Some(r) = reply.refreshed {
            conn.session.refresh(r.identity);
            self.push(key, reply.frame);
            if let Some(notice) = r.dropped {
                self.push(key, notice);
            }
            return;
        }
        self.push(key, reply.frame);
        // Snapshots go out after the `subscribed` reply.
        if let Some(join) = reply.join {
            self.join(key, join);
        }
    }

    /// A socket that never completed its upgrade is dropped and counted.
    pub(super) fn handshake_failed(&mut self, key: usize, why: HandshakeFailure) {
        self.count_handshake_failure(why);
        self.remove(key);
    }
}
