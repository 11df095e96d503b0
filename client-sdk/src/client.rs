//! The program's handle: connect, subscribe, read events, read stats.
//!
//! Statistics are counted here, as events are handed out, rather than in the
//! session task: they then run on the program's task with no lock, and count
//! exactly what the program has seen. (The per-symbol `seq` checks run in
//! the session task, which must know every tick received to resume from it:
//! see `session.rs`.)

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use tickcast_protocol::control::{validate_topic, MAX_RATE};
use tickcast_protocol::ClientRequest;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::auth::{self, Renewal, Token};
use crate::endpoint::{Endpoint, Scheme};
use crate::session::{Note, Session};
use crate::subscriptions::{request_frame, Subscriptions};
use crate::transport::Target;
use crate::{transport, ClientError, Event, ReconnectPolicy, Stats};

/// How long [`Client::close`] waits for the broker to answer the close.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Settings for a [`Client`], made by [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    /// Tried in this order; a lost connection moves on to the next.
    urls: Vec<String>,
    reconnect: ReconnectPolicy,
    connect_timeout: Duration,
    idle_timeout: Option<Duration>,
    event_capacity: usize,
    token: Option<String>,
    renewal: Option<Renewal>,
    ca_file: Option<PathBuf>,
    max_rate: Option<u32>,
}

impl std::fmt::Debug for ClientBuilder {
    // The token stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("urls", &self.urls)
            .field("reconnect", &self.reconnect)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("event_capacity", &self.event_capacity)
            .field("token", &self.token.as_ref().map(|_| "…"))
            .field("renewal", &self.renewal.is_some())
            .field("ca_file", &self.ca_file)
            .field("max_rate", &self.max_rate)
            .finish()
    }
}

