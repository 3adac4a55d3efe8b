//! [`Broadcaster`]: starts every thread, owns their handles, and shuts them
//! down in reverse order: stop the feed, stop accepting, stop the publisher,
//! close every client with 1001, join the shards.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::Waker;

use crate::admission::Admission;
use crate::feed::{publisher, redis_stream, synthetic};
use crate::inbox::{ShardLink, ShardMsg};
use crate::recycle::Recycler;
use crate::runtime::{Runtime, unix_nanos};
use crate::transport::ServerTls;
use crate::wire::{encode, protocol};
use crate::{Config, Error, GroupSpec, Metrics, Publisher, Result, Stats};

/// A running broadcaster: the acceptor, the publisher, the I/O shards and
/// (if configured) the synthetic feed.
///
/// ```
/// use tickcast::{Broadcaster, Config, Tick};
/// let mut config = Config::default();
/// config.listen = "127.0.0.1:0".parse().unwrap(); // any free port
/// config.synthetic_rate = 0;                        // no built-in feed
/// config.pin_threads = false;
/// let b = Broadcaster::start(config).unwrap();
/// b.set_group("us-tech", ["AAPL", "MSFT"]).unwrap();
/// b.publisher().publish(Tick::new("AAPL").bid(189.25)).unwrap();
/// b.notice("market closes in 5 minutes");
/// println!("listening on ws://{}/ws", b.local_addr());
/// b.shutdown().unwrap();
/// ```
#[derive(Debug)]
pub struct Broadcaster {
    runtime: Arc<Runtime>,
    admission: Arc<Admission>,
    links: Vec<ShardLink>,
    /// The certificate in force when the port speaks TLS.
    tls: Option<Arc<ServerTls>>,
    tick_tx: Sender<publisher::Queued>,
    /// `publish_batch` vectors the publisher emptied (see
    /// [`Publisher::batch_buffer`]).
    emptied_batches: Receiver<Vec<crate::Tick>>,
    local_addr: SocketAddr,
    threads: Option<Threads>,
}

#[derive(Debug)]
struct Threads {
    synthetic: Option<JoinHandle<()>>,
    synthetic_stop: Arc<AtomicBool>,
    /// One per `Config::feeds`; they end when the runtime is stopping.
    feeds: Vec<JoinHandle<()>>,
    acceptor: JoinHandle<()>,
    acceptor_waker: Arc<Waker>,
    publisher: JoinHandle<()>,
    publisher_stop: Sender<()>,
    shards: Vec<JoinHandle<()>>,
}

