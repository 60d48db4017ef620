//! The signaling channel: whatever carries Jingle IQs between parties (an XMPP
//! connection in an application, the in-memory [`SignalingHub`] in tests and the demo).
//!
//! The session state machines never touch a channel themselves: a driver moves IQs from
//! [`SessionManager::poll_transmit`](crate::jingle::SessionManager::poll_transmit) into
//! [`Signaling::send`] and from [`Signaling::poll_recv`] (or its future,
//! [`Signaling::recv`]) into
//! [`SessionManager::handle_iq`](crate::jingle::SessionManager::handle_iq). Receiving
//! wakes the driver when an IQ arrives, so drivers sleep until there is work.
//!
//! An application plugs its XMPP connection in by implementing [`Signaling`] for it, or,
//! when its connection already hands IQs over tokio channels, by wrapping the two
//! channels in a [`ChannelSignaling`].

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use huddle_jingle::{ErrorType, Iq, IqType, Jid, StanzaError, StanzaErrorCondition};
use thiserror::Error;
use tokio::sync::mpsc;

/// Why an IQ could not be handed to the channel.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum SignalingError {
    /// The IQ has no `to` address.
    #[error("IQ {0:?} has no addressee")]
    NoAddressee(String),
    /// The channel is closed (the endpoint left the hub, the connection dropped).
    #[error("the signaling channel is closed")]
    Closed,
}

/// A channel that moves Jingle IQs. Sending never blocks (the channel queues); receiving
/// is poll-based with a waker, like a `Stream`, so an async driver sleeps until an IQ
/// arrives and a synchronous one can still drain what is there with
/// [`try_recv`](Signaling::try_recv).
///
/// ```
/// use std::task::{Context, Poll};
/// use huddle_jingle::{Iq, Jid};
/// use huddle_session::signaling::{Signaling, SignalingError};
/// use tokio::sync::mpsc;
///
/// /// An XMPP client whose reader task forwards every `<iq/>` to `inbound`.
/// struct MyXmpp {
///     jid: Jid,
///     outbound: mpsc::UnboundedSender<Iq>, // to the writer task
///     inbound: mpsc::UnboundedReceiver<Iq>, // from the reader task
/// }
///
/// impl Signaling for MyXmpp {
///     fn jid(&self) -> &Jid {
///         &self.jid
///     }
///     fn send(&mut self, iq: Iq) -> Result<(), SignalingError> {
///         self.outbound.send(iq).map_err(|_| SignalingError::Closed)
///     }
///     fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Iq>> {
///         self.inbound.poll_recv(cx)
///     }
/// }
/// ```
pub trait Signaling {
    /// Our own address on the channel.
    fn jid(&self) -> &Jid;
    /// Hands one IQ to the channel (its `from` is set by the channel, as an XMPP server
    /// stamps it).
    fn send(&mut self, iq: Iq) -> Result<(), SignalingError>;
    /// Polls for the next IQ that arrived for us: `Ready(Some(iq))`, `Ready(None)` once
    /// the channel is closed for good (no IQ will come any more), or `Pending` after
    /// arranging for `cx`'s waker to be woken when one arrives (only the waker of the
    /// latest call is woken).
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Iq>>;
    /// The next IQ that arrived for us, if any, without waiting. The default polls with
    /// a no-op waker, which may replace the waker of an earlier `poll_recv`: channels
    /// whose receiver has a non-registering `try_recv` should override it.
    fn try_recv(&mut self) -> Option<Iq> {
        match self.poll_recv(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(iq) => iq,
            Poll::Pending => None,
        }
    }
    /// Waits for the next IQ (`None`: the channel is closed). Cancel-safe: dropping the
    /// future loses nothing.
    fn recv(&mut self) -> Recv<'_, Self>
    where
        Self: Sized,
    {
        Recv { signaling: self }
    }
}

/// The future of [`Signaling::recv`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct Recv<'a, S: ?Sized> {
    signaling: &'a mut S,
}

