//! [`Runtime`]: the little state every thread may read: the validated
//! configuration, the symbol table, the group book, the counters and the
//! stop flag. A leaf:
//! it depends on nothing but its parts, so a thread module can be built and
//! tested from a `Runtime` alone, without the composition root.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::Instant;

use parking_lot::{Mutex, RwLock};

use crate::Config;
use crate::groups::GroupBook;
use crate::metrics::{Counters, FeedCells, Metrics, ShardCells};
use crate::symbols::SymbolTable;

/// Shared, read-mostly state of one broadcaster.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// Validated once by `Broadcaster::start`; trusted from then on.
    pub(crate) config: Config,
    pub(crate) symbols: SymbolTable,
    /// The groups and the symbols published so far. Locked by the API and
    /// by the publisher (once per new symbol) while they send a change to
    /// the shards, so every shard sees group changes in the book's order.
    pub(crate) groups: Mutex<GroupBook>,
    pub(crate) counters: Counters,
    /// Each shard's published metrics, by shard id.
    pub(crate) shard_cells: ShardCells,
    /// The name of the `seq` space this node's ticks belong to, sent in
    /// every `welcome` and compared with a `resume`'s: fresh per process
    /// (see [`fresh_epoch`]); a Redis feed sets its stream's epoch (see
    /// `docs/protocol.md`).
    epoch: RwLock<Arc<str>>,
    /// Each Redis feed's stream epoch, by feed index (`None`: not known
    /// yet); the node's epoch is derived from them (see [`node_epoch`]).
    feed_epochs: Mutex<Vec<Option<String>>>,
    started: Instant,
    /// Set once shutdown begins.
    stopping: AtomicBool,
}

impl Runtime {
    pub(crate) fn new(config: Config) -> Runtime {
        let feeds = FeedCells::new(config.feeds.len());
        let config_feeds = config.feeds.len();
        Runtime {
            shard_cells: ShardCells::new(config.shards()),
            config,
            symbols: SymbolTable::default(),
            groups: Mutex::new(GroupBook::default()),
            counters: Counters {
                feeds,
                ..Counters::default()
            },
            epoch: RwLock::new(Arc::from(fresh_epoch())),
            feed_epochs: Mutex::new(vec![None; config_feeds]),
            started: Instant::now(),
            stopping: AtomicBool::new(false),
        }
    }

    /// Returns true if and only if shutdown has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Relaxed)
    }

    /// Every metric, given the admission counts (connections open,
    /// sockets held, refusals for the connection limit).
    pub(crate) fn metrics(&self, connections: usize, sockets: usize, refused_full: u64) -> Metrics {
        let figures = crate::metrics::ProcessFigures {
            connections,
            sockets,
            refused_full,
            uptime: self.started.elapsed(),
        };
        Metrics::collect(&self.counters, &self.shard_cells, figures)
    }

    /// The epoch in force: what `welcome` reports and a `resume` must name.
    pub(crate) fn epoch(&self) -> Arc<str> {
        self.epoch.read().clone()
    }

    /// Records the stream epoch of Redis feed `feed` and derives the
    /// node's epoch from every feed's (see [`node_epoch`]); until every
    /// feed knows its stream's epoch, the epoch in force stays. Returns
    /// the node's epoch if it changed. Connections already open keep their
    /// stream; `welcome`s and `resume`s from now on use the new epoch.
    pub(crate) fn set_feed_epoch(&self, feed: usize, epoch: Option<String>) -> Option<Arc<str>> {
        let mut epochs = self.feed_epochs.lock();
        let slot = epochs.get_mut(feed)?;
        *slot = epoch;
        let streams = self.config.feeds.iter().map(|f| f.stream.as_str());
        let derived = node_epoch(streams.zip(epochs.iter().map(Option::as_deref)))?;
        let mut current = self.epoch.write();
        if **current == *derived {
            return None;
        }
        *current = Arc::from(derived);
        Some(current.clone())
    }

    /// Marks the start of shutdown; threads that wait on others give up.
    pub(crate) fn begin_stopping(&self) {
        self.stopping.store(true, Relaxed);
    }
}

/// A new epoch for a process that numbers its own ticks: `seq` restarts
/// at 1 with the process, so every process must name a new sequence space.
/// `e-` and 16 hex digits of a SipHash, keyed by the OS's random source
/// (std's `RandomState`), of the wall clock and the process id: two
/// processes (even started in the same nanosecond, or with the same pid
/// after a restart) get different epochs with overwhelming probability.
pub(crate) fn fresh_epoch() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(unix_nanos());
    h.write_u32(std::process::id());
    format!("e-{:016x}", h.finish())
}

