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

const TICK_PREFIX: &[u8] = br#"{"type":"tick","symbol":""#;
const SNAPSHOT_PREFIX: &[u8] = br#"{"type":"snapshot","symbol":""#;

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
        if let Some(s) = scan_ordered(payload) {
            return s;
        }
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

/// Fast path for the exact layout the tickcast server writes.
fn scan_ordered(p: &[u8]) -> Option<Scanned<'_>> {
    let (is_tick, mut at) = if p.starts_with(TICK_PREFIX) {
        (true, TICK_PREFIX.len())
    } else if p.starts_with(SNAPSHOT_PREFIX) {
        (false, SNAPSHOT_PREFIX.len())
    } else {
        return None;
    };
    let start = at;
    let end = start + memchr::memchr2(b'"', b'\\', &p[start..])?;
    if p[end] != b'"' {
        return None;
    }
    let symbol = &p[start..end];
    at = end + 1;
    at = expect(p, at, br#","seq":"#)?;
    let (seq, next) = u64_at(p, at)?;
    at = expect(p, next, br#","ts":"#)?;
    let (ts, next) = u64_at(p, at)?;
    // The number must end at a delimiter, or it was a prefix of something
    // else (e.g. a float); let the general path decide.
    if !matches!(p.get(next), Some(b',') | Some(b'}')) {
        return None;
    }
    let f = TickFields {
        symbol: Cow::Borrowed(symbol),
        seq,
        ts,
    };
    Some(if is_tick {
        Scanned::Tick(f)
    } else {
        Scanned::Snapshot(f)
    })
}

fn expect(p: &[u8], at: usize, lit: &[u8]) -> Option<usize> {
    if p.get(at..at + lit.len())? == lit {
        Some(at + lit.len())
    } else {
        None
    }
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
}
