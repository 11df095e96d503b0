//! Per symbol, a bounded ring of recent ticks, so a client that reconnects
//! can be sent exactly what it missed; and the epoch that names the stream
//! its positions belong to.
//!
//! The ring holds a copy of each frame the hub built for fan-out, back to
//! back in one byte queue per symbol, with each tick's `seq`, `ts`,
//! publication position and place in that queue: no re-encoding, and no
//! copy per subscriber (a resume copies the run it replays once, into one
//! buffer its frames are slices of). A copy, not the fan-out's own `Bytes`:
//! keeping that clone held each frame's allocation for 1,000 ticks and freed
//! it cold, 700–750 ns of broker CPU a tick (10–12 % of the broker at
//! 60,000 ticks/s); copying ~130 bytes into a queue that is warm costs
//! 270–370 ns, in about the same memory (benches/README, "History
//! memory"). It is bounded twice: `--history` ticks per symbol, and
//! `--history-bytes` in all, past which the oldest ticks of the whole
//! broker go first (a FIFO of positions in publication order, compacted
//! when it holds more stale entries than live ones, so it stays within
//! twice the live count).
//!
//! What a ring can prove: it holds *every* tick the broker accepted for its
//! symbol after `known_from` (the `seq` of the last tick it let go, or the
//! one before its first). A resume from `seq` S is honoured only when
//! `known_from ≤ S ≤ last seq`, and in the same epoch; anything else is
//! answered with a `reset` and its reason, never with a partial replay.
//!
//! Epochs: the broker's is random, drawn at start (16 hex digits), or
//! named (`--epoch`). A symbol whose feed restarted (`seq` 1 after a higher
//! one) starts its ring over and gets its own, the broker's with `.N` after
//! it (N restarts), so a position from before the restart can never be
//! taken for one after. An edge (`--nats-in`) does not make epochs: it
//! adopts the origin's, per symbol, as each tick brings it
//! ([`History::adopt`]), so a client's position holds on any edge.
//!
//! Lives inside the hub's state, under the hub's lock, like the symbol
//! table.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tickcast_protocol::control::{ResetReason, MAX_EPOCH_LEN};

use crate::fanout::symbols::SymbolId;

/// What one ring entry costs besides its frame's bytes, counted into
/// `--history-bytes` so the cap is the memory the history really pins: the
/// entry (32 bytes), its place in the FIFO (16, up to twice that between
/// compactions, in a queue that grows by doubling), the byte queue's eighth
/// of slack and the allocator's. Measured by `benches/history-memory.sh`
/// on 2026-12-07: 265 resident bytes a tick for 126-byte frames, so 139
/// (benches/README, "History memory").
pub const ENTRY_OVERHEAD: usize = 144;

/// One tick kept for resumes; its frame is in its ring's byte queue.
#[derive(Debug, Clone, Copy)]
struct Entry {
    /// Its `seq`.
    seq: u64,
    /// Its event time, ns since the Unix epoch.
    ts: u64,
    /// Its publication position (the hub's counter), to tell entries apart.
    pos: u64,
    /// Where its frame starts, counted in bytes ever put in the ring (so
    /// entries need no update when older frames leave the queue).
    start: u64,
}

/// One symbol's ring.
#[derive(Debug, Default)]
struct Ring {
    entries: VecDeque<Entry>,
    /// The entries' frames, back to back, oldest first.
    frames: VecDeque<u8>,
    /// Bytes ever put in `frames`: the frame of entry `i` is
    /// `frames[entries[i].start - taken() ..]` up to the next entry's start,
    /// or `put` for the last.
    put: u64,
    /// Every accepted tick after this `seq` is in `entries` (`None` before
    /// the first tick of this stream).
    known_from: Option<u64>,
    /// Feed restarts since the broker started.
    restarts: u32,
    /// The stream's own epoch, when it is not the broker's: after a restart
    /// (the broker's with `.N`), or the origin's (adopted).
    epoch: Option<Arc<str>>,
    /// In [`History::restarted`] already.
    listed: bool,
}

impl Ring {
    /// Bytes ever taken out of `frames` (what was put less what is there).
    fn taken(&self) -> u64 {
        self.put - self.frames.len() as u64
    }

