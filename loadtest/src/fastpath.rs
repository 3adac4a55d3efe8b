//! The receive hot loop: a read's tick frames, each checked and timed in
//! one pass.
//!
//! Nearly every frame a client receives is a tick in the server's layout.
//! [`take_ticks`] walks the frames of a read while they are exactly that:
//! an unmasked final text frame (`0x81`, 7- or 16-bit length) whose payload
//! [`scan_fast`] reads as a tick. For each it interns the symbol, runs the
//! sequence check of its (connection, symbol) and counts its latency. It
//! stops at the first frame that is anything else (a snapshot, a control
//! message, a ping or close, another layout, an escaped symbol) or that is
//! not whole yet, and returns where: the engine's general loop
//! (`frame::parse` → `scan::Scanner` → `serde_json`) takes that frame and
//! then calls this again.
//!
//! Invariant: for every frame it takes, the effect is exactly what the
//! general loop would have done with it (same frame boundaries as
//! `frame::parse`, same fields as `Scanner::scan`, the same sequence check
//! and latency); the tests run both over the same bytes and compare.

use crate::intern::SymbolTable;
use crate::latency::LatencyCounts;
use crate::scan::{Kind, TsPrefix, scan_fast_with};
use crate::seqcheck::SeqTracker;

/// First byte of an unmasked, final, uncompressed text frame.
const FIN_TEXT: u8 = 0x81;
/// Second byte: lengths up to this are the length itself.
const MAX_SHORT_LEN: u8 = 125;
/// Second byte: a 16-bit length follows.
const LEN_16: u8 = 126;

/// What the ticks of one connection's read update.
#[derive(Debug)]
pub struct TickSink<'a> {
    /// The client thread's symbol ids.
    pub symbols: &'a mut SymbolTable,
    /// The connection's sequence state.
    pub seq: &'a mut SeqTracker,
    /// Where latencies go; `None` outside the measured window.
    pub latency: Option<&'a mut LatencyCounts>,
    /// The receive time of the read, ns since the UNIX epoch.
    pub now: u64,
    /// Ticks stamped later than `now` (clock trouble), counted up.
    pub future: u64,
    /// The client thread's `ts` prefix (see [`TsPrefix`]).
    pub ts_prefix: &'a mut TsPrefix,
}

