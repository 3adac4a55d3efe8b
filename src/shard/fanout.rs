//! The fan-out: ticks from the inbox into the outboxes of the connections
//! that subscribe to them, through subscription classes (see
//! [`crate::subscriptions`]), and the snapshots a subscription or a group
//! change sends from the last-value cache.
//!
//! Per tick the cost is one index pushed per covering class (no reference
//! count); per turn, each class's ticks are copied once into one batch,
//! queued on every member with one `Arc` clone. Classes of one connection
//! (every client its own watchlist: nothing to share) are packed together:
//! their batches are copied side by side into one *chunk* of at most
//! [`CHUNK_BYTES`], and each member queues its range of it. So a turn
//! costs one copy per delivery and no allocation (chunks are pooled,
//! see [`super::chunks`]), not one allocation per connection, and each
//! connection's ticks still leave as one iovec. No lock per tick and
//! client.

use std::sync::Arc;

use crate::Frame;
use crate::outbox::PushError;
use crate::subscriptions::{ClassId, ConnKey};
use crate::symbols::SymId;
use crate::wire::{encode, protocol};

use super::Shard;
use super::chunks::CHUNK_BYTES;

/// The most inbox messages one drain may take (see [`drain_ticks`], which
/// is at most this), so a flood of ticks cannot starve reads and writes.
pub(super) const INBOX_BATCH: usize = 4096;
/// Most ticks one inbox drain takes (see `Shard::drain_inbox`): a quarter
/// of `queue_capacity`, at least one inbox message's worth and at most
/// [`INBOX_BATCH`]. With the pause at half a queue, a connection is sent
/// at most three quarters of its queue between two of its writes when the
/// queue holds 256 frames or more (below that, one 64-tick message is
/// more than a quarter). 1,024 at the default capacity.
pub(super) fn drain_ticks(queue_capacity: usize) -> usize {
    (queue_capacity / 4).clamp(crate::inbox::TICK_BATCH, INBOX_BATCH)
}

