//! Who is subscribed to what: the one owner of subscription state.
//!
//! Two views of the same facts live here and nowhere else, so they cannot
//! drift apart:
//!
//! - per connection, the topics it holds (the `subscribed` ack lists them);
//! - per symbol and writer shard, the slots of its subscribers, and per
//!   shard the slots on `*`: what a published tick is delivered to.
//!
//! A subscriber list is an immutable `Arc<[u32]>`. Publishing a tick clones
//! the handles of its symbol's list and of the `*` list into the tick (two
//! reference-count bumps), and the writer delivers it to exactly those
//! slots, however late it gets to it. A change builds a new list and swaps
//! it in; ticks already on their way keep the list they were published
//! with. That is what makes a subscription change take effect between two
//! publications with no per-connection filter on the writer's side: a tick
//! published before a subscribe does not reach the new subscriber, one
//! published after an unsubscribe does not reach the old one. Rebuilding a
//! list costs one copy of it (4 bytes a subscriber), paid by the rare
//! subscribe, never by the per-tick path.
//!
//! A connection on `*` is in the `*` list only, not in its symbols' lists,
//! so it gets each tick once.
//!
//! **Entitlements.** A subscribe names the connection's entitlements
//! (`auth/entitlements.rs`); a named topic outside them refuses the whole
//! request (`not_entitled`). A connection on `*` entitled to everything is
//! in the `*` list as above. One entitled to a subset is *not*: it is put in
//! the list of each entitled symbol instead, resolved once per symbol —
//! for every known symbol when it subscribes to `*`, and for a new symbol
//! when the symbol first appears ([`Subscriptions::on_new_symbol`], called
//! wherever a symbol is interned). So the per-tick path stays exactly as it
//! is: a tick carries its symbol's list and the `*` list, and no pattern is
//! ever checked per tick or per delivery. What it costs instead: one
//! pattern check per (restricted `*` connection, new symbol), and at a `*`
//! subscribe one check and one list copy per known symbol, under the hub's
//! lock (100,000 symbols × a copy of a few slots: milliseconds, paid once,
//! where a check per tick per subscriber would be paid millions of times a
//! second). A restricted `*` subscriber's snapshot is its entitled symbols
//! only, and its memberships are kept (`joined`) so leaving `*` or going
//! away leaves exactly those lists.
//!
//! Locking: a `Subscriptions` sits inside the hub's state, under the hub's
//! lock, and only the hub calls it. It takes no lock of its own and holds
//! nothing that anyone else mutates.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use tickcast_protocol::control::{ErrorCode, RequestError};
use tickcast_protocol::WILDCARD;

use crate::auth::entitlements::Entitlements;
use crate::fanout::symbols::{SymbolId, SymbolTable};

/// Where a connection sits: its writer shard and its slot in that shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// The writer shard.
    pub shard: u32,
    /// The connection's slot in the shard.
    pub slot: u32,
}

/// The subscribers of one symbol (or of `*`) in one shard, as slots.
pub type Slots = Arc<[u32]>;

/// What a successful subscribe changed.
#[derive(Debug, PartialEq, Eq)]
pub struct Subscribed {
    /// The connection's whole subscription, sorted (the ack).
    pub topics: Vec<String>,
    /// The latest ticks it must be sent before any live one.
    pub snapshot: Snapshot,
}

/// Which symbols' latest ticks a subscribe must send.
#[derive(Debug, PartialEq, Eq)]
pub enum Snapshot {
    /// These symbols, new to the connection.
    Symbols(Vec<SymbolId>),
    /// Newly on `*`: every symbol except these (sorted), which it held before
    /// and already has.
    AllExcept(Vec<SymbolId>),
}