/// Takes the tick frames at `data[at..]` (see the module docs); returns
/// the offset of the first frame not taken (`data.len()` if all were) and
/// how many ticks were taken.
#[inline]
pub fn take_ticks(data: &[u8], mut at: usize, sink: &mut TickSink<'_>) -> (usize, u64) {
    let mut ticks = 0;
    while let Some(rest) = data.get(at..) {
        let Some(&[b0, b1, l0, l1]) = rest.first_chunk::<4>() else {
            break;
        };
        if b0 != FIN_TEXT {
            break;
        }
        let (header, len) = match b1 {
            LEN_16 => (4, usize::from(u16::from_be_bytes([l0, l1]))),
            n if n <= MAX_SHORT_LEN => (2, usize::from(n)),
            _ => break,
        };
        let Some(payload) = rest.get(header..header + len) else {
            break;
        };
        let Some(t) = scan_fast_with(payload, sink.ts_prefix).filter(|t| t.kind == Kind::Tick)
        else {
            break;
        };
        let id = sink.symbols.intern_in(t.symbol_text, t.symbol.len());
        sink.seq.tick(id, t.seq);
        if let Some(latency) = sink.latency.as_deref_mut() {
            if t.ts > sink.now {
                sink.future += 1;
            }
            latency.record(sink.now.saturating_sub(t.ts));
        }
        ticks += 1;
        at += header + len;
    }
    (at, ticks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{self, OP_TEXT, Parsed};
    use crate::scan::{Scanned, Scanner};
    use crate::stats::latency_histogram;

    /// An unmasked server text frame around `payload`.
    fn text_frame(out: &mut Vec<u8>, payload: &[u8]) {
        out.push(0x80 | OP_TEXT);
        match payload.len() {
            n @ 0..=125 => out.push(n as u8),
            n @ 126..=65535 => {
                out.push(126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(payload);
    }

    fn tick(sym: &str, seq: u64, ts: u64, rest: &str) -> Vec<u8> {
        format!(r#"{{"type":"tick","symbol":"{sym}","seq":{seq},"ts":{ts}{rest}"#).into_bytes()
    }

    const REST: &str = r#","bid":189.25,"ask":189.27,"bid_size":300,"ask_size":500,"last":189.26,"volume":1234567}"#;

    /// What the general loop makes of `data`: every whole frame through
    /// `frame::parse` and `Scanner::scan`, ticks into a tracker and a
    /// histogram the way the engine did before the fast path.
    struct General {
        symbols: SymbolTable,
        seq: SeqTracker,
        hist: hdrhistogram::Histogram<u64>,
        future: u64,
        ticks: u64,
        consumed: usize,
    }

    fn general(data: &[u8], now: u64) -> General {
        let s = Scanner::new();
        let mut g = General {
            symbols: SymbolTable::new(),
            seq: SeqTracker::default(),
            hist: latency_histogram(),
            future: 0,
            ticks: 0,
            consumed: 0,
        };
        let mut at = 0;
        while let Ok(Parsed::Frame(f)) = frame::parse(&data[at..]) {
            let payload = &data[at + f.header_len..at + f.len()];
            at += f.len();
            if let Scanned::Tick(t) = s.scan(payload) {
                let id = g.symbols.intern(&t.symbol);
                g.seq.tick(id, t.seq);
                if t.ts > now {
                    g.future += 1;
                }
                g.hist.saturating_record(now.saturating_sub(t.ts).max(1));
                g.ticks += 1;
            }
        }
        g.consumed = at;
        g
    }

    /// The fast path over `data`, falling back one frame at a time to the
    /// general scan for frames it does not take (as the engine does).
    fn fast(data: &[u8], now: u64) -> General {
        let s = Scanner::new();
        let mut symbols = SymbolTable::new();
        let mut seq = SeqTracker::default();
        let mut counts = LatencyCounts::new();
        let mut hist = latency_histogram();
        let (mut at, mut ticks, mut future) = (0, 0, 0);
        let mut prefix = TsPrefix::default();
        loop {
            let mut sink = TickSink {
                symbols: &mut symbols,
                seq: &mut seq,
                latency: Some(&mut counts),
                now,
                future: 0,
                ts_prefix: &mut prefix,
            };
            let (next, n) = take_ticks(data, at, &mut sink);
            future += sink.future;
            ticks += n;
            at = next;
            let Ok(Parsed::Frame(f)) = frame::parse(&data[at..]) else {
                break;
            };
            let payload = &data[at + f.header_len..at + f.len()];
            at += f.len();
            if let Scanned::Tick(t) = s.scan(payload) {
                let id = symbols.intern(&t.symbol);
                seq.tick(id, t.seq);
                if t.ts > now {
                    future += 1;
                }
                counts.record(now.saturating_sub(t.ts));
                ticks += 1;
            }
        }
        counts.flush_into(&mut hist);
        General {
            symbols,
            seq,
            hist,
            future,
            ticks,
            consumed: at,
        }
    }

    fn assert_same(data: &[u8], now: u64) {
        let (g, f) = (general(data, now), fast(data, now));
        assert_eq!(f.consumed, g.consumed, "consumed");
        assert_eq!(f.ticks, g.ticks, "ticks");
        assert_eq!(f.future, g.future, "future");
        assert_eq!(f.seq.counts, g.seq.counts, "sequence counts");
        assert_eq!(f.symbols.len(), g.symbols.len(), "symbols");
        assert!(f.hist == g.hist, "latency histograms differ");
    }

    const NOW: u64 = 1_763_775_001_000_000_000;

    /// What a [`TickSink`] borrows, for a test that counts no latencies.
    struct SinkState {
        symbols: SymbolTable,
        seq: SeqTracker,
        ts_prefix: TsPrefix,
    }

    impl SinkState {
        fn new() -> SinkState {
            SinkState {
                symbols: SymbolTable::new(),
                seq: SeqTracker::default(),
                ts_prefix: TsPrefix::default(),
            }
        }

        fn sink(&mut self) -> TickSink<'_> {
            TickSink {
                symbols: &mut self.symbols,
                seq: &mut self.seq,
                latency: None,
                now: NOW,
                future: 0,
                ts_prefix: &mut self.ts_prefix,
            }
        }
    }

    #[test]
    fn server_ticks_are_all_taken() {
        let mut data = Vec::new();
        for i in 0..300u64 {
            let p = tick(&format!("EQ{:04}", i % 7), 1 + i / 7, NOW - 1_000 * i, REST);
            text_frame(&mut data, &p);
        }
        let mut symbols = SymbolTable::new();
        let mut seq = SeqTracker::default();
        let mut counts = LatencyCounts::new();
        let mut sink = TickSink {
            symbols: &mut symbols,
            seq: &mut seq,
            latency: Some(&mut counts),
            now: NOW,
            future: 0,
            ts_prefix: &mut TsPrefix::default(),
        };
        assert_eq!(take_ticks(&data, 0, &mut sink), (data.len(), 300));
        assert_eq!(sink.future, 0);
        assert_eq!(seq.counts.in_order, 300 - 7);
        assert_eq!(seq.counts.unbaselined, 7);
        assert!(seq.counts.is_clean());
        assert_eq!(symbols.len(), 7);
        let mut h = latency_histogram();
        counts.flush_into(&mut h);
        assert_eq!(h.len(), 300);
        assert_same(&data, NOW);
    }

    #[test]
    fn stops_at_a_partial_frame_and_resumes_where_it_stopped() {
        let mut data = Vec::new();
        for i in 0..5u64 {
            text_frame(&mut data, &tick("A", i + 1, NOW - 10, REST));
        }
        let whole = data.len();
        text_frame(&mut data, &tick("A", 6, NOW - 10, REST));
        for cut in whole..data.len() {
            let mut state = SinkState::new();
            let mut sink = state.sink();
            assert_eq!(
                take_ticks(&data[..cut], 0, &mut sink),
                (whole, 5),
                "cut {cut}"
            );
            assert_eq!(take_ticks(&data[..cut], whole, &mut sink), (whole, 0));
        }
    }

    #[test]
    fn anything_else_is_left_to_the_general_loop() {
        let snapshot = br#"{"type":"snapshot","symbol":"A","seq":1,"ts":1763775000123456789}"#;
        let welcome = br#"{"type":"welcome","conn_id":"c-1","protocol":1}"#;
        let other_order = br#"{"type":"tick","seq":3,"symbol":"A","ts":1763775000123456789}"#;
        let escaped = br#"{"type":"tick","symbol":"A\"B","seq":3,"ts":1763775000123456789}"#;
        for payload in [&snapshot[..], welcome, other_order, escaped] {
            let mut data = Vec::new();
            text_frame(&mut data, &tick("A", 1, NOW - 5, REST));
            let first = data.len();
            text_frame(&mut data, payload);
            let mut state = SinkState::new();
            let mut sink = state.sink();
            assert_eq!(take_ticks(&data, 0, &mut sink), (first, 1));
            assert_same(&data, NOW);
        }
        // Non-text frames and headers the fast path does not take: a ping,
        // a binary frame, a 64-bit length, a masked or non-final frame (the
        // general loop's frame::parse rejects the last two).
        for header in [[0x89u8, 0], [0x82, 0], [0x81, 127], [0x81, 0x85], [0x01, 5]] {
            let mut data = Vec::new();
            text_frame(&mut data, &tick("A", 1, NOW - 5, REST));
            let first = data.len();
            data.extend_from_slice(&header);
            data.extend_from_slice(&[0; 12]);
            let mut state = SinkState::new();
            let mut sink = state.sink();
            assert_eq!(take_ticks(&data, 0, &mut sink), (first, 1), "{header:?}");
        }
    }

    #[test]
    fn agrees_with_the_general_loop_on_mixed_streams() {
        // Gaps, duplicates, reorders, short and long frames (7- and 16-bit
        // lengths), future stamps, short and long symbols, odd digit
        // counts, other layouts and control messages, interleaved.
        let mut data = Vec::new();
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        let syms = [
            "A",
            "EURUSD",
            "ABCDEFGHIJKLMNO",
            "ABCDEFGHIJKLMNOP",
            "BRK.B-LONGER-THAN-16",
        ];
        let mut seqs = [0u64; 5];
        for _ in 0..2_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 5) as usize;
            seqs[k] = match x % 97 {
                0 => seqs[k] + 3,               // gap
                1 => seqs[k],                   // duplicate
                2 => seqs[k].saturating_sub(2), // reorder
                3 => seqs[k] + 12_345_678_901,  // long seq
                _ => seqs[k] + 1,
            };
            let ts = match x % 89 {
                0 => NOW + 500, // stamped in the future
                1 => 42,        // short ts
                _ => NOW - (x % 10_000_000),
            };
            let p = match x % 53 {
                0 => br#"{"type":"subscribed","id":1}"#.to_vec(),
                1 => format!(
                    r#"{{"type":"tick","seq":{},"symbol":"{}","ts":{ts}}}"#,
                    seqs[k], syms[k]
                )
                .into_bytes(),
                2 => tick(syms[k], seqs[k], ts, "}"),
                _ => tick(syms[k], seqs[k], ts, REST),
            };
            text_frame(&mut data, &p);
        }
        assert_same(&data, NOW);
        // And cut anywhere: the same prefix is consumed.
        for cut in (0..data.len()).step_by(997) {
            assert_same(&data[..cut], NOW);
        }
    }
}
