//! The process-wide symbol table: symbol name <-> dense [`SymId`].
//!
//! Shards index subscriptions and last values by `SymId` in plain vectors,
//! so the tick path never hashes a string. The table only grows; it is
//! written when a symbol is first seen (by the publisher, by a group
//! definition, or by a subscription to a not-yet-seen symbol) and read under
//! a shared lock otherwise.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use parking_lot::RwLock;

/// The longest symbol, in bytes (the protocol's limit).
pub(crate) const MAX_SYMBOL_LEN: usize = 32;

/// A symbol's index in the [`SymbolTable`].
pub(crate) type SymId = u32;

/// A map keyed by symbol name, hashed with [`FastHasher`]; look entries
/// up with the name's bytes (`map.get(symbol.as_bytes())`).
pub(crate) type ByName<V> = HashMap<Name, V, BuildHasherDefault<FastHasher>>;

/// A symbol name held inline: [`ByName`]'s keys, and a `Tick`'s symbol
/// ([`crate::Symbol`]) when it fits, as every valid one does. With
/// `String` keys a lookup compared the name with bytes in an allocation of
/// their own: one more cache miss per tick for the publisher, which looks
/// every tick's symbol up. With 10,000 symbols and no client, the lookup
/// and that `memcmp` were 40 % of the publisher thread (`perf record`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct Name {
    len: u8,
    /// The name, then zeros (so the derived equality is the names').
    bytes: [u8; MAX_SYMBOL_LEN],
}

impl Name {
    /// `symbol` as a key, or `None` if it is longer than a symbol may be.
    pub(crate) fn new(symbol: &str) -> Option<Name> {
        let len = symbol.len();
        let mut bytes = [0; MAX_SYMBOL_LEN];
        bytes.get_mut(..len)?.copy_from_slice(symbol.as_bytes());
        Some(Name {
            len: len as u8,
            bytes,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The name's text.
    pub(crate) fn as_str(&self) -> &str {
        // SAFETY: `bytes[..len]` is a copy of the whole `str` that
        // `Name::new` was given (`len` is its length, and nothing changes
        // `bytes` after), so it is valid UTF-8. Checking again would cost
        // the publisher a UTF-8 scan per look at a tick's symbol. Exercised
        // by `tick`'s tests with multi-byte symbols of every length up to
        // the limit.
        unsafe { std::str::from_utf8_unchecked(self.as_bytes()) }
    }
}

impl std::borrow::Borrow<[u8]> for Name {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

// Hashes as the `[u8]` it borrows as, as `Borrow` requires.
impl std::hash::Hash for Name {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_bytes().hash(state);
    }
}

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Multiplicative (Fibonacci) hashing for the keys of the hot paths: `u32`
/// ids in one multiply, and symbol names eight bytes per multiply (the
/// publisher looks one up per tick; SipHash took ~4 % of its thread). Not
/// resistant to chosen keys: fit for ids and for the names feed handlers
/// send, not for keys a client picks.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher(u64);

/// 2^64 / the golden ratio: spreads the high bits that hashbrown uses for
/// its control bytes.
const FIBONACCI: u64 = 0x9E37_79B9_7F4A_7C15;

impl Hasher for FastHasher {
    fn finish(&self) -> u64 {
        // The low bits of a product depend only on the low bits of what
        // was multiplied, and hashbrown picks the bucket by the low bits:
        // names that differ only past their first bytes ("EQ0001",
        // "EQ0002", ... hashed as a `[u8]`, the last word mixed in being
        // the name itself) all fell in one bucket group. The high bits
        // depend on every bit; bring them down.
        self.0.rotate_left(26)
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0; 8];
            word.copy_from_slice(w);
            self.mix(u64::from_le_bytes(word));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            self.mix(short_word(rest) ^ (rest.len() as u64) << 59);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(FIBONACCI);
    }
}

impl FastHasher {
    /// Folds the full 128-bit product back into 64 bits: the high half
    /// depends on every bit of the word, so every bit of the hash does
    /// (a plain 64-bit product's bit k depends only on bits 0..=k, and
    /// names alike but for bytes that landed high in their word crowded
    /// into a tenth of the buckets).
    fn mix(&mut self, word: u64) {
        let product = u128::from(self.0.rotate_left(26) ^ word) * u128::from(FIBONACCI);
        self.0 = (product as u64) ^ (product >> 64) as u64;
    }
}

/// One to seven bytes as a word, read in fixed-size pieces that may
/// overlap (copying a length known only at run time called `memcpy`: 2 %
/// of the publisher thread, which hashes every tick's symbol). Two inputs
/// of one length give the same word only if they are equal; the caller
/// mixes the length in.
#[inline(always)]
fn short_word(rest: &[u8]) -> u64 {
    let n = rest.len();
    let u32_at = |at: usize| {
        let mut w = [0; 4];
        w.copy_from_slice(&rest[at..at + 4]);
        u64::from(u32::from_le_bytes(w))
    };
    if n >= 4 {
        u32_at(0) | u32_at(n - 4) << 32
    } else {
        u64::from(rest[0]) | u64::from(rest[n / 2]) << 8 | u64::from(rest[n - 1]) << 16
    }
}

/// Interns symbol names.
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    inner: RwLock<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    by_name: HashMap<Arc<str>, SymId>,
    names: Vec<Arc<str>>,
}

impl SymbolTable {
    /// The id of `name`, creating it if needed. The caller has validated it.
    pub(crate) fn intern(&self, name: &str) -> SymId {
        if let Some(id) = self.get(name) {
            return id;
        }
        let mut inner = self.inner.write();
        if let Some(&id) = inner.by_name.get(name) {
            return id;
        }
        let id = inner.names.len() as SymId;
        let name: Arc<str> = Arc::from(name);
        inner.names.push(name.clone());
        inner.by_name.insert(name, id);
        id
    }

