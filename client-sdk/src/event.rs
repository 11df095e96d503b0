//! What the client hands to the program: ticks, acknowledgements, gaps and
//! connection changes, in the order they happened.

use std::time::Duration;

use bytes::Bytes;
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
    /// Ticks of `sym` were missed: the next tick (delivered right after this
    /// event) has `seq` `got` where `expected` was due. Happens after a
    /// reconnection, or when the broker conflated ticks for a slow reader.
    Gap {
        /// The symbol.
        sym: String,
        /// The `seq` that should have come next.
        expected: u64,
        /// The `seq` that came instead; `got - expected` ticks were missed.
        got: u64,
    },
    /// After a reconnection, `sym` restarted at a lower `seq` (the broker or
    /// its feed restarted). The tick delivered right after this event is the
    /// new baseline for gap detection.
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
    },
    /// The broker accepted a renewed token (see
    /// [`crate::ClientBuilder::token_renewal`]); it now expires at `exp`
    /// (seconds since the Unix epoch).
    Authenticated {
        /// When the new token expires.
        exp: u64,
    },
    /// A continuity notice from the broker (`recovered`, `reset`, `gap`:
    /// see docs/PROTOCOL.md), as sent.
    Notice(tickcast_protocol::ServerMessage),
    /// Something went wrong that the client survived (a malformed frame, a
    /// refused request), or, as the last event before the stream ends,
    /// [`ClientError::GaveUp`].
    Error(ClientError),
}
