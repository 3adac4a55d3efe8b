//! Per-thread symbol interning: symbol bytes → dense `u32` id, so the
//! sequence checker can index a `Vec` instead of hashing per message.
//!
//! A hash map from the full symbol bytes is the authority. In front of it
//! sits a small 2-way set-associative cache keyed by the symbol's length and
//! its first and last 8 bytes (zero-padded): for a symbol of at most 16
//! bytes those three words *are* the symbol, so a hit needs no byte
//! comparison; a longer symbol is confirmed with one comparison of its
//! middle bytes against the interned name.
//!
//! Invariants:
//! - ids are dense (`0..len()`), assigned in first-seen order, and never
//!   change: the cache only ever holds (key, id) pairs copied from the map;
//! - a cache slot answers only for exactly the bytes it was filled with
//!   (same length, same first/last words, same middle); anything else is a
//!   miss that goes to the map, so collisions cost time, never correctness.

use rustc_hash::FxHashMap;

/// Slots per 2-way set: both ways share one 64-byte cache line.
const WAYS: usize = 2;
/// Cache slots to start with.
const MIN_SLOTS: usize = 1024;
/// The cache stops growing here (2 MiB of slots).
const MAX_SLOTS: usize = 1 << 16;
/// Grow the cache while symbols × this > slots (load factor ≤ 1/4).
const SPREAD: usize = 4;

/// Marks an empty slot (no symbol is this long: payloads are far smaller).
const EMPTY_LEN: u32 = u32::MAX;

/// The words that identify a symbol in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    /// Bytes 0..8, zero-padded.
    head: u64,
    /// Bytes len-8..len if the symbol is longer than 8 bytes, else 0.
    tail: u64,
    /// Length in bytes.
    len: u32,
}

impl Key {
    #[inline(always)]
    fn of(s: &[u8]) -> Option<Key> {
        let len = u32::try_from(s.len()).ok().filter(|&l| l != EMPTY_LEN)?;
        let (head, tail) = if s.len() > 8 {
            (load8(&s[..8]), load8(&s[s.len() - 8..]))
        } else {
            (load_short(s), 0)
        };
        Some(Key { head, tail, len })
    }

    #[inline(always)]
    fn hash(&self) -> u64 {
        (self.head ^ self.tail.rotate_left(29) ^ u64::from(self.len))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
}

#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
struct Slot {
    head: u64,
    tail: u64,
    len: u32,
    id: u32,
}

const EMPTY: Slot = Slot {
    head: 0,
    tail: 0,
    len: EMPTY_LEN,
    id: 0,
};

impl Slot {
    #[inline(always)]
    fn holds(&self, k: &Key) -> bool {
        self.len == k.len && self.head == k.head && self.tail == k.tail
    }
}

/// Symbol → id for one client thread (see the module invariants).
#[derive(Debug)]
pub struct SymbolTable {
    ids: FxHashMap<Box<[u8]>, u32>,
    names: Vec<Box<[u8]>>,
    slots: Vec<Slot>,
    /// The cache does not grow past this many slots.
    max_slots: usize,
    /// `64 - log2(number of sets)`: the hash's top bits pick the set.
    shift: u32,
    /// Lookups the cache did not answer (for tests and tuning).
    misses: u64,
}

impl Default for SymbolTable {
    fn default() -> Self {
        Self::new()
    }
}

impl SymbolTable {
    /// An empty table.
    pub fn new() -> Self {
        Self::with_slots(MIN_SLOTS, MAX_SLOTS)
    }

    /// A table whose cache has `slots` slots (a power of two, at least two
    /// sets) and grows up to `max_slots`.
    fn with_slots(slots: usize, max_slots: usize) -> Self {
        debug_assert!(slots.is_power_of_two() && slots >= 2 * WAYS);
        let sets = slots / WAYS;
        SymbolTable {
            ids: FxHashMap::default(),
            names: Vec::new(),
            slots: vec![EMPTY; slots],
            max_slots,
            shift: 64 - sets.trailing_zeros(),
            misses: 0,
        }
    }

