//! Cheap extraction of the few fields the load generator needs from a
//! server message.
//!
//! For `tick` and `snapshot` messages (nearly all traffic) only `type`,
//! `symbol`, `seq` and `ts` are read, by a targeted byte scan: first a fast
//! path that expects the order the tickcast server writes (`type`, `symbol`,
//! `seq`, `ts`), then a key search that accepts any order, then full
//! `serde_json` parsing. The rare control messages (`welcome`, `subscribed`,
//! `pong`, `error`, `notice`, …) are parsed properly with `serde_json`.
//!
//! Invariant: the scan only ever returns values that a full JSON parser
//! would return for the same (valid) message; when it is unsure it falls
//! back to the parser, so field order and escapes affect speed, never the
//! answer. A key only matches where a JSON key can start: after `{` or `,`
//! (an occurrence inside a string value always follows an escaped quote).

use std::borrow::Cow;

use memchr::memmem::Finder;
use serde::Deserialize;

/// What a server text message turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scanned<'a> {
    /// A live `tick`.
    Tick(TickFields<'a>),
    /// A `snapshot`: sets the sequence baseline of its symbol.
    Snapshot(TickFields<'a>),
    /// Any other message type; parse it with [`parse_control`].
    Other,
    /// Not a JSON object with a string `type`, or a tick/snapshot missing
    /// `symbol`, `seq` or `ts`.
    Invalid,
}

/// The fields of a tick or snapshot the load generator uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickFields<'a> {
    /// The symbol, as decoded UTF-8 bytes (borrowed unless it had escapes).
    pub symbol: Cow<'a, [u8]>,
    /// Per-symbol sequence number.
    pub seq: u64,
    /// Broadcaster accept time, ns since the UNIX epoch.
    pub ts: u64,
}

/// A control (non-tick) message, fully parsed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Control {
    /// Sent once right after the handshake.
    Welcome {
        /// Server-assigned connection id.
        #[serde(default)]
        conn_id: Option<String>,
        /// Server name and version.
        #[serde(default)]
        server: Option<String>,
        /// Protocol version.
        #[serde(default)]
        protocol: Option<u64>,
    },
    /// Reply to `subscribe`.
    Subscribed {
        /// Echoed request id.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Reply to `unsubscribe`.
    Unsubscribed {
        /// Echoed request id.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Reply to `list_groups`.
    Groups {
        /// Echoed request id.
        #[serde(default)]
        id: Option<u64>,
    },
    /// Reply to the `ping` op.
    Pong {
        /// Echoed request id.
        #[serde(default)]
        id: Option<u64>,
    },
    /// A failed request.
    Error {
        /// Echoed request id.
        #[serde(default)]
        id: Option<u64>,
        /// Machine-readable error code, e.g. `unknown_group`.
        code: String,
        /// Human-readable text.
        #[serde(default)]
        message: String,
    },
    /// A broadcast notice.
    Notice {
        /// The notice text.
        #[serde(default)]
        text: String,
    },
    /// A message type this tool does not know.
    #[serde(other)]
    Unknown,
}

/// Parses a control message.
///
/// # Errors
/// Returns the `serde_json` error for anything that is not a JSON object
/// with a string `type`.
pub fn parse_control(payload: &[u8]) -> Result<Control, serde_json::Error> {
    serde_json::from_slice(payload)
}

/// Reusable searchers for the keys the scan looks for (building a
/// `memmem::Finder` per message would cost more than the search).
#[derive(Debug)]
pub struct Scanner {
    type_key: Finder<'static>,
    symbol_key: Finder<'static>,
    seq_key: Finder<'static>,
    ts_key: Finder<'static>,
}

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// Builds the key searchers.
    pub fn new() -> Self {
        Scanner {
            type_key: Finder::new(br#""type""#),
            symbol_key: Finder::new(br#""symbol""#),
            seq_key: Finder::new(br#""seq""#),
            ts_key: Finder::new(br#""ts""#),
        }
    }

    /// Classifies `payload` and extracts the tick fields if it is a tick or
    /// snapshot.
    pub fn scan<'a>(&self, payload: &'a [u8]) -> Scanned<'a> {
        if let Some(t) = scan_fast(payload) {
            return t.into_scanned();
        }
        match self.scan_any_order(payload) {
            Some(s) => s,
            None => scan_with_parser(payload),
        }
    }

    /// [`Scanner::scan`] without the fast path (tests compare the two).
    #[cfg(test)]
    fn scan_general<'a>(&self, payload: &'a [u8]) -> Scanned<'a> {
        match self.scan_any_order(payload) {
            Some(s) => s,
            None => scan_with_parser(payload),
        }
    }

    fn scan_any_order<'a>(&self, p: &'a [u8]) -> Option<Scanned<'a>> {
        let at = find_key(p, &self.type_key, 6)?;
        let (kind, _) = string_at(p, at)?;
        let is_tick = match &*kind {
            b"tick" => true,
            b"snapshot" => false,
            _ => return Some(Scanned::Other),
        };
        let (symbol, _) = string_at(p, find_key(p, &self.symbol_key, 8)?)?;
        let (seq, _) = u64_at(p, find_key(p, &self.seq_key, 5)?)?;
        let (ts, _) = u64_at(p, find_key(p, &self.ts_key, 4)?)?;
        let f = TickFields { symbol, seq, ts };
        Some(if is_tick {
            Scanned::Tick(f)
        } else {
            Scanned::Snapshot(f)
        })
    }
}