impl ClientBuilder {
    /// Several brokers of one feed (edges of one origin, `--nats-in`), in
    /// place of the builder's one URL: the first that answers is used, and
    /// when its connection is lost the client goes on to the next (round
    /// the list), resuming every symbol from its last `seq` there, so a
    /// client whose edge dies carries on at another without a gap.
    /// `Client::builder(a).urls([a, b])`. An empty list leaves the URL as
    /// it was.
    pub fn urls<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let urls: Vec<String> = urls.into_iter().map(Into::into).collect();
        if !urls.is_empty() {
            self.urls = urls;
        }
        self
    }

    /// The token (a JWT) for a broker that requires one: sent as
    /// `Authorization: Bearer` on the connection and every reconnection.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Called before the token expires for a fresh one, which is sent to
    /// the broker (`{"op":"auth"}`) and used for later reconnections; the
    /// broker's answer is [`Event::Authenticated`]. Without it the broker
    /// closes the connection (4001) when the token expires.
    pub fn token_renewal<F, Fut>(mut self, renewal: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Option<String>> + Send + 'static,
    {
        self.renewal = Some(Arc::new(move || Box::pin(renewal())));
        self
    }

    /// For `wss://`: trust the CA certificates in this PEM file instead of
    /// the system's root certificates.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }
    /// Ask the broker for at most `rate` ticks a second per symbol (1 to
    /// 1,000; a value outside is brought inside): each the latest when sent,
    /// and a burst's last tick within 1/`rate` after it. Sent with every
    /// subscribe, the resubscribes after a reconnection included; what the
    /// cap skips arrives as [`Event::Gap`] with reason
    /// [`crate::GapReason::RateCapped`]. For a screen, which needs about 10
    /// updates a second, not every tick. Default: no cap.
    pub fn max_rate(mut self, rate: u32) -> Self {
        self.max_rate = Some(rate.clamp(1, MAX_RATE));
        self
    }

    /// How to reconnect after the connection is lost (default:
    /// [`ReconnectPolicy::default`], forever).
    pub fn reconnect(mut self, policy: ReconnectPolicy) -> Self {
        self.reconnect = policy;
        self
    }

    /// Limit for TCP connect plus WebSocket handshake (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Treat the connection as dead when nothing (not even a ping) arrives
    /// for this long, and reconnect; `None` waits forever. The broker pings
    /// a client every 20 s (by default) when it has heard nothing from it,
    /// so this catches a broker host that vanished without closing the
    /// connection. Default: 60 s.
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// How many events may wait for the program before the client stops
    /// reading the socket (default 1024). Past that the broker holds and
    /// eventually conflates ticks, which shows up as [`Event::Gap`].
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Connects, to the first of the URLs that answers. Fails at once,
    /// with the last URL's error, if none can be connected; reconnection
    /// only applies to a connection that was up.
    pub async fn connect(self) -> Result<Client, ClientError> {
        let endpoints = self
            .urls
            .iter()
            .map(|url| Endpoint::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        let tls = if endpoints.iter().any(|e| e.scheme == Scheme::Wss) {
            Some(
                tickcast_protocol::tls::client_config(self.ca_file.as_deref())
                    .map_err(|e| ClientError::Tls(e.to_string()))?,
            )
        } else {
            None
        };
        let token = self.token.map(|t| Arc::new(Token::new(t)));
        let targets: Vec<Target> = endpoints
            .into_iter()
            .map(|endpoint| Target {
                tls: (endpoint.scheme == Scheme::Wss)
                    .then(|| tls.clone())
                    .flatten(),
                endpoint,
                token: token.clone(),
            })
            .collect();
        let mut failed = None;
        let mut first = None;
        for (at, target) in targets.iter().enumerate() {
            match transport::connect(target, self.connect_timeout).await {
                Ok(conn) => {
                    first = Some((at, conn));
                    break;
                }
                Err(e) => failed = Some(e),
            }
        }
        let Some((current, conn)) = first else {
            return Err(failed.unwrap_or_else(|| ClientError::InvalidUrl {
                url: String::new(),
                reason: "no URL given",
            }));
        };
        let subs = Arc::new(Subscriptions::new(self.max_rate));
        let renewing = match (token, self.renewal) {
            (Some(token), Some(renewal)) => {
                Some(tokio::spawn(auth::renew(token, renewal, subs.clone())))
            }
            _ => None,
        };
        let (events_tx, events) = mpsc::channel(self.event_capacity);
        let session = Session {
            targets,
            current,
            policy: self.reconnect,
            connect_timeout: self.connect_timeout,
            idle_timeout: self.idle_timeout,
            subs: subs.clone(),
            events: events_tx,
        };
        Ok(Client {
            events,
            subs,
            renewing,
            session: tokio::spawn(session.run(conn)),
            stats: Stats::default(),
        })
    }
}

/// A connection to a tickcast broker that survives reconnections.
///
/// Read events with [`Client::next`] or as a [`Stream`]. Dropping the client
/// stops its background task and closes the connection.
pub struct Client {
    events: mpsc::Receiver<Note>,
    subs: Arc<Subscriptions>,
    session: JoinHandle<()>,
    /// The token renewal task, when there is one.
    renewing: Option<JoinHandle<()>>,
    stats: Stats,
}

impl Client {
    /// Connects to `url` (`ws://host:port/path`) with default settings.
    pub async fn connect(url: &str) -> Result<Client, ClientError> {
        Self::builder(url).connect().await
    }

    /// Starts building a client for `url` (several: [`ClientBuilder::urls`]).
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            urls: vec![url.into()],
            reconnect: ReconnectPolicy::default(),
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Some(Duration::from_secs(60)),
            event_capacity: 1024,
            token: None,
            renewal: None,
            ca_file: None,
            max_rate: None,
        }
    }

    /// Adds topics (symbols, or `"*"` for all) to the subscription. Invalid
    /// topics are refused here, before anything is sent.
    ///
    /// Returns once the request is queued; the broker's acknowledgement
    /// arrives as [`Event::Subscribed`], a refusal as [`Event::Error`]. The
    /// topics are kept and subscribed again after every reconnection, each
    /// symbol resumed from its last tick received (the broker then sends
    /// [`Event::Recovered`] and the missed ticks, or [`Event::Reset`] and a
    /// snapshot).
    pub async fn subscribe<I>(&self, topics: I) -> Result<(), ClientError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let topics = validated(topics)?;
        self.send(self.subs.request(topics)).await
    }

    /// Removes topics from the subscription. Acknowledged like
    /// [`Client::subscribe`]; the `seq` history of symbols no longer
    /// subscribed is forgotten when the acknowledgement is read, so a later
    /// subscribe does not report the time away as a gap.
    pub async fn unsubscribe<I>(&self, topics: I) -> Result<(), ClientError>
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        let topics = validated(topics)?;
        self.send(ClientRequest::Unsubscribe { topics }).await
    }

    async fn send(&self, request: ClientRequest) -> Result<(), ClientError> {
        if self.session.is_finished() {
            return Err(ClientError::Closed);
        }
        let writer = match &request {
            ClientRequest::Subscribe { topics, .. } if !topics.is_empty() => {
                self.subs.subscribe(topics)
            }
            ClientRequest::Unsubscribe { topics } if !topics.is_empty() => {
                self.subs.unsubscribe(topics)
            }
            _ => return Ok(()),
        };
        if let Some(writer) = writer {
            // If the connection just dropped the send fails, and that is
            // fine: the next connection subscribes to the whole set.
            let _ = writer.send(request_frame(&request)).await;
        }
        Ok(())
    }

    /// The next event, or `None` once the client has stopped (after
    /// [`ClientError::GaveUp`], or when the background task ended).
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Counters and the latency histogram so far.
    pub fn stats(&self) -> Stats {
        self.stats.clone()
    }

    /// How many events have arrived and wait to be read. A program that
    /// writes output can flush when this reaches zero instead of after every
    /// event.
    pub fn buffered(&self) -> usize {
        self.events.len()
    }

    /// Closes the connection cleanly (close code 1000) and stops the
    /// client, waiting at most a second for the broker's answer.
    pub async fn close(mut self) {
        if let Some(writer) = self.subs.close() {
            let _ = writer.send(fastwebsockets::Frame::close(1000, b"")).await;
        }
        // Nobody reads events any more; closing the channel also frees the
        // session if it was waiting for room in it.
        self.events.close();
        let _ = tokio::time::timeout(CLOSE_WAIT, &mut self.session).await;
    }

    /// Counts one note; `None` when it is not for the program.
    fn observe(&mut self, note: Note) -> Option<Event> {
        let event = match note {
            Note::Duplicate => {
                self.stats.duplicates += 1;
                return None;
            }
            Note::Tick(received, first_on_connection) => {
                self.stats.ticks += 1;
                self.stats.bytes += received.raw.len() as u64;
                if !first_on_connection {
                    self.stats.record_latency(received.latency_ns());
                }
                return Some(Event::Tick(received));
            }
            Note::Event(event) => event,
        };
        let stats = &mut self.stats;
        match &event {
            Event::Gap {
                expected,
                got,
                reason,
                ..
            } => {
                let missed = got.saturating_sub(*expected);
                stats.gaps += 1;
                // A hostile `seq` near u64::MAX must not overflow the sums.
                stats.missed = stats.missed.saturating_add(missed);
                if reason.is_some() {
                    stats.gap_noticed = stats.gap_noticed.saturating_add(missed);
                }
            }
            Event::Recovered { ticks, .. } => {
                stats.recoveries += 1;
                stats.recovered = stats.recovered.saturating_add(*ticks);
            }
            Event::Reset { .. } | Event::SeqReset { .. } => stats.resets += 1,
            Event::Reconnected { .. } => stats.reconnects += 1,
            Event::Error(_) => stats.errors += 1,
            Event::Tick(_)
            | Event::Subscribed(_)
            | Event::Reconnecting { .. }
            | Event::Authenticated { .. } => {}
        }
        Some(event)
    }
}

impl Stream for Client {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        loop {
            // `poll_recv` is cancel-safe and uses tokio's cooperative budget,
            // so a long run of dropped duplicates cannot starve other tasks.
            let Some(note) = ready!(this.events.poll_recv(cx)) else {
                return Poll::Ready(None);
            };
            if let Some(event) = this.observe(note) {
                return Poll::Ready(Some(event));
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.session.abort();
        if let Some(renewing) = &self.renewing {
            renewing.abort();
        }
    }
}

fn validated<I>(topics: I) -> Result<Vec<String>, ClientError>
where
    I: IntoIterator,
    I::Item: Into<String>,
{
    topics
        .into_iter()
        .map(|topic| {
            let topic = topic.into();
            validate_topic(&topic)?;
            Ok(topic)
        })
        .collect()
}
