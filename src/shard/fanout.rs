//! The fan-out: ticks from the inbox into the outboxes of the connections
//! that subscribe to them, through subscription classes (see
//! [`crate::subscriptions`]), and the snapshots a subscription or a group
//! change sends from the last-value cache.
//!
//! Per tick the cost is one `Arc` clone per covering class; per turn, each
//! shared class's ticks are concatenated once and queued on every member
//! with one `Arc` clone. A class of one connection (every client its own
//! watchlist) has nothing to share: while its outbox is short, its ticks
//! are queued as they come, one `Arc` clone each, and leave in one vectored
//! write with no concatenation and no allocation; behind a backlog they are
//! batched like a shared class's (fewer, larger iovecs drain it faster).
//! No lock per tick and client.

use std::sync::Arc;

use crate::Frame;
use crate::outbox::PushError;
use crate::subscriptions::ConnKey;
use crate::symbols::SymId;
use crate::wire::{encode, protocol};

use super::Shard;

/// Inbox messages handled per turn before the shard goes back to its
/// sockets, so a flood of ticks cannot starve reads and writes. At 5,000
/// ticks/s this is almost a second of ticks: never reached in steady state.
pub(super) const INBOX_BATCH: usize = 4096;
/// Most ticks in one class batch. A batch is queued as one entry, so a
/// bound keeps one entry small next to `queue_capacity` (4096 frames by
/// default) and keeps a burst from evicting every subscriber at once.
const MAX_BATCH: usize = 256;
/// A connection alone in its class gets each tick queued as it comes while
/// fewer than this many frames wait on its outbox; past it, the turn's
/// ticks go as one batch. 8 keeps a write at a few iovecs of single ticks
/// (a backlog of single-tick entries cost the kernel ~100 ns more per
/// frame than a batch, and at 3 M frames/s it fell behind for good).
const DIRECT_BELOW: usize = 8;
/// Writes between two looks at the inbox during a write pass. 64 writes
/// take ~0.3 ms; checking an empty inbox is one atomic load.
pub(super) const DRAIN_EVERY: usize = 64;

/// A symbol's last tick, and its `snapshot` frame once a subscriber asked
/// for it: a connect storm of thousands of `*` subscribers builds each
/// snapshot once per tick, not once per subscriber.
#[derive(Debug, Clone)]
pub(super) struct LastValue {
    seq: u64,
    tick: Frame,
    snapshot: Option<Frame>,
}

impl LastValue {
    /// The symbol's last tick frame.
    pub(super) fn tick(&self) -> &Frame {
        &self.tick
    }
}

impl Shard {
    /// The hot path, part 1: the tick becomes the symbol's last value and
    /// is appended to the pending batch of every class that covers it (one
    /// `Arc` clone per class, not per connection).
    pub(super) fn fan_out(&mut self, sym: SymId, seq: u64, ts: u64, frame: Frame) {
        let i = sym as usize;
        if self.lvc.len() <= i {
            self.lvc.resize(i + 1, None);
        }
        // Local numbering is contiguous from 1. A shared feed's starts
        // where the stream's retention starts, and restarts at 1 with a
        // new history (epoch).
        debug_assert!(
            self.lvc[i]
                .as_ref()
                .is_none_or(|l| seq == l.seq + 1 || seq == 1),
            "ticks of a symbol reach a shard in seq order"
        );
        // The first tick of a new history: subscribers were reset to seq 0,
        // so a history whose first entries this node never saw (trimmed
        // before it read them) starts with a reset snapshot, not a gap.
        // Empty but for a moment after a Redis failover: one length check
        // per tick, and no frame clone unless a reset is due.
        let reset = match self.restarted.binary_search(&sym) {
            Ok(at) => {
                self.restarted.remove(at);
                (seq != 1)
                    .then(|| encode::reset_snapshot_of(&frame))
                    .flatten()
            }
            Err(_) => None,
        };
        let sent = reset.as_ref().unwrap_or(&frame);
        let (conns, dirty, overflow, now) = (
            &mut self.conns,
            &mut self.dirty,
            &mut self.overflow,
            self.now,
        );
        let longest = self
            .index
            .push_pending(sym, sent, ts, &mut self.pending_classes, |key| {
                // Queued alone while the outbox is short; behind a backlog
                // the ticks go as a batch (one iovec, not one per tick:
                // the kernel's per-iovec cost made a backlog of single
                // ticks drain slower than it grew).
                // A connection gone meanwhile takes nothing either way.
                let Some(conn) = conns.get_mut(key as usize) else {
                    return true;
                };
                if conn.outbox.len() >= DIRECT_BELOW {
                    return false;
                }
                queue_ticks(conn, dirty, overflow, key, sent.clone(), 1, ts, now);
                true
            });
        self.history.push(sym, seq, &frame);
        self.lvc[i] = Some(LastValue {
            seq,
            tick: frame,
            snapshot: None,
        });
        if longest >= MAX_BATCH {
            self.flush_classes();
        }
    }

