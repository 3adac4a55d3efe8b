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
/// Bytes asked of the socket per read: a full reply of 1,024 entries is
/// ~200 KB, so it usually comes in one read.
const READ_CHUNK: usize = 1024 * 1024;

/// Where a bulk string sits in the reply buffer.
type Span = (usize, usize);

/// What a reply holds, as positions in the reader's buffer: kept between
/// reads so a steady stream allocates nothing here.
#[derive(Debug, Default)]
struct Spans {
    /// Per entry: its id, and its first field's index in `fields` and the
    /// number of fields (names and values).
    entries: Vec<(Span, usize, usize)>,
    fields: Vec<Span>,
    epoch: Option<Span>,
}

/// What a read returned: the entries and the epoch read after them, as
/// slices of the reply.
#[derive(Debug)]
pub(crate) struct Batch<'a> {
    buf: &'a [u8],
    spans: &'a Spans,
}

impl<'a> Batch<'a> {
    /// The stream's epoch after the read (`None`: no such key).
    pub(crate) fn epoch(&self) -> Option<&'a [u8]> {
        self.spans.epoch.map(|(a, b)| &self.buf[a..b])
    }

    /// Each entry's id and fields (names and values, alternating), oldest
    /// first; `fields` is cleared and refilled for each.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&'a [u8], &[&'a [u8]]) -> bool) {
        let mut fields: Vec<&[u8]> = Vec::new();
        for &((a, b), first, n) in &self.spans.entries {
            fields.clear();
            let spans = &self.spans.fields[first..first + n];
            fields.extend(spans.iter().map(|&(x, y)| &self.buf[x..y]));
            if !f(&self.buf[a..b], &fields) {
                return;
            }
        }
    }

    /// The last entry's id.
    pub(crate) fn last_id(&self) -> Option<&'a [u8]> {
        let &((a, b), _, _) = self.spans.entries.last()?;
        Some(&self.buf[a..b])
    }
}

