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
use std::io::Write;

use super::resp::{self, StreamReader};
use crate::RedisFeed;
use crate::feed::publisher::{MAX_BATCH, Publisher, Queued};
use crate::inbox::{ShardLink, ShardMsg};
use crate::metrics::FeedCell;
use crate::runtime::{Runtime, unix_nanos};
use crate::wire::{encode, protocol};
use crate::{Error, Result};

/// Entries per `XREAD`: large enough that catching up on a full stream
/// costs one round trip per 1,024 ticks.
const READ_COUNT: usize = 1024;
/// How long one `XREAD` waits for new entries; also how soon the thread
/// notices shutdown, and a new epoch while the stream is idle.
const BLOCK: Duration = Duration::from_millis(200);
/// Socket read timeout: `BLOCK` plus room for a slow Redis. A Redis that
/// says nothing for this long is taken as down.
const READ_TIMEOUT: Duration = Duration::from_secs(3);
/// Time allowed to open the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

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
                Ok(conn) => {
                    self.set_up(true, "");
                    down_since = None;
                    backoff.reset();
                    drop(conn); // the read loop has its own connection
                    match self.follow() {
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

    /// Reads the stream's epoch (see [`FeedThread::take_epoch`]).
    fn check_epoch(&mut self, conn: &mut Connection) -> std::result::Result<(), String> {
        let epoch: Option<String> = redis::cmd("GET")
            .arg(format!("{}:epoch", self.feed.stream))
            .query(conn)
            .map_err(|e| e.to_string())?;
        self.take_epoch(epoch);
        Ok(())
    }

    /// Takes the stream's epoch as just read. A different one than before
    /// (the stream's history was lost, and maybe begun again) restarts the
    /// numbering and the replay: returns true. The first epoch seen is
    /// adopted as it is: entries read while the epoch was unknown were
    /// written under it.
    fn take_epoch(&mut self, epoch: Option<String>) -> bool {
        if epoch == self.epoch {
            return false;
        }
        let restarted = self.epoch.is_some();
        if restarted {
            tracing::warn!(feed = %self.feed.stream, old = ?self.epoch, new = ?epoch,
                "the stream's history restarted (new epoch): replaying it from the start");
            // Fails only at shutdown, which the caller's loop sees next.
            let _ = self
                .publisher
                .send_waiting(Queued::NewHistory { feed: self.index });
            self.last_id = "0-0".to_string();
        }
        if let Some(node) = self.runtime.set_feed_epoch(self.index, epoch.clone()) {
            tracing::info!(feed = %self.feed.stream, stream_epoch = ?epoch, epoch = %node,
                "the node's epoch");
        }
        self.epoch = epoch;
        restarted
    }

    /// Reads and publishes until an error (returned) or shutdown (`Ok`).
    ///
    /// Each read is `XREAD BLOCK` pipelined with `GET <stream>:epoch`
    /// ([`resp::read_request`]): Redis runs a client's commands in order,
    /// so the epoch is read after the entries. The same epoch as before
    /// means no new history began before the read (the function sets a new
    /// epoch whenever it recreates the stream), so every entry belongs to
    /// the numbering in force. A new one means the entries may not: they
    /// are dropped, and the new history is read from its start.
    ///
    /// The next read is sent as soon as a reply is parsed, before its
    /// entries are published, so Redis prepares the next batch while this
    /// one is being published (catching up, the round trip is hidden).
    fn follow(&mut self) -> std::result::Result<(), String> {
        let (addr, auth) = address_of(&self.feed.redis_url)?;
        let mut reader = StreamReader::connect(addr, auth, READ_TIMEOUT)?;
        let mut sender = reader.sender()?;
        let epoch_key = format!("{}:epoch", self.feed.stream);
        let stream = self.feed.stream.clone();
        let block = BLOCK.as_millis() as u64;
        let mut request = Vec::new();
        let mut send = |request: &mut Vec<u8>, after: &str| {
            resp::read_request(request, &stream, after, READ_COUNT, block, &epoch_key);
            sender.write_all(request).map_err(|e| e.to_string())
        };
        send(&mut request, &self.last_id)?;
        while !self.runtime.is_stopping() {
            let batch = reader.receive()?;
            // Every read but a new history's brings the same epoch: compared
            // in place, copied only when it changed.
            if batch.epoch() != self.epoch.as_deref().map(str::as_bytes) {
                let epoch = match batch.epoch() {
                    Some(e) => {
                        Some(String::from_utf8(e.to_vec()).map_err(|_| "an epoch not UTF-8")?)
                    }
                    None => None,
                };
                if self.take_epoch(epoch) {
                    send(&mut request, &self.last_id)?;
                    continue;
                }
            }
            if let Some(id) = batch.last_id() {
                self.last_id =
                    String::from_utf8(id.to_vec()).map_err(|_| "an entry id not UTF-8")?;
            }
            send(&mut request, &self.last_id)?;
            // The read's entries go to the publisher in hand-offs of up to
            // MAX_BATCH (one wake per hand-off, not per entry).
            let mut open = true;
            let mut handoff = Vec::new();
            batch.for_each(|id, fields| {
                match entry::parse(fields) {
                    Ok(e) => {
                        handoff.push(Queued::Sequenced {
                            tick: e.tick,
                            seq: e.seq,
                            ts: e.ts,
                            feed: self.index,
                        });
                        if handoff.len() == MAX_BATCH {
                            let full = std::mem::take(&mut handoff);
                            open = self.publisher.send_waiting(Queued::Batch(full));
                        }
                    }
                    Err(why) => {
                        crate::metrics::count(&self.runtime.counters.ticks_rejected);
                        let id = String::from_utf8_lossy(id);
                        tracing::warn!(feed = %self.feed.stream, %id, %why, "stream entry skipped");
                    }
                }
                open
            });
            if open && !handoff.is_empty() {
                open = self.publisher.send_waiting(Queued::Batch(handoff));
            }
            if !open {
                return Ok(()); // the publisher stopped: shutting down
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

/// A user (may be empty) and a password.
type Credentials<'a> = (&'a str, &'a str);

/// The `host:port` of a `redis://[[user]:password@]host:port` URL, and
/// its credentials if it has them.
fn address_of(url: &str) -> std::result::Result<(&str, Option<Credentials<'_>>), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| format!("{url}: not a redis:// URL"))?;
    Ok(match rest.rsplit_once('@') {
        None => (rest, None),
        Some((info, host)) => (host, Some(info.split_once(':').unwrap_or(("", info)))),
    })
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
    fn addresses_and_credentials_come_from_the_url() {
        assert_eq!(address_of("redis://h:1"), Ok(("h:1", None)));
        assert_eq!(address_of("redis://:pw@h:1"), Ok(("h:1", Some(("", "pw")))));
        assert_eq!(
            address_of("redis://u:p@w@h:1"),
            Ok(("h:1", Some(("u", "p@w"))))
        );
        assert!(address_of("http://h:1").is_err());
    }

    #[test]
    fn clock_is_utc_time_of_day() {
        assert_eq!(clock_of(1_763_775_000_123_456_789), "01:30:00Z");
    }
}
