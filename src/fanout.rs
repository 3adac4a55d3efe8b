//! The hand-off from the publisher (and the acceptor and the API) to the
//! shards: per shard, one bounded crossbeam channel and one `mio::Waker`.
//!
//! Invariant: a shard never sleeps with a non-empty inbox. Wake-ups are
//! coalesced so that a busy shard costs the publisher no syscall per tick:
//! the shard raises `sleeping` before it blocks in `poll` and re-checks its
//! inbox; a sender writes the channel, then looks at `sleeping` and wakes the
//! shard only if it is (about to be) asleep. Both sides put a SeqCst fence
//! between their write and their read (Dekker's pattern), so at least one of
//! them sees the other: either the shard sees the message, or the sender
//! sees the flag and wakes it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering, fence};
use std::time::Duration;

use crossbeam_channel::{Receiver, SendTimeoutError, Sender, TrySendError};
use mio::Waker;

use crate::Frame;
use crate::symbols::SymId;

/// A message to one shard.
#[derive(Debug)]
pub(crate) enum ShardMsg {
    /// A serialized tick of `sym` with sequence number `seq`.
    Tick { sym: SymId, seq: u64, frame: Frame },
    /// A notice for every connection, or for one user's.
    Notice {
        user: Option<Arc<str>>,
        frame: Frame,
    },
    /// A newly accepted socket.
    Accept {
        stream: mio::net::TcpStream,
        peer: std::net::SocketAddr,
    },
    /// Define or replace a group.
    SetGroup {
        name: Arc<str>,
        symbols: Arc<[SymId]>,
    },
    /// Remove a group.
    RemoveGroup { name: Arc<str> },
    /// Close every connection with 1001 and exit.
    Shutdown,
}

/// Cache-line aligned so the flag a shard writes before every sleep does not
/// share a line with anything the publisher writes.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

/// The flag pair shared by a shard and its senders.
#[derive(Debug, Default)]
pub(crate) struct Sleep {
    sleeping: Padded<AtomicBool>,
}

impl Sleep {
    /// Shard side, before blocking: returns true if and only if it may
    /// block (the inbox is still empty after announcing the sleep).
    pub(crate) fn prepare(&self, rx: &Receiver<ShardMsg>) -> bool {
        self.sleeping.0.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if rx.is_empty() {
            true
        } else {
            self.sleeping.0.store(false, Ordering::Relaxed);
            false
        }
    }

    /// Shard side, after waking.
    pub(crate) fn awake(&self) {
        self.sleeping.0.store(false, Ordering::Relaxed);
    }

    /// Sender side, after sending: true if the shard must be woken (and
    /// this caller is the one to do it).
    fn claim_wake(&self) -> bool {
        fence(Ordering::SeqCst);
        self.sleeping.0.load(Ordering::Relaxed) && self.sleeping.0.swap(false, Ordering::SeqCst)
    }
}

/// The sending side of one shard.
#[derive(Debug, Clone)]
pub(crate) struct ShardLink {
    tx: Sender<ShardMsg>,
    waker: Arc<Waker>,
    sleep: Arc<Sleep>,
    /// Sockets this shard holds; the acceptor picks the least loaded shard.
    pub(crate) sockets: Arc<AtomicUsize>,
}

impl ShardLink {
    pub(crate) fn new(
        tx: Sender<ShardMsg>,
        waker: Arc<Waker>,
        sleep: Arc<Sleep>,
        sockets: Arc<AtomicUsize>,
    ) -> ShardLink {
        ShardLink {
            tx,
            waker,
            sleep,
            sockets,
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
        loop {
            match self.tx.send_timeout(msg, Duration::from_millis(20)) {
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
        if self.sleep.claim_wake() {
            // A failed wake means the shard's poll is gone: it is exiting.
            let _ = self.waker.wake();
        }
    }
}
