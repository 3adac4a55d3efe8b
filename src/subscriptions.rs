//! A shard's subscription index, organised by *subscription class*.
//!
//! Connections whose subscriptions are the same (same symbols and groups,
//! or `*`) receive exactly the same stream, so they share a class. Ticks
//! fan out to classes, not connections: the shard appends each tick to the
//! pending batch of every class that covers its symbol, then hands each
//! batch (one shared frame holding many ticks) to the class's members. A
//! thousand `*` subscribers cost one batch per turn and one `Arc` clone per
//! connection, however many ticks the turn carried.
//!
//! Invariants:
//! - every connection with at least one subscription is in exactly one
//!   class, the one keyed by its [`Spec`] (or the `*` class);
//! - for every symbol `s`, `by_symbol[s]` holds exactly the non-`*` classes
//!   whose spec covers `s`; the `*` class covers every symbol.
//!
//! So a tick reaches a connection at most once however many of its
//! subscriptions cover the symbol, and the tick path does no
//! de-duplication work.
//!
//! Sets (not vectors) because leaving must not cost a scan of every list
//! an entry is on.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;
use std::sync::Arc;

use slab::Slab;

use crate::symbols::{FastHasher, SymId};

/// A connection's key in its shard (its slab index).
pub(crate) type ConnKey = u32;
/// A subscription class's key in the index.
pub(crate) type ClassId = u32;

/// A set of small integers with a cheap multiplicative hash.
pub(crate) type IntSet = HashSet<u32, BuildHasherDefault<FastHasher>>;

/// A class's member connections, in ascending key order.
///
/// Why not a hash set: the fan-out queues a class's batch on every member
/// in the order this yields, and a member's key is its slab index, so in
/// key order the shard meets the connections in address order, which the
/// CPU fetches ahead by itself. In hash order every member was a cache
/// miss on its connection, and another on its queue's tail, that nothing
/// could fetch ahead: with 10,000 connections on `*`, `flush_classes` was
/// ~17 % of the server (`perf record -e cpu-clock -g`, issue 11). A
/// member joins or leaves with a binary search and a shift of the keys
/// after it (a connect storm's keys mostly arrive ascending, at the end).
#[derive(Debug, Default)]
pub(crate) struct Members(Vec<ConnKey>);

impl Members {
    /// Adds `key`; false if it was a member already.
    fn insert(&mut self, key: ConnKey) -> bool {
        match self.0.binary_search(&key) {
            Ok(_) => false,
            Err(at) => {
                self.0.insert(at, key);
                true
            }
        }
    }

    /// Removes `key`; false if it was not a member.
    fn remove(&mut self, key: ConnKey) -> bool {
        match self.0.binary_search(&key) {
            Ok(at) => {
                self.0.remove(at);
                true
            }
            Err(_) => false,
        }
    }

    /// The members, ascending.
    pub(crate) fn as_slice(&self) -> &[ConnKey] {
        &self.0
    }

    /// The members, ascending.
    pub(crate) fn iter(&self) -> std::slice::Iter<'_, ConnKey> {
        self.0.iter()
    }

    /// How many members.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a Members {
    type Item = &'a ConnKey;
    type IntoIter = std::slice::Iter<'a, ConnKey>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

/// What a subscription asks for, already resolved to ids and known groups.
/// Also a connection's whole subscription state.
#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Selection {
    /// Sorted, no duplicates (when used as a connection's state).
    pub(crate) symbols: Vec<SymId>,
    /// Sorted, no duplicates (when used as a connection's state).
    pub(crate) groups: Vec<Arc<str>>,
    pub(crate) all: bool,
}

impl Selection {
    fn count(&self) -> usize {
        self.symbols.len() + self.groups.len() + usize::from(self.all)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count() == 0
    }

    /// The class key: every `*` subscriber gets the same stream.
    fn class_key(&self) -> Selection {
        if self.all {
            Selection {
                all: true,
                ..Selection::default()
            }
        } else {
            self.clone()
        }
    }

    fn normalize(&mut self) {
        self.symbols.sort_unstable();
        self.symbols.dedup();
        self.groups.sort();
        self.groups.dedup();
    }
}

