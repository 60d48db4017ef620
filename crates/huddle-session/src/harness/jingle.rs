//! [`JingleNode`]: a Jingle [`SessionManager`] as a harness [`Node`], recording its events
//! and keeping the books that the fault invariants are checked against.

use std::collections::HashMap;
use std::time::Instant;

use huddle_jingle::{Action, Iq, IqType};

use super::Node;
use crate::jingle::{Event, SessionManager};

/// The books of one node: every request it received and how often it answered it, and
/// every request it sent and how many outcome events it reported for it.
#[derive(Debug, Default, Clone)]
pub struct RequestLedger {
    /// (sender, id) of each inbound IQ-set → replies sent.
    pub inbound: HashMap<(String, String), u32>,
    /// Outbound requests (session-terminate excepted), in order: (sid, action).
    pub outbound: Vec<(String, Action)>,
    /// Outcome events (acknowledged or failed) per (sid, action), in order.
    pub outcomes: HashMap<(String, Action), u32>,
}

impl RequestLedger {
    /// Inbound requests that got no reply, or more than one.
    pub fn misanswered(&self) -> Vec<(String, String, u32)> {
        let mut v: Vec<_> = self
            .inbound
            .iter()
            .filter(|(_, n)| **n != 1)
            .map(|((f, id), n)| (f.clone(), id.clone(), *n))
            .collect();
        v.sort();
        v
    }

    /// (sid, action) pairs whose count of sent requests differs from the count of
    /// outcome events reported for them.
    pub fn unresolved(&self) -> Vec<(String, Action, u32, u32)> {
        let mut sent: HashMap<(String, Action), u32> = HashMap::new();
        for k in &self.outbound {
            *sent.entry(k.clone()).or_default() += 1;
        }
        let mut v: Vec<_> = sent
            .into_iter()
            .filter_map(|(k, n)| {
                let got = self.outcomes.get(&k).copied().unwrap_or(0);
                (got != n).then_some((k.0, k.1, n, got))
            })
            .collect();
        v.sort();
        v
    }
}

/// A [`SessionManager`] driven by the harness.
#[derive(Debug)]
pub struct JingleNode {
    /// The manager: issue commands here.
    pub manager: SessionManager,
    /// Every event so far, in order.
    pub events: Vec<Event>,
    /// The request books.
    pub ledger: RequestLedger,
    addr: String,
}

impl JingleNode {
    /// Wraps `manager`; its JID is its address.
    pub fn new(manager: SessionManager) -> JingleNode {
        let addr = manager.jid().as_str().to_owned();
        JingleNode {
            manager,
            events: Vec::new(),
            ledger: RequestLedger::default(),
            addr,
        }
    }

    fn drain(&mut self) {
        while let Some(e) = self.manager.poll_event() {
            match &e {
                Event::RequestAcknowledged { sid, action } => {
                    *self
                        .ledger
                        .outcomes
                        .entry((sid.to_string(), *action))
                        .or_default() += 1;
                }
                Event::RequestFailed { sid, action, .. } => {
                    *self
                        .ledger
                        .outcomes
                        .entry((sid.to_string(), *action))
                        .or_default() += 1;
                }
                _ => {}
            }
            self.events.push(e);
        }
    }

    /// Events recorded so far that match `f`.
    pub fn events_where(&self, f: impl Fn(&Event) -> bool) -> Vec<&Event> {
        self.events.iter().filter(|e| f(e)).collect()
    }
}

impl Node for JingleNode {
    type Msg = Iq;

    fn addr(&self) -> &str {
        &self.addr
    }

    fn handle(&mut self, from: &str, mut msg: Iq, now: Instant) {
        // The network stamps the sender, as an XMPP server does.
        msg.from = huddle_jingle::Jid::new(from).ok();
        if msg.kind == IqType::Set {
            self.ledger
                .inbound
                .entry((from.to_owned(), msg.id.clone()))
                .or_default();
        }
        self.manager.handle_iq(msg, now);
        self.drain();
    }

    fn poll_transmit(&mut self, now: Instant) -> Option<(String, Iq)> {
        self.drain();
        let iq = self.manager.poll_transmit(now)?;
        let to = iq
            .to
            .as_ref()
            .map(|j| j.as_str().to_owned())
            .unwrap_or_default();
        match iq.kind {
            IqType::Result | IqType::Error => {
                *self
                    .ledger
                    .inbound
                    .entry((to.clone(), iq.id.clone()))
                    .or_default() += 1;
            }
            IqType::Set | IqType::Get => {
                if let Some(j) = &iq.jingle
                    && j.action != Action::SessionTerminate
                {
                    self.ledger.outbound.push((j.sid.to_string(), j.action));
                }
            }
        }
        Some((to, iq))
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.manager.poll_timeout()
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.manager.handle_timeout(now);
        self.drain();
    }
}
