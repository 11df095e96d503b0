//! A connection's rate caps: `"max_rate": R` on a subscribe sends that
//! connection at most R ticks a second of each symbol of the request, each
//! the latest when it goes, and the last tick of a burst within 1/R of it.
//!
//! Per capped symbol it keeps the time the next tick may go and at most
//! one tick held back (a later one replaces it, and the replaced `seq`
//! goes into the symbol's `gap` account with reason `rate_capped`). A tick
//! that arrives when the symbol may send goes at once, so a quiet symbol
//! is never delayed; a held one goes when its time comes (the writer wakes
//! for [`Pace::next_due`]). Memory: one entry per capped symbol.
//!
//! The caps belong to the connection's outbox (writer-owned, no lock); the
//! hub sends each change through the shard's inbox in order with the
//! subscribe's ack, so a cap applies from the first tick after the ack,
//! snapshot included. A connection without caps never looks here: the
//! outbox checks [`Pace::is_active`] once per visit.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::fanout::frame;
use crate::fanout::gaps::Skips;
use crate::fanout::symbols::SymbolId;

/// A change of a connection's caps, in inbox order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaceChange {
    /// The symbols named by the request.
    pub syms: Vec<SymbolId>,
    /// Whether it named `*` (the cap of every symbol not named on its own).
    pub wildcard: bool,
    /// The new interval (`None`: uncapped); ignored when `forget`.
    pub every: Option<Duration>,
    /// An unsubscribe: forget these symbols' caps and what they hold.
    pub forget: bool,
}

/// A tick held back by a cap.
#[derive(Debug)]
pub struct HeldTick {
    /// Its symbol.
    pub sym: SymbolId,
    /// Its frame.
    pub frame: Bytes,
    /// When it was published, ns since the Unix epoch.
    pub enqueued_ns: u64,
    /// Its symbol's name (for the `gap` notice).
    pub name: String,
    /// The ticks it replaced.
    pub skips: Skips,
}

#[derive(Debug)]
struct Capped {
    /// When the next tick may go.
    next: Instant,
    held: Option<HeldTick>,
}

/// What [`Pace::admit`] decided for a tick.
#[derive(Debug, PartialEq, Eq)]
pub enum Admit {
    /// Uncapped, or its time has come: send it now.
    Send,
    /// Held back until its time comes.
    Held,
    /// Held back, replacing an earlier held tick (counted as rate-capped).
    Replaced,
}

/// A connection's caps (see the module docs).
#[derive(Debug, Default)]
pub struct Pace {
    /// Per symbol named in a capped request: its interval (`None`:
    /// explicitly uncapped, even under a capped `*`).
    explicit: HashMap<SymbolId, Option<Duration>>,
    /// The interval of symbols not named, under a capped `*`.
    wildcard: Option<Duration>,
    capped: HashMap<SymbolId, Capped>,
    active: bool,
}

impl Pace {
    /// Whether any cap is set.
    #[inline]
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Applies a change: a held tick of a symbol now uncapped is due at
    /// once; one of a forgotten symbol is dropped.
    pub fn apply(&mut self, change: &PaceChange, now: Instant) {
        for &sym in &change.syms {
            if change.forget {
                self.explicit.remove(&sym);
                self.capped.remove(&sym);
            } else {
                self.explicit.insert(sym, change.every);
                self.retime(sym, change.every, now);
            }
        }
        if change.wildcard {
            if change.forget {
                self.wildcard = None;
                let explicit = &self.explicit;
                self.capped.retain(|sym, _| explicit.contains_key(sym));
            } else {
                self.wildcard = change.every;
                let unnamed: Vec<SymbolId> = self
                    .capped
                    .keys()
                    .copied()
                    .filter(|s| !self.explicit.contains_key(s))
                    .collect();
                for sym in unnamed {
                    self.retime(sym, change.every, now);
                }
            }
        }
        self.active = self.any_cap() || self.next_due().is_some();
    }

    fn any_cap(&self) -> bool {
        self.wildcard.is_some() || self.explicit.values().any(Option::is_some)
    }

    /// A symbol's cap changed: a held tick goes at once if it is now
    /// uncapped, or by the new interval.
    fn retime(&mut self, sym: SymbolId, every: Option<Duration>, now: Instant) {
        if let Some(c) = self.capped.get_mut(&sym) {
            match every {
                None => c.next = now,
                Some(every) => c.next = c.next.min(now + every),
            }
        }
    }

    fn interval(&self, sym: SymbolId) -> Option<Duration> {
        match self.explicit.get(&sym) {
            Some(every) => *every,
            None => self.wildcard,
        }
    }

