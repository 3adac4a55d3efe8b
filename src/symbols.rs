//! The process-wide symbol table: symbol name <-> dense [`SymId`].
//!
//! Shards index subscriptions and last values by `SymId` in plain vectors,
//! so the tick path never hashes a string. The table only grows; it is
//! written when a symbol is first seen (by the publisher, by a group
//! definition, or by a subscription to a not-yet-seen symbol) and read under
//! a shared lock otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

/// A symbol's index in the [`SymbolTable`].
pub(crate) type SymId = u32;

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
}
