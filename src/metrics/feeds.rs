//! [`FeedCells`]: the state of each configured upstream feed (a Redis
//! stream), written by its feed thread, read by `/healthz`, `/metrics` and
//! `/stats`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};

/// One feed: up or down, and how many times it tried to reconnect.
#[derive(Debug, Default)]
pub(crate) struct FeedCell {
    up: AtomicBool,
    reconnects: AtomicU64,
}

impl FeedCell {
    /// Marks the feed up or down; returns the previous state.
    pub(crate) fn set_up(&self, up: bool) -> bool {
        self.up.swap(up, Relaxed)
    }

    /// Counts one reconnect attempt.
    pub(crate) fn count_reconnect(&self) {
        self.reconnects.fetch_add(1, Relaxed);
    }
}

/// Every configured feed, by its index in `Config::feeds`. A feed is down
/// until its thread has connected once.
#[derive(Debug, Default)]
pub(crate) struct FeedCells(Box<[FeedCell]>);

impl FeedCells {
    pub(crate) fn new(feeds: usize) -> FeedCells {
        FeedCells((0..feeds).map(|_| FeedCell::default()).collect())
    }

    pub(crate) fn get(&self, i: usize) -> Option<&FeedCell> {
        self.0.get(i)
    }

    /// Feeds configured.
    pub(crate) fn configured(&self) -> usize {
        self.0.len()
    }

    /// Feeds down now.
    pub(crate) fn down(&self) -> usize {
        self.0.iter().filter(|c| !c.up.load(Relaxed)).count()
    }

    /// Reconnect attempts over every feed.
    pub(crate) fn reconnects(&self) -> u64 {
        self.0.iter().map(|c| c.reconnects.load(Relaxed)).sum()
    }
}
