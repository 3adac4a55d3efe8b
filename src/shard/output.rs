//! A shard's way out: queue frames on outboxes, write them in a rolling
//! pass, and end connections (close, evict, drop) with their bookkeeping.

use std::time::Instant;

use crate::Frame;
use crate::metrics::{Disconnect, HandshakeFailure};
use crate::outbox::PushError;
use crate::runtime::unix_nanos;
use crate::subscriptions::ConnKey;
use crate::wire::{encode, http};

use super::Shard;
use super::fanout::DRAIN_EVERY;

/// Why a connection is evicted (both are close 4001, counted apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Eviction {
    /// Its outbox overflowed.
    Overflow,
    /// Its oldest queued frame or unanswered ping is older than `max_lag`.
    Lag,
}

/// Longest a writing pass runs before the shard polls its sockets again;
/// the rest of the pass continues next turn.
const PASS_BUDGET: std::time::Duration = std::time::Duration::from_millis(10);

impl Shard {
    /// Writes every connection with queued frames, in the order they
    /// became dirty: a rolling, round-robin pass. Every [`DRAIN_EVERY`]
    /// writes it takes new ticks from the inbox, so connections later in a
    /// long pass get them in the same write: a tick waits at most about one
    /// pass, not a pass to be noticed plus a pass to be written. Returns
    /// after [`PASS_BUDGET`] to serve sockets and timers.
    pub(super) fn flush_dirty(&mut self) {
        let start = Instant::now();
        let mut i = 0;
        while i < self.dirty.len() {
            let key = self.dirty[i] as usize;
            i += 1;
            self.write_conn(key);
            if i % DRAIN_EVERY == 0 {
                if !self.rx.is_empty() {
                    self.drain_inbox();
                }
                if start.elapsed() >= PASS_BUDGET {
                    break;
                }
            }
        }
        self.dirty.drain(..i);
    }

    fn write_conn(&mut self, key: usize) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.dirty {
            return;
        }
        conn.dirty = false;
        // A sampled write reads the clock once, if it completes ticks.
        let sampled = self.sampler.take();
        let latency = &mut self.latency;
        let mut written_ns = 0;
        let wrote = conn.write(|published_ns, frames| {
            if sampled {
                if written_ns == 0 {
                    written_ns = unix_nanos();
                }
                latency.record(published_ns, written_ns, frames);
            }
        });
        if written_ns != 0 {
            self.sampler.used();
        }
        match wrote {
            Ok(p) => {
                if p.bytes > 0 {
                    self.counts.frames_sent += p.frames as u64;
                    self.counts.bytes_sent += p.bytes as u64;
                    self.counts_changed = true;
                    conn.frames_sent += p.frames as u64;
                }
                if conn.pending.is_some() {
                    self.serve_join(key);
                    return;
                }
                if p.drained && conn.session.state() == crate::session::State::Closing {
                    let d = conn.session.drained();
                    if d.shut_write {
                        conn.shutdown_write();
                    }
                    if d.drop {
                        self.remove(key);
                    }
                }
            }
            Err(_) => self.remove(key),
        }
    }

    /// Queues `frame` for `key`. Returns false if it was not queued: the
    /// connection is gone, closing, or was just evicted for overflowing.
    pub(super) fn push(&mut self, key: usize, frame: Frame) -> bool {
        let Some(conn) = self.conns.get_mut(key) else {
            return false;
        };
        match conn.outbox.try_push(frame, self.now) {
            Ok(()) => {
                self.mark_dirty(key);
                true
            }
            Err(PushError::Full) => {
                self.evict(key, Eviction::Overflow);
                false
            }
            Err(PushError::Closed) => false,
        }
    }

    pub(super) fn mark_dirty(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key)
            && !conn.dirty
        {
            conn.dirty = true;
            self.dirty.push(key as ConnKey);
        }
    }

    /// Sends a final HTTP response and closes (a refused or plain HTTP
    /// request).
    pub(super) fn respond(&mut self, key: usize, resp: &http::Response) {
        if resp.status >= 400 {
            self.count_handshake_failure(HandshakeFailure::from_status(resp.status));
        }
        let deadline = self.now + self.runtime.config.close_linger;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.outbox.push_http_close(resp.to_bytes(), self.now);
        conn.session.start_closing(deadline);
        self.mark_dirty(key);
    }

    /// Close 4001: the backlog is dropped so the close frame goes next.
    pub(super) fn evict(&mut self, key: usize, why: Eviction) {
        if self.conns.get(key).is_some_and(|c| c.session.is_open()) {
            let why = match why {
                Eviction::Overflow => Disconnect::SlowConsumer,
                Eviction::Lag => Disconnect::Lag,
            };
            self.close(key, why, 4001, "slow consumer", true);
        }
    }

    /// Starts a server-initiated close for `why`, with `code` and `reason`
    /// in the close frame. With `drop_backlog`, unsent frames are discarded
    /// first.
    pub(super) fn close(
        &mut self,
        key: usize,
        why: Disconnect,
        code: u16,
        reason: &str,
        drop_backlog: bool,
    ) {
        self.leave_open(key, why);
        let c = &self.runtime.config;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let frame = encode::close(code, reason);
        if drop_backlog {
            conn.outbox.evict(frame, self.now);
        } else {
            conn.outbox.push_close(frame, self.now);
        }
        // Best effort: a close frame still unsent at the deadline (a
        // stalled client's buffers are full) ends in a reset.
        conn.session.start_closing(self.now + c.close_linger);
        self.mark_dirty(key);
    }

    /// Bookkeeping for a connection that stops being an open WebSocket:
    /// out of the subscription index, its admission ticket back, and (the
    /// one place a connection's end is counted and logged, once, because
    /// the ticket is taken once) `why` in the metrics and the log.
    pub(super) fn leave_open(&mut self, key: usize, why: Disconnect) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.pending = None;
        if let Some(ticket) = conn.admitted.take() {
            super::log::closed(self.id, conn, ticket.conn_id, why, self.now);
            self.index.remove(key as ConnKey);
            self.admission.release(ticket);
            self.counts.disconnected(why);
            self.counts.connections = self.counts.connections.saturating_sub(1);
            self.counts_changed = true;
        }
    }

    /// Counts a socket that will not become a WebSocket.
    pub(super) fn count_handshake_failure(&mut self, why: HandshakeFailure) {
        self.counts.handshake_failed(why);
        self.counts_changed = true;
    }

    /// Drops the socket now with a reset, releasing whatever the kernel
    /// still queues for it (a closing connection past its deadline).
    pub(super) fn reset(&mut self, key: usize) {
        if let Some(conn) = self.conns.get_mut(key) {
            conn.abort_on_drop();
        }
        self.remove(key);
    }

    /// Drops the socket now. An open connection ends as
    /// [`Disconnect::Dropped`] (no close handshake).
    pub(super) fn remove(&mut self, key: usize) {
        self.leave_open(key, Disconnect::Dropped);
        let Some(mut conn) = self.conns.try_remove(key) else {
            return;
        };
        conn.deregister(self.poll.registry());
        self.admission.drop_socket(&self.load);
    }
}