/// Which of the two scanned message types a [`FastTick`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A live `tick`.
    Tick,
    /// A `snapshot`.
    Snapshot,
}

/// A tick or snapshot read by [`scan_fast`]: the symbol is always borrowed
/// (the fast path never decodes escapes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FastTick<'a> {
    /// Tick or snapshot.
    pub kind: Kind,
    /// The symbol's raw bytes (no escapes in them).
    pub symbol: &'a [u8],
    /// The payload from the symbol's first byte on (the symbol, its
    /// closing quote and the rest), for `SymbolTable::intern_in`.
    pub symbol_text: &'a [u8],
    /// Per-symbol sequence number.
    pub seq: u64,
    /// Broadcaster accept time, ns since the UNIX epoch.
    pub ts: u64,
}

impl<'a> FastTick<'a> {
    fn into_scanned(self) -> Scanned<'a> {
        let f = TickFields {
            symbol: Cow::Borrowed(self.symbol),
            seq: self.seq,
            ts: self.ts,
        };
        match self.kind {
            Kind::Tick => Scanned::Tick(f),
            Kind::Snapshot => Scanned::Snapshot(f),
        }
    }
}

/// `{"type":"tick","symbol":"` as a fixed-size array, so the comparison is
/// inlined (two overlapping 16-byte loads) instead of a `memcmp` call.
const TICK_HEAD: &[u8; 25] = br#"{"type":"tick","symbol":""#;
const SNAPSHOT_HEAD: &[u8; 29] = br#"{"type":"snapshot","symbol":""#;
/// The symbol's closing quote and the next key, `","seq":`: exactly one
/// word, so one comparison checks both.
const QUOTE_SEQ_KEY: u64 = u64::from_le_bytes(*br#"","seq":"#);
/// `,"ts":` (6 bytes), compared as the low 6 bytes of a word.
const TS_KEY: u64 = u64::from_le_bytes(*b",\"ts\":\0\0");
const TS_KEY_MASK: u64 = 0xFFFF_FFFF_FFFF;
/// Most digits the fast path parses; 19 digits always fit in a `u64`.
/// Longer numbers (or overflow) are left to the general path.
const MAX_FAST_DIGITS: usize = 19;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Fast path for the exact layout tickcast and the peers write:
/// `{"type":"tick","symbol":"SYM","seq":N,"ts":N` followed by `,` or `}`
/// (or the same with `"snapshot"`), the symbol without escapes, both
/// numbers at most 19 digits. Returns `None` for anything else; the caller
/// then uses the general [`Scanner::scan`], which gives the same answer
/// for everything this accepts.
///
/// Two tiers: a tick of at least [`WINDOW`] bytes with a short symbol and
/// `seq` and a 19-digit `ts` (every live tick of tickcast and the peers)
/// is read by [`tick_in_window`], whose word loads all sit inside that
/// window, so they need no per-load length checks; anything else
/// (snapshots, short messages, long symbols, other digit counts) by
/// [`scan_fast_checked`].
#[inline(always)]
pub fn scan_fast(p: &[u8]) -> Option<FastTick<'_>> {
    scan_fast_with(p, &mut TsPrefix::default())
}

/// [`scan_fast`] with a [`TsPrefix`] kept from one tick to the next (the
/// client thread keeps one): the same answers, fewer instructions.
#[inline(always)]
pub fn scan_fast_with<'a>(p: &'a [u8], prefix: &mut TsPrefix) -> Option<FastTick<'a>> {
    if let Some(w) = p.first_chunk::<WINDOW>()
        && let Some(t) = tick_in_window(p, w, prefix)
    {
        return Some(t);
    }
    scan_fast_checked(p)
}

/// The first 11 digits of the last 19-digit `ts` converted, and their
/// value: they change once every 100 ms (10^8 ns), and the ticks of a read
/// were stamped within a few ms of each other, so nearly every tick finds
/// its first 11 digits here and converts only the last 8 (one word).
///
/// Invariant: `head` is 8 ASCII digits, `mid` 3 ASCII digits (the low 3
/// bytes of a word, the rest zero) and `value` the value of those 11
/// digits × 10^8, so a tick whose first 11 bytes equal them has 11 digits
/// there (no check needed) worth `value`.
#[derive(Debug, Clone, Copy)]
pub struct TsPrefix {
    head: u64,
    mid: u64,
    value: u64,
}