/// A connection to Redis for the feed's read loop.
#[derive(Debug)]
pub(crate) struct StreamReader {
    socket: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` holding the reply being read.
    filled: usize,
    spans: Spans,
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
            spans: Spans::default(),
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

    /// A second handle on the socket, for sending the next request while
    /// the entries of the last reply (borrowed from this reader) are
    /// being published.
    pub(crate) fn sender(&self) -> Result<TcpStream, String> {
        self.socket.try_clone().map_err(|e| e.to_string())
    }

    /// Reads the reply to one [`read_request`]: the entries and the epoch.
    /// The reply is parsed as it arrives; a parse that runs out of bytes
    /// reads more and starts again (with the next read sent before the
    /// last batch was published, the reply is usually all there at once).
    pub(crate) fn receive(&mut self) -> Result<Batch<'_>, String> {
        self.filled = 0;
        let mut at = Progress::default();
        loop {
            match parse_batch(&self.buf[..self.filled], &mut self.spans, &mut at) {
                Ok(()) => break,
                Err(Stop::Incomplete) => self.read_more()?,
                Err(Stop::Bad(e)) => return Err(e),
            }
        }
        Ok(Batch {
            buf: &self.buf[..self.filled],
            spans: &self.spans,
        })
    }

    /// Appends what the socket has to the reply being read.
    fn read_more(&mut self) -> Result<(), String> {
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
        Ok(())
    }

    /// Reads until `complete` finds a whole reply at the start of the
    /// buffer; returns its length.
    fn read_reply(
        &mut self,
        complete: impl Fn(&[u8]) -> Result<Option<usize>, String>,
    ) -> Result<usize, String> {
        self.filled = 0;
        loop {
            if let Some(n) = complete(&self.buf[..self.filled])? {
                return Ok(n);
            }
            self.read_more()?;
        }
    }
}

/// Writes into `out` the request of one read: `XREAD COUNT count BLOCK
/// block_ms STREAMS stream after` then `GET epoch_key`, sent together.
/// Redis runs a client's commands in order, so the epoch is read after the
/// entries.
pub(crate) fn read_request(
    out: &mut Vec<u8>,
    stream: &str,
    after: &str,
    count: usize,
    block_ms: u64,
    epoch_key: &str,
) {
    out.clear();
    let (count, block) = (count.to_string(), block_ms.to_string());
    command(
        out,
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
    command(out, &[b"GET", epoch_key.as_bytes()]);
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

    fn kind(&mut self) -> Result<u8, Stop> {
        let k = *self.buf.get(self.pos).ok_or(Stop::Incomplete)?;
        self.pos += 1;
        Ok(k)
    }

    /// An error reply, its `-` already read: its text, or `Incomplete`.
    fn error_reply(&mut self) -> Stop {
        match self.line() {
            Ok(line) => Stop::Bad(String::from_utf8_lossy(line).into_owned()),
            Err(stop) => stop,
        }
    }

    /// An array's length (`None`: the null array).
    fn array(&mut self) -> Result<Option<usize>, Stop> {
        match self.kind()? {
            b'-' => Err(self.error_reply()),
            b'*' => self.length(),
            k => Err(Stop::Bad(format!("expected an array, got {:?}", k as char))),
        }
    }

    /// A bulk string (`None`: the null bulk string).
    fn bulk(&mut self) -> Result<Option<&'a [u8]>, Stop> {
        Ok(self.bulk_span()?.map(|(a, b)| &self.buf[a..b]))
    }

    /// Where a bulk string is (`None`: the null bulk string).
    fn bulk_span(&mut self) -> Result<Option<Span>, Stop> {
        match self.kind()? {
            b'-' => Err(self.error_reply()),
            b'$' => {
                let Some(n) = self.length()? else {
                    return Ok(None);
                };
                let start = self.pos;
                let end = start.checked_add(n).ok_or(Stop::Incomplete)?;
                let crlf = self.buf.get(end..end + 2).ok_or(Stop::Incomplete)?;
                if crlf != b"\r\n" {
                    return Err(Stop::Bad("a bulk string without its CRLF".into()));
                }
                self.pos = end + 2;
                Ok(Some((start, end)))
            }
            k => Err(Stop::Bad(format!("expected a string, got {:?}", k as char))),
        }
    }

    /// A length line after its type byte: `-1` (null) or decimal digits
    /// within [`MAX_REPLY`], then CRLF. Read in one pass without looking
    /// for the CRLF first: this runs for every bulk string of a reply (13
    /// per entry), and was the feed thread's largest cost.
    fn length(&mut self) -> Result<Option<usize>, Stop> {
        let b = self.buf;
        let mut i = self.pos;
        let null = b.get(i) == Some(&b'-');
        if null {
            i += 1;
        }
        let (mut n, start) = (0usize, i);
        loop {
            match b.get(i) {
                Some(&d) if d.is_ascii_digit() && i - start < 18 => {
                    n = n * 10 + usize::from(d - b'0');
                    i += 1;
                }
                Some(b'\r') if i > start => break,
                Some(_) => return Err(Stop::Bad("a malformed length".into())),
                None => return Err(Stop::Incomplete),
            }
        }
        match b.get(i + 1) {
            Some(b'\n') => {}
            Some(_) => return Err(Stop::Bad("a length without its CRLF".into())),
            None => return Err(Stop::Incomplete),
        }
        self.pos = i + 2;
        match (null, n) {
            (true, 1) => Ok(None),
            (false, n) if n <= MAX_REPLY => Ok(Some(n)),
            _ => Err(Stop::Bad(format!(
                "length {}{n} out of bounds",
                if null { "-" } else { "" }
            ))),
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

/// How far the parse of a reply got: a large reply arrives over several
/// reads, and parsing it again from its start after each one would cost
/// O(reply x reads), quadratic for the largest replies accepted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Progress {
    stage: Stage,
    /// Where the next step starts in the reply.
    pos: usize,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Nothing parsed.
    #[default]
    Start,
    /// `left` streams of the `XREAD` reply to go.
    Stream {
        left: usize,
    },
    /// Inside a stream's entries: `left` to go, then `streams` streams.
    Entries {
        streams: usize,
        left: usize,
    },
    /// The `GET` reply (the epoch) to go.
    Epoch,
    Done,
}

/// What [`parse_batch`] makes of `buf` in one go, and in pieces (`buf`
/// appended to in steps of `step` bytes, parsed on from where each piece
/// ended), owned: for the fuzz target, which checks the two agree.
/// `Err(None)`: incomplete; `Err(Some(why))`: malformed.
#[cfg(feature = "fuzzing")]
pub(crate) fn parse_owned(buf: &[u8], step: usize) -> [OwnedReply; 2] {
    let whole = {
        let mut spans = Spans::default();
        let r = parse_batch(buf, &mut spans, &mut Progress::default());
        owned(buf, &spans, r)
    };
    let (mut spans, mut at, mut end) = (Spans::default(), Progress::default(), 0);
    let pieces = loop {
        end = (end + step.max(1)).min(buf.len());
        let r = parse_batch(&buf[..end], &mut spans, &mut at);
        if end == buf.len() || !matches!(r, Err(Stop::Incomplete)) {
            break owned(buf, &spans, r);
        }
    };
    [whole, pieces]
}

/// A parsed reply, owned: the entries (id, fields) and the epoch.
#[cfg(feature = "fuzzing")]
pub(crate) type OwnedReply =
    Result<(Vec<(Vec<u8>, Vec<Vec<u8>>)>, Option<Vec<u8>>), Option<String>>;

#[cfg(feature = "fuzzing")]
fn owned(buf: &[u8], spans: &Spans, r: Result<(), Stop>) -> OwnedReply {
    match r {
        Err(Stop::Incomplete) => return Err(None),
        Err(Stop::Bad(why)) => return Err(Some(why)),
        Ok(()) => {}
    }
    let batch = Batch { buf, spans };
    let mut entries = Vec::new();
    batch.for_each(|id, f| {
        entries.push((id.to_vec(), f.iter().map(|x| x.to_vec()).collect()));
        true
    });
    Ok((entries, batch.epoch().map(<[u8]>::to_vec)))
}

/// Parses an `XREAD` + `GET` reply pair into `out`: `[[stream, [[id, [f,
/// v, ...]], ...]]]` or null, then the epoch (bulk or null). An error
/// reply of either command is an error; a reply not all there yet is
/// [`Stop::Incomplete`], and `at` says where to go on once more bytes are
/// appended (complete entries stay in `out`). Start with
/// `Progress::default()`.
fn parse_batch(b: &[u8], out: &mut Spans, at: &mut Progress) -> Result<(), Stop> {
    let bad = |m: &str| Stop::Bad(m.to_string());
    loop {
        let mut c = Cursor {
            buf: b,
            pos: at.pos,
        };
        let next = match at.stage {
            Stage::Start => {
                out.entries.clear();
                out.fields.clear();
                out.epoch = None;
                Stage::Stream {
                    left: c.array()?.unwrap_or(0),
                }
            }
            Stage::Stream { left: 0 } => Stage::Epoch,
            Stage::Stream { left } => {
                if c.array()? != Some(2) {
                    return Err(bad("a stream reply is not [name, entries]"));
                }
                c.bulk_span()?;
                Stage::Entries {
                    streams: left - 1,
                    left: c.array()?.unwrap_or(0),
                }
            }
            Stage::Entries { streams, left: 0 } => Stage::Stream { left: streams },
            Stage::Entries { streams, left } => {
                let first = out.fields.len();
                if let Err(e) = parse_entry(&mut c, out) {
                    out.fields.truncate(first);
                    return Err(e);
                }
                Stage::Entries {
                    streams,
                    left: left - 1,
                }
            }
            Stage::Epoch => {
                out.epoch = c.bulk_span()?;
                Stage::Done
            }
            Stage::Done => return Ok(()),
        };
        *at = Progress {
            stage: next,
            pos: c.pos,
        };
    }
}

/// One entry, `[id, [field, value, ...]]`, appended to `out`.
fn parse_entry(c: &mut Cursor<'_>, out: &mut Spans) -> Result<(), Stop> {
    let bad = |m: &str| Stop::Bad(m.to_string());
    if c.array()? != Some(2) {
        return Err(bad("an entry is not [id, fields]"));
    }
    let id = c.bulk_span()?.ok_or_else(|| bad("an entry without id"))?;
    let n = c.array()?.unwrap_or(0);
    let first = out.fields.len();
    for _ in 0..n {
        let f = c.bulk_span()?.ok_or_else(|| bad("a null field"))?;
        out.fields.push(f);
    }
    out.entries.push((id, first, n));
    Ok(())
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

    type Owned = (Vec<(Vec<u8>, Vec<Vec<u8>>)>, Option<Vec<u8>>);

    /// The reply parsed, owned: entries and epoch.
    fn parse(b: &[u8]) -> Result<Owned, Stop> {
        let mut spans = Spans::default();
        parse_batch(b, &mut spans, &mut Progress::default())?;
        let batch = Batch {
            buf: b,
            spans: &spans,
        };
        let mut entries = Vec::new();
        batch.for_each(|id, f| {
            entries.push((id.to_vec(), f.iter().map(|x| x.to_vec()).collect()));
            true
        });
        Ok((entries, batch.epoch().map(<[u8]>::to_vec)))
    }

    #[test]
    fn a_reply_is_read_as_slices() {
        let r = reply(3, Some("e-1"));
        let (entries, epoch) = parse(&r).unwrap();
        assert_eq!(epoch.as_deref(), Some(&b"e-1"[..]));
        assert_eq!(entries.len(), 3);
        assert_eq!(entries[2].0, b"1-2");
        let fields: Vec<&[u8]> = entries[2].1.iter().map(Vec::as_slice).collect();
        assert_eq!(fields, [&b"symbol"[..], b"AAPL", b"seq", b"3", b"ts", b"5"]);
    }

    #[test]
    fn a_reply_arriving_in_pieces_is_parsed_once_through() {
        let r = reply(40, Some("e-7"));
        let whole = parse(&r).unwrap();
        for step in [1, 7, 64, 1000] {
            let (mut spans, mut at) = (Spans::default(), Progress::default());
            let mut end = 0;
            loop {
                end = (end + step).min(r.len());
                match parse_batch(&r[..end], &mut spans, &mut at) {
                    Ok(()) => break,
                    Err(Stop::Incomplete) => assert!(end < r.len(), "complete at {end}"),
                    Err(e) => panic!("{e:?} at {end}"),
                }
            }
            assert_eq!(end, r.len());
            let batch = Batch {
                buf: &r,
                spans: &spans,
            };
            let mut got = Vec::new();
            batch.for_each(|id, f| {
                got.push((
                    id.to_vec(),
                    f.iter().map(|x| x.to_vec()).collect::<Vec<_>>(),
                ));
                true
            });
            assert_eq!(
                (got, batch.epoch().map(<[u8]>::to_vec)),
                whole,
                "step {step}"
            );
        }
    }

    #[test]
    fn a_timeout_and_a_missing_epoch_are_null() {
        assert_eq!(parse(b"*-1\r\n$-1\r\n"), Ok((vec![], None)));
    }

    #[test]
    fn every_prefix_is_incomplete_and_error_replies_are_errors() {
        let r = reply(2, Some("e-1"));
        for cut in 0..r.len() {
            assert_eq!(parse(&r[..cut]), Err(Stop::Incomplete), "cut at {cut}");
            assert_eq!(
                skip_one(&r[..cut.min(r.len() - 10)]),
                Ok(None),
                "cut at {cut}"
            );
        }
        let e = b"-WRONGTYPE Operation against a key\r\n$-1\r\n";
        assert!(skip_one(e).unwrap().is_some());
        match parse(e) {
            Err(Stop::Bad(err)) => assert!(err.contains("WRONGTYPE"), "{err}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn corrupt_replies_never_panic() {
        let r = reply(2, Some("e-1"));
        for i in 0..r.len() {
            for byte in [b'*', b'$', b'-', b'9', b'\r', b'x', 0] {
                let mut bad = r.clone();
                bad[i] = byte;
                let _ = skip_one(&bad);
                let _ = parse(&bad);
            }
        }
        assert!(skip_one(b"$99999999999\r\n").is_err(), "length bound");
        assert!(skip_one(b"*-5\r\n").is_err());
        assert!(skip_one(b"?\r\n").is_err());
    }

    #[test]
    fn commands_are_resp_arrays() {
        let mut out = Vec::new();
        command(&mut out, &[b"GET", b"s:epoch"]);
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$7\r\ns:epoch\r\n");
    }
}
