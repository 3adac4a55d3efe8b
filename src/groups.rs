//! Group definitions: [`GroupSpec`] (symbols by name, and prefixes) and
//! [`GroupBook`], the process-wide list of groups with each one resolved
//! to the symbols it holds now.
//!
//! A prefix takes every symbol published so far that starts with it, and
//! each later symbol at its first tick. The book is shared by the API
//! (`Broadcaster::set_group_spec`) and the publisher thread, under one
//! lock held while each sends its change to the shards: so a definition
//! and a new symbol reach every shard in the same order, and the shards'
//! groups always agree with the book. The publisher tells the shards about
//! a new symbol's groups before it sends the symbol's first tick, which is
//! why a subscriber of a prefix group receives that symbol from `seq` 1.
//!
//! Shards only ever see resolved symbol lists (`ShardMsg::SetGroup`,
//! `ShardMsg::AddToGroup`); prefixes live here alone.

use std::collections::BTreeMap;
use std::sync::Arc;

/// What a group holds: symbols by name, and prefixes that take every
/// symbol starting with them, including symbols first published later.
///
/// ```
/// use tickcast::GroupSpec;
/// let g = GroupSpec::from_entries(["GBPUSD", "EUR*"]);
/// assert_eq!(g.symbols, ["GBPUSD"]);
/// assert_eq!(g.prefixes, ["EUR"]);
/// assert!(g.holds("EURJPY") && g.holds("GBPUSD") && !g.holds("GBPJPY"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupSpec {
    /// Symbols, matched exactly.
    pub symbols: Vec<String>,
    /// Prefixes: the group takes every symbol that starts with one.
    pub prefixes: Vec<String>,
}

impl GroupSpec {
    /// A group of exactly these symbols.
    pub fn exact<I, S>(symbols: I) -> GroupSpec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        GroupSpec {
            symbols: symbols
                .into_iter()
                .map(|s| s.as_ref().to_string())
                .collect(),
            prefixes: Vec::new(),
        }
    }

    /// Reads entries the way the settings file writes them: an entry that
    /// ends in `*` is a prefix (`EUR*`), any other is a symbol.
    pub fn from_entries<I, S>(entries: I) -> GroupSpec
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut spec = GroupSpec::default();
        for e in entries {
            match e.as_ref().strip_suffix('*') {
                Some(prefix) => spec.prefixes.push(prefix.to_string()),
                None => spec.symbols.push(e.as_ref().to_string()),
            }
        }
        spec
    }

    /// Returns true if and only if the group holds `symbol` once it is
    /// published.
    pub fn holds(&self, symbol: &str) -> bool {
        self.symbols.iter().any(|s| s == symbol) || self.takes(symbol)
    }

    /// Returns true if and only if one of the prefixes takes `symbol`.
    fn takes(&self, symbol: &str) -> bool {
        self.prefixes.iter().any(|p| symbol.starts_with(p.as_str()))
    }

    /// Checks every symbol and prefix.
    pub(crate) fn validate(&self) -> Result<(), String> {
        for s in &self.symbols {
            crate::tick::validate_symbol(s).map_err(|e| format!("symbol {s:?}: {e}"))?;
        }
        for p in &self.prefixes {
            if p.is_empty() {
                return Err("an empty prefix ('*' alone) would take every symbol: \
                            subscribe to the group '*' instead"
                    .to_string());
            }
            crate::tick::validate_symbol(p).map_err(|e| format!("prefix {p:?}*: {e}"))?;
        }
        Ok(())
    }
}

/// One defined group: its definition and the symbols it holds now.
#[derive(Debug)]
struct Defined {
    spec: GroupSpec,
    /// The exact symbols first, then the symbols its prefixes took, in the
    /// order they were published; no duplicates.
    symbols: Vec<String>,
}

/// Every group, resolved, and every symbol published so far (what a
/// prefix defined later takes).
#[derive(Debug, Default)]
pub(crate) struct GroupBook {
    groups: BTreeMap<String, Defined>,
    /// Symbols in the order of their first tick, each once (the publisher
    /// calls [`GroupBook::first_tick`] once per symbol).
    published: Vec<Arc<str>>,
}

