//! The publisher: the one thread that stamps and serializes ticks.
//!
//! Feed handlers call [`Publisher::publish`] from any thread; it validates
//! the tick, stamps `ts` and hands it over a bounded channel without ever
//! blocking. The publisher thread assigns each symbol's next `seq`,
//! serializes the tick once into a complete WebSocket frame
//! ([`TickEncoder`]) and sends that one `Arc`'d frame to every shard, in
//! batches of up to [`TICK_BATCH`] ticks: one channel send per batch and
//! shard, never one per connection. Shards are woken only if asleep
//! ([`crate::wake`]), once per batch.
//!
//! Invariant: `seq` values are assigned in the order ticks leave the
//! publisher, which is the order every shard receives them.
//!
//! Ticks from a shared feed (Redis Streams) arrive already numbered
//! ([`Queued::Sequenced`]): the publisher keeps their `seq` and `ts`. A
//! symbol's first tick decides where its numbers come from: a local tick
//! for a symbol the shared feed numbers (or the reverse), or a tick of a
//! symbol another stream numbers, is dropped and counted in
//! `ticks_rejected`, as is a numbered tick whose `seq` is not above the
//! symbol's last (a replay); the numbering of two sources cannot be merged
//! without gaps or duplicates.

use std::sync::Arc;
use std::thread::JoinHandle;

use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TryRecvError, TrySendError, select};

use crate::inbox::{ShardLink, ShardMsg, TICK_BATCH, TickMsg};
use crate::recycle::FramePool;
use crate::runtime::{Runtime, unix_nanos};
use crate::symbols::{ByName, Name, SymId};
use crate::wire::encode::TickEncoder;
use crate::{Error, Result, Symbol, Tick};

/// Ticks sent before the shards are woken: a busy feed costs one wake
/// check per shard per 1,024 ticks (and a send into a full inbox wakes
/// the shard before it waits).
const BATCH: usize = 1024;

/// What waits in the publisher's queue.
#[derive(Debug)]
pub(crate) enum Queued {
    /// A tick from `Publisher::publish`, accepted at `ts`: the publisher
    /// gives it the symbol's next `seq`.
    Local { tick: Tick, ts: u64 },
    /// A tick numbered upstream by Redis feed `feed` (its index in
    /// `Config::feeds`): `seq` and `ts` are kept.
    Sequenced {
        tick: Tick,
        seq: u64,
        ts: u64,
        feed: usize,
    },
    /// Feed `feed`'s stream began a new history (a new epoch): the last
    /// `seq` of each symbol it numbers is forgotten, so its numbering may
    /// start again at 1, and the shards reset those symbols (see
    /// [`ShardMsg::NewHistory`]).
    NewHistory { feed: usize },
    /// Ticks from `Publisher::publish_batch`, accepted together at `ts`.
    LocalBatch { ticks: Vec<Tick>, ts: u64 },
    /// Several of the above, in order, handed over at once: a Redis read's
    /// entries wake the publisher once, not once per entry. Takes one slot
    /// of the queue; at most [`MAX_BATCH`] entries.
    Batch(Vec<Queued>),
}

/// Most ticks in one batch ([`Publisher::publish_batch`], and a Redis
/// read's hand-off): a batch takes one slot of the publisher's queue, so
/// the bound keeps [`Config::publish_queue`](crate::Config::publish_queue)
/// meaningful (at most this many ticks per slot), and one batch is at most
/// a few hundred microseconds of the publisher's work.
pub const MAX_BATCH: usize = 1024;