    /// Where entry `i`'s frame ends, in bytes ever put.
    fn end_of(&self, i: usize) -> u64 {
        self.entries.get(i + 1).map_or(self.put, |e| e.start)
    }

    fn push(&mut self, seq: u64, ts: u64, pos: u64, frame: &[u8], per_symbol: usize) {
        // Each queue grows by an eighth once past its first 128 entries or
        // 64 KiB, not by the doubling `push_back` and `extend` do: a ring
        // wraps round its whole capacity, so every byte of that ends up
        // resident, and doubling can leave up to half of it spare. With
        // doubling the history was 321 resident bytes a tick, with an
        // eighth 265 (benches/README, "History memory").
        if self.entries.len() == self.entries.capacity() {
            let len = self.entries.len();
            let room = grown(len, len + 1, 128).min(per_symbol.max(len + 1));
            self.entries.reserve_exact(room - len);
        }
        let needed = self.frames.len() + frame.len();
        if needed > self.frames.capacity() {
            let len = self.frames.len();
            self.frames
                .reserve_exact(grown(len, needed, 64 * 1024) - len);
        }
        self.entries.push_back(Entry {
            seq,
            ts,
            pos,
            start: self.put,
        });
        self.frames.extend(frame);
        self.put += frame.len() as u64;
    }

    /// Lets go of the oldest tick; the bytes of its frame, if there was one.
    fn pop(&mut self) -> Option<usize> {
        let len = (self.end_of(0) - self.entries.front()?.start) as usize;
        let old = self.entries.pop_front()?;
        // The front of a `VecDeque<u8>`: its head moves, nothing is copied.
        self.frames.drain(..len);
        self.known_from = Some(old.seq);
        Some(len)
    }

    /// Gives memory back once the ring holds a quarter of what it has room
    /// for (after the byte cap took most of its ticks): its queues never
    /// shrink by themselves.
    fn trim(&mut self) {
        if self.frames.capacity() > 4 * self.frames.len() + 4096 {
            self.frames.shrink_to(2 * self.frames.len());
            self.entries.shrink_to(2 * self.entries.len());
        }
    }
}

/// The capacity a ring's queue of `len` grows to when it needs room for
/// `needed`: twice that while it is under `small`, an eighth more after.
fn grown(len: usize, needed: usize, small: usize) -> usize {
    if len < small {
        needed.max(2 * len)
    } else {
        needed + needed / 8
    }
}

/// The ring of a symbol that has had no tick.
static NO_TICKS: Ring = Ring {
    entries: VecDeque::new(),
    frames: VecDeque::new(),
    put: 0,
    known_from: None,
    restarts: 0,
    epoch: None,
    listed: false,
};

/// A run of one ring's newest ticks, for a resume to replay.
#[derive(Debug)]
pub struct Run<'a> {
    ring: &'a Ring,
    /// The index of its first entry.
    first: usize,
}

impl Run<'_> {
    fn empty() -> Run<'static> {
        Run {
            ring: &NO_TICKS,
            first: 0,
        }
    }

    /// Ticks in the run.
    pub fn ticks(&self) -> usize {
        self.ring.entries.len() - self.first
    }

    /// Frame bytes in the run.
    pub fn bytes(&self) -> usize {
        self.ring
            .entries
            .get(self.first)
            .map_or(0, |e| (self.ring.put - e.start) as usize)
    }

    /// The `seq` of its last tick.
    pub fn last_seq(&self) -> Option<u64> {
        self.ring
            .entries
            .range(self.first..)
            .next_back()
            .map(|e| e.seq)
    }

    /// The `seq`s of its ticks, in order (what the tests check).
    #[cfg(test)]
    fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.ring.entries.range(self.first..).map(|e| e.seq)
    }

    /// Its frames, in order: copied once into one buffer, each a slice of
    /// it.
    pub fn frames(&self) -> Vec<Bytes> {
        let ring = self.ring;
        let Some(first) = ring.entries.get(self.first) else {
            return Vec::new();
        };
        let from = (first.start - ring.taken()) as usize;
        let (a, b) = ring.frames.as_slices();
        let mut buf = BytesMut::with_capacity(self.bytes());
        if from < a.len() {
            buf.put_slice(&a[from..]);
            buf.put_slice(b);
        } else {
            buf.put_slice(&b[from - a.len()..]);
        }
        let buf = buf.freeze();
        (self.first..ring.entries.len())
            .map(|i| {
                let at = |byte: u64| (byte - first.start) as usize;
                buf.slice(at(ring.entries[i].start)..at(ring.end_of(i)))
            })
            .collect()
    }
}

