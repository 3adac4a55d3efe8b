//! A shard's subscription index: who receives a tick of each symbol.
//!
//! Invariant: for every symbol `s`, `by_symbol[s]` holds exactly the
//! connections that are not subscribed to `*` and whose symbol or group
//! subscriptions cover `s`; `all` holds the `*` subscribers. The two are
//! disjoint and each is a set, so [`Index::recipients`] yields a connection
//! at most once per tick however many subscriptions cover the symbol, and
//! the tick path does no de-duplication work.
//!
//! Sets (not vectors) because a connection leaving must not cost a scan of
//! every list it is on: 10,000 connections leaving 100 symbols each would
//! otherwise be 10^9 steps.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;

use crate::symbols::SymId;

/// A connection's key in its shard (its slab index).
pub(crate) type ConnKey = u32;

/// A set of small integers with a cheap multiplicative hash.
pub(crate) type IntSet = HashSet<u32, BuildHasherDefault<IntHasher>>;

/// Fibonacci hashing for `u32` keys: one multiply, spreads the high bits
/// that hashbrown uses for its control bytes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IntHasher(u64);

impl Hasher for IntHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// A named group of symbols as one shard knows it.
#[derive(Debug, Default)]
struct Group {
    /// Sorted, no duplicates.
    symbols: Vec<SymId>,
    /// Connections subscribed to this group.
    subscribers: IntSet,
}

/// One connection's subscriptions.
#[derive(Debug, Default, Clone)]
struct ConnSubs {
    /// Sorted, no duplicates: individually subscribed symbols.
    symbols: Vec<SymId>,
    groups: Vec<Arc<str>>,
    all: bool,
}

impl ConnSubs {
    fn count(&self) -> usize {
        self.symbols.len() + self.groups.len() + usize::from(self.all)
    }
}

/// What a subscription asks for, already resolved to ids and known groups.
#[derive(Debug, Default, Clone)]
pub(crate) struct Selection {
    pub(crate) symbols: Vec<SymId>,
    pub(crate) groups: Vec<Arc<str>>,
    pub(crate) all: bool,
}

/// The shard's subscription index.
#[derive(Debug, Default)]
pub(crate) struct Index {
    by_symbol: Vec<IntSet>,
    all: IntSet,
    groups: HashMap<Arc<str>, Group>,
    /// Per connection key; an empty default for keys not in use.
    subs: Vec<ConnSubs>,
}

