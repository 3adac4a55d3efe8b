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
//! A resumed symbol (`subscribe` with `epoch` and `resume`) is served the
//! same way, with its missed ticks from the shard's history in place of
//! the snapshot: replay, then join, in one step, so the live ticks follow
//! the last replayed `seq` exactly. Its cost in the queue is the number of
//! ticks missed, and a chunk takes symbols while their cost fits, so a
//! large resume drains as the socket does too. A resume that cannot be
//! served from the history (another epoch, the history does not reach
//! back, the `seq` is ahead of this node, or more than half the queue is
//! missed) gets a snapshot with `"reset": true` instead.
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

/// What serving one chunk of a pending join did.
#[derive(Debug, PartialEq, Eq)]
enum Chunk {
    /// It queued nothing and more symbols are left: serve the next now.
    Empty,
    /// It queued frames (the next chunk waits for the socket to drain),
    /// completed the join, or there is nothing to serve.
    Stop,
}

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
    /// `syms` (sorted) began a new history: resuming them is a reset.
    pub(super) fn forget_resumes(&mut self, syms: &[SymId]) {
        for (s, after) in &mut self.join.resume {
            if syms.binary_search(s).is_ok() {
                *after = None;
            }
        }
    }

    /// Holds `req` until the join completes.
    pub(super) fn defer(&mut self, req: Request) {
        self.deferred.push_back(req);
    }
}