    /// The hot path, part 2: each class's pending ticks become one shared
    /// batch (one copy per class), queued on every member with an `Arc`
    /// clone. Connections that overflow are evicted afterwards.
    pub(super) fn flush_classes(&mut self) {
        let now = self.now;
        let classes = std::mem::take(&mut self.pending_classes);
        for &c in &classes {
            let Some(class) = self.index.class_mut(c) else {
                continue;
            };
            // Swap, not take: both vectors keep their capacity, so a steady
            // stream allocates no pending vectors.
            std::mem::swap(&mut class.pending, &mut self.batch_parts);
            let n = self.batch_parts.len();
            let batch = match n {
                0 => continue,
                1 => self.batch_parts[0].clone(),
                _ => Frame::concat(&self.batch_parts),
            };
            self.batch_parts.clear();
            let Some(class) = self.index.class(c) else {
                continue;
            };
            let published = class.pending_since;
            for &key in &class.members {
                let Some(conn) = self.conns.get_mut(key as usize) else {
                    continue;
                };
                queue_ticks(
                    conn,
                    &mut self.dirty,
                    &mut self.overflow,
                    key,
                    batch.clone(),
                    n,
                    published,
                    now,
                );
            }
        }
        while let Some(key) = self.overflow.pop() {
            self.evict(key as usize, super::output::Eviction::Overflow);
        }
        for &c in &classes {
            self.index.sweep(c);
        }
        let mut classes = classes;
        classes.clear();
        self.pending_classes = classes;
    }

    /// Queues the `snapshot` of each of `syms` that has a last value.
    pub(super) fn send_snapshots(&mut self, key: usize, syms: &[SymId]) {
        for &s in syms {
            let Some(Some(last)) = self.lvc.get_mut(s as usize) else {
                continue;
            };
            let snap = match &last.snapshot {
                Some(f) => f.clone(),
                None => {
                    let Some(f) = encode::snapshot_of(&last.tick) else {
                        continue;
                    };
                    last.snapshot = Some(f.clone());
                    f
                }
            };
            if !self.push(key, snap) {
                break;
            }
        }
    }

    /// The stream numbering `syms` (sorted) began a new history: their
    /// last values and history are dropped, and every subscriber gets a
    /// `snapshot` with `"reset": true`, `seq` 0 and no prices, so the
    /// new history's tick 1 follows it. A pending join's resume of them
    /// becomes a reset (its epoch is gone).
    pub(super) fn new_history(&mut self, syms: &[SymId]) {
        for &sym in syms {
            if let Some(last) = self.lvc.get_mut(sym as usize) {
                *last = None;
            }
            self.history.forget(sym);
            if let Err(at) = self.restarted.binary_search(&sym) {
                self.restarted.insert(at, sym);
            }
            let Some(name) = self.runtime.symbols.name(sym) else {
                continue;
            };
            let reset = encode::empty_reset_snapshot(&name);
            for key in self.index.recipients(sym) {
                self.push(key as usize, reset.clone());
            }
        }
        for (_, conn) in self.conns.iter_mut() {
            if let Some(p) = conn.pending.as_mut() {
                p.forget_resumes(syms);
            }
        }
    }

    /// A notice for every open connection, or for `user`'s.
    pub(super) fn notice(&mut self, user: Option<&str>, frame: &Frame) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                c.session.is_open()
                    && user.is_none_or(|u| c.session.user().is_some_and(|x| &**x == u))
            })
            .map(|(k, _)| k)
            .collect();
        for k in keys {
            self.push(k, frame.clone());
        }
    }

    /// A group was defined or redefined: its subscribers get a snapshot of
    /// each symbol they gain.
    pub(super) fn set_group(&mut self, name: Arc<str>, symbols: &[SymId]) {
        let gained = self.index.set_group(name, symbols.to_vec());
        for (key, syms) in gained {
            self.send_snapshots(key as usize, &syms);
        }
    }

    /// A prefix of group `name` took the new symbol `sym`: the group's
    /// subscribers receive it from its first tick on (a snapshot too, if
    /// the symbol already has a value here).
    pub(super) fn add_to_group(&mut self, name: &str, sym: SymId) {
        for key in self.index.add_to_group(name, sym) {
            self.send_snapshots(key as usize, &[sym]);
        }
    }

    /// A group was removed: its subscribers are told, without an `id`.
    pub(super) fn remove_group(&mut self, name: &str) {
        let notified: Vec<ConnKey> = self.index.remove_group(name);
        let v = protocol::ack("unsubscribed", &None, &[], &[name.to_string()]);
        let f = encode::json(&v);
        for key in notified {
            self.push(key as usize, f.clone());
        }
    }
}

/// Queues `batch` (`frames` ticks, the oldest published at `published`) on
/// `conn`'s (key `key`) outbox and marks it dirty; a full outbox puts `key` on
/// `overflow`, evicted by [`Shard::flush_classes`] at the end of the turn's
/// fan-out. Free-standing so the fan-out can call it while it borrows the
/// subscription index.
#[allow(
    clippy::too_many_arguments,
    reason = "the disjoint shard fields the fan-out may borrow next to the index"
)]
fn queue_ticks(
    conn: &mut super::connection::Connection,
    dirty: &mut Vec<ConnKey>,
    overflow: &mut Vec<ConnKey>,
    key: ConnKey,
    batch: Frame,
    frames: usize,
    published: u64,
    now: std::time::Instant,
) {
    match conn.outbox.try_push_ticks(batch, frames, published, now) {
        Ok(()) => {
            if !conn.dirty {
                conn.dirty = true;
                dirty.push(key);
            }
        }
        Err(PushError::Full) => overflow.push(key),
        Err(PushError::Closed) => {}
    }
}
