//! The client side of the HTTP/1.1 upgrade to WebSocket, sans-I/O.
//!
//! [`ClientHandshake::new`] builds the `GET` request with a fresh random
//! `Sec-WebSocket-Key`; [`ClientHandshake::check_response`] is fed the
//! bytes received so far and decides once the header block is complete.
//!
//! Invariant: a connection counts as open only after a `101` whose
//! `Sec-WebSocket-Accept` matches the key we sent; any bytes after the
//! header block already belong to the WebSocket stream and are handed back.

use thiserror::Error;
use tungstenite::handshake::{client::generate_key, derive_accept_key};

/// Largest response header block accepted, in bytes.
pub const MAX_RESPONSE_HEADER: usize = 16 * 1024;

/// Why an upgrade was refused or could not be understood.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum HandshakeError {
    /// The server answered with a status other than 101.
    #[error("HTTP {status}: {reason}")]
    Status {
        /// HTTP status code (e.g. 503 at the connection limit).
        status: u16,
        /// First line of the body, or the reason phrase.
        reason: String,
    },
    /// 101, but the accept key is missing or wrong.
    #[error("Sec-WebSocket-Accept missing or wrong")]
    BadAccept,
    /// 101, but without `Upgrade: websocket`.
    #[error("101 without Upgrade: websocket")]
    NotUpgraded,
    /// Not parseable HTTP.
    #[error("malformed HTTP response: {0}")]
    Malformed(String),
    /// No end of headers within [`MAX_RESPONSE_HEADER`] bytes.
    #[error("response header over {MAX_RESPONSE_HEADER} bytes")]
    TooLarge,
}

/// One handshake in progress.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    /// The request bytes to send.
    pub request: Vec<u8>,
    expected_accept: String,
}

impl ClientHandshake {
    /// Builds a request for `path` (with query) on `host` (`host:port`).
    pub fn new(host: &str, path: &str) -> Self {
        let key = generate_key();
        let expected_accept = derive_accept_key(key.as_bytes());
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
             Sec-WebSocket-Version: 13\r\nUser-Agent: tickcast-loadtest\r\n\r\n"
        )
        .into_bytes();
        ClientHandshake {
            request,
            expected_accept,
        }
    }

    /// Looks at the bytes received so far. Returns `Ok(None)` while the
    /// header block is incomplete, and `Ok(Some(n))` once a valid `101`
    /// ends at byte `n` (bytes from `n` on are WebSocket frames).
    ///
    /// # Errors
    /// A [`HandshakeError`] if the server refused or answered badly.
    pub fn check_response(&self, buf: &[u8]) -> Result<Option<usize>, HandshakeError> {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        let n = match resp.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if buf.len() > MAX_RESPONSE_HEADER {
                    Err(HandshakeError::TooLarge)
                } else {
                    Ok(None)
                };
            }
            Err(e) => return Err(HandshakeError::Malformed(e.to_string())),
        };
        let status = resp.code.unwrap_or(0);
        if status != 101 {
            let body = String::from_utf8_lossy(&buf[n..]);
            let line = body.lines().next().unwrap_or("").trim();
            let reason = if line.is_empty() {
                resp.reason.unwrap_or("").to_string()
            } else {
                line.to_string()
            };
            return Err(HandshakeError::Status { status, reason });
        }
        let header = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_string())
        };
        if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
            return Err(HandshakeError::NotUpgraded);
        }
        if header("sec-websocket-accept").as_deref() != Some(self.expected_accept.as_str()) {
            return Err(HandshakeError::BadAccept);
        }
        Ok(Some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(req: &[u8]) -> String {
        let text = String::from_utf8_lossy(req);
        let line = text
            .lines()
            .find(|l| l.starts_with("Sec-WebSocket-Key: "))
            .expect("key header");
        line["Sec-WebSocket-Key: ".len()..].to_string()
    }

    #[test]
    fn valid_101_completes_and_returns_header_length() {
        let hs = ClientHandshake::new("127.0.0.1:9", "/ws");
        let accept = derive_accept_key(key_of(&hs.request).as_bytes());
        let resp = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        let mut bytes = resp.clone().into_bytes();
        bytes.extend_from_slice(&[0x81, 0x00]);
        assert_eq!(hs.check_response(&bytes[..10]), Ok(None));
        assert_eq!(hs.check_response(&bytes), Ok(Some(resp.len())));
    }

    #[test]
    fn wrong_accept_key_is_rejected() {
        let hs = ClientHandshake::new("h", "/ws");
        let resp = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: nope\r\n\r\n";
        assert_eq!(hs.check_response(resp), Err(HandshakeError::BadAccept));
    }

    #[test]
    fn refusal_reports_status_and_body_line() {
        let hs = ClientHandshake::new("h", "/ws");
        let resp = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 22\r\n\r\nconnection limit reached\n";
        assert_eq!(
            hs.check_response(resp),
            Err(HandshakeError::Status {
                status: 503,
                reason: "connection limit reached".into()
            })
        );
    }

    #[test]
    fn request_is_a_websocket_upgrade_for_the_path() {
        let hs = ClientHandshake::new("127.0.0.1:8080", "/ws?client=lt");
        let text = String::from_utf8_lossy(&hs.request);
        assert!(text.starts_with("GET /ws?client=lt HTTP/1.1\r\n"));
        assert!(text.contains("Host: 127.0.0.1:8080\r\n"));
        assert!(text.contains("Sec-WebSocket-Version: 13\r\n"));
        assert_eq!(key_of(&hs.request).len(), 24);
        assert!(text.ends_with("\r\n\r\n"));
    }
}
