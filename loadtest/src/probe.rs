//! The symbol-universe probe for `--subscribe random:K`.
//!
//! `list_groups` only reports counts, so the probe opens one blocking
//! connection, subscribes to `*`, and collects the symbols of the snapshots
//! that follow the `subscribed` reply (one per symbol with a last value),
//! plus any tick symbols seen meanwhile.
//!
//! Invariant: bounded by `timeout` in total; it stops early once
//! [`QUIET_PERIOD`] passes without a new symbol after `subscribed`.

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::frame::{self, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, Parsed};
use crate::handshake::ClientHandshake;
use crate::options::{Options, Target};
use crate::scan::{Control, Scanned, Scanner, parse_control};

/// The probe's connection: TCP, or TLS over it.
trait Stream: Read + Write {}
impl<S: Read + Write> Stream for S {}

/// How long without a new symbol ends the probe once `subscribed` arrived.
pub const QUIET_PERIOD: Duration = Duration::from_millis(300);

/// Returns the symbols the server knows (sorted).
///
/// # Errors
/// On connect or handshake failure, a protocol error, or no symbols within
/// `timeout`.
pub fn universe(target: &Target, opts: &Options, timeout: Duration) -> anyhow::Result<Vec<String>> {
    let deadline = Instant::now() + timeout;
    let tcp = TcpStream::connect_timeout(&target.addr, timeout).context("probe connect")?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_millis(50)))?;
    let mut s: Box<dyn Stream> = match (target.tls, &opts.trust) {
        (false, _) => Box::new(tcp),
        (true, Some(trust)) => {
            let tls = crate::tls::Client::new(target, trust)?;
            let conn = rustls::ClientConnection::new(tls.config, tls.server_name)
                .context("probe TLS client")?;
            Box::new(rustls::StreamOwned::new(conn, tcp))
        }
        (true, None) => bail!("a wss:// target needs --ca FILE or --insecure"),
    };
    let hs = ClientHandshake::new(&target.host, &target.path);
    s.write_all(&hs.request)?;
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut mask = 0x5A5A_1234u32;
    let mut next_mask = move || {
        mask = mask.rotate_left(7) ^ 0x9E37_79B9;
        mask.to_ne_bytes()
    };
    let mut upgraded = false;
    let mut subscribed_at: Option<Instant> = None;
    let mut last_new = Instant::now();
    let mut symbols = BTreeSet::new();
    let scanner = Scanner::new();
    while Instant::now() < deadline {
        if subscribed_at.is_some() && last_new.elapsed() >= QUIET_PERIOD {
            break;
        }
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => return Err(e).context("probe read"),
        }
        if !upgraded {
            let Some(hdr) = hs.check_response(&buf)? else {
                continue;
            };
            buf.drain(..hdr);
            upgraded = true;
            let mut out = Vec::new();
            let sub = br#"{"op":"subscribe","id":1,"groups":["*"]}"#;
            frame::encode_masked(&mut out, OP_TEXT, sub, next_mask());
            s.write_all(&out)?;
        }
        let mut at = 0;
        while let Parsed::Frame(f) = frame::parse(&buf[at..])? {
            let payload = &buf[at + f.header_len..at + f.len()];
            at += f.len();
            match f.opcode {
                OP_TEXT => match scanner.scan(payload) {
                    Scanned::Tick(t) | Scanned::Snapshot(t) => {
                        if symbols.insert(String::from_utf8_lossy(&t.symbol).into_owned()) {
                            last_new = Instant::now();
                        }
                    }
                    Scanned::Other => match parse_control(payload) {
                        Ok(Control::Subscribed { .. }) => {
                            subscribed_at = Some(Instant::now());
                            last_new = Instant::now();
                        }
                        Ok(Control::Error { code, message, .. }) => {
                            bail!("probe subscribe refused: {code}: {message}")
                        }
                        _ => {}
                    },
                    Scanned::Invalid => {}
                },
                OP_PING => {
                    let mut out = Vec::new();
                    frame::encode_masked(&mut out, OP_PONG, payload, next_mask());
                    s.write_all(&out)?;
                }
                OP_CLOSE => {
                    let (code, reason) = frame::close_payload(payload);
                    bail!("probe connection closed by server: {code} {reason}");
                }
                _ => {}
            }
        }
        buf.drain(..at);
    }
    let mut out = Vec::new();
    frame::encode_close(&mut out, 1000, "probe done", next_mask());
    let _ = s.write_all(&out);
    if symbols.is_empty() {
        bail!("probe saw no symbols within {timeout:?}; pass --universe A,B,C");
    }
    Ok(symbols.into_iter().collect())
}
