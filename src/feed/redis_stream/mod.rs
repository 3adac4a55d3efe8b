//! The shared feed on Redis Streams: the Redis Function that numbers ticks
//! (`tickcast.lua`, installed on every Redis a node or producer is pointed
//! at) and the Redis side of the feed.
//!
//! `seq` and `ts` are assigned once, in Redis, inside the function, so every
//! producer, in any language, gets one numbering per symbol and every node
//! reading the stream publishes the same `(symbol, seq, ts)`.

pub(crate) mod entry;
pub(crate) mod node;
pub(crate) mod resp;
mod sink;

pub use sink::{RedisSink, SinkError};

/// The Redis Function library `tickcast` (Lua), with
/// `tickcast_publish` and `tickcast_publish_batch`; see `docs/protocol.md`,
/// "The shared feed on Redis Streams".
pub const FUNCTION_LIBRARY: &str = include_str!("tickcast.lua");

/// Installs (or replaces) [`FUNCTION_LIBRARY`] on the Redis behind `conn`
/// (`FUNCTION LOAD REPLACE`): a node does it on every (re)connect, so the
/// function matches the node's version.
///
/// # Errors
/// The Redis error, e.g. a Redis older than 7 (no functions).
pub fn install(conn: &mut redis::Connection) -> redis::RedisResult<()> {
    redis::cmd("FUNCTION")
        .arg("LOAD")
        .arg("REPLACE")
        .arg(FUNCTION_LIBRARY)
        .query::<String>(conn)
        .map(drop)
}