impl Default for TsPrefix {
    fn default() -> Self {
        TsPrefix {
            head: u64::from_le_bytes(*b"00000000"),
            mid: u64::from_le_bytes(*b"000\0\0\0\0\0"),
            value: 0,
        }
    }
}

/// Bytes of a payload [`tick_in_window`] reads: the head (25), a symbol of
/// up to 15 bytes and its quote (16), `,"seq":` (7), up to 15 digits,
/// `,"ts":` (6), 19 digits and the delimiter after them: 89 bytes.
pub const WINDOW: usize = 96;

/// Longest symbol [`tick_in_window`] takes: its closing quote must be in
/// the symbol's first two words.
const WINDOW_SYMBOL: usize = 15;

/// A word of the window at `at` (the callers keep `at + 8 <= WINDOW`; a
/// bad offset is a `None`, never a panic).
#[inline(always)]
fn word(w: &[u8; WINDOW], at: usize) -> Option<u64> {
    w.get(at..at + 8)
        .and_then(|b| b.first_chunk::<8>())
        .map(|b| u64::from_le_bytes(*b))
}

/// Index (0..=7) of the first `"` or backslash in `w`, if any (the classic
/// zero-byte test is exact for the lowest zero byte, the one taken).
#[inline(always)]
fn quote_or_backslash(w: u64) -> Option<usize> {
    let q = w ^ (ONES * u64::from(b'"'));
    let b = w ^ (ONES * u64::from(b'\\'));
    let z = (q.wrapping_sub(ONES) & !q | b.wrapping_sub(ONES) & !b) & HIGHS;
    (z != 0).then(|| (z.trailing_zeros() / 8) as usize)
}

/// The server's tick in the first [`WINDOW`] bytes of `p` (`w`), or `None`
/// for anything that is not exactly that (see [`scan_fast`]).
#[inline(always)]
fn tick_in_window<'a>(
    p: &'a [u8],
    w: &[u8; WINDOW],
    prefix: &mut TsPrefix,
) -> Option<FastTick<'a>> {
    const START: usize = TICK_HEAD.len();
    if w[..START] != TICK_HEAD[..] {
        return None;
    }
    let end = match quote_or_backslash(word(w, START)?) {
        Some(k) => START + k,
        None => START + 8 + quote_or_backslash(word(w, START + 8)?)?,
    };
    debug_assert!(end - START <= WINDOW_SYMBOL);
    // The closing quote and `,"seq":` in one comparison (a backslash or
    // anything else there fails it).
    if word(w, end)? != QUOTE_SEQ_KEY {
        return None;
    }
    let (seq, at) = short_digits(w, end + 8)?;
    if word(w, at)? & TS_KEY_MASK != TS_KEY {
        return None;
    }
    let t = at + 6;
    // 19 digits: 11 (a word and 3 bytes), then the last 8 (one word),
    // then `,` or `}` (a float, an exponent or a 20th digit fails this and
    // goes to the checked path).
    let (head, mid, tail) = (word(w, t)?, word(w, t + 8)? & 0xFF_FFFF, word(w, t + 11)?);
    let delimiter = w.get(t + 19).copied();
    if non_digits(tail) != 0 || !matches!(delimiter, Some(b',' | b'}')) {
        return None;
    }
    if head != prefix.head || mid != prefix.mid {
        // Bytes 3..8 of `mid` are zero: make them digits for the check.
        if non_digits(head) | non_digits(mid | 0x3030_3030_3000_0000) != 0 {
            return None;
        }
        let d = mid & 0x0F_0F0F;
        let mid3 = (d & 0xFF) * 100 + ((d >> 8) & 0xFF) * 10 + (d >> 16);
        *prefix = TsPrefix {
            head,
            mid,
            value: (value8(head) * 1000 + mid3) * 100_000_000,
        };
    }
    let ts = prefix.value + value8(tail);
    Some(FastTick {
        kind: Kind::Tick,
        symbol: p.get(START..end)?,
        symbol_text: p.get(START..)?,
        seq,
        ts,
    })
}

/// 1..=15 digits at `at` in the window: their value and the index after
/// them; `None` for none or more.
#[inline(always)]
fn short_digits(w: &[u8; WINDOW], at: usize) -> Option<(u64, usize)> {
    let w0 = word(w, at)?;
    let m0 = non_digits(w0);
    if m0 != 0 {
        let n = digit_run(m0);
        return (n > 0).then(|| (value_first(w0, n), at + n));
    }
    let w1 = word(w, at + 8)?;
    let m1 = non_digits(w1);
    if m1 == 0 {
        return None;
    }
    let n = digit_run(m1);
    Some((value8(w0) * POW10[n] + value_first(w1, n), at + 8 + n))
}