    /// Number of distinct symbols interned.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Returns true if and only if no symbol was interned yet.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The bytes of the symbol with `id`.
    pub fn name(&self, id: u32) -> Option<&[u8]> {
        self.names.get(id as usize).map(|n| &n[..])
    }

    /// Lookups the cache did not answer so far.
    pub fn cache_misses(&self) -> u64 {
        self.misses
    }

    /// The id of `symbol`, assigning the next free one on first sight.
    #[inline]
    pub fn intern(&mut self, symbol: &[u8]) -> u32 {
        match Key::of(symbol) {
            Some(key) => self.lookup(key, symbol),
            None => self.intern_slow(symbol),
        }
    }

    /// [`SymbolTable::intern`] of `text[..len]`, for a symbol read in
    /// place from a message: `text` goes on past the symbol (its closing
    /// quote and more), so a symbol of up to 16 bytes is keyed with one or
    /// two word loads and a mask instead of byte-length cases. A `len`
    /// past the end of `text` is taken as `text.len()`.
    #[inline(always)]
    pub fn intern_in(&mut self, text: &[u8], len: usize) -> u32 {
        if let (Some(w), Some(symbol)) = (text.first_chunk::<8>(), text.get(..len)) {
            let head = u64::from_le_bytes(*w);
            let key = match len {
                0..=8 => Some(Key {
                    head: head & PREFIX_MASK[len],
                    tail: 0,
                    len: len as u32,
                }),
                9..=16 => Some(Key {
                    head,
                    tail: load8(&symbol[len - 8..]),
                    len: len as u32,
                }),
                _ => None,
            };
            if let Some(key) = key {
                return self.lookup(key, symbol);
            }
        }
        self.intern(text.get(..len).unwrap_or(text))
    }

    /// The cache, then the map (see the module invariants).
    #[inline(always)]
    fn lookup(&mut self, key: Key, symbol: &[u8]) -> u32 {
        let set = self.set_of(&key);
        if let Some(ways) = self.slots.get(set..set + WAYS) {
            for slot in ways {
                if slot.holds(&key) && self.middle_matches(slot.id, symbol) {
                    return slot.id;
                }
            }
        }
        self.miss(key, symbol)
    }

    #[cold]
    #[inline(never)]
    fn miss(&mut self, key: Key, symbol: &[u8]) -> u32 {
        self.misses += 1;
        let id = self.intern_slow(symbol);
        self.fill(key, id);
        id
    }

    #[inline(always)]
    fn set_of(&self, key: &Key) -> usize {
        ((key.hash() >> self.shift) as usize) * WAYS
    }

    /// Bytes 8..len-8 (not covered by the key) equal those of `id`'s name.
    #[inline(always)]
    fn middle_matches(&self, id: u32, symbol: &[u8]) -> bool {
        let n = symbol.len();
        n <= 16
            || self
                .names
                .get(id as usize)
                .is_some_and(|name| name.len() == n && name[8..n - 8] == symbol[8..n - 8])
    }

    /// Looks `symbol` up in the map, adding it if new; grows the cache
    /// when it gets crowded.
    #[cold]
    #[inline(never)]
    fn intern_slow(&mut self, symbol: &[u8]) -> u32 {
        if let Some(&id) = self.ids.get(symbol) {
            return id;
        }
        let id = u32::try_from(self.names.len()).expect("fewer than 2^32 symbols");
        self.ids.insert(symbol.into(), id);
        self.names.push(symbol.into());
        if self.names.len() * SPREAD > self.slots.len() && self.slots.len() < self.max_slots {
            self.grow();
        }
        id
    }

