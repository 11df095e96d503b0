//! A writer shard's window of recent frames: what it took from its inbox
//! and has not finished delivering.
//!
//! Each frame is stored once, whatever the number of its recipients, and a
//! recipient's pending list holds its position here (4 bytes), not a clone
//! of the frame: a clone is an atomic reference-count bump and a drop, on
//! a cache line the other shards touch too, per delivery. Positions are
//! `u32` counters that may wrap; a window never holds anywhere near 2³²
//! frames.

use bytes::Bytes;

use crate::fanout::symbols::SymbolId;

/// What a frame is: the outbox applies its policies to ticks, and the
/// reply budget (`replies.rs`) charges replies until they are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A tick of this symbol (a snapshot, a replayed or a live one).
    Tick(SymbolId),
    /// A reply the client asked for: an ack, a pong, an error, a resume's
    /// `recovered` or `reset`.
    Reply,
    /// A notice the broker sends of its own accord (a `gap`, a feed
    /// restart's `reset`): not charged; at most one per symbol per event.
    Notice,
}

impl Kind {
    /// The symbol, for a tick.
    #[inline]
    pub fn sym(self) -> Option<SymbolId> {
        match self {
            Kind::Tick(sym) => Some(sym),
            _ => None,
        }
    }
}

/// One frame of the window.
#[derive(Debug, Clone)]
pub struct Frame {
    /// The complete WebSocket frame.
    pub bytes: Bytes,
    /// What it is.
    pub kind: Kind,
    /// When it was published, ns since the epoch (0: not measured).
    pub enqueued_ns: u64,
}

/// Recent frames, by position.
#[derive(Debug, Default)]
pub struct Window {
    /// The position of `frames[0]`.
    base: u32,
    frames: Vec<Frame>,
}

impl Window {
    /// Appends a frame and returns its position.
    pub fn push(&mut self, frame: Frame) -> u32 {
        let at = self.end();
        self.frames.push(frame);
        at
    }

    /// The frame at `at` (a position this window returned and still holds).
    #[inline]
    pub fn get(&self, at: u32) -> &Frame {
        &self.frames[at.wrapping_sub(self.base) as usize]
    }

    /// The position the next frame will get.
    pub fn end(&self) -> u32 {
        self.base.wrapping_add(self.frames.len() as u32)
    }

    /// Forgets the frames before position `at`.
    pub fn drop_before(&mut self, at: u32) {
        let n = (at.wrapping_sub(self.base) as usize).min(self.frames.len());
        self.frames.drain(..n);
        self.base = self.base.wrapping_add(n as u32);
    }

    /// How many frames it holds.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u8) -> Frame {
        Frame {
            bytes: Bytes::from(vec![n]),
            kind: Kind::Notice,
            enqueued_ns: 0,
        }
    }

    #[test]
    fn positions_survive_dropping_the_front_and_wrapping() {
        let mut w = Window {
            base: u32::MAX - 1,
            frames: Vec::new(),
        };
        let a = w.push(frame(1));
        let b = w.push(frame(2));
        let c = w.push(frame(3));
        assert_eq!(c, 0, "wrapped");
        w.drop_before(b);
        assert_eq!((w.len(), w.get(b).bytes[0], w.get(c).bytes[0]), (2, 2, 3));
        assert_ne!(a, b);
        w.drop_before(w.end());
        assert!(w.is_empty());
        assert_eq!(w.push(frame(4)), 1);
    }
}
