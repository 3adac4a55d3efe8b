//! Prices: an `f64`, or an exact [`Decimal`] that reaches clients digit
//! for digit.
//!
//! Exchanges publish prices as decimal text because a binary float cannot
//! hold most decimal prices: `0.1 + 0.2` as an `f64` prints
//! `0.30000000000000004`. A [`Decimal`] is validated text, checked once
//! when it is made and written into the tick's JSON unchanged; it never
//! passes through `f64`. The rules are the ones the Redis Function
//! `tickcast_publish` applies, so a price from the Redis feed is a
//! `Decimal` as it stands.

use std::fmt;
use std::str::FromStr;

/// Digits (before and after the point together) a [`Decimal`] may have:
/// 38, the precision of SQL `DECIMAL` and of a 128-bit scaled integer,
/// far beyond any exchange's tick size.
pub const MAX_DECIMAL_DIGITS: usize = 38;

/// The longest text: a sign, the digits and the point.
const MAX_LEN: usize = MAX_DECIMAL_DIGITS + 2;

/// A decimal number in plain notation, kept as its text: an optional `-`,
/// an integer part without leading zeros, an optional `.` and fraction
/// digits; at most [`MAX_DECIMAL_DIGITS`] digits; no exponent. Every such
/// text is a valid JSON number. Held inline (no allocation), so `Copy`.
///
/// ```
/// use tickcast::Decimal;
/// let d: Decimal = "0.30000000000000000001".parse().unwrap();
/// assert_eq!(d.as_str(), "0.30000000000000000001");
/// assert!("1e5".parse::<Decimal>().is_err());
/// assert!("01.5".parse::<Decimal>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Decimal {
    len: u8,
    text: [u8; MAX_LEN],
}

/// Why a text is not a [`Decimal`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a decimal number (-?(0|[1-9][0-9]*)(.[0-9]+)?, at most 38 digits)")]
pub struct DecimalError(pub String);

impl Decimal {
    /// Validates `text`.
    ///
    /// # Errors
    /// [`DecimalError`] if `text` breaks the rules above.
    pub fn parse(text: &str) -> Result<Decimal, DecimalError> {
        Decimal::parse_ascii(text.as_bytes())
    }

    /// [`Decimal::parse`] of bytes (a Redis stream's values are bytes):
    /// only ASCII digits, `-` and `.` pass, so no UTF-8 check is needed.
    pub(crate) fn parse_ascii(text: &[u8]) -> Result<Decimal, DecimalError> {
        if !is_plain_decimal(text) {
            let shown = String::from_utf8_lossy(text).chars().take(64).collect();
            return Err(DecimalError(shown));
        }
        let mut d = Decimal {
            len: text.len() as u8,
            text: [0; MAX_LEN],
        };
        d.text[..text.len()].copy_from_slice(text);
        Ok(d)
    }

    /// The text, as given.
    pub fn as_str(&self) -> &str {
        // Only ASCII digits, '-' and '.' were copied in, by `parse`.
        std::str::from_utf8(&self.text[..self.len as usize]).unwrap_or_default()
    }

    /// The nearest `f64` (lossy: for arithmetic or display, never for the
    /// wire).
    pub fn to_f64(&self) -> f64 {
        // Every valid decimal text parses as an f64.
        self.as_str().parse().unwrap_or(f64::NAN)
    }
}

/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?` with at most `MAX_DECIMAL_DIGITS` digits.
fn is_plain_decimal(s: &[u8]) -> bool {
    let unsigned = s.strip_prefix(b"-").unwrap_or(s);
    let (int, frac) = match unsigned.iter().position(|&b| b == b'.') {
        Some(dot) => (&unsigned[..dot], Some(&unsigned[dot + 1..])),
        None => (unsigned, None),
    };
    let digits = |p: &[u8]| !p.is_empty() && p.iter().all(u8::is_ascii_digit);
    digits(int)
        && (int.len() == 1 || int[0] != b'0')
        && frac.is_none_or(digits)
        && int.len() + frac.map_or(0, <[u8]>::len) <= MAX_DECIMAL_DIGITS
}

impl FromStr for Decimal {
    type Err = DecimalError;
    fn from_str(s: &str) -> Result<Decimal, DecimalError> {
        Decimal::parse(s)
    }
}

impl fmt::Display for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Decimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decimal({})", self.as_str())
    }
}

/// A price on a [`Tick`](crate::Tick): a binary float, or exact decimal
/// text. `From<f64>` and `From<Decimal>` let the tick's setters take
/// either.
///
/// ```
/// use tickcast::{Decimal, Price, Tick};
/// let exact = Decimal::parse("189.25").unwrap();
/// let t = Tick::new("AAPL").bid(exact).ask(189.27);
/// assert_eq!(t.bid, Some(Price::Exact(exact)));
/// assert_eq!(t.ask, Some(Price::Float(189.27)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Price {
    /// Written as the shortest text that reads back as the same `f64`.
    Float(f64),
    /// Written digit for digit.
    Exact(Decimal),
}

impl Price {
    /// The price as an `f64` (lossy for [`Price::Exact`]).
    pub fn to_f64(&self) -> f64 {
        match self {
            Price::Float(v) => *v,
            Price::Exact(d) => d.to_f64(),
        }
    }
}

impl fmt::Display for Price {
    /// The decimal's own text, or the `f64`'s shortest round-trip form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Price::Float(v) => write!(f, "{v}"),
            Price::Exact(d) => f.write_str(d.as_str()),
        }
    }
}

impl From<f64> for Price {
    fn from(v: f64) -> Price {
        Price::Float(v)
    }
}

impl From<Decimal> for Price {
    fn from(d: Decimal) -> Price {
        Price::Exact(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_text_is_kept_as_is() {
        for s in [
            "0",
            "-0",
            "189.25",
            "0.30000000000000000001",
            "123456789.123456789",
            "-0.000001",
            "10",
            "0.10",
            &"9".repeat(38),
            &format!("0.{}", "1".repeat(37)),
        ] {
            assert_eq!(Decimal::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn bad_text_is_refused() {
        for s in [
            "", "-", ".", "1.", ".5", "+1", "01", "-01.5", "00", "1e5", "1E5", "1.5e-3", "NaN",
            "inf", " 1", "1 ", "1,5", "1.2.3", "--1", "0x10", "١",
        ] {
            assert!(Decimal::parse(s).is_err(), "{s:?} accepted");
        }
        assert!(Decimal::parse(&"9".repeat(39)).is_err());
        assert!(Decimal::parse(&format!("1.{}", "0".repeat(38))).is_err());
    }

    #[test]
    fn values_an_f64_cannot_hold_stay_exact() {
        let d = Decimal::parse("0.30000000000000000001").unwrap();
        assert_eq!(d.to_f64(), 0.3);
        assert_ne!(d.to_f64().to_string(), d.as_str());
        assert_eq!((0.1_f64 + 0.2).to_string(), "0.30000000000000004");
        assert_eq!(Decimal::parse("0.3").unwrap().as_str(), "0.3");
    }
}
