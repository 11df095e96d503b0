//! The symbol table: every symbol the broker has seen, its last `seq` and
//! its latest tick (the snapshot a new subscriber gets).
//!
//! Symbols are interned once into dense ids so that everything downstream
//! (fan-out lists, conflation tables) indexes a vector instead of hashing a
//! string. The table is bounded ([`MAX_SYMBOLS`]): neither a publisher
//! inventing names nor a client subscribing to them can grow it for ever.
//! It lives inside the hub's state, under the hub's lock.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;

/// Index of a symbol in the table.
pub type SymbolId = u32;

/// The most distinct symbols the broker tracks; past it, ticks of new symbols
/// are rejected and subscriptions to unknown ones refused.
pub const MAX_SYMBOLS: usize = 100_000;

/// One symbol.
#[derive(Debug)]
pub struct Symbol {
    /// Its name.
    pub name: Arc<str>,
    /// The `seq` of the last tick accepted (0: none yet).
    pub last_seq: u64,
    /// The latest tick's frame, sent as the snapshot on subscribe.
    pub latest: Option<Bytes>,
    /// The publication position of `latest` (see `Hub`).
    pub latest_pos: u64,
}

/// Every known symbol, by name and by id.
#[derive(Debug, Default)]
pub struct SymbolTable {
    ids: HashMap<Arc<str>, SymbolId>,
    symbols: Vec<Symbol>,
}

impl SymbolTable {
    /// The id of `name`, if known.
    pub fn id(&self, name: &str) -> Option<SymbolId> {
        self.ids.get(name).copied()
    }

    /// The id of `name`, adding it if new; `None` when the table is full.
    pub fn intern(&mut self, name: &str) -> Option<SymbolId> {
        if let Some(id) = self.id(name) {
            return Some(id);
        }
        if self.symbols.len() >= MAX_SYMBOLS {
            return None;
        }
        let id = self.symbols.len() as SymbolId;
        let name: Arc<str> = Arc::from(name);
        self.ids.insert(name.clone(), id);
        self.symbols.push(Symbol {
            name,
            last_seq: 0,
            latest: None,
            latest_pos: 0,
        });
        Some(id)
    }

    /// Whether `more` new symbols would still fit.
    pub fn has_room_for(&self, more: usize) -> bool {
        self.symbols.len() + more <= MAX_SYMBOLS
    }

    /// The symbol with id `id` (ids come from this table).
    pub fn get(&self, id: SymbolId) -> &Symbol {
        &self.symbols[id as usize]
    }

    /// The symbol with id `id`, to update.
    pub fn get_mut(&mut self, id: SymbolId) -> &mut Symbol {
        &mut self.symbols[id as usize]
    }

    /// How many symbols are known.
    pub fn len(&self) -> usize {
        self.symbols.len()
    }

    /// Whether no symbol is known.
    pub fn is_empty(&self) -> bool {
        self.symbols.is_empty()
    }

    /// Every symbol, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Symbol> {
        self.symbols.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_dense_ids_and_the_table_is_bounded() {
        let mut table = SymbolTable::default();
        assert_eq!(table.intern("AAPL"), Some(0));
        assert_eq!(table.intern("MSFT"), Some(1));
        assert_eq!(table.intern("AAPL"), Some(0));
        assert_eq!(table.id("MSFT"), Some(1));
        assert_eq!(table.id("IBM"), None);
        assert_eq!(&*table.get(1).name, "MSFT");
        for i in table.len()..MAX_SYMBOLS {
            assert!(table.intern(&format!("S{i}")).is_some());
        }
        assert!(!table.has_room_for(1));
        assert_eq!(table.intern("ONE-TOO-MANY"), None);
        assert_eq!(table.intern("AAPL"), Some(0), "known names still resolve");
    }
}