/// What a resume gets: the ticks to replay, or why not.
pub type Replay<'a> = Result<Run<'a>, ResetReason>;

/// Every symbol's ring, and the bounds (see the module docs).
#[derive(Debug)]
pub struct History {
    epoch: Arc<str>,
    per_symbol: usize,
    max_bytes: usize,
    rings: Vec<Ring>,
    /// Publication order of the entries: (symbol, position). Some are stale
    /// (already let go by their ring's own bound).
    order: VecDeque<(SymbolId, u64)>,
    entries: usize,
    bytes: usize,
    /// Symbols whose feed restarted, for the acks of `*` subscribes.
    restarted: Vec<SymbolId>,
    /// The most frame bytes one subscribe may have replayed (see
    /// [`History::with_max_replay`]).
    max_replay: usize,
}

impl History {
    /// Rings of `per_symbol` ticks (0: no history), `max_bytes` in all,
    /// under a fresh random epoch.
    pub fn new(per_symbol: usize, max_bytes: usize) -> Self {
        Self::with_epoch(per_symbol, max_bytes, random_epoch())
    }

    /// [`History::new`] under a given epoch.
    pub fn with_epoch(per_symbol: usize, max_bytes: usize, epoch: String) -> Self {
        Self {
            epoch: epoch.into(),
            per_symbol: if max_bytes == 0 { 0 } else { per_symbol },
            max_bytes,
            rings: Vec::new(),
            order: VecDeque::new(),
            entries: 0,
            bytes: 0,
            restarted: Vec::new(),
            max_replay: usize::MAX,
        }
    }

    /// This history with at most `bytes` of frames replayed per subscribe:
    /// a symbol whose replay would pass it is answered `too_old` (and gets
    /// its snapshot). A client may resubscribe twenty times a second; this
    /// keeps what one request makes the broker queue to about one outbox
    /// (more would be conflated there anyway), not 1,000 ticks for each of
    /// the ~150 positions a 4 KiB request can carry.
    pub fn with_max_replay(mut self, bytes: usize) -> Self {
        self.max_replay = bytes;
        self
    }

    /// The most frame bytes one subscribe may have replayed.
    pub fn max_replay(&self) -> usize {
        self.max_replay
    }

    /// The broker's epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// Whether history is kept at all.
    pub fn enabled(&self) -> bool {
        self.per_symbol > 0
    }

    /// The epoch of `id`'s stream: the broker's, with `.N` after N feed
    /// restarts, or the one adopted from the origin.
    pub fn epoch_of(&self, id: SymbolId) -> String {
        self.epoch_str(id).to_owned()
    }

    /// [`History::epoch_of`], borrowed.
    pub fn epoch_str(&self, id: SymbolId) -> &str {
        self.rings
            .get(id as usize)
            .and_then(|r| r.epoch.as_deref())
            .unwrap_or(&self.epoch)
    }

    /// [`History::epoch_of`], shared (a reference-count bump, for the
    /// accepted-tick tap).
    pub fn epoch_shared(&self, id: SymbolId) -> Arc<str> {
        self.rings
            .get(id as usize)
            .and_then(|r| r.epoch.clone())
            .unwrap_or_else(|| self.epoch.clone())
    }

    /// Whether `id`'s epoch is its own (not the broker's).
    pub fn has_restarted(&self, id: SymbolId) -> bool {
        self.epoch_str(id) != &*self.epoch
    }

    /// Symbols that may have an epoch of their own (filter with
    /// [`History::has_restarted`]).
    pub fn restarted(&self) -> &[SymbolId] {
        &self.restarted
    }

