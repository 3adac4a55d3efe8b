//! Joining a subscription: the snapshots, then the live ticks, however many
//! symbols the subscription covers, without ever overflowing the
//! connection's own queue.
//!
//! A subscription whose snapshots fit in half the free room of the queue
//! joins at once: the connection enters the index and every snapshot is
//! queued (the common case). A larger one joins **symbol by symbol as the
//! socket drains**: each time the queue is less than half full, the next
//! chunk of symbols gets its snapshots from the last-value cache and joins
//! the index in the same step, so for every symbol the snapshot carries the
//! `seq` of the last tick before it and the live ticks follow from `seq+1`.
//! Memory stays bounded by the queue, whatever the size of the universe.
//!
//! While a join is in progress, further requests of the connection wait in
//! order and are handled when it completes, so they see the subscription
//! whole. Chunks are served only between two inbox drains, when no class
//! has pending ticks (moving a connection between classes then loses
//! nothing).

use std::collections::VecDeque;

use crate::session::requests::Join;
use crate::subscriptions::{ConnKey, Selection};
use crate::symbols::SymId;
use crate::wire::protocol::Request;
use crate::wire::{encode, protocol};

use super::Shard;

/// Most snapshots served per chunk: a chunk re-keys the connection's class
/// once, so larger chunks mean fewer re-keys; smaller ones keep a turn
/// short. 256 snapshots are ~40 KB, one write.
const CHUNK: usize = 256;

/// A subscription being joined symbol by symbol.
#[derive(Debug)]
pub(super) struct PendingJoin {
    join: Join,
    /// `join.snapshots[next..]` have not been served yet.
    next: usize,
    /// Symbols added to the connection's subscriptions one by one while
    /// serving; those `join.selection` does not name are dropped at the
    /// end (coverage by its groups or `*` replaces them).
    temporary: Vec<SymId>,
    /// Symbols interned when the join began: a `*` join snapshots the
    /// symbols that appeared since at the end.
    known_at_start: usize,
    /// Requests that arrived meanwhile, handled in order at the end.
    deferred: VecDeque<Request>,
}

impl PendingJoin {
    /// Holds `req` until the join completes.
    pub(super) fn defer(&mut self, req: Request) {
        self.deferred.push_back(req);
    }
}

impl Shard {
    /// Joins `join` for `key`: at once if its snapshots fit, else symbol
    /// by symbol as the socket drains.
    pub(super) fn join(&mut self, key: usize, join: Join) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let with_value = join
            .snapshots
            .iter()
            .filter(|&&s| matches!(self.lvc.get(s as usize), Some(Some(_))))
            .count();
        let room = self
            .runtime
            .config
            .queue_capacity
            .saturating_sub(conn.outbox.len());
        if with_value <= room / 2 {
            self.index.subscribe(key as ConnKey, &join.selection);
            self.send_snapshots(key, &join.snapshots);
            return;
        }
        conn.pending = Some(Box::new(PendingJoin {
            join,
            next: 0,
            temporary: Vec::new(),
            known_at_start: self.lvc.len(),
            deferred: VecDeque::new(),
        }));
        self.serve_join(key);
    }

    /// Serves the next chunk of a pending join if the queue is less than
    /// half full; completes the join after its last chunk.
    pub(super) fn serve_join(&mut self, key: usize) {
        let half = self.runtime.config.queue_capacity / 2;
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if !conn.session.is_open() {
            conn.pending = None;
            return;
        }
        let Some(p) = conn.pending.as_mut() else {
            return;
        };
        let room = half.saturating_sub(conn.outbox.len());
        if room == 0 {
            return;
        }
        let end = (p.next + room.min(CHUNK)).min(p.join.snapshots.len());
        let chunk: Vec<SymId> = p.join.snapshots[p.next..end].to_vec();
        p.next = end;
        let done = end == p.join.snapshots.len();
        let held = self.index.selection(key as ConnKey);
        let mut new_syms: Vec<SymId> = chunk
            .iter()
            .copied()
            .filter(|s| held.symbols.binary_search(s).is_err())
            .collect();
        p.temporary.extend_from_slice(&new_syms);
        new_syms.sort_unstable();
        // Join, then snapshot, in one step: no tick of these symbols can
        // come between (the inbox is not drained meanwhile).
        self.index.subscribe(
            key as ConnKey,
            &Selection {
                symbols: new_syms,
                ..Selection::default()
            },
        );
        self.send_snapshots(key, &chunk);
        if done {
            self.complete_join(key);
        }
    }

    /// The last chunk is out: the connection takes its real selection,
    /// symbols that came into its groups (or into `*`) meanwhile get their
    /// snapshots, and the requests that waited are handled.
    fn complete_join(&mut self, key: usize) {
        let Some(p) = self.conns.get_mut(key).and_then(|c| c.pending.take()) else {
            return;
        };
        let k = key as ConnKey;
        let sel = &p.join.selection;
        let before = self.index.selection(k);
        self.index.subscribe(k, sel);
        let temporary: Vec<SymId> = p
            .temporary
            .iter()
            .copied()
            .filter(|s| sel.symbols.binary_search(s).is_err())
            .collect();
        self.index.unsubscribe(
            k,
            &Selection {
                symbols: temporary,
                ..Selection::default()
            },
        );
        // Symbols the selection covers now that were not served: new in
        // one of its groups, or (for `*`) new to the server.
        let served = &p.join.snapshots;
        let mut late: Vec<SymId> = if sel.all {
            (p.known_at_start as SymId..self.lvc.len() as SymId).collect()
        } else {
            sel.groups
                .iter()
                .flat_map(|g| self.index.group_symbols(g).iter().copied())
                .filter(|s| served.binary_search(s).is_err())
                .filter(|s| !covers(&before, *s))
                .collect()
        };
        late.sort_unstable();
        late.dedup();
        self.send_snapshots(key, &late);
        // A group removed meanwhile: tell the client, as its subscribers were.
        for g in &sel.groups {
            if self.index.group_name(g).is_none() {
                let v = protocol::ack("unsubscribed", &None, &[], &[g.to_string()]);
                self.push(key, encode::json(&v));
            }
        }
        let mut deferred = p.deferred;
        while let Some(req) = deferred.pop_front() {
            self.on_request(key, req);
            if let Some(next) = self.conns.get_mut(key).and_then(|c| c.pending.as_mut()) {
                // Another large join began: the rest waits for it.
                next.deferred.extend(deferred.drain(..));
                break;
            }
        }
        // Input may have waited behind the join.
        self.again.push(k);
    }
}

/// Returns true if and only if `sel`'s own symbols (not its groups) hold
/// `sym`; a conservative test, used only to skip duplicate snapshots.
fn covers(sel: &Selection, sym: SymId) -> bool {
    sel.all || sel.symbols.binary_search(&sym).is_ok()
}
