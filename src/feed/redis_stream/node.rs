//! The feed thread of one Redis stream (`--feed redis://HOST:PORT/STREAM`):
//! connect, install the function, read the stream's epoch, replay what the
//! stream retains, then follow it with `XREAD BLOCK`, publishing every
//! entry with its own `seq` and `ts`.
//!
//! Faults: any Redis error marks the feed down (every connection gets
//! `feed_status` `down`, `/healthz` answers 503), then the thread
//! reconnects with exponential backoff and jitter ([`Backoff`]) and
//! continues after the last entry it consumed, so within the stream's
//! retention nothing is lost and nothing is published twice. If the
//! stream's epoch changed meanwhile (its history was lost), it tells the
//! publisher the numbering restarts and replays the new history from the
//! start.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use redis::Connection;

use super::entry;
use crate::RedisFeed;
use crate::feed::publisher::{Publisher, Queued};
use crate::inbox::{ShardLink, ShardMsg};
use crate::metrics::FeedCell;
use crate::runtime::{Runtime, unix_nanos};
use crate::wire::{encode, protocol};
use crate::{Error, Result};

/// Entries per `XREAD`: large enough that catching up on a full stream
/// costs one round trip per 1,024 ticks.
const READ_COUNT: usize = 1024;
/// How long one `XREAD` waits for new entries; also how soon the thread
/// notices shutdown, and checks the epoch while the stream is idle.
const BLOCK: Duration = Duration::from_millis(200);
/// Socket read timeout: `BLOCK` plus room for a slow Redis. A Redis that
/// says nothing for this long is taken as down.
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed to open the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// While busy, the epoch is checked at least this often (and after every
/// read while it is unknown).
const EPOCH_CHECK: Duration = Duration::from_secs(1);

/// Reconnect delays: the first retry after `FIRST`, doubling up to `MAX`;
/// each delay is drawn uniformly from its upper half (jitter), so nodes
/// that lost the same Redis do not all come back at the same instant.
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
    rng: u64,
}

impl Backoff {
    pub(crate) const FIRST: Duration = Duration::from_millis(100);
    pub(crate) const MAX: Duration = Duration::from_secs(5);

    pub(crate) fn new(seed: u64) -> Backoff {
        Backoff {
            next: Backoff::FIRST,
            rng: seed | 1,
        }
    }

    /// The delay before the next attempt, in `[d/2, d]` for the current
    /// `d`; doubles `d` up to `MAX`.
    pub(crate) fn delay(&mut self) -> Duration {
        // xorshift64: plenty for jitter.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let d = self.next;
        self.next = (d * 2).min(Backoff::MAX);
        let half = d / 2;
        half + Duration::from_nanos(self.rng % (half.as_nanos() as u64 + 1))
    }

    /// After a success: the next failure retries after `FIRST` again.
    pub(crate) fn reset(&mut self) {
        self.next = Backoff::FIRST;
    }
}

/// Spawns the feed thread for `feed`, the `index`-th of `Config::feeds`.
pub(crate) fn spawn(
    index: usize,
    publisher: Publisher,
    links: Vec<ShardLink>,
    runtime: Arc<Runtime>,
) -> Result<JoinHandle<()>> {
    let name = format!("tickcast-feed-{index}");
    let feed = runtime.config.feeds[index].clone();
    let thread = FeedThread {
        index,
        feed,
        publisher,
        links,
        runtime,
        last_id: "0-0".to_string(),
        epoch: None,
    };
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || thread.run())
        .map_err(|source| Error::Spawn { name, source })
}

struct FeedThread {
    index: usize,
    feed: RedisFeed,
    publisher: Publisher,
    links: Vec<ShardLink>,
    runtime: Arc<Runtime>,
    /// The id of the last entry published; the next read starts after it.
    last_id: String,
    /// The stream's epoch when last read (`None`: no stream yet).
    epoch: Option<String>,
}

impl FeedThread {
    fn cell(&self) -> Option<&FeedCell> {
        self.runtime.counters.feeds.get(self.index)
    }

    fn run(mut self) {
        let mut backoff = Backoff::new(unix_nanos() ^ self.index as u64);
        let mut down_since = Some(unix_nanos());
        while !self.runtime.is_stopping() {
            let err = match self.connect() {
                Ok(mut conn) => {
                    self.set_up(true, "");
                    down_since = None;
                    backoff.reset();
                    match self.follow(&mut conn) {
                        Ok(()) => return, // stopping
                        Err(e) => e,
                    }
                }
                Err(e) => e,
            };
            let since = *down_since.get_or_insert_with(unix_nanos);
            let text = format!(
                "feed {}/{} unreachable since {}: {err}; prices are stale",
                self.feed.redis_url,
                self.feed.stream,
                clock_of(since)
            );
            if self.set_up(false, &text) {
                tracing::warn!(feed = %self.feed.stream, error = %err, "feed down");
            }
            if let Some(c) = self.cell() {
                c.count_reconnect();
            }
            self.pause(backoff.delay());
        }
    }

