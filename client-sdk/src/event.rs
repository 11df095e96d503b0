//! What the client hands to the program: ticks, acknowledgements, gaps,
//! the broker's continuity notices (recovered, reset) and connection
//! changes, in the order they happened.

use std::time::Duration;

use bytes::Bytes;
use tickcast_protocol::control::{GapReason, ResetReason};
use tickcast_protocol::Tick;

use crate::ClientError;

/// One tick as received, with the exact bytes it arrived in.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedTick {
    /// The decoded tick.
    pub tick: Tick,
    /// The frame payload as sent by the broker: one MessagePack tick. It
    /// shares the receive buffer (no copy), so forwarding it costs nothing.
    pub raw: Bytes,
    /// When the frame was read off the socket, nanoseconds since the Unix
    /// epoch (wall clock, comparable with the tick's `ts`).
    pub received_ns: u64,
}

impl ReceivedTick {
    /// Receive time minus the tick's `ts`, in nanoseconds (zero when the
    /// clocks disagree and `ts` is in the future).
    pub fn latency_ns(&self) -> u64 {
        self.received_ns.saturating_sub(self.tick.ts)
    }
}

/// Something that happened on the subscription.
#[derive(Debug)]
#[non_exhaustive]
pub enum Event {
    /// A tick, in per-symbol `seq` order. Ticks whose `seq` is not above the
    /// last one delivered for their symbol on the same connection
    /// (duplicates, such as a snapshot of an unchanged symbol) are dropped
    /// and counted in [`crate::Stats::duplicates`].
    Tick(ReceivedTick),
    /// The broker acknowledged a subscribe or unsubscribe; the full, sorted
    /// list of topics the connection is now subscribed to.
    Subscribed(Vec<String>),
    /// Ticks of `sym` were missed: `seq`s `expected..got` (`got` excluded)
    /// will not arrive. With a `reason`, the broker said so (a `gap` notice:
    /// it conflated or dropped them for this slow reader, or `max_rate`
    /// capped them), and the next tick of `sym` is usually `got`. Without
    /// one, the client saw `seq` jump: the tick delivered right after this
    /// event has `seq` `got`.
    Gap {
        /// The symbol.
        sym: String,
        /// The first `seq` missed.
        expected: u64,
        /// The `seq` after the last one missed; `got - expected` ticks were
        /// missed.
        got: u64,
        /// Why, when the broker said.
        reason: Option<GapReason>,
    },
    /// After a reconnection the broker resumed `sym` where the client
    /// stood: the next `ticks` ticks of `sym` are the ones missed, from its
    /// history, then live ones follow, with no duplicate and no hole.
    Recovered {
        /// The symbol.
        sym: String,
        /// How many missed ticks follow.
        ticks: u64,
    },
    /// `sym` starts over: a resume could not be honoured (the history has
    /// moved on, the broker restarted, it keeps none), and its snapshot
    /// follows; or its feed restarted, and its new ticks follow from `seq`
    /// 1. Either way its next tick is the new baseline, not a gap.
    Reset {
        /// The symbol.
        sym: String,
        /// Why.
        reason: ResetReason,
    },
    /// After a reconnection, `sym` restarted at a lower `seq` (the broker or
    /// its feed restarted) without the broker saying so with an
    /// [`Event::Reset`] (a broker without continuity). The tick delivered
    /// right after this event is the new baseline for gap detection.
    SeqReset {
        /// The symbol.
        sym: String,
        /// The last `seq` delivered before the reconnection.
        last: u64,
        /// The new, lower `seq`.
        got: u64,
    },
    /// The connection was lost; the client waits `delay` and then makes
    /// reconnection attempt number `attempt`.
    Reconnecting {
        /// 1 for the first attempt after a loss, counting up while they fail.
        attempt: u32,
        /// How long the client waits before this attempt.
        delay: Duration,
        /// Why the connection was lost, or why the previous attempt failed.
        cause: ClientError,
    },
    /// A new connection is up and every topic has been subscribed again;
    /// the broker's [`Event::Subscribed`] follows.
    Reconnected {
        /// The attempt that succeeded.
        attempt: u32,
        /// The broker it is connected to now (one of
        /// [`crate::ClientBuilder::urls`]).
        url: String,
    },
    /// The broker accepted a renewed token (see
    /// [`crate::ClientBuilder::token_renewal`]); it now expires at `exp`
    /// (seconds since the Unix epoch).
    Authenticated {
        /// When the new token expires.
        exp: u64,
    },
    /// Something went wrong that the client survived (a malformed frame, a
    /// refused request), or, as the last event before the stream ends,
    /// [`ClientError::GaveUp`].
    Error(ClientError),
}