/// Why [`Publisher::publish_batch`] refused a batch; the ticks are handed
/// back, none published.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The publisher is behind (see [`PublishError::Full`]).
    #[error("the publisher is behind; batch not published")]
    Full(Vec<Tick>),
    /// The broadcaster has shut down.
    #[error("the broadcaster is shut down")]
    Stopped(Vec<Tick>),
    /// More than [`MAX_BATCH`] ticks: split it.
    #[error("a batch holds at most {MAX_BATCH} ticks")]
    TooLarge(Vec<Tick>),
    /// Tick `index` breaks the protocol (as [`PublishError::Invalid`]).
    #[error("invalid tick at {index}: {reason}")]
    Invalid {
        /// The refused batch.
        ticks: Vec<Tick>,
        /// Which tick is invalid.
        index: usize,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why [`Publisher::publish`] refused a tick; the tick is handed back.
///
/// ```
/// use tickcast::{PublishError, Tick};
/// # let b = tickcast::Broadcaster::start(tickcast::Config {
/// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
/// #     ..Default::default() }).unwrap();
/// match b.publisher().publish(Tick::new("AAPL").bid(f64::NAN)) {
///     Err(PublishError::Invalid { tick, reason }) => {
///         assert_eq!(tick.symbol, "AAPL");
///         assert!(reason.contains("bid"));
///     }
///     other => panic!("{other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The publisher thread is behind by more than
    /// [`Config::publish_queue`](crate::Config::publish_queue) ticks. The
    /// tick was not published and `Stats::ticks_rejected` rose; retry later
    /// or drop it (it has no `seq` yet, so no client sees a gap).
    #[error("the publisher is behind; tick not published")]
    Full(Tick),
    /// The broadcaster has shut down.
    #[error("the broadcaster is shut down")]
    Stopped(Tick),
    /// The tick breaks the protocol (symbol length or characters, a
    /// non-finite price).
    #[error("invalid tick: {reason}")]
    Invalid {
        /// The refused tick.
        tick: Tick,
        /// What is wrong with it.
        reason: String,
    },
}

/// A cloneable, `Send` handle for feed handlers to publish ticks.
///
/// ```
/// use tickcast::{Broadcaster, Config, Tick};
/// let mut c = Config::default();
/// c.listen = "127.0.0.1:0".parse().unwrap();
/// c.synthetic_rate = 0;
/// c.pin_threads = false;
/// let b = Broadcaster::start(c).unwrap();
/// let p = b.publisher();
/// p.publish(Tick::new("AAPL").bid(189.25).ask(189.27)).unwrap();
/// assert!(p.publish(Tick::new("")).is_err());
/// b.shutdown().unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct Publisher {
    tx: Sender<Queued>,
    /// Vectors of batches published, emptied by the publisher thread.
    emptied: Receiver<Vec<Tick>>,
    runtime: Arc<Runtime>,
}

/// Emptied batch vectors kept for the feeds: a feed takes one per batch
/// and the publisher gives one back per batch, so a few cover the ticks
/// in flight between them; more are freed on the publisher, as before.
/// At most 16 x [`MAX_BATCH`] ticks' room (~3.8 MB) waits here.
const EMPTIED_BATCHES: usize = 16;

/// The channel the publisher thread gives emptied batch vectors back on.
pub(crate) fn emptied_batches() -> (Sender<Vec<Tick>>, Receiver<Vec<Tick>>) {
    crossbeam_channel::bounded(EMPTIED_BATCHES)
}

impl Publisher {
    pub(crate) fn new(
        tx: Sender<Queued>,
        emptied: Receiver<Vec<Tick>>,
        runtime: Arc<Runtime>,
    ) -> Publisher {
        Publisher {
            tx,
            emptied,
            runtime,
        }
    }

