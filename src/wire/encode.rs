//! Serialization of everything the server sends, into complete unmasked
//! WebSocket frames.
//!
//! The publisher calls [`TickEncoder::encode`] exactly once per tick; the
//! resulting [`Frame`] is shared by every connection. A `snapshot` is derived
//! from the cached tick frame by swapping the `type` (the rest of the JSON is
//! identical), so snapshots cost nothing on the tick path.
//!
//! Invariant: every tick payload starts with `TICK_PREFIX`; field order is
//! `type, symbol, seq, ts, bid, ask, bid_size, ask_size, last, volume`.

use std::io::Write;

use super::digits;
use super::ws::{self, OP_CLOSE, OP_PING, OP_TEXT};
use crate::{Frame, Price};

/// The first bytes of every tick payload.
pub(crate) const TICK_PREFIX: &[u8] = br#"{"type":"tick""#;
const SNAPSHOT_PREFIX: &[u8] = br#"{"type":"snapshot""#;

/// Wraps `payload` in a frame with `opcode`: one allocation, one copy.
pub(crate) fn frame(opcode: u8, payload: &[u8]) -> Frame {
    let mut header = [0u8; ws::MAX_HEADER];
    let h = ws::Header::write(&mut header, opcode, payload.len());
    Frame::from_parts([&header[..h], payload].into_iter())
}

/// A text frame carrying `json`.
pub(crate) fn text(json: &[u8]) -> Frame {
    frame(OP_TEXT, json)
}

/// A text frame carrying a JSON value (used for replies, which are rare).
pub(crate) fn json(value: &serde_json::Value) -> Frame {
    // Serializing a `Value` into a Vec cannot fail.
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    text(&bytes)
}

/// A close frame with `code` and a UTF-8 `reason` (at most 123 bytes).
pub(crate) fn close(code: u16, reason: &str) -> Frame {
    let mut payload = Vec::with_capacity(2 + reason.len());
    payload.extend_from_slice(&code.to_be_bytes());
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(OP_CLOSE, &payload)
}

/// A ping frame with an empty payload.
pub(crate) fn ping() -> Frame {
    frame(OP_PING, &[])
}

/// Serializes ticks, reusing one scratch buffer so that the only allocation
/// per tick is the shared frame itself (and none when the publisher fills a
/// recycled frame).
#[derive(Debug, Default)]
pub struct TickEncoder {
    /// Zeros, then the last tick: as long as the longest tick frame (see
    /// [`TickEncoder::encode_bytes`]), so that writing never grows it.
    scratch: Vec<u8>,
    /// The last timestamp's leading digits.
    ts_text: digits::TimestampText,
}

/// The longest tick frame but for its symbol's text: the header, every
/// key, two numbers and three sizes of at most 20 digits (`u64::MAX`) and
/// three prices of at most [`MAX_PRICE_LEN`] bytes (324 bytes).
const LONGEST_BUT_SYMBOL: usize = ws::MAX_HEADER
    + TICK_PREFIX.len()
    + br#","symbol":"#.len()
    + br#","seq":"#.len()
    + br#","ts":"#.len()
    + br#","bid":"#.len()
    + br#","ask":"#.len()
    + br#","bid_size":"#.len()
    + br#","ask_size":"#.len()
    + br#","last":"#.len()
    + br#","volume":"#.len()
    + 5 * MAX_U64_LEN
    + 3 * MAX_PRICE_LEN
    + b"}".len();

/// The scratch's length for a symbol of `symbol_len` bytes: the longest
/// tick frame, and room for the digit writers' last store.
const fn scratch_len(symbol_len: usize) -> usize {
    LONGEST_BUT_SYMBOL + longest_symbol(symbol_len) + digits::SLACK
}

/// The digits of `u64::MAX`.
const MAX_U64_LEN: usize = 20;

/// The longest price text: an exact decimal (38 digits, a sign and a
/// point); a float's shortest form is at most 24 bytes.
const MAX_PRICE_LEN: usize = crate::price::MAX_DECIMAL_DIGITS + 2;
const _: () = assert!(digits::MAX_F64_LEN <= MAX_PRICE_LEN);

/// The longest a symbol of `len` bytes is as a JSON string: its quotes,
/// and six bytes (`\u001f`) per byte if every one were escaped.
const fn longest_symbol(len: usize) -> usize {
    6 * len + 2
}