impl GroupBook {
    /// The symbols `spec` holds now: its exact symbols, then the published
    /// symbols its prefixes take.
    pub(crate) fn resolve(&self, spec: &GroupSpec) -> Vec<String> {
        let mut symbols: Vec<String> = Vec::with_capacity(spec.symbols.len());
        for s in &spec.symbols {
            if !symbols.contains(s) {
                symbols.push(s.clone());
            }
        }
        if !spec.prefixes.is_empty() {
            let exact = symbols.len();
            for p in &self.published {
                if spec.takes(p) && !symbols[..exact].iter().any(|s| **s == **p) {
                    symbols.push(p.to_string());
                }
            }
        }
        symbols
    }

    /// Records group `name` as `spec` holding `symbols` (from
    /// [`GroupBook::resolve`]), replacing any previous definition.
    pub(crate) fn define(&mut self, name: &str, spec: GroupSpec, symbols: Vec<String>) {
        self.groups
            .insert(name.to_string(), Defined { spec, symbols });
    }

    /// Forgets group `name`; false if there was none.
    pub(crate) fn remove(&mut self, name: &str) -> bool {
        self.groups.remove(name).is_some()
    }

    /// `symbol` had its first tick: records it, and returns the groups
    /// whose prefixes take it (they now hold it; the caller tells the
    /// shards). Groups that already name it exactly are not returned.
    pub(crate) fn first_tick(&mut self, symbol: &str) -> Vec<Arc<str>> {
        self.published.push(Arc::from(symbol));
        let mut gained = Vec::new();
        for (name, g) in &mut self.groups {
            if g.spec.takes(symbol) && !g.symbols.iter().any(|s| s == symbol) {
                g.symbols.push(symbol.to_string());
                gained.push(Arc::from(name.as_str()));
            }
        }
        gained
    }

    /// `(name, symbols held now)` of every group, sorted by name.
    pub(crate) fn list(&self) -> Vec<(String, Vec<String>)> {
        self.groups
            .iter()
            .map(|(n, g)| (n.clone(), g.symbols.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn define(book: &mut GroupBook, name: &str, entries: &[&str]) -> Vec<String> {
        let spec = GroupSpec::from_entries(entries);
        let symbols = book.resolve(&spec);
        book.define(name, spec, symbols.clone());
        symbols
    }

    #[test]
    fn a_prefix_takes_symbols_published_before_and_after() {
        let mut book = GroupBook::default();
        assert!(book.first_tick("EURUSD").is_empty(), "no group yet");
        book.first_tick("GBPUSD");
        assert_eq!(define(&mut book, "eur", &["EUR*"]), ["EURUSD"]);
        assert_eq!(book.first_tick("EURJPY"), [Arc::from("eur")]);
        assert!(book.first_tick("USDJPY").is_empty());
        assert_eq!(
            book.list(),
            [("eur".to_string(), vec!["EURUSD".into(), "EURJPY".into()])]
        );
    }

    #[test]
    fn a_symbol_named_and_matched_is_held_once() {
        let mut book = GroupBook::default();
        book.first_tick("EURUSD");
        assert_eq!(
            define(&mut book, "g", &["EURUSD", "EUR*", "EURUSD"]),
            ["EURUSD"]
        );
        let mut book = GroupBook::default();
        define(&mut book, "g", &["EURGBP", "EUR*"]);
        assert!(book.first_tick("EURGBP").is_empty(), "already named");
        assert_eq!(book.list()[0].1, ["EURGBP"]);
    }

    #[test]
    fn redefining_or_removing_drops_the_prefixes() {
        let mut book = GroupBook::default();
        define(&mut book, "g", &["EUR*"]);
        define(&mut book, "g", &["AAPL"]);
        assert!(book.first_tick("EURUSD").is_empty());
        define(&mut book, "h", &["EUR*"]);
        assert!(book.remove("h"));
        assert!(!book.remove("h"));
        assert!(book.first_tick("EURJPY").is_empty());
    }

    #[test]
    fn a_bad_entry_is_named() {
        assert!(GroupSpec::from_entries(["*"]).validate().is_err());
        let e = GroupSpec::from_entries([format!("{}*", "X".repeat(33))]).validate();
        assert!(e.is_err_and(|e| e.contains("prefix")));
        let e = GroupSpec::from_entries(["A\nB"]).validate();
        assert!(e.is_err_and(|e| e.contains("symbol")));
        assert!(GroupSpec::from_entries(["EUR*", "AAPL"]).validate().is_ok());
    }
}