/// Connections with the same subscriptions, and their pending batch.
#[derive(Debug)]
pub(crate) struct Class {
    /// Shared with `Index::by_key` and with every member's entry in
    /// `Index::conns` (but a `*` member's, whose own subscriptions differ
    /// from the `*` key): a watchlist is stored once, not three times.
    key: Arc<Selection>,
    pub(crate) members: Members,
    /// The one member, when there is exactly one: the usual case when every
    /// client has its own watchlist. Such a class has no batch to share, so
    /// the fan-out packs its batch with other such classes' into one chunk
    /// (see `shard::fanout`).
    pub(crate) sole: Option<ConnKey>,
    /// The ticks for this class since the last flush, in fan-out order: as
    /// indices into the shard's list of the turn's ticks, so a delivery
    /// costs no reference count until the batch is built.
    pub(crate) pending: Vec<u32>,
    /// The wire bytes of `pending`'s ticks, summed: the batch's size.
    pub(crate) pending_bytes: usize,
    /// When `publish` accepted the first of `pending` (its `ts`, in
    /// nanoseconds since the UNIX epoch): the batch's age for the
    /// publish-to-write latency.
    pub(crate) pending_since: u64,
}

impl Class {
    /// Keeps `sole` in step with `members`.
    fn note_sole(&mut self) {
        self.sole = if self.members.len() == 1 {
            self.members.iter().next().copied()
        } else {
            None
        };
    }
}

/// A named group of symbols as one shard knows it.
#[derive(Debug, Default)]
struct Group {
    /// Sorted, no duplicates.
    symbols: Vec<SymId>,
    /// Classes whose key includes this group.
    classes: IntSet,
}

/// The shard's subscription index.
#[derive(Debug, Default)]
pub(crate) struct Index {
    classes: Slab<Class>,
    by_key: HashMap<Arc<Selection>, ClassId>,
    by_symbol: Vec<IntSet>,
    all_class: Option<ClassId>,
    groups: HashMap<Arc<str>, Group>,
    /// Per connection key: (its subscriptions, its class).
    conns: Vec<(Arc<Selection>, Option<ClassId>)>,
}

impl Index {
    /// Appends tick `tick` (the shard's index of it in the turn) of `sym`,
    /// `len` wire bytes published at `ts` (nanoseconds since the UNIX
    /// epoch), to the pending batch of every class that receives it (each
    /// once); classes whose batch was empty are pushed onto `started`.
    /// Returns the longest of those batches after.
    pub(crate) fn push_pending(
        &mut self,
        sym: SymId,
        tick: u32,
        len: usize,
        ts: u64,
        started: &mut Vec<ClassId>,
    ) -> usize {
        let mut longest = 0;
        let specific = self
            .by_symbol
            .get(sym as usize)
            .into_iter()
            .flatten()
            .copied();
        for c in self.all_class.into_iter().chain(specific) {
            if let Some(class) = self.classes.get_mut(c as usize) {
                if class.pending.is_empty() {
                    started.push(c);
                    class.pending_since = ts;
                    class.pending_bytes = 0;
                }
                class.pending.push(tick);
                class.pending_bytes += len;
                longest = longest.max(class.pending.len());
            }
        }
        longest
    }