/// The subscription table (see the module docs).
#[derive(Debug)]
pub struct Subscriptions {
    shards: usize,
    /// `by_symbol[sym * shards + shard]`: that symbol's subscribers in that
    /// shard that are not on `*`.
    by_symbol: Vec<Option<Slots>>,
    /// Per shard: the subscribers on `*`.
    wildcard: Vec<Option<Slots>>,
    /// What each connection holds, by name (`*` included).
    topics: HashMap<Route, BTreeSet<Arc<str>>>,
    /// Connections on `*` entitled to a subset (see the module docs).
    restricted: HashMap<Route, Restricted>,
}

/// A connection on `*` whose entitlements are a subset.
#[derive(Debug)]
struct Restricted {
    access: Arc<Entitlements>,
    /// Every symbol whose list it is in (all its entitled, known symbols).
    joined: Vec<SymbolId>,
}

impl Subscriptions {
    /// An empty table for `shards` writer shards.
    pub fn new(shards: usize) -> Self {
        Self {
            shards,
            by_symbol: Vec::new(),
            wildcard: vec![None; shards],
            topics: HashMap::new(),
            restricted: HashMap::new(),
        }
    }

    /// A symbol was just added to the table: each connection on `*` with
    /// entitlements that cover it joins its lists (one check each).
    pub fn on_new_symbol(&mut self, table: &SymbolTable, sym: SymbolId) {
        let name = &table.get(sym).name;
        for (route, r) in &mut self.restricted {
            if r.access.allows(name) {
                join_at(&mut self.by_symbol, self.shards, sym, *route);
                r.joined.push(sym);
            }
        }
    }

    /// Interns `name`, telling [`Self::on_new_symbol`] if it is new.
    pub fn intern(&mut self, table: &mut SymbolTable, name: &str) -> Option<SymbolId> {
        let before = table.len();
        let id = table.intern(name)?;
        if table.len() > before && !self.restricted.is_empty() {
            self.on_new_symbol(table, id);
        }
        Some(id)
    }

    /// The subscribers of `sym` in `shard` that are not on `*`.
    #[inline]
    pub fn of_symbol(&self, sym: SymbolId, shard: usize) -> Option<&Slots> {
        self.by_symbol
            .get(sym as usize * self.shards + shard)
            .and_then(Option::as_ref)
    }

    /// The subscribers on `*` in `shard`.
    #[inline]
    pub fn of_wildcard(&self, shard: usize) -> Option<&Slots> {
        self.wildcard[shard].as_ref()
    }

