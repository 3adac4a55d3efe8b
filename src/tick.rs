//! [`Tick`]: one market-data update as a feed handler hands it to
//! [`Publisher::publish`](crate::Publisher::publish), before the broadcaster
//! stamps it with `seq` and `ts`.

use crate::Price;

/// A quote or trade update for one symbol. Absent fields are left out of the
/// JSON the clients receive. Prices are an `f64` or an exact
/// [`Decimal`](crate::Decimal) (see [`Price`]); the setters take either.
///
/// ```
/// use tickcast::Tick;
/// let t = Tick::new("AAPL").bid(189.25).ask(189.27).bid_size(300).last(189.26);
/// assert_eq!(t.symbol, "AAPL");
/// assert_eq!(t.ask.map(|p| p.to_f64()), Some(189.27));
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Tick {
    /// Instrument id: 1 to 32 bytes of printable UTF-8.
    pub symbol: String,
    /// Best bid price.
    pub bid: Option<Price>,
    /// Best ask price.
    pub ask: Option<Price>,
    /// Size at the best bid.
    pub bid_size: Option<u64>,
    /// Size at the best ask.
    pub ask_size: Option<u64>,
    /// Last trade price.
    pub last: Option<Price>,
    /// Cumulative traded volume.
    pub volume: Option<u64>,
}

impl Tick {
    /// A tick for `symbol` with every price and size absent.
    pub fn new(symbol: impl Into<String>) -> Tick {
        Tick {
            symbol: symbol.into(),
            ..Tick::default()
        }
    }

    /// Set the best bid.
    pub fn bid(mut self, px: impl Into<Price>) -> Tick {
        self.bid = Some(px.into());
        self
    }

    /// Set the best ask.
    pub fn ask(mut self, px: impl Into<Price>) -> Tick {
        self.ask = Some(px.into());
        self
    }

    /// Set the size at the best bid.
    pub fn bid_size(mut self, qty: u64) -> Tick {
        self.bid_size = Some(qty);
        self
    }

    /// Set the size at the best ask.
    pub fn ask_size(mut self, qty: u64) -> Tick {
        self.ask_size = Some(qty);
        self
    }

    /// Set the last trade price.
    pub fn last(mut self, px: impl Into<Price>) -> Tick {
        self.last = Some(px.into());
        self
    }

    /// Set the cumulative volume.
    pub fn volume(mut self, qty: u64) -> Tick {
        self.volume = Some(qty);
        self
    }

    /// Checks the tick against the protocol: a valid symbol and finite
    /// prices (JSON has no NaN or infinity).
    pub(crate) fn validate(&self) -> Result<(), String> {
        validate_symbol(&self.symbol)?;
        for (name, px) in [("bid", self.bid), ("ask", self.ask), ("last", self.last)] {
            if let Some(Price::Float(px)) = px
                && !px.is_finite()
            {
                return Err(format!("{name} is not a finite number"));
            }
        }
        Ok(())
    }
}

/// The longest symbol, in bytes (the protocol's limit).
pub(crate) const MAX_SYMBOL_LEN: usize = 32;

/// Checks a symbol: 1 to 32 bytes of printable UTF-8 (no control
/// characters).
pub(crate) fn validate_symbol(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_SYMBOL_LEN {
        return Err(format!(
            "symbol must be 1 to {MAX_SYMBOL_LEN} bytes, got {}",
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("symbol contains a control character".to_string());
    }
    Ok(())
}

/// Checks a group name: 1 to 64 bytes of printable UTF-8, not `*`.
pub(crate) fn validate_group(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 64 {
        return Err(format!("group name must be 1 to 64 bytes, got {}", s.len()));
    }
    if s == "*" {
        return Err("'*' is reserved for every symbol".to_string());
    }
    if s.chars().any(char::is_control) {
        return Err("group name contains a control character".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbol_rules() {
        assert!(validate_symbol("AAPL").is_ok());
        assert!(validate_symbol("BTC-USD é").is_ok());
        assert!(validate_symbol("").is_err());
        assert!(validate_symbol(&"X".repeat(33)).is_err());
        assert!(validate_symbol(&"X".repeat(32)).is_ok());
        assert!(validate_symbol("A\nB").is_err());
    }

    #[test]
    fn non_finite_prices_are_refused() {
        assert!(Tick::new("A").bid(f64::NAN).validate().is_err());
        assert!(Tick::new("A").last(f64::INFINITY).validate().is_err());
        assert!(Tick::new("A").bid(1.5).validate().is_ok());
    }
}