impl Broadcaster {
    /// Validates `config`, binds the listener and starts every thread.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`], [`Error::Tls`] naming a certificate or key
    /// file that cannot be used, [`Error::Bind`], or an error creating a
    /// poll or thread. Nothing is left running on error.
    ///
    /// ```
    /// use tickcast::{Broadcaster, Config};
    /// let bad = Config { queue_capacity: 0, ..Config::default() };
    /// assert!(Broadcaster::start(bad).is_err());
    /// ```
    pub fn start(mut config: Config) -> Result<Broadcaster> {
        config.validate()?;
        // JWT is one Authenticator: built here, from its key file.
        if let Some(jwt) = &config.jwt {
            config.auth = Some(Arc::new(crate::JwtAuthenticator::load(jwt)?));
        }
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(ServerTls::load(files)?)),
            None => None,
        };
        let listener = crate::acceptor::bind(config.listen)?;
        let local_addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
        let pin = config.pin_threads;
        let admission = Arc::new(Admission::new(&config));
        let runtime = Arc::new(Runtime::new(config));
        let (recycler, pool) = crate::recycle::pair();
        let (links, shards) = spawn_shards(&runtime, &admission, &tls, pin, &recycler)?;
        let (tick_tx, tick_rx) = crossbeam_channel::bounded(runtime.config.publish_queue);
        let (emptied_tx, emptied_batches) = publisher::emptied_batches();
        let (publisher_stop, stop_rx) = crossbeam_channel::bounded(0);
        let publisher = match publisher::spawn(
            publisher::Inlet {
                ticks: tick_rx,
                stop: stop_rx,
                emptied: emptied_tx,
            },
            links.clone(),
            pool,
            runtime.clone(),
        ) {
            Ok(h) => h,
            Err(e) => {
                stop_shards(&links, shards);
                return Err(e);
            }
        };
        let (acceptor_waker, acceptor) = match crate::acceptor::spawn(
            listener,
            links.clone(),
            runtime.clone(),
            admission.clone(),
        ) {
            Ok(x) => x,
            Err(e) => {
                drop(publisher_stop);
                let _ = publisher.join();
                stop_shards(&links, shards);
                return Err(e);
            }
        };
        let mut b = Broadcaster {
            runtime: runtime.clone(),
            admission,
            links,
            tls,
            tick_tx,
            emptied_batches,
            local_addr,
            threads: Some(Threads {
                synthetic: None,
                synthetic_stop: Arc::new(AtomicBool::new(false)),
                feeds: Vec::new(),
                acceptor,
                acceptor_waker,
                publisher,
                publisher_stop,
                shards,
            }),
        };
        b.start_feeds()?;
        Ok(b)
    }

    /// Starts the feeds the config names: the synthetic one (with its
    /// groups) and one thread per Redis stream.
    fn start_feeds(&mut self) -> Result<()> {
        if self.runtime.config.synthetic_rate > 0 {
            let u = synthetic::universe(self.runtime.config.synthetic_symbols);
            for (name, symbols) in &u.groups {
                self.set_group(name, symbols)?;
            }
            let stop = self
                .threads
                .as_ref()
                .map(|t| t.synthetic_stop.clone())
                .unwrap_or_default();
            let h = synthetic::spawn(
                self.publisher(),
                &u,
                self.runtime.config.synthetic_rate,
                stop,
            )?;
            if let Some(t) = self.threads.as_mut() {
                t.synthetic = Some(h);
            }
        }
        for i in 0..self.runtime.config.feeds.len() {
            let h = redis_stream::node::spawn(
                i,
                self.publisher(),
                self.links.clone(),
                self.runtime.clone(),
            )?;
            if let Some(t) = self.threads.as_mut() {
                t.feeds.push(h);
            }
        }
        Ok(())
    }

    /// A handle for feed handlers: cloneable, `Send`, never blocks.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// let p = b.publisher();
    /// std::thread::spawn(move || p.publish(tickcast::Tick::new("AAPL").last(189.26)))
    ///     .join().unwrap().unwrap();
    /// ```
    pub fn publisher(&self) -> Publisher {
        Publisher::new(
            self.tick_tx.clone(),
            self.emptied_batches.clone(),
            self.runtime.clone(),
        )
    }

    /// The epoch every `welcome` reports: the name of the `seq` space,
    /// which a client's `resume` must match. New per process unless a feed
    /// (a Redis stream) sets its own.
    pub fn epoch(&self) -> String {
        self.runtime.epoch().to_string()
    }

    /// The address the broadcaster listens on (useful with port 0).
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// assert!(b.local_addr().port() != 0);
    /// ```
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration in force.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// assert_eq!(b.config().queue_capacity, 4096);
    /// ```
    pub fn config(&self) -> &Config {
        &self.runtime.config
    }

    /// Defines group `name` as `symbols`, or replaces its definition.
    /// Connections subscribed to the group follow the new definition at
    /// once, with a `snapshot` for each symbol they newly receive.
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name or symbol, [`Error::Stopped`] after
    /// shutdown.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// b.set_group("fx-majors", ["EURUSD", "GBPUSD"]).unwrap();
    /// b.set_group("fx-majors", ["EURUSD", "GBPUSD", "USDJPY"]).unwrap(); // replace
    /// assert!(b.set_group("*", ["X"]).is_err());
    /// assert_eq!(b.groups()[0].1.len(), 3);
    /// ```
    pub fn set_group<I, S>(&self, name: &str, symbols: I) -> Result<()>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.set_group_spec(name, GroupSpec::exact(symbols))
    }

    /// Defines group `name` as `spec`, or replaces its definition. A
    /// prefix takes every symbol published so far that starts with it,
    /// and each symbol published later from its first tick (`seq` 1), so
    /// subscribers of the group miss none of it. Subscribers follow a new
    /// definition at once, as with [`Broadcaster::set_group`].
    ///
    /// # Errors
    /// [`Error::Invalid`] for a bad name, symbol or prefix (an empty prefix
    /// is refused: the group `*` is every symbol), [`Error::Stopped`] after
    /// shutdown.
    ///
    /// ```
    /// use tickcast::{GroupSpec, Tick};
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// b.set_group_spec("all-eur", GroupSpec::from_entries(["EUR*"])).unwrap();
    /// b.publisher().publish(Tick::new("EURUSD").bid(1.08)).unwrap();
    /// # let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    /// # while b.groups()[0].1.is_empty() && std::time::Instant::now() < deadline {
    /// #     std::thread::sleep(std::time::Duration::from_millis(1));
    /// # }
    /// assert_eq!(b.groups(), [("all-eur".to_string(), vec!["EURUSD".to_string()])]);
    /// assert!(b.set_group_spec("x", GroupSpec::from_entries(["*"])).is_err());
    /// ```
    pub fn set_group_spec(&self, name: &str, spec: GroupSpec) -> Result<()> {
        crate::tick::validate_group(name).map_err(|reason| Error::Invalid {
            what: "group name",
            reason,
        })?;
        spec.validate().map_err(|reason| Error::Invalid {
            what: "group",
            reason,
        })?;
        // Locked until every shard has the definition: see `crate::groups`.
        let mut book = self.runtime.groups.lock();
        let names = book.resolve(&spec);
        let ids: Arc<[u32]> = names
            .iter()
            .map(|s| self.runtime.symbols.intern(s))
            .collect();
        let name_arc: Arc<str> = Arc::from(name);
        self.to_every_shard(|| ShardMsg::SetGroup {
            name: name_arc.clone(),
            symbols: ids.clone(),
        })?;
        book.define(name, spec, names);
        Ok(())
    }

    /// Removes group `name`. Its subscribers get an `unsubscribed` message
    /// (without `id`) naming the group. Returns false if there was no such
    /// group.
    ///
    /// # Errors
    /// [`Error::Stopped`] after shutdown.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// b.set_group("crypto", ["BTC-USD"]).unwrap();
    /// assert!(b.remove_group("crypto").unwrap());
    /// assert!(!b.remove_group("crypto").unwrap());
    /// ```
    pub fn remove_group(&self, name: &str) -> Result<bool> {
        let mut book = self.runtime.groups.lock();
        let existed = book.remove(name);
        if existed {
            let name: Arc<str> = Arc::from(name);
            self.to_every_shard(|| ShardMsg::RemoveGroup { name: name.clone() })?;
        }
        Ok(existed)
    }

    /// The groups as last defined: `(name, symbols)`, sorted by name. A
    /// group defined with prefixes lists the symbols it holds now: its
    /// exact symbols, then those its prefixes took, in publishing order.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// b.set_group("b", ["B1"]).unwrap();
    /// b.set_group("a", ["A1", "A2"]).unwrap();
    /// let names: Vec<_> = b.groups().into_iter().map(|(n, _)| n).collect();
    /// assert_eq!(names, ["a", "b"]);
    /// ```
    pub fn groups(&self) -> Vec<(String, Vec<String>)> {
        self.runtime.groups.lock().list()
    }

    /// Sends a `notice` to every open connection.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// b.notice("market closes in 5 minutes");
    /// ```
    pub fn notice(&self, text: &str) {
        let frame = encode::json(&protocol::notice(unix_nanos(), text));
        let _ = self.to_every_shard(|| ShardMsg::Notice {
            user: None,
            frame: frame.clone(),
        });
    }

    /// Sends a `notice` to the open connections of `user` (as named by the
    /// configured [`Authenticator`](crate::Authenticator)).
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// b.notice_user("alice", "your limit was raised");
    /// ```
    pub fn notice_user(&self, user: &str, text: &str) {
        let frame = encode::json(&protocol::notice(unix_nanos(), text));
        let user: Arc<str> = Arc::from(user);
        let _ = self.to_every_shard(|| ShardMsg::Notice {
            user: Some(user.clone()),
            frame: frame.clone(),
        });
    }

    /// The counters, summed over every thread.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// let s = b.stats();
    /// assert_eq!((s.connections, s.evicted_slow), (0, 0));
    /// ```
    pub fn stats(&self) -> Stats {
        self.metrics().stats
    }

    /// Every metric: the totals, the same per shard and by reason, and the
    /// publish-to-write latency. What `/metrics` and `/stats` serve.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// let m = b.metrics();
    /// assert_eq!(m.closes_for(tickcast::Disconnect::SlowConsumer), 0);
    /// println!("p99 {} µs", m.publish_to_write.p99_us);
    /// ```
    pub fn metrics(&self) -> Metrics {
        let a = &self.admission;
        self.runtime
            .metrics(a.open(), a.sockets(), a.refused_full())
    }

    /// Reads the TLS certificate and key files (`Config::tls`) again and
    /// serves every new connection with them; connections already open
    /// keep theirs and are not disturbed. What the binary does on SIGHUP.
    ///
    /// # Errors
    /// [`Error::Tls`] naming the file that cannot be used (the certificate
    /// in force is kept), or [`Error::InvalidConfig`] if TLS is not
    /// configured.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// assert!(b.reload_tls().is_err(), "a plain broadcaster has no certificate");
    /// ```
    pub fn reload_tls(&self) -> Result<()> {
        match &self.tls {
            Some(tls) => tls.reload(),
            None => Err(Error::InvalidConfig("tls is not configured".into())),
        }
    }

    /// Closes every client with 1001, joins every thread, and returns when
    /// all are gone (at most about `close_linger` after the call, plus the
    /// time to drain shard inboxes).
    ///
    /// # Errors
    /// [`Error::ThreadPanicked`] naming a thread that panicked.
    ///
    /// ```
    /// # let b = tickcast::Broadcaster::start(tickcast::Config {
    /// #     listen: "127.0.0.1:0".parse().unwrap(), synthetic_rate: 0, pin_threads: false,
    /// #     io_threads: 1, ..Default::default() }).unwrap();
    /// let p = b.publisher();
    /// b.shutdown().unwrap();
    /// assert!(p.publish(tickcast::Tick::new("AAPL")).is_err());
    /// ```
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn to_every_shard(&self, mut msg: impl FnMut() -> ShardMsg) -> Result<()> {
        if self.runtime.is_stopping() {
            return Err(Error::Stopped);
        }
        let give_up = || self.runtime.is_stopping();
        for link in &self.links {
            link.send(msg(), &give_up).map_err(|_| Error::Stopped)?;
            link.wake();
        }
        Ok(())
    }

    fn stop(&mut self) -> Result<()> {
        let Some(t) = self.threads.take() else {
            return Ok(());
        };
        let mut panicked = None;
        let mut join = |name: &str, h: JoinHandle<()>| {
            if h.join().is_err() && panicked.is_none() {
                panicked = Some(name.to_string());
            }
        };
        self.runtime.begin_stopping();
        t.synthetic_stop.store(true, Relaxed);
        if let Some(h) = t.synthetic {
            join("tickcast-synthetic", h);
        }
        for (i, h) in t.feeds.into_iter().enumerate() {
            join(&format!("tickcast-feed-{i}"), h);
        }
        let _ = t.acceptor_waker.wake();
        join("tickcast-acceptor", t.acceptor);
        drop(t.publisher_stop);
        join("tickcast-publisher", t.publisher);
        // The inbox may be full of ticks; the shard drains it within a few
        // turns. The bound only matters if a shard is wedged.
        let deadline = Instant::now() + Duration::from_secs(10);
        let give_up = || Instant::now() >= deadline;
        for link in &self.links {
            let _ = link.send(ShardMsg::Shutdown, &give_up);
            link.wake();
        }
        for (i, h) in t.shards.into_iter().enumerate() {
            join(&format!("tickcast-shard-{i}"), h);
        }
        match panicked {
            Some(name) => Err(Error::ThreadPanicked { name }),
            None => Ok(()),
        }
    }
}

