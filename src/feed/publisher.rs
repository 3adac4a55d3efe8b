//! The publisher: the one thread that stamps and serializes ticks.
//!
//! Feed handlers call [`Publisher::publish`] from any thread; it validates
//! the tick, stamps `ts` and hands it over a bounded channel without ever
//! blocking. The publisher thread assigns each symbol's next `seq`,
//! serializes the tick once into a complete WebSocket frame
//! ([`TickEncoder`]) and sends that one `Arc`'d frame to every shard: one
//! channel send per shard, never one per connection. Shards are woken only
//! if asleep ([`crate::wake`]), once per batch.
//!
//! Invariant: `seq` values are assigned in the order ticks leave the
//! publisher, which is the order every shard receives them.

use std::collections::HashMap;
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, select};

use crate::inbox::{ShardLink, ShardMsg};
use crate::runtime::{Runtime, unix_nanos};
use crate::symbols::SymId;
use crate::wire::encode::TickEncoder;
use crate::{Error, Result, Tick};

/// Ticks taken from the queue per batch before the shards are woken: a
/// busy feed costs one wake check per shard per 1,024 ticks.
const BATCH: usize = 1024;

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
    tx: Sender<(Tick, u64)>,
    runtime: Arc<Runtime>,
}

impl Publisher {
    pub(crate) fn new(tx: Sender<(Tick, u64)>, runtime: Arc<Runtime>) -> Publisher {
        Publisher { tx, runtime }
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
        match self.tx.try_send((tick, unix_nanos())) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full((tick, _))) => {
                crate::metrics::count(&self.runtime.counters.ticks_rejected);
                Err(PublishError::Full(tick))
            }
            Err(TrySendError::Disconnected((tick, _))) => Err(PublishError::Stopped(tick)),
        }
    }
}

/// Spawns the publisher thread. Dropping `stop`'s sender ends it.
pub(crate) fn spawn(
    rx: Receiver<(Tick, u64)>,
    stop: Receiver<()>,
    links: Vec<ShardLink>,
    runtime: Arc<Runtime>,
) -> Result<JoinHandle<()>> {
    let name = "tickcast-publisher".to_string();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || PublisherThread::new(links, runtime).run(&rx, &stop))
        .map_err(|source| Error::Spawn { name, source })
}

struct PublisherThread {
    links: Vec<ShardLink>,
    runtime: Arc<Runtime>,
    /// Per symbol: its id and the last `seq` assigned.
    state: HashMap<String, (SymId, u64)>,
    encoder: TickEncoder,
}

impl PublisherThread {
    fn new(links: Vec<ShardLink>, runtime: Arc<Runtime>) -> PublisherThread {
        PublisherThread {
            links,
            runtime,
            state: HashMap::new(),
            encoder: TickEncoder::new(),
        }
    }

    fn run(mut self, rx: &Receiver<(Tick, u64)>, stop: &Receiver<()>) {
        loop {
            select! {
                recv(rx) -> t => match t {
                    Ok((tick, ts)) => self.handle(&tick, ts),
                    Err(_) => break,
                },
                recv(stop) -> _ => break,
            }
            for (tick, ts) in rx.try_iter().take(BATCH - 1) {
                self.handle(&tick, ts);
            }
            for link in &self.links {
                link.wake();
            }
        }
    }

    /// The first tick of `symbol`: the groups whose prefixes take it learn
    /// it on every shard before the tick is sent, so their subscribers get
    /// it from `seq` 1. The book stays locked until the shards have the
    /// message (see [`crate::groups`]).
    fn announce(&self, symbol: &str, sym: SymId) {
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

    fn handle(&mut self, tick: &Tick, ts: u64) {
        let (sym, seq) = match self.state.get_mut(tick.symbol.as_str()) {
            Some(st) => {
                st.1 += 1;
                *st
            }
            None => {
                let id = self.runtime.symbols.intern(&tick.symbol);
                self.state.insert(tick.symbol.clone(), (id, 1));
                self.announce(&tick.symbol, id);
                (id, 1)
            }
        };
        let frame = self.encoder.encode(&tick.symbol, seq, ts, tick);
        let runtime = &self.runtime;
        let give_up = || runtime.is_stopping();
        for link in &self.links {
            // A shard that is gone or that stays full past shutdown misses
            // the tick; its connections are being closed anyway.
            let _ = link.send(
                ShardMsg::Tick {
                    sym,
                    seq,
                    ts,
                    frame: frame.clone(),
                },
                &give_up,
            );
        }
        crate::metrics::count(&self.runtime.counters.ticks_published);
    }
}