/// Most ticks in one class batch. A batch is queued as one entry, so a
/// bound keeps one entry small next to `queue_capacity` (4096 frames by
/// default) and keeps a burst from evicting every subscriber at once.
const MAX_BATCH: usize = 256;
/// A connection alone in its class takes a range of a shared chunk (of
/// [`CHUNK_BYTES`]) only while fewer than this many frames wait on it;
/// behind that it gets its batch in an allocation of its own. A
/// connection that keeps up holds a turn or two of ticks (tens of frames
/// at 5 M deliveries/s); one that has stopped reading would otherwise
/// keep every chunk it has a range in alive, up to `queue_capacity` of
/// them. With this bound it keeps at most 128 (each range holds two
/// frames or more), 1 MiB. 64 and 256 measured the same within this VM's
/// noise; 256 keeps a shard that falls a little behind on the cheaper
/// shared path for longer.
const SHARE_BELOW: usize = 256;
/// How many members ahead of its push the fan-out fetches a member's
/// queue tail. Members come in key order, so their connections are met in
/// address order and the CPU has them in the cache already; the tail of
/// each one's queue is a heap block of its own, a cache miss the CPU
/// cannot foresee. With 10,000 connections on `*`, `flush_classes` went
/// from ~19 to ~11 % of the server's samples (two profiles each,
/// `perf record -e cpu-clock -g`); key order alone gave ~16 %. 4, 8 and
/// 16 ahead measured the same (8.7-11.3 %, two profiles each).
const PREFETCH_AHEAD: usize = 8;
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
    /// joins the turn's ticks; every class that covers it notes its index
    /// (no reference count per class or connection).
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
        let sent = reset.unwrap_or_else(|| frame.clone());
        let len = sent.len();
        // At most `INBOX_BATCH` ticks between two flushes.
        let at = self.turn.len() as u32;
        self.turn.push(sent);
        let longest = self
            .index
            .push_pending(sym, at, len, ts, &mut self.pending_classes);
        // The frames the shard lets go of go back to the publisher if
        // nothing else holds them (see `crate::recycle`): the history's
        // oldest, or the last value it replaces when the history keeps
        // fewer than two ticks (a longer one still holds that tick, so
        // looking at its count would be a wasted load per tick).
        if let Some(old) = self.history.push(sym, seq, &frame) {
            self.recycler.give(old);
        }
        let last = LastValue {
            seq,
            tick: frame,
            snapshot: None,
        };
        let replaced = self.lvc[i].replace(last);
        if self.history.depth() < 2
            && let Some(old) = replaced
        {
            self.recycler.give(old.tick);
        }
        if longest >= MAX_BATCH {
            self.flush_classes();
        }
    }

    /// The hot path, part 2: each class's pending ticks become one batch,
    /// queued on every member with an `Arc` clone. A class's single tick is
    /// queued as it is; the batches of classes of one connection that keeps
    /// up are packed into shared chunks; any other batch is an allocation
    /// of its own. Connections that overflow are evicted afterwards.
    pub(super) fn flush_classes(&mut self) {
        let now = self.now;
        let classes = std::mem::take(&mut self.pending_classes);
        let mut packed = std::mem::take(&mut self.packed);
        let mut packed_bytes = 0;
        for &c in &classes {
            let Some(class) = self.index.class(c) else {
                continue;
            };
            let n = class.pending.len();
            if n == 0 {
                continue;
            }
            let keeps_up = |key: ConnKey| {
                self.conns
                    .get(key as usize)
                    .is_some_and(|conn| conn.outbox.len() < SHARE_BELOW)
            };
            if n > 1 && class.sole.is_some_and(keeps_up) {
                let bytes = class.pending_bytes;
                if packed_bytes + bytes > CHUNK_BYTES && !packed.is_empty() {
                    self.queue_chunk(&packed, packed_bytes);
                    packed.clear();
                    packed_bytes = 0;
                }
                packed.push(c);
                packed_bytes += bytes;
                continue;
            }
            let turn = &self.turn;
            let batch = match n {
                1 => turn[class.pending[0] as usize].clone(),
                _ => Frame::from_parts(class.pending.iter().map(|&t| turn[t as usize].as_bytes())),
            };
            let batch = batch.into_shared();
            let members = class.members.as_slice();
            for (i, &key) in members.iter().enumerate() {
                if let Some(&ahead) = members.get(i + PREFETCH_AHEAD)
                    && let Some(conn) = self.conns.get(ahead as usize)
                {
                    conn.outbox.prefetch_back();
                }
                let Some(conn) = self.conns.get_mut(key as usize) else {
                    continue;
                };
                queue_ticks(
                    conn,
                    &mut self.dirty,
                    &mut self.overflow,
                    &mut self.fan_out_paused,
                    key,
                    (&batch, 0..batch.len()),
                    n,
                    class.pending_since,
                    now,
                );
            }
            if let Some(class) = self.index.class_mut(c) {
                class.pending.clear();
            }
        }
        if !packed.is_empty() {
            self.queue_chunk(&packed, packed_bytes);
            packed.clear();
        }
        self.packed = packed;
        self.turn.clear();
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

    /// Copies the pending batches of `classes` (each of one connection,
    /// `bytes` in all) into one chunk, side by side, and queues each on its
    /// member as its range of the chunk.
    fn queue_chunk(&mut self, classes: &[ClassId], bytes: usize) {
        let (index, turn) = (&self.index, &self.turn);
        let parts = classes
            .iter()
            .filter_map(|&c| index.class(c))
            .flat_map(|class| class.pending.iter())
            .map(|&t| turn[t as usize].as_bytes());
        // One class's batch larger than a chunk gets an allocation of its
        // own; every other chunk is a pooled one.
        let chunk = if bytes <= CHUNK_BYTES {
            self.chunks.fill(parts)
        } else {
            Frame::from_parts(parts).into_shared()
        };
        let mut at = 0;
        for &c in classes {
            let Some(class) = self.index.class_mut(c) else {
                continue;
            };
            let range = at..at + class.pending_bytes;
            at = range.end;
            if let Some(key) = class.sole
                && let Some(conn) = self.conns.get_mut(key as usize)
            {
                queue_ticks(
                    conn,
                    &mut self.dirty,
                    &mut self.overflow,
                    &mut self.fan_out_paused,
                    key,
                    (&chunk, range),
                    class.pending.len(),
                    class.pending_since,
                    self.now,
                );
            }
            class.pending.clear();
        }
        debug_assert_eq!(at, bytes, "the ranges tile the classes' batches");
        debug_assert!(at <= chunk.len(), "and fit in the chunk");
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

/// Queues `bytes[range]` (`frames` ticks, the oldest published at
/// `published`) on `conn`'s (key `key`) outbox and marks it dirty; a full
/// outbox puts `key` on `overflow`, evicted by [`Shard::flush_classes`] at
/// the end of the turn's fan-out. Half a queue waiting sets `paused` (see
/// `Shard::drain_inbox`). Free-standing so the fan-out can call it
/// while it borrows the subscription index.
#[allow(
    clippy::too_many_arguments,
    reason = "the disjoint shard fields the fan-out may borrow next to the index"
)]
fn queue_ticks(
    conn: &mut super::connection::Connection,
    dirty: &mut Vec<ConnKey>,
    overflow: &mut Vec<ConnKey>,
    paused: &mut bool,
    key: ConnKey,
    (bytes, range): (&Arc<[u8]>, std::ops::Range<usize>),
    frames: usize,
    published: u64,
    now: std::time::Instant,
) {
    match conn
        .outbox
        .try_push_range(bytes, range, frames, published, now)
    {
        Ok(()) => {
            if !conn.dirty {
                conn.dirty = true;
                dirty.push(key);
            }
            if conn.outbox.half_full() {
                *paused = true;
            }
        }
        Err(PushError::Full) => overflow.push(key),
        Err(PushError::Closed) => {}
    }
}
