//! [`Sleep`]: coalesced wake-ups between the threads that fill a shard's
//! inbox and the shard that drains it.
//!
//! Invariant: a shard never sleeps with a non-empty inbox, and a busy shard
//! costs its senders no syscall per message. The shard raises `sleeping`
//! before it blocks in `poll` and re-checks its inbox; a sender writes the
//! channel, then looks at `sleeping` and wakes the shard only if it is
//! (about to be) asleep. Both sides put a SeqCst fence between their write
//! and their read (Dekker's pattern), so at least one of them sees the
//! other: either the shard sees the message, or the sender sees the flag
//! and wakes it. Public for the hand-off bench (`benches/handoff.rs`).

use std::sync::atomic::{AtomicBool, Ordering, fence};

use crossbeam_channel::Receiver;

/// Cache-line aligned so the flag a shard writes before every sleep does not
/// share a line with anything its senders write.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// The sleep flag shared by one receiving thread and its senders.
///
/// ```
/// use tickcast::wake::Sleep;
/// let (tx, rx) = crossbeam_channel::bounded::<u32>(8);
/// let sleep = Sleep::default();
/// assert!(sleep.prepare(&rx), "empty inbox: the receiver may block");
/// tx.send(1).unwrap();
/// assert!(sleep.should_wake(), "it announced a sleep: wake it");
/// assert!(!sleep.should_wake(), "only one sender wakes it");
/// assert!(!sleep.prepare(&rx), "a message is waiting: do not block");
/// ```
#[derive(Debug, Default)]
pub struct Sleep {
    sleeping: Padded<AtomicBool>,
}

impl Sleep {
    /// Receiver side, before blocking: returns true if and only if it may
    /// block (`inbox` is still empty after announcing the sleep).
    pub fn prepare<T>(&self, inbox: &Receiver<T>) -> bool {
        self.sleeping.0.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if inbox.is_empty() {
            true
        } else {
            self.sleeping.0.store(false, Ordering::Relaxed);
            false
        }
    }

    /// Receiver side, after waking.
    pub fn awake(&self) {
        self.sleeping.0.store(false, Ordering::Relaxed);
    }

    /// Sender side, after sending: returns true if and only if the
    /// receiver must be woken and this caller is the one to do it. Cheap
    /// (a fence and a load) while the receiver is busy.
    pub fn should_wake(&self) -> bool {
        fence(Ordering::SeqCst);
        self.sleeping.0.load(Ordering::Relaxed) && self.sleeping.0.swap(false, Ordering::SeqCst)
    }
}
