//! A shard's inbox: the messages the publisher, the acceptor and the API
//! send to one shard, and [`ShardLink`], the sending side (one bounded
//! crossbeam channel, the shard's `mio::Waker`, and its [`Sleep`] flag).
//!
//! Invariant: a shard never sleeps with a non-empty inbox, and a busy shard
//! costs its senders no syscall per message (see [`crate::wake`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use crossbeam_channel::{SendTimeoutError, Sender, TrySendError};
use mio::Waker;

use crate::Frame;
use crate::symbols::SymId;
use crate::wake::Sleep;

/// Most ticks the publisher sends a shard in one message. One channel
/// send per tick was ~8 % of the publisher thread's samples and the
/// receive ~17 % of the shard's (`perf record` on `benches/publisher.rs`,
/// 3.5 M ticks/s); a batch is one of each for up to this many. It is sent
/// when full, when the publisher's queue runs dry and before any other
/// message the publisher sends, so a batch waits at most the encoding of
/// the ticks in it (64 x 0.3-0.7 us, 1.4-3.5 M ticks/s).
pub(crate) const TICK_BATCH: usize = 64;

/// A serialized tick of `sym` with sequence number `seq`, accepted by
/// `publish` at `ts` (nanoseconds since the UNIX epoch).
#[derive(Debug)]
pub(crate) struct TickMsg {
    pub(crate) sym: SymId,
    pub(crate) seq: u64,
    pub(crate) ts: u64,
    pub(crate) frame: Frame,
}

/// The inbox's capacity in messages for a bound of `shard_inbox` (see
/// [`Config::shard_inbox`](crate::Config::shard_inbox)): ticks travel
/// [`TICK_BATCH`] to a message, so the bound is rounded up to whole
/// batches.
pub(crate) fn capacity(shard_inbox: usize) -> usize {
    shard_inbox.div_ceil(TICK_BATCH).max(1)
}

/// A message to one shard.
#[derive(Debug)]
pub(crate) enum ShardMsg {
    /// Up to [`TICK_BATCH`] ticks, in the order the publisher numbered
    /// them; the same batch goes to every shard. The shard that lets go
    /// of it last takes its frames out rather than cloning them, and
    /// gives the vector back to the publisher (`crate::recycle`).
    Ticks(Arc<Vec<TickMsg>>),
    /// A notice for every connection, or for one user's.
    Notice {
        user: Option<Arc<str>>,
        frame: Frame,
    },
    /// A newly accepted socket, already counted in `Admission` and in the
    /// shard's [`ShardLink::load`].
    Accept {
        stream: mio::net::TcpStream,
        peer: std::net::SocketAddr,
    },
    /// Define or replace a group.
    SetGroup {
        name: Arc<str>,
        symbols: Arc<[SymId]>,
    },
    /// A prefix of group `name` took `sym`, a new symbol; sent before the
    /// symbol's first tick.
    AddToGroup { name: Arc<str>, sym: SymId },
    /// Remove a group.
    RemoveGroup { name: Arc<str> },
    /// The stream that numbers `syms` (sorted) began a new history (a new
    /// epoch): their last values and history are void, their subscribers
    /// get a reset snapshot, and their `seq` starts again. Sent before the
    /// new history's first tick.
    NewHistory { syms: Arc<[SymId]> },
    /// Close every connection with 1001 and exit.
    Shutdown,
}

/// How long a blocked [`ShardLink::send`] waits before it wakes the shard
/// again and asks whether to give up.
const SEND_RETRY: Duration = Duration::from_millis(20);

/// The sending side of one shard.
#[derive(Debug, Clone)]
pub(crate) struct ShardLink {
    tx: Sender<ShardMsg>,
    waker: Arc<Waker>,
    sleep: Arc<Sleep>,
    /// Sockets this shard holds; the acceptor picks the least loaded shard.
    load: Arc<AtomicUsize>,
}

impl ShardLink {
    pub(crate) fn new(
        tx: Sender<ShardMsg>,
        waker: Arc<Waker>,
        sleep: Arc<Sleep>,
        load: Arc<AtomicUsize>,
    ) -> ShardLink {
        ShardLink {
            tx,
            waker,
            sleep,
            load,
        }
    }

    /// Sends without waking; call [`ShardLink::wake`] after a batch.
    /// Waits while the inbox is full, giving up (returning the message)
    /// when `give_up()` says so or the shard is gone.
    pub(crate) fn send(
        &self,
        mut msg: ShardMsg,
        give_up: &dyn Fn() -> bool,
    ) -> Result<(), ShardMsg> {
        // Room first: `send_timeout` reads the clock on every call.
        msg = match self.tx.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(TrySendError::Full(m)) => m,
            Err(TrySendError::Disconnected(m)) => return Err(m),
        };
        // Full: the shard may be asleep, its senders having deferred the
        // wake to the end of their batch.
        self.wake();
        loop {
            match self.tx.send_timeout(msg, SEND_RETRY) {
                Ok(()) => return Ok(()),
                Err(SendTimeoutError::Disconnected(m)) => return Err(m),
                Err(SendTimeoutError::Timeout(m)) => {
                    // The shard may be asleep waiting for exactly this wake.
                    self.wake();
                    if give_up() {
                        return Err(m);
                    }
                    msg = m;
                }
            }
        }
    }

    /// Sends if there is room.
    pub(crate) fn try_send(&self, msg: ShardMsg) -> Result<(), TrySendError<ShardMsg>> {
        self.tx.try_send(msg)
    }

    /// Wakes the shard if it is asleep. Cheap (a fence and a load) when it
    /// is busy.
    pub(crate) fn wake(&self) {
        if self.sleep.should_wake() {
            // A failed wake means the shard's poll is gone: it is exiting.
            let _ = self.waker.wake();
        }
    }

    /// Sockets the shard holds (handshaking, open or closing).
    pub(crate) fn load(&self) -> usize {
        self.load.load(Relaxed)
    }

    /// The shard's socket count, shared with `Admission`'s bookkeeping.
    pub(crate) fn load_counter(&self) -> &AtomicUsize {
        &self.load
    }
}