impl TickEncoder {
    /// A new encoder.
    pub fn new() -> TickEncoder {
        TickEncoder {
            scratch: vec![0; scratch_len(crate::symbols::MAX_SYMBOL_LEN)],
            ts_text: digits::TimestampText::default(),
        }
    }

    /// Serializes one tick into a complete WebSocket text frame.
    ///
    /// ```
    /// use tickcast::{encode::TickEncoder, Tick};
    /// let mut enc = TickEncoder::new();
    /// let f = enc.encode("AAPL", 42, 1_763_775_000_123_456_789, &Tick::new("AAPL").bid(189.25));
    /// assert_eq!(f.as_bytes()[0], 0x81); // FIN + text
    /// let json = &f.as_bytes()[2..];
    /// assert_eq!(json, br#"{"type":"tick","symbol":"AAPL","seq":42,"ts":1763775000123456789,"bid":189.25}"#);
    /// ```
    pub fn encode(&mut self, symbol: &str, seq: u64, ts: u64, tick: &crate::Tick) -> Frame {
        Frame::from(self.encode_bytes(symbol, seq, ts, tick))
    }

    /// The bytes [`TickEncoder::encode`] puts in a frame, in the encoder's
    /// scratch (valid until the next call): for a caller that has memory
    /// of its own to put them in ([`crate::recycle::FramePool`]).
    ///
    /// The publisher runs this for every tick, so it writes into a buffer
    /// long enough for any tick, by position: each key is a few moves, each
    /// number's text is built in registers and stored eight bytes at a time
    /// ([`digits`]), and no write checks for room or calls `memcpy` (a
    /// `Vec` that grew by `extend_from_slice` called `memmove` for each
    /// copy of 4 to 24 bytes: 11 % of the publisher thread, `perf record`
    /// on `benches/publisher.rs`). With `itoa` and `zmij` writing the
    /// numbers it ran 914 instructions per tick of that bench, 620 with
    /// [`digits`] (callgrind, `--toggle-collect='*encode_bytes*'`).
    pub(crate) fn encode_bytes(
        &mut self,
        symbol: &str,
        seq: u64,
        ts: u64,
        tick: &crate::Tick,
    ) -> &[u8] {
        // Grows only for a caller of the public `encode` with a symbol
        // longer than the protocol allows.
        let longest = scratch_len(symbol.len());
        if self.scratch.len() < longest {
            self.scratch.resize(longest, 0);
        }
        // The JSON goes after room for the longest header, and the header
        // is written just before it: the frame is then one copy of the
        // scratch.
        let mut out = Cursor {
            buf: &mut self.scratch,
            at: ws::MAX_HEADER,
        };
        write_tick_json(&mut out, &mut self.ts_text, symbol, seq, ts, tick);
        let end = out.at;
        let len = end - ws::MAX_HEADER;
        if len < 126 {
            // The usual tick: the two header bytes in one store (two byte
            // stores read back as one 2-byte load, below, would wait for
            // both to reach the cache).
            let header = u16::from_le_bytes([0x80 | OP_TEXT, len as u8]);
            self.scratch[ws::MAX_HEADER - 2..ws::MAX_HEADER].copy_from_slice(&header.to_le_bytes());
            return &self.scratch[ws::MAX_HEADER - 2..end];
        }
        let mut header = [0u8; ws::MAX_HEADER];
        let h = ws::Header::write(&mut header, OP_TEXT, len);
        let start = ws::MAX_HEADER - h;
        // One of three fixed-size copies (a copy of `h` bytes would be a
        // `memmove` call).
        let at = &mut self.scratch[start..ws::MAX_HEADER];
        match h {
            2 => at.copy_from_slice(&header[..2]),
            4 => at.copy_from_slice(&header[..4]),
            _ => at.copy_from_slice(&header),
        }
        &self.scratch[start..end]
    }
}

