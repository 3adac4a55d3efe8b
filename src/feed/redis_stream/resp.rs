//! The feed's read path on the wire: `XREAD` pipelined with `GET
//! <stream>:epoch`, written and parsed here in RESP2 without copying.
//!
//! Why not the `redis` crate for this one call: catching up on a full
//! stream, its reply parser (combinator-based, one `Vec<u8>` per bulk
//! string, then conversions) took three quarters of the feed thread and
//! held a node to ~70,000 ticks/s (`perf record`, issue 10). Here a reply
//! is read into one reused buffer and each entry's fields are handed to
//! [`super::entry::parse`] as slices of it: no allocation per field. The
//! crate still does everything else (connecting, `FUNCTION LOAD`, the
//! epoch at connect, producers).
//!
//! Input from the network is never trusted: lengths are bounded by
//! [`MAX_REPLY`], a malformed reply is an error (the feed reconnects), and
//! nothing here panics on any byte sequence (unit tests, including every
//! prefix and every single-byte corruption of a reply).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// The largest reply accepted: 1,024 entries of at most a few KiB each
/// (`READ_COUNT` in `node.rs`) fit many times over; a reply beyond this is
/// not the stream tickcast writes.
pub(crate) const MAX_REPLY: usize = 64 * 1024 * 1024;
/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// What a read returned: entries `(id, fields)` as slices of the reply,
/// and the epoch read after them.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Batch<'a> {
    pub(crate) entries: Vec<(&'a [u8], Vec<&'a [u8]>)>,
    pub(crate) epoch: Option<&'a [u8]>,
}

/// A connection to Redis for the feed's read loop.
#[derive(Debug)]
pub(crate) struct StreamReader {
    socket: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` holding the reply being read.
    filled: usize,
    /// The request, built once per read.
    request: Vec<u8>,
}

impl StreamReader {
    /// Connects to `addr` (`host:port`), authenticating when `auth` names
    /// a password (and a user).
    pub(crate) fn connect(
        addr: &str,
        auth: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<StreamReader, String> {
        use std::net::ToSocketAddrs;
        let target = addr
            .to_socket_addrs()
            .map_err(|e| format!("{addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr}: no address"))?;
        let socket = TcpStream::connect_timeout(&target, timeout).map_err(|e| e.to_string())?;
        socket
            .set_read_timeout(Some(timeout))
            .and_then(|()| socket.set_write_timeout(Some(timeout)))
            .and_then(|()| socket.set_nodelay(true))
            .map_err(|e| e.to_string())?;
        let mut r = StreamReader {
            socket,
            buf: Vec::new(),
            filled: 0,
            request: Vec::new(),
        };
        if let Some((user, password)) = auth {
            let mut req = Vec::new();
            match user {
                "" => command(&mut req, &[b"AUTH", password.as_bytes()]),
                u => command(&mut req, &[b"AUTH", u.as_bytes(), password.as_bytes()]),
            }
            r.socket.write_all(&req).map_err(|e| e.to_string())?;
            let len = r.read_reply(skip_one)?;
            let reply = &r.buf[..len];
            if reply.first() != Some(&b'+') {
                return Err(format!(
                    "AUTH: {}",
                    String::from_utf8_lossy(reply).trim_end()
                ));
            }
        }
        Ok(r)
    }

    /// `XREAD COUNT count BLOCK block_ms STREAMS stream after` then `GET
    /// epoch_key`, in one round trip. Redis runs a client's commands in
    /// order, so the epoch is read after the entries.
    pub(crate) fn read(
        &mut self,
        stream: &str,
        after: &str,
        count: usize,
        block_ms: u64,
        epoch_key: &str,
    ) -> Result<Batch<'_>, String> {
        self.request.clear();
        let (count, block) = (count.to_string(), block_ms.to_string());
        command(
            &mut self.request,
            &[
                b"XREAD",
                b"COUNT",
                count.as_bytes(),
                b"BLOCK",
                block.as_bytes(),
                b"STREAMS",
                stream.as_bytes(),
                after.as_bytes(),
            ],
        );
        command(&mut self.request, &[b"GET", epoch_key.as_bytes()]);
        self.socket
            .write_all(&self.request)
            .map_err(|e| e.to_string())?;
        let len = self.read_reply(|b| {
            let Some(n) = skip_one(b)? else {
                return Ok(None);
            };
            Ok(skip_one(&b[n..])?.map(|m| n + m))
        })?;
        parse_batch(&self.buf[..len])
    }

    /// Reads until `complete` finds a whole reply at the start of the
    /// buffer; returns its length. Bytes after it (there are none: one
    /// request at a time) would be dropped.
    fn read_reply(
        &mut self,
        complete: impl Fn(&[u8]) -> Result<Option<usize>, String>,
    ) -> Result<usize, String> {
        self.filled = 0;
        loop {
            if let Some(n) = complete(&self.buf[..self.filled])? {
                return Ok(n);
            }
            if self.filled >= MAX_REPLY {
                return Err(format!("a reply over {MAX_REPLY} bytes"));
            }
            if self.buf.len() < self.filled + READ_CHUNK {
                self.buf.resize(self.filled + READ_CHUNK, 0);
            }
            let n = self
                .socket
                .read(&mut self.buf[self.filled..])
                .map_err(|e| e.to_string())?;
            if n == 0 {
                return Err("Redis closed the connection".into());
            }
            self.filled += n;
        }
    }
}