    /// An edge takes the origin's epoch for `id` from a tick: `None` when
    /// it is the one the ring is under (or the ring's first), else the
    /// ring starts over under it and the reason subscribers are told
    /// (`feed_restart` when only the `.N` moved, `epoch` when the origin's
    /// own changed). The broker's epoch follows the origin's, so acks name
    /// it.
    pub fn adopt(&mut self, id: SymbolId, epoch: &str) -> Option<ResetReason> {
        if base(epoch) != &*self.epoch {
            self.epoch = base(epoch).into();
        }
        let ring = self.ring(id);
        if ring.epoch.as_deref() == Some(epoch) {
            return None;
        }
        let reason = match ring.epoch.as_deref() {
            None => None,
            Some(old) if base(old) == base(epoch) => Some(ResetReason::FeedRestart),
            Some(_) => Some(ResetReason::Epoch),
        };
        ring.epoch = Some(epoch.into());
        if reason.is_some() {
            self.start_over(id);
        }
        let ring = self.ring(id);
        if !ring.listed {
            ring.listed = true;
            self.restarted.push(id);
        }
        reason
    }

    /// Ticks held, in all.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// Whether no tick is held.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Bytes held, in all (frames plus [`ENTRY_OVERHEAD`] each).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn ring(&mut self, id: SymbolId) -> &mut Ring {
        let at = id as usize;
        if self.rings.len() <= at {
            self.rings.resize_with(at + 1, Ring::default);
        }
        &mut self.rings[at]
    }

    /// `id`'s feed restarted: its ring starts over, under a new epoch.
    pub fn restart(&mut self, id: SymbolId) {
        self.start_over(id);
        let broker = &self.epoch;
        let at = id as usize;
        let ring = &mut self.rings[at];
        ring.restarts += 1;
        ring.epoch = Some(format!("{broker}.{}", ring.restarts).into());
        if !ring.listed {
            ring.listed = true;
            self.restarted.push(id);
        }
    }

    /// Empties `id`'s ring (its entries left in the FIFO are stale).
    fn start_over(&mut self, id: SymbolId) {
        let ring = self.ring(id);
        let ticks = std::mem::take(&mut ring.entries).len();
        let frames = std::mem::take(&mut ring.frames).len();
        ring.known_from = None;
        self.entries -= ticks;
        self.bytes -= frames + ticks * ENTRY_OVERHEAD;
    }

    /// Keeps an accepted tick (the hub has checked its `seq`).
    pub fn record(&mut self, id: SymbolId, seq: u64, ts: u64, pos: u64, frame: &[u8]) {
        if self.per_symbol == 0 {
            return;
        }
        let per_symbol = self.per_symbol;
        let ring = self.ring(id);
        ring.known_from.get_or_insert(seq.saturating_sub(1));
        let freed = if ring.entries.len() >= per_symbol {
            ring.pop()
        } else {
            None
        };
        ring.push(seq, ts, pos, frame, per_symbol);
        match freed {
            Some(len) => self.bytes -= len + ENTRY_OVERHEAD,
            None => self.entries += 1,
        }
        self.bytes += frame.len() + ENTRY_OVERHEAD;
        self.order.push_back((id, pos));
        while self.bytes > self.max_bytes && self.evict_oldest() {}
        if self.order.len() > 2 * self.entries + 1024 {
            self.compact_order();
        }
    }

    /// Lets go of the oldest tick of the broker; false when none is left.
    fn evict_oldest(&mut self) -> bool {
        while let Some((id, pos)) = self.order.pop_front() {
            let ring = &mut self.rings[id as usize];
            if ring.entries.front().is_some_and(|e| e.pos == pos) {
                if let Some(len) = ring.pop() {
                    ring.trim();
                    self.entries -= 1;
                    self.bytes -= len + ENTRY_OVERHEAD;
                    return true;
                }
            }
        }
        false
    }

    /// Drops the FIFO's stale entries (ticks already let go by their ring).
    fn compact_order(&mut self) {
        let rings = &self.rings;
        self.order.retain(|&(id, pos)| {
            rings[id as usize]
                .entries
                .front()
                .is_some_and(|e| pos >= e.pos)
        });
    }

    /// The ticks of `id` after `seq`, if the ring holds every one of them
    /// (`last_seq`: the symbol's last accepted). The caller has checked the
    /// epoch.
    pub fn since(&self, id: SymbolId, seq: u64, last_seq: u64) -> Replay<'_> {
        if self.per_symbol == 0 {
            return Err(ResetReason::NoHistory);
        }
        if seq > last_seq {
            // A position this stream never reached.
            return Err(ResetReason::Epoch);
        }
        let Some(ring) = self.rings.get(id as usize) else {
            // No tick yet: nothing was missed only if nothing was seen.
            return if seq == 0 {
                Ok(Run::empty())
            } else {
                Err(ResetReason::Epoch)
            };
        };
        match ring.known_from {
            // Entries are in `seq` order (the hub accepts only rising ones).
            Some(known) if seq >= known => Ok(Run {
                ring,
                first: ring.entries.partition_point(|e| e.seq <= seq),
            }),
            None if seq == 0 => Ok(Run::empty()),
            _ => Err(ResetReason::TooOld),
        }
    }

    /// The ticks of `id` the ring still holds from the first with `ts` at
    /// or after `from_ts` on (a start time asks for what is there, not for
    /// proof; every tick after that one follows, in `seq` order, even if a
    /// feed's clock stepped back).
    pub fn from_ts(&self, id: SymbolId, from_ts: u64) -> Run<'_> {
        let ring = self.rings.get(id as usize).unwrap_or(&NO_TICKS);
        Run {
            ring,
            first: ring
                .entries
                .iter()
                .position(|e| e.ts >= from_ts)
                .unwrap_or(ring.entries.len()),
        }
    }

    /// Checks a client's epoch for `id` against the symbol's: `Ok` when
    /// they match, else why not (`feed_restart` when it is this broker's
    /// but from before a restart).
    pub fn check_epoch(&self, id: SymbolId, theirs: Option<&str>) -> Result<(), ResetReason> {
        let Some(theirs) = theirs else {
            return Err(ResetReason::Epoch);
        };
        let ours = self.epoch_str(id);
        if theirs == ours {
            Ok(())
        } else if base(theirs) == base(ours) {
            Err(ResetReason::FeedRestart)
        } else {
            Err(ResetReason::Epoch)
        }
    }
}