    /// An empty vector to fill with the next batch for
    /// [`Publisher::publish_batch`]: one whose ticks the publisher thread
    /// has published, with the room it had, or a new one if none is
    /// waiting. A feed that builds each batch in one of these allocates
    /// nothing per batch, and its vectors are not freed on the publisher
    /// thread (a `Vec` of 256 ticks, some 60 KB, allocated on the feed's
    /// thread and freed on the publisher's: glibc gave the memory back to
    /// the system and took it again, and page faults were about a fifth of
    /// the feed thread's samples in `benches/publisher.rs`, 6.7 % of all).
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     ..Default::default() }).unwrap();
    /// let p = b.publisher();
    /// let mut batch = p.batch_buffer();
    /// batch.extend([tickcast::Tick::new("AAPL").bid(189.25), tickcast::Tick::new("MSFT").bid(415.5)]);
    /// p.publish_batch(batch).unwrap();
    /// # b.shutdown().unwrap();
    /// ```
    pub fn batch_buffer(&self) -> Vec<Tick> {
        self.emptied.try_recv().unwrap_or_default()
    }

    /// Publishes `tick`: stamps its `ts` now and queues it for the
    /// publisher thread. Never blocks.
    ///
    /// # Errors
    /// Hands the tick back in [`PublishError`] if it is invalid, if the
    /// publisher is behind, or after shutdown.
    #[allow(
        clippy::result_large_err,
        reason = "the refused tick is handed back by value, like crossbeam's TrySendError; \
                  boxing it would allocate on the overload path"
    )]
    pub fn publish(&self, tick: Tick) -> Result<(), PublishError> {
        if let Err(reason) = tick.validate() {
            return Err(PublishError::Invalid { tick, reason });
        }
        let ts = unix_nanos();
        match self.tx.try_send(Queued::Local { tick, ts }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(q)) => {
                crate::metrics::count(&self.runtime.counters.ticks_rejected);
                Err(PublishError::Full(q.into_tick()))
            }
            Err(TrySendError::Disconnected(q)) => Err(PublishError::Stopped(q.into_tick())),
        }
    }

    /// Publishes `ticks`, in order, in one hand-off: all of them or none.
    /// For a feed that receives ticks in bursts (a packet of quotes, a
    /// read from a socket): the publisher thread is woken once per batch,
    /// not once per tick, and the batch takes one slot of the queue. Every
    /// tick gets the same `ts`, stamped now. Never blocks.
    ///
    /// ```
    /// use tickcast::{BatchError, Broadcaster, Config, Tick};
    /// # let b = Broadcaster::start(Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     ..Default::default() }).unwrap();
    /// let p = b.publisher();
    /// p.publish_batch(vec![Tick::new("AAPL").bid(189.25), Tick::new("MSFT").bid(415.5)])
    ///     .unwrap();
    /// match p.publish_batch(vec![Tick::new("AAPL").bid(1.0), Tick::new("").bid(2.0)]) {
    ///     Err(BatchError::Invalid { ticks, index, .. }) => assert_eq!((ticks.len(), index), (2, 1)),
    ///     other => panic!("{other:?}"),
    /// }
    /// # b.shutdown().unwrap();
    /// ```
    ///
    /// # Errors
    /// Hands the whole batch back in [`BatchError`] if one tick is invalid
    /// (with its index), if it holds more than [`MAX_BATCH`] ticks, if the
    /// publisher is behind (each tick counts in `ticks_rejected`), or after
    /// shutdown. None of its ticks has a `seq` then, so no client sees a
    /// gap.
    pub fn publish_batch(&self, ticks: Vec<Tick>) -> Result<(), BatchError> {
        if ticks.len() > MAX_BATCH {
            return Err(BatchError::TooLarge(ticks));
        }
        if let Some((index, reason)) = ticks
            .iter()
            .enumerate()
            .find_map(|(i, t)| t.validate().err().map(|r| (i, r)))
        {
            return Err(BatchError::Invalid {
                ticks,
                index,
                reason,
            });
        }
        let n = ticks.len() as u64;
        let ts = unix_nanos();
        match self.tx.try_send(Queued::LocalBatch { ticks, ts }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(q)) => {
                crate::metrics::count_n(&self.runtime.counters.ticks_rejected, n);
                Err(BatchError::Full(q.into_ticks()))
            }
            Err(TrySendError::Disconnected(q)) => Err(BatchError::Stopped(q.into_ticks())),
        }
    }

    /// Queues `msg` (a numbered tick or a history restart), waiting while
    /// the queue is full: an upstream feed is paced by the publisher, it
    /// does not drop. Returns false once the broadcaster is stopping.
    pub(crate) fn send_waiting(&self, msg: Queued) -> bool {
        // Room first: `send_timeout` reads the clock on every call.
        let mut msg = match self.tx.try_send(msg) {
            Ok(()) => return true,
            Err(TrySendError::Full(m)) => m,
            Err(TrySendError::Disconnected(_)) => return false,
        };
        loop {
            match self.tx.send_timeout(msg, SEND_RETRY) {
                Ok(()) => return true,
                Err(SendTimeoutError::Timeout(m)) if !self.runtime.is_stopping() => msg = m,
                Err(_) => return false,
            }
        }
    }
}