impl Index {
    /// Connections that receive a tick of `sym`, each once.
    pub(crate) fn recipients(&self, sym: SymId) -> impl Iterator<Item = ConnKey> + '_ {
        self.all
            .iter()
            .chain(self.by_symbol.get(sym as usize).into_iter().flatten())
            .copied()
    }

    /// Returns true if and only if `name` is a defined group.
    #[cfg(test)]
    pub(crate) fn has_group(&self, name: &str) -> bool {
        self.groups.contains_key(name)
    }

    /// The group's interned name, if defined.
    pub(crate) fn group_name(&self, name: &str) -> Option<Arc<str>> {
        self.groups.get_key_value(name).map(|(k, _)| k.clone())
    }

    /// `(name, symbol count)` of every group, sorted by name.
    pub(crate) fn group_list(&self) -> Vec<(String, usize)> {
        let mut v: Vec<_> = self
            .groups
            .iter()
            .map(|(n, g)| (n.to_string(), g.symbols.len()))
            .collect();
        v.sort();
        v
    }

    /// The symbols of group `name`.
    pub(crate) fn group_symbols(&self, name: &str) -> &[SymId] {
        self.groups.get(name).map_or(&[], |g| &g.symbols)
    }

    /// Number of subscriptions `key` would hold after adding `sel`.
    pub(crate) fn count_after(&self, key: ConnKey, sel: &Selection) -> usize {
        let cur = self.subs.get(key as usize).cloned().unwrap_or_default();
        let new_syms = sel
            .symbols
            .iter()
            .filter(|s| cur.symbols.binary_search(s).is_err())
            .count();
        let new_groups = sel
            .groups
            .iter()
            .filter(|g| !cur.groups.contains(g))
            .count();
        cur.count() + new_syms + new_groups + usize::from(sel.all && !cur.all)
    }

    /// Number of subscriptions `key` holds.
    #[cfg(test)]
    pub(crate) fn count(&self, key: ConnKey) -> usize {
        self.subs.get(key as usize).map_or(0, ConnSubs::count)
    }

    /// Adds `sel` to `key`'s subscriptions. Groups in `sel` must exist.
    pub(crate) fn subscribe(&mut self, key: ConnKey, sel: &Selection) {
        let k = key as usize;
        if self.subs.len() <= k {
            self.subs.resize_with(k + 1, ConnSubs::default);
        }
        let was_all = self.subs[k].all;
        for &s in &sel.symbols {
            if let Err(pos) = self.subs[k].symbols.binary_search(&s) {
                self.subs[k].symbols.insert(pos, s);
                if !was_all {
                    self.set_mut(s).insert(key);
                }
            }
        }
        for g in &sel.groups {
            if self.subs[k].groups.contains(g) {
                continue;
            }
            let Some(group) = self.groups.get_mut(g) else {
                continue;
            };
            group.subscribers.insert(key);
            self.subs[k].groups.push(g.clone());
            if !was_all {
                let syms = group.symbols.clone();
                for s in syms {
                    self.set_mut(s).insert(key);
                }
            }
        }
        if sel.all && !was_all {
            self.subs[k].all = true;
            self.all.insert(key);
            for s in self.covered(key) {
                if let Some(set) = self.by_symbol.get_mut(s as usize) {
                    set.remove(&key);
                }
            }
        }
        self.check_invariants(key);
    }

    /// Removes `sel` from `key`'s subscriptions (missing ones are ignored).
    pub(crate) fn unsubscribe(&mut self, key: ConnKey, sel: &Selection) {
        let k = key as usize;
        let Some(cur) = self.subs.get_mut(k) else {
            return;
        };
        let dropped_all = sel.all && cur.all;
        cur.all &= !sel.all;
        let mut candidates: Vec<SymId> = Vec::new();
        for s in &sel.symbols {
            if let Ok(pos) = cur.symbols.binary_search(s) {
                cur.symbols.remove(pos);
                candidates.push(*s);
            }
        }
        let mut dropped_groups = Vec::new();
        cur.groups.retain(|g| {
            let drop = sel.groups.contains(g);
            if drop {
                dropped_groups.push(g.clone());
            }
            !drop
        });
        for g in dropped_groups {
            if let Some(group) = self.groups.get_mut(&g) {
                group.subscribers.remove(&key);
                candidates.extend_from_slice(&group.symbols);
            }
        }
        if dropped_all {
            self.all.remove(&key);
            for s in self.covered(key) {
                self.set_mut(s).insert(key);
            }
        } else if !self.subs[k].all {
            for s in candidates {
                if !self.covers(key, s)
                    && let Some(set) = self.by_symbol.get_mut(s as usize)
                {
                    set.remove(&key);
                }
            }
        }
        self.check_invariants(key);
    }

    /// Drops every subscription of `key` (the connection is leaving).
    pub(crate) fn remove(&mut self, key: ConnKey) {
        let Some(cur) = self.subs.get(key as usize).cloned() else {
            return;
        };
        let sel = Selection {
            symbols: cur.symbols,
            groups: cur.groups,
            all: cur.all,
        };
        self.unsubscribe(key, &sel);
        if let Some(s) = self.subs.get_mut(key as usize) {
            *s = ConnSubs::default();
        }
    }

    /// `key`'s subscriptions as names-to-be: (symbols, groups, all).
    pub(crate) fn selection(&self, key: ConnKey) -> Selection {
        let cur = self.subs.get(key as usize).cloned().unwrap_or_default();
        Selection {
            symbols: cur.symbols,
            groups: cur.groups,
            all: cur.all,
        }
    }

    /// Defines or replaces group `name`. Returns, per affected connection,
    /// the symbols it newly receives (they need a snapshot).
    pub(crate) fn set_group(
        &mut self,
        name: Arc<str>,
        mut symbols: Vec<SymId>,
    ) -> Vec<(ConnKey, Vec<SymId>)> {
        symbols.sort_unstable();
        symbols.dedup();
        let group = self.groups.entry(name.clone()).or_default();
        let old = std::mem::replace(&mut group.symbols, symbols.clone());
        let subscribers: Vec<ConnKey> = group.subscribers.iter().copied().collect();
        let mut gained = Vec::new();
        for key in subscribers {
            if self.subs.get(key as usize).is_none_or(|c| c.all) {
                continue;
            }
            for &s in &old {
                if symbols.binary_search(&s).is_err()
                    && !self.covers(key, s)
                    && let Some(set) = self.by_symbol.get_mut(s as usize)
                {
                    set.remove(&key);
                }
            }
            let mut new_for_key = Vec::new();
            for &s in &symbols {
                if self.set_mut(s).insert(key) {
                    new_for_key.push(s);
                }
            }
            self.check_invariants(key);
            if !new_for_key.is_empty() {
                gained.push((key, new_for_key));
            }
        }
        gained
    }

    /// Removes group `name`; returns the connections that were subscribed
    /// to it (their subscription to it is dropped).
    pub(crate) fn remove_group(&mut self, name: &str) -> Vec<ConnKey> {
        let Some(group_name) = self.group_name(name) else {
            return Vec::new();
        };
        let subscribers: Vec<ConnKey> = self
            .groups
            .get(name)
            .map(|g| g.subscribers.iter().copied().collect())
            .unwrap_or_default();
        for &key in &subscribers {
            let sel = Selection {
                groups: vec![group_name.clone()],
                ..Selection::default()
            };
            self.unsubscribe(key, &sel);
        }
        self.groups.remove(name);
        subscribers
    }

    /// Every symbol `key`'s symbol and group subscriptions cover (ignoring
    /// `*`), sorted.
    pub(crate) fn covered(&self, key: ConnKey) -> Vec<SymId> {
        let Some(cur) = self.subs.get(key as usize) else {
            return Vec::new();
        };
        let mut v = cur.symbols.clone();
        for g in &cur.groups {
            v.extend_from_slice(self.group_symbols(g));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Returns true if and only if `key`'s symbol or group subscriptions
    /// cover `sym` (ignoring `*`).
    fn covers(&self, key: ConnKey, sym: SymId) -> bool {
        let Some(cur) = self.subs.get(key as usize) else {
            return false;
        };
        cur.symbols.binary_search(&sym).is_ok()
            || cur
                .groups
                .iter()
                .any(|g| self.group_symbols(g).binary_search(&sym).is_ok())
    }

    fn set_mut(&mut self, sym: SymId) -> &mut IntSet {
        let i = sym as usize;
        if self.by_symbol.len() <= i {
            self.by_symbol.resize_with(i + 1, IntSet::default);
        }
        &mut self.by_symbol[i]
    }

    /// Debug builds: `key` is on exactly the lists its subscriptions imply.
    fn check_invariants(&self, key: ConnKey) {
        if cfg!(debug_assertions) {
            let all = self.subs.get(key as usize).is_some_and(|c| c.all);
            debug_assert_eq!(all, self.all.contains(&key));
            for (s, set) in self.by_symbol.iter().enumerate() {
                let want = !all && self.covers(key, s as SymId);
                debug_assert_eq!(want, set.contains(&key), "key {key} symbol {s}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syms(v: &[SymId]) -> Selection {
        Selection {
            symbols: v.to_vec(),
            ..Selection::default()
        }
    }

    fn group(name: &str) -> Selection {
        Selection {
            groups: vec![Arc::from(name)],
            ..Selection::default()
        }
    }

    fn star() -> Selection {
        Selection {
            all: true,
            ..Selection::default()
        }
    }

    fn to(ix: &Index, s: SymId) -> Vec<ConnKey> {
        let mut v: Vec<_> = ix.recipients(s).collect();
        v.sort();
        v
    }

    #[test]
    fn overlapping_subscriptions_deliver_once() {
        let mut ix = Index::default();
        ix.set_group("g".into(), vec![1, 2]);
        ix.subscribe(7, &syms(&[1]));
        ix.subscribe(7, &group("g"));
        ix.subscribe(7, &syms(&[1]));
        assert_eq!(to(&ix, 1), vec![7]);
        ix.subscribe(7, &star());
        assert_eq!(to(&ix, 1), vec![7]);
        assert_eq!(to(&ix, 99), vec![7]);
        assert_eq!(ix.count(7), 3);
    }

    #[test]
    fn unsubscribe_keeps_what_other_subscriptions_cover() {
        let mut ix = Index::default();
        ix.set_group("g".into(), vec![1, 2]);
        ix.subscribe(1, &syms(&[1, 3]));
        ix.subscribe(1, &group("g"));
        ix.unsubscribe(1, &syms(&[1]));
        assert_eq!(to(&ix, 1), vec![1], "still covered by the group");
        ix.unsubscribe(1, &group("g"));
        assert!(to(&ix, 1).is_empty());
        assert!(to(&ix, 2).is_empty());
        assert_eq!(to(&ix, 3), vec![1]);
    }

    #[test]
    fn leaving_star_restores_the_specific_subscriptions() {
        let mut ix = Index::default();
        ix.subscribe(4, &syms(&[5]));
        ix.subscribe(4, &star());
        ix.unsubscribe(4, &star());
        assert_eq!(to(&ix, 5), vec![4]);
        assert!(to(&ix, 6).is_empty());
    }

    #[test]
    fn remove_forgets_the_connection_everywhere() {
        let mut ix = Index::default();
        ix.set_group("g".into(), vec![1, 2]);
        ix.subscribe(2, &group("g"));
        ix.subscribe(2, &syms(&[9]));
        ix.subscribe(3, &star());
        ix.remove(2);
        ix.remove(3);
        for s in 0..10 {
            assert!(to(&ix, s).is_empty());
        }
        assert_eq!(ix.count(2), 0);
    }

    #[test]
    fn redefining_a_group_moves_its_subscribers() {
        let mut ix = Index::default();
        ix.set_group("g".into(), vec![1, 2]);
        ix.subscribe(1, &group("g"));
        ix.subscribe(1, &syms(&[2]));
        let gained = ix.set_group("g".into(), vec![3]);
        assert_eq!(gained, vec![(1, vec![3])]);
        assert!(to(&ix, 1).is_empty());
        assert_eq!(to(&ix, 2), vec![1], "direct subscription survives");
        assert_eq!(to(&ix, 3), vec![1]);
        assert_eq!(ix.remove_group("g"), vec![1]);
        assert!(to(&ix, 3).is_empty());
        assert!(!ix.has_group("g"));
    }

    #[test]
    fn count_after_counts_only_new_subscriptions() {
        let mut ix = Index::default();
        ix.subscribe(1, &syms(&[1, 2]));
        assert_eq!(ix.count_after(1, &syms(&[2, 3])), 3);
        assert_eq!(ix.count_after(1, &star()), 3);
    }
}