    /// Puts (key, id) into its set: an empty way if there is one, else the
    /// first way moves to the second and the new pair takes the first.
    fn fill(&mut self, key: Key, id: u32) {
        let slot = Slot {
            head: key.head,
            tail: key.tail,
            len: key.len,
            id,
        };
        // Computed here, not passed in: intern_slow may have grown the cache.
        let set = self.set_of(&key);
        if let Some(free) = (0..WAYS).find(|w| self.slots[set + w].len == EMPTY_LEN) {
            self.slots[set + free] = slot;
        } else {
            self.slots.copy_within(set..set + WAYS - 1, set + 1);
            self.slots[set] = slot;
        }
    }

    /// Doubles the cache (dropping its contents: it refills on misses).
    fn grow(&mut self) {
        let n = (self.slots.len() * 2).min(self.max_slots);
        let sets = n / WAYS;
        self.slots = vec![EMPTY; n];
        self.shift = 64 - sets.trailing_zeros();
    }
}

/// `PREFIX_MASK[n]` keeps the low `n` bytes of a little-endian word.
const PREFIX_MASK: [u64; 9] = {
    let mut m = [0u64; 9];
    let mut n = 1;
    while n < 9 {
        m[n] = u64::MAX >> (64 - 8 * n);
        n += 1;
    }
    m
};

#[inline(always)]
fn load8(s: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&s[..8]);
    u64::from_le_bytes(b)
}