/// Writes at a position in a buffer known to be long enough (a write past
/// its end would panic, never corrupt).
struct Cursor<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl Cursor<'_> {
    /// Appends `bytes`. Inlined, a constant key is a few moves.
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
    }

    /// Appends `bytes` of a length known only at run time (a number's
    /// text, a symbol) without a `memcpy` call for the short ones: two
    /// copies of a fixed size that overlap in the middle.
    #[inline(always)]
    fn put_short(&mut self, bytes: &[u8]) {
        let n = bytes.len();
        let dst = &mut self.buf[self.at..self.at + n];
        if n > 32 {
            dst.copy_from_slice(bytes);
        } else if n >= 16 {
            dst[..16].copy_from_slice(&bytes[..16]);
            dst[n - 16..].copy_from_slice(&bytes[n - 16..]);
        } else if n >= 8 {
            dst[..8].copy_from_slice(&bytes[..8]);
            dst[n - 8..].copy_from_slice(&bytes[n - 8..]);
        } else if n >= 4 {
            dst[..4].copy_from_slice(&bytes[..4]);
            dst[n - 4..].copy_from_slice(&bytes[n - 4..]);
        } else {
            for (d, b) in dst.iter_mut().zip(bytes) {
                *d = *b;
            }
        }
        self.at += n;
    }
}

