//! The topics the program wants, and the way to the current connection.
//!
//! Shared by the [`crate::Client`] (which changes the topics) and the session
//! task (which swaps connections). Both live under one lock, so a subscribe
//! racing a reconnection is never lost: either it lands in the set before the
//! new connection copies the set, or it sees the new connection's writer.

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard, PoisonError};

use fastwebsockets::Frame;
use tickcast_protocol::ClientRequest;
use tokio::sync::mpsc;

/// Frames queued for the current connection's writer task.
pub(crate) type FrameSender = mpsc::Sender<Frame<'static>>;

#[derive(Default)]
struct Inner {
    topics: BTreeSet<String>,
    writer: Option<FrameSender>,
    closing: bool,
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Subscriptions {
    inner: Mutex<Inner>,
}

impl Subscriptions {
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
    /// restores every wanted topic on it (none when nothing is wanted).
    pub fn attach(&self, writer: FrameSender) -> Option<ClientRequest> {
        let mut inner = self.lock();
        inner.writer = Some(writer);
        (!inner.topics.is_empty())
            .then(|| ClientRequest::subscribe(inner.topics.iter().cloned().collect()))
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
        let subs = Subscriptions::default();
        assert!(subs.subscribe(&["A".into(), "B".into()]).is_none());
        assert!(subs.unsubscribe(&["A".into()]).is_none());
        let (tx, _rx) = mpsc::channel(1);
        assert_eq!(
            subs.attach(tx),
            Some(ClientRequest::subscribe(vec!["B".into()]))
        );
        assert!(subs.subscribe(&["C".into()]).is_some());
        subs.detach();
        assert!(subs.close().is_none());
        assert!(subs.is_closing());
    }
}
