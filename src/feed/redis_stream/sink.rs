//! [`RedisSink`]: an in-process feed handler's way onto a shared stream:
//! it turns [`Tick`]s into `tickcast_publish` calls, pipelined.

use crate::{Price, Tick};

/// Why a [`RedisSink`] call failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The tick breaks the protocol; nothing was sent.
    #[error("invalid tick: {0}")]
    Invalid(String),
    /// Redis refused the call (the function's validation, or a Redis
    /// error) or the connection failed. For a pipeline, nothing tells
    /// which ticks of it were added: read the stream to find out.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// Publishes ticks to a Redis stream through `tickcast_publish`, so that
/// every node fed from the stream publishes them with the same `seq` and
/// `ts`. Prices go as text: a [`Price::Exact`] digit for digit, a
/// [`Price::Float`] as the shortest text that reads back as the same
/// `f64` (never with an exponent).
///
/// ```no_run
/// use tickcast::{Decimal, Tick, redis_stream::RedisSink};
/// let mut sink = RedisSink::connect("redis://127.0.0.1:6379", "ticks")?;
/// let seq = sink.publish(&Tick::new("AAPL").bid(Decimal::parse("189.25").unwrap()))?;
/// sink.queue(&Tick::new("MSFT").ask(410.5))?;
/// sink.queue(&Tick::new("MSFT").ask(410.75))?;
/// let seqs = sink.flush()?; // one round trip for both
/// # Ok::<(), tickcast::redis_stream::SinkError>(())
/// ```
pub struct RedisSink {
    conn: redis::Connection,
    stream: String,
    pipe: redis::Pipeline,
    queued: usize,
}

// By hand: `redis::Connection` has no `Debug`.
impl std::fmt::Debug for RedisSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSink")
            .field("stream", &self.stream)
            .field("queued", &self.queued)
            .finish_non_exhaustive()
    }
}

impl RedisSink {
    /// Connects to `redis_url` (`redis://HOST:PORT`) and installs the
    /// function (`FUNCTION LOAD REPLACE`).
    ///
    /// # Errors
    /// The connection or the install failed.
    pub fn connect(redis_url: &str, stream: &str) -> Result<RedisSink, SinkError> {
        let mut conn = redis::Client::open(redis_url)?.get_connection()?;
        super::install(&mut conn)?;
        Ok(RedisSink {
            conn,
            stream: stream.to_string(),
            pipe: redis::pipe(),
            queued: 0,
        })
    }

    /// Publishes one tick now; returns the `seq` Redis assigned.
    ///
    /// # Errors
    /// An invalid tick (nothing sent), or Redis's refusal.
    pub fn publish(&mut self, tick: &Tick) -> Result<u64, SinkError> {
        let mut cmd = redis::cmd("FCALL");
        add_call(&mut cmd, &self.stream, tick)?;
        Ok(cmd.query(&mut self.conn)?)
    }

    /// Adds one tick to the pipeline; [`flush`](RedisSink::flush) sends it.
    ///
    /// # Errors
    /// An invalid tick (not queued).
    pub fn queue(&mut self, tick: &Tick) -> Result<(), SinkError> {
        let mut cmd = redis::cmd("FCALL");
        add_call(&mut cmd, &self.stream, tick)?;
        self.pipe.add_command(cmd);
        self.queued += 1;
        Ok(())
    }

    /// Ticks queued and not yet flushed.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// Sends the queued ticks in one round trip; returns their `seq`s in
    /// order.
    ///
    /// # Errors
    /// Redis refused one of them or the connection failed.
    pub fn flush(&mut self) -> Result<Vec<u64>, SinkError> {
        if self.queued == 0 {
            return Ok(Vec::new());
        }
        let pipe = std::mem::replace(&mut self.pipe, redis::pipe());
        self.queued = 0;
        Ok(pipe.query(&mut self.conn)?)
    }
}

/// `tickcast_publish 1 <stream> <symbol> [<field> <value> ...]`.
fn add_call(cmd: &mut redis::Cmd, stream: &str, tick: &Tick) -> Result<(), SinkError> {
    tick.validate().map_err(SinkError::Invalid)?;
    cmd.arg("tickcast_publish")
        .arg(1)
        .arg(stream)
        .arg(tick.symbol.as_str());
    let prices: [(&str, Option<Price>); 3] =
        [("bid", tick.bid), ("ask", tick.ask), ("last", tick.last)];
    for (name, px) in prices {
        if let Some(px) = px {
            // f64's Display is the shortest round-trip text, never with an
            // exponent; an Exact price is its own text.
            cmd.arg(name).arg(px.to_string());
        }
    }
    let sizes = [
        ("bid_size", tick.bid_size),
        ("ask_size", tick.ask_size),
        ("volume", tick.volume),
    ];
    for (name, qty) in sizes {
        if let Some(qty) = qty {
            cmd.arg(name).arg(qty);
        }
    }
    Ok(())
}