    /// Classes that receive a tick of `sym`, each once.
    pub(crate) fn classes_for(&self, sym: SymId) -> impl Iterator<Item = ClassId> + '_ {
        self.all_class.into_iter().chain(
            self.by_symbol
                .get(sym as usize)
                .into_iter()
                .flatten()
                .copied(),
        )
    }

    /// The class `id`.
    pub(crate) fn class_mut(&mut self, id: ClassId) -> Option<&mut Class> {
        self.classes.get_mut(id as usize)
    }

    /// The class `id`.
    pub(crate) fn class(&self, id: ClassId) -> Option<&Class> {
        self.classes.get(id as usize)
    }

    /// Connections that receive a tick of `sym`, each once (for a new
    /// history's reset and for tests; the tick path goes through classes).
    pub(crate) fn recipients(&self, sym: SymId) -> Vec<ConnKey> {
        let mut v: Vec<ConnKey> = self
            .classes_for(sym)
            .flat_map(|c| self.classes[c as usize].members.iter().copied())
            .collect();
        v.sort_unstable();
        v
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
        let mut s = self.selection(key);
        s.symbols.extend_from_slice(&sel.symbols);
        s.groups.extend(sel.groups.iter().cloned());
        s.all |= sel.all;
        s.normalize();
        s.count()
    }

    /// Number of subscriptions `key` holds.
    #[cfg(test)]
    pub(crate) fn count(&self, key: ConnKey) -> usize {
        self.selection(key).count()
    }

    /// `key`'s subscriptions.
    pub(crate) fn selection(&self, key: ConnKey) -> Selection {
        self.conns
            .get(key as usize)
            .map(|c| Selection::clone(&c.0))
            .unwrap_or_default()
    }

    /// Adds `sel` to `key`'s subscriptions. Groups in `sel` must exist.
    pub(crate) fn subscribe(&mut self, key: ConnKey, sel: &Selection) {
        let mut s = self.selection(key);
        s.symbols.extend_from_slice(&sel.symbols);
        s.groups.extend(
            sel.groups
                .iter()
                .filter(|g| self.groups.contains_key(*g))
                .cloned(),
        );
        s.all |= sel.all;
        s.normalize();
        self.set(key, s);
    }

    /// Removes `sel` from `key`'s subscriptions (missing ones are ignored).
    pub(crate) fn unsubscribe(&mut self, key: ConnKey, sel: &Selection) {
        let mut s = self.selection(key);
        s.symbols.retain(|x| !sel.symbols.contains(x));
        s.groups.retain(|g| !sel.groups.contains(g));
        s.all &= !sel.all;
        self.set(key, s);
    }

    /// Drops every subscription of `key` (the connection is leaving).
    pub(crate) fn remove(&mut self, key: ConnKey) {
        self.set(key, Selection::default());
    }

    /// Gives `key` the subscriptions `spec`, moving it between classes.
    fn set(&mut self, key: ConnKey, spec: Selection) {
        let k = key as usize;
        if self.conns.len() <= k {
            self.conns.resize_with(k + 1, Default::default);
        }
        let class_key = spec.class_key();
        let old = self.conns[k].1;
        let new = if spec.is_empty() {
            None
        } else {
            Some(self.class_for(&class_key))
        };
        if old != new {
            if let Some(c) = new {
                let class = &mut self.classes[c as usize];
                class.members.insert(key);
                class.note_sole();
            }
            if let Some(c) = old {
                let class = &mut self.classes[c as usize];
                class.members.remove(key);
                class.note_sole();
                if class.members.is_empty() && class.pending.is_empty() {
                    self.drop_class(c);
                }
            }
        }
        // A member's subscriptions are its class's key (but under `*`):
        // share the class's copy.
        let spec = match new {
            Some(c) if !spec.all => self.classes[c as usize].key.clone(),
            _ => Arc::new(spec),
        };
        self.conns[k] = (spec, new);
        self.check_invariants();
    }

    /// The class keyed `key`, created (and indexed) if needed.
    fn class_for(&mut self, key: &Selection) -> ClassId {
        if let Some(&c) = self.by_key.get(key) {
            return c;
        }
        let key = Arc::new(key.clone());
        let c = self.classes.insert(Class {
            key: key.clone(),
            members: Members::default(),
            sole: None,
            pending: Vec::new(),
            pending_bytes: 0,
            pending_since: 0,
        }) as ClassId;
        self.by_key.insert(key.clone(), c);
        let key = &*key;
        if key.all {
            self.all_class = Some(c);
        } else {
            for s in self.covered_by(key) {
                self.set_mut(s).insert(c);
            }
            for g in &key.groups {
                if let Some(group) = self.groups.get_mut(g) {
                    group.classes.insert(c);
                }
            }
        }
        c
    }

    /// Forgets an empty class with nothing pending.
    fn drop_class(&mut self, c: ClassId) {
        let class = self.classes.remove(c as usize);
        self.by_key.remove(&class.key);
        if class.key.all {
            self.all_class = None;
            return;
        }
        for s in self.covered_by(&class.key) {
            if let Some(set) = self.by_symbol.get_mut(s as usize) {
                set.remove(&c);
            }
        }
        for g in &class.key.groups {
            if let Some(group) = self.groups.get_mut(g) {
                group.classes.remove(&c);
            }
        }
    }

    /// Drops classes left empty while they had a pending batch; call after
    /// the batches are flushed.
    pub(crate) fn sweep(&mut self, c: ClassId) {
        if self
            .classes
            .get(c as usize)
            .is_some_and(|k| k.members.is_empty() && k.pending.is_empty())
        {
            self.drop_class(c);
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
        let group = self.groups.entry(name).or_default();
        let old = std::mem::replace(&mut group.symbols, symbols.clone());
        let classes: Vec<ClassId> = group.classes.iter().copied().collect();
        let mut gained = Vec::new();
        for c in classes {
            let key = self.classes[c as usize].key.clone();
            for &s in &old {
                if symbols.binary_search(&s).is_err()
                    && !self.covers(&key, s)
                    && let Some(set) = self.by_symbol.get_mut(s as usize)
                {
                    set.remove(&c);
                }
            }
            let mut new_syms = Vec::new();
            for &s in &symbols {
                if self.set_mut(s).insert(c) {
                    new_syms.push(s);
                }
            }
            if !new_syms.is_empty() {
                for &m in &self.classes[c as usize].members {
                    gained.push((m, new_syms.clone()));
                }
            }
        }
        gained.sort_unstable();
        self.check_invariants();
        gained
    }

    /// Adds `sym` to group `name` (a prefix of it took a new symbol).
    /// Returns the connections that newly receive `sym`, sorted. An
    /// unknown group (removed meanwhile) is left alone.
    pub(crate) fn add_to_group(&mut self, name: &str, sym: SymId) -> Vec<ConnKey> {
        let Some(group) = self.groups.get_mut(name) else {
            return Vec::new();
        };
        let Err(at) = group.symbols.binary_search(&sym) else {
            return Vec::new();
        };
        group.symbols.insert(at, sym);
        let classes: Vec<ClassId> = group.classes.iter().copied().collect();
        let mut gained = Vec::new();
        for c in classes {
            if self.set_mut(sym).insert(c) {
                gained.extend(self.classes[c as usize].members.iter().copied());
            }
        }
        gained.sort_unstable();
        self.check_invariants();
        gained
    }

    /// Removes group `name`; returns the connections that were subscribed
    /// to it (their subscription to it is dropped).
    pub(crate) fn remove_group(&mut self, name: &str) -> Vec<ConnKey> {
        let Some(group_name) = self.group_name(name) else {
            return Vec::new();
        };
        let mut members: Vec<ConnKey> = self
            .conns
            .iter()
            .enumerate()
            .filter(|(_, (spec, _))| spec.groups.contains(&group_name))
            .map(|(k, _)| k as ConnKey)
            .collect();
        members.sort_unstable();
        let sel = Selection {
            groups: vec![group_name],
            ..Selection::default()
        };
        for &k in &members {
            self.unsubscribe(k, &sel);
        }
        self.groups.remove(name);
        members
    }

    /// Every symbol `key`'s symbol and group subscriptions cover (ignoring
    /// `*`), sorted.
    fn covered_by(&self, key: &Selection) -> Vec<SymId> {
        let mut v = key.symbols.clone();
        for g in &key.groups {
            v.extend_from_slice(self.group_symbols(g));
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Returns true if and only if `key`'s symbols or groups cover `sym`.
    fn covers(&self, key: &Selection, sym: SymId) -> bool {
        key.symbols.binary_search(&sym).is_ok()
            || key
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

    /// Debug builds: classes are indexed exactly where their keys say.
    fn check_invariants(&self) {
        if cfg!(debug_assertions) && self.classes.len() <= 64 {
            for (c, class) in &self.classes {
                let c = c as ClassId;
                debug_assert_eq!(self.by_key.get(&class.key), Some(&c));
                if class.key.all {
                    debug_assert_eq!(self.all_class, Some(c));
                    continue;
                }
                for (s, set) in self.by_symbol.iter().enumerate() {
                    let want = self.covers(&class.key, s as SymId);
                    debug_assert_eq!(want, set.contains(&c), "class {c} symbol {s}");
                }
                for &m in &class.members {
                    debug_assert_eq!(self.conns[m as usize].1, Some(c));
                }
                debug_assert_eq!(
                    class.sole,
                    (class.members.len() == 1)
                        .then(|| class.members.iter().next().copied())
                        .flatten()
                );
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

    #[test]
    fn overlapping_subscriptions_deliver_once() {
        let mut ix = Index::default();
        ix.set_group("g".into(), vec![1, 2]);
        ix.subscribe(7, &syms(&[1]));
        ix.subscribe(7, &group("g"));
        ix.subscribe(7, &syms(&[1]));
        assert_eq!(ix.recipients(1), vec![7]);
        ix.subscribe(7, &star());
        assert_eq!(ix.recipients(1), vec![7]);
        assert_eq!(ix.recipients(99), vec![7]);
        assert_eq!(ix.count(7), 3);
    }

    #[test]
    fn a_class_keeps_its_members_in_key_order() {
        let mut ix = Index::default();
        // Joins in any order, leaves from the middle and the ends, a
        // member that joins twice.
        for k in [5, 1, 9, 3, 7, 3, 0] {
            ix.subscribe(k, &star());
        }
        let c = ix.all_class.expect("a `*` class");
        let members = |ix: &Index| ix.class(c).map(|c| c.members.as_slice().to_vec());
        assert_eq!(members(&ix), Some(vec![0, 1, 3, 5, 7, 9]));
        for k in [5, 0, 9] {
            ix.unsubscribe(k, &star());
        }
        assert_eq!(members(&ix), Some(vec![1, 3, 7]));
        ix.subscribe(4, &star());
        assert_eq!(members(&ix), Some(vec![1, 3, 4, 7]));
        let mut set = Members::default();
        assert!(set.insert(2) && set.insert(1) && !set.insert(2));
        assert!(set.remove(2) && !set.remove(2) && !set.remove(8));
        assert_eq!(
            (set.len(), set.iter().copied().collect::<Vec<_>>()),
            (1, vec![1])
        );
    }

    #[test]
    fn identical_subscriptions_share_a_class() {
        let mut ix = Index::default();
        ix.subscribe(1, &syms(&[3, 1]));
        ix.subscribe(2, &syms(&[1, 3]));
        ix.subscribe(3, &syms(&[1]));
        ix.subscribe(4, &star());
        ix.subscribe(5, &star());
        ix.subscribe(5, &syms(&[9]));
        assert_eq!(ix.classes_for(1).count(), 3, "{{1,3}}, {{1}} and *");
        assert_eq!(ix.classes_for(3).count(), 2);
        assert_eq!(ix.recipients(3), vec![1, 2, 4, 5]);
        ix.remove(1);
        ix.remove(2);
        assert_eq!(ix.classes_for(3).count(), 1, "the emptied class is gone");
    }

    #[test]
    fn unsubscribe_keeps_what_other_subscriptions_cover() {
        let mut ix = Index::default();
        ix.set_group("g".into(), vec![1, 2]);
        ix.subscribe(1, &syms(&[1, 3]));
        ix.subscribe(1, &group("g"));
        ix.unsubscribe(1, &syms(&[1]));
        assert_eq!(ix.recipients(1), vec![1], "still covered by the group");
        ix.unsubscribe(1, &group("g"));
        assert!(ix.recipients(1).is_empty());
        assert!(ix.recipients(2).is_empty());
        assert_eq!(ix.recipients(3), vec![1]);
    }

    #[test]
    fn leaving_star_restores_the_specific_subscriptions() {
        let mut ix = Index::default();
        ix.subscribe(4, &syms(&[5]));
        ix.subscribe(4, &star());
        ix.unsubscribe(4, &star());
        assert_eq!(ix.recipients(5), vec![4]);
        assert!(ix.recipients(6).is_empty());
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
            assert!(ix.recipients(s).is_empty());
        }
        assert_eq!(ix.count(2), 0);
        assert_eq!(ix.classes.len(), 0);
    }

    #[test]
    fn redefining_a_group_moves_its_subscribers() {
        let mut ix = Index::default();
        ix.set_group("g".into(), vec![1, 2]);
        ix.subscribe(1, &group("g"));
        ix.subscribe(1, &syms(&[2]));
        let gained = ix.set_group("g".into(), vec![3]);
        assert_eq!(gained, vec![(1, vec![3])]);
        assert!(ix.recipients(1).is_empty());
        assert_eq!(ix.recipients(2), vec![1], "direct subscription survives");
        assert_eq!(ix.recipients(3), vec![1]);
        assert_eq!(ix.remove_group("g"), vec![1]);
        assert!(ix.recipients(3).is_empty());
        assert!(!ix.has_group("g"));
    }

    #[test]
    fn a_symbol_added_to_a_group_reaches_its_subscribers_once() {
        let mut ix = Index::default();
        ix.set_group("g".into(), vec![1]);
        ix.subscribe(1, &group("g"));
        ix.subscribe(2, &group("g"));
        ix.subscribe(2, &syms(&[5]));
        ix.subscribe(3, &syms(&[5]));
        assert_eq!(ix.add_to_group("g", 5), vec![1], "2 had it already");
        assert_eq!(ix.recipients(5), vec![1, 2, 3]);
        assert_eq!(ix.group_list(), vec![("g".to_string(), 2)]);
        assert!(ix.add_to_group("g", 5).is_empty(), "held already");
        assert!(ix.add_to_group("nope", 6).is_empty());
        ix.unsubscribe(1, &group("g"));
        assert_eq!(ix.recipients(5), vec![2, 3]);
    }

    #[test]
    fn pending_batches_hold_tick_indices_and_their_bytes_and_start_once() {
        let mut ix = Index::default();
        ix.subscribe(1, &syms(&[5]));
        ix.subscribe(2, &syms(&[5, 6]));
        ix.subscribe(3, &syms(&[5, 6]));
        let mut started = Vec::new();
        assert_eq!(ix.push_pending(5, 0, 10, 7, &mut started), 1);
        assert_eq!(started.len(), 2, "{{5}} and {{5,6}} begin a batch");
        assert_eq!(ix.push_pending(6, 1, 30, 8, &mut started), 2);
        assert_eq!(started.len(), 2, "a begun batch is not started again");
        let solo = ix.conns[1].1.unwrap();
        let pair = ix.conns[2].1.unwrap();
        let (a, b) = (ix.class(solo).unwrap(), ix.class(pair).unwrap());
        assert_eq!(
            (a.sole, &a.pending, a.pending_bytes, a.pending_since),
            (Some(1), &vec![0], 10, 7)
        );
        assert_eq!(
            (b.sole, &b.pending, b.pending_bytes, b.pending_since),
            (None, &vec![0, 1], 40, 7)
        );
        // 3 leaves mid-turn: {5,6} now has one member, and its batch goes on.
        ix.remove(3);
        assert_eq!(ix.class(pair).unwrap().sole, Some(2));
        assert_eq!(ix.push_pending(6, 2, 5, 9, &mut started), 3);
        // Flushed, the next batch starts over: new first `ts`, bytes from 0.
        ix.class_mut(pair).unwrap().pending.clear();
        let mut started = Vec::new();
        ix.push_pending(6, 3, 5, 11, &mut started);
        assert_eq!(started, vec![pair]);
        let b = ix.class(pair).unwrap();
        assert_eq!((b.pending_bytes, b.pending_since), (5, 11));
    }

    /// Heap bytes per connection of an index holding `conns` connections,
    /// each with its own `k` random symbols of `universe` (one class
    /// each: the watchlist workloads of issue 11).
    fn weigh(conns: u32, k: usize, universe: u32) -> isize {
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut pick = |n: u32| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % u64::from(n)) as SymId
        };
        let lists: Vec<Selection> = (0..conns)
            .map(|_| {
                let mut s = Selection::default();
                while s.symbols.len() < k {
                    s.symbols.push(pick(universe));
                    s.normalize();
                }
                s
            })
            .collect();
        let before = crate::test_alloc::live_bytes();
        let mut ix = Index::default();
        for (key, sel) in lists.iter().enumerate() {
            ix.subscribe(key as ConnKey, sel);
        }
        let bytes = crate::test_alloc::live_bytes() - before;
        assert_eq!(ix.classes.len(), conns as usize, "one class each");
        bytes / conns as isize
    }

    /// Prints what the index takes per connection (`cargo test --lib
    /// index_memory -- --nocapture`) and fails if it grows past a bound
    /// well above it. Idle connections (no subscription) take nothing.
    #[test]
    fn index_memory_per_connection() {
        for (conns, k, universe, bound) in [
            (1000, 10, 100, 2048),
            (1000, 50, 2000, 6144),
            (1000, 100, 10_000, 12_288),
        ] {
            let per_conn = weigh(conns, k, universe);
            println!(
                "index: {conns} connections x random {k} of {universe} symbols: \
                 {per_conn} bytes per connection"
            );
            assert!(per_conn < bound, "{per_conn} bytes per connection");
        }
    }

    #[test]
    fn count_after_counts_only_new_subscriptions() {
        let mut ix = Index::default();
        ix.subscribe(1, &syms(&[1, 2]));
        assert_eq!(ix.count_after(1, &syms(&[2, 3])), 3);
        assert_eq!(ix.count_after(1, &star()), 3);
    }
}
