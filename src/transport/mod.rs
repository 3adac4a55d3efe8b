//! [`Transport`]: the one interface through which a connection reads and
//! writes its socket, so that TLS sits next to plain TCP without the shard
//! loop or the outbox knowing.
//!
//! A transport is a byte stream: `Read` gives the client's plaintext,
//! `Write` takes the server's (many frames per `write_vectored`), and both
//! follow the non-blocking rules of `mio` (`WouldBlock` means "wait for the
//! next readiness event", never a failure). Its TCP socket is what the
//! shard's `mio::Poll` watches ([`Stream`] is the `mio::event::Source`).
//!
//! - [`PlainTcp`] (`plain.rs`): `ws://` and `http://`.
//! - [`TlsTcp`] (`tls.rs`): `wss://` and `https://`, rustls over the same
//!   socket, encrypting on the shard's thread as it writes.
//! - [`ServerTls`] (`certificate.rs`): the certificate in force, shared by
//!   the shards and swapped by a reload.

mod certificate;
mod plain;
mod tls;

pub(crate) use certificate::ServerTls;
pub(crate) use plain::PlainTcp;
pub(crate) use tls::TlsTcp;

use std::fmt;
use std::io::{self, IoSlice, Read, Write};

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// A connection's byte stream, as the shard sees it.
pub(crate) trait Transport: Read + Write + fmt::Debug + Send {
    /// The socket underneath, to register with a poll: readiness is the
    /// socket's whatever the transport makes of its bytes.
    fn socket(&mut self) -> &mut TcpStream;

    /// Ends the write side after the last byte (TCP FIN), so the peer sees
    /// EOF once it has read everything. Errors mean the peer is gone.
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Makes dropping the transport a reset (`SO_LINGER` 0): the kernel
    /// frees the socket and whatever it still queues at once, instead of
    /// keeping an orphan that holds its buffers until the peer goes away.
    fn abort_on_drop(&mut self);

    /// Sends what the transport itself still holds (TLS records encrypted
    /// but not yet taken by the socket): `Ok` once nothing is left,
    /// `WouldBlock` while the socket is full. Plain TCP holds nothing.
    fn flush_pending(&mut self) -> io::Result<()>;
}

/// The transport of one connection: static dispatch over the kinds the
/// server speaks, so the write path costs no indirect call.
#[derive(Debug)]
pub(crate) enum Stream {
    /// `ws://`: TCP as it is.
    Plain(PlainTcp),
    /// `wss://`: boxed, so that a plain connection does not carry the
    /// size of a TLS state machine in the shard's slab.
    Tls(Box<TlsTcp>),
}

/// Evaluates `$call` with `$t` bound to whichever transport `$stream` holds.
macro_rules! dispatch {
    ($stream:expr, $t:ident => $call:expr) => {
        match $stream {
            Stream::Plain($t) => $call,
            Stream::Tls($t) => $call,
        }
    };
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        dispatch!(self, t => t.read(buf))
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        dispatch!(self, t => t.write(buf))
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        dispatch!(self, t => t.write_vectored(bufs))
    }

    fn flush(&mut self) -> io::Result<()> {
        dispatch!(self, t => t.flush())
    }
}

impl mio::event::Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        dispatch!(self, t => t.socket().register(registry, token, interests))
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        dispatch!(self, t => t.socket().reregister(registry, token, interests))
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        dispatch!(self, t => t.socket().deregister(registry))
    }
}

impl Transport for Stream {
    fn socket(&mut self) -> &mut TcpStream {
        dispatch!(self, t => t.socket())
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        dispatch!(self, t => t.shutdown_write())
    }

    fn abort_on_drop(&mut self) {
        dispatch!(self, t => t.abort_on_drop())
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        dispatch!(self, t => t.flush_pending())
    }
}