/// [`scan_fast`] with a length check per load: any length, snapshots,
/// symbols and numbers of any size up to the fast path's limits.
#[inline(never)]
fn scan_fast_checked(p: &[u8]) -> Option<FastTick<'_>> {
    let (kind, start) = if p.len() > TICK_HEAD.len() && p[..TICK_HEAD.len()] == TICK_HEAD[..] {
        (Kind::Tick, TICK_HEAD.len())
    } else {
        scan_snapshot_head(p)?
    };
    let end = find_quote_or_backslash(p, start)?;
    // The closing quote and `,"seq":` in one comparison (a backslash or
    // anything else there fails it).
    if load8(p, end)? != QUOTE_SEQ_KEY {
        return None;
    }
    let symbol = &p[start..end];
    let (seq, at) = digits_fast(p, end + 8)?;
    if load8(p, at)? & TS_KEY_MASK != TS_KEY {
        return None;
    }
    let (ts, at) = digits_fast(p, at + 6)?;
    // The number must end at a delimiter, or it was a prefix of something
    // else (a float, an exponent); let the general path decide.
    if !matches!(p.get(at), Some(b',') | Some(b'}')) {
        return None;
    }
    Some(FastTick {
        kind,
        symbol,
        symbol_text: &p[start..],
        seq,
        ts,
    })
}

/// The snapshot head, out of the tick path's way (a few per subscription).
#[cold]
#[inline(never)]
fn scan_snapshot_head(p: &[u8]) -> Option<(Kind, usize)> {
    (p.len() > SNAPSHOT_HEAD.len() && p[..SNAPSHOT_HEAD.len()] == SNAPSHOT_HEAD[..])
        .then_some((Kind::Snapshot, SNAPSHOT_HEAD.len()))
}

