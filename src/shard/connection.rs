//! [`Connection`]: one client socket as a shard holds it: its
//! [`Transport`], its protocol [`Session`], its [`Outbox`] and its place in
//! the admission counts. The I/O that needs nothing else of the shard lives
//! here; every decision lives in the session.
//!
//! Invariant: every byte sent goes through the outbox, and the transport is
//! written only by [`Connection::write`].

use std::io::{self, Read};
use std::net::SocketAddr;
use std::time::Instant;

use mio::{Interest, Registry, Token};

use crate::admission::Admitted;
use crate::outbox::{Outbox, Progress};
use crate::session::Session;
use crate::transport::{Stream, Transport};

use super::joins::PendingJoin;

/// How many reads a closing connection's discarded input may take per
/// turn; a peer that keeps sending is read again next turn.
const DISCARD_READS: usize = 64;

/// A client connection.
#[derive(Debug)]
pub(crate) struct Connection {
    transport: Stream,
    pub(crate) peer: SocketAddr,
    pub(crate) session: Session,
    pub(crate) outbox: Outbox,
    /// On the shard's dirty list this turn.
    pub(crate) dirty: bool,
    /// Its place in the admission counts, while the WebSocket is open.
    pub(crate) admitted: Option<Admitted>,
    /// A large subscription joining as the socket drains (see `joins`).
    pub(super) pending: Option<Box<PendingJoin>>,
    /// When the WebSocket opened (for the connection log).
    pub(crate) opened_at: Option<Instant>,
    /// Frames completely written (for the connection log).
    pub(crate) frames_sent: u64,
}

/// What a read of the transport gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ReadOutcome {
    /// Bytes were read into the buffer.
    Data(usize),
    /// Nothing more for now.
    WouldBlock,
    /// The peer closed its side.
    Eof,
    /// The stream failed (reset, or another error).
    Failed,
    /// Bytes that are not TLS on a TLS port (a plaintext client, garbage
    /// records, a failed TLS handshake): the alert is sent, drop it.
    NotTls,
}

impl Connection {
    pub(crate) fn new(
        transport: Stream,
        peer: SocketAddr,
        now: Instant,
        config: &crate::Config,
    ) -> Connection {
        Connection {
            transport,
            peer,
            session: Session::new(now, config),
            outbox: Outbox::new(config.queue_capacity),
            dirty: false,
            admitted: None,
            pending: None,
            opened_at: None,
            frames_sent: 0,
        }
    }

    /// Registers the transport with the shard's poll under `token`.
    pub(crate) fn register(&mut self, registry: &Registry, token: Token) -> io::Result<()> {
        registry.register(
            &mut self.transport,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )
    }

    /// Deregisters the transport (before the connection is dropped).
    pub(crate) fn deregister(&mut self, registry: &Registry) {
        // An error means it is not registered: nothing to undo.
        let _ = registry.deregister(&mut self.transport);
    }

    /// Reads once into `buf` (retrying interrupted reads).
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> ReadOutcome {
        loop {
            match self.transport.read(buf) {
                Ok(0) => return ReadOutcome::Eof,
                Ok(n) => return ReadOutcome::Data(n),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return ReadOutcome::WouldBlock,
                // Only the TLS transport reports InvalidData.
                Err(e) if e.kind() == io::ErrorKind::InvalidData => return ReadOutcome::NotTls,
                Err(_) => return ReadOutcome::Failed,
            }
        }
    }

    /// Writes queued frames until the outbox is empty or the transport
    /// would block; `delivered` is called for each batch of ticks written
    /// (see `Outbox::write_recording`; over TLS, written means handed to
    /// rustls, which takes plaintext only once its earlier records are
    /// with the kernel). `drained` means every byte is with the kernel:
    /// the outbox is empty and the transport holds nothing (TLS records).
    ///
    /// # Errors
    /// The transport failed: drop the connection.
    #[inline]
    pub(crate) fn write(&mut self, delivered: impl FnMut(u64, usize)) -> io::Result<Progress> {
        let mut p = self
            .outbox
            .write_recording(&mut self.transport, delivered)?;
        if p.drained {
            match self.transport.flush_pending() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => p.drained = false,
                Err(e) => return Err(e),
            }
        }
        Ok(p)
    }

    /// Ends our write side after the last byte (see [`Transport`]).
    pub(crate) fn shutdown_write(&mut self) {
        // An error here means the peer is already gone.
        let _ = self.transport.shutdown_write();
    }

    /// Makes dropping the connection a reset (see [`Transport`]).
    pub(crate) fn abort_on_drop(&mut self) {
        self.transport.abort_on_drop();
    }

    /// In `Closing`: reads and discards whatever the peer still sends, so
    /// that closing our socket never turns into a reset that destroys the
    /// close frame in flight. Returns true if and only if the peer closed
    /// its side (or the stream failed).
    pub(crate) fn discard_input(&mut self, scratch: &mut [u8]) -> bool {
        for _ in 0..DISCARD_READS {
            match self.read(scratch) {
                ReadOutcome::Data(_) => {}
                ReadOutcome::WouldBlock => return false,
                ReadOutcome::Eof | ReadOutcome::Failed | ReadOutcome::NotTls => return true,
            }
        }
        false
    }
}
