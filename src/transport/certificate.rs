//! [`ServerTls`]: the certificate and key that `wss://` connections are
//! served with, loaded from PEM files at start and swapped by a reload.
//!
//! A reload replaces the `Arc<ServerConfig>` that new connections start
//! from; a connection already open keeps the one it began with (rustls
//! holds it), so a reload disturbs no one. A reload that cannot read or
//! use the files changes nothing.

use std::path::Path;
use std::sync::Arc;

use parking_lot::RwLock;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::{Error, Result, TlsFiles};

/// ALPN protocols offered: HTTP/1.1 only, so a browser that would prefer
/// HTTP/2 speaks the HTTP/1.1 that the upgrade and the board need.
const ALPN: &[&[u8]] = &[b"http/1.1"];

/// The TLS configuration in force, shared by the shards.
#[derive(Debug)]
pub(crate) struct ServerTls {
    files: TlsFiles,
    current: RwLock<Arc<ServerConfig>>,
}

impl ServerTls {
    /// Loads `files`.
    ///
    /// # Errors
    /// [`Error::Tls`] naming the file that is missing, unreadable or not
    /// what it should be.
    pub(crate) fn load(files: &TlsFiles) -> Result<ServerTls> {
        Ok(ServerTls {
            files: files.clone(),
            current: RwLock::new(server_config(files)?),
        })
    }

    /// The configuration a new connection starts from.
    pub(crate) fn current(&self) -> Arc<ServerConfig> {
        self.current.read().clone()
    }

    /// Reads the files again and serves new connections with them.
    ///
    /// # Errors
    /// As [`ServerTls::load`]; the configuration in force is kept.
    pub(crate) fn reload(&self) -> Result<()> {
        let fresh = server_config(&self.files)?;
        *self.current.write() = fresh;
        Ok(())
    }
}

/// A server configuration for the certificate chain and key in `files`,
/// with rustls's safe defaults (TLS 1.2 and 1.3) and the `ring` provider.
fn server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_error(&files.cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            tls_error(
                &files.key,
                format!(
                    "cannot be used with the certificate in {}: {e}",
                    files.cert.display()
                ),
            )
        })?;
    config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// The certificates of a PEM file, leaf first.
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path).map_err(|e| tls_error(path, e))?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| tls_error(path, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(tls_error(path, "holds no CERTIFICATE section"));
    }
    Ok(chain)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of a PEM file.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>> {
    let pem = std::fs::read(path).map_err(|e| tls_error(path, e))?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| {
        tls_error(
            path,
            format!("holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })
}

fn tls_error(path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::Tls {
        file: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
