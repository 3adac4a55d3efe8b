//! [`Connection`]: one client socket as a shard holds it, through its
//! phases `Handshake -> Open -> Closing`, and the I/O that does not need the
//! rest of the shard.
//!
//! Invariant: every byte sent goes through [`Outbox`]; tungstenite is used
//! for reading only, through [`Io`], whose writer appends tungstenite's
//! automatic pong and close replies to a scratch buffer that the shard then
//! queues as whole frames. So nothing is ever written inside a half-sent
//! broadcast frame.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use mio::net::TcpStream;
use tungstenite::protocol::WebSocketContext;

use crate::outbox::Outbox;

/// Where a connection is in its life.
#[derive(Debug)]
pub(crate) enum Phase {
    /// Reading the HTTP request head.
    Handshake { buf: Vec<u8>, deadline: Instant },
    /// An upgraded WebSocket.
    Open { ws: Box<WebSocketContext> },
    /// A close frame or final HTTP response is queued; once it is written the
    /// write side is shut, and the socket is dropped when the peer closes
    /// its side or at `deadline`.
    Closing {
        deadline: Instant,
        write_shut: bool,
        peer_closed: bool,
    },
}

/// A client connection.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: TcpStream,
    pub(crate) peer: SocketAddr,
    pub(crate) phase: Phase,
    pub(crate) outbox: Outbox,
    /// On the shard's dirty list this turn.
    pub(crate) dirty: bool,
    /// Last time any byte arrived.
    pub(crate) last_rx: Instant,
    /// Last time a ping was queued.
    pub(crate) last_ping: Instant,
    pub(crate) conn_id: u64,
    pub(crate) client: Option<Box<str>>,
    pub(crate) user: Option<Arc<str>>,
    pub(crate) expires_at: Option<SystemTime>,
    pub(crate) entitlements: Option<Box<crate::Entitlements>>,
    pub(crate) bucket: TokenBucket,
    /// Counted in the per-IP table.
    pub(crate) ip_counted: bool,
}

impl Connection {
    pub(crate) fn new(
        stream: TcpStream,
        peer: SocketAddr,
        now: Instant,
        config: &crate::Config,
    ) -> Connection {
        Connection {
            stream,
            peer,
            phase: Phase::Handshake {
                buf: Vec::new(),
                deadline: now + config.handshake_timeout,
            },
            outbox: Outbox::new(config.queue_capacity),
            dirty: false,
            last_rx: now,
            last_ping: now,
            conn_id: 0,
            client: None,
            user: None,
            expires_at: None,
            entitlements: None,
            bucket: TokenBucket::new(config.request_rate, config.request_burst, now),
            ip_counted: false,
        }
    }

    /// Returns true if and only if the connection is an open WebSocket.
    pub(crate) fn is_open(&self) -> bool {
        matches!(self.phase, Phase::Open { .. })
    }

    /// Moves to `Closing`. The caller has queued the close frame or response.
    pub(crate) fn start_closing(&mut self, deadline: Instant) {
        if !matches!(self.phase, Phase::Closing { .. }) {
            self.phase = Phase::Closing {
                deadline,
                write_shut: false,
                peer_closed: false,
            };
        }
    }

    /// In `Closing`, after the outbox drained: shut the write side so the
    /// peer sees EOF after our last byte. Returns true if and only if the
    /// socket can now be dropped (the peer has closed its side too).
    pub(crate) fn finish_writing(&mut self) -> bool {
        if let Phase::Closing {
            write_shut,
            peer_closed,
            ..
        } = &mut self.phase
        {
            if !*write_shut {
                *write_shut = true;
                // An error here means the peer is already gone.
                let _ = self.stream.shutdown(Shutdown::Write);
            }
            return *peer_closed;
        }
        false
    }

    /// In `Closing`: read and discard whatever the peer still sends, so that
    /// closing our socket never turns into a reset that destroys the close
    /// frame in flight. Returns true if and only if the peer closed its side.
    pub(crate) fn discard_input(&mut self, scratch: &mut [u8]) -> bool {
        for _ in 0..64 {
            match self.stream.read(scratch) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(_) => return true,
            }
        }
        false
    }
}

/// A token bucket limiting a connection's request rate.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f32,
    rate: f32,
    burst: f32,
    last: Instant,
    /// Requests refused since the last accepted one.
    pub(crate) refused: u32,
}

impl TokenBucket {
    pub(crate) fn new(rate: u32, burst: u32, now: Instant) -> TokenBucket {
        TokenBucket {
            tokens: burst as f32,
            rate: rate as f32,
            burst: burst as f32,
            last: now,
            refused: 0,
        }
    }

    /// Takes one token; false if none is left.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.last).as_secs_f32();
        self.last = now;
        self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.refused = 0;
            true
        } else {
            self.refused += 1;
            false
        }
    }
}

/// Writes to a socket with `sendmsg(MSG_NOSIGNAL)`: a peer that vanished
/// is an `EPIPE` error on that connection, never a `SIGPIPE` that kills a
/// process embedding the broadcaster (which may not ignore the signal).
#[derive(Debug)]
pub(crate) struct Send<'a>(pub(crate) &'a TcpStream);

impl Write for Send<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        socket2::SockRef::from(self.0).send(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        socket2::SockRef::from(self.0).send_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The stream tungstenite reads from: reads come from the socket, writes
/// (its automatic pong and close replies) go to `sink`, never to the socket.
#[derive(Debug)]
pub(crate) struct Io<'a> {
    pub(crate) sock: &'a mut TcpStream,
    pub(crate) sink: &'a mut Vec<u8>,
    /// Set when a read returned data.
    pub(crate) got_data: bool,
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.sock.read(buf)?;
        self.got_data |= n > 0;
        Ok(n)
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.sink.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn token_bucket_refills_at_its_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 2, t0);
        assert!(b.take(t0));
        assert!(b.take(t0));
        assert!(!b.take(t0));
        assert_eq!(b.refused, 1);
        assert!(b.take(t0 + Duration::from_millis(110)));
        assert_eq!(b.refused, 0);
    }
}
