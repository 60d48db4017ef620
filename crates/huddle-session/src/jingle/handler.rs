//! Application handlers: what a session does with the actions the protocol layer lets
//! through. One handler instance per session, created by a factory registered for a
//! description namespace; sessions of unregistered formats get [`BaseHandler`], which
//! behaves like the seed's base `Session` class.

use std::fmt;

use huddle_jingle::{
    Action, Content, ErrorType, Jingle, JingleErrorCondition, Reason, ReasonCondition, StanzaError,
    StanzaErrorCondition,
};

use super::session::Session;

/// What to answer an inbound action with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Verdict {
    /// Acknowledge with an empty IQ-result.
    Ack,
    /// Acknowledge, then send this action to the peer (its sid is filled in), e.g. a
    /// content-reject answering a content-add.
    AckAndSend(Box<Jingle>),
    /// Answer with this IQ error.
    Reject(StanzaError),
    /// Decide later: the IQ stays at the head of the session's queue (later actions wait
    /// behind it) until the application calls
    /// [`SessionManager::complete`](super::SessionManager::complete).
    Defer,
}

impl Verdict {
    /// `unsupported-info` (XEP-0166 §6.8: the receiver does not understand an
    /// informational payload).
    pub fn unsupported_info() -> Verdict {
        Verdict::Reject(StanzaError::jingle(JingleErrorCondition::UnsupportedInfo))
    }

    /// `bad-request` (RFC 6120 §8.3.3.1).
    pub fn bad_request() -> Verdict {
        Verdict::Reject(StanzaError::new(
            ErrorType::Cancel,
            StanzaErrorCondition::BadRequest,
        ))
    }
}

/// The application behind one session. Every method has the seed's base-session
/// behaviour as its default, so a handler overrides only what it supports.
pub trait ApplicationHandler: fmt::Debug + Send {
    /// `start` was called: `Ok` sends the session-initiate, `Err(reason)` ends the
    /// session locally with that reason (nothing was sent to the peer). The base
    /// session cannot start (seed 001: it supports no application).
    fn start(&mut self, session: &Session) -> Result<(), Reason> {
        let _ = session;
        Err(Reason::new(ReasonCondition::UnsupportedApplications))
    }

    /// `accept` was called on an incoming session: `Ok(contents)` sends session-accept
    /// with them, `Err(reason)` terminates the session with that reason instead (seed
    /// 001: the base session answers `unsupported-applications`).
    fn accept(&mut self, session: &Session) -> Result<Vec<Content>, Reason> {
        let _ = session;
        Err(Reason::new(ReasonCondition::UnsupportedApplications))
    }

    /// An inbound action, after the manager's protocol checks (known session, right
    /// sender, state, tie-breaks). session-terminate never reaches the handler.
    fn on_action(&mut self, session: &Session, jingle: &Jingle) -> Verdict {
        base_verdict(session, jingle)
    }
}

/// The seed's base-session answer to an inbound action.
///
/// - session-info: an empty one is a ping and is acknowledged (XEP-0166 §6.8: "MUST
///   send an empty IQ result"); one with a payload the base does not understand gets
///   `unsupported-info` (§6.8).
/// - description-info, transport-info: informational messages (§6.8), payload not
///   understood: `unsupported-info`.
/// - content-add: acknowledged, then refused with content-reject (§7.2.2: the receiver
///   "MUST send a content-accept ... if not, it MUST send a content-reject").
/// - transport-replace: acknowledged, then refused with transport-reject (§7.2.15).
/// - everything else: acknowledged and ignored.
pub fn base_verdict(session: &Session, jingle: &Jingle) -> Verdict {
    let _ = session;
    match jingle.action {
        Action::SessionInfo => {
            if jingle.info.is_none() && jingle.contents.is_empty() && jingle.extensions.is_empty() {
                Verdict::Ack
            } else {
                Verdict::unsupported_info()
            }
        }
        Action::DescriptionInfo | Action::TransportInfo => Verdict::unsupported_info(),
        Action::ContentAdd => Verdict::AckAndSend(Box::new(refusal(
            Action::ContentReject,
            jingle,
            "content-add is not supported",
        ))),
        Action::TransportReplace => Verdict::AckAndSend(Box::new(refusal(
            Action::TransportReject,
            jingle,
            "transport-replace is not supported",
        ))),
        _ => Verdict::Ack,
    }
}

/// A content-reject / transport-reject naming the refused contents, with reason
/// `failed-application` and a text (the seed's wording).
fn refusal(action: Action, request: &Jingle, text: &str) -> Jingle {
    let mut j = Jingle::new(action, request.sid.clone());
    j.contents = request
        .contents
        .iter()
        .map(|c| Content::new(c.creator, c.name.clone()))
        .collect();
    let mut reason = Reason::new(ReasonCondition::FailedApplication);
    reason.text = Some(text.to_owned());
    j.reason = Some(Box::new(reason));
    j
}

/// The handler of sessions whose application format nobody registered: the seed's
/// base `Session` (acknowledges what it can, supports no application).
#[derive(Debug, Clone, Copy, Default)]
pub struct BaseHandler;

impl ApplicationHandler for BaseHandler {}

/// Creates the handler of a new session (incoming or outgoing).
pub type HandlerFactory = Box<dyn FnMut(&Session) -> Box<dyn ApplicationHandler> + Send>;