impl<S: Signaling + ?Sized> Future for Recv<'_, S> {
    type Output = Option<Iq>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Iq>> {
        self.get_mut().signaling.poll_recv(cx)
    }
}

impl<S: Signaling + ?Sized> Signaling for Box<S> {
    fn jid(&self) -> &Jid {
        (**self).jid()
    }
    fn send(&mut self, iq: Iq) -> Result<(), SignalingError> {
        (**self).send(iq)
    }
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Iq>> {
        (**self).poll_recv(cx)
    }
    fn try_recv(&mut self) -> Option<Iq> {
        (**self).try_recv()
    }
}

/// A [`Signaling`] channel over two tokio channels: IQs to send go to `outbound`, IQs
/// received come from `inbound` (with `from` stamped, as an XMPP server stamps it). The
/// shortest way to plug in an XMPP connection whose reader and writer are tasks.
#[derive(Debug)]
pub struct ChannelSignaling {
    jid: Jid,
    outbound: mpsc::UnboundedSender<Iq>,
    inbound: mpsc::UnboundedReceiver<Iq>,
}

impl ChannelSignaling {
    /// A channel speaking as `jid`.
    pub fn new(
        jid: Jid,
        outbound: mpsc::UnboundedSender<Iq>,
        inbound: mpsc::UnboundedReceiver<Iq>,
    ) -> ChannelSignaling {
        ChannelSignaling {
            jid,
            outbound,
            inbound,
        }
    }
}

impl Signaling for ChannelSignaling {
    fn jid(&self) -> &Jid {
        &self.jid
    }

    fn send(&mut self, iq: Iq) -> Result<(), SignalingError> {
        self.outbound.send(iq).map_err(|_| SignalingError::Closed)
    }

    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Iq>> {
        self.inbound.poll_recv(cx)
    }

    fn try_recv(&mut self) -> Option<Iq> {
        self.inbound.try_recv().ok()
    }
}

/// One endpoint's queue on the hub, and the waker of its pending receive.
#[derive(Debug, Default)]
struct Inbox {
    queue: VecDeque<Iq>,
    waker: Option<Waker>,
}

#[derive(Debug, Default)]
struct HubInner {
    inboxes: HashMap<Jid, Inbox>,
    delivered: u64,
    bounced: u64,
}

/// An in-memory router of IQs between full JIDs, like an XMPP server with every party
/// connected: `from` is stamped by the hub, and an IQ-set or IQ-get to an address nobody
/// holds is answered with `service-unavailable` (RFC 6120 §10.5.3.2), so no request is
/// ever dropped silently.
#[derive(Clone, Default)]
pub struct SignalingHub {
    inner: Arc<Mutex<HubInner>>,
}

impl fmt::Debug for SignalingHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.lock();
        f.debug_struct("SignalingHub")
            .field("endpoints", &g.inboxes.len())
            .field("delivered", &g.delivered)
            .field("bounced", &g.bounced)
            .finish()
    }
}

impl SignalingHub {
    /// An empty hub.
    pub fn new() -> SignalingHub {
        SignalingHub::default()
    }

    fn lock(&self) -> MutexGuard<'_, HubInner> {
        // A panic while holding the lock cannot leave the maps half-updated (every
        // update is a single insert or push), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connects `jid` (a full JID) to the hub. Connecting a JID twice replaces the
    /// earlier endpoint's inbox.
    pub fn connect(&self, jid: Jid) -> HubEndpoint {
        let old = self.lock().inboxes.insert(jid.clone(), Inbox::default());
        if let Some(w) = old.and_then(|i| i.waker) {
            w.wake();
        }
        HubEndpoint {
            hub: self.clone(),
            jid,
        }
    }

    /// IQs delivered so far, and IQs bounced because nobody held the address.
    pub fn stats(&self) -> (u64, u64) {
        let g = self.lock();
        (g.delivered, g.bounced)
    }