/// Loads 8 bytes at `at` (little-endian), if there are 8.
#[inline(always)]
fn load8(p: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = p.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Index of the first `"` or backslash at or after `from`.
#[inline(always)]
fn find_quote_or_backslash(p: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(w) = load8(p, i) {
        if let Some(k) = quote_or_backslash(w) {
            return Some(i + k);
        }
        i += 8;
    }
    let rel = p.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
    Some(i + rel)
}

/// Converts up to 8 digit values (0..=9, one per byte, most significant
/// digit in the lowest byte, leading bytes zero) into their number.
#[inline(always)]
fn swar_8_digits(v: u64) -> u64 {
    // Pairs, then quads, then the whole (fast_float's method).
    let v = v.wrapping_mul(10).wrapping_add(v >> 8);
    let mask = 0x0000_00FF_0000_00FF;
    let mul1 = 0x000F_4240_0000_0064; // 100 + (1_000_000 << 32)
    let mul2 = 0x0000_2710_0000_0001; // 1 + (10_000 << 32)
    ((v & mask)
        .wrapping_mul(mul1)
        .wrapping_add(((v >> 16) & mask).wrapping_mul(mul2)))
        >> 32
}

/// Powers of ten up to 10^16 (enough for 19 digits split 8 + 8 + 3).
const POW10: [u64; 17] = {
    let mut t = [1u64; 17];
    let mut i = 1;
    while i < t.len() {
        t[i] = t[i - 1] * 10;
        i += 1;
    }
    t
};

/// Per byte of `w`: non-zero iff the byte is not an ASCII digit. A byte is
/// a digit iff its high nibble is 3 and its low nibble at most 9 (adding 6
/// to a low nibble of 10..15 carries into bit 4, never into the next byte).
#[inline(always)]
fn non_digits(w: u64) -> u64 {
    let low = w & 0x0F0F_0F0F_0F0F_0F0F;
    ((w & 0xF0F0_F0F0_F0F0_F0F0) ^ 0x3030_3030_3030_3030)
        | ((low + 0x0606_0606_0606_0606) & 0x1010_1010_1010_1010)
}

/// The value of all 8 digits of `w` (every byte a digit).
#[inline(always)]
fn value8(w: u64) -> u64 {
    swar_8_digits(w & 0x0F0F_0F0F_0F0F_0F0F)
}

/// The value of the first `n` (0..=7) digits of `w`.
#[inline(always)]
fn value_first(w: u64, n: usize) -> u64 {
    // Move the n digits to the top bytes; the zero bytes below them act as
    // leading zeros. Two shifts so that n = 0 gives 0, not an overflow.
    swar_8_digits(((w & 0x0F0F_0F0F_0F0F_0F0F) << (8 * (7 - n))) << 8)
}

/// Index (0..=7) of the first non-digit byte, given `non_digits(w) != 0`.
#[inline(always)]
fn digit_run(m: u64) -> usize {
    (m.trailing_zeros() / 8) as usize
}

/// Parses the run of ASCII digits at `at` (at least one, at most
/// [`MAX_FAST_DIGITS`]); returns the value and the index after the last
/// digit.
///
/// Reads three words at once when 24 bytes are there (the usual case: the
/// number is followed by more fields), so the three conversions run in
/// parallel instead of each load waiting for the previous digit count.
#[inline(always)]
fn digits_fast(p: &[u8], at: usize) -> Option<(u64, usize)> {
    let (Some(w0), Some(w1), Some(w2)) = (load8(p, at), load8(p, at + 8), load8(p, at + 16)) else {
        return digits_tail(p, at);
    };
    let m0 = non_digits(w0);
    if m0 != 0 {
        let n = digit_run(m0);
        return (n > 0).then(|| (value_first(w0, n), at + n));
    }
    let m1 = non_digits(w1);
    if m1 != 0 {
        let n = digit_run(m1);
        return Some((value8(w0) * POW10[n] + value_first(w1, n), at + 8 + n));
    }
    let m2 = non_digits(w2);
    let n = if m2 == 0 { 8 } else { digit_run(m2) };
    if 16 + n > MAX_FAST_DIGITS {
        return None;
    }
    let v = value8(w0) * POW10[8 + n] + value8(w1) * POW10[n] + value_first(w2, n);
    Some((v, at + 16 + n))
}

/// Byte-at-a-time digits, when fewer than 24 bytes remain.
#[cold]
fn digits_tail(p: &[u8], at: usize) -> Option<(u64, usize)> {
    let (mut i, mut v) = (at, 0u64);
    while let Some(&c) = p.get(i).filter(|c| c.is_ascii_digit()) {
        if i - at >= MAX_FAST_DIGITS {
            return None;
        }
        v = v * 10 + u64::from(c - b'0');
        i += 1;
    }
    (i > at).then_some((v, i))
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Finds `key` (quoted, `key_len` bytes) where a key can start and returns
/// the index of its value (after `:` and whitespace).
fn find_key(p: &[u8], key: &Finder<'_>, key_len: usize) -> Option<usize> {
    let mut from = 0;
    while let Some(rel) = key.find(&p[from..]) {
        let at = from + rel;
        from = at + 1;
        let before = p[..at].iter().rev().find(|b| !is_ws(**b));
        if !matches!(before, Some(b'{') | Some(b',')) {
            continue;
        }
        let mut i = at + key_len;
        while i < p.len() && is_ws(p[i]) {
            i += 1;
        }
        if p.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while i < p.len() && is_ws(p[i]) {
            i += 1;
        }
        return Some(i);
    }
    None
}

/// Reads the JSON string starting at `at` (which must be `"`); returns its
/// decoded bytes and the index after the closing quote.
fn string_at(p: &[u8], at: usize) -> Option<(Cow<'_, [u8]>, usize)> {
    if p.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let end = start + memchr::memchr2(b'"', b'\\', &p[start..])?;
    if p[end] == b'"' {
        return Some((Cow::Borrowed(&p[start..end]), end + 1));
    }
    // Escapes: find the real closing quote, then let serde_json decode.
    let mut i = end;
    while i < p.len() {
        match p[i] {
            b'\\' => i += 2,
            b'"' => {
                let s: String = serde_json::from_slice(&p[at..=i]).ok()?;
                return Some((Cow::Owned(s.into_bytes()), i + 1));
            }
            _ => i += 1,
        }
    }
    None
}

/// Reads an unsigned integer at `at`; returns it and the index after it.
fn u64_at(p: &[u8], at: usize) -> Option<(u64, usize)> {
    let mut i = at;
    let mut v: u64 = 0;
    while let Some(d) = p.get(i).filter(|b| b.is_ascii_digit()) {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
        i += 1;
    }
    if i == at {
        return None;
    }
    // A fraction or exponent makes it something other than a u64.
    if matches!(p.get(i), Some(b'.') | Some(b'e') | Some(b'E')) {
        return None;
    }
    Some((v, i))
}

#[derive(Deserialize)]
struct Loose {
    #[serde(rename = "type")]
    kind: String,
    symbol: Option<String>,
    seq: Option<u64>,
    ts: Option<u64>,
}

fn scan_with_parser(p: &[u8]) -> Scanned<'_> {
    let Ok(m) = serde_json::from_slice::<Loose>(p) else {
        return Scanned::Invalid;
    };
    let is_tick = match m.kind.as_str() {
        "tick" => true,
        "snapshot" => false,
        _ => return Scanned::Other,
    };
    let (Some(symbol), Some(seq), Some(ts)) = (m.symbol, m.seq, m.ts) else {
        return Scanned::Invalid;
    };
    let f = TickFields {
        symbol: Cow::Owned(symbol.into_bytes()),
        seq,
        ts,
    };
    if is_tick {
        Scanned::Tick(f)
    } else {
        Scanned::Snapshot(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tick(symbol: &str, seq: u64, ts: u64) -> Scanned<'static> {
        Scanned::Tick(TickFields {
            symbol: Cow::Owned(symbol.as_bytes().to_vec()),
            seq,
            ts,
        })
    }

    #[test]
    fn server_order_tick_is_scanned() {
        let s = Scanner::new();
        let m = br#"{"type":"tick","symbol":"AAPL","seq":42,"ts":1763775000123456789,"bid":189.25,"ask":189.27}"#;
        assert_eq!(s.scan(m), tick("AAPL", 42, 1763775000123456789));
    }

    #[test]
    fn snapshot_is_distinguished_from_tick() {
        let s = Scanner::new();
        let m = br#"{"type":"snapshot","symbol":"MSFT","seq":41,"ts":5,"bid":1.0}"#;
        let Scanned::Snapshot(f) = s.scan(m) else {
            panic!("not a snapshot")
        };
        assert_eq!((&*f.symbol, f.seq, f.ts), (&b"MSFT"[..], 41, 5));
    }

    #[test]
    fn fields_in_other_order_with_whitespace_are_found() {
        let s = Scanner::new();
        let m = br#"{ "ts" : 99, "bid":1.5, "seq": 7 ,"symbol" :"EURUSD", "type": "tick" }"#;
        assert_eq!(s.scan(m), tick("EURUSD", 7, 99));
    }

    #[test]
    fn escaped_symbol_is_decoded() {
        let s = Scanner::new();
        let m = br#"{"type":"tick","symbol":"A\"B\\C\u00e9","seq":1,"ts":2}"#;
        assert_eq!(s.scan(m), tick("A\"B\\C\u{e9}", 1, 2));
    }

    #[test]
    fn key_text_inside_a_string_value_is_not_a_key() {
        let s = Scanner::new();
        // A decoy "seq" inside the symbol string, before the real key.
        let m = br#"{"type":"tick","symbol":"x\",\"seq\":999","seq":3,"ts":4}"#;
        assert_eq!(s.scan(m), tick("x\",\"seq\":999", 3, 4));
        // A key whose name merely ends in "ts".
        let m = br#"{"type":"tick","symbol":"Q","seq":3,"counts":1,"ts":4}"#;
        assert_eq!(s.scan(m), tick("Q", 3, 4));
    }

    #[test]
    fn control_messages_are_other_and_parse_fully() {
        let s = Scanner::new();
        let w = br#"{"type":"welcome","conn_id":"c-17","server":"tickcast/0.1.0","protocol":1,"heartbeat_ms":5000,"max_queue":4096}"#;
        assert_eq!(s.scan(w), Scanned::Other);
        assert_eq!(
            parse_control(w).ok(),
            Some(Control::Welcome {
                conn_id: Some("c-17".into()),
                server: Some("tickcast/0.1.0".into()),
                protocol: Some(1)
            })
        );
        let e = br#"{"type":"error","id":1,"code":"unknown_group","message":"no group"}"#;
        assert!(matches!(
            parse_control(e),
            Ok(Control::Error { id: Some(1), .. })
        ));
        let u = br#"{"type":"brand_new","x":1}"#;
        assert_eq!(parse_control(u).ok(), Some(Control::Unknown));
    }

    #[test]
    fn malformed_tick_is_invalid_not_a_panic() {
        let s = Scanner::new();
        assert_eq!(
            s.scan(br#"{"type":"tick","symbol":"A","seq":-1,"ts":2}"#),
            Scanned::Invalid
        );
        assert_eq!(
            s.scan(br#"{"type":"tick","symbol":"A","seq":1.5,"ts":2}"#),
            Scanned::Invalid
        );
        assert_eq!(s.scan(br#"{"type":"tick","symbol":"A""#), Scanned::Invalid);
        assert_eq!(s.scan(b"not json"), Scanned::Invalid);
        assert_eq!(
            s.scan(br#"{"type":"tick","seq":1,"ts":2}"#),
            Scanned::Invalid
        );
    }

    #[test]
    fn seq_overflowing_u64_falls_back_and_is_invalid() {
        let s = Scanner::new();
        let m = br#"{"type":"tick","symbol":"A","seq":99999999999999999999999,"ts":2}"#;
        assert_eq!(s.scan(m), Scanned::Invalid);
    }
    /// A payload in tickcast's exact layout.
    fn server_tick(kind: &str, symbol: &str, seq: &str, ts: &str, rest: &str) -> Vec<u8> {
        format!(r#"{{"type":"{kind}","symbol":"{symbol}","seq":{seq},"ts":{ts}{rest}"#).into_bytes()
    }

    const REST: &str = r#","bid":189.25,"ask":189.27,"bid_size":300,"ask_size":500,"last":189.26,"volume":1234567}"#;

    #[test]
    fn fast_path_takes_the_server_layout() {
        let m = server_tick("tick", "EQ0042", "7", "1763775000123456789", REST);
        let f = scan_fast(&m).expect("fast path");
        assert_eq!(
            (f.kind, f.symbol, f.seq, f.ts),
            (Kind::Tick, &b"EQ0042"[..], 7, 1763775000123456789)
        );
        assert_eq!(
            Scanner::new().scan(&m),
            tick("EQ0042", 7, 1763775000123456789)
        );
    }

    #[test]
    fn fast_path_takes_a_redis_fed_nodes_tick() {
        // As a node fed from a Redis stream sends it: `ts` is Redis's TIME
        // in ns (microseconds x 1000), prices are the producer's text.
        let m = br#"{"type":"tick","symbol":"AAA","seq":2,"ts":1796138821315077000,"bid":1.50,"ask":1.6,"bid_size":10}"#;
        let f = scan_fast(m).expect("fast path");
        assert_eq!(
            (f.kind, f.symbol, f.seq, f.ts),
            (Kind::Tick, &b"AAA"[..], 2, 1_796_138_821_315_077_000)
        );
        assert_eq!(
            Scanner::new().scan(m),
            tick("AAA", 2, 1_796_138_821_315_077_000)
        );
    }

    #[test]
    fn fast_path_takes_snapshots() {
        let m = server_tick("snapshot", "AAPL", "41", "5", REST);
        let f = scan_fast(&m).expect("fast path");
        assert_eq!(
            (f.kind, f.symbol, f.seq, f.ts),
            (Kind::Snapshot, &b"AAPL"[..], 41, 5)
        );
        let Scanned::Snapshot(t) = Scanner::new().scan(&m) else {
            panic!("not a snapshot")
        };
        assert_eq!((&*t.symbol, t.seq, t.ts), (&b"AAPL"[..], 41, 5));
    }

    #[test]
    fn fast_path_agrees_with_general_path_for_every_digit_count() {
        // 1..=19 digits for seq and ts, with a long tail (three-word loads)
        // and with the message ending right after ts (byte-wise tail).
        let s = Scanner::new();
        let digits = "1234567890123456789";
        for seq_len in 1..=19 {
            for ts_len in 1..=19 {
                for rest in [REST, "}", r#","x":1}"#] {
                    let (seq, ts) = (&digits[..seq_len], &digits[19 - ts_len..]);
                    for sym in ["A", "EURUSD", "ABCDEFGH", "BRK.B-LONGER-THAN-16", ""] {
                        let m = server_tick("tick", sym, seq, ts, rest);
                        let f = scan_fast(&m).expect("fast path");
                        assert_eq!(f.seq, seq.parse::<u64>().expect("seq"));
                        assert_eq!(f.ts, ts.parse::<u64>().expect("ts"));
                        assert_eq!(f.symbol, sym.as_bytes());
                        assert_eq!(s.scan_general(&m), f.into_scanned(), "{m:?}");
                    }
                }
            }
        }
        // The largest 19-digit values.
        let m = server_tick(
            "tick",
            "Z",
            "9999999999999999999",
            "9999999999999999999",
            "}",
        );
        let f = scan_fast(&m).expect("fast path");
        assert_eq!(
            (f.seq, f.ts),
            (9_999_999_999_999_999_999, 9_999_999_999_999_999_999)
        );
    }

    #[test]
    fn a_kept_ts_prefix_gives_the_same_answers() {
        // One prefix across ticks whose ts share, then change, their first
        // 11 digits, and across messages that must be refused (a non-digit
        // in the first 8, in the 3 after them, in the last 8; a 20-digit
        // ts): every answer is scan_fast's.
        let mut prefix = TsPrefix::default();
        let cases: [(&str, Option<u64>); 15] = [
            ("1763775000123456789", Some(1_763_775_000_123_456_789)),
            ("1763775000123999999", Some(1_763_775_000_123_999_999)),
            ("1763775000987654321", Some(1_763_775_000_987_654_321)),
            ("1763775100000000000", Some(1_763_775_100_000_000_000)),
            ("17637751x0000000000", None),
            ("1763775x00000000000", None),
            ("17637751000x0000000", None),
            ("17637751000000000x0", None),
            ("1763775100000000001", Some(1_763_775_100_000_000_001)),
            ("00000000123456789012", None),
            ("0000000012345678901", Some(12_345_678_901)),
            ("0000000000045678901", Some(45_678_901)),
            ("1763775100000000002", Some(1_763_775_100_000_000_002)),
            ("9999999999999999999", Some(9_999_999_999_999_999_999)),
            ("1763775100000000003", Some(1_763_775_100_000_000_003)),
        ];
        for (ts, want) in cases {
            let m = server_tick("tick", "EQ0042", "7", ts, REST);
            let with = scan_fast_with(&m, &mut prefix);
            assert_eq!(with, scan_fast(&m), "{ts}");
            assert_eq!(with.map(|t| t.ts), want, "{ts}");
        }
    }

    #[test]
    fn numbers_past_19_digits_fall_back() {
        let s = Scanner::new();
        // 20 digits that fit a u64: the general path answers.
        let m = server_tick("tick", "A", "18446744073709551615", "2", REST);
        assert_eq!(scan_fast(&m), None);
        assert_eq!(s.scan(&m), tick("A", u64::MAX, 2));
        let m = server_tick("tick", "A", "1", "00000000000000000002", "}");
        assert_eq!(scan_fast(&m), None);
        assert_eq!(s.scan(&m), tick("A", 1, 2));
        // 20 digits that do not: invalid, as before.
        let m = server_tick("tick", "A", "1", "99999999999999999999", REST);
        assert_eq!(scan_fast(&m), None);
        assert_eq!(s.scan(&m), Scanned::Invalid);
    }

    #[test]
    fn escapes_fall_back_to_the_general_path() {
        let s = Scanner::new();
        for (raw, decoded) in [
            (r#"A\"B"#, "A\"B"),
            (r#"A\\B"#, "A\\B"),
            (r#"\u0041BC"#, "ABC"),
            (r#"EURUSD\/X"#, "EURUSD/X"),
            (r#"LONGSYMBOL\n"#, "LONGSYMBOL\n"),
        ] {
            let m = server_tick("tick", raw, "3", "4", REST);
            assert_eq!(scan_fast(&m), None, "{raw}");
            assert_eq!(s.scan(&m), tick(decoded, 3, 4), "{raw}");
        }
    }

    #[test]
    fn other_layouts_fall_back_to_the_general_path() {
        let s = Scanner::new();
        for m in [
            &br#"{"type":"tick","seq":3,"symbol":"Q","ts":4}"#[..],
            br#"{"symbol":"Q","type":"tick","seq":3,"ts":4}"#,
            br#"{"type":"tick","symbol":"Q","ts":4,"seq":3}"#,
            br#"{"type": "tick","symbol":"Q","seq":3,"ts":4}"#,
            br#"{"type":"tick", "symbol":"Q","seq":3,"ts":4}"#,
            br#"{"type":"tick","symbol":"Q","seq": 3,"ts":4}"#,
            br#"{"type":"tick","symbol":"Q","seq":3 ,"ts":4}"#,
            br#"{"type":"tick","symbol":"Q","seq":3,"ts":4 }"#,
            br#" {"type":"tick","symbol":"Q","seq":3,"ts":4}"#,
            br#"{"type":"tick","symbol":"Q","bid":1.5,"seq":3,"ts":4}"#,
        ] {
            assert_eq!(scan_fast(m), None, "{}", String::from_utf8_lossy(m));
            assert_eq!(s.scan(m), tick("Q", 3, 4), "{}", String::from_utf8_lossy(m));
        }
    }

    #[test]
    fn fast_path_refuses_non_integers_and_other_types() {
        for m in [
            &br#"{"type":"tick","symbol":"A","seq":1.5,"ts":2}"#[..],
            br#"{"type":"tick","symbol":"A","seq":1,"ts":2.5}"#,
            br#"{"type":"tick","symbol":"A","seq":1,"ts":2e3}"#,
            br#"{"type":"tick","symbol":"A","seq":1,"ts":2E3,"bid":1.0}"#,
            br#"{"type":"tick","symbol":"A","seq":-1,"ts":2}"#,
            br#"{"type":"tick","symbol":"A","seq":,"ts":2}"#,
            br#"{"type":"tick","symbol":"A","seq":1,"ts":}"#,
            br#"{"type":"tick","symbol":"A","seq":"1","ts":2}"#,
            br#"{"type":"tick","symbol":"A","seq":1,"ts":2"#,
            br#"{"type":"ticks","symbol":"A","seq":1,"ts":2}"#,
            br#"{"type":"welcome","conn_id":"c-1"}"#,
        ] {
            assert_eq!(scan_fast(m), None, "{}", String::from_utf8_lossy(m));
        }
        // What the general path makes of them is unchanged.
        let s = Scanner::new();
        assert_eq!(
            s.scan(br#"{"type":"tick","symbol":"A","seq":1,"ts":2e3}"#),
            Scanned::Invalid
        );
    }

    #[test]
    fn truncated_and_mutated_messages_never_disagree() {
        // Every prefix, and every single-byte change to a set of telling
        // bytes: the fast path either declines or gives exactly what a
        // full JSON parser reads from the same bytes.
        let base = server_tick("tick", "EQ0042", "123456", "1763775000123456789", REST);
        let check = |m: &[u8]| {
            let Some(f) = scan_fast(m) else { return };
            let v: serde_json::Value = match serde_json::from_slice(m) {
                Ok(v) => v,
                // Not JSON (e.g. cut off after ts): nothing to compare with,
                // but the fields must still be the general scan's.
                Err(_) => {
                    assert_eq!(Scanner::new().scan_general(m), f.into_scanned());
                    return;
                }
            };
            assert_eq!(v["type"], "tick", "{}", String::from_utf8_lossy(m));
            assert_eq!(v["symbol"].as_str().map(str::as_bytes), Some(f.symbol));
            assert_eq!(
                v["seq"].as_u64(),
                Some(f.seq),
                "{}",
                String::from_utf8_lossy(m)
            );
            assert_eq!(
                v["ts"].as_u64(),
                Some(f.ts),
                "{}",
                String::from_utf8_lossy(m)
            );
        };
        for n in 0..=base.len() {
            check(&base[..n]);
        }
        for i in 0..base.len() {
            for b in [
                b'"', b'\\', b',', b'}', b'.', b'e', b'0', b'9', b' ', b':', b'/', 0x80, 0,
            ] {
                let mut m = base.clone();
                m[i] = b;
                check(&m);
            }
        }
    }
}