    /// The id of `name` if it was ever interned.
    pub(crate) fn get(&self, name: &str) -> Option<SymId> {
        self.inner.read().by_name.get(name).copied()
    }

    /// The name of `id`.
    pub(crate) fn name(&self, id: SymId) -> Option<Arc<str>> {
        self.inner.read().names.get(id as usize).cloned()
    }

    /// Number of interned symbols.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.read().names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interning_is_stable_and_dense() {
        let t = SymbolTable::default();
        assert_eq!(t.intern("A"), 0);
        assert_eq!(t.intern("B"), 1);
        assert_eq!(t.intern("A"), 0);
        assert_eq!(t.get("B"), Some(1));
        assert_eq!(t.get("C"), None);
        assert_eq!(t.name(1).as_deref(), Some("B"));
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn a_name_is_a_symbol_of_at_most_32_bytes() {
        assert_eq!(Name::new("EURUSD").unwrap().as_bytes(), b"EURUSD");
        assert!(Name::new(&"X".repeat(32)).is_some());
        assert!(Name::new(&"X".repeat(33)).is_none());
        assert_ne!(Name::new("AB"), Name::new("ABC"));
        assert_eq!(
            format!("{:?}", Name::new("BTC-USD").unwrap()),
            "\"BTC-USD\""
        );
    }

    #[test]
    fn names_alike_but_for_their_last_bytes_spread_over_the_buckets() {
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<FastHasher>::default();
        // A map of 10,000 names has 16,384 buckets: the low 14 bits.
        let mut buckets: Vec<u64> = (0..10_000)
            .map(|k| hasher.hash_one(format!("EQ{k:04}").as_bytes()) & 0x3fff)
            .collect();
        buckets.sort_unstable();
        buckets.dedup();
        // Uniform hashing fills ~6,800 of them.
        assert!(buckets.len() > 6_000, "{} buckets", buckets.len());
    }

    #[test]
    fn every_byte_of_a_short_tail_counts() {
        for n in 1..8 {
            let base: Vec<u8> = (b'a'..).take(n).collect();
            for i in 0..n {
                let mut other = base.clone();
                other[i] ^= 0x40;
                assert_ne!(
                    short_word(&base),
                    short_word(&other),
                    "length {n}, byte {i}"
                );
            }
        }
    }

    #[test]
    fn names_of_every_length_hash_apart() {
        use std::hash::BuildHasher;
        let hasher = BuildHasherDefault::<FastHasher>::default();
        let mut names: Vec<String> = (0..=32).map(|n| "A".repeat(n)).collect();
        names.extend(["AB", "BA", "EURUSD", "EURUSE", "BTC-USD", "BTC-USDT"].map(String::from));
        let mut hashes: Vec<u64> = names.iter().map(|n| hasher.hash_one(n)).collect();
        hashes.sort_unstable();
        hashes.dedup();
        assert_eq!(hashes.len(), names.len());
        let mut m: ByName<usize> = ByName::default();
        for (i, n) in names.iter().enumerate() {
            m.insert(Name::new(n).unwrap(), i);
        }
        assert!(
            names
                .iter()
                .enumerate()
                .all(|(i, n)| m.get(n.as_bytes()) == Some(&i))
        );
        assert_eq!(m.get(&b"A"[..1]), Some(&1));
        assert_eq!(m.get(&b"AC"[..]), None);
    }
}