    fn route(&self, from: &Jid, mut iq: Iq) -> Result<(), SignalingError> {
        let to = iq
            .to
            .clone()
            .ok_or_else(|| SignalingError::NoAddressee(iq.id.clone()))?;
        iq.from = Some(from.clone());
        let mut g = self.lock();
        if !g.inboxes.contains_key(from) {
            return Err(SignalingError::Closed);
        }
        if let Some(inbox) = g.inboxes.get_mut(&to) {
            inbox.queue.push_back(iq);
            let waker = inbox.waker.take();
            g.delivered += 1;
            drop(g);
            if let Some(w) = waker {
                w.wake();
            }
            return Ok(());
        }
        g.bounced += 1;
        if matches!(iq.kind, IqType::Set | IqType::Get) {
            // RFC 6120 §10.5.3.2: an IQ to a resource that is not connected gets
            // service-unavailable from the server.
            let mut err = Iq::error_for(
                &iq,
                StanzaError::new(ErrorType::Cancel, StanzaErrorCondition::ServiceUnavailable),
            );
            err.from = Some(to);
            if let Some(inbox) = g.inboxes.get_mut(from) {
                inbox.queue.push_back(err);
                let waker = inbox.waker.take();
                drop(g);
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
        Ok(())
    }
}

/// One party's connection to a [`SignalingHub`].
#[derive(Debug)]
pub struct HubEndpoint {
    hub: SignalingHub,
    jid: Jid,
}

impl HubEndpoint {
    /// Leaves the hub: later IQs to this JID bounce.
    pub fn disconnect(self) {
        let gone = self.hub.lock().inboxes.remove(&self.jid);
        if let Some(w) = gone.and_then(|i| i.waker) {
            w.wake();
        }
    }
}

impl Signaling for HubEndpoint {
    fn jid(&self) -> &Jid {
        &self.jid
    }

    fn send(&mut self, iq: Iq) -> Result<(), SignalingError> {
        self.hub.route(&self.jid, iq)
    }

    /// `Ready(None)` once the JID left the hub.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<Iq>> {
        let mut g = self.hub.lock();
        let Some(inbox) = g.inboxes.get_mut(&self.jid) else {
            return Poll::Ready(None);
        };
        if let Some(iq) = inbox.queue.pop_front() {
            return Poll::Ready(Some(iq));
        }
        match &mut inbox.waker {
            Some(w) => w.clone_from(cx.waker()),
            None => inbox.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    fn try_recv(&mut self) -> Option<Iq> {
        self.hub
            .lock()
            .inboxes
            .get_mut(&self.jid)?
            .queue
            .pop_front()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Context, Poll, Wake, Waker};

    use huddle_jingle::{Action, Iq, IqType, Jid, Jingle, StanzaErrorCondition};
    use tokio::sync::mpsc;

    use super::{ChannelSignaling, Signaling, SignalingError, SignalingHub};

    /// Counts its wake-ups.
    struct Counter(AtomicUsize);

    impl Wake for Counter {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn counter() -> (Arc<Counter>, Waker) {
        let c = Arc::new(Counter(AtomicUsize::new(0)));
        (c.clone(), Waker::from(c))
    }

    fn info(id: &str, to: &str) -> Iq {
        let mut iq = Iq::set(id, Jingle::new(Action::SessionInfo, "s"));
        iq.to = Some(jid(to));
        iq
    }

    #[test]
    fn a_pending_receive_is_woken_by_the_next_iq_and_by_leaving() {
        let hub = SignalingHub::new();
        let mut a = hub.connect(jid("a@x/1"));
        let mut b = hub.connect(jid("b@x/1"));
        let (count, waker) = counter();
        let mut cx = Context::from_waker(&waker);
        assert!(b.poll_recv(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        a.send(info("1", "b@x/1")).expect("send");
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the IQ wakes the receiver"
        );
        match b.poll_recv(&mut cx) {
            Poll::Ready(Some(iq)) => assert_eq!(iq.id, "1"),
            other => panic!("unexpected {other:?}"),
        }
        // try_recv leaves the registered waker alone.
        assert!(b.poll_recv(&mut cx).is_pending());
        assert!(b.try_recv().is_none());
        a.send(info("2", "b@x/1")).expect("send");
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        // A bounce wakes the sender.
        let (acount, awaker) = counter();
        assert!(a.poll_recv(&mut Context::from_waker(&awaker)).is_pending());
        a.send(info("3", "nobody@x/1")).expect("send");
        assert_eq!(acount.0.load(Ordering::SeqCst), 1);
        // Leaving ends the receive for good.
        let (bcount, bwaker) = counter();
        let mut c = hub.connect(jid("c@x/1"));
        assert!(c.poll_recv(&mut Context::from_waker(&bwaker)).is_pending());
        let c2 = hub.connect(jid("c@x/1"));
        assert_eq!(bcount.0.load(Ordering::SeqCst), 1, "replaced inbox wakes");
        c2.disconnect();
        assert_eq!(
            c.poll_recv(&mut Context::from_waker(&bwaker)),
            Poll::Ready(None)
        );
        assert_eq!(c.send(info("4", "a@x/1")), Err(SignalingError::Closed));
    }

    #[tokio::test]
    async fn recv_waits_for_the_iq_and_channel_signaling_carries_it() {
        let hub = SignalingHub::new();
        let mut a = hub.connect(jid("a@x/1"));
        let mut b = hub.connect(jid("b@x/1"));
        let waiter = tokio::spawn(async move { b.recv().await.map(|iq| iq.id) });
        tokio::task::yield_now().await;
        a.send(info("9", "b@x/1")).expect("send");
        assert_eq!(waiter.await.expect("join"), Some("9".to_owned()));

        let (out_tx, mut out_rx) = mpsc::unbounded_channel();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let mut ch = ChannelSignaling::new(jid("c@x/1"), out_tx, in_rx);
        assert_eq!(ch.jid(), &jid("c@x/1"));
        ch.send(info("5", "a@x/1")).expect("send");
        assert_eq!(out_rx.recv().await.map(|iq| iq.id), Some("5".to_owned()));
        assert!(ch.try_recv().is_none());
        in_tx.send(info("6", "c@x/1")).expect("inbound");
        assert_eq!(ch.recv().await.map(|iq| iq.id), Some("6".to_owned()));
        drop(in_tx);
        assert!(
            ch.recv().await.is_none(),
            "a closed inbound channel ends receiving"
        );
        drop(out_rx);
        assert_eq!(ch.send(info("7", "a@x/1")), Err(SignalingError::Closed));
    }

    fn jid(s: &str) -> Jid {
        Jid::new(s).expect("jid")
    }

    #[test]
    fn the_hub_routes_by_full_jid_and_stamps_the_sender() {
        let hub = SignalingHub::new();
        let mut a = hub.connect(jid("a@x/1"));
        let mut b = hub.connect(jid("b@x/1"));
        let mut iq = Iq::set("1", Jingle::new(Action::SessionInfo, "s"));
        iq.to = Some(jid("b@x/1"));
        iq.from = Some(jid("mallory@x/1"));
        a.send(iq).expect("send");
        let got = b.try_recv().expect("delivered");
        assert_eq!(got.from, Some(jid("a@x/1")));
        assert!(b.try_recv().is_none());
        assert_eq!(hub.stats(), (1, 0));
    }

    #[test]
    fn a_request_to_nobody_bounces_with_service_unavailable() {
        let hub = SignalingHub::new();
        let mut a = hub.connect(jid("a@x/1"));
        let b = hub.connect(jid("b@x/1"));
        b.disconnect();
        let mut iq = Iq::set("7", Jingle::new(Action::SessionInfo, "s"));
        iq.to = Some(jid("b@x/1"));
        a.send(iq).expect("send");
        let err = a.try_recv().expect("bounce");
        assert_eq!(err.kind, IqType::Error);
        assert_eq!(err.id, "7");
        assert_eq!(
            err.error.map(|e| e.condition),
            Some(StanzaErrorCondition::ServiceUnavailable)
        );
    }
}
