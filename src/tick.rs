//! [`Tick`]: one market-data update as a feed handler hands it to
//! [`Publisher::publish`](crate::Publisher::publish), before the broadcaster
//! stamps it with `seq` and `ts`.

use crate::Price;
use crate::symbols::{MAX_SYMBOL_LEN, Name};

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
    pub symbol: Symbol,
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
    pub fn new(symbol: impl Into<Symbol>) -> Tick {
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

/// A tick's symbol. Held inline, with no allocation, when it is at most
/// 32 bytes, as every symbol the protocol allows is: a feed
/// that builds a tick and the publisher that drops it never call the
/// allocator for its symbol. (A `String` here was a `malloc` on the feed's
/// thread and a `free` on the publisher's for every tick, with glibc's
/// arena lock shared between them: 10 % of the publisher thread, `perf
/// record` on `benches/publisher.rs`.) A longer one is kept whole, on the
/// heap, so that [`Publisher::publish`](crate::Publisher::publish) can
/// refuse it and hand it back as it was.
///
/// It reads as the `str` it holds:
///
/// ```
/// use tickcast::{Symbol, Tick};
/// let t = Tick::new("EURUSD");
/// assert_eq!(t.symbol, "EURUSD");
/// assert_eq!(t.symbol.len(), 6);
/// let s: Symbol = String::from("BTC-USD").into();
/// assert_eq!(s.as_str(), "BTC-USD");
/// ```
#[derive(Clone)]
pub struct Symbol(Repr);

#[derive(Clone)]
enum Repr {
    /// At most [`MAX_SYMBOL_LEN`] bytes, inline.
    Inline(Name),
    /// Longer than a symbol may be.
    Heap(Box<str>),
}

impl Symbol {
    /// `s` as a symbol (inline if it is no longer than a symbol may be).
    pub fn new(s: &str) -> Symbol {
        match Name::new(s) {
            Some(name) => Symbol(Repr::Inline(name)),
            None => Symbol(Repr::Heap(s.into())),
        }
    }

    /// The symbol as a [`Name`] (a `ByName` key), if it fits one. Looking
    /// a `Name` up compares two fixed-size arrays in a few instructions,
    /// where the text's bytes take a `memcmp` call (~2 % of the publisher
    /// thread, which looks every tick's symbol up).
    pub(crate) fn name(&self) -> Option<&Name> {
        match &self.0 {
            Repr::Inline(name) => Some(name),
            Repr::Heap(_) => None,
        }
    }

    /// The symbol's text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline(name) => name.as_str(),
            Repr::Heap(s) => s,
        }
    }
}

impl Default for Symbol {
    /// The empty symbol (which `publish` refuses).
    fn default() -> Symbol {
        Symbol::new("")
    }
}

impl std::ops::Deref for Symbol {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Symbol {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::borrow::Borrow<str> for Symbol {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Symbol {
    fn from(s: &str) -> Symbol {
        Symbol::new(s)
    }
}

impl From<&String> for Symbol {
    fn from(s: &String) -> Symbol {
        Symbol::new(s)
    }
}

impl From<String> for Symbol {
    fn from(s: String) -> Symbol {
        if s.len() > MAX_SYMBOL_LEN {
            Symbol(Repr::Heap(s.into_boxed_str()))
        } else {
            Symbol::new(&s)
        }
    }
}

impl From<Symbol> for String {
    fn from(s: Symbol) -> String {
        s.as_str().to_string()
    }
}

// Equality and hashing are the text's (as `Borrow<str>` requires).
impl PartialEq for Symbol {
    fn eq(&self, other: &Symbol) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Symbol {}

impl std::hash::Hash for Symbol {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl PartialOrd for Symbol {
    fn partial_cmp(&self, other: &Symbol) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Symbol {
    fn cmp(&self, other: &Symbol) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialEq<str> for Symbol {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Symbol {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Symbol {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<Symbol> for &str {
    fn eq(&self, other: &Symbol) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<Symbol> for String {
    fn eq(&self, other: &Symbol) -> bool {
        self == other.as_str()
    }
}

impl std::fmt::Debug for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl std::fmt::Display for Symbol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    fn a_symbol_reads_as_the_text_it_was_made_from() {
        // Multi-byte characters, every length to the limit and past it.
        let text = "é€X".repeat(12);
        for end in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let s = &text[..end];
            for sym in [Symbol::new(s), Symbol::from(s.to_string())] {
                assert_eq!(sym.as_str(), s);
                assert_eq!(sym.len(), s.len());
                assert_eq!(sym, s);
                assert_eq!(sym.clone(), Symbol::new(s));
                assert_eq!(format!("{sym}"), s);
                assert_eq!(format!("{sym:?}"), format!("{s:?}"));
                assert_eq!(
                    matches!(sym.0, Repr::Inline(_)),
                    s.len() <= MAX_SYMBOL_LEN,
                    "{s}"
                );
            }
        }
        assert_eq!(Symbol::default(), "");
        // A symbol too long to publish is kept whole, and refused.
        let long = Tick::new("L".repeat(40));
        assert_eq!(long.symbol.len(), 40);
        assert!(long.validate().unwrap_err().contains("got 40"));
        // Maps keyed by symbol are looked up by `str`.
        let m: std::collections::HashMap<Symbol, u8> = [(Symbol::new("AAPL"), 1)].into();
        assert_eq!(m.get("AAPL"), Some(&1));
    }

    #[test]
    fn non_finite_prices_are_refused() {
        assert!(Tick::new("A").bid(f64::NAN).validate().is_err());
        assert!(Tick::new("A").last(f64::INFINITY).validate().is_err());
        assert!(Tick::new("A").bid(1.5).validate().is_ok());
    }
}