/// How long a waiting [`Publisher::send_waiting`] blocks before it checks
/// for shutdown.
const SEND_RETRY: Duration = Duration::from_millis(50);

impl Queued {
    /// The tick handed back to `publish`'s caller (`publish` queues only
    /// `Local` ticks).
    fn into_tick(self) -> Tick {
        match self {
            Queued::Local { tick, .. } | Queued::Sequenced { tick, .. } => tick,
            Queued::NewHistory { .. } | Queued::Batch(_) | Queued::LocalBatch { .. } => {
                Tick::default()
            }
        }
    }

    /// The ticks handed back to `publish_batch`'s caller.
    fn into_ticks(self) -> Vec<Tick> {
        match self {
            Queued::LocalBatch { ticks, .. } => ticks,
            other => vec![other.into_tick()],
        }
    }
}

/// The publisher thread's ends of its channels.
pub(crate) struct Inlet {
    /// What feeds publish.
    pub(crate) ticks: Receiver<Queued>,
    /// Dropping its sender ends the thread.
    pub(crate) stop: Receiver<()>,
    /// Where emptied batch vectors go back to the feeds.
    pub(crate) emptied: Sender<Vec<Tick>>,
}

/// Spawns the publisher thread.
pub(crate) fn spawn(
    inlet: Inlet,
    links: Vec<ShardLink>,
    pool: FramePool,
    runtime: Arc<Runtime>,
) -> Result<JoinHandle<()>> {
    let name = "tickcast-publisher".to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            PublisherThread::new(links, pool, inlet.emptied, runtime).run(&inlet.ticks, &inlet.stop)
        })
        .map_err(|source| Error::Spawn { name, source })
}

#[derive(Debug, Clone, Copy)]
struct SymState {
    id: SymId,
    /// The last `seq` published (0: none since a history restart).
    last: u64,
    /// The Redis feed that numbers it (its index), or `None`: numbered
    /// here, by `publish`.
    upstream: Option<usize>,
}

struct PublisherThread {
    links: Vec<ShardLink>,
    runtime: Arc<Runtime>,
    /// Per symbol: its id, the last `seq` assigned and which feed numbers
    /// it.
    state: ByName<SymState>,
    encoder: TickEncoder,
    /// Memory for the next frames: the ones the shards let go of.
    pool: FramePool,
    /// Ticks numbered and encoded, not yet sent to the shards (at most
    /// [`TICK_BATCH`]).
    outgoing: Vec<TickMsg>,
    /// Ticks handled since the shards were last woken.
    since_wake: usize,
    /// Batch vectors go back to the feeds here once published.
    emptied: Sender<Vec<Tick>>,
}

impl PublisherThread {
    fn new(
        links: Vec<ShardLink>,
        pool: FramePool,
        emptied: Sender<Vec<Tick>>,
        runtime: Arc<Runtime>,
    ) -> PublisherThread {
        PublisherThread {
            links,
            emptied,
            runtime,
            state: ByName::default(),
            encoder: TickEncoder::new(),
            pool,
            outgoing: Vec::with_capacity(TICK_BATCH),
            since_wake: 0,
        }
    }

    fn run(mut self, rx: &Receiver<Queued>, stop: &Receiver<()>) {
        loop {
            select! {
                recv(rx) -> t => match t {
                    Ok(q) => self.take(q),
                    Err(_) => break,
                },
                recv(stop) -> _ => break,
            }
            // Drain what else is queued, up to BATCH ticks (then the shards
            // are woken and `select!` sees `stop` again, so a feed that
            // never pauses cannot hold shutdown off); before the wait, one
            // yield lets a feed preempted in the middle of a burst (all
            // threads on one core) finish it first.
            let mut yielded = false;
            while self.since_wake < BATCH {
                match rx.try_recv() {
                    Ok(q) => self.take(q),
                    Err(TryRecvError::Empty) if !yielded => {
                        yielded = true;
                        std::thread::yield_now();
                    }
                    Err(_) => break,
                }
            }
            self.wake_shards();
        }
    }