/// The epoch of a node fed from Redis streams, given each stream's name
/// and epoch in the order of `--feed`: with one stream, that stream's
/// epoch as it is (so a client can match it with the stream's
/// `<stream>:epoch` key); with several, `e-` and 16 hex digits of a 64-bit
/// FNV-1a hash of the names and epochs, which every node fed from the same
/// streams in the same order computes alike, and which changes when any of
/// them does. `None` while a stream's epoch is unknown.
pub(crate) fn node_epoch<'a>(
    streams: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> Option<String> {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut parts = Vec::new();
    for (stream, epoch) in streams {
        parts.push((stream, epoch?));
    }
    if let [(_, only)] = parts[..] {
        return Some(only.to_string());
    }
    if parts.is_empty() {
        return None;
    }
    let mut h = FNV_OFFSET;
    for (stream, epoch) in parts {
        // NUL cannot occur in either, so the encoding is unambiguous.
        for b in stream.bytes().chain([0]).chain(epoch.bytes()).chain([0]) {
            h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        }
    }
    Some(format!("e-{h:016x}"))
}

/// Nanoseconds since the UNIX epoch: the clock of `ts` fields, read at
/// publish and, for the publish-to-write latency, at each socket write
/// that completes ticks (0 if the clock is before 1970).
///
/// On unix it calls `clock_gettime(CLOCK_REALTIME)`, the clock
/// `SystemTime::now` reads, directly: `SystemTime::duration_since` adds
/// checked `timespec` arithmetic that, under callgrind, cost ~60
/// instructions per call, ~5% of all the server's instructions per frame
/// when each write carries one tick.
#[cfg(unix)]
#[inline]
pub(crate) fn unix_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusively borrowed timespec for the call
    // to write; CLOCK_REALTIME is supported on every unix.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    if rc != 0 || ts.tv_sec < 0 {
        return 0;
    }
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

/// Nanoseconds since the UNIX epoch (0 if the clock is before 1970).
#[cfg(not(unix))]
pub(crate) fn unix_nanos() -> u64 {
    use std::time::SystemTime;
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::SystemTime;

    #[test]
    fn epochs_are_fresh_per_process_and_settable() {
        let a = fresh_epoch();
        assert!(a.starts_with("e-") && a.len() == 18, "{a}");
        assert_ne!(a, fresh_epoch(), "a new random key each time");
        let rt = Runtime::new(Config::default());
        assert!(rt.epoch().starts_with("e-"));
        assert_eq!(rt.set_feed_epoch(0, Some("e-x".into())), None, "no feed 0");
    }

    fn fed_by(streams: &[&str]) -> Runtime {
        let feeds = streams
            .iter()
            .map(|s| crate::RedisFeed::parse(&format!("redis://h:1/{s}")).unwrap())
            .collect();
        Runtime::new(Config {
            feeds,
            ..Config::default()
        })
    }

    #[test]
    fn one_stream_gives_its_epoch_as_it_is() {
        let rt = fed_by(&["s"]);
        let local = rt.epoch();
        assert_eq!(rt.set_feed_epoch(0, None), None, "unknown: the epoch stays");
        assert_eq!(rt.epoch(), local);
        assert_eq!(
            rt.set_feed_epoch(0, Some("e-1".into())).as_deref(),
            Some("e-1")
        );
        assert_eq!(rt.set_feed_epoch(0, Some("e-1".into())), None, "no change");
        assert_eq!(
            rt.set_feed_epoch(0, Some("e-2".into())).as_deref(),
            Some("e-2")
        );
        assert_eq!(&*rt.epoch(), "e-2");
    }

    #[test]
    fn several_streams_give_one_epoch_derived_from_all() {
        let rt = fed_by(&["a", "b"]);
        let local = rt.epoch();
        assert_eq!(rt.set_feed_epoch(0, Some("e-1".into())), None, "b unknown");
        assert_eq!(rt.epoch(), local);
        let both = rt.set_feed_epoch(1, Some("e-9".into())).unwrap();
        assert!(both.starts_with("e-") && both.len() == 18, "{both}");
        // Another node with the same feeds computes the same epoch.
        let other = fed_by(&["a", "b"]);
        other.set_feed_epoch(1, Some("e-9".into()));
        assert_eq!(
            other.set_feed_epoch(0, Some("e-1".into())),
            Some(both.clone())
        );
        // Either stream's new history is a new node epoch.
        let next = rt.set_feed_epoch(1, Some("e-10".into())).unwrap();
        assert_ne!(next, both);
        // The names count: the same epochs on streams named otherwise differ.
        let renamed = fed_by(&["a", "c"]);
        renamed.set_feed_epoch(0, Some("e-1".into()));
        assert_ne!(renamed.set_feed_epoch(1, Some("e-9".into())), Some(both));
    }

    #[test]
    fn unix_nanos_reads_the_system_clock() {
        let before = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        let t = unix_nanos();
        let after = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        assert!(before <= t && t <= after, "{before} <= {t} <= {after}");
    }
}