/// Appends `args` as one RESP command (an array of bulk strings).
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    out.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
}

/// A position in a reply; every method fails on a truncated or malformed
/// reply instead of panicking.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// Why a parse stopped: the reply is not all here yet, or it is wrong.
#[derive(Debug, PartialEq, Eq)]
enum Stop {
    Incomplete,
    Bad(String),
}

impl<'a> Cursor<'a> {
    /// The line after the type byte, without its CRLF.
    fn line(&mut self) -> Result<&'a [u8], Stop> {
        let rest = self.buf.get(self.pos..).ok_or(Stop::Incomplete)?;
        let end = memchr_crlf(rest).ok_or(Stop::Incomplete)?;
        self.pos += end + 2;
        Ok(&rest[..end])
    }

    /// A length or integer line: `-1` or decimal digits (at most 18, far
    /// beyond [`MAX_REPLY`]), parsed by hand: this runs three times per
    /// entry field.
    fn int(&mut self) -> Result<i64, Stop> {
        let line = self.line()?;
        let bad = || Stop::Bad(format!("bad length {:?}", String::from_utf8_lossy(line)));
        if line == b"-1" {
            return Ok(-1);
        }
        if line.is_empty() || line.len() > 18 {
            return Err(bad());
        }
        let mut n: i64 = 0;
        for &d in line {
            if !d.is_ascii_digit() {
                return Err(bad());
            }
            n = n * 10 + i64::from(d - b'0');
        }
        Ok(n)
    }

    fn kind(&mut self) -> Result<u8, Stop> {
        let k = *self.buf.get(self.pos).ok_or(Stop::Incomplete)?;
        self.pos += 1;
        Ok(k)
    }

    /// An error reply's text, if the next value is one.
    fn error(&mut self) -> Result<Option<String>, Stop> {
        if self.buf.get(self.pos) == Some(&b'-') {
            self.pos += 1;
            let line = self.line()?;
            return Ok(Some(String::from_utf8_lossy(line).into_owned()));
        }
        Ok(None)
    }

    /// An array's length (`None`: the null array).
    fn array(&mut self) -> Result<Option<usize>, Stop> {
        if let Some(e) = self.error()? {
            return Err(Stop::Bad(e));
        }
        match self.kind()? {
            b'*' => self.length(),
            k => Err(Stop::Bad(format!("expected an array, got {:?}", k as char))),
        }
    }

    /// A bulk string (`None`: the null bulk string).
    fn bulk(&mut self) -> Result<Option<&'a [u8]>, Stop> {
        if let Some(e) = self.error()? {
            return Err(Stop::Bad(e));
        }
        match self.kind()? {
            b'$' => {
                let Some(n) = self.length()? else {
                    return Ok(None);
                };
                let end = self.pos.checked_add(n).ok_or(Stop::Incomplete)?;
                let body = self.buf.get(self.pos..end).ok_or(Stop::Incomplete)?;
                if self.buf.get(end..end + 2).ok_or(Stop::Incomplete)? != b"\r\n" {
                    return Err(Stop::Bad("a bulk string without its CRLF".into()));
                }
                self.pos = end + 2;
                Ok(Some(body))
            }
            k => Err(Stop::Bad(format!("expected a string, got {:?}", k as char))),
        }
    }

    /// A length: -1 is null, others must be within [`MAX_REPLY`].
    fn length(&mut self) -> Result<Option<usize>, Stop> {
        match self.int()? {
            -1 => Ok(None),
            n if (0..=MAX_REPLY as i64).contains(&n) => Ok(Some(n as usize)),
            n => Err(Stop::Bad(format!("length {n} out of bounds"))),
        }
    }

    /// Skips one value of any type; used to find where a reply ends.
    fn skip(&mut self, depth: usize) -> Result<(), Stop> {
        if depth > 8 {
            return Err(Stop::Bad("nested too deep".into()));
        }
        match self.kind()? {
            b'+' | b'-' | b':' => self.line().map(drop),
            b'$' => {
                self.pos -= 1;
                self.bulk().map(drop)
            }
            b'*' => {
                for _ in 0..self.length()?.unwrap_or(0) {
                    self.skip(depth + 1)?;
                }
                Ok(())
            }
            k => Err(Stop::Bad(format!("unknown reply type {:?}", k as char))),
        }
    }
}

/// Where the first CRLF of `b` starts. Lines here are short (a type byte
/// and a length), so a plain scan for the CR is enough.
fn memchr_crlf(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let at = from + b.get(from..)?.iter().position(|&c| c == b'\r')?;
        match b.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
}

