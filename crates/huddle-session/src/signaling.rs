//! The signaling channel: whatever carries Jingle IQs between parties (an XMPP
//! connection in an application, the in-memory [`SignalingHub`] in tests and the demo).
//!
//! The session state machines never touch a channel themselves: a driver moves IQs from
//! [`SessionManager::poll_transmit`](crate::jingle::SessionManager::poll_transmit) into
//! [`Signaling::send`] and from [`Signaling::try_recv`] into
//! [`SessionManager::handle_iq`](crate::jingle::SessionManager::handle_iq). An
//! application plugs its XMPP connection in by implementing [`Signaling`] for it.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use huddle_jingle::{ErrorType, Iq, IqType, Jid, StanzaError, StanzaErrorCondition};
use thiserror::Error;

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

/// A channel that moves Jingle IQs: non-blocking, so a sans-IO driver can poll it.
pub trait Signaling {
    /// Our own address on the channel.
    fn jid(&self) -> &Jid;
    /// Hands one IQ to the channel (its `from` is set by the channel, as an XMPP server
    /// stamps it).
    fn send(&mut self, iq: Iq) -> Result<(), SignalingError>;
    /// The next IQ that arrived for us, if any.
    fn try_recv(&mut self) -> Option<Iq>;
}

#[derive(Debug, Default)]
struct HubInner {
    inboxes: HashMap<Jid, VecDeque<Iq>>,
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
        self.lock().inboxes.insert(jid.clone(), VecDeque::new());
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
            inbox.push_back(iq);
            g.delivered += 1;
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
                inbox.push_back(err);
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
        self.hub.lock().inboxes.remove(&self.jid);
    }
}

impl Signaling for HubEndpoint {
    fn jid(&self) -> &Jid {
        &self.jid
    }

    fn send(&mut self, iq: Iq) -> Result<(), SignalingError> {
        self.hub.route(&self.jid, iq)
    }

    fn try_recv(&mut self) -> Option<Iq> {
        self.hub.lock().inboxes.get_mut(&self.jid)?.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use huddle_jingle::{Action, Iq, IqType, Jid, Jingle, StanzaErrorCondition};

    use super::{Signaling, SignalingHub};

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