/// Writes the JSON of a stamped tick.
// The writers below are inlined into the encoder so that each key is a
// constant and its copy a few moves, not a `memcpy` call: 1,096 -> 1,001
// instructions per tick in `encode_bytes` (callgrind on
// `benches/publisher.rs`).
#[inline(always)]
fn write_tick_json(
    out: &mut Cursor<'_>,
    ts_text: &mut digits::TimestampText,
    symbol: &str,
    seq: u64,
    ts: u64,
    t: &crate::Tick,
) {
    out.put(TICK_PREFIX);
    out.put(br#","symbol":"#);
    if needs_escaping(symbol) {
        let mut escaped = Vec::with_capacity(symbol.len() + 8);
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut escaped, symbol);
        out.put(&escaped);
    } else {
        out.put(b"\"");
        out.put_short(symbol.as_bytes());
        out.put(b"\"");
    }
    out.put(br#","seq":"#);
    write_u64(out, seq);
    out.put(br#","ts":"#);
    out.at = ts_text.write(out.buf, out.at, ts);
    write_opt_price(out, br#","bid":"#, t.bid);
    write_opt_price(out, br#","ask":"#, t.ask);
    write_opt_u64(out, br#","bid_size":"#, t.bid_size);
    write_opt_u64(out, br#","ask_size":"#, t.ask_size);
    write_opt_price(out, br#","last":"#, t.last);
    write_opt_u64(out, br#","volume":"#, t.volume);
    out.put(b"}");
}

/// Whether `s` holds a byte a JSON string must escape. Symbols are
/// validated printable UTF-8 but may still hold `"` or `\`.
fn needs_escaping(s: &str) -> bool {
    s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// Appends `s` as a JSON string.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if needs_escaping(s) {
        // Writing a str into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    } else {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    }
}

#[inline(always)]
fn write_u64(out: &mut Cursor<'_>, v: u64) {
    out.at = digits::write_u64(out.buf, out.at, v);
}

#[inline(always)]
fn write_opt_u64(out: &mut Cursor<'_>, key: &[u8], v: Option<u64>) {
    if let Some(v) = v {
        out.put(key);
        write_u64(out, v);
    }
}

#[inline(always)]
fn write_opt_price(out: &mut Cursor<'_>, key: &[u8], v: Option<Price>) {
    match v {
        None => {}
        Some(Price::Float(v)) => {
            out.put(key);
            // The shortest representation that round-trips, as serde_json
            // prints it; non-finite values were refused by
            // `Tick::validate`.
            out.at = digits::write_f64(out.buf, out.at, v);
        }
        Some(Price::Exact(d)) => {
            out.put(key);
            // Validated JSON number text, digit for digit.
            out.put_short(d.as_str().as_bytes());
        }
    }
}

/// Builds the `snapshot` frame for a cached tick frame: the same JSON with
/// `"type":"snapshot"`. Returns `None` if `tick` is not a tick frame.
pub(crate) fn snapshot_of(tick: &Frame) -> Option<Frame> {
    let payload = ws::payload(tick.as_bytes())?;
    let rest = payload.strip_prefix(TICK_PREFIX)?;
    let mut json = Vec::with_capacity(SNAPSHOT_PREFIX.len() + rest.len());
    json.extend_from_slice(SNAPSHOT_PREFIX);
    json.extend_from_slice(rest);
    Some(text(&json))
}

/// Builds the `snapshot` of a cached tick frame with `"reset": true`: the
/// client must drop what it holds for the symbol (a resume that could not
/// be served).
pub(crate) fn reset_snapshot_of(tick: &Frame) -> Option<Frame> {
    let payload = ws::payload(tick.as_bytes())?;
    let rest = payload.strip_prefix(TICK_PREFIX)?.strip_suffix(b"}")?;
    let mut json = Vec::with_capacity(SNAPSHOT_PREFIX.len() + rest.len() + RESET.len() + 1);
    json.extend_from_slice(SNAPSHOT_PREFIX);
    json.extend_from_slice(rest);
    json.extend_from_slice(RESET);
    json.push(b'}');
    Some(text(&json))
}

const RESET: &[u8] = br#","reset":true"#;

/// The reset `snapshot` of a symbol with no tick on this node: `seq` 0 (its
/// next tick is `seq` 1) and no prices.
pub(crate) fn empty_reset_snapshot(symbol: &str) -> Frame {
    let mut json = Vec::with_capacity(64 + symbol.len());
    json.extend_from_slice(SNAPSHOT_PREFIX);
    json.extend_from_slice(br#","symbol":"#);
    write_str(&mut json, symbol);
    json.extend_from_slice(br#","seq":0"#);
    json.extend_from_slice(RESET);
    json.push(b'}');
    text(&json)
}

/// The `history` reply: each tick object is the stored tick frame's JSON
/// from `"seq"` on, byte for byte (prices are never re-serialized), so a
/// reply says exactly what the live ticks said.
pub(crate) fn history<'a>(
    id: Option<&serde_json::Number>,
    symbol: &str,
    ticks: impl Iterator<Item = &'a Frame>,
) -> Frame {
    let mut json = Vec::with_capacity(256);
    json.extend_from_slice(br#"{"type":"history""#);
    if let Some(id) = id {
        let _ = write!(json, r#","id":{id}"#);
    }
    json.extend_from_slice(br#","symbol":"#);
    write_str(&mut json, symbol);
    json.extend_from_slice(br#","ticks":["#);
    let mut first = true;
    for t in ticks {
        let Some(fields) = ws::payload(t.as_bytes()).and_then(tick_fields) else {
            continue;
        };
        if !first {
            json.push(b',');
        }
        first = false;
        json.push(b'{');
        json.extend_from_slice(fields);
    }
    json.extend_from_slice(b"]}");
    text(&json)
}

/// A tick payload from `"seq"` to its closing brace. The first `,"seq":`
/// is the field's: inside the symbol string every `"` is escaped.
fn tick_fields(payload: &[u8]) -> Option<&[u8]> {
    const SEQ: &[u8] = br#","seq":"#;
    let rest = payload.strip_prefix(TICK_PREFIX)?;
    let at = rest.windows(SEQ.len()).position(|w| w == SEQ)?;
    Some(&rest[at + 1..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tick;

    fn payload(f: &Frame) -> &[u8] {
        ws::payload(f.as_bytes()).unwrap()
    }

    #[test]
    fn history_and_reset_frames_keep_the_tick_bytes() {
        let mut enc = TickEncoder::new();
        let a = enc.encode("A\",\"seq\":9", 4, 5, &Tick::new("x").bid(0.1).volume(3));
        let b = enc.encode("A\",\"seq\":9", 5, 6, &Tick::new("x").last(2.5));
        let h = history(Some(&6.into()), "A", [&a, &b].into_iter());
        assert_eq!(
            payload(&h),
            br#"{"type":"history","id":6,"symbol":"A","ticks":[{"seq":4,"ts":5,"bid":0.1,"volume":3},{"seq":5,"ts":6,"last":2.5}]}"#
        );
        let empty = history(None, "B", std::iter::empty());
        assert_eq!(
            payload(&empty),
            br#"{"type":"history","symbol":"B","ticks":[]}"#
        );
        let r = reset_snapshot_of(&b).unwrap();
        let v: serde_json::Value = serde_json::from_slice(payload(&r)).unwrap();
        assert_eq!(
            (v["type"].as_str(), v["seq"].as_u64(), v["reset"].as_bool()),
            (Some("snapshot"), Some(5), Some(true))
        );
        let e = empty_reset_snapshot("Z");
        assert_eq!(
            payload(&e),
            br#"{"type":"snapshot","symbol":"Z","seq":0,"reset":true}"#
        );
    }

    #[test]
    fn integers_are_written_as_rust_prints_them() {
        let mut values = vec![0, 9, 10, 99, 100, 101, u64::MAX, u64::MAX - 1];
        for p in 1..20 {
            let ten = 10u64.pow(p);
            values.extend([ten - 1, ten, ten + 1, ten / 2 * 3]);
        }
        // A spread of other values (an LCG: deterministic).
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        for _ in 0..10_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            values.extend([x, x >> 13, x >> 37, x % 1000]);
        }
        for v in values {
            let mut buf = [b'x'; 1 + MAX_U64_LEN];
            let mut out = Cursor {
                buf: &mut buf,
                at: 1,
            };
            write_u64(&mut out, v);
            let end = out.at;
            assert_eq!(&buf[1..end], v.to_string().as_bytes(), "{v}");
        }
    }

    #[test]
    fn tick_frames_are_what_serde_json_would_write() {
        let mut enc = TickEncoder::new();
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        for i in 0..5_000u64 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let px = match i % 4 {
                0 => (x >> 11) as f64 / (1u64 << 53) as f64 * 1000.0,
                1 => ((x >> 40) as f64) / 100.0,
                2 => f64::from_bits(x & !(0x7ff << 52) | (((x >> 52) % 0x7ff) << 52)),
                _ => -((x % 100_000) as f64) / 1e4,
            };
            let t = Tick::new("SYM")
                .bid(px)
                .ask(px / 3.0)
                .bid_size(x >> 3)
                .volume(i);
            let f = enc.encode("SYM", i + 1, x, &t);
            let expected = format!(
                r#"{{"type":"tick","symbol":"SYM","seq":{},"ts":{},"bid":{},"ask":{},"bid_size":{},"volume":{}}}"#,
                i + 1,
                x,
                serde_json::to_string(&px).unwrap(),
                serde_json::to_string(&(px / 3.0)).unwrap(),
                x >> 3,
                i
            );
            assert_eq!(
                f.as_bytes(),
                text(expected.as_bytes()).as_bytes(),
                "tick {i}"
            );
        }
        // Long enough for the 4-byte header.
        let long = "L".repeat(32);
        let f = enc.encode(
            &long,
            u64::MAX,
            u64::MAX,
            &Tick::new(&long)
                .bid(1e300)
                .ask(-1e-300)
                .bid_size(u64::MAX)
                .ask_size(u64::MAX)
                .last(0.1)
                .volume(u64::MAX),
        );
        assert_eq!(f.as_bytes()[1], 126, "a 126+ byte payload");
        let v: serde_json::Value = serde_json::from_slice(payload(&f)).unwrap();
        assert_eq!(v["volume"].as_u64(), Some(u64::MAX));
        assert_eq!(v["bid"].as_f64(), Some(1e300));
    }

    #[test]
    fn short_copies_of_every_length_land_where_they_belong() {
        let src: Vec<u8> = (1..=64).collect();
        for n in 0..=src.len() {
            let mut buf = vec![0xee; 80];
            let mut out = Cursor {
                buf: &mut buf,
                at: 3,
            };
            out.put_short(&src[..n]);
            assert_eq!(out.at, 3 + n);
            assert_eq!(&buf[..3], &[0xee; 3], "before, {n}");
            assert_eq!(&buf[3..3 + n], &src[..n], "{n}");
            assert!(buf[3 + n..].iter().all(|&b| b == 0xee), "after, {n}");
        }
    }

    #[test]
    fn the_longest_tick_fits_the_scratch_as_it_is() {
        let d = |s: &str| crate::Decimal::parse(s).unwrap();
        let longest_price = format!("-{}.{}", "9".repeat(19), "9".repeat(19));
        let symbol = "\"".repeat(crate::symbols::MAX_SYMBOL_LEN);
        let t = Tick::new(symbol.as_str())
            .bid(d(&longest_price))
            .ask(d(&longest_price))
            .last(d(&longest_price))
            .bid_size(u64::MAX)
            .ask_size(u64::MAX)
            .volume(u64::MAX);
        let mut enc = TickEncoder::new();
        let before = enc.scratch.len();
        let len = enc.encode_bytes(&symbol, u64::MAX, u64::MAX, &t).len();
        assert_eq!(enc.scratch.len(), before, "the scratch grew");
        // It ends where the scratch does but for the symbol's bound (each
        // `"` takes two bytes, not six) and the digit writers' slack, after
        // a 4-byte header.
        assert_eq!(
            len + ws::MAX_HEADER - 4,
            before - 4 * symbol.len() - digits::SLACK,
            "the bound is tight"
        );
        let f = enc.encode(&symbol, u64::MAX, u64::MAX, &t);
        let v: serde_json::Value = serde_json::from_slice(payload(&f)).unwrap();
        assert_eq!(v["symbol"], symbol.as_str());
        let text = String::from_utf8(payload(&f).to_vec()).unwrap();
        assert!(
            text.contains(&format!(r#","last":{longest_price},"#)),
            "{text}"
        );
        // A longer symbol than a tick may have (the public `encode` does
        // not validate) grows it rather than failing.
        let long = "\u{1}".repeat(100);
        let f = enc.encode(&long, 1, 2, &Tick::new(long.as_str()).bid(1.5));
        let v: serde_json::Value = serde_json::from_slice(payload(&f)).unwrap();
        assert_eq!(v["symbol"], long.as_str());
    }

    #[test]
    fn header_lengths_use_the_shortest_form() {
        for (len, hlen) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let f = text(&vec![b'x'; len]);
            assert_eq!(f.len(), len + hlen, "len {len}");
            assert_eq!(f.as_bytes()[0], 0x81);
            assert_eq!(payload(&f).len(), len);
        }
    }

    #[test]
    fn tick_json_is_valid_and_complete() {
        let t = Tick::new("A\"B\\C")
            .bid(1.5)
            .ask(2.0)
            .bid_size(3)
            .ask_size(4)
            .last(1e-7)
            .volume(u64::MAX);
        let f = TickEncoder::new().encode(&t.symbol, 7, 99, &t);
        let v: serde_json::Value = serde_json::from_slice(payload(&f)).unwrap();
        assert_eq!(v["type"], "tick");
        assert_eq!(v["symbol"], "A\"B\\C");
        assert_eq!(v["seq"], 7);
        assert_eq!(v["ts"], 99);
        assert_eq!(v["bid"], 1.5);
        assert_eq!(v["ask"], 2.0);
        assert_eq!(v["bid_size"], 3);
        assert_eq!(v["ask_size"], 4);
        assert_eq!(v["last"], 1e-7);
        assert_eq!(v["volume"], u64::MAX);
    }

    #[test]
    fn exact_decimals_are_written_digit_for_digit() {
        let d = |s: &str| crate::Decimal::parse(s).unwrap();
        let t = Tick::new("X")
            .bid(d("0.30000000000000000001"))
            .ask(d("123456789.123456789"))
            .last(d("-0.10"));
        let f = TickEncoder::new().encode("X", 1, 2, &t);
        assert_eq!(
            payload(&f),
            br#"{"type":"tick","symbol":"X","seq":1,"ts":2,"bid":0.30000000000000000001,"ask":123456789.123456789,"last":-0.10}"#
        );
        // The float path, for contrast: 0.1 + 0.2 is not 0.3.
        let t = Tick::new("X").bid(0.1 + 0.2);
        let f = TickEncoder::new().encode("X", 1, 2, &t);
        assert!(payload(&f).ends_with(br#""bid":0.30000000000000004}"#));
        let v: serde_json::Value = serde_json::from_slice(payload(&f)).unwrap();
        assert_eq!(v["bid"], 0.30000000000000004);
    }

    #[test]
    fn absent_fields_are_left_out() {
        let t = Tick::new("X");
        let f = TickEncoder::new().encode("X", 1, 2, &t);
        assert_eq!(
            payload(&f),
            br#"{"type":"tick","symbol":"X","seq":1,"ts":2}"#
        );
    }

    #[test]
    fn snapshot_keeps_every_field_but_the_type() {
        let t = Tick::new("MSFT").bid(410.5).volume(10);
        let f = TickEncoder::new().encode("MSFT", 41, 5, &t);
        let s = snapshot_of(&f).unwrap();
        let a: serde_json::Value = serde_json::from_slice(payload(&f)).unwrap();
        let mut b: serde_json::Value = serde_json::from_slice(payload(&s)).unwrap();
        assert_eq!(b["type"], "snapshot");
        b["type"] = "tick".into();
        assert_eq!(a, b);
        assert!(snapshot_of(&text(b"{}")).is_none());
    }

    #[test]
    fn close_reason_is_cut_on_a_char_boundary() {
        let f = close(4001, "slow consumer");
        assert_eq!(&f.as_bytes()[..4], &[0x88, 15, 0x0f, 0xa1]);
        let long = "é".repeat(100);
        let f = close(1000, &long);
        let p = payload(&f);
        assert!(p.len() <= 125);
        assert!(std::str::from_utf8(&p[2..]).is_ok());
    }
}