impl Shard {
    /// Joins `join` for `key`: at once if its snapshots fit, else symbol
    /// by symbol as the socket drains.
    pub(super) fn join(&mut self, key: usize, join: Join) {
        let Some(queued) = self.conns.get(key).map(|c| c.outbox.len()) else {
            return;
        };
        let room = self.runtime.config.queue_capacity.saturating_sub(queued);
        let cost: usize = join
            .snapshots
            .iter()
            .map(|&s| self.cost(s, resume_of(&join.resume, s)))
            .sum();
        if cost <= room / 2 {
            self.index.subscribe(key as ConnKey, &join.selection);
            self.serve_symbols(key, &join.snapshots, &join.resume);
            return;
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
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
    /// half full; completes the join after its last chunk. A chunk that
    /// queued nothing (none of its symbols has a value yet) is followed by
    /// the next at once: only a write can trigger the next call, and
    /// without frames there would be none.
    pub(super) fn serve_join(&mut self, key: usize) {
        while self.serve_chunk(key) == Chunk::Empty {}
    }

    fn serve_chunk(&mut self, key: usize) -> Chunk {
        let half = self.runtime.config.queue_capacity / 2;
        let max = self.max_replay();
        let Some(conn) = self.conns.get_mut(key) else {
            return Chunk::Stop;
        };
        if !conn.session.is_open() {
            conn.pending = None;
            return Chunk::Stop;
        }
        let Some(p) = conn.pending.as_mut() else {
            return Chunk::Stop;
        };
        let room = half.saturating_sub(conn.outbox.len());
        if room == 0 {
            return Chunk::Stop;
        }
        // Symbols while their frames fit in the room (a symbol's cost is at
        // most `max_replay`, half the queue, so an empty queue takes one).
        let (mut end, mut used) = (p.next, 0);
        while end < p.join.snapshots.len() && end - p.next < CHUNK {
            let s = p.join.snapshots[end];
            let c = cost_of(
                &self.lvc,
                &self.history,
                max,
                s,
                resume_of(&p.join.resume, s),
            );
            if used + c > room {
                break;
            }
            used += c;
            end += 1;
        }
        if end == p.next {
            return Chunk::Stop;
        }
        let chunk: Vec<SymId> = p.join.snapshots[p.next..end].to_vec();
        let resume: Vec<(SymId, Option<u64>)> = chunk
            .iter()
            .filter_map(|&s| resume_of(&p.join.resume, s).map(|r| (s, r)))
            .collect();
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
        // Join, then snapshot (or replay), in one step: no tick of these
        // symbols can come between (the inbox is not drained meanwhile).
        self.index.subscribe(
            key as ConnKey,
            &Selection {
                symbols: new_syms,
                ..Selection::default()
            },
        );
        self.serve_symbols(key, &chunk, &resume);
        if done {
            self.complete_join(key);
            return Chunk::Stop;
        }
        if used == 0 { Chunk::Empty } else { Chunk::Stop }
    }

    /// The last chunk is out: the connection takes its real selection,
    /// symbols that came into its groups (or into `*`) meanwhile get their
    /// snapshots (not a replay: they were not covered when the client
    /// asked to resume), and the requests that waited are handled.
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

impl Shard {
    /// The most ticks one resumed symbol may replay: half the queue, the
    /// room a chunk is served into, so a replay never overflows it.
    fn max_replay(&self) -> usize {
        self.runtime.config.queue_capacity / 2
    }

    /// Frames `sym` will queue when served (see [`cost_of`]).
    fn cost(&self, sym: SymId, resume: Option<Option<u64>>) -> usize {
        cost_of(&self.lvc, &self.history, self.max_replay(), sym, resume)
    }

    /// Queues, for each of `syms`, its replay if `resume` (sorted) names
    /// it and the history holds every tick missed, a reset snapshot if it
    /// names it otherwise, else its snapshot. Stops at an eviction.
    fn serve_symbols(&mut self, key: usize, syms: &[SymId], resume: &[(SymId, Option<u64>)]) {
        if resume.is_empty() {
            return self.send_snapshots(key, syms);
        }
        let max = self.max_replay();
        for &s in syms {
            let sent = match resume_of(resume, s) {
                None => {
                    self.send_snapshots(key, &[s]);
                    true
                }
                Some(after) => match after.and_then(|a| self.history.since(s, a, max)) {
                    Some(missed) => missed.into_iter().all(|f| self.push(key, f)),
                    None => self.send_reset(key, s),
                },
            };
            if !sent || !self.conns.get(key).is_some_and(|c| c.session.is_open()) {
                return;
            }
        }
    }

    /// Queues `sym`'s snapshot with `"reset": true` (seq 0 and no prices
    /// if it has no tick here).
    fn send_reset(&mut self, key: usize, sym: SymId) -> bool {
        let frame = match self.lvc.get(sym as usize) {
            Some(Some(last)) => encode::reset_snapshot_of(last.tick()),
            _ => self
                .runtime
                .symbols
                .name(sym)
                .map(|n| encode::empty_reset_snapshot(&n)),
        };
        match frame {
            Some(f) => self.push(key, f),
            None => true,
        }
    }
}

/// The resume entry for `sym` in `resume` (sorted by symbol), if any.
fn resume_of(resume: &[(SymId, Option<u64>)], sym: SymId) -> Option<Option<u64>> {
    resume
        .binary_search_by_key(&sym, |&(s, _)| s)
        .ok()
        .map(|i| resume[i].1)
}

/// Frames serving `sym` queues: the ticks missed for a replay the history
/// can serve, 1 for a reset or a snapshot, 0 for no snapshot (no value).
fn cost_of(
    lvc: &[Option<super::fanout::LastValue>],
    history: &crate::history::History,
    max_replay: usize,
    sym: SymId,
    resume: Option<Option<u64>>,
) -> usize {
    match resume {
        None => usize::from(matches!(lvc.get(sym as usize), Some(Some(_)))),
        Some(after) => {
            let newest = history.newest(sym);
            match after {
                Some(a) if a <= newest && (newest - a) as usize <= max_replay => {
                    ((newest - a) as usize).max(1)
                }
                _ => 1,
            }
        }
    }
}

/// Returns true if and only if `sel`'s own symbols (not its groups) hold
/// `sym`; a conservative test, used only to skip duplicate snapshots.
fn covers(sel: &Selection, sym: SymId) -> bool {
    sel.all || sel.symbols.binary_search(&sym).is_ok()
}