    /// A tick of `sym` arrives at `now`: send it, or hold it back.
    pub fn admit(&mut self, sym: SymbolId, frame: &Bytes, enqueued_ns: u64, now: Instant) -> Admit {
        let Some(every) = self.interval(sym) else {
            return Admit::Send;
        };
        let c = self.capped.entry(sym).or_insert(Capped {
            next: now,
            held: None,
        });
        if c.held.is_none() && now >= c.next {
            c.next = now + every;
            return Admit::Send;
        }
        match &mut c.held {
            Some(held) => {
                if let Some((_, seq)) = frame::tick_id(&held.frame) {
                    held.skips.add(seq);
                }
                held.frame = frame.clone();
                held.enqueued_ns = enqueued_ns;
                Admit::Replaced
            }
            None => {
                let name = frame::tick_id(frame).map(|(n, _)| n).unwrap_or_default();
                c.held = Some(HeldTick {
                    sym,
                    frame: frame.clone(),
                    enqueued_ns,
                    name,
                    skips: Skips::default(),
                });
                Admit::Held
            }
        }
    }

    /// Takes the held ticks whose time has come (and restarts their
    /// symbols' clocks), in symbol order.
    pub fn release_due(&mut self, now: Instant, into: &mut Vec<HeldTick>) {
        let mut due: Vec<SymbolId> = self
            .capped
            .iter()
            .filter(|(_, c)| c.held.is_some() && c.next <= now)
            .map(|(&sym, _)| sym)
            .collect();
        due.sort_unstable();
        for sym in due {
            let every = self.interval(sym);
            if let Some(c) = self.capped.get_mut(&sym) {
                if let Some(held) = c.held.take() {
                    into.push(held);
                }
                c.next = now + every.unwrap_or(Duration::ZERO);
            }
        }
        if !self.any_cap() && self.next_due().is_none() {
            // Caps lifted: nothing is held any more, forget the clocks.
            self.capped.clear();
            self.active = false;
        }
    }

    /// When the next held tick is due, if any is held.
    pub fn next_due(&self) -> Option<Instant> {
        self.capped
            .values()
            .filter(|c| c.held.is_some())
            .map(|c| c.next)
            .min()
    }

    /// Drops everything held (the connection is closing).
    pub fn clear(&mut self) {
        for c in self.capped.values_mut() {
            c.held = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickcast_protocol::Tick;

    fn tick(seq: u64) -> Bytes {
        let mut t = Tick::example();
        t.sym = "AAPL".into();
        t.seq = seq;
        frame::binary(&t.to_vec())
    }

    fn cap(syms: &[SymbolId], wildcard: bool, every_ms: Option<u64>) -> PaceChange {
        PaceChange {
            syms: syms.to_vec(),
            wildcard,
            every: every_ms.map(Duration::from_millis),
            forget: false,
        }
    }

    #[test]
    fn a_capped_symbol_sends_at_once_then_holds_the_latest_until_its_time() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.apply(&cap(&[0], false, Some(250)), t0);
        assert!(p.is_active());
        assert_eq!(p.admit(0, &tick(1), 1, t0), Admit::Send);
        assert_eq!(p.admit(1, &tick(1), 1, t0), Admit::Send, "uncapped symbol");
        assert_eq!(p.admit(0, &tick(2), 1, t0), Admit::Held);
        assert_eq!(p.admit(0, &tick(3), 1, t0), Admit::Replaced);
        assert_eq!(p.admit(0, &tick(4), 1, t0), Admit::Replaced);
        assert_eq!(p.next_due(), Some(t0 + Duration::from_millis(250)));
        let mut out = Vec::new();
        p.release_due(t0 + Duration::from_millis(100), &mut out);
        assert!(out.is_empty());
        p.release_due(t0 + Duration::from_millis(250), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(frame::tick_id(&out[0].frame).map(|x| x.1), Some(4));
        assert_eq!(out[0].skips.ranges(), &[(2, 3)]);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn a_wildcard_cap_covers_unnamed_symbols_and_uncapping_frees_what_is_held() {
        let t0 = Instant::now();
        let mut p = Pace::default();
        p.apply(&cap(&[], true, Some(1000)), t0);
        p.apply(&cap(&[5], false, None), t0);
        assert_eq!(p.admit(5, &tick(1), 1, t0), Admit::Send);
        assert_eq!(p.admit(5, &tick(2), 1, t0), Admit::Send, "named uncapped");
        assert_eq!(p.admit(7, &tick(1), 1, t0), Admit::Send);
        assert_eq!(p.admit(7, &tick(2), 1, t0), Admit::Held);
        // `*` uncapped: the held tick is due at once.
        p.apply(&cap(&[], true, None), t0);
        let mut out = Vec::new();
        p.release_due(t0, &mut out);
        assert_eq!(out.len(), 1);
        assert!(!p.is_active());
        // An unsubscribe forgets what is held.
        p.apply(&cap(&[3], false, Some(1000)), t0);
        assert_eq!(p.admit(3, &tick(1), 1, t0), Admit::Send);
        assert_eq!(p.admit(3, &tick(2), 1, t0), Admit::Held);
        p.apply(
            &PaceChange {
                forget: true,
                ..cap(&[3], false, None)
            },
            t0,
        );
        assert_eq!(p.next_due(), None);
    }
}
