//! [`TlsTcp`]: the transport of `wss://` and `https://`: a rustls
//! `ServerConnection` over the connection's own non-blocking socket, driven
//! by the shard's mio loop like a plain socket (no thread, no runtime).
//!
//! Reads: socket → `read_tls` → `process_new_packets` → plaintext, sending
//! whatever the handshake answers on the way. Writes: the outbox's shared
//! frames are encrypted for this connection as they are written, so the
//! tick is still serialized once; only its encryption is per connection.
//!
//! Memory stays bounded and the outbox's accounting stays honest: rustls
//! buffers any plaintext it is given, so [`TlsTcp`] takes plaintext only
//! once every record it encrypted before has gone to the socket, and at
//! most [`PENDING_LIMIT`] bytes of it. A client that stops reading thus
//! fills its socket, then its outbox, and is evicted by the same queue and
//! lag bounds as a `ws://` client.

use std::io::{self, IoSlice, Read, Write};
use std::sync::Arc;

use mio::net::TcpStream;
use rustls::{ServerConfig, ServerConnection};

use super::{PlainTcp, Transport};

/// Most encrypted bytes rustls holds for one connection beyond what the
/// socket took: two full TLS records. One write encrypts up to this much,
/// so a `writev` carries about as much as a plain one (~38 KiB), and a
/// stalled client costs at most this on top of its socket's buffer.
const PENDING_LIMIT: usize = 32 * 1024;

/// TLS records read in one [`TlsTcp::read`] that give no plaintext
/// (handshake messages, alerts, empty records) before the peer is taken
/// for hostile. A handshake takes two or three; data comes in the first
/// record that holds some.
const EMPTY_READS: usize = 64;

/// TLS over one TCP socket, written with `MSG_NOSIGNAL` like [`PlainTcp`].
#[derive(Debug)]
pub(crate) struct TlsTcp {
    tcp: PlainTcp,
    tls: ServerConnection,
}

impl TlsTcp {
    /// A server-side TLS connection over `stream`, to be handshaken with
    /// `config` as the client's first bytes arrive.
    ///
    /// # Errors
    /// rustls refused `config` (it never does for a `ServerTls` one).
    pub(crate) fn new(
        stream: TcpStream,
        config: Arc<ServerConfig>,
    ) -> Result<TlsTcp, rustls::Error> {
        let mut tls = ServerConnection::new(config)?;
        tls.set_buffer_limit(Some(PENDING_LIMIT));
        Ok(TlsTcp {
            tcp: PlainTcp::new(stream),
            tls,
        })
    }

    /// Writes queued TLS records until none is left or the socket is full.
    fn send_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.tcp) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// [`TlsTcp::send_records`], where a full socket is no error: what is
    /// left goes when the socket is writable again (mio reports it).
    fn send_records_if_room(&mut self) -> io::Result<()> {
        match self.send_records() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }
}

impl Read for TlsTcp {
    /// Plaintext the client sent; `Ok(0)` once it closed (with or without
    /// `close_notify`: WebSocket has its own close handshake, so a TCP FIN
    /// is an end like on `ws://`). A TLS error (a plaintext client, garbage
    /// records, a failed handshake) is `InvalidData`, after the alert that
    /// tells the peer why was sent if the socket took it.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        for _ in 0..EMPTY_READS {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            // The plaintext is used up: only now may rustls read more, so
            // its buffers stay at one record's worth.
            self.tls.read_tls(&mut self.tcp)?;
            if let Err(e) = self.tls.process_new_packets() {
                let _ = self.send_records();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // The handshake's answers, session tickets, key updates.
            self.send_records_if_room()?;
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many TLS records without data",
        ))
    }
}

impl Write for TlsTcp {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }

    /// Encrypts up to [`PENDING_LIMIT`] bytes of `bufs` and sends them as
    /// far as the socket takes them; `WouldBlock` (and nothing taken) while
    /// records encrypted earlier are still waiting for the socket.
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.send_records()?;
        // Nothing is pending, so rustls takes up to its buffer limit.
        let n = self.tls.writer().write_vectored(bufs)?;
        self.send_records_if_room()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_records()
    }
}

impl Transport for TlsTcp {
    fn socket(&mut self) -> &mut TcpStream {
        self.tcp.socket()
    }

    /// `close_notify`, then the TCP FIN. Called once everything queued is
    /// out, so the alert (31 bytes) fits the socket; if it does not, the
    /// FIN alone still ends the stream.
    fn shutdown_write(&mut self) -> io::Result<()> {
        self.tls.send_close_notify();
        let _ = self.send_records();
        self.tcp.shutdown_write()
    }

    fn abort_on_drop(&mut self) {
        self.tcp.abort_on_drop();
    }

    fn flush_pending(&mut self) -> io::Result<()> {
        self.send_records()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::ServerName;
    use rustls::{ClientConfig, ClientConnection, RootCertStore};
    use std::time::{Duration, Instant};

    /// A server config for a self-signed `localhost`, and a client config
    /// trusting it.
    fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let der_key = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap();
        let server = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], der_key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(cert.der().clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    #[test]
    fn a_stalled_peer_leaves_the_backlog_with_the_caller() {
        let (server, client) = configs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let sock =
                socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
            sock.set_recv_buffer_size(4096).unwrap();
            sock.connect(&addr.into()).unwrap();
            let mut tcp: std::net::TcpStream = sock.into();
            let name = ServerName::try_from("localhost").unwrap();
            let mut tls = ClientConnection::new(client, name).unwrap();
            while tls.is_handshaking() {
                tls.complete_io(&mut tcp).unwrap();
            }
            // Then it stops reading until the test is over.
            let _ = done_rx.recv_timeout(Duration::from_secs(10));
        });
        let (sock, _) = listener.accept().unwrap();
        sock.set_nonblocking(true).unwrap();
        socket2::SockRef::from(&sock)
            .set_send_buffer_size(4096)
            .unwrap();
        let mut t = TlsTcp::new(TcpStream::from_std(sock), server).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut buf = [0u8; 1024];
        while t.tls.is_handshaking() || t.tls.wants_write() {
            assert!(Instant::now() < deadline, "no handshake");
            match t.read(&mut buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                other => panic!("handshake read: {other:?}"),
            }
            let _ = t.flush_pending();
            std::thread::sleep(Duration::from_millis(1));
        }
        let chunk = [0x42u8; 1000];
        let mut taken = 0;
        let blocked = loop {
            assert!(taken < 64 << 20, "a stalled peer took {taken} bytes");
            match t.write_vectored(&[IoSlice::new(&chunk), IoSlice::new(&chunk)]) {
                Ok(n) => taken += n,
                Err(e) => break e,
            }
        };
        assert_eq!(blocked.kind(), io::ErrorKind::WouldBlock);
        let pending = t.tls.process_new_packets().unwrap().tls_bytes_to_write();
        // Two records' worth, plus the records' framing.
        assert!(
            pending <= PENDING_LIMIT + 1024,
            "rustls holds {pending} bytes"
        );
        assert!(pending > 0, "the socket is full, rustls holds the rest");
        // Once blocked, nothing more is taken: the rest stays queued.
        let again = t.write_vectored(&[IoSlice::new(&chunk)]);
        assert!(again.is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock));
        assert!(
            t.flush_pending()
                .is_err_and(|e| e.kind() == io::ErrorKind::WouldBlock)
        );
        drop(done_tx);
        peer.join().unwrap();
    }
}
