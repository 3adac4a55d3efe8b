//! A stream entry, as `tickcast_publish` writes it (`symbol`, `seq`,
//! `ts`, then price and size fields as text), read back into a [`Tick`]
//! with its `seq` and `ts`. Prices become exact [`Decimal`]s: their text
//! reaches clients unchanged.

use crate::{Decimal, Price, Tick};

/// A numbered tick read from the stream.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub(crate) tick: Tick,
    pub(crate) seq: u64,
    pub(crate) ts: u64,
}

/// Reads an entry's field/value list. Fields it does not know are ignored
/// (a later producer may add some); a known field with a bad value, or a
/// missing `symbol`, `seq` or `ts`, refuses the entry.
pub(crate) fn parse(fields: &[&[u8]]) -> Result<Entry, String> {
    if !fields.len().is_multiple_of(2) {
        return Err("odd number of field/value items".into());
    }
    let mut tick = Tick::default();
    let (mut seq, mut ts) = (None, None);
    for pair in fields.chunks_exact(2) {
        let value = pair[1];
        let price = || {
            Decimal::parse_ascii(value)
                .map(Price::Exact)
                .map_err(|e| e.to_string())
        };
        let int = |name: &[u8]| {
            ascii_u64(value).ok_or_else(|| {
                format!(
                    "{}: not an unsigned integer: {:?}",
                    String::from_utf8_lossy(name),
                    String::from_utf8_lossy(value)
                )
            })
        };
        match pair[0] {
            b"symbol" => {
                let s = std::str::from_utf8(value).map_err(|_| "the symbol is not UTF-8")?;
                tick.symbol = s.into();
            }
            b"seq" => seq = Some(int(b"seq")?),
            b"ts" => ts = Some(int(b"ts")?),
            b"bid" => tick.bid = Some(price()?),
            b"ask" => tick.ask = Some(price()?),
            b"last" => tick.last = Some(price()?),
            name @ b"bid_size" => tick.bid_size = Some(int(name)?),
            name @ b"ask_size" => tick.ask_size = Some(int(name)?),
            name @ b"volume" => tick.volume = Some(int(name)?),
            _ => {}
        }
    }
    let seq = seq.filter(|&s| s > 0).ok_or("no seq (>= 1)")?;
    let ts = ts.ok_or("no ts")?;
    tick.validate()?;
    Ok(Entry { tick, seq, ts })
}

/// A decimal `u64` of ASCII digits (1 to 20, no sign, no overflow).
fn ascii_u64(b: &[u8]) -> Option<u64> {
    if b.is_empty() || b.len() > 20 {
        return None;
    }
    b.iter().try_fold(0u64, |n, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(items: &[&'a str]) -> Vec<&'a [u8]> {
        items.iter().map(|s| s.as_bytes()).collect()
    }

    #[test]
    fn an_entry_becomes_an_exact_tick() {
        let e = parse(&fields(&[
            "symbol",
            "AAPL",
            "seq",
            "7",
            "ts",
            "1763775000123456000",
            "bid",
            "0.30000000000000000001",
            "volume",
            "10",
            "future",
            "x",
        ]))
        .unwrap();
        assert_eq!((e.seq, e.ts), (7, 1_763_775_000_123_456_000));
        assert_eq!(e.tick.symbol, "AAPL");
        assert_eq!(
            e.tick.bid.map(|p| p.to_string()).as_deref(),
            Some("0.30000000000000000001")
        );
        assert_eq!(e.tick.volume, Some(10));
    }

    #[test]
    fn integers_are_read_from_ascii_digits() {
        assert_eq!(ascii_u64(b"0"), Some(0));
        assert_eq!(ascii_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"18446744073709551616",
            b"-1",
            b"+1",
            b"1 ",
            b"1.0",
            b"\xff",
        ] {
            assert_eq!(ascii_u64(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn bad_entries_are_refused() {
        for f in [
            &["symbol", "A", "seq", "1"][..],
            &["symbol", "A", "ts", "1"],
            &["seq", "1", "ts", "1"],
            &["symbol", "A", "seq", "0", "ts", "1"],
            &["symbol", "A", "seq", "x", "ts", "1"],
            &["symbol", "A", "seq", "1", "ts", "1", "bid", "1e5"],
            &["symbol", "A", "seq", "1", "ts", "1", "volume", "-1"],
            &["symbol", "", "seq", "1", "ts", "1"],
            &["symbol", "A", "seq"],
        ] {
            assert!(parse(&fields(f)).is_err(), "{f:?}");
        }
    }
}