    /// Sends the ticks not yet sent, and wakes every shard that sleeps (a
    /// fence and a load each if none does).
    fn wake_shards(&mut self) {
        self.send_outgoing();
        for link in &self.links {
            link.wake();
        }
        self.since_wake = 0;
    }

    /// The first tick of `symbol`: the groups whose prefixes take it learn
    /// it on every shard before the tick is sent, so their subscribers get
    /// it from `seq` 1. The book stays locked until the shards have the
    /// message (see [`crate::groups`]).
    fn announce(&mut self, symbol: &str, sym: SymId) {
        // The ticks before this one go first, in order.
        self.send_outgoing();
        let runtime = &self.runtime;
        let give_up = || runtime.is_stopping();
        let mut book = runtime.groups.lock();
        for name in book.first_tick(symbol) {
            for link in &self.links {
                let _ = link.send(
                    ShardMsg::AddToGroup {
                        name: name.clone(),
                        sym,
                    },
                    &give_up,
                );
            }
        }
    }

    fn take(&mut self, q: Queued) {
        match q {
            Queued::Local { tick, ts } => self.handle(&tick, None, ts),
            Queued::Sequenced {
                tick,
                seq,
                ts,
                feed,
            } => self.handle(&tick, Some((feed, seq)), ts),
            Queued::NewHistory { feed } => self.new_history(feed),
            Queued::LocalBatch { mut ticks, ts } => {
                for tick in &ticks {
                    self.handle(tick, None, ts);
                }
                ticks.clear();
                // Enough are waiting if the channel is full: freed here.
                let _ = self.emptied.try_send(ticks);
            }
            Queued::Batch(batch) => {
                for q in batch {
                    self.take(q);
                }
            }
        }
    }

    /// Feed `feed` began a new history: its symbols' numbering restarts,
    /// and every shard resets them, in order with the ticks.
    fn new_history(&mut self, feed: usize) {
        // The old history's ticks go first, in order.
        self.send_outgoing();
        let mut syms = Vec::new();
        for st in self
            .state
            .values_mut()
            .filter(|st| st.upstream == Some(feed))
        {
            st.last = 0;
            syms.push(st.id);
        }
        syms.sort_unstable();
        let syms: Arc<[SymId]> = syms.into();
        let runtime = &self.runtime;
        let give_up = || runtime.is_stopping();
        for link in &self.links {
            let _ = link.send(ShardMsg::NewHistory { syms: syms.clone() }, &give_up);
        }
    }

    /// The symbol's id and the tick's `seq`: the next one, or the one
    /// `given` by a feed (with the feed's index). `None`: the tick is
    /// refused (see the module doc).
    fn number(&mut self, symbol: &Symbol, given: Option<(usize, u64)>) -> Option<(SymId, u64)> {
        let known = match symbol.name() {
            Some(name) => self.state.get_mut(name),
            None => self.state.get_mut(symbol.as_bytes()),
        };
        if let Some(st) = known {
            let seq = match given {
                None if st.upstream.is_none() => st.last + 1,
                Some((feed, seq)) if st.upstream == Some(feed) && seq > st.last => seq,
                _ => return None,
            };
            st.last = seq;
            return Some((st.id, seq));
        }
        // Every tick was validated: its symbol fits.
        let name = Name::new(symbol)?;
        let id = self.runtime.symbols.intern(symbol);
        let seq = given.map_or(1, |(_, seq)| seq);
        let st = SymState {
            id,
            last: seq,
            upstream: given.map(|(feed, _)| feed),
        };
        self.state.insert(name, st);
        self.announce(symbol, id);
        Some((id, seq))
    }

