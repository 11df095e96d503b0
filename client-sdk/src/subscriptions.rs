//! The topics the program wants, and the way to the current connection.
//!
//! Shared by the [`crate::Client`] (which changes the topics) and the session
//! task (which swaps connections). Both live under one lock, so a subscribe
//! racing a reconnection is never lost: either it lands in the set before the
//! new connection copies the set, or it sees the new connection's writer.
//!
//! The resubscribe after a reconnection carries the positions of every
//! wanted symbol the client holds ticks of (`since`, with the `epoch` and
//! the symbols' own `epochs`: [`SeqTracker`]), so the broker replays what
//! was missed or says why it cannot; and every subscribe carries the
//! client's `max_rate`, if it has one.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use fastwebsockets::Frame;
use tickcast_protocol::control::SubscribeOptions;
use tickcast_protocol::{ClientRequest, WILDCARD};
use tokio::sync::mpsc;

use crate::sequence::SeqTracker;

/// Frames queued for the current connection's writer task.
pub(crate) type FrameSender = mpsc::Sender<Frame<'static>>;

#[derive(Default)]
struct Inner {
    topics: BTreeSet<String>,
    writer: Option<FrameSender>,
    closing: bool,
}

/// See the module documentation.
pub(crate) struct Subscriptions {
    inner: Mutex<Inner>,
    /// Sent with every subscribe (already within the protocol's bounds).
    max_rate: Option<u32>,
}

impl Subscriptions {
    /// No topics yet; every subscribe will ask for `max_rate`.
    pub fn new(max_rate: Option<u32>) -> Self {
        Self {
            inner: Mutex::default(),
            max_rate,
        }
    }

    /// The subscribe request for `topics` (no positions: they are new).
    pub fn request(&self, topics: Vec<String>) -> ClientRequest {
        ClientRequest::Subscribe {
            topics,
            options: SubscribeOptions {
                max_rate: self.max_rate,
                ..SubscribeOptions::default()
            },
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while holding the lock, and the data stays valid
        // even if something did, so a poisoned lock is used as is.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records `topics` as wanted and returns the writer to send the
    /// request on, if a connection is up.
    pub fn subscribe(&self, topics: &[String]) -> Option<FrameSender> {
        let mut inner = self.lock();
        inner.topics.extend(topics.iter().cloned());
        inner.writer.clone()
    }

    /// Records `topics` as no longer wanted and returns the writer to send
    /// the request on, if a connection is up.
    pub fn unsubscribe(&self, topics: &[String]) -> Option<FrameSender> {
        let mut inner = self.lock();
        for topic in topics {
            inner.topics.remove(topic);
        }
        inner.writer.clone()
    }

    /// Makes `writer` the current connection and returns the request that
    /// restores every wanted topic on it (none when nothing is wanted),
    /// resuming each wanted symbol `positions` holds.
    pub fn attach(&self, writer: FrameSender, positions: &SeqTracker) -> Option<ClientRequest> {
        let mut inner = self.lock();
        inner.writer = Some(writer);
        if inner.topics.is_empty() {
            return None;
        }
        let topics: Vec<String> = inner.topics.iter().cloned().collect();
        let mut options = SubscribeOptions {
            max_rate: self.max_rate,
            ..SubscribeOptions::default()
        };
        // Positions are only worth sending in a named stream; and the
        // broker refuses a position for a symbol the request does not
        // cover, so a symbol seen under `*` and no longer wanted stays out.
        if let Some(epoch) = positions.epoch() {
            let all = inner.topics.contains(WILDCARD);
            for (sym, seq, own) in positions.positions() {
                if all || inner.topics.contains(sym) {
                    options.since.insert(sym.to_owned(), seq);
                    if let Some(own) = own {
                        options.epochs.insert(sym.to_owned(), own.to_owned());
                    }
                }
            }
            options.epoch = Some(epoch.to_owned());
        }
        Some(ClientRequest::Subscribe { topics, options })
    }

    /// The current connection's writer, if one is up.
    pub fn writer(&self) -> Option<FrameSender> {
        self.lock().writer.clone()
    }

    /// The connection is gone; requests wait for the next one.
    pub fn detach(&self) {
        self.lock().writer = None;
    }

    /// The program is closing the client: no more reconnections. Returns the
    /// writer to send the close frame on, if a connection is up.
    pub fn close(&self) -> Option<FrameSender> {
        let mut inner = self.lock();
        inner.closing = true;
        inner.writer.clone()
    }

    /// Whether [`Subscriptions::close`] was called.
    pub fn is_closing(&self) -> bool {
        self.lock().closing
    }
}

/// A request as a binary frame (MessagePack, like everything the broker
/// sends, so both directions use one codec).
pub(crate) fn request_frame(request: &ClientRequest) -> Frame<'static> {
    Frame::binary(request.to_msgpack().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_restores_what_was_wanted_while_detached() {
        let subs = Subscriptions::new(None);
        assert!(subs.subscribe(&["A".into(), "B".into()]).is_none());
        assert!(subs.unsubscribe(&["A".into()]).is_none());
        let (tx, _rx) = mpsc::channel(1);
        assert_eq!(
            subs.attach(tx, &SeqTracker::default()),
            Some(ClientRequest::subscribe(vec!["B".into()]))
        );
        assert!(subs.subscribe(&["C".into()]).is_some());
        subs.detach();
        assert!(subs.close().is_none());
        assert!(subs.is_closing());
    }

    #[test]
    fn attach_resumes_the_wanted_symbols_in_their_epochs() {
        let subs = Subscriptions::new(Some(4));
        let (tx, _rx) = mpsc::channel(1);
        let mut tracker = SeqTracker::default();
        for (sym, seq) in [("A", 7), ("B", 3), ("C", 9)] {
            tracker.check(sym, seq);
        }
        subs.subscribe(&["A".into(), "B".into()]);
        // No epoch yet (a broker without one): no positions.
        let Some(ClientRequest::Subscribe { options, .. }) = subs.attach(tx.clone(), &tracker)
        else {
            panic!("no request")
        };
        assert_eq!(
            options,
            SubscribeOptions {
                max_rate: Some(4),
                ..SubscribeOptions::default()
            }
        );
        tracker.on_ack(Some("e".into()), [("B".into(), "e.1".into())].into());
        let Some(ClientRequest::Subscribe { topics, options }) = subs.attach(tx.clone(), &tracker)
        else {
            panic!("no request")
        };
        assert_eq!(topics, ["A", "B"]);
        assert_eq!(options.epoch.as_deref(), Some("e"));
        assert_eq!(options.since, [("A".into(), 7), ("B".into(), 3)].into());
        assert_eq!(options.epochs, [("B".into(), "e.1".into())].into());
        subs.subscribe(&[WILDCARD.into()]);
        let Some(ClientRequest::Subscribe { options, .. }) = subs.attach(tx, &tracker) else {
            panic!("no request")
        };
        assert_eq!(options.since.len(), 3);
        assert_eq!(subs.request(vec!["D".into()]), {
            let mut r = ClientRequest::subscribe(vec!["D".into()]);
            if let ClientRequest::Subscribe { options, .. } = &mut r {
                options.max_rate = Some(4);
            }
            r
        });
    }
}
