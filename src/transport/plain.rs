//! [`PlainTcp`]: the transport of `ws://` and `http://`, TCP as it is.

use std::io::{self, IoSlice, Read, Write};
use std::net::Shutdown;

use mio::net::TcpStream;

use super::Transport;

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

impl Transport for PlainTcp {
    fn socket(&mut self) -> &mut TcpStream {
        &mut self.0
    }

    fn shutdown_write(&mut self) -> io::Result<()> {
        self.0.shutdown(Shutdown::Write)
    }

    fn abort_on_drop(&mut self) {
        // An error leaves the default linger: the socket still closes.
        let _ = socket2::SockRef::from(&self.0).set_linger(Some(std::time::Duration::ZERO));
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        // Every byte written went to the kernel.
        Ok(())
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
