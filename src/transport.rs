//! [`Transport`]: the one interface through which a connection reads and
//! writes its socket, so that another transport (TLS) can sit next to the
//! plain one without the shard loop or the outbox knowing.
//!
//! A transport is a byte stream: `Read` gives the client's plaintext,
//! `Write` takes the server's (many frames per `write_vectored`), and both
//! follow the non-blocking rules of `mio` (`WouldBlock` means "wait for the
//! next readiness event", never a failure). It is registered with the
//! shard's `mio::Poll` as a `mio::event::Source`.

use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// A connection's byte stream, as the shard sees it.
pub(crate) trait Transport: Read + Write + mio::event::Source + fmt::Debug + Send {
    /// Ends the write side after the last byte (TCP FIN), so the peer sees
    /// EOF once it has read everything. Errors mean the peer is gone.
    fn shutdown_write(&mut self) -> io::Result<()>;

    /// Makes dropping the transport a reset (`SO_LINGER` 0): the kernel
    /// frees the socket and whatever it still queues at once, instead of
    /// keeping an orphan that holds its buffers until the peer goes away.
    fn abort_on_drop(&mut self);
}

/// The transport of one connection: static dispatch over the kinds the
/// server speaks (a TLS variant joins `Plain` here), so the write path
/// costs no indirect call.
#[derive(Debug)]
pub(crate) enum Stream {
    /// `ws://`: TCP as it is.
    Plain(PlainTcp),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(t) => t.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(t) => t.flush(),
        }
    }
}

impl mio::event::Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(t) => t.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Plain(t) => t.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Stream::Plain(t) => t.deregister(registry),
        }
    }
}

impl Transport for Stream {
    fn shutdown_write(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(t) => t.shutdown_write(),
        }
    }

    fn abort_on_drop(&mut self) {
        match self {
            Stream::Plain(t) => t.abort_on_drop(),
        }
    }
}

/// Plain TCP, written with `sendmsg(MSG_NOSIGNAL)`: a peer that vanished is
/// an `EPIPE` error on that connection, never a `SIGPIPE` that kills a
/// process embedding the broadcaster (which may not ignore the signal).
#[derive(Debug)]
pub(crate) struct PlainTcp(TcpStream);

impl PlainTcp {
    pub(crate) fn new(stream: TcpStream) -> PlainTcp {
        PlainTcp(stream)
    }
}

impl Read for PlainTcp {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for PlainTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        socket2::SockRef::from(&self.0).send(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        socket2::SockRef::from(&self.0).send_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl mio::event::Source for PlainTcp {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.0.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.0.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.0.deregister(registry)
    }
}

impl Transport for PlainTcp {
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }

    fn abort_on_drop(&mut self) {
        // An error leaves the default linger: the socket still closes.
        let _ = socket2::SockRef::from(&self.0).set_linger(Some(std::time::Duration::ZERO));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_tcp_writes_vectored_and_shuts_its_write_side() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut t = PlainTcp::new(TcpStream::from_std(server));
        let n = t
            .write_vectored(&[IoSlice::new(b"ab"), IoSlice::new(b"cd")])
            .unwrap();
        assert_eq!(n, 4);
        t.shutdown_write().unwrap();
        let mut got = Vec::new();
        let mut c = client;
        c.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"abcd", "EOF follows the last byte");
    }

    #[test]
    fn an_aborted_transport_resets_the_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let mut t = PlainTcp::new(TcpStream::from_std(server));
        // Unread input on our side would reset anyway; this one has none.
        t.write_all(b"queued").unwrap();
        t.abort_on_drop();
        drop(t);
        client
            .set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut got = Vec::new();
        let err = client.read_to_end(&mut got).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::ConnectionReset,
            "a reset, not EOF"
        );
    }
}