    /// Adds `topics` to a connection's subscription, within `access` (its
    /// entitlements). All or nothing: on an error nothing changes. New
    /// symbols are interned into `table`.
    pub fn subscribe(
        &mut self,
        table: &mut SymbolTable,
        route: Route,
        topics: &[String],
        max_topics: usize,
        access: &Arc<Entitlements>,
    ) -> Result<Subscribed, RequestError> {
        let current = self.topics.get(&route);
        let fresh: BTreeSet<&str> = topics
            .iter()
            .map(String::as_str)
            .filter(|t| current.is_none_or(|c| !c.contains(*t)))
            .collect();
        let held = current.map_or(0, BTreeSet::len);
        if held + fresh.len() > max_topics {
            return Err(RequestError::new(
                ErrorCode::TooManyTopics,
                format!(
                    "subscribing to {} more topics would exceed the limit of {max_topics} per connection (holding {held})",
                    fresh.len()
                ),
            ));
        }
        let refused: Vec<&str> = fresh
            .iter()
            .copied()
            .filter(|t| *t != WILDCARD && !access.allows(t))
            .collect();
        if !refused.is_empty() {
            let shown: Vec<&str> = refused.iter().copied().take(4).collect();
            let more = if refused.len() > shown.len() {
                ", …"
            } else {
                ""
            };
            return Err(RequestError::new(
                ErrorCode::NotEntitled,
                format!("not entitled to {}{more}", shown.join(", ")),
            ));
        }
        let unknown = fresh
            .iter()
            .filter(|t| **t != WILDCARD && table.id(t).is_none())
            .count();
        if !table.has_room_for(unknown) {
            return Err(RequestError::new(
                ErrorCode::UnknownSymbol,
                "the broker's symbol table is full; subscribe to symbols the feed publishes",
            ));
        }
        let was_wildcard = self.is_wildcard(route);
        let now_wildcard = was_wildcard || fresh.contains(WILDCARD);
        let onto_wildcard = now_wildcard && !was_wildcard;
        let restrict = onto_wildcard && !access.is_all();
        let mut held_before = Vec::new();
        if onto_wildcard && !restrict {
            // Its per-symbol lists would deliver each tick a second time.
            held_before = self.held_symbols(table, route);
            for &id in &held_before {
                self.leave_symbol(id, route);
            }
            join(&mut self.wildcard[route.shard as usize], route.slot);
        } else if restrict {
            held_before = self.held_symbols(table, route);
        }
        let mut added = Vec::new();
        for topic in fresh {
            if topic == WILDCARD {
                self.topics
                    .entry(route)
                    .or_default()
                    .insert(Arc::from(WILDCARD));
                continue;
            }
            // Room was checked above.
            let Some(id) = self.intern(table, topic) else {
                continue;
            };
            if !now_wildcard {
                self.join_symbol(id, route);
            }
            let name = table.get(id).name.clone();
            self.topics.entry(route).or_default().insert(name);
            added.push(id);
        }
        let snapshot = if restrict {
            Snapshot::Symbols(self.enter_restricted(table, route, access, &held_before))
        } else if onto_wildcard {
            held_before.sort_unstable();
            Snapshot::AllExcept(held_before)
        } else if was_wildcard {
            Snapshot::Symbols(Vec::new())
        } else {
            Snapshot::Symbols(added)
        };
        Ok(Subscribed {
            topics: self.list(route),
            snapshot,
        })
    }

    /// Removes `topics` from a connection's subscription (those it does not
    /// hold are ignored) and returns what it still holds, sorted.
    pub fn unsubscribe(
        &mut self,
        table: &SymbolTable,
        route: Route,
        topics: &[String],
    ) -> Vec<String> {
        let was_wildcard = self.is_wildcard(route);
        let Some(list) = self.topics.get_mut(&route) else {
            return Vec::new();
        };
        let removed: Vec<&String> = topics.iter().filter(|t| list.remove(t.as_str())).collect();
        let mut off_restricted = false;
        for topic in removed {
            if topic == WILDCARD {
                match self.restricted.remove(&route) {
                    Some(r) => {
                        // Off a restricted `*`: out of every list but those
                        // of the symbols it still holds by name.
                        off_restricted = true;
                        let held = self.topics.get(&route);
                        for id in r.joined {
                            let name = &table.get(id).name;
                            if !held.is_some_and(|h| h.contains(name)) {
                                leave_at(&mut self.by_symbol, self.shards, id, route);
                            }
                        }
                    }
                    None => leave(&mut self.wildcard[route.shard as usize], route.slot),
                }
            } else if let (Some(id), false) = (table.id(topic), was_wildcard) {
                self.leave_symbol(id, route);
            }
        }
        if was_wildcard && !self.is_wildcard(route) && !off_restricted {
            // Off `*`: the symbols it still holds get it back.
            for id in self.held_symbols(table, route) {
                self.join_symbol(id, route);
            }
        }
        let remaining = self.list(route);
        if remaining.is_empty() {
            self.topics.remove(&route);
        }
        remaining
    }

    /// Forgets a connection entirely (it is going away).
    pub fn remove(&mut self, table: &SymbolTable, route: Route) {
        if let Some(r) = self.restricted.remove(&route) {
            for id in r.joined {
                self.leave_symbol(id, route);
            }
        } else if self.is_wildcard(route) {
            leave(&mut self.wildcard[route.shard as usize], route.slot);
        } else {
            for id in self.held_symbols(table, route) {
                self.leave_symbol(id, route);
            }
        }
        self.topics.remove(&route);
    }

