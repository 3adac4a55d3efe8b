//! [`Runtime`]: the little state every thread may read: the validated
//! configuration, the symbol table, the group book, the counters and the
//! stop flag. A leaf:
//! it depends on nothing but its parts, so a thread module can be built and
//! tested from a `Runtime` alone, without the composition root.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::SystemTime;

use parking_lot::Mutex;

use crate::Config;
use crate::groups::GroupBook;
use crate::metrics::Counters;
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
    /// Set once shutdown begins.
    stopping: AtomicBool,
}

impl Runtime {
    pub(crate) fn new(config: Config) -> Runtime {
        Runtime {
            config,
            symbols: SymbolTable::default(),
            groups: Mutex::new(GroupBook::default()),
            counters: Counters::default(),
            stopping: AtomicBool::new(false),
        }
    }

    /// Returns true if and only if shutdown has begun.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Relaxed)
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