/// The length of the one value at the start of `b`, `None` if it is not
/// all there yet.
fn skip_one(b: &[u8]) -> Result<Option<usize>, String> {
    let mut c = Cursor { buf: b, pos: 0 };
    match c.skip(0) {
        Ok(()) => Ok(Some(c.pos)),
        Err(Stop::Incomplete) => Ok(None),
        Err(Stop::Bad(e)) => Err(e),
    }
}

/// Parses a whole `XREAD` + `GET` reply pair: `[[stream, [[id, [f, v,
/// ...]], ...]]]` or null, then the epoch (bulk or null). An error reply of
/// either command is returned as the error.
fn parse_batch(b: &[u8]) -> Result<Batch<'_>, String> {
    let mut c = Cursor { buf: b, pos: 0 };
    let stop = |s: Stop| match s {
        Stop::Incomplete => "a truncated reply".to_string(),
        Stop::Bad(e) => e,
    };
    let mut entries = Vec::new();
    if let Some(streams) = c.array().map_err(stop)? {
        for _ in 0..streams {
            if c.array().map_err(stop)? != Some(2) {
                return Err("a stream reply is not [name, entries]".into());
            }
            c.bulk().map_err(stop)?;
            let n = c.array().map_err(stop)?.unwrap_or(0);
            entries.reserve(n);
            for _ in 0..n {
                if c.array().map_err(stop)? != Some(2) {
                    return Err("an entry is not [id, fields]".into());
                }
                let id = c.bulk().map_err(stop)?.ok_or("an entry without id")?;
                let k = c.array().map_err(stop)?.unwrap_or(0);
                let mut fields = Vec::with_capacity(k);
                for _ in 0..k {
                    fields.push(c.bulk().map_err(stop)?.ok_or("a null field")?);
                }
                entries.push((id, fields));
            }
        }
    }
    let epoch = c.bulk().map_err(stop)?;
    Ok(Batch { entries, epoch })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> String {
        format!("${}\r\n{s}\r\n", s.len())
    }

    /// An XREAD reply with `n` entries of stream `s`, then `epoch`.
    fn reply(n: usize, epoch: Option<&str>) -> Vec<u8> {
        let mut out = String::from("*1\r\n*2\r\n") + &bulk("s") + &format!("*{n}\r\n");
        for i in 0..n {
            out += "*2\r\n";
            out += &bulk(&format!("1-{i}"));
            out += "*6\r\n";
            for f in ["symbol", "AAPL", "seq", &(i + 1).to_string(), "ts", "5"] {
                out += &bulk(f);
            }
        }
        out += &epoch.map_or("$-1\r\n".to_string(), bulk);
        out.into_bytes()
    }

    fn pair_len(b: &[u8]) -> Result<Option<usize>, String> {
        let Some(n) = skip_one(b)? else {
            return Ok(None);
        };
        Ok(skip_one(&b[n..])?.map(|m| n + m))
    }

    #[test]
    fn a_reply_is_read_as_slices() {
        let r = reply(3, Some("e-1"));
        assert_eq!(pair_len(&r), Ok(Some(r.len())));
        let b = parse_batch(&r).unwrap();
        assert_eq!(b.epoch, Some(&b"e-1"[..]));
        assert_eq!(b.entries.len(), 3);
        assert_eq!(b.entries[2].0, b"1-2");
        assert_eq!(
            b.entries[2].1,
            [&b"symbol"[..], b"AAPL", b"seq", b"3", b"ts", b"5"]
        );
    }

    #[test]
    fn a_timeout_and_a_missing_epoch_are_null() {
        let r = b"*-1\r\n$-1\r\n";
        assert_eq!(pair_len(r), Ok(Some(r.len())));
        assert_eq!(
            parse_batch(r).unwrap(),
            Batch {
                entries: vec![],
                epoch: None
            }
        );
    }

    #[test]
    fn every_prefix_is_incomplete_and_error_replies_are_errors() {
        let r = reply(2, Some("e-1"));
        for cut in 0..r.len() {
            assert_eq!(pair_len(&r[..cut]), Ok(None), "cut at {cut}");
            assert!(parse_batch(&r[..cut]).is_err(), "cut at {cut}");
        }
        let e = b"-WRONGTYPE Operation against a key\r\n$-1\r\n";
        assert!(pair_len(e).unwrap().is_some());
        let err = parse_batch(e).unwrap_err();
        assert!(err.contains("WRONGTYPE"), "{err}");
    }

    #[test]
    fn corrupt_replies_never_panic() {
        let r = reply(2, Some("e-1"));
        for i in 0..r.len() {
            for byte in [b'*', b'$', b'-', b'9', b'\r', b'x', 0] {
                let mut bad = r.clone();
                bad[i] = byte;
                let _ = pair_len(&bad);
                let _ = parse_batch(&bad);
            }
        }
        assert!(pair_len(b"$99999999999\r\n").is_err(), "length bound");
        assert!(pair_len(b"*-5\r\n").is_err());
        assert!(pair_len(b"?\r\n").is_err());
    }

    #[test]
    fn commands_are_resp_arrays() {
        let mut out = Vec::new();
        command(&mut out, &[b"GET", b"s:epoch"]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$7\r\ns:epoch\r\n");
    }
}