    fn is_wildcard(&self, route: Route) -> bool {
        self.topics
            .get(&route)
            .is_some_and(|t| t.contains(WILDCARD))
    }

    /// The symbols a connection holds by name (not `*`).
    fn held_symbols(&self, table: &SymbolTable, route: Route) -> Vec<SymbolId> {
        self.topics
            .get(&route)
            .into_iter()
            .flatten()
            .filter_map(|name| table.id(name))
            .collect()
    }

    fn list(&self, route: Route) -> Vec<String> {
        self.topics
            .get(&route)
            .into_iter()
            .flatten()
            .map(|t| t.to_string())
            .collect()
    }

    fn join_symbol(&mut self, sym: SymbolId, route: Route) {
        join_at(&mut self.by_symbol, self.shards, sym, route);
    }

    fn leave_symbol(&mut self, sym: SymbolId, route: Route) {
        leave_at(&mut self.by_symbol, self.shards, sym, route);
    }

    /// Puts a connection onto a restricted `*`: into the list of every
    /// known symbol `access` allows that it does not already hold by name
    /// (`held`, in those lists already). Returns those symbols: its
    /// snapshot.
    fn enter_restricted(
        &mut self,
        table: &SymbolTable,
        route: Route,
        access: &Arc<Entitlements>,
        held: &[SymbolId],
    ) -> Vec<SymbolId> {
        let mut joined = Vec::new();
        let mut fresh = Vec::new();
        // Ids are positions in the table.
        for (id, s) in (0..).zip(table.iter()) {
            if !access.allows(&s.name) {
                continue;
            }
            joined.push(id);
            if !held.contains(&id) {
                self.join_symbol(id, route);
                fresh.push(id);
            }
        }
        self.restricted.insert(
            route,
            Restricted {
                access: access.clone(),
                joined,
            },
        );
        fresh
    }

    /// Changes a connection's entitlements (a renewed token): named topics
    /// they no longer allow are dropped, and a `*` is re-resolved against
    /// them. Returns the topics it now holds and the symbols it must get a
    /// snapshot of (newly covered by its `*`).
    pub fn regrant(
        &mut self,
        table: &mut SymbolTable,
        route: Route,
        old: &Entitlements,
        access: &Arc<Entitlements>,
    ) -> (Vec<String>, Vec<SymbolId>) {
        let held = self.list(route);
        let was_wildcard = self.is_wildcard(route);
        self.remove(table, route);
        let kept: Vec<String> = held
            .into_iter()
            .filter(|t| t == WILDCARD || access.allows(t))
            .collect();
        // Every kept topic is allowed and known, and fewer than before:
        // this cannot fail.
        let _ = self.subscribe(table, route, &kept, usize::MAX, access);
        let newly = if was_wildcard {
            (0..)
                .zip(table.iter())
                .filter(|(_, s)| access.allows(&s.name) && !old.allows(&s.name))
                .map(|(id, _)| id)
                .collect()
        } else {
            Vec::new()
        };
        (self.list(route), newly)
    }
}

fn join_at(by_symbol: &mut Vec<Option<Slots>>, shards: usize, sym: SymbolId, route: Route) {
    let at = sym as usize * shards + route.shard as usize;
    if by_symbol.len() <= at {
        by_symbol.resize((sym as usize + 1) * shards, None);
    }
    join(&mut by_symbol[at], route.slot);
}

fn leave_at(by_symbol: &mut [Option<Slots>], shards: usize, sym: SymbolId, route: Route) {
    let at = sym as usize * shards + route.shard as usize;
    if let Some(list) = by_symbol.get_mut(at) {
        leave(list, route.slot);
    }
}

/// Swaps in a copy of `list` with `slot` added.
fn join(list: &mut Option<Slots>, slot: u32) {
    let mut slots: Vec<u32> = list.as_deref().unwrap_or_default().to_vec();
    slots.push(slot);
    *list = Some(Slots::from(slots));
}