    fn handle(&mut self, tick: &Tick, given: Option<(usize, u64)>, ts: u64) {
        let Some((sym, seq)) = self.number(&tick.symbol, given) else {
            crate::metrics::count(&self.runtime.counters.ticks_rejected);
            return;
        };
        let frame = self
            .pool
            .frame(self.encoder.encode_bytes(&tick.symbol, seq, ts, tick));
        self.outgoing.push(TickMsg {
            sym,
            seq,
            ts,
            frame,
        });
        if self.outgoing.len() == TICK_BATCH {
            self.send_outgoing();
        }
        self.since_wake += 1;
    }

    /// Sends the ticks encoded so far to every shard, as one batch shared
    /// by all of them, and counts them published.
    fn send_outgoing(&mut self) {
        if self.outgoing.is_empty() {
            return;
        }
        let next = self.pool.tick_batch();
        let batch = Arc::new(std::mem::replace(&mut self.outgoing, next));
        let published = batch.len() as u64;
        let runtime = &self.runtime;
        let give_up = || runtime.is_stopping();
        // The last shard gets the publisher's own reference: once the
        // others have dropped theirs, the one that finishes last holds the
        // only one and can take the frames out.
        // A shard that is gone or that stays full past shutdown misses the
        // ticks; its connections are being closed anyway.
        if let Some((last, others)) = self.links.split_last() {
            for link in others {
                let _ = link.send(ShardMsg::Ticks(batch.clone()), &give_up);
            }
            let _ = last.send(ShardMsg::Ticks(batch), &give_up);
        }
        crate::metrics::count_n(&self.runtime.counters.ticks_published, published);
        // What the shards returned meanwhile, for the next batch's frames.
        self.pool.collect();
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{BatchError, MAX_BATCH};
    use crate::{Broadcaster, Config, Tick};

    /// A broadcaster with no feed of its own, on a free port.
    fn start() -> Broadcaster {
        Broadcaster::start(Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            synthetic_rate: 0,
            pin_threads: false,
            ..Config::default()
        })
        .unwrap()
    }

    #[test]
    fn a_batch_is_published_whole_or_handed_back_whole() {
        let b = start();
        let p = b.publisher();
        let bad = vec![Tick::new("AAA").bid(1.0), Tick::new("BBB").bid(f64::NAN)];
        match p.publish_batch(bad) {
            Err(BatchError::Invalid { ticks, index, .. }) => {
                assert_eq!((ticks.len(), index), (2, 1))
            }
            other => panic!("{other:?}"),
        }
        let big = vec![Tick::new("AAA").bid(1.0); MAX_BATCH + 1];
        assert!(
            matches!(p.publish_batch(big), Err(BatchError::TooLarge(t)) if t.len() == MAX_BATCH + 1)
        );
        p.publish_batch(vec![Tick::new("AAA").bid(1.0), Tick::new("AAA").bid(2.0)])
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.stats().ticks_published < 2 {
            assert!(Instant::now() < deadline, "the batch was not published");
            std::thread::sleep(Duration::from_millis(5));
        }
        let s = b.stats();
        assert_eq!((s.ticks_published, s.ticks_rejected), (2, 0));
        b.shutdown().unwrap();
    }

    #[test]
    fn a_published_batch_vector_comes_back_empty_with_its_room() {
        let b = start();
        let p = b.publisher();
        assert_eq!(
            p.batch_buffer().capacity(),
            0,
            "none published yet: a new one"
        );
        let mut batch = Vec::with_capacity(100);
        batch.extend([Tick::new("AAA").bid(1.0), Tick::new("BBB").bid(2.0)]);
        let memory = batch.as_ptr();
        p.publish_batch(batch).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let back = loop {
            let v = p.batch_buffer();
            if v.capacity() > 0 {
                break v;
            }
            assert!(Instant::now() < deadline, "the vector did not come back");
            std::thread::sleep(Duration::from_millis(5));
        };
        assert!(back.is_empty());
        assert_eq!((back.capacity(), back.as_ptr()), (100, memory));
        // Handed back once, and its ticks are published.
        assert_eq!(p.batch_buffer().capacity(), 0);
        while b.stats().ticks_published < 2 {
            assert!(Instant::now() < deadline, "the batch was not published");
            std::thread::sleep(Duration::from_millis(5));
        }
        b.shutdown().unwrap();
    }
}
