//! Shared test support for the Jingle tests: the oracle's `TestSession` as a huddle
//! application handler, and small constructors.
#![allow(dead_code, unreachable_pub)]

use std::time::Instant;

use huddle_jingle::{
    Action, Content, Creator, Description, Element, Iq, IqType, Jid, Jingle, Transport,
};
use huddle_session::jingle::{
    ApplicationHandler, Config, Event, Session, SessionManager, Verdict, base_verdict,
};

/// The application namespace the oracle's TestSession uses.
pub const TEST_NS: &str = "test";

pub fn jid(s: &str) -> Jid {
    Jid::new(s).expect("valid JID")
}

/// One content `c1` with a description and a transport in the given namespaces (the
/// oracle's `{applicationType, transportType}`).
pub fn content(app: &str) -> Content {
    let mut c = Content::new(Creator::Initiator, "c1");
    c.description = Some(Description::Raw(Element::new(
        "description",
        app.to_owned(),
    )));
    c.transport = Some(Transport::Raw(Element::new("transport", TEST_NS)));
    c
}

/// The oracle harness's TestSession (oracle-jinglejs.js): start and accept work with
/// content c1; session-initiate, session-accept, transport-info and content-modify are
/// acknowledged (or deferred when listed in `slow`); everything else is the base
/// session's behaviour.
#[derive(Debug, Default, Clone)]
pub struct TestSession {
    pub slow: Vec<Action>,
}

impl ApplicationHandler for TestSession {
    fn start(&mut self, _session: &Session) -> Result<(), huddle_jingle::Reason> {
        Ok(())
    }

    fn accept(&mut self, _session: &Session) -> Result<Vec<Content>, huddle_jingle::Reason> {
        Ok(vec![content(TEST_NS)])
    }

    fn on_action(&mut self, session: &Session, jingle: &Jingle) -> Verdict {
        match jingle.action {
            Action::SessionInitiate
            | Action::SessionAccept
            | Action::TransportInfo
            | Action::ContentModify => {
                if self.slow.contains(&jingle.action) {
                    Verdict::Defer
                } else {
                    Verdict::Ack
                }
            }
            _ => base_verdict(session, jingle),
        }
    }
}

/// A manager for `me` with a fixed seed, TestSession registered for `test` (and for
/// `other`) unless `base_only`.
pub fn manager(me: &str, base_only: bool, slow: &[Action]) -> SessionManager {
    let mut c = Config::new(jid(me));
    c.seed = Some(42);
    let mut m = SessionManager::new(c);
    if !base_only {
        for ns in [TEST_NS, "other"] {
            let slow = slow.to_vec();
            m.register(ns, move |_s| {
                Box::new(TestSession { slow: slow.clone() }) as Box<dyn ApplicationHandler>
            });
        }
    }
    m
}

/// An inbound IQ-set from `from` to `me`.
pub fn request(from: &str, me: &str, id: &str, jingle: Jingle) -> Iq {
    let mut iq = Iq::set(id, jingle);
    iq.from = Some(jid(from));
    iq.to = Some(jid(me));
    iq
}

/// A session-initiate with content c1 of application `app`.
pub fn initiate(sid: &str, app: &str) -> Jingle {
    let mut j = Jingle::new(Action::SessionInitiate, sid);
    j.contents = vec![content(app)];
    j
}

/// Drains every transmit.
pub fn sent(m: &mut SessionManager, now: Instant) -> Vec<Iq> {
    std::iter::from_fn(|| m.poll_transmit(now)).collect()
}

/// Drains every event.
pub fn events(m: &mut SessionManager) -> Vec<Event> {
    std::iter::from_fn(|| m.poll_event()).collect()
}

/// The reply to `id` among `iqs` (exactly one, or panic).
pub fn reply<'a>(iqs: &'a [Iq], id: &str) -> &'a Iq {
    let r: Vec<&Iq> = iqs
        .iter()
        .filter(|i| i.id == id && matches!(i.kind, IqType::Result | IqType::Error))
        .collect();
    assert_eq!(r.len(), 1, "exactly one reply to {id}: {iqs:#?}");
    r[0]
}

/// The answer of the peer to a request we sent.
pub fn answer(req: &Iq, error: Option<huddle_jingle::StanzaError>) -> Iq {
    let mut r = match error {
        Some(e) => Iq::error_for(req, e),
        None => Iq::result_for(req),
    };
    r.from = req.to.clone();
    r.to = req.from.clone();
    r
}
