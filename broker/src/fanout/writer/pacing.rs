//! When a writer shard's next pass may start (`--write-coalesce`).
//!
//! A send costs the same few microseconds of kernel time whether it carries
//! one frame or fifty (measured here with `loadgen floor`: 5–7 µs a send at
//! 200 connections, ~9 µs at 1,000), and with hundreds of busy connections
//! those fixed costs, not the bytes, fill the CPU. So a shard pauses between
//! passes and lets frames gather. With `auto` it times its own sends and
//! keeps them to `--send-share` of its core: a pass whose sends took `S` is
//! followed by a pause until `S ÷ share` after it began. tokio's timer
//! counts whole milliseconds, so shorter pauses add up until they are not,
//! and a shard that runs out of work owes nothing. A few busy clients are
//! written at once; a thousand are written as often as the machine's send
//! cost allows, which is what a fixed budget of writes per second had to
//! guess (it was 100k writes/s until 2026-12-01: at 1,000 subscribers its
//! 10 ms period needed a full core of sends).

use std::time::Duration;

use tokio::time::Instant;

use crate::config::{WriteCoalesce, MAX_AUTO_PAUSE};

/// The granularity of tokio's timer; pauses shorter than this are skipped.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

/// A shard's pacing state.
#[derive(Debug)]
pub struct Pacing {
    coalesce: WriteCoalesce,
    /// `auto`: pause owed to the send share, carried while it is shorter
    /// than the timer's resolution.
    owed: Duration,
}

impl Pacing {
    /// Pacing by `coalesce`.
    pub fn new(coalesce: WriteCoalesce) -> Self {
        Self {
            coalesce,
            owed: Duration::ZERO,
        }
    }

    /// After a pass that began at `started` and spent `sending` in sends:
    /// the moment the next pass may begin, if it must wait.
    pub fn after_pass(&mut self, started: Instant, sending: Duration) -> Option<Instant> {
        let pause = match self.coalesce {
            WriteCoalesce::Fixed(pause) => pause,
            WriteCoalesce::Auto { send_share } => {
                self.owed = (self.owed + auto_pause(sending, send_share)).min(MAX_AUTO_PAUSE);
                if self.owed < TIMER_RESOLUTION {
                    return None;
                }
                std::mem::take(&mut self.owed)
            }
        };
        (pause >= TIMER_RESOLUTION).then(|| started + pause)
    }

    /// The shard ran out of work and waits: what it owed is paid.
    pub fn idle(&mut self) {
        self.owed = Duration::ZERO;
    }
}

/// The pass-to-pass period that keeps sends taking `sending` to `share` of
/// the core: `sending ÷ share`, capped.
fn auto_pause(sending: Duration, share: f64) -> Duration {
    if share.is_nan() || share <= 0.0 {
        return MAX_AUTO_PAUSE;
    }
    sending.div_f64(share.min(1.0)).min(MAX_AUTO_PAUSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_pauses_shorter_than_the_timer_add_up_until_the_shard_idles() {
        let t0 = Instant::now();
        let us = Duration::from_micros;
        let mut p = Pacing::new(WriteCoalesce::Auto { send_share: 0.5 });
        // 300 µs of sends owe 600 µs: too short for the timer, carried.
        assert_eq!(p.after_pass(t0, us(300)), None);
        // 600 more: 1.2 ms from the start of this pass.
        assert_eq!(p.after_pass(t0, us(300)), Some(t0 + us(1_200)));
        assert_eq!(p.owed, Duration::ZERO);
        // Owed, then the shard has nothing to do: waiting paid it.
        assert_eq!(p.after_pass(t0, us(300)), None);
        p.idle();
        assert_eq!(p.after_pass(t0, us(300)), None);
        assert_eq!(p.owed, us(600));
        assert_eq!(p.after_pass(t0, us(50_000)), Some(t0 + MAX_AUTO_PAUSE));

        let mut fixed = Pacing::new(WriteCoalesce::Fixed(Duration::from_millis(2)));
        assert_eq!(fixed.after_pass(t0, us(0)), Some(t0 + us(2_000)));
        let mut short = Pacing::new(WriteCoalesce::Fixed(us(500)));
        assert_eq!(short.after_pass(t0, us(0)), None);
    }

    #[test]
    fn sends_are_kept_to_their_share_of_the_core() {
        let ms = Duration::from_millis;
        assert_eq!(auto_pause(Duration::ZERO, 0.6), Duration::ZERO);
        // 200 sends of 7 µs at 60 %: a pass every 2.33 ms.
        assert_eq!(
            auto_pause(Duration::from_micros(1_400), 0.6),
            Duration::from_nanos(2_333_333)
        );
        assert_eq!(auto_pause(ms(9), 0.5), ms(18));
        assert_eq!(auto_pause(ms(9), 1.0), ms(9));
        assert_eq!(auto_pause(ms(9), 0.1), MAX_AUTO_PAUSE);
        assert_eq!(auto_pause(ms(1), 0.0), MAX_AUTO_PAUSE);
        assert_eq!(auto_pause(ms(1), f64::NAN), MAX_AUTO_PAUSE);
    }
}
