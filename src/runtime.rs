//! [`Runtime`]: the little state every thread may read: the validated
//! configuration, the symbol table, the counters and the stop flag. A leaf:
//! it depends on nothing but its parts, so a thread module can be built and
//! tested from a `Runtime` alone, without the composition root.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Instant, SystemTime};

use crate::Config;
use crate::metrics::{Counters, Metrics, ShardCells};
use crate::symbols::SymbolTable;

/// Shared, read-mostly state of one broadcaster.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// Validated once by `Broadcaster::start`; trusted from then on.
    pub(crate) config: Config,
    pub(crate) symbols: SymbolTable,
    pub(crate) counters: Counters,
    /// Each shard's published metrics, by shard id.
    pub(crate) shard_cells: ShardCells,
    started: Instant,
    /// Set once shutdown begins.
    stopping: AtomicBool,
}

impl Runtime {
    pub(crate) fn new(config: Config) -> Runtime {
        Runtime {
            shard_cells: ShardCells::new(config.shards()),
            config,
            symbols: SymbolTable::default(),
            counters: Counters::default(),
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

    /// Marks the start of shutdown; threads that wait on others give up.
    pub(crate) fn begin_stopping(&self) {
        self.stopping.store(true, Relaxed);
    }
}

/// Nanoseconds since the UNIX epoch: the clock of `ts` fields.
pub(crate) fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
