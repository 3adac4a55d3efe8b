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
    started: Instant,
    /// Set once shutdown begins.
    stopping: AtomicBool,
}

impl Runtime {
    pub(crate) fn new(config: Config) -> Runtime {
        let feeds = FeedCells::new(config.feeds.len());
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

    /// Replaces the epoch (a feed that numbers ticks elsewhere, such as a
    /// Redis stream, names its own). Connections already open keep their
    /// stream; `welcome`s and `resume`s from now on use the new epoch.
    pub(crate) fn set_epoch(&self, epoch: String) {
        *self.epoch.write() = Arc::from(epoch);
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
        rt.set_epoch("e-redis".into());
        assert_eq!(&*rt.epoch(), "e-redis");
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
