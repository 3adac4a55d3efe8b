//! `wss://`: [`Wire`], a client connection's byte stream (TCP, or a rustls
//! client over the same non-blocking socket), and the trust the server's
//! certificate is checked with ([`client_config`]).
//!
//! A TLS wire reads like a socket: plaintext, `Ok(0)` at the end,
//! `WouldBlock` when the socket has nothing more. Unlike a socket, a short
//! read does not mean the socket is empty (rustls hands out one record at
//! a time), so [`Wire::short_read_drains`] tells the engine when it may
//! skip the read that would only return `WouldBlock`.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use mio::net::TcpStream;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};

use crate::options::Trust;

/// TLS records read in one [`Wire::read`] without plaintext before the
/// server is taken for broken (a handshake takes a few).
const EMPTY_READS: usize = 64;

/// What every `wss://` connection of a run starts from.
#[derive(Debug, Clone)]
pub struct Client {
    /// The configuration, with the trust asked for.
    pub config: Arc<ClientConfig>,
    /// The name the server's certificate must hold (the URL's host).
    pub server_name: ServerName<'static>,
}

impl Client {
    /// The client side of `target` trusting as `trust` says.
    ///
    /// # Errors
    /// If the CA file cannot be used or the host is no server name.
    pub fn new(target: &crate::options::Target, trust: &Trust) -> anyhow::Result<Client> {
        let name = target.server_name();
        Ok(Client {
            config: client_config(trust)?,
            server_name: ServerName::try_from(name.to_string())
                .with_context(|| format!("TLS server name {name:?}"))?,
        })
    }
}

/// The client configuration for `trust`, shared by every connection.
///
/// # Errors
/// If the CA file cannot be read or holds no certificate.
pub fn client_config(trust: &Trust) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let config = match trust {
        Trust::Ca(path) => builder
            .with_root_certificates(roots(path)?)
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The certificates of a PEM file, as the only roots trusted.
fn roots(path: &Path) -> anyhow::Result<RootCertStore> {
    let pem = std::fs::read(path).with_context(|| format!("reading --ca {}", path.display()))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.with_context(|| format!("--ca {}: not PEM", path.display()))?;
        roots
            .add(cert)
            .with_context(|| format!("--ca {}: a certificate rustls refuses", path.display()))?;
    }
    if roots.is_empty() {
        bail!("--ca {} holds no certificate", path.display());
    }
    Ok(roots)
}

/// `--insecure`: takes whatever certificate the server presents, for a
/// loopback benchmark whose server certificate the tool is not given. The
/// handshake's signatures are still verified, so the cost measured is a
/// real handshake's.
#[derive(Debug)]
struct AcceptAnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// One client connection's byte stream.
#[derive(Debug)]
pub struct Wire {
    tcp: TcpStream,
    tls: Option<Box<ClientConnection>>,
}

impl Wire {
    /// Plain TCP (`ws://`).
    pub fn plain(tcp: TcpStream) -> Wire {
        Wire { tcp, tls: None }
    }

    /// TLS to `server_name` over `tcp` (`wss://`); the handshake runs as
    /// the socket becomes readable and writable.
    ///
    /// # Errors
    /// If rustls refuses the configuration.
    pub fn tls(
        tcp: TcpStream,
        config: &Arc<ClientConfig>,
        server_name: ServerName<'static>,
    ) -> io::Result<Wire> {
        let conn = ClientConnection::new(config.clone(), server_name).map_err(io::Error::other)?;
        Ok(Wire {
            tcp,
            tls: Some(Box::new(conn)),
        })
    }

    /// The socket underneath (to register, and for its addresses).
    pub fn tcp(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// True if a read shorter than asked means the socket is empty (TCP);
    /// false for TLS, which hands out plaintext a record at a time.
    pub fn short_read_drains(&self) -> bool {
        self.tls.is_none()
    }

    /// Reads plaintext (see the module doc).
    ///
    /// # Errors
    /// The socket's, or `InvalidData` for a TLS failure.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.tcp.read(buf);
        };
        for _ in 0..EMPTY_READS {
            match tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                // A FIN without close_notify: an end all the same.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            tls.read_tls(&mut self.tcp)?;
            if let Err(e) = tls.process_new_packets() {
                let _ = send_records(tls, &mut self.tcp);
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // The handshake's answers.
            match send_records(tls, &mut self.tcp) {
                Err(e) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
                _ => {}
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "too many TLS records without data",
        ))
    }

    /// Writes `buf`; TLS takes all of it (rustls buffers the client's few
    /// bytes, before the handshake is done too) and sends what the socket
    /// takes, the rest at [`Wire::send_pending`].
    ///
    /// # Errors
    /// The socket's.
    pub fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(tls) = self.tls.as_mut() else {
            return self.tcp.write(buf);
        };
        tls.writer().write_all(buf)?;
        self.send_pending()?;
        Ok(buf.len())
    }

    /// Sends TLS records still waiting for the socket (nothing for TCP).
    ///
    /// # Errors
    /// The socket's other than `WouldBlock`.
    pub fn send_pending(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_mut() else {
            return Ok(());
        };
        match send_records(tls, &mut self.tcp) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(()),
        }
    }
}

fn send_records(tls: &mut ClientConnection, tcp: &mut TcpStream) -> io::Result<()> {
    while tls.wants_write() {
        match tls.write_tls(tcp) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