/// Spawns one shard per metrics cell (`Runtime::new` sized them from the
/// config), each pinned to a core when `pin` and the cores are known. On
/// failure the shards already started are stopped.
fn spawn_shards(
    runtime: &Arc<Runtime>,
    admission: &Arc<Admission>,
    tls: &Option<Arc<ServerTls>>,
    pin: bool,
    recycler: &Recycler,
) -> Result<(Vec<ShardLink>, Vec<JoinHandle<()>>)> {
    let cores = if pin {
        core_affinity::get_core_ids()
    } else {
        None
    };
    let n = runtime.shard_cells.len();
    let mut links = Vec::with_capacity(n);
    let mut shards = Vec::with_capacity(n);
    for i in 0..n {
        let core = cores
            .as_ref()
            .and_then(|c| c.get(i % c.len().max(1)).copied());
        let recycler = recycler.clone();
        match crate::shard::spawn(
            i,
            runtime.clone(),
            admission.clone(),
            tls.clone(),
            core,
            recycler,
        ) {
            Ok((link, handle)) => {
                links.push(link);
                shards.push(handle);
            }
            Err(e) => {
                stop_shards(&links, shards);
                return Err(e);
            }
        }
    }
    Ok((links, shards))
}

/// Tells every shard to stop and joins them (start-up failed).
fn stop_shards(links: &[ShardLink], shards: Vec<JoinHandle<()>>) {
    for l in links {
        let _ = l.try_send(ShardMsg::Shutdown);
        l.wake();
    }
    for h in shards {
        let _ = h.join();
    }
}

impl Drop for Broadcaster {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