    /// Connects, installs the function and reads the epoch.
    fn connect(&mut self) -> std::result::Result<Connection, String> {
        let client =
            redis::Client::open(self.feed.redis_url.as_str()).map_err(|e| e.to_string())?;
        let mut conn = client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|e| e.to_string())?;
        conn.set_read_timeout(Some(READ_TIMEOUT))
            .and_then(|()| conn.set_write_timeout(Some(READ_TIMEOUT)))
            .map_err(|e| e.to_string())?;
        super::install(&mut conn).map_err(|e| format!("FUNCTION LOAD: {e}"))?;
        self.check_epoch(&mut conn)?;
        Ok(conn)
    }

    /// Reads the stream's epoch. A different one than before (the stream's
    /// history was lost, and maybe begun again) restarts the numbering and
    /// the replay. The first epoch seen is adopted as it is: entries read
    /// while the epoch was unknown were written under it.
    fn check_epoch(&mut self, conn: &mut Connection) -> std::result::Result<(), String> {
        let epoch: Option<String> = redis::cmd("GET")
            .arg(format!("{}:epoch", self.feed.stream))
            .query(conn)
            .map_err(|e| e.to_string())?;
        if epoch == self.epoch {
            return Ok(());
        }
        if self.epoch.is_some() {
            tracing::warn!(feed = %self.feed.stream, old = ?self.epoch, new = ?epoch,
                "the stream's history restarted (new epoch): replaying it from the start");
            if !self.publisher.send_waiting(Queued::NewHistory) {
                return Ok(());
            }
            self.last_id = "0-0".to_string();
        }
        if let Some(e) = &epoch {
            self.runtime.set_epoch(e.clone());
        }
        self.epoch = epoch;
        Ok(())
    }

    /// Reads and publishes until an error (returned) or shutdown (`Ok`).
    fn follow(&mut self, conn: &mut Connection) -> std::result::Result<(), String> {
        let mut checked = std::time::Instant::now();
        while !self.runtime.is_stopping() {
            type Reply = Option<Vec<(String, Vec<(String, Vec<Vec<u8>>)>)>>;
            let reply: Reply = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(BLOCK.as_millis() as u64)
                .arg("STREAMS")
                .arg(&self.feed.stream)
                .arg(&self.last_id)
                .query(conn)
                .map_err(|e| e.to_string())?;
            let entries = reply.into_iter().flatten().flat_map(|(_, e)| e);
            let mut idle = true;
            for (id, fields) in entries {
                idle = false;
                match entry::parse(&fields) {
                    Ok(e) => {
                        let q = Queued::Sequenced {
                            tick: e.tick,
                            seq: e.seq,
                            ts: e.ts,
                        };
                        if !self.publisher.send_waiting(q) {
                            return Ok(());
                        }
                    }
                    Err(why) => {
                        crate::metrics::count(&self.runtime.counters.ticks_rejected);
                        tracing::warn!(feed = %self.feed.stream, %id, %why, "stream entry skipped");
                    }
                }
                self.last_id = id;
            }
            if idle || self.epoch.is_none() || checked.elapsed() >= EPOCH_CHECK {
                self.check_epoch(conn)?;
                checked = std::time::Instant::now();
            }
        }
        Ok(())
    }

    /// Marks the feed up or down; on a change, every connection gets a
    /// `feed_status`. Returns true if the state changed.
    fn set_up(&self, up: bool, text: &str) -> bool {
        let Some(cell) = self.cell() else {
            return false;
        };
        if cell.set_up(up) == up {
            return false;
        }
        let text = if up {
            format!("feed {}/{} is up", self.feed.redis_url, self.feed.stream)
        } else {
            text.to_string()
        };
        let state = if up { "up" } else { "down" };
        let frame = encode::json(&protocol::feed_status(unix_nanos(), state, &text));
        let runtime = &self.runtime;
        let give_up = || runtime.is_stopping();
        for link in &self.links {
            let _ = link.send(
                ShardMsg::Notice {
                    user: None,
                    frame: frame.clone(),
                },
                &give_up,
            );
            link.wake();
        }
        true
    }

    /// Sleeps `d`, waking early for shutdown.
    fn pause(&self, d: Duration) {
        let end = std::time::Instant::now() + d;
        while !self.runtime.is_stopping() {
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }
}

/// `HH:MM:SSZ` (UTC) of a time in nanoseconds since 1970.
fn clock_of(nanos: u64) -> String {
    let s = nanos / 1_000_000_000 % 86_400;
    format!("{:02}:{:02}:{:02}Z", s / 3600, s / 60 % 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_bound_with_jitter() {
        let mut b = Backoff::new(42);
        let mut bound = Backoff::FIRST;
        for _ in 0..12 {
            let d = b.delay();
            assert!(
                bound / 2 <= d && d <= bound,
                "{d:?} outside [{:?}, {bound:?}]",
                bound / 2
            );
            bound = (bound * 2).min(Backoff::MAX);
        }
        b.reset();
        assert!(b.delay() <= Backoff::FIRST);
    }

    #[test]
    fn clock_is_utc_time_of_day() {
        assert_eq!(clock_of(1_763_775_000_123_456_789), "01:30:00Z");
    }
}
