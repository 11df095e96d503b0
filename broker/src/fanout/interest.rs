//! What a feed may need to do before a subscribe is answered.
//!
//! An edge that takes from NATS only the symbols its clients want
//! (`--nats-interest subscribed`) must, for a symbol new to it, subscribe
//! to it and read its recent ticks from JetStream *before* the hub answers
//! the subscribe: only then does the client get its snapshot at once, and
//! a resume is answered from a ring that holds what the origin kept. The
//! session calls [`Interest::prepare`] with the request's topics and waits
//! (at most [`PREPARE_WITHIN`]); every other feed has none.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

/// The longest a subscribe waits for its feed to prepare; it is then
/// answered with what the hub has.
pub const PREPARE_WITHIN: Duration = Duration::from_secs(2);

/// A feed that must see a subscribe's topics first.
pub trait Interest: Send + Sync {
    /// Makes sure the feed brings `topics` (`*` for everything), with their
    /// recent ticks already in the hub.
    fn prepare(&self, topics: Vec<String>) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}