/// Swaps in a copy of `list` without `slot` (none once it is empty).
fn leave(list: &mut Option<Slots>, slot: u32) {
    let Some(slots) = list.as_deref() else {
        return;
    };
    if !slots.contains(&slot) {
        return;
    }
    let rest: Vec<u32> = slots.iter().copied().filter(|s| *s != slot).collect();
    *list = (!rest.is_empty()).then(|| Slots::from(rest));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(list: &[&str]) -> Vec<String> {
        list.iter().map(|t| t.to_string()).collect()
    }

    fn slots(list: Option<&Slots>) -> Vec<u32> {
        list.map(|s| s.to_vec()).unwrap_or_default()
    }

    fn all() -> Arc<Entitlements> {
        Arc::new(Entitlements::All)
    }

    const A: Route = Route { shard: 0, slot: 4 };
    const B: Route = Route { shard: 1, slot: 4 };

    #[test]
    fn both_views_follow_every_change_and_wildcard_holders_are_listed_once() {
        let mut table = SymbolTable::default();
        let mut subs = Subscriptions::new(2);
        let got = subs
            .subscribe(&mut table, A, &topics(&["S2", "S1"]), 10, &all())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(got.topics, ["S1", "S2"]);
        assert_eq!(got.snapshot, Snapshot::Symbols(vec![0, 1]));
        let s1 = table.id("S1").unwrap_or_default();
        subs.subscribe(&mut table, B, &topics(&["S1"]), 10, &all())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(slots(subs.of_symbol(s1, 0)), [4]);
        assert_eq!(slots(subs.of_symbol(s1, 1)), [4]);

        // Onto `*`: out of its symbols' lists, into the shard's `*` list;
        // the snapshot is everything it did not hold.
        let before = subs.of_symbol(s1, 0).cloned();
        let got = subs
            .subscribe(&mut table, A, &topics(&["*", "S3"]), 10, &all())
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(got.topics, ["*", "S1", "S2", "S3"]);
        assert_eq!(got.snapshot, Snapshot::AllExcept(vec![0, 1]));
        assert_eq!(slots(subs.of_symbol(s1, 0)), Vec::<u32>::new());
        assert_eq!(slots(subs.of_wildcard(0)), [4]);
        assert_eq!(slots(subs.of_wildcard(1)), Vec::<u32>::new());
        // A tick published before the change keeps the list it had.
        assert_eq!(slots(before.as_ref()), [4]);

        // Off `*`: back into the lists of what it still holds.
        let left = subs.unsubscribe(&table, A, &topics(&["*", "S2", "NOT-HELD"]));
        assert_eq!(left, ["S1", "S3"]);
        assert_eq!(slots(subs.of_wildcard(0)), Vec::<u32>::new());
        assert_eq!(slots(subs.of_symbol(s1, 0)), [4]);
        let s3 = table.id("S3").unwrap_or_default();
        assert_eq!(slots(subs.of_symbol(s3, 0)), [4]);

        subs.remove(&table, A);
        assert_eq!(slots(subs.of_symbol(s1, 0)), Vec::<u32>::new());
        assert_eq!(
            slots(subs.of_symbol(s1, 1)),
            [4],
            "the other shard's is kept"
        );
        assert_eq!(
            subs.unsubscribe(&table, A, &topics(&["S1"])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn limits_refuse_the_whole_request() {
        let mut table = SymbolTable::default();
        let mut subs = Subscriptions::new(1);
        subs.subscribe(&mut table, A, &topics(&["S1", "S2"]), 3, &all())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let err = subs
            .subscribe(&mut table, A, &topics(&["S1", "S3", "S4"]), 3, &all())
            .err();
        assert_eq!(err.map(|e| e.code), Some(ErrorCode::TooManyTopics));
        assert_eq!(table.id("S3"), None, "nothing was interned");
        assert_eq!(subs.list(A), ["S1", "S2"]);
    }
}