/// The broker part of an epoch (before any `.N`).
fn base(epoch: &str) -> &str {
    epoch.split('.').next().unwrap_or(epoch)
}

/// Whether `name` may be a broker's epoch (`--epoch`): 1 to 48 ASCII
/// letters, digits, `-` or `_` (no `.`: that starts a symbol's `.N`).
pub fn valid_epoch_name(name: &str) -> bool {
    (1..=48).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Whether `epoch` may be a symbol's epoch as an origin sends it: a broker
/// epoch, with `.N` after it when the symbol's feed restarted.
pub fn valid_epoch(epoch: &str) -> bool {
    epoch.len() <= MAX_EPOCH_LEN
        && match epoch.split_once('.') {
            None => valid_epoch_name(epoch),
            Some((name, n)) => {
                valid_epoch_name(name) && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
            }
        }
}

/// 64 random bits as 16 hex digits, from the process's random hasher keys
/// (std seeds them from the operating system), mixed with the time.
fn random_epoch() -> String {
    let mut h = RandomState::new().build_hasher();
    h.write_u64(tickcast_protocol::clock::now_ns());
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Bytes {
        Bytes::from(n.to_be_bytes().to_vec())
    }

    fn seqs(replay: Replay<'_>) -> Result<Vec<u64>, ResetReason> {
        replay.map(|run| run.seqs().collect())
    }

    #[test]
    fn a_run_gives_back_each_frame_as_it_was_kept() {
        // Frames of varied lengths through a ring of 5 that wraps its byte
        // queue many times over.
        let frame = |seq: u64| Bytes::from(vec![seq as u8; 1 + (seq as usize * 7) % 40]);
        let mut h = History::with_epoch(5, usize::MAX, "e".into());
        for seq in 1..=1000 {
            h.record(0, seq, seq, seq, &frame(seq));
            let run = h.since(0, seq.saturating_sub(3), seq).expect("held");
            let want: Vec<Bytes> = (seq.saturating_sub(3) + 1..=seq).map(frame).collect();
            assert_eq!(run.frames(), want, "after {seq}");
            assert_eq!(run.bytes(), want.iter().map(Bytes::len).sum::<usize>());
            assert_eq!((run.ticks(), run.last_seq()), (want.len(), Some(seq)));
        }
        let held: usize = (996..=1000).map(|s| frame(s).len()).sum();
        assert_eq!(h.bytes(), held + 5 * ENTRY_OVERHEAD);
        assert_eq!(h.from_ts(0, 999).frames(), vec![frame(999), frame(1000)]);
        assert_eq!(h.since(0, 1000, 1000).map(|r| r.frames()), Ok(vec![]));
    }

    #[test]
    fn a_full_ring_has_an_eighth_to_spare_not_twice_its_bytes() {
        // 1,000 frames of 135 bytes: 135,000, just past 128 KiB, where
        // doubling would have made room for 262,144.
        let tick = Bytes::from(vec![7u8; 135]);
        let mut h = History::with_epoch(1000, usize::MAX, "e".into());
        for seq in 1..=3000 {
            h.record(0, seq, 0, seq, &tick);
        }
        let ring = &h.rings[0];
        assert_eq!(ring.entries.len(), 1000);
        assert!(
            ring.entries.capacity() <= 1000 + 1000 / 8,
            "{}",
            ring.entries.capacity()
        );
        assert!(ring.frames.capacity() >= 135_000);
        assert!(
            ring.frames.capacity() <= 135_000 + 135_000 / 8 + 135,
            "{}",
            ring.frames.capacity()
        );
    }

    #[test]
    fn a_ring_the_byte_cap_emptied_gives_its_memory_back() {
        let big = Bytes::from(vec![0u8; 1000]);
        let mut h = History::with_epoch(1000, usize::MAX, "e".into());
        for seq in 1..=100 {
            h.record(0, seq, 0, seq, &big);
        }
        assert!(h.rings[0].frames.capacity() >= 100_000);
        // A smaller cap now: symbol 1's ticks push symbol 0's out.
        h.max_bytes = 10 * (1000 + ENTRY_OVERHEAD);
        for seq in 1..=10 {
            h.record(1, seq, 0, 100 + seq, &big);
        }
        assert_eq!(h.rings[0].entries.len(), 0);
        assert!(
            h.rings[0].frames.capacity() < 8192,
            "{}",
            h.rings[0].frames.capacity()
        );
        assert_eq!(h.bytes(), 10 * (1000 + ENTRY_OVERHEAD));
        assert_eq!(seqs(h.since(1, 0, 10)), Ok((1..=10).collect()));
    }

    #[test]
    fn a_ring_replays_exactly_what_it_holds_and_refuses_the_rest() {
        let mut h = History::with_epoch(3, usize::MAX, "e".into());
        for (pos, seq) in (10..=14).enumerate() {
            h.record(0, seq, seq * 100, pos as u64, &frame(seq));
        }
        assert_eq!(h.len(), 3);
        // Holds 12, 13, 14: everything after 11.
        assert_eq!(seqs(h.since(0, 11, 14)), Ok(vec![12, 13, 14]));
        assert_eq!(seqs(h.since(0, 13, 14)), Ok(vec![14]));
        assert_eq!(seqs(h.since(0, 14, 14)), Ok(vec![]));
        assert_eq!(seqs(h.since(0, 10, 14)), Err(ResetReason::TooOld));
        assert_eq!(seqs(h.since(0, 15, 14)), Err(ResetReason::Epoch));
        assert_eq!(seqs(Ok(h.from_ts(0, 1300))), Ok(vec![13, 14]));
        assert_eq!(seqs(Ok(h.from_ts(0, 1100))), Ok(vec![12, 13, 14]));
        // A symbol first seen at seq 10 cannot vouch for 5..9.
        let mut fresh = History::with_epoch(3, usize::MAX, "e".into());
        fresh.record(0, 10, 1, 0, &frame(10));
        assert_eq!(seqs(fresh.since(0, 9, 10)), Ok(vec![10]));
        assert_eq!(seqs(fresh.since(0, 5, 10)), Err(ResetReason::TooOld));
    }

    #[test]
    fn the_byte_cap_lets_the_oldest_ticks_of_the_broker_go_first() {
        let per = 8 + ENTRY_OVERHEAD;
        let mut h = History::with_epoch(100, 5 * per, "e".into());
        let mut pos = 0;
        for seq in 1..=3 {
            for id in 0..2 {
                h.record(id, seq, 0, pos, &frame(seq));
                pos += 1;
            }
        }
        // Six ticks, room for five: symbol 0's seq 1 went.
        assert_eq!((h.len(), h.bytes()), (5, 5 * per));
        assert_eq!(seqs(h.since(0, 0, 3)), Err(ResetReason::TooOld));
        assert_eq!(seqs(h.since(0, 1, 3)), Ok(vec![2, 3]));
        assert_eq!(seqs(h.since(1, 0, 3)), Ok(vec![1, 2, 3]));
        // The FIFO stays bounded however long the per-symbol cap works.
        let mut small = History::with_epoch(2, usize::MAX, "e".into());
        for p in 0..100_000 {
            small.record((p % 3) as u32, p + 1, 0, p, &frame(p));
        }
        assert_eq!(small.len(), 6);
        assert!(
            small.order.len() <= 2 * 6 + 1024 + 1,
            "{}",
            small.order.len()
        );
    }

    #[test]
    fn a_feed_restart_starts_the_ring_over_under_its_own_epoch() {
        let mut h = History::with_epoch(10, usize::MAX, "abc".into());
        for seq in 1..=5 {
            h.record(0, seq, 0, seq, &frame(seq));
        }
        assert_eq!(h.check_epoch(0, Some("abc")), Ok(()));
        h.restart(0);
        assert_eq!(h.len(), 0);
        assert_eq!(h.epoch_of(0), "abc.1");
        assert_eq!(h.epoch_of(1), "abc");
        h.record(0, 1, 0, 6, &frame(1));
        assert_eq!(h.check_epoch(0, Some("abc")), Err(ResetReason::FeedRestart));
        assert_eq!(h.check_epoch(0, Some("abc.1")), Ok(()));
        assert_eq!(h.check_epoch(0, Some("zzz")), Err(ResetReason::Epoch));
        assert_eq!(h.check_epoch(0, None), Err(ResetReason::Epoch));
        assert_eq!(seqs(h.since(0, 0, 1)), Ok(vec![1]));
        assert_eq!(h.restarted(), &[0]);
    }

    #[test]
    fn an_edge_takes_the_origins_epochs_and_starts_over_when_they_change() {
        let mut h = History::with_epoch(10, usize::MAX, "own".into());
        // The first tick brings the origin's epoch: no reset, the broker's
        // epoch follows it.
        assert_eq!(h.adopt(0, "org"), None);
        assert_eq!(h.epoch(), "org");
        h.record(0, 7, 0, 0, &frame(7));
        assert_eq!(h.adopt(0, "org"), None);
        h.record(0, 8, 0, 1, &frame(8));
        assert_eq!(seqs(h.since(0, 7, 8)), Ok(vec![8]));
        // A symbol the origin restarted has its own; acks list it.
        assert_eq!(h.adopt(1, "org.2"), None);
        assert!(h.has_restarted(1) && !h.has_restarted(0));
        assert_eq!(h.check_epoch(1, Some("org")), Err(ResetReason::FeedRestart));
        // The origin's suffix moves: a feed restart, the ring starts over.
        assert_eq!(h.adopt(0, "org.1"), Some(ResetReason::FeedRestart));
        assert_eq!(h.len(), 0);
        assert_eq!(h.epoch_of(0), "org.1");
        // Another origin stream altogether: `epoch`.
        assert_eq!(h.adopt(0, "new"), Some(ResetReason::Epoch));
        assert_eq!((h.epoch(), h.epoch_of(0).as_str()), ("new", "new"));
        assert_eq!(h.check_epoch(0, Some("org.1")), Err(ResetReason::Epoch));
    }

    #[test]
    fn epoch_names_are_checked() {
        for good in ["a", "desk-feed_1", &"x".repeat(48)] {
            assert!(valid_epoch_name(good) && valid_epoch(good), "{good}");
        }
        for bad in ["", "a.b", "a b", &"x".repeat(49)] {
            assert!(!valid_epoch_name(bad), "{bad}");
        }
        assert!(valid_epoch("0123abcd.12"));
        for bad in ["a.", ".1", "a.1.2", "a.x", "a\n"] {
            assert!(!valid_epoch(bad), "{bad}");
        }
    }

    #[test]
    fn without_history_every_resume_is_refused_as_such() {
        let mut h = History::with_epoch(0, usize::MAX, "e".into());
        h.record(0, 1, 0, 0, &frame(1));
        assert!(h.is_empty());
        assert_eq!(seqs(h.since(0, 0, 1)), Err(ResetReason::NoHistory));
        let off = History::with_epoch(100, 0, "e".into());
        assert!(!off.enabled());
    }
}