/// The bytes of `s` (at most 8) as a little-endian word, zero-padded,
/// without a variable-length copy.
#[inline(always)]
fn load_short(s: &[u8]) -> u64 {
    let n = s.len();
    debug_assert!(n <= 8);
    if n >= 4 {
        let lo = u64::from(u32::from_le_bytes([s[0], s[1], s[2], s[3]]));
        let hi = u64::from(u32::from_le_bytes([s[n - 4], s[n - 3], s[n - 2], s[n - 1]]));
        // The two loads overlap for n < 8; overlapping bytes are equal.
        lo | (hi << (8 * (n - 4)))
    } else if n > 0 {
        let mid = n / 2;
        u64::from(s[0]) | (u64::from(s[mid]) << (8 * mid)) | (u64::from(s[n - 1]) << (8 * (n - 1)))
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_loads_match_zero_padded_bytes() {
        let all = b"ABCDEFGHIJ";
        for n in 0..=8 {
            let mut padded = [0u8; 8];
            padded[..n].copy_from_slice(&all[..n]);
            assert_eq!(load_short(&all[..n]), u64::from_le_bytes(padded), "n={n}");
        }
    }

    #[test]
    fn interning_in_place_is_interning_the_symbol() {
        // Symbols of every length up to 20, followed by text that must not
        // leak into the key; in place and by slice, in either order.
        let all = b"ABCDEFGHIJKLMNOPQRST";
        for first_in_place in [true, false] {
            let mut t = SymbolTable::new();
            for n in 0..=all.len() {
                let text: Vec<u8> = [&all[..n], &br#"","seq":1"#[..]].concat();
                let (a, b) = if first_in_place {
                    (t.intern_in(&text, n), t.intern(&all[..n]))
                } else {
                    (t.intern(&all[..n]), t.intern_in(&text, n))
                };
                assert_eq!(a, b, "n={n}");
                assert_eq!(a, n as u32, "n={n}");
                // Different trailing text, same symbol.
                let other: Vec<u8> = [&all[..n], &b"\"XXXXXXXXXXXXXXX"[..]].concat();
                assert_eq!(t.intern_in(&other, n), a, "n={n}");
            }
            // Text shorter than a word: the byte-wise key.
            assert_eq!(t.intern_in(b"AB", 2), 2);
            assert_eq!(t.intern_in(b"AB", 5), t.intern(b"AB"));
        }
    }

    #[test]
    fn ids_are_dense_and_stable() {
        let mut t = SymbolTable::new();
        assert_eq!(t.intern(b"AAPL"), 0);
        assert_eq!(t.intern(b"MSFT"), 1);
        assert_eq!(t.intern(b"AAPL"), 0);
        assert_eq!(t.intern(b""), 2);
        assert_eq!(t.intern(b"MSFT"), 1);
        assert_eq!(t.intern(b""), 2);
        assert_eq!(t.len(), 3);
        assert_eq!(t.name(1), Some(&b"MSFT"[..]));
        assert_eq!(t.cache_misses(), 3);
    }

    #[test]
    fn zero_padding_does_not_confuse_lengths() {
        // Same zero-padded head word, different lengths.
        let mut t = SymbolTable::new();
        let a = t.intern(b"AB");
        let b = t.intern(b"AB\0");
        let c = t.intern(b"AB\0\0\0\0\0\0");
        assert_eq!([a, b, c], [0, 1, 2]);
        assert_eq!(
            [
                t.intern(b"AB"),
                t.intern(b"AB\0"),
                t.intern(b"AB\0\0\0\0\0\0")
            ],
            [0, 1, 2]
        );
    }

    #[test]
    fn same_length_and_prefix_differ_in_the_middle() {
        // 20..32-byte symbols with the same length, first 8 and last 8
        // bytes: only the middle tells them apart, so every cache hit must
        // be confirmed against the stored name.
        let mut t = SymbolTable::new();
        let names: Vec<Vec<u8>> = (0..50)
            .map(|i| format!("PREFIX00-{i:04}-mid-SUFFIX00").into_bytes())
            .collect();
        assert!(names.iter().all(|n| n.len() == names[0].len()));
        let ids: Vec<u32> = names.iter().map(|n| t.intern(n)).collect();
        assert_eq!(ids, (0..50).collect::<Vec<u32>>());
        for _ in 0..3 {
            for (i, n) in names.iter().enumerate() {
                assert_eq!(t.intern(n), i as u32);
            }
        }
        // 32 bytes, differing only in byte 16.
        let mut x = *b"0123456789abcdefXhijklmnopqrstuv";
        let first = t.intern(&x);
        x[16] = b'Y';
        let second = t.intern(&x);
        assert_ne!(first, second);
        assert_eq!(t.intern(&x), second);
        x[16] = b'X';
        assert_eq!(t.intern(&x), first);
    }

    #[test]
    fn same_length_and_head_differ_in_the_tail() {
        let mut t = SymbolTable::new();
        let a = t.intern(b"EURUSD.SPOT1");
        let b = t.intern(b"EURUSD.SPOT2");
        let c = t.intern(b"EURUSD.SPOT1\0");
        assert_eq!([a, b, c], [0, 1, 2]);
        for _ in 0..3 {
            assert_eq!(
                [t.intern(b"EURUSD.SPOT1"), t.intern(b"EURUSD.SPOT2")],
                [a, b]
            );
        }
    }

    #[test]
    fn colliding_sets_evict_but_stay_correct() {
        // A tiny cache (two sets of two ways, never grown): five symbols
        // must share sets, so some evict others.
        let mut t = SymbolTable::with_slots(2 * WAYS, 2 * WAYS);
        let syms: [&[u8]; 5] = [b"A", b"BB", b"CCC", b"DDDD", b"EEEEEEEEEEEEEEEEEEEEE"];
        for round in 0..4 {
            for (i, s) in syms.iter().enumerate() {
                assert_eq!(t.intern(s), i as u32, "round {round}");
            }
        }
        let misses = t.cache_misses();
        assert!(
            misses > syms.len() as u64,
            "the tiny cache must have missed"
        );
    }

    #[test]
    fn grows_and_keeps_ids() {
        let mut t = SymbolTable::new();
        let n = MIN_SLOTS; // enough to trigger growth (SPREAD > 1)
        for i in 0..n {
            assert_eq!(t.intern(format!("EQ{i:05}").as_bytes()), i as u32);
        }
        assert!(t.slots.len() > MIN_SLOTS);
        for i in (0..n).rev() {
            assert_eq!(t.intern(format!("EQ{i:05}").as_bytes()), i as u32);
        }
    }
}
